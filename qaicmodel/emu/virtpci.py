"""virtio_pcidev messages: config and BAR accesses to the board, MSIs back to the guest.

Protocol from ``include/uapi/linux/virtio_pcidev.h`` (identical in 6.12.117 and
7.2.13): a 16-byte header ``op u8, bar u8, reserved u16, size u32, addr u64``
then data.  The guest side is ``arch/um/drivers/virt-pci.c`` in 6.12 and
``arch/um/drivers/virtio_pcidev.c`` in 7.2 (``*_send_cmd``, ``*_cfgspace_*``,
``*_bar_*``, ``*_irq_vq_addbuf``, ``*_handle_irq_message``):

* requests arrive on virtqueue 0: the header and any write data in readable
  buffers (data may follow the header in the same buffer or in a second one),
  and for reads one writable buffer for the answer;
* a config write always carries 8 data bytes (only ``size`` of them count);
* a BAR memset is sent as ``OP_CFG_WRITE`` with ``bar`` set and one data byte,
  in both kernels (``um_pci_bar_set`` / ``virtio_pcidev_bar_set``), never as
  ``OP_MMIO_MEMSET``; MHI's only memset (``mhi_init_mmio``-time clear of the BHIe
  RX registers) is 28 bytes at BAR0 + bhie + 0x60, so a config write is a BAR
  memset when its ``bar`` is non-zero or its size is not 1, 2, 4 or 8;
* interrupts go back on virtqueue 1 into buffers the guest posted in advance
  (10 of 20 bytes): an ``OP_MSI`` header with the 16-bit MSI data, which UML's
  MSI domain makes the Linux IRQ number (``um_pci_compose_msi_msg``: address
  0xa0000, data = irq).

Guest accesses the device does not decode are recorded as emulator violations
(``EMU-BAR-RANGE``, ``EMU-BAR-NONE``, ``EMU-BAR-DISABLED``, ``EMU-CFG-RANGE``)
and answered the way an unclaimed PCI read is (all ones); malformed messages
raise :class:`~qaicmodel.errors.TransportError`.
"""

from __future__ import annotations

import collections
import struct
from collections.abc import Iterator
from typing import Any, Protocol

import attrs

from qaicmodel.emu.config import ConfigSpace
from qaicmodel.emu.virtq import Chain, Virtqueue
from qaicmodel.errors import TransportError

__all__ = ["VirtPci", "Board", "OP", "HEADER", "Violation", "EMU_RULES", "pieces"]

HEADER = struct.Struct("<BBHIQ")


class OP:
    RESERVED = 0
    CFG_READ = 1
    CFG_WRITE = 2
    MMIO_READ = 3
    MMIO_WRITE = 4
    MMIO_MEMSET = 5
    INT = 6
    MSI = 7
    PME = 8


OP_NAMES = {
    1: "CFG_READ",
    2: "CFG_WRITE",
    3: "MMIO_READ",
    4: "MMIO_WRITE",
    5: "MMIO_MEMSET",
    6: "INT",
    7: "MSI",
    8: "PME",
}

#: emulator rule ids (the guest broke the PCI function's contract)
EMU_RULES = {
    "EMU-BAR-RANGE": "a BAR access runs past the end of the BAR",
    "EMU-BAR-NONE": "an access to a BAR the function does not implement",
    "EMU-BAR-DISABLED": "a BAR access while memory decoding is off in the command register",
    "EMU-CFG-RANGE": "a config access outside the 4 KiB configuration space",
}
MAX_MMIO = 1 << 20  # one request's data (copy_from/copy_to of a whole BAR is <= 2 MiB)
MAX_QUEUED_MSI = 4096


class Board(Protocol):
    """The board contract (see :mod:`qaicmodel.emu`)."""

    bars: dict[int, int]
    violations: Any

    def attach(self, mem: Any, msi: Any) -> None: ...

    def bar_read(self, bar: int, off: int, size: int) -> int: ...

    def bar_write(self, bar: int, off: int, size: int, value: int) -> None: ...

    def bar_memset(self, bar: int, off: int, size: int, byte: int) -> None: ...

    def actions(self) -> list[Any]: ...

    def step(self, action: Any) -> None: ...


@attrs.frozen
class Violation:
    rule: str
    where: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.where}"


def pieces(off: int, size: int) -> Iterator[tuple[int, int]]:
    """Split [off, off+size) into naturally aligned 8/4/2/1-byte accesses."""
    end = off + size
    while off < end:
        for n in (8, 4, 2, 1):
            if n <= end - off and off % n == 0:
                yield off, n
                off += n
                break


@attrs.define
class Stats:
    cfg_reads: int = 0
    cfg_writes: int = 0
    mmio_reads: int = 0
    mmio_writes: int = 0
    memsets: int = 0
    msi_sent: int = 0
    msi_queued_peak: int = 0
    msi_dropped: int = 0
    msi_pending_masked: int = 0


class VirtPci:
    """One PCI function behind virt-pci: config space plus a board."""

    def __init__(
        self, config: ConfigSpace, board: Board, *, present: bool = True, max_violations: int = 1000
    ) -> None:
        self.config = config
        #: False: slot 0 answers config reads with all ones (no function there) until
        #: the runner plugs the device in (the guest then rescans the bus)
        self.present = present
        self.board = board
        self.cmd_vq: Virtqueue | None = None
        self.irq_vq: Virtqueue | None = None
        self.violations: list[Violation] = []
        self.violation_count = 0
        self.max_violations = max_violations
        self.stats = Stats()
        self._msi_queue: collections.deque[int] = collections.deque()
        mismatch = {i: s for i, s in board.bars.items() if config.bars.get(i) != s}
        if mismatch or set(board.bars) != set(config.bars):
            raise TransportError(
                f"the board's BARs {board.bars} disagree with config space {config.bars}",
                where="board",
            )

    def bind(self, cmd_vq: Virtqueue, irq_vq: Virtqueue) -> None:
        self.cmd_vq, self.irq_vq = cmd_vq, irq_vq

    def _violate(self, rule: str, where: str) -> None:
        self.violation_count += 1
        if len(self.violations) < self.max_violations:
            self.violations.append(Violation(rule, where))

    # -- requests ---------------------------------------------------------------

    def service(self) -> int:
        """Handle every request waiting on virtqueue 0; returns how many."""
        q = self.cmd_vq
        if q is None or not q.ready:
            return 0
        done = 0
        while True:
            chain = q.pop()
            if chain is None:
                break
            q.push(chain, self.handle(q, chain))
            done += 1
        if done:
            q.signal()
        return done

    def handle(self, q: Virtqueue, chain: Chain) -> int:
        """One request chain; returns the bytes written into its in-buffers."""
        raw = q.read_out(chain, HEADER.size + MAX_MMIO)
        if len(raw) < HEADER.size:
            raise TransportError(
                f"request of {len(raw)} bytes is shorter than the 16-byte header",
                where=f"virtio_pcidev chain {chain.head}",
            )
        op, bar, _res, size, addr = HEADER.unpack_from(raw)
        data = raw[HEADER.size :]
        name = OP_NAMES.get(op, f"op {op}")
        where = f"virtio_pcidev {name}"
        if op == OP.CFG_READ:
            self._check_size(size, where)
            return self._reply(q, chain, self.cfg_read(addr, size), where)
        if op == OP.CFG_WRITE:
            if bar != 0 or size not in (1, 2, 4, 8):
                if not data:
                    raise TransportError("memset without its data byte", where=where)
                self.bar_memset(bar, addr, size, data[0])
                return 0
            if len(data) < size:
                raise TransportError(f"{len(data)} data bytes for a {size}-byte write", where=where)
            self.cfg_write(addr, data[:size])
            return 0
        if op == OP.MMIO_READ:
            if not 0 < size <= MAX_MMIO:
                raise TransportError(f"read size {size}", where=where)
            return self._reply(q, chain, self.bar_read(bar, addr, size), where)
        if op == OP.MMIO_WRITE:
            if not 0 < size <= MAX_MMIO or len(data) < size:
                raise TransportError(f"{len(data)} data bytes for a {size}-byte write", where=where)
            self.bar_write(bar, addr, data[:size])
            return 0
        if op == OP.MMIO_MEMSET:
            if not data:
                raise TransportError("memset without its data byte", where=where)
            self.bar_memset(bar, addr, size, data[0])
            return 0
        if op in (OP.INT, OP.MSI, OP.PME):
            raise TransportError("an interrupt message is device-to-guest only", where=where)
        raise TransportError("unknown operation", where=where)

    @staticmethod
    def _check_size(size: int, where: str) -> None:
        if size not in (1, 2, 4, 8):
            raise TransportError(f"config access size {size} is not 1, 2, 4 or 8", where=where)

    @staticmethod
    def _reply(q: Virtqueue, chain: Chain, data: bytes, where: str) -> int:
        if chain.in_len < len(data):
            raise TransportError(
                f"answer buffer of {chain.in_len} bytes for {len(data)}", where=where
            )
        return q.write_in(chain, data)

    # -- config space -----------------------------------------------------------

    def cfg_read(self, off: int, size: int) -> bytes:
        self.stats.cfg_reads += 1
        if not self.present:
            return b"\xff" * size
        if not self.config.in_range(off, size):
            self._violate("EMU-CFG-RANGE", f"config read {size}@{off:#x}")
            return b"\xff" * size
        return self.config.read_bytes(off, size)

    def cfg_write(self, off: int, data: bytes) -> None:
        self.stats.cfg_writes += 1
        if not self.present:
            return
        if not self.config.in_range(off, len(data)):
            self._violate("EMU-CFG-RANGE", f"config write {len(data)}@{off:#x}")
            return
        self.config.write_bytes(off, data)
        self.flush_msi()  # MSI enable / unmask may release queued messages

    # -- BARs -------------------------------------------------------------------

    def _bar_ok(self, bar: int, off: int, size: int, what: str) -> bool:
        bsize = self.config.bars.get(bar)
        if bsize is None:
            self._violate("EMU-BAR-NONE", f"{what} BAR{bar}+{off:#x} size {size}")
            return False
        if off < 0 or off + size > bsize:
            self._violate(
                "EMU-BAR-RANGE",
                f"{what} BAR{bar}+{off:#x} size {size} (BAR{bar} is {bsize:#x} bytes)",
            )
            return False
        if not self.config.memory_enabled:
            self._violate("EMU-BAR-DISABLED", f"{what} BAR{bar}+{off:#x} size {size}")
            return False
        return True

    def bar_read(self, bar: int, off: int, size: int) -> bytes:
        self.stats.mmio_reads += 1
        if not self._bar_ok(bar, off, size, "read"):
            return b"\xff" * size
        out = bytearray()
        for o, n in pieces(off, size):
            v = self.board.bar_read(bar, o, n)
            out += (int(v) & ((1 << 8 * n) - 1)).to_bytes(n, "little")
        return bytes(out)

    def bar_write(self, bar: int, off: int, data: bytes) -> None:
        self.stats.mmio_writes += 1
        if not self._bar_ok(bar, off, len(data), "write"):
            return
        for o, n in pieces(off, len(data)):
            self.board.bar_write(bar, o, n, int.from_bytes(data[o - off : o - off + n], "little"))

    def bar_memset(self, bar: int, off: int, size: int, byte: int) -> None:
        self.stats.memsets += 1
        if size == 0:
            return
        if not self._bar_ok(bar, off, size, "memset"):
            return
        self.board.bar_memset(bar, off, size, byte & 0xFF)

    # -- MSIs -------------------------------------------------------------------

    #: send an MSI as soon as the board raises it (False: when the backend flushes, so it
    #: can keep them out of a guest read's window, docs/findings.md F7)
    immediate = True

    def msi(self, vector: int) -> None:
        """The board raises MSI ``vector``: sent now (or at the backend's next flush, see
        :attr:`immediate`), or queued until the guest posts a buffer; dropped while MSI is
        disabled or bus mastering is off; held pending while the vector is masked
        (maskable capability only)."""
        cfg = self.config
        if not cfg.msi_enabled or not cfg.bus_master:
            self.stats.msi_dropped += 1
            return
        if cfg.msi_masked(vector):
            cfg.set_msi_pending(vector, True)
            self.stats.msi_pending_masked += 1
            return
        if len(self._msi_queue) >= MAX_QUEUED_MSI:
            self.stats.msi_dropped += 1
            return
        self._msi_queue.append(vector)
        self.stats.msi_queued_peak = max(self.stats.msi_queued_peak, len(self._msi_queue))
        if self.immediate:
            self.flush_msi()

    @property
    def msi_waiting(self) -> int:
        return len(self._msi_queue)

    def flush_msi(self) -> int:
        """Send queued MSIs into posted buffers; returns how many went out."""
        cfg = self.config
        for v in cfg.msi_pending():
            if not cfg.msi_masked(v) and cfg.msi_enabled:
                cfg.set_msi_pending(v, False)
                self._msi_queue.append(v)
        q = self.irq_vq
        if q is None or not q.ready or not self._msi_queue:
            return 0
        sent = 0
        while self._msi_queue:
            if not cfg.msi_enabled or not cfg.bus_master:
                self.stats.msi_dropped += len(self._msi_queue)
                self._msi_queue.clear()
                break
            chain = q.pop()
            if chain is None:
                break
            vector = self._msi_queue.popleft()
            msg = HEADER.pack(OP.MSI, 0, 0, 2, cfg.msi_address) + struct.pack(
                "<H", cfg.msi_data(vector)
            )
            if chain.in_len < len(msg):
                raise TransportError(
                    f"interrupt buffer of {chain.in_len} bytes for an {len(msg)}-byte MSI message",
                    where="virtio_pcidev irq",
                )
            q.push(chain, q.write_in(chain, msg))
            sent += 1
        if sent:
            self.stats.msi_sent += sent
            q.signal()
        return sent
