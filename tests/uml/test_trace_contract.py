"""Every guest run is traced and judged: the contract behind tests/uml/tracecheck.py (no kernel).

Marker ``contracts``: these tests boot nothing; they show that the enforcement of
tests/uml/conftest.py reaches every test that boots a guest, and that it can fail.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from mhi_host import FakeMem
from tracecheck import booting_tests, judge

from qaicmodel.emu import tracing
from qaicmodel.emu.testboard import StubBoard
from qaicmodel.emu.tracing import DBC_BASE, DBC_STRIDE

pytestmark = pytest.mark.contracts

ROOT = Path(__file__).resolve().parents[2]
UML = ROOT / "tests" / "uml"


def _booting() -> dict[str, list[str]]:
    return {p.name: booting_tests(p) for p in sorted(UML.glob("test_*.py"))}


def test_every_guest_booting_test_is_under_the_tracing_conftest() -> None:
    """The tests that boot a guest, listed; all are in tests/uml (whose conftest traces and
    judges every run), none elsewhere in tests/."""
    found = _booting()
    listed = sorted(f"{f}::{t}" for f, ts in found.items() for t in ts)
    print("guest-booting tests:\n  " + "\n  ".join(listed))
    # the scan sees the known ones (it is not vacuous) ...
    for want in (
        "test_guest_datapath.py::test_echo_every_ioctl_real_driver",
        "test_guest_datapath.py::test_example_on_three_hosts",
        "test_guest_datapath.py::test_uml_policies_table_json",
        "test_guest_boot.py::test_full_boot_online_manage_status",
        "test_uml_bench.py::test_bench_uml_reports_ratios_to_the_socket_round_trip",
        "test_hunt_linux.py::test_the_real_driver_depends_on_the_next_slot_reading",
        "test_faults.py::test_fault_group_outcomes_are_the_recorded_ones",
    ):
        assert want in listed, want
    # ... and nothing outside tests/uml boots one
    for p in sorted((ROOT / "tests").glob("test_*.py")):
        assert booting_tests(p) == [], p.name


def test_the_fixture_is_autouse_and_the_runner_is_the_only_way_to_boot() -> None:
    conf = ast.parse((UML / "conftest.py").read_text())
    fx = next(n for n in conf.body if isinstance(n, ast.FunctionDef) and n.name == "_traced")
    deco = ast.unparse(fx.decorator_list[0])
    assert "autouse=True" in deco, deco
    # the guest kernel is started in exactly one place, emu/runner.py, which honours the
    # trace directory (tracing T4)
    starts = [
        p.relative_to(ROOT).as_posix()
        for p in sorted((ROOT / "qaicmodel").rglob("*.py"))
        if "guest_argv(" in p.read_text() and p.name != "guestinit.py"
    ]
    assert starts == ["qaicmodel/emu/runner.py"], starts
    text = (ROOT / "qaicmodel" / "emu" / "runner.py").read_text()
    assert "tracing.wrap(board, trace_dir)" in text and "tracing.save(board" in text
    # children a test starts inherit the directory: an env= of a subprocess is built on
    # os.environ
    for p in sorted(UML.glob("test_*.py")):
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "env":
                src = ast.unparse(n.value)
                assert "os.environ" in src or "PATH" in src, (p.name, src)


def _board_with_channel() -> tuple[tracing.Recorder, FakeMem, int, int]:
    from qaicmodel.emu.board import Board

    rec = tracing.Recorder(Board(policies=["mhi-start-ee=amss"], kernel="7.2"))
    mem = FakeMem()
    sent: list[int] = []
    rec.attach(mem, sent.append)
    req_q, rsp_q = mem.alloc(64 * 4), mem.alloc(4 * 4)
    rec.inner.device.activate(0, req_q, rsp_q, 4)
    return rec, mem, req_q, rsp_q


def test_the_recorder_records_the_boundary() -> None:
    """T1: activate, the elements a REQ_TP write publishes, the register accesses."""
    rec, mem, req_q, _ = _board_with_channel()
    mem.write(req_q, bytes(range(64)))
    rec.bar_write(2, DBC_BASE + 4, 4, 1)  # REQ_TP 0 -> 1 publishes element 0
    rec.bar_read(2, DBC_BASE + DBC_STRIDE * 0 + 0xC, 4)  # RSP_TP
    kinds = [e["ev"] for e in rec.trace]
    assert kinds == ["activate", "req", "writel", "readl"], kinds
    assert rec.trace[1] == {"ev": "req", "dbc": 0, "idx": 0, "hex": bytes(range(64)).hex()}
    head = json.loads(rec.trace_lines(["qaic.datapath_polling=1"])[0])
    assert head["device"]["datapath_polling"] is True and head["device"]["kernel"] == "7.2"
    # a stand-in board is not wrapped (nothing to trace)
    stub = StubBoard()
    assert tracing.wrap(stub) is stub


def test_judge_fails_a_missing_or_non_conforming_trace(tmp_path: Path) -> None:
    """J1-J2 can fail: a run announced without a trace, and a trace the checker refutes
    (the host publishes an element the ring has no room for); a conforming one passes."""
    rec, mem, req_q, _ = _board_with_channel()
    tracing.wrap(rec, tmp_path)
    tracing.save(rec, tmp_path)
    assert judge(tmp_path) == []
    bad, _mem, _, _ = _board_with_channel()
    tracing.wrap(bad, tmp_path)
    bad.bar_write(2, DBC_BASE + 4, 4, 7)  # REQ_TP 7 of a 4-element ring
    tracing.save(bad, tmp_path)
    lost, _m, _, _ = _board_with_channel()
    tracing.wrap(lost, tmp_path)  # announced, never saved
    empty, _m2, _, _ = _board_with_channel()
    empty.trace.clear()
    tracing.wrap(empty, tmp_path)
    tracing.save(empty, tmp_path)  # J3: no events, nothing to judge
    problems = judge(tmp_path)
    assert len(problems) == 2, problems
    assert "VIOLATION" in problems[0] and "wrote no trace (J1)" in problems[1], problems
    assert judge(tmp_path, ("conforming", "violation"))[0].endswith("(J1)")
