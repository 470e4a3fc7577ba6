"""DMA Bridge register map (BAR2), as the host sees it.

Rules (sources):
  * Each DBC has four 32-bit registers: REQ_HP 0x0 (device-owned, host reads),
    REQ_TP 0x4 (host-owned), RSP_HP 0x8 (host-owned), RSP_TP 0xC (device-owned,
    host reads) -- aic100.rst "DMA Bridge".
  * "Each DBC consumes 4KB of space in the BAR" -- aic100.rst "DMA Bridge";
    the block of DBC i starts at BAR2 + 0x20000 + i * 0x1000 (qaic_data.c /
    qaic.h ``QAIC_DBC_BASE`` = SZ_128K, ``QAIC_DBC_SIZE`` = SZ_4K).
  * 16 DBCs (aic100.rst "DMA Bridge"; qaic_drv.c ``num_dbc``).
  * BAR2 is 2 MiB (aic100.rst "Hardware Description").
  * Register values are FIFO indexes (aic100.rst "DMA Bridge").
"""

from __future__ import annotations

import enum

from qaicmodel.errors import ArgumentError

__all__ = [
    "REQ_HP",
    "REQ_TP",
    "RSP_HP",
    "RSP_TP",
    "DBC_BASE",
    "DBC_STRIDE",
    "NUM_DBC",
    "BAR2_SIZE",
    "Reg",
    "REG_NAMES",
    "HOST_OWNED",
    "DEVICE_OWNED",
    "dbc_reg_offset",
    "decode_offset",
]

REQ_HP = 0x0
REQ_TP = 0x4
RSP_HP = 0x8
RSP_TP = 0xC
DBC_BASE = 0x20000
DBC_STRIDE = 0x1000
NUM_DBC = 16
BAR2_SIZE = 2 * 1024 * 1024


class Reg(enum.IntEnum):
    """The four DBC registers by offset (aic100.rst "DMA Bridge")."""

    REQ_HP = REQ_HP
    REQ_TP = REQ_TP
    RSP_HP = RSP_HP
    RSP_TP = RSP_TP


REG_NAMES = {r.value: r.name for r in Reg}
#: registers the host writes ("Read/write by the host")
HOST_OWNED = frozenset({REQ_TP, RSP_HP})
#: registers only the device writes ("Read only by the host")
DEVICE_OWNED = frozenset({REQ_HP, RSP_TP})


def dbc_reg_offset(dbc: int, reg: int, num_dbc: int = NUM_DBC) -> int:
    """BAR2 offset of register ``reg`` of channel ``dbc``."""
    if not isinstance(dbc, int) or not 0 <= dbc < num_dbc:
        raise ArgumentError(f"dbc {dbc!r} out of range 0..{num_dbc - 1}")
    if reg not in REG_NAMES:
        raise ArgumentError(f"register offset {reg!r} is not one of 0x0, 0x4, 0x8, 0xC")
    return DBC_BASE + dbc * DBC_STRIDE + reg


def decode_offset(off: int, num_dbc: int = NUM_DBC) -> tuple[int, int] | None:
    """(dbc, reg) for a BAR2 offset, or None when it is not a DBC register.

    ArgumentError when ``off`` is not an offset inside the 2 MiB BAR at all.
    """
    if not isinstance(off, int) or isinstance(off, bool) or not 0 <= off < BAR2_SIZE:
        raise ArgumentError(f"BAR2 offset {off!r} is outside the 2 MiB BAR")
    rel = off - DBC_BASE
    if rel < 0:
        return None
    dbc, reg = divmod(rel, DBC_STRIDE)
    if dbc >= num_dbc or reg not in REG_NAMES:
        return None
    return dbc, reg
