"""Proof 6 -- 16-bit request ids of BOs in flight on one channel.

qaic_data.c ``send_bo_list_to_device``: ``bo->req_id = dbc->next_req_id++``
(``u16``, qaic.h); the IRQ thread credits a response to the *first* queued BO
whose req_id matches (``dbc_irq_threaded_fn``), so two BOs in flight with the
same id would swap completions.  The host's allocator is ``arith.req_id_next``.

Model: ids are handed out in allocation order, BO number ``i`` (counted from
any starting id ``s``) gets ``req_id_next`` applied ``i`` times to ``s``.  The
"window" ``q`` is the number of BOs allocated from the oldest BO still in
flight to the newest.  Ring bound: a BO occupies at least one request element
while queued, at most ``n - 1`` elements are queued (proof 1), so a window of
queued BOs has ``q <= n - 1``.

  1. ``req_id_next(x) == (x + 1) mod 2**16`` and stays below 2**16 (any u32 x);
  2. closed form by induction: the i-th id is ``(s + i) mod 2**16``;
  3. no collision: ``i < j < q <= n - 1`` with ``n <= 65537`` => ids differ;
  4. what breaks (expected COUNTEREXAMPLE): lift the bound to every queue size
     the driver accepts (up to 63,161,219) and z3 finds ``j - i = 65536`` --
     BO 0 and BO 65536 share an id.  The driver does not enforce ``n <= 65537``.

Not covered (documented in docs/proofs.md): BOs whose elements the device has
already consumed but not yet answered are not counted by the ring bound; with
policy processing-order=rule-permitted a stalled BO can be overtaken without
limit, so the window is not bounded by the ring at all.

Functions under proof: ``req_id_next``, ``activate_queue_size_ok`` (arith).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import z3

from proofs._harness import Claim, Result, functions, run_claims
from proofs.z3ops import Z32
from qaicmodel import arith

NAME = "p6_req_id"
TITLE = "16-bit req_ids never collide within a window of q <= n-1 <= 65536 BOs"
BOUND = (
    "any u32 start id and window; n <= 65537 for the theorem; "
    "n = any accepted queue size (<= 63161219) for the counterexample"
)

DEFAULTS: dict[str, Callable[..., Any]] = {
    "req_id_next": arith.req_id_next,
    "activate_queue_size_ok": arith.activate_queue_size_ok,
}

ID_SPACE = 1 << 16


def run(
    fn_overrides: Mapping[str, Callable[..., Any]] | None = None, *, fail_fast: bool = False
) -> Result:
    f = functions(DEFAULTS, fn_overrides)
    ops = Z32
    x, s, k, i, j, q, n = (z3.BitVec(v, 32) for v in ("x", "s", "k", "i", "j", "q", "n"))
    m = 0xFFFF
    nxt = f["req_id_next"](x, ops)
    # id number k after start s, in closed form (claim 2 justifies it)
    step_from = f["req_id_next"]((s + k) & m, ops)

    def ident(v: Any) -> Any:
        return (s + v) & m

    window = (z3.ULT(i, j), z3.ULT(j, q), f["activate_queue_size_ok"](n, ops), z3.ULE(q, n - 1))
    show = {"s": s, "i": i, "j": j, "q": q, "n": n, "id_i": ident(i), "id_j": ident(j)}
    claims = [
        Claim(
            "req_id_next(x) == (x + 1) mod 2**16, < 2**16",
            z3.And(nxt == (x + 1) & m, z3.ULT(nxt, ID_SPACE)),
            (),
            {"x": x, "next": nxt},
        ),
        Claim(
            "induction step: next((s + k) mod 2**16) == (s + k + 1) mod 2**16",
            step_from == (s + k + 1) & m,
            (),
            {"s": s, "k": k, "next": step_from},
        ),
        Claim(
            "window q <= n - 1 with n <= 65537: ids of BOs i != j differ",
            ident(i) != ident(j),
            (*window, z3.ULE(n, ID_SPACE + 1)),
            show,
        ),
        Claim(
            "bound lifted (n any accepted size): two BOs in flight share a req_id",
            ident(i) != ident(j),
            window,
            show,
            expect="counterexample",
        ),
    ]
    return run_claims(NAME, TITLE, BOUND, claims, fail_fast=fail_fast)


if __name__ == "__main__":
    print(run().report())
