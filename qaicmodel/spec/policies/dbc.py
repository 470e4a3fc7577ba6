"""DMA Bridge policies (seed 003, sections "DMA Bridge", "Request FIFO", "Response FIFO").

Quotes are verbatim from the seed.  Each policy is an :class:`Alt` enum (its
alternatives) and a :class:`Policy` constant; the device reads them in
``qaicmodel/spec/dbc/`` (device.py, engine.py, intc.py).
"""

from __future__ import annotations

import attrs

from qaicmodel.spec.policies._base import SEED, Alt, Policies, Policy, register

__all__ = [
    "DbcChoice",
    "RingFullRule",
    "RING_FULL_RULE",
    "SemIncAmount",
    "SEM_INC_AMOUNT",
    "SemOverflow",
    "SEM_OVERFLOW",
    "SemUnderflow",
    "SEM_UNDERFLOW",
    "SemPDecrements",
    "SEM_P_DECREMENTS",
    "SemEnableBit",
    "SEM_ENABLE_BIT",
    "FenceWithoutEnable",
    "FENCE_WITHOUT_ENABLE",
    "FenceScope",
    "FENCE_SCOPE",
    "PresyncMultiple",
    "PRESYNC_MULTIPLE",
    "ProcessingOrder",
    "PROCESSING_ORDER",
    "ResponseOrder",
    "RESPONSE_ORDER",
    "IllegalDirection",
    "ILLEGAL_DIRECTION",
    "DoorbellReservedLen",
    "DOORBELL_RESERVED_LEN",
    "DoorbellMisaligned",
    "DOORBELL_MISALIGNED",
    "LinkedList",
    "LINKED_LIST",
    "MsiWhileMasked",
    "MSI_WHILE_MASKED",
    "ForceMsi",
    "FORCE_MSI",
    "MsiEmptyTransition",
    "MSI_EMPTY_TRANSITION",
    "ResponseRingFull",
    "RESPONSE_RING_FULL",
    "TailOutOfRange",
    "TAIL_OUT_OF_RANGE",
    "OnDmaFault",
    "DMA_FAULT",
    "DoorbellDataWidth",
    "DOORBELL_DATA_WIDTH",
    "SemReservedCmd",
    "SEM_RESERVED_CMD",
    "CompletionCodeValues",
    "COMPLETION_CODE_VALUES",
    "InactiveDbcRegs",
    "INACTIVE_DBC_REGS",
    "PresyncNonWait",
    "PRESYNC_NON_WAIT",
    "HeadIndexMeaning",
    "HEAD_INDEX_MEANING",
]

_DB = "dma-bridge"


class RingFullRule(Alt):
    """Alternatives of ``ring-full-rule``."""

    KEEP_ONE_FREE = "keep-one-free"
    ALL_SLOTS = "all-slots"


RING_FULL_RULE = register(
    Policy(
        kind=RingFullRule,
        id="ring-full-rule",
        area=_DB,
        source=f"{SEED} DMA Bridge",
        quote="The values in each register are indexes in the FIFO.",
        question="Is one FIFO slot always kept free, so that head == tail means empty?",
        alternatives={
            "keep-one-free": "a ring of n slots holds at most n-1 elements; head == tail is empty",
            "all-slots": "the device counts elements, so n may be in flight and head == tail "
            "after a full ring is 'full' to the device (the host cannot tell)",
        },
        default="keep-one-free",
        rationale="qaic_data.c fifo_space_avail keeps one slot free; the UMD's QDmaBridgeQueue "
        "has capacity len-1.",
    )
)


class SemIncAmount(Alt):
    """Alternatives of ``sem-inc-amount``."""

    BY_ONE = "by-one"
    BY_VALUE = "by-value"


SEM_INC_AMOUNT = register(
    Policy(
        kind=SemIncAmount,
        id="sem-inc-amount",
        area=_DB,
        source=f"{SEED} Request FIFO, sem_cmd",
        quote="2 is increment. 3 is decrement. ... Bits(11:0) are the semaphore value to use in "
        "operations.",
        question="Does increment/decrement change the semaphore by 1 or by the value field?",
        alternatives={
            "by-one": "increment and decrement change the semaphore by 1; the value is unused",
            "by-value": "increment and decrement add/subtract the 12-bit value field",
        },
        default="by-one",
        rationale="The open compiler's NSP runtime uses os_hostsem_inc/dec as unit steps; the "
        "driver never sends INC/DEC itself.",
    )
)


class SemOverflow(Alt):
    """Alternatives of ``sem-overflow``."""

    SATURATE = "saturate"
    WRAP = "wrap"


SEM_OVERFLOW = register(
    Policy(
        kind=SemOverflow,
        id="sem-overflow",
        area=_DB,
        source=f"{SEED} Request FIFO, sem_cmd",
        quote="Bits(11:0) are the semaphore value to use in operations.",
        question="What happens when an increment takes a semaphore past 4095 (12 bits)?",
        alternatives={
            "saturate": "the value stays at 4095",
            "wrap": "the value wraps modulo 4096",
        },
        default="saturate",
        rationale="The documents are silent; saturation keeps the value in range without "
        "making a waiting request pass spuriously. Nothing in the driver relies on it.",
    )
)


class SemUnderflow(Alt):
    """Alternatives of ``sem-underflow``."""

    SATURATE = "saturate"
    WRAP = "wrap"
    BLOCK = "block"


SEM_UNDERFLOW = register(
    Policy(
        kind=SemUnderflow,
        id="sem-underflow",
        area=_DB,
        source=f"{SEED} Request FIFO, sem_cmd",
        quote="3 is decrement.",
        question="What happens when a decrement takes a semaphore below 0?",
        alternatives={
            "saturate": "the value stays at 0",
            "wrap": "the value wraps to 4095",
            "block": "the decrement waits until the value is greater than 0 (like P)",
        },
        default="saturate",
        rationale="Silent in every document; the driver never decrements.",
    )
)


class SemPDecrements(Alt):
    """Alternatives of ``sem-p-decrements``."""

    DECREMENT = "decrement"
    WAIT_ONLY = "wait-only"


SEM_P_DECREMENTS = register(
    Policy(
        kind=SemPDecrements,
        id="sem-p-decrements",
        area=_DB,
        source=f"{SEED} Request FIFO, sem_cmd",
        quote='6 is "P", wait until semaphore is greater than 0, then decrement by 1.',
        question="Does command 6 decrement after the wait (aic100.rst) or only wait (uapi "
        "comment QAIC_SEM_WAIT_GT_0 'greater than 0')?",
        alternatives={
            "decrement": "wait until > 0, then decrement by 1",
            "wait-only": "wait until > 0, the value is unchanged",
        },
        default="decrement",
        rationale="aic100.rst and the UMD's AICMetadata.h both say P decrements; only the uapi "
        "comment is shorter.",
    )
)


class SemEnableBit(Alt):
    """Alternatives of ``sem-enable-bit``."""

    ENABLE_GATES = "enable-gates"
    COMMAND_GATES = "command-gates"


SEM_ENABLE_BIT = register(
    Policy(
        kind=SemEnableBit,
        id="sem-enable-bit",
        area=_DB,
        source=f"{SEED} Request FIFO, sem_cmd",
        quote="Bit(31) indicates this semaphore command is enabled.",
        question="What does a non-NOP command with the enable bit clear do (and NOP with it set)?",
        alternatives={
            "enable-gates": "a command runs only when bit 31 is set; NOP with bit 31 does nothing",
            "command-gates": "a command runs whenever bits 26:24 are non-zero, bit 31 ignored",
        },
        default="enable-gates",
        rationale="The driver sets bit 31 exactly when cmd != 0, so both readings agree on "
        "driver-built elements; 'enabled' reads most naturally as a gate.",
    )
)


class FenceWithoutEnable(Alt):
    """Alternatives of ``fence-without-enable``."""

    HONOURED = "honoured"
    NEEDS_ENABLE = "needs-enable"


FENCE_WITHOUT_ENABLE = register(
    Policy(
        kind=FenceWithoutEnable,
        id="fence-without-enable",
        area=_DB,
        source=f"{SEED} Request FIFO, sem_cmd",
        quote="Bit(30) is the to-device DMA fence. Block this request until all to-device DMA "
        "transfers are complete.",
        question="Do the fence bits act when the semaphore command's enable bit is clear?",
        alternatives={
            "honoured": "fence bits act regardless of bit 31",
            "needs-enable": "fence bits act only in an enabled semaphore command",
        },
        default="honoured",
        rationale="qaic_data.c adds an automatic fence to sem_cmd0 of a multi-element slice "
        "without presync; when that slice has no sem0 command the word has the fence "
        "bit but not the enable bit, so the driver relies on 'honoured'.",
    )
)


class FenceScope(Alt):
    """Alternatives of ``fence-scope``."""

    EARLIER_BEFORE_PRESYNC = "earlier-before-presync"
    EARLIER_BEFORE_DMA = "earlier-before-dma"
    ALL_OUTSTANDING = "all-outstanding"


FENCE_SCOPE = register(
    Policy(
        kind=FenceScope,
        id="fence-scope",
        area=_DB,
        source=f"{SEED} Request FIFO, sem_cmd",
        quote="Block this request until all to-device DMA transfers are complete.",
        question="Which transfers does a fence wait for, and at which step does it act?",
        alternatives={
            "earlier-before-presync": "waits for every transfer of the same direction consumed "
            "earlier on this channel; acts before the presync step",
            "earlier-before-dma": "the same transfers, but acts after presync, before the DMA",
            "all-outstanding": "waits until no transfer of that direction is outstanding on "
            "the channel at all (including ones consumed later)",
        },
        default="earlier-before-presync",
        rationale="The UMD's AICMetadata.h gives the hardware order: sync fence, pre-semaphores, "
        "transfer, post-semaphores, doorbells; 'all ... transfers' most plausibly "
        "means those queued before this request.",
    )
)


class PresyncMultiple(Alt):
    """Alternatives of ``presync-multiple``."""

    ERROR = "error"
    ALL_GATE = "all-gate"
    FIRST_ONLY = "first-only"


PRESYNC_MULTIPLE = register(
    Policy(
        kind=PresyncMultiple,
        id="presync-multiple",
        area=_DB,
        source=f"{SEED} Request FIFO, sem_cmd",
        quote="Only one presync is allowed per request.",
        question="What does the device do with a request that has more than one presync?",
        alternatives={
            "error": "no transfer, no semaphore op, no doorbell; a response with an error code "
            "if a completion was requested",
            "all-gate": "every presync condition must hold before the transfer",
            "first-only": "only the first presync command gates; the others are ignored",
        },
        default="error",
        rationale="The driver never sends one (attach_slice returns -EINVAL); 'not allowed' "
        "reads as an error.",
    )
)


class ProcessingOrder(Alt):
    """Alternatives of ``processing-order``."""

    RULE_PERMITTED = "rule-permitted"
    FIFO = "fifo"


PROCESSING_ORDER = register(
    Policy(
        kind=ProcessingOrder,
        id="processing-order",
        area=_DB,
        source=f"{SEED} Request FIFO; userspace.md §7 (AICMetadata.h)",
        quote="Overall, a request is processed in 4 steps",
        question="May requests of one channel overtake each other?",
        alternatives={
            "rule-permitted": "requests that share no semaphore index and carry no fence may "
            "proceed in any order; requests sharing a semaphore keep FIFO order",
            "fifo": "one request at a time, in FIFO order",
        },
        default="rule-permitted",
        rationale="The UMD's metadata says requests using different semaphores and no fences may "
        "be processed in any order; the driver's fence comment relies on same-presync "
        "requests staying in order.",
    )
)


class ResponseOrder(Alt):
    """Alternatives of ``response-order``."""

    COMPLETION_ORDER = "completion-order"
    REQUEST_ORDER = "request-order"


RESPONSE_ORDER = register(
    Policy(
        kind=ResponseOrder,
        id="response-order",
        area=_DB,
        source=f"{SEED} Response FIFO",
        quote="Once a request is fully processed, a response FIFO element is generated if "
        "specified in pcie_dma_cmd.",
        question="Are responses written in completion order or in request order?",
        alternatives={
            "completion-order": "a response is written when its request finishes",
            "request-order": "responses are written in the order the requests were consumed",
        },
        default="completion-order",
        rationale="The driver matches responses to BOs by req_id and never assumes an order.",
    )
)


class IllegalDirection(Alt):
    """Alternatives of ``illegal-direction``."""

    ERROR_IF_REQUESTED = "error-if-requested"
    ERROR_ALWAYS = "error-always"
    AS_NONE = "as-none"


ILLEGAL_DIRECTION = register(
    Policy(
        kind=IllegalDirection,
        id="illegal-direction",
        area=_DB,
        source=f"{SEED} Request FIFO, pcie_dma_cmd",
        quote="Bits(1:0) indicate the type of transfer. No transfer(0), to device(1), from "
        "device(2). Value 3 is illegal.",
        question="What happens to a request whose transfer type is 3?",
        alternatives={
            "error-if-requested": "no transfer, nothing else; an error response only if the "
            "completion bit is set",
            "error-always": "no transfer; an error response whether or not the completion bit "
            "is set",
            "as-none": "treated as no transfer; the rest of the request runs normally",
        },
        default="error-if-requested",
        rationale="The driver only ever sends 1 or 2; a response without the completion bit "
        "would be unexpected by a host.",
    )
)


class DoorbellReservedLen(Alt):
    """Alternatives of ``doorbell-reserved-len``."""

    SKIP_ERROR = "skip-error"
    AS_32 = "as-32"


DOORBELL_RESERVED_LEN = register(
    Policy(
        kind=DoorbellReservedLen,
        id="doorbell-reserved-len",
        area=_DB,
        source=f"{SEED} Request FIFO, doorbell_attr",
        quote="0 is 32-bit, 1 is 16-bit, 2 is 8-bit, 3 is reserved.",
        question="What does the device do with doorbell length 3?",
        alternatives={
            "skip-error": "no doorbell write; the response (if any) carries an error code",
            "as-32": "the doorbell is written as 32 bits",
        },
        default="skip-error",
        rationale="The driver never encodes 3 (db_len must be 0/8/16/32).",
    )
)


class DoorbellMisaligned(Alt):
    """Alternatives of ``doorbell-misaligned``."""

    SKIP_ERROR = "skip-error"
    ALIGN_DOWN = "align-down"
    WRITE_ANYWAY = "write-anyway"


DOORBELL_MISALIGNED = register(
    Policy(
        kind=DoorbellMisaligned,
        id="doorbell-misaligned",
        area=_DB,
        source=f"{SEED} Request FIFO, doorbell_attr",
        quote="The doorbell address must be naturally aligned to the specified length.",
        question="What happens when the doorbell address is not aligned?",
        alternatives={
            "skip-error": "no doorbell write; the response (if any) carries an error code",
            "align-down": "the address's low bits are ignored",
            "write-anyway": "the bytes are written at the unaligned address",
        },
        default="skip-error",
        rationale="The driver rejects misaligned db_addr with -EINVAL, so it never relies on "
        "any device behaviour here.",
    )
)


class LinkedList(Alt):
    """Alternatives of ``linked-list`` (one left: a modelling limit)."""

    ERROR = "error"


LINKED_LIST = register(
    Policy(
        kind=LinkedList,
        id="linked-list",
        area=_DB,
        source=f"{SEED} Request FIFO, pcie_dma_cmd",
        quote="Bit(3) indicates if this request is a linked list transfer(0) or a bulk "
        "transfer(1).",
        question="How is a linked-list transfer (format undocumented) modelled?",
        alternatives={
            "error": "no transfer; an error response if requested",
        },
        default="error",
        rationale="The list format is not documented and the driver always sets bit 3.",
        category="modelling-limit",
        decision="Modelling limit, not a device ambiguity: the device does linked-list "
        "transfers, in a format no document gives, so the model cannot run them and answers "
        "with an error. 'as-bulk' was removed: reading a list's address as the data's is no "
        "plausible device behaviour (issue #13 item 3).",
    )
)


class MsiWhileMasked(Alt):
    """Alternatives of ``msi-while-masked``."""

    LATCHED = "latched"
    LOST = "lost"


MSI_WHILE_MASKED = register(
    Policy(
        kind=MsiWhileMasked,
        id="msi-while-masked",
        area=_DB,
        source=f"{SEED} Response FIFO; seed 001 (MSI in VMs)",
        quote="The DMA Bridge will generate a MSI to the host as a reaction to activity in the "
        "response FIFO of a DBC.",
        question="Is an MSI raised while the host has the vector masked latched or lost?",
        alternatives={
            "latched": "it is held pending and delivered when the host unmasks",
            "lost": "it is dropped",
        },
        default="latched",
        rationale="PCI MSI per-vector masking sets the pending bit and Linux replays a disabled "
        "edge interrupt on enable_irq; the driver's unmask-then-recheck also covers "
        "'lost'.",
    )
)


class ForceMsi(Alt):
    """Alternatives of ``force-msi``."""

    HONOURED = "honoured"
    IGNORED = "ignored"


FORCE_MSI = register(
    Policy(
        kind=ForceMsi,
        id="force-msi",
        area=_DB,
        source=f"{SEED} Request FIFO, pcie_dma_cmd",
        quote="Bit(7) is the force msi flag ... and QSM configures the DMA Bridge to look at "
        "this bit.",
        question="Is the force-MSI bit honoured (QSM's configuration is not visible)?",
        alternatives={
            "honoured": "a completed request with bit 7 set raises the channel's MSI",
            "ignored": "QSM did not configure it; bit 7 has no effect",
        },
        default="honoured",
        rationale="The driver never sets it; honouring it is the more demanding case for hosts.",
    )
)


class MsiEmptyTransition(Alt):
    """Alternatives of ``msi-empty-transition`` (one left: settled)."""

    HOST_HEAD = "host-head"


MSI_EMPTY_TRANSITION = register(
    Policy(
        kind=MsiEmptyTransition,
        id="msi-empty-transition",
        area=_DB,
        source=f"{SEED} Response FIFO",
        quote="it will only generate a MSI when the response FIFO transitions from empty to "
        "non-empty",
        question="Empty by whose view: RSP_HP as last written by the host, or elements the "
        "host has not yet read?",
        alternatives={
            "host-head": "empty means RSP_TP == RSP_HP (the host's last head write) when the "
            "device writes a response",
        },
        default="host-head",
        rationale="The device only knows RSP_HP; the driver's storm-mitigation notes describe "
        "one MSI per empty->non-empty edge.",
        category="settled",
        decision="Settled: 'every-response' (an MSI per response) was removed, with its code "
        "path: the quoted sentence says the device 'will only' raise one on the transition, so "
        "no mitigation at all is not a reading of it, only a stress mode (issue #13 item 3).",
    )
)


class ResponseRingFull(Alt):
    """Alternatives of ``response-ring-full``."""

    STALL = "stall"
    DROP = "drop"


RESPONSE_RING_FULL = register(
    Policy(
        kind=ResponseRingFull,
        id="response-ring-full",
        area=_DB,
        source=f"{SEED} Response FIFO",
        quote="Once a request is fully processed, a response FIFO element is generated",
        question="What does the device do when the response FIFO is full?",
        alternatives={
            "stall": "the response (and so the request) waits until the host frees a slot",
            "drop": "the response is discarded",
        },
        default="stall",
        rationale="The driver never over-commits responses (ring sizes are equal) and drains on "
        "every MSI; stalling loses nothing.",
    )
)


class TailOutOfRange(Alt):
    """Alternatives of ``tail-out-of-range``."""

    IGNORE = "ignore"
    MODULO = "modulo"


TAIL_OUT_OF_RANGE = register(
    Policy(
        kind=TailOutOfRange,
        id="tail-out-of-range",
        area=_DB,
        source=f"{SEED} DMA Bridge",
        quote="Host increments this register to add new items to the FIFO.",
        question="What does the device do with a REQ_TP/RSP_HP write >= nelem?",
        alternatives={
            "ignore": "the write is recorded as a violation and has no effect",
            "modulo": "the value is taken modulo nelem",
        },
        default="ignore",
        rationale="The driver always writes values < nelem.",
    )
)


class OnDmaFault(Alt):
    """Alternatives of ``dma-fault``."""

    ERROR = "error"
    PARTIAL = "partial"


DMA_FAULT = register(
    Policy(
        kind=OnDmaFault,
        id="dma-fault",
        area=_DB,
        source=f"{SEED} Request FIFO",
        quote="source address for a bulk transfer ... destination address for a bulk transfer.",
        question="What happens when a DMA touches host memory that is not mapped?",
        alternatives={
            "error": "no bytes move; the response (if any) carries an error code",
            "partial": "bytes up to the fault move; the response carries an error code",
        },
        default="error",
        rationale="Silent; the driver only uses mapped segments.",
    )
)


class DoorbellDataWidth(Alt):
    """Alternatives of ``doorbell-data-width`` (one left: settled)."""

    TRUNCATE = "truncate"


DOORBELL_DATA_WIDTH = register(
    Policy(
        kind=DoorbellDataWidth,
        id="doorbell-data-width",
        area=_DB,
        source=f"{SEED} Request FIFO, doorbell_data",
        quote="Only the bits corresponding to the doorbell length are valid.",
        question="What happens to doorbell_data bits above the doorbell length?",
        alternatives={
            "truncate": "they are ignored",
        },
        default="truncate",
        rationale="The driver passes the user's db_data through unmasked for 8/16-bit doorbells.",
        category="settled",
        decision="Settled: the removed alternative 'violation' did the same on the device "
        "(the bits ignored) and only also reported the element, so it was a checker "
        "strictness, not a second reading of the device (issue #13 item 3).",
    )
)


class SemReservedCmd(Alt):
    """Alternatives of ``sem-reserved-cmd``."""

    ERROR = "error"
    IGNORE = "ignore"


SEM_RESERVED_CMD = register(
    Policy(
        kind=SemReservedCmd,
        id="sem-reserved-cmd",
        area=_DB,
        source=f"{SEED} Request FIFO, sem_cmd",
        quote="7 is reserved.",
        question="What does the device do with an enabled semaphore command 7?",
        alternatives={
            "error": "no transfer, no semaphore op, no doorbell; an error response if a "
            "completion was requested",
            "ignore": "the command is treated as NOP; the rest of the request runs normally",
        },
        default="error",
        rationale="The driver rejects cmd > 6 (invalid_sem, -EINVAL) so it never relies on "
        "either; treating a reserved encoding like the other malformed cases "
        "(multiple presyncs) keeps the device's error handling uniform.",
    )
)


class CompletionCodeValues(Alt):
    """Alternatives of ``completion-code-values``."""

    DISTINCT = "distinct"
    ONE = "one"


COMPLETION_CODE_VALUES = register(
    Policy(
        kind=CompletionCodeValues,
        id="completion-code-values",
        area=_DB,
        source=f"{SEED} Response FIFO, completion_code",
        quote="status of this request. 0 is success. Non-zero is an error.",
        question="Which non-zero codes does the device write for which error?",
        alternatives={
            "distinct": "one model-defined code per error kind (device.CC_* constants)",
            "one": "every error is written as 1",
        },
        default="distinct",
        rationale="The values are undocumented; the driver only logs a non-zero status and "
        "still completes the BO, so no host may depend on the value.",
    )
)


class InactiveDbcRegs(Alt):
    """Alternatives of ``inactive-dbc-regs``."""

    ZERO = "zero"
    ALL_ONES = "all-ones"


INACTIVE_DBC_REGS = register(
    Policy(
        kind=InactiveDbcRegs,
        id="inactive-dbc-regs",
        area=_DB,
        source=f"{SEED} DMA Bridge",
        quote="Each DBC contains 4 registers in hardware",
        question="What does a host read of a register of a channel that is not active return?",
        alternatives={
            "zero": "0 (the registers are reset when the channel is released)",
            "all-ones": "0xFFFFFFFF, as an unclaimed PCIe read (the driver treats it as a "
            "link error)",
        },
        default="all-ones",
        rationale="The document is silent. Measured against the real 7.2 driver in UML "
        "(docs/findings.md F7): qaic_postclose sends the terminate that releases the "
        "channel before release_dbc, and in between the IRQ thread / poll work still "
        "reads RSP_TP and writes RSP_HP. With all-ones the driver takes the read as a "
        "link error and stops; with zero it walks stale responses and writes RSP_HP of "
        "a released channel (HOST-RSP-OVERREAD). The driver relies on all-ones.",
    )
)


class PresyncNonWait(Alt):
    """Alternatives of ``presync-non-wait``."""

    APPLY = "apply"
    IGNORE = "ignore"


PRESYNC_NON_WAIT = register(
    Policy(
        kind=PresyncNonWait,
        id="presync-non-wait",
        area=_DB,
        source=f"{SEED} Request FIFO, sem_cmd",
        quote="1 is presync, which gates the DMA transfer.",
        question="What does a presync command that is not a condition (init, increment, "
        "decrement) do?",
        alternatives={
            "apply": "the operation is performed before the transfer",
            "ignore": "only conditions gate; a presync init/inc/dec does nothing",
        },
        default="apply",
        rationale="Bit 22 is described as choosing when 'the semaphore operation is done' "
        "(before or after the transfer); the open compiler only emits presync waits.",
    )
)


class HeadIndexMeaning(Alt):
    """Alternatives of ``head-index-meaning``."""

    NEXT_SLOT = "next-slot"
    LAST_CONSUMED = "last-consumed"


HEAD_INDEX_MEANING = register(
    Policy(
        kind=HeadIndexMeaning,
        id="head-index-meaning",
        area=_DB,
        source=f"{SEED} DMA Bridge",
        quote="Request FIFO head pointer (offset 0x0). Read only by the host. Indicates the "
        "latest item in the FIFO the device has consumed.",
        question="Does a head register hold the index of the next element to consume, or of the "
        "latest element consumed (one behind)?",
        alternatives={
            "next-slot": "REQ_HP/RSP_HP hold the next slot to consume; head == tail is empty",
            "last-consumed": "REQ_HP reads as the slot the device consumed last (one behind the "
            "next slot), and an RSP_HP write names the last response the host "
            "consumed, freeing it too",
        },
        default="next-slot",
        rationale="qaic_data.c (fifo_space_avail, the IRQ drain) treats head == tail as empty and "
        "writes RSP_HP as the next slot to read; the seed's 'latest item ... consumed' "
        "reads literally as the other alternative.",
    )
)


@attrs.frozen(slots=True)
class DbcChoice:
    """The DMA Bridge's policy choice resolved once: one typed field per policy above.

    The device reads ``self._p.sem_underflow`` (an attribute, on the hot path)
    instead of looking ids up; :meth:`of` builds it from a :class:`Policies`.
    """

    ring_full_rule: RingFullRule
    sem_inc_amount: SemIncAmount
    sem_overflow: SemOverflow
    sem_underflow: SemUnderflow
    sem_p_decrements: SemPDecrements
    sem_enable_bit: SemEnableBit
    fence_without_enable: FenceWithoutEnable
    fence_scope: FenceScope
    presync_multiple: PresyncMultiple
    processing_order: ProcessingOrder
    response_order: ResponseOrder
    illegal_direction: IllegalDirection
    doorbell_reserved_len: DoorbellReservedLen
    doorbell_misaligned: DoorbellMisaligned
    linked_list: LinkedList
    msi_while_masked: MsiWhileMasked
    force_msi: ForceMsi
    msi_empty_transition: MsiEmptyTransition
    response_ring_full: ResponseRingFull
    tail_out_of_range: TailOutOfRange
    dma_fault: OnDmaFault
    doorbell_data_width: DoorbellDataWidth
    sem_reserved_cmd: SemReservedCmd
    completion_code_values: CompletionCodeValues
    inactive_dbc_regs: InactiveDbcRegs
    presync_non_wait: PresyncNonWait
    head_index_meaning: HeadIndexMeaning

    @classmethod
    def of(cls, policies: Policies) -> DbcChoice:
        """(Kept per :class:`Policies` object, which is frozen: conform builds a device
        per episode over a few rows of policies.)"""
        hit = _CHOICES.get(id(policies))
        if hit is not None and hit[0] is policies and cls is DbcChoice:
            return hit[1]
        choice = cls(**{f.name: policies[f.name.replace("_", "-")] for f in attrs.fields(cls)})
        if type(policies) is Policies and cls is DbcChoice:
            if len(_CHOICES) >= 256:
                _CHOICES.clear()
            _CHOICES[id(policies)] = (policies, choice)  # holds it: the id stays its own
        return choice


#: id(Policies) -> (that Policies, its DbcChoice)
_CHOICES: dict[int, tuple[Policies, DbcChoice]] = {}
