"""``qaicmodel check`` as a user runs it: streaming files (oracle/trace.py T6), nothing checked is
inconclusive (C9), progress only on a terminal and the report's rate/peak (C12), bad input
is one line with exit 2."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from qaicmodel.cli import main
from qaicmodel.oracle.check import check_file, check_stream
from qaicmodel.oracle.check.bench import synthetic
from qaicmodel.oracle.check.cli import _Progress
from qaicmodel.oracle.trace import TraceStream, _first, iter_jsonl, open_trace, scan_kinds

EX = Path(__file__).resolve().parent.parent / "examples" / "traces"


def test_open_trace_streams_and_knows_the_kinds() -> None:
    s = open_trace(str(EX / "conforming.jsonl"))
    assert {"activate", "req", "rsp", "msi", "irq_disable"} <= s.kinds
    evs = list(s.events())
    assert evs[0].line == 2 and len(evs) == 18
    assert list(s.events()) == evs  # a stream can be read again
    assert check_file(str(EX / "conforming.jsonl")).exit == 0


def test_scan_kinds_is_not_fooled_by_text() -> None:
    data = b'{"ev": "mark", "text": "\\"ev\\": \\"req\\""}\n' * 3 + b'{"ev": "readl"}\n'
    assert scan_kinds(io.BytesIO(data), chunk=7) == {"mark", "readl"}


def test_empty_trace_is_inconclusive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "empty.jsonl"
    f.write_text('{"format": "qaicmodel-trace/1"}\n')
    assert main(["check", str(f)]) == 3
    assert "nothing was checked: the trace has no events" in capsys.readouterr().out
    f.write_text('{"format": "qaicmodel-trace/1"}\n{"ev": "mark", "text": "x"}\n')
    assert main(["check", str(f)]) == 3


def test_mmiotrace_outside_the_bar_is_inconclusive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "m.txt"
    f.write_text(
        "VERSION 20070824\nPCIDEV 0100 17cba100 3d fc00000c 0 fe00000c 0 0 0 0 4000 0 "
        "200000 0 0 0 0 qaic\nR 4 1.000000 1 0xfc000010 0x0 0x0 0\n"
    )
    assert main(["check", "--format", "mmiotrace", str(f)]) == 3
    out = capsys.readouterr().out
    assert "no access of the mmiotrace log fell inside the DMA Bridge BAR at 0xfe000000" in out
    assert main(["check", "--format", "mmiotrace", "--json", str(f)]) == 3
    rep = json.loads(capsys.readouterr().out)
    assert rep["verdict"] == "inconclusive" and "BAR" in rep["inconclusive"][0]["reason"]


def test_json_report_has_rate_and_peak(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--json", str(EX / "conforming.jsonl")]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["events_per_s"] > 0 and rep["peak_states"] >= 1 and rep["seconds"] >= 0


def test_progress_only_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    p = _Progress(out, after=0.0)
    p(120, 8192, 0.5)
    p(130, 9000, 0.6)  # within half a second of the last: not repeated
    p.done()
    text = out.getvalue()
    assert "line 120" in text and "16,384 events/s" in text and "line 130" not in text


def test_cli_is_silent_when_piped(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(EX / "conforming.jsonl")]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "args,where",
    [
        (["--max-states", "0"], "--max-states"),
        (["--nelem", "1"], "--nelem"),
    ],
)
def test_bad_bounds_are_one_line(
    args: list[str], where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", *args, str(EX / "conforming.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and where in err[0]


def test_malformed_line_in_a_stream_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.jsonl"
    lines = [x.decode() for x in synthetic(300)]
    lines[200] = '{"ev": "readl", "dbc": 0, "reg": "REQ_HP", "val": "x"}'
    f.write_text("\n".join(lines) + "\n")
    assert main(["check", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 201.val" in err[0]


def test_generated_stream_keeps_nothing_per_event() -> None:
    """Memory does not grow with the trace (the figures come from `qaicmodel bench
    --check`; this only checks that nothing per event is kept)."""
    import tracemalloc

    def run(n: int) -> int:
        it = synthetic(n, registers_only=True)
        header = _first(it)
        stream = TraceStream(
            header, "jsonl", {"activate", "readl", "writel"}, lambda: iter_jsonl(it, header.num_dbc)
        )
        tracemalloc.start()
        rep = check_stream(stream)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert rep.exit == 0 and rep.events >= n - 20
        return peak

    small, large = run(2_000), run(20_000)
    assert large < small * 2 + 200_000


def test_malformed_after_a_violation_is_still_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.jsonl"
    lines = (EX / "overrun.jsonl").read_text().splitlines()
    lines.append('{"ev": "readl", "dbc": 0}')
    f.write_text("\n".join(lines) + "\n")
    assert main(["check", str(f)]) == 2
    assert "line 13.reg" in capsys.readouterr().err
