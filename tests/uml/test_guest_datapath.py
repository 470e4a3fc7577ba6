"""The real driver's data path against the model (marker ``uml``; kernel 7.2 only).

A program in the guest (``qaicmodel.guest.client``) makes every data-path ioctl of
qaic_accel.h on the real accel/qaic driver; the board's DMA Bridge consumes the
request elements the driver wrote into guest memory, moves the bytes, runs the
semaphores and doorbells with the model's echo workload, writes responses and
raises MSIs (single-MSI mode: everything on vector 0).  A missing kernel is a
failure naming ``qaicmodel uml build``, never a skip.  6.12's UML cannot run user
space on this host (docs/findings.md F2), so the data path is 7.2 only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qaicmodel.emu import kbuild, runner
from qaicmodel.emu.datapath import ECHO_IN, ECHO_OUT, DatapathBoard
from qaicmodel.spec.dbc.wire import RequestElem

pytestmark = pytest.mark.uml

KERNEL = "7.2"
PCI = "0000:00:00.0"
UNBIND = f"echo {PCI} > /sys/bus/pci/drivers/qaic/unbind"


def kernel_or_fail(name: str = KERNEL) -> Any:
    k = kbuild.find_kernel(name)
    if k is None:
        pytest.fail(f"no UML kernel {name} in the cache: run `qaicmodel uml build --kernel "
                    f"{name}` first", pytrace=False)
    return k


def guest(cmd: str, tmp_path: Path, board: Any = None, timeout: float = 100,
          policies: tuple[str, ...] = ("mhi-start-ee=amss",)) -> tuple[Any, Any]:
    kernel_or_fail()
    b = board if board is not None else DatapathBoard(policies=list(policies), kernel=KERNEL)
    script = f"{cmd}; rc=$?; {UNBIND}; exit $rc"
    res = runner.run(["/bin/sh", "-c", script], kernel=KERNEL, board=b, timeout=timeout,
                     capture=True, console=tmp_path / "console.txt", echo=None)
    return res, b


def json_line(res: Any) -> dict[str, Any]:
    for line in res.output.decode(errors="replace").splitlines():
        if line.startswith("{"):
            return dict(json.loads(line))
    raise AssertionError(f"no JSON line in the guest output: {res.output!r}")


def test_echo_every_ioctl_real_driver(tmp_path: Path) -> None:
    """activate, CREATE_BO, MMAP_BO, ATTACH_SLICE_BO, EXECUTE_BO, WAIT_BO, PERF_STATS_BO,
    PARTIAL_EXECUTE_BO, DETACH_SLICE_BO, GEM close, deactivate, terminate on close: the
    echo workload returns the input bytes intact, through the real driver."""
    res, b = guest("python3 -m qaicmodel.guest.client echo", tmp_path)
    assert res.failure() is None, (res.failure(), res.console)
    got = json_line(res)
    assert "error" not in got, got
    assert got["echo_intact"] is True and got["partial_intact"] is True, got
    names = [n for n, r in got["calls"]]
    assert all(r == "ok" for _n, r in got["calls"]), got["calls"]
    for n in ("activate", "create_bo", "mmap_bo", "attach_slice", "execute", "wait",
              "perf_stats", "partial_execute", "detach_slice", "gem_close", "deactivate"):
        assert n in names, n
    # the device consumed what the driver wrote in guest memory: 2 + 2 elements
    elems = [RequestElem.unpack(raw) for _d, _s, raw in b.consumed]
    assert len(elems) == 4, elems
    dev_addrs = [(e.pcie_dma_dest_addr if i % 2 == 0 else e.pcie_dma_source_addr)
                 for i, e in enumerate(elems)]
    assert dev_addrs == [ECHO_IN, ECHO_OUT, ECHO_IN, ECHO_OUT], [hex(a) for a in dev_addrs]
    assert elems[3].pcie_dma_len == 2048  # the partial execute's resize
    # the FIFOs were the driver's memory; the channel went back on terminate
    assert b.activations and b.activations[0][3] == 16
    assert not b.qsm.act and b.workloads == {}
    # single-MSI mode: every interrupt on vector 0
    assert b.msi_log and set(b.msi_log) == {0}
    assert b.device.stats.msi_raised >= 1
    assert b.violations == []
    assert not res.splats and not res.leftover
