"""The arithmetic the design rests on, written once for two kinds of numbers.

Every function here takes an ``ops`` argument: :data:`U32`/:data:`U64` (plain
Python ints with C unsigned wrap-around) at run time, or ``Z3Ops(width)`` from
``proofs`` when proving.  The hosts, the device model and the proofs all call
*these* functions, so a proof is about the code that runs (issue 5).

Rules for writing a function here:
  * never use ``+ - * % < <= ==`` etc. on operands directly: go through
    ``ops`` (``ops.add``, ``ops.ult``, ...), because Python ints do not wrap
    and z3's ``<`` and ``%`` are signed;
  * never branch in Python on a value: use ``ops.ite``;
  * constants go through ``ops.const``.

Sources: aic100.rst "DMA Bridge" (ring registers are element indexes),
``qaic_data.c`` (free-space formula, wrap copy, slice checks),
``qaic_control.c`` ``encode_activate`` (FIFO buffer layout).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "IntOps",
    "U32",
    "U64",
    "fifo_space",
    "ring_occupancy",
    "ring_advance",
    "wrap_split",
    "DBC_REQ_ELEM_SIZE",
    "DBC_RSP_ELEM_SIZE",
    "DBC_Q_GAP",
    "DBC_Q_BUF_ALIGN",
    "dbc_buf_size",
    "dbc_rsp_offset",
    "sem_encode",
    "sem_valid",
    "slice_in_bounds",
    "activate_queue_size_ok",
    "SEM_VAL_MASK",
    "SEM_INDEX_MASK",
    "SEM_CMD_MAX",
    "SEM_FLAGS_MASK",
]

# Request element and response element sizes (aic100.rst struct request_elem /
# response_elem; qaic_data.c get_dbc_req_elem_size / get_dbc_rsp_elem_size).
DBC_REQ_ELEM_SIZE = 64
DBC_RSP_ELEM_SIZE = 4
# qaic_control.c: QAIC_DBC_Q_GAP and QAIC_DBC_Q_BUF_ALIGN.
DBC_Q_GAP = 256
DBC_Q_BUF_ALIGN = 4096


class IntOps:
    """Unsigned ``width``-bit arithmetic on Python ints (C ``u32``/``u64``)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.mask = (1 << width) - 1

    # values
    def const(self, v: int) -> int:
        return v & self.mask

    def add(self, a: int, b: int) -> int:
        return (a + b) & self.mask

    def sub(self, a: int, b: int) -> int:
        return (a - b) & self.mask

    def mul(self, a: int, b: int) -> int:
        return (a * b) & self.mask

    def udiv(self, a: int, b: int) -> int:
        return a // b if b else self.mask  # SMT-LIB: x / 0 = all ones

    def urem(self, a: int, b: int) -> int:
        return a % b if b else a  # SMT-LIB: x % 0 = x

    def band(self, a: int, b: int) -> int:
        return a & b

    def bor(self, a: int, b: int) -> int:
        return a | b

    def shl(self, a: int, n: int) -> int:
        return (a << n) & self.mask

    def lshr(self, a: int, n: int) -> int:
        return a >> n

    # predicates
    def ult(self, a: int, b: int) -> bool:
        return a < b

    def ule(self, a: int, b: int) -> bool:
        return a <= b

    def eq(self, a: int, b: int) -> bool:
        return a == b

    def ne(self, a: int, b: int) -> bool:
        return a != b

    def land(self, *cs: bool) -> bool:
        return all(cs)

    def lor(self, *cs: bool) -> bool:
        return any(cs)

    def lnot(self, c: bool) -> bool:
        return not c

    def ite(self, c: bool, a: Any, b: Any) -> Any:
        return a if c else b

    def umin(self, a: int, b: int) -> int:
        return a if a <= b else b

    def add_overflows(self, a: int, b: int) -> bool:
        """True when ``a + b`` does not fit in ``width`` bits (check_add_overflow)."""
        return a + b > self.mask


U32 = IntOps(32)
U64 = IntOps(64)


# --------------------------------------------------------------------------
# Rings (aic100.rst "DMA Bridge": registers hold element indexes)


def fifo_space(head: Any, tail: Any, nelem: Any, ops: Any = U32) -> Any:
    """Free request slots the host may fill: ``head - tail - 1`` (+ nelem when head <= tail).

    One slot is always kept empty so that head == tail means "empty"
    (qaic_data.c ``fifo_space_avail``; policy ``ring-full-rule``).
    """
    avail = ops.sub(ops.sub(head, tail), ops.const(1))
    return ops.ite(ops.ule(head, tail), ops.add(avail, nelem), avail)


def ring_occupancy(head: Any, tail: Any, nelem: Any, ops: Any = U32) -> Any:
    """Elements between head (consumer) and tail (producer), i.e. (tail - head) mod nelem."""
    return ops.ite(
        ops.ule(head, tail), ops.sub(tail, head), ops.sub(ops.add(tail, nelem), head)
    )


def ring_advance(idx: Any, k: Any, nelem: Any, ops: Any = U32) -> Any:
    """Index ``k`` elements after ``idx``: (idx + k) mod nelem."""
    return ops.urem(ops.add(idx, k), nelem)


def wrap_split(tail: Any, k: Any, nelem: Any, ops: Any = U32) -> tuple[Any, Any]:
    """Split a copy of ``k`` elements at ``tail`` into (before-wrap, after-wrap) counts.

    The first part fills slots tail .. min(tail+k, nelem)-1, the second starts
    at slot 0 (qaic_data.c ``copy_exec_reqs``).
    """
    first = ops.umin(k, ops.sub(nelem, tail))
    return first, ops.sub(k, first)


# --------------------------------------------------------------------------
# The memory the host donates at activation (qaic_control.c encode_activate)


def dbc_buf_size(nelem: Any, ops: Any = U32) -> Any:
    """round_up(68 * nelem + 256, 4096): one chunk holding both FIFOs."""
    raw = ops.add(
        ops.mul(ops.const(DBC_REQ_ELEM_SIZE + DBC_RSP_ELEM_SIZE), nelem), ops.const(DBC_Q_GAP)
    )
    return ops.band(
        ops.add(raw, ops.const(DBC_Q_BUF_ALIGN - 1)), ops.const(~(DBC_Q_BUF_ALIGN - 1))
    )


def dbc_rsp_offset(nelem: Any, ops: Any = U32) -> Any:
    """Offset of the response FIFO in the chunk: flush with the end (size - 4 * nelem)."""
    return ops.sub(dbc_buf_size(nelem, ops), ops.mul(ops.const(DBC_RSP_ELEM_SIZE), nelem))


# --------------------------------------------------------------------------
# Semaphore word (aic100.rst "Request FIFO", sem_cmd; qaic_data.c encode_reqs)

SEM_VAL_MASK = 0xFFF
SEM_INDEX_MASK = 0x1F
SEM_CMD_MAX = 6
SEM_FLAGS_MASK = 0x3


def sem_valid(val: Any, index: Any, presync: Any, cmd: Any, flags: Any, pad: Any, ops: Any = U32) -> Any:
    """The driver's check on one ``struct qaic_sem`` (else -EINVAL)."""
    return ops.land(
        ops.ule(val, ops.const(SEM_VAL_MASK)),
        ops.ule(index, ops.const(SEM_INDEX_MASK)),
        ops.ule(presync, ops.const(1)),
        ops.eq(pad, ops.const(0)),
        ops.eq(ops.band(flags, ops.const(~SEM_FLAGS_MASK & ops.mask)), ops.const(0)),
        ops.ule(cmd, ops.const(SEM_CMD_MAX)),
    )


def sem_encode(val: Any, index: Any, presync: Any, cmd: Any, flags: Any, ops: Any = U32) -> Any:
    """Pack a semaphore command word; the enable bit (31) is set when cmd != 0.

    Bits: 11:0 val, 20:16 index, 22 presync, 26:24 cmd, 30:29 flags
    (QAIC_SEM_INSYNCFENCE=2 -> bit 30, QAIC_SEM_OUTSYNCFENCE=1 -> bit 29), 31 enable.
    """
    word = ops.band(val, ops.const(SEM_VAL_MASK))
    word = ops.bor(word, ops.shl(ops.band(index, ops.const(SEM_INDEX_MASK)), 16))
    word = ops.bor(word, ops.shl(ops.band(presync, ops.const(1)), 22))
    word = ops.bor(word, ops.shl(ops.band(cmd, ops.const(0x7)), 24))
    word = ops.bor(word, ops.shl(ops.band(flags, ops.const(SEM_FLAGS_MASK)), 29))
    enable = ops.ite(ops.ne(ops.band(cmd, ops.const(0x7)), ops.const(0)), ops.const(1 << 31), ops.const(0))
    return ops.bor(word, enable)


# --------------------------------------------------------------------------
# Slices (qaic_data.c qaic_attach_slice_bo_ioctl / qaic_validate_req)


def slice_in_bounds(offset: Any, size: Any, bo_size: Any, ops: Any = U64) -> Any:
    """A slice [offset, offset+size) fits in the BO, rejecting u64 wrap-around.

    The post-CVE-2025-22001 driver uses check_add_overflow before comparing
    against the BO size.
    """
    return ops.land(
        ops.lnot(ops.add_overflows(offset, size)), ops.ule(ops.add(offset, size), bo_size)
    )


# --------------------------------------------------------------------------
# Activation (qaic_control.c encode_activate overflow checks)


def activate_queue_size_ok(queue_size: Any, ops: Any = U32) -> Any:
    """The driver's acceptance test for an activate ``queue_size`` (else -EINVAL).

    Rejects 0, a (64 + 4) * queue_size that overflows u32, and a
    size + 256 + 4096 that overflows u32 (the round-up would wrap).
    """
    per = ops.const(DBC_REQ_ELEM_SIZE + DBC_RSP_ELEM_SIZE)
    raw = ops.mul(per, queue_size)
    mul_ok = ops.ule(queue_size, ops.udiv(ops.const(ops.mask), per))
    add_ok = ops.lnot(ops.add_overflows(raw, ops.const(DBC_Q_GAP + DBC_Q_BUF_ALIGN)))
    return ops.land(ops.ne(queue_size, ops.const(0)), mul_ok, add_ok)
