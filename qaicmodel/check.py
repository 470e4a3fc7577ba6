"""``qaicmodel check``: is a host/device trace conforming?  (shared/formats/trace.md)

The checker replays a trace (:mod:`qaicmodel.trace`) against the device model
(:class:`qaicmodel.spec.device.Device`).  Host actions are applied to the model and
must be legal; observations must be explainable by *some* run of a conforming device.

Rules of the checker (user-facing summary: docs/formats-extensions.md, "Trace format
and `qaicmodel check`"):
  C1  Channels are independent (aic100.rst "DMA Bridge": each DBC has its own
      registers, FIFOs, semaphores and MSI vector i+1, control-path.md §4.2), so the
      checker keeps, per channel, a SET of possible device states, each a Device.
  C2  Between two events the device may take any number of its own actions
      (``Device.enabled``: Consume, Advance, RaiseMsi) in any order the rules allow;
      the NSP side is invisible in a trace, so a request waiting on a semaphore may be
      released by the NSP at any time (the environment sets the semaphore, as
      ``Device.nsp_sem`` would).  Before each event on a channel the set is closed
      under these actions, deduplicated, and bounded by ``max_states``; hitting the
      bound makes the verdict at best inconclusive.
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
      (``next_seq_num++``, HOST-NNC-SEQ); an rx must answer an outstanding tx
      sequence number (DEV-NNC-UNMATCHED).  SSR messages are decoded
      (qaicmodel.spec.ssr; HOST-/DEV- prefixed).
  C9  Exit status: 0 conforming, 1 a violation (the first is reported), 3 inconclusive,
      2 malformed input (the CLI's FormatError handling).
"""

from __future__ import annotations

import argparse
import copy
import enum
import json
from collections.abc import Callable, Iterable
from typing import Any
from xml.etree import ElementTree as ET

import attrs
import numpy as np

from qaicmodel import arith
from qaicmodel.errors import ArgumentError, FormatError, PolicyError
from qaicmodel.spec import regs
from qaicmodel.spec.device import Advance, Consume, Device, Stage
from qaicmodel.spec.memory import DevMemory, DmaFault, HostMemory
from qaicmodel.spec.policies import Policies
from qaicmodel.spec.wire import CMD_COMPLETION, REQ_SIZE, RSP_SIZE, RequestElem, SemOp
from qaicmodel.trace import Event, Trace, load

__all__ = ["check", "Report", "Finding", "RULES", "FAMILIES", "add_args", "run_cli",
           "record_cosim", "TraceRecorder", "EXIT"]

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
}

#: a model limit: FIFOs are copied per possible state, so larger rings are not checked
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
}

#: an element that asks for a response and does nothing else / one that does nothing (C7)
_ELEM_RSP = RequestElem(pcie_dma_cmd=CMD_COMPLETION).pack()
_ELEM_NONE = bytes(REQ_SIZE)
_ZERO_SLOT = bytes(REQ_SIZE)


def _family(rule: str) -> str:
    if rule in RULES:
        return RULES[rule][0]
    for pre, fam in (("HOST-NNC", "nnc"), ("DEV-NNC", "nnc"), ("HOST-SSR", "ssr"),
                     ("DEV-SSR", "ssr")):
        if rule.startswith(pre):
            return fam
    return "registers"


# -- memories the checker's devices use ---------------------------------------------


class _TraceHostMemory(HostMemory):
    """Host memory for replay: the FIFOs are real arrays at the trace's bus addresses;
    every other address is a sink (reads zeros, writes vanish).  A trace does not show
    buffer contents, and the data moved is never observed at the boundary (C2)."""

    def copy(self) -> _TraceHostMemory:
        m = _TraceHostMemory()
        m._starts = list(self._starts)
        m._arrays = [a.copy() for a in self._arrays]
        return m

    def map_at(self, addr: int, size: int) -> None:
        i = next((k for k, s in enumerate(self._starts) if s == addr), None)
        if i is not None:
            del self._starts[i]
            del self._arrays[i]
        self._insert(addr, np.zeros(size, dtype=np.uint8))

    def view(self, addr: int, length: int) -> np.ndarray:
        try:
            return super().view(addr, length)
        except DmaFault:
            return np.zeros(min(max(length, 0), 4096), dtype=np.uint8)

    def write(self, addr: int, data: Any) -> None:
        try:
            buf = super().view(addr, len(data))
        except DmaFault:
            return
        buf[:] = np.frombuffer(bytes(data), dtype=np.uint8)

    def regions(self) -> list[tuple[int, int]]:
        return [(0, 1 << 64)]


class _SinkDevMemory(DevMemory):
    """Device DDR for replay: never observed in a trace (C2)."""

    def write(self, addr: int, data: Any) -> None:
        self._check(addr, len(data))

    def read(self, addr: int, length: int) -> bytes:
        self._check(addr, length)
        return bytes(min(length, 4096))


# -- findings and the report -------------------------------------------------------


@attrs.frozen
class Finding:
    """One broken rule at one event (trace.md "Report")."""

    line: int
    event: str
    rule: str
    message: str
    state: dict[str, Any]
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "event": self.event, "rule": self.rule,
                "family": _family(self.rule), "message": self.message, "state": self.state,
                "source": self.source}


@attrs.define
class Report:
    verdict: str = "conforming"
    events: int = 0
    violation: Finding | None = None
    inconclusive: list[dict[str, Any]] = attrs.field(factory=list)
    families: dict[str, dict[str, str]] = attrs.field(factory=dict)
    source: str = "jsonl"

    @property
    def exit(self) -> int:
        return EXIT[self.verdict]

    def as_dict(self) -> dict[str, Any]:
        return {"format": "qaicmodel-check/1", "verdict": self.verdict, "exit": self.exit,
                "trace_format": self.source, "events": self.events,
                "violation": self.violation.as_dict() if self.violation else None,
                "inconclusive": self.inconclusive, "families": self.families,
                "not_checked": sorted(f for f, v in self.families.items()
                                      if v["status"] == "not-checked")}

    def text(self) -> str:
        out = [f"{self.verdict.upper()}: {self.events} events ({self.source})"]
        if self.violation is not None:
            v = self.violation
            out += [f"line {v.line} ({v.event}): {v.rule}: {v.message}",
                    f"  state:  {json.dumps(v.state, sort_keys=True)}",
                    f"  source: {v.source}"]
        for inc in self.inconclusive[:5]:
            out.append(f"inconclusive: line {inc['line']}: {inc['reason']}")
        if len(self.inconclusive) > 5:
            out.append(f"inconclusive: ... {len(self.inconclusive) - 5} more")
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


# -- per-channel state sets ------------------------------------------------------------


class Mode(enum.Enum):
    """What the checker knows about one channel (C5, C6)."""

    KNOWN = "known"  # a set of possible device states
    LOST = "lost"  # geometry known, state unknown: waiting to resynchronise
    NO_GEOMETRY = "no-geometry"  # never activated in the trace and no --nelem: state-free rules only


@attrs.define
class _Chan:
    dbc: int
    mode: Mode
    states: list[Device] = attrs.field(factory=list)
    nelem: int = 0
    req_q: int = 0
    rsp_q: int = 0
    seen: dict[int, int] = attrs.field(factory=dict)  # reg -> value since the loss
    resynced: bool = False


_REG_RULE = {regs.REQ_HP: "DEV-REQ-HP", regs.RSP_TP: "DEV-RSP-TP"}


class Checker:
    """Replays one trace (C1-C9).  Use :func:`check`."""

    def __init__(self, trace: Trace, policies: Policies, nelem: int | None = None,
                 max_states: int = 4000) -> None:
        self.trace = trace
        self.cfg = trace.device
        self.policies = policies
        self.max_states = max_states
        self.num_dbc = self.cfg.num_dbc
        self.single_msi = bool(self.cfg.single_msi)
        kinds = trace.kinds()
        self.kinds = kinds
        self.contents_known = "req" in kinds  # C7
        self.watch_msi = "msi" in kinds
        self.report = Report(source=trace.source, events=len(trace.events))
        self.failed_family: str | None = None
        self.inconclusive_fams: set[str] = set()
        self.nnc_last_seq: int | None = None
        self.nnc_outstanding: set[int] = set()
        has_activate = "activate" in kinds
        self.ch: list[_Chan] = []
        for d in range(self.num_dbc):
            if has_activate:
                self.ch.append(_Chan(d, Mode.KNOWN, [self._fresh(d)]))
            elif nelem is not None:
                c = _Chan(d, Mode.LOST)
                self._geometry(c, nelem, 0x1000_0000_0000 + d * 0x100_0000,
                               0x1000_0080_0000 + d * 0x100_0000)
                self.ch.append(c)
            else:
                self.ch.append(_Chan(d, Mode.NO_GEOMETRY))
        self.nelem_given = nelem

    # -- devices ------------------------------------------------------------
    def _fresh(self, d: int) -> Device:
        return Device(num_dbc=d + 1, policies=self.policies, single_msi=self.single_msi,
                      host_mem=_TraceHostMemory(), dev_mem=_SinkDevMemory())

    @staticmethod
    def _clone(s: Device, d: int) -> Device:
        """A copy of ``s`` in which channel ``d`` (its FIFOs, semaphores, in-flight requests,
        MSI vector) may change; the other channels are shared (they never change, C1)."""
        t = copy.copy(s)
        ch = s.ch[d]
        infl = {k: attrs.evolve(r, pre=list(r.pre), post=list(r.post))
                for k, r in ch.inflight.items()}
        t.ch = list(s.ch)
        t.ch[d] = attrs.evolve(ch, sems=list(ch.sems), inflight=infl)
        ic = t.intc = copy.copy(s.intc)
        for name in ("_masked", "_pending", "raised", "latched", "lost", "delivered"):
            setattr(ic, name, list(getattr(s.intc, name)))
        t.violations = list(s.violations)
        t.stats = copy.copy(s.stats)
        t.observers = []
        hm = s.host_mem
        assert isinstance(hm, _TraceHostMemory)
        t.host_mem = hm.copy()
        return t

    def _key(self, s: Device, d: int) -> tuple[Any, ...]:
        ch = s.ch[d]
        infl = tuple((r.pos, r.elem, r.code, r.wants_response, len(r.pre), len(r.post),
                      r.dma_done) for r in ch.inflight.values())
        k: tuple[Any, ...] = (ch.active, ch.nelem, ch.req_hp, ch.req_tp, ch.rsp_hp, ch.rsp_tp,
                              ch.req_count, ch.rsp_count, tuple(ch.sems), ch.msi_due, infl)
        if ch.active:
            hm = s.host_mem
            k += (hm.read(ch.rsp_q, ch.nelem * RSP_SIZE),)
            if self.contents_known:
                k += (hm.read(ch.req_q, ch.nelem * REQ_SIZE),)
        if self.watch_msi:
            v = s.vector(d)
            k += (s.intc.masked(v), s.intc.pending(v))
        return k

    def _successors(self, s: Device, d: int) -> Iterable[Device]:
        for a in s.enabled():
            if a.dbc != d:
                continue
            if isinstance(a, Consume) and not self.contents_known:
                ch = s.ch[d]
                addr = ch.req_q + ch.req_hp * REQ_SIZE
                for raw in (_ELEM_RSP, _ELEM_NONE):  # C7
                    t = self._clone(s, d)
                    t.host_mem.write(addr, raw)
                    t.step(a)
                    t.host_mem.write(addr, _ZERO_SLOT)
                    yield t
                continue
            t = self._clone(s, d)
            t.step(a)
            yield t
        # C2: the NSP may release a request waiting on a semaphore
        ch = s.ch[d]
        for rec in ch.inflight.values():
            if rec.stage not in (Stage.PRESYNC, Stage.POSTSYNC):
                continue
            if s.is_enabled(Advance(d, rec.seq)):
                continue
            todo = rec.pre if rec.stage is Stage.PRESYNC else rec.post
            if not todo:
                continue  # a trivial stage (processing-order=fifo: not the oldest yet)
            cmd = todo[0]
            need = {SemOp.WAIT_EQ: cmd.value, SemOp.WAIT_GE: cmd.value, SemOp.P: 1,
                    SemOp.DEC: cmd.value if self.policies["sem-inc-amount"] != "by-one" else 1}
            if cmd.op not in need or ch.sems[cmd.index] == need[cmd.op]:
                continue
            t = self._clone(s, d)
            t.nsp_sem(d, cmd.index, int(SemOp.INIT), need[cmd.op])
            yield t

    def _closure(self, c: _Chan, ev: Event) -> list[Device]:
        """C2: every state the device can reach from the current set by its own actions."""
        d = c.dbc
        seen: dict[tuple[Any, ...], Device] = {}
        todo = []
        for s in c.states:
            k = self._key(s, d)
            if k not in seen:
                seen[k] = s
                todo.append(s)
        truncated = False
        while todo and not truncated:
            s = todo.pop()
            for t in self._successors(s, d):
                k = self._key(t, d)
                if k in seen:
                    continue
                if len(seen) >= self.max_states:
                    truncated = True
                    break
                seen[k] = t
                todo.append(t)
        if truncated:
            self._inconclusive(ev, f"dbc {d}: more than {self.max_states} possible device states "
                                   "(search bound hit; --max-states raises it)", "device-registers")
        return list(seen.values())

    # -- reporting ------------------------------------------------------------
    def _state(self, s: Device | None, c: _Chan, n: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"dbc": c.dbc, "mode": c.mode.value}
        if s is not None:
            ch = s.ch[c.dbc]
            out.update(active=ch.active, nelem=ch.nelem, req_hp=ch.req_hp, req_tp=ch.req_tp,
                       rsp_hp=ch.rsp_hp, rsp_tp=ch.rsp_tp, unconsumed=ch.req_count,
                       responses_unread=ch.rsp_count, in_flight=len(ch.inflight),
                       msi_due=ch.msi_due)
            if self.watch_msi:
                v = s.vector(c.dbc)
                out.update(vector=v, masked=s.intc.masked(v), pending=s.intc.pending(v))
        if n is not None:
            out["possible_states"] = n
        return out

    def _violate(self, ev: Event, rule: str, message: str, state: dict[str, Any],
                 source: str | None = None, c: _Chan | None = None) -> None:
        if rule.startswith("DEV-") and c is not None and c.resynced:
            self._inconclusive(ev, f"{rule}: {message} (after a resynchronisation, C5)",
                               _family(rule))
            self._lose(c)
            return
        src = source or RULES.get(rule, ("", _DMA))[1]
        self.report.violation = Finding(ev.line, ev.ev, rule, message, state, src)
        self.failed_family = _family(rule)
        raise _Stop

    def _inconclusive(self, ev: Event, reason: str, family: str | None = None) -> None:
        self.report.inconclusive.append({"line": ev.line, "reason": reason})
        if family:
            self.inconclusive_fams.add(family)

    def _lose(self, c: _Chan) -> None:
        if c.mode is Mode.KNOWN and c.nelem:
            c.mode = Mode.LOST
            c.seen = {}
            c.states = []

    # -- channel life --------------------------------------------------------------
    def _geometry(self, c: _Chan, nelem: int, req_q: int, rsp_q: int) -> None:
        c.nelem, c.req_q, c.rsp_q = nelem, req_q, rsp_q

    def _activated(self, c: _Chan, s: Device) -> Device:
        hm = s.host_mem
        assert isinstance(hm, _TraceHostMemory)
        hm.map_at(c.req_q, c.nelem * REQ_SIZE)
        hm.map_at(c.rsp_q, c.nelem * RSP_SIZE)
        s.activate(c.dbc, c.req_q, c.rsp_q, c.nelem)
        return s

    def _try_resync(self, c: _Chan) -> None:
        """C5: rebuild a state from the four register values seen since the loss."""
        if len(c.seen) < 4:
            return
        n = c.nelem
        vals = c.seen
        if any(v >= n for v in vals.values()):
            c.seen = {}
            return
        s = self._activated(c, self._fresh(c.dbc))
        ch = s.ch[c.dbc]
        ch.req_hp, ch.req_tp = vals[regs.REQ_HP], vals[regs.REQ_TP]
        ch.rsp_hp, ch.rsp_tp = vals[regs.RSP_HP], vals[regs.RSP_TP]
        ch.req_count = int(arith.ring_occupancy(ch.req_hp, ch.req_tp, n))
        ch.rsp_count = int(arith.ring_occupancy(ch.rsp_hp, ch.rsp_tp, n))
        c.states = [s]
        c.mode = Mode.KNOWN
        c.resynced = True

    # -- host actions ------------------------------------------------------------
    def _host_action(self, c: _Chan, ev: Event, act: Callable[[Device], None]) -> list[Device]:
        """C3: apply ``act`` in every possible state; it must be legal in all of them."""
        pre = self._closure(c, ev)
        out: list[Device] = []
        for s in pre:
            t = self._clone(s, c.dbc)
            n0 = len(t.violations)
            act(t)
            if len(t.violations) > n0:
                v = t.violations[n0]
                self._violate(ev, v.rule, v.message, self._state(s, c, len(pre)), v.source, c)
            out.append(t)
        c.states = out
        return out

    def _chan(self, ev: Event) -> _Chan:
        assert ev.dbc is not None  # the reader guarantees it for channel events
        return self.ch[ev.dbc]

    def _reg_width(self, ev: Event) -> None:
        if ev.width != 4:
            self._violate(ev, "HOST-REG-WIDTH",
                          f"a {ev.width}-byte access to a 32-bit DBC register", {"dbc": ev.dbc,
                                                                                   "width": ev.width})

    def ev_writel(self, ev: Event) -> None:
        self._reg_width(ev)
        c = self._chan(ev)
        reg, val = ev.reg, ev.val
        assert reg is not None and val is not None
        name = regs.REG_NAMES[reg]
        if reg in regs.DEVICE_OWNED:
            self._violate(ev, "HOST-WRITE-DEVICE-REG",
                          f"host wrote 0x{val:x} to {name} of dbc {c.dbc}, which only the "
                          "device writes (\"Read only by the host\")", self._state(None, c))
        if c.mode is not Mode.KNOWN:
            if c.mode is Mode.LOST:
                if val >= c.nelem:  # state-free: an index is below nelem
                    self._violate(ev, "HOST-REG-OUT-OF-RANGE",
                                  f"{name} write {val} of dbc {c.dbc} is not an index below "
                                  f"nelem {c.nelem}", self._state(None, c))
                c.seen[reg] = val
                self._try_resync(c)
            return
        old_tp = c.states[0].ch[c.dbc].req_tp if c.states else 0
        self._host_action(c, ev, lambda t: t.writel(c.dbc, reg, val))
        if reg == regs.REQ_TP and self.contents_known:
            self._published(c, ev, old_tp, val)

    def _published(self, c: _Chan, ev: Event, old: int, new: int) -> None:
        """C3: the element rules of every element a REQ_TP write hands to the device."""
        s = c.states[0]
        ch = s.ch[c.dbc]
        n = ch.nelem
        for k in range(int(arith.ring_occupancy(old, new, n))):
            slot = int(arith.ring_advance(old, k, n))
            elem = RequestElem.unpack(s.host_mem.read(ch.req_q + slot * REQ_SIZE, REQ_SIZE))
            viol = list(elem.violations())
            if elem.db_write and self.policies["doorbell-data-width"] == "violation":
                w = elem.db_len.nbytes
                if w and elem.doorbell_data >> (8 * w):
                    self._violate(ev, "REQ-DB-DATA-WIDTH",
                                  f"element {slot}: doorbell_data 0x{elem.doorbell_data:x} is "
                                  f"wider than its {8 * w}-bit length", self._state(s, c))
            if viol:
                v = viol[0]
                self._violate(ev, v.rule, f"REQ_TP {old} -> {new} publishes element {slot} of "
                                          f"dbc {c.dbc}: {v.field}: {v.message}",
                              self._state(s, c), v.source)

    def ev_req(self, ev: Event) -> None:
        c = self._chan(ev)
        assert ev.idx is not None and ev.data is not None
        if c.mode is Mode.NO_GEOMETRY:
            return
        st = self._state(c.states[0] if c.states else None, c)
        if c.mode is Mode.KNOWN and not c.states[0].ch[c.dbc].active:
            self._violate(ev, "HOST-INACTIVE-DBC", f"request element {ev.idx} written for dbc "
                                                   f"{c.dbc}, which has no active FIFO", st)
        if ev.idx >= c.nelem:
            self._violate(ev, "HOST-REQ-SLOT", f"request element {ev.idx} written, but the FIFO "
                                               f"of dbc {c.dbc} has {c.nelem} slots", st)
        if c.mode is Mode.LOST:
            return
        pre = self._closure(c, ev)
        d, idx = c.dbc, ev.idx

        def free(s: Device) -> bool:
            ch = s.ch[d]
            return not ch.active or int(arith.ring_occupancy(ch.req_hp, idx, ch.nelem)) >= ch.req_count

        busy = [s for s in pre if not free(s)]
        if busy:
            self._violate(ev, "HOST-REQ-OVERWRITE",
                          f"host wrote request slot {idx} of dbc {d}, which is published and "
                          "may not be consumed yet (the device need not have got further than "
                          "the host observed)", self._state(busy[0], c, len(pre)))
        for s in pre:
            s.host_mem.write(c.req_q + idx * REQ_SIZE, ev.data)
        c.states = pre

    def ev_activate(self, ev: Event) -> None:
        c = self._chan(ev)
        assert ev.nelem is not None and ev.req_q is not None and ev.rsp_q is not None
        if not arith.activate_queue_size_ok(ev.nelem) or ev.nelem < 2:
            self._violate(ev, "HOST-ACTIVATE-NELEM",
                          f"dbc {c.dbc} activated with nelem {ev.nelem}, a queue size the "
                          "driver does not accept", self._state(None, c))
        if c.mode is Mode.KNOWN:
            pre = self._closure(c, ev)
            if all(s.ch[c.dbc].active for s in pre):
                self._violate(ev, "HOST-DBC-ACTIVE", f"dbc {c.dbc} activated while active",
                              self._state(pre[0], c, len(pre)))
        self._geometry(c, ev.nelem, ev.req_q, ev.rsp_q)
        c.resynced, c.seen = False, {}
        if ev.nelem > MAX_NELEM:
            self._inconclusive(ev, f"dbc {c.dbc}: nelem {ev.nelem} is beyond the checker's limit "
                                   f"of {MAX_NELEM} elements; the channel is not checked",
                               "request-ring")
            c.mode, c.states = Mode.NO_GEOMETRY, []
            return
        c.mode = Mode.KNOWN
        c.states = [self._activated(c, self._fresh(c.dbc))]

    def ev_deactivate(self, ev: Event) -> None:
        c = self._chan(ev)
        c.mode, c.resynced, c.seen = Mode.KNOWN, False, {}
        c.states = [self._fresh(c.dbc)]

    def ev_irq(self, ev: Event) -> None:
        v = ev.vector
        assert v is not None
        if v == 0 or self.single_msi:
            return  # vector 0 is MHI's and shared in single-MSI mode: not modelled here
        c = self.ch[v - 1]
        if c.mode is not Mode.KNOWN or not self.watch_msi:
            return
        on = ev.ev == "irq_enable"
        self._host_action(c, ev, lambda t: t.intc.unmask(v) if on else t.intc.mask(v))

    # -- observations ------------------------------------------------------------------
    def ev_readl(self, ev: Event) -> None:
        self._reg_width(ev)
        c = self._chan(ev)
        assert ev.reg is not None and ev.val is not None
        if c.mode is Mode.LOST:
            if ev.val >= c.nelem:  # state-free: a FIFO index is below nelem
                self._violate(ev, _REG_RULE.get(ev.reg, "DEV-REG-VALUE"),
                              f"{regs.REG_NAMES[ev.reg]} of dbc {c.dbc} read {ev.val}, not an index "
                              f"below nelem {c.nelem}", self._state(None, c))
            c.seen[ev.reg] = ev.val
            self._try_resync(c)
            return
        if c.mode is not Mode.KNOWN:
            return
        pre = self._closure(c, ev)
        d, reg, val = c.dbc, ev.reg, ev.val
        ok = [s for s in pre if s.readl(d, reg) == val]
        if not ok:
            possible = sorted({s.readl(d, reg) for s in pre})
            shown = ", ".join(str(x) for x in possible[:8]) + (" ..." if len(possible) > 8 else "")
            name = regs.REG_NAMES[reg]
            extra = " (all ones: the link is down or the device is gone)" if val == 0xFFFFFFFF else ""
            self._violate(ev, _REG_RULE.get(reg, "DEV-REG-VALUE"),
                          f"{name} of dbc {d} read {val}{extra}, but a conforming device can only "
                          f"show {shown} here", self._state(pre[-1], c, len(pre)), c=c)
        c.states = ok

    def ev_rsp(self, ev: Event) -> None:
        c = self._chan(ev)
        if c.mode is not Mode.KNOWN:
            return
        assert ev.idx is not None and ev.data is not None
        d, idx = c.dbc, ev.idx
        pre = self._closure(c, ev)

        def written(s: Device) -> bool:
            ch = s.ch[d]
            return ch.active and idx < ch.nelem and \
                int(arith.ring_occupancy(ch.rsp_hp, idx, ch.nelem)) < ch.rsp_count

        win = [s for s in pre if written(s)]
        unwritten = [s for s in pre if not written(s)]
        if unwritten:
            self._violate(ev, "HOST-RSP-NOT-WRITTEN",
                          f"host read response slot {idx} of dbc {d}, which the device need not "
                          "have written yet (beyond the RSP_TP the host read) or the host "
                          "already freed", self._state(unwritten[0], c, len(pre)))
        if not self.contents_known:
            c.states = win
            return
        ok = [s for s in win if s.host_mem.read(s.ch[d].rsp_q + idx * RSP_SIZE, RSP_SIZE) == ev.data]
        if not ok:
            got = int.from_bytes(ev.data[:2], "little"), int.from_bytes(ev.data[2:], "little")
            want = sorted({s.host_mem.read(s.ch[d].rsp_q + idx * RSP_SIZE, RSP_SIZE).hex()
                           for s in win})
            self._violate(ev, "DEV-RSP-CONTENT",
                          f"response slot {idx} of dbc {d} reads req_id {got[0]} code {got[1]}, "
                          f"which no conforming device wrote there (possible: {', '.join(want[:6])})",
                          self._state(win[-1], c, len(pre)), c=c)
        c.states = ok

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
        pre = self._closure(c, ev)
        ok = [s for s in pre if s.intc.deliverable(v)]
        if not ok:
            if any(s.intc.pending(v) for s in pre):
                self._violate(ev, "DEV-MSI-MASKED", f"MSI on vector {v} arrived while the host "
                                                    "had it disabled", self._state(pre[-1], c, len(pre)), c=c)
            else:
                self._violate(ev, "DEV-MSI-SPURIOUS",
                              f"MSI on vector {v} (dbc {c.dbc}), but no possible run of the device "
                              "had one due (no response FIFO empty -> non-empty transition, no "
                              "force-MSI)", self._state(pre[-1], c, len(pre)), c=c)
        for s in ok:
            s.intc.ack(v)
        c.states = ok

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
        from qaicmodel.spec import nnc

        assert ev.data is not None
        tx = ev.ev == "nnc_tx"
        who = "HOST" if tx else "DEV"
        p = nnc.parse(ev.data, "h2d" if tx else "d2h")
        if p.violations:
            v = p.violations[0]
            self._violate(ev, f"{who}-{v.rule}", f"{'sent' if tx else 'received'} NNC message: "
                                                 f"{v.message} (byte {v.offset})", {"size": len(ev.data)},
                          "control-path.md §1 (qaicmodel.spec.nnc)")
        seq = p.header.get("sequence_number")
        if seq is None:
            return
        if tx:
            if self.nnc_last_seq is not None and seq != (self.nnc_last_seq + 1) & 0xFFFFFFFF:
                self._violate(ev, "HOST-NNC-SEQ", f"sequence number {seq} after "
                                                  f"{self.nnc_last_seq}; the driver counts up by one",
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
        from qaicmodel.spec import ssr

        assert ev.data is not None
        _msg, viol = ssr.parse(ev.data, self.num_dbc)
        if viol:
            who = "HOST" if ev.ev == "ssr_tx" else "DEV"
            v = viol[0]
            self._violate(ev, f"{who}-{v['rule']}", f"SSR message: {v['message']}",
                          {"size": len(ev.data)}, "aic100.rst Subsystem Restart (qaicmodel.spec.ssr)")

    _DISPATCH: dict[str, Callable[[Checker, Event], None]] = {
        "writel": ev_writel, "readl": ev_readl, "req": ev_req, "rsp": ev_rsp, "msi": ev_msi,
        "irq_disable": ev_irq, "irq_enable": ev_irq, "activate": ev_activate,
        "deactivate": ev_deactivate, "mark": ev_mark, "nnc_tx": ev_nnc, "nnc_rx": ev_nnc,
        "ssr_rx": ev_ssr, "ssr_tx": ev_ssr, "bar_read": ev_bar, "bar_write": ev_bar,
    }

    # -- the run -------------------------------------------------------------------------
    def run(self) -> Report:
        try:
            for ev in self.trace.events:
                self._DISPATCH[ev.ev](self, ev)
        except _Stop:
            pass
        r = self.report
        if r.violation is not None:
            r.verdict = "violation"
        elif r.inconclusive:
            r.verdict = "inconclusive"
        r.families = self._families()
        return r

    def _families(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        kinds = self.kinds | ({"readl", "writel"} if {"bar_read", "bar_write"} & self.kinds else set())
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
                elif fam == "responses" and not self.contents_known:
                    out[fam] = {"status": "not-checked", "reason": "no req events (C7)"}
                else:
                    out[fam] = {"status": "pass", "reason": ""}
            else:
                out[fam] = {"status": "not-checked",
                            "reason": f"the trace has no {' / '.join(missing)} events"}
        return out


def check(trace: Trace, policies: Policies | None = None, *, nelem: int | None = None,
          max_states: int = 4000) -> Report:
    """Check a parsed trace; ``policies`` override the header's ``device.policies``."""
    from qaicmodel.spec import registry

    registry.load_all()
    chosen = dict(trace.device.policies)
    if policies is not None:
        chosen.update(policies.chosen)
    if nelem is not None and (not isinstance(nelem, int) or isinstance(nelem, bool)
                              or not 2 <= nelem <= MAX_NELEM):
        raise ArgumentError(f"--nelem {nelem!r} must be 2..{MAX_NELEM}")
    if not isinstance(max_states, int) or max_states < 1:
        raise ArgumentError(f"max_states must be a positive int, got {max_states!r}")
    return Checker(trace, Policies(chosen), nelem=nelem, max_states=max_states).run()


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
                   help="bound on possible device states per channel (default 4000)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the report as JSON")
    out.add_argument("--junit", metavar="OUT.xml", help="write one JUnit test case per rule family")


def run_cli(args: argparse.Namespace) -> int:
    from qaicmodel.spec import registry

    registry.load_all()
    try:
        pols = Policies.parse(args.policy)
    except PolicyError as e:
        raise FormatError(str(e), where="--policy") from None
    from qaicmodel.scenario import DeviceConfig

    dev = DeviceConfig() if args.format == "mmiotrace" else None
    trace = load(args.file, args.format, bar2=args.bar2, device=dev)
    report = check(trace, pols, nelem=args.nelem, max_states=args.max_states)
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

    Attach right after building a :class:`qaicmodel.spec.cosim.World` (its channels are
    activated and idle then).  Request elements are recorded when they appear in a ring
    (compared before every register access or MSI action); response reads are recorded
    at the RSP_HP write that frees them, up to the RSP_TP the host last read.
    """

    def __init__(self, world: Any) -> None:
        self.world = world
        dev = world.dev
        self.dev = dev
        self.events: list[dict[str, Any]] = []
        self.rings: dict[int, bytes] = {}
        self.last_tp: dict[int, int] = {}
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
                seen = self.last_tp.get(dbc, ch.rsp_hp)
                k = min(int(arith.ring_occupancy(ch.rsp_hp, val, n)),
                        int(arith.ring_occupancy(ch.rsp_hp, seen, n)))
                for i in range(k):
                    slot = int(arith.ring_advance(ch.rsp_hp, i, n))
                    raw = dev.host_mem.read(ch.rsp_q + slot * RSP_SIZE, RSP_SIZE)
                    self.emit({"ev": "rsp", "dbc": dbc, "idx": slot, "hex": raw.hex()})
            self.emit({"ev": "writel", "dbc": dbc, "reg": regs.REG_NAMES[reg], "val": val})
            writel(dbc, reg, val)

        bus.readl, bus.writel = rec_readl, rec_writel
        dev.intc = _IntcTap(dev.intc, self)

    def emit(self, obj: dict[str, Any]) -> None:
        self.events.append(obj)

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
    from qaicmodel.spec.cosim import random_run

    pol = Policies(policies or {})
    recorders: list[TraceRecorder] = []
    w, findings = random_run(host_factory, seed=seed, steps=steps, policies=pol,
                             on_world=lambda world: recorders.append(TraceRecorder(world)),
                             **world_kw)
    rec = recorders[0]
    rec.sync()
    device = {"num_dbc": w.dev.num_dbc, "single_msi": w.dev.single_msi,
              "policies": dict(pol.chosen)}
    return rec.text(device), list(findings)
