"""Proof 2 -- the two-part wrap copy into the request FIFO (qaic_data.c ``copy_exec_reqs``).

Statement, for every 32-bit ``tail < n``, every ring size ``n`` the driver
accepts and every copy length ``k <= n``: with ``(first, second) =
wrap_split(tail, k, n)`` and element ``i`` placed at ``wrap_slot(tail, k, n, i)``

  1. ``first + second == k``, the first part stays below the ring end
     (``tail + first <= n``) and the second part stays below ``tail``;
  2. element ``i < k`` lands in slot ``(tail + i) mod n`` -- so the copy writes
     exactly the slots tail .. tail+k-1 (mod n) --
  3. and no two elements land in the same slot (each slot once);
  4. the new tail ``ring_advance(tail, k, n)`` is ``(tail + k) mod n``.

Functions under proof: ``wrap_split``, ``wrap_slot``, ``ring_advance`` (arith).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import z3

from proofs._harness import Claim, Result, functions, mod_rel, run_claims, zext
from proofs.z3ops import Z32
from qaicmodel import arith

NAME = "p2_wrap_copy"
TITLE = "wrap copy writes slots tail..tail+k-1 mod n once each; new tail = (tail+k) mod n"
BOUND = "32-bit tail < n, k <= n; n = every queue_size the driver accepts (1..63161219)"

#: exact width of the spec side: indexes < 2**32, sums of three stay below 2**34
EW = 34

DEFAULTS: dict[str, Callable[..., Any]] = {
    "wrap_split": arith.wrap_split,
    "wrap_slot": arith.wrap_slot,
    "ring_advance": arith.ring_advance,
    "activate_queue_size_ok": arith.activate_queue_size_ok,
}


def run(
    fn_overrides: Mapping[str, Callable[..., Any]] | None = None, *, fail_fast: bool = False
) -> Result:
    f = functions(DEFAULTS, fn_overrides)
    ops = Z32
    tail, k, n, i, j = (z3.BitVec(x, 32) for x in ("tail", "k", "n", "i", "j"))
    T, K, N, IX = (zext(x, EW) for x in (tail, k, n, i))
    pre = (f["activate_queue_size_ok"](n, ops), z3.ULT(tail, n), z3.ULE(k, n))
    first, second = f["wrap_split"](tail, k, n, ops)
    slot_i = f["wrap_slot"](tail, k, n, i, ops)
    slot_j = f["wrap_slot"](tail, k, n, j, ops)
    new_tail = f["ring_advance"](tail, k, n, ops)
    show = {"tail": tail, "k": k, "n": n, "first": first, "second": second}
    claims = [
        Claim(
            "first + second == k, tail + first <= n, second <= tail",
            z3.And(
                zext(first, EW) + zext(second, EW) == K,
                z3.ULE(T + zext(first, EW), N),
                z3.ULE(second, tail),
            ),
            pre,
            show,
        ),
        Claim(
            "element i < k lands in slot (tail + i) mod n",
            mod_rel(T + IX, zext(slot_i, EW), N),
            pre + (z3.ULT(i, k),),
            {**show, "i": i, "slot": slot_i},
        ),
        Claim(
            "no two elements share a slot",
            slot_i != slot_j,
            pre + (z3.ULT(i, k), z3.ULT(j, k), i != j),
            {**show, "i": i, "j": j, "slot_i": slot_i, "slot_j": slot_j},
        ),
        Claim(
            "new tail == (tail + k) mod n",
            mod_rel(T + K, zext(new_tail, EW), N),
            pre,
            {**show, "new_tail": new_tail},
        ),
    ]
    return run_claims(NAME, TITLE, BOUND, claims, fail_fast=fail_fast)


if __name__ == "__main__":
    print(run().report())
