"""The host-visible interrupt controller: one MSI line per vector, mask and pending.

Rules (sources):
  * Vector 0 is MHI; vector i+1 is DBC i; with a single MSI every DBC raises
    vector 0 (control-path.md §4.2, qaic_drv.c ``init_msi``; aic100.rst
    "Hardware Description": 17 MSIs).
  * A raise while the vector is masked is latched (pending, delivered on
    unmask) or lost, per policy ``msi-while-masked``.
  * Deliverable = pending and not masked; the host takes it with ``ack``.

Device side: :meth:`Intc.raise_`.  Host side: :meth:`mask`, :meth:`unmask`,
:meth:`masked`, :meth:`pending`, :meth:`deliverable`, :meth:`ack`.
"""

from __future__ import annotations

from qaicmodel.errors import ArgumentError
from qaicmodel.spec.policies import MSI_WHILE_MASKED, MsiWhileMasked, Policies

__all__ = ["Intc", "MHI_VECTOR"]

MHI_VECTOR = 0


class Intc:
    """Per-vector mask bit and pending latch, with counters."""

    def __init__(self, vectors: int, policies: Policies | None = None) -> None:
        if not isinstance(vectors, int) or vectors < 1:
            raise ArgumentError(f"vector count must be a positive int, got {vectors!r}")
        self.vectors = vectors
        self.policies = policies if policies is not None else Policies()
        self._lost_when_masked = self.policies[MSI_WHILE_MASKED] is MsiWhileMasked.LOST
        self._masked = [False] * vectors
        self._pending = [False] * vectors
        self.raised = [0] * vectors  # raise_ calls (device side)
        self.latched = [0] * vectors  # raised while masked and kept pending
        self.lost = [0] * vectors  # raised while masked and dropped
        self.delivered = [0] * vectors  # ack calls that took a pending MSI

    def _v(self, v: int) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < self.vectors:
            raise ArgumentError(f"MSI vector {v!r} out of range 0..{self.vectors - 1}")
        return v

    # -- device side
    def raise_(self, v: int) -> bool:
        """Signal vector ``v``; returns True when it is now pending."""
        v = self._v(v)
        self.raised[v] += 1
        if self._masked[v]:
            # policy msi-while-masked (seed 003 Response FIFO; seed 001 MSI in VMs)
            if self._lost_when_masked:
                self.lost[v] += 1
                return False
            self.latched[v] += 1
        self._pending[v] = True
        return True

    # -- host side
    def mask(self, v: int) -> None:
        self._masked[self._v(v)] = True

    def unmask(self, v: int) -> None:
        self._masked[self._v(v)] = False

    def masked(self, v: int) -> bool:
        return self._masked[self._v(v)]

    def pending(self, v: int) -> bool:
        return self._pending[self._v(v)]

    def deliverable(self, v: int) -> bool:
        """An MSI the host CPU would take now: pending and not masked."""
        v = self._v(v)
        return self._pending[v] and not self._masked[v]

    def ack(self, v: int) -> bool:
        """The host took vector ``v``: clear its pending latch (True if one was pending)."""
        v = self._v(v)
        was = self._pending[v]
        self._pending[v] = False
        if was:
            self.delivered[v] += 1
        return was

    def reset(self) -> None:
        """Device reset: nothing pending, nothing masked (counters are kept)."""
        self._masked = [False] * self.vectors
        self._pending = [False] * self.vectors

    def copy(self) -> Intc:
        """An independent copy (masks, latches, counters; the policies are shared) -- for
        checkers that keep several possible device states (qaicmodel/oracle/check/states.py)."""
        c = Intc.__new__(Intc)
        c.vectors, c.policies = self.vectors, self.policies
        c._lost_when_masked = self._lost_when_masked
        c._masked, c._pending = list(self._masked), list(self._pending)
        c.raised, c.latched = list(self.raised), list(self.latched)
        c.lost, c.delivered = list(self.lost), list(self.delivered)
        return c

    def deliverable_vectors(self) -> list[int]:
        """Vectors pending and not masked, in order (none pending: [] at once, speed only)."""
        if True not in self._pending:
            return []
        return [v for v in range(self.vectors) if self._pending[v] and not self._masked[v]]
