"""PCI configuration space of the virtual AIC100, as the guest's PCI core sees it.

Identity and BARs come from the model's PCIe module (``spec/control/pcie.py``:
vendor 0x17cb, device 0xa100, three 64-bit memory BARs BAR0 4 KiB MHI, BAR2
2 MiB DMA Bridge, BAR4 64 KiB; MSI only, no MSI-X, no FLR; 17 vectors wanted, so
the MSI capability advertises 32).  Class 0x120000 is base class 0x12
"processing accelerator" (PCI Code and ID Assignment specification), what
``pci 0000:00:00.0: [17cb:a100] type 00 class 0x120000`` prints.

Layout and register semantics from the PCI Local Bus specification 3.0 (type 0
header, "Message Signaled Interrupts" capability) as Linux reads them
(``drivers/pci/probe.c`` ``__pci_read_base`` sizes a BAR by writing all ones;
``drivers/pci/msi/msi.c`` programs address, data and Multiple Message Enable).
There is no PCI Express capability: the function is a conventional PCI
endpoint, which also means no Function Level Reset.

Every byte has a write mask (read-only bits keep their value) and a
write-1-to-clear mask (status register error bits).
"""

from __future__ import annotations

import struct

from qaicmodel.errors import ArgumentError, NotModelledError

try:
    from qaicmodel.emu._model import NUM_DBC, VENDOR, Family, Policies, bars, msi_enable_count
except ImportError:  # until the restructuring lands emu/_model.py
    from qaicmodel.spec.control.pcie import NUM_DBC, VENDOR, Family, bars, msi_enable_count
    from qaicmodel.spec.policies import Policies

__all__ = ["ConfigSpace", "CLASS_CODE", "DEVICE_ID", "MSI_CAP", "CFG_SIZE"]

CFG_SIZE = 4096
DEVICE_ID = 0xA100
CLASS_CODE = 0x120000  # processing accelerator
MSI_CAP = 0x50

# type 0 header offsets
VENDOR_ID, DEVICE_ID_OFF, COMMAND, STATUS = 0x00, 0x02, 0x04, 0x06
REVISION, CLASS_PROG = 0x08, 0x09
CACHE_LINE, LATENCY, HEADER_TYPE = 0x0C, 0x0D, 0x0E
BAR0, ROM, CAP_PTR, INT_LINE, INT_PIN = 0x10, 0x30, 0x34, 0x3C, 0x3D

CMD_MEMORY = 1 << 1
CMD_MASTER = 1 << 2
CMD_PARITY = 1 << 6
CMD_SERR = 1 << 8
CMD_INTX_DISABLE = 1 << 10
STATUS_CAP_LIST = 1 << 4
STATUS_W1C = (1 << 8) | (0x1F << 11)  # master data parity error, target/master aborts, SERR, parity

MSI_CTRL_ENABLE = 1 << 0
MSI_CTRL_64BIT = 1 << 7
MSI_CTRL_MASKABLE = 1 << 8

BAR_MEM_64 = 0x4  # memory space, 64-bit, not prefetchable


class ConfigSpace:
    """4 KiB of configuration space with read-only, read-write and W1C bits.

    ``maskable`` adds per-vector masking to the MSI capability (mask and pending
    bits); the default, like the device this was first booted against, has none.
    """

    def __init__(
        self,
        *,
        device_id: int = DEVICE_ID,
        bar4_size: int = 0x10000,
        policies: Policies | None = None,
        maskable: bool = False,
        revision: int = 0,
    ) -> None:
        pol = policies or Policies()
        if pol["pcie-msix"] == "msix-present":
            raise NotModelledError(
                "policy pcie-msix=msix-present: the emulator has no MSI-X capability yet"
            )
        self.data = bytearray(CFG_SIZE)
        self.wmask = bytearray(CFG_SIZE)
        self.w1c = bytearray(CFG_SIZE)
        self.maskable = maskable
        self.bars: dict[int, int] = {}
        fam = Family.AIC100
        for b in bars(fam, bar4_size):
            if b.size & (b.size - 1) or b.size < 16:
                raise ArgumentError(f"BAR{b.index} size {b.size:#x} is not a power of two >= 16")
            self.bars[b.index] = b.size
        self._put(VENDOR_ID, 2, VENDOR)
        self._put(DEVICE_ID_OFF, 2, device_id)
        self._put(
            COMMAND, 2, 0, wmask=CMD_MEMORY | CMD_MASTER | CMD_PARITY | CMD_SERR | CMD_INTX_DISABLE
        )
        self._put(STATUS, 2, STATUS_CAP_LIST, w1c=STATUS_W1C)
        self._put(REVISION, 1, revision)
        self._put(CLASS_PROG, 3, CLASS_CODE)
        self._put(CACHE_LINE, 1, 0, wmask=0xFF)
        self._put(LATENCY, 1, 0, wmask=0xFF)
        self._put(HEADER_TYPE, 1, 0)
        for index, size in self.bars.items():
            lo = BAR0 + 4 * index
            self._put(lo, 4, BAR_MEM_64, wmask=~(size - 1) & 0xFFFFFFF0)
            self._put(lo + 4, 4, 0, wmask=0xFFFFFFFF)
        self._put(ROM, 4, 0)
        self._put(CAP_PTR, 1, MSI_CAP)
        self._put(INT_LINE, 1, 0, wmask=0xFF)
        self._put(INT_PIN, 1, 0)  # no INTx: MSI only
        # MSI capability: 64-bit, Multiple Message Capable = log2(vectors wanted)
        mmc = (msi_enable_count(NUM_DBC + 1) - 1).bit_length()
        ctrl = MSI_CTRL_64BIT | (mmc << 1) | (MSI_CTRL_MASKABLE if maskable else 0)
        self._put(MSI_CAP, 1, 0x05)  # capability id: MSI
        self._put(MSI_CAP + 1, 1, 0)  # last capability
        self._put(MSI_CAP + 2, 2, ctrl, wmask=MSI_CTRL_ENABLE | (0x7 << 4))
        self._put(MSI_CAP + 4, 4, 0, wmask=0xFFFFFFFC)
        self._put(MSI_CAP + 8, 4, 0, wmask=0xFFFFFFFF)
        self._put(MSI_CAP + 12, 2, 0, wmask=0xFFFF)
        if maskable:
            self._put(MSI_CAP + 16, 4, 0, wmask=(1 << (1 << mmc)) - 1 if mmc < 5 else 0xFFFFFFFF)
            self._put(MSI_CAP + 20, 4, 0)  # pending bits: read-only
        self.msi_mmc = mmc

    def _put(self, off: int, size: int, value: int, *, wmask: int = 0, w1c: int = 0) -> None:
        self.data[off : off + size] = (value & ((1 << 8 * size) - 1)).to_bytes(size, "little")
        self.wmask[off : off + size] = (wmask & ((1 << 8 * size) - 1)).to_bytes(size, "little")
        self.w1c[off : off + size] = (w1c & ((1 << 8 * size) - 1)).to_bytes(size, "little")

    # -- accesses ---------------------------------------------------------------

    @staticmethod
    def in_range(off: int, size: int) -> bool:
        return 0 <= off and size > 0 and off + size <= CFG_SIZE

    def read(self, off: int, size: int) -> int:
        """Little-endian value of ``size`` bytes at ``off`` (caller checked the range)."""
        return int.from_bytes(self.data[off : off + size], "little")

    def read_bytes(self, off: int, size: int) -> bytes:
        return bytes(self.data[off : off + size])

    def write(self, off: int, size: int, value: int) -> None:
        self.write_bytes(off, (value & ((1 << 8 * size) - 1)).to_bytes(size, "little"))

    def write_bytes(self, off: int, data: bytes) -> None:
        for i, v in enumerate(data):
            o = off + i
            cur = self.data[o]
            keep = cur & ~self.wmask[o] & 0xFF
            new = keep | (v & self.wmask[o])
            new &= ~(v & self.w1c[o]) & 0xFF
            self.data[o] = new

    def u16(self, off: int) -> int:
        return int(struct.unpack_from("<H", self.data, off)[0])

    def u32(self, off: int) -> int:
        return int(struct.unpack_from("<I", self.data, off)[0])

    # -- the guest's programming, as the device acts on it ----------------------

    @property
    def command(self) -> int:
        return self.u16(COMMAND)

    @property
    def memory_enabled(self) -> bool:
        return bool(self.command & CMD_MEMORY)

    @property
    def bus_master(self) -> bool:
        return bool(self.command & CMD_MASTER)

    def bar_address(self, index: int) -> int:
        lo = BAR0 + 4 * index
        return (self.u32(lo) & ~0xF) | (self.u32(lo + 4) << 32)

    @property
    def msi_control(self) -> int:
        return self.u16(MSI_CAP + 2)

    @property
    def msi_enabled(self) -> bool:
        return bool(self.msi_control & MSI_CTRL_ENABLE)

    @property
    def msi_vectors(self) -> int:
        """Vectors enabled (Multiple Message Enable, capped at what is advertised)."""
        mme = (self.msi_control >> 4) & 0x7
        return 1 << min(mme, self.msi_mmc)

    @property
    def msi_address(self) -> int:
        return self.u32(MSI_CAP + 4) | (self.u32(MSI_CAP + 8) << 32)

    @property
    def msi_data_base(self) -> int:
        return self.u16(MSI_CAP + 12)

    def msi_data(self, vector: int) -> int:
        """The message data for ``vector``: the low log2(enabled) bits carry the vector
        (a vector beyond the enabled count folds onto them, as hardware does)."""
        n = self.msi_vectors
        return (self.msi_data_base & ~(n - 1)) | (vector & (n - 1))

    def msi_masked(self, vector: int) -> bool:
        if not self.maskable:
            return False
        return bool(self.u32(MSI_CAP + 16) >> (vector % self.msi_vectors) & 1)

    def set_msi_pending(self, vector: int, pending: bool) -> None:
        if not self.maskable:
            return
        off = MSI_CAP + 20
        bit = 1 << (vector % self.msi_vectors)
        cur = self.u32(off)
        struct.pack_into("<I", self.data, off, (cur | bit) if pending else (cur & ~bit))

    def msi_pending(self) -> list[int]:
        if not self.maskable:
            return []
        bits = self.u32(MSI_CAP + 20)
        return [v for v in range(32) if bits >> v & 1]
