"""The shared host core: what both hosts must run as *one piece of code*.

:class:`HostCore` holds client/BO/channel bookkeeping, every ioctl's validation in the
driver's order (:mod:`qaicmodel.spec.host.validate`), the execute / wait / perf-stats
ioctls (through :class:`~qaicmodel.spec.host.execpath.ExecPath`), and (through
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
from qaicmodel.spec.dbc.memory import bo_backing, import_backing
from qaicmodel.spec.host import irqproto, kernels, uapi
from qaicmodel.spec.host.execpath import ExecPath
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


class HostCore(ExecPath, IrqSide):
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
        # The driver takes any queue size its overflow checks pass, 1 included (7.2
        # qaic_control.c encode_activate); a one-element ring never has room
        # (fifo_space_avail keeps one slot free), so every EXECUTE_BO is -EAGAIN.
        if not isinstance(nelem, int) or nelem < 1:
            raise ArgumentError(f"nelem must be an int >= 1, got {nelem!r}")
        ch.nelem, ch.req_q, ch.rsp_q = nelem, req_q, rsp_q
        ch.usr, ch.in_use = user, True
        depth = ch.irq.depth
        ch.irq = irqproto.initial(nelem).with_(depth=depth)
        ch.cache = None
        self._on_assign(ch)

    def dbc_disable(self, dbc_id: int) -> None:
        """disable_dbc (6.12/7.2 qaic_data.c), before an NNC deactivate is sent: usr = NULL
        (then synchronize_srcu); the FIFOs and BOs stay until release_dbc.

        synchronize_srcu(&dbc->ch_lock) waits for every WAIT_BO asleep on the channel
        (qaic_wait_bo_ioctl holds the read side across its sleep), and nothing the
        deactivate does before it returns completes their BOs: a waiter whose BO has
        not completed sleeps to its timeout, -ETIMEDOUT (measured on 7.2: D1,
        tests/uml/test_guest_datapath.py wait_thread_deactivate).  One whose BO has
        completed wakes after ``usr = NULL``: -EPERM (:meth:`_wake`)."""
        self.ch[dbc_id].usr = None
        for w in self.waiters.values():
            if w.dbc_id != dbc_id or w.finished or w.bo is None:
                continue
            if w.bo.done:
                self._wake(w)
            else:
                w.error = IoctlError("ETIMEDOUT", f"wait: dbc {dbc_id} was disabled (deactivate)")
                w.finished = True

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
        """DRM_IOCTL_QAIC_CREATE_BO: pad, size, online, then allocation (qaic_create_bo_ioctl).

        Backing (memory.bo_backing): real memory up to ``max_bo_size``, synthetic (sparse)
        above; -ENOMEM where create_sgt fails (its ``int nr_pages`` wraps to <= 0)."""
        c = self._client(user)
        aligned = check_create_bo(size, pad)
        self._online()
        got = bo_backing(
            self.device.host_mem,
            aligned,
            max_segment=self.sg_max_segment,
            dense_limit=self.max_bo_size,
        )
        if got is None:
            raise IoctlError("ENOMEM", f"create_bo: create_sgt cannot back {aligned} bytes")
        arr, segments = got
        handle = 1
        while handle in c.bos:  # idr_alloc(.., 1, 0): lowest free handle >= 1
            handle += 1
        c.bos[handle] = Bo(user=user, handle=handle, size=aligned, array=arr, segments=segments)
        return handle

    def import_bo(
        self, user: int, size: int, entries: Sequence[int] | None = None, merge: bool = True
    ) -> int:
        """PRIME import of a dma-buf of ``size`` bytes (qaic_gem_prime_import): any size but
        0 (-EINVAL); ``entries``/``merge``: the exporter's scatter table and an IOMMU
        (memory.import_backing).  Model-only entry point: the uapi has no such ioctl."""
        c = self._client(user)
        check_uint("size", size, 64)
        self._online()
        if size == 0:
            raise IoctlError("EINVAL", "import: the dma-buf's size is 0")
        arr, table = import_backing(self.device.host_mem, size, entries, merge=merge)
        handle = 1
        while handle in c.bos:  # drm_gem_handle_create: idr_alloc(.., 1, 0)
            handle += 1
        c.bos[handle] = Bo(
            user=user, handle=handle, size=size, array=arr, segments=list(table.segments)
        )
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
        if not self._fits(total, ch):
            raise IoctlError(
                "ENOSPC", f"attach_slice: {total} request elements do not fit a ring of {ch.nelem}"
            )
        bo.slices, bo.total_slice_nents = slices, total
        bo.dir, bo.dbc_id, bo.nr_slice = hdr.dir, hdr.dbc_id, hdr.count
        bo.sliced, bo.done = True, True
        ch.bo_list[bo.key] = bo

    def _fits(self, total: int, ch: HostChannel) -> bool:
        """qaic_attach_slice_bo_ioctl: a BO's request elements must fit the ring at once
        (-ENOSPC otherwise); a hook for conform's errno shadow."""
        return total <= ch.nelem

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
