"""Host memory (as the device sees it over PCIe) and device memory (DDR, L2TCM windows).

aic100.rst "DMA Bridge": the FIFOs are backed by host memory; "DDR": the host
has no direct access to device DDR.  Both are sparse: host memory is a set of
mapped regions (DMA-coherent buffers and BO segments) handed out by a
deterministic allocator; device memory is a dict of 4 KiB pages over the
64-bit device address space.

Synthetic memory (issue #12 item 4):
  * :class:`SparseBytes` is a zero-filled byte array of any length below 2**64 that
    allocates only the 4 KiB pages written; a host region may be a window of one
    (:meth:`HostMemory.map_sparse`), so a BO of any size needs no real memory;
  * :meth:`HostMemory.map_scatter` maps a buffer's scatter-table entries (the CPU
    chunks, ``orig_nents``) and returns the DMA segments (``nents``): with
    ``merge`` (an IOMMU) consecutive entries get consecutive bus addresses and
    merge into one segment up to ``max_segment`` (qaic_drv.c sets
    ``dma_set_max_seg_size(UINT_MAX)``), so there are fewer segments than entries;
    without it every entry is its own segment (no IOMMU: one guard page apart);
  * :func:`create_sgt_entries` is the 7.2 driver's chunking of a BO
    (qaic_data.c create_sgt) and its ``int nr_pages`` truncation.

Rules: a view inside one dense region is a writable zero-copy numpy view; any other
view (a sparse window, or a span across adjacent regions of a merged segment) is a
read-only copy -- :meth:`HostMemory.write` writes through to the backing.  Reading or
viewing more than :data:`MATERIALISE_LIMIT` bytes of sparse memory at once is an
ArgumentError (a model limit, not device behaviour).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from qaicmodel.errors import ArgumentError

__all__ = [
    "HostMemory",
    "DevMemory",
    "DmaFault",
    "PAGE",
    "SparseBytes",
    "ScatterTable",
    "create_sgt_entries",
    "MATERIALISE_LIMIT",
    "MAX_PAGE_ORDER",
    "SPARSE_SEGMENT",
    "bo_backing",
    "import_backing",
]

PAGE = 4096
#: A model limit: the most bytes of sparse memory one read/view materialises.
MATERIALISE_LIMIT = 256 << 20
#: MAX_PAGE_ORDER on x86-64 with 4 KiB pages (include/linux/mmzone.h, 7.2): chunks of
#: at most 4 MiB from alloc_pages
MAX_PAGE_ORDER = 10
_U64 = 1 << 64


class DmaFault(Exception):
    """Internal signal: an access touched unmapped memory.  Never escapes the model."""

    def __init__(self, addr: int, length: int) -> None:
        super().__init__(f"unmapped access at 0x{addr:x}+{length}")
        self.addr = addr
        self.length = length


class SparseBytes:
    """A zero-filled 1-D byte array of any length < 2**64; only written pages exist.

    Supports ``shape``, ``dtype``, ``size``, and contiguous slices: ``a[i:j]`` is a
    numpy copy (at most :data:`MATERIALISE_LIMIT` bytes), ``a[i:j] = data`` writes
    pages.  ``len()`` works only below 2**63 (Python's limit): use ``shape[0]``.
    """

    dtype = np.dtype(np.uint8)
    ndim = 1

    def __init__(self, length: int) -> None:
        if not isinstance(length, int) or isinstance(length, bool) or not 0 < length < _U64:
            raise ArgumentError(f"a sparse buffer is 1 .. 2**64-1 bytes, not {length!r}")
        self.length = length
        self._pages: dict[int, np.ndarray] = {}

    @property
    def shape(self) -> tuple[int]:
        return (self.length,)

    @property
    def size(self) -> int:
        return self.length

    def __len__(self) -> int:
        return self.length

    def pages_used(self) -> int:
        return len(self._pages)

    def _range(self, key: Any) -> tuple[int, int]:
        if isinstance(key, int) and not isinstance(key, bool):
            k = key + self.length if key < 0 else key
            if not 0 <= k < self.length:
                raise IndexError(f"index {key} out of range for {self.length} bytes")
            return k, k + 1
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise ArgumentError("SparseBytes takes an int or a contiguous slice")
        start, stop, _ = key.indices(self.length)
        return start, max(start, stop)

    def read(self, off: int, n: int) -> np.ndarray:
        if n > MATERIALISE_LIMIT:
            raise ArgumentError(
                f"reading {n} bytes of sparse memory at once exceeds the model's "
                f"{MATERIALISE_LIMIT}-byte limit"
            )
        out = np.zeros(n, dtype=np.uint8)
        pos = 0
        while pos < n:
            page, o = divmod(off + pos, PAGE)
            k = min(PAGE - o, n - pos)
            p = self._pages.get(page)
            if p is not None:
                out[pos : pos + k] = p[o : o + k]
            pos += k
        return out

    def write(self, off: int, data: Any) -> None:
        buf = data if isinstance(data, np.ndarray) else np.frombuffer(bytes(data), np.uint8)
        n = int(buf.shape[0])
        if off < 0 or off + n > self.length:
            raise IndexError(f"[{off}, +{n}) is outside the {self.length}-byte buffer")
        pos = 0
        while pos < n:
            page, o = divmod(off + pos, PAGE)
            k = min(PAGE - o, n - pos)
            p = self._pages.get(page)
            if p is None:
                p = self._pages[page] = np.zeros(PAGE, dtype=np.uint8)
            p[o : o + k] = buf[pos : pos + k]
            pos += k

    def __getitem__(self, key: Any) -> Any:
        a, b = self._range(key)
        out = self.read(a, b - a)
        return int(out[0]) if isinstance(key, int) else out

    def __setitem__(self, key: Any, value: Any) -> None:
        a, b = self._range(key)
        if isinstance(value, int) and not isinstance(value, (bool, np.ndarray)):
            value = np.full(b - a, value, dtype=np.uint8)
        buf = value if isinstance(value, np.ndarray) else np.frombuffer(bytes(value), np.uint8)
        if int(buf.shape[0]) != b - a:
            raise ValueError(f"cannot assign {buf.shape[0]} bytes to a {b - a}-byte slice")
        self.write(a, buf)

    def tobytes(self) -> bytes:
        return bytes(self.read(0, self.length))


@attrs.frozen
class ScatterTable:
    """A buffer's scatter table: ``entries`` (CPU chunk lengths; ``orig_nents``) and the
    DMA ``segments`` (bus address, length; ``nents``) the mapping produced."""

    entries: tuple[int, ...]
    segments: tuple[tuple[int, int], ...]

    @property
    def orig_nents(self) -> int:
        return len(self.entries)

    @property
    def nents(self) -> int:
        return len(self.segments)


def create_sgt_entries(size: int) -> tuple[int, ...] | None:
    """The sg entries qaic_data.c create_sgt (6.12, 7.2) makes for a page-aligned BO,
    assuming every alloc_pages succeeds at its first order: 4 MiB chunks, then one
    chunk of the rest rounded up to a power of two pages, trimmed back (buf_extra).

    ``nr_pages`` is an ``int`` there: DIV_ROUND_UP(size, PAGE_SIZE) wraps modulo 2**32
    as a signed value.  Returns None when it is <= 0 (kvmalloc_array of a huge or zero
    count / sg_alloc_table(0): -ENOMEM); a wrapped positive count backs the BO with
    that many pages only, whatever its size.
    """
    pages = -(-size // PAGE)
    nr = pages & 0xFFFFFFFF
    nr = nr - (1 << 32) if nr & 0x80000000 else nr
    if nr <= 0:
        return None
    chunk = PAGE << MAX_PAGE_ORDER
    full, rest = divmod(nr * PAGE, chunk)
    return (chunk,) * full + ((rest,) if rest else ())


#: A model limit: the most scatter entries one buffer may have.
MAX_ENTRIES = 1 << 20
#: the largest DMA segment the model maps for a sparse BO: UINT_MAX (qaic_drv.c
#: dma_set_max_seg_size) rounded down to a page, so every length fits a request's u32
SPARSE_SEGMENT = 0xFFFFFFFF // PAGE * PAGE


def bo_backing(
    mem: HostMemory,
    size: int,
    *,
    max_segment: int | None = None,
    dense_limit: int = MATERIALISE_LIMIT,
) -> tuple[Any, list[tuple[int, int]]] | None:
    """Backing and DMA segments of a CREATE_BO of page-aligned ``size`` (qaic_data.c
    create_sgt), or None for the driver's -ENOMEM.

    Up to ``dense_limit`` bytes: a zeroed numpy array, split at ``max_segment`` (the
    model's sg_max_segment; one segment without), exactly as before.  Larger: a
    :class:`SparseBytes` of the whole size whose first ``sum(create_sgt_entries(size))``
    bytes are mapped -- all of it, unless ``int nr_pages`` wrapped -- in segments of at
    most ``max_segment`` or :data:`SPARSE_SEGMENT` bytes.  None also when the bus address
    space cannot hold it (a model limit: an IOMMU's IOVA space would be exhausted).
    """
    entries = create_sgt_entries(size)
    if entries is None:
        return None
    backed = sum(entries)
    if size <= dense_limit and backed == size:
        arr: Any = np.zeros(size, dtype=np.uint8)  # __GFP_ZERO
        step = max_segment or size
        return arr, [
            (mem.map_array(arr[off : off + min(step, size - off)]), min(step, size - off))
            for off in range(0, size, step)
        ]
    sparse = SparseBytes(size)
    step = min(max_segment or SPARSE_SEGMENT, SPARSE_SEGMENT)
    segs: list[tuple[int, int]] = []
    try:
        for off in range(0, backed, step):
            n = min(step, backed - off)
            segs.append((mem.map_sparse(sparse, off, n), n))
    except ArgumentError:
        for addr, _n in segs:
            mem.free(addr)
        return None
    return sparse, segs


def import_backing(
    mem: HostMemory, size: int, entries: Sequence[int] | None = None, *, merge: bool = True
) -> tuple[Any, ScatterTable]:
    """Backing of an imported dma-buf of ``size`` bytes (any size, not only page
    multiples: the exporter decides; qaic_gem_prime_import takes ``dmabuf->size``) and
    the scatter table dma_buf_map_attachment would give: ``entries`` (default one page
    each, the last one short) mapped with an IOMMU (``merge``) or without."""
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size < _U64:
        raise ArgumentError(f"an imported buffer is 1 .. 2**64-1 bytes, not {size!r}")
    if entries is None:
        chunk = PAGE if size <= MATERIALISE_LIMIT else SPARSE_SEGMENT
        if size // chunk > MAX_ENTRIES:
            raise ArgumentError(f"an import of {size} bytes needs more than {MAX_ENTRIES} entries")
        entries = [chunk] * (size // chunk) + ([size % chunk] if size % chunk else [])
    if sum(entries) != size:
        raise ArgumentError(f"import entries cover {sum(entries)} of {size} bytes")
    backing: Any = (
        np.zeros(size, dtype=np.uint8) if size <= MATERIALISE_LIMIT else SparseBytes(size)
    )
    return backing, mem.map_scatter(backing, entries, merge=merge)


class HostMemory:
    """Mapped host regions by bus address: numpy ``uint8`` arrays or windows of a
    :class:`SparseBytes`.

    ``alloc`` is a bump allocator starting at ``base`` that leaves one unmapped
    guard page between regions, so running off a region is a fault.
    """

    def __init__(self, base: int = 0x1_0000_0000) -> None:
        self._starts: list[int] = []
        self._arrays: list[Any] = []  # np.ndarray, or (SparseBytes, offset, length)
        self._next = base

    def _reserve(self, size: int, align: int, guard: bool = True) -> int:
        addr = (self._next + align - 1) // align * align
        end = addr + (size + PAGE - 1) // PAGE * PAGE + (PAGE if guard else 0)
        if end > _U64:
            raise ArgumentError(f"no room for {size} bytes in the 64-bit bus address space")
        self._next = end
        return addr

    def alloc(self, size: int, align: int = PAGE) -> int:
        if not isinstance(size, int) or size <= 0:
            raise ArgumentError(f"host allocation size must be a positive int, got {size!r}")
        addr = self._reserve(size, align)
        self._insert(addr, np.zeros(size, dtype=np.uint8))
        return addr

    def map_array(self, arr: np.ndarray, align: int = PAGE) -> int:
        """Map an existing 1-D ``uint8`` array (e.g. a view into a larger buffer) at a
        fresh bus address, like :meth:`alloc`; the caller keeps the array, so host
        code and DMA see the same bytes.  (Added for the hosts' BO segments.)"""
        if (
            not isinstance(arr, np.ndarray)
            or arr.dtype != np.uint8
            or arr.ndim != 1
            or arr.shape[0] == 0
        ):
            raise ArgumentError("map_array wants a non-empty 1-D uint8 numpy array")
        addr = self._reserve(arr.shape[0], align)
        self._insert(addr, arr)
        return addr

    def map_sparse(self, buf: SparseBytes, offset: int, length: int, align: int = PAGE) -> int:
        """Map [offset, offset+length) of a :class:`SparseBytes` at a fresh bus address."""
        if not isinstance(buf, SparseBytes) or not (
            0 <= offset and 0 < length and offset + length <= buf.length
        ):
            raise ArgumentError("map_sparse wants a SparseBytes and a non-empty window of it")
        addr = self._reserve(length, align)
        self._insert(addr, (buf, offset, length))
        return addr

    def map_scatter(
        self,
        backing: np.ndarray | SparseBytes,
        entries: Sequence[int],
        *,
        merge: bool = True,
        max_segment: int = 0xFFFFFFFF,
    ) -> ScatterTable:
        """Map ``backing`` as consecutive scatter-table ``entries`` (lengths summing to at
        most its size); returns the table with its DMA segments (merged with an IOMMU,
        ``merge``, up to ``max_segment`` bytes each; one per entry without)."""
        total = int(backing.shape[0])
        if not entries or any(not isinstance(n, int) or not 0 < n <= 0xFFFFFFFF for n in entries):
            raise ArgumentError("map_scatter wants entry lengths of 1 .. UINT_MAX bytes")
        if len(entries) > MAX_ENTRIES:
            raise ArgumentError(f"more than {MAX_ENTRIES} scatter entries (a model limit)")
        if sum(entries) > total:
            raise ArgumentError(f"entries cover {sum(entries)} bytes of a {total}-byte buffer")
        if merge and any(n % PAGE for n in entries[:-1]):
            raise ArgumentError("only the last entry may end off a page boundary when merging")
        # (offset in the backing, length) of each DMA segment
        runs: list[tuple[int, int]] = []
        off = 0
        for n in entries:
            if merge and runs and runs[-1][1] + n <= max_segment:
                runs[-1] = (runs[-1][0], runs[-1][1] + n)
            else:
                runs.append((off, n))
            off += n
        base = self._reserve(off, PAGE) if merge else 0
        segs: list[tuple[int, int]] = []
        for roff, n in runs:  # one region per segment: its bytes are one window
            addr = base + roff if merge else self._reserve(n, PAGE)
            self._insert(addr, self._window(backing, roff, n))
            segs.append((addr, n))
        return ScatterTable(tuple(entries), tuple(segs))

    @staticmethod
    def _window(backing: Any, off: int, n: int) -> Any:
        if isinstance(backing, SparseBytes):
            return (backing, off, n)
        if isinstance(backing, np.ndarray) and backing.dtype == np.uint8 and backing.ndim == 1:
            return backing[off : off + n]
        raise ArgumentError("a scatter backing is a 1-D uint8 numpy array or a SparseBytes")

    def free(self, addr: int) -> None:
        i = bisect.bisect_left(self._starts, addr)
        if i == len(self._starts) or self._starts[i] != addr:
            raise ArgumentError(f"no host region starts at 0x{addr:x}")
        del self._starts[i]
        del self._arrays[i]

    def _insert(self, addr: int, arr: Any) -> None:
        i = bisect.bisect_left(self._starts, addr)
        self._starts.insert(i, addr)
        self._arrays.insert(i, arr)

    @staticmethod
    def _len(r: Any) -> int:
        return int(r[2]) if isinstance(r, tuple) else int(r.shape[0])

    def view(self, addr: int, length: int) -> np.ndarray:
        """A writable zero-copy view of [addr, addr+length) inside one dense region; a
        read-only copy across adjacent regions or of sparse memory; DmaFault if unmapped."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i < 0 or length < 0:
            raise DmaFault(addr, length)
        arr = self._arrays[i]
        off = addr - self._starts[i]
        if not isinstance(arr, tuple) and off + length <= arr.shape[0]:
            return arr[off : off + length]
        out = self._gather(addr, length)
        out.flags.writeable = False
        return out

    def _pieces(self, addr: int, length: int) -> list[tuple[Any, int, int, int]]:
        """(region, offset in it, bytes, position in the span) covering the span, or DmaFault."""
        out: list[tuple[Any, int, int, int]] = []
        pos = 0
        i = bisect.bisect_right(self._starts, addr) - 1
        while pos < length or (length == 0 and not out):
            a = addr + pos
            if i < 0 or i >= len(self._starts) or self._starts[i] > a:
                raise DmaFault(addr, length)
            r = self._arrays[i]
            off = a - self._starts[i]
            n = min(self._len(r) - off, length - pos)
            if off > self._len(r) or (n <= 0 and length):
                raise DmaFault(addr, length)
            out.append((r, off, n, pos))
            pos += n
            i += 1
            if length == 0:
                break
        return out

    def _gather(self, addr: int, length: int) -> np.ndarray:
        if length > MATERIALISE_LIMIT:
            self._pieces(addr, length)  # DmaFault first, if unmapped
            raise ArgumentError(
                f"a {length}-byte access exceeds the model's {MATERIALISE_LIMIT}-byte limit"
            )
        out = np.zeros(length, dtype=np.uint8)
        for r, off, n, pos in self._pieces(addr, length):
            if isinstance(r, tuple):
                out[pos : pos + n] = r[0].read(r[1] + off, n)
            else:
                out[pos : pos + n] = r[off : off + n]
        return out

    def read(self, addr: int, length: int) -> bytes:
        return self.view(addr, length).tobytes()

    def write(self, addr: int, data: bytes | bytearray | memoryview | np.ndarray) -> None:
        buf = (
            np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) else data
        )
        n = len(buf)
        if self._own_view:
            i = bisect.bisect_right(self._starts, addr) - 1
            if i >= 0:
                r = self._arrays[i]
                off = addr - self._starts[i]
                if not isinstance(r, tuple) and off + n <= r.shape[0]:
                    r[off : off + n] = buf  # the fast path: inside one dense region
                    return
            for r, off, k, pos in self._pieces(addr, n):
                if isinstance(r, tuple):
                    r[0].write(r[1] + off, buf[pos : pos + k])
                else:
                    r[off : off + k] = buf[pos : pos + k]
            return
        self.view(addr, n)[:] = buf  # a subclass with its own view (emu GuestMemory)

    @property
    def _own_view(self) -> bool:
        return type(self).view is HostMemory.view

    def mapped(self, addr: int, length: int) -> bool:
        try:
            if self._own_view:
                self._pieces(addr, length)
            else:
                self.view(addr, length)
        except DmaFault:
            return False
        return True

    def regions(self) -> list[tuple[int, int]]:
        return [(s, self._len(a)) for s, a in zip(self._starts, self._arrays, strict=True)]


class DevMemory:
    """Sparse device memory: 4 KiB pages created on first write; unwritten bytes read 0."""

    LIMIT = 1 << 64

    def __init__(self) -> None:
        self._pages: dict[int, bytearray] = {}

    def _check(self, addr: int, length: int) -> None:
        if (
            not (isinstance(addr, int) and isinstance(length, int))
            or addr < 0
            or length < 0
            or addr + length > self.LIMIT
        ):
            raise DmaFault(addr, length)

    def read(self, addr: int, length: int) -> bytes:
        self._check(addr, length)
        out = bytearray(length)
        pos = 0
        while pos < length:
            a = addr + pos
            page, off = divmod(a, PAGE)
            n = min(PAGE - off, length - pos)
            p = self._pages.get(page)
            if p is not None:
                out[pos : pos + n] = p[off : off + n]
            pos += n
        return bytes(out)

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        self._check(addr, len(data))
        pos = 0
        while pos < len(data):
            a = addr + pos
            page, off = divmod(a, PAGE)
            n = min(PAGE - off, len(data) - pos)
            p = self._pages.get(page)
            if p is None:
                p = self._pages[page] = bytearray(PAGE)
            p[off : off + n] = data[pos : pos + n]
            pos += n

    def read_u(self, addr: int, nbytes: int) -> int:
        """The little-endian value at ``addr`` (a word inside one page, the doorbell and
        semaphore case, is read in place: what :meth:`read` gives, without its copies)."""
        if type(addr) is int and type(nbytes) is int and 0 <= addr and nbytes >= 0:
            off = addr % PAGE
            if off + nbytes <= PAGE and addr + nbytes <= self.LIMIT:
                p = self._pages.get(addr // PAGE)
                return 0 if p is None else int.from_bytes(p[off : off + nbytes], "little")
        return int.from_bytes(self.read(addr, nbytes), "little")

    def write_u(self, addr: int, nbytes: int, value: int) -> None:
        self.write(addr, (value & ((1 << (8 * nbytes)) - 1)).to_bytes(nbytes, "little"))

    def pages_used(self) -> int:
        return len(self._pages)
