"""``qaicmodel check``: is a host/device trace conforming?  (shared/formats/trace.md)


The checker replays a trace (:mod:`qaicmodel.oracle.trace`, read one event at a time) against
the device model (:class:`qaicmodel.spec.dbc.device.Device`).  Host actions are applied to
the model and must be legal; observations must be explainable by *some* run of a
conforming device.  The per-channel sets of possible device states and the search over
the device's own steps live in :mod:`.states` and :mod:`.counters` (rules L1-L7 there; the
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
      these actions (states.py L1-L5): steps the host cannot see are taken at once,
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

Modules: :mod:`.rules` (the rule, family and visibility tables), :mod:`.report`
(:class:`Report`, :class:`TraceFinding`), :mod:`.checker` (:class:`Checker`, :func:`check`,
:func:`check_stream`; its event handlers in :mod:`.actions` (host actions), :mod:`.observations`
and :mod:`.control` (NNC/SSR, C8), its per-channel bookkeeping in :mod:`.channels`), :mod:`.states` and
:mod:`.counters` (the sets of possible device states), :mod:`.cli` (the command),
:mod:`.recorder` (:class:`TraceRecorder`, :func:`record_cosim`), :mod:`.bench`
(``qaicmodel bench --check``).  The trace reader is :mod:`qaicmodel.oracle.trace`.
"""

from __future__ import annotations

from qaicmodel.oracle.check.checker import Checker, check, check_stream
from qaicmodel.oracle.check.cli import add_args, check_file, run_cli
from qaicmodel.oracle.check.recorder import TraceRecorder, record_cosim
from qaicmodel.oracle.check.report import Report, TraceFinding
from qaicmodel.oracle.check.rules import EXIT, FAMILIES, RULES, TRACE_VISIBILITY

__all__ = [
    "check",
    "check_stream",
    "check_file",
    "Checker",
    "Report",
    "TraceFinding",
    "RULES",
    "FAMILIES",
    "add_args",
    "run_cli",
    "record_cosim",
    "TraceRecorder",
    "EXIT",
    "TRACE_VISIBILITY",
]
