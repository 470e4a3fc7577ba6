"""Scenario control steps (manage, control_fault, ras, reset), the replaceable control host
(``--control-host``) and the control plane's verdicts in step results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qaicmodel.errors import ArgumentError, FormatError
from qaicmodel.scenario.format import FORMAT, parse
from qaicmodel.scenario.runner import run_scenario
from qaicmodel.spec.control import manage, nnc
from qaicmodel.spec.control.protocol import load_control_host

pytestmark = pytest.mark.unit

STATUS = manage.usr_status().hex()


def doc(*steps: dict) -> dict:
    return {"format": FORMAT, "steps": [{"op": "open", "user": "a"}, *steps]}


def results(*steps: dict, **kw) -> list[dict]:
    rep = run_scenario(doc(*steps), **kw)
    assert rep.first_mismatch is None, rep.text()
    return rep.results


def test_manage_step_copies_back_the_reply() -> None:
    r = results({"op": "manage", "user": "a", "hex": STATUS})[-1]
    assert r["result"] == "ok" and r["count"] == 1
    (t,) = r["transactions"]
    assert (t["type"], t["major"], t["minor"]) == (nnc.TransType.STATUS_FROM_DEV, 5, 0)


@pytest.mark.parametrize(
    ("step", "errno"),
    [
        ({"hex": manage.usr_status(4).hex()}, "EINVAL"),  # hdr.len < 8
        ({"hex": STATUS, "len": 4097}, "EINVAL"),
        ({"hex": STATUS, "len": 16}, "EFAULT"),  # len past the buffer given
        ({"hex": STATUS, "count": 0}, "EINVAL"),
        ({"hex": STATUS, "count": 513}, "EINVAL"),
        ({"hex": manage.usr_deactivate(3).hex()}, "EPERM"),
        ({"hex": manage.usr_deactivate(16).hex()}, "EINVAL"),
        ({"hex": "ff00000008000000"}, "EINVAL"),  # unknown type
    ],
)
def test_manage_step_errnos(step: dict, errno: str) -> None:
    r = results({"op": "manage", "user": "a", "expect": errno, **step})[-1]
    assert r["result"] == errno and "hex" not in r


def test_manage_activate_binds_nothing_but_owns_the_channel() -> None:
    rs = results(
        {"op": "manage", "user": "a", "hex": manage.usr_activate(16).hex()},
        {"op": "deactivate", "user": "a", "dbc_id": 0},
    )
    (t,) = rs[1]["transactions"]
    assert t["dbc_id"] == 0 and rs[2]["result"] == "ok"


def test_expect_hex_mismatch_is_a_mismatch() -> None:
    rep = run_scenario(doc({"op": "manage", "user": "a", "hex": STATUS, "expect_hex": "00"}))
    assert rep.results[-1]["hex_mismatch"] is True
    assert rep.first_mismatch is not None and rep.first_mismatch["result"] == "hex differs"


def test_control_fault_step_and_verdicts() -> None:
    rs = results(
        {"op": "activate", "user": "a", "queue_size": 16, "as": "ch"},
        {"op": "control_fault", "fault": "nnc-no-reply"},
        {"op": "activate", "user": "a", "queue_size": 16, "expect": "ETIMEDOUT"},
    )
    (v,) = rs[-1]["control_verdicts"]
    assert v["rule"] == "CTRL-QSM-ONLY" and v["state"]["faults"] == ["nnc-no-reply"]


def test_cli_control_fault_and_ras_and_reset() -> None:
    rs = results(
        {"op": "ras", "err_type": 1},
        {"op": "reset"},
        {"op": "manage", "user": "a", "hex": STATUS, "expect": "ETIMEDOUT"},
        control_faults=["nnc-no-reply:0:3"],  # exchanges 0-2: the probes of three boots
    )
    assert rs[1]["ue_count"] == 1 and rs[1]["resets"] == 1
    assert rs[2]["dev_state"] == "ONLINE"


def test_sahara_fault_before_the_first_boot() -> None:
    rep = run_scenario(
        doc(
            {"op": "control_fault", "fault": "sahara-read-too-large"},
            {"op": "activate", "user": "a", "queue_size": 16, "expect": "ENODEV"},
        )
    )
    assert rep.first_mismatch is None, rep.text()


@pytest.mark.parametrize(
    ("step", "where"),
    [
        ({"op": "control_fault", "fault": "nope"}, "steps[1].fault"),
        ({"op": "control_fault", "fault": "nnc-no-reply", "seed": -1}, "steps[1].seed"),
        ({"op": "manage", "user": "a", "hex": "0"}, "steps[1].hex"),
        ({"op": "manage", "user": "a", "hex": STATUS, "len": 1 << 32}, "steps[1].len"),
        ({"op": "ras", "err_type": "x"}, "steps[1].err_type"),
        ({"op": "reset", "user": "a"}, "steps[1].user"),
    ],
)
def test_control_steps_are_validated(step: dict, where: str) -> None:
    with pytest.raises(FormatError) as e:
        parse(doc(step))
    assert e.value.where == where


# ---------------------------------------------------------------------------
# replaceable control host


class NoTerminate(manage.ControlClient):
    """Broken: close releases locally but never tells the device (no TERMINATE)."""

    def close(self, usr: manage.User) -> None:
        for i, d in enumerate(self.dbc):
            if d.usr is usr:
                self.release_dbc(i)
        usr.closed = True
        del self.users[usr.handle]


class AlwaysCrc(manage.ControlClient):
    """Correct, another shape: computes the CRC on every message, negotiated or not."""

    def _send(self, usr, trans, *, partition=None):
        self.gen_crc = True
        return super()._send(usr, trans, partition=partition)


class BadSeq(manage.ControlClient):
    """Broken: reuses sequence number 7 for every message."""

    def _send(self, usr, trans, *, partition=None):
        self.next_seq = 7
        return super()._send(usr, trans, partition=partition)


LIFE = (
    {"op": "activate", "user": "a", "queue_size": 16, "as": "ch"},
    {"op": "manage", "user": "a", "hex": STATUS},
    {"op": "close", "user": "a"},
)


def _verdicts(rs: list[dict]) -> list[str]:
    return [v["rule"] for r in rs for v in r.get("control_verdicts", ())]


def test_a_correct_control_host_of_another_shape_conforms() -> None:
    assert _verdicts(results(*LIFE, control_host=AlwaysCrc)) == []
    assert _verdicts(results(*LIFE)) == []


def test_broken_control_hosts_get_verdicts() -> None:
    assert "CTRL-QSM-ONLY" in _verdicts(results(*LIFE, control_host=NoTerminate))
    assert "CTRL-SEQ" in _verdicts(results(*LIFE, control_host=BadSeq))


def test_load_control_host_errors() -> None:
    for ref in (
        "nocolon",
        "qaicmodel.nope:X",
        "qaicmodel.spec.control.manage:Nope",
        "json:JSONDecoder",
    ):
        with pytest.raises(ArgumentError):
            load_control_host(ref)
    assert load_control_host("qaicmodel.spec.control.manage:ControlClient") is manage.ControlClient


class Exploding(manage.ControlClient):
    def __init__(self, *a, **kw) -> None:
        raise RuntimeError("no")


def test_a_failing_control_host_constructor_is_an_argument_error() -> None:
    with pytest.raises(ArgumentError, match="constructor failed"):
        run_scenario(doc({"op": "activate", "user": "a", "queue_size": 16}), control_host=Exploding)


@pytest.mark.cli
def test_cli_control_host_from_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "myctl.py").write_text(
        "from qaicmodel.spec.control.manage import ControlClient\n"
        "class Mine(ControlClient):\n    pass\n"
    )
    f = tmp_path / "s.json"
    f.write_text(json.dumps(doc(*LIFE)))
    cmd = [sys.executable, "-m", "qaicmodel", "scenario", str(f), "--control-host", "myctl:Mine"]
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(
        [*cmd[:-2], "--control-fault", "nnc-nope"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and "unknown control fault" in p.stderr
