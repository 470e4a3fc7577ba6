"""Proof 3 -- the response drain loop (qaic_data.c ``dbc_irq_threaded_fn``).

The host's drain is modelled as a transition system over
``(rsp_hp, head, tsnap, rsp_tp, j)``: ``rsp_hp`` is the RSP_HP register (last
written by the host), ``head`` the host's read index, ``tsnap`` the RSP_TP
value the host last read, ``rsp_tp`` the device's tail and ``j`` the number of
elements consumed since ``rsp_hp`` was written.  Any interleaving of

  READ_TAIL  tsnap := rsp_tp                       (host reads RSP_TP)
  CONSUME    if head != tsnap: head := ring_advance(head, 1, n); j += 1
  WRITE_HP   rsp_hp := head; j := 0                (host writes RSP_HP)
  PRODUCE    if ring_occupancy(rsp_hp, rsp_tp, n) < n - 1:
                 rsp_tp := ring_advance(rsp_tp, 1, n)   (device, policy
                 response-ring-full = stall: it never overwrites)

covers the driver (which reads the tail, drains up to 128 events, writes
RSP_HP, and repeats, while the device keeps producing).  Inductive invariant
(aic100.rst "Response FIFO": the host must handle the race with the device):

  head == (rsp_hp + j) mod n  and  j <= dist(rsp_hp, tsnap) <= dist(rsp_hp, rsp_tp) <= n-1

Proof structure: two lemmas about the code, on 32-bit vectors --
(L1) ``ring_advance(x, 1, n) == (x + 1) mod n`` and (L2) ``ring_occupancy(h, t,
n) == (t - h) mod n`` for indexes < n and every accepted ``n`` -- and then the
induction over unbounded integers, where CONSUME/PRODUCE use exactly the
relations L1/L2 establish.  Proved: the invariant holds initially and is
preserved by every transition; hence a pass that stops at ``head == tsnap``
has consumed exactly ``(tsnap - rsp_hp) mod n`` elements, and the RSP_HP the
host writes never passes RSP_TP (it lies on the arc rsp_hp .. rsp_tp).

(L3) the host's per-pass count ``drain_count(h, t, budget, n)`` is
``min(budget, (t - h) mod n)``: a pass takes what the loop above takes before
its budget (NUM_EVENTS) runs out.

Functions under proof: ``ring_advance`` (host step and device tail),
``ring_occupancy`` (the device's not-full test), ``drain_count``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import z3

from proofs._harness import Claim, Result, functions, imod_rel, mod_rel, run_claims, zext
from proofs.z3ops import Z32
from qaicmodel import arith

NAME = "p3_drain"
TITLE = "drain consumes exactly (rsp_tp - rsp_hp) mod n; RSP_HP never passes RSP_TP"
BOUND = (
    "32-bit indexes < n; n = every queue_size the driver accepts; any interleaving "
    "of host reads/consumes/head writes and device produces (unbounded, by induction)"
)

DEFAULTS: dict[str, Callable[..., Any]] = {
    "ring_advance": arith.ring_advance,
    "ring_occupancy": arith.ring_occupancy,
    "drain_count": arith.drain_count,
    "activate_queue_size_ok": arith.activate_queue_size_ok,
}

_VARS = ("rsp_hp", "head", "tsnap", "rsp_tp", "j")


def _state(tag: str) -> dict[str, Any]:
    return {v: z3.Int(f"{v}{tag}") for v in _VARS}


def _inv(s: dict[str, Any], n: Any, tag: str) -> tuple[Any, Any, Any, Any]:
    """(definitions, invariant, d_snap, d_tp) for state ``s``.  The definitions give
    the exact distances and are asserted only when the indexes are in range, so
    they never exclude a state."""
    d_snap, d_tp = z3.Int(f"d_snap{tag}"), z3.Int(f"d_tp{tag}")
    in_range = z3.And(*[z3.And(0 <= s[v], s[v] < n) for v in ("rsp_hp", "head", "tsnap", "rsp_tp")])
    hp = s["rsp_hp"]
    defs = z3.Implies(
        in_range,
        z3.And(imod_rel(s["tsnap"] + n - hp, d_snap, n), imod_rel(s["rsp_tp"] + n - hp, d_tp, n)),
    )
    inv = z3.And(
        in_range,
        0 <= s["j"],
        imod_rel(hp + s["j"], s["head"], n),
        s["j"] <= d_snap,
        d_snap <= d_tp,
        d_tp <= n - 1,
    )
    return defs, inv, d_snap, d_tp


def run(
    fn_overrides: Mapping[str, Callable[..., Any]] | None = None, *, fail_fast: bool = False
) -> Result:
    f = functions(DEFAULTS, fn_overrides)
    ops = Z32
    # -- lemmas on the code (bit-vectors)
    x, h, t, nb = (z3.BitVec(v, 32) for v in ("x", "h", "t", "n"))
    X, H, T, NB = (zext(v, 34) for v in (x, h, t, nb))
    ok_n = f["activate_queue_size_ok"](nb, ops)
    adv = f["ring_advance"](x, ops.const(1), nb, ops)
    occ = f["ring_occupancy"](h, t, nb, ops)
    budget = z3.BitVec("budget", 32)
    take = f["drain_count"](h, t, budget, nb, ops)
    claims = [
        Claim(
            "L1: ring_advance(x, 1, n) == (x + 1) mod n",
            mod_rel(X + 1, zext(adv, 34), NB),
            (ok_n, z3.ULT(x, nb)),
            {"x": x, "n": nb, "ring_advance": adv},
        ),
        Claim(
            "L2: ring_occupancy(h, t, n) == (t - h) mod n",
            mod_rel(T + NB - H, zext(occ, 34), NB),
            (ok_n, z3.ULT(h, nb), z3.ULT(t, nb)),
            {"h": h, "t": t, "n": nb, "occ": occ},
        ),
        Claim(
            "L3: drain_count(h, t, budget, n) == min(budget, (t - h) mod n)",
            z3.And(z3.ULE(take, budget), z3.ULE(take, occ), z3.Or(take == budget, take == occ)),
            (ok_n, z3.ULT(h, nb), z3.ULT(t, nb)),
            {"h": h, "t": t, "n": nb, "budget": budget, "drain_count": take},
        ),
    ]
    # -- induction over integers, using the relations L1/L2 established
    n = z3.Int("n")
    s, s2 = _state(""), _state("'")
    defs, inv, d_snap, d_tp = _inv(s, n, "")
    defs2, inv2, _, _ = _inv(s2, n, "'")
    occ_i = z3.Int("occupancy")

    def same(*keep: str) -> Any:
        return z3.And(*[s2[v] == s[v] for v in keep])

    trans = {
        "READ_TAIL": z3.And(s2["tsnap"] == s["rsp_tp"], same("rsp_hp", "head", "rsp_tp", "j")),
        "CONSUME": z3.And(
            s["head"] != s["tsnap"],
            imod_rel(s["head"] + 1, s2["head"], n),
            s2["j"] == s["j"] + 1,
            same("rsp_hp", "tsnap", "rsp_tp"),
        ),
        "WRITE_HP": z3.And(
            s2["rsp_hp"] == s["head"], s2["j"] == 0, same("head", "tsnap", "rsp_tp")
        ),
        "PRODUCE": z3.And(
            imod_rel(s["rsp_tp"] + n - s["rsp_hp"], occ_i, n),
            occ_i < n - 1,
            imod_rel(s["rsp_tp"] + 1, s2["rsp_tp"], n),
            same("rsp_hp", "head", "tsnap", "j"),
        ),
    }
    show = {**s, "n": n, **{f"{k}'": v for k, v in s2.items()}}
    init = z3.And(
        s["head"] == s["rsp_hp"],
        s["tsnap"] == s["rsp_hp"],
        s["j"] == 0,
        0 <= s["rsp_hp"],
        s["rsp_hp"] < n,
        0 <= s["rsp_tp"],
        s["rsp_tp"] < n,
    )
    pos = n >= 1
    claims.append(
        Claim(
            "init: head = tsnap = rsp_hp, j = 0 satisfies the invariant",
            inv,
            (pos, init, defs),
            show,
            tactic="",
        )
    )
    for name, tr in trans.items():
        claims.append(
            Claim(
                f"invariant preserved by {name}", inv2, (pos, defs, inv, tr, defs2), show, tactic=""
            )
        )
    claims += [
        Claim(
            "a pass ending at head == tsnap consumed exactly (tsnap - rsp_hp) mod n",
            s["j"] == d_snap,
            (pos, defs, inv, s["head"] == s["tsnap"]),
            {**s, "n": n, "expected": d_snap},
            tactic="",
        ),
        Claim(
            "the RSP_HP written (head) lies on the arc rsp_hp .. rsp_tp",
            s["j"] <= d_tp,
            (pos, defs, inv),
            {**s, "n": n, "dist_tp": d_tp},
            tactic="",
        ),
    ]
    return run_claims(NAME, TITLE, BOUND, claims, fail_fast=fail_fast)


if __name__ == "__main__":
    print(run().report())
