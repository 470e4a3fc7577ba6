"""``qaicmodel check``: is a host/device trace conforming?  (shared/formats/trace.md)

The checker replays a trace (:mod:`qaicmodel.trace`, read one event at a time) against
the device model (:class:`qaicmodel.spec.dbc.device.Device`).  Host actions are applied to
the model and must be legal; observations must be explainable by *some* run of a
conforming device.  The per-channel sets of possible device states and the search over
the device's own steps live in :mod:`qaicmodel.check_states` (rules L1-L7 there; the
argument in docs/check-design.md).

Rules of the checker (user-facing summary: docs/formats-extensions.md, "Trace format
and `qaicmodel check`"):
  C1  Channels are independent (aic100.rst "DMA Bridge": each DBC has its own
      registers, FIFOs, semaphores and MSI vector i+1, control-path.md §4.2), so the
      checker keeps, per channel, a SET of possible device states, each a Device.
  C2  Between two events the device may take any number of its own actions
      (``Device.enabled``: Consume, Advance, RaiseMsi) in any order the rules allow;
      the NSP side is invisible in a trace, so a request waiting on a semaphore may be
      released by the NSP at any time (the environment sets the semaphore, as
      ``Device.nsp_sem`` would).  The set is kept as a *frontier* closed lazily under
      these actions (check_states L1-L5): steps the host cannot see are taken at once,
      the others only when an observation needs them.
  C3  A host action (writel, req, activate, deactivate, irq_disable/enable) is legal if
      it is legal in EVERY possible state: the host cannot know that the device got
      further than what it observed, so an action that is illegal in one run of a
      conforming device consistent with the trace is a host bug (e.g. a REQ_TP write
      that only fits if the device consumed more than the REQ_HP the host read).
      Host rules come from the device model (``Device.violations``:
      HOST-WRITE-DEVICE-REG, HOST-REQ-OVERRUN, HOST-RSP-OVERREAD,
      HOST-REG-OUT-OF-RANGE, HOST-INACTIVE-DBC, HOST-BAR-UNMAPPED) and from
      wire.RequestElem.violations for every element the host publishes with a REQ_TP
      write; the checker adds HOST-REQ-OVERWRITE, HOST-REQ-SLOT, HOST-RSP-NOT-WRITTEN,
      HOST-REG-WIDTH, HOST-DBC-ACTIVE, HOST-ACTIVATE-NELEM (table RULES).
  C4  An observation (readl value, rsp contents, msi) keeps the states that explain
      it; none left is a DEV-... violation (a value no conforming device shows).
  C5  ``mark`` with ``lost`` (and mmiotrace ``Lost N events``) makes every channel
      unknown; a channel resynchronises once its four registers have been seen again
      (device-owned ones read, host-owned ones read or written) or at its next
      activate/deactivate.  Until then, DEV-... findings on a resynchronised
      channel are inconclusive (work from the lost window may still be in flight).
  C6  A trace with no ``activate`` event started mid-life: channel geometry is unknown
      unless ``--nelem`` gives it (channels then start unknown and resynchronise, C5);
      without it only the state-free rules are checked on those channels.
  C7  A trace with no ``req`` event leaves request contents unknown: each consumed
      element is taken to be either one that asks for a response or one that does not
      (the driver's completion bit is on the last element of a slice, qaic_data.c
      ``encode_reqs``); response contents are then not checked.
  C8  NNC (control-path.md §1.5): every nnc_tx/nnc_rx is decoded (qaicmodel.spec.nnc;
      its rule ids prefixed HOST-/DEV-); tx sequence numbers increase by one
      (``next_seq_num++``, taken before the ring-room check, so a refused message leaves a
      gap: numbers rise, not necessarily by one, ``nnc.seq_follows``; HOST-NNC-SEQ); an rx must answer an outstanding tx
      sequence number (DEV-NNC-UNMATCHED).  SSR messages are decoded
      (qaicmodel.spec.ssr; HOST-/DEV- prefixed).
  C9  Exit status: 0 conforming, 1 a violation (the first is reported), 3 inconclusive,
      2 malformed input (the CLI's FormatError handling).  A trace in which nothing
      could be checked (no events, only marks, or an mmiotrace none of whose accesses
      fell inside the DMA Bridge BAR) is inconclusive with that reason.
  C10 Extension events (docs/formats-extensions.md): ``complete`` (dbc, req_id) must
      come after the host read as many responses with that req_id as the elements it
      published with the completion bit asked for (HOST-COMPLETE-EARLY), and only for
      a req_id with such work outstanding (HOST-COMPLETE-UNKNOWN) -- qaic_data.c
      dbc_irq_threaded_fn; ``idle`` (the host stopped) must not leave, in any
      consistent run, a response in a ring with no MSI pending or due to announce it
      (HOST-RSP-STRANDED: the missed-event re-check of dbc_irq_threaded_fn).
  C11 Soundness of bounds: ``max_states`` bounds each search; when it is hit on a
      channel, DEV-... findings there are inconclusive (the states kept are real runs,
      so HOST-... findings stand) -- issue #11.
  C12 A report carries events/s and the peak number of states kept or explored for
      one channel (``--json``); on a terminal the CLI prints progress to stderr.
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any
from xml.etree import ElementTree as ET

import attrs

from qaicmodel import arith
from qaicmodel.check_states import ChannelStates, CounterStates, StateSet
from qaicmodel.errors import ArgumentError, FormatError, PolicyError
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.wire import REQ_SIZE, RSP_SIZE, RequestElem
from qaicmodel.spec.policies import Policies
from qaicmodel.trace import Event, Trace, TraceStream, open_trace

__all__ = ["check", "check_stream", "check_file", "Report", "Finding", "RULES", "FAMILIES",
           "add_args", "run_cli", "record_cosim", "TraceRecorder", "EXIT", "TRACE_VISIBILITY"]

#: exit status per verdict (trace.md "Check")
EXIT = {"conforming": 0, "violation": 1, "inconclusive": 3}

#: family -> (event kinds it needs, what it covers)
FAMILIES: dict[str, tuple[tuple[str, ...], str]] = {
    "registers": (("readl", "writel"), "register ownership, index range, access width, BAR map"),
    "request-ring": (("writel",), "REQ_TP writes against free space; slot overwrites"),
    "request-elements": (("req",), "aic100.rst Request FIFO element rules"),
    "response-ring": (("writel",), "RSP_HP writes and response reads against what the device wrote"),
    "device-registers": (("readl",), "REQ_HP / RSP_TP values a conforming device can show"),
    "responses": (("rsp", "req"), "response contents {req_id, completion_code}"),
    "msi": (("msi",), "MSIs: due (empty -> non-empty, force-MSI), unmasked, right vector"),
    "lifecycle": (("activate",), "activate / deactivate of channels"),
    "nnc": (("nnc_tx", "nnc_rx"), "NNC control messages: layout, CRC, sequence numbers"),
    "ssr": (("ssr_rx", "ssr_tx"), "SSR messages: layout"),
    "completions": (("complete", "req", "rsp"), "BO completions after every response asked for, once"),
    "missed-events": (("idle", "msi"), "no response left unannounced when the host stops"),
}

#: a model limit: larger rings are not checked (a state's response ring is copied when the
#: set of possible states branches)
MAX_NELEM = 4096

_DMA = "aic100.rst DMA Bridge"
_REQ = "aic100.rst Request FIFO"
_RSP = "aic100.rst Response FIFO"
#: rule id -> (family, source).  Device-recorded rules carry their own source too.
RULES: dict[str, tuple[str, str]] = {
    "HOST-WRITE-DEVICE-REG": ("registers", _DMA),
    "HOST-REG-OUT-OF-RANGE": ("registers", _DMA),
    "HOST-INACTIVE-DBC": ("registers", "control-path.md §2.1; aic100.rst DMA Bridge"),
    "HOST-BAR-UNMAPPED": ("registers", "control-path.md §2.2 (QAIC_DBC_BASE, 4 KiB per DBC)"),
    "HOST-REG-WIDTH": ("registers", "aic100.rst DMA Bridge (32-bit registers); qaic_data.c readl/writel"),
    "HOST-REQ-OVERRUN": ("request-ring", "qaic_data.c fifo_space_avail; aic100.rst DMA Bridge"),
    "HOST-REQ-OVERWRITE": ("request-ring", _REQ + " (elements between REQ_HP and REQ_TP belong to the device)"),
    "HOST-REQ-SLOT": ("request-ring", _DMA + " (element i at req_q + 64 i, i < nelem)"),
    "REQ-DIR-ILLEGAL": ("request-elements", _REQ),
    "REQ-DB-LEN-RESERVED": ("request-elements", _REQ),
    "REQ-DB-MISALIGNED": ("request-elements", _REQ),
    "REQ-DB-DATA-WIDTH": ("request-elements", _REQ),
    "REQ-MULTI-PRESYNC": ("request-elements", _REQ),
    "SEM-CMD-RESERVED": ("request-elements", _REQ),
    "RESERVED-BITS-SET": ("request-elements", _REQ),
    "HOST-RSP-OVERREAD": ("response-ring", _RSP),
    "HOST-RSP-NOT-WRITTEN": ("response-ring", _RSP + " (only elements between RSP_HP and RSP_TP are valid)"),
    "DEV-REQ-HP": ("device-registers", _DMA + "; " + _REQ),
    "DEV-RSP-TP": ("device-registers", _DMA + "; " + _RSP),
    "DEV-REG-VALUE": ("device-registers", _DMA + " (REQ_TP / RSP_HP are written by the host)"),
    "DEV-RSP-CONTENT": ("responses", _RSP),
    "DEV-MSI-SPURIOUS": ("msi", _RSP + " (MSI on empty -> non-empty, or force-MSI)"),
    "DEV-MSI-MASKED": ("msi", "control-path.md §4.2; qaicmodel.spec.intc (a masked vector is not delivered)"),
    "DEV-MSI-VECTOR": ("msi", "control-path.md §4.2 (vector 0 MHI, i+1 DBC i; single MSI: 0)"),
    "HOST-DBC-ACTIVE": ("lifecycle", "control-path.md §2.1 (QSM activates a free channel)"),
    "HOST-ACTIVATE-NELEM": ("lifecycle", "qaic_control.c encode_activate (arith.activate_queue_size_ok)"),
    "HOST-NNC-SEQ": ("nnc", "control-path.md §1.5 (seq = next_seq_num++)"),
    "DEV-NNC-UNMATCHED": ("nnc", "control-path.md §1.5 (responses are matched by sequence number)"),
    "HOST-COMPLETE-EARLY": ("completions", "qaic_data.c dbc_irq_threaded_fn (a BO completes when "
                                           "nr_slice_xfer_done == nr_slice)"),
    "HOST-COMPLETE-UNKNOWN": ("completions", "qaic_data.c dbc_irq_threaded_fn (the BO leaves "
                                             "xfer_list when it completes)"),
    "HOST-RSP-STRANDED": ("missed-events", "qaic_data.c dbc_irq_threaded_fn (re-read RSP_TP after "
                                           "enable_irq: \"check for a missed event\"); "
                                           + _RSP + " (MSI only on empty -> non-empty)"),
}

#: What a trace can show of each broken host of qaicmodel.oracle.broken (issue #11 item 4):
#: class name -> (device policies it needs, the check rules that catch it, which events the
#: trace must carry).  tests/test_check_broken.py records a trace of each and checks it.
TRACE_VISIBILITY: dict[str, tuple[dict[str, str], tuple[str, ...], str]] = {
    "NoRecheckHost": ({"msi-while-masked": "lost"}, ("HOST-RSP-STRANDED",),
                      "msi, irq_disable/irq_enable and idle (the stranded response is only "
                      "visible once the host says it stopped)"),
    "NoReserveHost": ({}, ("HOST-REQ-OVERRUN", "HOST-REQ-OVERWRITE"),
                      "writel/readl (REQ_HP, REQ_TP): register traces suffice"),
    "NoLockHost": ({}, ("HOST-REQ-OVERWRITE", "HOST-REQ-OVERRUN", "HOST-COMPLETE-UNKNOWN",
                        "HOST-COMPLETE-EARLY"),
                   "req (slot writes) and writel; a lost submission whose slots were "
                   "overwritten before publication needs complete events"),
    "OverreadHost": ({}, ("HOST-RSP-OVERREAD", "HOST-RSP-NOT-WRITTEN", "HOST-RSP-STRANDED"),
                     "readl/writel (RSP_TP, RSP_HP): register traces suffice (when a bound "
                     "hides the overread, the ring it leaves behind is HOST-RSP-STRANDED at idle)"),
    "EarlyCompleteHost": ({}, ("HOST-COMPLETE-EARLY",),
                          "req, rsp and complete (a completion is host-internal)"),
    "DoubleCompleteHost": ({}, ("HOST-COMPLETE-UNKNOWN", "HOST-COMPLETE-EARLY"),
                           "req, rsp and complete"),
}


def _family(rule: str) -> str:
    if rule in RULES:
        return RULES[rule][0]
    for pre, fam in (("HOST-NNC", "nnc"), ("DEV-NNC", "nnc"), ("HOST-SSR", "ssr"),
                     ("DEV-SSR", "ssr")):
        if rule.startswith(pre):
            return fam
    return "registers"


# -- findings and the report -------------------------------------------------------

#: a report keeps at most this many inconclusive reasons (the total is counted)
MAX_REASONS = 100


@attrs.frozen
class Finding:
    """One broken rule at one event (trace.md "Report"): where (line, event), which rule,
    one sentence, the model state that makes it a violation and the rule's source."""

    line: int
    event: str
    rule: str
    message: str
    state: dict[str, Any]
    source: str

    @property
    def where(self) -> dict[str, Any]:
        """The location, in the shape of :class:`qaicmodel.findings.Finding` (issue #8)."""
        return {"line": self.line, "event": self.event, "dbc": self.state.get("dbc")}

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "event": self.event, "rule": self.rule,
                "family": _family(self.rule), "message": self.message, "state": self.state,
                "source": self.source, "where": self.where}


@attrs.define
class Report:
    verdict: str = "conforming"
    events: int = 0
    violation: Finding | None = None
    inconclusive: list[dict[str, Any]] = attrs.field(factory=list)
    families: dict[str, dict[str, str]] = attrs.field(factory=dict)
    source: str = "jsonl"
    inconclusive_total: int = 0
    seconds: float = 0.0
    peak_states: int = 0

    @property
    def exit(self) -> int:
        return EXIT[self.verdict]

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"format": "qaicmodel-check/1", "verdict": self.verdict, "exit": self.exit,
                "trace_format": self.source, "events": self.events,
                "violation": self.violation.as_dict() if self.violation else None,
                "inconclusive": self.inconclusive,
                "inconclusive_total": self.inconclusive_total, "families": self.families,
                "not_checked": sorted(f for f, v in self.families.items()
                                      if v["status"] == "not-checked"),
                "seconds": round(self.seconds, 6), "events_per_s": round(self.events_per_s, 1),
                "peak_states": self.peak_states}

    def text(self) -> str:
        out = [f"{self.verdict.upper()}: {self.events} events ({self.source})"]
        if self.violation is not None:
            v = self.violation
            out += [f"line {v.line} ({v.event}): {v.rule}: {v.message}",
                    f"  state:  {json.dumps(v.state, sort_keys=True)}",
                    f"  source: {v.source}"]
        for inc in self.inconclusive[:5]:
            out.append(f"inconclusive: line {inc['line']}: {inc['reason']}")
        if self.inconclusive_total > 5:
            out.append(f"inconclusive: ... {self.inconclusive_total - 5} more")
        for fam, st in self.families.items():
            if st["status"] == "not-checked":
                out.append(f"not checked: {fam}: {st['reason']}")
        return "\n".join(out)

    def junit(self) -> str:
        """One test case per rule family (JUnit XML, for CI systems)."""
        fams = self.families
        suite = ET.Element("testsuite", name="qaicmodel-check", tests=str(len(fams)),
                           failures=str(sum(v["status"] == "fail" for v in fams.values())),
                           skipped=str(sum(v["status"] in ("not-checked", "inconclusive")
                                           for v in fams.values())), errors="0")
        for fam, st in fams.items():
            case = ET.SubElement(suite, "testcase", classname="qaicmodel.check", name=fam)
            if st["status"] == "fail" and self.violation is not None:
                v = self.violation
                fail = ET.SubElement(case, "failure", message=f"{v.rule}: {v.message}",
                                     type=v.rule)
                fail.text = json.dumps(v.as_dict(), indent=2)
            elif st["status"] in ("not-checked", "inconclusive"):
                ET.SubElement(case, "skipped", message=f"{st['status']}: {st['reason']}")
        return ET.tostring(suite, encoding="unicode", xml_declaration=True)


class _Stop(Exception):
    """Internal: the first violation was found."""


# -- per-channel bookkeeping -------------------------------------------------------------


class Mode(enum.Enum):
    """What the checker knows about one channel (C5, C6)."""

    KNOWN = "known"  # inactive (sets is None) or a frontier of possible device states
    LOST = "lost"  # geometry known, state unknown: waiting to resynchronise
    NO_GEOMETRY = "no-geometry"  # never activated in the trace and no --nelem: state-free rules only


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


class Checker:
    """Replays one trace (C1-C12).  Use :func:`check` / :func:`check_stream`."""

    def __init__(self, device: Any, kinds: set[str], policies: Policies, source: str = "jsonl",
                 nelem: int | None = None, max_states: int = 4000, counters: bool = True) -> None:
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
                self._geometry(c, nelem, 0x1000_0000_0000 + d * 0x100_0000,
                               0x1000_0080_0000 + d * 0x100_0000)
                self.ch.append(c)
            else:
                self.ch.append(_Chan(d, Mode.NO_GEOMETRY))
        self.nelem_given = nelem
        self._elem_cache: dict[bytes, RequestElem] = {}

    # -- reporting ------------------------------------------------------------
    def _state(self, c: _Chan, s: Any = None, n: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"dbc": c.dbc, "mode": c.mode.value}
        if c.sets is not None:
            out.update(c.sets.describe(s if s is not None else c.sets.states[0]
                                       if c.sets.states else None, n))
            out["mode"] = c.mode.value
        elif c.mode is Mode.KNOWN:
            out["active"] = False
        return out

    def _violate(self, ev: Event, rule: str, message: str, state: dict[str, Any],
                 source: str | None = None, c: _Chan | None = None) -> None:
        if rule.startswith("DEV-") and c is not None and (
                c.resynced or (c.sets is not None and c.sets.truncated)):
            why = "after a resynchronisation, C5" if c.resynced else \
                f"the search bound of {self.max_states} states was hit on this channel, C11"
            self._inconclusive(ev, f"{rule}: {message} ({why})", _family(rule))
            self._lose(c)
            return
        src = source or RULES.get(rule, ("", _DMA))[1]
        self.report.violation = Finding(ev.line, ev.ev, rule, message, state, src)
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
        if (not self.contents_known and self.counters and p["processing-order"] != "fifo"
                and p["response-order"] == "completion-order"
                and p["fence-scope"] != "all-outstanding"):
            return CounterStates(c.dbc, c.nelem, c.req_q, c.rsp_q, policies=p,
                                 single_msi=self.single_msi, watch_msi=self.watch_msi,
                                 max_states=self.max_states)
        sets = ChannelStates(c.dbc, c.nelem, c.req_q, c.rsp_q, policies=self.policies,
                             single_msi=self.single_msi, contents_known=self.contents_known,
                             watch_msi=self.watch_msi, max_states=self.max_states, ring=c.ring)
        for i in range(c.nelem):  # C12: force-MSI bits of what the host wrote so far
            if c.ring[i * REQ_SIZE:(i + 1) * REQ_SIZE] != bytes(REQ_SIZE):
                sets.note_slot(i, self._elem(bytes(c.ring[i * REQ_SIZE:(i + 1) * REQ_SIZE])))
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
            self._violate(ev, "HOST-REG-WIDTH",
                          f"a {ev.width}-byte access to a 32-bit DBC register", {"dbc": ev.dbc,
                                                                                   "width": ev.width})

    def _inactive(self, ev: Event, c: _Chan, what: str) -> None:
        self._violate(ev, "HOST-INACTIVE-DBC", f"host {what} of dbc {c.dbc}, which is not active",
                      self._state(c), RULES["HOST-INACTIVE-DBC"][1])

    def ev_writel(self, ev: Event) -> None:
        if ev.width != 4:
            self._reg_width(ev)
        c = self.ch[ev.dbc]  # type: ignore[index]
        reg, val = ev.reg, ev.val
        assert reg is not None and val is not None
        if reg in regs.DEVICE_OWNED:
            self._violate(ev, "HOST-WRITE-DEVICE-REG",
                          f"host wrote 0x{val:x} to {regs.REG_NAMES[reg]} of dbc {c.dbc}, which "
                          "only the device writes (\"Read only by the host\")", self._state(c))
        sets = c.sets
        if sets is None:
            if c.mode is Mode.LOST:
                if val >= c.nelem:  # state-free: an index is below nelem
                    self._violate(ev, "HOST-REG-OUT-OF-RANGE",
                                  f"{regs.REG_NAMES[reg]} write {val} of dbc {c.dbc} is not an "
                                  f"index below nelem {c.nelem}", self._state(c))
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
        width_rule = self.policies["doorbell-data-width"] == "violation"
        for k in range(int(arith.ring_occupancy(old, new, n))):
            slot = (old + k) % n
            elem = self._elem(bytes(ring[slot * REQ_SIZE:(slot + 1) * REQ_SIZE]))
            if elem.completion:
                c.asked[elem.req_id] = c.asked.get(elem.req_id, 0) + 1
            if elem.db_write and width_rule:
                w = elem.db_len.nbytes
                if w and elem.doorbell_data >> (8 * w):
                    self._violate(ev, "REQ-DB-DATA-WIDTH",
                                  f"element {slot}: doorbell_data 0x{elem.doorbell_data:x} is "
                                  f"wider than its {8 * w}-bit length", self._state(c))
            viol = elem.violations()
            if viol:
                v = viol[0]
                self._violate(ev, v.rule, f"REQ_TP {old} -> {new} publishes element {slot} of "
                                          f"dbc {c.dbc}: {v.field}: {v.message}",
                              self._state(c), v.source)

    def ev_req(self, ev: Event) -> None:
        c = self.ch[ev.dbc]  # type: ignore[index]
        idx, data = ev.idx, ev.data
        assert idx is not None and data is not None
        if c.mode is Mode.NO_GEOMETRY:
            return
        sets = c.sets
        if c.mode is Mode.KNOWN and sets is None:
            self._violate(ev, "HOST-INACTIVE-DBC", f"request element {idx} written for dbc "
                                                   f"{c.dbc}, which has no active FIFO", self._state(c))
        if idx >= c.nelem:
            self._violate(ev, "HOST-REQ-SLOT", f"request element {idx} written, but the FIFO "
                                               f"of dbc {c.dbc} has {c.nelem} slots", self._state(c))
        if sets is not None:
            busy = sets.busy_slot(idx)
            if busy is not None:
                self._violate(ev, "HOST-REQ-OVERWRITE",
                              f"host wrote request slot {idx} of dbc {c.dbc}, which is published "
                              "and may not be consumed yet (the device need not have got "
                              "further than the host observed)",
                              self._state(c, busy, len(sets.states)))
        c.ring[idx * REQ_SIZE:(idx + 1) * REQ_SIZE] = data
        if sets is not None:
            sets.note_slot(idx, self._elem(data))

    def ev_activate(self, ev: Event) -> None:
        c = self.ch[ev.dbc]  # type: ignore[index]
        assert ev.nelem is not None and ev.req_q is not None and ev.rsp_q is not None
        if not arith.activate_queue_size_ok(ev.nelem) or ev.nelem < 2:
            self._violate(ev, "HOST-ACTIVATE-NELEM",
                          f"dbc {c.dbc} activated with nelem {ev.nelem}, a queue size the "
                          "driver does not accept", self._state(c))
        if c.mode is Mode.KNOWN and c.sets is not None:
            self._violate(ev, "HOST-DBC-ACTIVE", f"dbc {c.dbc} activated while active",
                          self._state(c))
        self._note_peak(c)
        self._geometry(c, ev.nelem, ev.req_q, ev.rsp_q)
        c.resynced, c.seen = False, {}
        if ev.nelem > MAX_NELEM:
            self._inconclusive(ev, f"dbc {c.dbc}: nelem {ev.nelem} is beyond the checker's limit "
                                   f"of {MAX_NELEM} elements; the channel is not checked",
                               "request-ring")
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
                    self._violate(ev, _REG_RULE.get(reg, "DEV-REG-VALUE"),
                                  f"{regs.REG_NAMES[reg]} of dbc {c.dbc} read {val}, not an index "
                                  f"below nelem {c.nelem}", self._state(c))
                c.seen[reg] = val
                self._try_resync(c)
            elif c.mode is Mode.KNOWN:
                want = 0xFFFFFFFF if self.policies["inactive-dbc-regs"] == "all-ones" else 0
                if val != want:
                    self._violate(ev, _REG_RULE.get(reg, "DEV-REG-VALUE"),
                                  f"{regs.REG_NAMES[reg]} of dbc {c.dbc} read {val}, but an "
                                  f"inactive channel shows {want}", self._state(c), c=c)
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
            later = " (or what its own progress from there gives)" if reg in regs.DEVICE_OWNED else ""
            name = regs.REG_NAMES[reg]
            extra = " (all ones: the link is down or the device is gone)" if val == 0xFFFFFFFF else ""
            self._violate(ev, _REG_RULE.get(reg, "DEV-REG-VALUE"),
                          f"{name} of dbc {d} read {val}{extra}, but a conforming device can only "
                          f"show {shown}{later} here", self._state(c, pre[-1], len(pre)), c=c)
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
            self._violate(ev, "HOST-RSP-NOT-WRITTEN", f"host read response slot {idx} of dbc {d}, "
                                                      "which is not active", self._state(c))
            return
        pre = sets.states
        bad = sets.unwritten(idx)
        if bad is not None:
            self._violate(ev, "HOST-RSP-NOT-WRITTEN",
                          f"host read response slot {idx} of dbc {d}, which the device need "
                          "not have written yet (beyond the RSP_TP the host read) or the host "
                          "already freed", self._state(c, bad, len(pre)))
        rid = int.from_bytes(data[:2], "little")
        c.read[rid] = c.read.get(rid, 0) + 1
        if not self.contents_known:
            return
        ok = sets.rsp_states(idx, data)
        if not ok:
            got = rid, int.from_bytes(data[2:], "little")
            want = sets.rsp_words(idx)
            self._violate(ev, "DEV-RSP-CONTENT",
                          f"response slot {idx} of dbc {d} reads req_id {got[0]} code {got[1]}, "
                          f"which no conforming device wrote there (possible: {', '.join(want[:6])})",
                          self._state(c, pre[-1], len(pre)), c=c)
            return
        sets.states = ok

    def ev_msi(self, ev: Event) -> None:
        v = ev.vector
        assert v is not None
        if v == 0:
            return  # MHI (and every DBC in single-MSI mode): not modelled here
        if self.single_msi:
            self._violate(ev, "DEV-MSI-VECTOR", f"MSI on vector {v}, but in single-MSI mode "
                                                "every DBC raises vector 0", {"vector": v})
        c = self.ch[v - 1]
        if c.mode is not Mode.KNOWN:
            return
        sets = c.sets
        if sets is None:
            self._violate(ev, "DEV-MSI-SPURIOUS", f"MSI on vector {v}, but dbc {c.dbc} is not "
                                                  "active", self._state(c), c=c)
            return
        ok, masked_pending = sets.msi()
        if not ok:
            st = self._state(c, sets.states[-1] if sets.states else None, len(sets.states))
            if masked_pending:
                self._violate(ev, "DEV-MSI-MASKED", f"MSI on vector {v} arrived while the host "
                                                    "had it disabled", st, c=c)
            else:
                self._violate(ev, "DEV-MSI-SPURIOUS",
                              f"MSI on vector {v} (dbc {c.dbc}), but no possible run of the device "
                              "had one due (no response FIFO empty -> non-empty transition, no "
                              "force-MSI)", st, c=c)
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
            self._violate(ev, "HOST-COMPLETE-UNKNOWN",
                          f"host completed the BO with req_id {rid} on dbc {c.dbc}, but no "
                          "request with that id asked for a response since it last completed "
                          "(a completion twice, or for work never published)", st)
        if got < asked:
            self._violate(ev, "HOST-COMPLETE-EARLY",
                          f"host completed the BO with req_id {rid} on dbc {c.dbc} after reading "
                          f"{got} of the {asked} responses its requests asked for", st)
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
                self._violate(ev, "HOST-RSP-STRANDED",
                              f"the host stopped without re-reading RSP_TP of dbc {c.dbc} after "
                              f"enabling its MSI (line {c.recheck_owed}); an MSI raised while the "
                              "vector was masked may have been lost (msi-while-masked=lost), so "
                              "a response may wait in the ring unannounced", self._state(c))
            s = c.sets.stranded()
            if s is not None:
                self._violate(ev, "HOST-RSP-STRANDED",
                              f"the host stopped, but in a possible run of the device a response "
                              f"of dbc {c.dbc} is in the ring with no MSI to announce it (an MSI "
                              "raised while the vector was masked, then no re-read of RSP_TP "
                              "after enabling it)", self._state(c, s, len(c.sets.states)))

    def ev_bar(self, ev: Event) -> None:
        what = "read" if ev.ev == "bar_read" else f"wrote 0x{ev.val:x} to"
        self._violate(ev, "HOST-BAR-UNMAPPED", f"host {what} BAR2 offset 0x{ev.offset:x}, which is "
                                               "no DBC register", {"offset": ev.offset})

    def ev_mark(self, ev: Event) -> None:
        if ev.lost:
            self._inconclusive(ev, f"{ev.lost} events lost: the window is unknown (C5)")
            for c in self.ch:
                self._lose(c)

    def ev_nnc(self, ev: Event) -> None:
        from qaicmodel.spec.control import nnc

        assert ev.data is not None
        tx = ev.ev == "nnc_tx"
        who = "HOST" if tx else "DEV"
        p = nnc.parse(ev.data, "h2d" if tx else "d2h")
        if p.violations:
            v = p.violations[0]
            self._violate(ev, f"{who}-{v.rule}", f"{'sent' if tx else 'received'} NNC message: "
                                                 f"{v.message} (byte {v.offset})", {"size": len(ev.data)},
                          "control-path.md §1 (qaicmodel.spec.control.nnc)")
        seq = p.header.get("sequence_number")
        if seq is None:
            return
        if tx:
            if self.nnc_last_seq is not None and not nnc.seq_follows(self.nnc_last_seq, seq):
                self._violate(ev, "HOST-NNC-SEQ", f"sequence number {seq} after "
                                                  f"{self.nnc_last_seq}; the driver's numbers rise",
                              {"last_sequence_number": self.nnc_last_seq})
            self.nnc_last_seq = seq
            self.nnc_outstanding.add(seq)
        else:
            if seq not in self.nnc_outstanding:
                self._violate(ev, "DEV-NNC-UNMATCHED", f"response with sequence number {seq}, "
                                                       "which answers no outstanding request",
                              {"outstanding": sorted(self.nnc_outstanding)[:16]})
            self.nnc_outstanding.discard(seq)

    def ev_ssr(self, ev: Event) -> None:
        from qaicmodel.spec.control import ssr

        assert ev.data is not None
        _msg, viol = ssr.parse(ev.data, self.num_dbc)
        if viol:
            who = "HOST" if ev.ev == "ssr_tx" else "DEV"
            v = viol[0]
            self._violate(ev, f"{who}-{v['rule']}", f"SSR message: {v['message']}",
                          {"size": len(ev.data)}, "aic100.rst Subsystem Restart (qaicmodel.spec.control.ssr)")

    _DISPATCH: dict[str, Callable[[Checker, Event], None]] = {
        "writel": ev_writel, "readl": ev_readl, "req": ev_req, "rsp": ev_rsp, "msi": ev_msi,
        "irq_disable": ev_irq, "irq_enable": ev_irq, "activate": ev_activate,
        "deactivate": ev_deactivate, "mark": ev_mark, "nnc_tx": ev_nnc, "nnc_rx": ev_nnc,
        "ssr_rx": ev_ssr, "ssr_tx": ev_ssr, "bar_read": ev_bar, "bar_write": ev_bar,
        "complete": ev_complete, "idle": ev_idle,
    }

    # -- the run -------------------------------------------------------------------------
    def run(self, events: Iterable[Event], progress: Callable[[int, int, float], None] | None = None,
            nothing: str | None = None) -> Report:
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
                            self._inconclusive(ev, f"dbc {d}: more than {self.max_states} possible "
                                                   "device states (search bound hit; --max-states "
                                                   "raises it; C11)", "device-registers")
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
            why = nothing or ("the trace has no events" if not n else
                              "the trace has only mark events")
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
                out[fam] = {"status": "fail", "reason": self.report.violation.rule
                            if self.report.violation else ""}
            elif (fam in ("nnc", "ssr", "registers") and len(missing) < len(needs)) or not missing:
                if fam in self.inconclusive_fams:
                    out[fam] = {"status": "inconclusive", "reason": "see inconclusive"}
                elif fam not in ("nnc", "ssr", "registers", "lifecycle", "request-elements") and \
                        nogeo and len(nogeo) == self.num_dbc and "activate" not in kinds:
                    out[fam] = {"status": "not-checked",
                                "reason": "channel geometry unknown (no activate event; give --nelem)"}
                elif fam in ("responses", "completions") and not self.contents_known:
                    out[fam] = {"status": "not-checked", "reason": "no req events (C7)"}
                else:
                    out[fam] = {"status": "pass", "reason": ""}
            else:
                out[fam] = {"status": "not-checked",
                            "reason": f"the trace has no {' / '.join(missing)} events"}
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
    return (f"no access of the mmiotrace log fell inside the DMA Bridge BAR at 0x{bar2:x} "
            f"({ignored} access(es) outside it; is --bar2 right?)")


def check(trace: Trace, policies: Policies | None = None, *, nelem: int | None = None,
          max_states: int = 4000) -> Report:
    """Check a parsed trace; ``policies`` override the header's ``device.policies``."""
    _args(nelem, max_states)
    pols = _policies(trace.device, policies)
    ck = Checker(trace.device, trace.kinds(), pols, trace.source, nelem=nelem,
                 max_states=max_states)
    return ck.run(trace.events, nothing=_nothing(trace.source, trace.bar2, trace.ignored))


def check_stream(stream: TraceStream, policies: Policies | None = None, *,
                 nelem: int | None = None, max_states: int = 4000,
                 progress: Callable[[int, int, float], None] | None = None) -> Report:
    """Check a trace read one event at a time (T6): memory does not grow with its length."""
    _args(nelem, max_states)
    pols = _policies(stream.device, policies)
    ck = Checker(stream.device, stream.kinds, pols, stream.source, nelem=nelem,
                 max_states=max_states)
    return ck.run(stream.events(), progress,
                  nothing=_nothing(stream.source, stream.bar2, stream.ignored))


# -- CLI -----------------------------------------------------------------------------------


def _addr(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an address (e.g. 0xfe000000)") from None
    if not 0 <= v < 1 << 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a 64-bit address")
    return v


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="the trace (qaicmodel-trace/1 JSON Lines, or mmiotrace text)")
    p.add_argument("--format", choices=("jsonl", "mmiotrace"), default="jsonl",
                   help="input format (default jsonl)")
    p.add_argument("--bar2", type=_addr, default=None,
                   help="mmiotrace: bus address of the DMA Bridge BAR (default: from PCIDEV)")
    p.add_argument("--policy", action="append", default=[], metavar="ID=ALT",
                   help="device policy (overrides the trace header); repeatable")
    p.add_argument("--nelem", type=int, default=None,
                   help="FIFO size of channels the trace never activates (extension)")
    p.add_argument("--max-states", type=int, default=4000,
                   help="bound on the device states one search may keep or explore per "
                        "channel (default 4000); hitting it makes the verdict at best "
                        "inconclusive")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the report as JSON")
    out.add_argument("--junit", metavar="OUT.xml", help="write one JUnit test case per rule family")


class _Progress:
    """C12: ``line N, X events/s`` on stderr when it is a terminal and the check has run
    for more than ``after`` seconds; silent when piped."""

    def __init__(self, stream: Any = None, after: float = 2.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.after = after
        self.shown = False
        self.next = after

    def __call__(self, line: int, events: int, seconds: float) -> None:
        if seconds < self.next:
            return
        self.next = seconds + 0.5
        self.stream.write(f"\rqaicmodel check: line {line}, {events / seconds:,.0f} events/s ")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def check_file(path: str, fmt: str = "jsonl", *, bar2: int | None = None,
               policies: Policies | None = None, nelem: int | None = None,
               max_states: int = 4000, progress: bool = False) -> Report:
    """Read and check a trace file, streaming (T6); ``progress``: C12 on a terminal."""
    from qaicmodel.spec.dbc.config import DeviceConfig

    dev = DeviceConfig() if fmt == "mmiotrace" else None
    stream = open_trace(path, fmt, bar2=bar2, device=dev)
    tty = progress and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    prog = _Progress() if tty else None
    try:
        return check_stream(stream, policies, nelem=nelem, max_states=max_states, progress=prog)
    finally:
        if prog is not None:
            prog.done()


def run_cli(args: argparse.Namespace) -> int:
    try:
        pols = Policies.parse(args.policy)
    except PolicyError as e:
        raise FormatError(str(e), where="--policy") from None
    try:
        report = check_file(args.file, args.format, bar2=args.bar2, policies=pols,
                            nelem=args.nelem, max_states=args.max_states, progress=True)
    except ArgumentError as e:
        raise FormatError(str(e), where="--nelem" if "nelem" in str(e) else "--max-states") from None
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.text())
    if args.junit:
        try:
            with open(args.junit, "w", encoding="utf-8") as f:
                f.write(report.junit())
        except OSError as e:
            raise FormatError(f"cannot write: {e.strerror}", where=args.junit) from None
    return report.exit


# -- recording traces from a co-simulation -----------------------------------------------------


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
                self.emit({"ev": "activate", "dbc": ch.dbc, "nelem": ch.nelem,
                           "req_q": f"0x{ch.req_q:x}", "rsp_q": f"0x{ch.rsp_q:x}"})
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
                a = now[i * REQ_SIZE:(i + 1) * REQ_SIZE]
                if a != old[i * REQ_SIZE:(i + 1) * REQ_SIZE]:
                    self.emit({"ev": "req", "dbc": dbc, "idx": i, "hex": a.hex()})
            self.rings[dbc] = now

    def text(self, device: dict[str, Any] | None = None) -> str:
        from qaicmodel.trace import dumps

        return dumps(device, self.events)


def record_cosim(host_factory: Callable[..., Any], *, seed: int, steps: int = 200,
                 policies: dict[str, str] | None = None,
                 **world_kw: Any) -> tuple[str, list[Any]]:
    """A seeded random co-simulation (the operations of cosim.random_run) recorded as a
    ``qaicmodel-trace/1`` text.  Returns (trace text, the co-simulation's findings)."""
    from qaicmodel.oracle.cosim import random_run

    pol = Policies(policies or {})
    recorders: list[TraceRecorder] = []
    w, findings = random_run(host_factory, seed=seed, steps=steps, policies=pol,
                             on_world=lambda world: recorders.append(TraceRecorder(world)),
                             **world_kw)
    rec = recorders[0]
    rec.sync()
    if w.quiescent():  # settled: the host has nothing left to wait for
        rec.idle()
    device = {"num_dbc": w.dev.num_dbc, "single_msi": w.dev.single_msi,
              "policies": dict(pol.chosen)}
    return rec.text(device), list(findings)
