"""Fuzzing campaigns (issue #13 item 4): Z1 on every decoder, a shared database across
workers and campaigns (a directory; Debian's redis-server), and a SIGKILL that loses
nothing (Z2, C3, C4)."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from qaicmodel.testing.fuzz.campaign import Config, run_campaign

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}


def _fuzz(*args: str, cwd: pathlib.Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qaicmodel", "fuzz", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=ENV,
    )


def test_two_workers_fuzz_every_decoder_and_find_nothing(tmp_path: pathlib.Path) -> None:
    """Z1 over every decoder, trace reader and the scenario parser, two workers, one database."""
    cfg = Config(
        targets=("decoders",),
        jobs=2,
        db=str(tmp_path / "db"),
        out=str(tmp_path / "out"),
        budget=120.0,
        seed=5,
        examples=1500,
        quiet=True,
    )
    rep = run_campaign(cfg, emit=lambda s: None)
    assert rep["failures"] == [], rep["failures"][0]
    assert rep["workers_finished"] == 2
    assert [w["examples"] for w in rep["workers"]] == [1500, 1500]
    assert rep["behaviours"] > 20
    assert {"nnc", "request", "trace.jsonl", "scenario"} <= set(rep["properties"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _redis_server(tmp: pathlib.Path) -> Iterator[str]:
    exe = shutil.which("redis-server")
    assert exe, "redis-server is missing: apt-get install redis-server (.ci/run does)"
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _kill_after_failure(args: list[str], cwd: pathlib.Path) -> str:
    """Start a campaign, SIGKILL its parent once it has reported a failure; its workers
    must die with it (C4).  Returns what it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "qaicmodel", "fuzz", *args, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
        env=ENV,
        start_new_session=True,
    )
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for ln in proc.stdout:
            lines.append(ln)
            if ln.startswith("FAIL planted.bug"):
                seen.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    try:
        assert seen.wait(120), "no failure reported: " + "".join(lines)
        assert proc.poll() is None, "the campaign ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        deadline = time.monotonic() + 30
        while not _gone(proc.pid):  # the workers (same process group) follow their parent
            assert time.monotonic() < deadline, "workers outlived the killed campaign"
            time.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        t.join(10)
    return "".join(lines)


@pytest.mark.parametrize("db_kind", ["dir", "redis"])
def test_a_killed_campaign_loses_nothing(db_kind: str, tmp_path: pathlib.Path) -> None:
    """kill -9 a two-worker campaign that found the planted bug; --replay re-runs it from
    the replay file, and from the database alone when the files are gone."""
    with contextlib.ExitStack() as stack:
        db = str(tmp_path / "db")
        if db_kind == "redis":
            db = stack.enter_context(_redis_server(tmp_path))
        out = _kill_after_failure(
            ["planted", "-j", "2", "--budget", "300", "--db", db, "--seed", "3"], tmp_path
        )
        assert out.startswith("qaicmodel fuzz: seed 3 ")
        files = sorted((tmp_path / "fuzz-failures").glob("planted.bug-*.json"))
        assert len(files) == 1, files
        rec = json.loads(files[0].read_text())
        assert rec["seed"] == 3 and rec["error"].startswith("KeyError")
        p = _fuzz("--replay", "--db", db, cwd=tmp_path)
        assert p.returncode == 1, p.stdout + p.stderr
        assert "STILL FAILS: planted.bug" in p.stdout
        shutil.rmtree(tmp_path / "fuzz-failures")  # the database alone must be enough
        p = _fuzz("--replay", "planted", "--db", db, cwd=tmp_path)
        assert p.returncode == 1, p.stdout + p.stderr
        assert f"STILL FAILS: planted.bug (database {db}" in p.stdout
        if db_kind == "redis":
            # a second campaign (another machine: another out dir) starts from what the
            # first found: three examples per worker are enough, the database has the bug
            other = tmp_path / "other"
            other.mkdir()
            p = _fuzz(
                "planted",
                "-j",
                "2",
                "--db",
                db,
                "--seed",
                "99",
                "--examples",
                "3",
                "--json",
                "--quiet",
                cwd=other,
            )
            assert p.returncode == 1, p.stdout + p.stderr
            rep = json.loads(p.stdout[p.stdout.index("\n{") :])
            assert [f["property"] for f in rep["failures"]] == ["planted.bug"]
            assert rep["failures"][0]["from_database"] is True


_CRASH_HOST = """from qaicmodel.spec.host import SpecHost


class CrashHost(SpecHost):
    \"\"\"Test-only: every EXECUTE_BO raises (conform's CONF-CRASH).\"\"\"

    def execute(self, *a, **k):
        raise RuntimeError("planted host crash")
"""


def test_the_host_target_finds_a_broken_host_and_replays_it(tmp_path: pathlib.Path) -> None:
    """H1: conform seeds against a host that breaks the rules, in a child conform run."""
    (tmp_path / "crashhost.py").write_text(_CRASH_HOST)
    host = "crashhost:CrashHost"
    args = ["--host", host, "--examples", "1", "--seed", "1", "--example-timeout", "200"]
    p = _fuzz(*args, "--quiet", cwd=tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"FAIL host[{host}]: PropertyFailed: qaicmodel conform --host {host} --seed " in p.stdout
    assert "CONF-CRASH" in p.stdout
    p = _fuzz("--replay", cwd=tmp_path)
    assert p.returncode == 1 and f"STILL FAILS: host[{host}]" in p.stdout, p.stdout + p.stderr


def test_the_hunt_target_runs_the_hunt_search(tmp_path: pathlib.Path) -> None:
    """U1/U2: three episodes of the hunt's search; each ends in a behaviour or a failure
    whose replay file names the witness that does not replay."""
    args = ["hunt", "--examples", "3", "--seed", "1", "--example-timeout", "60"]
    p = _fuzz(*args, "--json", "--quiet", cwd=tmp_path, timeout=400)
    assert p.returncode in (0, 1), p.stdout + p.stderr
    rep = json.loads(p.stdout[p.stdout.index("\n{") :])
    assert rep["properties"] == ["hunt"] and rep["examples"] == 3
    assert rep["behaviours"] + len(rep["failures"]) >= 1
    for f in rep["failures"]:
        assert f["error"].startswith("PropertyFailed: qaicmodel hunt --policy "), f["error"]
