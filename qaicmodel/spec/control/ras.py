"""RAS events on QAIC_STATUS (MHI 14/15): the message and what the host does with it.

Rules (aic100.rst "Reliability, Accessibility, Serviceability (RAS)": "QSM
will report the event with appropriate details via the QAIC_STATUS MHI
channel"; ssr-ras-boot.md §2, which reads qaic_ras.c):
  * ``struct ras_data`` is 104 packed LE bytes: a 12-byte header {magic u16 =
    0x55AA, ver u16 (1..2), seq_num u32, type u8 (0 = PUSH), id u8, len u16 =
    92} and a body {result s32, source, err_type, err_threshold, ce_count,
    ue_count, intr_num (u32 each), syndrome[64]};
  * a message failing any header check is dropped (logged);
  * CE and UE_NF only count; UE counts and resets the SoC (``mhi_soc_reset``);
  * counters saturate at UINT_MAX, each on its own value (7.2 decode_ras_msg); the
    reading of ssr-ras-boot.md §2.4, where the UE and UE_NF branches test
    ``ce_count``, is the kernel-version policy ``ras-counter-saturation=driver``;
  * the host has one 104-byte receive buffer, requeued after each report
    (7.2 qaic_ras_mhi_dl_xfer_cb): a shorter report is read over the previous
    one's bytes (``bytes_xferd`` is not looked at); a longer one overflows the
    buffer (transaction error), which is freed and not requeued -- nothing is
    received on QAIC_STATUS after it (:attr:`HostRas.lost`).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import Any

import attrs

from qaicmodel.errors import ArgumentError
from qaicmodel.spec.control import parsed
from qaicmodel.spec.policies import (
    RAS_COUNTER_SATURATION,
    Policies,
    RasCounterSaturation,
)

__all__ = ["RasMsg", "ErrType", "Source", "decode", "parse", "describe", "HostRas", "SIZE"]

MAGIC = 0x55AA
VERSION = 2
HDR_SIZE = 12
SIZE = 104
MSG_PUSH, MSG_REQ, MSG_RESP = 0, 1, 2
UINT_MAX = 0xFFFFFFFF
_S = struct.Struct("<HHIBBHiIIIIII64s")
assert _S.size == SIZE


class ErrType(enum.IntEnum):
    """``enum err_type``."""

    CE = 0
    UE = 1
    UE_NF = 2


class Source(enum.IntEnum):
    """``enum err_source``."""

    SOC_MEM = 0
    PCIE = 1
    DDR = 2
    SYS_BUS1 = 3
    SYS_BUS2 = 4
    NSP_MEM = 5
    TSENS = 6


def _u(bits: int) -> Any:
    def check(inst: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
            raise ArgumentError(f"RasMsg.{attribute.name}={value!r} is not a u{bits}")

    return check


def _s32(inst: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, int) or not -(1 << 31) <= value < 1 << 31:
        raise ArgumentError(f"RasMsg.{attribute.name}={value!r} is not an s32")


def _syn(inst: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, bytes) or len(value) != 64:
        raise ArgumentError("RasMsg.syndrome must be 64 bytes")


@attrs.frozen
class RasMsg:
    """``struct ras_data``."""

    err_type: int = attrs.field(default=ErrType.CE, validator=_u(32))
    source: int = attrs.field(default=Source.DDR, validator=_u(32))
    magic: int = attrs.field(default=MAGIC, validator=_u(16))
    ver: int = attrs.field(default=VERSION, validator=_u(16))
    seq_num: int = attrs.field(default=0, validator=_u(32))
    type: int = attrs.field(default=MSG_PUSH, validator=_u(8))
    id: int = attrs.field(default=0, validator=_u(8))
    len: int = attrs.field(default=SIZE - HDR_SIZE, validator=_u(16))
    result: int = attrs.field(default=0, validator=_s32)
    err_threshold: int = attrs.field(default=0, validator=_u(32))
    ce_count: int = attrs.field(default=0, validator=_u(32))
    ue_count: int = attrs.field(default=0, validator=_u(32))
    intr_num: int = attrs.field(default=0, validator=_u(32))
    syndrome: bytes = attrs.field(default=bytes(64), validator=_syn)

    def pack(self) -> bytes:
        return _S.pack(
            self.magic,
            self.ver,
            self.seq_num,
            self.type,
            self.id,
            self.len,
            self.result,
            self.source,
            self.err_type,
            self.err_threshold,
            self.ce_count,
            self.ue_count,
            self.intr_num,
            self.syndrome,
        )

    @classmethod
    def unpack(cls, data: bytes) -> RasMsg:
        (magic, ver, seq, typ, id_, ln, result, source, et, thr, ce, ue, intr, syn) = _S.unpack(
            data
        )
        return cls(et, source, magic, ver, seq, typ, id_, ln, result, thr, ce, ue, intr, syn)

    def as_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["syndrome"] = self.syndrome.hex()
        d["magic"] = f"0x{self.magic:04x}"
        d["err_type_name"] = ErrType(self.err_type).name if self.err_type < 3 else "UNKNOWN"
        d["source_name"] = Source(self.source).name if self.source < 7 else "UNKNOWN"
        return d


def parse(data: bytes) -> tuple[RasMsg | None, list[dict[str, Any]]]:
    """Lenient read: the message and every header check it fails (qaic_ras.c)."""
    data = bytes(data)
    viol: list[dict[str, Any]] = []
    if len(data) != SIZE:
        viol.append(
            {
                "rule": "RAS-SIZE",
                "offset": None,
                "message": f"ras_data is {SIZE} bytes, got {len(data)}",
            }
        )
        if len(data) < SIZE:
            return None, viol
        data = data[:SIZE]
    m = RasMsg.unpack(data)
    checks = [
        (m.magic == MAGIC, "RAS-MAGIC", 0, f"magic 0x{m.magic:04x} is not 0x55aa"),
        (1 <= m.ver <= VERSION, "RAS-VERSION", 2, f"ver {m.ver} is not 1..2"),
        (m.type == MSG_PUSH, "RAS-TYPE", 8, f"type {m.type} is not MSG_PUSH (0)"),
        (m.len == SIZE - HDR_SIZE, "RAS-LEN", 10, f"len {m.len} is not {SIZE - HDR_SIZE}"),
        (m.err_type < 3, "RAS-ERR-TYPE", 20, f"err_type {m.err_type} is not CE/UE/UE_NF"),
    ]
    for ok, rule, off, msg in checks:
        if not ok:
            viol.append({"rule": rule, "offset": off, "message": msg})
    return m, viol


def decode(data: bytes | bytearray | memoryview) -> RasMsg:
    """Strict decode: a message the host would accept, or DecodeError."""
    msg: RasMsg = parsed.strict("RAS message", "RAS-TYPE", parse, data)
    return msg


def describe(data: bytes) -> dict[str, Any]:
    """``qaicmodel decode ras HEX``."""
    return parsed.describe("ras", "message", parse, data)


class HostRas:
    """The host's RAS client: counters and the UE reset (qaic_ras.c)."""

    def __init__(
        self, policies: Policies, soc_reset: Callable[[], None], kernel: Any = None
    ) -> None:
        self.policies = policies
        self.kernel = kernel
        self._buf = bytes(SIZE)  # the one receive buffer, as the last report left it
        self.lost = False  # the buffer was freed after an overflow
        self.soc_reset = soc_reset
        self.ce_count = 0
        self.ue_count = 0
        self.ue_nf_count = 0
        self.dropped = 0
        self.log: list[str] = []

    def _inc(self, name: str) -> None:
        guard = (
            name
            if self.policies[RAS_COUNTER_SATURATION] is RasCounterSaturation.OWN_COUNTER
            else "ce_count"
        )
        if getattr(self, guard) != UINT_MAX:
            setattr(self, name, getattr(self, name) + 1)

    def on_message(self, data: bytes) -> None:
        data = bytes(data)
        if self.lost:
            self.dropped += 1  # no buffer queued: the device cannot deliver it
            return
        if len(data) > SIZE:
            self.lost = True  # MHI overflow: kfree, no requeue
            self.dropped += 1
            self.log.append("RAS buffer overflow: receive buffer lost")
            return
        data = data + self._buf[len(data) :]
        self._buf = data
        m, viol = parse(data)
        if m is None or viol:
            self.dropped += 1
            return
        name = {ErrType.CE: "ce_count", ErrType.UE: "ue_count", ErrType.UE_NF: "ue_nf_count"}[
            ErrType(m.err_type)
        ]
        # CE counts itself (its guard is its own counter in both readings)
        if name == "ce_count":
            if self.ce_count != UINT_MAX:
                self.ce_count += 1
        else:
            self._inc(name)
        self.log.append(f"RAS {ErrType(m.err_type).name} from source {m.source}")
        if m.err_type == ErrType.UE:
            self.soc_reset()
