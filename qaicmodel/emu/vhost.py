"""The vhost-user slave (device) side, in pure Python.

Framing and requests as UML's frontend sends them (``arch/um/drivers/vhost_user.h``
and ``virtio_uml.c``: ``vhost_user_init``, ``vhost_user_set_mem_table``,
``vu_setup_vq``, ``vu_find_vqs``, ``vu_del_vqs``; read in 6.12.117 and 7.2.13,
the same in both) and the vhost-user specification (QEMU
``docs/interop/vhost-user.rst``): a 12-byte header (request u32, flags u32,
size u32), ``size`` bytes of payload, file descriptors as SCM_RIGHTS on the
same message.

The order UML uses: SET_OWNER, GET_FEATURES, GET/SET_PROTOCOL_FEATURES,
SET_SLAVE_REQ_FD (only if protocol bit 5 is offered: without it the frontend
has no interrupt for its virtqueues and requests IRQ 0, which fails -EBUSY),
SET_FEATURES, SET_MEM_TABLE, per queue SET_VRING_CALL/NUM/BASE/ADDR, then
SET_VRING_KICK and SET_VRING_ENABLE; at removal SET_VRING_ENABLE 0 and a
GET_FEATURES that only synchronises.

Anything malformed (short message, bad size for the request, unknown or
unsupported request, a missing or extra file descriptor, an overlapping or
unmappable memory region, a bad queue index) raises
:class:`~qaicmodel.errors.TransportError` naming the message.
"""

from __future__ import annotations

import array
import os
import socket
import struct
from collections.abc import Callable

import attrs

from qaicmodel.emu.guestmem import GuestMemory, close_fds
from qaicmodel.emu.virtq import Virtqueue
from qaicmodel.errors import TransportError

__all__ = [
    "Message",
    "VhostUserDevice",
    "recv_message",
    "send_message",
    "REQUESTS",
    "F_PROTOCOL_FEATURES",
    "F_VERSION_1",
    "PROTOCOL_F_SLAVE_REQ",
    "PROTOCOL_F_REPLY_ACK",
    "FLAG_REPLY",
    "FLAG_NEED_REPLY",
    "VERSION",
]

VERSION = 1
FLAG_VERSION_MASK = 0x3
FLAG_REPLY = 1 << 2
FLAG_NEED_REPLY = 1 << 3

F_PROTOCOL_FEATURES = 30  # VHOST_USER_F_PROTOCOL_FEATURES
F_VERSION_1 = 32  # VIRTIO_F_VERSION_1
PROTOCOL_F_MQ = 0
PROTOCOL_F_REPLY_ACK = 3
PROTOCOL_F_SLAVE_REQ = 5
VRING_INDEX_MASK = 0xFF
VRING_NOFD_MASK = 1 << 8

HEADER = struct.Struct("<III")
MAX_PAYLOAD = 4096
MAX_FDS = 8
MAX_REGIONS = 8  # VHOST_MEMORY_BASELINE_NREGIONS

#: request number -> name (the frontend-to-slave requests of the specification)
REQUESTS: dict[int, str] = {
    1: "GET_FEATURES",
    2: "SET_FEATURES",
    3: "SET_OWNER",
    4: "RESET_OWNER",
    5: "SET_MEM_TABLE",
    6: "SET_LOG_BASE",
    7: "SET_LOG_FD",
    8: "SET_VRING_NUM",
    9: "SET_VRING_ADDR",
    10: "SET_VRING_BASE",
    11: "GET_VRING_BASE",
    12: "SET_VRING_KICK",
    13: "SET_VRING_CALL",
    14: "SET_VRING_ERR",
    15: "GET_PROTOCOL_FEATURES",
    16: "SET_PROTOCOL_FEATURES",
    17: "GET_QUEUE_NUM",
    18: "SET_VRING_ENABLE",
    19: "SEND_RARP",
    20: "NET_SET_MTU",
    21: "SET_SLAVE_REQ_FD",
    22: "IOTLB_MSG",
    23: "SET_VRING_ENDIAN",
    24: "GET_CONFIG",
    25: "SET_CONFIG",
    35: "VRING_KICK",
}

#: payload size each supported request must have (None: checked by its handler)
_SIZES: dict[str, int | None] = {
    "GET_FEATURES": 0,
    "SET_FEATURES": 8,
    "SET_OWNER": 0,
    "RESET_OWNER": 0,
    "SET_MEM_TABLE": None,
    "SET_VRING_NUM": 8,
    "SET_VRING_ADDR": 40,
    "SET_VRING_BASE": 8,
    "GET_VRING_BASE": 8,
    "SET_VRING_KICK": 8,
    "SET_VRING_CALL": 8,
    "SET_VRING_ERR": 8,
    "GET_PROTOCOL_FEATURES": 0,
    "SET_PROTOCOL_FEATURES": 8,
    "GET_QUEUE_NUM": 0,
    "SET_VRING_ENABLE": 8,
    "SET_SLAVE_REQ_FD": 0,
}
#: requests that carry exactly one file descriptor (the vring ones unless NOFD is set)
_ONE_FD = {"SET_SLAVE_REQ_FD"}
_VRING_FD = {"SET_VRING_KICK", "SET_VRING_CALL", "SET_VRING_ERR"}


@attrs.define
class Message:
    request: int
    flags: int
    payload: bytes
    fds: list[int] = attrs.Factory(list)

    @property
    def name(self) -> str:
        return REQUESTS.get(self.request, f"request {self.request}")


def _recv_exact(sock: socket.socket, n: int, fds: list[int], what: str, have: bytes = b"") -> bytes:
    buf = have
    while len(buf) < n:
        try:
            data, more, _flags, _addr = socket.recv_fds(sock, n - len(buf), MAX_FDS)
        except TimeoutError:
            close_fds(fds)
            raise TransportError(
                f"truncated message: {len(buf)} of {n} bytes arrived", where=what
            ) from None
        except ConnectionResetError:
            data, more = b"", []
        fds.extend(more)
        if not data:
            close_fds(fds)
            raise TransportError(f"connection closed after {len(buf)} of {n} bytes", where=what)
        buf += data
    return buf


def recv_message(sock: socket.socket) -> Message | None:
    """One whole message from the frontend; None when the frontend closed cleanly."""
    fds: list[int] = []
    try:
        first, more, _flags, _addr = socket.recv_fds(sock, HEADER.size, MAX_FDS)
    except ConnectionResetError:
        return None
    fds.extend(more)
    if not first:
        close_fds(fds)
        return None
    if len(first) < HEADER.size:
        first = _recv_exact(sock, HEADER.size, fds, "message header", first)
    request, flags, size = HEADER.unpack(first)
    name = REQUESTS.get(request, f"request {request}")
    if size > MAX_PAYLOAD:
        close_fds(fds)
        raise TransportError(f"payload size {size} exceeds {MAX_PAYLOAD}", where=name)
    payload = _recv_exact(sock, size, fds, name) if size else b""
    return Message(request, flags, payload, fds)


def send_message(sock: socket.socket, request: int, payload: bytes, flags: int) -> None:
    sock.sendall(HEADER.pack(request, flags, len(payload)) + payload)


class VhostUserDevice:
    """Slave-side state of one vhost-user connection.

    ``features`` are the virtio feature bits offered (VERSION_1 and
    PROTOCOL_FEATURES); ``protocol_features`` the protocol bits offered (SLAVE_REQ
    only: REPLY_ACK would make every message a round trip, MQ, CONFIG and
    INBAND_NOTIFICATIONS are not needed by virt-pci).
    """

    def __init__(
        self,
        num_queues: int = 2,
        *,
        features: int = (1 << F_VERSION_1) | (1 << F_PROTOCOL_FEATURES),
        protocol_features: int = 1 << PROTOCOL_F_SLAVE_REQ,
        on_memory: Callable[[GuestMemory], None] | None = None,
    ) -> None:
        self.offered_features = features
        self.offered_protocol = protocol_features
        self.features = 0
        self.protocol_features = 0
        self.owner = False
        self.slave_req_fd: int | None = None
        self.mem: GuestMemory | None = None
        self.queues = [Virtqueue(i) for i in range(num_queues)]
        self.on_memory = on_memory
        self.messages = 0

    # -- dispatch ---------------------------------------------------------------

    def handle(self, msg: Message) -> bytes | None:
        """Apply one message; returns the reply payload (or None: no reply)."""
        name = msg.name
        self.messages += 1
        try:
            if msg.flags & FLAG_VERSION_MASK != VERSION or msg.flags & FLAG_REPLY:
                raise TransportError(
                    f"flags {msg.flags:#x}: not a version-{VERSION} request", where=name
                )
            if msg.request not in REQUESTS or name not in _SIZES:
                raise TransportError(
                    "request not supported by this device (not offered)", where=name
                )
            want = _SIZES[name]
            if want is not None and len(msg.payload) != want:
                raise TransportError(
                    f"payload is {len(msg.payload)} bytes, {want} expected", where=name
                )
            self._check_fds(msg)
            handler = getattr(self, "_" + name.lower())
            reply: bytes | None = handler(msg)
        except TransportError:
            close_fds(msg.fds)
            raise
        if reply is None and msg.flags & FLAG_NEED_REPLY:
            reply = struct.pack("<Q", 0)  # REPLY_ACK: success
        return reply

    def reply_header(self, msg: Message, payload: bytes) -> bytes:
        return HEADER.pack(msg.request, VERSION | FLAG_REPLY, len(payload)) + payload

    def _check_fds(self, msg: Message) -> None:
        name = msg.name
        if name in _ONE_FD:
            want = 1
        elif name in _VRING_FD:
            want = 0 if struct.unpack("<Q", msg.payload)[0] & VRING_NOFD_MASK else 1
        elif name == "SET_MEM_TABLE":
            return  # checked against the region count
        else:
            want = 0
        if len(msg.fds) != want:
            raise TransportError(
                f"{len(msg.fds)} file descriptors attached, {want} expected", where=name
            )

    def _queue(self, index: int, name: str) -> Virtqueue:
        if not 0 <= index < len(self.queues):
            raise TransportError(
                f"queue index {index}: this device has {len(self.queues)}", where=name
            )
        return self.queues[index]

    # -- handlers ---------------------------------------------------------------

    def _get_features(self, msg: Message) -> bytes:
        return struct.pack("<Q", self.offered_features)

    def _set_features(self, msg: Message) -> None:
        (value,) = struct.unpack("<Q", msg.payload)
        extra = value & ~self.offered_features
        if extra:
            raise TransportError(
                f"features {value:#x} include bits {extra:#x} never offered", where=msg.name
            )
        self.features = value

    def _set_owner(self, msg: Message) -> None:
        self.owner = True

    def _reset_owner(self, msg: Message) -> None:
        self.reset()

    def _get_protocol_features(self, msg: Message) -> bytes:
        return struct.pack("<Q", self.offered_protocol)

    def _set_protocol_features(self, msg: Message) -> None:
        (value,) = struct.unpack("<Q", msg.payload)
        extra = value & ~self.offered_protocol
        if extra:
            raise TransportError(
                f"protocol features {value:#x} include bits {extra:#x} never offered",
                where=msg.name,
            )
        self.protocol_features = value

    def _get_queue_num(self, msg: Message) -> bytes:
        return struct.pack("<Q", len(self.queues))

    def _set_slave_req_fd(self, msg: Message) -> None:
        if not self.protocol_features & (1 << PROTOCOL_F_SLAVE_REQ):
            raise TransportError("slave requests were not negotiated", where=msg.name)
        if self.slave_req_fd is not None:
            close_fds([self.slave_req_fd])
        self.slave_req_fd = msg.fds[0]

    def _set_mem_table(self, msg: Message) -> None:
        p = msg.payload
        if len(p) < 8:
            raise TransportError(f"payload is {len(p)} bytes, at least 8 expected", where=msg.name)
        num, _pad = struct.unpack_from("<II", p)
        if not 1 <= num <= MAX_REGIONS:
            raise TransportError(f"{num} regions (1..{MAX_REGIONS} supported)", where=msg.name)
        # 7.2 sends exactly the regions used, 6.12 its whole two-region struct
        # (``.header.size = sizeof(msg.payload.mem_regions)``): unused slots are ignored
        if len(p) < 8 + 32 * num or len(p) > 8 + 32 * MAX_REGIONS or (len(p) - 8) % 32:
            raise TransportError(
                f"payload is {len(p)} bytes: not room for {num} regions of a "
                f"table of at most {MAX_REGIONS}",
                where=msg.name,
            )
        if len(msg.fds) != num:
            raise TransportError(
                f"{len(msg.fds)} file descriptors for {num} regions", where=msg.name
            )
        mem = GuestMemory()
        try:
            for i in range(num):
                ga, size, ua, off = struct.unpack_from("<QQQQ", p, 8 + 32 * i)
                mem.add_fd_region(msg.fds[i], ga, size, ua, off)
        except TransportError:
            mem.close()
            raise
        finally:
            close_fds(msg.fds)
            msg.fds = []
        if self.mem is not None:
            self.mem.close()
        self.mem = mem
        for q in self.queues:
            q.attach(mem)
        if self.on_memory is not None:
            self.on_memory(mem)

    def _vring_state(self, msg: Message) -> tuple[Virtqueue, int]:
        index, num = struct.unpack("<II", msg.payload)
        return self._queue(index, msg.name), num

    def _set_vring_num(self, msg: Message) -> None:
        q, num = self._vring_state(msg)
        q.set_num(num)

    def _set_vring_base(self, msg: Message) -> None:
        q, num = self._vring_state(msg)
        if num > 0xFFFF:
            raise TransportError(f"base {num} does not fit a 16-bit ring index", where=msg.name)
        q.set_base(num)

    def _get_vring_base(self, msg: Message) -> bytes:
        q, _ = self._vring_state(msg)
        q.enabled = False  # GET_VRING_BASE stops the ring
        return struct.pack("<II", q.index, q.last_avail)

    def _set_vring_addr(self, msg: Message) -> None:
        index, flags, desc, used, avail, _log = struct.unpack("<IIQQQQ", msg.payload)
        q = self._queue(index, msg.name)
        if flags & 1:  # VHOST_VRING_F_LOG
            raise TransportError("dirty-page logging was not negotiated", where=msg.name)
        q.set_addr(desc, used, avail)
        if self.mem is not None:
            q.attach(self.mem)

    def _vring_fd(self, msg: Message) -> tuple[Virtqueue, int | None]:
        (value,) = struct.unpack("<Q", msg.payload)
        if value & ~(VRING_INDEX_MASK | VRING_NOFD_MASK):
            raise TransportError(
                f"payload {value:#x} has bits beyond index and NOFD", where=msg.name
            )
        q = self._queue(value & VRING_INDEX_MASK, msg.name)
        fd = None if value & VRING_NOFD_MASK else msg.fds[0]
        msg.fds = []
        return q, fd

    def _set_vring_kick(self, msg: Message) -> None:
        q, fd = self._vring_fd(msg)
        if q.kick_fd is not None:
            close_fds([q.kick_fd])
        if fd is not None:
            os.set_blocking(fd, False)
        q.kick_fd = fd
        # without F_PROTOCOL_FEATURES a ring starts when it gets its kick fd
        if not self.features & (1 << F_PROTOCOL_FEATURES):
            q.enabled = True

    def _set_vring_call(self, msg: Message) -> None:
        q, fd = self._vring_fd(msg)
        if q.call_fd is not None:
            close_fds([q.call_fd])
        if fd is not None:
            os.set_blocking(fd, False)
        q.call_fd = fd

    def _set_vring_err(self, msg: Message) -> None:
        _q, fd = self._vring_fd(msg)
        if fd is not None:
            close_fds([fd])  # the device never reports ring errors this way

    def _set_vring_enable(self, msg: Message) -> None:
        q, num = self._vring_state(msg)
        if num not in (0, 1):
            raise TransportError(f"enable value {num} is not 0 or 1", where=msg.name)
        q.enabled = bool(num)

    # -- teardown ---------------------------------------------------------------

    def reset(self) -> None:
        for q in self.queues:
            q.close_fds()
            q.attach(None)  # drop its views of guest memory, so the mapping can go
        self.queues = [Virtqueue(i) for i in range(len(self.queues))]
        if self.mem is not None:
            self.mem.close()
            self.mem = None
        self.features = self.protocol_features = 0
        self.owner = False

    def close(self) -> None:
        self.reset()
        if self.slave_req_fd is not None:
            close_fds([self.slave_req_fd])
            self.slave_req_fd = None


def pack_fds(fds: list[int]) -> list[tuple[int, int, bytes]]:
    """SCM_RIGHTS ancillary data (for test frontends that send descriptors)."""
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
