"""Timesync: boot-time (QAIC_TIMESYNC 20/21, SBL) and periodic (22/23, AMSS) messages.

Rules (aic100.rst "Boot Flow": "SBL synchronizes timestamps with the host for
future logging"; ssr-ras-boot.md §3, which reads qaic_timesync.c):
  * ``qts_hdr`` (8 B): signature le16 = 0x55aa, reserved le16, reserved u8,
    msg_type u8, reserved le16; ``qts_timeval`` (16 B): tv_sec le64, tv_usec le64;
  * boot sync: the device sends an 8-byte header with CMD_TO_HOST (0); the host
    answers 24 bytes, the device's header with msg_type = SYNC_REQ (1) and the
    *absolute* host time; ACK_TO_HOST (2) is only logged; a receive that is not
    exactly 8 bytes stops the host listening;
  * periodic sync: every ``timesync_delay_ms`` the host sends SYNC_REQ with the
    *offset* host UTC us - QTimer us (QTimer at MHI BAR + 0xa28, 19.2 MHz:
    us = ticks * 10 / 192).
The model has no wall clock: the host time is an argument (microseconds).
"""

from __future__ import annotations

import enum
import struct
from typing import Any

import attrs

from qaicmodel.errors import ArgumentError, DecodeError
from qaicmodel.spec.control import parsed

__all__ = [
    "MsgType",
    "QtsHdr",
    "SyncMsg",
    "qtimer_to_us",
    "HostBootSync",
    "periodic_message",
    "describe",
    "decode",
    "SIGNATURE",
    "QTIMER_OFFSET",
]

SIGNATURE = 0x55AA
QTIMER_OFFSET = 0xA28
DEFAULT_DELAY_MS = 1000
_HDR = struct.Struct("<HHBBH")
_TV = struct.Struct("<QQ")


class MsgType(enum.IntEnum):
    """``enum qts_msg_type``."""

    CMD_TO_HOST = 0
    SYNC_REQ = 1
    ACK_TO_HOST = 2


def _u(bits: int) -> Any:
    def check(inst: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
            raise ArgumentError(f"{type(inst).__name__}.{attribute.name}={value!r} is not u{bits}")

    return check


@attrs.frozen
class QtsHdr:
    """``struct qts_hdr``."""

    msg_type: int = attrs.field(default=MsgType.CMD_TO_HOST, validator=_u(8))
    signature: int = attrs.field(default=SIGNATURE, validator=_u(16))
    reserved_1: int = attrs.field(default=0, validator=_u(16))
    reserved_2: int = attrs.field(default=0, validator=_u(8))
    reserved_3: int = attrs.field(default=0, validator=_u(16))

    def pack(self) -> bytes:
        return _HDR.pack(
            self.signature, self.reserved_1, self.reserved_2, self.msg_type, self.reserved_3
        )

    @classmethod
    def unpack(cls, data: bytes) -> QtsHdr:
        sig, r1, r2, mt, r3 = _HDR.unpack(data[:8])
        return cls(mt, sig, r1, r2, r3)


@attrs.frozen
class SyncMsg:
    """``struct qts_host_time_sync_msg_data`` (24 B): header + timeval."""

    hdr: QtsHdr
    tv_sec: int = attrs.field(default=0, validator=_u(64))
    tv_usec: int = attrs.field(default=0, validator=_u(64))

    def pack(self) -> bytes:
        return self.hdr.pack() + _TV.pack(self.tv_sec, self.tv_usec)

    @classmethod
    def unpack(cls, data: bytes) -> SyncMsg:
        s, u = _TV.unpack(data[8:24])
        return cls(QtsHdr.unpack(data), s, u)


def qtimer_to_us(ticks: int) -> int:
    """QTimer ticks (19.2 MHz) to microseconds, as the driver computes: ticks * 10 / 192."""
    return ticks * 10 // 192


def periodic_message(host_utc_us: int, qtimer_ticks: int) -> SyncMsg:
    """The periodic SYNC_REQ: offset = host UTC us - device QTimer us (two's complement)."""
    off = (host_utc_us - qtimer_to_us(qtimer_ticks)) & ((1 << 64) - 1)
    sec, usec = off // 1_000_000, off % 1_000_000
    return SyncMsg(QtsHdr(MsgType.SYNC_REQ), sec, usec)


class HostBootSync:
    """The boot-time client (SBL): answers CMD_TO_HOST with absolute host time."""

    def __init__(self) -> None:
        self.listening = True
        self.log: list[str] = []

    def on_message(self, data: bytes, host_time_us: int) -> bytes | None:
        if not self.listening:
            return None
        if len(data) != 8:
            self.listening = False  # the buffer is freed, nothing re-queued
            return None
        hdr = QtsHdr.unpack(data)
        if hdr.msg_type == MsgType.CMD_TO_HOST:
            reply = attrs.evolve(hdr, msg_type=MsgType.SYNC_REQ)
            return SyncMsg(reply, host_time_us // 1_000_000, host_time_us % 1_000_000).pack()
        self.log.append(
            "ack" if hdr.msg_type == MsgType.ACK_TO_HOST else f"unexpected msg_type {hdr.msg_type}"
        )
        return None


def decode(data: bytes | bytearray | memoryview) -> QtsHdr | SyncMsg:
    """An 8-byte header or a 24-byte sync message; DecodeError otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("timesync message must be bytes", rule="TS-TYPE")
    data = bytes(data)
    if len(data) not in (8, 24):
        raise DecodeError(f"timesync messages are 8 or 24 bytes, got {len(data)}", rule="TS-SIZE")
    hdr = QtsHdr.unpack(data)
    if hdr.signature != SIGNATURE:
        raise DecodeError(
            f"signature 0x{hdr.signature:04x} is not 0x55aa", offset=0, rule="TS-SIGNATURE"
        )
    if hdr.msg_type > 2:
        raise DecodeError(f"msg_type {hdr.msg_type} is not 0..2", offset=5, rule="TS-MSG-TYPE")
    return hdr if len(data) == 8 else SyncMsg.unpack(data)


def describe(data: bytes) -> dict[str, Any]:
    try:
        m = decode(data)
    except DecodeError as e:
        return {
            "kind": "timesync",
            "message": None,
            "violations": [
                parsed.finding("timesync", {"rule": e.rule, "offset": e.offset, "message": str(e)})
            ],
        }
    return {"kind": "timesync", "message": attrs.asdict(m), "violations": []}
