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
from qaicmodel.spec.control import qsm_records as qsm

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
        assert f.workload in ("echo", "dma")
        d = f.as_dict(seed=3)
        assert d["workload"] == f.workload
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
        "nnc-dma-cont-after-done",
        "nnc-dma-cont-past-end",
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


def _split_load(b: FaultBoard, pages: int = 10, first: int = 6) -> list[nnc.Message]:
    """Drive the board like 7.2's driver with a load split over two messages (chunk id 5),
    then abort every continuation the device asks for after that (abort_dma_cont)."""
    mem = b.device.host_mem
    buf = mem.alloc(pages * 4096)
    size = pages * 4096
    seqs = iter(range(100))
    pairs = tuple((buf + i * 4096, 4096) for i in range(pages))

    def send(*trans: Any) -> nnc.Message:
        m = nnc.Message.build(trans, seq=next(seqs), handle=1, crc=False).pack()
        b._on_message(10, m)
        return nnc.decode(_sent(b)[-1], "d2h")

    cmd = qsm.command(qsm.Cmd.LOAD_ELF_REQ, 1, 0, size, 0)
    got = [
        send(
            nnc.Passthrough(nnc.TransType.PASSTHROUGH_TO_DEV, cmd),
            nnc.DmaXfer(tag=1, count=first, dma_chunk_id=5, pairs=pairs[:first]),
        )
    ]
    cont = got[-1].transactions[0]
    if isinstance(cont, nnc.DmaXferCont) and cont.xferred_size == first * 4096:
        got.append(
            send(nnc.DmaXfer(tag=1, count=pages - first, dma_chunk_id=5, pairs=pairs[first:]))
        )
    while isinstance(got[-1].transactions[0], nnc.DmaXferCont) and len(got) < 10:
        got.append(send(nnc.DmaXfer(tag=0, count=0, dma_chunk_id=5, pairs=())))
    return got


@pytest.mark.parametrize("seed", [0, 2])
def test_dma_cont_after_done_asks_t_times_then_answers(seed: int) -> None:
    t = F.trigger("nnc-dma-cont-after-done", seed)
    b = FaultBoard(seed=seed)
    b.arm("nnc-dma-cont-after-done")
    got = _split_load(b)
    # first chunk: the QSM's own continuation; last chunk and each abort but the t-th:
    # a needless continuation at the whole size; after the t-th abort the held answer,
    # renumbered to the abort's sequence number
    assert [type(m.transactions[0]).__name__ for m in got] == ["DmaXferCont"] * (1 + t) + [
        "Passthrough"
    ]
    assert [m.transactions[0].xferred_size for m in got[1:-1]] == [40960] * t
    assert [m.seq for m in got] == list(range(len(got)))
    assert qsm.parse_command(got[-1].transactions[0].data)[0] == qsm.Cmd.LOAD_ELF_RESP
    rec = b.disarm()["dma"]
    assert (rec["asks"], rec["aborts"], rec["sent"], rec["held_unsent"]) == (
        t,
        t,
        {"5": 40960},
        False,
    )


def test_dma_cont_past_end_answers_the_first_chunk_past_the_size() -> None:
    t = F.trigger("nnc-dma-cont-past-end", 0)
    b = FaultBoard(seed=0)
    b.arm("nnc-dma-cont-past-end")
    got = _split_load(b)  # the helper aborts the continuation it does not recognise
    first = got[0].transactions[0]
    assert isinstance(first, nnc.DmaXferCont) and first.xferred_size == 40960 + t
    rec = b.disarm()
    assert rec["fired"] and rec["dma"]["sent"] == {"5": 6 * 4096}
    assert rec["dma"]["aborts"] == 1 and rec["dma"]["closed_by"] == "DmaXfer"


def test_dma_faults_leave_other_messages_alone() -> None:
    """A one-message load (chunk id 0) and a status pass the DMA faults unchanged."""
    for name in ("nnc-dma-cont-after-done", "nnc-dma-cont-past-end"):
        b = FaultBoard(seed=0)
        b.arm(name)
        b._on_message(10, _status_request(0))
        buf = b.device.host_mem.alloc(4096)
        cmd = qsm.command(qsm.Cmd.LOAD_ELF_REQ, 1, 0, 4096, 0)
        m = nnc.Message.build(
            (
                nnc.Passthrough(nnc.TransType.PASSTHROUGH_TO_DEV, cmd),
                nnc.DmaXfer(tag=1, count=1, dma_chunk_id=0, pairs=((buf, 4096),)),
            ),
            seq=1,
            crc=False,
        ).pack()
        b._on_message(10, m)
        kinds = [type(nnc.decode(r, "d2h").transactions[0]).__name__ for r in _sent(b)]
        assert kinds == ["StatusFromDev", "Passthrough"]
        assert b.disarm()["fired"] == []


def test_split_pages_need_exactly_two_messages_on_7_2() -> None:
    """faultguest.py SPLIT_PAGES against 7.2 encode_addr_size_pairs: a 64 KiB wire message,
    its 32-byte header, the 32-byte LOAD_ELF passthrough (first message only), the 24-byte
    transaction header, 16 bytes a segment, 1 KiB kept free."""
    from qaicmodel.emu.faultguest import SPLIT_PAGES

    def fit(before: int) -> int:
        return (65536 - 32 - before - 24 - 1024) // 16  # the segments that keep 1 KiB free

    assert fit(32) == 4026 and fit(0) == 4028
    assert fit(32) < SPLIT_PAGES <= fit(32) + fit(0)
