"""uapi structs: exact sizes, byte layout, round trips, ioctl numbers (qaic_accel.h)."""

from __future__ import annotations

import struct

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qaicmodel.errors import ArgumentError, DecodeError
from qaicmodel.spec.host import uapi

SIZES = {
    uapi.CreateBo: 16,
    uapi.MmapBo: 16,
    uapi.Sem: 8,
    uapi.SliceEntry: 72,
    uapi.AttachSliceHdr: 24,
    uapi.AttachSlice: 32,
    uapi.ExecuteEntry: 8,
    uapi.PartialExecuteEntry: 16,
    uapi.ExecuteHdr: 8,
    uapi.Execute: 16,
    uapi.Wait: 16,
    uapi.PerfStatsHdr: 8,
    uapi.PerfStats: 16,
    uapi.PerfStatsEntry: 24,
    uapi.DetachSlice: 8,
}


@pytest.mark.parametrize("cls", list(SIZES), ids=lambda c: c.__name__)
def test_size(cls: type) -> None:
    assert cls.SIZE == SIZES[cls]  # type: ignore[attr-defined]
    assert len(cls().pack()) == SIZES[cls]


@pytest.mark.parametrize("cls", list(SIZES), ids=lambda c: c.__name__)
@given(data=st.data())
def test_unpack_any_bytes_round_trips(cls: type, data: st.DataObject) -> None:
    raw = data.draw(st.binary(min_size=SIZES[cls], max_size=SIZES[cls]))
    rec = cls.unpack(raw)  # type: ignore[attr-defined]
    assert rec.pack() == raw


@pytest.mark.parametrize("cls", list(SIZES), ids=lambda c: c.__name__)
@given(n=st.integers(0, 200))
def test_wrong_length_is_decode_error(cls: type, n: int) -> None:
    if n == SIZES[cls]:
        return
    with pytest.raises(DecodeError):
        cls.unpack(bytes(n))  # type: ignore[attr-defined]


@given(st.one_of(st.text(), st.integers(), st.none(), st.lists(st.integers())))
def test_unpack_non_bytes_is_decode_error(x: object) -> None:
    with pytest.raises(DecodeError):
        uapi.SliceEntry.unpack(x)  # type: ignore[arg-type]


def test_field_offsets_slice_entry() -> None:
    """Offsets of qaic_attach_slice_entry (control-path.md §3.3)."""
    e = uapi.SliceEntry(
        size=0x1111,
        sem0=uapi.Sem(val=0x22),
        sem3=uapi.Sem(pad=0x3333),
        dev_addr=0x44,
        db_addr=0x55,
        db_data=0x66,
        db_len=0x77,
        offset=0x88,
    )
    raw = e.pack()
    assert struct.unpack_from("<Q", raw, 0)[0] == 0x1111
    assert struct.unpack_from("<H", raw, 8)[0] == 0x22
    assert struct.unpack_from("<H", raw, 32 + 6)[0] == 0x3333
    assert struct.unpack_from("<QQII", raw, 40) == (0x44, 0x55, 0x66, 0x77)
    assert struct.unpack_from("<Q", raw, 64)[0] == 0x88


def test_field_offsets_small_structs() -> None:
    assert uapi.Sem(val=0x0102, index=3, presync=4, cmd=5, flags=6, pad=0x0708).pack() == bytes(
        [2, 1, 3, 4, 5, 6, 8, 7]
    )
    assert uapi.Wait(handle=1, timeout=2, dbc_id=3, pad=4).pack() == struct.pack(
        "<IIII", 1, 2, 3, 4
    )
    assert uapi.PerfStatsHdr(count=1, pad=2, dbc_id=3).pack() == struct.pack("<HHI", 1, 2, 3)
    assert uapi.MmapBo(handle=9, offset=1 << 40).pack() == struct.pack("<IIQ", 9, 0, 1 << 40)
    assert uapi.AttachSlice(uapi.AttachSliceHdr(count=1, size=5), data=7).pack()[
        24:
    ] == struct.pack("<Q", 7)


@pytest.mark.parametrize(
    "cls,field,bits",
    [
        (uapi.Sem, "val", 16),
        (uapi.Sem, "index", 8),
        (uapi.CreateBo, "size", 64),
        (uapi.PerfStatsHdr, "count", 16),
        (uapi.SliceEntry, "db_len", 32),
        (uapi.PartialExecuteEntry, "resize", 64),
    ],
)
def test_out_of_range_field_is_argument_error(cls: type, field: str, bits: int) -> None:
    cls(**{field: (1 << bits) - 1})
    for bad in (1 << bits, -1, 1.5, True, "1"):
        with pytest.raises(ArgumentError):
            cls(**{field: bad})


def test_nested_type_checked() -> None:
    with pytest.raises(ArgumentError):
        uapi.SliceEntry(sem0=5)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError):
        uapi.Execute(hdr=uapi.Sem())  # type: ignore[arg-type]


def test_ioctl_numbers() -> None:
    """Values from the _IOC encoding (control-path.md §3.1)."""
    expect = {
        "DRM_IOCTL_QAIC_MANAGE": 0xC0106440,
        "DRM_IOCTL_QAIC_CREATE_BO": 0xC0106441,
        "DRM_IOCTL_QAIC_MMAP_BO": 0xC0106442,
        "DRM_IOCTL_QAIC_ATTACH_SLICE_BO": 0x40206443,
        "DRM_IOCTL_QAIC_EXECUTE_BO": 0x40106444,
        "DRM_IOCTL_QAIC_PARTIAL_EXECUTE_BO": 0x40106445,
        "DRM_IOCTL_QAIC_WAIT_BO": 0x40106446,
        "DRM_IOCTL_QAIC_PERF_STATS_BO": 0xC0106447,
        "DRM_IOCTL_QAIC_DETACH_SLICE_BO": 0x40086448,
    }
    assert {k: v[0] for k, v in uapi.IOCTLS.items()} == expect


def test_records_are_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        uapi.Sem().val = 1  # type: ignore[misc]
