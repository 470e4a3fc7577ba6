"""Split virtqueues in guest memory, device side: pop chains, push used, signal.

Layout from the virtio 1.x specification ("Split Virtqueues") and the guest side
in ``drivers/virtio/virtio_ring.c`` (6.12, 7.2): a descriptor table of ``num``
16-byte entries (addr u64, len u32, flags u16, next u16), the available ring
(flags, idx, ring[num], used_event) and the used ring (flags, idx, ring[num] of
(id u32, len u32), avail_event), all little-endian (VIRTIO_F_VERSION_1).

Ring addresses are frontend *user* addresses, buffer addresses are
guest-physical (:mod:`qaicmodel.emu.guestmem`).  UML's kick fd is an eventfd and
its call fd a pipe (``vu_setup_vq`` / ``vu_setup_vq_call_fd`` in
``arch/um/drivers/virtio_uml.c``); kicks coalesce, so the backend polls the
avail index too and never relies on one kick per buffer.

Every chain is validated before it is used: a ``next`` beyond the table, a loop,
an indirect descriptor (not negotiated), a writable descriptor before a readable
one, or a buffer outside guest memory raises :class:`TransportError`.
"""

from __future__ import annotations

import errno
import os
import struct
from typing import Protocol

import attrs
import numpy as np

from qaicmodel.errors import TransportError

try:
    from qaicmodel.emu._model import DmaFault
except ImportError:  # until the restructuring lands emu/_model.py
    from qaicmodel.spec.dbc.memory import DmaFault

__all__ = [
    "Virtqueue",
    "Chain",
    "DESC_F_NEXT",
    "DESC_F_WRITE",
    "DESC_F_INDIRECT",
    "AVAIL_F_NO_INTERRUPT",
    "MAX_QUEUE_SIZE",
]

DESC_F_NEXT = 1
DESC_F_WRITE = 2
DESC_F_INDIRECT = 4
AVAIL_F_NO_INTERRUPT = 1
MAX_QUEUE_SIZE = 32768
_DESC = struct.Struct("<QIHH")
_U16 = struct.Struct("<H")
_USED_ELEM = struct.Struct("<II")


class Memory(Protocol):
    """What a virtqueue needs of guest memory (GuestMemory, or a fake in tests)."""

    def view(self, addr: int, length: int) -> np.ndarray: ...

    def user_view(self, addr: int, length: int) -> np.ndarray: ...


@attrs.define
class Chain:
    """One popped descriptor chain: readable (``out``) then writable (``ins``) buffers."""

    head: int
    out: list[tuple[int, int]]
    ins: list[tuple[int, int]]

    @property
    def in_len(self) -> int:
        return sum(n for _, n in self.ins)


class Virtqueue:
    """The device side of one split virtqueue."""

    def __init__(self, index: int, name: str = "") -> None:
        self.index = index
        self.name = name or f"vq{index}"
        self.num = 0
        self.desc_addr = self.avail_addr = self.used_addr = 0
        self.addresses_set = False
        self.last_avail = 0
        self.kick_fd: int | None = None
        self.call_fd: int | None = None
        self.enabled = False
        self.mem: Memory | None = None
        self._desc: memoryview | None = None
        self._avail: memoryview | None = None
        self._used: memoryview | None = None
        self.popped = 0
        self.pushed = 0
        self.signals = 0

    # -- set-up (from vhost-user messages) -------------------------------------

    def set_num(self, num: int) -> None:
        if not 1 <= num <= MAX_QUEUE_SIZE or num & (num - 1):
            raise TransportError(
                f"queue size {num} is not a power of two in 1..{MAX_QUEUE_SIZE}",
                where=f"SET_VRING_NUM {self.name}",
            )
        self.num = num
        self._unmap()

    def set_addr(self, desc: int, used: int, avail: int) -> None:
        if desc % 16 or avail % 2 or used % 4:
            raise TransportError(
                f"misaligned ring (desc {desc:#x} avail {avail:#x} used {used:#x})",
                where=f"SET_VRING_ADDR {self.name}",
            )
        self.desc_addr, self.used_addr, self.avail_addr = desc, used, avail
        self.addresses_set = True
        self._unmap()

    def set_base(self, base: int) -> None:
        self.last_avail = base & 0xFFFF

    def attach(self, mem: Memory | None) -> None:
        """Guest memory changed (a new memory table): map the rings again lazily."""
        self.mem = mem
        self._unmap()

    def _unmap(self) -> None:
        self._desc = self._avail = self._used = None

    @property
    def ready(self) -> bool:
        return self.enabled and self.num > 0 and self.addresses_set and self.mem is not None

    def _map(self) -> None:
        if self._desc is not None:
            return
        if self.mem is None or not self.num or not self.addresses_set:
            raise TransportError(
                "queue used before its size, addresses and memory are set", where=self.name
            )
        n = self.num
        try:
            self._desc = memoryview(self.mem.user_view(self.desc_addr, 16 * n))  # type: ignore[arg-type]
            self._avail = memoryview(self.mem.user_view(self.avail_addr, 6 + 2 * n))  # type: ignore[arg-type]
            self._used = memoryview(self.mem.user_view(self.used_addr, 6 + 8 * n))  # type: ignore[arg-type]
        except DmaFault as e:
            self._unmap()
            raise TransportError(f"ring outside guest memory ({e})", where=self.name) from None

    # -- device operations ------------------------------------------------------

    def avail_idx(self) -> int:
        self._map()
        assert self._avail is not None
        return int(_U16.unpack_from(self._avail, 2)[0])

    def pending(self) -> int:
        """Chains the guest made available that the device has not popped."""
        if not self.ready:
            return 0
        return (self.avail_idx() - self.last_avail) & 0xFFFF

    def pop(self) -> Chain | None:
        """The next available chain, or None."""
        if not self.ready:
            return None
        self._map()
        assert self._avail is not None and self._desc is not None and self.mem is not None
        n = self.num
        waiting = (self.avail_idx() - self.last_avail) & 0xFFFF
        if waiting == 0:
            return None
        if waiting > n:
            raise TransportError(
                f"avail index ran {waiting} entries ahead of a {n}-entry ring", where=self.name
            )
        head = int(_U16.unpack_from(self._avail, 4 + 2 * (self.last_avail % n))[0])
        self.last_avail = (self.last_avail + 1) & 0xFFFF
        if head >= n:
            raise TransportError(f"avail ring names descriptor {head} of {n}", where=self.name)
        out: list[tuple[int, int]] = []
        ins: list[tuple[int, int]] = []
        i = head
        for _ in range(n):
            addr, length, flags, nxt = _DESC.unpack_from(self._desc, 16 * i)
            where = f"{self.name} descriptor {i} (chain {head})"
            if flags & DESC_F_INDIRECT:
                raise TransportError(
                    "indirect descriptor (VIRTIO_RING_F_INDIRECT_DESC was not negotiated)",
                    where=where,
                )
            try:
                self.mem.view(addr, length)
            except DmaFault:
                raise TransportError(
                    f"buffer {addr:#x}+{length:#x} is outside guest memory", where=where
                ) from None
            if flags & DESC_F_WRITE:
                ins.append((addr, length))
            else:
                if ins:
                    raise TransportError(
                        "device-readable buffer after a device-writable one", where=where
                    )
                out.append((addr, length))
            if not flags & DESC_F_NEXT:
                break
            if nxt >= n:
                raise TransportError(
                    f"next descriptor {nxt} is beyond the {n}-entry table", where=where
                )
            i = nxt
        else:
            raise TransportError(
                f"descriptor chain longer than the ring ({n}): a loop",
                where=f"{self.name} chain {head}",
            )
        self.popped += 1
        return Chain(head, out, ins)

    def read_out(self, chain: Chain, limit: int | None = None) -> bytes:
        """The chain's readable bytes, gathered (at most ``limit``)."""
        assert self.mem is not None
        parts = []
        left = limit
        for addr, length in chain.out:
            if left is not None:
                length = min(length, left)
                left -= length
            parts.append(self.mem.view(addr, length).tobytes())
            if left == 0:
                break
        return b"".join(parts)

    def write_in(self, chain: Chain, data: bytes) -> int:
        """Scatter ``data`` into the chain's writable buffers; returns bytes written."""
        assert self.mem is not None
        pos = 0
        for addr, length in chain.ins:
            if pos >= len(data):
                break
            n = min(length, len(data) - pos)
            self.mem.view(addr, n)[:] = np.frombuffer(data, dtype=np.uint8, count=n, offset=pos)
            pos += n
        if pos < len(data):
            raise TransportError(
                f"{len(data)} bytes do not fit the chain's {chain.in_len} writable bytes",
                where=f"{self.name} chain {chain.head}",
            )
        return pos

    def push(self, chain: Chain | int, written: int) -> None:
        """Return a chain to the guest as used, ``written`` bytes into its buffers."""
        self._map()
        assert self._used is not None
        head = chain.head if isinstance(chain, Chain) else chain
        idx = int(_U16.unpack_from(self._used, 2)[0])
        _USED_ELEM.pack_into(self._used, 4 + 8 * (idx % self.num), head, written)
        # the element first, then the index (x86 keeps the store order)
        _U16.pack_into(self._used, 2, (idx + 1) & 0xFFFF)
        self.pushed += 1

    def wants_interrupt(self) -> bool:
        self._map()
        assert self._avail is not None
        return not (_U16.unpack_from(self._avail, 0)[0] & AVAIL_F_NO_INTERRUPT)

    def signal(self, force: bool = False) -> bool:
        """Tell the guest about used buffers (write the call fd); False if not sent."""
        if self.call_fd is None or not (force or self.wants_interrupt()):
            return False
        try:
            os.write(self.call_fd, struct.pack("<Q", 1))
        except BlockingIOError:
            pass  # the pipe is full: the guest has a wake-up pending already
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.EBADF):
                return False
            raise
        self.signals += 1
        return True

    def drain_kick(self) -> int:
        """Read (and so reset) the kick eventfd; returns how many kicks coalesced."""
        if self.kick_fd is None:
            return 0
        try:
            raw = os.read(self.kick_fd, 8)
        except BlockingIOError:
            return 0
        return int.from_bytes(raw, "little") if len(raw) == 8 else 0

    def close_fds(self) -> None:
        for fd in (self.kick_fd, self.call_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.kick_fd = self.call_fd = None
