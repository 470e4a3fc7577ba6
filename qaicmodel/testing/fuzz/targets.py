"""The fuzz targets: each is a set of properties, each property a strategy and a check.

Rules:
  G1  A property's ``check(x)`` returns a *behaviour* string (which decoder outcome or rule
      the input led to) or raises.  Decoder, trace and scenario properties allow
      :class:`~qaicmodel.errors.QaicModelError` (Z1: the behaviour is its kind and rule);
      host and guest properties allow nothing: any exception is a failure.
  G2  Inputs are bytes (decoders, traces, scenario files), an int (a conform seed) or a
      JSON document (a guest scenario), stored in replay files as ``{"hex"|"int"|"json"}``.
  G3  Decoder seeds are valid messages built by the model's own packers (aic100.rst
      "Request FIFO", "Response FIFO"; the NNC/SSR/RAS/Sahara/QTS layouts of
      qaicmodel/spec/control), then mutated: byte set, bit flip, truncation, append,
      insertion, a u32 of 0/0xffffffff/8/16.  The mutations are drawn as data from one
      strategy built once (Hypothesis validates every new strategy object, which made
      per-draw strategies the campaign's largest cost) and applied by ``apply_ops``.
  G4  ``planted`` is test-only: a decoder with a bug planted on purpose (first byte 0xa5,
      at least two bytes -> KeyError) next to a property that never fails, so a campaign
      that has found the bug keeps running (tests/test_fuzz_campaign.py kills it).
  G5  Hypothesis begins every run (chunk) with the simplest input; fast properties run
      chunks of 500-2000 examples, slow ones a single chunk of ``SLOW_CHUNK`` that
      ``--budget``/``--examples`` ends (else every chunk of a conform or guest target
      would replay seed 0 / the same scenario).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import strategies as st

from qaicmodel.errors import QaicModelError

__all__ = [
    "Prop",
    "SLOW_CHUNK",
    "GROUPS",
    "build",
    "encode_input",
    "decode_input",
    "behaviour_of_error",
]


@attrs.frozen
class Prop:
    """One fuzzed property (G1, G2)."""

    name: str
    inputs: Any  # a SearchStrategy
    check: Callable[[Any], str]
    allow_errors: bool = True
    chunk: int = 2000  # examples per Hypothesis run
    shrink: bool = True
    warm: bool = True  # cheap enough to run once on b"" before the workers start (C6)


#: chunk of a slow property (host, guest, hunt): Hypothesis starts every run with the
#: simplest input, so a slow property runs one long chunk that the budget ends (G5)
SLOW_CHUNK = 100_000


class PropertyFailed(Exception):
    """A host or guest property that does not hold (not a QaicModelError: it is a failure)."""


def behaviour_of_error(e: QaicModelError) -> str:
    rule = getattr(e, "rule", "") or getattr(e, "where", "").split(".")[-1]
    return f"{e.kind}:{rule}"


def encode_input(x: Any) -> dict[str, Any]:
    if isinstance(x, (bytes, bytearray)):
        return {"hex": bytes(x).hex()}
    if isinstance(x, int):
        return {"int": x}
    return {"json": x}


def decode_input(d: dict[str, Any]) -> Any:
    if "hex" in d:
        return bytes.fromhex(d["hex"])
    if "int" in d:
        return int(d["int"])
    return d["json"]


# -- decoders (Z1, G3) ----------------------------------------------------------


def _seeds() -> dict[str, list[bytes]]:
    from qaicmodel.spec.control import boot, nnc, qsm, ras, ssr, timesync
    from qaicmodel.spec.dbc.wire import RequestElem, ResponseElem

    req = RequestElem(req_id=1, seq_id=2, pcie_dma_cmd=0x19, pcie_dma_len=4096)
    return {
        "request": [req.pack(), bytes(64)],
        "response": [ResponseElem(req_id=3, completion_code=0).pack(), bytes(4)],
        "sem": [bytes(4), (0x80000001).to_bytes(4, "little")],
        "nnc": [
            nnc.Message.build(
                [nnc.ActivateToDev(1, 2, 3, 4, 5, 6), nnc.DmaXfer(1, ((1, 2), (3, 4)), 3)], seq=1
            ).pack(),
            nnc.Message.build([nnc.StatusFromDev(), nnc.Passthrough(3, bytes(16))], seq=2).pack(),
            nnc.Message.build([nnc.DmaXferCont(1, 0, 5)], seq=3).pack(),
            nnc.Message.build([nnc.TerminateToDev(4)], seq=4, partition_id=0).pack(),
            qsm.command(qsm.Cmd.LOAD_ELF_REQ, 1, 0, 100, 0),
        ],
        "ssr": [
            ssr.event(1, 2).pack(),
            ssr.SsrMsg(ssr.Cmd.DEBUG_TRANSFER_INFO, 1, {"tbl_addr": 9, "tbl_len": 64}).pack(),
            ssr.SsrMsg(ssr.Cmd.MEMORY_READ_RSP, 1, {}, bytes(8)).pack(),
        ],
        "ras": [ras.RasMsg().pack()],
        "sahara": [
            boot.pkt(boot.SaharaCmd.HELLO, version=2, mode=0).pack(),
            boot.pkt(boot.SaharaCmd.READ_DATA, image=1, offset=0, length=4).pack(),
            boot.pkt(boot.SaharaCmd.MEM_DEBUG64, table_address=1, table_length=64).pack(),
        ],
        "timesync": [timesync.QtsHdr().pack()],
    }


_U32S = (b"\0\0\0\0", b"\xff\xff\xff\xff", b"\x08\0\0\0", b"\x10\0\0\0")


def _ops(max_ops: int) -> Any:
    """Mutations as data: (op, position, value, bytes); one strategy object, built once, so
    a draw does not build new strategies (Hypothesis validates each new one: slow)."""
    one = st.tuples(
        st.integers(0, 5), st.integers(0, 2**16 - 1), st.integers(0, 255), st.binary(max_size=32)
    )
    return st.lists(one, max_size=max_ops)


def apply_ops(base: bytes, ops: list[tuple[int, int, int, bytes]]) -> bytes:
    """G3: set a byte, flip a bit, truncate, append, replace a u32, insert."""
    b = bytearray(base)
    for op, pos, v, blob in ops:
        if op == 0 and b:
            b[pos % len(b)] = v
        elif op == 1 and b:
            b[pos % len(b)] ^= 1 << (v % 8)
        elif op == 2:
            del b[pos % (len(b) + 1) :]
        elif op == 3:
            b += blob or bytes([v])
        elif op == 4 and len(b) >= 4:
            i = pos % (len(b) - 3)
            b[i : i + 4] = _U32S[v % 4] if v < 128 or len(blob) < 4 else blob[:4]
        elif op == 5:
            i = pos % (len(b) + 1)
            b[i:i] = blob[:8] or bytes([v])
    return bytes(b)


def mutated(seeds: list[bytes], max_ops: int = 6) -> Any:
    """A seed with 0..max_ops mutations (G3)."""
    return st.tuples(st.sampled_from(seeds), _ops(max_ops)).map(lambda t: apply_ops(*t))


def _run_all(
    funcs: list[tuple[str, Callable[[bytes], Any]]], describe: bool
) -> Callable[[Any], str]:
    """Check: every function on the input; behaviour = each outcome (G1)."""

    def check(data: Any) -> str:
        out = []
        for name, fn in funcs:
            try:
                r = fn(data)
            except QaicModelError as e:
                out.append(f"{name}={behaviour_of_error(e)}")
                continue
            if describe and isinstance(r, dict):
                json.dumps(r)  # JSON-able, as `qaicmodel decode --json` needs
                rules = sorted({v["rule"] for v in r.get("violations", ())})
                out.append(f"{name}=ok[{','.join(rules)}]")
            else:
                out.append(f"{name}=ok")
        return " ".join(out)

    return check


def _decoder_props() -> list[Prop]:
    from qaicmodel.cli import DECODERS, _load
    from qaicmodel.spec.control import boot, nnc, qsm, ras, ssr, timesync

    strict: dict[str, list[tuple[str, Callable[[bytes], Any]]]] = {
        "nnc": [
            ("decode", nnc.decode),
            ("decode_d2h_crc", lambda b: nnc.decode(b, "d2h", check_crc=True)),
            ("qsm.parse_command", qsm.parse_command),
        ],
        "ssr": [("decode", ssr.decode)],
        "ras": [("decode", ras.decode)],
        "sahara": [("decode", boot.decode)],
        "timesync": [("decode", timesync.decode), ("describe", timesync.describe)],
    }
    seeds = _seeds()
    props = []
    for kind in [*sorted(DECODERS), "timesync"]:
        funcs: list[tuple[str, Callable[[bytes], Any]]] = []
        if kind in DECODERS:
            funcs.append(("describe", _load(DECODERS[kind])))
        funcs += strict.get(kind, [])
        size = max(len(s) for s in seeds[kind]) + 16
        props.append(
            Prop(
                f"{kind}",
                st.binary(max_size=size) | mutated(seeds[kind]),
                _run_all(funcs, describe=True),
            )
        )
    return props


# -- traces and scenario files ---------------------------------------------------

_TRACE_LINES = [
    b'{"ev": "mark", "text": "x"}',
    b'{"ev": "activate", "dbc": 0, "nelem": 4, "req_q": "0x100000000", "rsp_q": "0x100000100"}',
    b'{"ev": "readl", "dbc": 0, "reg": "REQ_HP", "val": 0, "t": 1000, "cpu": 0}',
    b'{"ev": "writel", "dbc": 0, "reg": "REQ_TP", "val": 2}',
    b'{"ev": "req", "dbc": 0, "idx": 0, "hex": "' + b"07" * 64 + b'"}',
    b'{"ev": "rsp", "dbc": 0, "idx": 0, "hex": "01000000"}',
    b'{"ev": "irq", "vector": 1}',
    b'{"ev": "complete", "dbc": 0, "req_id": 1}',
    b'{"ev": "idle"}',
]
_TRACE_HEADER = b'{"format": "qaicmodel-trace/1", "device": {"num_dbc": 16, "policies": {}}}'
_MMIO = [
    b"VERSION 20070824",
    b"PCIDEV 0100 17cba100 3d fc00000c 0 fe00000c 0 0 0 0 4000 0 200000 0 0 0 0 qaic",
    b"MAP 10.000000 1 0xfe000000 0xffffc90001000000 0x200000 0x0 0",
    b"R 4 10.000100 1 0xfe020000 0x0 0x0 0",
    b"W 4 10.000200 1 0xfe020004 0x2 0x0 0",
    b"MARK 10.000300 Lost 3 events.",
    b"UNMAP 10.000400 1 0xffffc90001000000",
]


def _line_file(header: bytes, lines: list[bytes]) -> Any:
    picked = st.lists(st.sampled_from(lines), max_size=6)
    return st.tuples(picked, _ops(4)).map(lambda t: apply_ops(b"\n".join([header, *t[0]]), t[1]))


def _trace_props() -> list[Prop]:
    from qaicmodel.oracle.trace import parse_jsonl, parse_mmiotrace

    jl = Prop(
        "trace.jsonl",
        st.binary(max_size=200) | _line_file(_TRACE_HEADER, _TRACE_LINES),
        _run_all([("parse_jsonl", parse_jsonl)], describe=False),
        chunk=1000,
    )
    mm = Prop(
        "trace.mmiotrace",
        st.binary(max_size=200) | _line_file(_MMIO[0], _MMIO[1:]),
        _run_all([("parse_mmiotrace", parse_mmiotrace)], describe=False),
        chunk=1000,
    )
    return [jl, mm]


def _scenario_props() -> list[Prop]:
    from qaicmodel.scenario.format import FORMAT, OPS, load

    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.text(max_size=8)
        | st.sampled_from(["0x10", "h", "u1", "ok", "EINVAL", "a"])
    )

    value = scalars | st.lists(scalars, max_size=2)
    n_steps, op_names, ops3 = st.integers(0, 4), st.sampled_from(sorted(OPS)), _ops(3)
    fields = {  # built once (see _ops)
        op: st.lists(
            st.sampled_from([f.name for f in spec[0]] + ["expect", "as", "user", "bogus"]),
            max_size=4,
            unique=True,
        )
        for op, spec in OPS.items()
    }

    @st.composite
    def doc(draw: st.DrawFn) -> bytes:
        steps: list[dict[str, Any]] = [{"op": "open", "user": "a"}]
        for _ in range(draw(n_steps)):
            op = draw(op_names)
            step: dict[str, Any] = {"op": op}
            for n in draw(fields[op]):
                step[n] = draw(value)
            steps.append(step)
        text = json.dumps({"format": FORMAT, "steps": steps}).encode()
        return apply_ops(text, draw(ops3))

    return [
        Prop(
            "scenario",
            st.binary(max_size=300) | doc(),
            _run_all([("load", load)], describe=False),
            chunk=1000,
        )
    ]


# -- test-only (G4) ---------------------------------------------------------------


def _planted_bug(data: bytes) -> str:
    if len(data) >= 2 and data[0] == 0xA5:
        raise KeyError("planted bug (test-only target)")
    return "ok"


def _planted_props() -> list[Prop]:
    return [
        Prop("planted.bug", st.binary(max_size=8), _planted_bug, chunk=500),
        Prop("planted.ok", st.binary(max_size=8), lambda d: f"len{len(d) % 4}", chunk=500),
    ]


# -- host under conform, the real driver in the guest ------------------------------


def _host_props(params: dict[str, Any]) -> list[Prop]:
    from qaicmodel.testing.fuzz.hosts import host_prop

    return [host_prop(params)]


def _guest_props(params: dict[str, Any]) -> list[Prop]:
    from qaicmodel.testing.fuzz.hosts import guest_prop

    return [guest_prop(params)]


def _hunt_props(params: dict[str, Any]) -> list[Prop]:
    from qaicmodel.testing.fuzz.hunt import hunt_prop

    return [hunt_prop(params)]


#: TARGET -> its properties; "decoders" = every decoder, trace and scenario property
GROUPS: dict[str, Callable[[dict[str, Any]], list[Prop]]] = {
    "decoders": lambda p: _decoder_props() + _trace_props() + _scenario_props(),
    "trace": lambda p: _trace_props(),
    "scenario": lambda p: _scenario_props(),
    "host": _host_props,
    "guest": _guest_props,
    "hunt": _hunt_props,
    "planted": lambda p: _planted_props(),
}


def build(targets: list[str], params: dict[str, Any]) -> list[Prop]:
    """The properties of ``targets`` (group names or single decoder kinds)."""
    out: list[Prop] = []
    single = {p.name: p for p in _decoder_props()}
    for t in targets:
        if t in GROUPS:
            out += GROUPS[t](params)
        else:
            out.append(single[t])
    seen: set[str] = set()
    return [p for p in out if not (p.name in seen or seen.add(p.name))]  # type: ignore[func-returns-value]
