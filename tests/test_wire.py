"""Wire records (aic100.rst "Request FIFO" / "Response FIFO"): layout, round trips, decoding."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qaicmodel import arith
from qaicmodel.errors import ArgumentError, DecodeError
from qaicmodel.spec.dbc.wire import (
    REQ_DTYPE,
    RSP_DTYPE,
    DbLen,
    Dir,
    RequestElem,
    ResponseElem,
    SemCmd,
    SemOp,
)

WIDTHS = {
    "req_id": 16,
    "seq_id": 8,
    "pcie_dma_cmd": 8,
    "reserved0": 32,
    "pcie_dma_source_addr": 64,
    "pcie_dma_dest_addr": 64,
    "pcie_dma_len": 32,
    "reserved1": 32,
    "doorbell_addr": 64,
    "doorbell_attr": 8,
    "reserved2": 8,
    "reserved3": 16,
    "doorbell_data": 32,
    "sem_cmd0": 32,
    "sem_cmd1": 32,
    "sem_cmd2": 32,
    "sem_cmd3": 32,
}
# byte offset of every field in struct request_elem (aic100.rst; qaic_data.c struct dbc_req)
OFFSETS = {
    "req_id": 0,
    "seq_id": 2,
    "pcie_dma_cmd": 3,
    "reserved0": 4,
    "pcie_dma_source_addr": 8,
    "pcie_dma_dest_addr": 16,
    "pcie_dma_len": 24,
    "reserved1": 28,
    "doorbell_addr": 32,
    "doorbell_attr": 40,
    "reserved2": 41,
    "reserved3": 42,
    "doorbell_data": 44,
    "sem_cmd0": 48,
    "sem_cmd1": 52,
    "sem_cmd2": 56,
    "sem_cmd3": 60,
}

request_elems = st.builds(RequestElem, **{k: st.integers(0, 2**w - 1) for k, w in WIDTHS.items()})


def test_sizes_and_offsets_match_the_document() -> None:
    assert REQ_DTYPE.itemsize == 64 and RSP_DTYPE.itemsize == 4
    req, rsp = REQ_DTYPE.fields, RSP_DTYPE.fields
    assert req is not None and rsp is not None
    for name, off in OFFSETS.items():
        if not name.startswith("sem_cmd"):
            assert req[name][1] == off, name
    assert req["sem_cmd"][1] == OFFSETS["sem_cmd0"]
    assert rsp["completion_code"][1] == 2


@pytest.mark.parametrize("name", sorted(WIDTHS))
def test_each_field_lands_at_its_offset_little_endian(name: str) -> None:
    width = WIDTHS[name]
    value = (1 << width) - 2  # all ones but bit 0: catches byte order and width
    raw = RequestElem(**{name: value}).pack()
    nbytes = width // 8
    assert raw[OFFSETS[name] : OFFSETS[name] + nbytes] == value.to_bytes(nbytes, "little")
    assert raw[: OFFSETS[name]] == bytes(OFFSETS[name])
    assert raw[OFFSETS[name] + nbytes :] == bytes(64 - OFFSETS[name] - nbytes)


@given(request_elems)
def test_request_round_trip_every_field_value(e: RequestElem) -> None:
    raw = e.pack()
    assert len(raw) == 64
    assert RequestElem.unpack(raw) == e


@given(request_elems)
def test_numpy_layout_agrees_with_struct(e: RequestElem) -> None:
    arr = np.frombuffer(e.pack(), dtype=REQ_DTYPE)[0]
    assert int(arr["req_id"]) == e.req_id and int(arr["pcie_dma_len"]) == e.pcie_dma_len
    assert int(arr["pcie_dma_dest_addr"]) == e.pcie_dma_dest_addr
    assert [int(x) for x in arr["sem_cmd"]] == [e.sem_cmd0, e.sem_cmd1, e.sem_cmd2, e.sem_cmd3]


@given(st.binary(min_size=64, max_size=64))
def test_unpack_any_64_bytes_keeps_every_bit(raw: bytes) -> None:
    e = RequestElem.unpack(raw)
    assert e.pack() == raw
    e.violations()
    e.as_dict()
    for name, bits in e.reserved_set().items():
        assert bits != 0 and name


@given(st.binary(min_size=4, max_size=4))
def test_unpack_any_4_bytes(raw: bytes) -> None:
    r = ResponseElem.unpack(raw)
    assert r.pack() == raw
    assert (r.req_id, r.completion_code) == struct.unpack("<HH", raw)


@given(st.binary(max_size=200))
def test_wrong_lengths_raise_only_decode_error(raw: bytes) -> None:
    for cls, size in ((RequestElem, 64), (ResponseElem, 4)):
        if len(raw) == size:
            cls.unpack(raw)
        else:
            with pytest.raises(DecodeError) as ei:
                cls.unpack(raw)
            assert ei.value.rule == "ELEM-LENGTH"


@pytest.mark.parametrize("bad", [None, "x" * 64, 12, [0] * 64])
def test_non_bytes_is_a_decode_error(bad: object) -> None:
    with pytest.raises(DecodeError):
        RequestElem.unpack(bad)  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        ResponseElem.unpack(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kw",
    [
        {"req_id": 1 << 16},
        {"seq_id": -1},
        {"pcie_dma_len": 1 << 32},
        {"sem_cmd3": True},
        {"doorbell_addr": 1.0},
    ],
)
def test_constructor_rejects_out_of_range(kw: dict[str, object]) -> None:
    with pytest.raises(ArgumentError):
        RequestElem(**kw)  # type: ignore[arg-type]


def test_pcie_dma_cmd_bits() -> None:
    e = RequestElem(pcie_dma_cmd=0b1001_1010)
    assert e.force_msi and e.completion and e.bulk and e.dir is Dir.FROM_DEV
    assert e.reserved_set() == {}
    assert RequestElem(pcie_dma_cmd=0x64).reserved_set() == {"pcie_dma_cmd": 0x64}
    assert RequestElem(pcie_dma_cmd=3).dir is Dir.ILLEGAL


def test_doorbell_attr_bits() -> None:
    assert [DbLen(i).nbytes for i in range(3)] == [4, 2, 1]
    e = RequestElem(doorbell_attr=0x81)
    assert e.db_write and e.db_len is DbLen.W16
    assert RequestElem(doorbell_attr=0x7C).reserved_set() == {"doorbell_attr": 0x7C}


@given(
    value=st.integers(0, 0xFFF),
    index=st.integers(0, 31),
    op=st.integers(0, 7),
    presync=st.booleans(),
    to=st.booleans(),
    fr=st.booleans(),
    en=st.booleans(),
)
def test_sem_cmd_fields(
    value: int, index: int, op: int, presync: bool, to: bool, fr: bool, en: bool
) -> None:
    s = SemCmd.build(
        op=op,
        index=index,
        value=value,
        presync=presync,
        todev_fence=to,
        fromdev_fence=fr,
        enable=en,
    )
    assert (s.value, s.index, int(s.op), s.presync, s.todev_fence, s.fromdev_fence, s.enable) == (
        value,
        index,
        op,
        presync,
        to,
        fr,
        en,
    )
    assert s.reserved == 0
    if op <= 6 and en == (op != 0):
        # the driver's encoder (arith.sem_encode: bit 30 = INSYNCFENCE 2, bit 29 = OUTSYNCFENCE 1)
        flags = (2 if to else 0) | (1 if fr else 0)
        assert arith.sem_encode(value, index, int(presync), op, flags) == s.word


def test_sem_reserved_bits_and_build_range() -> None:
    assert SemCmd(0x1880_F000).reserved == 0x1880_F000
    assert SemCmd(0x0020_0000).reserved == 0x0020_0000
    with pytest.raises(ArgumentError):
        SemCmd.build(op=8)
    with pytest.raises(ArgumentError):
        SemCmd.build(value=4096)


def test_violations_name_each_rule() -> None:
    def rules(**kw: int) -> list[str]:
        return [v.rule for v in RequestElem(**kw).violations()]

    assert rules() == []
    assert rules(pcie_dma_cmd=3) == ["REQ-DIR-ILLEGAL"]
    assert rules(doorbell_attr=0x83) == ["REQ-DB-LEN-RESERVED"]
    assert rules(doorbell_attr=0x80, doorbell_addr=2) == ["REQ-DB-MISALIGNED"]
    assert rules(doorbell_attr=0x81, doorbell_addr=2) == []
    p = SemCmd.build(op=SemOp.WAIT_EQ, presync=True).word
    assert rules(sem_cmd0=p, sem_cmd2=p) == ["REQ-MULTI-PRESYNC"]
    assert rules(sem_cmd1=SemCmd.build(op=SemOp.RESERVED).word) == ["SEM-CMD-RESERVED"]
    assert rules(reserved1=1) == ["RESERVED-BITS-SET"]
