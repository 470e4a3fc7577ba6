"""MHI device-side definitions: layouts, enum values and the ring and channel records.

Layouts from ``drivers/bus/mhi/common.h`` (6.12/7.2): contexts are 44 bytes (three le32,
then rbase, rlen, rp, wp as le64), ring elements 16 bytes {ptr le64, dword0, dword1};
the enum values are the MHI core's.  The rules the device follows are in
:mod:`qaicmodel.emu.mhi_dev` (M1-M9).
"""

from __future__ import annotations

import collections
import struct
from typing import NamedTuple

__all__ = ["CTX_SIZE", "EL_SIZE", "Violation", "Ring", "Channel"]

CTX_SIZE = 44
EL_SIZE = 16
_EL = struct.Struct("<QII")
_CTX = struct.Struct("<IIIQQQQ")
_CTX_RP = 28
_CTX_WP = 36

# enum mhi_state / mhi_ee_type (MHI core)
ST_RESET, ST_READY, ST_M0, ST_M1, ST_M2, ST_M3, ST_SYS_ERR = 0, 1, 2, 3, 4, 5, 0xFF
EE_PBL, EE_SBL, EE_AMSS = 0, 1, 2
STATE_NAMES = {
    0: "RESET",
    1: "READY",
    2: "M0",
    3: "M1",
    4: "M2",
    5: "M3",
    7: "BHI",
    0xFF: "SYS_ERR",
}
EE_NAMES = {0: "PBL", 1: "SBL", 2: "AMSS", 3: "RDDM", 4: "WFW", 5: "PTHRU", 6: "EDL", 7: "FP"}
# enum mhi_pkt_type / mhi_cmd_type / mhi_ev_ccs / mhi_ch_state (common.h)
PKT_TRANSFER = 0x2
CMD_NOP, CMD_RESET, CMD_STOP, CMD_START = 1, 16, 17, 18
EV_STATE_CHANGE, EV_CMD_COMPLETION, EV_TX, EV_EE = 0x20, 0x21, 0x22, 0x40
CC_SUCCESS, CC_EOT, CC_OVERFLOW, CC_EOB, CC_UNDEFINED_ERR = 1, 2, 3, 4, 0x10
CH_DISABLED, CH_ENABLED, CH_RUNNING, CH_STOP, CH_ERROR = 0, 1, 2, 4, 5
TRE_CHAIN, TRE_IEOB, TRE_IEOT = 1 << 0, 1 << 8, 1 << 9
CMD_NAMES = {CMD_NOP: "NOP", CMD_RESET: "RESET", CMD_STOP: "STOP", CMD_START: "START"}


class Violation(NamedTuple):
    """A rule the host broke: id, what happened, where (register, ring, channel)."""

    rule: str
    message: str
    where: str


class Ring:
    """A ring in host memory as the device tracks it (addresses, not indexes)."""

    def __init__(self, name: str, ctx_addr: int, rbase: int, rlen: int, rp: int, wp: int) -> None:
        self.name = name
        self.ctx_addr = ctx_addr
        self.rbase = rbase
        self.rlen = rlen
        self.rp = rp
        self.wp = wp
        self.msivec = 0

    def valid(self, ptr: int) -> bool:
        """main.c ``is_valid_ring_ptr``: inside the ring and element aligned."""
        return self.rbase <= ptr < self.rbase + self.rlen and not (ptr - self.rbase) % EL_SIZE

    def next(self, ptr: int) -> int:
        ptr += EL_SIZE
        return self.rbase if ptr >= self.rbase + self.rlen else ptr


class Channel:
    """One transfer channel (M5, M7)."""

    def __init__(self, num: int) -> None:
        self.num = num
        self.state = CH_DISABLED
        self.ring: Ring | None = None
        self.er_index = 0
        self.outbox: collections.deque[bytes] = collections.deque()
        self.out_off = 0  # bytes of outbox[0] already written (a message over several TREs)

    @property
    def to_device(self) -> bool:
        return self.num % 2 == 0
