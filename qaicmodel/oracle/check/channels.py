"""The trace checker's per-channel bookkeeping (C1, C5, C6, C11 of
:mod:`qaicmodel.oracle.check`): what the checker knows about each channel (:class:`Mode`),
its geometry and ring copy, the sets of possible device states (:mod:`.states`,
:mod:`.counters`) it keeps for it, resynchronisation after lost events, and the reporting
helpers every event handler uses.  The handlers are in :mod:`.actions` (host actions) and
:mod:`.observations`; :class:`~.checker.Checker` puts them together."""

from __future__ import annotations

import enum
from typing import Any

import attrs

from qaicmodel.oracle.check.counters import CounterStates
from qaicmodel.oracle.check.report import MAX_REASONS, Report, TraceFinding, _Stop
from qaicmodel.oracle.check.rules import _DMA, RULES, _family
from qaicmodel.oracle.check.states import ChannelStates, StateSet
from qaicmodel.oracle.trace import Event
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.wire import REQ_SIZE, RequestElem
from qaicmodel.spec.policies import (
    FENCE_SCOPE,
    PROCESSING_ORDER,
    RESPONSE_ORDER,
    FenceScope,
    Policies,
    ProcessingOrder,
    ResponseOrder,
)

__all__ = ["Mode", "ChannelBook"]

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


class ChannelBook:
    """The checker's state for one trace: per-channel bookkeeping and reporting (C1-C12)."""

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
