"""MHI at register level against a fake host: state machine, command/event/transfer rings."""

from __future__ import annotations

import struct

from mhi_host import CTX, FakeHost

from qaicmodel.emu import mhi_regs as R
from qaicmodel.emu._model import nnc

AMSS = {"mhi-start-ee": "amss"}


def chstate(h: FakeHost, ch: int) -> int:
    return struct.unpack("<I", h.mem.read(h.chan_ctx + ch * CTX, 4))[0] & 0xFF


def test_amss_start_reaches_m0_with_state_and_ee_events() -> None:
    h = FakeHost(policies=AMSS)
    h.power_up()
    assert h.states == [2] and h.ees == [2]  # M0, then EE AMSS (ep/sm.c order)
    assert h.b.mhi_state == "M0" and h.b.ee == "AMSS"
    assert h.msis and set(h.msis) == {0}
    assert h.b.violations == []


def test_channel_commands_update_the_context() -> None:
    h = FakeHost(policies=AMSS)
    h.power_up()
    assert h.start(10, 128) == 1
    assert chstate(h, 10) == 2  # RUNNING
    assert h.cmd(17, 10) == 1 and chstate(h, 10) == 4  # STOP
    assert h.cmd(16, 10) == 1 and chstate(h, 10) == 0  # RESET -> DISABLED
    assert h.cmd(1, 0) == 1  # NOP
    assert h.b.violations == []


def test_start_of_unknown_or_wrong_ee_channel_fails() -> None:
    h = FakeHost(policies=AMSS)
    h.power_up()
    assert h.start(30) == 0x10  # not in the AIC100 table
    assert h.start(2) == 0x10  # QAIC_SAHARA is SBL only
    assert [v.rule for v in h.b.violations] == ["MHI-CHAN-UNKNOWN", "MHI-CHAN-UNKNOWN"]


def test_loopback_echo_chains_and_overflows() -> None:
    h = FakeHost(policies=AMSS)
    h.power_up()
    h.open(0)
    data = bytes(range(256)) * 3
    h.post_rx(1, 512, 2)
    h.send(0, data, chunk=100)  # 8 chained TREs, the last with IEOT
    h.pump()
    assert h.recv(1) == [data]  # 512 (OVERFLOW) + 256 (EOT)
    assert h.chans[0].done == 1  # one EOT event for the whole TD
    assert h.b.services.loopback_echoes == 1
    assert h.b.violations == []


def test_control_status_and_terminate_reach_the_qsm() -> None:
    h = FakeHost(policies=AMSS)
    h.power_up()
    h.open(10, 128)
    h.post_rx(11, 4096, 4)
    h.send(10, nnc.Message.build([nnc.StatusToDev()], seq=1, crc=True).pack())
    h.pump()
    (reply,) = h.recv(11)
    st = nnc.decode(reply, "d2h").transactions[0]
    assert (st.major, st.minor, st.status_flags) == (5, 0, 0)
    h.send(10, nnc.Message.build([nnc.TerminateToDev(handle=7)], seq=2, handle=7, crc=False).pack())
    h.pump()
    assert h.b.services.control_log[-2:] == [
        ("h2d", 10, ["TerminateToDev"]),
        ("d2h", 11, ["TerminateFromDev"]),
    ]


def test_event_ring_full_waits_for_the_host() -> None:
    h = FakeHost(policies=AMSS)
    h.power_up()
    h.open(0)
    h.post_rx(1, 64, 31)
    for i in range(20):
        h.send(0, bytes([i]) * 8)
    h.b.run()  # no host event processing: 31 free slots only
    assert len(h.b.mhi.pending_events) > 0
    h.pump()
    assert len(h.recv(1)) == 20 and not h.b.mhi.pending_events
    assert h.b.violations == []


def test_mhi_reset_then_ready_and_m0_again() -> None:
    h = FakeHost(policies=AMSS)
    h.power_up()
    h.open(10, 128)
    v = h.r(R.MHICTRL)
    h.w(R.MHICTRL, v | R.MHICTRL_RESET)  # pm.c mhi_set_mhi_state(RESET)
    h.run()
    assert not h.r(R.MHICTRL) & R.MHICTRL_RESET
    assert h.r(R.MHISTATUS) & R.MHISTATUS_READY and h.b.mhi_state == "READY"
    assert chstate(h, 10) == 2  # the device does not write contexts of dropped rings
    assert h.b.mhi.channels[10].state == 0
    h.init_ctx()
    h.states.clear()
    h.ready_and_m0()
    assert h.states == [2] and h.b.mhi_state == "M0"


def test_m3_and_back() -> None:
    h = FakeHost(policies=AMSS)
    h.power_up()
    h.set_state(5)
    h.pump()
    assert h.b.mhi_state == "M3" and h.states[-1] == 5
    h.set_state(2)
    h.pump()
    assert h.b.mhi_state == "M0" and h.states[-1] == 2


def test_sys_err_is_announced() -> None:
    h = FakeHost(policies=AMSS)
    h.power_up()
    n = len(h.msis)
    h.b.inject_sys_err()
    h.pump()
    st = h.r(R.MHISTATUS)
    assert (st >> 8) & 0xFF == 0xFF and st & R.MHISTATUS_SYSERR
    assert h.states[-1] == 0xFF and len(h.msis) > n


def test_soc_reset_reboots_to_pbl_and_clears_the_qsm() -> None:
    for notify, state in (("syserr-msi", 0xFF), ("silent", 0)):
        h = FakeHost(policies={**AMSS, "soc-reset-notify": notify})
        h.power_up()
        h.open(10, 128)
        n = len(h.msis)
        h.w(R.SOC_RESET_REQ_OFFSET, 1)
        h.run()
        assert h.b.ee == "PBL"
        assert (h.r(R.MHISTATUS) >> 8) & 0xFF == state
        assert (len(h.msis) > n) == (notify == "syserr-msi")
        assert h.b.mhi.channels[10].state == 0
        assert not h.b.qsm.act


def test_sys_err_report_policy_intvec_only() -> None:
    h = FakeHost(policies={**AMSS, "sys-err-report": "intvec-only"})
    h.power_up()
    n = len(h.msis)
    h.b.inject_sys_err()
    h.pump()
    assert h.states == [2]  # no state-change event
    assert len(h.msis) == n + 1 and h.b.mhi_state == "SYS_ERR"


def test_recovery_after_sys_err_like_the_mhi_core() -> None:
    """pm.c mhi_pm_sys_error_transition: MHI RESET, READY, MMIO init, M0, channels again."""
    h = FakeHost(policies=AMSS)
    h.power_up()
    h.open(10, 128)
    h.b.inject_sys_err()
    h.pump()
    v = h.r(R.MHICTRL)
    h.w(R.MHICTRL, v | R.MHICTRL_RESET)
    h.run()
    assert not h.r(R.MHICTRL) & R.MHICTRL_RESET and h.b.mhi_state == "READY"
    assert not h.r(R.MHISTATUS) & R.MHISTATUS_SYSERR
    h.init_ctx()
    h.states.clear()
    h.ees.clear()
    h.ready_and_m0()
    assert h.states == [2] and h.ees == [2]
    h.open(10, 128)
    h.post_rx(11, 4096)
    h.send(10, nnc.Message.build([nnc.StatusToDev()], seq=9).pack())
    h.pump()
    assert len(h.recv(11)) == 1
