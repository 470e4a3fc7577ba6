"""The trace checker's replay (C1-C12 of :mod:`qaicmodel.oracle.check`): the event
dispatch over the handlers of :mod:`.actions` (host actions), :mod:`.observations` and
:mod:`.control` (NNC/SSR, C8), on the per-channel bookkeeping of :mod:`.channels`; the
verdict and the families of a report; the entry points :func:`check` and
:func:`check_stream`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from qaicmodel.errors import ArgumentError
from qaicmodel.oracle.check.actions import HostActions
from qaicmodel.oracle.check.channels import Mode, _is_int
from qaicmodel.oracle.check.control import ControlMessages
from qaicmodel.oracle.check.observations import Observations
from qaicmodel.oracle.check.report import Report, _Stop
from qaicmodel.oracle.check.rules import FAMILIES, MAX_NELEM
from qaicmodel.oracle.trace import Event, Trace, TraceStream
from qaicmodel.spec.policies import Policies

__all__ = ["Checker", "Mode", "check", "check_stream"]


class Checker(HostActions, Observations, ControlMessages):
    """Replays one trace (C1-C12).  Use :func:`check` / :func:`check_stream`."""

    def ev_mark(self, ev: Event) -> None:
        if ev.lost:
            self._inconclusive(ev, f"{ev.lost} events lost: the window is unknown (C5)")
            for c in self.ch:
                self._lose(c)

    _DISPATCH: dict[str, Callable[[Checker, Event], None]] = {
        "writel": HostActions.ev_writel,
        "readl": Observations.ev_readl,
        "req": HostActions.ev_req,
        "rsp": Observations.ev_rsp,
        "msi": Observations.ev_msi,
        "irq_disable": HostActions.ev_irq,
        "irq_enable": HostActions.ev_irq,
        "activate": HostActions.ev_activate,
        "deactivate": HostActions.ev_deactivate,
        "mark": ev_mark,
        "nnc_tx": ControlMessages.ev_nnc,
        "nnc_rx": ControlMessages.ev_nnc,
        "ssr_rx": ControlMessages.ev_ssr,
        "ssr_tx": ControlMessages.ev_ssr,
        "bar_read": HostActions.ev_bar,
        "bar_write": HostActions.ev_bar,
        "complete": Observations.ev_complete,
        "idle": Observations.ev_idle,
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
