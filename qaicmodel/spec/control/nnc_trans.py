"""NNC transactions: the wire layouts after a message header (control-path.md §1.3).

Split from :mod:`qaicmodel.spec.control.nnc`, which re-exports every public name here
(import them from there).  Rules (aic100.rst "Neural Network Control (NNC) Protocol";
qaic_control.c ``wire_trans_*``): each transaction starts with ``{type u32, len u32}``,
``len`` counting that header; everything is little endian and naturally aligned;
fields are validated to their C types (ArgumentError); ``tail`` keeps bytes past a
fixed layout so a malformed transaction still round-trips.
"""

from __future__ import annotations

import enum
import struct
from typing import Any, ClassVar

import attrs

from qaicmodel.errors import ArgumentError

__all__ = [
    "MAGIC",
    "HDR_SIZE",
    "TRANS_HDR_SIZE",
    "MAX_D2H",
    "MAX_H2D",
    "WRAPPER_MAX",
    "WRAPPER_PREFIX",
    "NO_PARTITION",
    "CNTL_MAJOR",
    "CNTL_MINOR",
    "STATUS_FLAG_CRC",
    "TransType",
    "H2D_TYPES",
    "D2H_TYPES",
    "Passthrough",
    "DmaXfer",
    "DmaXferCont",
    "ActivateToDev",
    "ActivateFromDev",
    "DeactivateFromDev",
    "TerminateToDev",
    "TerminateFromDev",
    "StatusToDev",
    "StatusFromDev",
    "ValidatePartToDev",
    "ValidatePartFromDev",
    "RawTrans",
    "FIXED",
    "status_u32",
    "status_s32",
    "seq_follows",
]

MAGIC = 0x43494151  # MANAGE_MAGIC_NUMBER, "QAIC" on the wire (qaic_control.c)
HDR_SIZE = 32
TRANS_HDR_SIZE = 8
MAX_D2H = 4096  # QAIC_MANAGE_MAX_MSG_LENGTH (aic100.rst: "at most 4K ... from QSM to the host")
MAX_H2D = 65536  # QAIC_MANAGE_EXT_MSG_LENGTH (aic100.rst: "at most 64K")
WRAPPER_MAX = 4096  # QAIC_WRAPPER_MAX_SIZE
#: Driver bookkeeping in front of the wire bytes of each wrapper (list_head,
#: kref, len, head pointer: 32 bytes on a 64-bit kernel -- inference from the
#: struct layout in qaic_control.c).  A DMA wrapper carries at most 4064 wire bytes.
WRAPPER_PREFIX = 32
NO_PARTITION = -1  # QAIC_NO_PARTITION
CNTL_MAJOR = 5  # qaic_drv.c
CNTL_MINOR = 0
STATUS_FLAG_CRC = 1 << 0  # status_flags bit 0: device requires CRC

_HDR = struct.Struct("<IIIIIIiI")


_TH = struct.Struct("<II")


class TransType(enum.IntEnum):
    """uapi ``QAIC_TRANS_*`` codes (control-path.md §1.2)."""

    UNDEFINED = 0
    PASSTHROUGH_FROM_USR = 1
    PASSTHROUGH_TO_USR = 2
    PASSTHROUGH_FROM_DEV = 3
    PASSTHROUGH_TO_DEV = 4
    DMA_XFER_FROM_USR = 5
    DMA_XFER_TO_DEV = 6
    ACTIVATE_FROM_USR = 7
    ACTIVATE_FROM_DEV = 8
    ACTIVATE_TO_DEV = 9
    DEACTIVATE_FROM_USR = 10
    DEACTIVATE_FROM_DEV = 11
    STATUS_FROM_USR = 12
    STATUS_TO_USR = 13
    STATUS_FROM_DEV = 14
    STATUS_TO_DEV = 15
    TERMINATE_FROM_DEV = 16
    TERMINATE_TO_DEV = 17
    DMA_XFER_CONT = 18
    VALIDATE_PARTITION_FROM_DEV = 19
    VALIDATE_PARTITION_TO_DEV = 20


#: Wire types by direction (only these travel on MHI; *_USR codes are uapi-only).
H2D_TYPES = frozenset({4, 6, 9, 15, 17, 20})
D2H_TYPES = frozenset({3, 8, 11, 14, 16, 18, 19})


def _type_name(t: int) -> str:
    try:
        return TransType(t).name
    except ValueError:
        return f"UNKNOWN_{t}"


def status_u32(nnc_status: int) -> int:
    """An NNC status (0 or a negative code) as the u32 a ``status`` field carries."""
    return nnc_status & 0xFFFFFFFF


def status_s32(field: int) -> int:
    """A ``status`` u32 read back as the signed NNC status code."""
    return field - (1 << 32) if field & 0x80000000 else field


def seq_follows(last: int, seq: int) -> bool:
    """Whether a host message numbered ``seq`` may follow one numbered ``last`` on the wire
    (rule HOST-NNC-SEQ).  qaic_manage_msg_xfer takes ``next_seq_num++`` (a u32) *before*
    msg_xfer looks for ring room, so a message refused with -EAGAIN (or whose
    mhi_queue_buf fails) leaves a gap (6.12 and 7.2 qaic_control.c): numbers rise, not
    necessarily by one.  Rising means ahead by 1 .. 2**31 - 1 modulo 2**32 (the counter
    wraps); a repeat or a step back is a violation.
    """
    return 0 < (seq - last) & 0xFFFFFFFF < 1 << 31


# --------------------------------------------------------------------------
# validators


def _uint(bits: int) -> Any:
    hi = 1 << bits

    def check(inst: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < hi:
            raise ArgumentError(
                f"{type(inst).__name__}.{attribute.name}={value!r} is not a u{bits}"
            )

    return check


_U32 = _uint(32)


def _sint(bits: int) -> Any:
    lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)

    def check(inst: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value < hi:
            raise ArgumentError(
                f"{type(inst).__name__}.{attribute.name}={value!r} is not an s{bits}"
            )

    return check


def _opt_len(inst: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        _U32(inst, attribute, value)


def _bytes(inst: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, bytes):
        raise ArgumentError(f"{type(inst).__name__}.{attribute.name} must be bytes")


def _u32f(default: int = 0) -> Any:
    return attrs.field(default=default, validator=_uint(32))


def _u64f(default: int = 0) -> Any:
    return attrs.field(default=default, validator=_uint(64))


def _lenf() -> Any:
    return attrs.field(default=None, validator=_opt_len, kw_only=True)


def _tailf() -> Any:
    return attrs.field(default=b"", validator=_bytes, kw_only=True)


# --------------------------------------------------------------------------
# transactions (control-path.md §1.3; all LE, offsets from the transaction start)


class _Fixed:
    """A transaction with a fixed body after the 8-byte header (+ ``tail`` bytes kept)."""

    TYPE: ClassVar[int]
    BODY: ClassVar[struct.Struct]
    NAMES: ClassVar[tuple[str, ...]]

    def __attrs_post_init__(self) -> None:
        if self.len is None:  # type: ignore[attr-defined]
            object.__setattr__(self, "len", self.natural_len())

    @property
    def type(self) -> int:
        return self.TYPE

    def natural_len(self) -> int:
        return TRANS_HDR_SIZE + self.BODY.size + len(self.tail)  # type: ignore[attr-defined]

    def pack(self) -> bytes:
        vals = [getattr(self, n) for n in self.NAMES]
        return _TH.pack(self.TYPE, self.len) + self.BODY.pack(*vals) + self.tail  # type: ignore[attr-defined]

    @classmethod
    def from_body(cls, length: int, body: bytes) -> Any:
        vals = cls.BODY.unpack(body[: cls.BODY.size])
        return cls(*vals, len=length, tail=body[cls.BODY.size :])  # type: ignore[call-arg]

    def fields(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self.NAMES}

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.TYPE, "type_name": _type_name(self.TYPE), "len": self.len}  # type: ignore[attr-defined]
        d.update(self.fields())
        if self.tail:  # type: ignore[attr-defined]
            d["tail_hex"] = self.tail.hex()  # type: ignore[attr-defined]
        return d


@attrs.frozen
class Passthrough:
    """``wire_trans_passthrough``: header + opaque payload (type 4 out, 3 in; 1/2 in uapi)."""

    type: int = attrs.field(default=TransType.PASSTHROUGH_TO_DEV, validator=_uint(32))
    data: bytes = attrs.field(default=b"", validator=_bytes)
    len: int | None = _lenf()

    def __attrs_post_init__(self) -> None:
        if self.len is None:
            object.__setattr__(self, "len", TRANS_HDR_SIZE + len(self.data))

    def pack(self) -> bytes:
        return _TH.pack(self.type, self.len) + self.data

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "type_name": _type_name(self.type),
            "len": self.len,
            "data_hex": self.data.hex(),
        }


_PAIR = struct.Struct("<QQ")


def _pairs(inst: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, tuple):
        raise ArgumentError("DmaXfer.pairs must be a tuple of (addr, size)")
    for p in value:
        if (
            not isinstance(p, tuple)
            or len(p) != 2
            or not all(isinstance(x, int) and 0 <= x < 1 << 64 for x in p)
        ):
            raise ArgumentError(f"DmaXfer pair {p!r} is not (u64 addr, u64 size)")


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value)


@attrs.frozen
class DmaXfer:
    """``wire_trans_dma_xfer`` (type 6): tag, count, dma_chunk_id, padding, pairs @24."""

    TYPE: ClassVar[int] = TransType.DMA_XFER_TO_DEV
    tag: int = _u32f()
    pairs: tuple[tuple[int, int], ...] = attrs.field(
        default=(), converter=_as_tuple, validator=_pairs
    )
    dma_chunk_id: int = _u32f()
    padding: int = _u32f()
    count: int | None = attrs.field(default=None, validator=_opt_len)
    len: int | None = _lenf()
    tail: bytes = _tailf()

    def __attrs_post_init__(self) -> None:
        if self.count is None:
            object.__setattr__(self, "count", len(self.pairs))
        if self.len is None:
            object.__setattr__(self, "len", 24 + 16 * len(self.pairs) + len(self.tail))

    @property
    def type(self) -> int:
        return self.TYPE

    def pack(self) -> bytes:
        return (
            _TH.pack(self.TYPE, self.len)
            + struct.pack("<IIII", self.tag, self.count, self.dma_chunk_id, self.padding)
            + b"".join(_PAIR.pack(a, s) for a, s in self.pairs)
            + self.tail
        )

    @classmethod
    def from_body(cls, length: int, body: bytes) -> DmaXfer:
        tag, count, chunk, pad = struct.unpack_from("<IIII", body, 0)
        rest = body[16:]
        n = len(rest) // 16
        pairs = tuple(_PAIR.unpack_from(rest, 16 * i) for i in range(n))
        return cls(
            tag=tag,
            pairs=pairs,
            dma_chunk_id=chunk,
            padding=pad,
            count=count,
            len=length,
            tail=rest[16 * n :],
        )

    def as_dict(self) -> dict[str, Any]:
        d = {
            "type": self.TYPE,
            "type_name": _type_name(self.TYPE),
            "len": self.len,
            "tag": self.tag,
            "count": self.count,
            "dma_chunk_id": self.dma_chunk_id,
            "padding": self.padding,
            "pairs": [{"addr": f"0x{a:x}", "size": s} for a, s in self.pairs],
        }
        if self.tail:
            d["tail_hex"] = self.tail.hex()
        return d


def _fixed(type_: int, fmt: str, names: tuple[str, ...]) -> Any:
    """Class decorator: give a frozen attrs transaction its wire layout."""

    def deco(cls: Any) -> Any:
        cls.TYPE = type_
        cls.BODY = struct.Struct("<" + fmt)
        cls.NAMES = names
        return cls

    return deco


@_fixed(TransType.DMA_XFER_CONT, "IIQ", ("dma_chunk_id", "padding", "xferred_size"))
@attrs.frozen
class DmaXferCont(_Fixed):
    """``wire_trans_dma_xfer_cont`` (type 18, 24 bytes): the device asks for more."""

    dma_chunk_id: int = _u32f()
    padding: int = _u32f()
    xferred_size: int = _u64f()
    len: int | None = _lenf()
    tail: bytes = _tailf()


@_fixed(
    TransType.ACTIVATE_TO_DEV,
    "QQIIII",
    ("req_q_addr", "rsp_q_addr", "req_q_size", "rsp_q_size", "buf_len", "options"),
)
@attrs.frozen
class ActivateToDev(_Fixed):
    """``wire_trans_activate_to_dev`` (type 9, 40 bytes): the donated FIFO memory."""

    req_q_addr: int = _u64f()
    rsp_q_addr: int = _u64f()
    req_q_size: int = _u32f()
    rsp_q_size: int = _u32f()
    buf_len: int = _u32f()
    options: int = _u32f()
    len: int | None = _lenf()
    tail: bytes = _tailf()


@_fixed(TransType.ACTIVATE_FROM_DEV, "IIQ", ("status", "dbc_id", "options"))
@attrs.frozen
class ActivateFromDev(_Fixed):
    """``wire_trans_activate_from_dev`` (type 8, 24 bytes)."""

    status: int = _u32f()
    dbc_id: int = _u32f()
    options: int = _u64f()
    len: int | None = _lenf()
    tail: bytes = _tailf()


@_fixed(TransType.DEACTIVATE_FROM_DEV, "II", ("status", "dbc_id"))
@attrs.frozen
class DeactivateFromDev(_Fixed):
    """``wire_trans_deactivate_from_dev`` (type 11, 16 bytes)."""

    status: int = _u32f()
    dbc_id: int = _u32f()
    len: int | None = _lenf()
    tail: bytes = _tailf()


@_fixed(TransType.TERMINATE_TO_DEV, "II", ("handle", "padding"))
@attrs.frozen
class TerminateToDev(_Fixed):
    """``wire_trans_terminate_to_dev`` (type 17, 16 bytes)."""

    handle: int = _u32f()
    padding: int = _u32f()
    len: int | None = _lenf()
    tail: bytes = _tailf()


@_fixed(TransType.TERMINATE_FROM_DEV, "II", ("status", "padding"))
@attrs.frozen
class TerminateFromDev(_Fixed):
    """``wire_trans_terminate_from_dev`` (type 16, 16 bytes)."""

    status: int = _u32f()
    padding: int = _u32f()
    len: int | None = _lenf()
    tail: bytes = _tailf()


@_fixed(TransType.STATUS_TO_DEV, "", ())
@attrs.frozen
class StatusToDev(_Fixed):
    """``wire_trans_status_to_dev`` (type 15, 8 bytes: header only).

    The driver copies the user's ``hdr.len`` into ``len`` but sends 8 bytes
    (qaic_control.c ``encode_status``); ``len`` may therefore exceed the bytes.
    """

    len: int | None = _lenf()
    tail: bytes = _tailf()


@_fixed(TransType.STATUS_FROM_DEV, "HHIQ", ("major", "minor", "status", "status_flags"))
@attrs.frozen
class StatusFromDev(_Fixed):
    """``wire_trans_status_from_dev`` (type 14, 24 bytes); flags bit 0 = CRC required."""

    major: int = attrs.field(default=CNTL_MAJOR, validator=_uint(16))
    minor: int = attrs.field(default=CNTL_MINOR, validator=_uint(16))
    status: int = _u32f()
    status_flags: int = _u64f()
    len: int | None = _lenf()
    tail: bytes = _tailf()


@_fixed(TransType.VALIDATE_PARTITION_TO_DEV, "II", ("part_id", "padding"))
@attrs.frozen
class ValidatePartToDev(_Fixed):
    """``wire_trans_validate_part_to_dev`` (type 20, 16 bytes; unused by the driver)."""

    part_id: int = _u32f()
    padding: int = _u32f()
    len: int | None = _lenf()
    tail: bytes = _tailf()


@_fixed(TransType.VALIDATE_PARTITION_FROM_DEV, "II", ("status", "padding"))
@attrs.frozen
class ValidatePartFromDev(_Fixed):
    """``wire_trans_validate_part_from_dev`` (type 19, 16 bytes; unused by the driver)."""

    status: int = _u32f()
    padding: int = _u32f()
    len: int | None = _lenf()
    tail: bytes = _tailf()


@attrs.frozen
class RawTrans:
    """A transaction the decoder could not give a layout (unknown type or too short)."""

    type: int = attrs.field(validator=_uint(32))
    data: bytes = attrs.field(default=b"", validator=_bytes)
    len: int | None = _lenf()

    def __attrs_post_init__(self) -> None:
        if self.len is None:
            object.__setattr__(self, "len", TRANS_HDR_SIZE + len(self.data))

    def pack(self) -> bytes:
        return _TH.pack(self.type, self.len) + self.data

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "type_name": _type_name(self.type),
            "len": self.len,
            "data_hex": self.data.hex(),
        }


Trans = Any  # any of the transaction classes above

#: type code -> class with a fixed layout (passthrough and dma_xfer handled apart)
FIXED: dict[int, Any] = {
    c.TYPE: c
    for c in (
        DmaXferCont,
        ActivateToDev,
        ActivateFromDev,
        DeactivateFromDev,
        TerminateToDev,
        TerminateFromDev,
        StatusToDev,
        StatusFromDev,
        ValidatePartToDev,
        ValidatePartFromDev,
    )
}
