"""Reading Linux mmiotrace text as a host/device trace (rule T4 of
:mod:`qaicmodel.oracle.trace`).

Documentation/trace/mmiotrace.rst; kernel/trace/trace_mmiotrace.c prints ``VERSION``,
``PCIDEV``, ``MAP``, ``UNMAP``, ``R``, ``W``, ``UNKNOWN`` and ``MARK`` records.  BAR2 is
resource 2 of the first ``PCIDEV`` of vendor 0x17cb (flag bits masked off) unless ``bar2``
is given; an ``R``/``W`` inside BAR2 at a DBC register becomes ``readl``/``writel``, other
BAR2 offsets ``bar_read``/``bar_write``; accesses outside BAR2 are ignored; ``MARK ... Lost
N events.`` and an ``UNKNOWN`` access inside BAR2 become ``mark`` with ``lost``.  The reader
is strict: anything it cannot read exactly is a :class:`~qaicmodel.errors.FormatError`
naming the line and field.  :func:`qaicmodel.oracle.trace.parse_mmiotrace` is the public
name.
"""

from __future__ import annotations

import re
from typing import Any

from qaicmodel.errors import FormatError
from qaicmodel.oracle.trace import QAIC_VENDOR, Event, Trace, _w
from qaicmodel.spec.dbc import regs

__all__ = ["parse", "QAIC_VENDOR"]

_HEXNUM = r"(?:0x)?[0-9a-fA-F]{1,16}"
_TS = r"(\d{1,12})\.(\d{6})"
_RW = re.compile(
    rf"([RW]) (\d{{1,2}}) {_TS} (-?\d{{1,10}}) ({_HEXNUM}) ({_HEXNUM}) ({_HEXNUM}) (-?\d{{1,10}})"
)
_MAP = re.compile(
    rf"MAP {_TS} (-?\d{{1,10}}) ({_HEXNUM}) ({_HEXNUM}) ({_HEXNUM}) ({_HEXNUM}) (-?\d{{1,10}})"
)
_UNMAP = re.compile(rf"UNMAP {_TS} (-?\d{{1,10}}) ({_HEXNUM}) (-?\d{{1,10}})")
_UNKNOWN = re.compile(
    rf"UNKNOWN {_TS} (-?\d{{1,10}}) ({_HEXNUM}) [0-9a-fA-F]{{2}},[0-9a-fA-F]{{2}},"
    rf"[0-9a-fA-F]{{2}} ({_HEXNUM}) (-?\d{{1,10}})"
)
_MARK = re.compile(rf"MARK {_TS} ?(.*)")
_LOST = re.compile(r"Lost (\d{1,19}) events\.?")
_PCIDEV = re.compile(
    r"PCIDEV ([0-9a-fA-F]{4}) ([0-9a-fA-F]{8}) ([0-9a-fA-F]{1,8})((?: [0-9a-fA-F]{1,16}){14})(?: (.*))?"
)
_VERSION = re.compile(r"VERSION (\d{1,10})")
_BAR_FLAGS = 0xF  # PCI_REGION_FLAG_MASK (trace_mmiotrace.c mmio_print_pcidev)


def _ns(secs: str, usec: str) -> int:
    return int(secs) * 1_000_000_000 + int(usec) * 1000


def parse(data: bytes | str, bar2: int | None = None, device: Any = None) -> Trace:
    """Read mmiotrace text (T4).  ``device``: the DeviceConfig to check against (default:
    scenario.md's defaults; the log has no header)."""
    from qaicmodel.spec.dbc.config import DeviceConfig

    if isinstance(data, bytes):
        raw = data
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise FormatError(f"not UTF-8 (byte {e.start})", where=_w(line, "")) from None
    dev = device if device is not None else DeviceConfig()
    if bar2 is not None and (
        not isinstance(bar2, int) or isinstance(bar2, bool) or not 0 <= bar2 < (1 << 64)
    ):
        raise FormatError(f"--bar2 must be a 64-bit bus address, got {bar2!r}", where="--bar2")
    base = bar2
    size = regs.BAR2_SIZE
    events: list[Event] = []
    accesses = 0
    ignored = 0
    for n, text in enumerate(data.split("\n"), start=1):
        text = text.rstrip("\r")
        if not text.strip():
            continue
        kind = text.split(" ", 1)[0]
        if kind in ("R", "W"):
            m = _RW.fullmatch(text)
            if m is None:
                raise FormatError(
                    f"expected '{kind} width secs.usecs map-id phys value pc pid'",
                    where=_w(n, kind),
                )
            accesses += 1
            width = int(m.group(2))
            if width not in (1, 2, 4, 8):
                raise FormatError(f"access width {width} is not 1, 2, 4 or 8", where=_w(n, "width"))
            if base is None:
                raise FormatError(
                    "a register access before any PCIDEV line of vendor 0x17cb "
                    "(give --bar2 0xADDR)",
                    where=_w(n, "phys"),
                )
            phys, val = int(m.group(6), 16), int(m.group(7), 16)
            if not base <= phys < base + size:
                ignored += 1
                continue
            if val >> (8 * width):
                raise FormatError(
                    f"value 0x{val:x} is wider than {width} bytes", where=_w(n, "value")
                )
            t = _ns(m.group(3), m.group(4))
            off = phys - base
            where = regs.decode_offset(off, dev.num_dbc) if off < regs.BAR2_SIZE else None
            if where is None:
                events.append(
                    Event(
                        line=n,
                        ev="bar_read" if kind == "R" else "bar_write",
                        offset=off,
                        val=val,
                        width=width,
                        t=t,
                    )
                )
            else:
                events.append(
                    Event(
                        line=n,
                        ev="readl" if kind == "R" else "writel",
                        dbc=where[0],
                        reg=where[1],
                        val=val,
                        width=width,
                        t=t,
                    )
                )
        elif kind == "MARK":
            m = _MARK.fullmatch(text)
            if m is None:
                raise FormatError("expected 'MARK secs.usecs text'", where=_w(n, "MARK"))
            lost = _LOST.fullmatch(m.group(3).strip())
            events.append(
                Event(
                    line=n,
                    ev="mark",
                    text=m.group(3),
                    lost=int(lost.group(1)) if lost else None,
                    t=_ns(m.group(1), m.group(2)),
                )
            )
        elif kind == "PCIDEV":
            m = _PCIDEV.fullmatch(text)
            if m is None:
                raise FormatError(
                    "expected 'PCIDEV bus+devfn vendor+device irq base0..6 size0..6 [driver]'",
                    where=_w(n, "PCIDEV"),
                )
            vendor = int(m.group(2), 16) >> 16
            nums = [int(x, 16) for x in m.group(4).split()]
            if vendor == QAIC_VENDOR and bar2 is None and base is None:
                base = nums[2] & ~_BAR_FLAGS
                size = nums[7 + 2] or regs.BAR2_SIZE
        elif kind == "MAP":
            if _MAP.fullmatch(text) is None:
                raise FormatError(
                    "expected 'MAP secs.usecs map-id phys virt len pc pid'", where=_w(n, "MAP")
                )
        elif kind == "UNMAP":
            if _UNMAP.fullmatch(text) is None:
                raise FormatError("expected 'UNMAP secs.usecs map-id pc pid'", where=_w(n, "UNMAP"))
        elif kind == "UNKNOWN":
            m = _UNKNOWN.fullmatch(text)
            if m is None:
                raise FormatError(
                    "expected 'UNKNOWN secs.usecs map-id phys b,b,b pc pid'", where=_w(n, "UNKNOWN")
                )
            phys = int(m.group(4), 16)
            if base is not None and base <= phys < base + size:
                # an access mmiotrace could not decode: its effect is unknown
                events.append(
                    Event(
                        line=n,
                        ev="mark",
                        text="undecoded access",
                        lost=1,
                        t=_ns(m.group(1), m.group(2)),
                    )
                )
        elif kind == "VERSION":
            if _VERSION.fullmatch(text) is None:
                raise FormatError("expected 'VERSION number'", where=_w(n, "VERSION"))
        else:
            raise FormatError(
                f"unknown record {kind[:20]!r} (known: VERSION, PCIDEV, MAP, UNMAP, "
                "R, W, UNKNOWN, MARK)",
                where=_w(n, "record"),
            )
    if base is None and accesses:
        raise FormatError("no PCIDEV line of vendor 0x17cb; give --bar2 0xADDR", where="(input)")
    return Trace(device=dev, events=tuple(events), source="mmiotrace", bar2=base, ignored=ignored)
