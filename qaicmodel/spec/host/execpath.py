"""EXECUTE_BO, PARTIAL_EXECUTE_BO, WAIT_BO and PERF_STATS_BO of the shared host core.

A mixin of :class:`qaicmodel.spec.host.core.HostCore` (split out of ``core.py``): the
execute phases as an ioctl thread (lock, register reads, send, commit; qaic_data.c
__qaic_execute_bo_ioctl, send_bo_list_to_device, copy_exec_reqs,
copy_partial_exec_reqs), WAIT_BO with its post-wake checks (qaic_wait_bo_ioctl) and
PERF_STATS_BO (qaic_perf_stats_bo_ioctl), checks in the driver's order (6.12 and 7.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qaicmodel import arith
from qaicmodel.arith import U32
from qaicmodel.errors import ArgumentError, IoctlError
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.host import kernels, uapi
from qaicmodel.spec.host.records import (
    Bo,
    Client,
    ExecThread,
    HostChannel,
    Phase,
    SliceRec,
    WaitThread,
)
from qaicmodel.spec.host.validate import U32_MAX, check_uint

__all__ = ["ExecPath"]


class ExecPath:
    """The execute / wait / perf-stats ioctls of :class:`HostCore`."""

    if TYPE_CHECKING:
        kernel: Any
        users: dict[int, Client]
        ch: list[HostChannel]
        threads: dict[int, ExecThread]
        waiters: dict[int, WaitThread]
        _next_tid: int
        use_req_lock: bool
        datapath_polling: bool
        ssr_dbc: int | None

        def _client(self, user: Any) -> Client: ...
        def _online(self) -> None: ...
        def _lookup(self, user: int, handle: Any) -> Bo: ...
        def _dbc_range(self, dbc_id: int) -> HostChannel: ...
        def _readl(self, dbc: int, reg: int) -> int: ...
        def _writel(self, dbc: int, reg: int, val: int) -> None: ...
        def _room(self, head: int, tail: int, nelem: int) -> int: ...
        def _partial(self, sl: SliceRec, rel: int) -> tuple[int, int]: ...
        def _write_full(self, ch: HostChannel, sl: SliceRec, req_id: int, tail: int) -> None: ...
        def _write_partial(
            self,
            ch: HostChannel,
            sl: SliceRec,
            req_id: int,
            tail: int,
            first_n: int,
            last_bytes: int,
        ) -> None: ...

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
        check_uint("dbc_id", dbc_id, 32)
        check_uint("handle", handle, 32)
        check_uint("timeout_ms", timeout_ms, 32)
        check_uint("pad", pad, 32)
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
