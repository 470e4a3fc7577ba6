"""The scenario runner against shared/formats/scenario.md (and docs/formats-extensions.md)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qaicmodel.cli import main
from qaicmodel.errors import FormatError
from qaicmodel.scenario.format import FORMAT, parse
from qaicmodel.scenario.report import RESULT_FORMAT
from qaicmodel.scenario.runner import run_scenario

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.json"))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qaicmodel", *args], capture_output=True, text=True, timeout=300
    )


def doc(*steps: dict[str, Any], device: dict[str, Any] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"format": FORMAT, "steps": list(steps)}
    if device is not None:
        d["device"] = device
    return d


OPEN: dict[str, Any] = {"op": "open", "user": "u"}
ACT: dict[str, Any] = {"op": "activate", "user": "u", "queue_size": 8, "as": "d"}
BO: dict[str, Any] = {"op": "create_bo", "user": "u", "size": 4096, "as": "b"}


def attach(handle: Any = "b", dbc: Any = "d", **entry: Any) -> dict[str, Any]:
    return {
        "op": "attach_slice",
        "user": "u",
        "hdr": {"dbc_id": dbc, "handle": handle, "dir": 1, "size": 4096},
        "entries": [{"size": 4096, "dev_addr": "0x1000", **entry}],
    }


# -- examples ---------------------------------------------------------------


def test_there_are_examples() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"echo_inference.json", "ioctl_tour.json"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_exits_0(path: Path) -> None:
    p = cli("scenario", str(path), "--json")
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr)
    rep = json.loads(p.stdout)
    assert rep["format"] == RESULT_FORMAT
    assert rep["first_mismatch"] is None
    assert len(rep["results"]) == len(json.loads(path.read_text())["steps"])


def test_echo_example_returns_the_bytes_it_sent() -> None:
    path = next(p for p in EXAMPLES if p.name == "echo_inference.json")
    rep = run_scenario(path)
    sent = next(s for s in json.loads(path.read_text())["steps"] if s["op"] == "write_bo")["hex"]
    got = next(r for r in rep.results if r["op"] == "read_bo")["hex"]
    assert got == sent and rep.exit_code == 0


def test_ioctl_tour_covers_the_driver_errnos() -> None:
    path = next(p for p in EXAMPLES if p.name == "ioctl_tour.json")
    rep = run_scenario(path)
    seen = {r["result"] for r in rep.results}
    assert {"EINVAL", "ENOENT", "EPERM", "EBUSY", "ENOSPC", "EAGAIN", "ETIMEDOUT", "EBADF"} <= seen


# -- report, exit status ------------------------------------------------------------


def test_report_shape_and_return_values() -> None:
    rep = run_scenario(doc(OPEN, ACT, BO, attach(), {"op": "dump", "dbc_id": "d"}))
    js = rep.as_json()
    assert list(js) == ["format", "results", "first_mismatch"]
    assert [r["step"] for r in js["results"]] == [0, 1, 2, 3, 4]
    assert js["results"][1]["dbc_id"] == 0
    bo = js["results"][2]
    assert bo["handle"] >= 1 and bo["segments"][0][1] == 4096
    dump = js["results"][4]
    assert dump["nelem"] == 8 and len(dump["req"]) == 8 and len(dump["rsp"]) == 8
    assert len(dump["sems"]) == 32
    assert set(dump["regs"]) == {"req_hp", "req_tp", "rsp_hp", "rsp_tp"}
    assert rep.exit_code == 0


def test_mismatch_is_exit_1_and_names_the_first_failing_step(tmp_path: Path) -> None:
    d = doc(
        OPEN,
        ACT,
        dict(BO, expect="ok"),
        {"op": "create_bo", "user": "u", "size": 0, "expect": "ok"},
        {"op": "create_bo", "user": "u", "size": 0, "expect": "EINVAL"},
    )
    rep = run_scenario(d)
    assert rep.exit_code == 1
    assert rep.first_mismatch == {"step": 3, "op": "create_bo", "expect": "ok", "result": "EINVAL"}
    assert len(rep.results) == 4  # the run stops at the first mismatch
    f = tmp_path / "s.json"
    f.write_text(json.dumps(d))
    p = cli("scenario", str(f))
    assert p.returncode == 1
    assert "MISMATCH at step 3" in p.stdout


def test_integers_may_be_hex_strings() -> None:
    a = run_scenario(doc(OPEN, {"op": "create_bo", "user": "u", "size": "0x2000"}))
    b = run_scenario(doc(OPEN, {"op": "create_bo", "user": "u", "size": 8192}))
    assert a.results == b.results
    assert a.results[1]["segments"][0][1] == 8192


def test_names_bind_and_plain_integers_pass_bogus_handles() -> None:
    rep = run_scenario(
        doc(
            OPEN,
            ACT,
            BO,
            dict(attach(handle="b"), expect="ok"),
            dict(attach(handle=777), expect="ENOENT"),
        )
    )
    assert rep.exit_code == 0, rep.first_mismatch


def test_closed_user_answers_ebadf() -> None:
    rep = run_scenario(doc(OPEN, {"op": "close", "user": "u"}, dict(BO, expect="EBADF")))
    assert rep.exit_code == 0, rep.first_mismatch


def test_wait_times_out_when_nothing_can_complete_the_bo() -> None:
    gate = {"cmd": 4, "index": 9, "val": 3, "presync": 1}
    steps = [
        OPEN,
        ACT,
        BO,
        attach(sem0=gate),
        {"op": "execute", "user": "u", "dbc_id": "d", "handles": ["b"]},
        {"op": "wait", "user": "u", "dbc_id": "d", "handle": "b", "expect": "ETIMEDOUT"},
        {"op": "nsp", "dbc_id": "d", "sem": {"index": 9, "cmd": 1, "val": 3}},
        {"op": "wait", "user": "u", "dbc_id": "d", "handle": "b", "expect": "ok"},
    ]
    rep = run_scenario(doc(*steps))
    assert rep.exit_code == 0, rep.first_mismatch
    assert rep.results[6]["value"] == 3


def test_ddr_write_then_read() -> None:
    rep = run_scenario(
        doc(
            {"op": "ddr_write", "addr": "0x5000", "hex": "cafe"},
            {"op": "ddr_read", "addr": "0x4fff", "length": 4, "expect_hex": "00cafe00"},
        )
    )
    assert rep.exit_code == 0 and rep.results[1]["hex"] == "00cafe00"


def test_expect_hex_difference_is_a_mismatch() -> None:
    rep = run_scenario(doc({"op": "ddr_read", "addr": 0, "length": 2, "expect_hex": "0001"}))
    assert rep.exit_code == 1 and rep.first_mismatch is not None
    assert rep.first_mismatch["result"] == "hex differs"


def test_read_bo_past_the_end_is_efault() -> None:
    rep = run_scenario(
        doc(
            OPEN,
            BO,
            {
                "op": "read_bo",
                "user": "u",
                "handle": "b",
                "offset": 4000,
                "length": 200,
                "expect": "EFAULT",
            },
        )
    )
    assert rep.exit_code == 0, rep.first_mismatch


def test_run_with_schedule_takes_exactly_those_actions() -> None:
    base = [
        OPEN,
        ACT,
        BO,
        attach(),
        {"op": "execute", "user": "u", "dbc_id": "d", "handles": ["b"]},
    ]
    rep = run_scenario(
        doc(
            *base,
            {"op": "run", "schedule": ["device:Consume(dbc=0)"]},
            {"op": "dump", "dbc_id": "d"},
        )
    )
    assert rep.exit_code == 0, rep.first_mismatch
    assert rep.results[5]["steps"] == 1
    assert rep.results[6]["regs"]["req_hp"] == 1 and rep.results[6]["regs"]["rsp_tp"] == 0
    bad = run_scenario(doc(*base, {"op": "run", "schedule": ["device:Consume(dbc=5)"]}))
    assert bad.exit_code == 1 and bad.first_mismatch is not None
    assert bad.first_mismatch["result"] == "schedule-diverged"


def test_execute_threads_and_join() -> None:
    """Extension ``thread``: two ioctl threads inside EXECUTE_BO; with the reference host's
    req_lock the second waits for the first (qaic_data.c, v6.18 req_lock)."""
    bo2 = {"op": "create_bo", "user": "u", "size": 4096, "as": "c"}
    steps = [
        OPEN,
        ACT,
        BO,
        bo2,
        attach(),
        attach(handle="c"),
        {"op": "execute", "user": "u", "dbc_id": "d", "handles": ["b"], "thread": "t1"},
        {"op": "execute", "user": "u", "dbc_id": "d", "handles": ["c"], "thread": "t2"},
        {"op": "run", "schedule": ["host:HostAction(kind='exec', arg=1)"]},
        {"op": "run", "schedule": ["host:HostAction(kind='exec', arg=2)"]},
        {"op": "join", "thread": "t2", "expect": "ok"},
        {"op": "join", "thread": "t1", "expect": "ok"},
        {"op": "wait", "user": "u", "dbc_id": "d", "handle": "c", "expect": "ok"},
    ]
    rep = run_scenario(doc(*steps))
    # thread 1 holds req_lock after its first phase, so thread 2 cannot move
    assert rep.first_mismatch == {
        "step": 9,
        "op": "run",
        "expect": "ok",
        "result": "schedule-diverged",
    }
    del steps[9]
    rep = run_scenario(doc(*steps))
    assert rep.exit_code == 0, rep.first_mismatch
    failing = [
        OPEN,
        ACT,
        {"op": "execute", "user": "u", "dbc_id": "d", "handles": [99], "thread": "t"},
        {"op": "join", "thread": "t", "expect": "ENOENT"},
    ]
    assert run_scenario(doc(*failing)).exit_code == 0
    with pytest.raises(FormatError) as ei:
        parse(doc({"op": "join", "thread": "nobody"}))
    assert ei.value.where == "steps[0].thread"


def test_run_reports_quiescence_and_device_steps() -> None:
    rep = run_scenario(
        doc(
            OPEN,
            ACT,
            BO,
            attach(),
            {"op": "execute", "user": "u", "dbc_id": "d", "handles": ["b"]},
            {"op": "run"},
            {"op": "dump", "dbc_id": "d"},
        )
    )
    run = rep.results[5]
    assert run["quiescent"] is True and run["device_steps"] > 0
    assert "stranded" not in run
    regs = rep.results[6]["regs"]
    assert regs["rsp_hp"] == regs["rsp_tp"] == 1  # the host drained the one response


def test_run_max_steps_bounds_the_run() -> None:
    rep = run_scenario(
        doc(
            OPEN,
            ACT,
            BO,
            attach(),
            {"op": "execute", "user": "u", "dbc_id": "d", "handles": ["b"]},
            {"op": "run", "max_steps": 2},
        )
    )
    assert rep.results[5]["steps"] == 2 and rep.results[5]["quiescent"] is False


def test_device_policies_reach_the_device() -> None:
    rep = run_scenario(
        doc(
            OPEN,
            ACT,
            {"op": "nsp", "dbc_id": "d", "sem": {"index": 0, "cmd": 2, "val": 5}},
            device={"policies": {"sem-inc-amount": "by-value"}},
        )
    )
    assert rep.results[2]["value"] == 5
    rep = run_scenario(
        doc(OPEN, ACT, {"op": "nsp", "dbc_id": "d", "sem": {"index": 0, "cmd": 2, "val": 5}})
    )
    assert rep.results[2]["value"] == 1


def test_ssr_runs_the_stages(tmp_path: Path) -> None:
    """The ssr step goes through the control plane (qaicmodel.spec.control.plane, issue #4)."""
    rep = run_scenario(
        doc(
            OPEN,
            ACT,
            {"op": "ssr", "dbc_id": "d"},
            {"op": "deactivate", "user": "u", "dbc_id": "d", "expect": "EPERM"},
        )
    )
    assert [r["result"] for r in rep.results][-2:] == ["ok", "EPERM"]


def test_host_option_selects_the_host() -> None:
    assert (
        main(
            [
                "scenario",
                str(EXAMPLES[0]),
                "--host",
                "qaicmodel.spec.host.reference:SpecHost",
                "--json",
            ]
        )
        == 0
    )
    assert (
        main(["scenario", str(EXAMPLES[0]), "--host", "qaicmodel.spec.host.reference:NoSuch"]) == 2
    )
    assert main(["scenario", str(EXAMPLES[0]), "--host", "nocolon"]) == 2


# -- malformed files: FormatError naming the step and the field, exit 2 -------------

MALFORMED = [
    ({"format": "qaicmodel-scenario/2", "steps": []}, "format"),
    ({"format": FORMAT}, "steps"),
    ({"format": FORMAT, "steps": [], "extra": 1}, "extra"),
    (doc({"op": "frobnicate"}), "steps[0].op"),
    (doc(OPEN, {"op": "create_bo", "user": "u"}), "steps[1].size"),
    (doc(OPEN, {"op": "create_bo", "user": "u", "size": -1}), "steps[1].size"),
    (doc(OPEN, {"op": "create_bo", "user": "u", "size": 2**64}), "steps[1].size"),
    (doc(OPEN, {"op": "create_bo", "user": "u", "size": "12"}), "steps[1].size"),
    (doc(OPEN, {"op": "create_bo", "user": "u", "size": 4096, "colour": 1}), "steps[1].colour"),
    (doc(OPEN, {"op": "create_bo", "user": "u", "size": 1.5}), "steps[1].size"),
    (doc(OPEN, {"op": "create_bo", "user": "u", "size": True}), "steps[1].size"),
    (doc({"op": "create_bo", "user": "nobody", "size": 4096}), "steps[0].user"),
    (doc(OPEN, OPEN), "steps[1].user"),
    (doc(OPEN, {"op": "wait", "user": "u", "dbc_id": "d", "handle": 1}), "steps[1].dbc_id"),
    (doc(OPEN, dict(BO, expect="EWHATEVER")), "steps[1].expect"),
    (doc(OPEN, dict(BO, expect="ok", note=3)), "steps[1].note"),
    (doc(OPEN, {"op": "close", "user": "u", "as": "x"}), "steps[1].as"),
    (
        doc(
            OPEN,
            ACT,
            BO,
            dict(attach(), hdr={"count": 2, "dbc_id": "d", "handle": "b", "dir": 1, "size": 4096}),
        ),
        "steps[3].hdr.count",
    ),
    (doc(OPEN, ACT, BO, attach(sem0={"cmd": 256})), "steps[3].entries[0].sem0.cmd"),
    (doc(OPEN, ACT, BO, attach(sem0={"bogus": 1})), "steps[3].entries[0].sem0.bogus"),
    (
        doc(OPEN, ACT, {"op": "nsp", "dbc_id": "d", "sem": {"index": 32, "cmd": 1}}),
        "steps[2].sem.index",
    ),
    (doc({"op": "dump", "dbc_id": 16}), "steps[0].dbc_id"),
    (doc({"op": "run", "schedule": [3]}), "steps[0].schedule[0]"),
    (doc({"op": "ddr_read", "addr": 0, "length": 2**30}), "steps[0].length"),
    (doc({"op": "ddr_write", "addr": 0, "hex": "abc"}), "steps[0].hex"),
    (doc(device={"num_dbc": 17}), "device.num_dbc"),
    (doc(device={"family": "aic9000"}), "device.family"),
    (doc(device={"sg_max_segment": 4097}), "device.sg_max_segment"),
    (doc(device={"policies": {"no-such-policy": "x"}}), "device.policies.no-such-policy"),
    (doc(device={"policies": {"sem-overflow": "explode"}}), "device.policies.sem-overflow"),
    (doc(device={"colour": "red"}), "device.colour"),
    (doc(OPEN, dict(ACT, workload={"kind": "telepathy"})), "steps[1].workload.kind"),
    (doc(OPEN, dict(ACT, workload={"kind": "echo", "in_addr": 0})), "steps[1].workload.out_addr"),
]


@pytest.mark.parametrize("bad,where", MALFORMED, ids=[w for _, w in MALFORMED])
def test_malformed_is_format_error_naming_the_field(bad: dict[str, Any], where: str) -> None:
    with pytest.raises(FormatError) as ei:
        parse(copy.deepcopy(bad))
    assert ei.value.where == where, ei.value


def test_binding_from_a_failed_step_is_a_format_error_at_run_time() -> None:
    d = doc(
        OPEN,
        {"op": "create_bo", "user": "u", "size": 0, "as": "b"},
        {"op": "detach_slice", "user": "u", "handle": "b"},
    )
    with pytest.raises(FormatError) as ei:
        run_scenario(d)
    assert ei.value.where == "steps[2].handle"


@pytest.mark.parametrize(
    "content", [b"", b"{", b"\xff\xfe", b"[]", b'{"format": NaN}', b"1" * 5000]
)
def test_malformed_file_is_exit_2_one_line(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "bad.json"
    f.write_bytes(content)
    p = cli("scenario", str(f))
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith("qaicmodel: malformed input:")


def test_missing_file_is_exit_2(tmp_path: Path) -> None:
    p = cli("scenario", str(tmp_path / "nope.json"))
    assert p.returncode == 2 and "nope.json" in p.stderr
