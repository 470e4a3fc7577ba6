"""QSM: NSPs, channels, DDR, isolation, terminate, refusals as NNC status codes."""

from __future__ import annotations

import struct

import pytest

from qaicmodel.errors import ArgumentError, IoctlError
from qaicmodel.spec.control import manage, nnc, qsm
from qaicmodel.spec.control.plane import ControlPlane
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.policies import Policies


def refused_status(e: pytest.ExceptionInfo[IoctlError]) -> None:
    assert e.value.name == "ECANCELED"


def test_sixteen_workloads_then_nsp_exhaustion() -> None:
    cp = ControlPlane(Device())
    u = cp.open()
    dbcs = [cp.activate(u, 4) for _ in range(16)]
    assert sorted(dbcs) == list(range(16))
    assert cp.qsm.idle_nsps() == [] and cp.check() == []
    with pytest.raises(IoctlError) as e:
        cp.activate(u, 4)
    refused_status(e)
    cp.deactivate(u, 3)
    assert cp.activate(u, 4) == 3  # the lowest idle channel again


def test_several_nsps_per_workload_and_vc_exhaustion() -> None:
    cp = ControlPlane(Device(num_dbc=2))
    u = cp.open()
    eid = cp.load(u, b"\x7fELF" + bytes(60))
    d0 = cp.activate(u, 4, elf_id=eid, num_nsp=5)
    assert len(cp.qsm.act[d0].nsps) == 5
    cp.activate(u, 4)
    with pytest.raises(IoctlError):
        cp.activate(u, 4)  # no channel left (VC alloc)
    tx = cp.nnc_log[-1][1]
    r = nnc.decode(tx).transactions[-1]
    assert isinstance(r, nnc.ActivateFromDev) and nnc.status_s32(r.status) == qsm.St.VC_ALLOC


def test_all_idle_policy_takes_every_nsp() -> None:
    cp = ControlPlane(Device(policies=Policies({"qsm-bare-activate-nsps": "all-idle"})))
    u = cp.open()
    d = cp.activate(u, 4)
    assert len(cp.qsm.act[d].nsps) == 16
    with pytest.raises(IoctlError):
        cp.activate(u, 4)


def test_ddr_load_unload_and_exhaustion() -> None:
    cp = ControlPlane(Device(), ddr_size=64 * 1024)
    u = cp.open()
    a = cp.load(u, bytes(40000))
    assert cp.qsm.ddr_used() == 40960
    with pytest.raises(IoctlError):
        cp.load(u, bytes(30000))  # memory exhausted (-4)
    assert cp.qsm.ddr_used() == 40960  # the refused load holds nothing
    cp.unload(u, a)
    assert cp.qsm.ddr_used() == 0
    b = cp.load(u, bytes(60000))
    assert cp.qsm.images[b].addr == 0 and cp.check() == []


def test_isolation_between_users() -> None:
    cp = ControlPlane(Device())
    u, v = cp.open(), cp.open()
    eid = cp.load(u, bytes(100))
    with pytest.raises(IoctlError):
        cp.activate(v, 4, elf_id=eid)  # another user's image
    with pytest.raises(IoctlError):
        cp.unload(v, eid)
    rules = [x.rule for x in cp.qsm.violations]
    assert rules == ["QSM-ISOLATION", "QSM-ISOLATION"]
    assert all(x.handle == v.handle for x in cp.qsm.violations)
    assert eid in cp.qsm.images


def test_terminate_releases_everything_of_one_user_only() -> None:
    cp = ControlPlane(Device())
    u, v = cp.open(), cp.open()
    cp.load(u, bytes(5000))
    du = [cp.activate(u, 4) for _ in range(3)]
    dv = cp.activate(v, 4)
    cp.close(u)
    assert set(cp.qsm.act) == {dv} and cp.qsm.images == {} and cp.qsm.ddr_used() == 0
    assert all(not cp.device.ch[d].active for d in du) and cp.device.ch[dv].active
    assert cp.check() == []


def test_terminate_partition_zero_policy_leaks() -> None:
    cp = ControlPlane(Device(policies=Policies({"nnc-terminate-partition": "partition-0"})))
    u = cp.open()
    d = cp.activate(u, 4)
    cp.close(u)
    assert d in cp.qsm.act  # QSM kept the channel: terminate named partition 0
    assert not cp.client.dbc[d].in_use  # the host released it anyway


def test_bad_fifo_layout_refused_as_parameter_error() -> None:
    dev = Device()
    q = qsm.Qsm(dev)
    base = dev.host_mem.alloc(4096)
    bad = nnc.ActivateToDev(base, base + 100, 16, 16, 4096, 0)
    reply = nnc.decode(q.receive(nnc.Message.build([bad], seq=1, crc=False).pack())[0])
    assert nnc.status_s32(reply.transactions[0].status) == qsm.St.PARAMETER
    assert q.violations[0].rule == "QSM-ACTIVATE-LAYOUT" and not dev.ch[0].active


def test_unknown_partition_refused_and_validate_partition() -> None:
    dev = Device()
    q = qsm.Qsm(dev)
    m = nnc.Message.build(
        [nnc.StatusToDev(), nnc.ValidatePartToDev(5), nnc.ValidatePartToDev(0xFFFFFFFF)],
        seq=3,
        partition_id=7,
        crc=False,
    )
    reply = nnc.decode(q.receive(m.pack())[0])
    assert reply.seq == 3
    assert [type(t).__name__ for t in reply.transactions] == [
        "StatusFromDev",
        "ValidatePartFromDev",
        "ValidatePartFromDev",
    ]
    assert reply.transactions[1].status != 0 and reply.transactions[2].status == 0
    assert q.violations[0].rule == "QSM-PARTITION"


def test_opaque_command_policy_and_undefined_command() -> None:
    cp = ControlPlane(Device())
    u = cp.open()
    r = cp.manage(u, *manage.user_message(manage.usr_passthrough(qsm.command(99, 1))))
    cmd, args = qsm.parse_command(manage.parse_user_result(r.data, r.count)[0]["data"])
    assert cmd == 100 and nnc.status_s32(args[0]) == qsm.St.UNDEFINED_REQUEST
    cp2 = ControlPlane(Device(policies=Policies({"nnc-command-set": "opaque"})))
    u2 = cp2.open()
    with pytest.raises(IoctlError):
        cp2.load(u2, bytes(16))


def test_malformed_request_policies() -> None:
    dev = Device()
    q = qsm.Qsm(dev)
    junk = b"\0" * 8 + struct.pack("<I", 42) + b"\0" * 20
    assert q.receive(junk) == []
    q2 = qsm.Qsm(Device(policies=Policies({"nnc-malformed-request": "reply-empty"})))
    (r,) = q2.receive(junk)
    assert nnc.decode(r).seq == 42 and nnc.decode(r).count == 0


def test_crc_required_device_drops_bad_crc() -> None:
    q = qsm.Qsm(Device(), crc_required=True)
    m = nnc.Message.build([nnc.StatusToDev()], seq=1, crc=False)
    assert q.receive(m.pack()) == []
    assert len(q.receive(m.with_crc().pack())) == 1


def test_crash_requires_active_channel() -> None:
    q = qsm.Qsm(Device())
    with pytest.raises(ArgumentError):
        q.crash(0)


def test_partition_isolation() -> None:
    """Same handle, different partition: a different owner (aic100.rst: 'A partition id
    identifies the resource partition that QSM manages')."""
    from qaicmodel import arith

    dev = Device()
    q = qsm.Qsm(dev, partitions=(-1, 2))
    base = dev.host_mem.alloc(4096)
    act = nnc.ActivateToDev(base, base + arith.dbc_rsp_offset(8), 8, 8, arith.dbc_buf_size(8), 0)
    (r,) = q.receive(nnc.Message.build([act], seq=1, handle=0, partition_id=2, crc=False).pack())
    dbc = nnc.decode(r).transactions[0].dbc_id
    deact = nnc.Passthrough(4, qsm.command(qsm.Cmd.DEACTIVATE_REQ, dbc))
    (r,) = q.receive(nnc.Message.build([deact], seq=2, handle=0, partition_id=-1, crc=False).pack())
    cmd, args = qsm.parse_command(nnc.decode(r).transactions[0].data)
    assert nnc.status_s32(args[0]) == qsm.St.NOT_PERMITTED and dbc in q.act
    assert q.violations[-1].rule == "QSM-ISOLATION" and q.violations[-1].partition == -1
    (r,) = q.receive(nnc.Message.build([deact], seq=3, handle=0, partition_id=2, crc=False).pack())
    assert [type(t).__name__ for t in nnc.decode(r).transactions] == [
        "Passthrough",
        "DeactivateFromDev",
    ]
    assert dbc not in q.act and q.check() == []


@pytest.mark.parametrize("alt", ["refuse-1", "accept-1"])
def test_min_queue_size_policy(alt: str) -> None:
    """qsm-min-queue-size: a one-element ring (zero capacity with one slot kept free)."""
    dev = Device(policies=Policies({"qsm-min-queue-size": alt}))
    cp = ControlPlane(dev)
    u = cp.open()
    if alt == "refuse-1":
        with pytest.raises(IoctlError) as e:
            cp.activate(u, 1)
        refused_status(e)
        assert not any(ch.active for ch in dev.ch)
        # the refusal is the QSM's own choice: the host's layout for one element is the
        # driver's (qaic_control.c encode_activate), not a rule broken (the real 7.2 driver
        # in UML sends exactly this; tests/uml/test_guest_datapath.py)
        assert cp.qsm.violations == []
    else:
        dbc = cp.activate(u, 1)
        assert dev.ch[dbc].active and dev.ch[dbc].nelem == 1
    assert cp.activate(u, 2) in range(16)  # two elements are always accepted
