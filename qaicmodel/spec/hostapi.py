"""The host interface: what a host DMA path offers, and the driver rules every host shares.

A *host* is the Linux ``accel/qaic`` data path (drivers/accel/qaic/qaic_data.c)
as an object: the ioctls of ``include/uapi/drm/qaic_accel.h`` (CREATE_BO,
MMAP_BO, ATTACH_SLICE_BO, EXECUTE_BO, PARTIAL_EXECUTE_BO, WAIT_BO,
PERF_STATS_BO, DETACH_SLICE_BO) plus its interrupt side as an *actor*
(``enabled()``/``step()``), driving a :class:`qaicmodel.spec.device.Device`.

Kernel behaviour followed: current upstream qaic_data.c (2025/2026: the
CVE-2025-22001 ``check_add_overflow`` fix of v6.14, the per-channel
``req_lock`` of "accel/qaic: Synchronize access to DBC request queue head & tail
pointer" (v6.18), zero-resize partial execute (v6.8), ``bo_queued()`` as
list membership, attach validating slices against the BO's own size).  Where
older kernels behave differently in a way a user can observe, the difference is
the policy ``host-attach-hdr-size``; older *bugs* (no req_lock, unchecked
offset+size) are the broken hosts of :mod:`qaicmodel.spec.broken`.

Two hosts implement the interface: :class:`qaicmodel.spec.host.SpecHost` (the
reference: one element at a time) and :class:`qaicmodel.impl.host.ImplHost`
(numpy).  Both derive from :class:`HostCore` here, which holds everything that
must be *one piece of code*: argument validation in the driver's order with
the driver's errnos, client/BO/channel bookkeeping, the execute phases and the
interrupt thread, whose every control decision is taken by the transition
functions of :mod:`qaicmodel.spec.irqproto`.  A host supplies the data path:
``_span`` (BO segments a slice covers), ``_encode`` (request elements of a
slice, once, at attach), ``_partial`` / ``_write_full`` / ``_write_partial``
(copy into the request ring) and ``_drain`` (consume responses).

Validation order implemented (current upstream qaic_data.c; first failing check wins)
-----------------------------------------------------------------------------------
CREATE_BO: pad != 0 EINVAL; PAGE_ALIGN(size) == 0 EINVAL (size 0, or wraps near
  2**64); not online ENODEV; (model limit ENOMEM).  Handles: lowest free >= 1 per file.
MMAP_BO: not online ENODEV; unknown handle ENOENT.  (pad is not checked.)
ATTACH_SLICE_BO: count == 0 EINVAL; [old kernels: hdr.size == 0 EINVAL]; dir not
  1/2 EINVAL; data NULL EINVAL; not online ENODEV; dbc_id >= num_dbc EINVAL; user
  buffer short EFAULT; unknown handle ENOENT then per entry db_len not 32/16/8/0 or a
  bad sem (val > 0xFFF, index > 31, presync > 1, pad, flags outside 0x3, cmd > 6)
  EINVAL, offset + size overflowing u64 or past the BO EINVAL [old kernels: these
  against hdr.size *before* the lookup]; BO already sliced EINVAL; dbc not owned
  EINVAL; dbc in SSR EPIPE; [old kernels: hdr.size > BO EINVAL]; per entry: no DMA
  segment covers [offset, offset + max(size, PAGE_SIZE)) EINVAL, misaligned
  doorbell EINVAL, more than one presync EINVAL; total elements > nelem ENOSPC.
EXECUTE_BO / PARTIAL_EXECUTE_BO: count == 0 EINVAL; not online ENODEV; dbc_id >=
  num_dbc EINVAL; dbc not owned EPERM; dbc in SSR EPIPE; req_lock; REQ_HP/REQ_TP
  read all-ones ENODEV; per BO in order: unknown handle ENOENT, not sliced EINVAL,
  partial resize > BO size EINVAL, already queued EINVAL, a req_id is consumed, per
  slice no room EAGAIN (and every BO this call queued is unqueued; nothing is
  published).  The entry's ``dir`` is never checked, nor whether the BO was sliced
  for this dbc.
WAIT_BO: pad != 0 EINVAL; not online ENODEV; dbc_id >= num_dbc EINVAL; dbc not owned
  EPERM; dbc in SSR EPIPE; unknown handle ENOENT; then done or (caller) ETIMEDOUT.
PERF_STATS_BO: not online ENODEV; dbc_id >= num_dbc EINVAL; per entry unknown
  handle ENOENT, not sliced EINVAL, sliced on another dbc EINVAL.  No ownership check.
DETACH_SLICE_BO: pad != 0 EINVAL; not online ENODEV; unknown handle ENOENT; not
  sliced EINVAL; dbc not owned EINVAL; queued EBUSY.

Kernel sources read: torvalds/linux qaic_data.c at 98b4eabe (older: no req_lock, no
overflow check, hdr.size used, no SSR) and a current-upstream copy (req_lock, SSR
``ssr_dbc``, ``check_add_overflow``, hdr.size "Deprecated. This value is ignored",
perf_stats sliced/dbc checks); the v6.8 "Support for 0 resize slice execution in BO"
and v6.18 "Synchronize access to DBC request queue head & tail pointer" patches.

Writing your own host (``qaicmodel conform --host MODULE:CLASS``)
-----------------------------------------------------------------
The class is constructed as ``CLASS(device, *, sg_max_segment=None,
datapath_polling=False)`` and must provide every member of :class:`Host`.
The easy way is to subclass :class:`qaicmodel.spec.host.SpecHost` (or
:class:`HostCore`) and override the data-path hooks::

    from qaicmodel.spec.host import SpecHost

    class MyHost(SpecHost):
        def _write_full(self, ch, sl, tail):      # your ring copy
            ...

To test a host written from scratch, implement :class:`Host` directly: raise
``qaicmodel.errors.IoctlError("EINVAL", "why")`` exactly where the driver
returns -EINVAL (see the ``check_*`` helpers below for the order), write
request elements into ``device.host_mem`` at ``req_q + 64 * slot`` and move
REQ_TP with ``device.writel``; read responses at ``rsp_q + 4 * slot`` and move
RSP_HP; expose interrupt handling as actions from ``enabled()`` performed by
``step(action)`` (take MSIs with ``device.intc``).  ``conform`` then runs it
against the device model under adversarial interleavings and reports any
invariant it breaks (see :mod:`qaicmodel.spec.cosim`).  Optional members the
harness uses when present: ``completions`` (a list of (user, handle), one entry per
BO completion; without it completions are observed through ``wait_check``) and
``execute_begin``/``execute_result`` (EXECUTE_BO as an ioctl thread whose phases
are ``exec`` actions; without them concurrent-execute operations are skipped).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import numpy as np

from qaicmodel import arith
from qaicmodel.arith import U32, U64
from qaicmodel.errors import ArgumentError, IoctlError
from qaicmodel.spec import irqproto, regs, uapi
from qaicmodel.spec.irqproto import PC, IrqState
from qaicmodel.spec.policies import Policy, register

__all__ = [
    "Host",
    "HostAction",
    "HostCore",
    "Bo",
    "Client",
    "HostChannel",
    "SliceRec",
    "ExecThread",
    "Phase",
    "WAIT_DEFAULT_TIMEOUT_MS",
    "MAX_BO_SIZE",
    "U32_MAX",
    "check_create_bo",
    "check_sem",
    "check_slice_entry",
    "check_slice_encodable",
    "activate_channel",
    "deactivate_channel",
    "encode_db_len",
]

#: qaic_data.c wait_exec_default_timeout_ms
WAIT_DEFAULT_TIMEOUT_MS = 5000
#: the model refuses BOs larger than this with -ENOMEM (the kernel's limit is RAM)
MAX_BO_SIZE = 256 << 20
U32_MAX = 0xFFFFFFFF
_PAGE = arith.PAGE_SIZE

# qaic_data.c request element bits
BULK_XFER = 1 << 3
GEN_COMPLETION = 1 << 4
INBOUND_XFER = 1
OUTBOUND_XFER = 2

# ---------------------------------------------------------------------------
# Policies where driver versions differ observably

register(Policy(
    id="host-attach-hdr-size",
    area="host-driver",
    source="qaic_data.c qaic_attach_slice_bo_ioctl; qaic_accel.h struct qaic_attach_slice_hdr",
    quote="@size: Deprecated. This value is ignored and size of @handle is used instead.",
    question="Does ATTACH_SLICE_BO use hdr.size (older kernels) or the BO's own size (current)?",
    alternatives={
        "ignored": "current upstream: hdr.size is not read; slices are checked against the "
                   "BO's size, after the handle lookup (-ENOENT before slice -EINVAL)",
        "checked": "older kernels (torvalds/linux 98b4eabe): hdr.size == 0 -> -EINVAL up "
                   "front; slices checked against hdr.size before the handle lookup; "
                   "-EINVAL when hdr.size exceeds the BO",
    },
    default="ignored",
    rationale="The newest driver is the reference; the older order is kept so traces from "
              "older kernels can be checked.",
))


# ---------------------------------------------------------------------------
# The interface


@attrs.frozen(order=True)
class HostAction:
    """A host-side event a scheduler may pick.

    ``kind``: ``irq`` (an MSI on vector ``arg`` reaches the hard handler),
    ``thread`` (the IRQ thread of channel ``arg`` runs to its next interleaving
    point), ``poll`` (the datapath-polling work of channel ``arg`` looks once),
    ``exec`` (ioctl thread ``arg`` runs its next execute phase).
    """

    kind: str
    arg: int


@runtime_checkable
class Host(Protocol):
    """The documented host interface (see the module docstring)."""

    device: Any

    def open(self) -> int: ...
    def close(self, user: int) -> None: ...
    def dbc_assign(self, dbc_id: int, user: int, nelem: int, req_q: int, rsp_q: int) -> None: ...
    def dbc_release(self, dbc_id: int) -> None: ...
    def create_bo(self, user: int, size: int, pad: int = 0) -> int: ...
    def bo_segments(self, user: int, handle: int) -> list[tuple[int, int]]: ...
    def mmap_bo(self, user: int, handle: int) -> Any: ...
    def attach_slice(self, user: int, hdr: uapi.AttachSliceHdr,
                     entries: Sequence[uapi.SliceEntry] | None) -> None: ...
    def execute(self, user: int, dbc_id: int, handles_dirs: Sequence[tuple[int, int]]) -> None: ...
    def partial_execute(self, user: int, dbc_id: int,
                        entries: Sequence[tuple[int, int, int]]) -> None: ...
    def wait_check(self, user: int, dbc_id: int, handle: int, timeout_ms: int,
                   pad: int = 0) -> bool: ...
    def perf_stats(self, user: int, dbc_id: int,
                   handles: Sequence[int]) -> list[uapi.PerfStatsEntry]: ...
    def detach_slice(self, user: int, handle: int, pad: int = 0) -> None: ...
    def enabled(self) -> list[Any]: ...
    def step(self, action: Any) -> None: ...


# ---------------------------------------------------------------------------
# Validation helpers: the driver's checks, in its order (one piece of code)


def _int(name: str, v: Any, bits: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < (1 << bits):
        raise ArgumentError(f"{name}={v!r} is not a __u{bits}")
    return v


def check_create_bo(size: int, pad: int) -> int:
    """qaic_create_bo_ioctl: pad != 0 -> EINVAL; PAGE_ALIGN(size) == 0 -> EINVAL.

    Returns the page-aligned size (PAGE_ALIGN wraps to 0 near 2**64, so those
    sizes are -EINVAL too).
    """
    _int("size", size, 64)
    _int("pad", pad, 32)
    if pad:
        raise IoctlError("EINVAL", "create_bo: pad must be 0")
    aligned = arith.page_align(size, U64)
    if aligned == 0:
        raise IoctlError("EINVAL", f"create_bo: size {size} page-aligns to 0")
    return int(aligned)


def check_sem(sem: uapi.Sem) -> bool:
    """qaic_data.c invalid_sem, inverted: True when the semaphore is acceptable."""
    return bool(arith.sem_valid(sem.val, sem.index, sem.presync, sem.cmd, sem.flags, sem.pad, U32))


def check_slice_entry(ent: uapi.SliceEntry, total_size: int, i: int) -> None:
    """qaic_validate_req for one entry: db_len in {32, 16, 8, 0} and four valid
    semaphores, then offset + size without u64 overflow and <= total_size
    (CVE-2025-22001 fix).  All failures are -EINVAL."""
    if ent.db_len not in (32, 16, 8, 0):
        raise IoctlError("EINVAL", f"attach_slice: entry {i}: db_len {ent.db_len} is not "
                                   "32, 16, 8 or 0")
    for k, s in enumerate(ent.sems):
        if not check_sem(s):
            raise IoctlError("EINVAL", f"attach_slice: entry {i}: sem{k} {s} is invalid")
    if not arith.slice_in_bounds(ent.offset, ent.size, total_size, U64):
        raise IoctlError("EINVAL", f"attach_slice: entry {i}: offset {ent.offset} + size "
                                   f"{ent.size} overflows or passes the size {total_size}")


def check_slice_encodable(ent: uapi.SliceEntry, i: int) -> None:
    """qaic_data.c encode_reqs checks (after the segment lookup): the doorbell address is
    aligned to db_len/8; at most one presync semaphore.  -EINVAL."""
    if ent.db_len and ent.db_addr % (ent.db_len // 8):
        raise IoctlError("EINVAL", f"attach_slice: entry {i}: db_addr 0x{ent.db_addr:x} is "
                                   f"not aligned to {ent.db_len // 8} bytes")
    if sum(s.presync for s in ent.sems) > 1:
        raise IoctlError("EINVAL", f"attach_slice: entry {i}: more than one presync semaphore")


def encode_db_len(db_len: int) -> int:
    """doorbell_attr for a uapi db_len (encode_reqs): 32 -> 0x80, 16 -> 0x81, 8 -> 0x82, 0 -> 0."""
    return {32: 0x80, 16: 0x81, 8: 0x82, 0: 0}[db_len]


# ---------------------------------------------------------------------------
# Host-side records


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


# ---------------------------------------------------------------------------
# Control-plane helpers for runners (activate/deactivate without NNC)


def activate_channel(host: Any, dbc_id: int, user: int, nelem: int) -> tuple[int, int]:
    """Do what a successful NNC activate does (qaic_control.c encode_activate +
    save_dbc_buf): allocate the FIFO chunk, activate the device channel, assign the
    host channel.  Returns (req_q, rsp_q)."""
    dev = host.device
    size = int(arith.dbc_buf_size(nelem, U32))
    base = dev.host_mem.alloc(size)
    req_q, rsp_q = base, base + int(arith.dbc_rsp_offset(nelem, U32))
    dev.activate(dbc_id, req_q, rsp_q, nelem)
    host.dbc_assign(dbc_id, user, nelem, req_q, rsp_q)
    return req_q, rsp_q


def deactivate_channel(host: Any, dbc_id: int) -> None:
    """A successful deactivate: the device drops the channel, the host runs release_dbc
    and frees the FIFO chunk (dma_free_coherent)."""
    dev = host.device
    req_q = dev.ch[dbc_id].req_q
    dev.deactivate(dbc_id)
    host.dbc_release(dbc_id)
    try:
        dev.host_mem.free(req_q)
    except ArgumentError:
        pass


# ---------------------------------------------------------------------------
# The shared core


class HostCore:
    """Bookkeeping, validation, execute phases and the IRQ thread of the qaic data path.

    Subclasses supply the data path (see the module docstring).  Class
    attributes that broken hosts change: ``recheck`` (missed-event check),
    ``use_req_lock`` (v6.18 req_lock).
    """

    recheck = True
    use_req_lock = True

    def __init__(self, device: Any, *, sg_max_segment: int | None = None,
                 datapath_polling: bool = False, num_events: int = irqproto.NUM_EVENTS,
                 num_delays: int = irqproto.NUM_DELAYS, max_bo_size: int = MAX_BO_SIZE) -> None:
        if sg_max_segment is not None and (
                not isinstance(sg_max_segment, int) or isinstance(sg_max_segment, bool)
                or sg_max_segment <= 0 or sg_max_segment % _PAGE):
            raise ArgumentError(f"sg_max_segment must be a positive multiple of {_PAGE} or "
                                f"None, got {sg_max_segment!r}")
        for name, v in (("num_events", num_events), ("num_delays", num_delays)):
            if not isinstance(v, int) or isinstance(v, bool) or v < (1 if name == "num_events"
                                                                      else 0):
                raise ArgumentError(f"{name} must be a non-negative int, got {v!r}")
        self.device = device
        self.policies = device.policies
        self.single_msi = bool(device.single_msi)
        self.sg_max_segment = sg_max_segment
        self.datapath_polling = bool(datapath_polling)
        self.max_bo_size = max_bo_size
        self.num_events = num_events
        self.num_delays = num_delays
        self.online = True  # qdev->dev_state == QAIC_ONLINE
        self.ssr_dbc: int | None = None  # qdev->ssr_dbc (set by the SSR model)
        self.users: dict[int, Client] = {}
        self.ch = [HostChannel(i) for i in range(device.num_dbc)]
        #: (user, handle) of every BO completion, in order (for harnesses)
        self.completions: list[tuple[int, int]] = []
        self.threads: dict[int, ExecThread] = {}
        self._next_tid = 1
        self._mask_on_irq = not (self.single_msi or self.datapath_polling)
        self.proto = irqproto.make_transitions(
            recheck=self.recheck, msi_while_masked=self.policies["msi-while-masked"],
            mask_on_irq=self._mask_on_irq, num_events=num_events, num_delays=num_delays)
        if self.datapath_polling and not self.single_msi:
            # qaic_drv.c: with datapath_polling each DBC line is disabled at probe
            for c in self.ch:
                c.irq = c.irq.with_(depth=1)
                self.device.intc.mask(self.device.vector(c.id))

    # -- small helpers ----------------------------------------------------
    def _client(self, user: Any) -> Client:
        c = self.users.get(user) if isinstance(user, int) else None
        if c is None:
            raise ArgumentError(f"user {user!r} is not an open client")
        return c

    def _online(self) -> None:
        """usr->qddev / qdev->dev_state != QAIC_ONLINE -> -ENODEV."""
        if not self.online:
            raise IoctlError("ENODEV", "device is not online")

    def _lookup(self, user: int, handle: Any) -> Bo:
        """drm_gem_object_lookup: an unknown handle of this file -> -ENOENT."""
        bo = self.users[user].bos.get(handle)
        if bo is None:
            raise IoctlError("ENOENT", f"no BO with handle {handle} for user {user}")
        return bo

    def _dbc_range(self, dbc_id: int) -> HostChannel:
        if dbc_id >= len(self.ch):
            raise IoctlError("EINVAL", f"dbc_id {dbc_id} >= num_dbc {len(self.ch)}")
        return self.ch[dbc_id]

    def _readl(self, dbc: int, reg: int) -> int:
        return int(self.device.readl(dbc, reg))

    def _writel(self, dbc: int, reg: int, val: int) -> None:
        self.device.writel(dbc, reg, val)

    def _room(self, head: int, tail: int, nelem: int) -> int:
        """qaic_data.c fifo_space_avail (one slot kept free)."""
        return int(arith.fifo_space(head, tail, nelem, U32))

    # -- clients ------------------------------------------------------------
    def open(self) -> int:
        """A new DRM file: the lowest free user id >= 0 (ida_alloc; control-path.md §1.1)."""
        if not self.online:
            raise IoctlError("ENODEV", "open: device is not online")
        uid = 0
        while uid in self.users:
            uid += 1
        self.users[uid] = Client(uid)
        return uid

    def close(self, user: int) -> None:
        """qaic_postclose: release every DBC the user owns (if online), drop its BOs."""
        c = self._client(user)
        if self.online:
            for ch in self.ch:
                if ch.usr == user:
                    self.dbc_release(ch.id)
        for bo in list(c.bos.values()):
            self._free_bo(bo)
        del self.users[user]

    def _free_bo(self, bo: Bo) -> None:
        for ch in self.ch:
            ch.xfer.pop(bo.key, None)
            ch.bo_list.pop(bo.key, None)
        for addr, _n in bo.segments:
            self.device.host_mem.free(addr)
        bo.segments = []

    # -- control plane ----------------------------------------------------
    def dbc_assign(self, dbc_id: int, user: int, nelem: int, req_q: int, rsp_q: int) -> None:
        """save_dbc_buf + enable_dbc after a successful activate (control-path.md §2.2)."""
        _int("dbc_id", dbc_id, 32)
        if dbc_id >= len(self.ch):
            raise ArgumentError(f"dbc_id {dbc_id} out of range")
        self._client(user)
        ch = self.ch[dbc_id]
        if ch.in_use:
            raise ArgumentError(f"dbc {dbc_id} is still in use (save_dbc_buf would wait)")
        if not isinstance(nelem, int) or nelem < 2:
            raise ArgumentError(f"nelem must be an int >= 2, got {nelem!r}")
        ch.nelem, ch.req_q, ch.rsp_q = nelem, req_q, rsp_q
        ch.usr, ch.in_use = user, True
        depth = ch.irq.depth
        ch.irq = irqproto.initial(nelem).with_(depth=depth)
        ch.cache = None
        self._on_assign(ch)

    def _on_assign(self, ch: HostChannel) -> None:
        """Hook: a channel got FIFOs (hosts build ring views here)."""

    def dbc_release(self, dbc_id: int) -> None:
        """release_dbc (qaic_data.c): complete and drop queued BOs, detach every BO sliced
        on the channel, forget the FIFOs."""
        ch = self.ch[dbc_id]
        if not ch.in_use:
            return
        busy = [t.tid for t in self.threads.values()
                if t.dbc_id == dbc_id and t.phase is not Phase.DONE]
        if busy:
            raise ArgumentError(f"dbc_release({dbc_id}) would wait (synchronize_srcu) for "
                                f"EXECUTE_BO thread(s) {busy}; step them first")
        ch.usr = None
        for bo in list(ch.xfer.values()):  # empty_xfer_list
            self._xfer_remove(ch, bo)
            bo.nr_slice_xfer_done = 0
            bo.req_id = 0
            bo.queue_level_before = 0
            bo.done = True
        if ch.irq.pc != PC.IDLE or ch.irq.wake:  # the thread takes error_out
            self._error_out(ch, force=True)
        ch.nelem = ch.req_q = ch.rsp_q = 0
        ch.cache = None
        for bo in list(ch.bo_list.values()):
            self._detach(bo)
        ch.in_use = False
        ch.poll = False

    # -- BOs -----------------------------------------------------------------
    def create_bo(self, user: int, size: int, pad: int = 0) -> int:
        """DRM_IOCTL_QAIC_CREATE_BO: pad, size, online, then allocation (qaic_create_bo_ioctl)."""
        c = self._client(user)
        aligned = check_create_bo(size, pad)
        self._online()
        if aligned > self.max_bo_size:
            raise IoctlError("ENOMEM", f"create_bo: {aligned} bytes is more than the model's "
                                       f"{self.max_bo_size}")
        arr = np.zeros(aligned, dtype=np.uint8)  # __GFP_ZERO
        seg = self.sg_max_segment or aligned
        segments = []
        for off in range(0, aligned, seg):
            n = min(seg, aligned - off)
            segments.append((self.device.host_mem.map_array(arr[off:off + n]), n))
        handle = 1
        while handle in c.bos:  # idr_alloc(.., 1, 0): lowest free handle >= 1
            handle += 1
        c.bos[handle] = Bo(user=user, handle=handle, size=aligned, array=arr, segments=segments)
        return handle

    def bo_segments(self, user: int, handle: int) -> list[tuple[int, int]]:
        self._client(user)
        return list(self._lookup(user, handle).segments)

    def mmap_bo(self, user: int, handle: int) -> np.ndarray:
        """DRM_IOCTL_QAIC_MMAP_BO + mmap: online, lookup (-ENOENT); a writable view."""
        self._client(user)
        _int("handle", handle, 32)
        self._online()
        return self._lookup(user, handle).array

    def attach_slice(self, user: int, hdr: uapi.AttachSliceHdr,
                     entries: Sequence[uapi.SliceEntry] | None) -> None:
        """DRM_IOCTL_QAIC_ATTACH_SLICE_BO (qaic_attach_slice_bo_ioctl), checks in order.

        ``entries=None`` is a NULL ``data`` pointer; fewer entries than
        ``hdr.count`` is a user buffer too short (-EFAULT from copy_from_user).
        """
        self._client(user)
        if not isinstance(hdr, uapi.AttachSliceHdr):
            raise ArgumentError(f"hdr must be a uapi.AttachSliceHdr, not {type(hdr).__name__}")
        if entries is not None and not all(isinstance(e, uapi.SliceEntry) for e in entries):
            raise ArgumentError("entries must be uapi.SliceEntry records")
        old = self.policies["host-attach-hdr-size"] == "checked"
        if hdr.count == 0:
            raise IoctlError("EINVAL", "attach_slice: count is 0")
        # count * sizeof(entry) cannot overflow an unsigned long for a u32 count
        if old and hdr.size == 0:
            raise IoctlError("EINVAL", "attach_slice: hdr.size is 0")
        if hdr.dir not in (uapi.DMA_TO_DEVICE, uapi.DMA_FROM_DEVICE):
            raise IoctlError("EINVAL", f"attach_slice: dir {hdr.dir} is not 1 or 2")
        if entries is None:
            raise IoctlError("EINVAL", "attach_slice: data pointer is NULL")
        self._online()
        ch = self._dbc_range(hdr.dbc_id)
        if len(entries) < hdr.count:
            raise IoctlError("EFAULT", f"attach_slice: {hdr.count} entries announced, the user "
                                       f"buffer holds {len(entries)}")
        ents = list(entries[:hdr.count])
        if old:
            for i, e in enumerate(ents):
                check_slice_entry(e, hdr.size, i)
            bo = self._lookup(user, hdr.handle)
        else:
            bo = self._lookup(user, hdr.handle)
            for i, e in enumerate(ents):
                check_slice_entry(e, bo.size, i)
        if bo.sliced:
            raise IoctlError("EINVAL", f"attach_slice: BO {hdr.handle} is already sliced")
        if ch.usr != user:
            raise IoctlError("EINVAL", f"attach_slice: dbc {hdr.dbc_id} is not owned by user "
                                       f"{user}")
        if self.ssr_dbc == hdr.dbc_id:
            raise IoctlError("EPIPE", f"attach_slice: dbc {hdr.dbc_id} is in SSR")
        if old and bo.size < hdr.size:
            raise IoctlError("EINVAL", f"attach_slice: hdr.size {hdr.size} > BO size {bo.size}")
        slices: list[SliceRec] = []
        for i, e in enumerate(ents):  # qaic_map_one_slice
            segs = self._span(bo, e.offset, e.size)
            if segs is None:
                raise IoctlError("EINVAL", f"attach_slice: entry {i}: no DMA segments cover "
                                           f"offset {e.offset} size {e.size or _PAGE}")
            check_slice_encodable(e, i)
            slices.append(SliceRec(e.offset, e.size, len(segs),
                                   self._encode(hdr.dir, e, segs)))
        total = sum(s.nents for s in slices)
        if total > ch.nelem:
            raise IoctlError("ENOSPC", f"attach_slice: {total} request elements do not fit a "
                                       f"ring of {ch.nelem}")
        bo.slices, bo.total_slice_nents = slices, total
        bo.dir, bo.dbc_id, bo.nr_slice = hdr.dir, hdr.dbc_id, hdr.count
        bo.sliced, bo.done = True, True
        ch.bo_list[bo.key] = bo

    def _detach(self, bo: Bo) -> None:
        """detach_slice_bo: free slices, unprepare, reinit (done), off the bo_list."""
        if bo.dbc_id is not None:
            self.ch[bo.dbc_id].bo_list.pop(bo.key, None)
        bo.slices, bo.total_slice_nents, bo.nr_slice = [], 0, 0
        bo.dir, bo.dbc_id = 0, None
        bo.sliced, bo.done = False, True

    def detach_slice(self, user: int, handle: int, pad: int = 0) -> None:
        """DRM_IOCTL_QAIC_DETACH_SLICE_BO (qaic_detach_slice_bo_ioctl)."""
        self._client(user)
        _int("handle", handle, 32)
        _int("pad", pad, 32)
        if pad:
            raise IoctlError("EINVAL", "detach_slice: pad must be 0")
        self._online()
        bo = self._lookup(user, handle)
        if not bo.sliced:
            raise IoctlError("EINVAL", f"detach_slice: BO {handle} is not sliced")
        assert bo.dbc_id is not None
        if self.ch[bo.dbc_id].usr != user:
            raise IoctlError("EINVAL", f"detach_slice: dbc {bo.dbc_id} is not owned by user "
                                       f"{user}")
        if bo.queued:
            raise IoctlError("EBUSY", f"detach_slice: BO {handle} is queued")
        self._detach(bo)

    # -- execute ------------------------------------------------------------
    def execute(self, user: int, dbc_id: int, handles_dirs: Sequence[tuple[int, int]]) -> None:
        """DRM_IOCTL_QAIC_EXECUTE_BO as one uninterrupted call."""
        ents = [(h, d, 0) for h, d in self._entries(handles_dirs, 2)]
        self._run_exec(user, dbc_id, ents, False)

    def partial_execute(self, user: int, dbc_id: int,
                        entries: Sequence[tuple[int, int, int]]) -> None:
        """DRM_IOCTL_QAIC_PARTIAL_EXECUTE_BO as one uninterrupted call."""
        self._run_exec(user, dbc_id, self._entries(entries, 3), True)

    @staticmethod
    def _entries(entries: Any, width: int) -> list[Any]:
        if not isinstance(entries, (list, tuple)):
            raise ArgumentError("execute entries must be a list")
        out = []
        for e in entries:
            if not isinstance(e, (list, tuple)) or len(e) != width:
                raise ArgumentError(f"execute entry {e!r} must have {width} fields")
            _int("handle", e[0], 32)
            _int("dir", e[1], 32)
            if width == 3:
                _int("resize", e[2], 64)
            out.append(tuple(e))
        return out

    def _run_exec(self, user: int, dbc_id: int, ents: list[Any], partial: bool) -> None:
        self._client(user)
        _int("dbc_id", dbc_id, 32)
        ch = self._exec_pre(user, dbc_id, ents)
        if self.use_req_lock and ch.lock is not None:
            raise ArgumentError(f"execute would block: req_lock of dbc {dbc_id} is held by "
                                f"thread {ch.lock}")
        head, tail, level = self._exec_read(ch)
        tail = self._exec_send(ch, user, ents, partial, head, tail)
        self._exec_commit(ch, user, ents, tail, level)

    def execute_begin(self, user: int, dbc_id: int, entries: Sequence[Any],
                      partial: bool = False) -> int:
        """Start an ioctl thread inside EXECUTE_BO (or PARTIAL_EXECUTE_BO); its phases
        become ``exec`` actions.  Returns the thread id; see :meth:`execute_result`."""
        self._client(user)
        _int("dbc_id", dbc_id, 32)
        ents = (self._entries(entries, 3) if partial
                else [(h, d, 0) for h, d in self._entries(entries, 2)])
        th = ExecThread(self._next_tid, user, dbc_id, ents, partial)
        self._next_tid += 1
        self.threads[th.tid] = th
        try:
            self._exec_pre(user, dbc_id, ents)
        except IoctlError as e:
            th.error, th.phase = e, Phase.DONE
        return th.tid

    def execute_result(self, tid: int) -> IoctlError | None:
        """The finished thread's outcome (None = success); forgets the thread."""
        th = self.threads.get(tid)
        if th is None or th.phase is not Phase.DONE:
            raise ArgumentError(f"exec thread {tid!r} has not finished")
        del self.threads[tid]
        return th.error

    def _exec_runnable(self, th: ExecThread) -> bool:
        if th.phase is Phase.DONE:
            return False
        if th.phase is Phase.LOCK and self.use_req_lock:
            return self.ch[th.dbc_id].lock is None
        return True

    def _exec_step(self, th: ExecThread) -> None:
        ch = self.ch[th.dbc_id]
        try:
            if th.phase is Phase.LOCK:
                if self.use_req_lock:
                    ch.lock = th.tid
                th.phase = Phase.READ
            elif th.phase is Phase.READ:
                th.head, th.tail, th.queue_level = self._exec_read(ch)
                th.phase = Phase.SEND
            elif th.phase is Phase.SEND:
                th.tail = self._exec_send(ch, th.user, th.entries, th.partial, th.head, th.tail)
                th.phase = Phase.COMMIT
            elif th.phase is Phase.COMMIT:
                self._exec_commit(ch, th.user, th.entries, th.tail, th.queue_level)
                self._unlock(ch, th)
                th.phase = Phase.DONE
        except IoctlError as e:
            self._unlock(ch, th)
            th.error, th.phase = e, Phase.DONE

    def _unlock(self, ch: HostChannel, th: ExecThread) -> None:
        if ch.lock == th.tid:
            ch.lock = None

    def _exec_pre(self, user: int, dbc_id: int, ents: list[Any]) -> HostChannel:
        """__qaic_execute_bo_ioctl before the lock: count, (copy), online, dbc range,
        ownership (-EPERM), SSR (-EPIPE)."""
        if not ents:
            raise IoctlError("EINVAL", "execute: count is 0")
        self._online()
        ch = self._dbc_range(dbc_id)
        if ch.usr is None or ch.usr != user:
            raise IoctlError("EPERM", f"execute: dbc {dbc_id} is not owned by user {user}")
        if self.ssr_dbc == dbc_id:
            raise IoctlError("EPIPE", f"execute: dbc {dbc_id} is in SSR")
        return ch

    def _exec_read(self, ch: HostChannel) -> tuple[int, int, int]:
        """readl REQ_HP, REQ_TP; U32_MAX is a PCI link error (-ENODEV)."""
        head = self._readl(ch.id, regs.REQ_HP)
        tail = self._readl(ch.id, regs.REQ_TP)
        if head == U32_MAX or tail == U32_MAX:
            raise IoctlError("ENODEV", "execute: PCI link error (register reads all ones)")
        level = tail - head if head <= tail else ch.nelem - (head - tail)
        return head, tail, level

    def _exec_send(self, ch: HostChannel, user: int, ents: list[Any], partial: bool,
                   head: int, tail: int) -> int:
        """send_bo_list_to_device: per BO lookup (-ENOENT), sliced (-EINVAL), resize
        (-EINVAL), already queued (-EINVAL), req_id, copy every slice (-EAGAIN).
        On failure every BO queued by this call is taken off the list again."""
        queued: list[Bo] = []
        try:
            for handle, _dir, resize in ents:  # the entry's dir is not checked by the driver
                bo = self._lookup(user, handle)
                if not bo.sliced:
                    raise IoctlError("EINVAL", f"execute: BO {handle} is not sliced")
                if partial and resize > bo.size:
                    raise IoctlError("EINVAL", f"partial_execute: resize {resize} > BO size "
                                               f"{bo.size}")
                if bo.queued:
                    raise IoctlError("EINVAL", f"execute: BO {handle} is already queued")
                bo.req_id = ch.next_req_id
                ch.next_req_id = int(arith.req_id_next(ch.next_req_id, U32))
                for sl in bo.slices:
                    tail = self._copy_slice(ch, bo, sl, partial, resize, head, tail)
                bo.done = False  # reinit_completion
                self._xfer_add(ch, bo)
                queued.append(bo)
        except IoctlError:
            for bo in reversed(queued):  # list_del_init of the BOs this call queued
                self._xfer_remove(ch, bo)
            raise
        return tail

    def _copy_slice(self, ch: HostChannel, bo: Bo, sl: SliceRec, partial: bool, resize: int,
                    head: int, tail: int) -> int:
        """copy_exec_reqs / copy_partial_exec_reqs: free-space check (-EAGAIN), copy with
        wrap; returns the new tail.  Partial: resize 0 or <= the slice's offset sends the
        slice with no DMA; resize inside the slice sends a shortened slice."""
        if partial and (resize == 0 or resize <= sl.offset):
            first_n, last_bytes = self._partial(sl, 0)
        elif partial and resize < sl.offset + sl.size:
            first_n, last_bytes = self._partial(sl, resize - sl.offset)
        else:
            if self._room(head, tail, ch.nelem) < sl.nents:
                raise IoctlError("EAGAIN", f"execute: {sl.nents} elements do not fit the "
                                           f"request ring now")
            self._write_full(ch, sl, bo.req_id, tail)
            return int(arith.ring_advance(tail, sl.nents, ch.nelem, U32))
        if self._room(head, tail, ch.nelem) < first_n + 1:
            raise IoctlError("EAGAIN", f"partial_execute: {first_n + 1} elements do not fit "
                                       f"the request ring now")
        self._write_partial(ch, sl, bo.req_id, tail, first_n, last_bytes)
        return int(arith.ring_advance(tail, first_n + 1, ch.nelem, U32))

    def _exec_commit(self, ch: HostChannel, user: int, ents: list[Any], tail: int,
                     level: int) -> None:
        """writel REQ_TP, then update_profiling_data; datapath polling schedules its work."""
        self._writel(ch.id, regs.REQ_TP, tail)
        for handle, _d, _r in ents:
            bo = self.users[user].bos.get(handle)
            if bo is None:
                break
            bo.queue_level_before = level
            level += bo.total_slice_nents
            bo.executions += 1
        if self.datapath_polling:
            ch.poll = True

    def _xfer_add(self, ch: HostChannel, bo: Bo) -> None:
        ch.xfer[bo.key] = bo
        bo.queued, bo.queued_on = True, ch.id

    def _xfer_remove(self, ch: HostChannel, bo: Bo) -> None:
        ch.xfer.pop(bo.key, None)
        bo.queued, bo.queued_on = False, None

    # -- wait / perf --------------------------------------------------------
    def wait_check(self, user: int, dbc_id: int, handle: int, timeout_ms: int,
                   pad: int = 0) -> bool:
        """DRM_IOCTL_QAIC_WAIT_BO without the sleep: validation in order, then whether the
        BO's completion has fired (the caller decides -ETIMEDOUT; timeout 0 means
        WAIT_DEFAULT_TIMEOUT_MS)."""
        self._client(user)
        for name, v in (("dbc_id", dbc_id), ("handle", handle), ("timeout_ms", timeout_ms),
                        ("pad", pad)):
            _int(name, v, 32)
        if pad:
            raise IoctlError("EINVAL", "wait: pad must be 0")
        self._online()
        ch = self._dbc_range(dbc_id)
        if ch.usr != user:
            raise IoctlError("EPERM", f"wait: dbc {dbc_id} is not owned by user {user}")
        if self.ssr_dbc == dbc_id:
            raise IoctlError("EPIPE", f"wait: dbc {dbc_id} is in SSR")
        bo = self._lookup(user, handle)
        return bo.done

    def perf_stats(self, user: int, dbc_id: int, handles: Sequence[int]) -> list[
            uapi.PerfStatsEntry]:
        """DRM_IOCTL_QAIC_PERF_STATS_BO: online, dbc range, then per entry lookup (-ENOENT),
        sliced (-EINVAL), sliced on this dbc (-EINVAL).  No ownership check.
        The model has no clock: latencies are 0."""
        self._client(user)
        _int("dbc_id", dbc_id, 32)
        if not isinstance(handles, (list, tuple)) or len(handles) > 0xFFFF:
            raise ArgumentError("perf_stats: handles must be a list of at most 65535 (u16 count)")
        for h in handles:
            _int("handle", h, 32)
        self._online()
        self._dbc_range(dbc_id)
        out = []
        for h in handles:
            bo = self._lookup(user, h)
            if not bo.sliced:
                raise IoctlError("EINVAL", f"perf_stats: BO {h} is not sliced")
            if bo.dbc_id != dbc_id:
                raise IoctlError("EINVAL", f"perf_stats: BO {h} is sliced on dbc {bo.dbc_id}, "
                                           f"not {dbc_id}")
            out.append(uapi.PerfStatsEntry(handle=h, queue_level_before=bo.queue_level_before,
                                           num_queue_element=bo.total_slice_nents))
        return out

    # -- the IRQ side as an actor -------------------------------------------
    def enabled(self) -> list[HostAction]:
        """Host events possible now, in a fixed order: MSIs, IRQ threads, polls, ioctls."""
        out: list[HostAction] = []
        intc = self.device.intc
        for v in intc.deliverable_vectors():
            if v == 0 and not self.single_msi:
                continue  # vector 0 is MHI's
            out.append(HostAction("irq", v))
        for ch in self.ch:
            s = ch.irq
            if s.pc or s.wake:
                out.append(HostAction("thread", ch.id))
        if self.datapath_polling:
            dev = self.device
            for ch in self.ch:
                if ch.poll and (not ch.xfer or ch.usr is None or not self.online
                                or dev.ch[ch.id].rsp_hp != dev.ch[ch.id].rsp_tp):
                    out.append(HostAction("poll", ch.id))
        for tid, th in self.threads.items():
            if self._exec_runnable(th):
                out.append(HostAction("exec", tid))
        return out

    def step(self, action: HostAction) -> None:
        if not self.is_enabled(action):
            raise ArgumentError(f"host action {action!r} is not enabled")
        kind = action.kind
        if kind == "thread":
            self._thread(self.ch[action.arg])
        elif kind == "irq":
            self._hard_irq(action.arg)
        elif kind == "poll":
            self._poll(self.ch[action.arg])
        else:
            self._exec_step(self.threads[action.arg])

    def is_enabled(self, action: Any) -> bool:
        """Whether ``action`` is among :meth:`enabled` (without building the list)."""
        if not isinstance(action, HostAction) or not isinstance(action.arg, int):
            return False
        kind, arg = action.kind, action.arg
        if kind == "thread":
            if not 0 <= arg < len(self.ch):
                return False
            s = self.ch[arg].irq
            return bool(s.pc or s.wake)
        if kind == "exec":
            th = self.threads.get(arg)
            return th is not None and self._exec_runnable(th)
        return action in self.enabled()

    def quiescent(self) -> bool:
        return not self.enabled()

    def _apply(self, ch: HostChannel, name: str) -> IrqState:
        """Apply irqproto transition ``name`` to the channel: do its register reads, check
        its guard, take its update, do its register writes and mask changes."""
        guard, update = self.proto[name]
        s = ch.irq
        for reg in irqproto.READS.get(name, ()):
            s = s.with_(**{reg: self._readl(ch.id, regs.RSP_HP if reg == "rsp_hp"
                                             else regs.RSP_TP)})
        if not guard(s, U32):
            raise AssertionError(f"irqproto {name} not enabled in {s}")  # host bug
        new = update(s, U32)
        if "rsp_hp" in irqproto.WRITES.get(name, ()):
            self._writel(ch.id, regs.RSP_HP, self._head_to_write(ch, new.rsp_hp))
        self._sync_mask(ch, s.depth, new.depth)
        ch.irq = new
        return new

    def _head_to_write(self, ch: HostChannel, head: int) -> int:
        return head

    def _sync_mask(self, ch: HostChannel, old: int, new: int) -> None:
        """disable_irq_nosync / enable_irq: the line is masked while the depth is > 0."""
        if self._mask_on_irq and (old == 0) != (new == 0):
            v = self.device.vector(ch.id)
            if new:
                self.device.intc.mask(v)
            else:
                self.device.intc.unmask(v)

    def _decide(self, ch: HostChannel, names: tuple[str, ...]) -> str:
        """The one transition among ``names`` whose guard holds (no register reads)."""
        hits = [n for n in names if n in self.proto and self.proto[n][0](ch.irq, U32)]
        if len(hits) != 1:
            raise AssertionError(f"irqproto: {hits} enabled among {names}")  # host bug
        return hits[0]

    def _hard_irq(self, v: int) -> None:
        """dbc_irq_handler for every DBC on vector ``v`` (all of them in single-MSI mode)."""
        self.device.intc.ack(v)
        for ch in self.ch:
            if self.device.vector(ch.id) != v:
                continue
            if self.datapath_polling or ch.usr is None:
                continue  # IRQ_HANDLED at once
            hp = self._readl(ch.id, regs.RSP_HP)
            if hp == U32_MAX:
                continue  # IRQ_NONE
            tp = self._readl(ch.id, regs.RSP_TP)
            if tp == U32_MAX:
                continue
            guard, update = self.proto["hard_irq"]
            s = ch.irq.with_(rsp_hp=hp, rsp_tp=tp, pending=True)
            new = update(s, U32)
            self._sync_mask(ch, s.depth, new.depth)
            ch.irq = new

    def _error_out(self, ch: HostChannel, force: bool = False) -> None:
        """dbc_irq_threaded_fn ``error_out``: enable_irq (or re-arm polling) and return.

        ``force``: release_dbc waits (synchronize_srcu) for a running thread, so a
        release ends every run the thread still owes at once.
        """
        d = ch.irq.depth
        nd = d
        if self._mask_on_irq:
            nd = 0 if force else max(d - 1, 0)
        self._sync_mask(ch, d, nd)
        ch.irq = ch.irq.with_(depth=nd, pc=int(PC.IDLE), wake=False if force else ch.irq.wake)
        if self.datapath_polling:
            ch.poll = True

    def _thread(self, ch: HostChannel) -> None:
        """One run of the IRQ thread up to its next interleaving point (a register access
        whose timing against the device matters)."""
        pc = ch.irq.pc
        if pc == PC.IDLE:
            hp = self._readl(ch.id, regs.RSP_HP)
            if hp == U32_MAX:
                self._error_out(ch)
                return
            guard, update = self.proto["thread_start"]
            s = ch.irq.with_(rsp_hp=hp)
            assert guard(s, U32)
            ch.irq = update(s, U32)
            pc = PC.READ_TAIL
        if pc == PC.READ_TAIL:
            if ch.usr is None:
                self._error_out(ch)
                return
            tp = self._readl(ch.id, regs.RSP_TP)
            if tp == U32_MAX:
                self._error_out(ch)
                return
            guard, update = self.proto["read_tail"]
            ch.irq = update(ch.irq.with_(rsp_tp=tp), U32)
            name = self._decide(ch, ("poll_empty", "give_up", "start_drain"))
            self._apply(ch, name)
        elif pc == PC.DRAIN:
            self._drain(ch)
            self._apply(ch, "end_drain")
        elif pc == PC.WRITE_HEAD:
            self._apply(ch, "write_head")
        elif pc == PC.UNMASK:
            self._apply(ch, "unmask")
            if self.datapath_polling:
                ch.poll = True  # schedule_work(&dbc->poll_work)
        elif pc == PC.RECHECK:
            tp = self._readl(ch.id, regs.RSP_TP)
            if tp == U32_MAX:
                ch.irq = ch.irq.with_(pc=int(PC.IDLE))
                return
            guard, update = self.proto["recheck"]
            s = ch.irq.with_(rsp_tp=tp)
            new = update(s, U32)
            self._sync_mask(ch, s.depth, new.depth)
            ch.irq = new
        else:  # pragma: no cover - CHECK is never a resting point
            raise AssertionError(f"IRQ thread of dbc {ch.id} rests at {pc}")

    def _poll(self, ch: HostChannel) -> None:
        """qaic_irq_polling_work, one look: stop when nothing is queued or the channel
        is gone; wake the IRQ thread when a response is there."""
        if not self.online or ch.usr is None or not ch.xfer:
            ch.poll = False
            return
        hp = self._readl(ch.id, regs.RSP_HP)
        tp = self._readl(ch.id, regs.RSP_TP)
        if hp == U32_MAX or tp == U32_MAX:
            ch.poll = False
            return
        if hp != tp:
            ch.irq = ch.irq.with_(wake=True)  # irq_wake_thread
            ch.poll = False

    def _complete(self, ch: HostChannel, bo: Bo) -> None:
        """All of a BO's slices answered: off the xfer list, completion fires."""
        self._xfer_remove(ch, bo)
        bo.nr_slice_xfer_done = 0
        bo.done = True
        bo.completions += 1
        self.completions.append(bo.key)

    # -- data-path hooks (the two hosts differ here) ---------------------------
    def _span(self, bo: Bo, offset: int, size: int) -> Any:
        """The slice's DMA pieces (a sized collection), or None (-EINVAL)."""
        raise NotImplementedError

    def _encode(self, dir: int, ent: uapi.SliceEntry, segs: list[tuple[int, int]]) -> Any:
        raise NotImplementedError

    def _partial(self, sl: SliceRec, rel: int) -> tuple[int, int]:
        raise NotImplementedError

    def _write_full(self, ch: HostChannel, sl: SliceRec, req_id: int, tail: int) -> None:
        raise NotImplementedError

    def _write_partial(self, ch: HostChannel, sl: SliceRec, req_id: int, tail: int,
                       first_n: int, last_bytes: int) -> None:
        raise NotImplementedError

    def _drain(self, ch: HostChannel) -> None:
        raise NotImplementedError
