"""``qaicmodel conform``: it runs, it covers the policy rows, it catches broken hosts,
its reproducers replay, and ``--seed`` replays exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from qaicmodel.oracle import broken, conform, conform_cli, shrink
from qaicmodel.oracle.broken import BROKEN_HOSTS, LosesCompletions, LosesWrites, SloppyDetach
from qaicmodel.scenario.format import FORMAT
from qaicmodel.scenario.runner import DEFAULT_HOST as SCENARIO_HOST
from qaicmodel.scenario.runner import run_scenario

REPO = Path(__file__).parent.parent


def _run(host: Any, tmp_path: Path, seed: int = 11, **kw: Any) -> dict[str, Any]:
    return conform.run_conformance(
        host, seed=seed, episodes=kw.pop("episodes", 1), out_dir=tmp_path / "repro", **kw
    )


def test_default_host_conforms_and_says_what_it_covered(tmp_path: Path) -> None:
    rep = _run(conform.DEFAULT_HOST, tmp_path)
    assert rep["failures"] == [], rep["failures"]
    # the only thing the default host (= the driver) may show: known driver findings
    # (issue #14 item 9), reported, never "conforms"
    found = {f["invariant"] for f in rep["driver_findings"]}
    assert found <= set(conform.DRIVER_FINDINGS)
    assert rep["verdict"] == ("driver-findings" if found else "conforms")
    assert rep["reference"] == SCENARIO_HOST
    assert rep["steps"] > 0 and rep["actions"] > 0
    cov = rep["policies_covered"]
    assert cov["rows_run"] == cov["rows_total"] > 1
    from qaicmodel.spec.policies import REGISTRY

    held = cov["held_at_default"]
    assert held  # cosim.DRIVER_ASSUMES
    missing = sum(len(REGISTRY[p].alternatives) - 1 for p in held)
    assert cov["alternatives_covered"] == cov["alternatives_total"] - missing
    assert cov["pairs_covered"] < cov["pairs_total"]
    checked = rep["invariants_checked"]
    # the rule verdict: everything but the differential mode's state comparison
    assert rep["mode"] == "rules"
    assert set(checked) == set(conform.INVARIANTS) - {"CONF-REFERENCE", "CONF-STATE"}
    assert all(v > 0 for v in checked.values())
    # the generator reached device completion codes other than success (issue #12 item 2)
    assert rep["device_error_responses"] > 0
    assert len(list((tmp_path / "repro").glob("*.json")) if found else []) == len(found)


def _few_rows() -> dict[str, str]:
    """Pin every policy but two (a few pairwise rows: fast tests)."""
    from qaicmodel.spec.policies import REGISTRY

    return {
        p: pol.default
        for p, pol in REGISTRY.items()
        if p not in ("processing-order", "msi-while-masked")
    }


def test_seed_replays_exactly(tmp_path: Path) -> None:
    pins = _few_rows()
    a = _run(conform.DEFAULT_HOST, tmp_path, seed=5, episodes=3, policies=pins)
    b = _run(conform.DEFAULT_HOST, tmp_path, seed=5, episodes=3, policies=pins)
    c = _run(conform.DEFAULT_HOST, tmp_path, seed=6, episodes=3, policies=pins)
    assert a["policies_covered"]["rows_total"] < 6
    keys = ("steps", "actions", "invariants_checked", "episodes")
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert [a[k] for k in keys] != [c[k] for k in keys]


def test_pinned_policy_is_in_every_row(tmp_path: Path) -> None:
    rep = _run(conform.DEFAULT_HOST, tmp_path, policies={"processing-order": "fifo"})
    cov = rep["policies_covered"]
    assert cov["pinned"] == {"processing-order": "fifo"}
    from qaicmodel.spec.policies import REGISTRY

    held = sum(len(REGISTRY[p].alternatives) - 1 for p in cov["held_at_default"])
    assert cov["alternatives_covered"] == cov["alternatives_total"] - 1 - held


@pytest.mark.parametrize("broken", [SloppyDetach, LosesCompletions, LosesWrites])
def test_broken_host_is_caught_with_a_replayable_minimal_reproducer(
    broken: type, tmp_path: Path
) -> None:
    rep = _run(broken, tmp_path, episodes=2)
    assert rep["verdict"] == "FAILED"
    f = rep["failures"][0]
    assert f["invariant"] in conform.INVARIANTS
    assert f["reproduces"] is True
    assert f["steps_after_shrink"] <= f["steps_before_shrink"]
    path = Path(f["reproducer"])
    scen = json.loads(path.read_text())
    assert scen["format"] == FORMAT
    # the reproducer fails with the broken host and holds with the reference host
    assert run_scenario(path, host_cls=broken).exit_code == 1
    assert run_scenario(path).exit_code == 0


def test_every_broken_host_class_is_registered() -> None:
    """A broken host added to qaicmodel/oracle/broken.py cannot be left out of the tests."""
    classes = {
        n
        for n, v in vars(broken).items()
        if isinstance(v, type) and v.__module__ == broken.__name__ and hasattr(v, "enabled")
    }
    assert classes == set(BROKEN_HOSTS)
    assert all(b.cls.__name__ == n for n, b in BROKEN_HOSTS.items())


@pytest.mark.parametrize("name", sorted(BROKEN_HOSTS))
def test_conform_catches_every_broken_host_of_the_cosim_suite(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """qaicmodel/oracle/broken.py (the registry BROKEN_HOSTS): each host breaks one driver
    rule; conform's generator alone, within its default budget, must say which and leave
    a reproducer that ``--replay`` confirms.  (The run stops at the first failure.)"""
    cls = BROKEN_HOSTS[name].cls
    monkeypatch.setattr(conform, "MAX_FAILURES", 1)
    rep = _run(cls, tmp_path, seed=1, episodes=None, budget=conform.DEFAULT_BUDGET)
    assert rep["verdict"] == "FAILED", name
    f = rep["failures"][0]
    assert f["reproduces"] is True
    ref = f"qaicmodel.oracle.broken:{name}"
    out = conform_cli.replay_file(f["reproducer"], ref)
    assert out["verdict"] == "FAILED" and out["failure"]["invariant"] == f["invariant"]
    assert conform_cli.replay_file(f["reproducer"], SCENARIO_HOST)["verdict"] == "conforms"


def test_sloppy_detach_shrinks_to_a_few_steps(tmp_path: Path) -> None:
    rep = _run(SloppyDetach, tmp_path, episodes=2)
    f = rep["failures"][0]
    assert f["invariant"] == "CONF-RESULT"
    # open, activate, create, attach, execute, detach: nothing else is needed
    assert f["steps_after_shrink"] <= 7, json.loads(Path(f["reproducer"]).read_text())


def test_ddmin_finds_a_minimal_failing_subset() -> None:
    calls = []

    def fails(xs: list[int]) -> bool:
        calls.append(xs)
        return 3 in xs and 7 in xs

    assert shrink._ddmin(list(range(20)), fails, lambda: True) == [3, 7]


USER_HOST = textwrap.dedent('''
    from qaicmodel.spec.host.reference import SpecHost

    class MyHost(SpecHost):
        """A user's host: the reference data path, except that it forgets -EBUSY."""

        def detach_slice(self, user, handle, pad=0):
            bo = self.users[user].bos.get(handle) if user in self.users else None
            if bo is not None and bo.queued and pad == 0:
                return None
            return super().detach_slice(user, handle, pad)
''')


def _cli(*args: str, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), str(REPO)])
    return subprocess.run(
        [sys.executable, "-m", "qaicmodel", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=path or REPO,
    )


def test_cli_user_host_failure_is_exit_1_with_seed_progress_and_reproducer(tmp_path: Path) -> None:
    (tmp_path / "myhost.py").write_text(USER_HOST)
    p = _cli(
        "conform",
        "--host",
        "myhost:MyHost",
        "--seed",
        "3",
        "--episodes",
        "2",
        "--out",
        str(tmp_path / "out"),
        path=tmp_path,
    )
    assert p.returncode == 1, (p.stdout, p.stderr[-2000:])
    assert "seed 3" in p.stderr and "row 1/" in p.stderr
    assert "FAILURE CONF-RESULT" in p.stdout
    repro = sorted(  # the failure's own reproducer: its note names the invariant first
        f for f in (tmp_path / "out").glob("*.json") if "MyHost: CONF-RESULT" in f.read_text()
    )
    assert repro  # (driver findings' reproducers are in the same directory)
    q = _cli("scenario", str(repro[0]), "--host", "myhost:MyHost", path=tmp_path)
    assert q.returncode == 1, q.stdout
    r = _cli("scenario", str(repro[0]), path=tmp_path)
    assert r.returncode == 0, r.stdout
    s = _cli("conform", "--replay", str(repro[0]), "--host", "myhost:MyHost", path=tmp_path)
    assert s.returncode == 1 and "FAILED CONF-RESULT" in s.stdout, s.stdout


def test_cli_json_report(tmp_path: Path) -> None:
    p = _cli(
        "conform",
        "--seed",
        "4",
        "--episodes",
        "1",
        "--json",
        "--policy",
        "msi-while-masked=lost",
        "--out",
        str(tmp_path / "o"),
    )
    assert p.returncode == 0, p.stderr[-2000:]
    rep = json.loads(p.stdout)
    assert rep["format"] == "qaicmodel-conform/1" and rep["seed"] == 4
    assert rep["policies_covered"]["pinned"] == {"msi-while-masked": "lost"}


@pytest.mark.parametrize(
    "argv",
    [
        ["--budget", "0"],
        ["--budget", "-3"],
        ["--episodes", "0"],
        ["--policy", "nope=x"],
        ["--policy", "msi-while-masked"],
        ["--policy", "msi-while-masked=maybe"],
        ["--host", "nocolon"],
        ["--host", "qaicmodel.spec.host.reference:NoSuchHost"],
        ["--host", "qaicmodel.spec.dbc.wire:SemCmd"],
        ["--seed", "-1"],
    ],
)
def test_bad_arguments_exit_2_one_line(argv: list[str]) -> None:
    p = _cli("conform", *argv)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "Traceback" not in p.stderr


# -- issue #12 item 1: judged by rules; correct hosts of other shapes ---------------------

from qaicmodel.oracle import rules as rules_mod  # noqa: E402
from qaicmodel.oracle.shapes import CORRECT_SHAPES  # noqa: E402


@pytest.mark.parametrize("name", sorted(CORRECT_SHAPES))
def test_correct_host_of_another_shape_conforms(name: str, tmp_path: Path) -> None:
    """qaicmodel/oracle/shapes.py: each drives the device differently from the reference
    host but keeps every rule; the rule verdict accepts it over every policy row."""
    rep = _run(CORRECT_SHAPES[name], tmp_path, seed=1)
    assert rep["failures"] == [], rep["failures"][:1]
    assert {f["invariant"] for f in rep["driver_findings"]} <= set(conform.DRIVER_FINDINGS)


@pytest.mark.parametrize("name", ["PollCountHost", "MergingHost", "AtomicExecHost"])
def test_differential_mode_rejects_what_the_rules_accept(name: str, tmp_path: Path) -> None:
    """``--differential`` (step-for-step equality with the reference host) fails these
    correct hosts: their interleavings, polls or request elements differ."""
    rep = _run(CORRECT_SHAPES[name], tmp_path, seed=1, differential=True)
    assert rep["mode"] == "differential"
    assert rep["verdict"] == "FAILED"
    assert rep["failures"][0]["invariant"] in ("CONF-RESULT", "CONF-STATE")


def _elem(**kw: Any) -> Any:
    from qaicmodel.spec.dbc.wire import RequestElem

    return RequestElem(**kw)


def _info(size: int = 8192) -> Any:
    ent = {
        "offset": 0,
        "size": size,
        "dev_addr": 0x30_0000,
        "db_addr": 0x50_0000,
        "db_len": 32,
        "db_data": 1,
    }
    return rules_mod.SliceInfo(1, 1, (ent,), ((0x1000_0000, 4096), (0x1000_2000, 4096)))


def _two(len0: int = 4096, db_first: int = 0, addr1: int = 0x1000_2000) -> list[Any]:
    return [
        _elem(
            pcie_dma_cmd=0x9,
            pcie_dma_source_addr=0x1000_0000,
            pcie_dma_dest_addr=0x30_0000,
            pcie_dma_len=len0,
            doorbell_addr=db_first,
        ),
        _elem(
            pcie_dma_cmd=0x19,
            pcie_dma_source_addr=addr1,
            pcie_dma_dest_addr=0x30_1000,
            pcie_dma_len=4096,
            doorbell_addr=0x50_0000,
            doorbell_data=1,
            doorbell_attr=3,
        ),
    ]


def test_request_element_rule_accepts_the_slice_and_names_each_breakage() -> None:
    info = _info()
    assert rules_mod.check_group(info, _two(), None) is None
    assert "add up to" in (rules_mod.check_group(info, _two(len0=2048), None) or "")
    assert "doorbell" in (rules_mod.check_group(info, _two(db_first=0x50_0000), None) or "")
    # one element across the gap between two segments that are not contiguous
    one = [
        _elem(
            pcie_dma_cmd=0x19,
            pcie_dma_source_addr=0x1000_0000,
            pcie_dma_dest_addr=0x30_0000,
            pcie_dma_len=8192,
            doorbell_addr=0x50_0000,
            doorbell_data=1,
        )
    ]
    assert "gap" in (rules_mod.check_group(info, one, None) or "")
    assert "no completion" in (rules_mod.check_group(info, _two()[:1], None) or "")
    assert "bus" in (rules_mod.check_group(info, _two(addr1=0x2000_0000), None) or "")


# -- issue #12 item 2: the generator reaches the rest of the driver ------------------------


def test_generator_reaches_control_calls_threads_and_invalid_states() -> None:
    from qaicmodel.oracle.shrink import Episode

    ops: set[str] = set()
    wrapped = waits_joined = foreign_perf = 0
    for seed in range(40):
        e = Episode(seed, None, conform.load_host(conform.DEFAULT_HOST), None)
        e.run(60, None)
        names = {d.get("thread") for d in e.steps if d["op"] == "wait"}
        for d in e.steps:
            ops.add(d["op"])
            if d["op"] == "attach_slice" and d["entries"][0].get("offset", 0) >= 1 << 63:
                wrapped += 1
            if d["op"] == "join" and d["thread"] in names:
                waits_joined += 1
            if d["op"] == "perf_stats":
                foreign_perf += 1
    assert {"deactivate", "ssr", "close", "activate", "detach_slice", "perf_stats"} <= ops
    assert wrapped and waits_joined and foreign_perf


# -- policies under which the driver itself cannot conform (recorder.DRIVER_ASSUMES) ---------


def _release_in_flight(op: dict[str, Any], policy: dict[str, str]) -> Any:
    from qaicmodel.scenario.format import parse
    from qaicmodel.scenario.runner import Runner

    doc = {
        "format": FORMAT,
        "device": {"num_dbc": 2, "policies": policy},
        "steps": [
            {"op": "open", "user": "u0"},
            {"op": "activate", "user": "u0", "queue_size": 4, "as": "d0"},
            {"op": "create_bo", "user": "u0", "size": 4096, "as": "b"},
            {
                "op": "attach_slice",
                "user": "u0",
                "hdr": {"dbc_id": "d0", "handle": "b", "dir": 1, "size": 4096},
                "entries": [{"size": 4096, "dev_addr": 0x30_0000}],
            },
            {"op": "execute", "user": "u0", "dbc_id": "d0", "handles": ["b"]},
            op,
        ],
    }
    sc = parse(doc)
    r = Runner(sc.device)
    for st in sc.steps:
        r.step(st)
    return r.device.ch[0].active


@pytest.mark.parametrize(
    "pid,alt,op",
    [
        ("nnc-command-set", "opaque", {"op": "deactivate", "user": "u0", "dbc_id": "d0"}),
        ("nnc-terminate-partition", "partition-0", {"op": "close", "user": "u0"}),
    ],
)
def test_driver_assumes_the_channel_stops_when_it_is_released(pid: str, alt: str, op: Any) -> None:
    """Under these alternatives the reference host releases the channel (FIFOs and BOs
    freed) while the device keeps it running: conform holds them at their defaults."""
    from qaicmodel.oracle.recorder import DRIVER_ASSUMES

    assert pid in DRIVER_ASSUMES
    assert _release_in_flight(op, {pid: alt}) is True
    assert _release_in_flight(op, {}) is False


def test_an_imported_bo_slice_keeps_the_request_element_rule() -> None:
    """A slice of an imported BO (op ``import_bo``, odd size, merged) on the reference host
    conforms: the rule checker knows the imported BO's DMA segments too (it once knew only
    create_bo's, and called every element of an import "past the BO's segments")."""
    from qaicmodel.spec.dbc.config import DeviceConfig
    from qaicmodel.spec.host.protocol import load_host

    steps: list[dict[str, Any]] = [
        {"op": "open", "user": "u1"},
        {"op": "activate", "user": "u1", "queue_size": 4, "as": "d1"},
        {"op": "import_bo", "user": "u1", "size": 1, "entries": [1], "merge": True, "as": "i1"},
        {
            "op": "attach_slice",
            "user": "u1",
            "hdr": {"dbc_id": "d1", "handle": "i1", "dir": 1, "size": 1},
            "entries": [{"size": 1, "offset": 0, "dev_addr": 0x300000}],
        },
        {"op": "execute", "user": "u1", "dbc_id": "d1", "handles": ["i1"]},
        {"op": "run"},
    ]
    host = load_host(SCENARIO_HOST)
    f = shrink.replay(DeviceConfig(kernel="7.2"), {}, steps, host, None)
    assert f is None, f


@pytest.mark.machines
def test_execute_of_a_bo_sliced_on_another_channel_is_not_a_rule_break() -> None:
    """7.2 qaic_data.c send_bo_list_to_device checks ``bo->sliced`` but not that the BO
    was sliced on the channel it is executed on; a host that accepts it (as the
    reference host does) conforms.  Found by ``qaicmodel conform --seed 11`` (a false
    CONF-REQ-ELEM: "a group on dbc 0 for BO 1, which is not sliced there")."""
    path = Path(__file__).parent / "data" / "conform_cross_dbc_execute.json"
    out = conform_cli.replay_file(str(path), conform.DEFAULT_HOST)
    assert out["verdict"] == "conforms", out["failure"]
