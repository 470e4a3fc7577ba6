"""Proof 1 -- request FIFO free space (qaic_data.c ``fifo_space_avail``).

Statement, for every 32-bit REQ_HP ``head``, REQ_TP ``tail`` with
``head, tail < n`` (the registers hold indexes, aic100.rst "DMA Bridge") and
every ring size ``n`` the driver accepts at activation
(``activate_queue_size_ok``: 1 .. 63,161,219):

  1. ``fifo_space(head, tail, n) == n - 1 - occupancy`` where occupancy is the
     unique ``occ < n`` with ``head + occ == tail (mod n)``; and
     ``ring_occupancy`` computes that same ``occ``.
  2. granting ``k <= fifo_space`` slots and writing element ``i < k`` to slot
     ``ring_advance(tail, i, n)`` never reaches a slot the device has not
     consumed (slots head .. head+occ-1), and the new tail
     ``ring_advance(tail, k, n)`` equals ``head`` only if the ring stays empty
     (one slot is always kept free, so full never looks empty).

Functions under proof: ``fifo_space``, ``ring_occupancy``, ``ring_advance``,
``activate_queue_size_ok`` (the precondition) -- all from qaicmodel.arith.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import z3

from proofs._harness import Claim, Result, functions, mod_rel, run_claims, zext
from proofs.z3ops import Z32
from qaicmodel import arith

NAME = "p1_fifo_space"
TITLE = "FIFO space = n-1-occupancy; granted writes never hit unconsumed slots"
BOUND = "32-bit head/tail < n; n = every queue_size the driver accepts (1..63161219)"

DEFAULTS: dict[str, Callable[..., Any]] = {
    "fifo_space": arith.fifo_space,
    "ring_occupancy": arith.ring_occupancy,
    "ring_advance": arith.ring_advance,
    "activate_queue_size_ok": arith.activate_queue_size_ok,
}


def run(fn_overrides: Mapping[str, Callable[..., Any]] | None = None) -> Result:
    f = functions(DEFAULTS, fn_overrides)
    ops = Z32
    head, tail, n, k, i = (z3.BitVec(x, 32) for x in ("head", "tail", "n", "k", "i"))
    H, T, N, K, I = (zext(x) for x in (head, tail, n, k, i))
    occ = z3.BitVec("occ", 64)  # exact occupancy, defined relationally below
    ring = (f["activate_queue_size_ok"](n, ops), z3.ULT(head, n), z3.ULT(tail, n),
            mod_rel(T + N - H, occ, N))
    space = f["fifo_space"](head, tail, n, ops)
    show = {"head": head, "tail": tail, "n": n, "fifo_space": space, "occupancy": occ}

    # 2: ring_advance is proved to be (idx + k) mod n once (lemma); the write
    # claims then use a slot satisfying that lemma, which keeps the solver from
    # bit-blasting the 32-bit division three times (lemma + claim => property).
    adv = f["ring_advance"](tail, i, n, ops)
    slot, new_tail, d = z3.BitVec("slot", 32), z3.BitVec("new_tail", 32), z3.BitVec("d", 64)
    grant = (z3.ULE(k, space), z3.ULT(i, k))
    claims = [
        Claim("fifo_space == n - 1 - occupancy", zext(space) == N - 1 - occ, ring, show),
        Claim("ring_occupancy == occupancy", zext(f["ring_occupancy"](head, tail, n, ops)) == occ,
              ring, show),
        Claim("lemma: ring_advance(idx, k, n) == (idx + k) mod n for idx < n, k <= n",
              mod_rel(T + I, zext(adv), N),
              (f["activate_queue_size_ok"](n, ops), z3.ULT(tail, n), z3.ULE(i, n)),
              {"idx": tail, "k": i, "n": n, "ring_advance": adv}),
        # Chain: (a) k <= space implies k < n, so (b) the lemma's domain covers every
        # granted index and the relational slot/new-tail definitions below are
        # always satisfiable -- no input is excluded by a hypothesis.
        Claim("a granted k is below n (inside the lemma's domain)", z3.ULT(k, n),
              ring + (z3.ULE(k, space),), {**show, "k": k}),
        Claim("granted write i<k<=space lands in a consumed slot", z3.UGE(d, occ),
              ring + grant + (z3.ULT(k, n), mod_rel(T + I, zext(slot), N),
                              mod_rel(zext(slot) + N - H, d, N)),
              {**show, "k": k, "i": i, "slot": slot}),
        Claim("after granting k slots the ring is empty only if it was empty and k=0",
              z3.Implies(new_tail == head, z3.And(occ == 0, k == 0)),
              ring + (z3.ULE(k, space), z3.ULT(k, n), mod_rel(T + K, zext(new_tail), N)),
              {**show, "k": k, "new_tail": new_tail}),
    ]
    return run_claims(NAME, TITLE, BOUND, claims)


if __name__ == "__main__":
    print(run().report())
