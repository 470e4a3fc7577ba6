"""``qaicmodel conform --differential``: the step-for-step mode on the command line, and a
reproducer that remembers which mode found it (``--replay`` uses that mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qaicmodel.oracle import conform_cli
from qaicmodel.spec.policies import REGISTRY

pytestmark = pytest.mark.cli

REPO = Path(__file__).resolve().parent.parent
SHAPE = "qaicmodel.oracle.shapes:PollCountHost"  # correct, but polls differently


def _pins() -> list[str]:
    out: list[str] = []
    for p, pol in REGISTRY.items():
        if p not in ("processing-order", "msi-while-masked"):
            out += ["--policy", f"{p}={pol.default}"]
    return out


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-P", "-m", "qaicmodel", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd,
    )


def test_differential_flag_reproducer_records_the_mode_and_replay_uses_it(
    tmp_path: Path,
) -> None:
    base = ("conform", "--host", SHAPE, "--seed", "1", "--episodes", "1", *_pins())
    rules = _cli(*base, "--out", "r", "--json", cwd=tmp_path)
    assert rules.returncode == 0, rules.stderr[-2000:]
    assert json.loads(rules.stdout)["mode"] == "rules"

    p = _cli(*base, "--differential", "--out", "d", "--json", cwd=tmp_path)
    assert p.returncode == 1, p.stderr[-2000:]
    rep = json.loads(p.stdout)
    assert rep["mode"] == "differential"
    assert "--differential" in rep["replay_command"].split()
    f = rep["failures"][0]
    assert f["invariant"] in ("CONF-RESULT", "CONF-STATE")
    assert "--differential" in f["replay"].split()
    repro = str(tmp_path / f["reproducer"])
    assert conform_cli.reproducer_mode(repro) == "differential"

    # --replay reads the mode from the file: the failure comes back ...
    q = _cli("conform", "--replay", repro, "--json", cwd=tmp_path)
    assert q.returncode == 1, (q.stdout, q.stderr[-2000:])
    out = json.loads(q.stdout)
    assert out["mode"] == "differential" and out["mode_from"] == "the reproducer"
    assert out["failure"]["invariant"] == f["invariant"]
    # ... and by the rules alone the same steps conform
    r = _cli("conform", "--replay", repro, "--rules", "--json", cwd=tmp_path)
    assert r.returncode == 0, (r.stdout, r.stderr[-2000:])
    assert json.loads(r.stdout)["mode"] == "rules"

    h = _cli("conform", "--help", cwd=tmp_path)
    text = " ".join(h.stdout.split())
    assert "--differential" in text and "step for step" in text


def test_the_printed_replay_line_of_a_differential_run_replays_it(tmp_path: Path) -> None:
    p = _cli(
        "conform", "--host", SHAPE, "--seed", "1", "--episodes", "1", *_pins(),
        "--differential", "--out", "d", "--json", cwd=tmp_path,
    )  # fmt: skip
    rep = json.loads(p.stdout)
    argv = rep["replay_command"].split()[1:]
    again = _cli(*argv, "--out", "d2", "--json", cwd=tmp_path)
    rep2 = json.loads(again.stdout)
    assert rep2["mode"] == "differential"
    assert [x["invariant"] for x in rep2["failures"]] == [x["invariant"] for x in rep["failures"]]
