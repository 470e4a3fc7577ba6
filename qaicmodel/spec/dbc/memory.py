"""Host memory (as the device sees it over PCIe) and device memory (DDR, L2TCM windows).

aic100.rst "DMA Bridge": the FIFOs are backed by host memory; "DDR": the host
has no direct access to device DDR.  Both are sparse: host memory is a set of
mapped regions (DMA-coherent buffers and BO segments) handed out by a
deterministic allocator; device memory is a dict of 4 KiB pages over the
64-bit device address space.
"""

from __future__ import annotations

import bisect

import numpy as np

from qaicmodel.errors import ArgumentError

__all__ = ["HostMemory", "DevMemory", "DmaFault", "PAGE"]

PAGE = 4096


class DmaFault(Exception):
    """Internal signal: an access touched unmapped memory.  Never escapes the model."""

    def __init__(self, addr: int, length: int) -> None:
        super().__init__(f"unmapped access at 0x{addr:x}+{length}")
        self.addr = addr
        self.length = length


class HostMemory:
    """Mapped host regions, each a numpy ``uint8`` array, by bus address.

    ``alloc`` is a bump allocator starting at ``base`` that leaves one unmapped
    guard page between regions, so running off a region is a fault.
    """

    def __init__(self, base: int = 0x1_0000_0000) -> None:
        self._starts: list[int] = []
        self._arrays: list[np.ndarray] = []
        self._next = base

    def alloc(self, size: int, align: int = PAGE) -> int:
        if not isinstance(size, int) or size <= 0:
            raise ArgumentError(f"host allocation size must be a positive int, got {size!r}")
        addr = (self._next + align - 1) // align * align
        self._insert(addr, np.zeros(size, dtype=np.uint8))
        self._next = addr + (size + PAGE - 1) // PAGE * PAGE + PAGE
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
        addr = (self._next + align - 1) // align * align
        self._insert(addr, arr)
        self._next = addr + (arr.shape[0] + PAGE - 1) // PAGE * PAGE + PAGE
        return addr

    def free(self, addr: int) -> None:
        i = bisect.bisect_left(self._starts, addr)
        if i == len(self._starts) or self._starts[i] != addr:
            raise ArgumentError(f"no host region starts at 0x{addr:x}")
        del self._starts[i]
        del self._arrays[i]

    def _insert(self, addr: int, arr: np.ndarray) -> None:
        i = bisect.bisect_left(self._starts, addr)
        self._starts.insert(i, addr)
        self._arrays.insert(i, arr)

    def view(self, addr: int, length: int) -> np.ndarray:
        """A writable zero-copy view of [addr, addr+length); DmaFault if not inside one region."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i < 0 or length < 0:
            raise DmaFault(addr, length)
        start = self._starts[i]
        arr = self._arrays[i]
        off = addr - start
        if off + length > arr.shape[0]:
            raise DmaFault(addr, length)
        return arr[off : off + length]

    def read(self, addr: int, length: int) -> bytes:
        return self.view(addr, length).tobytes()

    def write(self, addr: int, data: bytes | bytearray | memoryview | np.ndarray) -> None:
        buf = (
            np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) else data
        )
        self.view(addr, len(buf))[:] = buf

    def mapped(self, addr: int, length: int) -> bool:
        try:
            self.view(addr, length)
        except DmaFault:
            return False
        return True

    def regions(self) -> list[tuple[int, int]]:
        return [(s, a.shape[0]) for s, a in zip(self._starts, self._arrays, strict=True)]


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
        return int.from_bytes(self.read(addr, nbytes), "little")

    def write_u(self, addr: int, nbytes: int, value: int) -> None:
        self.write(addr, (value & ((1 << (8 * nbytes)) - 1)).to_bytes(nbytes, "little"))

    def pages_used(self) -> int:
        return len(self._pages)
