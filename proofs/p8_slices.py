"""Proof 8 -- slice bounds and the slice's DMA segments (qaic_data.c attach_slice path).

A. ``slice_in_bounds(offset, size, bo_size)`` (qaic_validate_req after the
   CVE-2025-22001 fix: ``check_add_overflow`` then ``<= total_size``) holds
   exactly when ``offset + size <= bo_size`` in exact (65-bit) arithmetic -- so
   every input whose u64 sum wraps is rejected.  The pre-fix check
   (``offset + size > total_size`` on a wrapped sum) is a tested mutant.
B. ``slice_span_ok(offset, size, bo_size)`` (clone_range_of_sgt_for_slice finds
   a first and a last segment) holds exactly when ``offset < bo_size`` and
   ``offset + eff <= bo_size`` exactly, where ``eff = size`` or PAGE_SIZE for a
   size-0 slice (``size = size ? size : PAGE_SIZE``).
C. For a BO cut into DMA segments of ``seg_len`` bytes (the last one shorter;
   how the hosts build BOs), every u64 ``offset``/``size``/``bo_size`` with
   ``slice_span_ok`` and every ``seg_len >= 1``, ``(first, nents, first_off,
   last_len) = slice_span(offset, size, seg_len)`` describes pieces that cover
   exactly [offset, offset + eff):
     C1  first * seg_len + first_off == offset, first_off < seg_len;
     C2  nents >= 1, (first + nents - 1) * seg_len + last_len == offset + eff,
         1 <= last_len <= seg_len;
     C3  a one-segment slice is non-empty (first_off < last_len);
     C4  the last segment exists and the slice ends inside it
         ((first + nents - 1) * seg_len < bo_size, ... + last_len <= bo_size);
     C5  every piece is at most seg_len bytes, so with the driver's segment
         limit (UINT_MAX) no piece length is truncated by the u32 pcie_dma_len.
   All products/sums are exact integers: BOs of any size below 2**64,
   including past 2 GiB and 4 GiB (the driver's ``int total_len`` bug class).
     C6  partial execute (copy_partial_exec_reqs): for every u64 ``resize`` and
         a slice whose first element is ``first_len >= 1`` bytes and the others
         ``seg_len >= 1``, ``(first_n, last_bytes) = partial_split(...)`` is what
         the driver's loop computes: resize <= first_len gives (0, resize);
         otherwise first_n >= 1 whole elements plus ``1 <= last_bytes <=
         seg_len`` bytes of the next add up to exactly ``resize``.

A and B are proved on 64-bit vectors (``Z3Ops``); C over integers with exact
u64 wrap (``Z3IntOps``), because 64-bit division by a symbolic divisor cannot
be bit-blasted in reasonable time.

Functions under proof: ``slice_in_bounds``, ``slice_span_ok``, ``slice_span``,
``partial_split`` (arith).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import z3

from proofs._harness import Claim, Result, functions, run_claims, zext
from proofs.z3ops import Z3IntOps, Z3Ops
from qaicmodel import arith

NAME = "p8_slices"
TITLE = "slice bounds reject every wrap; slice segments cover exactly [offset, offset+size)"
BOUND = "all u64 offset/size/bo_size (BOs up to 2**64 - 1); seg_len any u64 >= 1"

DEFAULTS: dict[str, Callable[..., Any]] = {
    "slice_in_bounds": arith.slice_in_bounds,
    "slice_span_ok": arith.slice_span_ok,
    "slice_span": arith.slice_span,
    "partial_split": arith.partial_split,
}

U32_MAX = (1 << 32) - 1


def run(
    fn_overrides: Mapping[str, Callable[..., Any]] | None = None, *, fail_fast: bool = False
) -> Result:
    f = functions(DEFAULTS, fn_overrides)
    # -- A, B on bit-vectors
    o64 = Z3Ops(64)
    off, size, bo = (z3.BitVec(v, 64) for v in ("offset", "size", "bo_size"))
    OFF, SIZE, BO = (zext(v, 66) for v in (off, size, bo))
    eff_bv = z3.If(size == 0, z3.BitVecVal(arith.PAGE_SIZE, 66), SIZE)
    inb = f["slice_in_bounds"](off, size, bo, o64)
    span_ok = f["slice_span_ok"](off, size, bo, o64)
    show_ab = {"offset": off, "size": size, "bo_size": bo}
    claims = [
        Claim(
            "A: slice_in_bounds <=> offset + size <= bo_size (exact, no wrap)",
            inb == z3.ULE(OFF + SIZE, BO),
            (),
            {**show_ab, "accepted": inb},
        ),
        Claim(
            "B: slice_span_ok <=> offset < bo_size and offset + eff <= bo_size (exact)",
            span_ok == z3.And(z3.ULT(OFF, BO), z3.ULE(OFF + eff_bv, BO)),
            (),
            {**show_ab, "accepted": span_ok},
        ),
    ]
    # -- C over integers with exact u64 wrap
    ops = Z3IntOps(64, tag="_c")
    o, s, L, S = (ops.var(v) for v in ("offset", "size", "seg_len", "bo_size"))
    first, nents, first_off, last_len = f["slice_span"](o, s, L, ops)
    ok = f["slice_span_ok"](o, s, S, ops)
    eff = z3.If(s == 0, arith.PAGE_SIZE, s)
    last = first + nents - 1
    pre = (*ops.side, ok, L >= 1)
    show = {
        "offset": o,
        "size": s,
        "seg_len": L,
        "bo_size": S,
        "first": first,
        "nents": nents,
        "first_off": first_off,
        "last_len": last_len,
    }
    claims += [
        Claim(
            "C1: first * seg_len + first_off == offset, first_off < seg_len",
            z3.And(first * L + first_off == o, 0 <= first_off, first_off < L),
            pre,
            show,
            tactic="",
        ),
        Claim(
            "C2: nents >= 1 and the last piece ends at offset + eff",
            z3.And(nents >= 1, last * L + last_len == o + eff, 1 <= last_len, last_len <= L),
            pre,
            show,
            tactic="",
        ),
        Claim(
            "C3: a one-segment slice is non-empty",
            z3.Implies(nents == 1, first_off < last_len),
            pre,
            show,
            tactic="",
        ),
        Claim(
            "C4: the last segment exists and the slice ends inside the BO",
            z3.And(last * L < S, last * L + last_len <= S),
            pre,
            show,
            tactic="",
        ),
        Claim(
            "C5: with seg_len <= UINT_MAX every piece fits u32 pcie_dma_len",
            z3.And(
                L - first_off <= U32_MAX,
                last_len <= U32_MAX,
                z3.Implies(nents == 1, last_len - first_off <= U32_MAX),
            ),
            (*pre, L <= U32_MAX),
            show,
            tactic="",
        ),
    ]
    # -- C6: partial execute over the same segmentation (copy_partial_exec_reqs)
    pops = Z3IntOps(64, tag="_p")
    r, fl, sg = (pops.var(v) for v in ("resize", "first_len", "seg_len"))
    first_n, last_bytes = f["partial_split"](r, fl, sg, pops)
    claims.append(
        Claim(
            "C6: partial_split: first_n whole elements + last_bytes of the next == resize",
            z3.If(
                r <= fl,
                z3.And(first_n == 0, last_bytes == r),
                z3.And(
                    first_n >= 1,
                    fl + (first_n - 1) * sg + last_bytes == r,
                    1 <= last_bytes,
                    last_bytes <= sg,
                ),
            ),
            (*pops.side, fl >= 1, sg >= 1),
            {
                "resize": r,
                "first_len": fl,
                "seg_len": sg,
                "first_n": first_n,
                "last_bytes": last_bytes,
            },
            tactic="",
        )
    )
    return run_claims(NAME, TITLE, BOUND, claims, fail_fast=fail_fast)


if __name__ == "__main__":
    print(run().report())
