"""The MHI register block in BAR0 (4 KiB) and its BHI sub-block, as the host sees them.

Rules (sources; offsets and fields from ``drivers/bus/mhi/common.h`` 6.12/7.2):
  * MHI core registers: MHIREGLEN 0x00, MHIVER 0x08, MHICFG 0x10 (NHWER 31:24,
    NER 23:16, NHWCH 15:8, NCH 7:0), CHDBOFF 0x18, ERDBOFF 0x20, BHIOFF 0x28,
    BHIEOFF 0x2c, DEBUGOFF 0x30, MHICTRL 0x38 (MHISTATE 15:8, RESET bit 1),
    MHISTATUS 0x48 (MHISTATE 15:8, SYSERR bit 2, READY bit 0), context bases
    CCABAP 0x58/0x5c, ECABAP 0x60/0x64, CRCBAP 0x68/0x6c, command doorbell
    CRDB 0x70/0x74, MHICTRLBASE/LIMIT 0x80..0x8c, MHIDATABASE/LIMIT 0x98..0xa4;
  * SoC reset: BIT(0) at 0xb0 (host/internal.h ``MHI_SOC_RESET_REQ_OFFSET``);
  * QTimer: 64-bit at 0xa28 (qaic_timesync.c ``QTIMER_REG_OFFSET``);
  * SOC_HW_VERSION 0x224: the driver never reads it (mhi_controller.c
    ``mhi_read_reg`` quirk returns 0x60110200), the device holds the same value;
  * no register reads 0xFFFFFFFF: the driver takes that for a dead link
    (mhi_controller.c ``mhi_read_reg`` returns -EIO);
  * BHI (at BHIOFF): BHIVERSION 0x00/0x04, IMGADDR 0x08/0x0c, IMGSIZE 0x10,
    IMGTXDB 0x18 (session id 29:0; writing it starts the load), INTVEC 0x20,
    EXECENV 0x28, STATUS 0x2c (31:30: 0 reset, 2 success, 3 error), ERRCODE
    0x30, ERRDBG1..3 0x34..0x3c, SERIALNU 0x40, SBLANTIROLLVER 0x44, NUMSEG
    0x48, MSMHWID(n) 0x4c+4n (n<6), OEMPKHASH(n) 0x64+4n (n<16);
  * doorbells: channel n at CHDBOFF + 8n (low word written last triggers),
    event ring n at ERDBOFF + 8n, command ring at CRDB; the host checks
    CHDBOFF < 4096 - 8*127 and ERDBOFF < 4096 - 8*NER (init.c ``mhi_init_mmio``),
    channel 127 is the device-wake doorbell (``MHI_DEV_WAKE_DB``).

The doorbell and BHI offsets are the device's to choose (the host discovers
them); the values below keep every block inside 4 KiB without overlap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MhiRegs", "REG_NAMES", "BHI_REG_NAMES"]

MHI_BAR_SIZE = 0x1000
# core registers
MHIREGLEN = 0x00
MHIVER = 0x08
MHICFG = 0x10
CHDBOFF = 0x18
ERDBOFF = 0x20
BHIOFF = 0x28
BHIEOFF = 0x2C
DEBUGOFF = 0x30
MHICTRL = 0x38
MHISTATUS = 0x48
CCABAP_LOWER = 0x58
CCABAP_HIGHER = 0x5C
ECABAP_LOWER = 0x60
ECABAP_HIGHER = 0x64
CRCBAP_LOWER = 0x68
CRCBAP_HIGHER = 0x6C
CRDB_LOWER = 0x70
CRDB_HIGHER = 0x74
MHICTRLBASE_LOWER = 0x80
MHICTRLBASE_HIGHER = 0x84
MHICTRLLIMIT_LOWER = 0x88
MHICTRLLIMIT_HIGHER = 0x8C
MHIDATABASE_LOWER = 0x98
MHIDATABASE_HIGHER = 0x9C
MHIDATALIMIT_LOWER = 0xA0
MHIDATALIMIT_HIGHER = 0xA4
SOC_RESET_REQ_OFFSET = 0xB0
SOC_RESET_REQ = 1 << 0
SOC_HW_VERSION = 0x224
SOC_HW_VERSION_VALUE = 0x60110200
QTIMER_LOW = 0xA28
QTIMER_HIGH = 0xA2C

MHICTRL_MHISTATE_SHIFT = 8
MHICTRL_MHISTATE_MASK = 0xFF << 8
MHICTRL_RESET = 1 << 1
MHISTATUS_READY = 1 << 0
MHISTATUS_SYSERR = 1 << 2

# the device's layout choice (see module docstring)
BHI_BASE = 0x100
BHIE_BASE = 0x200
CHDB_BASE = 0x400  # 128 channels * 8 -> 0x400..0x7ff
ERDB_BASE = 0x800  # event rings * 8
NUM_CHANNELS = 128
WAKE_DB_CHANNEL = 127
MAX_EV_RINGS = 32

# BHI registers (offsets inside the BHI block)
BHI_BHIVERSION_MINOR = 0x00
BHI_BHIVERSION_MAJOR = 0x04
BHI_IMGADDR_LOW = 0x08
BHI_IMGADDR_HIGH = 0x0C
BHI_IMGSIZE = 0x10
BHI_IMGTXDB = 0x18
BHI_INTVEC = 0x20
BHI_EXECENV = 0x28
BHI_STATUS = 0x2C
BHI_ERRCODE = 0x30
BHI_ERRDBG1 = 0x34
BHI_ERRDBG2 = 0x38
BHI_ERRDBG3 = 0x3C
BHI_SERIALNU = 0x40
BHI_SBLANTIROLLVER = 0x44
BHI_NUMSEG = 0x48
BHI_MSMHWID0 = 0x4C
BHI_OEMPKHASH0 = 0x64
BHI_END = 0xC8
BHI_TXDB_SEQNUM_MASK = (1 << 30) - 1
BHI_STATUS_SHIFT = 30
BHI_STATUS_RESET = 0x0
BHI_STATUS_SUCCESS = 0x2
BHI_STATUS_ERROR = 0x3

REG_NAMES = {
    MHIREGLEN: "MHIREGLEN",
    MHIVER: "MHIVER",
    MHICFG: "MHICFG",
    CHDBOFF: "CHDBOFF",
    ERDBOFF: "ERDBOFF",
    BHIOFF: "BHIOFF",
    BHIEOFF: "BHIEOFF",
    DEBUGOFF: "DEBUGOFF",
    MHICTRL: "MHICTRL",
    MHISTATUS: "MHISTATUS",
    CCABAP_LOWER: "CCABAP_LOWER",
    CCABAP_HIGHER: "CCABAP_HIGHER",
    ECABAP_LOWER: "ECABAP_LOWER",
    ECABAP_HIGHER: "ECABAP_HIGHER",
    CRCBAP_LOWER: "CRCBAP_LOWER",
    CRCBAP_HIGHER: "CRCBAP_HIGHER",
    CRDB_LOWER: "CRDB_LOWER",
    CRDB_HIGHER: "CRDB_HIGHER",
    MHICTRLBASE_LOWER: "MHICTRLBASE_LOWER",
    MHICTRLBASE_HIGHER: "MHICTRLBASE_HIGHER",
    MHICTRLLIMIT_LOWER: "MHICTRLLIMIT_LOWER",
    MHICTRLLIMIT_HIGHER: "MHICTRLLIMIT_HIGHER",
    MHIDATABASE_LOWER: "MHIDATABASE_LOWER",
    MHIDATABASE_HIGHER: "MHIDATABASE_HIGHER",
    MHIDATALIMIT_LOWER: "MHIDATALIMIT_LOWER",
    MHIDATALIMIT_HIGHER: "MHIDATALIMIT_HIGHER",
    SOC_RESET_REQ_OFFSET: "SOC_RESET_REQ",
    SOC_HW_VERSION: "SOC_HW_VERSION",
    QTIMER_LOW: "QTIMER_LOW",
    QTIMER_HIGH: "QTIMER_HIGH",
}
#: host-writable core registers that are plain storage (the context bases and limits)
_STORAGE = {
    CCABAP_LOWER,
    CCABAP_HIGHER,
    ECABAP_LOWER,
    ECABAP_HIGHER,
    CRCBAP_LOWER,
    CRCBAP_HIGHER,
    MHICTRLBASE_LOWER,
    MHICTRLBASE_HIGHER,
    MHICTRLLIMIT_LOWER,
    MHICTRLLIMIT_HIGHER,
    MHIDATABASE_LOWER,
    MHIDATABASE_HIGHER,
    MHIDATALIMIT_LOWER,
    MHIDATALIMIT_HIGHER,
    CRDB_HIGHER,
}
BHI_REG_NAMES = {
    BHI_BHIVERSION_MINOR: "BHIVERSION_MINOR",
    BHI_BHIVERSION_MAJOR: "BHIVERSION_MAJOR",
    BHI_IMGADDR_LOW: "IMGADDR_LOW",
    BHI_IMGADDR_HIGH: "IMGADDR_HIGH",
    BHI_IMGSIZE: "IMGSIZE",
    BHI_IMGTXDB: "IMGTXDB",
    BHI_INTVEC: "INTVEC",
    BHI_EXECENV: "EXECENV",
    BHI_STATUS: "STATUS",
    BHI_ERRCODE: "ERRCODE",
    BHI_ERRDBG1: "ERRDBG1",
    BHI_ERRDBG2: "ERRDBG2",
    BHI_ERRDBG3: "ERRDBG3",
    BHI_SERIALNU: "SERIALNU",
    BHI_SBLANTIROLLVER: "SBLANTIROLLVER",
    BHI_NUMSEG: "NUMSEG",
}
_BHI_HOST_WRITABLE = {BHI_IMGADDR_LOW, BHI_IMGADDR_HIGH, BHI_IMGSIZE, BHI_INTVEC, BHI_STATUS}
#: MHI 1.0 (common.h has no version constant; the host only records it)
MHIVER_VALUE = 0x0100_0000
BHI_VERSION = (1, 0)  # (major, minor)


class MhiRegs:
    """The register file: plain values plus the device/host write rules.

    :meth:`read` returns the value a host read sees; :meth:`write` stores a host
    write and returns an *effect* tuple for the MHI device (``("ctrl", old,
    new)``, ``("chdb", n)``, ``("erdb", n)``, ``("crdb",)``, ``("bhi-txdb",)``,
    ``("soc-reset",)``) or ``None``, or ``("bad", rule, message)`` for a write the
    host may not make.  Device-owned fields are changed with :meth:`set`.
    """

    def __init__(self, serial: int = 0x51A1C100) -> None:
        self.core: dict[int, int] = {}
        self.bhi: dict[int, int] = {}
        self.chdb = [0] * NUM_CHANNELS  # 64-bit doorbell values (wp)
        self.erdb = [0] * MAX_EV_RINGS
        self.crdb = 0
        self.qtimer = 0
        self.serial = serial
        self.reset_all()

    def reset_all(self) -> None:
        """Power-on values (PBL): MHI RESET, not ready, BHI idle."""
        self.core = {
            MHIREGLEN: MHI_BAR_SIZE,
            MHIVER: MHIVER_VALUE,
            MHICFG: (0 << 24) | (1 << 16) | (0 << 8) | NUM_CHANNELS,
            CHDBOFF: CHDB_BASE,
            ERDBOFF: ERDB_BASE,
            BHIOFF: BHI_BASE,
            BHIEOFF: BHIE_BASE,
            DEBUGOFF: 0,
            MHICTRL: 0,
            MHISTATUS: 0,
        }
        for r in _STORAGE:
            self.core[r] = 0
        self.bhi = {r: 0 for r in BHI_REG_NAMES}
        self.bhi[BHI_BHIVERSION_MAJOR], self.bhi[BHI_BHIVERSION_MINOR] = BHI_VERSION
        self.bhi[BHI_SERIALNU] = self.serial
        self.chdb = [0] * NUM_CHANNELS
        self.erdb = [0] * MAX_EV_RINGS
        self.crdb = 0

    # -- device side ------------------------------------------------------------
    def set(self, reg: int, value: int) -> None:
        self.core[reg] = value & 0xFFFFFFFF

    def set_bhi(self, reg: int, value: int) -> None:
        self.bhi[reg] = value & 0xFFFFFFFF

    def mhi_state(self) -> int:
        return (self.core[MHISTATUS] >> 8) & 0xFF

    def set_mhi_state(
        self, state: int, *, ready: bool | None = None, syserr: bool | None = None
    ) -> None:
        v = self.core[MHISTATUS] & ~0xFF00
        v |= (state & 0xFF) << 8
        if ready is not None:
            v = (v | MHISTATUS_READY) if ready else (v & ~MHISTATUS_READY)
        if syserr is not None:
            v = (v | MHISTATUS_SYSERR) if syserr else (v & ~MHISTATUS_SYSERR)
        self.core[MHISTATUS] = v

    def ctrl_state(self) -> int:
        return (self.core[MHICTRL] & MHICTRL_MHISTATE_MASK) >> 8

    def u64(self, low: int) -> int:
        """A 64-bit address from a LOWER/HIGHER register pair."""
        return self.core[low] | (self.core[low + 4] << 32)

    @property
    def ee(self) -> int:
        return self.bhi[BHI_EXECENV]

    # -- host side --------------------------------------------------------------
    def where(self, off: int) -> str:
        """A register's name for violation messages."""
        if off in REG_NAMES:
            return REG_NAMES[off]
        if BHI_BASE <= off < BHI_BASE + BHI_END:
            r = off - BHI_BASE
            if r in BHI_REG_NAMES:
                return "BHI_" + BHI_REG_NAMES[r]
            if BHI_MSMHWID0 <= r < BHI_OEMPKHASH0:
                return f"BHI_MSMHWID({(r - BHI_MSMHWID0) // 4})"
            if BHI_OEMPKHASH0 <= r < BHI_END:
                return f"BHI_OEMPKHASH({(r - BHI_OEMPKHASH0) // 4})"
        if CHDB_BASE <= off < CHDB_BASE + 8 * NUM_CHANNELS:
            return f"CHDB({(off - CHDB_BASE) // 8})"
        if ERDB_BASE <= off < ERDB_BASE + 8 * MAX_EV_RINGS:
            return f"ERDB({(off - ERDB_BASE) // 8})"
        return f"0x{off:03x}"

    def read(self, off: int) -> int:
        """A 32-bit host read at BAR0 ``off`` (4-aligned)."""
        if off in self.core:
            return self.core[off]
        if off == SOC_RESET_REQ_OFFSET:
            return 0  # the request bit is self-clearing; the driver reads back to flush
        if off == SOC_HW_VERSION:
            return SOC_HW_VERSION_VALUE
        if off == QTIMER_LOW:
            return self.qtimer & 0xFFFFFFFF
        if off == QTIMER_HIGH:
            return (self.qtimer >> 32) & 0xFFFFFFFF
        if BHI_BASE <= off < BHI_BASE + BHI_END:
            r = off - BHI_BASE
            return self.bhi.get(r, 0)
        if CHDB_BASE <= off < CHDB_BASE + 8 * NUM_CHANNELS:
            n, hi = divmod(off - CHDB_BASE, 8)
            return (self.chdb[n] >> (32 if hi else 0)) & 0xFFFFFFFF
        if ERDB_BASE <= off < ERDB_BASE + 8 * MAX_EV_RINGS:
            n, hi = divmod(off - ERDB_BASE, 8)
            return (self.erdb[n] >> (32 if hi else 0)) & 0xFFFFFFFF
        if off == CRDB_LOWER:
            return self.crdb & 0xFFFFFFFF
        return 0

    def write(self, off: int, val: int) -> tuple[Any, ...] | None:
        """A 32-bit host write at BAR0 ``off``; the effect for the MHI device."""
        val &= 0xFFFFFFFF
        if off == MHICTRL:
            old = self.core[MHICTRL]
            self.core[MHICTRL] = val & (MHICTRL_MHISTATE_MASK | MHICTRL_RESET)
            return ("ctrl", old, self.core[MHICTRL])
        if off == MHICFG:
            # the host sets NER and NHWER (init.c mhi_init_mmio); NCH/NHWCH are the device's
            self.core[MHICFG] = (val & 0xFFFF0000) | (self.core[MHICFG] & 0xFFFF)
            return None
        if off in _STORAGE:
            self.core[off] = val
            return None
        if off == CRDB_LOWER:
            self.crdb = val | (self.core[CRDB_HIGHER] << 32)
            return ("crdb",)
        if off == SOC_RESET_REQ_OFFSET:
            return ("soc-reset",) if val & SOC_RESET_REQ else None
        if CHDB_BASE <= off < CHDB_BASE + 8 * NUM_CHANNELS:
            n, hi = divmod(off - CHDB_BASE, 8)
            if hi:
                self.chdb[n] = (self.chdb[n] & 0xFFFFFFFF) | (val << 32)
                return None
            self.chdb[n] = (self.chdb[n] & ~0xFFFFFFFF) | val
            return ("chdb", n)
        if ERDB_BASE <= off < ERDB_BASE + 8 * MAX_EV_RINGS:
            n, hi = divmod(off - ERDB_BASE, 8)
            if hi:
                self.erdb[n] = (self.erdb[n] & 0xFFFFFFFF) | (val << 32)
                return None
            self.erdb[n] = (self.erdb[n] & ~0xFFFFFFFF) | val
            return ("erdb", n)
        if BHI_BASE <= off < BHI_BASE + BHI_END:
            r = off - BHI_BASE
            if r == BHI_IMGTXDB:
                self.bhi[BHI_IMGTXDB] = val & BHI_TXDB_SEQNUM_MASK
                return ("bhi-txdb",)
            if r in _BHI_HOST_WRITABLE:
                self.bhi[r] = val
                return None
            return ("bad", "MHI-REG-RO", f"host wrote 0x{val:x} to read-only {self.where(off)}")
        if BHIE_BASE <= off < BHIE_BASE + 0x80:
            return None  # BHIe: not used by AIC100 (no fbc_download/rddm); writes ignored
        if off in (
            MHIREGLEN,
            MHIVER,
            CHDBOFF,
            ERDBOFF,
            BHIOFF,
            BHIEOFF,
            DEBUGOFF,
            MHISTATUS,
            SOC_HW_VERSION,
            QTIMER_LOW,
            QTIMER_HIGH,
        ):
            return ("bad", "MHI-REG-RO", f"host wrote 0x{val:x} to read-only {self.where(off)}")
        return (
            "bad",
            "MHI-REG-UNMAPPED",
            f"host wrote 0x{val:x} to BAR0 0x{off:03x}, no register there",
        )
