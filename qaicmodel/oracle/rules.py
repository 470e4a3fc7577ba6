"""conform's rule-based verdict on the host under test: what any correct host must do.

The host is judged by the device's rules and by host-side invariants, never by how
closely it resembles the reference host (issue #12 item 1).  :class:`RuleBook` watches
the primary device (its ``observers`` events) and the host's completion log; after
each conform step :meth:`RuleBook.after` raises :class:`~qaicmodel.oracle.pair.Failure`
for the first rule broken.

Rules (stable ids; the ring rules COSIM-* and CONF-VIOLATION/STRANDED are checked in
:mod:`qaicmodel.oracle.pair`):

  CONF-REQ-ELEM        the request elements a doorbell (REQ_TP write) publishes for a
                       BO describe exactly its slices' bytes (qaic_data.c encode_reqs,
                       copy_exec_reqs, copy_partial_exec_reqs; aic100.rst "Request
                       FIFO"): per slice, elements whose 32-bit lengths add up to the
                       slice's size (the resized part for PARTIAL_EXECUTE_BO), host
                       addresses inside the BO's DMA segments at the right offset and
                       contiguous across merged segments, device addresses
                       ``dev_addr + offset``; exactly one completion element per slice,
                       the last, which alone carries the doorbell and the postsync
                       semaphore commands; as many groups as BOs executed.
  CONF-COMPLETE-TWICE  a BO completed without an execution outstanding (each execution
                       completes exactly once; qaic_data.c dbc_irq_threaded_fn
                       list_del_init + complete_all).
  CONF-COMPLETE-EARLY  a BO completed before the device answered every one of its
                       completion elements (nr_slice_xfer_done counts up to nr_slice).
  CONF-LOST            the device answered every completion element of an outstanding
                       BO, the host consumed the responses, nothing can happen any
                       more, and the BO has not completed (nothing stranded).
  CONF-EAGAIN          EXECUTE_BO said -EAGAIN although the request ring had room for
                       every element of the call (qaic_data.c fifo_space_avail), with
                       the element counts this host used for the same BOs before.

Completion codes other than success change nothing here: the driver only logs a
non-zero status (qaic_data.c dbc_irq_threaded_fn, 6.12 and 7.2) and counts the
response like any other; :attr:`RuleBook.error_codes` counts them (coverage).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from qaicmodel import arith
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.wire import REQ_SIZE, RequestElem

__all__ = ["RULES", "RuleBook", "SliceInfo", "check_group"]

RULES: dict[str, str] = {
    "CONF-REQ-ELEM": "request elements do not describe exactly the slices' bytes "
    "(coverage, containment, 32-bit lengths, one completion/doorbell/postsync per slice)",
    "CONF-COMPLETE-TWICE": "a BO completed without an execution outstanding",
    "CONF-COMPLETE-EARLY": "a BO completed before the device answered all its slices",
    "CONF-LOST": "every response of a BO was consumed at quiescence, yet it never completed",
    "CONF-EAGAIN": "EXECUTE_BO said EAGAIN although the ring had room for the call",
}

_U64 = (1 << 64) - 1
_DIR_BITS = 0x3  # INBOUND_XFER | OUTBOUND_XFER (qaic_data.c request cmd bits)


@attrs.frozen
class SliceInfo:
    """A BO as attached: channel, direction, slice entries, DMA segments (bus, length)."""

    dbc: int
    dir: int
    entries: tuple[Mapping[str, Any], ...]
    segs: tuple[tuple[int, int], ...]


@attrs.define
class _Exec:
    """One outstanding execution of a BO."""

    dbc: int
    req_id: int
    need: int  # completion elements published
    never: bool = False  # a driver finding (fewer completion elements than slices)


def _host_dev(e: RequestElem, dir: int) -> tuple[int, int]:
    if dir == 1:
        return e.pcie_dma_source_addr, e.pcie_dma_dest_addr
    return e.pcie_dma_dest_addr, e.pcie_dma_source_addr


def _contiguous(segs: tuple[tuple[int, int], ...], off: int, addr: int, n: int) -> str | None:
    """None when BO bytes [off, off+n) start at bus ``addr`` and are contiguous in bus
    space across the segments they cross; else why not."""
    pos = 0
    want = addr
    left = n
    started = False
    for a, ln in segs:
        if not started:
            if off < pos + ln:
                if a + (off - pos) != addr:
                    return f"BO offset {off} is at bus 0x{a + off - pos:x}, not 0x{addr:x}"
                take = min(left, pos + ln - off)
                want, left, started = addr + take, left - take, True
        elif left:
            if a != want:
                return (
                    f"an element runs from bus 0x{addr:x} across a segment gap "
                    f"(next segment at 0x{a:x}, not 0x{want:x})"
                )
            take = min(left, ln)
            want, left = want + take, left - take
        if started and not left:
            return None
        pos += ln
    if not started:
        return f"BO offset {off} is past the BO's segments"
    return f"{left} byte(s) of the element run past the BO's last segment"


def check_group(info: SliceInfo, elems: list[RequestElem], resize: int | None) -> str | None:
    """CONF-REQ-ELEM for one BO's published elements (``resize``: PARTIAL_EXECUTE_BO)."""
    k = 0
    for si, sl in enumerate(info.entries):
        off, size = int(sl["offset"]), int(sl["size"])
        nodma = resize is not None and (resize == 0 or resize <= off)
        want = size
        if resize is not None and not nodma and resize < off + size:
            want = resize - off
        if k >= len(elems):
            return f"slice {si}: no request element (the BO has {len(info.entries)} slices)"
        if nodma:  # one element, nothing moved (copy_partial_exec_reqs)
            if elems[k].pcie_dma_len != 0 and elems[k].pcie_dma_cmd & _DIR_BITS:
                return f"slice {si}: resize {resize} leaves nothing, but an element moves data"
            k += 1
            continue
        start = k
        while k < len(elems) and not elems[k].completion:
            k += 1
        if k >= len(elems):
            return f"slice {si}: no completion element among its {k - start} element(s)"
        group = elems[start : k + 1]
        k += 1
        why = _check_slice(info, sl, group, want)
        if why:
            return f"slice {si}: {why}"
    if k != len(elems):
        return f"{len(elems) - k} element(s) more than the {len(info.entries)} slice(s) need"
    return None


def _check_slice(
    info: SliceInfo, sl: Mapping[str, Any], group: list[RequestElem], want: int
) -> str | None:
    off, dev0 = int(sl["offset"]), int(sl["dev_addr"])
    last = group[-1]
    for j, e in enumerate(group[:-1]):
        if e.doorbell_addr or e.doorbell_data or e.doorbell_attr:
            return f"element {j} of {len(group)} carries a doorbell (only the last may)"
        for s in range(4):
            sem = sl.get(f"sem{s}") or {}
            if not sem.get("presync") and getattr(e, f"sem_cmd{s}"):
                return f"element {j} of {len(group)} carries postsync sem{s} (only the last may)"
    if int(sl.get("db_len") or 0) and (
        last.doorbell_addr != int(sl.get("db_addr") or 0)
        or last.doorbell_data != int(sl.get("db_data") or 0)
    ):
        return (
            f"the last element rings 0x{last.doorbell_addr:x}={last.doorbell_data}, the slice "
            f"asks for 0x{int(sl.get('db_addr') or 0):x}={int(sl.get('db_data') or 0)}"
        )
    if not int(sl["size"]):  # a size-0 entry moves nothing (encode_reqs)
        return None
    total = sum(e.pcie_dma_len for e in group)
    if total != want:
        return f"element lengths add up to {total} bytes, the slice has {want}"
    p = off
    for j, e in enumerate(group):
        n = e.pcie_dma_len
        if not n:
            continue
        host, dev = _host_dev(e, info.dir)
        why = _contiguous(info.segs, p, host, n)
        if why:
            return f"element {j}: {why}"
        if dev != (dev0 + (p - off)) & _U64:
            return f"element {j}: device address 0x{dev:x}, expected 0x{(dev0 + p - off) & _U64:x}"
        p += n
    return None


class RuleBook:
    """The rules above, kept for one primary :class:`~qaicmodel.scenario.runner.Runner`."""

    def __init__(self, runner: Any) -> None:
        self.r = runner
        self.dev = runner.device
        self.slices: dict[tuple[int, int], SliceInfo] = {}
        self.segs: dict[tuple[int, int], tuple[tuple[int, int], ...]] = {}
        self.totals: dict[tuple[int, int], int] = {}  # elements of a full execute, learned
        self.outstanding: dict[tuple[int, int], _Exec] = {}
        self.resp: dict[tuple[int, int], int] = {}  # (dbc, req_id) -> responses seen
        #: the BOs a plain EXECUTE_BO step queues, in order: (user, handle, resize)
        self.plan: list[tuple[int, int, int | None]] | None = None
        self.planned = 0
        #: EXECUTE_BO threads in flight: name -> (dbc, user, handle, resize); ``sent``: queued
        self.threads: dict[str, tuple[int, int, int, int | None]] = {}
        self.sent: set[str] = set()
        self.error_codes = 0
        self.seen_completions = 0
        self.failed: str | None = None  # the first rule broken during this step
        self.where: dict[str, Any] = {}
        #: listeners (the errno shadow): a BO completed; an EXECUTE_BO thread queued its BO
        self.on_complete: Callable[[tuple[int, int]], None] | None = None
        self.on_sent: Callable[[str], None] | None = None
        self.dev.observers.append(self._event)

    def _fail(self, why: str) -> None:
        if self.failed is None:
            self.failed = why

    # -- device events -------------------------------------------------------------
    def _event(self, ev: tuple[Any, ...]) -> None:
        kind = ev[0]
        if kind == "writel":
            if ev[2] == regs.REQ_TP:
                self._drain()
                self._doorbell(ev[1], ev[3])
        elif kind == "response":
            self._drain()  # a completion before this response is judged without it
            key = (ev[1], ev[4].req_id)
            self.resp[key] = self.resp.get(key, 0) + 1
            if ev[4].completion_code:
                self.error_codes += 1
        elif kind == "deactivate":
            self._forget(lambda d: d == ev[1])
        elif kind == "reset":
            self._forget(lambda d: True)

    def _forget(self, on: Any) -> None:
        """release_dbc: queued BOs are dropped (no completion), sliced BOs detached."""
        for key in [k for k, x in self.outstanding.items() if on(x.dbc)]:
            del self.outstanding[key]
        for key in [k for k, x in self.slices.items() if on(x.dbc)]:
            del self.slices[key]

    def _doorbell(self, dbc: int, val: int) -> None:
        ch = self.dev.ch[dbc]
        if not ch.active or not isinstance(val, int) or not 0 <= val < ch.nelem:
            return
        slot = ch.req_tp
        groups: list[list[RequestElem]] = []
        mem, base, n = self.dev.host_mem, ch.req_q, ch.nelem
        for _ in range(arith.ring_occupancy(ch.req_tp, val, n)):
            e = RequestElem.unpack(mem.read(base + REQ_SIZE * slot, REQ_SIZE))
            if not groups or groups[-1][0].req_id != e.req_id:
                groups.append([e])
            else:
                groups[-1].append(e)
            slot = (slot + 1) % n
        for g in groups:
            self.resp[(dbc, g[0].req_id)] = 0
            why = self._match(dbc, g)
            if why is not None:
                self._fail("CONF-REQ-ELEM: " + why)

    # -- steps ------------------------------------------------------------------------
    def before(self, st: Any) -> tuple[int, int] | None:
        """Set up the step; returns the free request slots of a plain EXECUTE_BO's
        channel before the call (for CONF-EAGAIN)."""
        self.failed, self.plan, self.planned = None, None, 0
        self.where = {}  # where the rule broke (BO, user id, dbc), if known
        if st.op not in ("execute", "partial_execute") or st.args.get("thread") is not None:
            return None
        a = st.args
        key = "handles" if st.op == "execute" else "entries"
        try:
            uid = self.r.uid(a["user"])
            dbc = self.r.val(a["dbc_id"], st.index, "dbc_id")
            self.plan = [
                (
                    uid,
                    self.r.val(e["handle"], st.index, f"{key}[{k}].handle"),
                    e.get("resize") if st.op == "partial_execute" else None,
                )
                for k, e in enumerate(a[key])
            ]
        except Exception:  # noqa: BLE001 - an unbound name: the step fails by itself
            return None
        if not (0 <= dbc < self.dev.num_dbc) or not self.dev.ch[dbc].active:
            return None
        ch = self.dev.ch[dbc]
        hp, tp = self.dev.readl(dbc, regs.REQ_HP), self.dev.readl(dbc, regs.REQ_TP)
        return dbc, int(arith.fifo_space(hp, tp, ch.nelem))

    def after(self, st: Any, res: Mapping[str, Any], room: tuple[int, int] | None) -> str | None:
        """Apply one finished step; returns ``"RULE: message"`` for the first broken rule."""
        op, a, ok = st.op, st.args, res.get("result") == "ok"
        uid: Any = self.r.uid(a["user"]) if "user" in a else None
        why: str | None = None
        if op in ("create_bo", "import_bo") and ok:
            self.segs[(uid, res["handle"])] = tuple((int(x), int(n)) for x, n in res["segments"])
        elif op == "attach_slice" and ok:
            self._attached(st, uid)
        elif op == "detach_slice" and ok:
            self.slices.pop((uid, self.r.val(a["handle"], st.index, "handle")), None)
        elif op == "close" and ok:
            for key in [k for k in self.slices if k[0] == uid]:
                del self.slices[key]
        elif op in ("execute", "partial_execute") and a.get("thread") is not None and ok:
            self._thread_begin(st, uid)
        elif op == "execute" and res.get("result") == "EAGAIN" and room is not None:
            why = self._eagain(st, uid, room)
        self._drain()
        if why is None:
            why = self.failed
        if why is None and self.plan is not None and ok and self.planned != len(self.plan):
            why = (
                f"CONF-REQ-ELEM: {op} of {len(self.plan)} BO(s) published {self.planned} "
                "group(s) of request elements (one req_id per BO)"
            )
        if why is None and self._quiescent(st, res):
            why = self._lost()
        if op == "join":
            self.threads.pop(a["thread"], None)
            self.sent.discard(a["thread"])
        self.plan = None
        return why

    def _attached(self, st: Any, uid: int) -> None:
        h = st.args["hdr"]
        handle = self.r.val(h["handle"], st.index, "hdr.handle")
        dbc = self.r.val(h["dbc_id"], st.index, "hdr.dbc_id")
        count = len(st.args["entries"]) if h["count"] is None else h["count"]
        self.slices[(uid, handle)] = SliceInfo(
            dbc, h["dir"], tuple(st.args["entries"][:count]), self.segs.get((uid, handle), ())
        )
        self.totals.pop((uid, handle), None)

    def _thread_begin(self, st: Any, uid: int) -> None:
        a = st.args
        key = "handles" if st.op == "execute" else "entries"
        e = a[key][0]
        handle = self.r.val(e["handle"], st.index, f"{key}[0].handle")
        dbc = self.r.val(a["dbc_id"], st.index, "dbc_id")
        resize = e.get("resize") if st.op == "partial_execute" else None
        self.threads[a["thread"]] = (dbc, uid, handle, resize)

    def _eagain(self, st: Any, uid: int, room: tuple[int, int]) -> str | None:
        need = 0
        for k, e in enumerate(st.args["handles"]):
            t = self.totals.get((uid, self.r.val(e["handle"], st.index, f"handles[{k}]")))
            if t is None:
                return None
            need += t
        if need <= room[1]:
            return (
                f"CONF-EAGAIN: EXECUTE_BO on dbc {room[0]} said EAGAIN with {room[1]} free "
                f"slot(s); its BOs took {need} element(s) before"
            )
        return None

    def _match(self, dbc: int, elems: list[RequestElem]) -> str | None:
        """Give a group just published to its BO and check it (CONF-REQ-ELEM): the next
        BO of a plain EXECUTE_BO step, else the BO of an in-flight thread on ``dbc``."""
        if self.plan is not None:
            if self.planned >= len(self.plan):
                return (
                    f"dbc {dbc}: more groups of request elements than the {len(self.plan)} "
                    "BO(s) executed"
                )
            u0, h0, rz0 = self.plan[self.planned]
            options: list[tuple[str | None, int, int, int | None]] = [(None, u0, h0, rz0)]
            self.planned += 1
        else:
            options = [
                (name, u, h, rz)
                for name, (d, u, h, rz) in self.threads.items()
                if d == dbc and name not in self.sent
            ]
        why = None
        for name, u, h, rz in options:
            info = self.slices.get((u, h))
            # A BO may be executed on another channel than the one it was sliced on:
            # 7.2 qaic_data.c send_bo_list_to_device checks bo->sliced, not bo->dbc,
            # so its elements go to the executing channel's ring (``dbc``).
            if info is None:
                why = why or f"a group on dbc {dbc} for BO {h}, which is not sliced"
                continue
            why = check_group(info, elems, rz)
            if why is None:
                self._queued(u, h, info, dbc, elems, rz)
                if name is not None:
                    self.sent.add(name)
                    if self.on_sent is not None:
                        self.on_sent(name)
                return None
            why = f"BO {h} on dbc {dbc}: {why}"
        return why or f"dbc {dbc}: elements with req_id {elems[0].req_id} belong to no BO"

    def _queued(
        self, u: int, h: int, info: SliceInfo, dbc: int, elems: list[RequestElem], rz: int | None
    ) -> None:
        need = sum(1 for e in elems if e.completion)
        self.outstanding[(u, h)] = _Exec(dbc, elems[0].req_id, need, need < len(info.entries))
        if rz is None:
            self.totals[(u, h)] = len(elems)

    def _drain(self) -> None:
        """New entries of the host's completion log, judged in event order."""
        log = getattr(self.r.host, "completions", None)
        if not isinstance(log, list) or len(log) == self.seen_completions:
            return
        new = log[self.seen_completions :]
        self.seen_completions = len(log)
        for raw in new:
            key = (int(raw[0]), int(raw[1]))
            ex = self.outstanding.pop(key, None)
            if ex is None:
                self._fail(
                    f"CONF-COMPLETE-TWICE: BO {key[1]} of user {key[0]} completed with no "
                    "execution outstanding"
                )
            else:
                got = self.resp.get((ex.dbc, ex.req_id), 0)
                if got < ex.need:
                    self._fail(
                        f"CONF-COMPLETE-EARLY: BO {key[1]} of user {key[0]} completed after "
                        f"{got} of its {ex.need} response(s) on dbc {ex.dbc}"
                    )
            if self.on_complete is not None:
                self.on_complete(key)

    def _quiescent(self, st: Any, res: Mapping[str, Any]) -> bool:
        if st.op == "run":
            if "quiescent" in res:
                return bool(res["quiescent"])
            return not self.r.enabled()
        return res.get("result") == "ETIMEDOUT"

    def _lost(self) -> str | None:
        if self.r.cfg.datapath_polling:
            return None
        for (u, h), ex in self.outstanding.items():
            ch = self.dev.ch[ex.dbc]
            if ex.never or not ch.active or ch.rsp_hp != ch.rsp_tp:
                continue
            if self.resp.get((ex.dbc, ex.req_id), 0) >= ex.need:
                self.where = {"bo": h, "user": u, "dbc": ex.dbc}
                return (
                    f"CONF-LOST: BO {h} of user {u}: the device answered all {ex.need} "
                    f"completion element(s) on dbc {ex.dbc}, the host consumed them, nothing "
                    "can happen any more, and the BO never completed"
                )
        return None
