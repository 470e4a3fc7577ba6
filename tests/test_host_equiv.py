"""The fast host and the reference host agree: byte-identical FIFOs, identical register
writes, identical ioctl results, identical completions -- on arbitrary inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import event, given
from hypothesis import strategies as st

from qaicmodel import arith
from qaicmodel.errors import ArgumentError, IoctlError
from qaicmodel.impl.host import ImplHost
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.dbc.wire import RSP_DTYPE
from qaicmodel.spec.host import irqproto, uapi
from qaicmodel.spec.host.core import activate_channel
from qaicmodel.spec.host.reference import SpecHost

PAGE = 4096


class Both:
    """The same calls on a SpecHost world and an ImplHost world."""

    def __init__(self, seg: int | None, nelem: int) -> None:
        self.w = []
        for cls in (SpecHost, ImplHost):
            dev = Device()
            log: list[tuple[Any, ...]] = []
            dev.observers.append(log.append)
            h = cls(dev, sg_max_segment=seg)
            u = h.open()
            activate_channel(h, 0, u, nelem)
            self.w.append((dev, h, log))

    def call(self, name: str, *args: Any) -> Any:
        out = []
        for _dev, h, _log in self.w:
            try:
                r = getattr(h, name)(*args)
                out.append(("ok", r.tobytes() if isinstance(r, np.ndarray) else r))
            except (IoctlError, ArgumentError) as e:
                out.append((type(e).__name__, getattr(e, "name", None)))
        assert out[0] == out[1], (name, args, out)
        return out[0]

    def same_state(self) -> None:
        (d1, h1, l1), (d2, h2, l2) = self.w
        c1, c2 = d1.ch[0], d2.ch[0]
        assert d1.host_mem.read(c1.req_q, c1.nelem * 64) == d2.host_mem.read(
            c2.req_q, c2.nelem * 64
        )
        assert (c1.req_tp, c1.rsp_hp) == (c2.req_tp, c2.rsp_hp)
        assert l1 == l2  # register writes (and every other device event)
        assert sorted(h1.completions) == sorted(h2.completions)


sems = st.builds(
    uapi.Sem,
    val=st.integers(0, 0xFFF),
    index=st.integers(0, 31),
    presync=st.integers(0, 1),
    cmd=st.integers(0, 6),
    flags=st.integers(0, 3),
)
entry = st.builds(
    uapi.SliceEntry,
    size=st.integers(0, 6 * PAGE),
    sem0=sems,
    sem1=sems,
    sem2=sems,
    sem3=sems,
    dev_addr=st.integers(0, (1 << 64) - 1),
    db_addr=st.integers(0, 1 << 20),
    db_data=st.integers(0, (1 << 32) - 1),
    db_len=st.sampled_from([0, 8, 16, 32]),
    offset=st.integers(0, 6 * PAGE),
)


@given(
    size=st.integers(1, 6 * PAGE),
    seg=st.sampled_from([None, PAGE, 2 * PAGE, 3 * PAGE]),
    nelem=st.integers(2, 12),
    dir=st.sampled_from([1, 2]),
    resizes=st.lists(st.integers(0, 7 * PAGE), max_size=3),
    data=st.data(),
)
def test_attach_execute_partial_identical(
    size: int, seg: int | None, nelem: int, dir: int, resizes: list[int], data: st.DataObject
) -> None:
    aligned = -(-size // PAGE) * PAGE
    inside = st.integers(0, aligned - 1).flatmap(
        lambda off: st.builds(
            uapi.SliceEntry,
            offset=st.just(off),
            size=st.integers(0, aligned - off),
            sem0=sems,
            sem1=sems,
            sem2=sems,
            sem3=sems,
            dev_addr=st.integers(0, (1 << 64) - 1),
            db_addr=st.integers(0, 1 << 20),
            db_data=st.integers(0, (1 << 32) - 1),
            db_len=st.sampled_from([0, 8, 16, 32]),
        )
    )
    ents = data.draw(st.lists(st.one_of(inside, inside, inside, entry), min_size=1, max_size=3))
    b = Both(seg, nelem)
    h = b.call("create_bo", 0, size)[1]
    hdr = uapi.AttachSliceHdr(count=len(ents), dbc_id=0, handle=h, dir=dir)
    res = b.call("attach_slice", 0, hdr, ents)
    event(f"attach {res[1] or res[0]}")
    b.call("perf_stats", 0, 0, [h])
    if res[0] != "ok":
        return
    b.call("execute", 0, 0, [(h, dir)])
    b.same_state()
    for r in resizes:
        # let the device drain between calls, identically in both worlds
        for dev, host, _log in b.w:
            from qaicmodel.spec.scheduler import FirstScheduler, run

            run([dev, host], FirstScheduler(), 5000)
        b.call("partial_execute", 0, 0, [(h, dir, r)])
        b.same_state()
    b.call("perf_stats", 0, 0, [h])


@given(
    size=st.integers(1, 64).map(lambda p: p * PAGE),
    seg=st.sampled_from([None, PAGE, 2 * PAGE, 5 * PAGE]),
    offset=st.integers(0, 70 * PAGE),
    length=st.integers(0, 70 * PAGE),
)
def test_span_closed_form_matches_walk(
    size: int, seg: int | None, offset: int, length: int
) -> None:
    """arith.slice_span (fast host) == the segment walk of clone_range_of_sgt_for_slice."""
    b = Both(seg, 4)
    h = b.call("create_bo", 0, size)[1]
    spec, impl = b.w[0][1], b.w[1][1]
    s = spec._span(spec.users[0].bos[h], offset, length)
    i = impl._span(impl.users[0].bos[h], offset, length)
    if s is None:
        assert i is None
        return
    assert i is not None and not isinstance(i, list)
    assert s == list(zip(i.addr.tolist(), i.length.tolist(), strict=True))
    assert sum(n for _, n in s) == (length or PAGE)


@given(
    lens=st.integers(1, 8),
    seg=st.sampled_from([PAGE, 2 * PAGE]),
    first_off=st.integers(0, PAGE - 1),
    data=st.data(),
)
def test_partial_split_closed_form_matches_loop(
    lens: int, seg: int, first_off: int, data: st.DataObject
) -> None:
    """arith.partial_split == copy_partial_exec_reqs's loop for slice-shaped lengths."""
    last = data.draw(st.integers(1, seg))
    elems = [seg - first_off] + [seg] * (lens - 1) if lens > 1 else [last]
    if lens > 1:
        elems[-1] = last
    total = sum(elems)
    rel = data.draw(st.integers(0, total - 1))
    # the driver's loop
    lb, fn = rel, 0
    while fn < len(elems) and lb > elems[fn]:
        lb -= elems[fn]
        fn += 1
    assert tuple(int(x) for x in arith.partial_split(rel, elems[0], seg)) == (fn, lb)


@given(
    nslices=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    rids=st.lists(st.integers(0, 6), max_size=12),
    budget=st.integers(1, 8),
    head=st.integers(0, 15),
)
def test_drain_batch_matches_one_by_one(
    nslices: list[int], rids: list[int], budget: int, head: int
) -> None:
    """The fast drain (batch, per-req_id counts, O(1) index) credits BOs exactly like the
    driver's per-response list walk, including unknown ids and shared req_ids."""
    nelem = 16
    results = []
    for cls in (SpecHost, ImplHost):
        dev = Device()
        h = cls(dev, num_events=budget)
        u = h.open()
        activate_channel(h, 0, u, nelem)
        ch = h.ch[0]
        for k, n in enumerate(nslices):
            bo = h.users[u].bos[h.create_bo(u, PAGE)]
            bo.sliced, bo.nr_slice = True, n
            bo.req_id = k % 3  # collisions on purpose
            h._xfer_add(ch, bo)
        ring = dev.host_mem.view(ch.rsp_q, nelem * 4).view(RSP_DTYPE)
        tail = head
        for r in rids[: nelem - 1]:
            ring[tail] = (r, 0)
            tail = (tail + 1) % nelem
        ch.irq = ch.irq.with_(head=head, tail=tail, budget=budget, pc=int(irqproto.PC.DRAIN))
        h._drain(ch)
        results.append(
            (
                sorted(h.completions),
                ch.irq.head,
                ch.irq.budget,
                [(b.key, b.nr_slice_xfer_done) for b in ch.xfer.values()],
            )
        )
    assert results[0] == results[1]


def test_numpy_layout_is_the_wire_layout() -> None:
    """The fast host's structured array bytes are RequestElem.pack() bytes."""
    b = Both(PAGE, 8)
    h = b.call("create_bo", 0, 3 * PAGE)[1]
    ents = [
        uapi.SliceEntry(
            size=3 * PAGE,
            dev_addr=0x1234_5678_9ABC,
            db_len=32,
            db_addr=8,
            db_data=7,
            sem2=uapi.Sem(val=3, index=5, cmd=2, flags=1),
        )
    ]
    b.call("attach_slice", 0, uapi.AttachSliceHdr(count=1, dbc_id=0, handle=h, dir=1), ents)
    spec, impl = b.w[0][1], b.w[1][1]
    s_elems = spec.users[0].bos[h].slices[0].enc
    i_arr = impl.users[0].bos[h].slices[0].enc.arr
    assert b"".join(e.pack() for e in s_elems) == i_arr.tobytes()
