"""DMA Bridge wire records: request element (64 B), response element (4 B), sem_cmd word.

Source: aic100.rst "Request FIFO" and "Response FIFO" (``struct request_elem``,
``struct response_elem``); the driver's ``struct dbc_req`` / ``struct dbc_rsp``
in ``qaic_data.c`` have the same layout.  Everything is little-endian.

Records keep every bit they were unpacked from, reserved ones included, so
``pack(unpack(b)) == b`` for every ``b``; :meth:`RequestElem.reserved_set` and
:meth:`RequestElem.violations` report what a conforming host would not send.
"""

from __future__ import annotations

import enum
import functools
import operator
import struct
from typing import Any

import attrs
import numpy as np

from qaicmodel.errors import ArgumentError, DecodeError
from qaicmodel.findings import Finding

__all__ = [
    "Dir",
    "SemOp",
    "DbLen",
    "SemCmd",
    "RequestElem",
    "ResponseElem",
    "Violation",
    "REQ_DTYPE",
    "RSP_DTYPE",
    "REQ_SIZE",
    "RSP_SIZE",
    "CMD_FORCE_MSI",
    "CMD_COMPLETION",
    "CMD_BULK",
    "DB_WRITE",
]

REQ_SIZE = 64
RSP_SIZE = 4

# pcie_dma_cmd bits (aic100.rst "Request FIFO", pcie_dma_cmd)
CMD_FORCE_MSI = 1 << 7
CMD_COMPLETION = 1 << 4
CMD_BULK = 1 << 3
CMD_DIR_MASK = 0x3
CMD_RESERVED = 0x64  # bits 6:5 and 2
# doorbell_attr bits
DB_WRITE = 1 << 7
DB_LEN_MASK = 0x3
DB_RESERVED = 0x7C  # bits 6:2
# sem_cmd bits
SEM_ENABLE = 1 << 31
SEM_TODEV_FENCE = 1 << 30
SEM_FROMDEV_FENCE = 1 << 29
SEM_PRESYNC = 1 << 22
SEM_RESERVED = (0x3 << 27) | (1 << 23) | (1 << 21) | (0xF << 12)


class Dir(enum.IntEnum):
    """pcie_dma_cmd bits 1:0."""

    NONE = 0
    TO_DEV = 1
    FROM_DEV = 2
    ILLEGAL = 3


class SemOp(enum.IntEnum):
    """sem_cmd bits 26:24 (aic100.rst; uapi QAIC_SEM_* names in comments)."""

    NOP = 0  # QAIC_SEM_NOP
    INIT = 1  # QAIC_SEM_INIT
    INC = 2  # QAIC_SEM_INC
    DEC = 3  # QAIC_SEM_DEC
    WAIT_EQ = 4  # QAIC_SEM_WAIT_EQUAL
    WAIT_GE = 5  # QAIC_SEM_WAIT_GT_EQ
    P = 6  # QAIC_SEM_WAIT_GT_0 ("P" in aic100.rst)
    RESERVED = 7


class DbLen(enum.IntEnum):
    """doorbell_attr bits 1:0: the doorbell width."""

    W32 = 0
    W16 = 1
    W8 = 2
    RESERVED = 3

    @property
    def nbytes(self) -> int:
        return {0: 4, 1: 2, 2: 1, 3: 0}[int(self)]


#: the members by value, for the decoded views below (SemOp(v), Dir(v), DbLen(v) without
#: an enum call each time)
_SEM_OPS = tuple(SemOp(v) for v in range(8))
_DIRS = tuple(Dir(v) for v in range(4))
_DB_LENS = tuple(DbLen(v) for v in range(4))


class Violation(Finding):
    """One rule of the seed document an element breaks: a :class:`Finding` at ``field``."""

    __slots__ = ()

    def __init__(
        self, rule: str, field: str, message: str, source: str = "aic100.rst Request FIFO"
    ) -> None:
        super().__init__(rule, message, source, {"field": field})


def _u(bits: int) -> Any:
    limit = 1 << bits

    def check(inst: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limit:
            raise ArgumentError(f"{attribute.name}={value!r} does not fit in {bits} unsigned bits")

    return check


@attrs.frozen
class SemCmd:
    """A decoded ``sem_cmdN`` word.  ``word`` is the whole 32-bit value, reserved bits kept."""

    word: int = attrs.field(default=0, validator=_u(32))

    @classmethod
    def build(
        cls,
        *,
        enable: bool = True,
        op: int = SemOp.NOP,
        index: int = 0,
        value: int = 0,
        presync: bool = False,
        todev_fence: bool = False,
        fromdev_fence: bool = False,
    ) -> SemCmd:
        for name, v, bits in (("op", op, 3), ("index", index, 5), ("value", value, 12)):
            if not 0 <= int(v) < (1 << bits):
                raise ArgumentError(f"sem {name}={v} does not fit in {bits} bits")
        w = (
            int(value)
            | int(index) << 16
            | int(op) << 24
            | (SEM_PRESYNC if presync else 0)
            | (SEM_TODEV_FENCE if todev_fence else 0)
            | (SEM_FROMDEV_FENCE if fromdev_fence else 0)
            | (SEM_ENABLE if enable else 0)
        )
        return cls(w)

    @property
    def enable(self) -> bool:
        return bool(self.word & SEM_ENABLE)

    @property
    def todev_fence(self) -> bool:
        return bool(self.word & SEM_TODEV_FENCE)

    @property
    def fromdev_fence(self) -> bool:
        return bool(self.word & SEM_FROMDEV_FENCE)

    @property
    def op(self) -> SemOp:
        return _SEM_OPS[(self.word >> 24) & 0x7]

    @property
    def presync(self) -> bool:
        return bool(self.word & SEM_PRESYNC)

    @property
    def index(self) -> int:
        return (self.word >> 16) & 0x1F

    @property
    def value(self) -> int:
        return self.word & 0xFFF

    @property
    def reserved(self) -> int:
        return self.word & SEM_RESERVED

    def as_dict(self) -> dict[str, Any]:
        return {
            "word": f"0x{self.word:08x}",
            "enable": self.enable,
            "todev_fence": self.todev_fence,
            "fromdev_fence": self.fromdev_fence,
            "cmd": int(self.op),
            "cmd_name": self.op.name,
            "presync": self.presync,
            "index": self.index,
            "value": self.value,
            "reserved": f"0x{self.reserved:08x}",
        }


_REQ_STRUCT = struct.Struct("<HBBIQQIIQBBHI4I")
assert _REQ_STRUCT.size == REQ_SIZE
_RSP_STRUCT = struct.Struct("<HH")

#: numpy view of the exact 64-byte layout (used by the fast host).
REQ_DTYPE = np.dtype(
    [
        ("req_id", "<u2"),
        ("seq_id", "u1"),
        ("pcie_dma_cmd", "u1"),
        ("reserved0", "<u4"),
        ("pcie_dma_source_addr", "<u8"),
        ("pcie_dma_dest_addr", "<u8"),
        ("pcie_dma_len", "<u4"),
        ("reserved1", "<u4"),
        ("doorbell_addr", "<u8"),
        ("doorbell_attr", "u1"),
        ("reserved2", "u1"),
        ("reserved3", "<u2"),
        ("doorbell_data", "<u4"),
        ("sem_cmd", "<u4", (4,)),
    ]
)
assert REQ_DTYPE.itemsize == REQ_SIZE
RSP_DTYPE = np.dtype([("req_id", "<u2"), ("completion_code", "<u2")])


@attrs.frozen
class RequestElem:
    """One 64-byte request FIFO element (aic100.rst ``struct request_elem``)."""

    req_id: int = attrs.field(default=0, validator=_u(16))
    seq_id: int = attrs.field(default=0, validator=_u(8))
    pcie_dma_cmd: int = attrs.field(default=0, validator=_u(8))
    reserved0: int = attrs.field(default=0, validator=_u(32))
    pcie_dma_source_addr: int = attrs.field(default=0, validator=_u(64))
    pcie_dma_dest_addr: int = attrs.field(default=0, validator=_u(64))
    pcie_dma_len: int = attrs.field(default=0, validator=_u(32))
    reserved1: int = attrs.field(default=0, validator=_u(32))
    doorbell_addr: int = attrs.field(default=0, validator=_u(64))
    doorbell_attr: int = attrs.field(default=0, validator=_u(8))
    reserved2: int = attrs.field(default=0, validator=_u(8))
    reserved3: int = attrs.field(default=0, validator=_u(16))
    doorbell_data: int = attrs.field(default=0, validator=_u(32))
    sem_cmd0: int = attrs.field(default=0, validator=_u(32))
    sem_cmd1: int = attrs.field(default=0, validator=_u(32))
    sem_cmd2: int = attrs.field(default=0, validator=_u(32))
    sem_cmd3: int = attrs.field(default=0, validator=_u(32))

    # -- bytes
    def pack(self) -> bytes:
        if type(self) is RequestElem:  # its own fields, in order (attrs.astuple's, faster)
            return _REQ_STRUCT.pack(*_req_fields(self))
        return _REQ_STRUCT.pack(*attrs.astuple(self))

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> RequestElem:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"request element must be bytes, not {type(data).__name__}")
        if len(data) != REQ_SIZE:
            raise DecodeError(
                f"request element is {REQ_SIZE} bytes, got {len(data)}", rule="ELEM-LENGTH"
            )
        if cls is RequestElem:
            return _unpack_request(bytes(data))
        return cls(*_REQ_STRUCT.unpack(bytes(data)))

    # -- decoded views of pcie_dma_cmd
    @property
    def force_msi(self) -> bool:
        return bool(self.pcie_dma_cmd & CMD_FORCE_MSI)

    @property
    def completion(self) -> bool:
        return bool(self.pcie_dma_cmd & CMD_COMPLETION)

    @property
    def bulk(self) -> bool:
        return bool(self.pcie_dma_cmd & CMD_BULK)

    @property
    def dir(self) -> Dir:
        return _DIRS[self.pcie_dma_cmd & CMD_DIR_MASK]

    # -- doorbell
    @property
    def db_write(self) -> bool:
        return bool(self.doorbell_attr & DB_WRITE)

    @property
    def db_len(self) -> DbLen:
        return _DB_LENS[self.doorbell_attr & DB_LEN_MASK]

    @property
    def sems(self) -> tuple[SemCmd, SemCmd, SemCmd, SemCmd]:
        return (
            _sem_cmd(self.sem_cmd0),
            _sem_cmd(self.sem_cmd1),
            _sem_cmd(self.sem_cmd2),
            _sem_cmd(self.sem_cmd3),
        )

    def reserved_set(self) -> dict[str, int]:
        """Reserved bits that are set, by field name (value = the set bits)."""
        out: dict[str, int] = {}
        for name, bits in (
            ("pcie_dma_cmd", self.pcie_dma_cmd & CMD_RESERVED),
            ("reserved0", self.reserved0),
            ("reserved1", self.reserved1),
            ("doorbell_attr", self.doorbell_attr & DB_RESERVED),
            ("reserved2", self.reserved2),
            ("reserved3", self.reserved3),
        ):
            if bits:
                out[name] = bits
        for i, s in enumerate(self.sems):
            if s.reserved:
                out[f"sem_cmd{i}"] = s.reserved
        return out

    def violations(self) -> list[Violation]:
        """Every rule of aic100.rst "Request FIFO" this element breaks.  (Found once per
        element value: the record and its findings are frozen; the device checks every
        element it consumes.)"""
        return list(_violations(self))

    def _violations(self) -> list[Violation]:
        out: list[Violation] = []
        if self.dir is Dir.ILLEGAL:
            out.append(Violation("REQ-DIR-ILLEGAL", "pcie_dma_cmd", "transfer type 3 is illegal"))
        if self.db_write:
            if self.db_len is DbLen.RESERVED:
                out.append(
                    Violation(
                        "REQ-DB-LEN-RESERVED",
                        "doorbell_attr",
                        "doorbell length encoding 3 is reserved",
                    )
                )
            elif self.doorbell_addr % self.db_len.nbytes:
                out.append(
                    Violation(
                        "REQ-DB-MISALIGNED",
                        "doorbell_addr",
                        f"doorbell address 0x{self.doorbell_addr:x} is not aligned to "
                        f"{self.db_len.nbytes} bytes",
                    )
                )
        presyncs = [i for i, s in enumerate(self.sems) if s.enable and s.presync]
        if len(presyncs) > 1:
            out.append(
                Violation(
                    "REQ-MULTI-PRESYNC",
                    f"sem_cmd{presyncs[1]}",
                    f"{len(presyncs)} presync semaphores; only one is allowed",
                )
            )
        for i, s in enumerate(self.sems):
            if s.enable and s.op is SemOp.RESERVED:
                out.append(
                    Violation("SEM-CMD-RESERVED", f"sem_cmd{i}", "semaphore command 7 is reserved")
                )
        for name in self.reserved_set():
            out.append(Violation("RESERVED-BITS-SET", name, "reserved bits are set"))
        return out

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = attrs.asdict(self)
        d["decoded"] = {
            "force_msi": self.force_msi,
            "completion": self.completion,
            "bulk": self.bulk,
            "dir": int(self.dir),
            "dir_name": self.dir.name,
            "db_write": self.db_write,
            "db_len": int(self.db_len),
            "db_len_name": self.db_len.name,
            "sems": [s.as_dict() for s in self.sems],
        }
        return d


@functools.lru_cache(maxsize=4096)
def _violations(e: RequestElem) -> tuple[Violation, ...]:
    return tuple(e._violations())


#: RequestElem's field values in declaration order (what attrs.astuple gives for it)
_req_fields = operator.attrgetter(*(f.name for f in attrs.fields(RequestElem)))


@functools.lru_cache(maxsize=1024)
def _sem_cmd(word: int) -> SemCmd:
    """``SemCmd(word)`` (shared: frozen, a pure function of the word)."""
    return SemCmd(word)


@functools.lru_cache(maxsize=8192)
def _unpack_request(raw: bytes) -> RequestElem:
    """The :class:`RequestElem` of 64 bytes (cached: a frozen record, a pure function of
    the bytes; the device, conform's rule book and its completion check read the same
    published slots)."""
    return RequestElem(*_REQ_STRUCT.unpack(raw))


@attrs.frozen
class ResponseElem:
    """One 4-byte response FIFO element (aic100.rst ``struct response_elem``)."""

    req_id: int = attrs.field(default=0, validator=_u(16))
    completion_code: int = attrs.field(default=0, validator=_u(16))

    def pack(self) -> bytes:
        return _RSP_STRUCT.pack(self.req_id, self.completion_code)

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> ResponseElem:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"response element must be bytes, not {type(data).__name__}")
        if len(data) != RSP_SIZE:
            raise DecodeError(
                f"response element is {RSP_SIZE} bytes, got {len(data)}", rule="ELEM-LENGTH"
            )
        return cls(*_RSP_STRUCT.unpack(bytes(data)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "req_id": self.req_id,
            "completion_code": self.completion_code,
            "decoded": {"success": self.completion_code == 0},
        }
