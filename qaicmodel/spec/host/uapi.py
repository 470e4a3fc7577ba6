"""The data-path uapi of ``include/uapi/drm/qaic_accel.h``, byte for byte.

Rules (control-path.md §3.3, qaic_accel.h):
  * every struct is native-endian with naturally aligned fields; the model is
    little-endian (x86/arm64), so ``pack``/``unpack`` use ``<``;
  * sizes are fixed and checked at import time (``SIZE`` on every class);
  * ``unpack`` of any bytes of the right length succeeds (every bit pattern is a
    representable struct; *validity* is the driver's job, see
    :mod:`qaicmodel.spec.host.core`); any other length raises ``DecodeError``;
  * constructing a record with a field out of its C type's range raises
    ``ArgumentError`` (the C type could not hold it).

Ioctl numbers follow the ``_IOC`` encoding with ``DRM_COMMAND_BASE`` 0x40 and
type ``'d'`` (control-path.md §3.1).
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

import attrs

from qaicmodel.errors import ArgumentError, DecodeError

__all__ = [
    "Sem",
    "CreateBo",
    "MmapBo",
    "SliceEntry",
    "AttachSliceHdr",
    "AttachSlice",
    "ExecuteEntry",
    "PartialExecuteEntry",
    "ExecuteHdr",
    "Execute",
    "Wait",
    "PerfStatsHdr",
    "PerfStats",
    "PerfStatsEntry",
    "DetachSlice",
    "IOCTLS",
    "ioc",
    "DMA_TO_DEVICE",
    "DMA_FROM_DEVICE",
    "QAIC_SEM_INSYNCFENCE",
    "QAIC_SEM_OUTSYNCFENCE",
    "QAIC_SEM_NOP",
    "QAIC_SEM_INIT",
    "QAIC_SEM_INC",
    "QAIC_SEM_DEC",
    "QAIC_SEM_WAIT_EQUAL",
    "QAIC_SEM_WAIT_GT_EQ",
    "QAIC_SEM_WAIT_GT_0",
    "RECORDS",
]

# enum dma_data_direction values the uapi uses for ``dir`` (qaic_accel.h).
DMA_TO_DEVICE = 1
DMA_FROM_DEVICE = 2

# qaic_accel.h semaphore flags and commands.
QAIC_SEM_INSYNCFENCE = 2
QAIC_SEM_OUTSYNCFENCE = 1
QAIC_SEM_NOP = 0
QAIC_SEM_INIT = 1
QAIC_SEM_INC = 2
QAIC_SEM_DEC = 3
QAIC_SEM_WAIT_EQUAL = 4
QAIC_SEM_WAIT_GT_EQ = 5
QAIC_SEM_WAIT_GT_0 = 6


def _u(bits: int) -> Any:
    limit = 1 << bits

    def check(inst: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limit:
            raise ArgumentError(
                f"{type(inst).__name__}.{attribute.name}={value!r} does not fit in a __u{bits}"
            )

    return check


def _is(cls: type) -> Any:
    def check(inst: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, cls):
            raise ArgumentError(
                f"{type(inst).__name__}.{attribute.name} must be a {cls.__name__}, "
                f"not {type(value).__name__}"
            )

    return check


def _take(cls_name: str, data: Any, size: int) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"{cls_name} must be decoded from bytes, not {type(data).__name__}")
    if len(data) != size:
        raise DecodeError(f"{cls_name} is {size} bytes, got {len(data)}", rule="STRUCT-LENGTH")
    return bytes(data)


class _Flat:
    """Mixin for records whose fields are all plain integers in ``_FMT`` order."""

    _FMT: ClassVar[struct.Struct]
    SIZE: ClassVar[int]

    def pack(self) -> bytes:
        return self._FMT.pack(*attrs.astuple(self))  # type: ignore[arg-type]

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> Any:
        return cls(*cls._FMT.unpack(_take(cls.__name__, data, cls.SIZE)))


@attrs.frozen
class Sem(_Flat):
    """``struct qaic_sem`` (8 bytes): val u16, index u8, presync u8, cmd u8, flags u8, pad u16."""

    _FMT: ClassVar[struct.Struct] = struct.Struct("<HBBBBH")
    SIZE: ClassVar[int] = 8
    val: int = attrs.field(default=0, validator=_u(16))
    index: int = attrs.field(default=0, validator=_u(8))
    presync: int = attrs.field(default=0, validator=_u(8))
    cmd: int = attrs.field(default=0, validator=_u(8))
    flags: int = attrs.field(default=0, validator=_u(8))
    pad: int = attrs.field(default=0, validator=_u(16))


@attrs.frozen
class CreateBo(_Flat):
    """``struct qaic_create_bo`` (16): size u64, handle u32 (out), pad u32 (must be 0)."""

    _FMT: ClassVar[struct.Struct] = struct.Struct("<QII")
    SIZE: ClassVar[int] = 16
    size: int = attrs.field(default=0, validator=_u(64))
    handle: int = attrs.field(default=0, validator=_u(32))
    pad: int = attrs.field(default=0, validator=_u(32))


@attrs.frozen
class MmapBo(_Flat):
    """``struct qaic_mmap_bo`` (16): handle u32, pad u32, offset u64 (out)."""

    _FMT: ClassVar[struct.Struct] = struct.Struct("<IIQ")
    SIZE: ClassVar[int] = 16
    handle: int = attrs.field(default=0, validator=_u(32))
    pad: int = attrs.field(default=0, validator=_u(32))
    offset: int = attrs.field(default=0, validator=_u(64))


_SLICE_FMT = struct.Struct("<Q8s8s8s8sQQIIQ")


@attrs.frozen
class SliceEntry:
    """``struct qaic_attach_slice_entry`` (72 bytes).

    size u64 @0, sem0..sem3 @8/16/24/32, dev_addr u64 @40, db_addr u64 @48,
    db_data u32 @56, db_len u32 @60 (bits: 32/16/8, or 0 = no doorbell), offset u64 @64.
    """

    SIZE: ClassVar[int] = 72
    size: int = attrs.field(default=0, validator=_u(64))
    sem0: Sem = attrs.field(factory=Sem, validator=_is(Sem))
    sem1: Sem = attrs.field(factory=Sem, validator=_is(Sem))
    sem2: Sem = attrs.field(factory=Sem, validator=_is(Sem))
    sem3: Sem = attrs.field(factory=Sem, validator=_is(Sem))
    dev_addr: int = attrs.field(default=0, validator=_u(64))
    db_addr: int = attrs.field(default=0, validator=_u(64))
    db_data: int = attrs.field(default=0, validator=_u(32))
    db_len: int = attrs.field(default=0, validator=_u(32))
    offset: int = attrs.field(default=0, validator=_u(64))

    @property
    def sems(self) -> tuple[Sem, Sem, Sem, Sem]:
        return (self.sem0, self.sem1, self.sem2, self.sem3)

    def pack(self) -> bytes:
        return _SLICE_FMT.pack(
            self.size,
            self.sem0.pack(),
            self.sem1.pack(),
            self.sem2.pack(),
            self.sem3.pack(),
            self.dev_addr,
            self.db_addr,
            self.db_data,
            self.db_len,
            self.offset,
        )

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> SliceEntry:
        f = _SLICE_FMT.unpack(_take(cls.__name__, data, cls.SIZE))
        return cls(
            f[0], Sem.unpack(f[1]), Sem.unpack(f[2]), Sem.unpack(f[3]), Sem.unpack(f[4]), *f[5:]
        )


@attrs.frozen
class AttachSliceHdr(_Flat):
    """``struct qaic_attach_slice_hdr`` (24): count u32, dbc_id u32, handle u32, dir u32, size u64."""

    _FMT: ClassVar[struct.Struct] = struct.Struct("<IIIIQ")
    SIZE: ClassVar[int] = 24
    count: int = attrs.field(default=0, validator=_u(32))
    dbc_id: int = attrs.field(default=0, validator=_u(32))
    handle: int = attrs.field(default=0, validator=_u(32))
    dir: int = attrs.field(default=0, validator=_u(32))
    size: int = attrs.field(default=0, validator=_u(64))


@attrs.frozen
class AttachSlice:
    """``struct qaic_attach_slice`` (32): hdr, data u64 (user pointer to the entries)."""

    SIZE: ClassVar[int] = 32
    hdr: AttachSliceHdr = attrs.field(factory=AttachSliceHdr, validator=_is(AttachSliceHdr))
    data: int = attrs.field(default=0, validator=_u(64))

    def pack(self) -> bytes:
        return self.hdr.pack() + struct.pack("<Q", self.data)

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> AttachSlice:
        raw = _take(cls.__name__, data, cls.SIZE)
        return cls(AttachSliceHdr.unpack(raw[:24]), struct.unpack("<Q", raw[24:])[0])


@attrs.frozen
class ExecuteEntry(_Flat):
    """``struct qaic_execute_entry`` (8): handle u32, dir u32."""

    _FMT: ClassVar[struct.Struct] = struct.Struct("<II")
    SIZE: ClassVar[int] = 8
    handle: int = attrs.field(default=0, validator=_u(32))
    dir: int = attrs.field(default=0, validator=_u(32))


@attrs.frozen
class PartialExecuteEntry(_Flat):
    """``struct qaic_partial_execute_entry`` (16): handle u32, dir u32, resize u64 (0 = no DMA)."""

    _FMT: ClassVar[struct.Struct] = struct.Struct("<IIQ")
    SIZE: ClassVar[int] = 16
    handle: int = attrs.field(default=0, validator=_u(32))
    dir: int = attrs.field(default=0, validator=_u(32))
    resize: int = attrs.field(default=0, validator=_u(64))


@attrs.frozen
class ExecuteHdr(_Flat):
    """``struct qaic_execute_hdr`` (8): count u32, dbc_id u32."""

    _FMT: ClassVar[struct.Struct] = struct.Struct("<II")
    SIZE: ClassVar[int] = 8
    count: int = attrs.field(default=0, validator=_u(32))
    dbc_id: int = attrs.field(default=0, validator=_u(32))


@attrs.frozen
class Execute:
    """``struct qaic_execute`` (16): hdr, data u64 (user pointer to the entries)."""

    SIZE: ClassVar[int] = 16
    hdr: ExecuteHdr = attrs.field(factory=ExecuteHdr, validator=_is(ExecuteHdr))
    data: int = attrs.field(default=0, validator=_u(64))

    def pack(self) -> bytes:
        return self.hdr.pack() + struct.pack("<Q", self.data)

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> Execute:
        raw = _take(cls.__name__, data, cls.SIZE)
        return cls(ExecuteHdr.unpack(raw[:8]), struct.unpack("<Q", raw[8:])[0])


@attrs.frozen
class Wait(_Flat):
    """``struct qaic_wait`` (16): handle u32, timeout u32 (ms, 0 = default), dbc_id u32, pad u32."""

    _FMT: ClassVar[struct.Struct] = struct.Struct("<IIII")
    SIZE: ClassVar[int] = 16
    handle: int = attrs.field(default=0, validator=_u(32))
    timeout: int = attrs.field(default=0, validator=_u(32))
    dbc_id: int = attrs.field(default=0, validator=_u(32))
    pad: int = attrs.field(default=0, validator=_u(32))


@attrs.frozen
class PerfStatsHdr(_Flat):
    """``struct qaic_perf_stats_hdr`` (8): count u16, pad u16, dbc_id u32."""

    _FMT: ClassVar[struct.Struct] = struct.Struct("<HHI")
    SIZE: ClassVar[int] = 8
    count: int = attrs.field(default=0, validator=_u(16))
    pad: int = attrs.field(default=0, validator=_u(16))
    dbc_id: int = attrs.field(default=0, validator=_u(32))


@attrs.frozen
class PerfStats:
    """``struct qaic_perf_stats`` (16): hdr, data u64 (user pointer to the entries)."""

    SIZE: ClassVar[int] = 16
    hdr: PerfStatsHdr = attrs.field(factory=PerfStatsHdr, validator=_is(PerfStatsHdr))
    data: int = attrs.field(default=0, validator=_u(64))

    def pack(self) -> bytes:
        return self.hdr.pack() + struct.pack("<Q", self.data)

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> PerfStats:
        raw = _take(cls.__name__, data, cls.SIZE)
        return cls(PerfStatsHdr.unpack(raw[:8]), struct.unpack("<Q", raw[8:])[0])


@attrs.frozen
class PerfStatsEntry(_Flat):
    """``struct qaic_perf_stats_entry`` (24): six u32 (handle, queue_level_before,
    num_queue_element, submit_latency_us, device_latency_us, pad)."""

    _FMT: ClassVar[struct.Struct] = struct.Struct("<IIIIII")
    SIZE: ClassVar[int] = 24
    handle: int = attrs.field(default=0, validator=_u(32))
    queue_level_before: int = attrs.field(default=0, validator=_u(32))
    num_queue_element: int = attrs.field(default=0, validator=_u(32))
    submit_latency_us: int = attrs.field(default=0, validator=_u(32))
    device_latency_us: int = attrs.field(default=0, validator=_u(32))
    pad: int = attrs.field(default=0, validator=_u(32))


@attrs.frozen
class DetachSlice(_Flat):
    """``struct qaic_detach_slice`` (8): handle u32, pad u32 (must be 0)."""

    _FMT: ClassVar[struct.Struct] = struct.Struct("<II")
    SIZE: ClassVar[int] = 8
    handle: int = attrs.field(default=0, validator=_u(32))
    pad: int = attrs.field(default=0, validator=_u(32))


#: every data-path record, for tests and decoders
RECORDS: tuple[type, ...] = (
    Sem,
    CreateBo,
    MmapBo,
    SliceEntry,
    AttachSliceHdr,
    AttachSlice,
    ExecuteEntry,
    PartialExecuteEntry,
    ExecuteHdr,
    Execute,
    Wait,
    PerfStatsHdr,
    PerfStats,
    PerfStatsEntry,
    DetachSlice,
)

# --------------------------------------------------------------------------
# ioctl numbers (asm-generic/ioctl.h _IOC; DRM_COMMAND_BASE 0x40; type 'd')

_IOC_WRITE = 1
_IOC_READ = 2
DRM_COMMAND_BASE = 0x40
DRM_IOCTL_BASE = ord("d")


def ioc(direction: int, nr: int, size: int) -> int:
    """``_IOC(dir, 'd', DRM_COMMAND_BASE + nr, size)``."""
    return (direction << 30) | (size << 16) | (DRM_IOCTL_BASE << 8) | (DRM_COMMAND_BASE + nr)


_RW = _IOC_READ | _IOC_WRITE
#: name -> (full ioctl number, nr, struct class); control-path.md §3.1
IOCTLS: dict[str, tuple[int, int, type | None]] = {
    "DRM_IOCTL_QAIC_MANAGE": (ioc(_RW, 0x00, 16), 0x00, None),
    "DRM_IOCTL_QAIC_CREATE_BO": (ioc(_RW, 0x01, CreateBo.SIZE), 0x01, CreateBo),
    "DRM_IOCTL_QAIC_MMAP_BO": (ioc(_RW, 0x02, MmapBo.SIZE), 0x02, MmapBo),
    "DRM_IOCTL_QAIC_ATTACH_SLICE_BO": (ioc(_IOC_WRITE, 0x03, AttachSlice.SIZE), 0x03, AttachSlice),
    "DRM_IOCTL_QAIC_EXECUTE_BO": (ioc(_IOC_WRITE, 0x04, Execute.SIZE), 0x04, Execute),
    "DRM_IOCTL_QAIC_PARTIAL_EXECUTE_BO": (ioc(_IOC_WRITE, 0x05, Execute.SIZE), 0x05, Execute),
    "DRM_IOCTL_QAIC_WAIT_BO": (ioc(_IOC_WRITE, 0x06, Wait.SIZE), 0x06, Wait),
    "DRM_IOCTL_QAIC_PERF_STATS_BO": (ioc(_RW, 0x07, PerfStats.SIZE), 0x07, PerfStats),
    "DRM_IOCTL_QAIC_DETACH_SLICE_BO": (ioc(_IOC_WRITE, 0x08, DetachSlice.SIZE), 0x08, DetachSlice),
}

for _cls in RECORDS:
    if getattr(_cls, "_FMT", None) is not None:
        assert _cls._FMT.size == _cls.SIZE, _cls  # type: ignore[attr-defined]
assert _SLICE_FMT.size == SliceEntry.SIZE
