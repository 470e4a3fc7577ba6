"""Device choices the model used to make silently, found going through aic100.rst sentence by
sentence (docs/traceability.md, issue #13 item 2).

Each default is what the model did before the choice was named, so naming it changed
nothing.  Two kinds, both registered:

* device ambiguities with every alternative modelled (a device built with the other
  alternative really behaves so): ``bar2-unmapped-read``, ``req-tp-overrun``,
  ``rsp-hp-overread``, ``sem-at-activate`` (read in ``qaicmodel/spec/dbc/device.py``),
  ``dma-zero-length``, ``reserved-bits-device``, ``after-dma-fault``,
  ``error-without-completion`` (``qaicmodel/spec/dbc/engine.py``), ``bar4-contents``,
  ``narrow-register-write`` (``qaicmodel/emu/board.py``);
* :data:`UNMODELLED`: open points whose other reading the model cannot run yet (it would
  take more than a local change).  They are registered as ``modelling-limit`` entries with
  the one reading the model runs; the other reading is in their ``decision``, and
  ``--policy ID=OTHER`` is refused (never run as the default in disguise).
"""

from __future__ import annotations

from typing import Any

from qaicmodel.spec.policies._base import SEED, Alt, Policy, register

__all__ = [
    "Bar2UnmappedRead",
    "BAR2_UNMAPPED_READ",
    "ReqTpOverrun",
    "REQ_TP_OVERRUN",
    "RspHpOverread",
    "RSP_HP_OVERREAD",
    "SemAtActivate",
    "SEM_AT_ACTIVATE",
    "DmaZeroLength",
    "DMA_ZERO_LENGTH",
    "ReservedBitsDevice",
    "RESERVED_BITS_DEVICE",
    "AfterDmaFault",
    "AFTER_DMA_FAULT",
    "ErrorWithoutCompletion",
    "ERROR_WITHOUT_COMPLETION",
    "BAR4_CONTENTS",
    "NARROW_REGISTER_WRITE",
    "SILENT",
    "UNMODELLED",
]

_AREA = "dma-bridge-silent"
_DB = f"{SEED} DMA Bridge"
_REQ = f"{SEED} Request FIFO"
_NOT = "The other reading is not modelled: "


class Bar2UnmappedRead(Alt):
    """Alternatives of ``bar2-unmapped-read``."""

    ZERO = "zero"
    ALL_ONES = "all-ones"


BAR2_UNMAPPED_READ = register(
    Policy(
        kind=Bar2UnmappedRead,
        id="bar2-unmapped-read",
        area=_AREA,
        source=_DB,
        quote="Each DBC consumes 4KB of space in the BAR.",
        question="What does a host read of a BAR2 offset that is no DBC register return (the "
        "rest of a DBC's 4 KiB block, or the BAR below the first DBC)?",
        alternatives={
            "zero": "0 (the read is recorded as HOST-BAR-UNMAPPED)",
            "all-ones": "0xFFFFFFFF, as an unclaimed PCIe read completes (HOST-BAR-UNMAPPED too)",
        },
        default="zero",
        rationale="The document names only the four registers of each block; the model "
        "returned 0 before the choice was named, and the driver never reads elsewhere.",
    )
)


class ReqTpOverrun(Alt):
    """Alternatives of ``req-tp-overrun``."""

    ACCEPTED = "accepted"
    IGNORED = "ignored"


REQ_TP_OVERRUN = register(
    Policy(
        kind=ReqTpOverrun,
        id="req-tp-overrun",
        area=_AREA,
        source=_DB,
        quote="Host increments this register to add new items to the FIFO.",
        question="A REQ_TP write that adds more elements than the ring has free (an overrun, "
        "HOST-REQ-OVERRUN): does the device take the new tail or keep the old one?",
        alternatives={
            "accepted": "the device takes the new REQ_TP and counts modulo the ring: "
            "unconsumed requests are overwritten",
            "ignored": "the device keeps the old REQ_TP: the write has no effect",
        },
        default="accepted",
        rationale="A register is a register: hardware that does not check takes the value; "
        "the model did so before the choice was named.  Both are host bugs "
        "(7.2 qaic_data.c fifo_space_avail keeps the driver from it).",
    )
)


class RspHpOverread(Alt):
    """Alternatives of ``rsp-hp-overread``."""

    ACCEPTED = "accepted"
    IGNORED = "ignored"


RSP_HP_OVERREAD = register(
    Policy(
        kind=RspHpOverread,
        id="rsp-hp-overread",
        area=_AREA,
        source=_DB,
        quote="Indicates the latest item in the FIFO the host has consumed.",
        question="An RSP_HP write that frees more responses than the device wrote "
        "(HOST-RSP-OVERREAD): does the device take the new head or keep the old one?",
        alternatives={
            "accepted": "the device takes the new RSP_HP (its count wraps)",
            "ignored": "the device keeps the old RSP_HP: the write has no effect",
        },
        default="accepted",
        rationale="As for req-tp-overrun: an unchecked register takes the value, which the "
        "model did before the choice was named.",
    )
)


class SemAtActivate(Alt):
    """Alternatives of ``sem-at-activate``."""

    ZERO = "zero"
    KEPT = "kept"


SEM_AT_ACTIVATE = register(
    Policy(
        kind=SemAtActivate,
        id="sem-at-activate",
        area=_AREA,
        source=_DB,
        quote="As part of activating a workload to run on NSPs, the QSM assigns that network "
        "a DMA Bridge channel.",
        question="What values do a channel's 32 semaphores have when it is activated: 0, or "
        "what they held when the channel was last released (a SoC reset clears them)?",
        alternatives={
            "zero": "all 0 at every activation",
            "kept": "the values at the channel's last deactivation (0 after a SoC reset)",
        },
        default="zero",
        rationale="The document never says who clears the semaphores; the model zeroed them "
        "at activation before the choice was named.  The open compiler's protocol "
        "initialises the ones it uses (userspace.md §8), so a conforming workload "
        "does not depend on it.",
    )
)


class DmaZeroLength(Alt):
    """Alternatives of ``dma-zero-length``."""

    NOTHING = "nothing"
    FOUR_GIB = "4g"


DMA_ZERO_LENGTH = register(
    Policy(
        kind=DmaZeroLength,
        id="dma-zero-length",
        area=_AREA,
        source=_REQ,
        quote="length of the bulk transfer. Note that the size of this field limits transfers "
        "to 4G in size.",
        question="A transfer (direction 1 or 2) with pcie_dma_len 0: no bytes, or 4 GiB (a "
        "32-bit length field that reaches 4G only if 0 encodes 2^32)?",
        alternatives={
            "nothing": "no bytes move; the request goes on to its postsync step",
            "4g": "0 means 2^32 bytes: the transfer runs past any mapped host buffer and "
            "faults (policy dma-fault decides what moves; a non-zero completion code)",
        },
        default="nothing",
        rationale="A u32 holds at most 4G - 1; the model moved nothing before the choice was "
        "named.  The driver sends a zero-size slice as direction 0, no transfer "
        "(7.2 qaic_data.c qaic_map_one_slice no_xfer, encode_reqs), so it never "
        "depends on this.",
    )
)


class ReservedBitsDevice(Alt):
    """Alternatives of ``reserved-bits-device``."""

    IGNORED = "ignored"
    ERROR = "error"


RESERVED_BITS_DEVICE = register(
    Policy(
        kind=ReservedBitsDevice,
        id="reserved-bits-device",
        area=_AREA,
        source=_REQ,
        quote="Bits(6:5) are reserved.",
        question="A request element with reserved bits set (RESERVED-BITS-SET: pcie_dma_cmd "
        "bits 6:5 and 2, doorbell_attr bits 6:2, the reserved words, sem_cmd bits 28:27, "
        "23, 21, 15:12): processed as if they were clear, or failed?",
        alternatives={
            "ignored": "processed as if the bits were clear (the host violation is recorded)",
            "error": "the request does nothing (no semaphore, DMA or doorbell step) and "
            "completes with a non-zero code (CC_RESERVED_BITS), a response if bit 4 asks",
        },
        default="ignored",
        rationale="Reserved bits are conventionally ignored by hardware, and the model "
        "ignored them before the choice was named; the driver's requests are "
        "zero-allocated (7.2 qaic_data.c qaic_map_one_slice, kvzalloc) and never set them.",
    )
)


class AfterDmaFault(Alt):
    """Alternatives of ``after-dma-fault``."""

    CONTINUE = "continue"
    SKIP = "skip"


AFTER_DMA_FAULT = register(
    Policy(
        kind=AfterDmaFault,
        id="after-dma-fault",
        area=_AREA,
        source=_REQ,
        quote="Overall, a request is processed in 4 steps",
        question="After a transfer that faulted (policy dma-fault): does the request go on to "
        "its postsync semaphore step and its doorbell, or straight to its response?",
        alternatives={
            "continue": "postsync and doorbell run as for a good transfer; the completion "
            "code says the transfer failed",
            "skip": "no postsync step and no doorbell: the workload is not told the data "
            "arrived; only the (error) response follows",
        },
        default="continue",
        rationale="The four steps are listed without an error path; the model ran them all "
        "before the choice was named.  The driver only reads the completion code "
        "(7.2 qaic_data.c dbc_irq_threaded_fn).",
    )
)


class ErrorWithoutCompletion(Alt):
    """Alternatives of ``error-without-completion``."""

    SILENT = "silent"
    RESPOND = "respond"


ERROR_WITHOUT_COMPLETION = register(
    Policy(
        kind=ErrorWithoutCompletion,
        id="error-without-completion",
        area=_AREA,
        source=f"{SEED} Response FIFO",
        quote="Once a request is fully processed, a response FIFO element is generated if "
        "specified in pcie_dma_cmd.",
        question="A request that fails (a DMA fault, a bad doorbell, a reserved semaphore "
        "command, several presyncs, reserved bits, a linked list) without bit 4 set: no "
        "response, or an error response anyway?  (An illegal direction has its own "
        "policy, illegal-direction.)",
        alternatives={
            "silent": "no response: bit 4 alone decides",
            "respond": "an error response is written whatever bit 4 says",
        },
        default="silent",
        rationale="The sentence makes bit 4 the only condition; the model followed it for "
        "every error but an illegal direction before the choice was named.",
    )
)


BAR4_CONTENTS: Policy[Any] = register(
    Policy(
        id="bar4-contents",
        area="pcie",
        source=f"{SEED} Hardware Description",
        quote="The third BAR is variable in size based on an individual AIC100's "
        "configuration, but defaults to 64K. This BAR currently has no purpose.",
        question="What do host accesses to the third BAR (BAR4) do on the virtual board?",
        alternatives={
            "storage": "plain memory: a read returns what was last written (emu board B1)",
            "inert": "reads return 0 and writes are dropped",
        },
        default="storage",
        rationale="The document gives it no purpose; the virtual board stored writes before "
        "the choice was named.  The driver maps only the MHI and DBC BARs (7.2 "
        "qaic_drv.c init_pci), so no driver run can tell the two apart.",
    )
)

NARROW_REGISTER_WRITE: Policy[Any] = register(
    Policy(
        id="narrow-register-write",
        area="pcie",
        source=f"{SEED} DMA Bridge",
        quote="Each DBC contains 4 registers in hardware:",
        question="A 1- or 2-byte host write inside a 32-bit register (PCI-ACCESS-WIDTH): "
        "dropped, or merged into the register's other bytes?",
        alternatives={
            "dropped": "the write has no effect (emu board B3)",
            "merged": "the device reads the register, replaces the written byte lanes and "
            "writes the 32-bit result (a read-modify-write)",
        },
        default="dropped",
        rationale="The registers are 32-bit; the virtual board dropped narrow writes before the "
        "choice was named.  The driver only uses readl/writel (7.2 qaic_data.c), so it "
        "never depends on this.",
    )
)

#: the wired silent choices, in the order above
SILENT: tuple[Policy[Any], ...] = (
    BAR2_UNMAPPED_READ,
    REQ_TP_OVERRUN,
    RSP_HP_OVERREAD,
    SEM_AT_ACTIVATE,
    DMA_ZERO_LENGTH,
    RESERVED_BITS_DEVICE,
    AFTER_DMA_FAULT,
    ERROR_WITHOUT_COMPLETION,
    BAR4_CONTENTS,
    NARROW_REGISTER_WRITE,
)


def _limit(
    pid: str,
    area: str,
    source: str,
    quote: str,
    question: str,
    alt: tuple[str, str],
    other: str,
    rationale: str,
) -> Policy[Any]:
    return register(
        Policy(
            id=pid,
            area=area,
            source=source,
            quote=quote,
            question=question,
            alternatives={alt[0]: alt[1]},
            default=alt[0],
            rationale=rationale,
            category="modelling-limit",
            decision=_NOT + other,
        )
    )


#: Silent choices whose other reading is not modelled (registered as modelling limits).
UNMODELLED: tuple[Policy[Any], ...] = (
    _limit(
        "device-reg-write",
        _AREA,
        _DB,
        "Read only by the host.",
        "A host write to REQ_HP or RSP_TP (HOST-WRITE-DEVICE-REG): ignored, or does the "
        "register take the value?",
        ("ignored", "the write has no effect"),
        "'takes-effect' (the device's own index moves) -- the ring counts and the "
        "checker's state sets assume a device-owned index only moves forward.",
        "Read-only registers ignore writes on most hardware.",
    ),
    _limit(
        "activate-indexes",
        _AREA,
        _DB,
        "As part of activating a workload to run on NSPs, the QSM assigns that network "
        "a DMA Bridge channel.",
        "Where do a channel's four indexes start when it is activated: 0, or where the "
        "previous activation left them?",
        ("zero", "all four read 0 after activation"),
        "'kept' (the previous values, rings empty) -- the checker's state sets and the "
        "model's hosts start a channel at 0.",
        "The driver reads REQ_HP and REQ_TP before every submission (7.2 qaic_data.c "
        "__qaic_execute_bo_ioctl), so it may cope with either.",
    ),
    _limit(
        "req-hp-advance",
        _AREA,
        _DB,
        "Indicates the latest item in the FIFO the device has consumed.",
        "When has the device 'consumed' a request: when it fetches the element (and the "
        "host may reuse the slot), or when the request is fully processed?",
        (
            "at-fetch",
            "REQ_HP passes an element when the device reads it; the device works from its copy",
        ),
        "'at-completion' (REQ_HP held at the oldest unfinished request, the slot "
        "reserved until then) -- the device, the checker's counters and the hosts' "
        "free-space rule would all change.",
        "The driver frees request slots by REQ_HP alone (7.2 qaic_data.c "
        "fifo_space_avail), which works under either reading.",
    ),
    _limit(
        "deactivate-in-flight",
        _AREA,
        f"{SEED} Neural Network Control (NNC) Protocol",
        "Deactivate an active workload and return the NSPs to idle.",
        "Requests consumed but not finished when the channel is deactivated: dropped, or "
        "finished first?",
        ("dropped", "in-flight work is dropped at once (Device.deactivate)"),
        "'drained' (the consumed requests finish their DMA, doorbell and response before "
        "the channel goes inactive) -- deactivation is one step of the model.",
        "SSR loses in-flight inputs (the document says so); a deactivate is modelled the same way.",
    ),
    _limit(
        "ssr-completed-responses",
        "ssr",
        f"{SEED} Subsystem Restart (SSR)",
        "Any inputs that were in process, or queued by not yet serviced, are lost.",
        "Responses the device had already written when the workload crashed: lost with the "
        "channel, or readable until the host releases it?",
        ("lost", "the channel is deactivated at the crash (qsm.py Q8)"),
        "'kept' (written responses stay readable until BEFORE_SHUTDOWN) -- the QSM "
        "deactivates the channel at the crash.",
        "The document only says inputs are lost; the driver releases the channel at "
        "BEFORE_SHUTDOWN (7.2 qaic_ssr.c ssr_worker -> qaic_data.c qaic_dbc_enter_ssr).",
    ),
    _limit(
        "loopback-no-buffer",
        "mhi",
        f"{SEED} MHI Channels",
        "Any data sent to the device on this channel is sent back to the host.",
        "Data sent on channel 0 while the host has no receive buffer queued on channel 1: "
        "held until one is queued, or dropped?",
        ("held", "the echo waits, in order (mhi.py Loopback; emu services C2)"),
        "'dropped' (the device drops what it cannot echo at once) -- the emulator's MHI "
        "outbox always waits for a buffer.",
        "MHI transfers wait for ring space; no in-tree client uses the loopback channel.",
    ),
)
