"""The search engine behind :class:`~.states.ChannelStates` (rules L1-L9 in :mod:`.states`):
the state memories shared by every copy, a state's identity, the windows of L8, the
invisible (L1) and visible (L2) device steps, and the bounded search over them (L4-L6)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from qaicmodel import arith
from qaicmodel.spec.dbc.channel import Advance, Channel, Consume, InFlight, RaiseMsi, Stage
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.dbc.engine import STAGE_TABLE
from qaicmodel.spec.dbc.memory import DevMemory, HostMemory
from qaicmodel.spec.dbc.wire import CMD_COMPLETION, REQ_SIZE, RSP_SIZE, RequestElem, SemOp
from qaicmodel.spec.policies import (
    FENCE_SCOPE,
    FORCE_MSI,
    MSI_WHILE_MASKED,
    PROCESSING_ORDER,
    RESPONSE_ORDER,
    SEM_INC_AMOUNT,
    FenceScope,
    ForceMsi,
    MsiWhileMasked,
    Policies,
    ProcessingOrder,
    ResponseOrder,
    SemIncAmount,
)

__all__ = ["Frontier", "StateMem", "SinkDevMemory", "ELEM_RSP", "ELEM_NONE"]

#: C7: an element that asks for a response and does nothing else / one that does nothing
ELEM_RSP = RequestElem(pcie_dma_cmd=CMD_COMPLETION).pack()
ELEM_NONE = bytes(REQ_SIZE)
_EMPTY = memoryview(b"")


class StateMem(HostMemory):
    """Host memory of one possible state: the request ring is the host's (one bytearray
    shared by every state of the channel -- host writes are the same in all of them, and
    the device never writes it), the response ring is the state's own, every other
    address is a sink (a trace shows no buffer contents; C2)."""

    def __init__(self, req: bytearray, req_q: int, rsp_q: int, nelem: int) -> None:
        self.req, self.req_q = req, req_q
        self.rsp, self.rsp_q = bytearray(nelem * RSP_SIZE), rsp_q
        self.req_end = req_q + len(req)
        self.rsp_end = rsp_q + nelem * RSP_SIZE
        self.forced: bytes | None = None  # L7: the element the next consume reads

    def clone(self) -> StateMem:
        m = object.__new__(StateMem)
        m.__dict__.update(self.__dict__)
        m.rsp = bytearray(self.rsp)
        return m

    def read(self, addr: int, length: int) -> bytes:
        if self.req_q <= addr < self.req_end:
            if self.forced is not None:
                return self.forced
            off = addr - self.req_q
            return bytes(self.req[off : off + length])
        if self.rsp_q <= addr < self.rsp_end:
            off = addr - self.rsp_q
            return bytes(self.rsp[off : off + length])
        return bytes(min(max(length, 0), 4096))

    def write(self, addr: int, data: Any) -> None:
        if self.rsp_q <= addr < self.rsp_end:
            off = addr - self.rsp_q
            self.rsp[off : off + len(data)] = bytes(data)

    def view(self, addr: int, length: int) -> Any:
        return _EMPTY  # DMA data is never observed (C2)

    def mapped(self, addr: int, length: int) -> bool:
        return True

    def regions(self) -> list[tuple[int, int]]:
        return [(0, 1 << 64)]


class SinkDevMemory(DevMemory):
    """Device DDR for replay: never observed in a trace (C2); addresses are still checked
    (a doorbell or transfer beyond the device's address space faults)."""

    def write(self, addr: int, data: Any) -> None:
        self._check(addr, len(data))

    def read(self, addr: int, length: int) -> bytes:
        self._check(addr, length)
        return bytes(min(length, 4096))


def _copier(cls: type) -> Callable[[Any], Any]:
    """A shallow copy for an attrs slotted class (copy.copy goes through __reduce_ex__,
    several times slower; the checker copies states on every branch)."""
    names = tuple(a.name for a in cls.__attrs_attrs__)  # type: ignore[attr-defined]
    new = object.__new__

    def cp(obj: Any) -> Any:
        t: Any = new(cls)
        for n in names:
            object.__setattr__(t, n, getattr(obj, n))
        return t

    return cp


_copy_channel = _copier(Channel)
_copy_rec = _copier(InFlight)


def _clone(s: Device, d: int) -> Device:
    """A copy of ``s`` in which channel ``d`` may change (the only live channel).  The
    statistics object is shared: the checker never reads it."""
    t = object.__new__(Device)
    t.__dict__.update(s.__dict__)
    ch = s.ch[d]
    c2 = _copy_channel(ch)
    c2.sems = list(ch.sems)
    infl = {}
    for k, r in ch.inflight.items():
        r2 = _copy_rec(r)
        if r.pre:
            r2.pre = list(r.pre)
        if r.post:
            r2.post = list(r.post)
        infl[k] = r2
    c2.inflight = infl
    chs = list(s.ch)
    chs[d] = c2
    t.ch = chs
    t.intc = s.intc.copy()
    t.violations = []
    hm = s.host_mem
    assert isinstance(hm, StateMem)
    t.host_mem = hm.clone()
    return t


class Frontier:
    """A channel's frontier of possible device states and the device steps between events."""

    def __init__(
        self,
        d: int,
        nelem: int,
        req_q: int,
        rsp_q: int,
        *,
        policies: Policies,
        single_msi: bool,
        contents_known: bool,
        watch_msi: bool,
        max_states: int,
        ring: bytearray | None = None,
    ) -> None:
        self.d, self.nelem, self.req_q, self.rsp_q = d, nelem, req_q, rsp_q
        self.policies = policies
        self.single_msi = single_msi
        self.contents_known = contents_known
        self.watch_msi = watch_msi
        self.max_states = max_states
        self.ring = ring if ring is not None else bytearray(nelem * REQ_SIZE)
        p = policies
        self.exact = p[FENCE_SCOPE] is FenceScope.ALL_OUTSTANDING  # L5
        self.fifo = p[PROCESSING_ORDER] is ProcessingOrder.FIFO
        self.forced_honoured = p[FORCE_MSI] is ForceMsi.HONOURED
        self.every = False  # msi-empty-transition has one reading now (issue #13 item 3)
        self.lost_when_masked = p[MSI_WHILE_MASKED] is MsiWhileMasked.LOST
        # L7: may an element whose content the trace does not show be a no-op?
        self.variants: tuple[bytes | None, ...] = (None,)
        if not contents_known:
            dominant = not self.fifo and p[RESPONSE_ORDER] is ResponseOrder.COMPLETION_ORDER
            self.variants = (ELEM_RSP,) if dominant else (ELEM_RSP, ELEM_NONE)
        self.force_slots: set[int] = set()  # slots whose element has the force-MSI bit
        self.symmetric = (
            not self.exact and not self.fifo and p[RESPONSE_ORDER] is ResponseOrder.COMPLETION_ORDER
        )  # L8
        self.truncated = False
        self.reported = False  # the checker has said so (C11)
        self.peak = 1
        self.vector = 0 if single_msi else d + 1
        s = Device(
            num_dbc=d + 1,
            policies=policies,
            single_msi=single_msi,
            host_mem=StateMem(self.ring, req_q, rsp_q, nelem),
            dev_mem=SinkDevMemory(),
        )
        s.activate(d, req_q, rsp_q, nelem)
        s.qmarks = (0,)  # type: ignore[attr-defined]  # L8 window boundaries
        self.states: list[Device] = [s]

    # -- identity of a state ---------------------------------------------------------
    def key(self, s: Device) -> tuple[Any, ...]:
        ch = s.ch[self.d]
        if self.symmetric:
            # L8: saturated requests all wait on a visible step of their own and constrain
            # nothing else, so requests with equal contents are interchangeable
            infl: tuple[Any, ...] = tuple(sorted(self._sig(r) for r in ch.inflight.values()))
        else:
            infl = tuple(
                (r.slot, r.pos, r.code, r.wants_response, len(r.pre), len(r.post), r.dma_done)
                for r in ch.inflight.values()
            )
        k: tuple[Any, ...] = (ch.active, ch.req_hp, ch.req_count, ch.rsp_tp, ch.rsp_count, infl)
        if self.contents_known and ch.rsp_count:
            hm = s.host_mem
            assert isinstance(hm, StateMem)
            a = ch.rsp_hp * RSP_SIZE
            b = a + ch.rsp_count * RSP_SIZE
            raw = hm.rsp[a:b] if b <= len(hm.rsp) else hm.rsp[a:] + hm.rsp[: b - len(hm.rsp)]
            if self.symmetric:
                k += (self._windows(s, bytes(raw)),)
            else:
                k += (bytes(raw),)
        if self.exact:
            k += (tuple(ch.sems),)
        if self.watch_msi:  # last: dedup's L9 order looks at these three
            v = self.vector
            k += (ch.msi_due, s.intc.pending(v), s.intc.masked(v))
        return k

    # -- L8: windows of responses in any order ---------------------------------------------
    @staticmethod
    def _bounds(s: Device, d: int) -> list[int]:
        """Window boundaries inside the unread part of the ring, as offsets 0..rsp_count."""
        ch = s.ch[d]
        start = ch.responses - ch.rsp_count
        out = [m - start for m in s.qmarks if start < m < ch.responses]  # type: ignore[attr-defined]
        return [0, *out, ch.rsp_count]

    def _windows(self, s: Device, raw: bytes) -> tuple[tuple[bytes, ...], ...]:
        b = self._bounds(s, self.d)
        return tuple(
            tuple(sorted(raw[i * RSP_SIZE : (i + 1) * RSP_SIZE] for i in range(x, y)))
            for x, y in zip(b, b[1:], strict=False)
        )

    def barrier(self) -> None:
        """An event of this channel: responses written after it follow those before (L8)."""
        if not self.symmetric:
            return
        d = self.d
        for s in self.states:
            r = s.ch[d].responses
            m = s.qmarks  # type: ignore[attr-defined]
            if m[-1] != r:
                start = r - s.ch[d].rsp_count
                s.qmarks = (*(x for x in m if x >= start), r)  # type: ignore[attr-defined]

    def rsp_states(self, idx: int, data: bytes) -> list[Device]:
        """States in which response slot ``idx`` (written, unread) holds ``data`` (L8)."""
        d, n = self.d, self.nelem
        off = idx * RSP_SIZE
        if not self.symmetric:
            return [s for s in self.states if s.host_mem.rsp[off : off + RSP_SIZE] == data]  # type: ignore[attr-defined]
        out: list[Device] = []
        for s in self.states:
            ch = s.ch[d]
            pos = int(arith.ring_occupancy(ch.rsp_hp, idx, n))
            b = self._bounds(s, d)
            lo = max(x for x in b if x <= pos)
            hi = min(x for x in b if x > pos)
            rsp = s.host_mem.rsp  # type: ignore[attr-defined]
            slots = [(ch.rsp_hp + i) % n for i in range(lo, hi)]
            words = [bytes(rsp[k * RSP_SIZE : (k + 1) * RSP_SIZE]) for k in slots]
            if data not in words:
                continue
            rest = list(words)
            rest.remove(data)
            start = ch.responses - ch.rsp_count
            before = pos - lo

            choices = {tuple(sorted(c)) for c in itertools.combinations(range(len(rest)), before)}
            for ch_idx in sorted(choices):
                t = _clone(s, d) if len(choices) > 1 else s
                pre = [rest[i] for i in ch_idx]
                post = [rest[i] for i in range(len(rest)) if i not in ch_idx]
                trsp = t.host_mem.rsp  # type: ignore[attr-defined]
                for k, w in zip(slots, [*pre, data, *post], strict=True):
                    trsp[k * RSP_SIZE : (k + 1) * RSP_SIZE] = w
                marks = set(t.qmarks) | {start + pos, start + pos + 1}  # type: ignore[attr-defined]
                t.qmarks = tuple(sorted(m for m in marks if m >= start))  # type: ignore[attr-defined]
                out.append(t)
        return self.dedup(out)

    # -- L1: invisible steps ------------------------------------------------------------
    def _finishes(self, rec: Any, after: int) -> bool:
        """Would ``rec`` be finished once it stands at plan position ``after``?"""
        plan = rec.plan
        pos = after
        while plan[pos] is not Stage.DONE:
            if not STAGE_TABLE[plan[pos]].empty(rec):
                return False
            pos += 1
        return True

    def _sets_due(self, s: Device, a: Advance) -> bool:
        """Does this Advance set the channel's MSI due (force-MSI at finish, possibly for
        requests the FIFO cascade finishes after it)?"""
        if not (self.watch_msi and self.forced_honoured):
            return False
        ch = s.ch[self.d]
        if ch.msi_due:
            return False
        rec = ch.inflight[a.seq]
        st = rec.stage
        if st in (Stage.PRESYNC, Stage.POSTSYNC):
            todo = rec.pre if st is Stage.PRESYNC else rec.post
            if len(todo) > 1:
                return False
        if not self._finishes(rec, rec.pos + 1):
            return False
        if rec.elem.force_msi:
            return True
        if not self.fifo:
            return False
        recs = list(ch.inflight.values())
        for r in recs[recs.index(rec) + 1 :]:  # the FIFO cascade (engine._skip_trivial)
            if not self._finishes(r, r.pos):
                return False
            if r.elem.force_msi:
                return True
        return False

    def _visible(self, s: Device, a: Any) -> bool:
        if self.exact or not isinstance(a, Advance):
            return True
        rec = s.ch[self.d].inflight[a.seq]
        return rec.stage is Stage.RESPONSE or self._sets_due(s, a)

    def _releases(self, s: Device) -> list[tuple[int, int]]:
        """C2: (index, value) an NSP write would need to release a semaphore wait; only the
        earliest user of an index may act on it (R5), only the oldest under fifo."""
        ch = s.ch[self.d]
        out = []
        busy: set[int] = set()
        for rec in ch.inflight.values():
            st = rec.stage
            if st in (Stage.PRESYNC, Stage.POSTSYNC) and not s.is_enabled(Advance(self.d, rec.seq)):
                todo = rec.pre if st is Stage.PRESYNC else rec.post
                if todo:
                    cmd = todo[0]
                    if cmd.index not in busy:
                        need = {
                            SemOp.WAIT_EQ: cmd.value,
                            SemOp.WAIT_GE: cmd.value,
                            SemOp.P: 1,
                            SemOp.DEC: cmd.value
                            if self.policies[SEM_INC_AMOUNT] is not SemIncAmount.BY_ONE
                            else 1,
                        }.get(cmd.op)
                        if need is not None and ch.sems[cmd.index] != need:
                            out.append((cmd.index, need))
            if self.fifo:
                break
            if rec.sem_indices and not rec.sems_done:
                busy |= rec.sem_indices
        return out

    def saturate(self, s: Device) -> None:
        """L1: take every invisible step (and NSP release) until none is left."""
        if self.exact:
            return
        d = self.d
        while True:
            for a in s.enabled():
                if type(a) is Advance and not self._visible(s, a):
                    s.step(a)
                    break
            else:
                rel = self._releases(s)
                if not rel:
                    return
                for idx, val in rel:
                    s.nsp_sem(d, idx, int(SemOp.INIT), val)
                if not any(type(a) is Advance and not self._visible(s, a) for a in s.enabled()):
                    return

    # -- L2: visible steps -------------------------------------------------------------
    def _consume(self, s: Device, variant: bytes | None) -> None:
        hm = s.host_mem
        assert isinstance(hm, StateMem)
        hm.forced = variant
        s.step(Consume(self.d))
        hm.forced = None
        self.saturate(s)

    def _raise_matters(self, s: Device) -> bool:
        """L9: in a search whose goal ignores the MSI state, raising the due MSI can wait
        until after the search (it commutes, and a later raise leaves a greater MSI state)
        unless another step may set the MSI due again: a response into an empty ring, any
        response under every-response, a force-MSI finish."""
        ch = s.ch[self.d]
        if ch.rsp_count == 0 or self.every:
            return True
        return self.forced_honoured and (
            bool(self.force_slots) or any(r.elem.force_msi for r in ch.inflight.values())
        )

    def successors(self, s: Device, consume: str, msi_free: bool = False) -> list[Device]:
        """States one visible step away (``consume``: "none", "step", "lazy" -- L4;
        ``msi_free``: the goal ignores the MSI state, L9)."""
        d = self.d
        ch = s.ch[d]
        out: list[Device] = []
        for a in s.enabled():
            if type(a) is Consume:
                continue
            if type(a) is RaiseMsi and (
                not self.watch_msi or (msi_free and not self._raise_matters(s))
            ):
                continue
            if self._visible(s, a):
                t = _clone(s, d)
                t.step(a)
                self.saturate(t)
                out.append(t)
        if self.exact:
            for idx, val in self._exact_releases(s):
                t = _clone(s, d)
                t.nsp_sem(d, idx, int(SemOp.INIT), val)
                out.append(t)
        if ch.req_count > 0 and consume != "none":
            for var in self.variants:
                t = _clone(s, d)
                if consume == "step" or self.exact:
                    self._consume(t, var)
                    out.append(t)
                    continue
                # lazy: consume until the new request stays in flight or sets the MSI due
                while True:
                    tc = t.ch[d]
                    due0, seq = tc.msi_due, tc.next_seq
                    self._consume(t, var)
                    tc = t.ch[d]
                    if tc.msi_due != due0:
                        out.append(t)
                        break
                    if seq in tc.inflight:
                        # L8: a request equal to one already waiting adds nothing that
                        # answering the waiting one first (then consuming) does not give
                        if not (
                            self.symmetric
                            and self._sig(tc.inflight[seq])
                            in {self._sig(r) for r in ch.inflight.values()}
                        ):
                            out.append(t)
                        break
                    if tc.req_count == 0:
                        break
        return out

    @staticmethod
    def _sig(r: Any) -> tuple[Any, ...]:
        """What identifies a waiting request under L8 (its slot and sequence do not)."""
        return (r.elem.req_id, r.elem.pcie_dma_cmd, r.pos, r.code, r.wants_response)

    def _exact_releases(self, s: Device) -> list[tuple[int, int]]:
        """L5: the first checker's NSP releases (every blocked semaphore step)."""
        ch = s.ch[self.d]
        out = []
        for rec in ch.inflight.values():
            if rec.stage not in (Stage.PRESYNC, Stage.POSTSYNC):
                continue
            if s.is_enabled(Advance(self.d, rec.seq)):
                continue
            todo = rec.pre if rec.stage is Stage.PRESYNC else rec.post
            if not todo:
                continue
            cmd = todo[0]
            need = {
                SemOp.WAIT_EQ: cmd.value,
                SemOp.WAIT_GE: cmd.value,
                SemOp.P: 1,
                SemOp.DEC: cmd.value
                if self.policies[SEM_INC_AMOUNT] is not SemIncAmount.BY_ONE
                else 1,
            }.get(cmd.op)
            if need is not None and ch.sems[cmd.index] != need:
                out.append((cmd.index, need))
        return out

    def search(
        self,
        match: Callable[[Device], bool],
        consume: str = "lazy",
        viable: Callable[[Device], bool] | None = None,
        start: list[Device] | None = None,
        raise_first: bool = False,
        msi_free: bool = False,
    ) -> list[Device]:
        """L4: the first states on every path from the frontier (or ``start``) that satisfy
        ``match``; ``raise_first`` / ``msi_free``: L9's reductions for searches for an MSI /
        for a goal that ignores the MSI state."""
        if consume == "lazy" and len(self.variants) > 1:
            consume = "step"
        key = self.key
        seen: set[tuple[Any, ...]] = set()
        todo: list[tuple[Device, tuple[Any, ...]]] = []
        found: list[tuple[Device, tuple[Any, ...]]] = []
        for s in self.states if start is None else start:
            k = key(s)
            if k not in seen:
                seen.add(k)
                todo.append((s, k))
        while todo:
            s, k = todo.pop()
            if match(s):
                found.append((s, k))
                continue
            if raise_first and s.ch[self.d].msi_due:
                t = _clone(s, self.d)
                t.step(RaiseMsi(self.d))
                succ = [t]
            else:
                succ = self.successors(s, consume, msi_free)
            for t in succ:
                if viable is not None and not viable(t):
                    continue
                k = key(t)
                if k in seen:
                    continue
                if len(seen) >= self.max_states:
                    self.truncated = True
                    todo = []
                    break
                seen.add(k)
                todo.append((t, k))
        self.peak = max(self.peak, len(seen))
        return self._dedup_keyed(found)

    def dedup(self, states: list[Device]) -> list[Device]:
        """Drop duplicates and states below another in the MSI order (L9)."""
        if len(states) < 2:
            return states
        return self._dedup_keyed([(s, self.key(s)) for s in states])

    def _dedup_keyed(self, pairs: list[tuple[Device, tuple[Any, ...]]]) -> list[Device]:
        if len(pairs) < 2:
            return [s for s, _k in pairs]
        out: dict[tuple[Any, ...], tuple[int, Device]] = {}
        for s, k in pairs:
            rank = 0
            if self.watch_msi:  # the key ends with (msi_due, pending, masked)
                rank = 2 * k[-3] + k[-2]
                k = k[:-3] + k[-1:]
            old = out.get(k)
            if old is None or old[0] < rank:
                out[k] = (rank, s)
        return [s for _r, s in out.values()]
