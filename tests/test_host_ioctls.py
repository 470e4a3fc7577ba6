"""Every data-path ioctl's validation order and errno, for both hosts (qaic_data.c, current
upstream; control-path.md §3), and the request elements they produce."""

from __future__ import annotations

import pytest

from qaicmodel.errors import ArgumentError, IoctlError
from qaicmodel.impl.host import ImplHost
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.dbc.wire import RequestElem
from qaicmodel.spec.host import core, uapi
from qaicmodel.spec.host.protocol import HostAction
from qaicmodel.spec.host.reference import SpecHost
from qaicmodel.spec.policies import Policies
from qaicmodel.spec.scheduler import FirstScheduler, run

HOSTS = [SpecHost, ImplHost]
PAGE = 4096


class World:
    def __init__(
        self,
        cls: type,
        *,
        nelem: int = 16,
        seg: int | None = None,
        policies: Policies | None = None,
        **kw: object,
    ) -> None:
        self.dev = Device(policies=policies)
        self.host = cls(self.dev, sg_max_segment=seg, **kw)
        self.u = self.host.open()
        core.activate_channel(self.host, 0, self.u, nelem)

    def bo(
        self, size: int, dir: int = 1, entries: list[uapi.SliceEntry] | None = None, dbc: int = 0
    ) -> int:
        h = self.host.create_bo(self.u, size)
        ents = entries if entries is not None else [uapi.SliceEntry(size=size, dev_addr=0x10000)]
        self.host.attach_slice(
            self.u, uapi.AttachSliceHdr(count=len(ents), dbc_id=dbc, handle=h, dir=dir), ents
        )
        return h

    def run(self, n: int = 10_000) -> int:
        return run([self.dev, self.host], FirstScheduler(), n)

    def ring(self, dbc: int = 0) -> list[RequestElem]:
        ch = self.dev.ch[dbc]
        return [
            RequestElem.unpack(self.dev.host_mem.read(ch.req_q + 64 * i, 64))
            for i in range(ch.nelem)
        ]


def errno_of(fn: object, *a: object, **kw: object) -> str:
    try:
        fn(*a, **kw)  # type: ignore[operator]
    except IoctlError as e:
        return e.name
    return "ok"


@pytest.fixture(params=HOSTS, ids=lambda c: c.__name__)
def cls(request: pytest.FixtureRequest) -> type:
    return request.param


# -- CREATE_BO / MMAP_BO --------------------------------------------------------


def test_create_bo_checks(cls: type) -> None:
    w = World(cls)
    h = w.host
    assert errno_of(h.create_bo, w.u, 4096, 1) == "EINVAL"  # pad
    assert errno_of(h.create_bo, w.u, 0) == "EINVAL"  # PAGE_ALIGN(0) == 0
    assert errno_of(h.create_bo, w.u, (1 << 64) - 1) == "EINVAL"  # PAGE_ALIGN wraps to 0
    assert errno_of(h.create_bo, w.u, (1 << 64) - 4096) == "ENOMEM"  # model limit
    h.online = False
    assert errno_of(h.create_bo, w.u, 4096, 1) == "EINVAL"  # pad before ENODEV
    assert errno_of(h.create_bo, w.u, 4096) == "ENODEV"
    h.online = True
    a, b = h.create_bo(w.u, 1), h.create_bo(w.u, 4097)
    assert (a, b) == (1, 2)
    assert [n for _, n in h.bo_segments(w.u, a)] == [4096]
    assert [n for _, n in h.bo_segments(w.u, b)] == [8192]
    other = h.open()
    assert h.create_bo(other, 4096) == 1  # GEM handles are per file
    with pytest.raises(ArgumentError):
        h.create_bo(w.u, -1)
    with pytest.raises(ArgumentError):
        h.create_bo(99, 4096)


def test_segments_follow_sg_max_segment(cls: type) -> None:
    w = World(cls, seg=8192)
    h = w.host.create_bo(w.u, 5 * PAGE)
    segs = w.host.bo_segments(w.u, h)
    assert [n for _, n in segs] == [8192, 8192, 4096]
    # distinct, non-adjacent bus addresses (a guard page between mappings)
    assert all(b[0] > a[0] + a[1] for a, b in zip(segs, segs[1:], strict=False))
    view = w.host.mmap_bo(w.u, h)
    view[8192:8195] = [1, 2, 3]  # the mmap view and the DMA segments are the same bytes
    assert w.dev.host_mem.read(segs[1][0], 3) == bytes([1, 2, 3])
    with pytest.raises(ArgumentError):
        cls(w.dev, sg_max_segment=1000)


def test_mmap_bo_checks(cls: type) -> None:
    w = World(cls)
    assert errno_of(w.host.mmap_bo, w.u, 7) == "ENOENT"
    w.host.online = False
    assert errno_of(w.host.mmap_bo, w.u, 7) == "ENODEV"


# -- ATTACH_SLICE_BO ------------------------------------------------------------


def attach(
    w: World,
    handle: int,
    entries: list[uapi.SliceEntry] | None,
    *,
    count: int | None = None,
    dbc: int = 0,
    dir: int = 1,
    size: int = 0,
    user: int | None = None,
) -> str:
    hdr = uapi.AttachSliceHdr(
        count=len(entries or []) if count is None else count,
        dbc_id=dbc,
        handle=handle,
        dir=dir,
        size=size,
    )
    return errno_of(w.host.attach_slice, w.u if user is None else user, hdr, entries)


def test_attach_order(cls: type) -> None:
    w = World(cls, nelem=4, seg=PAGE)
    h = w.host.create_bo(w.u, 8 * PAGE)
    ok = [uapi.SliceEntry(size=PAGE)]
    bad = [uapi.SliceEntry(size=PAGE, db_len=12)]
    assert attach(w, h, ok, count=0) == "EINVAL"
    assert attach(w, h, ok, dir=0) == "EINVAL"
    assert attach(w, h, ok, dir=3) == "EINVAL"
    assert attach(w, h, None, count=1) == "EINVAL"  # NULL data
    w.host.online = False
    assert attach(w, h, None, count=1) == "EINVAL"  # before ENODEV
    assert attach(w, h, ok, dbc=99) == "ENODEV"  # ENODEV before the dbc range
    w.host.online = True
    assert attach(w, h, ok, dbc=16) == "EINVAL"
    assert attach(w, 99, ok, count=2) == "EFAULT"  # copy_from_user before the lookup
    assert attach(w, 99, bad) == "ENOENT"  # current kernels: lookup before validate_req
    assert attach(w, h, bad) == "EINVAL"
    assert attach(w, h, [uapi.SliceEntry(size=PAGE, sem1=uapi.Sem(cmd=7))]) == "EINVAL"
    assert attach(w, h, [uapi.SliceEntry(size=PAGE, sem2=uapi.Sem(flags=4))]) == "EINVAL"
    assert attach(w, h, [uapi.SliceEntry(size=PAGE, sem0=uapi.Sem(presync=2))]) == "EINVAL"
    assert attach(w, h, [uapi.SliceEntry(size=PAGE, sem0=uapi.Sem(index=32))]) == "EINVAL"
    assert attach(w, h, [uapi.SliceEntry(size=PAGE, sem0=uapi.Sem(val=0x1000))]) == "EINVAL"
    assert attach(w, h, [uapi.SliceEntry(size=PAGE, sem3=uapi.Sem(pad=1))]) == "EINVAL"
    # CVE-2025-22001: offset + size wraps around u64
    assert attach(w, h, [uapi.SliceEntry(offset=(1 << 64) - PAGE, size=2 * PAGE)]) == "EINVAL"
    assert attach(w, h, [uapi.SliceEntry(offset=PAGE, size=8 * PAGE)]) == "EINVAL"
    # clone_range: a size-0 slice still needs PAGE_SIZE bytes from its offset
    assert attach(w, h, [uapi.SliceEntry(offset=8 * PAGE, size=0)]) == "EINVAL"
    assert attach(w, h, [uapi.SliceEntry(offset=7 * PAGE + 1, size=0)]) == "EINVAL"
    # encode_reqs: misaligned doorbell, two presyncs
    assert attach(w, h, [uapi.SliceEntry(size=PAGE, db_len=32, db_addr=2)]) == "EINVAL"
    assert attach(w, h, [uapi.SliceEntry(size=PAGE, db_len=16, db_addr=3)]) == "EINVAL"
    two = [uapi.SliceEntry(size=PAGE, sem0=uapi.Sem(presync=1), sem2=uapi.Sem(presync=1))]
    assert attach(w, h, two) == "EINVAL"
    # ring size: 5 segments > nelem 4
    assert attach(w, h, [uapi.SliceEntry(size=5 * PAGE)]) == "ENOSPC"
    assert (
        attach(w, h, [uapi.SliceEntry(size=2 * PAGE), uapi.SliceEntry(size=3 * PAGE, offset=PAGE)])
        == "ENOSPC"
    )
    # ownership: another client's dbc -> EINVAL (not EPERM)
    other = w.host.open()
    h2 = w.host.create_bo(other, PAGE)
    assert attach(w, h2, ok, user=other) == "EINVAL"
    w.host.ssr_dbc = 0
    assert attach(w, h, ok) == "EPIPE"
    w.host.ssr_dbc = None
    assert (
        attach(w, h, [uapi.SliceEntry(size=4 * PAGE, offset=4 * PAGE, db_len=32, db_addr=6)])
        == "EINVAL"
    )
    assert (
        attach(w, h, [uapi.SliceEntry(size=4 * PAGE, offset=4 * PAGE, db_len=8, db_addr=3)]) == "ok"
    )  # 8-bit doorbells: any address
    w.host.detach_slice(w.u, h)
    assert attach(w, h, [uapi.SliceEntry(size=4 * PAGE, offset=4 * PAGE)]) == "ok"
    assert attach(w, h, ok) == "EINVAL"  # already sliced
    assert attach(w, h, ok, dbc=1) == "EINVAL"


def test_attach_failed_leaves_bo_unsliced(cls: type) -> None:
    w = World(cls, nelem=4, seg=PAGE)
    h = w.host.create_bo(w.u, 8 * PAGE)
    ents = [uapi.SliceEntry(size=PAGE), uapi.SliceEntry(size=PAGE, db_len=32, db_addr=1)]
    assert attach(w, h, ents) == "EINVAL"
    assert attach(w, h, [uapi.SliceEntry(size=PAGE)]) == "ok"


def test_attach_old_kernel_policy(cls: type) -> None:
    w = World(cls, policies=Policies({"host-attach-hdr-size": "checked"}))
    h = w.host.create_bo(w.u, 2 * PAGE)
    bad = [uapi.SliceEntry(size=PAGE, db_len=12)]
    assert attach(w, h, [uapi.SliceEntry(size=PAGE)], size=0) == "EINVAL"  # hdr.size == 0
    assert attach(w, 99, bad, size=PAGE) == "EINVAL"  # validate before lookup
    assert attach(w, 99, [uapi.SliceEntry(size=PAGE)], size=PAGE) == "ENOENT"
    assert attach(w, h, [uapi.SliceEntry(size=2 * PAGE)], size=PAGE) == "EINVAL"
    assert attach(w, h, [uapi.SliceEntry(size=PAGE)], size=3 * PAGE) == "EINVAL"  # > BO
    assert attach(w, h, [uapi.SliceEntry(size=PAGE)], size=2 * PAGE) == "ok"


def test_encode_reqs(cls: type) -> None:
    """encode_reqs: per-segment elements, presync everywhere, post-transfer on the last,
    automatic fence when split without presync."""
    w = World(cls, seg=PAGE, nelem=16)
    h = w.host.create_bo(w.u, 4 * PAGE)
    segs = w.host.bo_segments(w.u, h)
    pre = uapi.Sem(val=5, index=3, presync=1, cmd=uapi.QAIC_SEM_WAIT_EQUAL)
    ents = [
        uapi.SliceEntry(
            size=PAGE + 100,
            offset=100,
            dev_addr=0x5000,
            db_addr=0x8000,
            db_len=16,
            db_data=0xABCD,
            sem0=uapi.Sem(val=1, cmd=2),
        ),
        uapi.SliceEntry(
            size=2 * PAGE - 100,
            offset=2 * PAGE,
            dev_addr=0x9000,
            sem1=pre,
            sem2=uapi.Sem(index=4, cmd=uapi.QAIC_SEM_INC),
        ),
        uapi.SliceEntry(size=0, offset=0, dev_addr=0x20000),
    ]
    w.host.attach_slice(w.u, uapi.AttachSliceHdr(count=3, dbc_id=0, handle=h, dir=2), ents)
    w.host.execute(w.u, 0, [(h, 2)])
    r = w.ring()[:5]
    # slice 0: two elements (100..4096, 4096..4196), from-device: src = dev, dst = host
    assert [e.pcie_dma_len for e in r[:2]] == [PAGE - 100, 200]
    assert (r[0].pcie_dma_source_addr, r[0].pcie_dma_dest_addr) == (0x5000, segs[0][0] + 100)
    assert (r[1].pcie_dma_source_addr, r[1].pcie_dma_dest_addr) == (0x5000 + PAGE - 100, segs[1][0])
    assert r[0].pcie_dma_cmd == 0x0A and r[1].pcie_dma_cmd == 0x1A  # bulk|out (+completion)
    assert r[0].doorbell_attr == 0 and r[1].doorbell_attr == 0x81 and r[1].doorbell_addr == 0x8000
    assert r[0].sem_cmd0 == 0  # no presync: nothing on the first element
    s0 = r[1].sems[0]  # the automatic OUTSYNCFENCE on the last element's sem0
    assert s0.fromdev_fence and not s0.todev_fence and s0.enable and s0.value == 1
    # slice 1: presync sem1 on both elements, no fence, post sems only on the last
    assert r[2].sem_cmd1 == r[3].sem_cmd1 and r[2].sems[1].presync and r[2].sems[1].value == 5
    assert r[2].sem_cmd2 == 0 and r[3].sems[2].op == 2 and r[3].sems[2].index == 4
    assert not r[3].sems[0].fromdev_fence
    # slice 2: size 0 -> no direction bits, one PAGE_SIZE element, completion
    assert r[4].pcie_dma_cmd == 0x18 and r[4].pcie_dma_len == PAGE
    assert len({e.req_id for e in r}) == 1


def test_encode_to_device_fence(cls: type) -> None:
    w = World(cls, seg=PAGE)
    h = w.bo(2 * PAGE, dir=1)
    w.host.execute(w.u, 0, [(h, 1)])
    r = w.ring()[:2]
    assert r[0].pcie_dma_cmd == 0x09 and r[1].pcie_dma_cmd == 0x19
    assert r[1].sems[0].todev_fence and not r[1].sems[0].enable  # fence with cmd 0
    assert r[0].pcie_dma_dest_addr == 0x10000 and r[1].pcie_dma_dest_addr == 0x10000 + PAGE


# -- EXECUTE_BO / PARTIAL_EXECUTE_BO ----------------------------------------------


def test_execute_order(cls: type) -> None:
    w = World(cls, nelem=4)
    h = w.bo(PAGE)
    un = w.host.create_bo(w.u, PAGE)
    ex = w.host.execute
    assert errno_of(ex, w.u, 0, []) == "EINVAL"
    w.host.online = False
    assert errno_of(ex, w.u, 0, []) == "EINVAL"  # count before ENODEV
    assert errno_of(ex, w.u, 99, [(h, 1)]) == "ENODEV"
    w.host.online = True
    assert errno_of(ex, w.u, 16, [(h, 1)]) == "EINVAL"
    assert errno_of(ex, w.u, 1, [(h, 1)]) == "EPERM"  # not assigned
    other = w.host.open()
    assert errno_of(ex, other, 0, [(h, 1)]) == "EPERM"  # another client's dbc
    w.host.ssr_dbc = 0
    assert errno_of(ex, w.u, 0, [(99, 1)]) == "EPIPE"
    w.host.ssr_dbc = None
    assert errno_of(ex, w.u, 0, [(99, 1)]) == "ENOENT"
    assert errno_of(ex, w.u, 0, [(un, 1)]) == "EINVAL"  # not sliced
    assert errno_of(w.host.partial_execute, w.u, 0, [(h, 1, PAGE + 1)]) == "EINVAL"
    assert errno_of(ex, w.u, 0, [(h, 2)]) == "ok"  # the entry's dir is not checked
    assert errno_of(ex, w.u, 0, [(h, 1)]) == "EINVAL"  # already queued
    assert errno_of(w.host.detach_slice, w.u, h) == "EBUSY"


def test_execute_eagain_and_unroll(cls: type) -> None:
    w = World(cls, nelem=4, seg=PAGE)
    a, b = w.bo(2 * PAGE), w.bo(2 * PAGE)
    tail0 = w.dev.ch[0].req_tp
    # a fits (2 of 3 free slots), b does not: the whole call fails, a is not queued
    assert errno_of(w.host.execute, w.u, 0, [(a, 1), (b, 1)]) == "EAGAIN"
    assert w.dev.ch[0].req_tp == tail0
    assert not w.host.users[w.u].bos[a].queued
    assert w.host.ch[0].next_req_id == 2  # req_ids were consumed anyway
    # driver quirk: a's completion was re-armed before the unroll, so WAIT on a (never
    # queued) cannot succeed until a later execute of a completes
    assert not w.host.wait_check(w.u, 0, a, 0)
    assert w.host.wait_check(w.u, 0, b, 0)  # b failed before its re-arm
    assert errno_of(w.host.execute, w.u, 0, [(a, 1)]) == "ok"
    assert errno_of(w.host.execute, w.u, 0, [(b, 1)]) == "EAGAIN"
    w.run()
    assert errno_of(w.host.execute, w.u, 0, [(b, 1)]) == "ok"
    assert w.dev.violations == []


def test_partial_execute_resize_rules(cls: type) -> None:
    """Zero resize: every slice goes with no DMA; slices past the resize point go with
    no DMA; the cut slice sends first_n elements and the last one shortened."""
    w = World(cls, nelem=16, seg=PAGE)
    ents = [
        uapi.SliceEntry(size=3 * PAGE, offset=0, dev_addr=0x1000),
        uapi.SliceEntry(size=PAGE, offset=3 * PAGE, dev_addr=0x9000, db_len=32, db_addr=0x40),
    ]
    h = w.bo(4 * PAGE, dir=1, entries=ents)
    w.host.partial_execute(w.u, 0, [(h, 1, PAGE + 10)])
    r = w.ring()
    assert w.dev.ch[0].req_tp == 3
    assert [e.pcie_dma_len for e in r[:3]] == [PAGE, 10, 0]
    assert r[1].completion and r[1].pcie_dma_cmd == 0x19  # the slice's last element, shortened
    assert r[1].pcie_dma_source_addr == w.host.bo_segments(w.u, h)[1][0]
    assert r[2].pcie_dma_cmd == 0x18 and r[2].completion and r[2].db_write  # no DMA, post only
    w.run()
    assert w.host.wait_check(w.u, 0, h, 0)
    w.host.partial_execute(w.u, 0, [(h, 1, 0)])
    r = w.ring()
    # multi-element slice, zero resize: cmd taken from element 0 -> no completion bit
    assert r[3].pcie_dma_cmd == 0x08 and r[3].pcie_dma_len == 0 and not r[3].completion
    assert r[4].pcie_dma_cmd == 0x18 and r[4].completion
    w.run()
    assert not w.host.wait_check(w.u, 0, h, 0)  # the driver's BO never completes


def test_full_size_partial_is_full_execute(cls: type) -> None:
    w = World(cls, nelem=16, seg=PAGE)
    h = w.bo(2 * PAGE)
    w.host.partial_execute(w.u, 0, [(h, 1, 2 * PAGE)])
    assert w.dev.ch[0].req_tp == 2
    assert [e.pcie_dma_len for e in w.ring()[:2]] == [PAGE, PAGE]


def test_ring_wraps(cls: type) -> None:
    w = World(cls, nelem=5, seg=PAGE)
    a, b = w.bo(3 * PAGE), w.bo(3 * PAGE)
    w.host.execute(w.u, 0, [(a, 1)])
    w.run()
    w.host.execute(w.u, 0, [(b, 1)])  # slots 3, 4, 0
    r = w.ring()
    assert [r[i].req_id for i in (3, 4, 0)] == [1, 1, 1]
    assert r[0].completion and not r[3].completion
    assert w.dev.ch[0].req_tp == 1
    w.run()
    assert w.host.wait_check(w.u, 0, b, 0) and w.dev.violations == []


# -- WAIT / PERF_STATS / DETACH ----------------------------------------------------


def test_wait_checks(cls: type) -> None:
    w = World(cls)
    h = w.bo(PAGE)
    wc = w.host.wait_check
    assert errno_of(wc, w.u, 0, h, 0, 1) == "EINVAL"
    w.host.online = False
    assert errno_of(wc, w.u, 0, h, 0, 1) == "EINVAL"
    assert errno_of(wc, w.u, 0, h, 0) == "ENODEV"
    w.host.online = True
    assert errno_of(wc, w.u, 16, h, 0) == "EINVAL"
    assert errno_of(wc, w.u, 1, 99, 0) == "EPERM"
    w.host.ssr_dbc = 0
    assert errno_of(wc, w.u, 0, 99, 0) == "EPIPE"
    w.host.ssr_dbc = None
    assert errno_of(wc, w.u, 0, 99, 0) == "ENOENT"
    assert wc(w.u, 0, h, 0)  # never executed: the completion starts complete
    w.host.execute(w.u, 0, [(h, 1)])
    assert not wc(w.u, 0, h, 100)
    w.run()
    assert wc(w.u, 0, h, 100)


def test_perf_stats(cls: type) -> None:
    w = World(cls, seg=PAGE)
    a, b = w.bo(2 * PAGE), w.bo(3 * PAGE)
    un = w.host.create_bo(w.u, PAGE)
    ps = w.host.perf_stats
    assert errno_of(ps, w.u, 16, [a]) == "EINVAL"
    assert errno_of(ps, w.u, 0, [a, 99]) == "ENOENT"
    assert errno_of(ps, w.u, 0, [un]) == "EINVAL"
    assert errno_of(ps, w.u, 1, [a]) == "EINVAL"  # sliced on dbc 0
    assert ps(w.u, 0, []) == []
    w.host.execute(w.u, 0, [(a, 1), (b, 1)])
    st = ps(w.u, 0, [a, b])
    assert [(e.queue_level_before, e.num_queue_element) for e in st] == [(0, 2), (2, 3)]
    other = w.host.open()
    assert errno_of(ps, other, 0, [a]) == "ENOENT"  # handles are per file; no dbc owner check


def test_detach(cls: type) -> None:
    w = World(cls)
    h = w.bo(PAGE)
    un = w.host.create_bo(w.u, PAGE)
    d = w.host.detach_slice
    assert errno_of(d, w.u, h, 1) == "EINVAL"
    w.host.online = False
    assert errno_of(d, w.u, h) == "ENODEV"
    w.host.online = True
    assert errno_of(d, w.u, 99) == "ENOENT"
    assert errno_of(d, w.u, un) == "EINVAL"
    w.host.execute(w.u, 0, [(h, 1)])
    assert errno_of(d, w.u, h) == "EBUSY"
    w.run()
    assert errno_of(d, w.u, h) == "ok"
    assert errno_of(w.host.execute, w.u, 0, [(h, 1)]) == "EINVAL"  # no longer sliced
    assert attach(w, h, [uapi.SliceEntry(size=PAGE)], dir=2) == "ok"


def test_ownership_and_close(cls: type) -> None:
    w = World(cls)
    h = w.bo(PAGE)
    w.host.execute(w.u, 0, [(h, 1)])
    other = w.host.open()
    assert other == w.u + 1
    assert errno_of(w.host.wait_check, other, 0, h, 0) == "EPERM"
    assert errno_of(w.host.execute, other, 0, [(h, 1)]) == "EPERM"
    w.host.close(w.u)
    assert w.host.ch[0].usr is None and not w.host.ch[0].in_use
    assert w.host.open() == 0  # the lowest free id is reused
    with pytest.raises(ArgumentError):
        w.host.dbc_assign(0, 42, 16, 0, 0)


def test_release_completes_queued(cls: type) -> None:
    w = World(cls)
    h = w.bo(PAGE)
    w.host.execute(w.u, 0, [(h, 1)])
    core.deactivate_channel(w.host, 0)
    bo = w.host.users[w.u].bos[h]
    assert bo.done and not bo.queued and not bo.sliced
    assert errno_of(w.host.wait_check, w.u, 0, h, 0) == "EPERM"


def test_error_completion_still_completes(cls: type) -> None:
    """A response with a non-zero completion code completes the BO (qaic_data.c only logs)."""
    w = World(cls)
    h = w.bo(PAGE, dir=2)
    addr = w.host.bo_segments(w.u, h)[0][0]
    w.dev.host_mem.free(addr)  # the DMA will fault
    w.host.execute(w.u, 0, [(h, 2)])
    w.run()
    assert w.dev.stats.errors >= 1
    assert w.host.wait_check(w.u, 0, h, 0)


def test_register_reads_go_through_the_device(cls: type) -> None:
    w = World(cls, policies=Policies({"inactive-dbc-regs": "all-ones"}))
    h = w.bo(PAGE)
    w.dev.deactivate(0)  # the host still thinks it owns dbc 0: reads are all ones
    assert errno_of(w.host.execute, w.u, 0, [(h, 1)]) == "ENODEV"
    assert w.dev.readl(0, regs.REQ_HP) == 0xFFFFFFFF


def test_release_waits_for_execute_threads(cls: type) -> None:
    """release_dbc's synchronize_srcu waits for ioctl threads inside EXECUTE_BO."""
    w = World(cls)
    h = w.bo(PAGE)
    tid = w.host.execute_begin(w.u, 0, [(h, 1)])
    with pytest.raises(ArgumentError):
        w.host.dbc_release(0)
    while w.host.threads[tid].phase.name != "DONE":
        w.host.step(HostAction("exec", tid))
    assert w.host.execute_result(tid) is None
    w.host.dbc_release(0)


def test_concurrent_execute_threads_serialise(cls: type) -> None:
    """Two threads in EXECUTE_BO on one channel: the second waits for req_lock, so the
    ring gets both BOs back to back (v6.18 req_lock)."""
    w = World(cls)
    a, b = w.bo(PAGE), w.bo(PAGE)
    t1 = w.host.execute_begin(w.u, 0, [(a, 1)])
    t2 = w.host.execute_begin(w.u, 0, [(b, 1)])
    w.host.step(HostAction("exec", t1))  # t1 takes the lock
    assert HostAction("exec", t2) not in w.host.enabled()
    while w.host.threads[t1].phase.name != "DONE":
        w.host.step(HostAction("exec", t1))
    while w.host.threads[t2].phase.name != "DONE":
        w.host.step(HostAction("exec", t2))
    assert w.host.execute_result(t1) is None and w.host.execute_result(t2) is None
    assert w.dev.ch[0].req_tp == 2
    assert {e.req_id for e in w.ring()[:2]} == {0, 1}
