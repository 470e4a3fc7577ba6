"""Synthetic memory (spec/dbc/memory.py): sparse buffers of any size, merged scatter tables,
and the 7.2 driver's create_sgt chunking."""

from __future__ import annotations

import numpy as np
import pytest

from qaicmodel.errors import ArgumentError
from qaicmodel.spec.dbc.memory import (
    MATERIALISE_LIMIT,
    PAGE,
    DmaFault,
    HostMemory,
    SparseBytes,
    bo_backing,
    create_sgt_entries,
    import_backing,
)

pytestmark = pytest.mark.unit

TOP = (1 << 64) - PAGE  # the largest size PAGE_ALIGN does not wrap to 0


def test_sparse_bytes_of_any_size_allocate_only_written_pages() -> None:
    sb = SparseBytes(TOP)
    assert sb.shape == (TOP,) and sb.pages_used() == 0
    sb[TOP - 3 : TOP] = b"end"
    sb[PAGE - 1 : PAGE + 1] = b"ab"  # straddles two pages
    assert sb[TOP - 3 : TOP].tobytes() == b"end" and sb[PAGE - 1 : PAGE + 1].tobytes() == b"ab"
    assert sb[12345] == 0 and sb.pages_used() == 3
    with pytest.raises(ArgumentError):
        sb[0 : MATERIALISE_LIMIT + 1]
    with pytest.raises(ArgumentError):
        SparseBytes(1 << 64)


def test_sparse_window_through_host_memory() -> None:
    m = HostMemory()
    sb = SparseBytes(TOP)
    addr = m.map_sparse(sb, 1 << 50, 1 << 30)
    m.write(addr + (1 << 29), b"mid")
    assert sb[(1 << 50) + (1 << 29) : (1 << 50) + (1 << 29) + 3].tobytes() == b"mid"
    assert m.read(addr + (1 << 29) - 1, 5) == b"\0mid\0"
    v = m.view(addr, 16)
    assert not v.flags.writeable  # a copy: writes go through write()
    assert m.mapped(addr, 1 << 30) and not m.mapped(addr, (1 << 30) + 1)
    with pytest.raises(DmaFault):
        m.read(addr + (1 << 30), 1)


def test_bus_space_is_finite() -> None:
    m = HostMemory()
    with pytest.raises(ArgumentError):
        m.map_sparse(SparseBytes(TOP), 0, TOP)  # past 2**64 from the 4 GiB base


def test_iommu_merges_entries_into_fewer_segments() -> None:
    m = HostMemory()
    arr = np.zeros(5 * PAGE, np.uint8)
    t = m.map_scatter(arr, [PAGE, 2 * PAGE, 2 * PAGE])
    assert (t.orig_nents, t.nents) == (3, 1) and t.segments[0][1] == 5 * PAGE
    ((base, _n),) = t.segments
    m.write(base + PAGE - 2, b"wxyz")  # across the first two entries
    assert arr[PAGE - 2 : PAGE + 2].tobytes() == b"wxyz"
    assert m.read(base + PAGE - 2, 4) == b"wxyz" and m.mapped(base, 5 * PAGE)
    capped = m.map_scatter(arr, [PAGE, 2 * PAGE, 2 * PAGE], max_segment=3 * PAGE)
    assert [n for _a, n in capped.segments] == [3 * PAGE, 2 * PAGE]
    plain = m.map_scatter(arr, [PAGE, 2 * PAGE, 2 * PAGE], merge=False)
    assert plain.nents == plain.orig_nents == 3
    a0, a1 = plain.segments[0][0], plain.segments[1][0]
    assert a1 > a0 + PAGE and not m.mapped(a0, 2 * PAGE)  # a guard page between


def test_scatter_of_a_non_page_multiple_import() -> None:
    m = HostMemory()
    sb = SparseBytes(3 * PAGE + 10)
    t = m.map_scatter(sb, [PAGE, 2 * PAGE + 10])
    assert t.nents == 1 and t.segments[0][1] == 3 * PAGE + 10
    with pytest.raises(ArgumentError):
        m.map_scatter(sb, [PAGE + 1, PAGE])  # only the last entry may end off a page


def test_create_sgt_entries_follow_the_driver() -> None:
    assert create_sgt_entries(PAGE) == (PAGE,)
    chunks = create_sgt_entries((4 << 20) * 3 + 5 * PAGE)
    assert chunks == (4 << 20, 4 << 20, 4 << 20, 5 * PAGE)
    # int nr_pages wraps: 2**31 pages is negative, 2**32 is 0 (-ENOMEM) ...
    assert create_sgt_entries(1 << 43) is None and create_sgt_entries(1 << 44) is None
    # ... and 2**32 + 1 pages is one page of backing for a 16 TiB BO
    assert create_sgt_entries((1 << 44) + PAGE) == (PAGE,)
    assert sum(create_sgt_entries((1 << 43) - PAGE) or ()) == (1 << 43) - PAGE


def test_bo_backing_dense_sparse_and_wrapped() -> None:
    m = HostMemory()
    arr, segs = bo_backing(m, 3 * PAGE, max_segment=PAGE) or (None, [])
    assert isinstance(arr, np.ndarray) and [n for _a, n in segs] == [PAGE] * 3
    got = bo_backing(m, 1 << 40)
    assert got is not None
    sparse, segs = got
    assert isinstance(sparse, SparseBytes) and sum(n for _a, n in segs) == 1 << 40
    assert all(n <= 0xFFFFFFFF for _a, n in segs) and sparse.pages_used() == 0
    m.write(segs[-1][0] + segs[-1][1] - 1, b"z")  # the BO's last byte, through DMA
    assert sparse[(1 << 40) - 1] == ord("z")
    assert bo_backing(m, 1 << 43) is None  # nr_pages wraps negative: -ENOMEM
    wrapped = bo_backing(m, (1 << 44) + PAGE)
    assert wrapped is not None and [n for _a, n in wrapped[1]] == [PAGE]  # one page backs it


def test_import_backing_of_odd_sizes() -> None:
    m = HostMemory()
    buf, t = import_backing(m, 3 * PAGE + 5)
    assert t.entries == (PAGE, PAGE, PAGE, 5) and t.nents == 1 and t.segments[0][1] == 3 * PAGE + 5
    _b, plain = import_backing(m, 3 * PAGE + 5, merge=False)
    assert plain.nents == 4 and plain.segments[-1][1] == 5
    with pytest.raises(ArgumentError):
        import_backing(m, 0)
    with pytest.raises(ArgumentError):
        import_backing(m, 10, [4, 4])  # entries must cover the size
