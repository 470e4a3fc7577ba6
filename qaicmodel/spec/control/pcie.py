"""PCIe identity of the AIC100 family: ids, BARs, MSI allocation, passthrough ownership.

Rules (aic100.rst "Hardware Description"; ssr-ras-boot.md §6 and
control-path.md §4.2, which read qaic_drv.c; seeds 000/001 for hypervisors):
  * vendor 0x17cb; device 0xa100 AIC100 ("All AIC100 SKUs use the same AIC100
    DID"), and the driver also knows 0xa080 AIC080 and 0xa110 AIC200;
  * three 64-bit BARs: BAR0 4 KiB MHI, BAR2 2 MiB DMA Bridge, BAR4 64 KiB by
    default and unused; the driver requires exactly BARs {0, 2, 4}
    (AIC200: {0, 1, 2, 4}, MHI in BAR1); DBC i at BAR2 + 0x20000 + i * 0x1000;
  * MSI only, no MSI-X, no FLR; 17 vectors are needed (1 MHI + 16 DBC); plain
    MSI enables a power of two, so 17 requested means 32 must be assignable
    (the hypervisor guides: "requires the assignment of 32 message signal
    interrupts"); on -ENOSPC the driver falls back to a single shared vector;
  * PCIe passthrough: exactly one owner (the host or one VM) per card.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from qaicmodel.errors import ArgumentError, IoctlError
from qaicmodel.spec.policies import (
    PCIE_MSI_COUNT,
    PCIE_MSIX,
    PCIE_REGISTER_WINDOW,
    PCIE_SINGLE_MSI_ROUTING,
    PcieMsiCount,
    PcieMsix,
    PcieRegisterWindow,
    PcieSingleMsiRouting,
    Policies,
)

__all__ = [
    "VENDOR",
    "Family",
    "DEVICES",
    "Bar",
    "bars",
    "DBC_BASE",
    "DBC_SIZE",
    "dbc_reg_offset",
    "msi_enable_count",
    "alloc_msi",
    "MsiAlloc",
    "Card",
    "NUM_DBC",
]

VENDOR = 0x17CB
NUM_DBC = 16
DBC_BASE = 0x20000  # QAIC_DBC_BASE (SZ_128K)
DBC_SIZE = 0x1000  # QAIC_DBC_SIZE (SZ_4K)


class Family(enum.Enum):
    AIC100 = "aic100"
    AIC200 = "aic200"


#: device id -> (name, family)
DEVICES = {
    0xA100: ("AIC100", Family.AIC100),
    0xA080: ("AIC080", Family.AIC100),
    0xA110: ("AIC200", Family.AIC200),
}


@attrs.frozen
class Bar:
    index: int
    size: int
    purpose: str
    mapped: bool


def bars(family: Family = Family.AIC100, bar4_size: int = 0x10000) -> list[Bar]:
    """The BARs the driver requires (``bar_mask``), with the sizes aic100.rst gives."""
    if family == Family.AIC100:
        return [
            Bar(0, 0x1000, "MHI", True),
            Bar(2, 0x200000, "DMA Bridge", True),
            Bar(4, bar4_size, "no purpose", False),
        ]
    return [
        Bar(0, 0x1000, "unused", False),
        Bar(1, 0x1000, "MHI", True),
        Bar(2, 0x200000, "DMA Bridge", True),
        Bar(4, bar4_size, "no purpose", False),
    ]


def bar_mask(family: Family) -> int:
    return sum(1 << b.index for b in bars(family))


def check_bars(present_mask: int, family: Family = Family.AIC100) -> None:
    """``init_pci``: (present & 0x3f) must equal the family's mask, else -EINVAL."""
    if present_mask & 0x3F != bar_mask(family):
        raise IoctlError(
            "EINVAL", f"expected BARs 0x{bar_mask(family):x}, found 0x{present_mask & 0x3F:x}"
        )


def dbc_reg_offset(dbc: int, reg: int, policies: Policies | None = None) -> int:
    """BAR2 offset of a DBC register (policy ``pcie-register-window``: the driver's
    128 KiB base, which aic100.rst does not give)."""
    if not 0 <= dbc < NUM_DBC or reg not in (0x0, 0x4, 0x8, 0xC):
        raise ArgumentError(f"no DBC register {reg:#x} on channel {dbc}")
    window = (policies or Policies())[PCIE_REGISTER_WINDOW]
    base = DBC_BASE if window is PcieRegisterWindow.DRIVER_128K else 0
    return base + dbc * DBC_SIZE + reg


def msi_enable_count(requested: int) -> int:
    """Plain MSI's Multiple Message Enable: the next power of two (max 32)."""
    if not 1 <= requested <= 32:
        raise ArgumentError(f"MSI can enable 1..32 vectors, not {requested}")
    n = 1
    while n < requested:
        n <<= 1
    return n


@attrs.frozen
class MsiAlloc:
    """The outcome of ``init_msi``: vectors the host got, and whether it shares vector 0."""

    vectors: int
    enabled: int  # what Multiple Message Enable programs
    single_msi: bool
    routes_to_0: bool = True  # policy pcie-single-msi-routing

    def vector_of(self, dbc: int | None) -> int | None:
        """Vector of the MHI (``None``) or of DBC ``dbc``: 0 and i+1; in single-MSI mode
        0, or no interrupt at all when the device does not route DBCs to vector 0."""
        if dbc is None:
            return 0
        if self.single_msi:
            return 0 if self.routes_to_0 else None
        return dbc + 1


def alloc_msi(available: int, policies: Policies | None = None, num_dbc: int = NUM_DBC) -> MsiAlloc:
    """What the driver gets when the platform can assign ``available`` MSI vectors.

    Raises IoctlError (the probe's errno) when the policy's driver fails the probe.
    """
    pol = (policies or Policies())[PCIE_MSI_COUNT]
    msix = (policies or Policies())[PCIE_MSIX] is PcieMsix.MSIX_PRESENT
    want = num_dbc + 1
    if pol is PcieMsiCount.REQUIRE_32:
        if available < 32:
            raise IoctlError("ENODEV", f"requested 32 MSIs, obtained {available}")
        return MsiAlloc(32, 32, False)
    if pol is PcieMsiCount.EXACT_32_FALLBACK_1:
        want = 32
    need = want if msix else msi_enable_count(want)
    if available >= need:
        return MsiAlloc(want, need, False)
    if available >= 1:  # -ENOSPC -> one vector
        routing = (policies or Policies())[PCIE_SINGLE_MSI_ROUTING]
        routes = routing is PcieSingleMsiRouting.ROUTES_TO_0
        return MsiAlloc(1, 1, True, routes)
    raise IoctlError("ENOSPC", "no MSI vector available")


class Card:
    """PCIe passthrough: one card has exactly one owner (the host or one VM)."""

    def __init__(self, device_id: int = 0xA100) -> None:
        if device_id not in DEVICES:
            raise ArgumentError(f"0x{device_id:04x} is not a device id the driver knows")
        self.device_id = device_id
        self.owner: str | None = None

    def assign(self, owner: str) -> None:
        if self.owner is not None and self.owner != owner:
            raise IoctlError(
                "EBUSY", f"card already owned by {self.owner}; passthrough cannot share a card"
            )
        self.owner = owner

    def release(self, owner: str) -> None:
        if self.owner != owner:
            raise ArgumentError(f"{owner} does not own the card")
        self.owner = None

    def identity(self) -> dict[str, Any]:
        name, fam = DEVICES[self.device_id]
        return {
            "vendor": f"0x{VENDOR:04x}",
            "device": f"0x{self.device_id:04x}",
            "name": name,
            "family": fam.value,
            "flr": False,
            "msix": False,
            "bars": [attrs.asdict(b) for b in bars(fam)],
        }
