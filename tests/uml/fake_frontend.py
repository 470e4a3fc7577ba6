"""A vhost-user frontend in Python that behaves like UML's virtio_uml + virt-pci driver
side, for testing the backend without a kernel: guest memory is a memfd, the rings
live in it, kicks are eventfds and calls pipes, exactly as UML sets them up."""

from __future__ import annotations

import mmap
import os
import socket
import struct

from qaicmodel.emu import vhost
from qaicmodel.emu.virtpci import HEADER, OP

MEM_BASE = 0x40_0000  # guest-physical (and user) address of the region
MEM_SIZE = 1 << 20
QSIZE = 16


class DriverQueue:
    """The driver side of one split virtqueue in the fake guest's memory."""

    def __init__(self, fe: FakeFrontend, index: int, base_off: int, num: int = QSIZE) -> None:
        self.fe = fe
        self.index = index
        self.num = num
        self.desc = base_off
        self.avail = base_off + 16 * num
        self.used = (self.avail + 6 + 2 * num + 3) // 4 * 4
        self.avail_idx = 0
        self.last_used = 0
        self.free = list(range(num))
        self.kick_fd = os.eventfd(0, os.EFD_NONBLOCK)
        self.call_r, self.call_w = os.pipe()
        os.set_blocking(self.call_r, False)

    def addr(self, off: int) -> int:
        return MEM_BASE + off

    def add(
        self, outs: list[int | tuple[int, int]], ins: list[tuple[int, int]], flags_extra: int = 0
    ) -> int:
        """A chain of (offset, length) buffers; outs may be offsets of prepared buffers."""
        bufs = [(o if isinstance(o, tuple) else (o, 0)) for o in outs]
        descs = [(off, n, 0) for off, n in bufs] + [(off, n, 2) for off, n in ins]
        ids = [self.free.pop(0) for _ in descs]
        for k, (off, n, fl) in enumerate(descs):
            nxt = ids[k + 1] if k + 1 < len(ids) else 0
            f = fl | (1 if k + 1 < len(ids) else 0) | flags_extra
            struct.pack_into(
                "<QIHH", self.fe.mem, self.desc + 16 * ids[k], self.addr(off), n, f, nxt
            )
        head = ids[0]
        struct.pack_into("<H", self.fe.mem, self.avail + 4 + 2 * (self.avail_idx % self.num), head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        struct.pack_into("<H", self.fe.mem, self.avail + 2, self.avail_idx)
        self._chains = getattr(self, "_chains", {})
        self._chains[head] = ids
        return head

    def kick(self) -> None:
        os.eventfd_write(self.kick_fd, 1)

    def used_entries(self) -> list[tuple[int, int]]:
        idx = struct.unpack_from("<H", self.fe.mem, self.used + 2)[0]
        out = []
        while self.last_used != idx:
            e = self.used + 4 + 8 * (self.last_used % self.num)
            head, n = struct.unpack_from("<II", self.fe.mem, e)
            out.append((head, n))
            self.last_used = (self.last_used + 1) & 0xFFFF
            self.free.extend(self._chains.pop(head, [head]))
        return out

    def calls(self) -> int:
        n = 0
        while True:
            try:
                n += len(os.read(self.call_r, 64)) // 8
            except BlockingIOError:
                return n


class FakeFrontend:
    """Connects to a backend socket (or uses a socketpair end) and drives it."""

    def __init__(self, sock: socket.socket, pump) -> None:  # noqa: ANN001
        self.sock = sock
        self.pump = pump  # callable: run the backend until it has answered
        self.memfd = os.memfd_create("fake-guest")
        os.ftruncate(self.memfd, MEM_SIZE)
        self.mem = mmap.mmap(self.memfd, MEM_SIZE)
        self.q = [DriverQueue(self, 0, 0x1000), DriverQueue(self, 1, 0x3000)]
        self.scratch = 0x10000  # bump allocator for request buffers

    # -- vhost-user -------------------------------------------------------------
    def send(
        self,
        request: int,
        payload: bytes = b"",
        fds: list[int] | None = None,
        flags: int = vhost.VERSION,
    ) -> None:
        data = vhost.HEADER.pack(request, flags, len(payload)) + payload
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.sock.sendall(data)

    def recv_reply(self) -> tuple[int, int, bytes]:
        hdr = self._recv(12)
        req, flags, size = struct.unpack("<III", hdr)
        return req, flags, self._recv(size)

    def _recv(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "backend closed the socket"
            buf += chunk
        return buf

    def call(self, request: int, payload: bytes = b"", fds: list[int] | None = None) -> bytes:
        self.send(request, payload, fds)
        self.pump()
        req, flags, data = self.recv_reply()
        assert req == request and flags == vhost.VERSION | vhost.FLAG_REPLY
        return data

    def handshake(self) -> None:
        """What virtio_uml does: owner, features, slave req fd, memory, two vrings."""
        self.send(3)  # SET_OWNER
        features = struct.unpack("<Q", self.call(1))[0]
        assert features & (1 << vhost.F_PROTOCOL_FEATURES)
        proto = struct.unpack("<Q", self.call(15))[0]
        assert proto & (1 << vhost.PROTOCOL_F_SLAVE_REQ)
        self.send(16, struct.pack("<Q", proto))
        self.req_r, self.req_w = os.pipe()
        self.send(21, b"", [self.req_w])
        os.close(self.req_w)
        self.send(2, struct.pack("<Q", features))
        self.send(
            5,
            struct.pack("<II", 1, 0) + struct.pack("<QQQQ", MEM_BASE, MEM_SIZE, MEM_BASE, 0),
            [self.memfd],
        )
        for q in self.q:
            self.send(13, struct.pack("<Q", q.index), [q.call_w])
            self.send(8, struct.pack("<II", q.index, q.num))
            self.send(10, struct.pack("<II", q.index, 0))
            self.send(
                9,
                struct.pack(
                    "<IIQQQQ",
                    q.index,
                    0,
                    q.addr(q.desc),
                    q.addr(q.used),
                    q.addr(q.avail),
                    2**64 - 1,
                ),
            )
        for q in self.q:
            self.send(12, struct.pack("<Q", q.index), [q.kick_fd])
            self.send(18, struct.pack("<II", q.index, 1))
        self.pump()

    # -- virt-pci requests ------------------------------------------------------
    def buf(self, data: bytes | int) -> tuple[int, int]:
        n = data if isinstance(data, int) else len(data)
        off = self.scratch
        self.scratch += (n + 15) // 16 * 16 + 16
        if self.scratch > MEM_SIZE - 0x1000:
            self.scratch = 0x10000
        if not isinstance(data, int):
            self.mem[off : off + n] = data
        return off, n

    def request(
        self,
        op: int,
        bar: int,
        size: int,
        addr: int,
        data: bytes = b"",
        answer: int = 0,
        split: bool = False,
    ) -> bytes:
        hdr = HEADER.pack(op, bar, 0, size, addr)
        outs: list[int | tuple[int, int]]
        outs = [self.buf(hdr), self.buf(data)] if split and data else [self.buf(hdr + data)]
        ins = [self.buf(answer)] if answer else []
        q = self.q[0]
        head = q.add(outs, ins)
        q.kick()
        self.pump()
        used = dict(q.used_entries())
        assert head in used, "the backend did not answer"
        if answer:
            off = ins[0][0]
            return bytes(self.mem[off : off + used[head]])
        return b""

    def cfg_read(self, off: int, size: int) -> int:
        return int.from_bytes(self.request(OP.CFG_READ, 0, size, off, answer=size), "little")

    def cfg_write(self, off: int, size: int, value: int) -> None:
        self.request(OP.CFG_WRITE, 0, size, off, value.to_bytes(8, "little"))

    def mmio_read(self, bar: int, off: int, size: int) -> bytes:
        return self.request(OP.MMIO_READ, bar, size, off, answer=size)

    def mmio_write(self, bar: int, off: int, data: bytes) -> None:
        self.request(OP.MMIO_WRITE, bar, len(data), off, data)

    def post_irq_buffers(self, n: int = 10) -> list[tuple[int, int]]:
        bufs = [self.buf(20) for _ in range(n)]
        for b in bufs:
            self.q[1].add([], [b])
        self.q[1].kick()
        return bufs

    def irq_messages(self) -> list[bytes]:
        out = []
        for head, n in self.q[1].used_entries():
            # find the buffer: descriptor table entry of head
            addr, _ln, _f, _nx = struct.unpack_from("<QIHH", self.mem, self.q[1].desc + 16 * head)
            off = addr - MEM_BASE
            out.append(bytes(self.mem[off : off + n]))
        return out

    def close(self) -> None:
        for q in self.q:
            for fd in (q.kick_fd, q.call_r, q.call_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        try:
            os.close(self.req_r)
        except (OSError, AttributeError):
            pass
        self.sock.close()
        self.mem.close()
        os.close(self.memfd)
