"""The shared host core: what both hosts must run as *one piece of code*.

:class:`HostCore` holds client/BO/channel bookkeeping, every ioctl's validation in the
driver's order (:mod:`qaicmodel.spec.host.validate`), the execute phases, and (through
:class:`~qaicmodel.spec.host.irqside.IrqSide`) the interrupt side.  The interface it
implements is :class:`qaicmodel.spec.host.protocol.Host`; a host subclass supplies the
data-path hooks (``_span``, ``_encode``, ``_partial``, ``_write_full``,
``_write_partial``, ``_drain``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qaicmodel import arith
from qaicmodel.arith import U32
from qaicmodel.errors import ArgumentError, IoctlError
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.host import irqproto, kernels, uapi
from qaicmodel.spec.host.irqproto import PC
from qaicmodel.spec.host.irqside import IrqSide
from qaicmodel.spec.host.records import (
    Bo,
    Client,
    ExecThread,
    HostChannel,
    Phase,
    SliceRec,
    WaitThread,
)
from qaicmodel.spec.host.validate import (
    MAX_BO_SIZE,
    U32_MAX,
    check_create_bo,
    check_slice_encodable,
    check_slice_entry,
    check_uint,
)
from qaicmodel.spec.policies import (
    HOST_ATTACH_HDR_SIZE,
    MSI_WHILE_MASKED,
    HostAttachHdrSize,
)

__all__ = [
    "HostCore",
    "activate_channel",
    "deactivate_channel",
    "BULK_XFER",
    "GEN_COMPLETION",
    "INBOUND_XFER",
    "OUTBOUND_XFER",
]

# qaic_data.c request element bits
BULK_XFER = 1 << 3
GEN_COMPLETION = 1 << 4
INBOUND_XFER = 1
OUTBOUND_XFER = 2
_PAGE = arith.PAGE_SIZE

# ---------------------------------------------------------------------------
# Policies where driver versions differ observably: qaicmodel/spec/policies/host.py

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


class HostCore(IrqSide):
    """Bookkeeping, validation, execute phases and the IRQ thread of the qaic data path.

    Subclasses supply the data path (see the module docstring).  Class
    attributes that broken hosts change: ``recheck`` (missed-event check),
    ``use_req_lock`` (v6.18 req_lock).
    """

    recheck = True
    use_req_lock = True

    def __init__(
        self,
        device: Any,
        *,
        sg_max_segment: int | None = None,
        datapath_polling: bool = False,
        num_events: int = irqproto.NUM_EVENTS,
        num_delays: int = irqproto.NUM_DELAYS,
        max_bo_size: int = MAX_BO_SIZE,
    ) -> None:
        if sg_max_segment is not None and (
            not isinstance(sg_max_segment, int)
            or isinstance(sg_max_segment, bool)
            or sg_max_segment <= 0
            or sg_max_segment % _PAGE
        ):
            raise ArgumentError(
                f"sg_max_segment must be a positive multiple of {_PAGE} or "
                f"None, got {sg_max_segment!r}"
            )
        for name, v in (("num_events", num_events), ("num_delays", num_delays)):
            if (
                not isinstance(v, int)
                or isinstance(v, bool)
                or v < (1 if name == "num_events" else 0)
            ):
                raise ArgumentError(f"{name} must be a non-negative int, got {v!r}")
        self.device = device
        self.policies = device.policies
        #: the driver version followed (spec/host/kernels.py): the device's ``kernel``
        self.kernel = kernels.of(device)
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
        self.waiters: dict[int, WaitThread] = {}  # WAIT_BO threads (wait_begin)
        self._next_tid = 1
        self._mask_on_irq = not (self.single_msi or self.datapath_polling)
        self.proto = irqproto.make_transitions(
            recheck=self.recheck,
            msi_while_masked=self.policies[MSI_WHILE_MASKED],
            mask_on_irq=self._mask_on_irq,
            num_events=num_events,
            num_delays=num_delays,
        )
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
        check_uint("dbc_id", dbc_id, 32)
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

    def dbc_disable(self, dbc_id: int) -> None:
        """disable_dbc (6.12/7.2 qaic_data.c), before an NNC deactivate is sent: usr = NULL
        (then synchronize_srcu); the FIFOs and BOs stay until release_dbc."""
        self.ch[dbc_id].usr = None

    def dbc_enable(self, dbc_id: int, user: Any) -> None:
        """enable_dbc (qaic_data.c), when the device refuses a deactivate: usr = the
        *caller* (the driver trusts the id and the user)."""
        self.ch[dbc_id].usr = user if isinstance(user, int) and user in self.users else None

    def dbc_ssr(self, dbc_id: int) -> None:
        """qaic_dbc_enter_ssr (7.2 qaic_data.c): ssr_dbc = D; release_dbc follows."""
        if kernels.behaviour(self.kernel, "datapath-ssr-epipe"):
            self.ssr_dbc = dbc_id

    def _on_assign(self, ch: HostChannel) -> None:
        """Hook: a channel got FIFOs (hosts build ring views here)."""

    def dbc_release(self, dbc_id: int) -> None:
        """release_dbc (qaic_data.c): complete and drop queued BOs, detach every BO sliced
        on the channel, forget the FIFOs."""
        ch = self.ch[dbc_id]
        if not ch.in_use:
            return
        busy = [
            t.tid for t in self.threads.values() if t.dbc_id == dbc_id and t.phase is not Phase.DONE
        ]
        if busy:
            raise ArgumentError(
                f"dbc_release({dbc_id}) would wait (synchronize_srcu) for "
                f"EXECUTE_BO thread(s) {busy}; step them first"
            )
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
            raise IoctlError(
                "ENOMEM", f"create_bo: {aligned} bytes is more than the model's {self.max_bo_size}"
            )
        arr = np.zeros(aligned, dtype=np.uint8)  # __GFP_ZERO
        seg = self.sg_max_segment or aligned
        segments = []
        for off in range(0, aligned, seg):
            n = min(seg, aligned - off)
            segments.append((self.device.host_mem.map_array(arr[off : off + n]), n))
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
        check_uint("handle", handle, 32)
        self._online()
        return self._lookup(user, handle).array

    def attach_slice(
        self, user: int, hdr: uapi.AttachSliceHdr, entries: Sequence[uapi.SliceEntry] | None
    ) -> None:
        """DRM_IOCTL_QAIC_ATTACH_SLICE_BO (qaic_attach_slice_bo_ioctl), checks in order.

        ``entries=None`` is a NULL ``data`` pointer; fewer entries than
        ``hdr.count`` is a user buffer too short (-EFAULT from copy_from_user).
        """
        self._client(user)
        if not isinstance(hdr, uapi.AttachSliceHdr):
            raise ArgumentError(f"hdr must be a uapi.AttachSliceHdr, not {type(hdr).__name__}")
        if entries is not None and not all(isinstance(e, uapi.SliceEntry) for e in entries):
            raise ArgumentError("entries must be uapi.SliceEntry records")
        old = self.policies[HOST_ATTACH_HDR_SIZE] is HostAttachHdrSize.CHECKED
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
            raise IoctlError(
                "EFAULT",
                f"attach_slice: {hdr.count} entries announced, the user "
                f"buffer holds {len(entries)}",
            )
        ents = list(entries[: hdr.count])
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
            raise IoctlError(
                "EINVAL", f"attach_slice: dbc {hdr.dbc_id} is not owned by user {user}"
            )
        if self.ssr_dbc == hdr.dbc_id and self._epipe:
            raise IoctlError("EPIPE", f"attach_slice: dbc {hdr.dbc_id} is in SSR")
        if old and bo.size < hdr.size:
            raise IoctlError("EINVAL", f"attach_slice: hdr.size {hdr.size} > BO size {bo.size}")
        slices: list[SliceRec] = []
        for i, e in enumerate(ents):  # qaic_map_one_slice
            segs = self._span(bo, e.offset, e.size)
            if segs is None:
                raise IoctlError(
                    "EINVAL",
                    f"attach_slice: entry {i}: no DMA segments cover "
                    f"offset {e.offset} size {e.size or _PAGE}",
                )
            check_slice_encodable(e, i)
            slices.append(SliceRec(e.offset, e.size, len(segs), self._encode(hdr.dir, e, segs)))
        total = sum(s.nents for s in slices)
        if total > ch.nelem:
            raise IoctlError(
                "ENOSPC", f"attach_slice: {total} request elements do not fit a ring of {ch.nelem}"
            )
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
        check_uint("handle", handle, 32)
        check_uint("pad", pad, 32)
        if pad:
            raise IoctlError("EINVAL", "detach_slice: pad must be 0")
        self._online()
        bo = self._lookup(user, handle)
        if not bo.sliced:
            raise IoctlError("EINVAL", f"detach_slice: BO {handle} is not sliced")
        assert bo.dbc_id is not None
        if self.ch[bo.dbc_id].usr != user:
            raise IoctlError("EINVAL", f"detach_slice: dbc {bo.dbc_id} is not owned by user {user}")
        if bo.queued:
            raise IoctlError("EBUSY", f"detach_slice: BO {handle} is queued")
        self._detach(bo)

    # -- execute ------------------------------------------------------------
    def execute(self, user: int, dbc_id: int, handles_dirs: Sequence[tuple[int, int]]) -> None:
        """DRM_IOCTL_QAIC_EXECUTE_BO as one uninterrupted call."""
        ents = [(h, d, 0) for h, d in self._entries(handles_dirs, 2)]
        self._run_exec(user, dbc_id, ents, False)

    def partial_execute(
        self, user: int, dbc_id: int, entries: Sequence[tuple[int, int, int]]
    ) -> None:
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
            check_uint("handle", e[0], 32)
            check_uint("dir", e[1], 32)
            if width == 3:
                check_uint("resize", e[2], 64)
            out.append(tuple(e))
        return out

    def _run_exec(self, user: int, dbc_id: int, ents: list[Any], partial: bool) -> None:
        self._client(user)
        check_uint("dbc_id", dbc_id, 32)
        ch = self._exec_pre(user, dbc_id, ents)
        if self.use_req_lock and ch.lock is not None:
            raise ArgumentError(
                f"execute would block: req_lock of dbc {dbc_id} is held by thread {ch.lock}"
            )
        head, tail, level = self._exec_read(ch)
        tail = self._exec_send(ch, user, ents, partial, head, tail)
        self._exec_commit(ch, user, ents, tail, level)

    def execute_begin(
        self, user: int, dbc_id: int, entries: Sequence[Any], partial: bool = False
    ) -> int:
        """Start an ioctl thread inside EXECUTE_BO (or PARTIAL_EXECUTE_BO); its phases
        become ``exec`` actions.  Returns the thread id; see :meth:`execute_result`."""
        self._client(user)
        check_uint("dbc_id", dbc_id, 32)
        ents = (
            self._entries(entries, 3)
            if partial
            else [(h, d, 0) for h, d in self._entries(entries, 2)]
        )
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
        if self.ssr_dbc == dbc_id and self._epipe:
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

    def _exec_send(
        self, ch: HostChannel, user: int, ents: list[Any], partial: bool, head: int, tail: int
    ) -> int:
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
                    raise IoctlError(
                        "EINVAL", f"partial_execute: resize {resize} > BO size {bo.size}"
                    )
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

    def _copy_slice(
        self,
        ch: HostChannel,
        bo: Bo,
        sl: SliceRec,
        partial: bool,
        resize: int,
        head: int,
        tail: int,
    ) -> int:
        """copy_exec_reqs / copy_partial_exec_reqs: free-space check (-EAGAIN), copy with
        wrap; returns the new tail.  Partial: resize 0 or <= the slice's offset sends the
        slice with no DMA; resize inside the slice sends a shortened slice."""
        if partial and (resize == 0 or resize <= sl.offset):
            first_n, last_bytes = self._partial(sl, 0)
        elif partial and resize < sl.offset + sl.size:
            first_n, last_bytes = self._partial(sl, resize - sl.offset)
        else:
            if self._room(head, tail, ch.nelem) < sl.nents:
                raise IoctlError(
                    "EAGAIN", f"execute: {sl.nents} elements do not fit the request ring now"
                )
            self._write_full(ch, sl, bo.req_id, tail)
            return int(arith.ring_advance(tail, sl.nents, ch.nelem, U32))
        if self._room(head, tail, ch.nelem) < first_n + 1:
            raise IoctlError(
                "EAGAIN", f"partial_execute: {first_n + 1} elements do not fit the request ring now"
            )
        self._write_partial(ch, sl, bo.req_id, tail, first_n, last_bytes)
        return int(arith.ring_advance(tail, first_n + 1, ch.nelem, U32))

    def _exec_commit(
        self, ch: HostChannel, user: int, ents: list[Any], tail: int, level: int
    ) -> None:
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
    def wait_check(
        self, user: int, dbc_id: int, handle: int, timeout_ms: int, pad: int = 0
    ) -> bool:
        """DRM_IOCTL_QAIC_WAIT_BO without the sleep: validation in order, then whether the
        BO's completion has fired (the caller decides -ETIMEDOUT; timeout 0 means
        WAIT_DEFAULT_TIMEOUT_MS)."""
        self._client(user)
        for name, v in (
            ("dbc_id", dbc_id),
            ("handle", handle),
            ("timeout_ms", timeout_ms),
            ("pad", pad),
        ):
            check_uint(name, v, 32)
        if pad:
            raise IoctlError("EINVAL", "wait: pad must be 0")
        self._online()
        ch = self._dbc_range(dbc_id)
        if ch.usr != user:
            raise IoctlError("EPERM", f"wait: dbc {dbc_id} is not owned by user {user}")
        if self.ssr_dbc == dbc_id and self._epipe:
            raise IoctlError("EPIPE", f"wait: dbc {dbc_id} is in SSR")
        bo = self._lookup(user, handle)
        return bo.done

    @property
    def _epipe(self) -> bool:
        """7.2 only: the data path's -EPIPE checks on qdev->ssr_dbc (6.12 has none)."""
        return bool(kernels.behaviour(self.kernel, "datapath-ssr-epipe"))

    def wait_begin(self, user: int, dbc_id: int, handle: int, timeout_ms: int, pad: int = 0) -> int:
        """WAIT_BO as an ioctl thread: the checks before the sleep now (an error finishes
        the thread at once); it sleeps until the BO's completion fires (also by
        release_dbc's complete_all) and then wakes -- a ``wake`` action, see
        :meth:`_wake`.  Returns the thread id; :meth:`wait_result` gives the outcome."""
        tid = self._next_tid
        self._next_tid += 1
        w = WaitThread(tid, user, dbc_id, None)
        self.waiters[tid] = w
        try:
            self.wait_check(user, dbc_id, handle, timeout_ms, pad)
            w.bo = self._lookup(user, handle)
        except IoctlError as e:
            w.error, w.finished = e, True
        return tid

    def _wake(self, w: WaitThread) -> None:
        """qaic_wait_bo_ioctl after wait_for_completion_interruptible_timeout: ``if
        (!dbc->usr) ret = -EPERM`` (6.12, 7.2); 7.2 then ``if (dbc->id == qdev->ssr_dbc)
        ret = -EPIPE``."""
        ch = self.ch[w.dbc_id]
        if ch.usr is None:
            w.error = IoctlError("EPERM", f"wait: dbc {w.dbc_id} was released while waiting")
        if self._epipe and self.ssr_dbc == w.dbc_id:
            w.error = IoctlError("EPIPE", f"wait: dbc {w.dbc_id} entered SSR while waiting")
        w.finished = True

    def wait_result(self, tid: int, abandon: bool = False) -> IoctlError | None:
        """The woken WAIT_BO thread's outcome (None = 0); forgets it.  ``abandon``: the
        harness gives up on a thread that can never wake (its -ETIMEDOUT)."""
        w = self.waiters.get(tid)
        if w is None or not (w.finished or abandon):
            raise ArgumentError(f"wait thread {tid!r} has not woken")
        del self.waiters[tid]
        return w.error

    def perf_stats(
        self, user: int, dbc_id: int, handles: Sequence[int]
    ) -> list[uapi.PerfStatsEntry]:
        """DRM_IOCTL_QAIC_PERF_STATS_BO: online, dbc range, then per entry lookup (-ENOENT),
        sliced (-EINVAL), sliced on this dbc (-EINVAL) -- those two 7.2 only (6.12
        qaic_perf_stats_bo_ioctl has neither).  No ownership check.
        The model has no clock: latencies are 0."""
        self._client(user)
        check_uint("dbc_id", dbc_id, 32)
        if not isinstance(handles, (list, tuple)) or len(handles) > 0xFFFF:
            raise ArgumentError("perf_stats: handles must be a list of at most 65535 (u16 count)")
        for h in handles:
            check_uint("handle", h, 32)
        self._online()
        self._dbc_range(dbc_id)
        out = []
        checks = kernels.behaviour(self.kernel, "perf-stats-slice-checks")  # 7.2 only
        for h in handles:
            bo = self._lookup(user, h)
            if not checks:
                pass
            elif not bo.sliced:
                raise IoctlError("EINVAL", f"perf_stats: BO {h} is not sliced")
            elif bo.dbc_id != dbc_id:
                raise IoctlError(
                    "EINVAL", f"perf_stats: BO {h} is sliced on dbc {bo.dbc_id}, not {dbc_id}"
                )
            out.append(
                uapi.PerfStatsEntry(
                    handle=h,
                    queue_level_before=bo.queue_level_before,
                    num_queue_element=bo.total_slice_nents,
                )
            )
        return out

    # -- the IRQ side as an actor -------------------------------------------
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

    def _write_partial(
        self, ch: HostChannel, sl: SliceRec, req_id: int, tail: int, first_n: int, last_bytes: int
    ) -> None:
        raise NotImplementedError

    def _drain(self, ch: HostChannel) -> None:
        raise NotImplementedError
