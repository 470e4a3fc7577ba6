"""Control-plane policies: MHI, PCIe identity, QSM/NNC, SSR, RAS.

Declared here (not in the modules that read them) so the registry is complete
as soon as :mod:`qaicmodel.spec.policies` is imported.  Readers:
``qaicmodel/spec/control/`` (mhi.py, pcie.py, qsm.py, nnc.py, manage.py, ssr.py, ras.py).
"""

from __future__ import annotations

from qaicmodel.spec.policies._base import Alt, Policy, register

__all__ = [
    "MhiIpcr",
    "MHI_IPCR",
    "TelemetryChannel",
    "TELEMETRY_CHANNEL",
    "PcieMsiCount",
    "PCIE_MSI_COUNT",
    "PcieMsix",
    "PCIE_MSIX",
    "PcieRegisterWindow",
    "PCIE_REGISTER_WINDOW",
    "PcieSingleMsiRouting",
    "PCIE_SINGLE_MSI_ROUTING",
    "NncCommandSet",
    "NNC_COMMAND_SET",
    "QsmBareActivateNsps",
    "QSM_BARE_ACTIVATE_NSPS",
    "QsmMinQueueSize",
    "QSM_MIN_QUEUE_SIZE",
    "NncDeactivateRefusal",
    "NNC_DEACTIVATE_REFUSAL",
    "NncMalformedRequest",
    "NNC_MALFORMED_REQUEST",
    "NncTerminatePartition",
    "NNC_TERMINATE_PARTITION",
    "NncUnknownPartition",
    "NNC_UNKNOWN_PARTITION",
    "NncVersionMinor",
    "NNC_VERSION_MINOR",
    "SsrCrashdump",
    "SSR_CRASHDUMP",
    "SsrNackRecovery",
    "SSR_NACK_RECOVERY",
    "SsrUnknownDumpDbc",
    "SSR_UNKNOWN_DUMP_DBC",
    "RasCounterSaturation",
    "RAS_COUNTER_SATURATION",
]


# -- read by mhi.py --------------------------------------------------


class MhiIpcr(Alt):
    """Alternatives of ``mhi-ipcr``."""

    ABSENT = "absent"
    PRESENT = "present"


MHI_IPCR = register(
    Policy(
        kind=MhiIpcr,
        id="mhi-ipcr",
        area="mhi",
        source="seed 003 (aic100.rst) MHI Channels; drivers/accel/qaic/mhi_controller.c "
        "aic100_channels (6.12, 7.2)",
        quote="This is a list of the defined channels, and their uses.",
        question="Does the device expose IPCR on channels 24/25 (newer upstream tables), "
        "which the document's list does not contain?",
        alternatives={
            "absent": "channels 0..23 only, as aic100.rst lists (and the mhi_controller.c read)",
            "present": "channels 24/25 IPCR (QRTR) exist in AMSS as in later upstream tables",
        },
        default="absent",
        rationale="The primary spec lists 0..21 (and the 6.12 driver 0..23); IPCR appears in "
        "later driver tables.",
        category="kernel-version",
        decision="Kernel-version behaviour: drivers/accel/qaic/mhi_controller.c aic100_channels "
        "has no IPCR in 6.12 and IPCR on 24/25 in 7.2, so which channel set the device must "
        "answer follows the driver version. Default kept at 'absent' (what the emulator's "
        "tests run against today).",
    )
)


class TelemetryChannel(Alt):
    """Alternatives of ``telemetry-channel``."""

    UNUSED = "unused"
    OUT_OF_TREE = "out-of-tree"


TELEMETRY_CHANNEL = register(
    Policy(
        kind=TelemetryChannel,
        id="telemetry-channel",
        area="mhi",
        source="seed 003 (aic100.rst) MHI Channels / Telemetry",
        quote="These items are communicated via the QAIC_TELEMETRY MHI channel.",
        question="The document advertises QAIC_TELEMETRY (16/17) for power/thermal get/set, "
        "but the mainline driver binds no client to it: is it modelled?",
        alternatives={
            "unused": "the channel exists in AMSS but no host client talks on it (mainline)",
            "out-of-tree": "the out-of-tree hwmon client's 23-byte messages are exchanged",
        },
        default="unused",
        rationale="The model follows the mainline driver; ssr-ras-boot.md §5 notes only the "
        "out-of-tree driver implements it.",
        category="modelling-limit",
        decision="Modelling limit: the device has the channel (the document says so); whether "
        "anything talks on it is the host driver's scope (mainline binds nothing), and the "
        "out-of-tree client's messages are not modelled beyond the channel.",
    )
)


# -- read by pcie.py --------------------------------------------------


class PcieMsiCount(Alt):
    """Alternatives of ``pcie-msi-count``."""

    DRIVER_17_FALLBACK_1 = "driver-17-fallback-1"
    REQUIRE_32 = "require-32"
    EXACT_32_FALLBACK_1 = "exact-32-fallback-1"


PCIE_MSI_COUNT = register(
    Policy(
        kind=PcieMsiCount,
        id="pcie-msi-count",
        area="pcie",
        source="seed 003 (aic100.rst) Hardware Description; seed 001 (KVM, Hyper-V); "
        "drivers/accel/qaic/qaic_drv.c init_msi (6.12, 7.2)",
        quote="AIC100 requires 17 MSIs to operate (1 for MHI, 16 for the DMA Bridge).",
        question="How many MSI vectors does a host (or VM) have to provide: 17 (aic100.rst), "
        "32 (the hypervisor guides: 'still requires the assignment of 32 message "
        "signal interrupts'), or does 1 suffice (the driver's fallback)?",
        alternatives={
            "driver-17-fallback-1": "the current driver: exactly 17 (MSI enables 32), on "
            "-ENOSPC one shared vector",
            "require-32": "the v6.4 driver: fewer than 32 fails the probe",
            "exact-32-fallback-1": "the intermediate driver: exactly 32, else one vector",
        },
        default="driver-17-fallback-1",
        rationale="Current mainline behaviour; 17 requested through plain MSI programs 32, which "
        "is why the VM guides ask for 32.",
        category="kernel-version",
        decision="Kernel-version behaviour: the alternatives are what drivers/accel/qaic/"
        "qaic_drv.c init_msi asks for in different versions (7.2: 17 then 1; 6.12: exactly 32 "
        "then 1; v6.4: 32 or fail), a host property, not the device's.",
    )
)


class PcieMsix(Alt):
    """Alternatives of ``pcie-msix``."""

    MSI_ONLY = "msi-only"
    MSIX_PRESENT = "msix-present"


PCIE_MSIX = register(
    Policy(
        kind=PcieMsix,
        id="pcie-msix",
        area="pcie",
        source="seed 003 (aic100.rst) Hardware Description; control-path.md §4.2",
        quote="AIC100 implements MSI but does not implement MSI-X.",
        question="The driver asks for PCI_IRQ_MSI | PCI_IRQ_MSIX: does the device expose MSI-X?",
        alternatives={
            "msi-only": "no MSI-X capability: the MSIX flag is harmless, MSI is used",
            "msix-present": "an MSI-X capability exists (a derivative may have one) and the "
            "PCI core prefers it: 17 exact vectors, no power-of-two rounding",
        },
        default="msi-only",
        rationale="The primary spec is explicit for AIC100; the doc is silent for AIC200.",
        category="modelling-limit",
        decision="Modelling limit: for AIC100 the quoted sentence decides it (no MSI-X); the "
        "other alternative is a derivative (AIC200) the model does not cover.",
    )
)


class PcieRegisterWindow(Alt):
    """Alternatives of ``pcie-register-window``."""

    DRIVER_128K = "driver-128k"
    BAR_START = "bar-start"


PCIE_REGISTER_WINDOW = register(
    Policy(
        kind=PcieRegisterWindow,
        id="pcie-register-window",
        area="pcie",
        source="seed 003 (aic100.rst) DMA Bridge; control-path.md §6 item 6",
        quote="DBC registers are exposed to the host via the second BAR. Each DBC consumes 4KB "
        "of space in the BAR.",
        question="Where in the second BAR does DBC 0 start? The document gives no base.",
        alternatives={
            "driver-128k": "BAR2 + 0x20000 + i * 0x1000 (QAIC_DBC_BASE in the driver)",
            "bar-start": "BAR2 + i * 0x1000",
        },
        default="driver-128k",
        rationale="The driver's constant is what hardware answers to.",
    )
)


class PcieSingleMsiRouting(Alt):
    """Alternatives of ``pcie-single-msi-routing``."""

    ROUTES_TO_0 = "routes-to-0"
    UNSUPPORTED = "unsupported"


PCIE_SINGLE_MSI_ROUTING = register(
    Policy(
        kind=PcieSingleMsiRouting,
        id="pcie-single-msi-routing",
        area="pcie",
        source="seed 003 (aic100.rst) Hardware Description; control-path.md §5",
        quote="AIC100 requires 17 MSIs to operate (1 for MHI, 16 for the DMA Bridge).",
        question="Does the device work with a single MSI (the driver's fallback; qaic.rst says "
        "the device routes DBC interrupts to MSI 0), which aic100.rst does not allow?",
        alternatives={
            "routes-to-0": "with one MSI enabled, every DBC interrupt is sent on vector 0",
            "unsupported": "with fewer than 17 vectors the DBCs raise no interrupt "
            "(the host must poll)",
        },
        default="routes-to-0",
        rationale="qaic.rst documents the device behaviour; the seed's 'requires' is about "
        "full performance.",
    )
)


# -- read by qsm.py --------------------------------------------------


class NncCommandSet(Alt):
    """Alternatives of ``nnc-command-set``."""

    MODEL_COMMANDS = "model-commands"
    OPAQUE = "opaque"


NNC_COMMAND_SET = register(
    Policy(
        kind=NncCommandSet,
        id="nnc-command-set",
        area="nnc",
        source="seed 003 (aic100.rst) Neural Network Control (NNC) Protocol",
        quote="Allows userspace to send an opaque payload directly to the QSM. This is used for "
        "NNC commands.",
        question="What do passthrough commands look like to QSM (their layouts are in no "
        "document the model may use)?",
        alternatives={
            "model-commands": "QSM understands the model's LOAD_ELF/UNLOAD_ELF/ACTIVATE/"
            "DEACTIVATE commands (UMD ids, model layout) and answers others "
            "with status -3",
            "opaque": "QSM answers every passthrough with status -3 (undefined request); only "
            "bare activate/status/terminate transactions have an effect",
        },
        default="model-commands",
        rationale="Loading, unloading and deactivating need a carrier and the driver has no "
        "transaction for them; the ids follow the open UMD.",
        category="modelling-limit",
        decision="Modelling limit: the passthrough payload is opaque by design; which command "
        "layouts the model's QSM understands is the model's carrier for load/unload/"
        "deactivate, not a reading of the device.",
    )
)


class QsmBareActivateNsps(Alt):
    """Alternatives of ``qsm-bare-activate-nsps``."""

    ONE = "one"
    ALL_IDLE = "all-idle"


QSM_BARE_ACTIVATE_NSPS = register(
    Policy(
        kind=QsmBareActivateNsps,
        id="qsm-bare-activate-nsps",
        area="nnc",
        source="seed 003 (aic100.rst) Transaction descriptions",
        quote="Activate a workload onto NSPs. The host must provide memory to be used by the DBC.",
        question="How many NSPs does an activate transaction without an ACTIVATE command "
        "(the scenario's activate) assign?",
        alternatives={
            "one": "one idle NSP",
            "all-idle": "every idle NSP (at least one)",
        },
        default="one",
        rationale="The smallest assignment keeps 16 concurrent workloads possible, the limit "
        "aic100.rst states.",
        category="modelling-limit",
        decision="Modelling limit: a real activation names its NSPs in the workload's own "
        "passthrough commands; the scenario's bare activate has no such carrier, so how many "
        "it takes is the model's choice, not a reading of the device.",
    )
)


class QsmMinQueueSize(Alt):
    """Alternatives of ``qsm-min-queue-size``."""

    REFUSE_1 = "refuse-1"
    ACCEPT_1 = "accept-1"


QSM_MIN_QUEUE_SIZE = register(
    Policy(
        kind=QsmMinQueueSize,
        id="qsm-min-queue-size",
        area="nnc",
        source="seed 003 (aic100.rst) DMA Bridge",
        quote="When sending a request to the QSM to activate a network, the host must donate "
        "memory to be used for the FIFOs.",
        question="Does QSM accept an activate whose FIFOs have one element (which, with one slot "
        "kept free, can never carry a request)?",
        alternatives={
            "refuse-1": "queue size 1 is refused with the parameter-error status (-6), so MANAGE "
            "returns ECANCELED",
            "accept-1": "queue size 1 is activated; every EXECUTE_BO on it then fails EAGAIN",
        },
        default="refuse-1",
        rationale="The driver accepts any size its overflow checks pass, 1 included; the UMD never "
        "asks for fewer than 2 (QDmaBridgeQueue asserts lenPow2 >= 1), so refusing is "
        "the more useful firmware answer and breaks no known user.",
    )
)


class NncDeactivateRefusal(Alt):
    """Alternatives of ``nnc-deactivate-refusal``."""

    RESP_ONLY = "resp-only"
    FROM_DEV_NONZERO = "from-dev-nonzero"


NNC_DEACTIVATE_REFUSAL = register(
    Policy(
        kind=NncDeactivateRefusal,
        id="nnc-deactivate-refusal",
        area="nnc",
        source="control-path.md §1.9; drivers/accel/qaic/qaic_control.c decode_deactivate "
        "(6.12, 7.2)",
        quote="status != 0 → re-enable the DBC for the calling user, return -ECANCELED",
        question="When QSM refuses a deactivate (not the owner, under SSR), does it also send "
        "DEACTIVATE_FROM_DEV with a non-zero status?",
        alternatives={
            "resp-only": "only the command response carries the status; no DEACTIVATE_FROM_DEV",
            "from-dev-nonzero": "DEACTIVATE_FROM_DEV with the status is sent too; the driver "
            "then re-enables the DBC for the *caller* (a stolen channel "
            "when the caller was not the owner)",
        },
        default="resp-only",
        rationale="Nothing documents the device's refusal message; 'from-dev-nonzero' exposes "
        "the driver's re-enable-for-caller hole, so the model can show it.",
    )
)


class NncMalformedRequest(Alt):
    """Alternatives of ``nnc-malformed-request``."""

    DROP = "drop"
    REPLY_EMPTY = "reply-empty"


NNC_MALFORMED_REQUEST = register(
    Policy(
        kind=NncMalformedRequest,
        id="nnc-malformed-request",
        area="nnc",
        source="seed 003 (aic100.rst) Neural Network Control (NNC) Protocol",
        quote="QSM requires NNC messages be little endian encoded and the fields be naturally "
        "aligned.",
        question="What does QSM do with a host message that breaks the framing rules or fails "
        "its CRC?",
        alternatives={
            "drop": "no reply (the host's MANAGE times out with -ETIMEDOUT)",
            "reply-empty": "a header-only reply with the same sequence number",
        },
        default="drop",
        rationale="A safety-checked channel (CRC for black channel safing) discards corrupt "
        "frames; the driver's timeout covers it.",
    )
)


class NncTerminatePartition(Alt):
    """Alternatives of ``nnc-terminate-partition``."""

    ANY_PARTITION = "any-partition"
    PARTITION_0 = "partition-0"


NNC_TERMINATE_PARTITION = register(
    Policy(
        kind=NncTerminatePartition,
        id="nnc-terminate-partition",
        area="nnc",
        source="control-path.md §1.1 partition_id; drivers/accel/qaic/qaic_control.c "
        "qaic_release_usr (6.12, 7.2)",
        quote="The terminate message leaves it at 0, because the buffer is zero-allocated and "
        "the field is never set.",
        question="Terminate carries partition_id 0 while users send -1: which resources does "
        "QSM release?",
        alternatives={
            "any-partition": "every resource of the handle, whatever its partition",
            "partition-0": "only resources of (partition 0, handle): a user of partition -1 "
            "keeps its channels after close (a leak)",
        },
        default="any-partition",
        rationale="The driver relies on terminate releasing the user's resources; 0 is an "
        "accident of kzalloc.",
    )
)


class NncUnknownPartition(Alt):
    """Alternatives of ``nnc-unknown-partition``."""

    REFUSE = "refuse"
    IGNORE_PARTITION = "ignore-partition"


NNC_UNKNOWN_PARTITION = register(
    Policy(
        kind=NncUnknownPartition,
        id="nnc-unknown-partition",
        area="nnc",
        source="seed 003 (aic100.rst) Transaction descriptions",
        quote="A partition id identifies the resource partition that QSM manages, which this "
        "message applies to.",
        question="What does QSM do with a message from a partition it does not manage?",
        alternatives={
            "refuse": "every transaction is refused with status -11",
            "ignore-partition": "the partition id is ignored",
        },
        default="refuse",
        rationale="Partitions isolate resources; accepting an unknown one would let a message "
        "escape its partition.",
    )
)


# -- read by nnc.py --------------------------------------------------


class NncVersionMinor(Alt):
    """Alternatives of ``nnc-version-minor``."""

    EXACT_5_0 = "exact-5.0"
    ANY_MINOR = "any-minor"


NNC_VERSION_MINOR = register(
    Policy(
        kind=NncVersionMinor,
        id="nnc-version-minor",
        area="nnc",
        source="seed 003 (aic100.rst) Transaction descriptions; control-path.md §1.7; "
        "drivers/accel/qaic/qaic_drv.c qaic_mhi_probe (6.12, 7.2)",
        quote="Query the QSM about it's NNC implementation. Returns the NNC version, and if CRC "
        "is used.",
        question="Which QSM versions bring the device ONLINE? qaic.rst says minor bumps do not "
        "affect the driver; the code accepts major 5 with minor <= 0 only.",
        alternatives={
            "exact-5.0": "only 5.0 (the driver's check: major == 5 and minor <= 0)",
            "any-minor": "5.x for any minor (qaic.rst's versioning statement)",
        },
        default="exact-5.0",
        rationale="The model is an oracle for the driver as written.",
        category="driver-bug",
        decision="Known driver bug, not a device ambiguity: the device reports one version; "
        "drivers/accel/qaic/qaic_drv.c qaic_mhi_probe (6.12, 7.2) accepts only minor <= "
        "CNTL_MINOR (0) although qaic.rst says minor bumps do not affect the driver. Both "
        "alternatives are host behaviours.",
    )
)


# -- read by ssr.py --------------------------------------------------


class SsrCrashdump(Alt):
    """Alternatives of ``ssr-crashdump``."""

    OFFER = "offer"
    NONE = "none"


SSR_CRASHDUMP = register(
    Policy(
        kind=SsrCrashdump,
        id="ssr-crashdump",
        area="ssr",
        source="seed 003 (aic100.rst) Subsystem Restart (SSR); ssr-ras-boot.md §1.9",
        quote="A multi-stage recovery process is then used to cleanup both sides, and get the "
        "DBC/NSPs into a working state.",
        question="Does the device offer a crashdump (DEBUG_TRANSFER_INFO) in BEFORE_POWER_UP?",
        alternatives={
            "offer": "the device offers its dump table after the BEFORE_POWER_UP ack",
            "none": "no crashdump is offered; BEFORE_POWER_UP is followed by AFTER_POWER_UP",
        },
        default="none",
        rationale="The dump is optional in the driver (qaic_ssr.c accepts its absence); the "
        "shorter sequence is the common case. Tests run both.",
    )
)


class SsrNackRecovery(Alt):
    """Alternatives of ``ssr-nack-recovery``."""

    RESEND = "resend"
    GIVE_UP = "give-up"


SSR_NACK_RECOVERY = register(
    Policy(
        kind=SsrNackRecovery,
        id="ssr-nack-recovery",
        area="ssr",
        source="ssr-ras-boot.md §1.8; drivers/accel/qaic/qaic_ssr.c ssr_worker (7.2)",
        quote="if a dump is still in progress: free it and NACK (state unchanged, ssr_dbc not "
        "cleared)",
        question="What does the device do after the host NACKs AFTER_POWER_UP?",
        alternatives={
            "resend": "the device sends AFTER_POWER_UP again; the host then completes",
            "give-up": "the device considers the SSR over; the host keeps ssr_dbc set until reset",
        },
        default="resend",
        rationale="Nothing documents the device's reaction; resending lets both sides agree "
        "again, 'give-up' is the pessimistic case.",
    )
)


class SsrUnknownDumpDbc(Alt):
    """Alternatives of ``ssr-unknown-dump-dbc`` (one left: settled)."""

    ECHO = "echo"


SSR_UNKNOWN_DUMP_DBC = register(
    Policy(
        kind=SsrUnknownDumpDbc,
        id="ssr-unknown-dump-dbc",
        area="ssr",
        source="ssr-ras-boot.md §1.9; drivers/accel/qaic/qaic_ssr.c ssr_dump_worker (7.2)",
        quote="must have dbc_id == ssr_dbc (else SoC reset)",
        question="Does the device name the crashed DBC in MEMORY_READ_RSP or echo the request's?",
        alternatives={
            "echo": "MEMORY_READ_RSP carries the dbc_id of the MEMORY_READ",
        },
        default="echo",
        rationale="The host compares against ssr_dbc, which it put in the request; echoing "
        "is the only reading under which the dump ever succeeds for D != 0.",
        category="settled",
        decision="Settled: 'zero' (the response names DBC 0 whatever was asked) was removed "
        "with its code path: no document suggests it and it would make every crashdump of a "
        "DBC other than 0 reset the SoC (issue #13 item 3).",
    )
)


# -- read by ras.py --------------------------------------------------


class RasCounterSaturation(Alt):
    """Alternatives of ``ras-counter-saturation``."""

    DRIVER = "driver"
    OWN_COUNTER = "own-counter"


RAS_COUNTER_SATURATION = register(
    Policy(
        kind=RasCounterSaturation,
        id="ras-counter-saturation",
        area="ras",
        source="ssr-ras-boot.md §2.4; drivers/accel/qaic/qaic_ras.c decode_ras_msg (7.2)",
        quote="Bug: the UE and UE_NF branches test ce_count != UINT_MAX instead of their own "
        "counter.",
        question="Which counter guards the saturation of ue_count and ue_nonfatal_count?",
        alternatives={
            "driver": "as the driver ssr-ras-boot.md read: UE/UE_NF stop counting only when "
            "ce_count is UINT_MAX",
            "own-counter": "each counter saturates on its own value (7.2)",
        },
        default="own-counter",
        rationale="7.2 (the model's upstream) guards each counter by itself; the older reading "
        "is kept so traces of that driver can be checked.",
        category="kernel-version",
        decision="Kernel-version behaviour, not a device ambiguity: the counters are the "
        "host's. drivers/accel/qaic/qaic_ras.c decode_ras_msg in 7.2 tests each counter "
        "against UINT_MAX (the bug ssr-ras-boot.md §2.4 describes is not in it) and 6.12 has "
        "no RAS counters; the default moved from 'driver' to 'own-counter' to match 7.2.",
    )
)
