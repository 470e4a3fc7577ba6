"""``qaicmodel fuzz``: arguments, seeds that replay, ``--replay``, the lazy import (Z4, F1-F3)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: pathlib.Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qaicmodel", "fuzz", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize(
    "args",
    [
        ["nosuch"],
        ["planted", "-j", "0"],
        ["planted", "--budget", "0"],
        ["planted", "--examples", "0"],
        ["planted", "-j", "x"],
        [],
        ["host", "--host", "nosuch.module:Host"],
        ["planted", "--db", "redis://127.0.0.1:1"],
        ["planted", "--db", "redis://127.0.0.1:notaport"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str], tmp_path: pathlib.Path) -> None:
    p = _run(*args, "--quiet", cwd=tmp_path)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "Traceback" not in p.stderr


def test_a_campaign_prints_its_seed_and_replays_exactly(tmp_path: pathlib.Path) -> None:
    """Z3: the same seed and example count give the same examples, hence the same outcome."""
    reports = []
    for run in ("a", "b"):
        d = tmp_path / run
        d.mkdir()
        p = _run(
            "planted", "decoders", "--seed", "7", "--examples", "3000", "--json", "--quiet", cwd=d
        )
        assert p.returncode == 1, p.stderr[-2000:]  # planted.bug is found
        first, _, rest = p.stdout.partition("\n")
        assert first.startswith("qaicmodel fuzz: seed 7 (replay: qaicmodel fuzz planted decoders")
        rep = json.loads(rest[rest.index("\n{") :])
        reports.append(rep)
    a, b = reports
    assert a["examples"] == b["examples"] == 3000
    assert a["behaviours"] == b["behaviours"] > 10
    assert [f["input"] for f in a["failures"]] == [f["input"] for f in b["failures"]]
    assert [f["property"] for f in a["failures"]] == ["planted.bug"]  # Z1 holds for the rest


def test_replay_reruns_saved_failures_and_says_which_still_fail(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "fuzz-failures"
    out.mkdir()
    base = {
        "format": "qaicmodel-fuzz-failure/1",
        "property": "planted.bug",
        "targets": ["planted"],
        "params": {},
        "error": "KeyError",
    }
    (out / "bug.json").write_text(json.dumps({**base, "input": {"hex": "a5a5"}}))
    p = _run("--replay", "--db", str(tmp_path / "db"), cwd=tmp_path)
    assert p.returncode == 1 and "STILL FAILS: planted.bug" in p.stdout, p.stdout + p.stderr
    (out / "bug.json").write_text(json.dumps({**base, "input": {"hex": "00a5"}}))
    p = _run("--replay", "--db", str(tmp_path / "db"), cwd=tmp_path)
    assert p.returncode == 0 and "passes now: planted.bug" in p.stdout, p.stdout + p.stderr
    (out / "bug.json").write_text("{not json")
    p = _run("--replay", cwd=tmp_path)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_the_command_line_does_not_import_hypothesis() -> None:
    """Z4/F1: building the parser (every `qaicmodel` command does) loads no hypothesis."""
    code = (
        "import sys, qaicmodel.cli as c\n"
        "c.build_parser()\n"
        "import qaicmodel.testing.fuzz.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'hypothesis'))\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "[]", p.stdout


def test_bench_fuzz_reports_both_phases_in_one_run(tmp_path: pathlib.Path) -> None:
    """P1-P3: the figures' shape (no timing is asserted)."""
    p = subprocess.run(
        [sys.executable, "-m", "qaicmodel", "bench", "--fuzz", "--quick", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert p.returncode == 0, p.stderr[-2000:]
    rep = json.loads(p.stdout)
    assert [ph["jobs"] for ph in rep["phases"]] == [1, 2]
    assert [len(ph["per_worker_examples_per_s"]) for ph in rep["phases"]] == [1, 2]
    assert all(ph["failures"] == 0 and ph["examples"] > 0 for ph in rep["phases"])
    one, two = (ph["total_examples_per_s"] for ph in rep["phases"])
    assert rep["scaling_1_to_2"] == round(two / one, 2)
