"""MANAGE ioctl: the driver's checks and errnos, copy-back, sequence numbers, CRC, versions,
DMA continuation (control-path.md §1.4-§1.9)."""

from __future__ import annotations

import struct

import pytest

from qaicmodel.errors import IoctlError
from qaicmodel.spec.control import manage, nnc, qsm
from qaicmodel.spec.control.boot import DevState
from qaicmodel.spec.control.plane import ControlPlane
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.policies import Policies


def cp_(**kw) -> ControlPlane:
    return ControlPlane(Device(), **kw)


def run(cp: ControlPlane, u: manage.User, *trans: bytes) -> manage.ManageResult:
    return cp.manage(u, *manage.user_message(*trans))


def test_probe_goes_online_only_for_5_0() -> None:
    assert cp_().dev_state == DevState.ONLINE
    for ver in ((5, 1), (4, 0), (6, 0)):
        cp = cp_(version=ver)
        assert cp.dev_state == DevState.BOOT
        with pytest.raises(IoctlError) as e:
            cp.open()
        assert e.value.name == "ENODEV"
    cp = ControlPlane(Device(policies=Policies({"nnc-version-minor": "any-minor"})), version=(5, 3))
    assert cp.dev_state == DevState.ONLINE


def test_crc_negotiation() -> None:
    off = cp_()
    u = off.open()
    off.activate(u, 8)
    tx = [m for k, m in off.nnc_log if k == "tx"]
    assert nnc.describe(tx[0])["crc_ok"] is True  # the probe query carries a CRC
    assert struct.unpack_from("<I", tx[-1])[0] == 0  # then CRC is off: field 0
    on = cp_(crc_required=True)
    u = on.open()
    on.activate(u, 8)
    assert all(nnc.describe(m)["crc_ok"] for _, m in on.nnc_log)
    assert on.client.check_crc and on.client.gen_crc


def test_bad_crc_response_is_epipe() -> None:
    cp = cp_(crc_required=True)
    u = cp.open()
    real = cp.qsm.receive

    def corrupt(data: bytes) -> list[bytes]:
        return [
            r[:4] + bytes([r[4] ^ 0]) + r[5:40] + bytes([r[40] ^ 0xFF]) + r[41:] for r in real(data)
        ]

    cp.qsm.receive = corrupt  # type: ignore[method-assign]
    r = run(cp, u, manage.usr_status())
    assert r.result == "EPIPE"


@pytest.mark.parametrize(
    "length, count, trans, errno",
    [
        (4097, 1, b"", "EINVAL"),  # ioctl: len > 4096
        (8, 513, manage.usr_status(), "EINVAL"),  # count > 512
        (8, 0, manage.usr_status(), "EINVAL"),  # count 0
        (4, 1, manage.usr_status(), "EINVAL"),  # len < 8
        (16, 1, manage.usr_status(), "EFAULT"),  # buffer shorter than len
        (8, 1, struct.pack("<II", 99, 8), "EINVAL"),  # unknown type
        (8, 1, struct.pack("<II", 12, 4), "EINVAL"),  # trans len < 8
        (8, 1, struct.pack("<II", 12, 16), "EINVAL"),  # trans overruns len
        (16, 1, manage.usr_status() + bytes(8), "EINVAL"),  # consumed != len
        (12, 1, manage.usr_passthrough(bytes(4)), "EINVAL"),  # passthrough len % 8
        (24, 1, manage.usr_activate(0), "EINVAL"),  # queue_size 0
        (24, 1, manage.usr_activate(8, pad=1), "EINVAL"),  # pad
        (24, 1, manage.usr_activate(0x0F0F0F0F), "EINVAL"),  # 68 * n overflows u32
        (16, 1, manage.usr_deactivate(16), "EINVAL"),  # dbc_id >= num_dbc
        (16, 1, manage.usr_deactivate(0, pad=1), "EINVAL"),
        (16, 1, manage.usr_deactivate(0), "EPERM"),  # not the owner
        # status 24 + 4096 > 4096 -> ENOSPC is 6.12 only: tests/test_kernel_fidelity.py item 1
    ],
)
def test_encode_errnos(length, count, trans, errno) -> None:
    cp = cp_()
    u = cp.open()
    seq = cp.client.next_seq
    r = cp.manage(u, length, count, trans)
    assert r.result == errno
    assert cp.client.next_seq == seq  # nothing was sent
    assert (r.len, r.count, r.data) == (length, count, trans)  # no copy-back


def test_activate_copy_back_and_fifo_layout() -> None:
    cp = cp_()
    u = cp.open()
    r = run(cp, u, manage.usr_activate(16))
    assert r.result == "ok" and r.count == 1 and r.len == 24
    t, ln, status, dbc, opts = struct.unpack("<IIIIQ", r.data)
    assert (t, ln, status, opts) == (8, 24, 0, 0)
    d = cp.client.dbc[dbc]
    assert (
        d.in_use and d.usr is u and d.total_size == 4096 and d.nelem == 16
    )  # round_up(68*16+256, 4K)
    act = [nnc.decode(m) for k, m in cp.nnc_log if k == "tx"][-1].transactions[0]
    assert isinstance(act, nnc.ActivateToDev)
    assert act.rsp_q_addr == act.req_q_addr + 4096 - 64 and act.buf_len == 4096


def test_refused_activate_is_ecanceled_with_copy_back() -> None:
    cp = cp_(num_nsp=1)
    u = cp.open()
    cp.activate(u, 8)
    before = list(cp.device.host_mem.regions())
    r = run(cp, u, manage.usr_activate(8))
    assert r.result == "ECANCELED"
    status = struct.unpack_from("<I", r.data, 8)[0]
    assert nnc.status_s32(status) == qsm.St.NSP_ALLOC
    assert cp.device.host_mem.regions() == before  # unused FIFO chunk freed


def test_status_user_transaction_and_len_quirk() -> None:
    cp = cp_()
    u = cp.open()
    r = run(cp, u, manage.usr_status())
    assert r.result == "ok"
    t = manage.parse_user_result(r.data, r.count)[0]
    assert (t["type"], t["major"], t["minor"], t["status_flags"]) == (14, 5, 0, 0)
    # a user status len of 16: the wire claims 16 but 8 bytes are sent -> QSM drops it
    r = run(cp, u, manage.usr_status(16) + bytes(8))
    assert r.result == "ETIMEDOUT"
    assert cp.qsm.violations[-1].rule == "QSM-MALFORMED"


def test_sequence_numbers_and_unmatched_responses_dropped() -> None:
    cp = cp_()
    u = cp.open()
    seqs = []
    for _ in range(3):
        run(cp, u, manage.usr_status())
        seqs.append(nnc.decode(cp.client.sent[-1]).seq)
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]
    stale = nnc.Message.build([nnc.StatusFromDev()], seq=seqs[0]).pack()
    assert cp.client.deliver(stale) is False  # nobody waits for it
    assert cp.client.deliver(b"\0" * 40) is False  # bad magic
    real = cp.qsm.receive
    cp.qsm.receive = lambda data: [stale] + real(data)  # type: ignore[method-assign]
    assert run(cp, u, manage.usr_status()).result == "ok"
    assert stale in cp.client.dropped


def test_deactivate_flow_releases_both_sides() -> None:
    cp = cp_()
    u, v = cp.open(), cp.open()
    dbc = cp.activate(u, 8)
    with pytest.raises(IoctlError) as e:
        cp.deactivate(v, dbc)
    assert e.value.name == "EPERM"
    cp.deactivate(u, dbc)
    assert not cp.client.dbc[dbc].in_use and not cp.device.ch[dbc].active
    assert dbc not in cp.qsm.act and cp.check() == []


def test_passthrough_only_deactivate_of_foreign_channel_is_refused() -> None:
    cp = cp_()
    u, v = cp.open(), cp.open()
    dbc = cp.activate(u, 8)
    r = run(cp, v, manage.usr_passthrough(qsm.command(qsm.Cmd.DEACTIVATE_REQ, dbc)))
    assert r.result == "ok"
    cmd, args = qsm.parse_command(manage.parse_user_result(r.data, r.count)[0]["data"])
    assert cmd == qsm.Cmd.DEACTIVATE_RESP and nnc.status_s32(args[0]) == qsm.St.NOT_PERMITTED
    assert cp.owner(dbc) == u.handle and cp.device.ch[dbc].active
    assert cp.qsm.violations[-1].rule == "QSM-ISOLATION"


def test_from_dev_nonzero_policy_shows_the_reenable_hole() -> None:
    pol = Policies({"nnc-deactivate-refusal": "from-dev-nonzero"})
    cp = ControlPlane(Device(policies=pol))
    u, v = cp.open(), cp.open()
    dbc = cp.activate(u, 8)
    r = run(cp, v, manage.usr_passthrough(qsm.command(qsm.Cmd.DEACTIVATE_REQ, dbc)))
    assert r.result == "ECANCELED"
    assert cp.owner(dbc) == v.handle  # the driver re-enabled the DBC for the caller
    assert cp.check()  # host and QSM now disagree


def test_dma_continuation_and_load() -> None:
    cp = cp_(sg_max_segment=4096, ext_msg_len=2048)
    u = cp.open()
    image = bytes(i % 251 for i in range(4096 * 200))
    eid = cp.load(u, image)
    tx = [nnc.decode(m) for k, m in cp.nnc_log if k == "tx"][1:]
    rx = [nnc.decode(m) for k, m in cp.nnc_log if k == "rx"][1:]
    assert len(tx) > 2
    chunk = tx[0].transactions[1].dma_chunk_id
    assert chunk != 0
    for m in tx[1:]:
        assert m.count == 1 and m.transactions[0].dma_chunk_id == chunk
    assert all(isinstance(m.transactions[0], nnc.DmaXferCont) for m in rx[:-1])
    img = cp.qsm.images[eid]
    assert cp.device.dev_mem.read(img.addr, img.size) == image


def test_continuation_mismatch_is_einval() -> None:
    cp = cp_(sg_max_segment=4096, ext_msg_len=2048)
    u = cp.open()
    real = cp.qsm.receive

    def lie(data: bytes) -> list[bytes]:
        out = []
        for r in real(data):
            m = nnc.decode(r)
            if isinstance(m.transactions[0], nnc.DmaXferCont):
                t = m.transactions[0]
                r = nnc.Message(
                    (nnc.DmaXferCont(t.dma_chunk_id, 0, t.xferred_size + 1),), seq=m.seq
                ).pack()
            out.append(r)
        return out

    cp.qsm.receive = lie  # type: ignore[method-assign]
    buf = cp.device.host_mem.alloc(4096 * 200)
    r = run(
        cp,
        u,
        manage.usr_passthrough(qsm.command(qsm.Cmd.LOAD_ELF_REQ, 1, 0, 4096 * 200)),
        manage.usr_dma_xfer(1, buf, 4096 * 200),
    )
    assert r.result == "EINVAL"


def test_dma_errnos() -> None:
    cp = cp_()
    u = cp.open()
    assert run(cp, u, manage.usr_dma_xfer(1, 0x10, 0)).result == "EINVAL"  # size 0
    assert run(cp, u, manage.usr_dma_xfer(1, 2**64 - 8, 16)).result == "EINVAL"  # overflow
    assert run(cp, u, manage.usr_dma_xfer(1, 0x10, 16)).result == "EFAULT"  # not mapped


def test_close_sends_48_byte_terminate_and_releases() -> None:
    cp = cp_()
    u = cp.open()
    dbc = cp.activate(u, 8)
    cp.close(u)
    m = cp.client.sent[-1]
    assert len(m) == 48
    msg = nnc.decode(m)
    assert msg.partition_id == 0 and msg.handle == u.handle
    assert msg.transactions == (nnc.TerminateToDev(u.handle),)
    assert not cp.client.dbc[dbc].in_use and not cp.qsm.act and cp.check() == []
    v = cp.open()
    assert v.handle == u.handle  # the IDA hands the smallest free id out again


def test_offline_device_refuses_manage() -> None:
    cp = cp_()
    u = cp.open()
    cp.client.dev_state = DevState.OFFLINE
    assert run(cp, u, manage.usr_status()).result == "ENODEV"


def test_device_asking_for_continuation_forever_is_stopped() -> None:
    from qaicmodel.errors import RemoteProtocolError

    cp = cp_()
    u = cp.open()

    def cont(data: bytes) -> list[bytes]:
        seq = nnc.decode(data).seq
        return [nnc.Message((nnc.DmaXferCont(0, 0, 0),), seq=seq).pack()]

    cp.qsm.receive = cont  # type: ignore[method-assign]
    with pytest.raises(RemoteProtocolError) as e:
        run(cp, u, manage.usr_status())
    assert e.value.rule == "DEV-CONT-LOOP"
