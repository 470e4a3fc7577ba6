"""conform's errno oracle: what the reference host answers for the same call in the same state.

A correct host of another shape (batching doorbells, another poll count, merged DMA
segments, another thread structure) moves the device differently from the reference
host, so a reference host that *runs* beside it soon stands in another state.  The
shadow does not run: it is the reference host (:class:`ShadowHost`, a
:class:`~qaicmodel.spec.host.reference.SpecHost`) on a device whose actors never act,
kept in the primary's state by what the primary did:

  S1  every ioctl step runs on the shadow too (its own device model and control plane;
      scenario runner rules E1, E5), in step order; data-path actors never run there;
  S2  every BO completion of the host under test completes the same BO on the shadow
      (its ``_complete``: off the transfer list, done) before the step's call runs;
      channel releases (deactivate, close, SSR) run on the shadow as themselves;
  S3  ring room is the host's own business (its element counts may differ): when the
      host's EXECUTE_BO succeeded, the shadow sees room for everything; when it said
      EAGAIN, the free slots the device showed before the call (an EAGAIN part-way
      leaves the BOs before it re-initialised, as the driver does), and no room at all
      for a thread (whose moment of reading is its own); CONF-EAGAIN
      (:mod:`qaicmodel.oracle.rules`) judges whether the host had room.
      Likewise an attach the host accepted is not refused for ring size (ENOSPC): a host
      that merges segments needs fewer elements (qaic_attach_slice_bo_ioctl);
  S4  an EXECUTE_BO thread's checks run at its ``join``, before and (if that differs)
      after this step's completions; a WAIT_BO thread wakes on the shadow when its BO
      completes, with the post-wake checks of that moment;
  S5  compared: the result (``ok`` or the errno), the handle of CREATE_BO and the
      channel of an activate.  Byte contents and perf-stats figures are the host's
      timing, judged by the rules instead.
  S6  what nothing reads is not made (speed only, no answer changes): the shadow's
      device never fetches requests (S1, no REQ_TP write), so a shadow whose slice
      encoding and copy are SpecHost's writes no request elements and keeps of each
      encoded element only its length (what ``_partial`` reads).  (The shadow's own
      control-plane verdicts are read: conform's V-rules compare with them.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from qaicmodel.scenario.format import Step
from qaicmodel.scenario.runner import Runner
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.wire import RequestElem
from qaicmodel.spec.host import uapi
from qaicmodel.spec.host.records import HostChannel, SliceRec
from qaicmodel.spec.host.reference import SpecHost

__all__ = ["ShadowHost", "Shadow"]

#: steps that only move the device or read it: nothing to answer
_SKIP = frozenset({"run", "nsp", "ddr_write", "ddr_read", "dump"})
_ROOM_ALL = 1 << 40


class ShadowHost(SpecHost):
    """The reference host with the room decisions of rule S3 made from outside."""

    room: int | None = None
    fit_all = False

    def _exec_read(self, ch: HostChannel) -> tuple[int, int, int]:
        if self.room is None:
            return super()._exec_read(ch)
        return 0, 0, 0  # the room is decided from outside (S3); the call starts at slot 0

    def _room(self, head: int, tail: int, nelem: int) -> int:
        if self.room is None:
            return super()._room(head, tail, nelem)
        if self.room >= _ROOM_ALL:
            return self.room
        return self.room - tail  # started at slot 0: ``tail`` elements written so far

    def _fits(self, total: int, ch: HostChannel) -> bool:
        return self.fit_all or super()._fits(total, ch)

    def _writel(self, dbc: int, reg: int, val: int) -> None:
        if reg != regs.REQ_TP:  # the shadow's device never consumes requests
            super()._writel(dbc, reg, val)

    def _encode(
        self, dir: int, ent: uapi.SliceEntry, segs: list[tuple[int, int]]
    ) -> list[RequestElem]:
        """S6: SpecHost's encoding reduced to the element lengths; any other host's
        encoding runs as itself."""
        if not _spec_copy(type(self)):
            return super()._encode(dir, ent, segs)
        return [_Len(length & 0xFFFFFFFF) for _addr, length in segs]  # type: ignore[misc]

    def _write_full(self, ch: HostChannel, sl: SliceRec, req_id: int, tail: int) -> None:
        """S6: no request elements (the shadow's device never fetches them)."""
        if not _spec_copy(type(self)):
            super()._write_full(ch, sl, req_id, tail)

    def _write_partial(
        self, ch: HostChannel, sl: SliceRec, req_id: int, tail: int, first_n: int, last_bytes: int
    ) -> None:
        """S6: as :meth:`_write_full`."""
        if not _spec_copy(type(self)):
            super()._write_partial(ch, sl, req_id, tail, first_n, last_bytes)


class _Len:
    """S6: what the shadow keeps of an encoded request element."""

    __slots__ = ("pcie_dma_len",)

    def __init__(self, n: int) -> None:
        self.pcie_dma_len = n


#: ShadowHost class -> whether it encodes and copies slices as SpecHost does
_SPEC_COPY: dict[type, bool] = {}


def _spec_copy(cls: type[ShadowHost]) -> bool:
    """Whether ``cls`` (a ShadowHost) encodes and copies slices as SpecHost does: the
    next ``_encode``, ``_partial``, ``_write_full`` and ``_write_partial`` and the
    ``_put`` they use are SpecHost's own."""
    known = _SPEC_COPY.get(cls)
    if known is None:
        mro = cls.__mro__[cls.__mro__.index(ShadowHost) + 1 :]
        known = all(
            next(k for k in mro if name in vars(k)) is SpecHost
            for name in ("_encode", "_partial", "_write_full", "_write_partial", "_put")
        )
        _SPEC_COPY[cls] = known
    return known


class _Still(Runner):
    """A runner whose actors never act (rule S1)."""

    def actors(self) -> list[tuple[str, Any]]:
        return []


class Shadow:
    """The errno oracle for one episode (rules S1-S5)."""

    def __init__(
        self,
        cfg: Any,
        policies: Any,
        ref_cls: type,
        prim: Any,
        rules: Any,
        control_faults: Any = (),
    ) -> None:
        cls = ref_cls if issubclass(ref_cls, ShadowHost) else _shadow_of(ref_cls)
        self.r = _Still(cfg, host_cls=cls, policies=policies, control_faults=control_faults)
        self.host: Any = self.r.host
        self.prim = prim
        #: EXECUTE_BO threads of the host under test not answered on the shadow yet
        self.deferred: dict[str, Step] = {}
        self.failed: str | None = None
        self._queued_at_start: set[tuple[int, int]] = set()
        rules.on_complete = self.complete
        rules.on_sent = self.sent

    def _fail(self, why: str | None) -> None:
        if why is not None and self.failed is None:
            self.failed = why

    # -- S2, S4: called by the rule book in event order -----------------------------
    def complete(self, key: tuple[int, int]) -> None:
        """The host under test completed BO ``key``: so does the shadow."""
        h = self.host
        c = h.users.get(key[0])
        bo = c.bos.get(key[1]) if c is not None else None
        if bo is not None and bo.queued and bo.queued_on is not None:
            h._complete(h.ch[bo.queued_on], bo)

    def _wake(self) -> None:
        """WAIT_BO threads whose twin on the host under test has woken wake here too,
        with the post-wake checks in the shadow's state now (S4)."""
        if not self.r.waits:
            return
        prim_waiters = getattr(self.prim.host, "waiters", {})
        for name, tid in self.r.waits.items():
            w = self.host.waiters.get(tid)
            pt = self.prim.waits.get(name)
            pw = prim_waiters.get(pt) if pt is not None else None
            if w is not None and not w.finished and pw is not None and pw.finished:
                self.host._wake(w)

    def sent(self, name: str) -> None:
        """An EXECUTE_BO thread of the host under test queued its BO (its doorbell)."""
        d = self.deferred.pop(name, None)
        if d is not None:
            self._fail(self._call(d, "ok", f"thread {name}: "))

    def _call(self, d: Step, got: str, what: str) -> str | None:
        """The deferred call on the shadow, judged against the host's outcome ``got``."""
        call = attrs.evolve(d, args={**d.args, "thread": None}, as_=None)
        h = self.host
        h.room = _ROOM_ALL if got == "ok" else 0  # S3; room 0 changes nothing
        try:
            ref = self.r.step(call)
        finally:
            h.room = None
        want = ref["result"]
        if want == got:
            return None
        if got == "EINVAL" and want == "EAGAIN" and self._was_queued(call):
            return None  # the BO was still queued when the thread sent it (S4)
        return f"{what}{d.op} gave {got}, the reference host gives {want} in the same state"

    def _was_queued(self, st: Step) -> bool:
        key = "handles" if st.op == "execute" else "entries"
        try:
            uid = self.r.uid(st.args["user"])
            hs = [self.r.val(e["handle"], st.index, key) for e in st.args[key]]
        except Exception:  # noqa: BLE001
            return False
        return any((uid, hd) in self._queued_at_start for hd in hs)

    def _threads_done(self) -> None:
        """Threads of the host under test that finished without queueing (an errno)."""
        if not self.deferred:
            return
        host_threads = getattr(self.prim.host, "threads", {})
        for name in list(self.deferred):
            tid = self.prim.threads.get(name)
            th = host_threads.get(tid) if tid is not None else None
            if th is None or th.phase.name != "DONE":
                continue
            err = th.error
            got = "ok" if err is None else getattr(err, "name", type(err).__name__)
            self._fail(self._call(self.deferred.pop(name), got, f"thread {name}: "))

    # -- one step -------------------------------------------------------------------
    def begin(self) -> None:
        """Before a step: which BOs the shadow has queued (for S4).  Only a deferred
        EXECUTE_BO thread's call reads them (:meth:`_call`), and a step's calls are of
        threads deferred before it began, so with none deferred there is nothing to note."""
        self.failed = None
        self._queued_at_start = (
            {(u, hd) for u, c in self.host.users.items() for hd, bo in c.bos.items() if bo.queued}
            if self.deferred
            else set()
        )

    def step(self, st: Step, res: Mapping[str, Any], room: Any = None) -> str | None:
        """Answer the step on the shadow; a sentence when the host's answer differs."""
        op, a = st.op, st.args
        if op in ("execute", "partial_execute") and a.get("thread") is not None:
            if res.get("result") == "ok":
                self.deferred[a["thread"]] = st
            return self.failed
        if op == "join" and a["thread"] in self.deferred:  # finished without queueing
            self._fail(self._call(self.deferred.pop(a["thread"]), res["result"], ""))
            return self.failed
        self._threads_done()
        if op in _SKIP or op == "join" and a["thread"] not in self.r.waits:
            self._wake()
            return self.failed
        if op == "join":  # the host's waiter woke (or never will): the shadow's wakes now
            w = self.host.waiters.get(self.r.waits[a["thread"]])
            if (
                w is not None
                and not w.finished
                and (res.get("result") != "ETIMEDOUT" or (w.bo is not None and w.bo.done))
            ):
                self.host._wake(w)
        got = res.get("result")
        h = self.host
        h.room, h.fit_all = _room_for(op, got, room), op == "attach_slice" and got == "ok"
        try:
            ref = self.r.step(st)
        finally:
            h.room, h.fit_all = None, False
        self._fail(_differs(op, res, ref))
        self._wake()
        return self.failed


def _room_for(op: str, got: Any, room: Any) -> int | None:
    if op not in ("execute", "partial_execute"):
        return None
    if got != "EAGAIN":
        return _ROOM_ALL
    return int(room[1]) if room is not None else 0


def _differs(op: str, res: Mapping[str, Any], ref: Mapping[str, Any], what: str = "") -> str | None:
    got, want = res.get("result"), ref.get("result")
    if got != want:
        return f"{what}{op} gave {got}, the reference host gives {want} in the same state"
    if got == "ok" and op == "create_bo" and res.get("handle") != ref.get("handle"):
        return f"create_bo gave handle {res.get('handle')}, the reference host {ref.get('handle')}"
    if got == "ok" and op == "activate" and res.get("dbc_id") != ref.get("dbc_id"):
        return f"activate gave dbc {res.get('dbc_id')}, the reference host {ref.get('dbc_id')}"
    return None


#: reference host class -> its ShadowHost variant (:func:`_shadow_of`)
_SHADOWS: dict[type, type] = {}


def _shadow_of(ref_cls: type) -> type:
    """A ShadowHost variant of another reference host class (made once per class: a
    fresh class per episode cost its construction and cold attribute caches)."""
    cls = _SHADOWS.get(ref_cls)
    if cls is None:
        cls = _SHADOWS[ref_cls] = type(f"Shadow{ref_cls.__name__}", (ShadowHost, ref_cls), {})
    return cls
