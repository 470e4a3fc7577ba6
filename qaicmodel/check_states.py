"""The checker's per-channel state sets: device states closed *lazily* under device steps.

``qaicmodel check`` (qaicmodel/check.py) asks, per event, "is there a run of a conforming
device that explains what the host saw?"  Enumerating every interleaving of the device's
own steps before every event (the first checker, issue #11: ~240 successors per event) is
exponential in the requests in flight.  This module keeps instead, per channel, a small
*frontier* of device states (each a :class:`~qaicmodel.spec.dbc.device.Device` with one
live channel) and treats the consistent set as *everything the device can reach from the
frontier by its own steps*.  Rules (the argument for each is in docs/check-design.md):

  L1  Invisible steps are taken eagerly ("saturation"): an Advance that writes no
      response and changes no MSI state, and the NSP releasing a semaphore wait (C2).
      Under fence-scope earlier-* every stage guard is monotone in the progress of the
      other requests (R5 FIFO-per-index, R7 fences on *earlier* transfers, R10 response
      order, processing-order=fifo), so these steps commute, stay enabled once enabled
      and never disable a visible step: the saturated state is unique and dominates every
      partially advanced one.  Semaphore values are never observable and the NSP may set
      them at any time (C2), so they are not part of a state's identity.
  L2  Visible steps are: Consume (moves REQ_HP), an Advance that writes (or drops) a
      response or sets the channel's MSI due (force-MSI, possibly through the FIFO
      cascade), and RaiseMsi.  The frontier is advanced only when an observation needs it
      (REQ_HP / RSP_TP reads, MSIs, the ``idle`` event); host actions are applied to the
      frontier states directly.
  L3  Host actions commute with device steps and their legality is monotone in device
      progress (more consumed -> more free space; more responses -> more to free), so a
      host action is legal in every consistent state iff it is legal in every frontier
      state.  One exception: masking a vector under ``msi-while-masked=lost`` does not
      commute with RaiseMsi, so the frontier is first extended by the states in which the
      due MSI was raised before the mask.
  L4  An observation keeps the *first* states on every path that explain it (a search
      over visible steps that does not expand matched states): every later state on such
      a path is reachable from a kept one, so nothing is lost.  Consumes are postponed
      until they create a visible possibility (newer requests never constrain older ones
      under L1's policies); a REQ_HP read is explained by consuming exactly the number of
      elements it shows (no search) unless one of them sets an MSI due at consume.
  L5  ``fence-scope=all-outstanding`` breaks L1 (a request that passes its fence blocks
      the fences of *older* ones): there every step is visible and every search explores
      all of them (the first checker's closure, with L3/L4 on top).
  L6  A search that hits ``max_states`` sets :attr:`ChannelStates.truncated`: the states
      kept are still real runs (host violations found in them stand) but a missing
      explanation is no longer evidence -- the checker reports DEV-... findings on that
      channel as inconclusive (issue #11 "soundness").
  L7  Without ``req`` events (C7) each consumed element either asks for a response or does
      nothing; under rule-permitted + completion-order the one that asks dominates (it may
      never answer), elsewhere both are kept.
  L9  MSI state is ordered by what it still allows: (due, pending) = (T,T) > (T,F) > (F,T)
      > (F,F) -- a due MSI may be raised at any later time (the device chooses; it can wait
      for an unmask), a pending one may be taken or not.  Among states equal otherwise only
      the greatest is kept.  In a search for an MSI, a state with one due takes only the
      RaiseMsi step: every other step commutes with it or leaves a smaller MSI state.
  L10 Register-only traces under L8's policies need no device copies at all: see
      :class:`CounterStates`.
  L8  Symmetry (rule-permitted + completion-order, L1's policies): requests that are ready
      to respond between two events of the channel are independent, so the responses
      written in that window may lie in the ring in any order.  A state records the
      window boundaries (``qmarks``, in the channel's response count) and is identified
      by the *multiset* of each window's responses; an ``rsp`` read fixes the element it
      shows at its slot (all arrangements that put it there are generated).  This turns
      the k! orders of k independent responses into 2^k sets -- still exact.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Protocol

from qaicmodel import arith
from qaicmodel.spec.dbc.channel import (
    Advance,
    Channel,
    Consume,
    HostViolation,
    InFlight,
    RaiseMsi,
    Stage,
)
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.dbc.engine import STAGE_TABLE
from qaicmodel.spec.dbc.memory import DevMemory, HostMemory
from qaicmodel.spec.dbc.wire import (
    CMD_COMPLETION,
    CMD_DIR_MASK,
    REQ_SIZE,
    RSP_SIZE,
    RequestElem,
    SemOp,
)
from qaicmodel.spec.policies import Policies

__all__ = ["ChannelStates", "CounterStates", "StateSet", "StateMem", "SinkDevMemory"]

#: C7: an element that asks for a response and does nothing else / one that does nothing
ELEM_RSP = RequestElem(pcie_dma_cmd=CMD_COMPLETION).pack()
ELEM_NONE = bytes(REQ_SIZE)
_EMPTY = memoryview(b"")


class StateSet(Protocol):
    """What the checker (check.py) asks of a channel's frontier; implemented by
    :class:`ChannelStates` (device copies) and :class:`CounterStates` (L10)."""

    states: list[Any]
    symmetric: bool
    truncated: bool
    reported: bool
    peak: int

    def barrier(self) -> None: ...
    def host(self, act: Callable[[Any], None]) -> tuple[HostViolation, dict[str, Any]] | None: ...
    def mask(self, on: bool) -> None: ...
    def note_slot(self, idx: int, elem: RequestElem) -> None: ...
    def read_req_hp(self, val: int) -> list[Any]: ...
    def read_rsp_tp(self, val: int) -> list[Any]: ...
    def rsp_states(self, idx: int, data: bytes) -> list[Any]: ...
    def rsp_words(self, idx: int) -> list[str]: ...
    def msi(self) -> tuple[list[Any], bool]: ...
    def take_msi(self, ok: list[Any]) -> None: ...
    def may_have_lost(self) -> bool: ...
    def stranded(self) -> Any: ...
    def req_tp(self) -> int: ...
    def resync(self, req_hp: int, req_tp: int, rsp_hp: int, rsp_tp: int) -> None: ...
    def busy_slot(self, idx: int) -> Any: ...
    def unwritten(self, idx: int) -> Any: ...
    def read_host_reg(self, reg: int, val: int) -> list[Any]: ...
    def reg_values(self, reg: int) -> list[int]: ...
    def describe(self, s: Any, n: int | None = None) -> dict[str, Any]: ...


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
            return bytes(self.req[off:off + length])
        if self.rsp_q <= addr < self.rsp_end:
            off = addr - self.rsp_q
            return bytes(self.rsp[off:off + length])
        return bytes(min(max(length, 0), 4096))

    def write(self, addr: int, data: Any) -> None:
        if self.rsp_q <= addr < self.rsp_end:
            off = addr - self.rsp_q
            self.rsp[off:off + len(data)] = bytes(data)

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


class ChannelStates:
    """The frontier of possible device states of one activated channel (L1-L7)."""

    def __init__(self, d: int, nelem: int, req_q: int, rsp_q: int, *, policies: Policies,
                 single_msi: bool, contents_known: bool, watch_msi: bool,
                 max_states: int, ring: bytearray | None = None) -> None:
        self.d, self.nelem, self.req_q, self.rsp_q = d, nelem, req_q, rsp_q
        self.policies = policies
        self.single_msi = single_msi
        self.contents_known = contents_known
        self.watch_msi = watch_msi
        self.max_states = max_states
        self.ring = ring if ring is not None else bytearray(nelem * REQ_SIZE)
        p = policies
        self.exact = p["fence-scope"] == "all-outstanding"  # L5
        self.fifo = p["processing-order"] == "fifo"
        self.forced_honoured = p["force-msi"] == "honoured"
        self.every = p["msi-empty-transition"] == "every-response"
        self.lost_when_masked = p["msi-while-masked"] == "lost"
        # L7: may an element whose content the trace does not show be a no-op?
        self.variants: tuple[bytes | None, ...] = (None,)
        if not contents_known:
            dominant = not self.fifo and p["response-order"] == "completion-order"
            self.variants = (ELEM_RSP,) if dominant else (ELEM_RSP, ELEM_NONE)
        self.force_slots: set[int] = set()  # slots whose element has the force-MSI bit
        self.symmetric = (not self.exact and not self.fifo
                          and p["response-order"] == "completion-order")  # L8
        self.truncated = False
        self.reported = False  # the checker has said so (C11)
        self.peak = 1
        self.vector = 0 if single_msi else d + 1
        s = Device(num_dbc=d + 1, policies=policies, single_msi=single_msi,
                   host_mem=StateMem(self.ring, req_q, rsp_q, nelem), dev_mem=SinkDevMemory())
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
            infl = tuple((r.slot, r.pos, r.code, r.wants_response, len(r.pre), len(r.post),
                          r.dma_done) for r in ch.inflight.values())
        k: tuple[Any, ...] = (ch.active, ch.req_hp, ch.req_count, ch.rsp_tp, ch.rsp_count,
                              infl)
        if self.contents_known and ch.rsp_count:
            hm = s.host_mem
            assert isinstance(hm, StateMem)
            a = ch.rsp_hp * RSP_SIZE
            b = a + ch.rsp_count * RSP_SIZE
            raw = hm.rsp[a:b] if b <= len(hm.rsp) else hm.rsp[a:] + hm.rsp[:b - len(hm.rsp)]
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
        return tuple(tuple(sorted(raw[i * RSP_SIZE:(i + 1) * RSP_SIZE] for i in range(x, y)))
                     for x, y in zip(b, b[1:], strict=False))

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
            return [s for s in self.states
                    if s.host_mem.rsp[off:off + RSP_SIZE] == data]  # type: ignore[attr-defined]
        out: list[Device] = []
        for s in self.states:
            ch = s.ch[d]
            pos = int(arith.ring_occupancy(ch.rsp_hp, idx, n))
            b = self._bounds(s, d)
            lo = max(x for x in b if x <= pos)
            hi = min(x for x in b if x > pos)
            rsp = s.host_mem.rsp  # type: ignore[attr-defined]
            slots = [(ch.rsp_hp + i) % n for i in range(lo, hi)]
            words = [bytes(rsp[k * RSP_SIZE:(k + 1) * RSP_SIZE]) for k in slots]
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
                    trsp[k * RSP_SIZE:(k + 1) * RSP_SIZE] = w
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
        for r in recs[recs.index(rec) + 1:]:  # the FIFO cascade (engine._skip_trivial)
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
                        need = {SemOp.WAIT_EQ: cmd.value, SemOp.WAIT_GE: cmd.value, SemOp.P: 1,
                                SemOp.DEC: cmd.value if self.policies["sem-inc-amount"] != "by-one"
                                else 1}.get(cmd.op)
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
        return self.forced_honoured and (bool(self.force_slots) or any(
            r.elem.force_msi for r in ch.inflight.values()))

    def successors(self, s: Device, consume: str, msi_free: bool = False) -> list[Device]:
        """States one visible step away (``consume``: "none", "step", "lazy" -- L4;
        ``msi_free``: the goal ignores the MSI state, L9)."""
        d = self.d
        ch = s.ch[d]
        out: list[Device] = []
        for a in s.enabled():
            if type(a) is Consume:
                continue
            if type(a) is RaiseMsi and (not self.watch_msi or (msi_free and not
                                                               self._raise_matters(s))):
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
                        if not (self.symmetric and self._sig(tc.inflight[seq]) in
                                {self._sig(r) for r in ch.inflight.values()}):
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
            need = {SemOp.WAIT_EQ: cmd.value, SemOp.WAIT_GE: cmd.value, SemOp.P: 1,
                    SemOp.DEC: cmd.value if self.policies["sem-inc-amount"] != "by-one"
                    else 1}.get(cmd.op)
            if need is not None and ch.sems[cmd.index] != need:
                out.append((cmd.index, need))
        return out

    def search(self, match: Callable[[Device], bool], consume: str = "lazy",
               viable: Callable[[Device], bool] | None = None,
               start: list[Device] | None = None, raise_first: bool = False,
               msi_free: bool = False) -> list[Device]:
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

    # -- host actions (L3) ----------------------------------------------------------------
    def host(self, act: Callable[[Device], None]) -> tuple[HostViolation, dict[str, Any]] | None:
        """Apply a host action to every frontier state; the first violation (with the
        description of the state it broke a rule in, before the action) or None."""
        for s in self.states:
            ch = s.ch[self.d]
            regs4 = (ch.req_hp, ch.req_tp, ch.rsp_hp, ch.rsp_tp, ch.req_count, ch.rsp_count,
                     len(ch.inflight), ch.msi_due)
            act(s)
            if s.violations:
                v = s.violations[0]
                s.violations.clear()
                pre = self.describe(s)
                (pre["req_hp"], pre["req_tp"], pre["rsp_hp"], pre["rsp_tp"], pre["unconsumed"],
                 pre["responses_unread"], pre["in_flight"], pre["msi_due"]) = regs4
                return v, pre
        return None

    def mask(self, on: bool) -> None:
        v = self.vector
        if not on and self.lost_when_masked and self.watch_msi:
            # L3: the due MSI may have been raised before the mask (and would be lost after)
            extra = self.search(lambda s: s.intc.pending(v))
            self.states = self.dedup(self.states + extra)
        for s in self.states:
            if on:
                s.intc.unmask(v)
            else:
                s.intc.mask(v)

    def note_slot(self, idx: int, elem: RequestElem) -> None:
        """The host wrote request slot ``idx`` (into the shared ring); remember whether it
        carries the force-MSI bit (L4's REQ_HP shortcut must not skip an MSI)."""
        if elem.force_msi:
            self.force_slots.add(idx)
        else:
            self.force_slots.discard(idx)

    # -- observations ---------------------------------------------------------------------
    def read_req_hp(self, val: int) -> list[Device]:
        """L4: states in which REQ_HP reads ``val``."""
        d, n = self.d, self.nelem
        last = self.policies["head-index-meaning"] == "last-consumed"
        want = int(arith.ring_advance(val, 1, n)) if last else val
        out: list[Device] = []
        for s in self.states:
            ch = s.ch[d]
            k = (want - ch.req_hp) % n
            cands = [m for m in (k, k + n) if m <= ch.req_count]
            if not cands:
                continue
            slots = {(ch.req_hp + i) % n for i in range(max(cands))}
            easy = (not self.exact and len(self.variants) == 1
                    and not (self.watch_msi and self.forced_honoured and slots & self.force_slots))
            if not easy:
                target = {ch.consumed + m for m in cands}
                top = max(target)
                def goal(t: Device, g: set[int] = target) -> bool:
                    return t.ch[d].consumed in g

                def below(t: Device, g: int = top) -> bool:
                    return t.ch[d].consumed <= g

                out += self.search(goal, "step", below, start=[s], msi_free=True)
                continue
            for m in cands:
                t = _clone(s, d) if len(cands) > 1 else s
                for _ in range(m):
                    self._consume(t, self.variants[0])
                out.append(t)
        return self.dedup(out)

    def read_rsp_tp(self, val: int) -> list[Device]:
        d, n = self.d, self.nelem
        start = [s for s in self.states if self._may_answer(s, (val - s.ch[d].rsp_tp) % n)]
        if not start:
            return []
        return self.search(lambda s: s.ch[d].rsp_tp == val, start=start, msi_free=True)

    def _may_answer(self, s: Device, need: int) -> bool:
        """Can ``need`` more responses still be written from ``s``?  (an upper bound: every
        request in flight or published that asks for one; C7: every published element)"""
        if need == 0:
            return True
        ch = s.ch[self.d]
        room = (ch.nelem if self.policies["ring-full-rule"] == "all-slots" else ch.nelem - 1)
        if ch.rsp_count + need > room and self.policies["response-ring-full"] == "stall":
            return False
        more = sum(1 for r in ch.inflight.values() if r.wants_response and r.stage is not Stage.DONE)
        if not self.contents_known or self.policies["illegal-direction"] == "error-always":
            return more + ch.req_count >= need
        n = ch.nelem
        for i in range(ch.req_count):
            slot = (ch.req_hp + i) % n
            cmd = self.ring[slot * REQ_SIZE + 3]  # pcie_dma_cmd (wire.REQ_DTYPE)
            if cmd & CMD_COMPLETION or cmd & CMD_DIR_MASK == CMD_DIR_MASK:
                more += 1
        return more >= need

    def msi(self) -> tuple[list[Device], bool]:
        """States in which the host can take the MSI now, and (when there are none) whether
        some state has it pending but masked."""
        v = self.vector
        if self.states and self.states[0].intc.masked(v):
            pend = self.search(lambda s: s.intc.pending(v))
            return [], bool(pend)
        return self.dedup(self.search(lambda s: s.intc.deliverable(v), raise_first=True)), False

    def may_have_lost(self) -> bool:
        """Before an unmask under ``msi-while-masked=lost``: can a due MSI have been raised
        (and lost) while the vector was masked?  (The lazy frontier keeps only the run in
        which it was raised later, L9; the host's missed-event re-check is about the
        other one.)"""
        v = self.vector
        if not (self.lost_when_masked and self.watch_msi):
            return False
        for s in self.states:
            s.lost0 = s.intc.lost[v]  # type: ignore[attr-defined]
        return bool(self.search(lambda s: s.intc.lost[v] > s.lost0))  # type: ignore[attr-defined]

    def stranded(self) -> Device | None:
        """``idle``: a consistent state holding a response the host will never be told of
        (no MSI pending, due or deliverable), or None."""
        d, v = self.d, self.vector
        lost = self.lost_when_masked

        def bad(s: Device) -> bool:
            ch = s.ch[d]
            if not ch.active or ch.rsp_count == 0:
                return False
            if s.intc.masked(v):
                return True  # left masked: nothing will be delivered
            return not (s.intc.pending(v) or (ch.msi_due and not (lost and s.intc.masked(v))))

        found = self.search(bad)
        return found[0] if found else None

    # -- the checker's view (CounterStates offers the same) -----------------------------
    def req_tp(self) -> int:
        return self.states[0].ch[self.d].req_tp

    def resync(self, req_hp: int, req_tp: int, rsp_hp: int, rsp_tp: int) -> None:
        """C5: the one state the four register values seen since a loss describe."""
        n = self.nelem
        ch = self.states[0].ch[self.d]
        ch.req_hp, ch.req_tp, ch.rsp_hp, ch.rsp_tp = req_hp, req_tp, rsp_hp, rsp_tp
        ch.req_count = int(arith.ring_occupancy(req_hp, req_tp, n))
        ch.rsp_count = int(arith.ring_occupancy(rsp_hp, rsp_tp, n))

    def busy_slot(self, idx: int) -> Device | None:
        """A state in which request slot ``idx`` is published and not consumed."""
        d = self.d
        for s in self.states:
            ch = s.ch[d]
            if int(arith.ring_occupancy(ch.req_hp, idx, ch.nelem)) < ch.req_count:
                return s
        return None

    def unwritten(self, idx: int) -> Device | None:
        """A state in which response slot ``idx`` holds no unread response."""
        d = self.d
        for s in self.states:
            ch = s.ch[d]
            if not (idx < ch.nelem and int(arith.ring_occupancy(ch.rsp_hp, idx, ch.nelem))
                    < ch.rsp_count):
                return s
        return None

    def rsp_words(self, idx: int) -> list[str]:
        """The response words slot ``idx`` holds across the frontier (for reports)."""
        off = idx * RSP_SIZE
        return sorted({bytes(s.host_mem.rsp[off:off + RSP_SIZE]).hex()  # type: ignore[attr-defined]
                       for s in self.states})

    def read_host_reg(self, reg: int, val: int) -> list[Device]:
        """REQ_TP / RSP_HP: the same in every state."""
        return self.states if self.states[0].readl(self.d, reg) == val else []

    def reg_values(self, reg: int) -> list[int]:
        return sorted({s.readl(self.d, reg) for s in self.states})

    def take_msi(self, ok: list[Device]) -> None:
        for s in ok:
            s.intc.ack(self.vector)
        self.states = self.dedup(ok)

    def describe(self, s: Device | None, n: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"dbc": self.d}
        if s is not None:
            ch = s.ch[self.d]
            out.update(active=ch.active, nelem=ch.nelem, req_hp=ch.req_hp, req_tp=ch.req_tp,
                       rsp_hp=ch.rsp_hp, rsp_tp=ch.rsp_tp, unconsumed=ch.req_count,
                       responses_unread=ch.rsp_count, in_flight=len(ch.inflight),
                       msi_due=ch.msi_due)
            if self.watch_msi:
                v = self.vector
                out.update(vector=v, masked=s.intc.masked(v), pending=s.intc.pending(v))
        out["possible_states"] = len(self.states) if n is None else n
        return out



# -- L10: register-only traces as counters ---------------------------------------------------

#: a counter state: (req_hp, req_count, waiting, rsp_tp, rsp_count, msi_due, pending, lost)
CState = tuple[int, int, int, int, int, bool, bool, int]


class CounterStates:
    """L10: the frontier of a channel whose request contents the trace does not show, under
    the policies of L8 (rule-permitted, completion-order, earlier-* fences).  By L7 every
    consumed element is one that asks for a response and does nothing else, and by L8 such
    requests are interchangeable -- so a state is a handful of counters: REQ_HP, the
    unconsumed count, the requests waiting to respond, RSP_TP, the unread count and the MSI
    bits (the host-owned REQ_TP, RSP_HP and mask are the channel's).  The transitions are
    those of :class:`~qaicmodel.spec.dbc.device.Device` for that element (``writel``,
    ``_consume``, ``_respond``, ``RaiseMsi``; tests/test_check_counters.py checks both
    engines against each other), at a few microseconds per event instead of a device copy
    per step.  Same interface as :class:`ChannelStates`."""

    symmetric = True

    def __init__(self, d: int, nelem: int, req_q: int, rsp_q: int, *, policies: Policies,
                 single_msi: bool, watch_msi: bool, max_states: int) -> None:
        self.d, self.nelem, self.req_q, self.rsp_q = d, nelem, req_q, rsp_q
        self.policies = p = policies
        self.watch_msi = watch_msi
        self.max_states = max_states
        self.vector = 0 if single_msi else d + 1
        self.keep_free = p["ring-full-rule"] == "keep-one-free"
        self.cap = nelem - 1 if self.keep_free else nelem
        self.drop = p["response-ring-full"] == "drop"
        self.every = p["msi-empty-transition"] == "every-response"
        self.lost_when_masked = p["msi-while-masked"] == "lost"
        self.last = p["head-index-meaning"] == "last-consumed"
        self.tail_ignore = p["tail-out-of-range"] == "ignore"
        self.inactive_ones = p["inactive-dbc-regs"] == "all-ones"
        self.req_tp_v = 0
        self.rsp_hp_v = 0
        self.masked = False
        self.truncated = False
        self.reported = False
        self.peak = 1
        self.states: list[CState] = [(0, 0, 0, 0, 0, False, False, 0)]

    # -- steps ---------------------------------------------------------------------------
    def _respond(self, s: CState) -> CState | None:
        hp, rc, w, tp, cnt, due, pend, lost = s
        if w == 0:
            return None
        if cnt >= self.cap:
            if not self.drop:
                return None
            return (hp, rc, w - 1, tp, cnt, due, pend, lost)  # response_dropped
        if cnt == 0 or self.every:
            due = True
        return (hp, rc, w - 1, (tp + 1) % self.nelem, cnt + 1, due, pend, lost)

    def _raise(self, s: CState) -> CState:
        hp, rc, w, tp, cnt, _due, pend, lost = s
        if self.masked and self.lost_when_masked:
            return (hp, rc, w, tp, cnt, False, pend, lost + 1)
        return (hp, rc, w, tp, cnt, False, True, lost)

    def successors(self, s: CState, consume: str, msi_free: bool = False) -> list[CState]:
        hp, rc, w, tp, cnt, due, pend, lost = s
        out: list[CState] = []
        if due and self.watch_msi and not (msi_free and cnt and not self.every):  # L9
            out.append(self._raise(s))
        r = self._respond(s)
        if r is not None:
            out.append(r)
        # L4/L8: a consume only adds a waiting request; with one waiting already it gives
        # nothing that answering that one first does not (lazy mode)
        if rc > 0 and (consume == "step" or w == 0):
            out.append(((hp + 1) % self.nelem, rc - 1, w + 1, tp, cnt, due, pend, lost))
        return out

    def search(self, match: Callable[[CState], bool], consume: str = "lazy",
               viable: Callable[[CState], bool] | None = None,
               start: list[CState] | None = None, raise_first: bool = False,
               msi_free: bool = False) -> list[CState]:
        seen: set[CState] = set()
        todo: list[CState] = []
        found: list[CState] = []
        for s in self.states if start is None else start:
            k = s[:7]
            if k not in seen:
                seen.add(k)  # type: ignore[arg-type]
                todo.append(s)
        while todo:
            s = todo.pop()
            if match(s):
                found.append(s)
                continue
            succ = [self._raise(s)] if raise_first and s[5] else self.successors(s, consume,
                                                                                  msi_free)
            for t in succ:
                if viable is not None and not viable(t):
                    continue
                k = t[:7]
                if k in seen:
                    continue
                if len(seen) >= self.max_states:
                    self.truncated = True
                    todo = []
                    break
                seen.add(k)  # type: ignore[arg-type]
                todo.append(t)
        self.peak = max(self.peak, len(seen))
        return self.dedup(found)

    def dedup(self, states: list[CState]) -> list[CState]:
        """Drop duplicates and states below another in the MSI order (L9)."""
        if len(states) < 2:
            return states
        out: dict[tuple[int, ...], CState] = {}
        for s in states:
            k = s[:5]
            old = out.get(k)
            if old is None or (2 * old[5] + old[6]) < (2 * s[5] + s[6]):
                out[k] = s
        return list(out.values())

    def barrier(self) -> None:
        pass

    # -- host actions (Device.writel, _write_req_tp, _write_rsp_hp) ---------------------------
    def host(self, act: Callable[[Any], None]) -> tuple[HostViolation, dict[str, Any]] | None:
        """``act`` is the checker's ``lambda t: t.writel(d, reg, val)``: run it on a
        recorder to learn the write, then apply it to the counters."""
        rec = _WriteRecorder()
        act(rec)
        reg, val = rec.reg, rec.val
        n = self.nelem
        name = "REQ_TP" if reg == 0x4 else "RSP_HP"
        pre = self.describe(self.states[0] if self.states else None)
        if val >= n:
            v = HostViolation("HOST-REG-OUT-OF-RANGE", f"{name} write {val} of dbc {self.d} is "
                              f"not an index below nelem {n}", self.d)
            return v, pre
        if reg == 0x4:  # REQ_TP
            old = self.req_tp_v
            added = int(arith.ring_occupancy(old, val, n))
            out = []
            for s in self.states:
                hp, rc, w, tp, cnt, due, pend, lost = s
                free = int(arith.fifo_space(hp, old, n)) if self.keep_free else n - rc
                if added > free:
                    v = HostViolation("HOST-REQ-OVERRUN",
                                      f"REQ_TP {old} -> {val} adds {added} elements but only "
                                      f"{free} slots are free (REQ_HP {hp}, nelem {n}); unconsumed "
                                      "requests are overwritten", self.d,
                                      "qaic_data.c fifo_space_avail")
                    return v, self.describe(s)
                if self.keep_free:
                    rc = int(arith.ring_occupancy(hp, val, n))
                else:
                    total = rc + added
                    rc = (total - 1) % n + 1 if total else 0
                out.append((hp, rc, w, tp, cnt, due, pend, lost))
            self.req_tp_v = val
        else:  # RSP_HP
            if self.last:
                val = int(arith.ring_advance(val, 1, n))
            old = self.rsp_hp_v
            freed = int(arith.ring_occupancy(old, val, n))
            out = []
            for s in self.states:
                hp, rc, w, tp, cnt, due, pend, lost = s
                if freed > cnt:
                    v = HostViolation("HOST-RSP-OVERREAD",
                                      f"RSP_HP {old} -> {val} frees {freed} responses but the "
                                      f"device wrote only {cnt} (RSP_TP {tp})", self.d,
                                      "aic100.rst Response FIFO")
                    return v, self.describe(s)
                if self.keep_free:
                    cnt = int(arith.ring_occupancy(val, tp, n))
                else:
                    cnt = cnt - freed
                out.append((hp, rc, w, tp, cnt, due, pend, lost))
            self.rsp_hp_v = val
        self.states = out
        return None

    def mask(self, on: bool) -> None:
        if not on and self.lost_when_masked and self.watch_msi:
            extra = self.search(lambda s: s[6])
            self.states = self.dedup(self.states + extra)
        self.masked = not on

    def note_slot(self, idx: int, elem: RequestElem) -> None:
        pass

    # -- observations --------------------------------------------------------------------
    def read_req_hp(self, val: int) -> list[CState]:
        n = self.nelem
        want = int(arith.ring_advance(val, 1, n)) if self.last else val
        out = []
        for s in self.states:
            hp, rc, w, tp, cnt, due, pend, lost = s
            k = (want - hp) % n
            for m in (k, k + n):
                if m <= rc:
                    out.append((want, rc - m, w + m, tp, cnt, due, pend, lost))
        return self.dedup(out)

    def read_rsp_tp(self, val: int) -> list[CState]:
        n = self.nelem

        def may(s: CState) -> bool:
            need = (val - s[3]) % n
            return need == 0 or (s[2] + s[1] >= need and (self.drop or s[4] + need <= self.cap))

        start = [s for s in self.states if may(s)]
        if not start:
            return []
        return self.search(lambda s: s[3] == val, start=start, msi_free=True)

    def rsp_states(self, idx: int, data: bytes) -> list[CState]:
        return self.states  # contents are not known (C7)

    def rsp_words(self, idx: int) -> list[str]:
        return []

    def msi(self) -> tuple[list[CState], bool]:
        if self.masked:
            return [], bool(self.search(lambda s: s[6]))
        return self.search(lambda s: s[6], raise_first=True), False

    def take_msi(self, ok: list[CState]) -> None:
        self.states = self.dedup([(s[0], s[1], s[2], s[3], s[4], s[5], False, s[7]) for s in ok])

    def may_have_lost(self) -> bool:
        if not (self.lost_when_masked and self.watch_msi):
            return False
        base = min(s[7] for s in self.states)
        return bool(self.search(lambda s: s[7] > base))

    def stranded(self) -> CState | None:
        def bad(s: CState) -> bool:
            if s[4] == 0:
                return False
            if self.masked:
                return True
            return not (s[6] or s[5])

        found = self.search(bad)
        return found[0] if found else None

    def req_tp(self) -> int:
        return self.req_tp_v

    def resync(self, req_hp: int, req_tp: int, rsp_hp: int, rsp_tp: int) -> None:
        n = self.nelem
        self.req_tp_v, self.rsp_hp_v = req_tp, rsp_hp
        self.states = [(req_hp, int(arith.ring_occupancy(req_hp, req_tp, n)), 0, rsp_tp,
                        int(arith.ring_occupancy(rsp_hp, rsp_tp, n)), False, False, 0)]

    def busy_slot(self, idx: int) -> CState | None:
        for s in self.states:
            if int(arith.ring_occupancy(s[0], idx, self.nelem)) < s[1]:
                return s
        return None

    def unwritten(self, idx: int) -> CState | None:
        for s in self.states:
            if not (idx < self.nelem and int(arith.ring_occupancy(self.rsp_hp_v, idx, self.nelem))
                    < s[4]):
                return s
        return None

    def _reg(self, s: CState, reg: int) -> int:
        if reg == 0x0:
            return int(arith.ring_advance(s[0], self.nelem - 1, self.nelem)) if self.last else s[0]
        if reg == 0x4:
            return self.req_tp_v
        if reg == 0x8:
            return self.rsp_hp_v
        return s[3]

    def read_host_reg(self, reg: int, val: int) -> list[CState]:
        return self.states if self._reg(self.states[0], reg) == val else []

    def reg_values(self, reg: int) -> list[int]:
        return sorted({self._reg(s, reg) for s in self.states})

    def describe(self, s: CState | None, n: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"dbc": self.d}
        if s is not None:
            hp, rc, w, tp, cnt, due, pend, _lost = s
            out.update(active=True, nelem=self.nelem, req_hp=hp, req_tp=self.req_tp_v,
                       rsp_hp=self.rsp_hp_v, rsp_tp=tp, unconsumed=rc, responses_unread=cnt,
                       in_flight=w, msi_due=due)
            if self.watch_msi:
                out.update(vector=self.vector, masked=self.masked, pending=pend)
        out["possible_states"] = len(self.states) if n is None else n
        return out


class _WriteRecorder:
    """Stands in for a Device in CounterStates.host: remembers the one writel."""

    reg = 0
    val = 0

    def writel(self, dbc: int, reg: int, val: int) -> None:
        self.reg, self.val = reg, val
