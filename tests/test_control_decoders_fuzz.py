"""Every control-plane decoder, fuzzed: random and mutated bytes give a result or DecodeError,
never another exception; the host and QSM survive any reply/request bytes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from qaicmodel.errors import DecodeError, RemoteProtocolError
from qaicmodel.spec.control import boot, nnc, qsm, ras, ssr, timesync
from qaicmodel.spec.control.plane import ControlPlane
from qaicmodel.spec.dbc.device import Device

SEEDS = [
    nnc.Message.build(
        [nnc.ActivateToDev(1, 2, 3, 4, 5, 6), nnc.DmaXfer(1, ((1, 2),), 3)], seq=1
    ).pack(),
    nnc.Message.build([nnc.StatusFromDev(), nnc.Passthrough(3, bytes(16))], seq=2).pack(),
    nnc.Message.build([nnc.DmaXferCont(1, 0, 5)], seq=3).pack(),
    ssr.event(1, 2).pack(),
    ssr.SsrMsg(ssr.Cmd.DEBUG_TRANSFER_INFO, 1, {"tbl_addr": 9, "tbl_len": 64}).pack(),
    ras.RasMsg().pack(),
    boot.pkt(boot.SaharaCmd.HELLO, version=2, mode=0).pack(),
    boot.pkt(boot.SaharaCmd.READ_DATA, image=1, offset=0, length=4).pack(),
    timesync.QtsHdr().pack(),
]

DECODERS: list[Callable[[bytes], Any]] = [
    nnc.decode,
    ssr.decode,
    ras.decode,
    boot.decode,
    timesync.decode,
    qsm.parse_command,
    lambda b: nnc.decode(b, "d2h", check_crc=True),
]
DESCRIBERS = [nnc.describe, ssr.describe, ras.describe, boot.describe, timesync.describe]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.integers(0, 3))
        if op == 0 and base:
            i = draw(st.integers(0, len(base) - 1))
            base[i] = draw(st.integers(0, 255))
        elif op == 1:
            base = base[: draw(st.integers(0, len(base)))]
        elif op == 2:
            base += draw(st.binary(max_size=24))
        elif base:
            i = draw(st.integers(0, len(base) - 1))
            base[i : i + 4] = draw(st.binary(min_size=4, max_size=4))
    return bytes(base)


inputs = st.one_of(st.binary(max_size=200), mutated())


@given(inputs)
def test_decoders_raise_only_decode_error(data: bytes) -> None:
    for dec in DECODERS:
        try:
            dec(data)
        except DecodeError as e:
            assert e.rule  # every error names the rule it broke
    for desc in DESCRIBERS:
        out = desc(data)
        json.dumps(out)  # JSON-able
        for v in out["violations"]:  # the one finding shape (qaicmodel/findings.py)
            assert set(v) == {"rule", "offset", "message", "source", "where", "state"}
            assert v["where"] == {"offset": v["offset"]}


@given(inputs)
def test_strict_decode_agrees_with_describe(data: bytes) -> None:
    d = nnc.describe(data)
    try:
        m = nnc.decode(data)
    except DecodeError as e:
        assert any(v["rule"] == e.rule for v in d["violations"])
    else:
        assert all(v["rule"] == "NNC-CRC" for v in d["violations"])
        assert m.pack() == data


_CP = ControlPlane(Device())


@given(inputs)
def test_host_and_qsm_survive_any_bytes(data: bytes) -> None:
    cp = _CP
    u = cp.open()
    try:
        cp.qsm.receive(data)  # QSM: any request bytes
        cp.client.deliver(data)  # host DL callback: any reply bytes
        cp.host_ssr.on_message(data)
        cp.ras.on_message(data)
        real = cp.qsm.receive
        cp.qsm.receive = lambda _b: [data]  # type: ignore[method-assign,assignment]
        try:
            r = cp.manage(u, 8, 1, nnc.struct.pack("<II", 12, 8))  # status query; reply = data
        except RemoteProtocolError as e:  # a device asking to continue forever
            assert e.rule == "DEV-CONT-LOOP"
            return
        finally:
            cp.qsm.receive = real  # type: ignore[method-assign]
        assert r.result in ("ok", "ETIMEDOUT", "EINVAL", "ENOSPC", "ECANCELED", "EPIPE", "ENODEV")
    finally:
        cp.close(u)
        if cp._reset_requested or cp.dev_state != 2:
            cp.reset()


u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)


@given(st.sampled_from(sorted(ssr.LAYOUTS)), st.integers(0, 15), st.data())
def test_ssr_roundtrip(cmd: int, dbc: int, data: st.DataObject) -> None:
    fmt, names, _ = ssr.LAYOUTS[cmd]
    fields = {}
    for n, code in zip(names, fmt, strict=True):
        fields[n] = data.draw(u64 if code == "Q" else u32)
    if cmd in (ssr.Cmd.SSR_EVENT, ssr.Cmd.SSR_EVENT_RSP):
        fields["event"] = data.draw(st.sampled_from([2, 4, 8, 16]))
    if cmd == ssr.Cmd.DEBUG_TRANSFER_INFO:
        fields["tbl_len"] = 64 * data.draw(st.integers(1, 100))
    if cmd == ssr.Cmd.DEBUG_TRANSFER_INFO_RSP:
        fields["ret"] = data.draw(st.integers(0, 1))
    extra = data.draw(st.binary(max_size=40)) if cmd == ssr.Cmd.MEMORY_READ_RSP else b""
    m = ssr.SsrMsg(cmd, dbc, fields, extra)
    assert ssr.decode(m.pack()) == m


@given(
    st.integers(0, 2),
    st.integers(0, 6),
    u32,
    st.binary(min_size=64, max_size=64),
    st.integers(1, 2),
)
def test_ras_roundtrip(et: int, src: int, seq: int, syn: bytes, ver: int) -> None:
    m = ras.RasMsg(err_type=et, source=src, seq_num=seq, syndrome=syn, ver=ver)
    assert ras.decode(m.pack()) == m


@given(
    st.sampled_from(
        [boot.SaharaCmd.READ_DATA, boot.SaharaCmd.END_OF_IMAGE, boot.SaharaCmd.MEM_READ64]
    ),
    st.data(),
)
def test_sahara_roundtrip(cmd: int, data: st.DataObject) -> None:
    fmt, names = boot.LAYOUTS[cmd]
    fields = {n: data.draw(u64 if c == "Q" else u32) for n, c in zip(names, fmt, strict=True)}
    p = boot.SaharaPkt(cmd, tuple(fields.items()))
    assert boot.decode(p.pack()) == p
