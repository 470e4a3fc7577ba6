"""The fast host: the same data path as :class:`qaicmodel.spec.host.SpecHost`, in numpy.

Same behaviour (tests/test_host_equiv.py checks byte-identical FIFOs, identical
register writes and identical ioctl results), different mechanics:

  * a slice's request elements are one numpy structured array with the exact
    64-byte layout (:data:`qaicmodel.spec.wire.REQ_DTYPE`), encoded once at
    attach time with vector operations (qaic_data.c encode_reqs);
  * execute stamps the req_id with one vector store and copies a slice into the
    ring in at most two bulk copies (arith.wrap_split; copy_exec_reqs);
  * the segment lookup and the partial-execute split are closed forms
    (arith.slice_span, arith.partial_split) instead of loops;
  * a drain pass takes ``arith.drain_count`` responses as one array, counts them
    per req_id, and finds BOs through a req_id -> queued BOs index (O(1)),
    crediting them in queue order exactly as the driver's list walk does;
  * the IRQ thread and hard handler are written directly on ints (the reference
    host evaluates :mod:`qaicmodel.spec.irqproto`'s dual-typed transitions); the
    co-simulation Pair checks both make the same register accesses, mask changes
    and interleaving points.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from qaicmodel import arith
from qaicmodel.arith import U32, U64
from qaicmodel.spec import regs, uapi
from qaicmodel.spec.hostapi import (
    BULK_XFER,
    GEN_COMPLETION,
    INBOUND_XFER,
    OUTBOUND_XFER,
    U32_MAX,
    Bo,
    HostChannel,
    HostCore,
    SliceRec,
    encode_db_len,
)
from qaicmodel.spec.irqproto import PC
from qaicmodel.spec.wire import REQ_DTYPE, REQ_SIZE, RSP_DTYPE, RSP_SIZE

__all__ = ["ImplHost"]

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

    __slots__ = ("arr", "raw", "n", "first_len", "seg_len")

    def __init__(self, arr: np.ndarray, seg_len: int) -> None:
        self.arr = arr
        self.raw = arr.view(np.uint8).data
        self.n = int(arr.shape[0])
        self.first_len = int(arr["pcie_dma_len"][0])
        self.seg_len = seg_len


def _sem_word(s: uapi.Sem, flags: int | None = None) -> int:
    return int(arith.sem_encode(s.val, s.index, s.presync, s.cmd,
                                s.flags if flags is None else flags, U32))


class ImplHost(HostCore):
    """Fast host (``Host`` protocol)."""

    def __init__(self, device: Any, **kw: Any) -> None:
        super().__init__(device, **kw)
        #: per channel: req_id -> queued BOs with that id, in queue order
        self._by_rid: list[dict[int, list[Bo]]] = [{} for _ in self.ch]

    # -- ring views ------------------------------------------------------
    def _on_assign(self, ch: HostChannel) -> None:
        mem = self.device.host_mem
        req = mem.view(ch.req_q, ch.nelem * REQ_SIZE).data
        rsp_ids = mem.view(ch.rsp_q, ch.nelem * RSP_SIZE).view(RSP_DTYPE)["req_id"]
        ch.cache = (req, rsp_ids)

    def _rings(self, ch: HostChannel) -> tuple[memoryview, np.ndarray]:
        if ch.cache is None:
            self._on_assign(ch)
        return ch.cache

    # -- attach ------------------------------------------------------------
    def _seg_len(self, bo: Bo) -> int:
        return self.sg_max_segment or bo.size

    def _span(self, bo: Bo, offset: int, size: int) -> _Segs | None:
        if not arith.slice_span_ok(offset, size, bo.size, U64):
            return None
        seg = self._seg_len(bo)
        first, nents, first_off, last_len = (int(x) for x in arith.slice_span(offset, size, seg,
                                                                                U64))
        if bo.cache is None:
            bo.cache = np.array([a for a, _ in bo.segments], dtype=np.uint64)
        addr = bo.cache[first:first + nents].copy()
        addr[0] += np.uint64(first_off)
        length = np.full(nents, seg, dtype=np.uint64)
        length[-1] = last_len
        length[0] = (last_len if nents == 1 else seg) - first_off
        return _Segs(addr, length)

    def _encode(self, dir: int, ent: uapi.SliceEntry, segs: Any) -> _Enc:
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
            flags0 |= (uapi.QAIC_SEM_INSYNCFENCE if dir == uapi.DMA_TO_DEVICE
                       else uapi.QAIC_SEM_OUTSYNCFENCE)
        last = arr[n - 1]
        last["pcie_dma_cmd"] = cmd | GEN_COMPLETION
        last["doorbell_addr"] = ent.db_addr
        last["doorbell_attr"] = encode_db_len(ent.db_len)
        last["doorbell_data"] = ent.db_data
        last["sem_cmd"] = (_sem_word(ent.sem0, flags0), _sem_word(ent.sem1),
                           _sem_word(ent.sem2), _sem_word(ent.sem3))
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
        ring[tail * REQ_SIZE:(tail + first) * REQ_SIZE] = raw[:first * REQ_SIZE]
        if rest:
            ring[:rest * REQ_SIZE] = raw[first * REQ_SIZE:n * REQ_SIZE]

    def _write_full(self, ch: HostChannel, sl: SliceRec, req_id: int, tail: int) -> None:
        enc: _Enc = sl.enc
        enc.arr["req_id"] = req_id
        ring, _ = self._rings(ch)
        self._copy(ring, ch.nelem, tail, enc.raw, enc.n)

    def _write_partial(self, ch: HostChannel, sl: SliceRec, req_id: int, tail: int,
                       first_n: int, last_bytes: int) -> None:
        enc: _Enc = sl.enc
        enc.arr["req_id"] = req_id
        ring, _ = self._rings(ch)
        if first_n:
            self._copy(ring, ch.nelem, tail, enc.raw, first_n)
        last = enc.arr[enc.n - 1:].copy()
        ref = enc.arr[first_n]
        last["pcie_dma_len"] = last_bytes & 0xFFFFFFFF
        last["pcie_dma_source_addr"] = ref["pcie_dma_source_addr"]
        last["pcie_dma_dest_addr"] = ref["pcie_dma_dest_addr"]
        if last_bytes == 0:
            last["pcie_dma_cmd"] = ref["pcie_dma_cmd"] & 0xFC
        slot = int(arith.ring_advance(tail, first_n, ch.nelem, U32))
        ring[slot * REQ_SIZE:(slot + 1) * REQ_SIZE] = last.view(np.uint8).data

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

    # -- the IRQ side on plain ints (same steps as HostCore._thread) ---------------
    def _hard_irq(self, v: int) -> None:
        dev = self.device
        dev.intc.ack(v)
        if self.datapath_polling:
            return
        for ch in self.ch:
            if ch.usr is None or dev.vector(ch.id) != v:
                continue
            hp = self._readl(ch.id, regs.RSP_HP)
            if hp == U32_MAX:
                continue
            tp = self._readl(ch.id, regs.RSP_TP)
            if tp == U32_MAX or hp == tp:
                continue  # IRQ_NONE
            s = ch.irq
            if self._mask_on_irq:
                self._sync_mask(ch, s.depth, s.depth + 1)
                ch.irq = s._replace(rsp_hp=hp, rsp_tp=tp, pending=False, depth=s.depth + 1,
                                    wake=True)
            else:
                ch.irq = s._replace(rsp_hp=hp, rsp_tp=tp, pending=False, wake=True)

    def _thread(self, ch: HostChannel) -> None:
        s = ch.irq
        pc = s.pc
        if pc == PC.IDLE:
            hp = self._readl(ch.id, regs.RSP_HP)
            if hp == U32_MAX:
                self._error_out(ch)
                return
            s = s._replace(wake=False, rsp_hp=hp, head=hp, budget=self.num_events,
                           delay=self.num_delays)
            pc = PC.READ_TAIL
        if pc == PC.READ_TAIL:
            if ch.usr is None:
                ch.irq = s._replace(pc=int(PC.READ_TAIL))
                self._error_out(ch)
                return
            tp = self._readl(ch.id, regs.RSP_TP)
            if tp == U32_MAX:
                ch.irq = s._replace(pc=int(PC.READ_TAIL))
                self._error_out(ch)
                return
            budget = s.budget or self.num_events
            if tp != s.head:
                ch.irq = s._replace(rsp_tp=tp, tail=tp, budget=budget,
                                    delay=self.num_delays, pc=int(PC.DRAIN))
            elif s.delay:
                ch.irq = s._replace(rsp_tp=tp, tail=tp, budget=budget, delay=s.delay - 1,
                                    pc=int(PC.READ_TAIL))
            else:
                ch.irq = s._replace(rsp_tp=tp, tail=tp, budget=budget, pc=int(PC.UNMASK))
        elif pc == PC.DRAIN:
            self._drain(ch)
            ch.irq = ch.irq._replace(pc=int(PC.WRITE_HEAD))
        elif pc == PC.WRITE_HEAD:
            self._writel(ch.id, regs.RSP_HP, s.head)
            ch.irq = s._replace(rsp_hp=s.head, pc=int(PC.READ_TAIL))
        elif pc == PC.UNMASK:
            depth = s.depth - 1 if self._mask_on_irq else s.depth
            self._sync_mask(ch, s.depth, depth)
            ch.irq = s._replace(depth=depth, pc=int(PC.RECHECK if self.recheck else PC.IDLE))
            if self.datapath_polling:
                ch.poll = True
        elif pc == PC.RECHECK:
            tp = self._readl(ch.id, regs.RSP_TP)
            if tp == U32_MAX:
                ch.irq = s._replace(pc=int(PC.IDLE))
                return
            if tp != s.head:
                depth = s.depth + 1 if self._mask_on_irq else s.depth
                self._sync_mask(ch, s.depth, depth)
                ch.irq = s._replace(rsp_tp=tp, tail=tp, depth=depth, pc=int(PC.READ_TAIL))
            else:
                ch.irq = s._replace(rsp_tp=tp, tail=tp, pc=int(PC.IDLE))
        else:  # pragma: no cover
            raise AssertionError(f"IRQ thread of dbc {ch.id} rests at {pc}")

    # -- drain -------------------------------------------------------------
    def _drain(self, ch: HostChannel) -> None:
        s = ch.irq
        k = int(arith.drain_count(s.head, s.tail, s.budget, ch.nelem, U32))
        if k:
            _, ids = self._rings(ch)
            first, rest = arith.wrap_split(s.head, k, ch.nelem, U32)
            batch = ids[s.head:s.head + first].tolist()
            if rest:
                batch += ids[:rest].tolist()
            index = self._by_rid[ch.id]
            for rid, cnt in Counter(batch).items():
                while cnt:
                    lst = index.get(rid)
                    if not lst:
                        break
                    bo = lst[0]
                    take = min(cnt, bo.nr_slice - bo.nr_slice_xfer_done)
                    bo.nr_slice_xfer_done += take
                    cnt -= take
                    if bo.nr_slice_xfer_done >= bo.nr_slice:
                        self._complete(ch, bo)
        ch.irq = s.with_(head=int(arith.ring_advance(s.head, k, ch.nelem, U32)),
                         budget=s.budget - k)
