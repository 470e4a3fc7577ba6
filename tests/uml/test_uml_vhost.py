"""vhost-user framing and requests (qaicmodel.emu.vhost), no kernel needed."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

import pytest

from qaicmodel.emu import vhost
from qaicmodel.emu.vhost import VhostUserDevice, recv_message
from qaicmodel.errors import TransportError

pytestmark = pytest.mark.uml


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    b.settimeout(1.0)
    yield a, b
    a.close()
    b.close()


def _send(
    sock: socket.socket,
    request: int,
    payload: bytes = b"",
    fds: list[int] | None = None,
    flags: int = vhost.VERSION,
) -> None:
    data = vhost.HEADER.pack(request, flags, len(payload)) + payload
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.sendall(data)


def _msg(sock: socket.socket) -> vhost.Message:
    m = recv_message(sock)
    assert m is not None
    return m


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_framing_and_feature_negotiation(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    dev = VhostUserDevice()
    _send(a, 1)
    msg = recv_message(b)
    assert msg is not None and msg.name == "GET_FEATURES" and msg.payload == b""
    reply = dev.handle(msg)
    assert reply is not None
    features = struct.unpack("<Q", reply)[0]
    assert features & (1 << 30) and features & (1 << 32)
    framed = dev.reply_header(msg, reply)
    assert struct.unpack_from("<III", framed) == (1, vhost.VERSION | vhost.FLAG_REPLY, 8)
    _send(a, 15)
    proto = struct.unpack("<Q", dev.handle(_msg(b)) or b"")[0]
    assert proto & (1 << 5), "slave requests (bit 5) must be offered"
    _send(a, 16, struct.pack("<Q", proto))
    assert dev.handle(_msg(b)) is None
    r, w = os.pipe()
    _send(a, 21, b"", [w])
    os.close(w)
    assert dev.handle(_msg(b)) is None and dev.slave_req_fd is not None
    _send(a, 2, struct.pack("<Q", features))
    dev.handle(_msg(b))
    assert dev.features == features
    os.close(r)
    dev.close()


def test_need_reply_gets_an_ack(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    dev = VhostUserDevice()
    _send(a, 3, flags=vhost.VERSION | vhost.FLAG_NEED_REPLY)
    assert dev.handle(_msg(b)) == struct.pack("<Q", 0)


def test_clean_close_is_none(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.close()
    assert recv_message(b) is None


def test_memory_table_maps_the_file(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    fd = os.memfd_create("guest")
    os.ftruncate(fd, 0x20000)
    os.pwrite(fd, b"hello", 0x10000 + 0x10)
    dev = VhostUserDevice()
    # guest 0x317c8000-like layout: region at a physical offset, mmap_offset the same
    _send(
        a,
        5,
        struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0x5000_0000, 0x10000, 0x5000_0000, 0x10000),
        [fd],
    )
    dev.handle(_msg(b))
    os.close(fd)
    assert dev.mem is not None
    assert dev.mem.read(0x5000_0010, 5) == b"hello"
    assert dev.mem.regions() == [(0x5000_0000, 0x10000)]
    dev.close()


def test_memory_table_6_12_sends_a_two_slot_struct(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """6.12's vhost_user_set_mem_table sends sizeof(mem_regions) (72 bytes) with num 1."""
    a, b = pair
    fd = os.memfd_create("guest")
    os.ftruncate(fd, 0x10000)
    dev = VhostUserDevice()
    payload = (
        struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0x1000, 0x10000, 0x1000, 0) + bytes(32)
    )
    _send(a, 5, payload, [fd])
    dev.handle(_msg(b))
    os.close(fd)
    assert dev.mem is not None and dev.mem.mapped(0x1000, 0x10000)
    dev.close()


@pytest.mark.parametrize(
    "request_, payload, fds, where, text",
    [
        (2, b"\0" * 4, 0, "SET_FEATURES", "payload is 4 bytes, 8 expected"),
        (99, b"", 0, "request 99", "not supported"),
        (24, b"", 0, "GET_CONFIG", "not supported"),
        (21, b"", 0, "SET_SLAVE_REQ_FD", "0 file descriptors attached, 1 expected"),
        (12, struct.pack("<Q", 0), 0, "SET_VRING_KICK", "0 file descriptors attached, 1 expected"),
        (3, b"", 1, "SET_OWNER", "1 file descriptors attached, 0 expected"),
        (8, struct.pack("<II", 7, 16), 0, "SET_VRING_NUM", "queue index 7"),
        (8, struct.pack("<II", 0, 100), 0, "SET_VRING_NUM", "not a power of two"),
        (5, struct.pack("<II", 1, 0) + bytes(32), 0, "SET_MEM_TABLE", "0 file descriptors for 1"),
        (5, struct.pack("<II", 0, 0), 0, "SET_MEM_TABLE", "0 regions"),
        (18, struct.pack("<II", 0, 5), 0, "SET_VRING_ENABLE", "not 0 or 1"),
    ],
)
def test_malformed_messages_name_the_message(
    pair: tuple[socket.socket, socket.socket],
    request_: int,
    payload: bytes,
    fds: int,
    where: str,
    text: str,
) -> None:
    a, b = pair
    dev = VhostUserDevice()
    dev.protocol_features = 1 << 5
    before = _open_fds()
    extra = [os.eventfd(0) for _ in range(fds)]
    _send(a, request_, payload, extra or None)
    for fd in extra:
        os.close(fd)
    msg = recv_message(b)
    assert msg is not None
    with pytest.raises(TransportError) as e:
        dev.handle(msg)
    assert e.value.where.split()[0] == where.split()[0] and text in str(e.value)
    assert str(e.value).startswith(where)
    assert _open_fds() == before, "received descriptors of a bad message are closed"


def test_overlapping_regions_are_refused(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    fds = [os.memfd_create("g") for _ in range(2)]
    for fd in fds:
        os.ftruncate(fd, 0x20000)
    dev = VhostUserDevice()
    regions = struct.pack("<QQQQ", 0x10000, 0x20000, 0x10000, 0) + struct.pack(
        "<QQQQ", 0x20000, 0x10000, 0x90000, 0
    )
    _send(a, 5, struct.pack("<II", 2, 0) + regions, fds)
    for fd in fds:
        os.close(fd)
    with pytest.raises(TransportError, match="SET_MEM_TABLE: region guest 0x20000.*overlaps"):
        dev.handle(_msg(b))
    assert dev.mem is None


def test_unmappable_region(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    fd = os.open("/dev/null", os.O_RDONLY)
    dev = VhostUserDevice()
    _send(a, 5, struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, 0x1000, 0, 0), [fd])
    os.close(fd)
    with pytest.raises(TransportError, match="cannot map"):
        dev.handle(_msg(b))


def test_bad_flags_and_unoffered_features(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    dev = VhostUserDevice()
    _send(a, 3, flags=2)
    with pytest.raises(TransportError, match="SET_OWNER: flags 0x2"):
        dev.handle(_msg(b))
    _send(a, 2, struct.pack("<Q", 1 << 28))
    with pytest.raises(TransportError, match="never offered"):
        dev.handle(_msg(b))
    _send(a, 16, struct.pack("<Q", 1 << 3))
    with pytest.raises(TransportError, match="protocol features .* never offered"):
        dev.handle(_msg(b))


def test_truncated_and_oversized_messages(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendall(vhost.HEADER.pack(2, 1, 8) + b"\0\0")  # 2 of 8 payload bytes, then silence
    with pytest.raises(TransportError, match="SET_FEATURES: truncated message: 2 of 8"):
        recv_message(b)
    a.sendall(vhost.HEADER.pack(5, 1, 1 << 20))
    with pytest.raises(TransportError, match="SET_MEM_TABLE: payload size 1048576 exceeds"):
        recv_message(b)
    a.sendall(b"\1\0\0")
    a.close()
    with pytest.raises(TransportError, match="message header: connection closed after 3 of"):
        recv_message(b)


def test_vring_setup_and_get_base(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    dev = VhostUserDevice()
    _send(a, 8, struct.pack("<II", 1, 256))
    _send(a, 10, struct.pack("<II", 1, 5))
    _send(a, 9, struct.pack("<IIQQQQ", 1, 0, 0x1000, 0x3000, 0x2000, 2**64 - 1))
    k = os.eventfd(0)
    _send(a, 12, struct.pack("<Q", 1), [k])
    _send(a, 13, struct.pack("<Q", 1 | 1 << 8))  # no call fd: polled
    _send(a, 18, struct.pack("<II", 1, 1))
    for _ in range(6):
        dev.handle(_msg(b))
    os.close(k)
    q = dev.queues[1]
    assert (q.num, q.last_avail, q.desc_addr, q.avail_addr, q.used_addr) == (
        256,
        5,
        0x1000,
        0x2000,
        0x3000,
    )
    assert q.kick_fd is not None and q.call_fd is None and q.enabled
    _send(a, 11, struct.pack("<II", 1, 0))
    assert dev.handle(_msg(b)) == struct.pack("<II", 1, 5)
    assert not q.enabled
    dev.close()
