"""RAS (ssr-ras-boot.md §2) and timesync (§3): golden vectors and host behaviour."""

from __future__ import annotations

import pytest

from qaicmodel.errors import DecodeError
from qaicmodel.spec.control import ras, timesync
from qaicmodel.spec.control.plane import ControlPlane
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.policies import Policies


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# magic aa55, ver 2, seq 7, type 0, id 0, len 92 (0x5c); result 0, source 2 (DDR),
# err_type 1 (UE), threshold 0, ce 0, ue 1, intr 0, syndrome 64 x 0
RAS_UE = (
    "aa55 0200 07000000 00 00 5c00 00000000 02000000 01000000 00000000 00000000"
    "01000000 00000000" + "00" * 64
)


def test_ras_golden() -> None:
    raw = h(RAS_UE)
    assert len(raw) == 104
    m = ras.RasMsg(err_type=1, source=2, seq_num=7, ue_count=1)
    assert m.pack() == raw and ras.decode(raw) == m
    assert ras.describe(raw)["message"]["err_type_name"] == "UE"


@pytest.mark.parametrize(
    "patch, rule",
    [
        ((0, b"\x00\x00"), "RAS-MAGIC"),
        ((2, b"\x03\x00"), "RAS-VERSION"),
        ((8, b"\x01"), "RAS-TYPE"),
        ((10, b"\x5b\x00"), "RAS-LEN"),
        ((20, b"\x03"), "RAS-ERR-TYPE"),
    ],
)
def test_ras_rules(patch: tuple[int, bytes], rule: str) -> None:
    raw = bytearray(h(RAS_UE))
    off, b = patch
    raw[off : off + len(b)] = b
    assert any(v["rule"] == rule for v in ras.describe(bytes(raw))["violations"])
    with pytest.raises(DecodeError):
        ras.decode(bytes(raw))
    assert ras.describe(bytes(raw[:50]))["violations"][0]["rule"] == "RAS-SIZE"


def test_ras_host_counts_and_ue_resets() -> None:
    cp = ControlPlane(Device())
    u = cp.open()
    d = cp.activate(u, 8)
    cp.ras_event(ras.RasMsg(err_type=ras.ErrType.CE).pack())
    cp.ras_event(ras.RasMsg(err_type=ras.ErrType.UE_NF).pack())
    assert (cp.ras.ce_count, cp.ras.ue_nf_count, cp.resets) == (1, 1, 0)
    assert cp.device.ch[d].active
    cp.ras_event(ras.RasMsg(err_type=ras.ErrType.UE).pack())
    assert cp.ras.ue_count == 1 and cp.resets == 1 and not cp.device.ch[d].active
    cp.ras_event(b"\0" * 104)
    assert cp.ras.dropped == 1


def test_ras_saturation_policy() -> None:
    for pol, expect in (("driver", 0), ("own-counter", 1)):
        r = ras.HostRas(Policies({"ras-counter-saturation": pol}), lambda: None)
        r.ce_count = ras.UINT_MAX
        r.on_message(ras.RasMsg(err_type=ras.ErrType.UE_NF).pack())
        assert r.ue_nf_count == expect


def test_timesync_boot_and_periodic() -> None:
    cmd = h("aa55 0000 00 00 0000")  # signature 0x55aa, msg_type 0 CMD_TO_HOST
    assert timesync.decode(cmd) == timesync.QtsHdr(0)
    host = timesync.HostBootSync()
    reply = host.on_message(cmd, host_time_us=1_700_000_000_123_456)
    assert reply == h("aa55 0000 00 01 0000 00f1536500000000 40e2010000000000")
    assert host.on_message(h("aa55 0000 00 02 0000"), 0) is None and host.log == ["ack"]
    assert host.on_message(b"short", 0) is None and not host.listening
    assert timesync.qtimer_to_us(192) == 10
    m = timesync.periodic_message(5_000_000, 19_200_000)  # 5 s host, 1 s device
    assert (m.hdr.msg_type, m.tv_sec, m.tv_usec) == (1, 4, 0)
    with pytest.raises(DecodeError):
        timesync.decode(h("0000 0000 00 00 0000"))
    assert timesync.describe(b"x")["violations"][0]["rule"] == "TS-SIZE"
