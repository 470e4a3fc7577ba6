"""Boot: Sahara golden vectors (ssr-ras-boot.md §4.3), the boot EEs, device states, reset."""

from __future__ import annotations

import pytest

from qaicmodel.errors import DecodeError, IoctlError
from qaicmodel.spec.control import boot, mhi
from qaicmodel.spec.control.boot import DevState, SaharaCmd, pkt
from qaicmodel.spec.control.plane import ControlPlane
from qaicmodel.spec.dbc.device import Device


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


GOLDEN = [
    # HELLO: cmd 1, length 0x30, version 2, compat 2, max_length 0xffff, mode 0, 24 reserved
    (
        "01000000 30000000 02000000 02000000 ffff0000 00000000" + "00" * 24,
        pkt(SaharaCmd.HELLO, version=2, version_compat=2, max_length=0xFFFF, mode=0),
    ),
    (
        "02000000 30000000 02000000 02000000 00000000 01000000" + "00" * 24,
        pkt(SaharaCmd.HELLO_RESP, version=2, version_compat=2, status=0, mode=1),
    ),
    # READ_DATA: length 0x14, image 5, offset 0x1000, length 0x200
    (
        "03000000 14000000 05000000 00100000 00020000",
        pkt(SaharaCmd.READ_DATA, image=5, offset=0x1000, length=0x200),
    ),
    ("04000000 10000000 05000000 00000000", pkt(SaharaCmd.END_OF_IMAGE, image=5, status=0)),
    ("05000000 08000000", pkt(SaharaCmd.DONE)),
    ("07000000 08000000", pkt(SaharaCmd.RESET)),
    (
        "10000000 18000000 0000000010000000 4000000000000000",
        pkt(SaharaCmd.MEM_DEBUG64, table_address=0x10_0000_0000, table_length=64),
    ),
    (
        "11000000 18000000 0010000000000000 f0ff000000000000",
        pkt(SaharaCmd.MEM_READ64, memory_address=0x1000, memory_length=0xFFF0),
    ),
]


@pytest.mark.parametrize("text, p", GOLDEN)
def test_sahara_golden(text: str, p: boot.SaharaPkt) -> None:
    raw = h(text)
    assert p.pack() == raw
    assert boot.decode(raw) == p
    assert boot.describe(raw)["violations"] == []


@pytest.mark.parametrize(
    "raw, rule",
    [
        (h("01000000"), "SAHARA-SHORT"),
        (h("03000000 18000000 05000000 00100000 00020000"), "SAHARA-LENGTH"),
        (h("03000000 10000000 05000000 00100000"), "SAHARA-SIZE"),
        (h("01000000 30000000 01000000 01000000 ffff0000 00000000" + "00" * 24), "SAHARA-VERSION"),
        (h("01000000 30000000 02000000 02000000 ffff0000 07000000" + "00" * 24), "SAHARA-MODE"),
        (h("99000000 08000000"), "SAHARA-CMD"),
        (h("10000000 18000000 0000000000000000 4100000000000000"), "SAHARA-TABLE"),
    ],
)
def test_sahara_rules(raw: bytes, rule: str) -> None:
    assert any(v["rule"] == rule for v in boot.describe(raw)["violations"])
    with pytest.raises(DecodeError):
        boot.decode(raw)


def test_host_sahara_serves_images_and_resets_on_bad_reads() -> None:
    host = boot.HostSahara({1: b"abcdef"})
    (resp,) = host.on_packet(
        pkt(SaharaCmd.HELLO, version=2, version_compat=2, max_length=0xFFFF, mode=0).pack()
    )
    assert boot.decode(resp)["status"] == 0
    assert host.on_packet(pkt(SaharaCmd.READ_DATA, image=1, offset=2, length=3).pack()) == [b"cde"]
    for bad in (
        dict(image=2, offset=0, length=1),
        dict(image=1, offset=6, length=1),
        dict(image=1, offset=4, length=3),
        dict(image=1, offset=0, length=0x80001),
    ):
        (r,) = host.on_packet(pkt(SaharaCmd.READ_DATA, **bad).pack())
        assert boot.decode(r).cmd == SaharaCmd.RESET
    assert host.on_packet(pkt(SaharaCmd.END_OF_IMAGE, image=1, status=0).pack()) == [
        pkt(SaharaCmd.DONE).pack()
    ]
    assert host.on_packet(pkt(SaharaCmd.END_OF_IMAGE, image=1, status=3).pack()) == []
    assert host.on_packet(h("01000000 30000000 01000000")) == []  # rejected HELLO: no reply


def test_boot_sequence_ees() -> None:
    seen, ok = boot.boot_device({1: bytes(0x90000), 2: b"x"})
    assert ok and seen == list(mhi.EE_SEQUENCE)
    seen, ok = boot.boot_device({1: b"x"}, wanted={1: 1, 4: 12})
    assert not ok and seen == [mhi.Ee.PBL, mhi.Ee.SBL]  # missing image: stuck in SBL
    assert boot.boot_device({}, sbl=None) == ([mhi.Ee.PBL], False)


def test_device_states_and_reset_loses_activations() -> None:
    cp = ControlPlane(Device(), boot_now=False)
    assert cp.dev_state == DevState.OFFLINE
    assert cp.boot() == "ok" and cp.dev_state == DevState.ONLINE
    u = cp.open()
    d = cp.activate(u, 8)
    seq = cp.client.next_seq
    assert cp.reset() == "ok"
    assert cp.dev_state == DevState.ONLINE and cp.resets == 1
    assert not cp.device.ch[d].active and cp.qsm.act == {} and not cp.client.dbc[d].in_use
    assert cp.client.next_seq > seq  # sequence numbers are not reset
    assert cp.check() == []


def test_wrong_version_stays_in_boot() -> None:
    cp = ControlPlane(Device(), version=(5, 1))
    assert cp.dev_state == DevState.BOOT
    with pytest.raises(IoctlError):
        cp.open()


def test_soc_reset_register() -> None:
    assert (boot.SOC_RESET_OFFSET, boot.SOC_RESET_REQ) == (0xB0, 1)


def test_mhi_channel_table() -> None:
    names = {c.num: c.name for c in mhi.CHANNELS}
    assert names[10] == names[11] == "QAIC_CONTROL"
    assert mhi.channel(10).elements == 128 and mhi.channel(11).elements == 128
    assert all(c.elements == 32 for c in mhi.CHANNELS if c.name != "QAIC_CONTROL")
    assert all(c.to_device == (c.num % 2 == 0) for c in mhi.CHANNELS)
    sbl = {c.name for c in mhi.channels_in(mhi.Ee.SBL)}
    assert sbl == {"QAIC_SAHARA", "QAIC_LOGGING", "QAIC_TIMESYNC"}
    assert "IPCR" not in {c.name for c in mhi.channels_in(mhi.Ee.AMSS)}
    assert "IPCR" in {c.name for c in mhi.channels_in(mhi.Ee.AMSS, ipcr=True)}


def test_loopback_echoes() -> None:
    lb = mhi.Loopback()
    lb.send(b"ping")
    lb.send(b"pong")
    assert (lb.receive(), lb.receive(), lb.receive()) == (b"ping", b"pong", None)


def test_sahara_memory_debug_dump() -> None:
    import struct

    mem = {0x1000: bytes(range(256)) * 300, 0x900000: b"\x11" * 0x10}  # 76800 and 16 bytes
    table = b"".join(struct.pack("<QQQ20s20s", 0, a, len(b), b"d", b"f") for a, b in mem.items())
    host = boot.HostSahara({})
    (req,) = host.on_packet(
        pkt(SaharaCmd.MEM_DEBUG64, table_address=0x50, table_length=len(table)).pack()
    )
    reads = []
    while True:
        p = boot.decode(req)
        if p.cmd == SaharaCmd.RESET:
            break
        assert p.cmd == SaharaCmd.MEM_READ64
        addr, n = p["memory_address"], p["memory_length"]
        reads.append(n)
        assert n <= 0xFFF0 and n != 0x10
        blob = (
            table
            if addr == 0x50
            else next(b[addr - a : addr - a + n] for a, b in mem.items() if a <= addr < a + len(b))
        )
        (req,) = host.on_packet(blob)
    assert reads[:3] == [128, 0xFFF0, 76800 - 0xFFF0] and reads[3:] == [8, 8]
    (dump,) = host.dumps
    assert dump[32 : 32 + 128] == table and dump[32 + 128 :] == b"".join(mem.values())
    # a wrong-sized answer aborts; a table longer than one packet is answered with RESET,
    # a zero or misaligned one only logged (7.2 sahara.c sahara_memory_debug64)
    host.on_packet(pkt(SaharaCmd.MEM_DEBUG64, table_address=0, table_length=64).pack())
    assert boot.decode(host.on_packet(b"short")[0]).cmd == SaharaCmd.RESET
    (r,) = host.on_packet(pkt(SaharaCmd.MEM_DEBUG64, table_address=0, table_length=0x10040).pack())
    assert boot.decode(r).cmd == SaharaCmd.RESET
    for bad in (0, 65):
        assert (
            host.on_packet(pkt(SaharaCmd.MEM_DEBUG64, table_address=0, table_length=bad).pack())
            == []
        )
        assert host.dump is None and host.log[-1].startswith("rejected: SAHARA-TABLE")


def test_boot_runs_timesync_in_sbl() -> None:
    from qaicmodel.spec.control import timesync

    cp = ControlPlane(Device(), boot_now=False)
    cp.host_time_us = 3_000_000
    cp.boot()
    m = timesync.decode(cp.boot_sync)  # type: ignore[arg-type]
    assert isinstance(m, timesync.SyncMsg)
    assert (m.hdr.msg_type, m.tv_sec, m.tv_usec) == (timesync.MsgType.SYNC_REQ, 3, 0)
