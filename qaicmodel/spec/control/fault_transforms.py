"""The transformations behind the control-fault table (:mod:`.faults`).

Each maker returns a ``Transform`` ``(rng, request, replies) -> Outcome`` or a ``Check``
``(request, replies) -> bool``; they rewrite device->host bytes in place of the field a
fault names and never touch the host's request.  Layouts: NNC ``wire_msg_hdr`` /
``wire_trans_hdr`` (qaic_control.c), ``struct ras_data`` (qaic_ras.c), Sahara packets
(sahara.c), all of linux-source-7.2.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from qaicmodel.spec.control import nnc
from qaicmodel.spec.control.crc import nnc_crc

_HDR = struct.Struct("<IIIIIIiI")
_TH = struct.Struct("<II")


@attrs.frozen
class Outcome:
    """What the device sends instead of ``replies`` (see the module docstring)."""

    now: tuple[bytes, ...]
    late: tuple[bytes, ...] = ()
    stall: bool = False
    fired: bool = True
    detail: str = ""


#: what an Injector knows beyond one exchange: ``dma_sent`` = {chunk id: bytes the host
#: sent under it before this request} (from the device's own DMA_XFER_CONT replies)
Ctx = Mapping[str, Any] | None
Transform = Callable[[random.Random, bytes, tuple[bytes, ...], Ctx], Outcome]
Check = Callable[[bytes, tuple[bytes, ...]], bool]


# --------------------------------------------------------------------------
# NNC helpers: read and rewrite a device->host message without decoding it strictly


def _trans(msg: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, len) of the transactions a well-formed reply holds."""
    if len(msg) < nnc.HDR_SIZE:
        return []
    _c, _m, _s, mlen, count, _h, _p, _pad = _HDR.unpack_from(msg, 0)
    out, off = [], nnc.HDR_SIZE
    for _ in range(count):
        if off + 8 > min(mlen, len(msg)):
            break
        t, ln = _TH.unpack_from(msg, off)
        out.append((off, t, ln))
        if ln < 8:
            break
        off += ln
    return out


def _recrc(msg: bytes, old: bytes) -> bytes:
    """Recompute the CRC when the device had computed one for ``old``."""
    if len(old) < nnc.HDR_SIZE or struct.unpack_from("<I", old, 0)[0] == 0:
        return msg
    ln = min(struct.unpack_from("<I", msg, 12)[0], len(msg))
    return struct.pack("<I", nnc_crc(msg, ln)) + msg[4:]


def _put(msg: bytes, off: int, fmt: str, *vals: int) -> bytes:
    b = bytearray(msg)
    struct.pack_into(fmt, b, off, *vals)
    return bytes(b)


def _first(replies: tuple[bytes, ...], types: Sequence[int] | None = None) -> int | None:
    for i, r in enumerate(replies):
        for _off, t, _ln in _trans(r):
            if types is None or t in types:
                return i
    return None


def _has_trans(types: Sequence[int] | None = None) -> Check:
    return lambda req, rep: _first(rep, types) is not None


def _any_reply(req: bytes, rep: tuple[bytes, ...]) -> bool:
    return bool(rep) and all(len(r) >= nnc.HDR_SIZE for r in rep)


def _edit_first(
    types: Sequence[int] | None,
    edit: Callable[[random.Random, bytes, list[tuple[int, int, int]]], tuple[bytes, str]],
    recrc: bool = True,
) -> Transform:
    def tf(rng: random.Random, req: bytes, rep: tuple[bytes, ...], ctx: Ctx = None) -> Outcome:
        i = _first(rep, types)
        if i is None and types is None and rep:
            i = 0  # a header-only reply: header faults still apply
        if i is None:
            return Outcome(rep, fired=False)
        ts = [x for x in _trans(rep[i]) if types is None or x[1] in types]
        new, detail = edit(rng, rep[i], ts)
        if recrc:
            new = _recrc(new, rep[i])
        return Outcome(rep[:i] + (new,) + rep[i + 1 :], detail=detail)

    return tf


def _trans_len(
    pick: Callable[[random.Random, bytes, int, int], int],
) -> Callable[..., tuple[bytes, str]]:
    def edit(rng: random.Random, msg: bytes, ts: list[tuple[int, int, int]]) -> tuple[bytes, str]:
        off, _t, ln = ts[rng.randrange(len(ts))]
        new_len = pick(rng, msg, off, ln)
        return _put(msg, off + 4, "<I", new_len), f"transaction at {off}: len {ln} -> {new_len}"

    return edit


def _overrun(rng: random.Random, msg: bytes, off: int, ln: int) -> int:
    mlen = struct.unpack_from("<I", msg, 12)[0]
    return mlen - off + 8 * rng.randint(1, 8)  # 8..64 bytes past the message end


def _len_past_end(
    rng: random.Random, msg: bytes, ts: list[tuple[int, int, int]]
) -> tuple[bytes, str]:
    mlen = struct.unpack_from("<I", msg, 12)[0]
    if rng.random() < 0.5 and mlen + 8 <= nnc.MAX_D2H:
        new = rng.randrange(mlen + 8, nnc.MAX_D2H + 1, 8)  # inside the 4 KiB buffer
    else:
        new = nnc.MAX_D2H + 8 * rng.randint(1, 64)  # past QAIC_MANAGE_MAX_MSG_LENGTH
    return _put(msg, 12, "<I", new), f"header len {mlen} -> {new} ({len(msg)} bytes sent)"


def _len_below_hdr(
    rng: random.Random, msg: bytes, ts: list[tuple[int, int, int]]
) -> tuple[bytes, str]:
    mlen = struct.unpack_from("<I", msg, 12)[0]
    first = ts[0][2] if ts else 8
    # >= the first transaction (so decode_message decodes it) but < the 32-byte header
    new = rng.randint(max(8, min(first, 31)), 31)
    return _put(msg, 12, "<I", new), f"header len {mlen} -> {new} (below the 32-byte header)"


def _count_too_big(
    rng: random.Random, msg: bytes, ts: list[tuple[int, int, int]]
) -> tuple[bytes, str]:
    count = struct.unpack_from("<I", msg, 16)[0]
    new = count + rng.choice([1, 2, 7, 511, 0xFFFFFFFF - count])
    return _put(msg, 16, "<I", new), f"count {count} -> {new}"


def _count_zero(
    rng: random.Random, msg: bytes, ts: list[tuple[int, int, int]]
) -> tuple[bytes, str]:
    return _put(msg, 16, "<I", 0), "count -> 0 (len still covers the transactions)"


_STATUS_TYPES = (
    nnc.TransType.ACTIVATE_FROM_DEV,
    nnc.TransType.DEACTIVATE_FROM_DEV,
    nnc.TransType.STATUS_FROM_DEV,
)
#: NNC status codes a refusing QSM uses (userspace.md §5.2)
_NNC_CODES = (-1, -3, -4, -6, -9, -11, -13, -14, -36)


def _status_nonzero(
    rng: random.Random, msg: bytes, ts: list[tuple[int, int, int]]
) -> tuple[bytes, str]:
    off, t, _ln = ts[rng.randrange(len(ts))]
    field = off + (12 if t == nnc.TransType.STATUS_FROM_DEV else 8)
    code = rng.choice(_NNC_CODES)
    return (
        _put(msg, field, "<I", nnc.status_u32(code)),
        f"{nnc.TransType(t).name} status -> {code}",
    )


def _dbc_out_of_range(
    rng: random.Random, msg: bytes, ts: list[tuple[int, int, int]]
) -> tuple[bytes, str]:
    off, t, _ln = ts[rng.randrange(len(ts))]
    dbc = rng.choice([16, 17, 255, 0x7FFFFFFF, 0xFFFFFFFF])
    return _put(msg, off + 12, "<I", dbc), f"{nnc.TransType(t).name} dbc_id -> {dbc}"


def _bad_magic(rng: random.Random, msg: bytes, ts: list[tuple[int, int, int]]) -> tuple[bytes, str]:
    magic = rng.choice([0, 0x51414943, nnc.MAGIC ^ (1 << rng.randrange(32))])
    return _put(msg, 4, "<I", magic), f"magic -> 0x{magic:08x}"


def _bad_crc(rng: random.Random, msg: bytes, ts: list[tuple[int, int, int]]) -> tuple[bytes, str]:
    crc = struct.unpack_from("<I", msg, 0)[0] ^ (1 << rng.randrange(32))
    return _put(msg, 0, "<I", crc), f"crc32 -> 0x{crc:08x}"


def _wrong_seq(rng: random.Random, msg: bytes, ts: list[tuple[int, int, int]]) -> tuple[bytes, str]:
    seq = struct.unpack_from("<I", msg, 8)[0]
    new = (seq + rng.choice([1, 2, 0x80000000, 0xFFFFFFFF])) & 0xFFFFFFFF
    return _put(msg, 8, "<I", new), f"sequence_number {seq} -> {new}"


# -- schedule faults ---------------------------------------------------------------


def _hold(types: Sequence[int] | None) -> Transform:
    def tf(rng: random.Random, req: bytes, rep: tuple[bytes, ...], ctx: Ctx = None) -> Outcome:
        i = _first(rep, types)
        if i is None:
            return Outcome(rep, fired=False)
        return Outcome(rep[:i] + rep[i + 1 :], late=(rep[i],), detail="reply held back")

    return tf


def _duplicate(rng: random.Random, req: bytes, rep: tuple[bytes, ...], ctx: Ctx = None) -> Outcome:
    i = rng.randrange(len(rep))
    return Outcome(rep[: i + 1] + (rep[i],) + rep[i + 1 :], detail=f"reply {i} sent twice")


def _no_reply(rng: random.Random, req: bytes, rep: tuple[bytes, ...], ctx: Ctx = None) -> Outcome:
    return Outcome((), detail="request consumed, no reply")


def _tx_stall(rng: random.Random, req: bytes, rep: tuple[bytes, ...], ctx: Ctx = None) -> Outcome:
    return Outcome((), stall=True, detail="TX ring stalled after this request")


def _unsolicited_deactivate(
    rng: random.Random, req: bytes, rep: tuple[bytes, ...], ctx: Ctx = None
) -> Outcome:
    seq = struct.unpack_from("<I", req, 8)[0] if len(req) >= 12 else 0
    hdl = struct.unpack_from("<I", req, 20)[0] if len(req) >= 24 else 0
    dbc = rng.randrange(16)
    crc = len(rep) > 0 and len(rep[0]) >= 4 and struct.unpack_from("<I", rep[0], 0)[0] != 0
    extra = nnc.Message.build(
        (nnc.DeactivateFromDev(0, dbc),),
        seq=(seq + 0x40000000) & 0xFFFFFFFF,  # no one waits for it
        handle=hdl,
        crc=crc,
    ).pack()
    return Outcome((extra, *rep), detail=f"unsolicited DEACTIVATE_FROM_DEV dbc {dbc}")


def _dma_pairs(req: bytes) -> tuple[int, int] | None:
    """(dma_chunk_id, bytes the request's pairs cover) of the request's DMA_XFER_TO_DEV."""
    p = nnc.parse(req, "h2d")
    for _off, t in p.transactions:
        if isinstance(t, nnc.DmaXfer):
            return t.dma_chunk_id, sum(s for _a, s in t.pairs)
    return None


def lone_cont(msg: bytes) -> tuple[int, int] | None:
    """(dma_chunk_id, xferred_size) of a reply that is a lone DMA_XFER_CONT, else None."""
    ts = _trans(msg)
    if len(ts) != 1 or ts[0][1] != nnc.TransType.DMA_XFER_CONT or len(msg) < ts[0][0] + 24:
        return None
    chunk, _pad, xferred = struct.unpack_from("<IIQ", msg, ts[0][0] + 8)
    return chunk, xferred


def _has_dma(req: bytes, rep: tuple[bytes, ...]) -> bool:
    """A request carrying DMA pairs whose transfer the device considers complete."""
    d = _dma_pairs(req)
    return d is not None and d[1] > 0 and bool(rep) and not any(lone_cont(r) for r in rep)


def _cont(chunk: int, xferred: int, rep: tuple[bytes, ...], req: bytes) -> bytes:
    seq = struct.unpack_from("<I", req, 8)[0]
    hdl = struct.unpack_from("<I", req, 20)[0]
    crc = bool(rep) and len(rep[0]) >= 4 and struct.unpack_from("<I", rep[0], 0)[0] != 0
    return nnc.Message.build(
        (nnc.DmaXferCont(chunk, 0, xferred),), seq=seq, handle=hdl, crc=crc
    ).pack()


def _cont_nothing_left(
    rng: random.Random, req: bytes, rep: tuple[bytes, ...], ctx: Ctx = None
) -> Outcome:
    d = _dma_pairs(req)
    assert d is not None
    chunk, covered = d
    # the host's running total (xferred_dma_size): what earlier messages of this chunk
    # id sent (an Injector tracks it) plus what this one covers
    sent = (ctx or {}).get("dma_sent", {}).get(chunk, 0) if chunk else 0
    total = sent + covered
    return Outcome(
        (_cont(chunk, total, rep, req),),
        detail=f"DMA_XFER_CONT chunk {chunk} xferred {total}: nothing is left",
    )


def _cont_unasked(
    rng: random.Random, req: bytes, rep: tuple[bytes, ...], ctx: Ctx = None
) -> Outcome:
    return Outcome(
        (_cont(0, 0, rep, req),), detail="DMA_XFER_CONT chunk 0 to a request without DMA"
    )


def _no_dma(req: bytes, rep: tuple[bytes, ...]) -> bool:
    return len(req) >= nnc.HDR_SIZE and _dma_pairs(req) is None and bool(rep)


# --------------------------------------------------------------------------
# RAS (struct ras_data, 104 bytes; ras.py)

_RAS_SIZE = 104


def _is_ras(req: bytes, rep: tuple[bytes, ...]) -> bool:
    return any(len(r) == _RAS_SIZE for r in rep)


def _ras_edit(
    edit: Callable[[random.Random, bytes], tuple[bytes, str]],
) -> Transform:
    def tf(rng: random.Random, req: bytes, rep: tuple[bytes, ...], ctx: Ctx = None) -> Outcome:
        i = next((k for k, r in enumerate(rep) if len(r) == _RAS_SIZE), None)
        if i is None:
            return Outcome(rep, fired=False)
        new, detail = edit(rng, rep[i])
        return Outcome(rep[:i] + (new,) + rep[i + 1 :], detail=detail)

    return tf


def _ras_field(off: int, fmt: str, values: Callable[[random.Random], int], what: str) -> Transform:
    def edit(rng: random.Random, m: bytes) -> tuple[bytes, str]:
        v = values(rng)
        return _put(m, off, fmt, v), f"{what} -> {v}"

    return _ras_edit(edit)


def _ras_short(rng: random.Random, m: bytes) -> tuple[bytes, str]:
    n = rng.choice([0, 4, 12, 20, 64, 103])
    return m[:n], f"{n} of 104 bytes"


def _ras_long(rng: random.Random, m: bytes) -> tuple[bytes, str]:
    n = rng.choice([1, 8, 24, 4096 - _RAS_SIZE])
    return m + bytes(n), f"{_RAS_SIZE + n} bytes into a 104-byte buffer"


def _ras_storm(rng: random.Random, req: bytes, rep: tuple[bytes, ...], ctx: Ctx = None) -> Outcome:
    n = rng.randint(2, 5)
    return Outcome(tuple(r for r in rep for _ in range(n)), detail=f"each report sent {n} times")


# --------------------------------------------------------------------------
# Sahara (boot.py): device->host packets


def _sahara_cmd(*cmds: int) -> Check:
    def check(req: bytes, rep: tuple[bytes, ...]) -> bool:
        return any(len(r) >= 8 and struct.unpack_from("<I", r, 0)[0] in cmds for r in rep)

    return check


def _sahara_edit(
    cmds: Sequence[int], edit: Callable[[random.Random, bytes], tuple[bytes, str]]
) -> Transform:
    def tf(rng: random.Random, req: bytes, rep: tuple[bytes, ...], ctx: Ctx = None) -> Outcome:
        i = next(
            (
                k
                for k, r in enumerate(rep)
                if len(r) >= 8 and struct.unpack_from("<I", r, 0)[0] in cmds
            ),
            None,
        )
        if i is None:
            return Outcome(rep, fired=False)
        new, detail = edit(rng, rep[i])
        return Outcome(rep[:i] + (new,) + rep[i + 1 :], detail=detail)

    return tf


def _sahara_length_field(rng: random.Random, p: bytes) -> tuple[bytes, str]:
    ln = struct.unpack_from("<I", p, 4)[0]
    new = rng.choice([0, 8, ln - 4, ln + 4, ln + 8, 0xFFFF])
    if new == ln:
        new = ln + 8
    return _put(p, 4, "<I", new), f"length field {ln} -> {new}"


def _sahara_truncate(rng: random.Random, p: bytes) -> tuple[bytes, str]:
    n = rng.randrange(8, len(p)) if len(p) > 8 else 4
    return p[:n], f"{n} of {len(p)} bytes sent (length field kept)"


def _read_too_large(rng: random.Random, p: bytes) -> tuple[bytes, str]:
    n = 0x80000 + rng.choice([1, 0x1000, 0x7FF80000])
    return _put(p, 16, "<I", n), f"READ_DATA length -> 0x{n:x} (> SAHARA_TRANSFER_MAX_SIZE)"


def _read_past_image(rng: random.Random, p: bytes) -> tuple[bytes, str]:
    off = rng.choice([0x7FFFFFF0, 0xFFFFFFF0])
    return _put(p, 12, "<I", off), f"READ_DATA offset -> 0x{off:x} (past the image)"


def _table_len(rng: random.Random, p: bytes) -> tuple[bytes, str]:
    n = rng.choice([0, 1, 63, 65, 0x10000, 0x10040])
    return _put(p, 16, "<Q", n), f"MEM_DEBUG64 table_length -> 0x{n:x}"


def _unknown_cmd(rng: random.Random, p: bytes) -> tuple[bytes, str]:
    c = rng.choice([0x0, 0x15, 0x99, 0xFFFFFFFF])
    return _put(p, 0, "<I", c), f"cmd -> 0x{c:x}"
