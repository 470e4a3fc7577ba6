"""FIFO index arithmetic (qaicmodel.arith) against a brute-force ring.

Sources: aic100.rst "DMA Bridge" (registers are indexes); qaic_data.c
``fifo_space_avail`` / ``copy_exec_reqs``; qaic_control.c ``encode_activate``.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qaicmodel import arith


class BruteRing:
    """A ring of n slots as a list; the producer keeps one slot free (head == tail is empty)."""

    def __init__(self, n: int, head: int, count: int) -> None:
        self.n, self.head, self.items = n, head, list(range(count))

    @property
    def tail(self) -> int:
        return (self.head + len(self.items)) % self.n

    def free(self) -> int:
        return self.n - 1 - len(self.items)


rings = st.integers(2, 64).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(0, n - 1), st.integers(0, n - 1))
)


@given(rings)
def test_fifo_space_and_occupancy_match_brute_force(r: tuple[int, int, int]) -> None:
    n, head, count = r
    ring = BruteRing(n, head, count)
    assert arith.ring_occupancy(head, ring.tail, n) == count
    assert arith.fifo_space(head, ring.tail, n) == ring.free()


@given(rings, st.data())
def test_ring_advance_and_wrap_split_cover_exact_slots(
    r: tuple[int, int, int], data: st.DataObject
) -> None:
    n, head, count = r
    ring = BruteRing(n, head, count)
    tail = ring.tail
    k = data.draw(st.integers(0, ring.free()))
    first, second = arith.wrap_split(tail, k, n)
    slots = list(range(tail, tail + first)) + list(range(0, second))
    assert slots == [(tail + i) % n for i in range(k)]
    assert arith.ring_advance(tail, k, n) == (tail + k) % n
    # writing k <= free slots never reaches an unconsumed element
    unconsumed = {(head + i) % n for i in range(count)}
    assert not unconsumed & set(slots)


@given(st.integers(2, 64), st.lists(st.tuples(st.booleans(), st.integers(1, 8)), max_size=40))
def test_producer_consumer_walk(n: int, ops: list[tuple[bool, int]]) -> None:
    """Random produce/consume steps: the index arithmetic tracks a list model exactly."""
    head = tail = 0
    model: list[int] = []
    nxt = 0
    for produce, k in ops:
        if produce:
            k = min(k, arith.fifo_space(head, tail, n))
            model.extend(range(nxt, nxt + k))
            nxt += k
            tail = arith.ring_advance(tail, k, n)
        else:
            k = min(k, arith.ring_occupancy(head, tail, n))
            del model[:k]
            head = arith.ring_advance(head, k, n)
        assert arith.ring_occupancy(head, tail, n) == len(model) <= n - 1


@given(st.integers(1, 1 << 16))
def test_fifo_buffer_layout(n: int) -> None:
    size = arith.dbc_buf_size(n)
    rsp = arith.dbc_rsp_offset(n)
    assert size % 4096 == 0 and size >= 68 * n + 256 > size - 4096
    assert rsp + 4 * n == size  # response FIFO flush with the end
    assert rsp - 64 * n >= 256  # the gap between the FIFOs
    assert arith.activate_queue_size_ok(n)


def test_documented_example() -> None:
    # control-path.md §2.1: nelem 1024 -> 69,888 -> 73,728 bytes
    assert arith.dbc_buf_size(1024) == 73_728
    assert not arith.activate_queue_size_ok(0)
