"""MANAGE's codec: the driver's encode_message (user -> wire) and decode_message
(wire -> user), as a mixin of :class:`qaicmodel.spec.control.manage.ControlClient`.

Split from :mod:`qaicmodel.spec.control.manage`; the rules are its M2, M5 and M6
(qaic_control.c encode_*, find_and_map_user_pages, decode_*; 6.12 and 7.2).  The mixin
reads the client's ``kernel``, ``host_mem``, ``num_dbc``, ``dbc``, ``hooks``,
``ext_msg_len``, ``sg_max_segment``, ``violations`` and ``leaked_bufs``.
"""

from __future__ import annotations

import struct
from typing import Any

from qaicmodel import arith
from qaicmodel.findings import Finding
from qaicmodel.spec.control import nnc
from qaicmodel.spec.control.crc import nnc_crc
from qaicmodel.spec.control.manage_uapi import (
    _TH,
    DMA_RESERVE,
    MAX_MSG,
    MODEL_DMA_LIMIT,
    User,
    _Err,
    _Res,
)
from qaicmodel.spec.control.ssr import DbcState
from qaicmodel.spec.host import kernels

__all__ = ["ManageCodec"]


class ManageCodec:
    """encode_message / decode_message over the client's state."""

    kernel: Any
    host_mem: Any
    num_dbc: int
    dbc: list[Any]
    hooks: Any
    ext_msg_len: int
    sg_max_segment: int | None
    violations: list[Finding]
    leaked_bufs: list[int]

    def release_dbc(self, dbc: int) -> None:
        raise NotImplementedError

    def set_state(self, dbc: int, state: DbcState) -> None:
        raise NotImplementedError

    def _free_dbc_buf(self, res: _Res) -> None:
        raise NotImplementedError

    def _save_dbc_buf(self, dbc: int, res: _Res, usr: User) -> None:
        raise NotImplementedError

    # -- encode (user -> wire) ---------------------------------------------------------
    def _encode_message(
        self, usr: User | None, length: int, count: int, buf: bytearray, res: _Res
    ) -> list[Any]:
        if res.dma_chunk_id:
            return [self._encode_dma(usr, res.dma_trans, nnc.HDR_SIZE, res)]  # type: ignore[arg-type]
        if count == 0 or length < 8:
            raise _Err("EINVAL")
        out: list[Any] = []
        msg_len = nnc.HDR_SIZE
        used = 0
        try:
            for _ in range(count):
                if used > length - 8:
                    raise _Err("EINVAL")
                ttype, tlen = _TH.unpack_from(buf, used)
                if tlen < 8 or used + tlen > length:
                    raise _Err("EINVAL")
                body = bytes(buf[used + 8 : used + tlen])
                ahead = bytes(buf[used + 8 : used + 8 + 24]).ljust(24, b"\0")
                t = self._encode_one(usr, ttype, tlen, body, msg_len, res, ahead, used)
                if t is not None:
                    out.append(t)
                    msg_len += t.len
                used += tlen
            if used != length:
                raise _Err("EINVAL")
        except _Err:
            self._free_dbc_buf(res)
            raise
        return out

    def _fields(self, ttype: int, tlen: int, ahead: bytes, used: int, size: int) -> bytes:
        """The ``size`` bytes of the uapi struct after the header, read as the driver reads
        them (encode_activate/encode_deactivate/encode_dma cast the transaction and read
        every field whatever hdr.len says): past a short transaction they are the next
        transaction's bytes, past the user's len the zeroed rest of the 4 KiB copy, past
        4096 bytes outside the kzalloc'd buffer (the model reads zeros; a KASAN kernel
        reports slab-out-of-bounds).  Reported in :attr:`violations`."""
        if tlen - 8 < size:
            name = nnc.TransType(ttype).name
            past = used + 8 + size - MAX_MSG
            beyond = f"; {past} of them past the 4096-byte message buffer" if past > 0 else ""
            self.violations.append(
                Finding(
                    "DRV-MANAGE-SHORT-TRANS",
                    f"{name} at byte {used} has len {tlen} < {8 + size}; the driver read its "
                    f"fields from the {8 + size - tlen} bytes after it{beyond}",
                    "qaic_control.c encode_activate/encode_deactivate/encode_dma",
                    where={"offset": used, "trans": name, "len": tlen},
                )
            )
        return ahead[:size]

    def _encode_one(
        self,
        usr: User | None,
        ttype: int,
        tlen: int,
        body: bytes,
        msg_len: int,
        res: _Res,
        ahead: bytes | None = None,
        used: int = 0,
    ) -> Any:
        T = nnc.TransType
        if ahead is None:
            ahead = body.ljust(24, b"\0")
        limit = kernels.behaviour(self.kernel, "manage-activate-status-limit")
        if ttype == T.PASSTHROUGH_FROM_USR:
            if tlen % 8:
                raise _Err("EINVAL")
            if msg_len + tlen > nnc.MAX_H2D:
                raise _Err("ENOSPC")
            return nnc.Passthrough(T.PASSTHROUGH_TO_DEV, body)
        if ttype == T.DMA_XFER_FROM_USR:
            fields = struct.unpack_from("<IIQQ", self._fields(ttype, tlen, ahead, used, 24))
            return self._encode_dma(usr, fields, msg_len, res)
        if ttype == T.ACTIVATE_FROM_USR:
            if msg_len + 40 > limit:  # kernels: 6.12 SZ_4K, 7.2 SZ_64K
                raise _Err("ENOSPC")
            qs, _eventfd, options, pad = struct.unpack_from(
                "<IIII", self._fields(ttype, tlen, ahead, used, 16)
            )
            if qs == 0 or pad:
                raise _Err("EINVAL")
            if not arith.activate_queue_size_ok(qs):
                raise _Err("EINVAL")
            size = arith.dbc_buf_size(qs)
            if size > MODEL_DMA_LIMIT:
                raise _Err("ENOMEM")
            if res.buf is not None:  # a second activate replaces the saved pointer
                self.leaked_bufs.append(res.buf)
            b = self.host_mem.alloc(size)
            res.buf, res.total_size, res.nelem = b, size, qs
            res.rsp_q = b + arith.dbc_rsp_offset(qs)
            return nnc.ActivateToDev(b, res.rsp_q, qs, qs, size, options)
        if ttype == T.DEACTIVATE_FROM_USR:
            dbc, pad = struct.unpack_from("<II", self._fields(ttype, tlen, ahead, used, 8))
            if dbc >= self.num_dbc or pad:
                raise _Err("EINVAL")
            d = self.dbc[dbc]
            if usr is None or d.usr is not usr:  # disable_dbc
                raise _Err("EPERM")
            d.usr = None
            self.hooks.disable(dbc)
            return None  # no wire transaction exists
        if ttype == T.STATUS_FROM_USR:
            if msg_len + tlen > limit:  # kernels: 6.12 SZ_4K, 7.2 SZ_64K
                raise _Err("ENOSPC")
            return nnc.StatusToDev(len=tlen)  # the user's len, 8 bytes on the wire
        raise _Err("EINVAL")

    def _segments(self, start: int, length: int) -> list[tuple[int, int]]:
        """Pin + map [start, start+length): identity IOMMU, split at sg_max_segment."""
        if not self.host_mem.mapped(start, length):
            raise _Err("EFAULT")
        step = self.sg_max_segment or length
        return [(a, min(step, start + length - a)) for a in range(start, start + length, step)]

    def _encode_dma(
        self, usr: User | None, fields: tuple[int, int, int, int], msg_len: int, res: _Res
    ) -> nnc.DmaXfer:
        if msg_len + 24 + 16 > nnc.MAX_H2D:
            raise _Err("ENOMEM")
        tag, _pad, addr, size = fields
        if addr + res.xferred >= 1 << 64 or size < res.xferred:
            raise _Err("EINVAL")
        remaining = size - res.xferred
        start = addr + res.xferred
        if remaining == 0 or start + remaining >= 1 << 64:
            raise _Err("EINVAL")
        segs = self._segments(start, remaining)
        budget = self.ext_msg_len - msg_len - 24
        n = len(segs)
        for i in range(len(segs)):
            budget -= 16
            if budget < DMA_RESERVE:
                n = i
                break
        pairs = tuple(segs[:n])
        res.xferred += sum(s for _, s in pairs)
        need_cont = n < len(segs)
        chunk = res.dma_chunk_id
        if not chunk and need_cont and usr is not None:
            chunk = res.dma_chunk_id = usr.next_chunk()
        res.dma_trans = fields
        return nnc.DmaXfer(tag=tag, pairs=pairs, dma_chunk_id=chunk)

    # -- decode (wire -> user) -----------------------------------------------------------
    _out_len = 0
    _out_count = 0

    def _decode_message(
        self, usr: User | None, rsp: bytes, res: _Res, buf: bytearray
    ) -> tuple[int, int]:
        T = nnc.TransType
        wire = rsp.ljust(MAX_MSG, b"\0")
        hdr_len, count = struct.unpack_from("<II", wire, 12)
        if hdr_len < 8 or hdr_len > MAX_MSG:
            raise _Err("EINVAL")
        self._out_len, self._out_count = 0, count
        msg_len = 0
        for _ in range(count):
            if msg_len > hdr_len - 8:
                raise _Err("EINVAL")
            off = nnc.HDR_SIZE + msg_len
            if off + 8 > MAX_MSG:
                raise _Err("EINVAL")
            ttype, tlen = _TH.unpack_from(wire, off)
            if tlen < 8 or msg_len + tlen > hdr_len:
                raise _Err("EINVAL")
            body = wire[off + 8 : off + tlen]
            o = self._out_len
            if ttype == T.PASSTHROUGH_FROM_DEV:
                if tlen % 8:
                    raise _Err("EINVAL")
                if o + tlen > MAX_MSG:
                    raise _Err("ENOSPC")
                buf[o : o + tlen] = _TH.pack(ttype, tlen) + body
                self._out_len += tlen
                msg_len += tlen
            elif ttype == T.ACTIVATE_FROM_DEV:
                if o + tlen > MAX_MSG:
                    raise _Err("ENOSPC")
                status, dbc, options = struct.unpack_from("<IIQ", body.ljust(16, b"\0"))
                buf[o : o + 24] = _TH.pack(ttype, tlen) + struct.pack("<IIQ", status, dbc, options)
                self._out_len += tlen
                msg_len += tlen
                if res.buf is None:
                    raise _Err("EINVAL")
                if dbc >= self.num_dbc:
                    raise _Err("ENODEV")
                if status:
                    raise _Err("ECANCELED")
                if usr is not None:
                    self._save_dbc_buf(dbc, res, usr)
            elif ttype == T.DEACTIVATE_FROM_DEV:
                status, dbc = struct.unpack_from("<II", body.ljust(8, b"\0"))
                if dbc >= self.num_dbc:
                    raise _Err("ENODEV")
                if status:
                    self.dbc[dbc].usr = usr  # enable_dbc for the *caller*
                    if usr is not None:
                        self.hooks.enable(dbc, usr)
                    raise _Err("ECANCELED")
                self.release_dbc(dbc)
                self.set_state(dbc, DbcState.IDLE)
                msg_len += 16  # whatever the transaction's len says
            elif ttype == T.STATUS_FROM_DEV:
                if o + tlen > MAX_MSG:
                    raise _Err("ENOSPC")
                major, minor, status, flags = struct.unpack_from("<HHIQ", body.ljust(16, b"\0"))
                buf[o : o + 24] = _TH.pack(ttype, tlen) + struct.pack(
                    "<HHIQ", major, minor, status, flags
                )
                msg_len += tlen
                self._out_len += tlen
                if status:
                    raise _Err("ECANCELED")
                if flags & nnc.STATUS_FLAG_CRC and rsp[0:4] != struct.pack(
                    "<I", nnc_crc(rsp, hdr_len)
                ):
                    raise _Err("EPIPE")
            else:
                raise _Err("EINVAL")
        if msg_len != hdr_len - nnc.HDR_SIZE:
            raise _Err("EINVAL")
        return self._out_len, self._out_count
