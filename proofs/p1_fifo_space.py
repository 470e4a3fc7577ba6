"""Proof 1 -- request FIFO free space (qaic_data.c ``fifo_space_avail``).

Statement, for every 32-bit REQ_HP ``head``, REQ_TP ``tail`` with
``head, tail < n`` (the registers hold indexes, aic100.rst "DMA Bridge") and
every ring size ``n`` the driver accepts at activation
(``activate_queue_size_ok``: 1 .. 63,161,219):

  1. ``fifo_space(head, tail, n) == n - 1 - occupancy`` where occupancy is the
     unique ``occ < n`` with ``head + occ == tail (mod n)``; and
     ``ring_occupancy`` computes that same ``occ``.
  2. ``ring_advance(idx, k, n) == (idx + k) mod n`` for idx < n, k <= n;
  3. granting ``k <= fifo_space`` slots and writing element ``i < k`` to slot
     ``ring_advance(tail, i, n)`` never reaches a slot the device has not
     consumed (slots head .. head+occ-1), and the new tail
     ``ring_advance(tail, k, n)`` equals ``head`` only if the ring stays empty
     (one slot is always kept free, so full never looks empty).  Proved over
     unbounded integers from what 1 and 2 establish about the code.
  4. (expected COUNTEREXAMPLE) the precondition ``head < n`` is needed: the
     driver only rejects REQ_HP == U32_MAX, and an out-of-range REQ_HP from a
     faulty device makes ``fifo_space`` exceed ``n - 1`` (over-granting).

Functions under proof: ``fifo_space``, ``ring_occupancy``, ``ring_advance``,
``activate_queue_size_ok`` (the precondition) -- all from qaicmodel.arith.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import z3

from proofs._harness import Claim, Result, functions, imod_rel, mod_rel, run_claims, zext
from proofs.z3ops import Z32
from qaicmodel import arith

NAME = "p1_fifo_space"
TITLE = "FIFO space = n-1-occupancy; granted writes never hit unconsumed slots"
BOUND = "32-bit head/tail < n; n = every queue_size the driver accepts (1..63161219)"

#: exact width of the spec side: indexes < 2**32, sums of three stay below 2**34
EW = 34

DEFAULTS: dict[str, Callable[..., Any]] = {
    "fifo_space": arith.fifo_space,
    "ring_occupancy": arith.ring_occupancy,
    "ring_advance": arith.ring_advance,
    "activate_queue_size_ok": arith.activate_queue_size_ok,
}


def run(
    fn_overrides: Mapping[str, Callable[..., Any]] | None = None, *, fail_fast: bool = False
) -> Result:
    f = functions(DEFAULTS, fn_overrides)
    ops = Z32
    head, tail, n, k, i = (z3.BitVec(x, 32) for x in ("head", "tail", "n", "k", "i"))
    H, T, N, K, IX = (zext(x, EW) for x in (head, tail, n, k, i))
    occ = z3.BitVec("occ", EW)  # exact occupancy, defined relationally below
    ring = (
        f["activate_queue_size_ok"](n, ops),
        z3.ULT(head, n),
        z3.ULT(tail, n),
        mod_rel(T + N - H, occ, N),
    )
    space = f["fifo_space"](head, tail, n, ops)
    show = {"head": head, "tail": tail, "n": n, "fifo_space": space, "occupancy": occ}

    adv = f["ring_advance"](tail, i, n, ops)
    claims = [
        Claim("fifo_space == n - 1 - occupancy", zext(space, EW) == N - 1 - occ, ring, show),
        Claim(
            "ring_occupancy == occupancy",
            zext(f["ring_occupancy"](head, tail, n, ops), EW) == occ,
            ring,
            show,
        ),
        Claim(
            "lemma: ring_advance(idx, k, n) == (idx + k) mod n for idx < n, k <= n",
            mod_rel(T + IX, zext(adv, EW), N),
            (f["activate_queue_size_ok"](n, ops), z3.ULT(tail, n), z3.ULE(i, n)),
            {"idx": tail, "k": i, "n": n, "ring_advance": adv},
        ),
        # why head < n must hold: the driver checks REQ_HP only against U32_MAX (PCI
        # link error), so a device reporting REQ_HP >= nelem makes it over-grant.
        Claim(
            "REQ_HP >= n (not checked by the driver) => fifo_space > n - 1 is possible",
            z3.ULE(space, n - 1),
            (
                f["activate_queue_size_ok"](n, ops),
                z3.ULT(tail, n),
                z3.UGE(head, n),
                head != 0xFFFFFFFF,
            ),
            {"head": head, "tail": tail, "n": n, "fifo_space": space},
            expect="counterexample",
        ),
    ]
    # 2: the write claims, over unbounded integers, from exactly what the three
    # claims above establish about the code: space == n-1-occ, slot of element i
    # == (tail+i) mod n, new tail == (tail+k) mod n.  k <= n-1-occ < n keeps every
    # granted index inside the lemma's domain.  (Bit-blasting these on top of the
    # 32-bit division is what made this proof slow; the chain is equivalent.)
    h, t, m, kk, ii = (z3.Int(v) for v in ("head", "tail", "n", "k", "i"))
    o, sl, nt, d = (z3.Int(v) for v in ("occupancy", "slot", "new_tail", "d"))
    iring = (m >= 1, 0 <= h, h < m, 0 <= t, t < m, imod_rel(t + m - h, o, m))
    granted = (0 <= kk, kk <= m - 1 - o)
    ishow = {"head": h, "tail": t, "n": m, "occupancy": o, "k": kk}
    claims += [
        Claim(
            "granted write i < k <= space lands in a consumed slot",
            d >= o,
            iring
            + granted
            + (0 <= ii, ii < kk, imod_rel(t + ii, sl, m), imod_rel(sl + m - h, d, m)),
            {**ishow, "i": ii, "slot": sl, "dist_from_head": d},
            tactic="",
        ),
        Claim(
            "after granting k slots the ring is empty only if it was empty and k=0",
            z3.Implies(nt == h, z3.And(o == 0, kk == 0)),
            iring + granted + (imod_rel(t + kk, nt, m),),
            {**ishow, "new_tail": nt},
            tactic="",
        ),
    ]
    return run_claims(NAME, TITLE, BOUND, claims, fail_fast=fail_fast)


if __name__ == "__main__":
    print(run().report())
