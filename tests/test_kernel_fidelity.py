"""Issue #14: fidelity to the accel/qaic driver of a named kernel version (6.12, 7.2).

One test (or one parametrised family) per divergence of the issue, run for every kernel
version it concerns; the driver facts are cited at each test (file, function, version).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from qaicmodel.errors import ArgumentError
from qaicmodel.spec.control import manage, nnc, qsm, ssr
from qaicmodel.spec.control.plane import ControlPlane
from qaicmodel.spec.control.ssr import Cmd, DbcState, Event
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.host import kernels
from qaicmodel.spec.host.kernels import KernelVersion
from qaicmodel.spec.policies import Policies

KERNELS = ["6.12", "7.2", "upstream"]
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "echo_inference.json"


def dev_k(kernel: str, **kw: Any) -> Device:
    d = Device(**kw)
    d.kernel = kernel  # type: ignore[attr-defined]
    return d


def cp_k(kernel: str, host: Any = None, **kw: Any) -> ControlPlane:
    dev = (
        host.device if host is not None else dev_k(kernel, policies=kw.pop("policies", Policies()))
    )
    return ControlPlane(dev, host, **kw)


def run(cp: ControlPlane, u: manage.User, *trans: bytes) -> manage.ManageResult:
    return cp.manage(u, *manage.user_message(*trans))


def has_ssr(kernel: str) -> bool:
    return kernels.parse(kernel) != KernelVersion.V6_12


# ---------------------------------------------------------------------------
# the kernel-version setting itself


def test_kernel_versions_and_table() -> None:
    assert kernels.parse(None) is kernels.DEFAULT is kernels.UPSTREAM is KernelVersion.V7_2
    assert kernels.parse("upstream") is KernelVersion.V7_2
    assert kernels.parse("6.12") is KernelVersion.V6_12
    with pytest.raises(ArgumentError):
        kernels.parse("6.13")
    for row in kernels.TABLE.values():
        assert set(row.values) == set(KernelVersion) == set(row.sources), row.id
        for k, src in row.sources.items():
            assert src.startswith(k.value), (row.id, src)  # every source names its version
    assert kernels.behaviour("6.12", "manage-activate-status-limit") == 4096
    assert kernels.behaviour("7.2", "manage-activate-status-limit") == 65536


def test_scenario_device_kernel_and_cli_option(tmp_path: Path) -> None:
    from qaicmodel.scenario.format import load
    from qaicmodel.scenario.runner import Runner

    sc = load(
        {
            "format": "qaicmodel-scenario/1",
            "device": {"kernel": "6.12"},
            "steps": [{"op": "open", "user": "a"}],
        }
    )
    assert sc.device.kernel == "6.12"
    r = Runner(sc.device)
    assert kernels.of(r.device) is KernelVersion.V6_12
    assert kernels.of(r.host) is KernelVersion.V6_12
    from qaicmodel.errors import FormatError

    with pytest.raises(FormatError):
        load({"format": "qaicmodel-scenario/1", "device": {"kernel": "5.4"}, "steps": []})
    from qaicmodel import cli

    p = tmp_path / "s.json"
    p.write_text(
        json.dumps({"format": "qaicmodel-scenario/1", "steps": [{"op": "open", "user": "a"}]})
    )
    assert cli.main(["scenario", str(p), "--kernel-version", "6.12"]) == 0
    with pytest.raises(SystemExit) as e:
        cli.main(["scenario", str(p), "--kernel-version", "9.9"])
    assert e.value.code == 2


# ---------------------------------------------------------------------------
# item 1: activate/status ENOSPC bound (6.12: 4 KiB; 7.2: the 64 KiB wire limit)


@pytest.mark.parametrize("kernel", KERNELS)
def test_item1_activate_after_a_long_passthrough(kernel: str) -> None:
    """qaic_control.c encode_activate: msg_hdr_len + 40 > QAIC_MANAGE_MAX_MSG_LENGTH (6.12)
    / QAIC_MANAGE_WIRE_MSG_LENGTH (7.2) -> -ENOSPC.  24 + 4072 + 40 = 4136 bytes."""
    cp = cp_k(kernel)
    u = cp.open()
    r = run(cp, u, manage.usr_passthrough(bytes(4064)), manage.usr_activate(8))
    if kernel == "6.12":
        assert r.result == "ENOSPC"
    else:
        assert r.result == "ok", r
        t = [
            x
            for x in manage.parse_user_result(r.data, r.count)
            if x["type"] == nnc.TransType.ACTIVATE_FROM_DEV
        ]
        assert t and t[0]["status"] == 0 and cp.client.dbc[t[0]["dbc_id"]].in_use


@pytest.mark.parametrize("kernel", KERNELS)
def test_item1_status_past_4k(kernel: str) -> None:
    """qaic_control.c encode_status: msg_hdr_len + hdr.len (24 + 4096) against 4 KiB (6.12)
    or 64 KiB (7.2).  In 7.2 the message goes out (its wire length claims the user's
    4096 bytes, 8 are sent) and QSM drops it: ETIMEDOUT."""
    cp = cp_k(kernel)
    u = cp.open()
    seq = cp.client.next_seq
    r = cp.manage(u, 4096, 1, manage.usr_status(4096) + bytes(4088))
    if kernel == "6.12":
        assert r.result == "ENOSPC" and cp.client.next_seq == seq
    else:
        assert r.result == "ETIMEDOUT" and cp.client.next_seq == seq + 1


# ---------------------------------------------------------------------------
# item 2: SSR receive -- dropped only for hdr.len > 32 or dbc_id >= num_dbc (7.2);
# 6.12 has no SSR client at all


def _host_ssr(**kw: Any) -> tuple[ssr.HostSsr, list[Any]]:
    calls: list[Any] = []
    h = ssr.HostSsr(
        num_dbc=16,
        release=lambda d: calls.append(("release", d)),
        set_state=lambda d, s: calls.append(("state", d, s)),
        get_state=kw.get("get_state", lambda d: DbcState.ASSIGNED),
        soc_reset=lambda: calls.append(("reset",)),
    )
    return h, calls


def test_item2_sentinel_dbc_is_dropped() -> None:
    """7.2 qaic_ssr.c ssr_worker: hdr->dbc_id >= qdev->num_dbc -> out (no reply, no
    state change); 0xFFFFFFFF (the host's own sentinel) is no exception."""
    h, calls = _host_ssr()
    assert h.on_message(ssr.event(ssr.SENTINEL, Event.BEFORE_SHUTDOWN).pack()) == []
    assert calls == [] and h.ssr_dbc == ssr.SENTINEL


def test_item2_length_not_matching_the_layout_is_handled() -> None:
    """7.2 ssr_worker reads the fields from its 32-byte receive buffer whatever the
    message's length: a 20-byte SSR_EVENT (hdr.len 20 <= 32) is handled, and a 12-byte
    one reads its event from what the previous message left in the buffer."""
    h, calls = _host_ssr()
    long_ev = ssr.SsrMsg(Cmd.SSR_EVENT, 2, {"event": 0x40}, len=20).pack() + bytes(4)
    (r,) = h.on_message(long_ev)
    m = ssr.parse(r)[0]
    assert m is not None and m["event"] == 0x40
    short = struct.pack("<III", Cmd.SSR_EVENT, 12, 2)
    (r,) = h.on_message(short)
    m = ssr.parse(r)[0]
    assert m is not None and m["event"] == 0x40 and m.dbc_id == 2  # the stale event
    assert calls == []


@pytest.mark.parametrize("kernel", KERNELS)
def test_item2_ssr_per_kernel(kernel: str) -> None:
    """6.12 has no qaic_ssr.c: nobody receives QAIC_SSR, the device's BEFORE_SHUTDOWN is
    never answered and the host keeps the channel; 7.2 runs every stage."""
    cp = cp_k(kernel)
    u = cp.open()
    d = cp.activate(u, 8)
    events = cp.ssr(d)
    if has_ssr(kernel):
        assert events[-1] == Event.AFTER_POWER_UP and not cp.client.dbc[d].in_use
        assert cp.dbc_state(d) == DbcState.IDLE
    else:
        assert events == [Event.BEFORE_SHUTDOWN]
        assert [k for k, _ in cp.ssr_log] == ["undelivered"]
        assert cp.client.dbc[d].in_use and cp.owner(d) == u.handle  # host never learns
        assert not cp.device.ch[d].active  # the device dropped the channel


# ---------------------------------------------------------------------------
# item 3: during a crashdump the buffer decides, not the command (7.2 ssr_dump_worker)


def _in_dump() -> tuple[ssr.HostSsr, list[Any]]:
    h, calls = _host_ssr(get_state=lambda d: DbcState.BEFORE_POWER_UP)
    h.on_message(ssr.event(1, Event.BEFORE_SHUTDOWN).pack())  # ssr_dbc = 1
    info = ssr.SsrMsg(Cmd.DEBUG_TRANSFER_INFO, 1, {"tbl_addr": 0x1000, "tbl_len": 64})
    out = h.on_message(info.pack())
    assert ssr.decode(out[0])["ret"] == 0 and ssr.decode(out[1]).cmd == Cmd.MEMORY_READ
    calls.clear()
    return h, calls


def test_item3_memory_read_rsp_for_a_bad_dbc_resets() -> None:
    """ssr_dump_worker: hdr.dbc_id != qdev->ssr_dbc -> reset_device (mhi_soc_reset)."""
    h, calls = _in_dump()
    bad = ssr.SsrMsg(Cmd.MEMORY_READ_RSP, 16, {"resv": 0}, bytes(64)).pack()
    assert h.on_message(bad) == []
    assert calls == [("reset",)] and h.dump is None


def test_item3_event_mid_dump_frees_the_dump_and_resets() -> None:
    """While the dump runs only the crashdump buffer is queued: an SSR_EVENT lands there,
    hdr.cmd != MEMORY_READ_RSP -> free_dump_info -> reset_device (no NACK)."""
    h, calls = _in_dump()
    assert h.on_message(ssr.event(1, Event.AFTER_POWER_UP).pack()) == []
    assert calls == [("reset",)] and h.dump is None


def test_item3_after_power_up_after_done_is_nacked() -> None:
    """Once DEBUG_TRANSFER_DONE is sent the 32-byte buffer is queued again (send_xfer_done)
    while dump_info still exists: AFTER_POWER_UP is NACKed (ssr_worker)."""
    h, calls = _in_dump()
    entry = struct.pack("<QQQ20s20s", 0, 0x2000, 16, b"d", b"f")
    (rd,) = h.on_message(ssr.SsrMsg(Cmd.MEMORY_READ_RSP, 1, {"resv": 0}, entry).pack())
    assert ssr.decode(rd).cmd == Cmd.MEMORY_READ
    (done,) = h.on_message(ssr.SsrMsg(Cmd.MEMORY_READ_RSP, 1, {"resv": 0}, bytes(16)).pack())
    assert ssr.decode(done).cmd == Cmd.DEBUG_TRANSFER_DONE
    (nack,) = h.on_message(ssr.event(1, Event.AFTER_POWER_UP).pack())
    assert ssr.decode(nack)["event"] == Event.NACK and h.dump is None
    assert ("reset",) not in calls and h.ssr_dbc == 1


def test_item3_memory_read_rsp_outside_a_dump_is_ignored() -> None:
    """No dump running: the 32-byte buffer is queued; a MEMORY_READ_RSP of <= 32 bytes is a
    command ssr_worker does not handle (default: ignored) -- no reset."""
    h, calls = _host_ssr()
    msg = ssr.SsrMsg(Cmd.MEMORY_READ_RSP, 1, {"resv": 0}, bytes(8)).pack()
    assert h.on_message(msg) == [] and calls == []


def test_item3_end_to_end_event_mid_dump_resets_the_soc() -> None:
    cp = cp_k("7.2", policies=Policies({"ssr-crashdump": "offer"}))
    u = cp.open()
    d = cp.activate(u, 8)
    real = cp.qsm.ssr_receive

    def event_instead_of_data(data: bytes) -> list[bytes]:
        out = real(data)
        if ssr.decode(data).cmd == Cmd.MEMORY_READ:
            return [ssr.event(d, Event.AFTER_POWER_UP).pack()]
        return out

    cp.qsm.ssr_receive = event_instead_of_data  # type: ignore[method-assign]
    cp.ssr(d)
    assert cp.resets == 1 and cp.check() == []


# ---------------------------------------------------------------------------
# items 4, 5: the data path sees disable/enable/SSR; WAIT blocks and wakes


def _steps(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    ex = json.loads(EXAMPLE.read_text())
    return ex["steps"][:8] + list(extra)


def _scenario(
    kernel: str, steps: list[dict[str, Any]], policies: dict[str, str] | None = None
) -> Any:
    from qaicmodel.scenario.runner import run_scenario

    dev: dict[str, Any] = {"kernel": kernel}
    if policies:
        dev["policies"] = policies
    return run_scenario({"format": "qaicmodel-scenario/1", "device": dev, "steps": steps})


def test_item4_hosts_implement_the_control_hooks() -> None:
    from qaicmodel.impl.host import ImplHost
    from qaicmodel.spec.host import SpecHost

    for cls in (SpecHost, ImplHost):
        for name in ("dbc_disable", "dbc_enable", "dbc_ssr"):
            assert callable(getattr(cls, name, None)), (cls.__name__, name)


@pytest.mark.parametrize("kernel", KERNELS)
def test_item4_failed_deactivate_leaves_the_channel_disabled(kernel: str) -> None:
    """qaic_control.c encode_deactivate -> qaic_data.c disable_dbc (usr = NULL) before the
    message is sent; the device never answers (ETIMEDOUT): EXECUTE and WAIT see
    dbc->usr != usr -> -EPERM (both versions)."""
    from qaicmodel.spec.host import SpecHost

    host = SpecHost(dev_k(kernel))
    cp = cp_k(kernel, host)
    uid = host.open()
    u = cp.user_for(uid)
    dbc = cp.activate(u, 8)
    h = host.create_bo(uid, 4096)
    from qaicmodel.spec.host import uapi

    host.attach_slice(
        uid,
        uapi.AttachSliceHdr(count=1, dbc_id=dbc, handle=h, dir=1, size=4096),
        [uapi.SliceEntry(size=4096, offset=0, dev_addr=0x100000)],
    )
    cp.qsm.receive = lambda data: []  # type: ignore[method-assign]
    r = run(
        cp,
        u,
        manage.usr_passthrough(qsm.command(qsm.Cmd.DEACTIVATE_REQ, dbc)),
        manage.usr_deactivate(dbc),
    )
    assert r.result == "ETIMEDOUT"
    from qaicmodel.errors import IoctlError

    with pytest.raises(IoctlError) as e:
        host.execute(uid, dbc, [(h, 1)])
    assert e.value.name == "EPERM"
    with pytest.raises(IoctlError) as e:
        host.wait_check(uid, dbc, h, 10)
    assert e.value.name == "EPERM"


@pytest.mark.parametrize("kernel", KERNELS)
def test_item4_refused_deactivate_reenables_for_the_caller(kernel: str) -> None:
    """decode_deactivate with status != 0 -> enable_dbc(qdev, dbc_id, usr): the *caller*
    becomes the channel's user on the data path too (policy from-dev-nonzero)."""
    from qaicmodel.spec.host import SpecHost

    host = SpecHost(
        dev_k(kernel, policies=Policies({"nnc-deactivate-refusal": "from-dev-nonzero"}))
    )
    cp = cp_k(kernel, host)
    a, b = host.open(), host.open()
    dbc = cp.activate(cp.user_for(a), 8)
    r = run(cp, cp.user_for(b), manage.usr_passthrough(qsm.command(qsm.Cmd.DEACTIVATE_REQ, dbc)))
    assert r.result == "ECANCELED"
    assert host.ch[dbc].usr == b


def _wait_thread_steps(between: list[dict[str, Any]], expect: str) -> list[dict[str, Any]]:
    return _steps(
        {
            "op": "wait",
            "user": "app",
            "dbc_id": "dbc",
            "handle": "output",
            "timeout_ms": 1000,
            "thread": "w",
        },
        *between,
        {"op": "join", "thread": "w", "expect": expect},
    )


@pytest.mark.parametrize("kernel", KERNELS)
def test_item5_wait_asleep_at_deactivate_times_out(kernel: str) -> None:
    """D1 (measured on the real 7.2 driver): encode_deactivate -> disable_dbc sets usr =
    NULL, then synchronize_srcu waits for the waiter asleep in qaic_wait_bo_ioctl (it holds
    the channel's SRCU read side); nothing completes its BO, so it times out: -ETIMEDOUT
    (6.12 and 7.2).  The EPERM of ``if (!dbc->usr)`` needs a wake after ``usr = NULL``."""
    rep = _scenario(
        kernel,
        _wait_thread_steps([{"op": "deactivate", "user": "app", "dbc_id": "dbc"}], "ETIMEDOUT"),
    )
    assert rep.first_mismatch is None, rep.results


@pytest.mark.parametrize("kernel", KERNELS)
def test_item5_wait_woken_by_ssr(kernel: str) -> None:
    """7.2: BEFORE_SHUTDOWN -> qaic_dbc_enter_ssr (ssr_dbc = D, release_dbc); the waiter
    wakes with dbc->usr NULL and ssr_dbc == D: -EPIPE is the last word.  The scenario's
    ssr step runs every stage before the waiter is scheduled, so the SSR is over by then
    (ssr_dbc back to the sentinel): EPERM; EPIPE needs the wake inside the SSR, checked
    below.  6.12: no SSR client, the BO never completes: ETIMEDOUT."""
    want = "EPERM" if has_ssr(kernel) else "ETIMEDOUT"
    rep = _scenario(kernel, _wait_thread_steps([{"op": "ssr", "dbc_id": "dbc"}], want))
    assert rep.first_mismatch is None, rep.results


def test_item5_wait_woken_inside_ssr_is_epipe() -> None:
    from qaicmodel.spec.host import SpecHost, uapi

    host = SpecHost(dev_k("7.2"))
    cp = cp_k("7.2", host)
    uid = host.open()
    dbc = cp.activate(cp.user_for(uid), 8)
    h = host.create_bo(uid, 4096)
    host.attach_slice(
        uid,
        uapi.AttachSliceHdr(count=1, dbc_id=dbc, handle=h, dir=1, size=4096),
        [uapi.SliceEntry(size=4096, offset=0, dev_addr=0x100000)],
    )
    host.execute(uid, dbc, [(h, 1)])
    tid = host.wait_begin(uid, dbc, h, 1000)
    assert not any(a.kind == "wake" for a in host.enabled())  # blocked
    cp.host_ssr.on_message(ssr.event(dbc, Event.BEFORE_SHUTDOWN).pack())
    wakes = [a for a in host.enabled() if a.kind == "wake"]
    assert wakes and wakes[0].arg == tid
    host.step(wakes[0])
    err = host.wait_result(tid)
    assert err is not None and err.name == "EPIPE"


# ---------------------------------------------------------------------------
# item 6: a short activate transaction reads on into the next transaction


@pytest.mark.parametrize("kernel", KERNELS)
def test_item6_short_activate_reads_the_next_transaction(kernel: str) -> None:
    """qaic_control.c encode_activate reads in_trans->queue_size/eventfd/options/pad (16
    bytes after the header) whatever hdr.len is, and advances by hdr.len: an 8-byte
    activate followed by a status takes queue_size 12 (the status's type), eventfd 8
    (its len), options and pad 0 (the kzalloc'd rest of the 4 KiB copy)."""
    cp = cp_k(kernel)
    u = cp.open()
    r = run(cp, u, struct.pack("<II", nnc.TransType.ACTIVATE_FROM_USR, 8), manage.usr_status())
    assert r.result == "ok", r
    act = [
        t for t in nnc.decode(cp.client.sent[-1]).transactions if isinstance(t, nnc.ActivateToDev)
    ]
    assert act and act[0].req_q_size == 12
    assert any(v.rule == "DRV-MANAGE-SHORT-TRANS" for v in cp.client.violations)


# ---------------------------------------------------------------------------
# item 7: a reply that matches no waiter (resp_worker -> orphaned deactivate)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("status", [0, 0xFFFFFFF5])
def test_item7_orphaned_deactivate_releases(kernel: str, status: int) -> None:
    """6.12 and 7.2 qaic_control.c resp_worker: not found -> decode_message(qdev, NULL, msg,
    NULL, NULL, true) -> decode_deactivate with usr NULL: release_dbc whatever the status
    (7.2 also sets the state IDLE).  The reply is still dropped (deliver returns False)."""
    cp = cp_k(kernel)
    u = cp.open()
    dbc = cp.activate(u, 8)
    orphan = nnc.Message.build([nnc.DeactivateFromDev(status, dbc)], seq=0xABCD).pack()
    assert cp.client.deliver(orphan) is False
    assert not cp.client.dbc[dbc].in_use and cp.owner(dbc) is None
    if has_ssr(kernel):
        assert cp.dbc_state(dbc) == DbcState.IDLE


@pytest.mark.parametrize("kernel", KERNELS)
def test_item7_orphan_skips_other_transactions(kernel: str) -> None:
    """orphaned_deactivate: every transaction but DEACTIVATE_FROM_DEV is skipped, an
    ACTIVATE_FROM_DEV naming a channel assigns nothing."""
    cp = cp_k(kernel)
    u = cp.open()
    dbc = cp.activate(u, 8)
    orphan = nnc.Message.build(
        [nnc.ActivateFromDev(0, 5), nnc.DeactivateFromDev(0, dbc)], seq=0xABCD
    ).pack()
    cp.client.deliver(orphan)
    assert not cp.client.dbc[dbc].in_use and not cp.client.dbc[5].in_use


# ---------------------------------------------------------------------------
# item 8: a message refused for lack of ring room leaves a sequence gap


@pytest.mark.parametrize("kernel", KERNELS)
def test_item8_no_ring_room_leaves_a_sequence_gap(kernel: str) -> None:
    """qaic_manage_msg_xfer takes next_seq_num++ before msg_xfer's
    mhi_get_free_desc_count loop (QAIC_MHI_RETRY_MAX tries) -> -EAGAIN: nothing is sent,
    the number is gone (6.12 and 7.2)."""
    cp = cp_k(kernel)
    u = cp.open()
    run(cp, u, manage.usr_status())
    s0 = nnc.decode(cp.client.sent[-1]).seq
    cp.client.tx_free = 0
    r = run(cp, u, manage.usr_status())
    assert r.result == "EAGAIN"
    cp.client.tx_free = None
    assert run(cp, u, manage.usr_status()).result == "ok"
    s2 = nnc.decode(cp.client.sent[-1]).seq
    assert s2 == s0 + 2  # a gap of one on the wire
    assert nnc.seq_follows(s0, s2) and nnc.seq_follows(0xFFFFFFFF, 1)
    assert not nnc.seq_follows(s2, s2) and not nnc.seq_follows(s2, s0)


def test_item8_checker_accepts_a_gap() -> None:
    from qaicmodel.oracle.check import check
    from qaicmodel.oracle.trace import dumps, parse_jsonl

    tx5 = nnc.Message.build([nnc.StatusToDev()], seq=5).pack()
    tx7 = nnc.Message.build([nnc.StatusToDev()], seq=7).pack()
    rx7 = nnc.Message.build([nnc.StatusFromDev()], seq=7).pack()
    evs = [
        {"ev": "nnc_tx", "hex": tx5.hex()},
        {"ev": "nnc_tx", "hex": tx7.hex()},
        {"ev": "nnc_rx", "hex": rx7.hex()},
    ]
    rep = check(parse_jsonl(dumps(None, evs)))
    assert rep.violation is None or rep.violation.rule != "HOST-NNC-SEQ", rep.text()
    # a repeated number is still a violation (the rule can fail)
    rep = check(parse_jsonl(dumps(None, [evs[0], evs[0]])))
    assert rep.violation is not None and rep.violation.rule == "HOST-NNC-SEQ", rep.text()


# ---------------------------------------------------------------------------
# item 9: partial execute, resize 0, a slice of more than one element


def test_item9_oracle_flags_a_bo_that_can_never_complete() -> None:
    """qaic_data.c copy_partial_exec_reqs (6.12 and 7.2): resize 0 -> first_n 0, the last
    element is a copy of reqs[nents-1] with cmd = GENMASK(7, 2) & reqs[0].cmd -- reqs[0]
    of a slice of two or more elements has no completion bit, so no response ever comes
    and WAIT_BO times out.  The oracle must say so (CONF-NEVER-COMPLETES)."""
    from qaicmodel.oracle.pair import INVARIANTS, Failure, Pair
    from qaicmodel.scenario.format import load
    from qaicmodel.spec.dbc.config import DeviceConfig
    from qaicmodel.spec.host import SpecHost

    assert "CONF-NEVER-COMPLETES" in INVARIANTS
    cfg = DeviceConfig(sg_max_segment=4096)
    ex = json.loads(EXAMPLE.read_text())
    steps = [
        ex["steps"][0],
        dict(ex["steps"][1], workload=None),
        {"op": "create_bo", "user": "app", "size": 8192, "as": "b"},
        {
            "op": "attach_slice",
            "user": "app",
            "hdr": {"count": 1, "dbc_id": "dbc", "handle": "b", "dir": 1, "size": 8192},
            "entries": [{"size": 8192, "offset": 0, "dev_addr": "0x100000"}],
        },
        {
            "op": "partial_execute",
            "user": "app",
            "dbc_id": "dbc",
            "entries": [{"handle": "b", "resize": 0}],
        },
    ]
    steps[1].pop("workload")
    sc = load({"format": "qaicmodel-scenario/1", "device": cfg.as_dict(), "steps": steps})
    pair = Pair(sc.device, None, SpecHost, SpecHost)
    for st in sc.steps:  # noted, not raised: the episode goes on (a driver finding)
        pair.step(st)
    assert len(pair.noted) == 1 and isinstance(pair.noted[0], Failure)
    assert pair.noted[0].invariant == "CONF-NEVER-COMPLETES"
    assert pair.noted[0].op == "partial_execute"


# ---------------------------------------------------------------------------
# the other rows of kernels.TABLE


@pytest.mark.parametrize("kernel", KERNELS)
def test_ras_ue_resets_only_with_a_ras_client(kernel: str) -> None:
    """7.2 qaic_ras.c: a UE resets the SoC; 6.12 has no qaic_ras.c (nothing received)."""
    from qaicmodel.spec.control import ras

    cp = cp_k(kernel)
    cp.ras_event(ras.RasMsg(err_type=ras.ErrType.UE).pack())
    assert cp.resets == (0 if kernel == "6.12" else 1)


@pytest.mark.parametrize("kernel", KERNELS)
def test_perf_stats_slice_checks_are_7_2_only(kernel: str) -> None:
    """7.2 qaic_perf_stats_bo_ioctl: !bo->sliced -> -EINVAL; 6.12 reads the BO's stats."""
    from qaicmodel.errors import IoctlError
    from qaicmodel.spec.host import SpecHost

    host = SpecHost(dev_k(kernel))
    uid = host.open()
    h = host.create_bo(uid, 4096)
    if kernel == "6.12":
        (ent,) = host.perf_stats(uid, 0, [h])
        assert ent.handle == h and ent.num_queue_element == 0
    else:
        with pytest.raises(IoctlError) as e:
            host.perf_stats(uid, 0, [h])
        assert e.value.name == "EINVAL"


@pytest.mark.parametrize("kernel", KERNELS)
def test_dbc_states_are_7_2_only(kernel: str) -> None:
    """7.2 save_dbc_buf sets ASSIGNED (a uevent); 6.12 keeps no DBC states."""
    cp = cp_k(kernel)
    d = cp.activate(cp.open(), 8)
    assert cp.dbc_state(d) == (DbcState.IDLE if kernel == "6.12" else DbcState.ASSIGNED)


@pytest.mark.parametrize("kernel", KERNELS)
def test_item9_example_wait_times_out_on_every_kernel(kernel: str) -> None:
    """examples/partial_resize0.json: one-element slice completes, two-element slice never
    does (copy_partial_exec_reqs is the same in 6.12 and 7.2)."""
    from qaicmodel.scenario.runner import run_scenario

    rep = run_scenario(EXAMPLE.parent / "partial_resize0.json", kernel=kernel)
    assert rep.first_mismatch is None, rep.results
    assert [r["result"] for r in rep.results][-2] == "ETIMEDOUT"


def test_item2_overflowing_message_leaves_no_receive_buffer() -> None:
    """7.2 qaic_ssr_mhi_dl_xfer_cb: a transfer longer than the queued 32-byte buffer
    completes with an error status; the buffer is freed and none is queued again, so the
    host hears nothing more on QAIC_SSR until the device is reset (qaic_ssr_mhi_probe)."""
    h, calls = _host_ssr()
    assert h.on_message(ssr.event(2, Event.BEFORE_SHUTDOWN).pack() + bytes(20)) == []
    assert h.rx is None
    assert h.on_message(ssr.event(2, Event.BEFORE_SHUTDOWN).pack()) == [] and calls == []
    h.reset()
    assert h.on_message(ssr.event(2, Event.BEFORE_SHUTDOWN).pack()) != []
