"""PCI config space, virtio_pcidev messages and the backend loop, against a fake frontend."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest
from fake_frontend import FakeFrontend

from qaicmodel.emu.backend import Backend
from qaicmodel.emu.config import ConfigSpace
from qaicmodel.emu.testboard import StubBoard
from qaicmodel.emu.virtpci import OP, VirtPci, pieces
from qaicmodel.errors import TransportError

pytestmark = pytest.mark.uml


# -- config space ---------------------------------------------------------------------


def test_identity_and_class() -> None:
    c = ConfigSpace()
    assert c.read(0, 2) == 0x17CB and c.read(2, 2) == 0xA100
    assert c.read(8, 4) >> 8 == 0x120000
    assert c.read(0x0E, 1) == 0  # type 0 header
    c.write(0, 4, 0)  # read-only
    assert c.read(0, 4) == 0xA10017CB


@pytest.mark.parametrize("bar, size", [(0, 0x1000), (2, 0x200000), (4, 0x10000)])
def test_bar_sizing(bar: int, size: int) -> None:
    c = ConfigSpace()
    lo = 0x10 + 4 * bar
    assert c.read(lo, 4) == 0x4  # memory, 64-bit, not prefetchable
    c.write(lo, 4, 0xFFFFFFFF)
    c.write(lo + 4, 4, 0xFFFFFFFF)
    got = c.read(lo, 4) | c.read(lo + 4, 4) << 32
    assert (~(got & ~0xF) + 1) & 0xFFFFFFFFFFFFFFFF == size
    c.write(lo, 4, 0xF0201000 | 0xF)
    c.write(lo + 4, 4, 0)
    assert c.bar_address(bar) == 0xF0201000 & ~(size - 1)


def test_unimplemented_bars_and_rom_read_zero() -> None:
    c = ConfigSpace()
    for off in (0x30,):
        c.write(off, 4, 0xFFFFFFFF)
        assert c.read(off, 4) == 0
    assert set(c.bars) == {0, 2, 4}


def test_command_status_and_capabilities() -> None:
    c = ConfigSpace()
    c.write(4, 2, 0xFFFF)
    assert c.read(4, 2) == 0x0546  # memory, master, parity, SERR, INTx disable; no I/O space
    assert c.memory_enabled and c.bus_master
    assert c.read(6, 2) & 0x10  # capability list
    struct.pack_into("<H", c.data, 6, 0x10 | 0x8000)  # a parity error latched
    c.write(6, 2, 0x8000)  # write 1 to clear
    assert c.read(6, 2) == 0x10
    caps = []
    ptr = c.read(0x34, 1)
    while ptr:
        caps.append(c.read(ptr, 1))
        ptr = c.read(ptr + 1, 1)
    assert caps == [0x05], "MSI only: no MSI-X (0x11), no PCI Express (0x10) so no FLR"


def test_msi_capability() -> None:
    c = ConfigSpace()
    ctrl = c.read(0x52, 2)
    assert ctrl & 0x80 and (ctrl >> 1) & 7 == 5  # 64-bit, 32 vectors capable
    assert not ctrl & 0x100  # no per-vector masking
    c.write(0x52, 2, 0xFFFF)
    assert c.read(0x52, 2) == ctrl | 0x71 and c.msi_enabled and c.msi_vectors == 32
    c.write(0x52, 2, 0x0001)  # UML: one vector
    c.write(0x54, 4, 0xA0003)
    c.write(0x58, 4, 0)
    c.write(0x5C, 2, 129)
    assert c.msi_address == 0xA0000 and c.msi_vectors == 1
    assert [c.msi_data(v) for v in (0, 5, 16)] == [129, 129, 129]
    c.write(0x52, 2, 0x0001 | 5 << 4)
    c.write(0x5C, 2, 0x40)
    assert [c.msi_data(v) for v in (0, 1, 16)] == [0x40, 0x41, 0x50]


def test_maskable_msi_holds_pending() -> None:
    c = ConfigSpace(maskable=True)
    board = StubBoard()
    pci = VirtPci(c, board)
    c.write(4, 2, 6)
    c.write(0x52, 2, 1)
    c.write(0x60, 4, 1)  # mask vector 0
    pci.msi(0)
    assert c.msi_pending() == [0] and pci.msi_waiting == 0
    c.write(0x52, 2, 1)
    pci.cfg_write(0x60, struct.pack("<I", 0))  # unmask: the pending message is released
    assert c.msi_pending() == [] and pci.msi_waiting == 1


def test_pieces() -> None:
    assert list(pieces(0x61, 0x1C)) == [
        (0x61, 1),
        (0x62, 2),
        (0x64, 4),
        (0x68, 8),
        (0x70, 8),
        (0x78, 4),
        (0x7C, 1),
    ]


def test_board_bars_must_match() -> None:
    with pytest.raises(TransportError, match="disagree"):
        VirtPci(ConfigSpace(), StubBoard(bars={0: 0x1000, 2: 0x200000, 4: 0x1000}))


# -- the whole loop against a fake frontend ---------------------------------------------


@pytest.fixture
def rig() -> Iterator[tuple[Backend, FakeFrontend, StubBoard]]:
    board = StubBoard(fill=0)
    be = Backend(board, seed=3)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    be.adopt(b)

    def pump() -> None:
        for _ in range(4):
            be.turn(0)

    fe = FakeFrontend(a, pump)
    fe.handshake()
    yield be, fe, board
    fe.close()
    be.close()


def _enable(fe: FakeFrontend) -> None:
    fe.cfg_write(0x04, 2, 0x0006)  # memory + bus master
    fe.cfg_write(0x54, 4, 0xA0000)
    fe.cfg_write(0x5C, 2, 129)
    fe.cfg_write(0x52, 2, 0x0001)  # MSI enable, one vector


def test_config_cycles_through_the_queue(rig: tuple[Backend, FakeFrontend, StubBoard]) -> None:
    be, fe, board = rig
    assert board.mem is be.vu.mem, "board.attach got the guest memory"
    assert fe.cfg_read(0, 4) == 0xA10017CB
    assert fe.cfg_read(0x52, 2) & 0x8A == 0x8A
    fe.cfg_write(0x10, 4, 0xFFFFFFFF)
    assert fe.cfg_read(0x10, 4) == 0xFFFFF004
    assert fe.cfg_read(0x0FFC, 4) == 0
    assert fe.q[0].calls() >= 1


def test_mmio_to_the_board(rig: tuple[Backend, FakeFrontend, StubBoard]) -> None:
    be, fe, board = rig
    _enable(fe)
    board.fill = 0x5A
    assert fe.mmio_read(0, 0x100, 4) == b"\x5a" * 4
    fe.mmio_write(2, 0x20004, b"\x01\x02\x03\x04")
    fe.request(
        OP.MMIO_WRITE, 0, 4, 0x200, b"\x11\x22\x33\x44", split=True
    )  # data in its own buffer
    assert fe.mmio_read(0, 0x10, 8) == b"\x5a" * 8
    assert fe.mmio_read(4, 0x1001, 6) == b"\x5a" * 6  # variable size: split 1+2+2+1
    kinds = [(a.kind, a.bar, a.off, a.size, a.value) for a in board.accesses]
    assert ("w", 2, 0x20004, 4, 0x04030201) in kinds and ("w", 0, 0x200, 4, 0x44332211) in kinds
    assert [(a.off, a.size) for a in board.accesses if a.bar == 4] == [
        (0x1001, 1),
        (0x1002, 2),
        (0x1004, 2),
        (0x1006, 1),
    ]


def test_memset_arrives_as_a_config_write_with_bar(
    rig: tuple[Backend, FakeFrontend, StubBoard],
) -> None:
    """MHI's memset_io of the BHIe RX registers: 28 bytes at BAR0 (bar 0!) via
    um_pci_bar_set/virtio_pcidev_bar_set, i.e. OP_CFG_WRITE with a size of 28."""
    be, fe, board = rig
    _enable(fe)
    fe.request(OP.CFG_WRITE, 0, 28, 0x2E0, b"\x00" + bytes(7))
    fe.request(OP.CFG_WRITE, 2, 4, 0x100, b"\xab" + bytes(7))  # bar set: memset even of size 4
    fe.request(OP.MMIO_MEMSET, 0, 3, 0x10, b"\x07")
    sets = [(a.bar, a.off, a.size, a.value) for a in board.accesses if a.kind == "set"]
    assert sets == [(0, 0x2E0, 28, 0), (2, 0x100, 4, 0xAB), (0, 0x10, 3, 7)]
    assert fe.cfg_read(0x04, 2) == 6, "the memsets did not touch config space"


def test_out_of_bar_accesses_are_violations(rig: tuple[Backend, FakeFrontend, StubBoard]) -> None:
    be, fe, board = rig
    assert fe.mmio_read(0, 0x10, 4) == b"\xff" * 4  # memory decoding still off
    _enable(fe)
    n = len(board.accesses)
    assert fe.mmio_read(0, 0xFFE, 4) == b"\xff" * 4
    fe.mmio_write(2, 0x200000, b"\0\0\0\0")
    assert fe.mmio_read(1, 0, 4) == b"\xff" * 4
    assert len(board.accesses) == n, "nothing reached the board"
    rules = [v.rule for v in be.violations]
    assert rules == ["EMU-BAR-DISABLED", "EMU-BAR-RANGE", "EMU-BAR-RANGE", "EMU-BAR-NONE"]
    assert "BAR0+0xffe size 4" in str(be.violations[1])


def test_msi_waits_for_a_posted_buffer(rig: tuple[Backend, FakeFrontend, StubBoard]) -> None:
    be, fe, board = rig
    be.pci.msi(0)  # MSI not enabled: dropped
    assert be.pci.stats.msi_dropped == 1
    _enable(fe)
    be.pci.msi(0)
    be.pci.msi(0)
    assert be.pci.msi_waiting == 2  # no interrupt buffers posted yet
    fe.post_irq_buffers(1)
    fe.pump()
    msgs = fe.irq_messages()
    assert len(msgs) == 1 and be.pci.msi_waiting == 1
    op, bar, _r, size, addr = struct.unpack_from("<BBHIQ", msgs[0])
    assert (op, size, addr) == (OP.MSI, 2, 0xA0000)
    assert struct.unpack_from("<H", msgs[0], 16)[0] == 129
    assert fe.q[1].calls() >= 1
    fe.post_irq_buffers(3)
    fe.pump()
    assert len(fe.irq_messages()) == 1 and be.pci.msi_waiting == 0
    fe.cfg_write(0x52, 2, 0)  # MSI disabled
    be.pci.msi(0)
    assert be.pci.msi_waiting == 0 and be.pci.stats.msi_dropped == 2


def test_scheduler_steps_the_board(rig: tuple[Backend, FakeFrontend, StubBoard]) -> None:
    be, fe, board = rig
    _enable(fe)
    fe.post_irq_buffers(2)
    board.msi_after = board.count + 2
    fe.mmio_read(0, 0, 4)
    fe.mmio_read(0, 4, 4)
    fe.pump()
    assert board.steps == ["msi"] and len(fe.irq_messages()) == 1


def test_malformed_request_is_a_transport_error(
    rig: tuple[Backend, FakeFrontend, StubBoard],
) -> None:
    be, fe, board = rig
    with pytest.raises(TransportError, match="virtio_pcidev op 9: unknown operation"):
        fe.request(9, 0, 4, 0)
    with pytest.raises(TransportError, match="MSI: an interrupt message is device-to-guest"):
        fe.request(OP.MSI, 0, 2, 0, b"\0\0")


def test_short_header_is_a_transport_error(rig: tuple[Backend, FakeFrontend, StubBoard]) -> None:
    be, fe, board = rig
    q = fe.q[0]
    q.add([fe.buf(b"\x01\x00")], [fe.buf(4)])
    q.kick()
    with pytest.raises(TransportError, match="shorter than the 16-byte header"):
        fe.pump()


def test_guest_disconnect(rig: tuple[Backend, FakeFrontend, StubBoard]) -> None:
    be, fe, board = rig
    fe.sock.close()
    fe.pump()
    assert be.disconnected and be.conn is None


def test_mmio_round_trips_per_second(rig: tuple[Backend, FakeFrontend, StubBoard]) -> None:
    """Not a benchmark gate: the figure the report quotes (fake frontend, same process)."""
    be, fe, board = rig
    _enable(fe)
    n = 300
    t0 = time.perf_counter()
    for i in range(n):
        fe.mmio_read(0, 4 * (i % 64), 4)
    rate = n / (time.perf_counter() - t0)
    print(f"\nMMIO read round trips through the backend: {rate:.0f}/s")
    assert rate > 50


class _ChoiceBoard(StubBoard):
    """Three actions enabled for the first 60 steps."""

    def actions(self) -> list[str]:
        return ["a", "b", "c"] if len(self.steps) < 60 else []

    def step(self, action: str) -> None:
        self.steps.append(action)


def _steps(seed: int) -> list[str]:
    board = _ChoiceBoard()
    be = Backend(board, seed=seed, steps_per_turn=7)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    be.adopt(b)

    def pump() -> None:
        be.turn(0)
        be.turn(0)

    fe = FakeFrontend(a, pump)
    fe.handshake()
    for _ in range(20):
        be.turn(0)
    fe.close()
    be.close()
    return board.steps


def test_the_seed_replays_the_schedule() -> None:
    first = _steps(11)
    assert len(first) == 60 and set(first) == {"a", "b", "c"}
    assert _steps(11) == first
    assert _steps(12) != first


def test_scheduler_yields_to_a_waiting_request() -> None:
    """A guest read waiting on the queue is served before the next step."""
    board = _ChoiceBoard()
    be = Backend(board, seed=1, steps_per_turn=50)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    be.adopt(b)
    fe = FakeFrontend(a, lambda: be.turn(0))
    fe.handshake()
    assert fe.cfg_read(0, 2) == 0x17CB  # answered within one turn despite 50 steps allowed
    fe.close()
    be.close()
