"""``qaicmodel bench --check``: the cost of ``qaicmodel check``, against ``json.loads``.

What is measured (issue #11 "speed"):
  K1  Traces: (a) the issue's recorded trace -- a conforming fast-host co-simulation,
      ``check.record_cosim(ImplHost, seed=3, steps=20000)`` (about 15.5k events, every
      event kind of the data path); (b) a generated full trace (:func:`synthetic`: a
      driver round trip of 4-element BOs -- head/tail reads, request writes, tail write,
      MSI, mask, response reads, head write, unmask, re-check, completion); (c) the same
      round trip as a register-only trace (readl/writel, as an mmiotrace gives).
  K2  For each: the time to parse and check the lines (streaming, as the CLI does:
      :func:`qaicmodel.oracle.trace.iter_jsonl` + :class:`qaicmodel.oracle.check.Checker`) and the time
      of a bare ``json.loads`` over the same lines, in the same run; the ratio is the
      figure the targets use (full traces <= 50x, register-only <= 10x).  Best of
      ``reps`` repetitions for both (the machine is shared).
  K3  Memory: the peak resident set of a fresh process that checks a generated stream of
      N events (``python -m qaicmodel.oracle.check.bench --mem N``), for N = 100k and a larger
      N (10M in the issue's closing figures); flat means the checker keeps nothing per
      event.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["synthetic", "recorded", "measure", "memory", "run_check_bench", "text"]

TARGETS = {"full_over_json_max": 50.0, "registers_over_json_max": 10.0, "recorded_s_max": 1.0}


def _elem_hex(req_id: int) -> str:
    from qaicmodel.spec.dbc.wire import CMD_BULK, CMD_COMPLETION, Dir, RequestElem

    return (
        RequestElem(
            req_id=req_id,
            pcie_dma_cmd=CMD_COMPLETION | CMD_BULK | Dir.TO_DEV,
            pcie_dma_source_addr=0x2000_0000 + req_id * 0x1000,
            pcie_dma_dest_addr=0x8000_0000,
            pcie_dma_len=4096,
        )
        .pack()
        .hex()
    )


def synthetic(
    events: int, registers_only: bool = False, nelem: int = 16, k: int = 4
) -> Iterator[bytes]:
    """K1 (b)/(c): a conforming trace of about ``events`` events (header first), one BO of
    ``k`` elements per round trip on dbc 0, req_ids cycling."""
    hexes = [_elem_hex(r) for r in range(256)]
    yield json.dumps({"format": "qaicmodel-trace/1", "device": {"num_dbc": 1}}).encode()
    yield (
        b'{"ev": "activate", "dbc": 0, "nelem": %d, "req_q": "0x100000000", '
        b'"rsp_q": "0x100100000"}' % nelem
    )
    n = 1
    tail = head = 0
    rid = 0
    while n < events:
        out: list[str] = [
            f'{{"ev": "readl", "dbc": 0, "reg": "REQ_HP", "val": {tail}}}',
            f'{{"ev": "readl", "dbc": 0, "reg": "REQ_TP", "val": {tail}}}',
        ]
        if not registers_only:
            out += [
                f'{{"ev": "req", "dbc": 0, "idx": {(tail + i) % nelem}, "hex": "{hexes[rid]}"}}'
                for i in range(k)
            ]
        tail = (tail + k) % nelem
        out.append(f'{{"ev": "writel", "dbc": 0, "reg": "REQ_TP", "val": {tail}}}')
        if not registers_only:
            out += ['{"ev": "msi", "vector": 1}', '{"ev": "irq_disable", "vector": 1}']
        new = (head + k) % nelem
        out += [
            f'{{"ev": "readl", "dbc": 0, "reg": "RSP_HP", "val": {head}}}',
            f'{{"ev": "readl", "dbc": 0, "reg": "RSP_TP", "val": {new}}}',
        ]
        if not registers_only:
            word = (rid & 0xFF).to_bytes(2, "little").hex() + "0000"
            out += [
                f'{{"ev": "rsp", "dbc": 0, "idx": {(head + i) % nelem}, "hex": "{word}"}}'
                for i in range(k)
            ]
            out.append(f'{{"ev": "complete", "dbc": 0, "req_id": {rid & 0xFF}}}')
        out.append(f'{{"ev": "writel", "dbc": 0, "reg": "RSP_HP", "val": {new}}}')
        if not registers_only:
            out.append('{"ev": "irq_enable", "vector": 1}')
        out.append(f'{{"ev": "readl", "dbc": 0, "reg": "RSP_TP", "val": {new}}}')
        head = new
        rid = (rid + 1) % 256
        for line in out:
            yield line.encode()
        n += len(out)


def recorded() -> list[bytes]:
    """K1 (a): the issue's 15k-event trace."""
    from qaicmodel.impl.host import ImplHost
    from qaicmodel.oracle.check.recorder import record_cosim

    text, _ = record_cosim(ImplHost, seed=3, steps=20000)
    return [x.encode() for x in text.splitlines()]


REGISTER_KINDS = {"activate", "readl", "writel"}
FULL_KINDS = REGISTER_KINDS | {"req", "rsp", "msi", "irq_disable", "irq_enable", "complete"}


def _check_lines(
    lines: Iterable[bytes], max_states: int = 4000, kinds: set[str] | None = None
) -> Any:
    """Parse and check, streaming, as ``qaicmodel check`` does (``kinds``: what a
    generator of lines holds -- a list is scanned like a file)."""
    from qaicmodel.oracle.check.checker import check_stream
    from qaicmodel.oracle.trace import TraceStream, _first, iter_jsonl, scan_kinds

    it = iter(lines)
    header = _first(it)
    if isinstance(lines, list):
        import io

        kinds = scan_kinds(io.BytesIO(b"\n".join(lines[1:])))
        rest: Iterable[bytes] = lines[1:]
    else:
        assert kinds is not None, "a generator of lines needs its kinds"
        rest = it
    stream = TraceStream(header, "jsonl", kinds, lambda: iter_jsonl(rest, header.num_dbc))
    return check_stream(stream, max_states=max_states)


def measure(lines: list[bytes], reps: int = 3) -> dict[str, Any]:
    """K2: best-of-``reps`` seconds for json.loads and for parse+check of ``lines``."""
    loads = json.loads
    best_json = best_check = float("inf")
    report = None
    for _ in range(reps):
        t0 = time.perf_counter()
        for raw in lines:
            loads(raw)
        best_json = min(best_json, time.perf_counter() - t0)
        t0 = time.perf_counter()
        report = _check_lines(lines)
        best_check = min(best_check, time.perf_counter() - t0)
    assert report is not None
    n = len(lines) - 1
    return {
        "events": n,
        "verdict": report.verdict,
        "json_loads_s": round(best_json, 4),
        "check_s": round(best_check, 4),
        "events_per_s": round(n / best_check),
        "over_json": round(best_check / best_json, 1),
        "peak_states": report.peak_states,
    }


def memory(events: int, registers_only: bool = False) -> dict[str, Any]:
    """K3: peak RSS (KiB) of a fresh process checking ``events`` generated events."""
    cmd = [sys.executable, "-m", "qaicmodel.oracle.check.bench", "--mem", str(events)]
    if registers_only:
        cmd.append("--registers")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _peak_rss_kib() -> int:
    """The process's peak resident set: VmHWM (Linux; ru_maxrss would include the parent's
    size at fork, which survives exec), else ru_maxrss."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _mem_main(events: int, registers_only: bool) -> None:
    base = _peak_rss_kib()
    t0 = time.perf_counter()
    rep = _check_lines(
        synthetic(events, registers_only), kinds=REGISTER_KINDS if registers_only else FULL_KINDS
    )
    dt = time.perf_counter() - t0
    peak = _peak_rss_kib()
    print(
        json.dumps(
            {
                "events": rep.events,
                "verdict": rep.verdict,
                "seconds": round(dt, 2),
                "events_per_s": round(rep.events / dt),
                "rss_before_kib": base,
                "peak_rss_kib": peak,
            }
        )
    )


def run_check_bench(
    quick: bool = False, mem_events: tuple[int, ...] = (100_000, 1_000_000)
) -> dict[str, Any]:
    reps = 1 if quick else 3
    n = 20_000 if quick else 100_000
    rec = measure(recorded(), reps)
    full = measure(list(synthetic(n)), reps)
    regs_ = measure(list(synthetic(n, registers_only=True)), reps)
    mem = {str(e): memory(e) for e in (mem_events[:1] if quick else mem_events)}
    return {
        "recorded_15k": rec,
        "synthetic_full": full,
        "synthetic_registers": regs_,
        "memory": mem,
        "targets": {
            **TARGETS,
            "recorded_s_met": rec["check_s"] < TARGETS["recorded_s_max"],
            "full_over_json_met": full["over_json"] <= TARGETS["full_over_json_max"],
            "registers_over_json_met": regs_["over_json"] <= TARGETS["registers_over_json_max"],
        },
    }


def text(rep: dict[str, Any]) -> str:
    t = rep["targets"]

    def ok(flag: bool) -> str:
        return "met" if flag else "MISSED"

    rows = [("trace", "events", "check s", "events/s", "/ json.loads", "target")]
    for key, name, target in (
        (
            "recorded_15k",
            "recorded (ImplHost seed 3, 20000 steps)",
            f"< {t['recorded_s_max']:g} s ({ok(t['recorded_s_met'])})",
        ),
        (
            "synthetic_full",
            "generated, all event kinds",
            f"<= {t['full_over_json_max']:g}x ({ok(t['full_over_json_met'])})",
        ),
        (
            "synthetic_registers",
            "generated, registers only",
            f"<= {t['registers_over_json_max']:g}x ({ok(t['registers_over_json_met'])})",
        ),
    ):
        m = rep[key]
        rows.append(
            (
                name,
                str(m["events"]),
                f"{m['check_s']}",
                f"{m['events_per_s']:,}",
                f"{m['over_json']}x",
                target,
            )
        )
    w = [max(len(r[i]) for r in rows) for i in range(6)]
    out = ["| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(r)) + " |" for r in rows]
    out.insert(1, "|" + "|".join("-" * (x + 2) for x in w) + "|")
    out.append("")
    for n, m in rep["memory"].items():
        out.append(
            f"memory, {int(n):,} generated events: peak RSS {m['peak_rss_kib'] / 1024:.1f} "
            f"MiB ({m['events_per_s']:,} events/s, {m['verdict']})"
        )
    out.append(
        "check = parse + check, streaming; json.loads over the same lines in the same "
        "run; best of the repetitions"
    )
    return "\n".join(out)


if __name__ == "__main__":  # K3's child process
    args = sys.argv[1:]
    if args[:1] == ["--mem"]:
        _mem_main(int(args[1]), "--registers" in args)
