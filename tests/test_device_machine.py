"""A Hypothesis stateful machine over the device alone, under every policy row.

Rules: arbitrary host register writes (legal or not), arbitrary request
elements written into arbitrary slots, well-formed submissions, drains, NSP
semaphore operations, interrupt mask/unmask/ack, channel re-activation, every
device action and every workload action, chosen by Hypothesis.

Invariants (checked by an observer on every device event and after every step):
  I1 REQ_HP never passes REQ_TP: the device consumes slot after slot, only
     while unconsumed requests exist, and (REQ_HP + count) mod n == REQ_TP.
  I2 The device never writes a response into a slot the host has not freed.
  I3 Every response matches a consumed request that asked for one, once,
     in the next response slot, with the bytes really in host memory.
  I4 MSIs raised <= empty->non-empty transitions + forced ones (per channel),
     and the interrupt controller saw exactly the raises the channels made.
  I5 Semaphore values stay in 0..4095.
  I6 Bytes moved equal the lengths requested, except for a DMA fault on
     memory that really is unmapped; moved bytes arrive intact.
  I7 processing-order=fifo completes requests in consumption order;
     response-order=request-order writes responses in consumption order.

Run under every alternative of every dma-bridge policy and a pairwise
covering set of alternatives (qaicmodel.spec.policies.pairwise).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from qaicmodel import arith
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.device import CC_DMA_FAULT, SEM_MAX, Device
from qaicmodel.spec.dbc.memory import DevMemory
from qaicmodel.spec.dbc.wire import (
    CMD_BULK,
    CMD_COMPLETION,
    CMD_FORCE_MSI,
    DB_WRITE,
    Dir,
    RequestElem,
    ResponseElem,
    SemCmd,
)
from qaicmodel.spec.dbc.workload import DB_BASE, CompilerProtocolWorkload, input_slice, output_slice
from qaicmodel.spec.policies import REGISTRY, Policies, each_alternative, pairwise
from qaicmodel.spec.scheduler import RandomScheduler, run

DB_IDS = sorted(pid for pid, p in REGISTRY.items() if p.area == "dma-bridge")
ROWS = list(pairwise(DB_IDS)) + list(each_alternative(DB_IDS))
DDR = 0x1000


class Ghost:
    """What the observer knows about one active channel."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.unread = [False] * n
        self.hp = 0  # next slot the device must consume
        self.tp = 0  # next response slot
        self.submitted = 0  # requests the host made available (clean hosts only)
        self.clean_req = True
        self.clean_rsp = True
        self.transitions = 0
        self.consumed: dict[int, RequestElem] = {}
        self.responded: set[int] = set()
        self.last_done = -1
        self.last_response = -1


class Observer:
    def __init__(self, dev: Device) -> None:
        self.dev = dev
        self.g: dict[int, Ghost] = {}
        self.p = dev.policies

    def __call__(self, ev: tuple[Any, ...]) -> None:
        kind, dbc = ev[0], ev[1]
        getattr(self, "on_" + kind, lambda *a: None)(dbc, *ev[2:])

    def on_activate(self, dbc: int, req_q: int, rsp_q: int, n: int) -> None:
        self.g[dbc] = Ghost(n)
        self.g[dbc].transitions = self.dev.ch[dbc].empty_transitions  # counters are cumulative

    def on_deactivate(self, dbc: int) -> None:
        self.g.pop(dbc, None)

    def on_consume(self, dbc: int, seq: int, slot: int, elem: RequestElem) -> None:
        g, ch = self.g[dbc], self.dev.ch[dbc]
        assert slot == g.hp, f"I1: consumed slot {slot}, expected {g.hp}"
        g.hp = (g.hp + 1) % g.n
        assert ch.req_count >= 0, "I1: consumed with no request pending"
        if g.clean_req:
            assert g.submitted > 0, "I1: REQ_HP passed REQ_TP"
            g.submitted -= 1
        assert seq not in g.consumed
        g.consumed[seq] = elem

    def on_response(self, dbc: int, seq: int, slot: int, rsp: ResponseElem) -> None:
        g = self.g[dbc]
        assert not g.unread[slot], f"I2: response written into unfreed slot {slot}"
        assert slot == g.tp, f"I3: response in slot {slot}, expected {g.tp}"
        g.tp = (g.tp + 1) % g.n
        elem = g.consumed.get(seq)
        assert elem is not None, "I3: response for a request never consumed"
        assert seq not in g.responded, "I3: two responses for one request"
        wanted = elem.completion or (
            elem.dir is Dir.ILLEGAL and self.p["illegal-direction"] == "error-always"
        )
        assert wanted, "I3: response for a request that did not ask for one"
        assert rsp.req_id == elem.req_id
        raw = self.dev.host_mem.read(self.dev.ch[dbc].rsp_q + 4 * slot, 4)
        assert raw == rsp.pack(), "I3: response bytes not in host memory"
        g.responded.add(seq)
        if not any(g.unread):
            g.transitions += 1
        g.unread[slot] = True
        if self.p["response-order"] == "request-order":
            assert seq > g.last_response, "I7: response out of request order"
        g.last_response = seq

    def on_dma(self, dbc: int, seq: int, d: Dir, src: int, dst: int, length: int, n: int) -> None:
        rec = self.dev.ch[dbc].inflight[seq]
        host_addr, dev_addr = (src, dst) if d is Dir.TO_DEV else (dst, src)
        if n != length:
            assert rec.code == CC_DMA_FAULT, "I6: short transfer without a fault code"
            assert (
                not self.dev.host_mem.mapped(host_addr, length)
                or dev_addr + length > DevMemory.LIMIT
            ), "I6: fault on mapped memory"
            if self.p["dma-fault"] == "error":
                assert n == 0
        if n:
            hb = self.dev.host_mem.read(host_addr, n)
            db = self.dev.dev_mem.read(dev_addr, n)
            assert hb == db, "I6: moved bytes differ"

    def on_done(self, dbc: int, seq: int, req_id: int, code: int) -> None:
        g = self.g[dbc]
        if self.p["processing-order"] == "fifo":
            assert seq > g.last_done, "I7: fifo order broken"
        g.last_done = max(g.last_done, seq)


@st.composite
def sem_words(draw: Any, clean: bool) -> int:
    if not clean and draw(st.integers(0, 9)) == 0:
        return draw(st.integers(0, 2**32 - 1))
    op = draw(st.integers(0, 6 if clean else 7))
    return SemCmd.build(
        op=op,
        index=draw(st.integers(0, 3)),
        value=draw(st.integers(0, 3)),
        presync=draw(st.booleans()),
        enable=(op != 0) if clean else draw(st.integers(0, 9)) > 0,
        todev_fence=draw(st.integers(0, 5)) == 0,
        fromdev_fence=draw(st.integers(0, 5)) == 0,
    ).word


@st.composite
def elements(draw: Any, host_buf: int) -> RequestElem:
    """Mostly elements a driver could send (clean), sometimes anything at all."""
    if draw(st.integers(0, 19)) == 0:
        return RequestElem.unpack(draw(st.binary(min_size=64, max_size=64)))
    clean = draw(st.integers(0, 3)) > 0
    d = draw(st.sampled_from([0, 1, 2, 1, 2] + ([] if clean else [3])))
    cmd = (
        d
        | (CMD_BULK if clean or draw(st.integers(0, 9)) else 0)
        | (CMD_COMPLETION if draw(st.booleans()) else 0)
        | (CMD_FORCE_MSI if draw(st.integers(0, 7)) == 0 else 0)
    )
    length = draw(st.integers(0, 48))
    hosts = [host_buf, host_buf + 100] + ([] if clean else [host_buf + 4096 - 16, 0xDEAD_0000])
    host = draw(st.sampled_from(hosts))
    dev = DDR + draw(st.integers(0, 256))
    src, dst = (host, dev) if d != 2 else (dev, host)
    db_len = draw(st.integers(0, 2 if clean else 3))
    db_attr = (DB_WRITE | db_len) if draw(st.booleans()) else 0
    db_addr = DB_BASE + (4 * draw(st.integers(0, 3)) if clean else draw(st.integers(0, 11)))
    words = draw(st.lists(sem_words(clean), min_size=0, max_size=4))
    if clean:  # at most one presync (the driver's rule)
        seen = False
        for i, w in enumerate(words):
            if SemCmd(w).presync and SemCmd(w).enable:
                if seen:
                    words[i] = w & ~(1 << 22)
                seen = True
    words += [0] * (4 - len(words))
    return RequestElem(
        req_id=draw(st.integers(0, 0xFFFF)),
        pcie_dma_cmd=cmd,
        pcie_dma_source_addr=src,
        pcie_dma_dest_addr=dst,
        pcie_dma_len=length,
        doorbell_addr=db_addr,
        doorbell_attr=db_attr,
        doorbell_data=draw(st.integers(0, 2**32 - 1)),
        sem_cmd0=words[0],
        sem_cmd1=words[1],
        sem_cmd2=words[2],
        sem_cmd3=words[3],
    )


def _protocol_elem(req_id: int, d: int, src: int, dst: int, sl: dict[str, Any]) -> RequestElem:
    def word(x: dict[str, int]) -> int:
        return arith.sem_encode(x["val"], x["index"], x["presync"], x["cmd"], x["flags"])

    return RequestElem(
        req_id=req_id,
        pcie_dma_cmd=CMD_BULK | CMD_COMPLETION | d,
        pcie_dma_source_addr=src,
        pcie_dma_dest_addr=dst,
        pcie_dma_len=16,
        doorbell_addr=sl["db_addr"],
        doorbell_attr=DB_WRITE,
        doorbell_data=1,
        sem_cmd0=word(sl["sem0"]),
        sem_cmd1=word(sl["sem1"]),
    )


class DeviceMachine(RuleBasedStateMachine):
    policies = Policies()
    single_msi = False

    def __init__(self) -> None:
        super().__init__()
        self.dev = Device(num_dbc=3, policies=self.policies, single_msi=self.single_msi)
        self.obs = Observer(self.dev)
        self.dev.observers.append(self.obs)
        self.host_buf = self.dev.host_mem.alloc(4096)
        self.dev.host_mem.write(self.host_buf, bytes(range(256)) * 16)
        self.workload: CompilerProtocolWorkload | None = None

    def _activate(self, dbc: int, n: int) -> None:
        base = self.dev.host_mem.alloc(arith.dbc_buf_size(n))
        self.dev.activate(dbc, base, base + arith.dbc_rsp_offset(n), n)

    @initialize(n0=st.integers(1, 6), n1=st.integers(1, 6), n_in=st.integers(1, 2))
    def setup(self, n0: int, n1: int, n_in: int) -> None:
        self._activate(0, n0)
        self._activate(1, n1)
        self.workload = CompilerProtocolWorkload(self.dev, 0, n_in, 1, (0, 1), (2,))

    # -- host side
    def _host_write(self, dbc: int, reg: int, val: int) -> None:
        ch = self.dev.ch[dbc]
        g = self.obs.g.get(dbc)
        before = len(self.dev.violations)
        old_tp, old_hp = ch.req_tp, ch.rsp_hp
        self.dev.writel(dbc, reg, val)
        if g is None:
            return
        bad = len(self.dev.violations) > before
        if reg == regs.REQ_TP:
            g.clean_req = g.clean_req and not bad
            g.submitted += arith.ring_occupancy(old_tp, ch.req_tp, g.n)
        elif reg == regs.RSP_HP:
            g.clean_rsp = g.clean_rsp and not bad
            i = old_hp
            while i != ch.rsp_hp:
                g.unread[i] = False
                i = (i + 1) % g.n

    @rule(dbc=st.integers(0, 2), reg=st.sampled_from([0, 4, 8, 12]), val=st.integers(0, 8))
    def write_register(self, dbc: int, reg: int, val: int) -> None:
        self._host_write(dbc, reg, val)

    @rule(dbc=st.integers(0, 1), data=st.data())
    def write_slot(self, dbc: int, data: Any) -> None:
        ch = self.dev.ch[dbc]
        if not ch.active:
            return
        slot = data.draw(st.integers(0, ch.nelem - 1))
        elem = data.draw(elements(self.host_buf))
        self.dev.host_mem.write(ch.req_q + 64 * slot, elem.pack())

    @rule(dbc=st.integers(0, 1), data=st.data())
    def submit(self, dbc: int, data: Any) -> None:
        """A well-behaved host: write k elements at REQ_TP within the free space, then bump it."""
        ch = self.dev.ch[dbc]
        if not ch.active:
            return
        hp, tp = self.dev.readl(dbc, regs.REQ_HP), self.dev.readl(dbc, regs.REQ_TP)
        free = arith.fifo_space(hp, tp, ch.nelem)
        if free == 0:
            return
        k = data.draw(st.integers(1, free))
        for _ in range(k):
            elem = data.draw(elements(self.host_buf))
            self.dev.host_mem.write(ch.req_q + 64 * tp, elem.pack())
            tp = arith.ring_advance(tp, 1, ch.nelem)
        self._host_write(dbc, regs.REQ_TP, tp)

    @rule(req_id=st.integers(0, 0xFFF0))
    def submit_inference(self, req_id: int) -> None:
        """One inference of the workload's protocol on dbc 0 (workload.input_slice/output_slice)."""
        ch = self.dev.ch[0]
        hp, tp = self.dev.readl(0, regs.REQ_HP), self.dev.readl(0, regs.REQ_TP)
        if not ch.active or self.workload is None or arith.fifo_space(hp, tp, ch.nelem) < 3:
            return
        n_in = self.workload.n_in
        elems = [
            _protocol_elem(req_id, 1, self.host_buf, DDR, input_slice(0, last=False, n_in=n_in)),
            _protocol_elem(
                req_id + 1, 1, self.host_buf + 16, DDR + 16, input_slice(1, last=True, n_in=n_in)
            ),
            _protocol_elem(
                req_id + 2, 2, DDR + 64, self.host_buf + 512, output_slice(2, last=True)
            ),
        ]
        for e in elems:
            self.dev.host_mem.write(ch.req_q + 64 * tp, e.pack())
            tp = arith.ring_advance(tp, 1, ch.nelem)
        self._host_write(0, regs.REQ_TP, tp)

    @rule(dbc=st.integers(0, 1))
    def drain(self, dbc: int) -> None:
        if self.dev.ch[dbc].active:
            self._host_write(dbc, regs.RSP_HP, self.dev.readl(dbc, regs.RSP_TP))

    @rule(
        dbc=st.integers(0, 1), index=st.integers(0, 3), op=st.integers(0, 6), val=st.integers(0, 3)
    )
    def nsp(self, dbc: int, index: int, op: int, val: int) -> None:
        if self.dev.ch[dbc].active:
            self.dev.nsp_sem(dbc, index, op, val)

    @rule(data=st.data(), what=st.sampled_from(["mask", "unmask", "ack"]))
    def intc(self, data: Any, what: str) -> None:
        v = data.draw(st.integers(0, self.dev.intc.vectors - 1))
        getattr(self.dev.intc, what)(v)

    @rule(n=st.integers(1, 6))
    def reactivate_1(self, n: int) -> None:
        self.dev.deactivate(1)
        self._activate(1, n)

    # -- device and workload
    @precondition(lambda self: bool(self.dev.enabled()))
    @rule(data=st.data())
    def device_step(self, data: Any) -> None:
        self.dev.step(data.draw(st.sampled_from(self.dev.enabled())))

    @precondition(lambda self: self.workload is not None and bool(self.workload.enabled()))
    @rule(data=st.data())
    def workload_step(self, data: Any) -> None:
        assert self.workload is not None
        self.workload.step(data.draw(st.sampled_from(self.workload.enabled())))

    @rule(seed=st.integers(0, 2**16), steps=st.integers(1, 40))
    def run_for_a_while(self, seed: int, steps: int) -> None:
        actors: list[Any] = [self.dev] + ([self.workload] if self.workload else [])
        run(actors, RandomScheduler(seed), steps)

    # -- invariants after every step
    @invariant()
    def rings_consistent(self) -> None:
        for ch in self.dev.ch:
            if not ch.active:
                continue
            n = ch.nelem
            assert 0 <= ch.req_count <= n and 0 <= ch.rsp_count <= n
            assert (ch.req_hp + ch.req_count) % n == ch.req_tp, "I1"
            if self.dev.policies["ring-full-rule"] == "keep-one-free":
                assert ch.req_count == arith.ring_occupancy(ch.req_hp, ch.req_tp, n)
            g = self.obs.g[ch.dbc]
            assert g.hp == ch.req_hp and g.tp == ch.rsp_tp
            if g.clean_rsp:
                assert sum(g.unread) == ch.rsp_count, "I2: device and host disagree on unread"
                assert g.transitions == ch.empty_transitions

    @invariant()
    def msis_bounded(self) -> None:
        per_vector = [0] * self.dev.intc.vectors
        for ch in self.dev.ch:
            bound = ch.empty_transitions + ch.msi_forced
            assert ch.msi_raised <= bound, "I4"
            per_vector[0 if self.dev.single_msi else ch.dbc + 1] += ch.msi_raised
        assert per_vector == self.dev.intc.raised, "I4: intc raises != channel raises"

    @invariant()
    def sems_in_range(self) -> None:
        for ch in self.dev.ch:
            assert all(0 <= s <= SEM_MAX for s in ch.sems), "I5"

    @invariant()
    def bytes_accounted(self) -> None:
        s = self.dev.stats
        assert s.bytes_moved <= s.bytes_requested
        if s.dma_faults == 0:
            in_flight = sum(
                r.elem.pcie_dma_len
                for c in self.dev.ch
                for r in c.inflight.values()
                if r.xfer and not r.dma_done
            )
            dropped = 0  # deactivation drops in-flight transfers
            assert s.bytes_moved + in_flight + dropped <= s.bytes_requested


def _row_id(p: Policies) -> str:
    return p.label()


@pytest.mark.parametrize("policies", ROWS, ids=_row_id)
def test_device_machine(policies: Policies) -> None:
    machine = type("Machine", (DeviceMachine,), {"policies": policies})
    base = settings()
    run_state_machine_as_test(
        machine, settings=settings(base, max_examples=max(4, base.max_examples // 4))
    )


def test_device_machine_single_msi() -> None:
    machine = type("Machine", (DeviceMachine,), {"single_msi": True})
    run_state_machine_as_test(machine, settings=settings(settings(), max_examples=10))


class _TooBigRing(Device):
    """Writes responses past the host's head (breaks I2)."""

    def _capacity(self, ch: Any) -> int:
        return ch.nelem + 3


class _MsiStorm(Device):
    """Raises an MSI for every response despite msi-empty-transition=host-head (breaks I4)."""

    def _respond(self, ch: Any, rec: Any) -> None:
        super()._respond(ch, rec)
        ch.msi_due = True


class _Underflow(Device):
    """Decrements below zero (breaks I5)."""

    def _sem_apply(self, ch: Any, op: Any, index: int, value: int, dry: bool = False) -> bool:
        if op == 3 and ch.sems[index] == 0:
            if not dry:
                ch.sems[index] = -1
            return True
        return super()._sem_apply(ch, op, index, value, dry)


class _ShortDma(Device):
    """Reports a full transfer but moves one byte less (breaks I6)."""

    def _dma(self, ch: Any, rec: Any) -> None:
        n = rec.elem.pcie_dma_len
        super()._dma(ch, rec)
        if rec.moved == n and n > 1:
            self.dev_mem.write(
                rec.elem.pcie_dma_dest_addr + n - 1, b"\xa5"
            ) if rec.dir is Dir.TO_DEV else self.host_mem.write(
                rec.elem.pcie_dma_dest_addr + n - 1, b"\xa5"
            )
            self._emit(
                "dma",
                ch.dbc,
                rec.seq,
                rec.dir,
                rec.elem.pcie_dma_source_addr,
                rec.elem.pcie_dma_dest_addr,
                n,
                n,
            )


@pytest.mark.parametrize(
    "broken", [_TooBigRing, _MsiStorm, _Underflow, _ShortDma], ids=lambda c: c.__name__
)
def test_machine_catches_a_broken_device(broken: type[Device]) -> None:
    """The invariants can fail: each mutant device is caught by the machine."""

    class BrokenMachine(DeviceMachine):
        def __init__(self) -> None:
            super().__init__()
            self.dev = broken(num_dbc=3, policies=self.policies)
            self.obs = Observer(self.dev)
            self.dev.observers.append(self.obs)
            self.host_buf = self.dev.host_mem.alloc(4096)
            self.dev.host_mem.write(self.host_buf, bytes(range(256)) * 16)

    with pytest.raises(AssertionError):
        run_state_machine_as_test(
            BrokenMachine,
            settings=settings(
                settings(),
                max_examples=300,
                stateful_step_count=60,
                report_multiple_bugs=False,
                database=None,
                phases=[Phase.generate],
            ),
        )
