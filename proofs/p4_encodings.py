"""Proof 4 -- wire encodings: sem_cmd words and 64-byte request elements.

Semaphore word (aic100.rst "Request FIFO", sem_cmd; qaic_data.c ``ENCODE_SEM``
and ``invalid_sem``).  Inputs range over the uapi ``struct qaic_sem`` field
widths (val u16, index/presync/cmd/flags u8, pad u16):

  1. round trip: ``sem_valid(x) => sem_decode(sem_encode(x)) == x``;
  2. injective: two valid inputs with the same word are equal;
  3. the word never sets a reserved bit (``wire.SEM_RESERVED``) and its enable
     bit (31) is set exactly when cmd != 0;
  4. the validator accepts exactly the inputs that encode without loss, except
     the two it rejects on purpose: cmd 7 (reserved, aic100.rst) and pad != 0
     (uapi "must be 0"): ``sem_decode(sem_encode(x)) == x and cmd != 7 and
     pad == 0  <=>  sem_valid(x)``.  So no value is ever silently truncated to
     its field width.

Request element (aic100.rst ``struct request_elem``; ``arith.REQ_LAYOUT``), as a
512-bit little-endian integer (``wire.RequestElem.pack`` is tested equal to
``req_elem_pack`` in tests/test_proofs.py):

  5. round trip: fields within their widths ``=> req_elem_unpack(req_elem_pack(f)) == f``
     (so packing is injective on valid records);
  6. the layout has no gap and no overlap: ``req_elem_pack(req_elem_unpack(w)) == w``
     for every 512-bit ``w`` (every bit belongs to exactly one field).

Functions under proof: ``sem_encode``, ``sem_decode``, ``sem_valid``,
``req_elem_pack``, ``req_elem_unpack``, ``req_elem_valid`` (arith).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import z3

from proofs._harness import Claim, Result, functions, run_claims
from proofs.z3ops import Z3Ops
from qaicmodel import arith
from qaicmodel.spec.dbc import wire

NAME = "p4_encodings"
TITLE = "sem_cmd and request-element packing: injective, round-trip, validator = lossless"
BOUND = "all inputs of the uapi field widths (qaic_sem) / all 512-bit element values"

DEFAULTS: dict[str, Callable[..., Any]] = {
    "sem_encode": arith.sem_encode,
    "sem_decode": arith.sem_decode,
    "sem_valid": arith.sem_valid,
    "req_elem_pack": arith.req_elem_pack,
    "req_elem_unpack": arith.req_elem_unpack,
    "req_elem_valid": arith.req_elem_valid,
}

#: uapi ``struct qaic_sem`` field widths in bits (control-path.md §3.3)
SEM_UAPI = (("val", 16), ("index", 8), ("presync", 8), ("cmd", 8), ("flags", 8), ("pad", 16))


def _sem_inputs(tag: str) -> tuple[dict[str, Any], list[Any]]:
    xs = {name: z3.BitVec(f"{name}{tag}", 32) for name, _ in SEM_UAPI}
    ranges = [z3.ULT(xs[name], 1 << bits) for name, bits in SEM_UAPI]
    return xs, ranges


def run(
    fn_overrides: Mapping[str, Callable[..., Any]] | None = None, *, fail_fast: bool = False
) -> Result:
    f = functions(DEFAULTS, fn_overrides)
    o32 = Z3Ops(32)
    x, rx = _sem_inputs("")
    y, ry = _sem_inputs("'")
    fields = ("val", "index", "presync", "cmd", "flags")

    def enc(v: dict[str, Any]) -> Any:
        return f["sem_encode"](*(v[k] for k in fields), o32)

    def valid(v: dict[str, Any]) -> Any:
        return f["sem_valid"](*(v[k] for k in fields), v["pad"], o32)

    word = enc(x)
    dec = f["sem_decode"](word, o32)
    roundtrip = z3.And(*[d == x[k] for d, k in zip(dec, fields, strict=True)])
    show = {**x, "word": word}
    claims = [
        Claim("sem: valid => decode(encode(x)) == x", roundtrip, (*rx, valid(x)), show),
        Claim(
            "sem: encode is injective on valid inputs",
            z3.And(*[x[k] == y[k] for k in fields]),
            (*rx, *ry, valid(x), valid(y), enc(x) == enc(y)),
            {**show, **{f"{k}'": y[k] for k in fields}},
        ),
        Claim(
            "sem: no reserved bit set; enable bit (31) set iff cmd != 0",
            z3.And(word & wire.SEM_RESERVED == 0, (z3.LShR(word, 31) == 1) == (x["cmd"] != 0)),
            (*rx, valid(x)),
            show,
        ),
        Claim(
            "sem: validator accepts exactly the lossless inputs (minus cmd 7, pad != 0)",
            valid(x) == z3.And(roundtrip, x["cmd"] != 7, x["pad"] == 0),
            tuple(rx),
            show,
        ),
    ]
    # -- request element on 512-bit vectors
    o512 = Z3Ops(512)
    fs = [z3.BitVec(f"f_{name}", 512) for name, _off, _size in arith.REQ_LAYOUT]
    packed = f["req_elem_pack"](fs, o512)
    back = f["req_elem_unpack"](packed, o512)
    w = z3.BitVec("w", 512)
    fshow = {name: v for (name, _o, _s), v in zip(arith.REQ_LAYOUT, fs, strict=True)}
    claims += [
        Claim(
            "request element: valid fields => unpack(pack(f)) == f",
            z3.And(*[a == b for a, b in zip(back, fs, strict=True)]),
            (f["req_elem_valid"](fs, o512),),
            fshow,
        ),
        Claim(
            "request element: pack(unpack(w)) == w for every 512-bit w (no gap, no overlap)",
            f["req_elem_pack"](list(f["req_elem_unpack"](w, o512)), o512) == w,
            (),
            {"w": w},
        ),
    ]
    return run_claims(NAME, TITLE, BOUND, claims, fail_fast=fail_fast)


if __name__ == "__main__":
    print(run().report())
