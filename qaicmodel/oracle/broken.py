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

:data:`BROKEN_HOSTS` registers every one of them (tests/test_conform.py and
tests/test_broken_hosts.py take their lists from it; a test checks that every host
class of this module is registered).  :data:`BROKEN` is the co-simulation subset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from qaicmodel import arith
from qaicmodel.impl.host import ImplHost
from qaicmodel.spec.host.records import Bo, HostChannel
from qaicmodel.spec.host.reference import SpecHost

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
    )
}

#: the co-simulation subset: host class -> the finding rules that may catch it
BROKEN: dict[type, tuple[str, ...]] = {
    b.cls: b.cosim_rules for b in BROKEN_HOSTS.values() if b.cosim_rules
}
