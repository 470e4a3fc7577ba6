"""Trace readers (qaicmodel/oracle/trace.py): shared/formats/trace.md, strict, fuzzed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qaicmodel.errors import FormatError
from qaicmodel.oracle.trace import EVENT_KINDS, Event, dumps, load, parse_jsonl, parse_mmiotrace
from qaicmodel.spec.dbc import regs

EX = Path(__file__).resolve().parent.parent / "examples" / "traces"
HDR = '{"format": "qaicmodel-trace/1"}'
REQ_HEX = "00" * 64


def _one(line: str) -> str:
    return HDR + "\n" + line + "\n"


def test_examples_parse() -> None:
    t = load(str(EX / "conforming.jsonl"))
    assert t.events[0].ev == "mark" and t.events[1].ev == "activate"
    assert t.events[1].req_q == 0x1_0000_0000 and t.events[1].nelem == 4
    assert {e.ev for e in t.events} >= {"readl", "writel", "req", "rsp", "msi", "irq_disable"}
    assert t.events[0].line == 2  # line numbers count the header
    m = load(str(EX / "mmio.txt"), "mmiotrace")
    rw = [e for e in m.events if e.ev in ("readl", "writel")]
    assert rw[0] == Event(line=5, ev="readl", dbc=0, reg=regs.REQ_HP, val=0, t=10_000_100_000)
    assert rw[2].ev == "writel" and rw[2].reg == regs.REQ_TP and rw[2].val == 2
    # the access at 0xfc000010 is BAR0's: not a DMA Bridge event
    assert all(e.ev != "bar_read" for e in m.events)


def test_round_trip() -> None:
    t = load(str(EX / "conforming.jsonl"))
    again = parse_jsonl(dumps(t.device.as_dict(), t.events))
    assert [attrs_sans_line(e) for e in again.events] == [attrs_sans_line(e) for e in t.events]


def attrs_sans_line(e: Event) -> tuple:
    return (
        e.ev,
        e.dbc,
        e.reg,
        e.val,
        e.idx,
        e.data,
        e.vector,
        e.nelem,
        e.req_q,
        e.rsp_q,
        e.text,
        e.lost,
        e.t,
        e.cpu,
    )


@pytest.mark.parametrize(
    "text,where",
    [
        ("", "line 1"),
        ("[1]\n", "line 1"),
        ('{"format": "qaicmodel-trace/2"}\n', "line 1.format"),
        ('{"format": "qaicmodel-trace/1", "extra": 1}\n', "line 1.extra"),
        ('{"format": "qaicmodel-trace/1", "device": {"num_dbc": 99}}\n', "line 1.device.num_dbc"),
        (
            '{"format": "qaicmodel-trace/1", "device": {"policies": {"no-such": "x"}}}\n',
            "line 1.device.policies.no-such",
        ),
        (_one("{nope"), "line 2"),
        (_one('{"ev": "jump"}'), "line 2.ev"),
        (_one('{"ev": "readl", "dbc": 0, "reg": "REQ_HP"}'), "line 2.val"),
        (_one('{"ev": "readl", "dbc": 0, "reg": "HEAD", "val": 0}'), "line 2.reg"),
        (_one('{"ev": "readl", "dbc": 16, "reg": "REQ_HP", "val": 0}'), "line 2.dbc"),
        (_one('{"ev": "writel", "dbc": 0, "reg": "REQ_TP", "val": 4294967296}'), "line 2.val"),
        (_one('{"ev": "writel", "dbc": 0, "reg": "REQ_TP", "val": true}'), "line 2.val"),
        (_one('{"ev": "req", "dbc": 0, "idx": 0, "hex": "00"}'), "line 2.hex"),
        (_one('{"ev": "rsp", "dbc": 0, "idx": 0, "hex": "zz000000"}'), "line 2.hex"),
        (_one('{"ev": "msi", "vector": 17}'), "line 2.vector"),
        (_one('{"ev": "msi", "vector": 1, "colour": 3}'), "line 2.colour"),
        (_one('{"ev": "mark", "text": 5}'), "line 2.text"),
        (_one('{"ev": "mark", "text": "x", "lost": -1}'), "line 2.lost"),
        (_one('{"ev": "nnc_tx", "hex": ""}'), "line 2.hex"),
        (_one('{"ev": "activate", "dbc": 0, "nelem": 4, "req_q": "0x10"}'), "line 2.rsp_q"),
        (HDR + "\n\n" + '{"ev": "msi", "vector": NaN}\n', "line 3"),
    ],
)
def test_jsonl_errors_name_line_and_field(text: str, where: str) -> None:
    with pytest.raises(FormatError) as info:
        parse_jsonl(text)
    assert info.value.where == where, str(info.value)


@pytest.mark.parametrize(
    "text,where",
    [
        ("VERSION 20070824\nR 4 1.000000 1 0xfe020000 0x0 0x0 0\n", "line 2.phys"),
        ("BOGUS 1\n", "line 1.record"),
        ("PCIDEV 0100 17cba100 3d\n", "line 1.PCIDEV"),
        ("R 4 1.0 1 0xfe020000 0x0 0x0 0\n", "line 1.R"),
        ("MARK nope\n", "line 1.MARK"),
        ("W 3 1.000000 1 0xfe020000 0x0 0x0 0\n", "line 1.width"),
    ],
)
def test_mmiotrace_errors(text: str, where: str) -> None:
    with pytest.raises(FormatError) as info:
        parse_mmiotrace(
            text, bar2=0xFE000000 if "PCIDEV" not in text and "phys" not in where else None
        )
    assert info.value.where == where, str(info.value)


def test_mmiotrace_details() -> None:
    base = 0xFE000000
    text = "\n".join(
        [
            f"W 2 1.000000 1 0x{base + 0x20004:x} 0x1 0x0 0",  # a 16-bit access: kept, width 2
            f"R 4 1.000001 1 0x{base + 0x100:x} 0x0 0x0 0",  # BAR2 but no DBC register
            f"R 4 1.000002 1 0x{base + 0x20000 + 3 * 0x1000 + 0xC:x} 0x7 0x0 0",
            "MARK 2.000000 Lost 12 events.",
            f"UNKNOWN 2.000001 1 0x{base + 0x20000:x} 01,02,03 0x0 0",
            f"R 4 2.000002 1 0x{base - 4:x} 0x7 0x0 0",  # outside BAR2: ignored
        ]
    )
    t = parse_mmiotrace(text, bar2=base)
    assert [e.ev for e in t.events] == ["writel", "bar_read", "readl", "mark", "mark"]
    assert t.events[0].width == 2
    assert t.events[1].offset == 0x100
    assert (t.events[2].dbc, t.events[2].reg, t.events[2].val) == (3, regs.RSP_TP, 7)
    assert t.events[3].lost == 12 and t.events[4].lost == 1
    # without --bar2 or a Qualcomm PCIDEV line the BAR is unknown
    with pytest.raises(FormatError):
        parse_mmiotrace(text)
    # --bar2 overrides the PCIDEV line
    pcidev = "PCIDEV 0100 17cba100 3d fc00000c 0 fd00000c 0 0 0 0 4000 0 200000 0 0 0 0 qaic\n"
    t2 = parse_mmiotrace(pcidev + text, bar2=base)
    assert [e.ev for e in t2.events] == [e.ev for e in t.events]
    t3 = parse_mmiotrace(pcidev + f"R 4 1.000000 1 0x{0xFD020000:x} 0x1 0x0 0\n")
    assert t3.events[0].ev == "readl" and t3.events[0].val == 1


# -- fuzzing: nothing but FormatError ------------------------------------------------

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 1 << 70),
    st.text(max_size=8),
    st.sampled_from(["0x10", "REQ_HP", "RSP_TP", REQ_HEX, "0000", "00"]),
)
_json_values = st.recursive(
    _json_scalars,
    lambda c: st.one_of(
        st.lists(c, max_size=3), st.dictionaries(st.text(max_size=6), c, max_size=3)
    ),
    max_leaves=6,
)
_keys = st.sampled_from(
    [
        "ev",
        "dbc",
        "reg",
        "val",
        "idx",
        "hex",
        "vector",
        "nelem",
        "req_q",
        "rsp_q",
        "text",
        "lost",
        "t",
        "cpu",
        "x",
    ]
)
_events = st.dictionaries(_keys, st.one_of(_json_values, st.sampled_from(EVENT_KINDS)), max_size=6)


@given(st.binary(max_size=300))
def test_fuzz_jsonl_bytes(data: bytes) -> None:
    try:
        parse_jsonl(HDR.encode() + b"\n" + data)
    except FormatError:
        pass
    try:
        parse_jsonl(data)
    except FormatError:
        pass


@given(st.lists(_events, max_size=6), st.one_of(st.none(), _json_values))
def test_fuzz_jsonl_structured(events: list, device: object) -> None:
    head = {"format": "qaicmodel-trace/1"}
    if device is not None:
        head["device"] = device  # type: ignore[assignment]
    text = "\n".join(json.dumps(x) for x in [head, *events])
    try:
        t = parse_jsonl(text)
    except FormatError:
        return
    assert len(t.events) == len(events)


_mmio_tokens = st.sampled_from(
    [
        "R",
        "W",
        "MARK",
        "MAP",
        "UNMAP",
        "UNKNOWN",
        "PCIDEV",
        "VERSION",
        "4",
        "2",
        "1.000000",
        "0xfe020000",
        "0xfe02000c",
        "0x0",
        "0",
        "Lost",
        "3",
        "events.",
        "17cba100",
        "0100",
        "01,02,03",
        "fe00000c",
        "-1",
        "0x",
        "\t",
    ]
)


@given(
    st.lists(st.lists(_mmio_tokens, max_size=10).map(" ".join), max_size=8),
    st.one_of(st.none(), st.just(0xFE000000)),
)
def test_fuzz_mmiotrace_tokens(lines: list[str], bar2: int | None) -> None:
    try:
        parse_mmiotrace("\n".join(lines), bar2=bar2)
    except FormatError:
        pass


@given(st.binary(max_size=300))
def test_fuzz_mmiotrace_bytes(data: bytes) -> None:
    try:
        parse_mmiotrace(data, bar2=0xFE000000)
    except FormatError:
        pass


# -- extensions (T5) and streaming (T6) ---------------------------------------------------


def test_extension_events_parse_and_round_trip() -> None:
    t = parse_jsonl(HDR + '\n{"ev": "complete", "dbc": 0, "req_id": 7}\n{"ev": "idle", "t": 5}\n')
    assert [(e.ev, e.dbc, e.req_id) for e in t.events] == [("complete", 0, 7), ("idle", None, None)]
    again = parse_jsonl(dumps(None, t.events))
    assert [(e.ev, e.dbc, e.req_id, e.t) for e in again.events] == [
        ("complete", 0, 7, None),
        ("idle", None, None, 5),
    ]


@pytest.mark.parametrize(
    "line,where",
    [
        ('{"ev": "complete", "dbc": 0}', "line 2.req_id"),
        ('{"ev": "complete", "dbc": 0, "req_id": 65536}', "line 2.req_id"),
        ('{"ev": "complete", "dbc": 16, "req_id": 1}', "line 2.dbc"),
        ('{"ev": "idle", "dbc": 0}', "line 2.dbc"),
    ],
)
def test_extension_events_are_strict(line: str, where: str) -> None:
    with pytest.raises(FormatError) as info:
        parse_jsonl(_one(line))
    assert info.value.where == where


def test_streamed_and_whole_file_parse_agree(tmp_path: Path) -> None:
    from qaicmodel.oracle.trace import open_trace

    for name in ("conforming.jsonl", "overrun.jsonl"):
        whole = load(str(EX / name))
        s = open_trace(str(EX / name))
        assert tuple(s.events()) == whole.events and s.kinds == whole.kinds()
    bad = tmp_path / "b.jsonl"
    bad.write_text(HDR + "\n" + '{"ev": "readl", "dbc": 0, "reg": "REQ_HP", "val": NaN}\n')
    with pytest.raises(FormatError) as info:
        list(open_trace(str(bad)).events())
    assert info.value.where == "line 2"
