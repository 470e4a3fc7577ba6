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
    "U512",
    "wrap_slot",
    "sem_decode",
    "REQ_LAYOUT",
    "req_elem_valid",
    "req_elem_pack",
    "req_elem_unpack",
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
    return ops.ite(ops.ule(head, tail), ops.sub(tail, head), ops.sub(ops.add(tail, nelem), head))


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
    return ops.band(ops.add(raw, ops.const(DBC_Q_BUF_ALIGN - 1)), ops.const(~(DBC_Q_BUF_ALIGN - 1)))


def dbc_rsp_offset(nelem: Any, ops: Any = U32) -> Any:
    """Offset of the response FIFO in the chunk: flush with the end (size - 4 * nelem)."""
    return ops.sub(dbc_buf_size(nelem, ops), ops.mul(ops.const(DBC_RSP_ELEM_SIZE), nelem))


# --------------------------------------------------------------------------
# Semaphore word (aic100.rst "Request FIFO", sem_cmd; qaic_data.c encode_reqs)

SEM_VAL_MASK = 0xFFF
SEM_INDEX_MASK = 0x1F
SEM_CMD_MAX = 6
SEM_FLAGS_MASK = 0x3


def sem_valid(
    val: Any, index: Any, presync: Any, cmd: Any, flags: Any, pad: Any, ops: Any = U32
) -> Any:
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
    enable = ops.ite(
        ops.ne(ops.band(cmd, ops.const(0x7)), ops.const(0)), ops.const(1 << 31), ops.const(0)
    )
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


# --------------------------------------------------------------------------
# Additions for the proofs (issue #5).  Same rules as above: everything goes
# through ``ops``; the hosts and the device should call these too.

#: 512-bit ops: one whole 64-byte request element as a little-endian integer.
U512 = IntOps(512)


def wrap_slot(tail: Any, k: Any, nelem: Any, i: Any, ops: Any = U32) -> Any:
    """Ring slot that element ``i`` (0-based) of a ``k``-element wrap copy lands in.

    The first ``first`` elements go to tail, tail+1, ...; the rest to 0, 1, ...
    (qaic_data.c ``copy_exec_reqs``: two memcpy calls split by :func:`wrap_split`).
    """
    first, _second = wrap_split(tail, k, nelem, ops)
    return ops.ite(ops.ult(i, first), ops.add(tail, i), ops.sub(i, first))


def sem_decode(word: Any, ops: Any = U32) -> tuple[Any, Any, Any, Any, Any]:
    """Inverse of :func:`sem_encode` on its fields: (val, index, presync, cmd, flags).

    Bit positions as in :func:`sem_encode` (aic100.rst "Request FIFO", sem_cmd).
    """
    return (
        ops.band(word, ops.const(SEM_VAL_MASK)),
        ops.band(ops.lshr(word, 16), ops.const(SEM_INDEX_MASK)),
        ops.band(ops.lshr(word, 22), ops.const(1)),
        ops.band(ops.lshr(word, 24), ops.const(0x7)),
        ops.band(ops.lshr(word, 29), ops.const(SEM_FLAGS_MASK)),
    )


#: ``struct request_elem`` (aic100.rst "Request FIFO"; qaic_data.c ``struct dbc_req``):
#: (field name as in ``wire.RequestElem``, byte offset, size in bytes), little-endian.
REQ_LAYOUT: tuple[tuple[str, int, int], ...] = (
    ("req_id", 0, 2),
    ("seq_id", 2, 1),
    ("pcie_dma_cmd", 3, 1),
    ("reserved0", 4, 4),
    ("pcie_dma_source_addr", 8, 8),
    ("pcie_dma_dest_addr", 16, 8),
    ("pcie_dma_len", 24, 4),
    ("reserved1", 28, 4),
    ("doorbell_addr", 32, 8),
    ("doorbell_attr", 40, 1),
    ("reserved2", 41, 1),
    ("reserved3", 42, 2),
    ("doorbell_data", 44, 4),
    ("sem_cmd0", 48, 4),
    ("sem_cmd1", 52, 4),
    ("sem_cmd2", 56, 4),
    ("sem_cmd3", 60, 4),
)


def req_elem_valid(fields: Any, ops: Any = U512) -> Any:
    """Every field value fits its width in :data:`REQ_LAYOUT` (a wire-record invariant)."""
    return ops.land(
        *[
            ops.ule(f, ops.const((1 << (8 * size)) - 1))
            for f, (_name, _off, size) in zip(fields, REQ_LAYOUT, strict=True)
        ]
    )


def req_elem_pack(fields: Any, ops: Any = U512) -> Any:
    """The 64-byte element as a little-endian 512-bit integer (use ``U512``).

    ``fields`` are in :data:`REQ_LAYOUT` order.  ``int.from_bytes(elem.pack(),
    "little")`` of ``wire.RequestElem`` equals this (tested); each field is
    masked to its width, so an out-of-range value is truncated here and
    :func:`req_elem_valid` is what rules that out.
    """
    word = ops.const(0)
    for f, (_name, off, size) in zip(fields, REQ_LAYOUT, strict=True):
        word = ops.bor(word, ops.shl(ops.band(f, ops.const((1 << (8 * size)) - 1)), 8 * off))
    return word


def req_elem_unpack(word: Any, ops: Any = U512) -> tuple[Any, ...]:
    """Fields of a 512-bit little-endian element, in :data:`REQ_LAYOUT` order."""
    return tuple(
        ops.band(ops.lshr(word, 8 * off), ops.const((1 << (8 * size)) - 1))
        for _name, off, size in REQ_LAYOUT
    )


# --------------------------------------------------------------------------
# Host DMA path (qaic_data.c; appended by the host engineer).  Both hosts call
# these, so the proofs are about the code the hosts run.

PAGE_SIZE = 4096
REQ_ID_MASK = 0xFFFF


def page_align(size: Any, ops: Any = U64) -> Any:
    """PAGE_ALIGN(size) on a u64 (qaic_create_bo_ioctl): wraps to 0 near 2**64."""
    return ops.band(ops.add(size, ops.const(PAGE_SIZE - 1)), ops.const(~(PAGE_SIZE - 1)))


def req_id_next(req_id: Any, ops: Any = U32) -> Any:
    """``dbc->next_req_id++`` assigned to a __le16 field: ids wrap modulo 2**16."""
    return ops.band(ops.add(req_id, ops.const(1)), ops.const(REQ_ID_MASK))


def drain_count(head: Any, tail: Any, budget: Any, nelem: Any, ops: Any = U32) -> Any:
    """Responses one drain pass consumes: min(budget, (tail - head) mod nelem).

    qaic_data.c dbc_irq_threaded_fn: ``while (head != tail) { if (!event_count) break; ...}``.
    """
    return ops.umin(budget, ring_occupancy(head, tail, nelem, ops))


def slice_span(offset: Any, size: Any, seg_len: Any, ops: Any = U64) -> tuple[Any, Any, Any, Any]:
    """The DMA segments a slice covers when a BO is cut into ``seg_len``-byte segments.

    qaic_data.c clone_range_of_sgt_for_slice: a slice of size 0 still maps
    PAGE_SIZE bytes (``size = size ? size : PAGE_SIZE``); the first segment is
    the one holding ``offset``, the last the first one whose end is >= offset+size.
    Returns (first segment index, number of segments, offset into the first,
    length taken from the last).  Only meaningful when :func:`slice_span_ok`.
    """
    eff = ops.ite(ops.eq(size, ops.const(0)), ops.const(PAGE_SIZE), size)
    end = ops.add(offset, eff)
    first = ops.udiv(offset, seg_len)
    last = ops.udiv(ops.sub(end, ops.const(1)), seg_len)
    nents = ops.add(ops.sub(last, first), ops.const(1))
    first_off = ops.sub(offset, ops.mul(first, seg_len))
    last_len = ops.sub(end, ops.mul(last, seg_len))
    return first, nents, first_off, last_len


def slice_span_ok(offset: Any, size: Any, bo_size: Any, ops: Any = U64) -> Any:
    """clone_range_of_sgt_for_slice finds both a first and a last segment (else -EINVAL).

    offset must lie inside the BO and offset + max(size, PAGE_SIZE) must not pass its end.
    """
    eff = ops.ite(ops.eq(size, ops.const(0)), ops.const(PAGE_SIZE), size)
    return ops.land(
        ops.ult(offset, bo_size),
        ops.lnot(ops.add_overflows(offset, eff)),
        ops.ule(ops.add(offset, eff), bo_size),
    )


def partial_split(resize: Any, first_len: Any, seg_len: Any, ops: Any = U64) -> tuple[Any, Any]:
    """copy_partial_exec_reqs for a slice whose first element is ``first_len`` bytes and
    whose others are ``seg_len`` (the last may be shorter): (first_n, last_bytes).

    The driver loop subtracts element lengths while ``last_bytes > len``; first_n
    elements are sent whole and one more carries ``last_bytes``.  Valid for
    resize < slice size (the caller only uses it then) and for resize 0.
    """
    r = ops.sub(resize, first_len)
    k = ops.udiv(ops.sub(r, ops.const(1)), seg_len)
    within_first = ops.ule(resize, first_len)
    first_n = ops.ite(within_first, ops.const(0), ops.add(k, ops.const(1)))
    last_bytes = ops.ite(within_first, resize, ops.sub(r, ops.mul(k, seg_len)))
    return first_n, last_bytes


__all__ += [
    "PAGE_SIZE",
    "REQ_ID_MASK",
    "page_align",
    "req_id_next",
    "drain_count",
    "slice_span",
    "slice_span_ok",
    "partial_split",
]
