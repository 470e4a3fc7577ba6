"""Deliberately broken hosts: each drops one thing the driver does, so the co-simulation
machines can show that the invariant guarding it can fail (tests/test_broken_hosts.py).

  NoRecheckHost   no missed-event check after enable_irq (dbc_irq_threaded_fn's
                  re-read of RSP_TP) -> COSIM-STRANDED when an MSI raised while
                  masked is lost (policy msi-while-masked=lost).
  NoReserveHost   free space without the reserved slot (fifo_space_avail's -1) ->
                  COSIM-REQ-OVERRUN / HOST-REQ-OVERRUN.
  NoLockHost      no req_lock around head read .. tail write (the pre-v6.18 driver,
                  fixed by "accel/qaic: Synchronize access to DBC request queue head &
                  tail pointer") -> COSIM-REQ-OVERWRITE / COSIM-LOST-COMPLETE.
  OverreadHost    writes RSP_HP one element past what it drained -> COSIM-RSP-PAST-READ.
  EarlyCompleteHost  completes a BO at its first slice's response ->
                  COSIM-DATA-MISMATCH.
  DoubleCompleteHost leaves a completed BO on the transfer list with its count ->
                  COSIM-DOUBLE-COMPLETE.

Hosts that break the ioctl side (caught by ``conform``'s result and data checks):

  SloppyDetach      DETACH_SLICE_BO of a queued BO succeeds without detaching.
  LosesCompletions  every second BO completion is dropped.
  LosesWrites       MMAP_BO hands out a private copy of the BO.

Bug classes of the driver's own fix history (upstream ``drivers/accel/qaic`` commit
subjects; each host re-creates the class on today's code, caught by ``conform``'s
generator alone):

  ReslicesHost       "accel/qaic: Validate if BO is sliced before slicing": ATTACH_SLICE_BO
                     of a sliced BO slices it again.
  NoFlushHost        "accel/qaic: Flush the transfer list again": release_dbc leaves BOs
                     on the transfer list (queued forever, their waiters never woken).
  AttachAnyOwnerHost "accel/qaic: Grab ch_lock during QAIC_ATTACH_SLICE_BO": attach does
                     not see that the channel is no longer the caller's (deactivated).
  HalfSlicedHost     "accel/qaic: Declare BO 'sliced' after all the operations are
                     complete" / "accel/qaic: Undo slicing setup done in
                     qaic_attach_slicing_bo()": a failed attach (ENOSPC) leaves the BO
                     marked sliced.
  WrapCheckHost      "accel/qaic: Add consistent integer overflow checks" / "accel/qaic:
                     Fix integer overflow in qaic_validate_req()": offset + size is
                     checked after a u64 wrap.
  LeakyCreateHost    "accel/qaic: Drop the reference to BO in error path of create BO
                     IOCTL": a failed CREATE_BO keeps a handle.
  EarlyLockHost      "accel/qaic: Validate user data before grabbing any lock": WAIT_BO
                     checks the channel before the user's argument (EPERM before EINVAL).
  NoWakeCheckHost    qaic_wait_bo_ioctl's checks after the sleep (``!dbc->usr`` -> EPERM,
                     7.2 SSR -> EPIPE) left out: a waiter released by deactivate says ok.
  PerfNoCheckHost    qaic_perf_stats_bo_ioctl without the 7.2 checks (BO sliced, sliced
                     on this channel): the 6.12 behaviour under a 7.2 kernel.
  StatusDropHost     a response with a non-zero completion code is not counted for its
                     BO (the driver only logs the status): the BO never completes.
  Offset32Host       "accel/qaic: Fix possible data corruption in BOs > 2G": the walk of
                     clone_range_of_sgt_for_slice runs on 32-bit offsets, so a slice at
                     4 GiB or more of a large (sparse) BO is cut from 4 GiB lower.
  SgWalkHost         "accel/qaic: Fix the for loop used to walk SG table": the BO's table
                     is walked by its CPU entries (orig_nents, for_each_sgtable_sg), each
                     entry's length paired with the bus address at its position; an
                     imported BO whose IOMMU merged its entries (nents < orig_nents)
                     gets elements at bus address 0 for every entry past the first.
  TwoFreeHost        fifo_space_avail keeping two slots free instead of one: EXECUTE_BO
                     says -EAGAIN with room for the BO (CONF-EAGAIN).

:data:`BROKEN_HOSTS` registers every one of them (tests/test_conform.py and
tests/test_broken_hosts.py take their lists from it; a test checks that every host
class of this module is registered).  :data:`BROKEN` is the co-simulation subset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from qaicmodel import arith
from qaicmodel.errors import IoctlError
from qaicmodel.impl.host import ImplHost
from qaicmodel.spec.dbc.memory import MATERIALISE_LIMIT, PAGE, SPARSE_SEGMENT
from qaicmodel.spec.host import uapi
from qaicmodel.spec.host.records import Bo, HostChannel
from qaicmodel.spec.host.reference import SpecHost

_U64 = (1 << 64) - 1

__all__ = [
    "NoRecheckHost",
    "NoReserveHost",
    "NoLockHost",
    "OverreadHost",
    "EarlyCompleteHost",
    "DoubleCompleteHost",
    "SloppyDetach",
    "LosesCompletions",
    "LosesWrites",
    "ReslicesHost",
    "NoFlushHost",
    "AttachAnyOwnerHost",
    "HalfSlicedHost",
    "WrapCheckHost",
    "LeakyCreateHost",
    "EarlyLockHost",
    "NoWakeCheckHost",
    "PerfNoCheckHost",
    "StatusDropHost",
    "Offset32Host",
    "SgWalkHost",
    "TwoFreeHost",
    "BrokenHost",
    "BROKEN_HOSTS",
    "BROKEN",
]


class NoRecheckHost(SpecHost):
    """Unmasks and returns without re-reading RSP_TP."""

    recheck = False


class NoReserveHost(SpecHost):
    """Counts every slot as usable: head - tail (+ nelem), no slot kept free."""

    def _room(self, head: int, tail: int, nelem: int) -> int:
        return super()._room(head, tail, nelem) + 1


class NoLockHost(SpecHost):
    """Two EXECUTE_BO threads may both read REQ_TP and copy to the same slots."""

    use_req_lock = False


class OverreadHost(SpecHost):
    """Frees one response slot more than it consumed."""

    def _head_to_write(self, ch: HostChannel, head: int) -> int:
        return int(arith.ring_advance(head, 1, ch.nelem))


class EarlyCompleteHost(SpecHost):
    """Treats the first response of a BO as its last."""

    def _response(self, ch: HostChannel, req_id: int, code: int) -> None:
        for bo in list(ch.xfer.values()):
            if bo.req_id == req_id:
                self._complete(ch, bo)
                return


class DoubleCompleteHost(SpecHost):
    """Completes a BO but keeps it on the transfer list, count not reset."""

    def _complete(self, ch: HostChannel, bo: Bo) -> None:
        n = bo.nr_slice_xfer_done
        super()._complete(ch, bo)
        bo.nr_slice_xfer_done = n
        ch.xfer[bo.key] = bo


class SloppyDetach(ImplHost):
    """Forgets DETACH_SLICE_BO's -EBUSY for a queued BO (qaic_data.c
    qaic_detach_slice_bo_ioctl) and reports success without detaching."""

    def detach_slice(self, user: int, handle: int, pad: int = 0) -> None:
        c = self.users.get(user)
        bo = c.bos.get(handle) if c is not None else None
        if bo is not None and bo.queued and pad == 0:
            return None
        return super().detach_slice(user, handle, pad)


class LosesCompletions(ImplHost):
    """Every second BO completion is dropped (the waiter never wakes)."""

    _n = 0

    def _complete(self, ch: Any, bo: Any) -> None:
        self._n += 1
        if self._n % 2:
            super()._complete(ch, bo)
        else:
            self._xfer_remove(ch, bo)


class LosesWrites(ImplHost):
    """MMAP_BO hands out a private copy, so the data never reaches the BO the device reads
    (CONF-DATA: the echo returns other bytes than were sent)."""

    def mmap_bo(self, user: int, handle: int) -> Any:
        return super().mmap_bo(user, handle).copy()


class ReslicesHost(ImplHost):
    """ATTACH_SLICE_BO of a sliced BO detaches it quietly and slices it again."""

    def attach_slice(self, user: int, hdr: Any, entries: Any) -> None:
        c = self.users.get(user)
        bo = c.bos.get(hdr.handle) if c is not None and hasattr(hdr, "handle") else None
        if bo is not None and bo.sliced and not bo.queued:
            self._detach(bo)
        return super().attach_slice(user, hdr, entries)


class NoFlushHost(ImplHost):
    """release_dbc without empty_xfer_list: queued BOs stay queued, never done."""

    def dbc_release(self, dbc_id: int) -> None:
        ch = self.ch[dbc_id]
        ch.xfer.clear()  # the BOs keep queued=True, done=False
        super().dbc_release(dbc_id)


class AttachAnyOwnerHost(ImplHost):
    """Attaches to a channel whatever its owner now is (no ch_lock, no recheck)."""

    def attach_slice(self, user: int, hdr: Any, entries: Any) -> None:
        dbc = getattr(hdr, "dbc_id", None)
        if not isinstance(dbc, int) or not 0 <= dbc < len(self.ch) or self.ch[dbc].usr == user:
            return super().attach_slice(user, hdr, entries)
        ch = self.ch[dbc]
        saved = ch.usr, ch.nelem
        ch.usr, ch.nelem = user, max(ch.nelem, 1 << 16)
        try:
            return super().attach_slice(user, hdr, entries)
        finally:
            ch.usr, ch.nelem = saved


class HalfSlicedHost(ImplHost):
    """An attach refused for ring size (ENOSPC) leaves the BO marked sliced."""

    def attach_slice(self, user: int, hdr: Any, entries: Any) -> None:
        try:
            return super().attach_slice(user, hdr, entries)
        except IoctlError as e:
            if e.name == "ENOSPC":
                bo = self.users[user].bos[hdr.handle]
                bo.sliced, bo.dbc_id, bo.dir, bo.nr_slice = True, hdr.dbc_id, hdr.dir, 0
            raise


class WrapCheckHost(ImplHost):
    """Checks ``(offset + size) mod 2**64 <= BO size``: a wrapping slice is accepted, and
    maps the BO from 0 to where the sum wrapped."""

    def attach_slice(self, user: int, hdr: Any, entries: Any) -> None:
        if entries is not None and all(isinstance(e, uapi.SliceEntry) for e in entries):
            fixed = []
            for e in entries:
                end = e.offset + e.size
                if end > _U64 and (end & _U64) > 0:
                    e = attrs.evolve(e, offset=0, size=end & _U64)
                fixed.append(e)
            entries = fixed
        return super().attach_slice(user, hdr, entries)


class LeakyCreateHost(ImplHost):
    """CREATE_BO that fails for size (ENOMEM) keeps the handle it took."""

    def create_bo(self, user: int, size: int, pad: int = 0) -> int:
        try:
            return super().create_bo(user, size, pad)
        except IoctlError as e:
            if e.name == "ENOMEM":
                super().create_bo(user, 4096)
            raise


class EarlyLockHost(ImplHost):
    """WAIT_BO checks channel ownership before its own argument (pad)."""

    def wait_check(
        self, user: int, dbc_id: int, handle: int, timeout_ms: int, pad: int = 0
    ) -> bool:
        if isinstance(dbc_id, int) and 0 <= dbc_id < len(self.ch) and user in self.users:
            if self.ch[dbc_id].usr != user:
                raise IoctlError("EPERM", f"wait: dbc {dbc_id} is not owned by user {user}")
        return super().wait_check(user, dbc_id, handle, timeout_ms, pad)


class NoWakeCheckHost(ImplHost):
    """A woken WAIT_BO returns 0 without looking at the channel again."""

    def _wake(self, w: Any) -> None:
        w.finished = True


class PerfNoCheckHost(ImplHost):
    """PERF_STATS_BO without the 7.2 sliced / same-channel checks."""

    def perf_stats(self, user: int, dbc_id: int, handles: Any) -> Any:
        kernel = self.kernel
        try:
            from qaicmodel.spec.host import kernels

            self.kernel = kernels.parse("6.12")
            return super().perf_stats(user, dbc_id, handles)
        finally:
            self.kernel = kernel


class StatusDropHost(SpecHost):
    """A response with a non-zero completion code is dropped, not counted for its BO."""

    def _response(self, ch: HostChannel, req_id: int, code: int) -> None:
        if code:
            return
        super()._response(ch, req_id, code)


class Offset32Host(SpecHost):
    """clone_range_of_sgt_for_slice with its offsets in 32 bits (before "accel/qaic: Fix
    possible data corruption in BOs > 2G" widened them): a slice at BO offset 4 GiB + x
    is built from the bytes at x (modelled as the walk running on offsets mod 2**32)."""

    def _span(self, bo: Bo, offset: int, size: int) -> list[tuple[int, int]] | None:
        return super()._span(bo, offset & 0xFFFFFFFF, size)


class SgWalkHost(SpecHost):
    """The BO's scatter table walked by its CPU entries (for_each_sgtable_sg, orig_nents;
    "accel/qaic: Fix the for loop used to walk SG table" moved it to the DMA segments):
    entry i's length with the DMA address at position i, which past ``nents`` is no
    segment (0 here).  Differs only for a table the IOMMU merged (PRIME imports)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._cpu_entries: dict[tuple[int, int], list[int]] = {}

    def import_bo(self, user: int, size: int, entries: Any = None, merge: bool = True) -> int:
        handle = super().import_bo(user, size, entries, merge)
        if entries is None:  # memory.import_backing's default: one page each, last short
            chunk = PAGE if size <= MATERIALISE_LIMIT else SPARSE_SEGMENT
            entries = [chunk] * (size // chunk) + ([size % chunk] if size % chunk else [])
        self._cpu_entries[(user, handle)] = [int(n) for n in entries]
        return handle

    def _span(self, bo: Bo, offset: int, size: int) -> list[tuple[int, int]] | None:
        cpu = self._cpu_entries.get((bo.user, bo.handle))
        if cpu is None or len(cpu) <= len(bo.segments):
            return super()._span(bo, offset, size)
        walked = [(bo.segments[i][0] if i < len(bo.segments) else 0, n) for i, n in enumerate(cpu)]
        return super()._span(attrs.evolve(bo, segments=walked), offset, size)


class TwoFreeHost(SpecHost):
    """fifo_space_avail keeping two request slots free, not one: EXECUTE_BO of a BO that
    fits exactly says -EAGAIN (a host that wastes the ring; CONF-EAGAIN)."""

    def _room(self, head: int, tail: int, nelem: int) -> int:
        return super()._room(head, tail, nelem) - 1


@attrs.frozen
class BrokenHost:
    """One registered broken host: what it breaks and what must catch it."""

    cls: type
    breaks: str  # the driver behaviour it drops (one sentence, with its source)
    cosim_rules: tuple[str, ...] = ()  # COSIM-* findings that may catch it (empty: conform only)
    policies: Mapping[str, str] = attrs.field(factory=dict)  # where the breakage is visible


#: every broken host of this module, by class name
BROKEN_HOSTS: dict[str, BrokenHost] = {
    b.cls.__name__: b
    for b in (
        BrokenHost(
            NoRecheckHost,
            "no missed-event check after enable_irq (qaic_data.c dbc_irq_threaded_fn)",
            ("COSIM-STRANDED", "COSIM-LOST-COMPLETE"),
            {"msi-while-masked": "lost"},
        ),
        BrokenHost(
            NoReserveHost,
            "free space without the reserved slot (qaic_data.c fifo_space_avail)",
            (
                "COSIM-REQ-OVERRUN",
                "COSIM-DEVICE-RULE",
                "COSIM-REQ-OVERWRITE",
                "COSIM-LOST-COMPLETE",
            ),
        ),
        BrokenHost(
            NoLockHost,
            "no req_lock around head read .. tail write (qaic_data.c, v6.18)",
            (
                "COSIM-REQ-OVERWRITE",
                "COSIM-REQ-OVERRUN",
                "COSIM-LOST-COMPLETE",
                "COSIM-DEVICE-RULE",
            ),
        ),
        BrokenHost(
            OverreadHost,
            "writes RSP_HP past what it drained (qaic_data.c dbc_irq_threaded_fn)",
            ("COSIM-RSP-PAST-READ", "COSIM-DEVICE-RULE"),
        ),
        BrokenHost(
            EarlyCompleteHost,
            "completes a BO at its first slice's response (qaic_data.c update_sequence)",
            ("COSIM-DATA-MISMATCH", "COSIM-DOUBLE-COMPLETE", "COSIM-LOST-COMPLETE"),
        ),
        BrokenHost(
            DoubleCompleteHost,
            "leaves a completed BO on the transfer list (qaic_data.c "
            "dbc_irq_threaded_fn list_del_init)",
            ("COSIM-DOUBLE-COMPLETE", "COSIM-DATA-MISMATCH"),
        ),
        BrokenHost(
            SloppyDetach,
            "DETACH_SLICE_BO of a queued BO succeeds (qaic_data.c "
            "qaic_detach_slice_bo_ioctl -EBUSY)",
        ),
        BrokenHost(
            LosesCompletions,
            "drops every second BO completion (qaic_data.c dbc_irq_threaded_fn complete_all)",
        ),
        BrokenHost(LosesWrites, "MMAP_BO maps a private copy (qaic_data.c qaic_mmap_bo_ioctl)"),
        BrokenHost(
            ReslicesHost, 'slices a sliced BO again ("accel/qaic: Validate if BO is sliced ...")'
        ),
        BrokenHost(
            NoFlushHost,
            'release_dbc leaves BOs queued ("accel/qaic: Flush the transfer list again")',
        ),
        BrokenHost(
            AttachAnyOwnerHost,
            "attaches to a channel no longer the caller's (\"accel/qaic: Grab ch_lock during "
            'QAIC_ATTACH_SLICE_BO")',
        ),
        BrokenHost(
            HalfSlicedHost,
            "a failed attach leaves the BO sliced (\"accel/qaic: Declare BO 'sliced' after all "
            'the operations are complete")',
        ),
        BrokenHost(
            WrapCheckHost,
            'offset + size checked after a u64 wrap ("accel/qaic: Add consistent integer '
            'overflow checks")',
        ),
        BrokenHost(
            LeakyCreateHost,
            'a failed CREATE_BO keeps its handle ("accel/qaic: Drop the reference to BO in '
            'error path of create BO IOCTL")',
        ),
        BrokenHost(
            EarlyLockHost,
            "WAIT_BO checks the channel before the user's argument (\"accel/qaic: Validate "
            'user data before grabbing any lock")',
        ),
        BrokenHost(
            NoWakeCheckHost,
            "no checks after WAIT_BO wakes (qaic_data.c qaic_wait_bo_ioctl !dbc->usr)",
        ),
        BrokenHost(
            PerfNoCheckHost,
            "PERF_STATS_BO without the 7.2 slice checks (qaic_data.c qaic_perf_stats_bo_ioctl)",
        ),
        BrokenHost(
            StatusDropHost,
            "drops responses with a non-zero status (qaic_data.c dbc_irq_threaded_fn logs it)",
        ),
        BrokenHost(
            Offset32Host,
            'slices a BO past 4 GiB from 32-bit offsets ("accel/qaic: Fix possible data '
            'corruption in BOs > 2G")',
        ),
        BrokenHost(
            SgWalkHost,
            'walks a merged scatter table by its CPU entries ("accel/qaic: Fix the for loop '
            'used to walk SG table")',
        ),
        BrokenHost(
            TwoFreeHost,
            "keeps two request slots free (qaic_data.c fifo_space_avail's reserve of one)",
        ),
    )
}

#: the co-simulation subset: host class -> the finding rules that may catch it
BROKEN: dict[type, tuple[str, ...]] = {
    b.cls: b.cosim_rules for b in BROKEN_HOSTS.values() if b.cosim_rules
}
