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
"""

from __future__ import annotations

from qaicmodel import arith
from qaicmodel.spec.host.records import Bo, HostChannel
from qaicmodel.spec.host.reference import SpecHost

__all__ = ["NoRecheckHost", "NoReserveHost", "NoLockHost", "OverreadHost", "EarlyCompleteHost",
           "DoubleCompleteHost", "BROKEN"]


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


#: every broken host and the finding rules that may catch it
BROKEN: dict[type, tuple[str, ...]] = {
    NoRecheckHost: ("COSIM-STRANDED", "COSIM-LOST-COMPLETE"),
    NoReserveHost: ("COSIM-REQ-OVERRUN", "COSIM-DEVICE-RULE", "COSIM-REQ-OVERWRITE",
                    "COSIM-LOST-COMPLETE"),
    NoLockHost: ("COSIM-REQ-OVERWRITE", "COSIM-REQ-OVERRUN", "COSIM-LOST-COMPLETE",
                 "COSIM-DEVICE-RULE"),
    OverreadHost: ("COSIM-RSP-PAST-READ", "COSIM-DEVICE-RULE"),
    EarlyCompleteHost: ("COSIM-DATA-MISMATCH", "COSIM-DOUBLE-COMPLETE", "COSIM-LOST-COMPLETE"),
    DoubleCompleteHost: ("COSIM-DOUBLE-COMPLETE", "COSIM-DATA-MISMATCH"),
}
