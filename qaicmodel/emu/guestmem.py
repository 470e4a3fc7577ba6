"""The guest's memory as the device sees it: the vhost-user memory table, mapped.

UML hands its physical-memory file over the socket (``arch/um/drivers/virtio_uml.c``
``vhost_user_set_mem_table`` / ``vhost_user_init_mem_region``, 6.12 and 7.2): one
region whose ``guest_addr`` and ``user_addr`` are both the physical offset of the
first page after the kernel image (seen: 0x317c8000 with ``mem=256M``), with
``mmap_offset`` the same offset into the file.  Kernel text and static data lie
below it and are not DMA targets.

Two address spaces, as the vhost-user specification has them:

* vring addresses (``SET_VRING_ADDR``) are *frontend user* addresses -> :meth:`user_view`;
* descriptor buffers and device DMA are *guest-physical* addresses -> :meth:`view`.

:class:`GuestMemory` is a :class:`HostMemory` (the model's host memory interface:
``view``/``read``/``write``/``mapped``/``regions``), so the DMA Bridge
``Device(host_mem=GuestMemory)`` moves bytes straight into the guest.  An address
outside every region raises the model's ``DmaFault``.
"""

from __future__ import annotations

import bisect
import mmap
import os

import attrs
import numpy as np

from qaicmodel.errors import ArgumentError, NotModelledError, TransportError

try:
    from qaicmodel.emu._model import DmaFault, HostMemory
except ImportError:  # until the restructuring lands emu/_model.py
    from qaicmodel.spec.dbc.memory import DmaFault, HostMemory

__all__ = ["GuestMemory", "Region", "DmaFault"]


@attrs.define
class Region:
    """One memory-table entry and its mapping (``array`` is the region's bytes)."""

    guest_addr: int
    size: int
    user_addr: int
    mmap_offset: int
    array: np.ndarray = attrs.field(repr=False)
    _mm: mmap.mmap | None = attrs.field(default=None, repr=False)

    @property
    def guest_end(self) -> int:
        return self.guest_addr + self.size

    @property
    def user_end(self) -> int:
        return self.user_addr + self.size


def _overlap(a0: int, a1: int, b0: int, b1: int) -> bool:
    return a0 < b1 and b0 < a1


class GuestMemory(HostMemory):
    """Guest memory regions by guest-physical and by frontend user address."""

    def __init__(self) -> None:
        super().__init__()
        self._regions: list[Region] = []  # sorted by guest_addr
        self._gstarts: list[int] = []
        self._ustarts: list[int] = []
        self._by_user: list[Region] = []

    # -- building ---------------------------------------------------------------

    def add_fd_region(
        self, fd: int, guest_addr: int, size: int, user_addr: int, mmap_offset: int
    ) -> Region:
        """mmap ``size`` bytes of ``fd`` from ``mmap_offset`` (shared, read/write)."""
        if size <= 0:
            raise TransportError(
                f"memory region at guest {guest_addr:#x} has size {size}", where="SET_MEM_TABLE"
            )
        gran = mmap.ALLOCATIONGRANULARITY
        base = mmap_offset - mmap_offset % gran
        skip = mmap_offset - base
        try:
            mm = mmap.mmap(
                fd, size + skip, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=base
            )
        except (OSError, ValueError, OverflowError) as e:
            raise TransportError(
                f"cannot map the guest memory file (guest {guest_addr:#x} "
                f"size {size:#x} offset {mmap_offset:#x}): {e}",
                where="SET_MEM_TABLE",
            ) from None
        arr = np.frombuffer(mm, dtype=np.uint8, count=size, offset=skip)
        return self._add(Region(guest_addr, size, user_addr, mmap_offset, arr, mm))

    def add_array_region(
        self, guest_addr: int, array: np.ndarray, user_addr: int | None = None
    ) -> Region:
        """A region backed by a numpy ``uint8`` array (tests; fake guests)."""
        if (
            not isinstance(array, np.ndarray)
            or array.dtype != np.uint8
            or array.ndim != 1
            or array.shape[0] == 0
        ):
            raise ArgumentError("add_array_region wants a non-empty 1-D uint8 array")
        ua = guest_addr if user_addr is None else user_addr
        return self._add(Region(guest_addr, int(array.shape[0]), ua, 0, array))

    def _add(self, r: Region) -> Region:
        for o in self._regions:
            if _overlap(r.guest_addr, r.guest_end, o.guest_addr, o.guest_end):
                raise TransportError(
                    f"region guest {r.guest_addr:#x}+{r.size:#x} overlaps "
                    f"guest {o.guest_addr:#x}+{o.size:#x}",
                    where="SET_MEM_TABLE",
                )
            if _overlap(r.user_addr, r.user_end, o.user_addr, o.user_end):
                raise TransportError(
                    f"region user {r.user_addr:#x}+{r.size:#x} overlaps "
                    f"user {o.user_addr:#x}+{o.size:#x}",
                    where="SET_MEM_TABLE",
                )
        i = bisect.bisect_left(self._gstarts, r.guest_addr)
        self._gstarts.insert(i, r.guest_addr)
        self._regions.insert(i, r)
        j = bisect.bisect_left(self._ustarts, r.user_addr)
        self._ustarts.insert(j, r.user_addr)
        self._by_user.insert(j, r)
        return r

    def close(self) -> int:
        """Drop every region (a new memory table replaces the old one); returns how
        many mappings stay alive because someone still holds a view into them (they
        go with the last view)."""
        regions, self._regions, self._by_user = self._regions, [], []
        self._gstarts, self._ustarts = [], []
        held = 0
        for r in regions:
            r.array = np.zeros(0, dtype=np.uint8)
            if r._mm is not None:
                try:
                    r._mm.close()
                except BufferError:
                    held += 1  # a view is still held (e.g. by a board): freed with it
                r._mm = None
        return held

    # -- the HostMemory interface (guest-physical addresses) --------------------

    def view(self, addr: int, length: int) -> np.ndarray:
        """Writable zero-copy view of guest-physical [addr, addr+length)."""
        i = bisect.bisect_right(self._gstarts, addr) - 1
        if i < 0 or length < 0 or addr < 0:
            raise DmaFault(addr, length)
        r = self._regions[i]
        off = addr - r.guest_addr
        if off + length > r.size:
            raise DmaFault(addr, length)
        return r.array[off : off + length]

    # read, write and mapped are HostMemory's, over this view

    def regions(self) -> list[tuple[int, int]]:
        return [(r.guest_addr, r.size) for r in self._regions]

    # the guest allocates its own memory: the device never does
    def alloc(self, size: int, align: int = 4096) -> int:
        raise NotModelledError("guest memory is allocated by the guest kernel, not the device")

    def map_array(self, arr: np.ndarray, align: int = 4096) -> int:
        raise NotModelledError("guest memory is allocated by the guest kernel, not the device")

    def free(self, addr: int) -> None:
        raise NotModelledError("guest memory is freed by the guest kernel, not the device")

    # -- frontend user addresses (vrings) ---------------------------------------

    def user_view(self, addr: int, length: int) -> np.ndarray:
        """Writable view of frontend *user* address [addr, addr+length)."""
        i = bisect.bisect_right(self._ustarts, addr) - 1
        if i < 0 or length < 0 or addr < 0:
            raise DmaFault(addr, length)
        r = self._by_user[i]
        off = addr - r.user_addr
        if off + length > r.size:
            raise DmaFault(addr, length)
        return r.array[off : off + length]

    def user_mapped(self, addr: int, length: int) -> bool:
        try:
            self.user_view(addr, length)
        except DmaFault:
            return False
        return True

    def table(self) -> list[Region]:
        return list(self._regions)

    def __len__(self) -> int:
        return len(self._regions)


def close_fds(fds: list[int]) -> None:
    """Close file descriptors received over the socket that nobody keeps."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
