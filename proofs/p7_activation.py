"""Proof 7 -- the FIFO buffer donated at activation (qaic_control.c ``encode_activate``).

For every u32 ``queue_size`` n (control-path.md §1.8, §2.1; aic100.rst "DMA
Bridge": request FIFO at the start of one chunk, response FIFO at its end):

  1. the driver's checks accept exactly the sizes whose buffer fits u32:
     ``activate_queue_size_ok(n) <=> n != 0 and round_up(68 n + 256, 4096) <= 2**32 - 1``
     computed exactly (no wrap); the accepted sizes are 1 .. 63,161,219;
  2. for every accepted n, ``dbc_buf_size(n)`` (u32) is that exact value: a
     multiple of 4096 and at least 68 n + 256;
  3. the response ring starts at ``dbc_rsp_offset(n)`` and ends exactly at the
     buffer end (rsp_offset + 4 n == size, no wrap);
  4. the request ring [0, 64 n) and the response ring do not overlap, with at
     least the 256-byte gap between them (64 n + 256 <= rsp_offset).

Functions under proof: ``activate_queue_size_ok``, ``dbc_buf_size``,
``dbc_rsp_offset`` (arith).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import z3

from proofs._harness import Claim, Result, functions, run_claims, zext
from proofs.z3ops import Z32
from qaicmodel import arith

NAME = "p7_activation"
TITLE = "activation buffer: rings fit, do not overlap; checks reject exactly the overflows"
BOUND = "every u32 queue_size (exact spec arithmetic in 64 bits)"

DEFAULTS: dict[str, Callable[..., Any]] = {
    "activate_queue_size_ok": arith.activate_queue_size_ok,
    "dbc_buf_size": arith.dbc_buf_size,
    "dbc_rsp_offset": arith.dbc_rsp_offset,
}

#: the largest queue_size the driver accepts (claim 1 proves it is exactly this)
MAX_QUEUE_SIZE = 63_161_219
U32_MAX = (1 << 32) - 1


def run(
    fn_overrides: Mapping[str, Callable[..., Any]] | None = None, *, fail_fast: bool = False
) -> Result:
    f = functions(DEFAULTS, fn_overrides)
    ops = Z32
    n = z3.BitVec("queue_size", 32)
    N = zext(n)
    per = arith.DBC_REQ_ELEM_SIZE + arith.DBC_RSP_ELEM_SIZE
    raw = per * N + arith.DBC_Q_GAP  # exact: < 2**40
    align = arith.DBC_Q_BUF_ALIGN
    exact = z3.UDiv(raw + (align - 1), align) * align  # round_up, exact in 64 bits
    ok = f["activate_queue_size_ok"](n, ops)
    size = f["dbc_buf_size"](n, ops)
    rsp = f["dbc_rsp_offset"](n, ops)
    show = {"queue_size": n, "size": size, "rsp_offset": rsp, "exact_size": exact}
    claims = [
        Claim(
            "accepted <=> n != 0 and round_up(68n + 256, 4096) fits u32",
            ok == z3.And(n != 0, z3.ULE(exact, U32_MAX)),
            (),
            show,
        ),
        Claim(
            f"accepted <=> 1 <= n <= {MAX_QUEUE_SIZE}",
            ok == z3.And(z3.UGE(n, 1), z3.ULE(n, MAX_QUEUE_SIZE)),
            (),
            show,
        ),
        Claim(
            "dbc_buf_size == exact round_up (multiple of 4096, >= 68n + 256)",
            z3.And(zext(size) == exact, z3.URem(zext(size), align) == 0, z3.UGE(zext(size), raw)),
            (ok,),
            show,
        ),
        Claim(
            "response ring ends exactly at the buffer end",
            zext(rsp) + arith.DBC_RSP_ELEM_SIZE * N == zext(size),
            (ok,),
            show,
        ),
        Claim(
            "request ring + 256-byte gap ends before the response ring",
            z3.ULE(arith.DBC_REQ_ELEM_SIZE * N + arith.DBC_Q_GAP, zext(rsp)),
            (ok,),
            show,
        ),
    ]
    return run_claims(NAME, TITLE, BOUND, claims, fail_fast=fail_fast)


if __name__ == "__main__":
    print(run().report())
