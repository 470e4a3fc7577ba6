"""The reference host: the qaic data path written for clarity, one element at a time.

This is the executable statement of what a correct host does on the data path
(qaic_data.c; control-path.md §3.4).  Validation, bookkeeping, the execute
phases and the IRQ thread's control flow are shared with the fast host in
:class:`qaicmodel.spec.host.core.HostCore`; this module is the data path:

  * ``_span`` -- clone_range_of_sgt_for_slice: walk the BO's DMA segments, the
    first is the one holding ``offset``, the last the first whose end reaches
    ``offset + size``; a slice of size 0 still spans PAGE_SIZE bytes.
  * ``_encode`` -- encode_reqs: one request element per segment; command =
    bulk | direction (no direction for a size-0 slice); the presync semaphore
    on every element; completion bit, doorbell and all four semaphores on the
    last only; when the slice has several elements and no presync, sem0 of the
    last element gets the fence of its direction (INSYNCFENCE to device,
    OUTSYNCFENCE from device).
  * ``_partial`` / ``_write_*`` -- copy_exec_reqs / copy_partial_exec_reqs:
    elements go to slots tail, tail+1, ... (mod nelem); a shortened slice sends
    its first ``first_n`` elements and then the slice's *last* element with
    length ``last_bytes`` and the addresses of element ``first_n``; when
    ``last_bytes`` is 0 the command becomes element ``first_n``'s with the
    direction bits cleared.
  * ``_drain`` -- dbc_irq_threaded_fn's inner loop: each response credits the
    first queued BO with its req_id; a BO completes when every slice has
    answered, whatever the completion code.
"""

from __future__ import annotations

import functools

import attrs

from qaicmodel import arith
from qaicmodel.arith import U32
from qaicmodel.spec.dbc.wire import REQ_SIZE, RSP_SIZE, RequestElem, ResponseElem
from qaicmodel.spec.host import uapi
from qaicmodel.spec.host.core import (
    BULK_XFER,
    GEN_COMPLETION,
    INBOUND_XFER,
    OUTBOUND_XFER,
    HostCore,
)
from qaicmodel.spec.host.records import Bo, HostChannel, SliceRec
from qaicmodel.spec.host.validate import encode_db_len

__all__ = ["SpecHost"]


@functools.lru_cache(maxsize=4096)
def _sem_word(s: uapi.Sem, flags: int | None = None) -> int:
    """ENCODE_SEM (qaic_data.c) via arith.sem_encode.  (Cached: a pure function of the
    frozen, hashable Sem and the flags.)"""
    return int(
        arith.sem_encode(s.val, s.index, s.presync, s.cmd, s.flags if flags is None else flags, U32)
    )


class SpecHost(HostCore):
    """Reference host (``Host`` protocol); see the module docstring."""

    def _span(self, bo: Bo, offset: int, size: int) -> list[tuple[int, int]] | None:
        size = size if size else arith.PAGE_SIZE
        end = offset + size
        total = 0
        first = last = None
        off_first = off_last = 0
        for idx, (_addr, length) in enumerate(bo.segments):
            if length == 0:
                continue
            if total <= offset < total + length:
                first, off_first = idx, offset - total
            if total <= end <= total + length:
                last, off_last = idx, end - total
                break
            total += length
        if first is None or last is None or last < first:
            return None
        out = []
        for idx in range(first, last + 1):
            addr, length = bo.segments[idx]
            start = off_first if idx == first else 0
            stop = off_last if idx == last else length
            out.append((addr + start, stop - start))
        return out

    def _encode(
        self, dir: int, ent: uapi.SliceEntry, segs: list[tuple[int, int]]
    ) -> list[RequestElem]:
        cmd = BULK_XFER
        if ent.size:
            cmd |= INBOUND_XFER if dir == uapi.DMA_TO_DEVICE else OUTBOUND_XFER
        presync = [k for k, s in enumerate(ent.sems) if s.presync]
        elems: list[RequestElem] = []
        dev_addr = ent.dev_addr
        for addr, length in segs:
            src, dst = (addr, dev_addr) if dir == uapi.DMA_TO_DEVICE else (dev_addr, addr)
            sems = [0, 0, 0, 0]
            for k in presync:
                sems[k] = _sem_word(ent.sems[k])
            elems.append(
                RequestElem(
                    pcie_dma_cmd=cmd,
                    pcie_dma_source_addr=src,
                    pcie_dma_dest_addr=dst,
                    pcie_dma_len=length & 0xFFFFFFFF,
                    sem_cmd0=sems[0],
                    sem_cmd1=sems[1],
                    sem_cmd2=sems[2],
                    sem_cmd3=sems[3],
                )
            )
            dev_addr = int(arith.U64.add(dev_addr, length))
        flags0 = ent.sem0.flags
        if len(segs) > 1 and not presync:
            flags0 |= (
                uapi.QAIC_SEM_INSYNCFENCE
                if dir == uapi.DMA_TO_DEVICE
                else uapi.QAIC_SEM_OUTSYNCFENCE
            )
        elems[-1] = attrs.evolve(
            elems[-1],
            pcie_dma_cmd=cmd | GEN_COMPLETION,
            doorbell_addr=ent.db_addr,
            doorbell_attr=encode_db_len(ent.db_len),
            doorbell_data=ent.db_data,
            sem_cmd0=_sem_word(ent.sem0, flags0),
            sem_cmd1=_sem_word(ent.sem1),
            sem_cmd2=_sem_word(ent.sem2),
            sem_cmd3=_sem_word(ent.sem3),
        )
        return elems

    def _partial(self, sl: SliceRec, rel: int) -> tuple[int, int]:
        elems: list[RequestElem] = sl.enc
        last_bytes = rel
        first_n = 0
        while first_n < len(elems) and last_bytes > elems[first_n].pcie_dma_len:
            last_bytes -= elems[first_n].pcie_dma_len
            first_n += 1
        return first_n, last_bytes

    def _put(self, ch: HostChannel, slot: int, elem: RequestElem) -> None:
        self.device.host_mem.write(ch.req_q + slot * REQ_SIZE, elem.pack())

    def _write_full(self, ch: HostChannel, sl: SliceRec, req_id: int, tail: int) -> None:
        for i, elem in enumerate(sl.enc):
            slot = int(arith.ring_advance(tail, i, ch.nelem, U32))
            self._put(ch, slot, attrs.evolve(elem, req_id=req_id))

    def _write_partial(
        self, ch: HostChannel, sl: SliceRec, req_id: int, tail: int, first_n: int, last_bytes: int
    ) -> None:
        elems: list[RequestElem] = sl.enc
        for i in range(first_n):
            slot = int(arith.ring_advance(tail, i, ch.nelem, U32))
            self._put(ch, slot, attrs.evolve(elems[i], req_id=req_id))
        ref = elems[first_n]
        last = attrs.evolve(
            elems[-1],
            req_id=req_id,
            pcie_dma_len=last_bytes & 0xFFFFFFFF,
            pcie_dma_source_addr=ref.pcie_dma_source_addr,
            pcie_dma_dest_addr=ref.pcie_dma_dest_addr,
        )
        if last_bytes == 0:  # "Disable DMA transfer": GENMASK(7, 2) & reqs[first_n].cmd
            last = attrs.evolve(last, pcie_dma_cmd=ref.pcie_dma_cmd & 0xFC)
        self._put(ch, int(arith.ring_advance(tail, first_n, ch.nelem, U32)), last)

    def _drain(self, ch: HostChannel) -> None:
        guard, update = self.proto["consume_one"]
        while guard(ch.irq, U32):
            raw = self.device.host_mem.read(ch.rsp_q + ch.irq.head * RSP_SIZE, RSP_SIZE)
            rsp = ResponseElem.unpack(raw)
            self._response(ch, rsp.req_id, rsp.completion_code)
            ch.irq = update(ch.irq, U32)

    def _response(self, ch: HostChannel, req_id: int, code: int) -> None:
        """One response: credit the first queued BO with this req_id (a non-zero code is
        only logged by the driver; the BO still completes)."""
        for bo in list(ch.xfer.values()):
            if bo.req_id != req_id:
                continue
            bo.nr_slice_xfer_done += 1
            if bo.nr_slice_xfer_done >= bo.nr_slice:
                self._complete(ch, bo)
            break
