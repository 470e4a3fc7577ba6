"""Kernel splats in a guest console: Oops, BUG, WARNING, KASAN, lockdep, panic.

The line shapes are the kernel's own (``lib/bug.c`` ``report_bug`` "WARNING:" and
"kernel BUG at", ``kernel/panic.c`` "Kernel panic - not syncing", ``mm/kasan/report.c``
"BUG: KASAN:", ``kernel/locking/lockdep.c`` "WARNING: possible circular locking
dependency detected" and friends, ``kernel/watchdog.c`` soft lockups,
``kernel/hung_task.c``, ``kernel/rcu/tree_stall.h``; UML's
``arch/um/kernel/trap.c`` "Kernel mode fault at addr" and its ``show_regs``
"RIP:" line), with or without the ``[    1.234567]`` timestamp of
CONFIG_PRINTK_TIME.

:func:`find` returns every splat in order; the first one is what the runner
quotes, with the faulting function (the one a KASAN report names, else the ``RIP:``
line or the first call trace entry) when the console shows one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

__all__ = ["UML_TRANSPORT", "Splat", "find", "classify_line", "is_uml_transport", "strip_time"]

#: UML's virtual PCI transport (7.2 ``virtio_pcidev.c``, 6.12 ``virt-pci.c``): its own
#: WARNINGs are the guest's transport, not the driver (docs/findings.md F7, F8)
UML_TRANSPORT = ("arch/um/drivers/virtio_pcidev.c", "arch/um/drivers/virt-pci.c")

_TIME = re.compile(r"^\s*\[\s*\d+\.\d+\]\s?")

#: (kind, pattern) in priority order; the first match names the line's kind
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "kasan",
        re.compile(
            r"\bBUG: KASAN:|\bKASAN\b.*\b(out-of-bounds|use-after-free|wild-memory|"
            r"null-ptr-deref|double-free)"
        ),
    ),
    (
        "lockdep",
        re.compile(
            r"possible (circular|recursive) locking|inconsistent lock state|"
            r"suspicious RCU usage|lock held when returning|"
            r"bad unlock balance|trying to register non-static key|"
            r"lockdep (bug|is turned off)|BUG: MAX_LOCKDEP"
        ),
    ),
    ("panic", re.compile(r"Kernel panic - not syncing")),
    (
        "oops",
        re.compile(
            r"\bOops\b|general protection fault|Unable to handle kernel|"
            r"Kernel mode fault at addr|segfault in kernel mode"
        ),
    ),
    ("bug", re.compile(r"\bBUG: |kernel BUG at|\bBUG_ON\b")),
    ("warning", re.compile(r"^WARNING: |\bWARNING: CPU: |------------\[ cut here \]")),
    ("ubsan", re.compile(r"\bUBSAN: ")),
    (
        "lockup",
        re.compile(
            r"soft lockup|hard LOCKUP|blocked for more than \d+ seconds|"
            r"rcu_\w+ (self-)?detected stall|rcu: INFO: .*stall"
        ),
    ),
]
#: a KASAN report names the faulting function itself ("BUG: KASAN: KIND in FUNC+off/len")
_KASAN_IN = re.compile(r"BUG: KASAN: [\w-]+ in (\S+)")
_RIP = re.compile(r"^RIP:\s*(?:[0-9a-f]{4}:)?\s*(\S+)")
_TRACE_ENTRY = re.compile(r"^\s*\[<[0-9a-f]+>\]\s+([^?\s]\S*)")
_TRACE_ENTRY2 = re.compile(r"^\s+([A-Za-z_][\w.]*\+0x[0-9a-f]+/0x[0-9a-f]+)")


@attrs.frozen
class Splat:
    """One kernel splat: the console line (1-based ``line``), its kind, and where."""

    line: int
    kind: str
    text: str
    where: str = ""

    def quote(self) -> str:
        at = f" (in {self.where})" if self.where else ""
        return f"console line {self.line}: {self.text}{at}"


def is_uml_transport(s: Splat) -> bool:
    """Whether a splat is a WARNING of UML's virtual PCI transport (:data:`UML_TRANSPORT`)."""
    return s.kind == "warning" and any(f in s.text for f in UML_TRANSPORT)


def strip_time(line: str) -> str:
    return _TIME.sub("", line.rstrip("\r\n"))


def classify_line(line: str) -> str | None:
    """The splat kind of one console line, or None."""
    text = strip_time(line)
    for kind, pat in PATTERNS:
        if pat.search(text):
            return kind
    return None


def find(lines: Iterable[str]) -> list[Splat]:
    """Every splat in a console, in order.  A "cut here" marker and the WARNING that
    follows it count once (the WARNING line is kept)."""
    text = [strip_time(x) for x in lines]
    out: list[Splat] = []
    rip_at: dict[int, str] = {}
    for i, t in enumerate(text):
        m = _RIP.match(t)
        if m:
            rip_at[i] = m.group(1)
    skip_cut = False
    for i, t in enumerate(text):
        kind = classify_line(t)
        if kind is None:
            continue
        if "[ cut here ]" in t:
            skip_cut = True
            continue
        if skip_cut and kind == "warning":
            skip_cut = False
        if out and out[-1].kind == "panic" and kind == "panic":
            continue
        m = _KASAN_IN.search(t) if kind == "kasan" else None
        where = m.group(1) if m else _where(text, i, rip_at)
        out.append(Splat(i + 1, kind, t.strip(), where))
    return out


def _where(text: list[str], i: int, rip_at: dict[int, str]) -> str:
    """The faulting function near line ``i``: a RIP line within 40 lines before or
    after, else the first call-trace entry after it."""
    near = [j for j in rip_at if i - 40 <= j <= i + 40]
    if near:
        j = min(near, key=lambda j: abs(j - i))
        return rip_at[j]
    for t in text[i + 1 : i + 60]:
        m = _TRACE_ENTRY.match(t) or _TRACE_ENTRY2.match(t)
        if m:
            return m.group(1)
    return ""
