"""The co-simulation's bus recorder and set-up helpers (split out of ``cosim.py``).

:class:`Recorder` is the device as a host sees it: it forwards every call, logs
register accesses and checks COSIM-RSP-PAST-READ and COSIM-REQ-OVERRUN on them;
:func:`request_overwrites` checks COSIM-REQ-OVERWRITE ("Request FIFO": a published,
unconsumed element belongs to the device); :data:`DRIVER_ASSUMES` lists the device
policies under which the driver itself does not conform.  Rule ids are described in
:mod:`qaicmodel.oracle.cosim`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from qaicmodel import arith
from qaicmodel.errors import ArgumentError, IoctlError
from qaicmodel.findings import Finding
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.dbc.wire import REQ_SIZE
from qaicmodel.spec.host import uapi
from qaicmodel.spec.policies import REGISTRY, Policies

__all__ = ["DRIVER_ASSUMES", "Recorder", "machine_policy_rows", "request_overwrites"]

PAGE = arith.PAGE_SIZE
_RSP_TP = regs.RSP_TP

#: Device-policy alternatives under which the *driver itself* does not conform (found
#: by these machines; tests/test_cosim_machine.py shows each one).  Machines over
#: policy rows hold these policies at their defaults.
DRIVER_ASSUMES: dict[str, str] = {
    "ring-full-rule": "a full response ring (n elements) reads head == tail: the driver "
    "sees it empty and strands the completions",
    "response-ring-full": "a dropped response never completes its BO",
    "fence-without-enable": "the driver's automatic fence (encode_reqs) has cmd 0, so the "
    "enable bit is clear; a device that needs the enable bit lets the "
    "last element of a split slice -- and so the BO -- complete "
    "before the others moved their data",
    "head-index-meaning": "the driver writes RSP_HP as the next slot to read; a device that "
    "reads it as the last slot consumed frees one response too many "
    "and overwrites it",
    "nnc-command-set": "under 'opaque' the QSM ignores the PASSTHROUGH{DEACTIVATE} but the "
    "DEACTIVATE_FROM_USR transaction succeeds: the driver runs release_dbc and frees the "
    "FIFOs (qaic_control.c decode_deactivate) while the channel keeps running, so BOs in "
    "flight answer into freed memory (found by conform's deactivate-in-flight moves)",
    "nnc-terminate-partition": "under 'partition-0' a close (qaic_postclose: terminate, then "
    "release_dbc and the BOs freed) leaves the user's channels active on the device, which "
    "goes on reading the freed FIFOs and BOs (found by conform's close-in-flight moves)",
}


def request_overwrites(dev: Device, snap: dict[int, list[tuple[int, bytes]]]) -> list[Finding]:
    """COSIM-REQ-OVERWRITE for every slot of ``snap`` (:meth:`Device.published_requests`
    taken before a host call) whose bytes the host changed ("Request FIFO": a published,
    unconsumed element belongs to the device)."""
    out = []
    for dbc, slots in snap.items():
        ch = dev.ch[dbc]
        for i, raw in slots:
            if dev.host_mem.read(ch.req_q + i * REQ_SIZE, REQ_SIZE) != raw:
                out.append(
                    Finding(
                        "COSIM-REQ-OVERWRITE",
                        f"dbc {dbc}: the host rewrote request slot {i}, published and not yet "
                        f"consumed (REQ_HP {ch.req_hp}, REQ_TP {ch.req_tp})",
                        "aic100.rst Request FIFO",
                        {"dbc": dbc, "slot": i},
                    )
                )
    return out


class Recorder:
    """The device as the host sees it: forwards everything, logs and checks register access."""

    def __init__(self, dev: Device, world: Any) -> None:
        self._dev = dev
        self._world = world
        self.log: list[tuple[str, int, int, int]] = []
        self.last_rsp_tp: dict[int, int] = {}
        dev.observers.append(self._event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dev, name)

    # the device attributes a host reads most (per actor step: ``intc``), forwarded as
    # properties: read from the device each time like ``__getattr__``, without its failed
    # lookup first (speed only)
    intc = property(lambda self: self._dev.intc)
    ch = property(lambda self: self._dev.ch)
    host_mem = property(lambda self: self._dev.host_mem)

    def _event(self, ev: tuple[Any, ...]) -> None:
        if ev[0] in ("activate", "deactivate"):
            self.last_rsp_tp.pop(ev[1], None)

    def readl(self, dbc: int, reg: int) -> int:
        dev = self._dev
        v = int(dev.readl(dbc, reg))
        self.log.append(("readl", dbc, reg, v))
        if reg == _RSP_TP and dev.ch[dbc].active:
            self.last_rsp_tp[dbc] = v
        return v

    def writel(self, dbc: int, reg: int, val: int) -> None:
        ch = self._dev.ch[dbc]
        if ch.active and isinstance(val, int) and 0 <= val < ch.nelem:
            n = ch.nelem
            if reg == regs.RSP_HP:
                seen = self.last_rsp_tp.get(dbc, ch.rsp_hp)
                if arith.ring_occupancy(ch.rsp_hp, val, n) > arith.ring_occupancy(
                    ch.rsp_hp, seen, n
                ):
                    self._world.find(
                        "COSIM-RSP-PAST-READ",
                        f"dbc {dbc}: RSP_HP {ch.rsp_hp} -> {val} passes the RSP_TP "
                        f"{seen} the host read",
                    )
            elif reg == regs.REQ_TP:
                added = arith.ring_occupancy(ch.req_tp, val, n)
                free = arith.fifo_space(ch.req_hp, ch.req_tp, n)
                if added > free:
                    self._world.find(
                        "COSIM-REQ-OVERRUN",
                        f"dbc {dbc}: REQ_TP {ch.req_tp} -> {val} adds {added} "
                        f"elements, {free} free (REQ_HP {ch.req_hp})",
                    )
        self.log.append(("writel", dbc, reg, val))
        self._dev.writel(dbc, reg, val)


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        r = fn()
    except IoctlError as e:
        return (e.name, None)
    except ArgumentError as e:
        return ("ArgumentError", str(e))
    if isinstance(r, np.ndarray):
        r = r.tobytes()
    elif isinstance(r, list):
        r = [attrs.astuple(x) if attrs.has(type(x)) else x for x in r]
    return ("ok", r)


def _sl(d: dict[str, Any]) -> dict[str, Any]:
    """workload.input_slice/output_slice dicts -> SliceEntry keyword arguments."""
    out = dict(d)
    for k in ("sem0", "sem1", "sem2", "sem3"):
        out[k] = uapi.Sem(**d[k])
    return out


def _cuts(total: int, k: int) -> list[tuple[int, int]]:
    """``k`` page-aligned slices covering [0, total)."""
    pages = total // PAGE
    k = max(1, min(k, pages))
    bounds = [round(i * pages / k) * PAGE for i in range(k + 1)]
    return [(bounds[i], bounds[i + 1] - bounds[i]) for i in range(k)]


def machine_policy_rows() -> list[Policies]:
    """Pairwise covering rows over the dma-bridge policies plus msi-while-masked, with the
    policies in :data:`DRIVER_ASSUMES` held at their defaults."""
    from qaicmodel.spec.policies import pairwise

    ids = [
        p
        for p, pol in REGISTRY.items()
        if pol.area in ("dma-bridge", "host-driver") and p not in DRIVER_ASSUMES
    ]
    return pairwise(ids)
