"""Control-channel faults (spec/control/faults.py): the table, the pure API, and what the
reference control client (the 7.2 driver's qaic_control.c, qaic_ras.c, sahara.c) does
with each fault through the control plane."""

from __future__ import annotations

import pytest

from qaicmodel.errors import ArgumentError, IoctlError
from qaicmodel.spec.control import boot, faults, manage, nnc, qsm, verdicts
from qaicmodel.spec.control.plane import ControlPlane
from qaicmodel.spec.control.ras import ErrType, RasMsg
from qaicmodel.spec.dbc.device import Device

pytestmark = pytest.mark.unit

REQ = nnc.Message.build([nnc.StatusToDev()], seq=5, crc=False).pack()
REP = (nnc.Message.build([nnc.StatusFromDev()], seq=5, crc=False).pack(),)


def test_table_rows_name_channel_driver_and_expectation() -> None:
    assert set(f.channel for f in faults.FAULTS.values()) == set(faults.CHANNELS)
    for name, f in faults.FAULTS.items():
        assert f.name == name and f.kind in ("bytes", "schedule")
        assert "linux-source-7.2" in f.driver and f.expect and f.summary
    assert len(faults.names("nnc")) >= 15 and faults.names("ras") and faults.names("sahara")


def test_apply_is_pure_and_seeded() -> None:
    for name in faults.names("nnc"):
        a = faults.apply(name, 7, REQ, REP)
        assert a == faults.apply(name, 7, REQ, list(REP))
    outs = {faults.apply("nnc-trans-len-short", s, REQ, REP).now for s in range(20)}
    assert len(outs) > 1  # the seed chooses the length


def test_byte_faults_break_exactly_the_named_wire_rule() -> None:
    want = {
        "nnc-trans-len-zero": "NNC-TRANS-LEN-MIN",
        "nnc-trans-len-short": "NNC-TRANS-LEN-MIN",
        "nnc-trans-overrun": "NNC-TRANS-OVERRUN",
        "nnc-count-too-big": "NNC-COUNT",
        "nnc-count-zero": "NNC-LEN-SUM",
        "nnc-bad-magic": "NNC-MAGIC",
        "nnc-len-below-header": "NNC-LEN-MIN",
    }
    for name, rule in want.items():
        for seed in range(5):
            (msg,) = faults.apply(name, seed, REQ, REP).now
            assert rule in {v.rule for v in nnc.parse(msg, "d2h").violations}, (name, seed)
    (msg,) = faults.apply("nnc-len-past-end", 0, REQ, REP).now
    assert {v.rule for v in nnc.parse(msg, "d2h").violations} & {"NNC-LEN-MAX", "NNC-TRUNCATED"}


def test_ineligible_exchange_is_left_alone() -> None:
    out = faults.apply("nnc-late-deactivate", 0, REQ, REP)
    assert not out.fired and out.now == REP and not faults.eligible("nnc-late-deactivate", REQ, REP)


def test_bad_arguments_are_argument_errors() -> None:
    for bad in (
        lambda: faults.fault("nope"),
        lambda: faults.apply("nnc-no-reply", -1, REQ, REP),
        lambda: faults.apply("nnc-no-reply", 0, "x", REP),  # type: ignore[arg-type]
        lambda: faults.apply("nnc-no-reply", 0, REQ, b"x"),  # type: ignore[arg-type]
        lambda: faults.Injector("nnc-no-reply", at=-1),
        lambda: faults.parse_spec("nnc-no-reply:x"),
        lambda: faults.parse_spec("a:1:2:3"),
    ):
        with pytest.raises(ArgumentError):
            bad()
    assert faults.parse_spec("nnc-no-reply:3:2+") == ("nnc-no-reply", 3, 2, True)


def test_injector_fires_on_the_at_th_eligible_exchange() -> None:
    inj = faults.Injector("nnc-no-reply", 1, at=2)
    fired = [inj.exchange(REQ, REP).fired for _ in range(5)]
    assert fired == [False, False, True, False, False]
    rep = faults.Injector("nnc-no-reply", 1, at=1, repeat=True)
    assert [rep.exchange(REQ, REP).fired for _ in range(4)] == [False, True, True, True]


# ---------------------------------------------------------------------------
# through the control plane: the 7.2 driver's answers


def _plane(*specs: str) -> tuple[ControlPlane, manage.User]:
    cp = ControlPlane(Device())
    u = cp.open(1)
    for s in specs:
        cp.add_fault(s)
    return cp, u


def _errno(fn) -> str:
    try:
        fn()
    except IoctlError as e:
        return e.name
    return "ok"


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("nnc-trans-len-zero", "EINVAL"),
        ("nnc-trans-len-short", "EINVAL"),
        ("nnc-len-past-end", "EINVAL"),
        ("nnc-len-below-header", "EINVAL"),
        ("nnc-count-too-big", "EINVAL"),
        ("nnc-count-zero", "EINVAL"),
        ("nnc-status-nonzero", "ECANCELED"),
        ("nnc-dbc-out-of-range", "ENODEV"),
        ("nnc-bad-magic", "ETIMEDOUT"),
        ("nnc-wrong-seq", "ETIMEDOUT"),
        ("nnc-late-reply", "ETIMEDOUT"),
        ("nnc-no-reply", "ETIMEDOUT"),
        ("nnc-tx-stall", "ETIMEDOUT"),
        ("nnc-duplicate-reply", "ok"),
        ("nnc-bad-crc", "ok"),  # CRC not required at probe: the driver does not check
    ],
)
def test_activate_under_fault(spec: str, want: str) -> None:
    cp, u = _plane(spec)
    assert _errno(lambda: cp.activate(u, 16)) == want
    assert cp.fault_log and cp.fault_log[0][0] == spec


def test_a_failed_activate_leaves_the_channel_on_the_device() -> None:
    cp, u = _plane("nnc-no-reply")
    assert _errno(lambda: cp.activate(u, 16)) == "ETIMEDOUT"
    rules = [v.rule for v in verdicts.check(cp)]
    assert rules == ["CTRL-QSM-ONLY"] and verdicts.check(cp)[0].state["faults"] == ["nnc-no-reply"]


def test_bad_crc_is_epipe_once_crc_is_required() -> None:
    cp = ControlPlane(Device(), crc_required=True)
    u = cp.open(1)
    cp.add_fault("nnc-bad-crc")
    assert _errno(lambda: cp.status(u)) == "EPIPE"


def test_tx_stall_refuses_every_later_request() -> None:
    cp, u = _plane("nnc-tx-stall")
    assert _errno(lambda: cp.status(u)) == "ETIMEDOUT"
    seq = cp.client.next_seq
    assert _errno(lambda: cp.status(u)) == "EAGAIN"
    assert _errno(lambda: cp.status(u)) == "EAGAIN"
    assert cp.client.next_seq == seq + 2  # a number taken for each refused message


def test_late_deactivate_releases_the_channel_after_the_caller_gave_up() -> None:
    cp, u = _plane()
    dbc = cp.activate(u, 16)
    cp.add_fault("nnc-late-deactivate")
    assert _errno(lambda: cp.deactivate(u, dbc)) == "ETIMEDOUT"
    # the held reply landed after the wait: resp_worker's orphan decode released it
    assert not cp.client.dbc[dbc].in_use and dbc not in cp.qsm.act
    assert [v.state["rule"] for v in verdicts.check(cp)] == ["DRV-ORPHANED-DEACTIVATE"]


def test_unsolicited_deactivate_makes_host_and_qsm_disagree() -> None:
    # an Injector's first firing uses seed * 1_000_003; the dbc is its first random draw
    seed = next(
        s
        for s in range(200)
        if faults.apply("nnc-unsolicited-deactivate", s * 1_000_003, REQ, REP).detail.endswith(
            "dbc 0"
        )
    )
    cp, u = _plane()
    assert cp.activate(u, 16) == 0
    cp.add_fault(faults.Injector("nnc-unsolicited-deactivate", seed))
    assert _errno(lambda: cp.status(u)) == "ok"
    assert not cp.client.dbc[0].in_use and 0 in cp.qsm.act
    assert {v.rule for v in verdicts.check(cp)} == {"CTRL-DRIVER", "CTRL-QSM-ONLY"}


def test_dma_continuation_with_nothing_left() -> None:
    cp, u = _plane("nnc-cont-nothing-left")
    assert _errno(lambda: cp.load(u, b"x" * 5000)) == "EINVAL"  # chunk 0: re-encode fails
    # a continued transfer (chunk id set): the abort replaces the re-encode
    cp = ControlPlane(Device(), sg_max_segment=4096, ext_msg_len=2048)
    u = cp.open(1)
    cp.add_fault("nnc-cont-nothing-left")
    buf = cp.device.host_mem.alloc(200 * 4096)
    r = cp.manage(
        u,
        *manage.user_message(
            manage.usr_passthrough(qsm.command(qsm.Cmd.LOAD_ELF_REQ, 1, 0, 200 * 4096, 0)),
            manage.usr_dma_xfer(1, buf, 200 * 4096),
        ),
    )
    assert (r.result, r.count) == ("ok", 0)  # the LOAD_ELF_RESP is lost ...
    assert "chunk 1 xferred 819200" in cp.fault_log[0][1]
    assert len(cp.qsm.images) == 1  # ... while the device keeps the image
    abort = nnc.decode([m for k, m in cp.nnc_log if k == "tx"][-1])
    (t,) = abort.transactions
    assert isinstance(t, nnc.DmaXfer) and t.count == 0 and t.dma_chunk_id == 1
    assert [v.rule for v in verdicts.check(cp)] == ["CTRL-QSM"]  # QSM-DMA-UNCLAIMED


def test_unasked_continuation_resends_the_activate_and_leaks_a_fifo() -> None:
    cp, u = _plane("nnc-cont-unasked")
    dbc = cp.activate(u, 16)
    assert len(cp.qsm.act) == 2 and cp.client.dbc[dbc].in_use
    rules = {v.rule for v in verdicts.check(cp)}
    assert rules == {"CTRL-QSM-ONLY", "CTRL-FIFO-LEAK"}


def test_trans_overrun_of_a_deactivate_is_accepted_up_to_32_bytes() -> None:
    # decode_message bounds each transaction by hdr.len, which counts the 32-byte header,
    # and decode_deactivate advances by 16 whatever the transaction's len says
    seen: dict[bool, set[str]] = {True: set(), False: set()}
    for seed in range(40):
        cp, u = _plane()
        dbc = cp.activate(u, 16)
        cp.add_fault(faults.Injector("nnc-trans-overrun", seed))
        got = _errno(lambda: cp.deactivate(u, dbc))  # noqa: B023
        detail = cp.fault_log[0][1]
        if detail.startswith("transaction at 56"):  # the DEACTIVATE_FROM_DEV (len 16)
            seen[int(detail.split("-> ")[1]) <= 16 + 32].add(got)
    assert seen == {True: {"ok"}, False: {"EINVAL"}}


# ---------------------------------------------------------------------------
# RAS and Sahara


@pytest.mark.parametrize(
    "name", ["ras-bad-magic", "ras-bad-version", "ras-not-push", "ras-bad-len", "ras-bad-err-type"]
)
def test_malformed_ras_reports_are_dropped(name: str) -> None:
    cp = ControlPlane(Device())
    cp.add_fault(name)
    cp.ras_event(RasMsg(err_type=ErrType.UE).pack())
    assert (cp.ras.ue_count, cp.ras.dropped, cp.resets) == (0, 1, 0)


def test_oversize_ras_report_loses_the_only_buffer() -> None:
    cp = ControlPlane(Device())
    cp.add_fault("ras-oversize")
    cp.ras_event(RasMsg(err_type=ErrType.CE).pack())
    cp.ras_event(RasMsg(err_type=ErrType.UE).pack())
    assert cp.ras.lost and (cp.ras.ce_count, cp.ras.ue_count, cp.resets) == (0, 0, 0)


def test_short_ras_report_is_read_over_the_previous_one() -> None:
    cp = ControlPlane(Device())
    cp.ras_event(RasMsg(err_type=ErrType.UE, source=6).pack())
    assert cp.resets == 1
    cp.ras_event(RasMsg(err_type=ErrType.CE).pack()[:20])  # err_type at byte 20: stale UE
    assert cp.ras.ue_count == 2 and cp.resets == 2


def test_ras_storm_counts_every_copy() -> None:
    cp = ControlPlane(Device())
    cp.add_fault("ras-storm:4")
    cp.ras_event(RasMsg(err_type=ErrType.UE).pack())
    copies = int(cp.fault_log[0][1].split()[-2])
    assert cp.ras.ue_count == copies >= 2 and cp.resets == 1  # requests merge


@pytest.mark.parametrize("name", [n for n in faults.names("sahara") if "memdebug" not in n])
def test_sahara_faults_stop_the_boot(name: str) -> None:
    inj = faults.Injector(name, 0)
    ee, ok = boot.boot_device({1: b"a" * 100}, inject=[inj])
    assert not ok and inj.fired == 1 and ee[-1] != boot.Ee.AMSS
    cp = ControlPlane(Device(), faults=[faults.Injector(name, 0)])
    assert cp.dev_state == boot.DevState.OFFLINE
    assert _errno(lambda: cp.open(1)) == "ENODEV"


def test_sahara_memdebug_bad_table() -> None:
    host = boot.HostSahara({})
    pkt = boot.pkt(boot.SaharaCmd.MEM_DEBUG64, table_address=0, table_length=64).pack()
    answers = set()
    for seed in range(12):
        (bad,) = faults.apply("sahara-memdebug-bad-table", seed, b"", [pkt]).now
        r = host.on_packet(bad)
        answers.add(boot.decode(r[0]).cmd if r else None)
    assert answers == {None, boot.SaharaCmd.RESET}
