"""Recording traces from a co-simulation: :class:`TraceRecorder` writes what a host does and
sees at the device boundary as ``qaicmodel-trace/1`` events; :func:`record_cosim` records a
seeded random run (tests/test_check_broken.py, ``qaicmodel bench --check``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qaicmodel import arith
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.wire import REQ_SIZE, RSP_SIZE
from qaicmodel.spec.policies import Policies

__all__ = ["TraceRecorder", "record_cosim"]


class _IntcTap:
    """Stands in for ``Device.intc``: forwards everything, records the host's side."""

    def __init__(self, intc: Any, rec: TraceRecorder) -> None:
        self._intc = intc
        self._rec = rec

    def __getattr__(self, name: str) -> Any:
        return getattr(self._intc, name)

    def mask(self, v: int) -> None:
        self._rec.sync()
        self._rec.emit({"ev": "irq_disable", "vector": v})
        self._intc.mask(v)

    def unmask(self, v: int) -> None:
        self._rec.sync()
        self._rec.emit({"ev": "irq_enable", "vector": v})
        self._intc.unmask(v)

    def ack(self, v: int) -> bool:
        took = bool(self._intc.ack(v))
        if took:
            self._rec.sync()
            self._rec.emit({"ev": "msi", "vector": v})
        return took


class TraceRecorder:
    """Records what a co-simulation host does and sees at the boundary, as trace events.

    Attach right after building a :class:`qaicmodel.oracle.cosim.World` (its channels are
    activated and idle then).  Request elements are recorded when they appear in a ring
    (compared before every register access or MSI action).  Response reads are recorded
    when the host consumes them (its ``_response`` hook, the reference host's drain) or,
    for hosts without one, before a completion and at the RSP_HP write that frees them,
    up to the RSP_TP the host last read.  BO completions become ``complete`` events (the
    host's ``_complete``), and :meth:`idle` ends a run that settled (T5).
    """

    def __init__(self, world: Any) -> None:
        self.world = world
        dev = world.dev
        self.dev = dev
        self.events: list[dict[str, Any]] = []
        self.rings: dict[int, bytes] = {}
        self.last_tp: dict[int, int] = {}
        self.done: dict[int, int] = {}  # dbc -> responses past RSP_HP already recorded
        for ch in dev.ch:
            if ch.active:
                self.emit(
                    {
                        "ev": "activate",
                        "dbc": ch.dbc,
                        "nelem": ch.nelem,
                        "req_q": f"0x{ch.req_q:x}",
                        "rsp_q": f"0x{ch.rsp_q:x}",
                    }
                )
                self.rings[ch.dbc] = dev.host_mem.read(ch.req_q, ch.nelem * REQ_SIZE)
        bus = world.bus
        readl, writel = bus.readl, bus.writel

        def rec_readl(dbc: int, reg: int) -> int:
            self.sync()
            v = int(readl(dbc, reg))
            self.emit({"ev": "readl", "dbc": dbc, "reg": regs.REG_NAMES[reg], "val": v})
            if reg == regs.RSP_TP:
                self.last_tp[dbc] = v
            return v

        def rec_writel(dbc: int, reg: int, val: int) -> None:
            self.sync()
            ch = dev.ch[dbc]
            if reg == regs.RSP_HP and ch.active and 0 <= val < ch.nelem:
                n = ch.nelem
                k = int(arith.ring_occupancy(ch.rsp_hp, val, n))
                self.flush(dbc, min(k, self._seen(dbc)))
                self.done[dbc] = max(0, self.done.get(dbc, 0) - k)
            self.emit({"ev": "writel", "dbc": dbc, "reg": regs.REG_NAMES[reg], "val": val})
            writel(dbc, reg, val)

        bus.readl, bus.writel = rec_readl, rec_writel
        dev.intc = _IntcTap(dev.intc, self)
        host = world.host
        if callable(getattr(host, "_response", None)):
            response = host._response

            def rec_response(ch: Any, req_id: int, code: int) -> None:
                dch = dev.ch[ch.id]
                self.flush(ch.id, int(arith.ring_occupancy(dch.rsp_hp, ch.irq.head, dch.nelem)) + 1)
                response(ch, req_id, code)

            host._response = rec_response
        if callable(getattr(host, "_complete", None)):
            complete = host._complete

            def rec_complete(ch: Any, bo: Any) -> None:
                self.flush(ch.id, self._seen(ch.id))
                self.emit({"ev": "complete", "dbc": ch.id, "req_id": int(bo.req_id) & 0xFFFF})
                complete(ch, bo)

            host._complete = rec_complete

    def _seen(self, dbc: int) -> int:
        """Responses between RSP_HP and the RSP_TP the host last read."""
        ch = self.dev.ch[dbc]
        seen = self.last_tp.get(dbc, ch.rsp_hp)
        if not (ch.active and 0 <= seen < ch.nelem):
            return 0
        return int(arith.ring_occupancy(ch.rsp_hp, seen, ch.nelem))

    def flush(self, dbc: int, upto: int) -> None:
        """Record the reads of the first ``upto`` responses past RSP_HP not recorded yet."""
        ch = self.dev.ch[dbc]
        if not ch.active:
            return
        upto = min(upto, self._seen(dbc))
        for i in range(self.done.get(dbc, 0), upto):
            slot = int(arith.ring_advance(ch.rsp_hp, i, ch.nelem))
            raw = self.dev.host_mem.read(ch.rsp_q + slot * RSP_SIZE, RSP_SIZE)
            self.emit({"ev": "rsp", "dbc": dbc, "idx": slot, "hex": raw.hex()})
        self.done[dbc] = max(self.done.get(dbc, 0), upto)

    def emit(self, obj: dict[str, Any]) -> None:
        self.events.append(obj)

    def idle(self) -> None:
        """The run settled: the host has nothing more to wait for (T5 ``idle``)."""
        self.sync()
        self.emit({"ev": "idle"})

    def sync(self) -> None:
        """Record request slots the host changed since the last look."""
        dev = self.dev
        for dbc, old in self.rings.items():
            ch = dev.ch[dbc]
            if not ch.active:
                continue
            now = dev.host_mem.read(ch.req_q, ch.nelem * REQ_SIZE)
            if now == old:
                continue
            for i in range(ch.nelem):
                a = now[i * REQ_SIZE : (i + 1) * REQ_SIZE]
                if a != old[i * REQ_SIZE : (i + 1) * REQ_SIZE]:
                    self.emit({"ev": "req", "dbc": dbc, "idx": i, "hex": a.hex()})
            self.rings[dbc] = now

    def text(self, device: dict[str, Any] | None = None) -> str:
        from qaicmodel.oracle.trace import dumps

        return dumps(device, self.events)


def record_cosim(
    host_factory: Callable[..., Any],
    *,
    seed: int,
    steps: int = 200,
    policies: dict[str, str] | None = None,
    **world_kw: Any,
) -> tuple[str, list[Any]]:
    """A seeded random co-simulation (the operations of cosim.random_run) recorded as a
    ``qaicmodel-trace/1`` text.  Returns (trace text, the co-simulation's findings)."""
    from qaicmodel.oracle.cosim import random_run

    pol = Policies(policies or {})
    recorders: list[TraceRecorder] = []
    w, findings = random_run(
        host_factory,
        seed=seed,
        steps=steps,
        policies=pol,
        on_world=lambda world: recorders.append(TraceRecorder(world)),
        **world_kw,
    )
    rec = recorders[0]
    rec.sync()
    if w.quiescent():  # settled: the host has nothing left to wait for
        rec.idle()
    device = {
        "num_dbc": w.dev.num_dbc,
        "single_msi": w.dev.single_msi,
        "policies": dict(pol.chosen),
    }
    return rec.text(device), list(findings)
