"""SSR: wire golden vectors (ssr-ras-boot.md §1.2-§1.4), stages end to end, crashdump, NACK,
isolation from other channels."""

from __future__ import annotations

import struct

import pytest

from qaicmodel.errors import DecodeError
from qaicmodel.spec.control import ssr
from qaicmodel.spec.control.plane import ControlPlane
from qaicmodel.spec.control.ssr import Cmd, DbcState, Event
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.policies import Policies


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


GOLDEN = [
    # SSR_EVENT (0x100) len 16 dbc 3 event BEFORE_SHUTDOWN (0x2)
    ("00010000 10000000 03000000 02000000", ssr.SsrMsg(Cmd.SSR_EVENT, 3, {"event": 2})),
    # SSR_EVENT_RSP (0x200) NACK (0x1)
    ("00020000 10000000 03000000 01000000", ssr.SsrMsg(Cmd.SSR_EVENT_RSP, 3, {"event": 1})),
    # DEBUG_TRANSFER_INFO (0x1) len 32: resv, tbl_addr 0x1000, tbl_len 128
    (
        "01000000 20000000 02000000 00000000 0010000000000000 8000000000000000",
        ssr.SsrMsg(Cmd.DEBUG_TRANSFER_INFO, 2, {"tbl_addr": 0x1000, "tbl_len": 128}),
    ),
    # DEBUG_TRANSFER_INFO_RSP (0x2) ret 1 (NACK)
    ("02000000 10000000 02000000 01000000", ssr.SsrMsg(Cmd.DEBUG_TRANSFER_INFO_RSP, 2, {"ret": 1})),
    # MEMORY_READ (0x4) len 32: addr 0x2000 len 64
    (
        "04000000 20000000 02000000 00000000 0020000000000000 4000000000000000",
        ssr.SsrMsg(Cmd.MEMORY_READ, 2, {"addr": 0x2000, "len": 64}),
    ),
    # MEMORY_READ_RSP (0x8) len 20: 4 data bytes
    (
        "08000000 14000000 02000000 00000000 deadbeef",
        ssr.SsrMsg(Cmd.MEMORY_READ_RSP, 2, {}, h("deadbeef")),
    ),
    # DEBUG_TRANSFER_DONE (0x10), DEBUG_TRANSFER_DONE_RSP (0x20) ret 0
    ("10000000 10000000 02000000 00000000", ssr.SsrMsg(Cmd.DEBUG_TRANSFER_DONE, 2)),
    ("20000000 10000000 02000000 00000000", ssr.SsrMsg(Cmd.DEBUG_TRANSFER_DONE_RSP, 2)),
]


@pytest.mark.parametrize("text, msg", GOLDEN)
def test_golden(text: str, msg: ssr.SsrMsg) -> None:
    raw = h(text)
    assert msg.pack() == raw
    assert ssr.decode(raw) == msg
    assert ssr.describe(raw)["violations"] == []


@pytest.mark.parametrize(
    "raw, rule",
    [
        (h("00010000 10000000"), "SSR-SHORT"),
        (h("00040000 10000000 03000000 02000000"), "SSR-CMD"),
        (h("00010000 11000000 03000000 02000000"), "SSR-LEN"),
        (h("00010000 10000000 10000000 02000000"), "SSR-DBC"),
        (h("00010000 10000000 03000000 01000000"), "SSR-EVENT"),
        (h("01000000 20000000 02000000 00000000 0010000000000000 4100000000000000"), "SSR-TBL-LEN"),
    ],
)
def test_rules(raw: bytes, rule: str) -> None:
    assert any(v["rule"] == rule for v in ssr.describe(raw)["violations"])
    with pytest.raises(DecodeError):
        ssr.decode(raw)


class FakeHost:
    """Records the calls the control plane makes into the data path."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def dbc_assign(self, *a) -> None:
        self.calls.append(("assign", *a))

    def dbc_release(self, dbc: int) -> None:
        self.calls.append(("release", dbc))

    def dbc_ssr(self, dbc: int) -> None:
        self.calls.append(("ssr", dbc))


def test_stages_in_order_host_never_reactivates() -> None:
    host = FakeHost()
    cp = ControlPlane(Device(), host)
    u = cp.open("uid-a")
    d0, d1 = cp.activate(u, 8), cp.activate(u, 8)
    events = cp.ssr(d0)
    assert events == [
        Event.BEFORE_SHUTDOWN,
        Event.AFTER_SHUTDOWN,
        Event.BEFORE_POWER_UP,
        Event.AFTER_POWER_UP,
    ]
    states = [s for d, s in cp.state_log if d == d0]
    assert states[-6:] == [
        DbcState.ASSIGNED,
        DbcState.BEFORE_SHUTDOWN,
        DbcState.AFTER_SHUTDOWN,
        DbcState.BEFORE_POWER_UP,
        DbcState.AFTER_POWER_UP,
        DbcState.IDLE,
    ]
    # host replies echo each event
    tx = [ssr.decode(m) for k, m in cp.ssr_log if k == "tx"]
    assert [m["event"] for m in tx] == [2, 4, 8, 16]
    assert all(m.cmd == Cmd.SSR_EVENT_RSP and m.dbc_id == d0 for m in tx)
    # the channel was released (waiters woken with -EPIPE via dbc_ssr), never re-assigned
    assert ("ssr", d0) in host.calls and ("release", d0) in host.calls
    assert [c for c in host.calls if c[0] == "assign"][-1][1] == d1
    assert cp.owner(d0) is None and not cp.device.ch[d0].active
    assert cp.host_ssr.ssr_dbc == ssr.SENTINEL
    # the other workload is untouched
    assert cp.owner(d1) == u.handle and cp.device.ch[d1].active
    assert cp.dbc_state(d1) == DbcState.ASSIGNED
    # NSPs back to idle; userspace may re-activate
    assert len(cp.qsm.idle_nsps()) == 15 and cp.check() == []
    assert cp.activate(u, 8) == d0


def test_crashdump_collected() -> None:
    cp = ControlPlane(Device(policies=Policies({"ssr-crashdump": "offer"})))
    u = cp.open()
    d = cp.activate(u, 8)
    cp.ssr(d)
    assert len(cp.host_ssr.coredumps) == 1
    dump = cp.host_ssr.coredumps[0]
    magic, ver, size, tbl_len = struct.unpack_from("<QQQQ", dump)
    assert (magic, ver, tbl_len, size) == (0x1234567890ABCDEF, 1, 64, len(dump))
    assert dump[32 + 64 :] == bytes(range(256))
    assert cp.dbc_state(d) == DbcState.IDLE and cp.check() == []


def test_dump_without_buffer_is_nacked_and_ssr_completes() -> None:
    cp = ControlPlane(Device(policies=Policies({"ssr-crashdump": "offer"})))
    cp.host_ssr.dump_buffer = False
    u = cp.open()
    d = cp.activate(u, 8)
    events = cp.ssr(d)
    assert events[-1] == Event.AFTER_POWER_UP and cp.host_ssr.coredumps == []
    assert cp.dbc_state(d) == DbcState.IDLE


def test_after_power_up_during_dump_resets() -> None:
    """Mid-dump only the crashdump buffer is queued (7.2 ssr_dump_worker): the event is
    taken for a bad MEMORY_READ_RSP -> SoC reset, not a NACK (issue #14 item 3; the NACK
    case, after DEBUG_TRANSFER_DONE, is in test_kernel_fidelity)."""
    resets: list[int] = []
    h_ = ssr.HostSsr(
        num_dbc=16,
        release=lambda d: None,
        set_state=lambda d, s: None,
        get_state=lambda d: DbcState.BEFORE_POWER_UP,
        soc_reset=lambda: resets.append(1),
    )
    info = ssr.SsrMsg(Cmd.DEBUG_TRANSFER_INFO, 1, {"tbl_addr": 0, "tbl_len": 64})
    h_.ssr_dbc = 1
    out = h_.on_message(info.pack())
    assert ssr.decode(out[0])["ret"] == 0 and ssr.decode(out[1]).cmd == Cmd.MEMORY_READ
    assert h_.on_message(ssr.event(1, Event.AFTER_POWER_UP).pack()) == []
    assert resets == [1] and h_.dump is None


def test_bad_dump_response_resets_the_soc() -> None:
    """A MEMORY_READ_RSP naming another DBC than the one under SSR resets the SoC
    (7.2 ssr_dump_worker).  The device model always echoes the DBC (ssr-unknown-dump-dbc
    is settled, issue #13 item 3), so the wrong response is given to the host directly."""
    resets: list[int] = []
    h_ = ssr.HostSsr(
        num_dbc=16,
        release=lambda d: None,
        set_state=lambda d, s: None,
        get_state=lambda d: DbcState.BEFORE_POWER_UP,
        soc_reset=lambda: resets.append(1),
    )
    h_.ssr_dbc = 1
    info = ssr.SsrMsg(Cmd.DEBUG_TRANSFER_INFO, 1, {"tbl_addr": 0, "tbl_len": 64})
    out = h_.on_message(info.pack())
    assert ssr.decode(out[1]).cmd == Cmd.MEMORY_READ
    wrong = ssr.SsrMsg(Cmd.MEMORY_READ_RSP, 0, {"resv": 0}, bytes(64))
    h_.on_message(wrong.pack())
    assert resets == [1] and h_.dump is None


def test_unknown_event_echoed_and_oversize_dropped() -> None:
    seen: list[tuple[int, DbcState]] = []
    h_ = ssr.HostSsr(
        num_dbc=16,
        release=lambda d: None,
        set_state=lambda d, s: seen.append((d, s)),
        get_state=lambda d: DbcState.IDLE,
        soc_reset=lambda: None,
    )
    (r,) = h_.on_message(ssr.event(2, 0x40).pack())
    assert ssr.parse(r)[0]["event"] == 0x40 and seen == []  # type: ignore[index]
    assert h_.on_message(ssr.event(2, 2).pack() + bytes(20)) == []  # > 32 bytes
    assert h_.on_message(ssr.event(16, 2).pack()) == []  # dbc >= num_dbc


def test_give_up_policy_after_nack() -> None:
    pol = Policies({"ssr-nack-recovery": "give-up"})
    dev = ssr.DeviceSsr(0, policies=pol, read_mem=lambda a, n: bytes(n))
    dev.start()
    for ev in (2, 4, 8):
        dev.on_host(ssr.event_rsp(0, ev).pack())
    assert dev.stage == ssr.DevStage.ACK_AFTER_POWER_UP
    assert dev.on_host(ssr.event_rsp(0, Event.NACK).pack()) == [] and dev.done


def test_scenario_ssr_step_userspace_view() -> None:
    """Through the scenario runner with the real host: after SSR the old channel's calls
    fail as ssr-ras-boot.md §1.10 says (wait/execute -EPERM, attach -EINVAL); userspace
    re-activates."""
    import json
    from pathlib import Path

    from qaicmodel.scenario.runner import run_scenario

    ex = json.loads(
        (Path(__file__).resolve().parents[1] / "examples" / "echo_inference.json").read_text()
    )
    steps = ex["steps"][:8]
    attach = {k: v for k, v in ex["steps"][5].items() if k != "expect"}
    steps += [
        {"op": "ssr", "dbc_id": "dbc"},
        {
            "op": "wait",
            "user": "app",
            "dbc_id": "dbc",
            "handle": "output",
            "timeout_ms": 10,
            "expect": "EPERM",
        },
        {"op": "execute", "user": "app", "dbc_id": "dbc", "handles": ["input"], "expect": "EPERM"},
        dict(attach, expect="EINVAL"),
        {"op": "activate", "user": "app", "queue_size": 16, "as": "dbc2"},
        dict(attach, hdr=dict(attach["hdr"], dbc_id="dbc2"), expect="ok"),
        {"op": "close", "user": "app"},
    ]
    rep = run_scenario(dict(ex, steps=steps))
    assert rep.first_mismatch is None, rep.results
    assert [r["result"] for r in rep.results][8] == "ok"


def test_trace_events_decode() -> None:
    cp = ControlPlane(Device())
    u = cp.open()
    cp.ssr(cp.activate(u, 8))
    evs = cp.trace_events()
    kinds = {e["ev"] for e in evs}
    assert kinds == {"nnc_tx", "nnc_rx", "ssr_rx", "ssr_tx"}
    for e in evs:
        raw = bytes.fromhex(e["hex"])
        if e["ev"].startswith("nnc"):
            from qaicmodel.spec.control import nnc

            assert nnc.describe(raw)["violations"] == []
        else:
            assert ssr.describe(raw)["violations"] == []


def test_device_side_reports_host_replies_as_findings() -> None:
    """DeviceSsr's rule breaks are :class:`qaicmodel.findings.Finding` records (issue #8)."""
    from qaicmodel.findings import Finding

    d = ssr.DeviceSsr(3, policies=Policies(), read_mem=lambda a, n: bytes(n))
    d.start()
    assert d.on_host(b"\x01") == []  # too short to decode
    reply = ssr.SsrMsg(Cmd.MEMORY_READ, 3, {"addr": 0, "len": 8}).pack()
    assert d.on_host(reply) == []  # a dump read while no dump is going on
    rules = [v.rule for v in d.violations]
    assert rules == ["SSR-HOST-MALFORMED", "SSR-HOST-UNPROMPTED"], d.violations
    assert all(
        isinstance(v, Finding) and v.source and str(v).startswith(v.rule + ": ")
        for v in d.violations
    )
    assert d.violations[1].where == {"stage": ssr.DevStage.ACK_BEFORE_SHUTDOWN.value}
