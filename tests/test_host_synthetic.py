"""Synthetic memory through the hosts: CREATE_BO of any size (sparse backing, the driver's
create_sgt page-count wrap) and PRIME imports of any size with IOMMU-merged segments,
end to end through scenarios on both model hosts."""

from __future__ import annotations

import pytest

from qaicmodel.errors import IoctlError
from qaicmodel.impl.host import ImplHost
from qaicmodel.scenario.format import FORMAT
from qaicmodel.scenario.runner import run_scenario
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.dbc.memory import SparseBytes
from qaicmodel.spec.host.reference import SpecHost

pytestmark = pytest.mark.unit
PAGE = 4096
HOSTS = ["qaicmodel.spec.host:SpecHost", "qaicmodel.impl.host:ImplHost"]


def _errno(fn, *a, **kw) -> str:
    try:
        fn(*a, **kw)
    except IoctlError as e:
        return e.name
    return "ok"


@pytest.mark.parametrize("cls", [SpecHost, ImplHost])
def test_create_bo_of_any_size(cls: type) -> None:
    h = cls(Device())
    u = h.open()
    big = h.create_bo(u, 1 << 40)
    assert isinstance(h.mmap_bo(u, big), SparseBytes)
    assert sum(n for _a, n in h.bo_segments(u, big)) == 1 << 40
    assert _errno(h.create_bo, u, 1 << 43) == "ENOMEM"  # int nr_pages wraps negative
    assert _errno(h.create_bo, u, (1 << 64) - PAGE) == "ENOMEM"
    wrapped = h.create_bo(u, (1 << 44) + PAGE)  # 2**32 + 1 pages: one page backs it
    assert h.bo_segments(u, wrapped) == h.bo_segments(u, wrapped)[:1]
    assert h.bo_segments(u, wrapped)[0][1] == PAGE


def _doc(bo_step: dict, size: int, offset: int = 0) -> dict:
    """Write 3 bytes at ``offset``, send a ``size``-byte slice from there to device DDR."""
    ent = {"size": size, "offset": offset, "dev_addr": "0x100000"}
    return {
        "format": FORMAT,
        "steps": [
            {"op": "open", "user": "a"},
            {"op": "activate", "user": "a", "queue_size": 16, "as": "ch"},
            {**bo_step, "user": "a", "as": "b"},
            {"op": "write_bo", "user": "a", "handle": "b", "offset": offset, "hex": "c0ffee"},
            {
                "op": "attach_slice",
                "user": "a",
                "hdr": {"dbc_id": "ch", "handle": "b", "dir": 1, "size": offset + size},
                "entries": [ent],
            },
            {"op": "execute", "user": "a", "dbc_id": "ch", "handles": ["b"]},
            {"op": "wait", "user": "a", "dbc_id": "ch", "handle": "b"},
            {"op": "ddr_read", "addr": "0x100000", "length": 3, "expect_hex": "c0ffee"},
        ],
    }


@pytest.mark.parametrize("host", HOSTS)
def test_a_slice_deep_inside_a_sparse_bo_moves_its_bytes(host: str) -> None:
    from qaicmodel.spec.host.protocol import load_host

    doc = _doc({"op": "create_bo", "size": 1 << 40}, 2 * PAGE, offset=(1 << 40) - 2 * PAGE)
    rep = run_scenario(doc, host_cls=load_host(host))
    assert rep.first_mismatch is None, rep.text()


@pytest.mark.parametrize("host", HOSTS)
def test_a_slice_past_the_wrapped_backing_is_einval(host: str) -> None:
    from qaicmodel.spec.host.protocol import load_host

    doc = _doc({"op": "create_bo", "size": (1 << 44) + PAGE}, PAGE, offset=1 << 43)
    doc["steps"][4]["expect"] = "EINVAL"  # attach: no DMA segment covers it
    del doc["steps"][5:]
    rep = run_scenario(doc, host_cls=load_host(host))
    assert rep.first_mismatch is None, rep.text()


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("merge", [True, False])
def test_import_of_a_non_page_multiple(host: str, merge: bool) -> None:
    from qaicmodel.spec.host.protocol import load_host

    size = 3 * PAGE + 5
    doc = _doc({"op": "import_bo", "size": size, "merge": merge}, size)
    rep = run_scenario(doc, host_cls=load_host(host))
    assert rep.first_mismatch is None, rep.text()
    segs = rep.results[2]["segments"]
    assert sum(n for _a, n in segs) == size and len(segs) == (1 if merge else 4)
    assert rep.results[5]["result"] == "ok"


def test_import_bo_checks() -> None:
    h = SpecHost(Device())
    u = h.open()
    assert _errno(h.import_bo, u, 0) == "EINVAL"  # qaic_gem_prime_import: !dmabuf->size
    hd = h.import_bo(u, 10)
    assert h.bo_segments(u, hd)[0][1] == 10
