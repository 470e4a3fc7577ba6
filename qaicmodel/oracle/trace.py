"""Reading host/device traces: JSON Lines ``qaicmodel-trace/1`` and Linux mmiotrace text.

Contract: ``shared/formats/trace.md``; clarifications in ``docs/formats-extensions.md``
("Trace format").  Both readers are strict: anything they cannot read exactly is a
:class:`~qaicmodel.errors.FormatError` whose ``where`` names the line and the field
(``line 7.hex``); nothing else escapes them (tests/test_trace_parse.py fuzzes both).

Rules (sources):
  T1  Line 1 is the header ``{"format": "qaicmodel-trace/1", "device": {...}}``; the
      ``device`` object is the scenario's (scenario.md "Top level"), read by the same
      code (:func:`qaicmodel.scenario._parse_device`).
  T2  Every later line is one event object with ``ev`` and the fields of trace.md
      "Lines", plus optional ``t`` (ns) and ``cpu``; unknown keys are rejected (a typo
      must not silently change what is checked); blank lines are skipped.
  T3  Integers are JSON integers or ``"0x..."`` strings and must fit their field
      (``val`` u32, bus addresses u64, ``idx`` u32, ``dbc`` < ``num_dbc``,
      ``vector`` <= ``num_dbc``); ``reg`` is a register name of aic100.rst "DMA
      Bridge"; ``req`` hex is one 64-byte element, ``rsp`` hex one 4-byte element
      (aic100.rst "Request FIFO" / "Response FIFO").
  T4  mmiotrace (Documentation/trace/mmiotrace.rst; kernel/trace/trace_mmiotrace.c
      prints ``VERSION``, ``PCIDEV``, ``MAP``, ``UNMAP``, ``R``, ``W``, ``UNKNOWN``,
      ``MARK``): BAR2 is resource 2 of the first ``PCIDEV`` of vendor 0x17cb (flag bits
      masked off) unless ``bar2`` is given; an ``R``/``W`` inside BAR2 at a DBC
      register (regs.decode_offset) becomes ``readl``/``writel``; other BAR2 offsets
      become ``bar_read``/``bar_write`` (the checker's HOST-BAR-UNMAPPED) and any
      access width other than 4 is kept in ``width`` (HOST-REG-WIDTH).  Accesses
      outside BAR2 are other devices' or other BARs': ignored.  ``MARK ... Lost N
      events.`` and an ``UNKNOWN`` access inside BAR2 become ``mark`` with ``lost``.
      That reader is :mod:`qaicmodel.oracle.mmiotrace`; :func:`parse_mmiotrace` here.
  T5  Extensions (docs/formats-extensions.md "Trace events added"): ``complete``
      (``dbc``, ``req_id``: the host completed the BO whose requests carry that id --
      qaic_data.c dbc_irq_threaded_fn) and ``idle`` (no fields: the host stopped; it
      believes everything it submitted has been answered).  A file without them means
      what trace.md says.
  T6  Streaming (issue #11): :func:`open_trace` reads a file once to learn which event
      kinds it has (a byte scan; the checker's set-up depends on it) and then yields the
      events one at a time, so a trace of any length is checked in bounded memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO

import attrs

from qaicmodel.errors import FormatError
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.wire import REQ_SIZE, RSP_SIZE

__all__ = [
    "Event",
    "Trace",
    "EVENT_KINDS",
    "REG_BY_NAME",
    "parse_jsonl",
    "parse_mmiotrace",
    "load",
    "dumps",
    "FORMAT",
    "TraceStream",
    "open_trace",
    "iter_jsonl",
    "scan_kinds",
]

FORMAT = "qaicmodel-trace/1"

#: register names of trace.md "Lines" -> BAR offsets (aic100.rst "DMA Bridge")
REG_BY_NAME = {name: off for off, name in regs.REG_NAMES.items()}

#: the largest hex payload an event may carry (NNC messages are at most 4 KiB on the
#: wire, control-path.md §1.4; SSR messages are smaller): a model limit against huge lines
MAX_PAYLOAD = 1 << 16

QAIC_VENDOR = 0x17CB  # Qualcomm (qaic_drv.c PCI_VENDOR_ID_QCOM): the mmiotrace PCIDEV match


@attrs.frozen
class Event:
    """One trace event.  ``line`` is its 1-based line number in the file (the event number
    reports use); fields that an event kind does not have are ``None``."""

    line: int
    ev: str
    dbc: int | None = None
    reg: int | None = None
    val: int | None = None
    idx: int | None = None
    data: bytes | None = None
    vector: int | None = None
    nelem: int | None = None
    req_q: int | None = None
    rsp_q: int | None = None
    text: str | None = None
    lost: int | None = None
    offset: int | None = None  # bar_read / bar_write: a BAR2 offset that is no DBC register
    req_id: int | None = None  # complete (T5)
    width: int = 4
    t: int | None = None
    cpu: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The event as a ``qaicmodel-trace/1`` line object (``bar_*`` events have no
        JSON form: they exist only in mmiotrace input)."""
        out: dict[str, Any] = {"ev": self.ev}
        for k in _FIELDS.get(self.ev, ()):
            v = getattr(self, "data" if k == "hex" else k)
            if v is None:
                continue
            if k == "hex":
                v = v.hex()
            elif k == "reg":
                v = regs.REG_NAMES[v]
            elif k in ("req_q", "rsp_q"):
                v = f"0x{v:x}"
            out[k] = v
        for k in ("t", "cpu"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out


@attrs.frozen
class Trace:
    """A parsed trace: the device object of the header and the events in order."""

    device: Any  # qaicmodel.spec.dbc.config.DeviceConfig
    events: tuple[Event, ...]
    source: str = "jsonl"  # or "mmiotrace"
    bar2: int | None = None  # mmiotrace: the DMA Bridge BAR the accesses were matched against
    ignored: int = 0  # mmiotrace: R/W records outside that BAR

    def kinds(self) -> set[str]:
        return {e.ev for e in self.events}


# -- JSON Lines -----------------------------------------------------------------


def _w(line: int, field: str) -> str:
    return f"line {line}.{field}" if field else f"line {line}"


def _int(v: Any, where: str) -> int:
    if isinstance(v, bool):
        raise FormatError(f"expected an integer, got {json.dumps(v)}", where=where)
    if isinstance(v, int):
        return v
    if isinstance(v, str) and re.fullmatch(r"0[xX][0-9a-fA-F]{1,32}", v):
        return int(v, 16)
    raise FormatError(f'expected an integer or a "0x..." string, got {_show(v)}', where=where)


def _show(v: Any) -> str:
    text = (
        json.dumps(v) if isinstance(v, (str, int, float, bool)) or v is None else type(v).__name__
    )
    return text if len(text) <= 40 else text[:37] + "..."


def _uint(bits: int) -> Callable[[Any, str], int]:
    def parse_u(v: Any, where: str) -> int:
        n = _int(v, where)
        if not 0 <= n < (1 << bits):
            raise FormatError(f"{n} does not fit in u{bits}", where=where)
        return n

    return parse_u


_U32, _U64 = _uint(32), _uint(64)


def _hex(nbytes: int | None) -> Callable[[Any, str], bytes]:
    def parse_h(v: Any, where: str) -> bytes:
        if not isinstance(v, str):
            raise FormatError(f"expected a string of hex digits, got {_show(v)}", where=where)
        if not re.fullmatch(r"(?:[0-9a-fA-F]{2})*", v):
            raise FormatError(
                "expected an even number of hex digits (no 0x, no spaces)", where=where
            )
        n = len(v) // 2
        if nbytes is not None and n != nbytes:
            raise FormatError(
                f"expected {2 * nbytes} hex digits ({nbytes} bytes), got {len(v)}", where=where
            )
        if nbytes is None and not 0 < n <= MAX_PAYLOAD:
            raise FormatError(f"a message is 1..{MAX_PAYLOAD} bytes, got {n}", where=where)
        return bytes.fromhex(v)

    return parse_h


def _reg(v: Any, where: str) -> int:
    if not isinstance(v, str) or v not in REG_BY_NAME:
        raise FormatError(f"expected one of {', '.join(REG_BY_NAME)}, got {_show(v)}", where=where)
    return REG_BY_NAME[v]


def _text(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise FormatError(f"expected a string, got {_show(v)}", where=where)
    return v


def _count(v: Any, where: str) -> int:
    n = _int(v, where)
    if not 0 <= n < (1 << 64):
        raise FormatError(f"expected a count 0..2^64-1, got {n}", where=where)
    return n


#: ev -> its fields (trace.md "Lines"): field -> parser; every field listed is required
#: except ``lost`` of ``mark``.
_FIELDS: dict[str, dict[str, Callable[[Any, str], Any]]] = {
    "activate": {"dbc": _U32, "nelem": _U32, "req_q": _U64, "rsp_q": _U64},
    "deactivate": {"dbc": _U32},
    "readl": {"dbc": _U32, "reg": _reg, "val": _U32},
    "writel": {"dbc": _U32, "reg": _reg, "val": _U32},
    "req": {"dbc": _U32, "idx": _U32, "hex": _hex(REQ_SIZE)},
    "rsp": {"dbc": _U32, "idx": _U32, "hex": _hex(RSP_SIZE)},
    "msi": {"vector": _U32},
    "irq_disable": {"vector": _U32},
    "irq_enable": {"vector": _U32},
    "nnc_tx": {"hex": _hex(None)},
    "nnc_rx": {"hex": _hex(None)},
    "ssr_rx": {"hex": _hex(None)},
    "ssr_tx": {"hex": _hex(None)},
    "mark": {"text": _text, "lost": _count},
    "complete": {"dbc": _U32, "req_id": _uint(16)},  # T5
    "idle": {},  # T5
}
EVENT_KINDS = tuple(_FIELDS)
_OPTIONAL = {"lost"}
_COMMON = {"ev", "t", "cpu"}


def _decode_line(raw: bytes, line: int) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8 (byte {e.start})", where=_w(line, "")) from None

    def no_constant(name: str) -> Any:
        raise FormatError(f"{name} is not JSON", where=_w(line, ""))

    try:
        return json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as e:
        raise FormatError(f"not JSON: {e.msg} (column {e.colno})", where=_w(line, "")) from None
    except RecursionError:
        raise FormatError("not JSON: nested too deeply", where=_w(line, "")) from None
    except ValueError as e:  # e.g. an integer literal beyond Python's digit limit
        raise FormatError(f"not JSON: {e}", where=_w(line, "")) from None


def _header(obj: Any) -> Any:
    from qaicmodel.scenario.format import parse_device as _parse_device

    if not isinstance(obj, dict):
        raise FormatError("the header must be a JSON object", where=_w(1, ""))
    for k in obj:
        if k not in ("format", "device"):
            raise FormatError("unknown header key (known: format, device)", where=_w(1, str(k)))
    if obj.get("format") != FORMAT:
        raise FormatError(
            f'expected "{FORMAT}", got {_show(obj.get("format"))}', where=_w(1, "format")
        )
    try:
        return _parse_device(obj.get("device"))
    except FormatError as e:
        raise FormatError(str(e).split(": ", 1)[-1], where=_w(1, e.where or "device")) from None


def _event(obj: Any, line: int, num_dbc: int) -> Event:
    if not isinstance(obj, dict):
        raise FormatError(
            f"an event is a JSON object, got {type(obj).__name__}", where=_w(line, "")
        )
    ev = obj.get("ev")
    if not isinstance(ev, str) or ev not in _FIELDS:
        raise FormatError(
            f"ev must be one of {', '.join(EVENT_KINDS)}, got {_show(ev)}", where=_w(line, "ev")
        )
    fields = _FIELDS[ev]
    for k in obj:
        if k not in fields and k not in _COMMON:
            raise FormatError(
                f"unknown key for ev {ev!r} (known: {', '.join(fields)}, t, cpu)",
                where=_w(line, str(k)),
            )
    kw: dict[str, Any] = {}
    for k, parse in fields.items():
        if k not in obj:
            if k in _OPTIONAL:
                continue
            raise FormatError(
                f"missing (ev {ev!r} needs {', '.join(f for f in fields if f not in _OPTIONAL)})",
                where=_w(line, k),
            )
        kw["data" if k == "hex" else k] = parse(obj[k], _w(line, k))
    for k in ("t", "cpu"):
        if k in obj:
            kw[k] = _count(obj[k], _w(line, k))
    if "dbc" in kw and kw["dbc"] >= num_dbc:
        raise FormatError(f"dbc {kw['dbc']} >= num_dbc {num_dbc}", where=_w(line, "dbc"))
    if "vector" in kw and kw["vector"] > num_dbc:
        raise FormatError(
            f"vector {kw['vector']} > num_dbc {num_dbc} (0 = MHI, i+1 = dbc i)",
            where=_w(line, "vector"),
        )
    return Event(line=line, ev=ev, **kw)


def parse_jsonl(data: bytes | str) -> Trace:
    """Read a ``qaicmodel-trace/1`` file (T1-T3)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    lines = iter(data.split(b"\n"))
    header = _first(lines)
    events = list(iter_jsonl(lines, header.num_dbc, start=2))
    return Trace(device=header, events=tuple(events), source="jsonl")


def _first(lines: Iterator[bytes]) -> Any:
    """The header (T1) from the first line of ``lines``."""
    raw = next(lines, b"")
    if not raw.strip():
        raise FormatError(
            "the first line must be the header"
            if raw
            else "empty file: the first line must be the header",
            where=_w(1, ""),
        )
    return _header(_decode_line(raw, 1))


def iter_jsonl(lines: Iterable[bytes], num_dbc: int, start: int = 2) -> Iterator[Event]:
    """The events of the lines after the header, one at a time (T2, T3, T6)."""
    decode = _DECODER.decode
    for n, raw in enumerate(lines, start=start):
        if not raw.strip():
            continue
        try:
            obj = decode(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            obj = _decode_line(raw, n)  # the same input again, for the exact error
        yield _event(obj, n, num_dbc)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: one decoder for every line (json.loads with keywords builds a new one per call)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


_EV_RE = re.compile(rb'"ev"\s*:\s*"([a-z_]{1,24})"')


def scan_kinds(f: BinaryIO, chunk: int = 1 << 22) -> set[str]:
    """The event kinds a JSON Lines file names (T6): a byte scan, no JSON parse.  In a
    well-formed file ``"ev":`` followed by a string can only be an event's key (string
    values cannot hold an unescaped quote); malformed lines are reported by the parse."""
    kinds: set[bytes] = set()
    tail = b""
    while True:
        block = f.read(chunk)
        if not block:
            break
        block = tail + block
        cut = block.rfind(b"\n") + 1
        kinds.update(_EV_RE.findall(block, 0, cut))
        tail = block[cut:]
    kinds.update(_EV_RE.findall(tail))
    return {k.decode("ascii") for k in kinds}


@attrs.define
class TraceStream:
    """A trace read one event at a time (T6): ``device``, ``source``, ``kinds`` (the event
    kinds the file holds, known before the first event) and :meth:`events`."""

    device: Any
    source: str
    kinds: set[str]
    _events: Callable[[], Iterator[Event]]
    bar2: int | None = None
    ignored: int = 0

    def events(self) -> Iterator[Event]:
        return self._events()


def open_trace(
    path: str, fmt: str = "jsonl", bar2: int | None = None, device: Any = None
) -> TraceStream:
    """A trace file as a :class:`TraceStream` (FormatError naming the path when it cannot
    be read).  mmiotrace logs are small per event and parsed whole (their BAR is known
    only from a PCIDEV line)."""
    if fmt == "mmiotrace":
        t = load(path, fmt, bar2=bar2, device=device)
        return TraceStream(t.device, t.source, t.kinds(), lambda: iter(t.events), t.bar2, t.ignored)
    if fmt != "jsonl":
        raise FormatError(f"unknown trace format {fmt!r} (jsonl, mmiotrace)", where="--format")
    try:
        with open(path, "rb") as f:
            header = _first(iter([f.readline().rstrip(b"\n")]))
            kinds = scan_kinds(f)
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror}", where=path) from None

    def events() -> Iterator[Event]:
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed when the generator ends
        except OSError as e:
            raise FormatError(f"cannot read: {e.strerror}", where=path) from None
        with f:
            f.readline()
            yield from iter_jsonl((raw.rstrip(b"\n") for raw in f), header.num_dbc, start=2)

    return TraceStream(header, "jsonl", kinds, events)


def dumps(device: Mapping[str, Any] | None, events: Iterable[Event | Mapping[str, Any]]) -> str:
    """A ``qaicmodel-trace/1`` text: the header line and one line per event."""
    head: dict[str, Any] = {"format": FORMAT}
    if device is not None:
        head["device"] = dict(device)
    out = [json.dumps(head)]
    for e in events:
        out.append(json.dumps(e.as_json() if isinstance(e, Event) else dict(e)))
    return "\n".join(out) + "\n"


# -- mmiotrace (the reader: qaicmodel.oracle.mmiotrace) --------------------------


def parse_mmiotrace(data: bytes | str, bar2: int | None = None, device: Any = None) -> Trace:
    """Read mmiotrace text (T4; :func:`qaicmodel.oracle.mmiotrace.parse`).  ``device``: the
    DeviceConfig to check against (default: scenario.md's defaults; the log has no header)."""
    from qaicmodel.oracle.mmiotrace import parse

    return parse(data, bar2=bar2, device=device)


def load(path: str, fmt: str = "jsonl", bar2: int | None = None, device: Any = None) -> Trace:
    """Read a trace file (FormatError naming the path when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror}", where=path) from None
    if fmt == "jsonl":
        return parse_jsonl(data)
    if fmt == "mmiotrace":
        return parse_mmiotrace(data, bar2=bar2, device=device)
    raise FormatError(f"unknown trace format {fmt!r} (jsonl, mmiotrace)", where="--format")
