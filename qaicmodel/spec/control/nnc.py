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

The transaction layouts live in :mod:`qaicmodel.spec.control.nnc_trans` (re-exported
here: ``nnc.DmaXfer``, ``nnc.TransType``, ... stay importable from this module).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable
from typing import Any

import attrs

from qaicmodel.errors import ArgumentError, DecodeError
from qaicmodel.findings import Finding
from qaicmodel.spec.control.crc import nnc_crc
from qaicmodel.spec.control.nnc_trans import (  # noqa: F401  (re-exported)
    _HDR,
    _TH,
    CNTL_MAJOR,
    CNTL_MINOR,
    D2H_TYPES,
    FIXED,
    H2D_TYPES,
    HDR_SIZE,
    MAGIC,
    MAX_D2H,
    MAX_H2D,
    NO_PARTITION,
    STATUS_FLAG_CRC,
    TRANS_HDR_SIZE,
    WRAPPER_MAX,
    WRAPPER_PREFIX,
    ActivateFromDev,
    ActivateToDev,
    DeactivateFromDev,
    DmaXfer,
    DmaXferCont,
    Passthrough,
    RawTrans,
    StatusFromDev,
    StatusToDev,
    TerminateFromDev,
    TerminateToDev,
    TransType,
    ValidatePartFromDev,
    ValidatePartToDev,
    _as_tuple,
    _opt_len,
    _sint,
    _type_name,
    _u32f,
    seq_follows,
    status_s32,
    status_u32,
)

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


class Violation(Finding):
    """One protocol rule a message breaks, at a byte offset (None: the whole input): a
    :class:`Finding` at ``offset``."""

    __slots__ = ()

    def __init__(
        self, rule: str, offset: int | None, message: str, source: str = "control-path.md §1"
    ) -> None:
        super().__init__(rule, message, source, {"offset": offset})


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
    return _decode(bytes(data), direction, check_crc)


@functools.lru_cache(maxsize=4096)
def _decode(data: bytes, direction: str | None, check_crc: bool) -> Message:
    """:func:`decode` of bytes (cached: a pure function of its arguments, and a Message
    is frozen; a DecodeError is raised afresh each time)."""
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
