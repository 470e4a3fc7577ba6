"""The device-fault table, the fault board without a kernel, and the CLI's argument errors
(``qaicmodel uml faults``; marker ``uml``)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qaicmodel.emu import faults as F
from qaicmodel.emu.faultboard import FaultBoard
from qaicmodel.emu.faultrun import classify, reproducer
from qaicmodel.emu.splat import Splat
from qaicmodel.errors import ArgumentError
from qaicmodel.spec.control import faults as cfaults
from qaicmodel.spec.control import nnc

pytestmark = pytest.mark.uml

ROOT = Path(__file__).resolve().parents[2]


def test_table_rows_are_complete() -> None:
    assert len(F.FAULTS) >= 14
    for name, f in F.FAULTS.items():
        assert f.name == name and f.what and f.source and f.choices
        assert f.recorded in F.OUTCOMES and f.recorded != "not-fired"
        assert set(f.also) <= set(F.OUTCOMES) - {"not-fired", f.recorded}
        assert f.layer in ("nnc", "dbc", "mhi", "ssr", "pci")
        if f.control is not None:
            assert f.control in cfaults.FAULTS, f"{name}: no model fault {f.control}"
        d = f.as_dict(seed=3)
        assert d["trigger"] in f.choices and "{t}" not in d["when"] + d["what"]


def test_every_kind_the_issue_names_is_in_the_table() -> None:
    layers = {f.layer for f in F.FAULTS.values()}
    assert layers == {"nnc", "dbc", "mhi", "ssr", "pci"}
    for name in (
        "nnc-trans-len-zero",
        "nnc-late-reply",
        "nnc-orphan-deactivate",
        "nnc-cont-unasked",
        "dbc-completion-error",
        "dbc-rsp-never-drains",
        "pci-link-down",
        "mhi-sys-err",
        "soc-reset",
        "ssr-crash",
        "nnc-slow-reply",
    ):
        assert name in F.FAULTS


def test_trigger_depends_on_name_and_seed_only() -> None:
    for name in F.FAULTS:
        got = [F.trigger(name, s) for s in range(40)]
        assert got == [F.trigger(name, s) for s in range(40)]
        assert set(got) <= set(F.fault(name).choices)
        if len(F.fault(name).choices) > 1:
            assert len(set(got)) > 1, f"{name}: the seed never changes the trigger"


@pytest.mark.parametrize("bad", ["nope", "", 3])
def test_unknown_fault_is_an_argument_error(bad: Any) -> None:
    with pytest.raises(ArgumentError):
        F.fault(bad)


def test_negative_seed_is_an_argument_error() -> None:
    with pytest.raises(ArgumentError):
        F.trigger("soc-reset", -1)


def _status_request(seq: int) -> bytes:
    return nnc.Message.build((nnc.StatusToDev(),), seq=seq, crc=False).pack()


def _sent(b: FaultBoard) -> list[bytes]:
    return list(b.mhi.channels[11].outbox)


def test_probe_reply_oversize_appends_a_passthrough_to_exchange_0() -> None:
    b = FaultBoard(seed=0)
    b.arm("nnc-probe-reply-oversize")
    b._on_message(10, _status_request(0))
    (reply,) = _sent(b)
    n = F.trigger("nnc-probe-reply-oversize", 0)
    _c, magic, seq, ln, count = struct.unpack_from("<IIIII", reply)
    assert (magic, seq, count, ln, len(reply)) == (nnc.MAGIC, 0, 2, 32 + 24 + n, 32 + 24 + n)
    p = nnc.parse(reply, "d2h")
    kinds = [type(t).__name__ for _o, t in p.transactions]
    assert kinds[0] == "StatusFromDev" and len(kinds) == 2
    rec = b.disarm()
    assert rec["fired"] and rec["requests"] == ["StatusToDev"]
    # the next exchange of the same episode would be untouched; a new arm starts over
    b.arm("nnc-trans-len-zero")
    b._on_message(10, _status_request(1))  # exchange 0 (the probe): passes
    b._on_message(10, _status_request(2))  # the workload's status: the target (trigger 1)
    first, second = _sent(b)
    assert struct.unpack_from("<I", first, 36)[0] == 24  # untouched StatusFromDev len
    assert struct.unpack_from("<I", second, 36)[0] == 0  # len 0 (trigger 1 at seed 0)
    assert F.trigger("nnc-trans-len-zero", 0) == 1


def test_late_reply_is_released_at_the_next_exchange() -> None:
    seed = next(s for s in range(50) if F.trigger("nnc-late-reply", s) == 1)
    b = FaultBoard(seed=seed)
    b.arm("nnc-late-reply")
    b._on_message(10, _status_request(0))
    b._on_message(10, _status_request(1))  # held back
    assert len(_sent(b)) == 1
    b._on_message(10, _status_request(2))  # the late one goes out first
    seqs = [struct.unpack_from("<I", r, 8)[0] for r in _sent(b)]
    assert seqs == [0, 1, 2]


def test_power_cycle_between_episodes_forgets_the_last_one() -> None:
    b = FaultBoard(seed=0)
    b.arm("pci-link-down")
    b.link_down = True
    assert b.bar_read(0, 0, 4) == 0xFFFFFFFF and b.actions() == []
    b.disarm()
    assert b.bar_read(0, 0, 4) == b.regs.read(0) != 0xFFFFFFFF
    assert not b.link_down and b.active is None and b.ee == "AMSS"


def test_episode_deadline_ends_the_run() -> None:
    from qaicmodel.errors import UmlError

    b = FaultBoard(seed=0, episode_s=0.0)
    b.arm("soc-reset")
    with pytest.raises(UmlError, match="did not end"):
        b.actions()


def test_classify_order() -> None:
    f = F.fault("mhi-sys-err")
    g = F.fault("nnc-trans-len-zero")
    fired = {"fired": ["x"], "trigger": 1}
    sp = [Splat(3, "kasan", "BUG: KASAN: slab-out-of-bounds in decode_message+0x1", "x")]
    ok = {"calls": [["status", "ok"]], "post": "ok"}
    assert classify(g, ok, fired, sp)[0] == "splat"
    assert classify(g, {"stuck": "unbind"}, fired, [])[0] == "hang"
    assert classify(g, None, fired, [])[0] == "hang"
    assert classify(g, ok, {"fired": [], "trigger": 1}, [])[0] == "not-fired"
    assert classify(g, {"calls": [["wait", "ETIMEDOUT"]]}, fired, [])[0] == "hang"
    assert classify(f, {"calls": [["wait", "ENODEV"]], "post": "ok"}, fired, [])[0] == "recovery"
    assert classify(g, {"calls": [["status", "EINVAL"]], "post": "ok"}, fired, []) == (
        "errno",
        "EINVAL on status; device usable after",
    )
    assert classify(g, ok, fired, [])[0] == "works"
    assert classify(g, {**ok, "echo_intact": False}, fired, [])[0] == "wrong-data"
    assert classify(g, ok, {**fired, "phantom_consumed": 5000}, [])[0] == "hang"


def test_reproducer_names_the_fault_and_seed() -> None:
    assert (
        reproducer("soc-reset", 7, "7.2", True) == "qaicmodel uml faults --fault soc-reset --seed 7"
    )
    assert reproducer("soc-reset", 7, "6.12", False).endswith("--kernel 6.12 --no-kasan")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qaicmodel", "uml", "faults", *args],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args",
    [["--fault", "no-such-fault"], ["--seed", "-1"], ["--timeout", "0"], ["--kernel", "5.0"]],
)
def test_cli_bad_arguments_exit_2_with_one_line(args: list[str]) -> None:
    p = _cli(*args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in p.stderr
    assert len([ln for ln in lines if not ln.startswith("usage:")]) == 1, p.stderr


def test_kasan_splat_names_the_function_of_the_report() -> None:
    from qaicmodel.emu import splat

    lines = [
        "[ 6.59] BUG: KASAN: slab-out-of-bounds in decode_message+0x416/0x1309",
        "[ 6.59] Read of size 4088 at addr 000000006428c028 by task python3/63",
        "[ 6.59] Call Trace:",
        "[ 6.59]  show_stack+0x1be/0x1cd",
    ]
    (s,) = splat.find(lines)
    assert (s.kind, s.where) == ("kasan", "decode_message+0x416/0x1309")


def test_cli_list_prints_the_table_without_booting() -> None:
    p = _cli("--list", "--json", "--seed", "5")
    assert p.returncode == 0, p.stderr
    import json

    got = json.loads(p.stdout)
    assert got["format"] == "qaicmodel-uml-fault-table/1" and got["seed"] == 5
    assert [d["name"] for d in got["faults"]] == list(F.FAULTS)
    for d in got["faults"]:
        assert d["trigger"] == F.trigger(d["name"], 5) and d["source"] and d["recorded"]
    text = _cli("--list", "--fault", "soc-reset")
    assert text.returncode == 0 and text.stdout.startswith("soc-reset ")


def test_uml_transport_warning_is_never_the_outcome() -> None:
    from qaicmodel.emu.faultrun import _real

    race = Splat(
        5,
        "warning",
        "WARNING: arch/um/drivers/virtio_pcidev.c:188 at x",
        "virtio_pcidev_send_cmd+0x1/0x2",
    )
    kasan = Splat(9, "kasan", "BUG: KASAN: slab-out-of-bounds in decode_message+0x1/0x2", "x")
    assert _real([race, kasan]) == ([kasan], [race])
    assert _real([race]) == ([], [race])


def test_disarm_powers_the_device_off_and_on() -> None:
    """Nothing the unbound driver left queued may run into its freed memory afterwards."""
    b = FaultBoard(seed=0)
    b.arm("pci-link-down")
    b.workloads[0] = object()  # an NSP workload still holding work
    b.mhi.soc_reset_pending = False
    b.disarm()
    assert b.workloads == {} and not b.qsm.act
    assert all(not ch.active for ch in b.device.ch)
    assert b.mhi.want_ready and b.ee == "AMSS"
