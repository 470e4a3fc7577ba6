"""Co-simulation: a host driving the device model, with the host's invariants checked.

A :class:`World` composes the device model (:mod:`qaicmodel.spec.dbc.device`), a
host (anything implementing :class:`qaicmodel.spec.host.protocol.Host`; it sees the
device through a :class:`Recorder`), an echo workload (:mod:`qaicmodel.spec.dbc.workload`)
and a standard two-channel set-up, and offers *operations* (submit an echo
inference, DMA round trip, two concurrent EXECUTE_BO threads, an arbitrary
ioctl, one actor step).  A :class:`Pair` runs the same operations on two
worlds (spec host and fast host) and reports any difference.  Hypothesis
machines (tests/test_cosim_machine.py), the broken-host tests and the
``conform`` command all drive these.

Invariants (each finding has a stable rule id):

  COSIM-REQ-OVERWRITE   a host step changed a request slot the device had not
                        consumed yet (between REQ_HP and REQ_TP);
  COSIM-REQ-OVERRUN     a REQ_TP write added more elements than the free space
                        (one slot kept free: qaic_data.c fifo_space_avail) -- this
                        is also "the tail moved backwards" in ring terms;
  COSIM-RSP-PAST-READ   an RSP_HP write moved past the RSP_TP value the host had
                        read (aic100.rst "Response FIFO");
  COSIM-DEVICE-RULE     the device model recorded a host violation;
  COSIM-DOUBLE-COMPLETE a BO completed more often than it was executed;
  COSIM-LOST-COMPLETE   at quiescence an executed BO never completed;
  COSIM-DATA-MISMATCH   an echoed buffer differs from what was sent;
  COSIM-STRANDED        at quiescence a response is left in a response ring;
  COSIM-DIVERGENCE      (Pair) the two hosts differ in an ioctl result, FIFO
                        bytes, register accesses or completions.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from qaicmodel import arith
from qaicmodel.errors import QaicModelError
from qaicmodel.findings import Finding
from qaicmodel.oracle.recorder import (
    DRIVER_ASSUMES,
    Recorder,
    _cuts,
    _outcome,
    _sl,
    machine_policy_rows,
    request_overwrites,
)
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.dbc.wire import REQ_SIZE, RSP_SIZE
from qaicmodel.spec.dbc.workload import EchoWorkload, input_slice, output_slice
from qaicmodel.spec.host import uapi
from qaicmodel.spec.host.core import HostCore, activate_channel
from qaicmodel.spec.policies import Policies

__all__ = [
    "Finding",
    "Recorder",
    "World",
    "Pair",
    "random_run",
    "DRIVER_ASSUMES",
    "machine_policy_rows",
    "RULES",
]

RULES = (
    "COSIM-REQ-OVERWRITE",
    "COSIM-REQ-OVERRUN",
    "COSIM-RSP-PAST-READ",
    "COSIM-DEVICE-RULE",
    "COSIM-DOUBLE-COMPLETE",
    "COSIM-LOST-COMPLETE",
    "COSIM-DATA-MISMATCH",
    "COSIM-STRANDED",
    "COSIM-DIVERGENCE",
)

PAGE = arith.PAGE_SIZE


class World:
    """Device + host + echo workload in the standard two-channel set-up.

    dbc 0 (user 0, ``nelem0`` slots): an :class:`EchoWorkload`; BOs ``in`` and
    ``out`` of ``echo_len`` bytes, one slice each, speaking its protocol.
    dbc 1 (user 1, ``nelem1`` slots, no workload): BOs ``A`` (to device) and ``B``
    (from device) at the same device address, ``dma_slices`` slices each: a
    write-then-read round trip; BOs ``C`` and ``D`` (to device, two segments
    each) for concurrent EXECUTE_BO threads.
    """

    def __init__(
        self,
        host_factory: Callable[..., Any],
        *,
        policies: Policies | None = None,
        single_msi: bool = False,
        datapath_polling: bool = False,
        sg_max_segment: int | None = PAGE,
        nelem0: int = 16,
        nelem1: int = 4,
        echo_len: int = 2 * PAGE,
        dma_len: int = 3 * PAGE,
        dma_slices: int = 2,
        num_events: int = 2,
        num_delays: int = 1,
    ) -> None:
        self.findings: list[Finding] = []
        self.dev = Device(num_dbc=2, policies=policies, single_msi=single_msi)
        self.bus = Recorder(self.dev, self)
        kw: dict[str, Any] = {
            "sg_max_segment": sg_max_segment,
            "datapath_polling": datapath_polling,
        }
        if isinstance(host_factory, type) and issubclass(host_factory, HostCore):
            kw.update(num_events=num_events, num_delays=num_delays)
        self.host = host_factory(self.bus, **kw)
        h = self.host
        self.u0, self.u1 = h.open(), h.open()
        activate_channel(h, 0, self.u0, nelem0)
        activate_channel(h, 1, self.u1, nelem1)
        self.wl = EchoWorkload(self.dev, 0, 0x10_0000, 0x20_0000, echo_len)
        self.bo: dict[str, int] = {}
        ein = uapi.SliceEntry(size=echo_len, dev_addr=0x10_0000, **_sl(input_slice(0, last=True)))
        eout = uapi.SliceEntry(size=echo_len, dev_addr=0x20_0000, **_sl(output_slice(1, last=True)))
        self._mk("in", self.u0, 0, echo_len, uapi.DMA_TO_DEVICE, [ein])
        self._mk("out", self.u0, 0, echo_len, uapi.DMA_FROM_DEVICE, [eout])
        self.dma_len = dma_len
        cut = _cuts(dma_len, dma_slices)
        self._mk(
            "A",
            self.u1,
            1,
            dma_len,
            uapi.DMA_TO_DEVICE,
            [uapi.SliceEntry(size=n, offset=o, dev_addr=0x30_0000 + o) for o, n in cut],
        )
        self._mk(
            "B",
            self.u1,
            1,
            dma_len,
            uapi.DMA_FROM_DEVICE,
            [uapi.SliceEntry(size=n, offset=o, dev_addr=0x30_0000 + o) for o, n in cut],
        )
        for name, addr in (("C", 0x40_0000), ("D", 0x50_0000)):
            self._mk(
                name,
                self.u1,
                1,
                2 * PAGE,
                uapi.DMA_TO_DEVICE,
                [uapi.SliceEntry(size=2 * PAGE, dev_addr=addr)],
            )
        self.owner = {
            "in": self.u0,
            "out": self.u0,
            "A": self.u1,
            "B": self.u1,
            "C": self.u1,
            "D": self.u1,
        }
        self.executed: dict[str, int] = dict.fromkeys(self.bo, 0)
        self.completed: dict[str, int] = dict.fromkeys(self.bo, 0)
        self.expect: dict[str, bytes] = {}  # BO -> bytes it must hold when it completes
        self.a_written: bytes | None = None  # bytes A carried to the device last time
        self.threads: dict[int, list[str]] = {}  # exec thread id -> BO names
        self.echo_pending = False  # ``in`` went, ``out`` still has to
        self._was_done: dict[str, bool] = {}
        self._derived: list[tuple[int, int]] = []
        self._seen_completions = 0
        self._seen_violations = 0
        self.steps = 0

    def _mk(
        self, name: str, user: int, dbc: int, size: int, dir: int, ents: list[uapi.SliceEntry]
    ) -> None:
        h = self.host.create_bo(user, size)
        self.host.attach_slice(
            user,
            uapi.AttachSliceHdr(count=len(ents), dbc_id=dbc, handle=h, dir=dir, size=size),
            ents,
        )
        self.bo[name] = h

    # -- findings and checks ------------------------------------------------
    def find(self, rule: str, message: str) -> None:
        self.findings.append(Finding(rule, message))

    def _name(self, key: tuple[int, int]) -> str | None:
        for n, h in self.bo.items():
            if (self.owner[n], h) == key:
                return n
        return None

    def host_call(self, fn: Callable[[], Any]) -> tuple[str, Any]:
        """Run one host step or ioctl with the request-slot invariant around it."""
        snap = self.dev.published_requests()
        out = _outcome(fn)
        self.findings.extend(request_overwrites(self.dev, snap))
        self.check()
        return out

    def check(self) -> None:
        """Invariants that hold after every step."""
        v = self.dev.violations
        for viol in v[self._seen_violations :]:
            self.find("COSIM-DEVICE-RULE", f"{viol.rule}: {viol.message}")
        self._seen_violations = len(v)
        comps = self._completions()
        for key in comps[self._seen_completions :]:
            name = self._name(key)
            if name is None:
                continue
            self.completed[name] += 1
            if self.completed[name] > self.executed[name]:
                self.find(
                    "COSIM-DOUBLE-COMPLETE",
                    f"BO {name} completed {self.completed[name]} times, executed "
                    f"{self.executed[name]}",
                )
            want = self.expect.pop(name, None)
            if want is not None:
                got = bytes(self.host.mmap_bo(self.owner[name], self.bo[name])[: len(want)])
                if got != want:
                    bad = next(i for i in range(len(want)) if got[i] != want[i])
                    self.find(
                        "COSIM-DATA-MISMATCH",
                        f"BO {name}: byte {bad} is {got[bad]:#x}, expected {want[bad]:#x}",
                    )
        self._seen_completions = len(comps)
        for tid in list(self.threads):
            th = getattr(self.host, "threads", {}).get(tid)
            if th is not None and th.phase.name == "DONE":
                err = self.host.execute_result(tid)
                names = self.threads.pop(tid)
                if err is None:
                    for n in names:
                        self.executed[n] += 1

    def _completions(self) -> list[tuple[int, int]]:
        """The host's completion log; for a host without one (only the documented
        interface), completions are seen as WAIT_BO turning done."""
        log = getattr(self.host, "completions", None)
        if isinstance(log, list):
            return log
        for n, h in self.bo.items():
            dbc = 0 if n in ("in", "out") else 1
            try:
                done = bool(self.host.wait_check(self.owner[n], dbc, h, 0))
            except QaicModelError:
                done = False
            if done and not self._was_done.get(n, True):
                self._derived.append((self.owner[n], h))
            self._was_done[n] = done
        return self._derived

    def quiescent(self) -> bool:
        return not self.enabled()

    def check_quiescent(self) -> None:
        """At quiescence: no response left in a ring, every executed BO completed."""
        for ch in self.dev.ch:
            if ch.active and ch.rsp_hp != ch.rsp_tp:
                self.find(
                    "COSIM-STRANDED",
                    f"dbc {ch.dbc}: {arith.ring_occupancy(ch.rsp_hp, ch.rsp_tp, ch.nelem)} "
                    f"response(s) left in the ring at quiescence (RSP_HP {ch.rsp_hp}, "
                    f"RSP_TP {ch.rsp_tp})",
                )
        for n in self.bo:
            if self.executed[n] > self.completed[n]:
                self.find(
                    "COSIM-LOST-COMPLETE",
                    f"BO {n} executed {self.executed[n]} times, completed "
                    f"{self.completed[n]}, and nothing can happen any more",
                )

    # -- actors ---------------------------------------------------------------
    def enabled(self) -> list[tuple[int, Any]]:
        out: list[tuple[int, Any]] = [(0, a) for a in self.dev.enabled()]
        out += [(1, a) for a in self.wl.enabled()]
        out += [(2, a) for a in self.host.enabled()]
        return out

    def act(self, i: int) -> tuple[str, Any]:
        acts = self.enabled()
        who, a = acts[i % len(acts)]
        self.steps += 1
        if who == 2:
            return self.host_call(lambda: self.host.step(a))
        (self.dev if who == 0 else self.wl).step(a)
        self.check()
        return ("ok", repr(a))

    def settle(self, rng: random.Random, max_steps: int = 2000) -> bool:
        """Random steps until nothing is enabled (True) or max_steps."""
        for _ in range(max_steps):
            acts = self.enabled()
            if not acts:
                self.check_quiescent()
                return True
            self.act(rng.randrange(len(acts)))
        return False

    # -- operations -------------------------------------------------------------
    def _idle(self, *names: str) -> bool:
        busy = {n for ns in self.threads.values() for n in ns}
        return all(self.executed[n] == self.completed[n] and n not in busy for n in names)

    def echo_ready(self) -> bool:
        return self._idle("in", "out") and not self.echo_pending

    def echo_out(self) -> tuple[str, Any]:
        """Retry the ``out`` half of an inference whose second call failed (EAGAIN)."""
        res = self.host_call(lambda: self.host.execute(self.u0, 0, [(self.bo["out"], 2)]))
        if res[0] == "ok":
            self.executed["out"] += 1
            self.echo_pending = False
        return res

    def echo_submit(self, data: bytes, mode: int) -> tuple[str, Any]:
        """One echo inference: fill ``in``, execute ``in`` and ``out`` (mode 0: one call;
        1: two calls; 2: two concurrent threads -- their order is up to the scheduler, and
        under processing-order=fifo an ``out`` queued before its ``in`` deadlocks the
        workload, so machines use mode 2 only with the default processing order)."""
        h = self.host
        view = h.mmap_bo(self.u0, self.bo["in"])
        view[:] = np.resize(np.frombuffer(data, dtype=np.uint8), view.shape[0])
        want = bytes(view[: self.wl.length])
        ents = [(self.bo["in"], 1), (self.bo["out"], 2)]
        if mode == 2:
            for e, n in zip(ents, ("in", "out"), strict=True):
                tid = h.execute_begin(self.u0, 0, [e])
                self.threads[tid] = [n]
            self.expect["out"] = want
            self.check()
            return ("ok", None)
        calls = [ents] if mode == 0 else [ents[:1], ents[1:]]
        res: tuple[str, Any] = ("ok", None)
        for k, c in enumerate(calls):
            res = self.host_call(lambda c=c: h.execute(self.u0, 0, c))  # type: ignore[misc]
            if res[0] != "ok":
                self.echo_pending = k == 1
                break
            for hd, _d in c:
                self.executed["in" if hd == self.bo["in"] else "out"] += 1
        if res[0] == "ok" or self.echo_pending:
            self.expect["out"] = want
        return res

    def dma_write(self, data: bytes, resize: int | None) -> tuple[str, Any]:
        """Execute A (to device) with ``data`` (partially when ``resize`` is given)."""
        h = self.host
        view = h.mmap_bo(self.u1, self.bo["A"])
        pattern = np.resize(np.frombuffer(data, dtype=np.uint8), view.shape[0])
        view[:] = pattern + np.uint8(self.executed["A"] & 0xFF)  # differs every round
        if resize is None:
            res = self.host_call(lambda: h.execute(self.u1, 1, [(self.bo["A"], 1)]))
        else:
            res = self.host_call(lambda: h.partial_execute(self.u1, 1, [(self.bo["A"], 1, resize)]))
        if res[0] == "ok":
            self.executed["A"] += 1
            n = self.dma_len if resize is None else resize
            self.a_written = bytes(view[:n])
        return res

    def dma_read(self) -> tuple[str, Any]:
        """Execute B (from device): it must bring back what A carried."""
        res = self.host_call(lambda: self.host.execute(self.u1, 1, [(self.bo["B"], 2)]))
        if res[0] == "ok":
            self.executed["B"] += 1
            if self.a_written is not None:
                self.expect["B"] = self.a_written
        return res

    def concurrent(self, partial: bool = False) -> tuple[str, Any]:
        """Two ioctl threads inside EXECUTE_BO on dbc 1 at once (C and D)."""
        for n in ("C", "D"):
            e = (self.bo[n], 1, 2 * PAGE) if partial else (self.bo[n], 1)
            tid = self.host.execute_begin(self.u1, 1, [e], partial)
            self.threads[tid] = [n]
        self.check()
        return ("ok", None)

    def ioctl(self, name: str, *args: Any) -> tuple[str, Any]:
        """Any host call by name (for validation fuzzing)."""
        fn = getattr(self.host, name)
        return self.host_call(lambda: fn(*args))

    # -- state for Pair comparison --------------------------------------------------
    def state(self) -> tuple[Any, ...]:
        rings = []
        for ch in self.dev.ch:
            if ch.active:
                rings.append(
                    (
                        ch.req_hp,
                        ch.req_tp,
                        ch.rsp_hp,
                        ch.rsp_tp,
                        self.dev.host_mem.read(ch.req_q, ch.nelem * REQ_SIZE),
                        self.dev.host_mem.read(ch.rsp_q, ch.nelem * RSP_SIZE),
                    )
                )
        intc = self.dev.intc
        irq = tuple((intc.masked(v), intc.pending(v)) for v in range(intc.vectors))
        thr = tuple(
            (
                c.irq.pc,
                c.irq.depth,
                c.irq.wake,
                c.irq.head,
                c.irq.tail,
                c.irq.budget,
                c.irq.delay,
                c.poll,
            )
            for c in getattr(self.host, "ch", ())
        )
        return (
            tuple(rings),
            tuple(self.bus.log),
            tuple(sorted(self._completions())),
            tuple(sorted(self.executed.items())),
            irq + thr,
        )


class Pair:
    """The same operations on two worlds (spec host, fast host); any difference is a finding."""

    def __init__(
        self, make: Callable[[Callable[..., Any]], World], factories: Sequence[Callable[..., Any]]
    ) -> None:
        self.a, self.b = (make(f) for f in factories)
        self.findings: list[Finding] = []
        self.compare("set-up")

    def compare(self, what: str, ra: Any = None, rb: Any = None) -> None:
        if ra != rb:
            self.findings.append(Finding("COSIM-DIVERGENCE", f"{what}: {ra!r} vs {rb!r}"))
        sa, sb = self.a.state(), self.b.state()
        for label, x, y in zip(
            ("rings", "register log", "completions", "executed", "interrupt state"),
            sa,
            sb,
            strict=True,
        ):
            if x != y:
                self.findings.append(Finding("COSIM-DIVERGENCE", f"after {what}: {label} differ"))
        if [a for _w, a in self.a.enabled()] != [a for _w, a in self.b.enabled()]:
            self.findings.append(
                Finding("COSIM-DIVERGENCE", f"after {what}: enabled actions differ")
            )

    def do(self, what: str, op: Callable[[World], Any]) -> Any:
        ra, rb = op(self.a), op(self.b)
        self.compare(what, ra, rb)
        return ra

    def all_findings(self) -> list[Finding]:
        return self.findings + self.a.findings + self.b.findings


def random_run(
    host_factory: Callable[..., Any],
    *,
    seed: int,
    steps: int = 400,
    policies: Policies | None = None,
    on_world: Callable[[World], None] | None = None,
    **world_kw: Any,
) -> tuple[World, list[Finding]]:
    """A seeded random co-simulation (for ``conform`` and the trace recorder): operations
    and actor steps drawn from ``random.Random(seed)``; ends by settling to quiescence.
    ``on_world`` sees the world before the first step (e.g. to attach an observer)."""
    rng = random.Random(seed)
    w = World(host_factory, policies=policies, **world_kw)
    if on_world is not None:
        on_world(w)
    for _ in range(steps):
        r = rng.random()
        try:
            if r < 0.08 and w.echo_pending:
                w.echo_out()
            elif r < 0.08 and w.echo_ready():
                w.echo_submit(rng.randbytes(64), rng.randrange(2))
            elif r < 0.14 and w._idle("A", "B"):
                w.dma_write(
                    rng.randbytes(64), rng.choice([None, None, rng.randrange(1, w.dma_len)])
                )
            elif r < 0.18 and w._idle("A", "B") and w.executed["A"]:
                w.dma_read()
            elif r < 0.22 and w._idle("C", "D") and hasattr(w.host, "execute_begin"):
                w.concurrent(rng.random() < 0.3)
            elif w.enabled():
                w.act(rng.randrange(len(w.enabled())))
        except QaicModelError as e:  # a host raising a model error is a finding too
            w.find("COSIM-DEVICE-RULE", f"host raised {e.one_line()}")
        if w.findings:
            break
    if not w.findings:
        w.settle(rng)
    return w, w.findings
