"""Split virtqueues over a fake guest memory, and GuestMemory as the model's HostMemory."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from qaicmodel.emu._model import Device, DmaFault, HostMemory
from qaicmodel.emu.guestmem import GuestMemory
from qaicmodel.emu.virtq import Virtqueue
from qaicmodel.errors import NotModelledError, TransportError

pytestmark = pytest.mark.uml

BASE = 0x317C_8000  # the guest-physical start UML showed with mem=256M
N = 8


class Ring:
    """The driver side, writing straight into the fake memory."""

    def __init__(self, mem: GuestMemory, num: int = N) -> None:
        self.mem = mem
        self.num = num
        self.desc, self.avail, self.used = BASE, BASE + 0x400, BASE + 0x800
        self.idx = 0

    def put_desc(self, i: int, addr: int, length: int, flags: int, nxt: int) -> None:
        self.mem.write(self.desc + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def offer(self, head: int) -> None:
        self.mem.write(self.avail + 4 + 2 * (self.idx % self.num), struct.pack("<H", head))
        self.idx = (self.idx + 1) & 0xFFFF
        self.mem.write(self.avail + 2, struct.pack("<H", self.idx))

    def used_idx(self) -> int:
        return int(struct.unpack("<H", self.mem.read(self.used + 2, 2))[0])

    def used_elem(self, k: int) -> tuple[int, int]:
        return struct.unpack("<II", self.mem.read(self.used + 4 + 8 * (k % self.num), 8))


def _setup(num: int = N) -> tuple[GuestMemory, Ring, Virtqueue]:
    mem = GuestMemory()
    mem.add_array_region(BASE, np.zeros(0x10000, dtype=np.uint8))
    ring = Ring(mem, num)
    q = Virtqueue(0)
    q.set_num(num)
    q.set_addr(ring.desc, ring.used, ring.avail)
    q.attach(mem)
    q.enabled = True
    return mem, ring, q


def test_pop_push_and_signal() -> None:
    mem, ring, q = _setup()
    mem.write(BASE + 0x2000, b"request!")
    ring.put_desc(3, BASE + 0x2000, 8, 1, 5)  # readable, next 5
    ring.put_desc(5, BASE + 0x3000, 16, 2, 0)  # writable, last
    ring.offer(3)
    assert q.pending() == 1
    chain = q.pop()
    assert chain is not None and chain.head == 3
    assert chain.out == [(BASE + 0x2000, 8)] and chain.ins == [(BASE + 0x3000, 16)]
    assert q.read_out(chain) == b"request!"
    assert q.write_in(chain, b"answer") == 6
    assert mem.read(BASE + 0x3000, 6) == b"answer"
    q.push(chain, 6)
    assert ring.used_idx() == 1 and ring.used_elem(0) == (3, 6)
    assert q.pop() is None
    r, w = os.pipe()
    q.call_fd = w
    assert q.signal()
    assert os.read(r, 8) == struct.pack("<Q", 1)
    mem.write(ring.avail, struct.pack("<H", 1))  # VRING_AVAIL_F_NO_INTERRUPT
    assert not q.signal()
    os.close(r)
    os.close(w)


def test_coalesced_kicks_are_all_served() -> None:
    mem, ring, q = _setup()
    for i in range(5):
        ring.put_desc(i, BASE + 0x2000 + 16 * i, 16, 0, 0)
        ring.offer(i)
    got = []
    while (c := q.pop()) is not None:
        got.append(c.head)
        q.push(c, 0)
    assert got == [0, 1, 2, 3, 4] and ring.used_idx() == 5


def test_ring_index_wraps() -> None:
    mem, ring, q = _setup(num=2)
    q.set_base(0xFFFF)
    ring.idx = 0xFFFF
    for k in range(4):
        ring.put_desc(k % 2, BASE + 0x2000, 4, 0, 0)
        ring.offer(k % 2)
        c = q.pop()
        assert c is not None and c.head == k % 2
        q.push(c, 0)
    assert q.last_avail == 3


@pytest.mark.parametrize(
    "build, text",
    [
        (
            lambda r: (
                r.put_desc(0, BASE + 0x2000, 4, 1, 1),
                r.put_desc(1, BASE + 0x2000, 4, 1, 0),
            ),
            "longer than the ring",
        ),
        (lambda r: r.put_desc(0, BASE + 0x2000, 4, 1, 9), "next descriptor 9 is beyond"),
        (lambda r: r.put_desc(0, 0x1000, 4, 0, 0), r"buffer 0x1000\+0x4 is outside guest memory"),
        (lambda r: r.put_desc(0, BASE + 0xFFF0, 0x20, 0, 0), "outside guest memory"),
        (lambda r: r.put_desc(0, BASE + 0x2000, 16, 4, 0), "indirect descriptor"),
        (
            lambda r: (
                r.put_desc(0, BASE + 0x2000, 4, 3, 1),
                r.put_desc(1, BASE + 0x2000, 4, 0, 0),
            ),
            "readable buffer after a device-writable one",
        ),
    ],
)
def test_bad_chains_are_transport_errors(build, text: str) -> None:  # noqa: ANN001
    mem, ring, q = _setup()
    build(ring)
    ring.offer(0)
    with pytest.raises(TransportError, match=text):
        q.pop()


def test_avail_ring_inconsistencies() -> None:
    mem, ring, q = _setup()
    mem.write(ring.avail + 2, struct.pack("<H", 20))  # 20 new entries on an 8-entry ring
    with pytest.raises(TransportError, match="ran 20 entries ahead"):
        q.pop()
    mem2, ring2, q2 = _setup()
    ring2.offer(12)
    with pytest.raises(TransportError, match="descriptor 12 of 8"):
        q2.pop()


def test_ring_outside_memory_and_bad_setup() -> None:
    mem = GuestMemory()
    mem.add_array_region(BASE, np.zeros(0x1000, dtype=np.uint8))
    q = Virtqueue(1, "irq")
    q.set_num(256)
    q.set_addr(BASE, BASE + 0x2000, BASE + 0x1000)
    q.attach(mem)
    q.enabled = True
    with pytest.raises(TransportError, match="irq: ring outside guest memory"):
        q.pop()
    with pytest.raises(TransportError, match="power of two"):
        q.set_num(3)
    with pytest.raises(TransportError, match="misaligned"):
        q.set_addr(BASE + 8, BASE, BASE)


def test_write_in_overflow() -> None:
    mem, ring, q = _setup()
    ring.put_desc(0, BASE + 0x2000, 4, 2, 0)
    ring.offer(0)
    c = q.pop()
    assert c is not None
    with pytest.raises(TransportError, match="do not fit"):
        q.write_in(c, b"12345678")


def test_guest_memory_is_a_host_memory() -> None:
    mem = GuestMemory()
    mem.add_array_region(0x1000_0000, np.zeros(0x4000, dtype=np.uint8), user_addr=0x7F00_0000)
    assert isinstance(mem, HostMemory)
    v = mem.view(0x1000_0010, 4)
    v[:] = [1, 2, 3, 4]
    assert mem.read(0x1000_0010, 4) == b"\1\2\3\4"
    assert mem.user_view(0x7F00_0010, 4).tobytes() == b"\1\2\3\4"
    mem.write(0x1000_3FFC, b"end!")
    assert mem.mapped(0x1000_0000, 0x4000) and not mem.mapped(0x1000_0000, 0x4001)
    assert not mem.mapped(0x0FFF_FFFF, 1)
    with pytest.raises(DmaFault):
        mem.view(0x1000_4000, 1)
    with pytest.raises(DmaFault):
        mem.read(0x7F00_0000, 1)  # a user address is not a DMA address
    assert mem.regions() == [(0x1000_0000, 0x4000)]
    with pytest.raises(NotModelledError):
        mem.alloc(4096)
    # the DMA Bridge device takes it as its host memory
    dev = Device(host_mem=mem)
    assert dev.host_mem is mem
    mem.close()
    assert mem.regions() == []


def test_guest_memory_from_a_file_with_offset() -> None:
    fd = os.memfd_create("g")
    os.ftruncate(fd, 0x3000)
    os.pwrite(fd, b"xyz", 0x2800)
    mem = GuestMemory()
    mem.add_fd_region(fd, 0x2000, 0x1000, 0x2000, 0x2000)
    os.close(fd)
    assert mem.read(0x2800, 3) == b"xyz"
    mem.write(0x2801, b"Q")
    mem.close()
