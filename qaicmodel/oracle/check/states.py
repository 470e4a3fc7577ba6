"""The checker's per-channel state sets: device states closed *lazily* under device steps.

``qaicmodel check`` (:mod:`qaicmodel.oracle.check`) asks, per event, "is there a run of a conforming
device that explains what the host saw?"  Enumerating every interleaving of the device's
own steps before every event (the first checker, issue #11: ~240 successors per event) is
exponential in the requests in flight.  This module (with :mod:`.frontier`) keeps instead, per channel, a small
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

from collections.abc import Callable
from typing import Any, Protocol

from qaicmodel import arith
from qaicmodel.oracle.check.frontier import Frontier, _clone
from qaicmodel.spec.dbc.channel import HostViolation, Stage
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.dbc.wire import CMD_COMPLETION, CMD_DIR_MASK, REQ_SIZE, RSP_SIZE, RequestElem
from qaicmodel.spec.policies import (
    HEAD_INDEX_MEANING,
    ILLEGAL_DIRECTION,
    RESPONSE_RING_FULL,
    RING_FULL_RULE,
    HeadIndexMeaning,
    IllegalDirection,
    ResponseRingFull,
    RingFullRule,
)

__all__ = ["ChannelStates", "StateSet"]


class StateSet(Protocol):
    """What the checker (:mod:`.checker`) asks of a channel's frontier; implemented by
    :class:`ChannelStates` (device copies) and :class:`~.counters.CounterStates` (L10)."""

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


class ChannelStates(Frontier):
    """The frontier of possible device states of one activated channel (L1-L7): the host
    actions and observations the checker asks of it (the steps and searches are
    :class:`~.frontier.Frontier`'s)."""

    # -- host actions (L3) ----------------------------------------------------------------
    def host(self, act: Callable[[Device], None]) -> tuple[HostViolation, dict[str, Any]] | None:
        """Apply a host action to every frontier state; the first violation (with the
        description of the state it broke a rule in, before the action) or None."""
        for s in self.states:
            ch = s.ch[self.d]
            regs4 = (
                ch.req_hp,
                ch.req_tp,
                ch.rsp_hp,
                ch.rsp_tp,
                ch.req_count,
                ch.rsp_count,
                len(ch.inflight),
                ch.msi_due,
            )
            act(s)
            if s.violations:
                v = s.violations[0]
                s.violations.clear()
                pre = self.describe(s)
                (
                    pre["req_hp"],
                    pre["req_tp"],
                    pre["rsp_hp"],
                    pre["rsp_tp"],
                    pre["unconsumed"],
                    pre["responses_unread"],
                    pre["in_flight"],
                    pre["msi_due"],
                ) = regs4
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
        last = self.policies[HEAD_INDEX_MEANING] is HeadIndexMeaning.LAST_CONSUMED
        want = int(arith.ring_advance(val, 1, n)) if last else val
        out: list[Device] = []
        for s in self.states:
            ch = s.ch[d]
            k = (want - ch.req_hp) % n
            cands = [m for m in (k, k + n) if m <= ch.req_count]
            if not cands:
                continue
            slots = {(ch.req_hp + i) % n for i in range(max(cands))}
            easy = (
                not self.exact
                and len(self.variants) == 1
                and not (self.watch_msi and self.forced_honoured and slots & self.force_slots)
            )
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
        room = ch.nelem if self.policies[RING_FULL_RULE] is RingFullRule.ALL_SLOTS else ch.nelem - 1
        if (
            ch.rsp_count + need > room
            and self.policies[RESPONSE_RING_FULL] is ResponseRingFull.STALL
        ):
            return False
        more = sum(
            1 for r in ch.inflight.values() if r.wants_response and r.stage is not Stage.DONE
        )
        if (
            not self.contents_known
            or self.policies[ILLEGAL_DIRECTION] is IllegalDirection.ERROR_ALWAYS
        ):
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
            if not (
                idx < ch.nelem
                and int(arith.ring_occupancy(ch.rsp_hp, idx, ch.nelem)) < ch.rsp_count
            ):
                return s
        return None

    def rsp_words(self, idx: int) -> list[str]:
        """The response words slot ``idx`` holds across the frontier (for reports)."""
        off = idx * RSP_SIZE
        return sorted(
            {
                bytes(s.host_mem.rsp[off : off + RSP_SIZE]).hex()  # type: ignore[attr-defined]
                for s in self.states
            }
        )

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
            out.update(
                active=ch.active,
                nelem=ch.nelem,
                req_hp=ch.req_hp,
                req_tp=ch.req_tp,
                rsp_hp=ch.rsp_hp,
                rsp_tp=ch.rsp_tp,
                unconsumed=ch.req_count,
                responses_unread=ch.rsp_count,
                in_flight=len(ch.inflight),
                msi_due=ch.msi_due,
            )
            if self.watch_msi:
                v = self.vector
                out.update(vector=v, masked=s.intc.masked(v), pending=s.intc.pending(v))
        out["possible_states"] = len(self.states) if n is None else n
        return out
