"""The fast host: the same data path as :class:`qaicmodel.spec.host.reference.SpecHost`, in numpy.

Same behaviour (tests/test_host_equiv.py checks byte-identical FIFOs, identical
register writes and identical ioctl results), different mechanics:

  * a slice's request elements are one numpy structured array with the exact
    64-byte layout (:data:`qaicmodel.spec.dbc.wire.REQ_DTYPE`), encoded once at
    attach time with vector operations (qaic_data.c encode_reqs);
  * execute copies a slice into the ring in at most two bulk byte copies
    (arith.wrap_split; copy_exec_reqs), then stamps the req_id into the ring's
    req_id column (one strided store; a single u16 word for a one-element slice);
    the encoded slice is never rewritten;
  * EXECUTE_BO's checks before the REQ_HP/REQ_TP reads are tested on one
    straight-line path; any call that would fail one of them is handed to
    HostCore.execute, which raises in the driver's order (so errnos and the order
    cannot drift); from the reads on, HostCore's ``_exec_send`` does the per-BO work;
  * the segment lookup and the partial-execute split are closed forms
    (arith.slice_span, arith.partial_split) instead of loops;
  * a drain pass takes ``arith.drain_count`` responses as one array, counts them
    per req_id, and finds BOs through a req_id -> queued BOs index (O(1)),
    crediting them in queue order exactly as the driver's list walk does;
  * the IRQ thread and hard handler are written directly on ints
    (:mod:`qaicmodel.impl.irqfast`), one
    straight-line function per interleaving point, the IrqState record built
    positionally (the reference host evaluates :mod:`qaicmodel.spec.host.irqproto`'s
    dual-typed transitions, which z3 proves); ``step`` checks enabledness per kind
    instead of building :meth:`enabled`'s list; the co-simulation Pair checks both
    hosts make the same register accesses, mask changes and interleaving points;
  * responses are read as native u16 words of the response ring (a memoryview
    cast; little-endian machines only, as the wire format is little-endian).
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import numpy as np

from qaicmodel import arith
from qaicmodel.arith import U32, U64
from qaicmodel.errors import NotModelledError
from qaicmodel.impl.irqfast import FastIrq
from qaicmodel.spec.dbc.wire import REQ_DTYPE, REQ_SIZE, RSP_SIZE
from qaicmodel.spec.host import uapi
from qaicmodel.spec.host.core import (
    BULK_XFER,
    GEN_COMPLETION,
    INBOUND_XFER,
    OUTBOUND_XFER,
    HostCore,
)
from qaicmodel.spec.host.protocol import HostAction
from qaicmodel.spec.host.records import Bo, HostChannel, SliceRec
from qaicmodel.spec.host.validate import U32_MAX, encode_db_len

__all__ = ["ImplHost"]

_U32_TOP = U32_MAX  # a PCI link error reads all ones
#: u16 words per request element (req_id is word 0)
_REQ_WORDS = REQ_SIZE // 2


class _Segs:
    """The DMA pieces of a slice as two arrays (bus address, length)."""

    __slots__ = ("addr", "length")

    def __init__(self, addr: np.ndarray, length: np.ndarray) -> None:
        self.addr = addr
        self.length = length

    def __len__(self) -> int:
        return int(self.length.shape[0])


class _Enc:
    """A slice's encoded requests: the structured array, its bytes, its lengths."""

    __slots__ = ("arr", "raw", "rid", "n", "first_len", "seg_len")

    def __init__(self, arr: np.ndarray, seg_len: int) -> None:
        self.arr = arr
        self.raw = arr.view(np.uint8).data
        self.rid = arr["req_id"]  # a view: execute stamps the req_id through it
        self.n = int(arr.shape[0])
        self.first_len = int(arr["pcie_dma_len"][0])
        self.seg_len = seg_len


def _sem_word(s: uapi.Sem, flags: int | None = None) -> int:
    f = s.flags if flags is None else flags
    if type(f) is int:
        return _sem_word_of(s.val, s.index, s.presync, s.cmd, f)
    return int(arith.sem_encode(s.val, s.index, s.presync, s.cmd, f, U32))


@functools.lru_cache(maxsize=4096)
def _slice_span(offset: int, size: int, covered: int, seg: int) -> tuple[int, ...] | None:
    """arith.slice_span as ints when arith.slice_span_ok, else None (pure functions of
    their arguments: cached, speed only)."""
    if not arith.slice_span_ok(offset, size, covered, U64):
        return None
    return tuple(int(x) for x in arith.slice_span(offset, size, seg, U64))


@functools.lru_cache(maxsize=4096)
def _sem_word_of(val: int, index: int, presync: int, cmd: int, flags: int) -> int:
    """arith.sem_encode of plain ints (a pure function of them: cached, speed only)."""
    return int(arith.sem_encode(val, index, presync, cmd, flags, U32))


class ImplHost(FastIrq, HostCore):
    """Fast host (``Host`` protocol)."""

    def __init__(self, device: Any, **kw: Any) -> None:
        super().__init__(device, **kw)
        #: per channel: req_id -> queued BOs with that id, in queue order
        self._by_rid: list[dict[int, list[Bo]]] = [{} for _ in self.ch]

    # -- ring views ------------------------------------------------------
    def _on_assign(self, ch: HostChannel) -> None:
        """Views of the channel's rings: request bytes, response ring u16 words, the
        request ring's req_id column (execute stamps it after the bulk copy), request
        ring u16 words."""
        if sys.byteorder != "little":
            raise NotModelledError(
                "ImplHost reads the little-endian rings as native u16 "
                "words; this machine is big-endian (use SpecHost)"
            )
        mem = self.device.host_mem
        req = mem.view(ch.req_q, ch.nelem * REQ_SIZE)
        rsp = mem.view(ch.rsp_q, ch.nelem * RSP_SIZE)
        # u16 words of both rings (little-endian host): req_id is word 0 of a request
        # element (32 words) and of a response element (2 words) -- wire.REQ_DTYPE / RSP_DTYPE
        ch.cache = (req.data, rsp.data.cast("H"), req.view(REQ_DTYPE)["req_id"], req.data.cast("H"))

    def _rings(self, ch: HostChannel) -> tuple[memoryview, memoryview, np.ndarray, memoryview]:
        if ch.cache is None:
            self._on_assign(ch)
        return ch.cache

    # -- attach ------------------------------------------------------------
    def _seg_len(self, bo: Bo) -> int:
        # every segment but the last has this length (create_bo splits at sg_max_segment;
        # synthetic BOs and imports at their first segment's length: memory.bo_backing)
        return bo.segments[0][1] if len(bo.segments) > 1 else self.sg_max_segment or bo.size

    def _span(self, bo: Bo, offset: int, size: int) -> _Segs | None:
        # against the bytes the segments cover: less than bo.size when create_sgt's page
        # count wrapped (memory.bo_backing)
        covered = sum(n for _a, n in bo.segments)
        seg = self._seg_len(bo)
        span = _slice_span(offset, size, covered, seg)
        if span is None:
            return None
        first, nents, first_off, last_len = span
        if bo.cache is None:
            bo.cache = np.array([a for a, _ in bo.segments], dtype=np.uint64)
        addr = bo.cache[first : first + nents].copy()
        addr[0] += np.uint64(first_off)
        length = np.full(nents, seg, dtype=np.uint64)
        length[-1] = last_len
        length[0] = (last_len if nents == 1 else seg) - first_off
        return _Segs(addr, length)

    def _encode(self, dir: int, ent: uapi.SliceEntry, segs: Any) -> _Enc:
        if len(segs) == 1:
            return self._encode_one(dir, ent, segs)
        return self._encode_many(dir, ent, segs)

    def _encode_one(self, dir: int, ent: uapi.SliceEntry, segs: Any) -> _Enc:
        """:meth:`_encode_many` of a one-piece slice as one record assignment (speed only;
        tests/test_conform_speed.py compares the bytes): the last element is the only one,
        so its command has the completion bit and its four semaphore words are the
        entry's own (no implicit sync fence: that is for slices of several elements)."""
        arr = np.zeros(1, dtype=REQ_DTYPE)
        cmd = BULK_XFER | GEN_COMPLETION
        if ent.size:
            cmd |= INBOUND_XFER if dir == uapi.DMA_TO_DEVICE else OUTBOUND_XFER
        bus, dev = int(segs.addr[0]), int(np.uint64(ent.dev_addr))
        src, dst = (bus, dev) if dir == uapi.DMA_TO_DEVICE else (dev, bus)
        arr[0] = (
            0,
            0,
            cmd,
            0,
            src,
            dst,
            int(segs.length[0]) & 0xFFFF_FFFF,  # astype(np.uint32), as _encode_many
            0,
            ent.db_addr,
            encode_db_len(ent.db_len),
            0,
            0,
            ent.db_data,
            (_sem_word(ent.sem0), _sem_word(ent.sem1), _sem_word(ent.sem2), _sem_word(ent.sem3)),
        )
        return _Enc(arr, self.sg_max_segment or 0)

    def _encode_many(self, dir: int, ent: uapi.SliceEntry, segs: Any) -> _Enc:
        n = len(segs)
        arr = np.zeros(n, dtype=REQ_DTYPE)
        cmd = BULK_XFER
        if ent.size:
            cmd |= INBOUND_XFER if dir == uapi.DMA_TO_DEVICE else OUTBOUND_XFER
        arr["pcie_dma_cmd"] = cmd
        offs = np.zeros(n, dtype=np.uint64)
        if n > 1:
            np.cumsum(segs.length[:-1], out=offs[1:])
        dev = offs + np.uint64(ent.dev_addr)  # u64 wrap, as the driver's dev_addr +=
        if dir == uapi.DMA_TO_DEVICE:
            arr["pcie_dma_source_addr"], arr["pcie_dma_dest_addr"] = segs.addr, dev
        else:
            arr["pcie_dma_source_addr"], arr["pcie_dma_dest_addr"] = dev, segs.addr
        arr["pcie_dma_len"] = segs.length.astype(np.uint32)
        presync = [k for k, s in enumerate(ent.sems) if s.presync]
        for k in presync:
            arr["sem_cmd"][:, k] = _sem_word(ent.sems[k])
        flags0 = ent.sem0.flags
        if n > 1 and not presync:
            flags0 |= (
                uapi.QAIC_SEM_INSYNCFENCE
                if dir == uapi.DMA_TO_DEVICE
                else uapi.QAIC_SEM_OUTSYNCFENCE
            )
        last = arr[n - 1]
        last["pcie_dma_cmd"] = cmd | GEN_COMPLETION
        last["doorbell_addr"] = ent.db_addr
        last["doorbell_attr"] = encode_db_len(ent.db_len)
        last["doorbell_data"] = ent.db_data
        last["sem_cmd"] = (
            _sem_word(ent.sem0, flags0),
            _sem_word(ent.sem1),
            _sem_word(ent.sem2),
            _sem_word(ent.sem3),
        )
        return _Enc(arr, self.sg_max_segment or 0)

    # -- execute -----------------------------------------------------------
    def _partial(self, sl: SliceRec, rel: int) -> tuple[int, int]:
        enc: _Enc = sl.enc
        seg = enc.seg_len or enc.first_len or 1
        first_n, last_bytes = arith.partial_split(rel, enc.first_len, seg, U64)
        return int(first_n), int(last_bytes)

    def _copy(self, ring: memoryview, nelem: int, tail: int, raw: memoryview, n: int) -> None:
        """n elements of ``raw`` into the ring at ``tail``: at most two bulk copies."""
        first, rest = arith.wrap_split(tail, n, nelem, U32)
        ring[tail * REQ_SIZE : (tail + first) * REQ_SIZE] = raw[: first * REQ_SIZE]
        if rest:
            ring[: rest * REQ_SIZE] = raw[first * REQ_SIZE : n * REQ_SIZE]

    def _write_full(self, ch: HostChannel, sl: SliceRec, req_id: int, tail: int) -> None:
        """copy_exec_reqs: the slice's bytes in at most two bulk copies, then its req_id
        stamped into the ring's req_id column (the encoded slice itself is not touched)."""
        enc: _Enc = sl.enc
        ring, _, rid, words = ch.cache if ch.cache is not None else self._rings(ch)
        n = enc.n
        if n == 1 and tail < ch.nelem:  # one element: no wrap possible (arith.wrap_split)
            ring[tail * REQ_SIZE : (tail + 1) * REQ_SIZE] = enc.raw
            words[tail * _REQ_WORDS] = req_id
            return
        first, rest = arith.wrap_split(tail, n, ch.nelem, U32)
        ring[tail * REQ_SIZE : (tail + first) * REQ_SIZE] = enc.raw[: first * REQ_SIZE]
        rid[tail : tail + first] = req_id
        if rest:
            ring[: rest * REQ_SIZE] = enc.raw[first * REQ_SIZE : n * REQ_SIZE]
            rid[:rest] = req_id

    def _write_partial(
        self, ch: HostChannel, sl: SliceRec, req_id: int, tail: int, first_n: int, last_bytes: int
    ) -> None:
        enc: _Enc = sl.enc
        enc.rid.fill(req_id)
        ring = self._rings(ch)[0]
        if first_n:
            self._copy(ring, ch.nelem, tail, enc.raw, first_n)
        last = enc.arr[enc.n - 1 :].copy()
        ref = enc.arr[first_n]
        last["pcie_dma_len"] = last_bytes & 0xFFFFFFFF
        last["pcie_dma_source_addr"] = ref["pcie_dma_source_addr"]
        last["pcie_dma_dest_addr"] = ref["pcie_dma_dest_addr"]
        if last_bytes == 0:
            last["pcie_dma_cmd"] = ref["pcie_dma_cmd"] & 0xFC
        slot = int(arith.ring_advance(tail, first_n, ch.nelem, U32))
        ring[slot * REQ_SIZE : (slot + 1) * REQ_SIZE] = last.view(np.uint8).data

    def _xfer_add(self, ch: HostChannel, bo: Bo) -> None:
        super()._xfer_add(ch, bo)
        self._by_rid[ch.id].setdefault(bo.req_id, []).append(bo)

    def _xfer_remove(self, ch: HostChannel, bo: Bo) -> None:
        super()._xfer_remove(ch, bo)
        lst = self._by_rid[ch.id].get(bo.req_id)
        if lst is not None:
            for i, b in enumerate(lst):
                if b is bo:
                    del lst[i]
                    break
            if not lst:
                del self._by_rid[ch.id][bo.req_id]

    # -- EXECUTE_BO on one path ---------------------------------------------------
    def execute(self, user: int, dbc_id: int, handles_dirs: Any) -> None:
        """DRM_IOCTL_QAIC_EXECUTE_BO (qaic_data.c __qaic_execute_bo_ioctl), straight-line.

        Every check HostCore makes before the REQ_HP/REQ_TP reads (entry shapes,
        client, dbc_id, count, online, range, -EPERM, -EPIPE, req_lock) is tested by
        :meth:`_exec_ready` without side effects; if any would fail, the call goes to
        :meth:`HostCore.execute`, which raises in the driver's order.  From the register
        reads on, the steps are HostCore's own (``_exec_read``, ``_exec_send``,
        ``_exec_commit``).
        """
        ready = self._exec_ready(user, dbc_id, handles_dirs)
        if ready is None:
            super().execute(user, dbc_id, handles_dirs)
            return
        ch, ents = ready
        head, tail, level = self._exec_read(ch)
        tail = self._exec_send(ch, user, ents, False, head, tail)
        self._exec_commit(ch, user, ents, tail, level)

    def _exec_ready(
        self, user: Any, dbc_id: Any, handles_dirs: Any
    ) -> tuple[HostChannel, list[tuple[int, int, int]]] | None:
        """(channel, entries) when every pre-lock check of EXECUTE_BO passes, else None.

        A subset of what HostCore accepts (exact ``int`` types only), so None never
        changes an outcome: HostCore then runs the full checks."""
        if (
            type(user) is not int
            or user not in self.users
            or type(dbc_id) is not int
            or not 0 <= dbc_id < len(self.ch)
            or not self.online
            or (type(handles_dirs) is not list and type(handles_dirs) is not tuple)
            or not handles_dirs
        ):
            return None
        ch = self.ch[dbc_id]
        if (
            ch.usr is None
            or ch.usr != user
            or self.ssr_dbc == dbc_id
            or (self.use_req_lock and ch.lock is not None)
        ):
            return None
        ents: list[tuple[int, int, int]] = []
        for e in handles_dirs:
            if (
                (type(e) is not tuple and type(e) is not list)
                or len(e) != 2
                or type(e[0]) is not int
                or type(e[1]) is not int
                or not 0 <= e[0] <= _U32_TOP
                or not 0 <= e[1] <= _U32_TOP
            ):
                return None
            ents.append((e[0], e[1], 0))
        return ch, ents

    # -- the actor: same enabledness rule as HostCore.is_enabled, per kind ---------
    def step(self, action: Any) -> None:
        """HostCore.step for ``thread`` and ``irq`` actions without building
        :meth:`enabled`'s list: a thread runs when it is mid-run or woken; an MSI
        vector is taken when the intc can deliver it (vector 0 only in single-MSI
        mode: it is MHI's otherwise).  Anything else, or anything not enabled, goes to
        :meth:`HostCore.step` (same dispatch, same ArgumentError)."""
        if type(action) is HostAction:
            kind, arg = action.kind, action.arg
            if kind == "thread":
                if type(arg) is int and 0 <= arg < len(self.ch):
                    ch = self.ch[arg]
                    s = ch.irq
                    if s.pc or s.wake:
                        self._thread(ch)
                        return
            elif kind == "irq":
                if (
                    type(arg) is int
                    and (arg or self.single_msi)
                    and arg in self.device.intc.deliverable_vectors()
                ):
                    self._hard_irq(arg)
                    return
        super().step(action)
