"""``qaicmodel check FILE``: arguments, streaming a file through the checker (T6) with
progress on a terminal (C12), and printing the report (text, ``--json``, ``--junit``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from qaicmodel.errors import ArgumentError, FormatError, PolicyError
from qaicmodel.oracle.check.checker import check_stream
from qaicmodel.oracle.check.report import Report
from qaicmodel.oracle.trace import open_trace
from qaicmodel.spec.policies import Policies

__all__ = ["add_args", "run_cli", "check_file"]


def _addr(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an address (e.g. 0xfe000000)") from None
    if not 0 <= v < 1 << 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a 64-bit address")
    return v


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="the trace (qaicmodel-trace/1 JSON Lines, or mmiotrace text)")
    p.add_argument(
        "--format",
        choices=("jsonl", "mmiotrace"),
        default="jsonl",
        help="input format (default jsonl)",
    )
    p.add_argument(
        "--bar2",
        type=_addr,
        default=None,
        help="mmiotrace: bus address of the DMA Bridge BAR (default: from PCIDEV)",
    )
    p.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="ID=ALT",
        help="device policy (overrides the trace header); repeatable",
    )
    p.add_argument(
        "--nelem",
        type=int,
        default=None,
        help="FIFO size of channels the trace never activates (extension)",
    )
    p.add_argument(
        "--max-states",
        type=int,
        default=4000,
        help="bound on the device states one search may keep or explore per "
        "channel (default 4000); hitting it makes the verdict at best "
        "inconclusive",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the report as JSON")
    out.add_argument("--junit", metavar="OUT.xml", help="write one JUnit test case per rule family")


class _Progress:
    """C12: ``line N, X events/s`` on stderr when it is a terminal and the check has run
    for more than ``after`` seconds; silent when piped."""

    def __init__(self, stream: Any = None, after: float = 2.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.after = after
        self.shown = False
        self.next = after

    def __call__(self, line: int, events: int, seconds: float) -> None:
        if seconds < self.next:
            return
        self.next = seconds + 0.5
        self.stream.write(f"\rqaicmodel check: line {line}, {events / seconds:,.0f} events/s ")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def check_file(
    path: str,
    fmt: str = "jsonl",
    *,
    bar2: int | None = None,
    policies: Policies | None = None,
    nelem: int | None = None,
    max_states: int = 4000,
    progress: bool = False,
) -> Report:
    """Read and check a trace file, streaming (T6); ``progress``: C12 on a terminal."""
    from qaicmodel.spec.dbc.config import DeviceConfig

    dev = DeviceConfig() if fmt == "mmiotrace" else None
    stream = open_trace(path, fmt, bar2=bar2, device=dev)
    tty = progress and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    prog = _Progress() if tty else None
    try:
        return check_stream(stream, policies, nelem=nelem, max_states=max_states, progress=prog)
    finally:
        if prog is not None:
            prog.done()


def run_cli(args: argparse.Namespace) -> int:
    try:
        pols = Policies.parse(args.policy)
    except PolicyError as e:
        raise FormatError(str(e), where="--policy") from None
    try:
        report = check_file(
            args.file,
            args.format,
            bar2=args.bar2,
            policies=pols,
            nelem=args.nelem,
            max_states=args.max_states,
            progress=True,
        )
    except ArgumentError as e:
        raise FormatError(
            str(e), where="--nelem" if "nelem" in str(e) else "--max-states"
        ) from None
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.text())
    if args.junit:
        try:
            with open(args.junit, "w", encoding="utf-8") as f:
                f.write(report.junit())
        except OSError as e:
            raise FormatError(f"cannot write: {e.strerror}", where=args.junit) from None
    return report.exit
