"""Issue #12 item 5: ``conform`` (and ``scenario``, ``decode``) tried as a new user would.

Each test is one thing a new user ran into: a host module in the current directory, a
reproducer that forgets its host, an ``--out`` that fails only after the run, a host
whose constructor fails, a host call that never returns (CONF-HANG), a crash without the
host's file and line, a report whose first line does not say what happened, addresses in
decimal, ``decode sem``'s byte order, and a replay line that does not replay the run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from qaicmodel.errors import ArgumentError
from qaicmodel.oracle import conform_cli, watchdog
from qaicmodel.spec.policies import REGISTRY

REPO = Path(__file__).parent.parent

#: a user's hosts, in a module of their own (the line numbers below are asserted)
HOSTS = textwrap.dedent('''\
    from qaicmodel.spec.host.reference import SpecHost


    class Plain(SpecHost):
        """The reference data path under another name."""


    class BadCtor(SpecHost):
        def __init__(self, device, **kw):
            raise RuntimeError("no licence file found")


    class Hangs(SpecHost):
        def detach_slice(self, user, handle, pad=0):
            while True:
                pass


    class Crashes(SpecHost):
        def detach_slice(self, user, handle, pad=0):
            table = {}
            return table["boom"]  # line 22


    BUILT = [0]


    class LaterCtor(SpecHost):
        """Constructs on the first device (the CLI's probe), fails on a later one."""

        def __init__(self, device, **kw):
            BUILT[0] += 1
            if BUILT[0] > 2:
                raise OSError("licence server went away")  # line 34
            super().__init__(device, **kw)
''')
CRASH_LINE = 22
LATER_CTOR_LINE = 34


def _pins() -> list[str]:
    """Every policy pinned at its default but two: 4 pairwise rows (fast)."""
    out: list[str] = []
    for p, pol in REGISTRY.items():
        if p not in ("processing-order", "msi-while-masked"):
            out += ["--policy", f"{p}={pol.default}"]
    return out


def _cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``qaicmodel ARGS`` as the console script runs it: the current directory is *not*
    on sys.path (``python -P``), only the installed package is."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-P", "-m", "qaicmodel", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def _sloppy_detach(cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """conform on a broken host whose failure (CONF-RESULT on a detach_slice) shows in
    one episode per row at this seed; the tests of the reproducer and of the story share
    it, so a generator change that moves the failure is mended in one place."""
    return _cli(
        "conform",
        "--host",
        "qaicmodel.oracle.broken:SloppyDetach",
        "--seed",
        "4",
        "--episodes",
        "1",
        *_pins(),
        "--out",
        "o",
        *extra,
        cwd=cwd,
    )


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    (tmp_path / "myhosts.py").write_text(HOSTS)
    return tmp_path


def _one_line_exit_2(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr[-3000:])
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


# ---------------------------------------------------------------------------
# --host MODULE:CLASS from the current directory


def test_host_module_in_the_current_directory_is_found(user_dir: Path) -> None:
    p = _cli(
        "conform",
        "--host",
        "myhosts:Plain",
        "--episodes",
        "1",
        "--seed",
        "2",
        *_pins(),
        "--out",
        "o",
        cwd=user_dir,
    )
    assert p.returncode in (0, 1), p.stderr[-3000:]
    assert "cannot import" not in p.stderr
    assert "host:       myhosts:Plain" in p.stdout
    # the same for scenario, and FILE.py:CLASS
    scen = user_dir / "s.json"
    scen.write_text(
        json.dumps({"format": "qaicmodel-scenario/1", "steps": [{"op": "open", "expect": "ok"}]})
    )
    for ref in ("myhosts:Plain", "./myhosts.py:Plain"):
        q = _cli("scenario", "s.json", "--host", ref, cwd=user_dir)
        assert q.returncode == 0, (ref, q.stdout, q.stderr)


def test_a_missing_host_module_says_where_it_looked(user_dir: Path) -> None:
    line = _one_line_exit_2(_cli("conform", "--host", "nosuchmod:X", cwd=user_dir))
    assert "current directory" in line


# ---------------------------------------------------------------------------
# the reproducer records its host; --replay uses it; --host overrides


def test_replay_uses_the_host_the_reproducer_records(user_dir: Path) -> None:
    p = _sloppy_detach(user_dir, "--json")
    assert p.returncode == 1, p.stderr[-3000:]
    f = json.loads(p.stdout)["failures"][0]
    assert f["story"].startswith(f"{f['invariant']} at step ")  # the sentence, in JSON too
    repro = f["reproducer"]
    assert conform_cli.reproducer_host(str(user_dir / repro)) == (
        "qaicmodel.oracle.broken:SloppyDetach"
    )
    q = _cli("conform", "--replay", repro, cwd=user_dir)
    assert q.returncode == 1, (q.stdout, q.stderr)
    assert f"FAILED {f['invariant']}" in q.stdout
    assert "SloppyDetach (from the reproducer)" in q.stdout
    # an explicit --host overrides the recorded one
    r = _cli("conform", "--replay", repro, "--host", "qaicmodel.spec.host:SpecHost", cwd=user_dir)
    assert r.returncode == 0 and "from --host" in r.stdout, (r.stdout, r.stderr)
    h = _cli("conform", "--help", cwd=user_dir)
    assert "recorded in the reproducer" in h.stdout and "overrides" in h.stdout


# ---------------------------------------------------------------------------
# --out that cannot be written fails before the run


def test_unwritable_out_fails_before_the_run(user_dir: Path) -> None:
    (user_dir / "afile").write_text("")
    t0 = time.monotonic()
    line = _one_line_exit_2(_cli("conform", "--out", "afile/sub", "--budget", "60", cwd=user_dir))
    assert "--out afile/sub" in line and "cannot be written" in line
    assert time.monotonic() - t0 < 30  # not after a 60 s run


def test_out_check_leaves_nothing_behind(tmp_path: Path) -> None:
    conform_cli.check_out_dir(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("")
    with pytest.raises(ArgumentError, match="cannot be written"):
        conform_cli.check_out_dir(tmp_path / "f")


# ---------------------------------------------------------------------------
# a host whose constructor fails


@pytest.mark.parametrize("cmd", ["conform", "scenario"])
def test_failing_constructor_is_exit_2_with_the_reason(user_dir: Path, cmd: str) -> None:
    (user_dir / "s.json").write_text(
        json.dumps({"format": "qaicmodel-scenario/1", "steps": [{"op": "open"}]})
    )
    argv = ["conform"] if cmd == "conform" else ["scenario", "s.json"]
    line = _one_line_exit_2(_cli(*argv, "--host", "myhosts:BadCtor", cwd=user_dir))
    assert "cannot be constructed" in line and "no licence file found" in line
    assert "myhosts.py:10" in line, line


def test_constructor_failing_mid_run_is_exit_2_with_the_reason_not_a_traceback(
    user_dir: Path,
) -> None:
    """A constructor that works on the probe's device but raises on a device an episode
    generated: one line naming the host, its file and line and the episode's device."""
    p = _cli("conform", "--host", "myhosts:LaterCtor", "--seed", "3", "--budget", "20", *_pins(),
             cwd=user_dir)  # fmt: skip
    assert p.returncode == 2 and "Traceback" not in p.stderr, (p.returncode, p.stderr[-3000:])
    banner, line = p.stderr.strip().splitlines()  # the seed (replayable), then the error
    assert banner.startswith("qaicmodel conform: seed 3, host myhosts:LaterCtor"), banner
    assert "myhosts:LaterCtor cannot be constructed" in line, line
    assert "OSError: licence server went away" in line, line
    assert f"myhosts.py:{LATER_CTOR_LINE}" in line, line
    assert "num_dbc" in line and "policies" in line, line  # the device it was given


# ---------------------------------------------------------------------------
# the watchdog: CONF-HANG


def test_watchdog_stops_a_call_that_never_returns() -> None:
    def spin() -> None:
        while True:
            pass

    with watchdog.timeout(0.2), pytest.raises(watchdog.HostHang, match=r"spin\(1\)"):
        watchdog.call("spin", lambda _x: spin(), (1,), {})
    with watchdog.timeout(0.2), pytest.raises(watchdog.HostHang):
        watchdog.call("sleep", time.sleep, (30,), {})
    # no alarm outlives its call, and a quick call is untouched
    with watchdog.timeout(0.2):
        assert watchdog.call("add", lambda a, b: a + b, (1, 2), {}) == 3
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    time.sleep(0.3)  # would be interrupted by a stray alarm


def test_hanging_host_is_reported_as_conf_hang(user_dir: Path) -> None:
    t0 = time.monotonic()
    p = _cli(
        "conform",
        "--host",
        "myhosts:Hangs",
        "--seed",
        "1",
        "--episodes",
        "1",
        "--host-timeout",
        "0.3",
        *_pins(),
        "--out",
        "o",
        cwd=user_dir,
        timeout=240,
    )
    assert p.returncode == 1, (p.stdout, p.stderr[-3000:])
    m = re.search(
        r"FAILURE CONF-HANG at step (\d+) \(detach_slice[^)]*\): the host's "
        r"detach_slice\([^)]*\) call did not return within 0.3 s .*; it was running "
        r"\S*myhosts.py:1[56] in detach_slice\.",
        p.stdout,
    )
    assert m, p.stdout
    assert p.stdout.count("FAILURE CONF-HANG") == 1  # one hang is enough: conform stops
    assert time.monotonic() - t0 < 200
    q = _cli(
        "conform",
        "--replay",
        p.stdout.split("reproducer: ")[1].split()[0],
        "--host-timeout",
        "0.3",
        cwd=user_dir,
    )
    assert q.returncode == 1 and "FAILED CONF-HANG" in q.stdout, (q.stdout, q.stderr)


# ---------------------------------------------------------------------------
# CONF-CRASH names the host's file and line


def test_crash_shows_the_hosts_file_and_line(user_dir: Path) -> None:
    p = _cli(
        "conform",
        "--host",
        "myhosts:Crashes",
        "--seed",
        "1",
        "--episodes",
        "1",
        *_pins(),
        "--out",
        "o",
        cwd=user_dir,
    )
    assert p.returncode == 1, p.stderr[-3000:]
    site = f"{user_dir / 'myhosts.py'}:{CRASH_LINE} in detach_slice"
    first = next(ln for ln in p.stdout.splitlines() if ln.startswith("  FAILURE"))
    assert "CONF-CRASH" in first and "KeyError: 'boom'" in first and site in first, first


# ---------------------------------------------------------------------------
# the story first


def test_failure_report_tells_the_story_in_one_sentence_first(user_dir: Path) -> None:
    p = _sloppy_detach(user_dir)
    assert p.returncode == 1, p.stderr[-3000:]
    lines = p.stdout.splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.startswith("  FAILURE"))
    assert re.fullmatch(
        r"  FAILURE CONF-RESULT at step \d+ \(detach_slice of BO [bf]\d+, user u\d\): "
        r"[^.]*\bok\b[^.]*\bEBUSY\b[^.]*\.",
        lines[k],
    ), lines[k]
    # then the details: the invariant's meaning, the raw message, the reproducer
    assert lines[k + 1].strip().startswith("CONF-RESULT: ")
    assert lines[k + 2].strip().startswith("detail:")


def test_story_names_the_where_of_a_finding() -> None:
    f = {
        "invariant": "COSIM-REQ-OVERWRITE",
        "message": "the host rewrote a request slot the device had not consumed",
        "finding": {"where": {"step": 4, "op": "execute", "slot": 3, "dbc": 1}},
    }
    steps: list[dict[str, Any]] = [{}] * 4 + [
        {"op": "execute", "user": "u0", "dbc_id": "c1", "handles": [{"handle": "b2"}]}
    ]
    s = conform_cli.story(f, steps)
    assert s == (
        "COSIM-REQ-OVERWRITE at step 4 (execute of BO b2 on dbc c1, user u0; slot 3, dbc 1): "
        "the host rewrote a request slot the device had not consumed."
    )


# ---------------------------------------------------------------------------
# addresses in hex; decode sem's byte order


def test_decode_prints_addresses_in_hex_and_json_keeps_integers(tmp_path: Path) -> None:
    from qaicmodel.spec.dbc.wire import RequestElem

    e = RequestElem(
        pcie_dma_source_addr=0x1_0000_0000,
        pcie_dma_dest_addr=0x20_0000,
        doorbell_addr=0x3000,
        pcie_dma_len=4096,
    )
    p = _cli("decode", "request", e.pack().hex(), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "pcie_dma_source_addr: 0x100000000" in p.stdout
    assert "pcie_dma_dest_addr: 0x200000" in p.stdout and "doorbell_addr: 0x3000" in p.stdout
    assert "pcie_dma_len: 4096" in p.stdout  # a length stays decimal
    j = json.loads(_cli("decode", "request", e.pack().hex(), "--json", cwd=tmp_path).stdout)
    assert j["pcie_dma_source_addr"] == 0x1_0000_0000


def test_decode_sem_says_which_byte_order_it_read(tmp_path: Path) -> None:
    p = _cli("decode", "sem", "05100080", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert re.search(
        r"byte_order: little-endian: bytes 05 10 00 80 are the word 0x80001005", p.stdout
    ), p.stdout
    assert "sem_cmd: 0x80001005" in p.stdout


def test_scenario_report_prints_addresses_in_hex(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(
        json.dumps(
            {
                "format": "qaicmodel-scenario/1",
                "steps": [{"op": "open"}, {"op": "create_bo", "size": 8192}],
            }
        )
    )
    p = _cli("scenario", "s.json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert re.search(r"segments=\[\[0x[0-9a-f]+,8192\]\]", p.stdout), p.stdout
    j = json.loads(_cli("scenario", "s.json", "--json", cwd=tmp_path).stdout)
    assert isinstance(j["results"][1]["segments"][0][0], int)


# ---------------------------------------------------------------------------
# the printed replay line replays exactly that run


_VOLATILE = ("elapsed_s", "budget_s", "episodes_per_row", "replay", "replay_command")


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> None:
    for k in set(a) | set(b):
        if k in _VOLATILE:
            continue
        if k == "failures" or k == "driver_findings":
            strip = ("reproducer", "replay", "shrink_replays")
            assert [{x: v for x, v in f.items() if x not in strip} for f in a[k]] == [
                {x: v for x, v in f.items() if x not in strip} for f in b[k]
            ], k
        else:
            assert a[k] == b[k], k


def test_the_printed_replay_line_replays_a_budgeted_run_exactly(user_dir: Path) -> None:
    p = _cli(
        "conform",
        "--host",
        "myhosts:Plain",
        "--budget",
        "4",
        *_pins(),
        "--out",
        "o1",
        "--json",
        cwd=user_dir,
    )
    assert p.returncode in (0, 1), p.stderr[-3000:]
    a = json.loads(p.stdout)
    argv = shlex.split(a["replay_command"])
    assert argv[:2] == ["qaicmodel", "conform"] and "--budget" not in argv
    q = _cli(*argv[1:], "--out", "o2", "--json", cwd=user_dir)
    assert q.returncode == p.returncode, q.stderr[-3000:]
    b = json.loads(q.stdout)
    _same_run(a, b)
    # the text report prints the same line
    assert a["replay_command"].startswith("qaicmodel conform --host ")


def test_a_failures_replay_line_replays_that_failure(user_dir: Path) -> None:
    p = _cli(
        "conform",
        "--host",
        "myhosts:Crashes",
        "--seed",
        "1",
        "--episodes",
        "1",
        *_pins(),
        "--out",
        "o",
        "--json",
        cwd=user_dir,
    )
    f = json.loads(p.stdout)["failures"][0]
    argv = shlex.split(f["replay"])
    q = _cli(*argv[1:], "--json", cwd=user_dir)
    assert q.returncode == 1, q.stderr
    g = json.loads(q.stdout)["failure"]
    assert (g["invariant"], g["message"]) == (f["invariant"], f["message"])


@pytest.mark.parametrize(
    ("host", "said"),
    [
        ("myhosts:Crashes", f"raised KeyError: 'boom' at {{dir}}/myhosts.py:{CRASH_LINE}"),
        ("myhosts:Hangs", "did not return within 0.3 s"),
        ("myhosts:Hangs", "; it was running {dir}/myhosts.py:1"),
    ],
)
def test_scenario_with_a_crashing_or_hanging_host_is_one_line(
    user_dir: Path, host: str, said: str
) -> None:
    """The reproducer of a CONF-CRASH / CONF-HANG, run the way its docs say
    (``qaicmodel scenario FILE --host MODULE:CLASS``): one line, exit 1, no traceback."""
    (user_dir / "s.json").write_text(
        json.dumps(
            {
                "format": "qaicmodel-scenario/1",
                "steps": [
                    {"op": "open"},
                    {"op": "create_bo", "size": 8192, "as": "b"},
                    {"op": "detach_slice", "handle": "b", "expect": "EINVAL"},
                ],
            }
        )
    )
    p = _cli("scenario", "s.json", "--host", host, "--host-timeout", "0.3", cwd=user_dir)
    assert p.returncode == 1, (p.stdout, p.stderr[-3000:])
    assert "Traceback" not in p.stderr
    assert p.stdout.startswith(f"HOST FAILED ({host}): the host's detach_slice(")
    assert said.format(dir=user_dir) in p.stdout, p.stdout
