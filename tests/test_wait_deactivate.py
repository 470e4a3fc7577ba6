"""D1: a WAIT_BO asleep in a thread, then a MANAGE deactivate of its channel.

6.12 and 7.2 qaic_control.c encode_deactivate -> qaic_data.c disable_dbc: ``usr = NULL``
then ``synchronize_srcu(&dbc->ch_lock)``, which waits for the sleeping waiter (it holds
the channel's SRCU read side in qaic_wait_bo_ioctl).  Nothing completes the BO, so the
waiter sleeps to its timeout: -ETIMEDOUT, as measured on the real 7.2 driver
(tests/uml/test_guest_datapath.py, scenario wait_thread_deactivate)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from qaicmodel.scenario.cli import HOST_ALIASES
from qaicmodel.scenario.runner import run_scenario
from qaicmodel.spec.host.protocol import load_host

pytestmark = pytest.mark.machines

SCENARIO = Path(__file__).resolve().parent / "uml" / "scenarios" / "wait_thread_deactivate.json"


def _join_result(sc: dict, host: str, kernel: str) -> str:
    rep = run_scenario(sc, host_cls=load_host(HOST_ALIASES[host]), kernel=kernel)
    join = [r for r in rep.results if r["op"] == "join"]
    assert len(join) == 1, rep.results
    return str(join[0]["result"])


@pytest.mark.parametrize("kernel", ["6.12", "7.2"])
@pytest.mark.parametrize("host", ["spec", "impl"])
def test_waiter_times_out_when_its_channel_is_deactivated(host: str, kernel: str) -> None:
    sc = json.loads(SCENARIO.read_text())
    assert _join_result(sc, host, kernel) == "ETIMEDOUT"


@pytest.mark.parametrize("host", ["spec", "impl"])
def test_a_waiter_woken_before_the_deactivate_keeps_its_result(host: str) -> None:
    """The other order: the input's presync is dropped, so the device completes it and
    the waiter wakes (``run``) before the deactivate: WAIT_BO returns 0."""
    sc = copy.deepcopy(json.loads(SCENARIO.read_text()))
    steps = sc["steps"]
    att = next(s for s in steps if s["op"] == "attach_slice" and s["hdr"]["handle"] == "input")
    att["entries"][0]["sem0"] = {"val": 0, "index": 0, "presync": 0, "cmd": 0}
    i = next(k for k, s in enumerate(steps) if s["op"] == "wait")
    steps.insert(i + 1, {"op": "run"})
    steps[-1]["expect"] = "ok"
    assert _join_result(sc, host, "7.2") == "ok"
