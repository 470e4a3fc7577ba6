"""Worked examples in the documents run as written (issue #8 item 6, stale docs)."""

from __future__ import annotations

import json
import pathlib
import re
import textwrap
from typing import Any

from qaicmodel.oracle.conform import run_conformance
from qaicmodel.scenario.runner import run_scenario
from qaicmodel.spec.dbc.channel import Advance, Consume, RaiseMsi
from qaicmodel.spec.dbc.workload import NspAction
from qaicmodel.spec.host import protocol
from qaicmodel.spec.host.protocol import HostAction

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _worked_example() -> str:
    doc = protocol.__doc__ or ""
    block = doc.split("override the data-path hooks::", 1)[1]
    lines = []
    for ln in block.splitlines()[1:]:
        if ln and not ln.startswith("    "):
            break
        lines.append(ln)
    return textwrap.dedent("\n".join(lines))


def test_the_host_protocol_worked_example_runs_under_conform(tmp_path: pathlib.Path) -> None:
    """Copy the example of qaicmodel/spec/host/protocol.py, run conform on it: it conforms,
    and its override is the code that ran."""
    ns: dict[str, Any] = {"__name__": "worked_example"}
    exec(compile(_worked_example(), "protocol.py example", "exec"), ns)  # noqa: S102
    cls = ns["MyHost"]
    calls = []
    orig = cls._write_full

    def counted(self: Any, *a: Any) -> None:
        calls.append(a)
        orig(self, *a)

    cls._write_full = counted
    rep = run_conformance(
        cls, seed=1, episodes=1, out_dir=tmp_path, policies={"processing-order": "fifo"}
    )
    assert rep["failures"] == [], rep["failures"]
    assert calls, "the example's _write_full never ran"


def _schedule_section() -> str:
    text = (ROOT / "docs" / "formats-extensions.md").read_text(encoding="utf-8")
    return text.split("### `schedule` on `run`", 1)[1].split("\n### ", 1)[0]


def test_formats_extensions_schedule_example_runs() -> None:
    sec = _schedule_section()
    example = json.loads(sec.split("```json", 1)[1].split("```", 1)[0])
    steps = [
        {"op": "open", "user": "u"},
        {"op": "activate", "user": "u", "queue_size": 8, "as": "d"},
        {"op": "create_bo", "user": "u", "size": 4096, "as": "b"},
        {
            "op": "attach_slice",
            "user": "u",
            "hdr": {"dbc_id": "d", "handle": "b", "dir": 1, "size": 4096},
            "entries": [{"size": 4096, "dev_addr": "0x1000"}],
        },
        {"op": "execute", "user": "u", "dbc_id": "d", "handles": ["b"]},
        example,
    ]
    rep = run_scenario({"format": "qaicmodel-scenario/1", "steps": steps})
    assert rep.exit_code == 0, rep.first_mismatch
    assert rep.results[-1]["result"] != "schedule-diverged"


def test_formats_extensions_action_reprs_are_the_real_ones() -> None:
    sec = _schedule_section()
    for obj in (Consume(0), Advance(0, 3), RaiseMsi(0), NspAction(0, "inc_in", 0)):
        assert f"`{obj!r}`" in sec, repr(obj)
    assert re.search(r"`HostAction\(kind='irq'\|'thread'\|'poll'\|'exec', arg=N\)`", sec)
    assert repr(HostAction("irq", 1)) == "HostAction(kind='irq', arg=1)"
