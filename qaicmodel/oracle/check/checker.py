"""The trace checker's replay (C1-C7, C9-C12 of :mod:`qaicmodel.oracle.check`): per-channel
bookkeeping, host actions and observations against the sets of possible device states
(:mod:`.states`, :mod:`.counters`), and the entry points :func:`check` and
:func:`check_stream`."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from qaicmodel import arith
from qaicmodel.errors import ArgumentError
from qaicmodel.oracle.check.control import ControlMessages
from qaicmodel.oracle.check.counters import CounterStates
from qaicmodel.oracle.check.report import MAX_REASONS, Report, TraceFinding, _Stop
from qaicmodel.oracle.check.rules import _DMA, FAMILIES, MAX_NELEM, RULES, _family
from qaicmodel.oracle.check.states import ChannelStates, StateSet
from qaicmodel.oracle.trace import Event, Trace, TraceStream
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.wire import REQ_SIZE, RequestElem
from qaicmodel.spec.policies import (
    DOORBELL_DATA_WIDTH,
    FENCE_SCOPE,
    INACTIVE_DBC_REGS,
    PROCESSING_ORDER,
    RESPONSE_ORDER,
    DoorbellDataWidth,
    FenceScope,
    InactiveDbcRegs,
    Policies,
    ProcessingOrder,
    ResponseOrder,
)

__all__ = ["Checker", "Mode", "check", "check_stream"]

# -- per-channel bookkeeping -------------------------------------------------------------


class Mode(enum.Enum):
    """What the checker knows about one channel (C5, C6)."""

    KNOWN = "known"  # inactive (sets is None) or a frontier of possible device states
    LOST = "lost"  # geometry known, state unknown: waiting to resynchronise
    NO_GEOMETRY = (
        "no-geometry"  # never activated in the trace and no --nelem: state-free rules only
    )


@attrs.define
class _Chan:
    dbc: int
    mode: Mode
    sets: StateSet | None = None  # KNOWN and active
    nelem: int = 0
    req_q: int = 0
    rsp_q: int = 0
    ring: bytearray = attrs.field(factory=bytearray)  # the request ring as the host wrote it
    seen: dict[int, int] = attrs.field(factory=dict)  # reg -> value since the loss
    resynced: bool = False
    asked: dict[int, int] = attrs.field(factory=dict)  # C10: req_id -> responses asked for
    read: dict[int, int] = attrs.field(factory=dict)  # C10: req_id -> responses read
    recheck_owed: int = 0  # C10: line of an irq_enable after which an MSI may have been lost


_REG_RULE = {regs.REQ_HP: "DEV-REQ-HP", regs.RSP_TP: "DEV-RSP-TP"}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class Checker(ControlMessages):
    """Replays one trace (C1-C12).  Use :func:`check` / :func:`check_stream`."""

    def __init__(
        self,
        device: Any,
        kinds: set[str],
        policies: Policies,
        source: str = "jsonl",
        nelem: int | None = None,
        max_states: int = 4000,
        counters: bool = True,
    ) -> None:
        self.counters = counters  # L10 (False: the device-copy engine everywhere; tests)
        self.cfg = device
        self.policies = policies
        self.max_states = max_states
        self.num_dbc = self.cfg.num_dbc
        self.single_msi = bool(self.cfg.single_msi)
        self.kinds = set(kinds)
        self.contents_known = "req" in kinds  # C7
        self.watch_msi = "msi" in kinds
        self.report = Report(source=source)
        self.failed_family: str | None = None
        self.inconclusive_fams: set[str] = set()
        self.nnc_last_seq: int | None = None
        self.nnc_outstanding: set[int] = set()
        self.seen_kinds: set[str] = set()
        self.peak = 0
        has_activate = "activate" in kinds
        self.ch: list[_Chan] = []
        for d in range(self.num_dbc):
            if has_activate:
                self.ch.append(_Chan(d, Mode.KNOWN))
            elif nelem is not None:
                c = _Chan(d, Mode.LOST)
                self._geometry(
                    c, nelem, 0x1000_0000_0000 + d * 0x100_0000, 0x1000_0080_0000 + d * 0x100_0000
                )
                self.ch.append(c)
            else:
                self.ch.append(_Chan(d, Mode.NO_GEOMETRY))
        self.nelem_given = nelem
        self._elem_cache: dict[bytes, RequestElem] = {}

    # -- reporting ------------------------------------------------------------
    def _state(self, c: _Chan, s: Any = None, n: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"dbc": c.dbc, "mode": c.mode.value}
        if c.sets is not None:
            out.update(
                c.sets.describe(
                    s if s is not None else c.sets.states[0] if c.sets.states else None, n
                )
            )
            out["mode"] = c.mode.value
        elif c.mode is Mode.KNOWN:
            out["active"] = False
        return out

    def _violate(
        self,
        ev: Event,
        rule: str,
        message: str,
        state: dict[str, Any],
        source: str | None = None,
        c: _Chan | None = None,
    ) -> None:
        if (
            rule.startswith("DEV-")
            and c is not None
            and (c.resynced or (c.sets is not None and c.sets.truncated))
        ):
            why = (
                "after a resynchronisation, C5"
                if c.resynced
                else f"the search bound of {self.max_states} states was hit on this channel, C11"
            )
            self._inconclusive(ev, f"{rule}: {message} ({why})", _family(rule))
            self._lose(c)
            return
        src = source or RULES.get(rule, ("", _DMA))[1]
        self.report.violation = TraceFinding.at(ev.line, ev.ev, rule, message, state, src)
        self.failed_family = _family(rule)
        raise _Stop

    def _inconclusive(self, ev: Event, reason: str, family: str | None = None) -> None:
        r = self.report
        r.inconclusive_total += 1
        if len(r.inconclusive) < MAX_REASONS:
            r.inconclusive.append({"line": ev.line, "reason": reason})
        if family:
            self.inconclusive_fams.add(family)

    def _lose(self, c: _Chan) -> None:
        if c.mode is Mode.KNOWN and c.nelem and c.sets is not None:
            self._note_peak(c)
            c.mode = Mode.LOST
            c.seen = {}
            c.sets = None

    def _note_peak(self, c: _Chan) -> None:
        if c.sets is not None:
            self.peak = max(self.peak, c.sets.peak, len(c.sets.states))

    # -- channel life --------------------------------------------------------------
    def _geometry(self, c: _Chan, nelem: int, req_q: int, rsp_q: int) -> None:
        c.nelem, c.req_q, c.rsp_q = nelem, req_q, rsp_q
        c.ring = bytearray(nelem * REQ_SIZE)
        c.asked, c.read = {}, {}

    def _new_sets(self, c: _Chan) -> StateSet:
        p = self.policies
        if (
            not self.contents_known
            and self.counters
            and p[PROCESSING_ORDER] is not ProcessingOrder.FIFO
            and p[RESPONSE_ORDER] is ResponseOrder.COMPLETION_ORDER
            and p[FENCE_SCOPE] is not FenceScope.ALL_OUTSTANDING
        ):
            return CounterStates(
                c.dbc,
                c.nelem,
                c.req_q,
                c.rsp_q,
                policies=p,
                single_msi=self.single_msi,
                watch_msi=self.watch_msi,
                max_states=self.max_states,
            )
        sets = ChannelStates(
            c.dbc,
            c.nelem,
            c.req_q,
            c.rsp_q,
            policies=self.policies,
            single_msi=self.single_msi,
            contents_known=self.contents_known,
            watch_msi=self.watch_msi,
            max_states=self.max_states,
            ring=c.ring,
        )
        for i in range(c.nelem):  # C12: force-MSI bits of what the host wrote so far
            if c.ring[i * REQ_SIZE : (i + 1) * REQ_SIZE] != bytes(REQ_SIZE):
                sets.note_slot(i, self._elem(bytes(c.ring[i * REQ_SIZE : (i + 1) * REQ_SIZE])))
        return sets

    def _try_resync(self, c: _Chan) -> None:
        """C5: rebuild a state from the four register values seen since the loss."""
        if len(c.seen) < 4:
            return
        n = c.nelem
        vals = c.seen
        if any(v >= n for v in vals.values()):
            c.seen = {}
            return
        sets = self._new_sets(c)
        sets.resync(vals[regs.REQ_HP], vals[regs.REQ_TP], vals[regs.RSP_HP], vals[regs.RSP_TP])
        c.sets = sets
        c.mode = Mode.KNOWN
        c.resynced = True

    def _elem(self, raw: bytes) -> RequestElem:
        e = self._elem_cache.get(raw)
        if e is None:
            if len(self._elem_cache) > 4096:
                self._elem_cache.clear()
            e = self._elem_cache[raw] = RequestElem.unpack(raw)
        return e

    # -- host actions ------------------------------------------------------------
    def _chan(self, ev: Event) -> _Chan:
        assert ev.dbc is not None  # the reader guarantees it for channel events
        return self.ch[ev.dbc]

    def _reg_width(self, ev: Event) -> None:
        if ev.width != 4:
            self._violate(
                ev,
                "HOST-REG-WIDTH",
                f"a {ev.width}-byte access to a 32-bit DBC register",
                {"dbc": ev.dbc, "width": ev.width},
            )

    def _inactive(self, ev: Event, c: _Chan, what: str) -> None:
        self._violate(
            ev,
            "HOST-INACTIVE-DBC",
            f"host {what} of dbc {c.dbc}, which is not active",
            self._state(c),
            RULES["HOST-INACTIVE-DBC"][1],
        )

    def ev_writel(self, ev: Event) -> None:
        if ev.width != 4:
            self._reg_width(ev)
        c = self.ch[ev.dbc]  # type: ignore[index]
        reg, val = ev.reg, ev.val
        assert reg is not None and val is not None
        if reg in regs.DEVICE_OWNED:
            self._violate(
                ev,
                "HOST-WRITE-DEVICE-REG",
                f"host wrote 0x{val:x} to {regs.REG_NAMES[reg]} of dbc {c.dbc}, which "
                'only the device writes ("Read only by the host")',
                self._state(c),
            )
        sets = c.sets
        if sets is None:
            if c.mode is Mode.LOST:
                if val >= c.nelem:  # state-free: an index is below nelem
                    self._violate(
                        ev,
                        "HOST-REG-OUT-OF-RANGE",
                        f"{regs.REG_NAMES[reg]} write {val} of dbc {c.dbc} is not an "
                        f"index below nelem {c.nelem}",
                        self._state(c),
                    )
                c.seen[reg] = val
                self._try_resync(c)
            elif c.mode is Mode.KNOWN:
                self._inactive(ev, c, f"wrote {regs.REG_NAMES[reg]}")
            return
        d = c.dbc
        old_tp = sets.req_tp()
        bad = sets.host(lambda t: t.writel(d, reg, val))
        if bad is not None:
            v, pre = bad
            self._violate(ev, v.rule, v.message, {"mode": c.mode.value, **pre}, v.source, c)
        if reg == regs.REQ_TP and self.contents_known:
            self._published(c, ev, old_tp, val)

    def _published(self, c: _Chan, ev: Event, old: int, new: int) -> None:
        """C3: the element rules of every element a REQ_TP write hands to the device; C10:
        the responses they ask for, per req_id."""
        n = c.nelem
        if not 0 <= new < n:
            return
        ring = c.ring
        width_rule = self.policies[DOORBELL_DATA_WIDTH] is DoorbellDataWidth.VIOLATION
        for k in range(int(arith.ring_occupancy(old, new, n))):
            slot = (old + k) % n
            elem = self._elem(bytes(ring[slot * REQ_SIZE : (slot + 1) * REQ_SIZE]))
            if elem.completion:
                c.asked[elem.req_id] = c.asked.get(elem.req_id, 0) + 1
            if elem.db_write and width_rule:
                w = elem.db_len.nbytes
                if w and elem.doorbell_data >> (8 * w):
                    self._violate(
                        ev,
                        "REQ-DB-DATA-WIDTH",
                        f"element {slot}: doorbell_data 0x{elem.doorbell_data:x} is "
                        f"wider than its {8 * w}-bit length",
                        self._state(c),
                    )
            viol = elem.violations()
            if viol:
                v = viol[0]
                self._violate(
                    ev,
                    v.rule,
                    f"REQ_TP {old} -> {new} publishes element {slot} of "
                    f"dbc {c.dbc}: {v.field}: {v.message}",
                    self._state(c),
                    v.source,
                )

    def ev_req(self, ev: Event) -> None:
        c = self.ch[ev.dbc]  # type: ignore[index]
        idx, data = ev.idx, ev.data
        assert idx is not None and data is not None
        if c.mode is Mode.NO_GEOMETRY:
            return
        sets = c.sets
        if c.mode is Mode.KNOWN and sets is None:
            self._violate(
                ev,
                "HOST-INACTIVE-DBC",
                f"request element {idx} written for dbc {c.dbc}, which has no active FIFO",
                self._state(c),
            )
        if idx >= c.nelem:
            self._violate(
                ev,
                "HOST-REQ-SLOT",
                f"request element {idx} written, but the FIFO of dbc {c.dbc} has {c.nelem} slots",
                self._state(c),
            )
        if sets is not None:
            busy = sets.busy_slot(idx)
            if busy is not None:
                self._violate(
                    ev,
                    "HOST-REQ-OVERWRITE",
                    f"host wrote request slot {idx} of dbc {c.dbc}, which is published "
                    "and may not be consumed yet (the device need not have got "
                    "further than the host observed)",
                    self._state(c, busy, len(sets.states)),
                )
        c.ring[idx * REQ_SIZE : (idx + 1) * REQ_SIZE] = data
        if sets is not None:
            sets.note_slot(idx, self._elem(data))

    def ev_activate(self, ev: Event) -> None:
        c = self.ch[ev.dbc]  # type: ignore[index]
        assert ev.nelem is not None and ev.req_q is not None and ev.rsp_q is not None
        if not arith.activate_queue_size_ok(ev.nelem) or ev.nelem < 2:
            self._violate(
                ev,
                "HOST-ACTIVATE-NELEM",
                f"dbc {c.dbc} activated with nelem {ev.nelem}, a queue size the "
                "driver does not accept",
                self._state(c),
            )
        if c.mode is Mode.KNOWN and c.sets is not None:
            self._violate(
                ev, "HOST-DBC-ACTIVE", f"dbc {c.dbc} activated while active", self._state(c)
            )
        self._note_peak(c)
        self._geometry(c, ev.nelem, ev.req_q, ev.rsp_q)
        c.resynced, c.seen = False, {}
        if ev.nelem > MAX_NELEM:
            self._inconclusive(
                ev,
                f"dbc {c.dbc}: nelem {ev.nelem} is beyond the checker's limit "
                f"of {MAX_NELEM} elements; the channel is not checked",
                "request-ring",
            )
            c.mode, c.sets = Mode.NO_GEOMETRY, None
            return
        c.mode = Mode.KNOWN
        c.sets = self._new_sets(c)

    def ev_deactivate(self, ev: Event) -> None:
        c = self.ch[ev.dbc]  # type: ignore[index]
        self._note_peak(c)
        c.mode, c.resynced, c.seen, c.sets = Mode.KNOWN, False, {}, None

    def ev_irq(self, ev: Event) -> None:
        v = ev.vector
        assert v is not None
        if v == 0 or self.single_msi:
            return  # vector 0 is MHI's and shared in single-MSI mode: not modelled here
        c = self.ch[v - 1]
        if c.sets is None or not self.watch_msi:
            return
        on = ev.ev == "irq_enable"
        if on and c.sets.may_have_lost():
            c.recheck_owed = ev.line
        c.sets.mask(on)

    # -- observations ------------------------------------------------------------------
    def ev_readl(self, ev: Event) -> None:
        if ev.width != 4:
            self._reg_width(ev)
        c = self.ch[ev.dbc]  # type: ignore[index]
        reg, val = ev.reg, ev.val
        assert reg is not None and val is not None
        sets = c.sets
        if sets is None:
            if c.mode is Mode.LOST:
                if val >= c.nelem:  # state-free: a FIFO index is below nelem
                    self._violate(
                        ev,
                        _REG_RULE.get(reg, "DEV-REG-VALUE"),
                        f"{regs.REG_NAMES[reg]} of dbc {c.dbc} read {val}, not an index "
                        f"below nelem {c.nelem}",
                        self._state(c),
                    )
                c.seen[reg] = val
                self._try_resync(c)
            elif c.mode is Mode.KNOWN:
                want = (
                    0xFFFFFFFF
                    if self.policies[INACTIVE_DBC_REGS] is InactiveDbcRegs.ALL_ONES
                    else 0
                )
                if val != want:
                    self._violate(
                        ev,
                        _REG_RULE.get(reg, "DEV-REG-VALUE"),
                        f"{regs.REG_NAMES[reg]} of dbc {c.dbc} read {val}, but an "
                        f"inactive channel shows {want}",
                        self._state(c),
                        c=c,
                    )
            return
        d = c.dbc
        if reg == regs.REQ_HP:
            ok = sets.read_req_hp(val)
        elif reg == regs.RSP_TP:
            c.recheck_owed = 0
            ok = sets.read_rsp_tp(val)
        else:  # host-owned: the same in every state
            ok = sets.read_host_reg(reg, val)
        if not ok:
            pre = sets.states
            possible = sets.reg_values(reg)
            shown = ", ".join(str(x) for x in possible[:8]) + (" ..." if len(possible) > 8 else "")
            later = (
                " (or what its own progress from there gives)" if reg in regs.DEVICE_OWNED else ""
            )
            name = regs.REG_NAMES[reg]
            extra = (
                " (all ones: the link is down or the device is gone)" if val == 0xFFFFFFFF else ""
            )
            self._violate(
                ev,
                _REG_RULE.get(reg, "DEV-REG-VALUE"),
                f"{name} of dbc {d} read {val}{extra}, but a conforming device can only "
                f"show {shown}{later} here",
                self._state(c, pre[-1], len(pre)),
                c=c,
            )
            return
        sets.states = ok

    def ev_rsp(self, ev: Event) -> None:
        c = self.ch[ev.dbc]  # type: ignore[index]
        idx, data = ev.idx, ev.data
        assert idx is not None and data is not None
        sets = c.sets
        if c.mode is not Mode.KNOWN:
            return
        d = c.dbc
        if sets is None:
            self._violate(
                ev,
                "HOST-RSP-NOT-WRITTEN",
                f"host read response slot {idx} of dbc {d}, which is not active",
                self._state(c),
            )
            return
        pre = sets.states
        bad = sets.unwritten(idx)
        if bad is not None:
            self._violate(
                ev,
                "HOST-RSP-NOT-WRITTEN",
                f"host read response slot {idx} of dbc {d}, which the device need "
                "not have written yet (beyond the RSP_TP the host read) or the host "
                "already freed",
                self._state(c, bad, len(pre)),
            )
        rid = int.from_bytes(data[:2], "little")
        c.read[rid] = c.read.get(rid, 0) + 1
        if not self.contents_known:
            return
        ok = sets.rsp_states(idx, data)
        if not ok:
            got = rid, int.from_bytes(data[2:], "little")
            want = sets.rsp_words(idx)
            self._violate(
                ev,
                "DEV-RSP-CONTENT",
                f"response slot {idx} of dbc {d} reads req_id {got[0]} code {got[1]}, "
                f"which no conforming device wrote there (possible: {', '.join(want[:6])})",
                self._state(c, pre[-1], len(pre)),
                c=c,
            )
            return
        sets.states = ok

    def ev_msi(self, ev: Event) -> None:
        v = ev.vector
        assert v is not None
        if v == 0:
            return  # MHI (and every DBC in single-MSI mode): not modelled here
        if self.single_msi:
            self._violate(
                ev,
                "DEV-MSI-VECTOR",
                f"MSI on vector {v}, but in single-MSI mode every DBC raises vector 0",
                {"vector": v},
            )
        c = self.ch[v - 1]
        if c.mode is not Mode.KNOWN:
            return
        sets = c.sets
        if sets is None:
            self._violate(
                ev,
                "DEV-MSI-SPURIOUS",
                f"MSI on vector {v}, but dbc {c.dbc} is not active",
                self._state(c),
                c=c,
            )
            return
        ok, masked_pending = sets.msi()
        if not ok:
            st = self._state(c, sets.states[-1] if sets.states else None, len(sets.states))
            if masked_pending:
                self._violate(
                    ev,
                    "DEV-MSI-MASKED",
                    f"MSI on vector {v} arrived while the host had it disabled",
                    st,
                    c=c,
                )
            else:
                self._violate(
                    ev,
                    "DEV-MSI-SPURIOUS",
                    f"MSI on vector {v} (dbc {c.dbc}), but no possible run of the device "
                    "had one due (no response FIFO empty -> non-empty transition, no "
                    "force-MSI)",
                    st,
                    c=c,
                )
            return
        sets.take_msi(ok)
        c.recheck_owed = 0

    def ev_complete(self, ev: Event) -> None:
        """C10: a completion must follow every response its BO asked for, once."""
        c = self.ch[ev.dbc]  # type: ignore[index]
        rid = ev.req_id
        assert rid is not None
        if c.mode is not Mode.KNOWN or c.resynced or not self.contents_known:
            return
        asked, got = c.asked.get(rid, 0), c.read.get(rid, 0)
        st = {**self._state(c), "req_id": rid, "responses_asked": asked, "responses_read": got}
        if asked == 0:
            self._violate(
                ev,
                "HOST-COMPLETE-UNKNOWN",
                f"host completed the BO with req_id {rid} on dbc {c.dbc}, but no "
                "request with that id asked for a response since it last completed "
                "(a completion twice, or for work never published)",
                st,
            )
        if got < asked:
            self._violate(
                ev,
                "HOST-COMPLETE-EARLY",
                f"host completed the BO with req_id {rid} on dbc {c.dbc} after reading "
                f"{got} of the {asked} responses its requests asked for",
                st,
            )
        c.asked[rid] = 0
        c.read[rid] = max(0, got - asked)

    def ev_idle(self, ev: Event) -> None:
        """C10: the host stopped; no consistent run may hold a response it will not hear of."""
        if not self.watch_msi:
            return
        for c in self.ch:
            if c.sets is None or c.mode is not Mode.KNOWN:
                continue
            if c.recheck_owed:
                self._violate(
                    ev,
                    "HOST-RSP-STRANDED",
                    f"the host stopped without re-reading RSP_TP of dbc {c.dbc} after "
                    f"enabling its MSI (line {c.recheck_owed}); an MSI raised while the "
                    "vector was masked may have been lost (msi-while-masked=lost), so "
                    "a response may wait in the ring unannounced",
                    self._state(c),
                )
            s = c.sets.stranded()
            if s is not None:
                self._violate(
                    ev,
                    "HOST-RSP-STRANDED",
                    f"the host stopped, but in a possible run of the device a response "
                    f"of dbc {c.dbc} is in the ring with no MSI to announce it (an MSI "
                    "raised while the vector was masked, then no re-read of RSP_TP "
                    "after enabling it)",
                    self._state(c, s, len(c.sets.states)),
                )

    def ev_bar(self, ev: Event) -> None:
        what = "read" if ev.ev == "bar_read" else f"wrote 0x{ev.val:x} to"
        self._violate(
            ev,
            "HOST-BAR-UNMAPPED",
            f"host {what} BAR2 offset 0x{ev.offset:x}, which is no DBC register",
            {"offset": ev.offset},
        )

    def ev_mark(self, ev: Event) -> None:
        if ev.lost:
            self._inconclusive(ev, f"{ev.lost} events lost: the window is unknown (C5)")
            for c in self.ch:
                self._lose(c)

    _DISPATCH: dict[str, Callable[[Checker, Event], None]] = {
        "writel": ev_writel,
        "readl": ev_readl,
        "req": ev_req,
        "rsp": ev_rsp,
        "msi": ev_msi,
        "irq_disable": ev_irq,
        "irq_enable": ev_irq,
        "activate": ev_activate,
        "deactivate": ev_deactivate,
        "mark": ev_mark,
        "nnc_tx": ControlMessages.ev_nnc,
        "nnc_rx": ControlMessages.ev_nnc,
        "ssr_rx": ControlMessages.ev_ssr,
        "ssr_tx": ControlMessages.ev_ssr,
        "bar_read": ev_bar,
        "bar_write": ev_bar,
        "complete": ev_complete,
        "idle": ev_idle,
    }

    # -- the run -------------------------------------------------------------------------
    def run(
        self,
        events: Iterable[Event],
        progress: Callable[[int, int, float], None] | None = None,
        nothing: str | None = None,
    ) -> Report:
        """Check ``events`` in order (C9); ``progress(line, events, seconds)`` is called
        about every 8192 events; ``nothing`` is the reason to give when no event was seen."""
        t0 = time.perf_counter()
        dispatch = self._DISPATCH
        seen = self.seen_kinds
        n = 0
        events = iter(events)
        try:
            for ev in events:
                n += 1
                seen.add(ev.ev)
                dispatch[ev.ev](self, ev)
                d = ev.dbc if ev.dbc is not None else (ev.vector - 1 if ev.vector else None)
                if d is not None and d < self.num_dbc:
                    sets = self.ch[d].sets
                    if sets is not None:
                        if sets.symmetric:
                            sets.barrier()
                        if sets.truncated and not sets.reported:
                            sets.reported = True
                            self._inconclusive(
                                ev,
                                f"dbc {d}: more than {self.max_states} possible "
                                "device states (search bound hit; --max-states "
                                "raises it; C11)",
                                "device-registers",
                            )
                if progress is not None and n & 8191 == 0:
                    progress(ev.line, n, time.perf_counter() - t0)
        except _Stop:
            self.report.events = n  # checked: up to and including the first violation
            for _ev in events:  # the rest is still read: malformed input is exit 2 (C9)
                pass
        else:
            self.report.events = n
        r = self.report
        r.seconds = time.perf_counter() - t0
        for c in self.ch:
            self._note_peak(c)
        r.peak_states = self.peak
        if r.violation is not None:
            r.verdict = "violation"
        elif not (seen - {"mark"}):
            why = nothing or (
                "the trace has no events" if not n else "the trace has only mark events"
            )
            r.inconclusive.insert(0, {"line": 0, "reason": f"nothing was checked: {why} (C9)"})
            r.inconclusive_total += 1
            r.verdict = "inconclusive"
        elif r.inconclusive:
            r.verdict = "inconclusive"
        r.families = self._families()
        return r

    def _families(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        kinds = self.seen_kinds | self.kinds if self.report.violation is None else self.kinds
        if {"bar_read", "bar_write"} & kinds:
            kinds = kinds | {"readl", "writel"}
        nogeo = [c.dbc for c in self.ch if c.mode is Mode.NO_GEOMETRY]
        for fam, (needs, _what) in FAMILIES.items():
            missing = [k for k in needs if k not in kinds]
            if fam == self.failed_family:
                out[fam] = {
                    "status": "fail",
                    "reason": self.report.violation.rule if self.report.violation else "",
                }
            elif (fam in ("nnc", "ssr", "registers") and len(missing) < len(needs)) or not missing:
                if fam in self.inconclusive_fams:
                    out[fam] = {"status": "inconclusive", "reason": "see inconclusive"}
                elif (
                    fam not in ("nnc", "ssr", "registers", "lifecycle", "request-elements")
                    and nogeo
                    and len(nogeo) == self.num_dbc
                    and "activate" not in kinds
                ):
                    out[fam] = {
                        "status": "not-checked",
                        "reason": "channel geometry unknown (no activate event; give --nelem)",
                    }
                elif fam in ("responses", "completions") and not self.contents_known:
                    out[fam] = {"status": "not-checked", "reason": "no req events (C7)"}
                else:
                    out[fam] = {"status": "pass", "reason": ""}
            else:
                out[fam] = {
                    "status": "not-checked",
                    "reason": f"the trace has no {' / '.join(missing)} events",
                }
        return out


def _policies(device: Any, policies: Policies | None) -> Policies:
    chosen = dict(device.policies)
    if policies is not None:
        chosen.update(policies.chosen)
    return Policies(chosen)


def _args(nelem: Any, max_states: Any) -> None:
    if nelem is not None and (not _is_int(nelem) or not 2 <= nelem <= MAX_NELEM):
        raise ArgumentError(f"--nelem {nelem!r} must be 2..{MAX_NELEM}")
    if not _is_int(max_states) or max_states < 1:
        raise ArgumentError(f"max_states must be a positive int, got {max_states!r}")


def _nothing(source: str, bar2: int | None, ignored: int) -> str | None:
    if source != "mmiotrace":
        return None
    if bar2 is None:
        return "the mmiotrace log has no access to a qaic device (no PCIDEV of vendor 0x17cb)"
    return (
        f"no access of the mmiotrace log fell inside the DMA Bridge BAR at 0x{bar2:x} "
        f"({ignored} access(es) outside it; is --bar2 right?)"
    )


def check(
    trace: Trace,
    policies: Policies | None = None,
    *,
    nelem: int | None = None,
    max_states: int = 4000,
) -> Report:
    """Check a parsed trace; ``policies`` override the header's ``device.policies``."""
    _args(nelem, max_states)
    pols = _policies(trace.device, policies)
    ck = Checker(
        trace.device, trace.kinds(), pols, trace.source, nelem=nelem, max_states=max_states
    )
    return ck.run(trace.events, nothing=_nothing(trace.source, trace.bar2, trace.ignored))


def check_stream(
    stream: TraceStream,
    policies: Policies | None = None,
    *,
    nelem: int | None = None,
    max_states: int = 4000,
    progress: Callable[[int, int, float], None] | None = None,
) -> Report:
    """Check a trace read one event at a time (T6): memory does not grow with its length."""
    _args(nelem, max_states)
    pols = _policies(stream.device, policies)
    ck = Checker(
        stream.device, stream.kinds, pols, stream.source, nelem=nelem, max_states=max_states
    )
    return ck.run(
        stream.events(), progress, nothing=_nothing(stream.source, stream.bar2, stream.ignored)
    )
