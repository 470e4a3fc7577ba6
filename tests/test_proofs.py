"""The z3 proofs (issue #5): every proof holds, every mutant is caught, and the
dual typing itself (IntOps vs Z3Ops vs Z3IntOps) agrees on concrete inputs.

Also ties the proved functions to the code that does not go through ``ops``:
``wire.RequestElem.pack`` (struct-based) against ``arith.req_elem_pack`` and
``wire.SemCmd`` against ``arith.sem_encode``/``sem_decode``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import attrs
import pytest
import z3
from hypothesis import given
from hypothesis import strategies as st

from proofs import MODULES, load
from proofs._harness import Claim, Status, run_claims
from proofs.z3ops import Z3IntOps, Z3Ops
from qaicmodel import arith
from qaicmodel.arith import U32, U64, U512, IntOps
from qaicmodel.errors import ArgumentError, NotModelledError
from qaicmodel.spec.dbc import wire
from qaicmodel.spec.host import irqproto

# ---------------------------------------------------------------------------
# 1. every proof is PROVED on the current code


@pytest.mark.parametrize("name", MODULES)
def test_proof_holds(name: str) -> None:
    res = load(name).run()
    assert res.proved, res.report()
    assert res.outcomes and all(o.ok for o in res.outcomes)


# ---------------------------------------------------------------------------
# 2. mutants: each breaks one proved function on purpose; the proof must then
#    report COUNTEREXAMPLE with concrete values.


def _fifo_no_gap(h: Any, t: Any, n: Any, ops: Any) -> Any:
    a = ops.sub(h, t)  # forgets the always-empty slot
    return ops.ite(ops.ule(h, t), ops.add(a, n), a)


def _fifo_lt(h: Any, t: Any, n: Any, ops: Any) -> Any:
    a = ops.sub(ops.sub(h, t), ops.const(1))
    return ops.ite(ops.ult(h, t), ops.add(a, n), a)  # head == tail underflows


def _advance_no_mod(i: Any, k: Any, n: Any, ops: Any) -> Any:
    return ops.add(i, k)


def _occupancy_no_wrap(h: Any, t: Any, n: Any, ops: Any) -> Any:
    return ops.sub(t, h)


def _split_no_min(t: Any, k: Any, n: Any, ops: Any) -> tuple[Any, Any]:
    first = ops.sub(n, t)
    return first, ops.sub(k, first)


def _slot_off_by_one(t: Any, k: Any, n: Any, i: Any, ops: Any) -> Any:
    first, _ = arith.wrap_split(t, k, n, ops)
    return ops.ite(ops.ule(i, first), ops.add(t, i), ops.sub(i, first))


def _drain_all(h: Any, t: Any, budget: Any, n: Any, ops: Any) -> Any:
    return arith.ring_occupancy(h, t, n, ops)  # ignores the NUM_EVENTS budget


def _sem_index_at_15(val: Any, index: Any, presync: Any, cmd: Any, flags: Any, ops: Any) -> Any:
    w = arith.sem_encode(val, ops.const(0), presync, cmd, flags, ops)
    return ops.bor(w, ops.shl(ops.band(index, ops.const(0x1F)), 15))


def _sem_valid_13_bits(
    val: Any, index: Any, presync: Any, cmd: Any, flags: Any, pad: Any, ops: Any
) -> Any:
    # accepts a 13-bit value, which sem_encode silently truncates to 12
    return ops.land(
        arith.sem_valid(ops.band(val, ops.const(0xFFF)), index, presync, cmd, flags, pad, ops),
        ops.ule(val, ops.const(0x1FFF)),
    )


def _sem_decode_presync_21(word: Any, ops: Any) -> tuple[Any, ...]:
    v, i, _p, c, f = arith.sem_decode(word, ops)
    return v, i, ops.band(ops.lshr(word, 21), ops.const(1)), c, f


_BAD_LAYOUT = tuple((n, 43 if n == "doorbell_data" else o, s) for n, o, s in arith.REQ_LAYOUT)


def _pack_overlap(fields: Any, ops: Any) -> Any:
    word = ops.const(0)
    for f, (_n, off, size) in zip(fields, _BAD_LAYOUT, strict=True):
        word = ops.bor(word, ops.shl(ops.band(f, ops.const((1 << (8 * size)) - 1)), 8 * off))
    return word


def _no_recheck_lost(**kw: Any) -> Any:
    return irqproto.make_transitions(recheck=False, msi_while_masked="lost")


def _hard_irq_no_wake(**kw: Any) -> Any:
    table = dict(irqproto.make_transitions(**kw))
    guard, update = table["hard_irq"]

    def update2(s: Any, ops: Any) -> Any:
        return update(s, ops).with_(wake=s.wake)  # masks the line but never wakes the thread

    table["hard_irq"] = (guard, update2)
    return table


def _req_id_u8(x: Any, ops: Any) -> Any:
    return ops.band(ops.add(x, ops.const(1)), ops.const(0xFF))


def _req_id_plus2(x: Any, ops: Any) -> Any:
    return ops.band(ops.add(x, ops.const(2)), ops.const(0xFFFF))


def _activate_no_align_check(q: Any, ops: Any) -> Any:
    per = ops.const(68)
    return ops.land(ops.ne(q, ops.const(0)), ops.ule(q, ops.udiv(ops.const(ops.mask), per)))


def _rsp_offset_64(n: Any, ops: Any) -> Any:
    return ops.sub(arith.dbc_buf_size(n, ops), ops.mul(ops.const(64), n))


def _in_bounds_pre_cve(o: Any, s: Any, size: Any, ops: Any) -> Any:
    return ops.ule(ops.add(o, s), size)  # qaic_validate_req before CVE-2025-22001


def _span_int_offsets(o: Any, s: Any, seg: Any, ops: Any) -> tuple[Any, ...]:
    # the driver's ``int offf/offl`` class of bug: offsets inside a segment kept in 31 bits
    first, nents, off, last = arith.slice_span(o, s, seg, ops)
    m = ops.const(1 << 31)
    return first, nents, ops.urem(off, m), ops.urem(last, m)


def _span_last_off_by_one(o: Any, s: Any, seg: Any, ops: Any) -> tuple[Any, ...]:
    eff = ops.ite(ops.eq(s, ops.const(0)), ops.const(arith.PAGE_SIZE), s)
    end = ops.add(o, eff)
    first = ops.udiv(o, seg)
    last = ops.udiv(end, seg)  # should be (end - 1) / seg
    return (
        first,
        ops.add(ops.sub(last, first), ops.const(1)),
        ops.sub(o, ops.mul(first, seg)),
        ops.sub(end, ops.mul(last, seg)),
    )


def _partial_off_by_one(resize: Any, first_len: Any, seg: Any, ops: Any) -> tuple[Any, Any]:
    r = ops.sub(resize, first_len)
    k = ops.udiv(r, seg)  # should be (r - 1) / seg
    within = ops.ule(resize, first_len)
    return (
        ops.ite(within, ops.const(0), ops.add(k, ops.const(1))),
        ops.ite(within, resize, ops.sub(r, ops.mul(k, seg))),
    )


MUTANTS: list[tuple[str, str, Callable[..., Any]]] = [
    ("p1_fifo_space", "fifo_space", _fifo_no_gap),
    ("p1_fifo_space", "fifo_space", _fifo_lt),
    ("p1_fifo_space", "ring_advance", _advance_no_mod),
    ("p1_fifo_space", "ring_occupancy", _occupancy_no_wrap),
    ("p2_wrap_copy", "wrap_split", _split_no_min),
    ("p2_wrap_copy", "wrap_slot", _slot_off_by_one),
    ("p2_wrap_copy", "ring_advance", _advance_no_mod),
    ("p3_drain", "ring_advance", _advance_no_mod),
    ("p3_drain", "ring_occupancy", _occupancy_no_wrap),
    ("p3_drain", "drain_count", _drain_all),
    ("p4_encodings", "sem_encode", _sem_index_at_15),
    ("p4_encodings", "sem_valid", _sem_valid_13_bits),
    ("p4_encodings", "sem_decode", _sem_decode_presync_21),
    ("p4_encodings", "req_elem_pack", _pack_overlap),
    ("p5_irq", "make_transitions", _no_recheck_lost),
    ("p5_irq", "make_transitions", _hard_irq_no_wake),
    ("p6_req_id", "req_id_next", _req_id_u8),
    ("p6_req_id", "req_id_next", _req_id_plus2),
    ("p7_activation", "activate_queue_size_ok", _activate_no_align_check),
    ("p7_activation", "dbc_rsp_offset", _rsp_offset_64),
    ("p8_slices", "slice_in_bounds", _in_bounds_pre_cve),
    ("p8_slices", "slice_span", _span_int_offsets),
    ("p8_slices", "slice_span", _span_last_off_by_one),
    ("p8_slices", "partial_split", _partial_off_by_one),
]


def test_every_proof_has_a_mutant() -> None:
    assert {m for m, _f, _g in MUTANTS} == set(MODULES)


@pytest.mark.parametrize(
    ("module", "fn", "mutant"), MUTANTS, ids=[f"{m}-{g.__name__}" for m, _f, g in MUTANTS]
)
def test_mutant_is_caught(module: str, fn: str, mutant: Callable[..., Any]) -> None:
    res = load(module).run({fn: mutant}, fail_fast=True)
    assert res.status is Status.COUNTEREXAMPLE, res.report()
    bad = res.failed_claim
    assert bad is not None and bad.values, res.report()
    assert "COUNTEREXAMPLE" in res.report()


def test_unknown_override_is_an_argument_error() -> None:
    with pytest.raises(ArgumentError, match="no function"):
        load("p7_activation").run({"no_such_function": lambda: 0})


# ---------------------------------------------------------------------------
# 3. the harness itself


def test_harness_rejects_vacuous_hypotheses() -> None:
    x = z3.BitVec("x", 8)
    res = run_claims("t", "t", "t", [Claim("vacuous", x == 1, (z3.ULT(x, 0),))])
    assert res.status is Status.UNKNOWN
    assert not res.proved


def test_harness_expected_counterexample_that_holds_is_a_failure() -> None:
    x = z3.BitVec("x", 8)
    res = run_claims(
        "t", "t", "t", [Claim("holds", z3.ULE(x, 255), (), {"x": x}, expect="counterexample")]
    )
    assert not res.proved
    assert "a counterexample was expected" in res.report()


def test_harness_reports_values() -> None:
    x = z3.BitVec("x", 8)
    res = run_claims("t", "t", "t", [Claim("x is small", z3.ULT(x, 200), (), {"x": x})])
    assert res.status is Status.COUNTEREXAMPLE
    assert res.counterexample["x"] >= 200


# ---------------------------------------------------------------------------
# 4. dual typing: IntOps, Z3Ops and Z3IntOps agree on concrete inputs


def _ev(term: Any) -> Any:
    """Concrete value of a z3 term (or nested tuple/list of them) built from constants."""
    if isinstance(term, (tuple, list)):
        return (
            type(term)(_ev(t) for t in term) if isinstance(term, tuple) else [_ev(t) for t in term]
        )
    if isinstance(term, (bool, int)):
        return term
    v = z3.simplify(term)
    if z3.is_bool(v):
        assert z3.is_true(v) or z3.is_false(v), v
        return z3.is_true(v)
    return v.as_long()


def _uint(width: int) -> st.SearchStrategy[int]:
    mask = (1 << width) - 1
    return st.one_of(
        st.integers(0, mask), st.sampled_from([0, 1, 2, mask, mask - 1, 1 << (width - 1)])
    )


OPS_METHODS = [
    "const",
    "add",
    "sub",
    "mul",
    "udiv",
    "urem",
    "band",
    "bor",
    "shl",
    "lshr",
    "ult",
    "ule",
    "eq",
    "ne",
    "umin",
    "add_overflows",
]


@pytest.mark.parametrize("width", [16, 32, 64])
@pytest.mark.parametrize("method", OPS_METHODS)
@given(data=st.data())
def test_ops_methods_agree(width: int, method: str, data: st.DataObject) -> None:
    iops, zops = IntOps(width), Z3Ops(width)
    a = data.draw(_uint(width), label="a")
    if method == "const":
        assert _ev(zops.const(a)) == iops.const(a)
        return
    if method in ("shl", "lshr"):
        b = data.draw(st.integers(0, width - 1), label="shift")
    else:
        b = data.draw(_uint(width), label="b")
    want = getattr(iops, method)(a, b)
    got = _ev(getattr(zops, method)(zops.const(a), zops.const(b)))
    assert got == want, (method, a, b)


@given(c=st.booleans(), d=st.booleans(), a=_uint(32), b=_uint(32))
def test_logic_methods_agree(c: bool, d: bool, a: int, b: int) -> None:
    z = Z3Ops(32)
    assert _ev(z.land(c, d)) == U32.land(c, d)
    assert _ev(z.lor(c, d)) == U32.lor(c, d)
    assert _ev(z.lnot(c)) == U32.lnot(c)
    assert _ev(z.ite(c, z.const(a), z.const(b))) == U32.ite(c, a, b)
    assert _ev(z.ite(z3.BoolVal(c), d, not d)) == U32.ite(c, d, not d)


def _args(kinds: str, width: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.tuples(*[_uint(width) for _ in kinds])


#: every dual-typed function of arith: (name, number of int args, width of ops)
ARITH_FUNCS: list[tuple[str, int, int]] = [
    ("fifo_space", 3, 32),
    ("ring_occupancy", 3, 32),
    ("ring_advance", 3, 32),
    ("wrap_split", 3, 32),
    ("wrap_slot", 4, 32),
    ("dbc_buf_size", 1, 32),
    ("dbc_rsp_offset", 1, 32),
    ("sem_valid", 6, 32),
    ("sem_encode", 5, 32),
    ("sem_decode", 1, 32),
    ("slice_in_bounds", 3, 64),
    ("activate_queue_size_ok", 1, 32),
    ("page_align", 1, 64),
    ("req_id_next", 1, 32),
    ("drain_count", 4, 32),
    ("slice_span", 3, 64),
    ("slice_span_ok", 3, 64),
    ("partial_split", 3, 64),
]


def test_arith_function_table_is_complete() -> None:
    """A new dual-typed function in arith must be added to the agreement tests."""
    import inspect

    covered = {n for n, _k, _w in ARITH_FUNCS} | {
        "req_elem_pack",
        "req_elem_unpack",
        "req_elem_valid",
    }
    dual = {
        n
        for n, f in vars(arith).items()
        if inspect.isfunction(f) and "ops" in inspect.signature(f).parameters
    }
    assert dual <= covered, sorted(dual - covered)


@pytest.mark.parametrize(
    ("name", "nargs", "width"), ARITH_FUNCS, ids=[n for n, _k, _w in ARITH_FUNCS]
)
@given(data=st.data())
def test_arith_functions_agree_int_vs_z3(
    name: str, nargs: int, width: int, data: st.DataObject
) -> None:
    fn = getattr(arith, name)
    args = data.draw(_args("x" * nargs, width), label="args")
    iops, zops = IntOps(width), Z3Ops(width)
    want = fn(*args, ops=iops)
    got = _ev(fn(*(zops.const(a) for a in args), ops=zops))
    assert got == want if not isinstance(want, list) else list(got) == want, (name, args)


@pytest.mark.parametrize(
    "name",
    [
        "slice_in_bounds",
        "slice_span",
        "slice_span_ok",
        "partial_split",
        "ring_advance",
        "fifo_space",
    ],
)
@given(data=st.data())
def test_arith_functions_agree_int_vs_z3int(name: str, data: st.DataObject) -> None:
    """Z3IntOps (proof 8's integer encoding of u64 wrap) computes what IntOps computes."""
    fn = getattr(arith, name)
    width = (
        64 if name in ("slice_in_bounds", "slice_span", "slice_span_ok", "partial_split") else 32
    )
    args = data.draw(_args("xxx", width), label="args")
    want = fn(*args, ops=IntOps(width))
    zops = Z3IntOps(width)
    term = fn(*(zops.const(a) for a in args), ops=zops)
    s = z3.Solver()
    s.add(*zops.side)
    assert s.check() == z3.sat
    m = s.model()

    def ev(t: Any) -> Any:
        if isinstance(t, tuple):
            return tuple(ev(x) for x in t)
        v = m.eval(t, model_completion=True)
        return z3.is_true(v) if z3.is_bool(v) else v.as_long()

    assert ev(term) == want, (name, args)


def test_z3intops_has_no_bitwise() -> None:
    with pytest.raises(NotModelledError):
        Z3IntOps(64).band(1, 2)


def test_z3ops_rejects_python_bool_as_value() -> None:
    with pytest.raises(TypeError):
        Z3Ops(32).add(True, 1)


# ---------------------------------------------------------------------------
# 5. the proved packers are the wire records' packers


_REQ_FIELDS = [st.integers(0, (1 << (8 * size)) - 1) for _n, _o, size in arith.REQ_LAYOUT]


@given(fields=st.tuples(*_REQ_FIELDS))
def test_request_elem_pack_is_the_proved_packer(fields: tuple[int, ...]) -> None:
    elem = wire.RequestElem(*fields)
    packed = elem.pack()
    assert int.from_bytes(packed, "little") == arith.req_elem_pack(list(fields), U512)
    assert arith.req_elem_unpack(int.from_bytes(packed, "little"), U512) == fields
    assert attrs.astuple(wire.RequestElem.unpack(packed)) == fields


def test_req_layout_matches_wire_dtype_and_struct() -> None:
    names = [n for n, _o, _s in arith.REQ_LAYOUT]
    assert names == [a.name for a in attrs.fields(wire.RequestElem)]
    fields = wire.REQ_DTYPE.fields
    assert fields is not None
    for name, off, size in arith.REQ_LAYOUT:
        dt, dt_off = fields[name if not name.startswith("sem_cmd") else "sem_cmd"][:2]
        if name.startswith("sem_cmd"):
            assert off == dt_off + 4 * int(name[-1]) and size == 4
        else:
            assert (off, size) == (dt_off, dt.itemsize), name
    assert sum(s for _n, _o, s in arith.REQ_LAYOUT) == wire.REQ_SIZE


@given(
    val=st.integers(0, 0xFFF),
    index=st.integers(0, 0x1F),
    presync=st.integers(0, 1),
    cmd=st.integers(0, 6),
    flags=st.integers(0, 3),
)
def test_sem_encode_agrees_with_wire_semcmd(
    val: int, index: int, presync: int, cmd: int, flags: int
) -> None:
    word = arith.sem_encode(val, index, presync, cmd, flags, U32)
    s = wire.SemCmd(word)
    assert (s.value, s.index, s.presync, int(s.op)) == (val, index, bool(presync), cmd)
    # QAIC_SEM_INSYNCFENCE (2) -> bit 30 (to-device), QAIC_SEM_OUTSYNCFENCE (1) -> bit 29
    assert (s.todev_fence, s.fromdev_fence) == (bool(flags & 2), bool(flags & 1))
    assert s.enable == (cmd != 0) and s.reserved == 0
    built = wire.SemCmd.build(
        enable=cmd != 0,
        op=cmd,
        index=index,
        value=val,
        presync=bool(presync),
        todev_fence=bool(flags & 2),
        fromdev_fence=bool(flags & 1),
    )
    assert built.word == word
    assert arith.sem_decode(word, U32) == (val, index, presync, cmd, flags)


def test_driver_constants() -> None:
    """Facts from the Linux driver the proofs rely on (qaic_control.c / qaic_data.c)."""
    assert arith.dbc_buf_size(1024, U32) == 73728  # control-path.md §2.1 example
    assert arith.activate_queue_size_ok(63_161_219, U32)
    assert not arith.activate_queue_size_ok(63_161_220, U32)
    assert not arith.activate_queue_size_ok(0, U32)
    assert arith.req_id_next(0xFFFF, U32) == 0
    assert not arith.slice_in_bounds(2**64 - 1, 2, 4096, U64)  # CVE-2025-22001 input


# ---------------------------------------------------------------------------
# 6. the command line


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proofs", *args], capture_output=True, text=True, timeout=600
    )


def test_cli_summary_line() -> None:
    p = _run("-q", "p4_encodings", "p6_req_id", "p7_activation")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 4
    assert all(": PROVED (" in ln for ln in lines[:3])
    assert lines[-1].startswith("3 proved, 0 failed")


def test_cli_bad_name_is_exit_2_one_line() -> None:
    p = _run("p9_nothing")
    assert p.returncode == 2
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "unknown proof" in err[0] and "Traceback" not in p.stderr
