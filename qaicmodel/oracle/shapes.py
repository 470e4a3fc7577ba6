"""Correct hosts of other shapes: each differs from the reference host in *how* it drives
the device, never in what the driver's rules require, so ``conform`` (judging by rules,
:mod:`qaicmodel.oracle.rules`) must accept every one (tests/test_conform.py), while the
optional ``--differential`` mode (step-for-step equality with the reference host) may not.

  PollCountHost      another poll budget in the IRQ thread: one response per pass and
                     three empty re-reads before giving up (qaic_data.c NUM_EVENTS /
                     NUM_DELAYS are the driver's choice, not the device's rule).
  DoorbellPerBoHost  rings the doorbell (REQ_TP) after each BO of an EXECUTE_BO call
                     instead of once per call; every check (lookup, slicing, room) still
                     runs before the first doorbell, so an errno still queues nothing.
  MergingHost        merges DMA pieces of a slice that are contiguous in bus address into
                     one request element (as an IOMMU-merged scatter table would give;
                     lengths stay within the 32-bit ``pcie_dma_len``), so a slice needs
                     fewer elements.
  AtomicExecHost     lockless-style EXECUTE_BO threads: no req_lock; a thread reads the
                     ring pointers, copies and rings the doorbell in one uninterrupted
                     step, so no other thread can come between (ordering by atomicity
                     instead of a mutex).

:data:`CORRECT_SHAPES` registers them (the tests iterate it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qaicmodel.impl.host import ImplHost
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.host.records import Bo, ExecThread, HostChannel, Phase
from qaicmodel.spec.host.reference import SpecHost

__all__ = [
    "AtomicExecHost",
    "CORRECT_SHAPES",
    "DoorbellPerBoHost",
    "MergingHost",
    "PollCountHost",
]

_LEN_MAX = 0xFFFF_FFFF  # pcie_dma_len is 32 bits (aic100.rst request_elem)


class PollCountHost(ImplHost):
    """One response per drain pass, three empty re-reads before unmasking."""

    def __init__(self, device: Any, **kw: Any) -> None:
        kw.setdefault("num_events", 1)
        kw.setdefault("num_delays", 3)
        super().__init__(device, **kw)


class DoorbellPerBoHost(ImplHost):
    """A REQ_TP write after each BO's elements (all checks done before the first)."""

    _bo_tails: list[int]
    _last_tail = 0

    def _exec_send(
        self, ch: HostChannel, user: int, ents: list[Any], partial: bool, head: int, tail: int
    ) -> int:
        self._bo_tails = []
        return super()._exec_send(ch, user, ents, partial, head, tail)

    def _copy_slice(self, ch: HostChannel, bo: Bo, *args: Any) -> int:
        self._last_tail = super()._copy_slice(ch, bo, *args)
        return self._last_tail

    def _xfer_add(self, ch: HostChannel, bo: Bo) -> None:
        super()._xfer_add(ch, bo)
        self._bo_tails.append(self._last_tail)

    def _exec_commit(
        self, ch: HostChannel, user: int, ents: list[Any], tail: int, level: int
    ) -> None:
        for t in getattr(self, "_bo_tails", [])[:-1]:  # the BOs before the last
            self._writel(ch.id, regs.REQ_TP, t)
        self._bo_tails = []
        super()._exec_commit(ch, user, ents, tail, level)


class MergingHost(SpecHost):
    """Slices whose DMA pieces are contiguous in bus space take one element per run.

    Its BOs are mapped as one bus range cut into ``sg_max_segment`` pieces (what an
    IOMMU gives a scatter table: contiguous DMA addresses), so the pieces do merge."""

    def create_bo(self, user: int, size: int, pad: int = 0) -> int:
        handle = super().create_bo(user, size, pad)
        bo = self.users[user].bos[handle]
        if not isinstance(bo.array, np.ndarray):  # synthetic (sparse): keep its windows
            return handle
        mem = self.device.host_mem
        for addr, _n in bo.segments:
            mem.free(addr)
        base = mem.map_array(bo.array)
        bo.segments = [(base + off, n) for off, n in _offsets(bo.segments)]
        return handle

    def _free_bo(self, bo: Bo) -> None:
        bo.segments = bo.segments[:1]  # one mapping
        super()._free_bo(bo)

    def _span(self, bo: Bo, offset: int, size: int) -> list[tuple[int, int]] | None:
        pieces = super()._span(bo, offset, size)
        if pieces is None:
            return None
        out: list[tuple[int, int]] = []
        for addr, n in pieces:
            if out and out[-1][0] + out[-1][1] == addr and out[-1][1] + n <= _LEN_MAX:
                out[-1] = (out[-1][0], out[-1][1] + n)
            else:
                out.append((addr, n))
        return out


def _offsets(segs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, off = [], 0
    for _a, n in segs:
        out.append((off, n))
        off += n
    return out


class AtomicExecHost(ImplHost):
    """EXECUTE_BO threads without req_lock: read, send and commit in one step."""

    use_req_lock = False

    def _exec_step(self, th: ExecThread) -> None:
        while th.phase is not Phase.DONE:
            super()._exec_step(th)


#: every correct host of another shape, by class name (tests iterate it)
CORRECT_SHAPES: dict[str, type] = {
    c.__name__: c for c in (PollCountHost, DoorbellPerBoHost, MergingHost, AtomicExecHost)
}
