"""NNC wire protocol: golden vectors from control-path.md §1.1-§1.3, round trips, rules."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qaicmodel.errors import ArgumentError, DecodeError
from qaicmodel.spec.control import crc, nnc


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# Message header, 8 LE u32 (control-path.md §1.1): crc, magic "QAIC", seq, len, count,
# handle, partition_id, padding.  Vectors are written by hand, CRC field 0 (CRC off).
HDR_TERMINATE = "00000000 51414943 07000000 30000000 01000000 03000000 00000000 00000000"
GOLDEN = {
    # terminate (§2.4): 48 bytes, partition 0, TERMINATE_TO_DEV type 17 len 16 handle 3
    "terminate": (
        HDR_TERMINATE + "11000000 10000000 03000000 00000000",
        nnc.Message((nnc.TerminateToDev(3),), seq=7, handle=3, partition_id=0),
    ),
    # status query: STATUS_TO_DEV type 15 len 8, handle 0, partition -1
    "status_to_dev": (
        "00000000 51414943 00000000 28000000 01000000 00000000 ffffffff 000000000f000000 08000000",
        nnc.Message((nnc.StatusToDev(),), seq=0),
    ),
    # status answer: type 14 len 24, major 5 minor 0 status 0 flags 1 (CRC required)
    "status_from_dev": (
        "00000000 51414943 00000000 38000000 01000000 00000000 ffffffff 00000000"
        "0e000000 18000000 0500 0000 00000000 0100000000000000",
        nnc.Message((nnc.StatusFromDev(5, 0, 0, 1),), seq=0),
    ),
    # activate to dev: type 9 len 40, req_q 0x100000000, rsp_q +0x1fc0, 16/16, buf_len 0x2000
    "activate_to_dev": (
        "00000000 51414943 02000000 48000000 01000000 01000000 ffffffff 00000000"
        "09000000 28000000 0000000001000000 c01f000001000000"
        "10000000 10000000 00200000 00000000",
        nnc.Message(
            (nnc.ActivateToDev(0x1_0000_0000, 0x1_0000_1FC0, 16, 16, 0x2000, 0),), seq=2, handle=1
        ),
    ),
    # activate from dev: type 8 len 24, status 0, dbc 5, options 0
    "activate_from_dev": (
        "00000000 51414943 02000000 38000000 01000000 01000000 ffffffff 00000000"
        "08000000 18000000 00000000 05000000 0000000000000000",
        nnc.Message((nnc.ActivateFromDev(0, 5),), seq=2, handle=1),
    ),
    # deactivate from dev: type 11 len 16, status 0xfffffff7 (-9), dbc 2
    "deactivate_from_dev": (
        "00000000 51414943 09000000 30000000 01000000 00000000 ffffffff"
        "00000000 0b000000 10000000 f7ffffff 02000000",
        nnc.Message((nnc.DeactivateFromDev(0xFFFFFFF7, 2),), seq=9),
    ),
    # terminate from dev: type 16 len 16
    "terminate_from_dev": (
        "00000000 51414943 07000000 30000000 01000000 03000000 00000000"
        "00000000 10000000 10000000 00000000 00000000",
        nnc.Message((nnc.TerminateFromDev(0),), seq=7, handle=3, partition_id=0),
    ),
    # passthrough to dev: type 4 len 16, 8 payload bytes
    "passthrough": (
        "00000000 51414943 01000000 30000000 01000000 00000000 ffffffff 00000000"
        "04000000 10000000 0102030405060708",
        nnc.Message((nnc.Passthrough(4, h("0102030405060708")),), seq=1),
    ),
    # dma_xfer: type 6 len 56, tag 100, count 2, chunk 1, pairs (0x1000,0x10) (0x3000,0x20)
    "dma_xfer": (
        "00000000 51414943 04000000 58000000 01000000 00000000 ffffffff 00000000"
        "06000000 38000000 64000000 02000000 01000000 00000000"
        "0010000000000000 1000000000000000 0030000000000000 2000000000000000",
        nnc.Message((nnc.DmaXfer(100, ((0x1000, 0x10), (0x3000, 0x20)), 1),), seq=4),
    ),
    # abort (§1.5): dma_xfer tag 0 count 0 len 24, message len 56
    "dma_abort": (
        "00000000 51414943 05000000 38000000 01000000 00000000 ffffffff 00000000"
        "06000000 18000000 00000000 00000000 07000000 00000000",
        nnc.Message((nnc.DmaXfer(0, (), 7),), seq=5),
    ),
    # dma_xfer_cont: type 18 len 24, chunk 7, xferred 0x10000
    "dma_xfer_cont": (
        "00000000 51414943 04000000 38000000 01000000 00000000 ffffffff 00000000"
        "12000000 18000000 07000000 00000000 0000010000000000",
        nnc.Message((nnc.DmaXferCont(7, 0, 0x10000),), seq=4),
    ),
    # validate partition (types 20/19)
    "validate_to_dev": (
        "00000000 51414943 00000000 30000000 01000000 00000000 ffffffff 00000000"
        "14000000 10000000 02000000 00000000",
        nnc.Message((nnc.ValidatePartToDev(2),), seq=0),
    ),
    "validate_from_dev": (
        "00000000 51414943 00000000 30000000 01000000 00000000 ffffffff"
        "00000000 13000000 10000000 00000000 00000000",
        nnc.Message((nnc.ValidatePartFromDev(0),), seq=0),
    ),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_vectors_pack_and_decode(name: str) -> None:
    text, msg = GOLDEN[name]
    raw = h(text)
    assert msg.pack() == raw
    assert nnc.decode(raw) == msg
    d = nnc.describe(raw)
    assert d["violations"] == []
    assert d["crc_ok"] is False  # field 0, CRC not applied


def test_type_codes_match_uapi() -> None:
    T = nnc.TransType
    assert (
        T.PASSTHROUGH_FROM_USR,
        T.PASSTHROUGH_TO_USR,
        T.PASSTHROUGH_FROM_DEV,
        T.PASSTHROUGH_TO_DEV,
    ) == (1, 2, 3, 4)
    assert (
        T.DMA_XFER_FROM_USR,
        T.DMA_XFER_TO_DEV,
        T.ACTIVATE_FROM_USR,
        T.ACTIVATE_FROM_DEV,
        T.ACTIVATE_TO_DEV,
    ) == (5, 6, 7, 8, 9)
    assert (
        T.DEACTIVATE_FROM_USR,
        T.DEACTIVATE_FROM_DEV,
        T.STATUS_FROM_USR,
        T.STATUS_TO_USR,
        T.STATUS_FROM_DEV,
        T.STATUS_TO_DEV,
    ) == (10, 11, 12, 13, 14, 15)
    assert (
        T.TERMINATE_FROM_DEV,
        T.TERMINATE_TO_DEV,
        T.DMA_XFER_CONT,
        T.VALIDATE_PARTITION_FROM_DEV,
        T.VALIDATE_PARTITION_TO_DEV,
    ) == (16, 17, 18, 19, 20)


def test_crc_is_standard_crc32_over_message_with_field_zeroed() -> None:
    assert crc.crc32(b"123456789") == 0xCBF43926  # the CRC-32 check value
    raw = h(GOLDEN["terminate"][0])
    m = GOLDEN["terminate"][1].with_crc()
    assert m.crc32 == crc.crc32(raw)  # field was zero in raw
    packed = m.pack()
    assert packed[4:] == raw[4:] and struct.unpack_from("<I", packed)[0] == m.crc32
    assert nnc.describe(packed)["crc_ok"] is True
    bad = bytearray(packed)
    bad[40] ^= 1
    d = nnc.describe(bytes(bad))
    assert d["crc_ok"] is False
    assert d["violations"][0]["rule"] == "NNC-CRC"
    with pytest.raises(DecodeError) as e:
        nnc.decode(bytes(bad), check_crc=True)
    assert e.value.rule == "NNC-CRC" and e.value.offset == 0


@pytest.mark.parametrize(
    "mutate, rule, offset",
    [
        (lambda b: b[:20], "NNC-HDR-SHORT", 20),
        (lambda b: b[:4] + b"XXXX" + b[8:], "NNC-MAGIC", 4),
        (lambda b: b[:12] + struct.pack("<I", 16) + b[16:], "NNC-LEN-MIN", 12),
        (lambda b: b[:12] + struct.pack("<I", 200) + b[16:], "NNC-TRUNCATED", 12),
        (lambda b: b + b"\0" * 8, "NNC-TRAILING", 48),
        (lambda b: b[:28] + b"\1\0\0\0" + b[32:], "NNC-PADDING", 28),
        (lambda b: b[:16] + struct.pack("<I", 2) + b[20:], "NNC-COUNT", 16),
        (lambda b: b[:36] + struct.pack("<I", 4) + b[40:], "NNC-TRANS-LEN-MIN", 36),
        (lambda b: b[:36] + struct.pack("<I", 24) + b[40:], "NNC-TRANS-OVERRUN", 36),
        (lambda b: b[:32] + struct.pack("<I", 2) + b[36:], "NNC-TRANS-TYPE", 32),
        (lambda b: b[:32] + struct.pack("<I", 16) + b[36:], "NNC-TRANS-DIR", 32),
    ],
)
def test_each_rule_reported_with_offset(mutate, rule, offset) -> None:
    raw = mutate(h(GOLDEN["terminate"][0]))
    vs = nnc.parse(raw, "h2d").violations
    assert any(v.rule == rule and v.offset == offset for v in vs), vs
    with pytest.raises(DecodeError) as e:
        nnc.decode(raw, "h2d")
    assert e.value.rule and e.value.rule.startswith("NNC-")


def test_size_limits_by_direction() -> None:
    big = nnc.Message((nnc.Passthrough(4, bytes(4096)),), seq=1)
    assert nnc.decode(big.pack(), "h2d") == big  # 4136 bytes: fine host->device
    d = nnc.describe(nnc.Message((nnc.Passthrough(3, bytes(4096)),), seq=1).pack())
    assert d["direction"] == "d2h"
    assert any(v["rule"] == "NNC-LEN-MAX" for v in d["violations"])
    over = nnc.Message((nnc.Passthrough(4, bytes(65536 - 32)),), seq=1)
    assert any(v["rule"] == "NNC-LEN-MAX" for v in nnc.describe(over.pack())["violations"])


def test_alignment_and_dma_rules() -> None:
    odd = nnc.Message((nnc.Passthrough(4, bytes(5)),), seq=1)
    assert any(v["rule"] == "NNC-TRANS-ALIGN" for v in nnc.describe(odd.pack())["violations"])
    lie = nnc.Message((nnc.DmaXfer(1, ((1, 2),), count=3),), seq=1)
    vs = nnc.describe(lie.pack())["violations"]
    assert [v["rule"] for v in vs] == ["NNC-DMA-COUNT"] and vs[0]["offset"] == 44
    two = nnc.Message((nnc.DmaXferCont(1, 0, 2), nnc.ActivateFromDev(0, 1)), seq=1)
    assert any(v["rule"] == "NNC-CONT-ALONE" for v in nnc.describe(two.pack())["violations"])


def test_chain_wrappers_split_dma_lists_at_4k() -> None:
    m = nnc.Message.build(
        [
            nnc.Passthrough(4, bytes(16)),
            nnc.DmaXfer(1, tuple((i * 4096, 4096) for i in range(600))),
        ],
        seq=3,
    )
    parts = nnc.chain(m)
    assert b"".join(parts) == m.pack()
    assert len(parts[0]) == 32 and len(parts[1]) == 24
    assert len(parts[2]) == 24 + 252 * 16  # first DMA wrapper: header + 252 pairs
    assert len(parts[3]) == 254 * 16
    assert all(len(p) <= nnc.WRAPPER_MAX - nnc.WRAPPER_PREFIX for p in parts)


def test_constructor_validates_fields() -> None:
    with pytest.raises(ArgumentError):
        nnc.ActivateFromDev(1 << 32, 0)
    with pytest.raises(ArgumentError):
        nnc.Message(seq=-1)
    with pytest.raises(ArgumentError):
        nnc.DmaXfer(pairs=((1 << 64, 0),))


u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
h2d_trans = st.one_of(
    st.builds(
        lambda d: nnc.Passthrough(4, d),
        st.binary(max_size=64).map(lambda b: b + bytes(-len(b) % 8)),
    ),
    st.builds(
        lambda t, p, c: nnc.DmaXfer(t, tuple(p), c),
        u32,
        st.lists(st.tuples(u64, u64), max_size=6),
        u32,
    ),
    st.builds(nnc.ActivateToDev, u64, u64, u32, u32, u32, u32),
    st.builds(nnc.TerminateToDev, u32),
    st.just(nnc.StatusToDev()),
    st.builds(nnc.ValidatePartToDev, u32),
)
d2h_trans = st.one_of(
    st.builds(
        lambda d: nnc.Passthrough(3, d),
        st.binary(max_size=64).map(lambda b: b + bytes(-len(b) % 8)),
    ),
    st.builds(nnc.ActivateFromDev, u32, u32, u64),
    st.builds(nnc.DeactivateFromDev, u32, u32),
    st.builds(nnc.StatusFromDev, st.integers(0, 65535), st.integers(0, 65535), u32, u64),
    st.builds(nnc.TerminateFromDev, u32),
    st.builds(nnc.ValidatePartFromDev, u32),
)


@given(
    st.lists(h2d_trans, min_size=1, max_size=5),
    u32,
    u32,
    st.integers(-(2**31), 2**31 - 1),
    st.booleans(),
)
def test_roundtrip_h2d(trans, seq, handle, part, with_crc) -> None:
    m = nnc.Message.build(trans, seq=seq, handle=handle, partition_id=part, crc=with_crc)
    raw = m.pack()
    assert len(raw) == m.len
    back = nnc.decode(raw, "h2d", check_crc=with_crc)
    assert back == m and back.pack() == raw
    assert nnc.describe(raw)["crc_ok"] is with_crc


@given(st.lists(d2h_trans, min_size=1, max_size=5), u32)
def test_roundtrip_d2h(trans, seq) -> None:
    m = nnc.Message.build(trans, seq=seq)
    assert nnc.decode(m.pack(), "d2h") == m
    assert nnc.describe(m.pack())["direction"] == "d2h"


@pytest.mark.parametrize(
    "kind, raw, key",
    [
        ("nnc", GOLDEN["dma_xfer"][0], "transactions"),
        ("ssr", "00010000 10000000 03000000 02000000", "message"),
        ("ras", "aa55", "message"),
        ("sahara", "05000000 08000000", "packet"),
    ],
)
def test_cli_decode_json(kind: str, raw: str, key: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from qaicmodel.cli import main

    assert main(["decode", kind, raw.replace(" ", ""), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == kind and key in out and isinstance(out["violations"], list)
    if kind == "nnc":
        assert out["transactions"][0]["type_name"] == "DMA_XFER_TO_DEV"
        assert out["crc_ok"] is False
    if kind == "ras":
        assert out["violations"][0]["rule"] == "RAS-SIZE"
