"""conform and the control plane (issue #12 item 3): ``--control-host``, ``--control-fault``,
the control moves of oracle/explore_control.py and the CTRL-* verdicts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qaicmodel.oracle.conform import DRIVER_FINDINGS, run_conformance
from qaicmodel.oracle.explore_control import control_of_note, judge

sys.path.insert(0, str(Path(__file__).parent))
from test_control_scenario import AlwaysCrc, BadSeq, NoTerminate  # noqa: E402

pytestmark = pytest.mark.machines


def _run(tmp_path: Path, control_host: type) -> dict:
    return run_conformance(seed=5, episodes=[2] * 40, out_dir=tmp_path, control_host=control_host)


def test_a_correct_control_host_of_another_shape_conforms(tmp_path: Path) -> None:
    rep = _run(tmp_path, control_host=AlwaysCrc)
    assert rep["failures"] == [], rep["failures"][:1]
    assert rep["control_host"].endswith(":AlwaysCrc")
    assert rep["invariants_checked"]["CTRL-SEQ"] > 0


@pytest.mark.parametrize(("cls", "rule"), [(NoTerminate, "CTRL-QSM-ONLY"), (BadSeq, "CTRL-SEQ")])
def test_broken_control_hosts_are_caught_by_the_generator(
    tmp_path: Path, cls: type, rule: str
) -> None:
    rep = run_conformance(seed=5, budget=10.0, out_dir=tmp_path, control_host=cls)
    f = next(f for f in rep["failures"] if f["invariant"].startswith("CTRL-"))
    assert f["invariant"] == rule and f["reproduces"]
    note = json.loads(Path(f["reproducer"]).read_text())["steps"][-1]["note"]
    assert control_of_note(note)[0] == rep["control_host"]


def test_replay_takes_the_recorded_control_host_unless_one_is_given(tmp_path: Path) -> None:
    """issue #12 item 5: ``--replay FILE`` uses the control host the file records, and an
    explicit ``--control-host`` overrides it (it was silently ignored)."""
    from qaicmodel.oracle.conform_cli import replay_file

    rep = run_conformance(seed=5, budget=10.0, out_dir=tmp_path, control_host=BadSeq)
    f = next(f for f in rep["failures"] if f["invariant"] == "CTRL-SEQ")
    again = replay_file(f["reproducer"])
    assert again["failure"]["invariant"] == "CTRL-SEQ", again
    assert again["control_host"] == rep["control_host"]
    assert again["control_host_from"] == "the reproducer"
    driver = "qaicmodel.spec.control.manage:ControlClient"
    fixed = replay_file(f["reproducer"], control_host=driver)
    assert fixed["control_host"] == driver and fixed["control_host_from"] == "--control-host"
    assert fixed["failure"] is None, fixed["failure"]


def test_driver_quirks_and_fault_reactions_are_driver_findings() -> None:
    v = {"rule": "CTRL-QSM-ONLY", "message": "m", "where": {"dbc": 1}, "state": {}}
    faulted = dict(v, state={"faults": ["nnc-no-reply"]})
    drv = dict(v, rule="CTRL-DRIVER")
    assert judge([v], set()) == [("CTRL-QSM-ONLY", "m", {"dbc": 1}, False)]
    assert judge([faulted], {"CTRL-QSM-ONLY"})[0][0::3] == ("CTRL-FAULT", True)
    assert judge([faulted], set())[0][0::3] == ("CTRL-QSM-ONLY", False)  # not the driver's
    assert judge([drv], None)[0][0::3] == ("CTRL-DRIVER", True)


@pytest.mark.cli
def test_control_fault_run_reports_the_expected_errno(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "qaicmodel", "conform", "--seed", "3", "--episodes", "1",
           "--control-fault", "nnc-no-reply:0:1", "--out", str(tmp_path / "o"), "--json"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    rep = json.loads(p.stdout)
    assert (
        rep["control_faults"] == ["nnc-no-reply:0:1"] and "--control-fault" in rep["replay_command"]
    )
    assert rep["failures"] == [] and rep["steps"] > 0
    # the driver's answer to a device that never replies: ETIMEDOUT (qaic_control.c
    # msg_xfer, 7.2), on the episode's first activate (exchange 1; 0 is the boot's probe)
    from qaicmodel.oracle.shrink import Episode
    from qaicmodel.spec.policies import Policies

    e = Episode(3, Policies({}), *_hosts(), control=(None, ("nnc-no-reply:0:1",)))
    f = e.run(8, None)
    assert f is None or f.invariant in DRIVER_FINDINGS, f
    acts = [r["result"] for r in e.pair.prim.results if r["op"] == "activate"]
    assert acts[0] == "ETIMEDOUT"


def _hosts() -> tuple[type, type]:
    from qaicmodel.impl.host import ImplHost
    from qaicmodel.spec.host import SpecHost

    return ImplHost, SpecHost


@pytest.mark.cli
@pytest.mark.parametrize(
    "args",
    [["--control-fault", "nope"], ["--control-fault", "nnc-no-reply:x"],
     ["--control-host", "nocolon"], ["--control-host", "json:JSONDecoder"]],
)  # fmt: skip
def test_bad_control_args_exit_2(tmp_path: Path, args: list[str]) -> None:
    cmd = [sys.executable, "-m", "qaicmodel", "conform", "--episodes", "1", *args]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "conform-failures").exists()
