"""The board's open points: boot, MHI and firmware behaviour the documents leave open.

The virtual AIC100 of ``qaicmodel/emu/`` (the board behind User-Mode Linux's
virtual PCI) reads these; they are declared here, with every other policy, so the
registry is complete on import and ``qaicmodel ambiguities`` lists them.
"""

from __future__ import annotations

from qaicmodel.spec.policies._base import Policy, register

__all__ = ["POLICY_IDS"]

_SEED = "seed 003 (aic100.rst)"

register(
    Policy(
        id="mhi-start-ee",
        area="boot",
        source=f"{_SEED} Boot Flow",
        quote="When AIC100 is first powered on, it begins executing PBL (Primary Bootloader) "
        "from ROM.",
        question="In which execution environment is the virtual device when the host first "
        "powers up MHI: a cold card (PBL), or one whose firmware already runs (AMSS)?",
        alternatives={
            "pbl": "cold: PBL with BHI; the host must load sbl.bin over BHI, SBL fetches the "
            "runtime images with Sahara, then the QSM enters AMSS (the full boot)",
            "amss": "warm: the QSM already runs (EE AMSS, MHI READY); the host goes straight to "
            "MMIO init, M0 and mission mode (no firmware files needed; fast)",
        },
        default="pbl",
        rationale="The document's boot flow is the cold one; AMSS-start is a speed choice for "
        "tests and matches the MHI core's own MHI_POWER_UP_CAPABLE(AMSS) path "
        "(pm.c mhi_async_power_up).",
    )
)

register(
    Policy(
        id="soc-reset-notify",
        area="boot",
        source=f"{_SEED} Boot Flow; ssr-ras-boot.md §4.6",
        quote="When AIC100 is first powered on, it begins executing PBL",
        question="After the host's SoC reset (BIT(0) at MHI BAR + 0xb0) the device reboots to "
        "PBL: does PBL announce itself (MHISTATUS SYS_ERR and an MSI on BHI_INTVEC) or "
        "come up silently in MHI RESET?",
        alternatives={
            "syserr-msi": "PBL with MHISTATUS.SYSERR set and state SYS_ERR, one MSI on "
            "BHI_INTVEC: the host's intvec handler sees SYS_ERR in PBL and runs "
            "its SYS_ERR recovery (reload over BHI)",
            "silent": "PBL in MHI RESET, no MSI: only a host that polls BHI_EXECENV "
            "(qaic's mhi_reset_and_async_power_up) notices",
        },
        default="syserr-msi",
        rationale="The MHI core only learns of a reboot it did not start through SYS_ERR "
        "(main.c mhi_intvec_threaded_handler, PBL case); ssr-ras-boot.md marks the "
        "event order after a SoC reset as inference.",
    )
)

register(
    Policy(
        id="bhi-image-check",
        area="boot",
        source=f"{_SEED} Boot Flow",
        quote="The PBL pulls the image from the host, validates it, and begins execution of SBL.",
        question="What does PBL's validation of the BHI image check (the real signature "
        "scheme is not documented)?",
        alternatives={
            "header-crc": "the model's synthetic image header (magic, image id 0, length) and "
            "CRC-32 of the payload (firmware.py); anything else is BHI_STATUS "
            "ERROR with an error code",
            "accept-any": "any non-empty image of the written size boots SBL",
        },
        default="header-crc",
        rationale="Validation exists per the document; the synthetic format is the only one "
        "the project may ship, and a checked format makes a corrupt DMA visible.",
        category="modelling-limit",
        decision="Modelling limit: the real image format and signature scheme are in no "
        "document; both alternatives are checks of the project's own synthetic images.",
    )
)

register(
    Policy(
        id="sahara-images",
        area="boot",
        source=f"{_SEED} Boot Flow",
        quote="SBL uses the Sahara protocol to obtain the runtime firmware images from the host.",
        question="Which runtime images does SBL request (the document names none)?",
        alternatives={
            "driver-table": "every id of the driver's AIC100 table (sahara.c: 1, 2, 4, 5, 6, 8, "
            "9, 10), in that order",
            "first-only": "image 1 only",
        },
        default="driver-table",
        rationale="The driver's table is the only list of image ids; requesting all of them "
        "exercises the host's per-image open/release.",
    )
)

register(
    Policy(
        id="sbl-bootlog",
        area="boot",
        source=f"{_SEED} Boot Flow",
        quote="SBL offloads the bootlog to the host.",
        question="Does the virtual SBL send boot-log lines on QAIC_LOGGING (12/13)?",
        alternatives={
            "offload": "SBL sends its boot-log lines on channel 13 once the host has queued "
            "buffers there (qaic_debugfs.c bootlog client)",
            "none": "no boot log is sent",
        },
        default="offload",
        rationale="The document says SBL offloads it; the driver exposes it in debugfs.",
    )
)

register(
    Policy(
        id="sahara-failure",
        area="boot",
        source=f"{_SEED} Boot Flow",
        quote="Once SBL has obtained and validated the runtime firmware, it brings the NSPs out "
        "of reset, and jumps into the QSM.",
        question="What does SBL do when an image cannot be obtained (host RESET, wrong size, "
        "bad image)?",
        alternatives={
            "stay-sbl": "SBL stays in SBL and sends nothing more (the host sees no mission mode)",
            "sys-err": "SBL enters MHI SYS_ERR (MHISTATUS.SYSERR, state-change event, MSI)",
        },
        default="stay-sbl",
        rationale="Silent in every document; staying put is the least surprising and keeps the "
        "host's view (EE SBL) truthful.",
    )
)

register(
    Policy(
        id="sys-err-report",
        area="mhi",
        source=f"{_SEED} Boot Flow; drivers/bus/mhi/ep/main.c mhi_ep_handle_syserr, "
        "drivers/bus/mhi/host/main.c mhi_intvec_threaded_handler (7.2)",
        quote="SBL initializes MHI, and uses MHI to notify the host",
        question="How does the device report SYS_ERR: MHISTATUS plus an MSI on BHI_INTVEC only, "
        "or also a state-change event on the primary event ring?",
        alternatives={
            "event-and-intvec": "MHISTATUS SYS_ERR, a STATE_CHANGE(SYS_ERR) event when the event "
            "ring runs, and an MSI on BHI_INTVEC (what the Linux MHI endpoint "
            "stack does)",
            "intvec-only": "MHISTATUS SYS_ERR and an MSI on BHI_INTVEC, no event",
        },
        default="event-and-intvec",
        rationale="aic100.rst is silent; the endpoint stack sends the event, and the host reads "
        "MHISTATUS on the intvec interrupt. With one MHI IRQ (qaic: nr_irqs = 1) the "
        "host detects the first twice (docs/findings.md).",
    )
)

POLICY_IDS = (
    "sys-err-report",
    "mhi-start-ee",
    "soc-reset-notify",
    "bhi-image-check",
    "sahara-images",
    "sbl-bootlog",
    "sahara-failure",
)
