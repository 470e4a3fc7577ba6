"""NNC wire protocol: the messages the host and QSM exchange on QAIC_CONTROL (MHI 10/11).

Rules (aic100.rst "Neural Network Control (NNC) Protocol"; control-path.md §1,
which reads qaic_control.c):
  * a message is a 32-byte header (``wire_msg_hdr``: crc32, magic, sequence
    number, len, count, handle, partition_id, padding -- eight LE u32) followed
    by ``count`` transactions; ``len`` counts the header too;
  * each transaction starts with ``{type u32, len u32}``; ``len`` counts that
    8-byte header; everything is little endian and naturally aligned, so every
    transaction length is a multiple of 8 (64-bit alignment is kept);
  * device->host messages are at most 4 KiB, host->device at most 64 KiB; the
    host sends a message as a chain of MHI buffers ("wrappers"): the header,
    then one per transaction, DMA lists split at 4 KiB wrapper boundaries;
  * CRC-32 covers the whole message with the crc field zeroed (:mod:`crc`);
  * a DMA transfer too large for one message is continued: the device answers
    with a lone ``DMA_XFER_CONT`` (type 18) and the host sends another
    ``DMA_XFER_TO_DEV`` with the same non-zero ``dma_chunk_id``.

Decoding: :func:`parse` never raises; it returns what it could read and every
rule the bytes break, each with its byte offset.  :func:`decode` is the strict
form: a :class:`Message` or :class:`~qaicmodel.errors.DecodeError` naming the
first broken rule and its offset.  ``decode(m.pack()) == m`` for every message
:func:`decode` accepts.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from typing import Any, ClassVar

import attrs

from qaicmodel.errors import ArgumentError, DecodeError
from qaicmodel.findings import Finding
from qaicmodel.spec.control.crc import nnc_crc

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
    "Violation",
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
    "Message",
    "parse",
    "decode",
    "describe",
    "chain",
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
        _uint(32)(inst, attribute, value)


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


class Violation(Finding):
    """One protocol rule a message breaks, at a byte offset (None: the whole input): a
    :class:`Finding` at ``offset``."""

    __slots__ = ()

    def __init__(
        self, rule: str, offset: int | None, message: str, source: str = "control-path.md §1"
    ) -> None:
        super().__init__(rule, message, source, {"offset": offset})


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


# --------------------------------------------------------------------------
# message


@attrs.frozen
class Message:
    """One NNC message: the ``wire_msg_hdr`` fields and its transactions."""

    transactions: tuple[Any, ...] = attrs.field(default=(), converter=_as_tuple)
    seq: int = _u32f()
    handle: int = _u32f()
    partition_id: int = attrs.field(default=NO_PARTITION, validator=_sint(32))
    crc32: int = _u32f()
    magic: int = _u32f(MAGIC)
    len: int | None = attrs.field(default=None, validator=_opt_len)
    count: int | None = attrs.field(default=None, validator=_opt_len)
    padding: int = _u32f()

    def __attrs_post_init__(self) -> None:
        if self.len is None:
            object.__setattr__(self, "len", HDR_SIZE + sum(t.len for t in self.transactions))
        if self.count is None:
            object.__setattr__(self, "count", len(self.transactions))

    @classmethod
    def build(
        cls,
        transactions: Iterable[Any],
        *,
        seq: int,
        handle: int = 0,
        partition_id: int = NO_PARTITION,
        crc: bool = True,
    ) -> Message:
        """A well-formed message; the CRC is computed over it (0 when ``crc`` is off)."""
        m = cls(tuple(transactions), seq=seq, handle=handle, partition_id=partition_id)
        return m.with_crc() if crc else m

    def header(self) -> bytes:
        return _HDR.pack(
            self.crc32,
            self.magic,
            self.seq,
            self.len,
            self.count,
            self.handle,
            self.partition_id,
            self.padding,
        )

    def pack(self) -> bytes:
        return self.header() + b"".join(t.pack() for t in self.transactions)

    def with_crc(self) -> Message:
        return attrs.evolve(self, crc32=nnc_crc(self.pack(), self.len))

    def crc_ok(self) -> bool:
        return self.crc32 == nnc_crc(self.pack(), self.len)

    def as_dict(self) -> dict[str, Any]:
        return {
            "crc32": f"0x{self.crc32:08x}",
            "magic": f"0x{self.magic:08x}",
            "sequence_number": self.seq,
            "len": self.len,
            "count": self.count,
            "handle": self.handle,
            "partition_id": self.partition_id,
            "padding": self.padding,
        }


def chain(msg: Message) -> list[bytes]:
    """The MHI buffers the host queues for ``msg`` (MHI_CHAIN on all but the last).

    qaic_control.c: the header is its own wrapper; each transaction gets one;
    a DMA list is cut where the next address/size pair would cross a 4 KiB
    wrapper (``encode_addr_size_pairs``); ``StatusToDev`` sends only its 8 bytes.
    """
    out = [msg.header()]
    room = WRAPPER_MAX - WRAPPER_PREFIX
    for t in msg.transactions:
        raw = t.pack()
        if isinstance(t, DmaXfer):
            first = 24 + ((room - 24) // 16) * 16
            out.append(raw[:first])
            pos = first
            step = (room // 16) * 16
            while pos < len(raw):
                out.append(raw[pos : pos + step])
                pos += step
        else:
            out.append(raw)
    return out


# --------------------------------------------------------------------------
# decoding


@attrs.define
class Parsed:
    """What :func:`parse` read: header fields, transactions (with offsets), violations."""

    direction: str
    header: dict[str, int] = attrs.field(factory=dict)
    transactions: list[tuple[int, Any]] = attrs.field(factory=list)
    violations: list[Violation] = attrs.field(factory=list)
    crc_ok: bool | None = None
    crc_computed: int | None = None
    message: Message | None = None


def _direction(data: bytes, requested: str | None) -> str:
    if requested in ("h2d", "d2h"):
        return requested
    if requested is not None:
        raise ArgumentError(f"direction must be 'h2d', 'd2h' or None, not {requested!r}")
    if len(data) >= HDR_SIZE + 4:
        t = struct.unpack_from("<I", data, HDR_SIZE)[0]
        if t in D2H_TYPES:
            return "d2h"
    return "h2d"


def parse(data: bytes | bytearray | memoryview, direction: str | None = None) -> Parsed:
    """Read ``data`` as an NNC message, collecting every broken rule.  Never raises
    (except ArgumentError for a bad ``direction`` argument)."""
    data = bytes(data)
    d = _direction(data, direction)
    p = Parsed(direction=d)
    v = p.violations.append
    if len(data) < HDR_SIZE:
        v(
            Violation(
                "NNC-HDR-SHORT",
                len(data),
                f"a message starts with a {HDR_SIZE}-byte header; got {len(data)} bytes",
            )
        )
        return p
    crc, magic, seq, mlen, count, handle, part, pad = _HDR.unpack_from(data, 0)
    p.header = {
        "crc32": crc,
        "magic": magic,
        "sequence_number": seq,
        "len": mlen,
        "count": count,
        "handle": handle,
        "partition_id": part,
        "padding": pad,
    }
    if magic != MAGIC:
        v(Violation("NNC-MAGIC", 4, f"magic 0x{magic:08x} is not 0x{MAGIC:08x} ('QAIC')"))
    limit = MAX_D2H if d == "d2h" else MAX_H2D
    if mlen < HDR_SIZE:
        v(Violation("NNC-LEN-MIN", 12, f"len {mlen} is smaller than the {HDR_SIZE}-byte header"))
    if mlen > limit:
        v(
            Violation(
                "NNC-LEN-MAX", 12, f"len {mlen} exceeds the {limit}-byte limit for {d} messages"
            )
        )
    if mlen > len(data):
        v(Violation("NNC-TRUNCATED", 12, f"len {mlen} but only {len(data)} bytes present"))
    elif mlen >= HDR_SIZE and len(data) > mlen:
        v(Violation("NNC-TRAILING", mlen, f"{len(data) - mlen} bytes after the message end"))
    if pad != 0:
        v(Violation("NNC-PADDING", 28, f"header padding is 0x{pad:x}, must be 0"))
    end = min(max(mlen, HDR_SIZE), len(data))
    p.crc_computed = nnc_crc(data, min(mlen, len(data)))
    p.crc_ok = p.crc_computed == crc
    if crc != 0 and not p.crc_ok:
        v(
            Violation(
                "NNC-CRC",
                0,
                f"crc32 0x{crc:08x} does not match the computed 0x{p.crc_computed:08x}",
            )
        )
    off = HDR_SIZE
    ok_shape = True
    for i in range(count):
        if off + TRANS_HDR_SIZE > end:
            v(
                Violation(
                    "NNC-COUNT", 16, f"count {count} but only {i} transactions fit in the message"
                )
            )
            ok_shape = False
            break
        ttype, tlen = _TH.unpack_from(data, off)
        if tlen < TRANS_HDR_SIZE:
            v(
                Violation(
                    "NNC-TRANS-LEN-MIN",
                    off + 4,
                    f"transaction {i} len {tlen} is smaller than its 8-byte header",
                )
            )
            ok_shape = False
            break
        if off + tlen > end:
            v(
                Violation(
                    "NNC-TRANS-OVERRUN",
                    off + 4,
                    f"transaction {i} (len {tlen}) runs past the message end at {end}",
                )
            )
            ok_shape = False
            break
        if tlen % 8:
            v(
                Violation(
                    "NNC-TRANS-ALIGN",
                    off + 4,
                    f"transaction {i} len {tlen} is not a multiple of 8 (64-bit alignment)",
                )
            )
        body = data[off + TRANS_HDR_SIZE : off + tlen]
        p.transactions.append((off, _read_trans(ttype, tlen, body, off, i, d, count, v)))
        off += tlen
    if ok_shape and count and mlen >= HDR_SIZE and off != mlen and mlen <= len(data):
        v(
            Violation(
                "NNC-LEN-SUM",
                12,
                f"transactions cover {off - HDR_SIZE} bytes but len says {mlen - HDR_SIZE}",
            )
        )
    if count == 0 and mlen > HDR_SIZE:
        v(
            Violation(
                "NNC-LEN-SUM",
                12,
                f"count 0 but len {mlen} leaves {mlen - HDR_SIZE} bytes of transactions",
            )
        )
    if not p.violations or all(x.rule == "NNC-CRC" for x in p.violations):
        p.message = Message(
            tuple(t for _, t in p.transactions),
            seq=seq,
            handle=handle,
            partition_id=part,
            crc32=crc,
            magic=magic,
            len=mlen,
            count=count,
            padding=pad,
        )
    return p


def _read_trans(
    ttype: int, tlen: int, body: bytes, off: int, i: int, d: str, count: int, v: Any
) -> Any:
    if ttype not in H2D_TYPES and ttype not in D2H_TYPES:
        v(
            Violation(
                "NNC-TRANS-TYPE",
                off,
                f"transaction {i} type {ttype} ({_type_name(ttype)}) is not a wire type",
            )
        )
        return RawTrans(ttype, body, len=tlen)
    if (d == "h2d") != (ttype in H2D_TYPES):
        v(
            Violation(
                "NNC-TRANS-DIR",
                off,
                f"transaction {i} type {_type_name(ttype)} does not travel {d}",
            )
        )
    if ttype in (TransType.PASSTHROUGH_TO_DEV, TransType.PASSTHROUGH_FROM_DEV):
        return Passthrough(ttype, body, len=tlen)
    if ttype == TransType.DMA_XFER_TO_DEV:
        if len(body) < 16:
            v(
                Violation(
                    "NNC-TRANS-SIZE",
                    off + 4,
                    f"dma_xfer len {tlen} is shorter than its 24-byte fixed part",
                )
            )
            return RawTrans(ttype, body, len=tlen)
        t = DmaXfer.from_body(tlen, body)
        if t.tail:
            v(Violation("NNC-DMA-PAIRS", off + 4, f"dma_xfer len {tlen} is not 24 + 16*k"))
        if t.count != len(t.pairs):
            v(
                Violation(
                    "NNC-DMA-COUNT",
                    off + 12,
                    f"dma_xfer count {t.count} but {len(t.pairs)} pairs present",
                )
            )
        return t
    cls = FIXED[ttype]
    size = TRANS_HDR_SIZE + cls.BODY.size
    if tlen < size:
        v(
            Violation(
                "NNC-TRANS-SIZE",
                off + 4,
                f"{_type_name(ttype)} len {tlen} is shorter than its {size}-byte layout",
            )
        )
        return RawTrans(ttype, body, len=tlen)
    if tlen != size:
        v(
            Violation(
                "NNC-TRANS-SIZE",
                off + 4,
                f"{_type_name(ttype)} len {tlen}, the layout is {size} bytes",
            )
        )
    t = cls.from_body(tlen, body)
    if ttype == TransType.DMA_XFER_CONT and count != 1:
        v(
            Violation(
                "NNC-CONT-ALONE",
                off,
                f"dma_xfer_cont must be the only transaction (count is {count})",
            )
        )
    return t


def decode(
    data: bytes | bytearray | memoryview, direction: str | None = None, *, check_crc: bool = False
) -> Message:
    """Strict decode: a :class:`Message`, or DecodeError for the first broken rule.

    A CRC mismatch is an error only with ``check_crc`` (the CRC may have been
    negotiated off, and then the field is 0).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"NNC message must be bytes, not {type(data).__name__}", rule="NNC-TYPE")
    p = parse(data, direction)
    for viol in p.violations:
        if viol.rule == "NNC-CRC" and not check_crc:
            continue
        raise DecodeError(viol.message, offset=viol.offset, rule=viol.rule)
    if check_crc and p.header.get("crc32") == 0 and not p.crc_ok:
        raise DecodeError("crc32 is 0 but the device requires CRC", offset=0, rule="NNC-CRC")
    assert p.message is not None
    return p.message


def describe(data: bytes) -> dict[str, Any]:
    """``qaicmodel decode nnc HEX``: header, transactions, crc_ok and violations."""
    p = parse(data)
    return {
        "kind": "nnc",
        "direction": p.direction,
        "size": len(bytes(data)),
        "header": {
            k: (f"0x{val:08x}" if k in ("crc32", "magic") else val) for k, val in p.header.items()
        },
        "transactions": [dict(offset=off, **t.as_dict()) for off, t in p.transactions],
        "crc_ok": p.crc_ok,
        "crc_computed": None if p.crc_computed is None else f"0x{p.crc_computed:08x}",
        "violations": [x.as_dict() for x in p.violations],
    }
