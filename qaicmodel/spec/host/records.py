"""The host's bookkeeping records: BOs, slices, clients, channels, execute threads."""

from __future__ import annotations

import enum
from typing import Any

import attrs
import numpy as np

from qaicmodel.errors import IoctlError
from qaicmodel.spec.host import irqproto
from qaicmodel.spec.host.irqproto import IrqState

__all__ = ["SliceRec", "Bo", "Client", "HostChannel", "Phase", "ExecThread", "WaitThread"]


@attrs.define(eq=False)
class SliceRec:
    """One attached slice: where it lies in the BO and its encoded requests (host-specific)."""

    offset: int
    size: int
    nents: int
    enc: Any  # the host's encoding of the slice's request elements


@attrs.define(eq=False)
class Bo:
    """A GEM buffer object of one client (qaic.h struct qaic_bo)."""

    user: int
    handle: int
    size: int
    array: np.ndarray  # the bytes (mmap view); segments are views into it
    segments: list[tuple[int, int]]  # (bus address, length)
    sliced: bool = False
    dbc_id: int | None = None
    dir: int = 0
    nr_slice: int = 0
    slices: list[SliceRec] = attrs.field(factory=list)
    total_slice_nents: int = 0
    queued: bool = False  # bo_queued(): on a channel's xfer_list
    queued_on: int | None = None
    done: bool = True  # bo->xfer_done (init: complete_all)
    req_id: int = 0
    nr_slice_xfer_done: int = 0
    queue_level_before: int = 0
    executions: int = 0  # successful executes (for harnesses)
    completions: int = 0
    cache: Any = None  # host-specific data (e.g. segment address arrays)

    @property
    def key(self) -> tuple[int, int]:
        return (self.user, self.handle)


@attrs.define(eq=False)
class Client:
    """An open DRM file (qaic_user): its id and its GEM handles."""

    user: int
    bos: dict[int, Bo] = attrs.field(factory=dict)


@attrs.define(eq=False)
class HostChannel:
    """The driver's view of one DBC (qaic.h struct dma_bridge_chan)."""

    id: int
    usr: int | None = None
    in_use: bool = False
    nelem: int = 0
    req_q: int = 0
    rsp_q: int = 0
    next_req_id: int = 0
    xfer: dict[tuple[int, int], Bo] = attrs.field(factory=dict)  # xfer_list, in order
    bo_list: dict[tuple[int, int], Bo] = attrs.field(factory=dict)  # bo_lists
    irq: IrqState = attrs.field(factory=lambda: irqproto.initial(0))
    poll: bool = False  # datapath polling work scheduled
    lock: int | None = None  # req_lock holder (exec thread id)
    cache: Any = None  # host-specific per-channel data (ring views)


class Phase(enum.IntEnum):
    """Interleaving points of one EXECUTE_BO call (qaic_data.c __qaic_execute_bo_ioctl)."""

    LOCK = 0  # mutex_lock_interruptible(&dbc->req_lock)
    READ = 1  # readl REQ_HP, REQ_TP
    SEND = 2  # send_bo_list_to_device: checks + copies into the ring
    COMMIT = 3  # writel REQ_TP, unlock, profiling
    DONE = 4


@attrs.define(eq=False)
class ExecThread:
    """An ioctl thread inside EXECUTE_BO / PARTIAL_EXECUTE_BO."""

    tid: int
    user: int
    dbc_id: int
    entries: list[tuple[int, int, int]]  # (handle, dir, resize)
    partial: bool
    phase: Phase = Phase.LOCK
    head: int = 0
    tail: int = 0
    queue_level: int = 0
    error: IoctlError | None = None


@attrs.define(eq=False)
class WaitThread:
    """An ioctl thread asleep in WAIT_BO (qaic_data.c qaic_wait_bo_ioctl,
    wait_for_completion_interruptible_timeout on ``bo->xfer_done``).  It wakes (a ``wake``
    action) once the completion has fired, then runs the checks after the sleep."""

    tid: int
    user: int
    dbc_id: int
    bo: Bo | None
    finished: bool = False
    error: IoctlError | None = None
