"""L10: register-only traces as counters (:class:`CounterStates`, see :mod:`.states`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qaicmodel import arith
from qaicmodel.spec.dbc.channel import HostViolation
from qaicmodel.spec.dbc.wire import RequestElem
from qaicmodel.spec.policies import (
    HEAD_INDEX_MEANING,
    INACTIVE_DBC_REGS,
    MSI_WHILE_MASKED,
    RESPONSE_RING_FULL,
    RING_FULL_RULE,
    TAIL_OUT_OF_RANGE,
    HeadIndexMeaning,
    InactiveDbcRegs,
    MsiWhileMasked,
    Policies,
    ResponseRingFull,
    RingFullRule,
    TailOutOfRange,
)

__all__ = ["CounterStates"]

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

    def __init__(
        self,
        d: int,
        nelem: int,
        req_q: int,
        rsp_q: int,
        *,
        policies: Policies,
        single_msi: bool,
        watch_msi: bool,
        max_states: int,
    ) -> None:
        self.d, self.nelem, self.req_q, self.rsp_q = d, nelem, req_q, rsp_q
        self.policies = p = policies
        self.watch_msi = watch_msi
        self.max_states = max_states
        self.vector = 0 if single_msi else d + 1
        self.keep_free = p[RING_FULL_RULE] is RingFullRule.KEEP_ONE_FREE
        self.cap = nelem - 1 if self.keep_free else nelem
        self.drop = p[RESPONSE_RING_FULL] is ResponseRingFull.DROP
        self.every = False  # msi-empty-transition has one reading now (issue #13 item 3)
        self.lost_when_masked = p[MSI_WHILE_MASKED] is MsiWhileMasked.LOST
        self.last = p[HEAD_INDEX_MEANING] is HeadIndexMeaning.LAST_CONSUMED
        self.tail_ignore = p[TAIL_OUT_OF_RANGE] is TailOutOfRange.IGNORE
        self.inactive_ones = p[INACTIVE_DBC_REGS] is InactiveDbcRegs.ALL_ONES
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

    def search(
        self,
        match: Callable[[CState], bool],
        consume: str = "lazy",
        viable: Callable[[CState], bool] | None = None,
        start: list[CState] | None = None,
        raise_first: bool = False,
        msi_free: bool = False,
    ) -> list[CState]:
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
            succ = (
                [self._raise(s)] if raise_first and s[5] else self.successors(s, consume, msi_free)
            )
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
            v = HostViolation(
                "HOST-REG-OUT-OF-RANGE",
                f"{name} write {val} of dbc {self.d} is not an index below nelem {n}",
                self.d,
            )
            return v, pre
        if reg == 0x4:  # REQ_TP
            old = self.req_tp_v
            added = int(arith.ring_occupancy(old, val, n))
            out = []
            for s in self.states:
                hp, rc, w, tp, cnt, due, pend, lost = s
                free = int(arith.fifo_space(hp, old, n)) if self.keep_free else n - rc
                if added > free:
                    v = HostViolation(
                        "HOST-REQ-OVERRUN",
                        f"REQ_TP {old} -> {val} adds {added} elements but only "
                        f"{free} slots are free (REQ_HP {hp}, nelem {n}); unconsumed "
                        "requests are overwritten",
                        self.d,
                        "qaic_data.c fifo_space_avail",
                    )
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
                    v = HostViolation(
                        "HOST-RSP-OVERREAD",
                        f"RSP_HP {old} -> {val} frees {freed} responses but the "
                        f"device wrote only {cnt} (RSP_TP {tp})",
                        self.d,
                        "aic100.rst Response FIFO",
                    )
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
        self.states = [
            (
                req_hp,
                int(arith.ring_occupancy(req_hp, req_tp, n)),
                0,
                rsp_tp,
                int(arith.ring_occupancy(rsp_hp, rsp_tp, n)),
                False,
                False,
                0,
            )
        ]

    def busy_slot(self, idx: int) -> CState | None:
        for s in self.states:
            if int(arith.ring_occupancy(s[0], idx, self.nelem)) < s[1]:
                return s
        return None

    def unwritten(self, idx: int) -> CState | None:
        for s in self.states:
            if not (
                idx < self.nelem
                and int(arith.ring_occupancy(self.rsp_hp_v, idx, self.nelem)) < s[4]
            ):
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
            out.update(
                active=True,
                nelem=self.nelem,
                req_hp=hp,
                req_tp=self.req_tp_v,
                rsp_hp=self.rsp_hp_v,
                rsp_tp=tp,
                unconsumed=rc,
                responses_unread=cnt,
                in_flight=w,
                msi_due=due,
            )
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
