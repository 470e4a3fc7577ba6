"""Per-channel state of the DMA Bridge: completion codes, request stages, actions, channels.

The values :class:`~qaicmodel.spec.dbc.device.Device` keeps per DBC (aic100.rst "DMA
Bridge": request/response FIFOs, head/tail registers, 32 semaphores) and the requests
in flight on it, with the actions a scheduler may pick.
"""

from __future__ import annotations

import enum

import attrs

from qaicmodel.findings import Finding
from qaicmodel.spec.dbc.wire import (
    Dir,
    RequestElem,
    SemCmd,
)
from qaicmodel.spec.policies import FENCE_SCOPE, FenceScope

__all__ = [
    "Channel",
    "InFlight",
    "Stage",
    "Consume",
    "Advance",
    "RaiseMsi",
    "Action",
    "HostViolation",
    "DeviceStats",
    "NUM_SEMS",
    "SEM_MAX",
    "CC_SUCCESS",
    "CC_ILLEGAL_DIR",
    "CC_LINKED_LIST",
    "CC_MULTI_PRESYNC",
    "CC_SEM_RESERVED",
    "CC_BAD_DOORBELL",
    "CC_DMA_FAULT",
    "CC_RESERVED_BITS",
    "CC_NAMES",
]

NUM_SEMS = 32  # 5-bit semaphore index (aic100.rst sem_cmd bits 20:16)
SEM_MAX = 0xFFF  # 12-bit semaphore values (aic100.rst sem_cmd bits 11:0)

# Completion codes.  aic100.rst "Response FIFO" only says "0 is success.
# Non-zero is an error."; the non-zero values are the model"s own (policy
# ``completion-code-values``).
CC_SUCCESS = 0
CC_ILLEGAL_DIR = 1
CC_LINKED_LIST = 2
CC_MULTI_PRESYNC = 3
CC_SEM_RESERVED = 4
CC_BAD_DOORBELL = 5
CC_DMA_FAULT = 6
CC_RESERVED_BITS = 7  # policy reserved-bits-device=error
CC_NAMES = {
    CC_SUCCESS: "success",
    CC_ILLEGAL_DIR: "illegal transfer direction",
    CC_LINKED_LIST: "linked-list transfer not modelled",
    CC_MULTI_PRESYNC: "more than one presync semaphore",
    CC_SEM_RESERVED: "reserved semaphore command 7",
    CC_BAD_DOORBELL: "doorbell length reserved or address misaligned",
    CC_DMA_FAULT: "DMA touched unmapped memory",
    CC_RESERVED_BITS: "reserved bits set in the request element",
}


class Stage(enum.IntEnum):
    """Where an in-flight request is (aic100.rst "Request FIFO" steps; userspace.md §7)."""

    FENCE = 0
    PRESYNC = 1
    DMA = 2
    POSTSYNC = 3
    DOORBELL = 4
    RESPONSE = 5
    DONE = 6


#: stage order per ``fence-scope`` (the fence acts before or after the presync)
#: stage plan per ``fence-scope`` alternative (checked complete at import)
_PLANS = FENCE_SCOPE.table(
    {
        FenceScope.EARLIER_BEFORE_PRESYNC: (
            Stage.FENCE,
            Stage.PRESYNC,
            Stage.DMA,
            Stage.POSTSYNC,
            Stage.DOORBELL,
            Stage.RESPONSE,
            Stage.DONE,
        ),
        FenceScope.EARLIER_BEFORE_DMA: (
            Stage.PRESYNC,
            Stage.FENCE,
            Stage.DMA,
            Stage.POSTSYNC,
            Stage.DOORBELL,
            Stage.RESPONSE,
            Stage.DONE,
        ),
        FenceScope.ALL_OUTSTANDING: (
            Stage.FENCE,
            Stage.PRESYNC,
            Stage.DMA,
            Stage.POSTSYNC,
            Stage.DOORBELL,
            Stage.RESPONSE,
            Stage.DONE,
        ),
    }
)
#: when a request failed validation it goes straight to its response step
_ERROR_PLAN = (Stage.RESPONSE, Stage.DONE)


# -- actions ------------------------------------------------------------------


@attrs.frozen(order=True)
class Consume:
    """The device reads the request element at REQ_HP and advances REQ_HP."""

    dbc: int


@attrs.frozen(order=True)
class Advance:
    """In-flight request ``seq`` of channel ``dbc`` completes its current step."""

    dbc: int
    seq: int


@attrs.frozen(order=True)
class RaiseMsi:
    """The channel"s due MSI is sent to the interrupt controller."""

    dbc: int


Action = Consume | Advance | RaiseMsi


class HostViolation(Finding):
    """A rule the host broke, recorded (the device keeps going): a :class:`Finding` at ``dbc``."""

    __slots__ = ()

    def __init__(
        self, rule: str, message: str, dbc: int | None = None, source: str = "aic100.rst DMA Bridge"
    ) -> None:
        super().__init__(rule, message, source, {"dbc": dbc})


@attrs.define
class DeviceStats:
    """Counters over the device"s life (all channels)."""

    consumed: int = 0
    completed: int = 0
    responses: int = 0
    responses_dropped: int = 0
    errors: int = 0  # responses / completions with a non-zero code
    empty_transitions: int = 0
    msi_forced: int = 0
    msi_raised: int = 0
    bytes_requested: int = 0
    bytes_moved: int = 0
    dma_faults: int = 0
    doorbells: int = 0
    ring_faults: int = 0


# -- per-channel state --------------------------------------------------------


@attrs.define(eq=False)
class InFlight:
    """A consumed request on its way through the steps (R4)."""

    seq: int
    slot: int
    elem: RequestElem
    plan: tuple[Stage, ...]
    pos: int = 0
    code: int = CC_SUCCESS
    wants_response: bool = False
    dir: Dir = Dir.NONE
    xfer: bool = False  # a DMA step happens (direction 1 or 2, no error)
    dma_done: bool = False
    fence_todev: bool = False
    fence_fromdev: bool = False
    pre: list[SemCmd] = attrs.field(factory=list)  # presync commands still to run
    post: list[SemCmd] = attrs.field(factory=list)  # postsync commands still to run
    sem_indices: frozenset[int] = frozenset()
    moved: int = 0

    @property
    def stage(self) -> Stage:
        return self.plan[self.pos]

    @property
    def sems_done(self) -> bool:
        """Past every semaphore step (POSTSYNC) -- R5"s FIFO rule keys on this."""
        return self.plan[self.pos] > Stage.POSTSYNC

    @property
    def fence_passed(self) -> bool:
        plan = self.plan
        return plan is _ERROR_PLAN or self.pos > plan.index(Stage.FENCE)


@attrs.define(eq=False)
class Channel:
    """One DBC: its registers, FIFO geometry, semaphores and in-flight requests."""

    dbc: int
    active: bool = False
    nelem: int = 0
    req_q: int = 0
    rsp_q: int = 0
    req_hp: int = 0
    req_tp: int = 0
    rsp_hp: int = 0
    rsp_tp: int = 0
    req_count: int = 0  # unconsumed requests, as the device counts them (R3)
    rsp_count: int = 0  # responses written and not yet freed by the host (R3)
    sems: list[int] = attrs.field(factory=lambda: [0] * NUM_SEMS)
    inflight: dict[int, InFlight] = attrs.field(factory=dict)  # seq -> record, in seq order
    next_seq: int = 0
    msi_due: bool = False
    # per-channel counters (the machine"s MSI invariant)
    consumed: int = 0
    responses: int = 0
    empty_transitions: int = 0
    msi_forced: int = 0
    msi_raised: int = 0
    wanted_responses: int = 0  # completed requests whose response was written or dropped

    def reset(self) -> None:
        self.active = False
        self.nelem = self.req_q = self.rsp_q = 0
        self.req_hp = self.req_tp = self.rsp_hp = self.rsp_tp = 0
        self.req_count = self.rsp_count = 0
        self.sems = [0] * NUM_SEMS
        self.inflight = {}
        self.msi_due = False


@attrs.define
class _Ctx:
    """What the requests consumed before the one being judged still owe (R5, R7, R10)."""

    sem_busy: set[int] = attrs.field(factory=set)  # indices with a semaphore step still owed
    undone: dict[Dir, bool] = attrs.field(factory=lambda: {Dir.TO_DEV: False, Dir.FROM_DEV: False})
    started_undone: dict[Dir, int] | None = None  # fence-scope=all-outstanding: whole channel
    resp_owed: bool = False  # a response is still owed

    def add(self, rec: InFlight) -> None:
        if rec.sem_indices and not rec.sems_done:
            self.sem_busy |= rec.sem_indices
        if rec.xfer and not rec.dma_done:
            self.undone[rec.dir] = True
        if rec.wants_response:
            self.resp_owed = True
