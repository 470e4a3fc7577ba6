"""The fast host's interrupt side on plain ints (split out of ``impl/host.py``).

A mixin of :class:`qaicmodel.impl.host.ImplHost`: the hard IRQ handler and the IRQ
thread (qaic_data.c dbc_irq_handler, dbc_irq_threaded_fn; 6.12 and 7.2) written as one
straight-line function per interleaving point, the IrqState record built positionally;
the decisions are those of :mod:`qaicmodel.spec.host.irqproto`'s transitions, which the
reference host evaluates (tests/test_host_equiv.py checks both hosts agree).  The drain
takes ``arith.drain_count`` responses as one array and credits BOs through a req_id
index in queue order (the driver's xfer_list walk).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from qaicmodel import arith
from qaicmodel.arith import U32
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.wire import RSP_SIZE
from qaicmodel.spec.host.irqproto import PC, IrqState
from qaicmodel.spec.host.records import Bo, HostChannel
from qaicmodel.spec.host.validate import U32_MAX

__all__ = ["FastIrq"]

# The IRQ thread's resting points as plain ints (irqproto.PC; dbc_irq_threaded_fn labels)
_IDLE, _READ_TAIL, _DRAIN, _WRITE_HEAD, _UNMASK, _RECHECK = (
    int(PC.IDLE),
    int(PC.READ_TAIL),
    int(PC.DRAIN),
    int(PC.WRITE_HEAD),
    int(PC.UNMASK),
    int(PC.RECHECK),
)
_RSP_HP, _RSP_TP = regs.RSP_HP, regs.RSP_TP
_U32_TOP = U32_MAX  # a PCI link error reads all ones
#: IrqState built positionally (no ``_replace``: the IRQ side is the hot path).  Field
#: order: rsp_hp, rsp_tp, nelem, msi_due, depth, pending, wake, pc, head, tail, budget, delay
_irq = tuple.__new__
#: u16 words per response element (req_id is word 0)
_RSP_WORDS = RSP_SIZE // 2


class FastIrq:
    """Hard IRQ, IRQ thread and drain of :class:`ImplHost`."""

    if TYPE_CHECKING:
        device: Any
        ch: list[HostChannel]
        single_msi: bool
        datapath_polling: bool
        recheck: bool
        num_events: int
        num_delays: int
        _mask_on_irq: bool
        _by_rid: list[dict[int, list[Bo]]]

        def _error_out(self, ch: HostChannel, force: bool = False) -> None: ...
        def _complete(self, ch: HostChannel, bo: Bo) -> None: ...
        def _rings(
            self, ch: HostChannel
        ) -> tuple[memoryview, memoryview, np.ndarray, memoryview]: ...

    # -- the IRQ side on plain ints (same steps as HostCore._thread) ---------------
    def _mask_sync(self, ch: HostChannel, old: int, new: int) -> None:
        """HostCore._sync_mask: disable_irq/enable_irq on the channel's own vector when
        the depth crosses 0.  Only called with mask_on_irq, i.e. one MSI per DBC, whose
        vector is dbc + 1 (control-path.md §4.2; Device.vector)."""
        if (old == 0) != (new == 0):
            if new:
                self.device.intc.mask(ch.id + 1)
            else:
                self.device.intc.unmask(ch.id + 1)

    def _hard_irq(self, v: int) -> None:
        """dbc_irq_handler for the DBCs on vector ``v``: every DBC in single-MSI mode
        (vector 0), else DBC v-1 (control-path.md §4.2: vector dbc + 1)."""
        dev = self.device
        dev.intc.ack(v)
        if self.datapath_polling:
            return
        if self.single_msi:
            chans = self.ch if v == 0 else ()
        else:
            chans = self.ch[v - 1 : v] if v >= 1 else ()
        readl = dev.readl
        for ch in chans:
            if ch.usr is None:
                continue
            hp = int(readl(ch.id, _RSP_HP))
            if hp == _U32_TOP:
                continue
            tp = int(readl(ch.id, _RSP_TP))
            if tp == _U32_TOP or hp == tp:
                continue  # IRQ_NONE
            (_hp, _tp, nelem, msi_due, depth, _pending, _wake, pc, head, tail, budget, delay) = (
                ch.irq
            )
            if self._mask_on_irq:
                self._mask_sync(ch, depth, depth + 1)
                depth += 1
            ch.irq = _irq(
                IrqState,
                (hp, tp, nelem, msi_due, depth, False, True, pc, head, tail, budget, delay),
            )

    def _thread(self, ch: HostChannel) -> None:
        """One run of dbc_irq_threaded_fn to its next interleaving point (HostCore._thread,
        decisions as in irqproto's transitions, written on ints)."""
        (rsp_hp, rsp_tp, nelem, msi_due, depth, pending, wake, pc, head, tail, budget, delay) = (
            ch.irq
        )
        if pc == _READ_TAIL or pc == _IDLE:
            readl = self.device.readl
            if pc == _IDLE:  # thread_start
                hp = int(readl(ch.id, _RSP_HP))
                if hp == _U32_TOP:
                    self._error_out(ch)
                    return
                wake, rsp_hp, head, budget, delay = False, hp, hp, self.num_events, self.num_delays
                pc = _READ_TAIL
            if ch.usr is None:
                ch.irq = _irq(
                    IrqState,
                    (
                        rsp_hp,
                        rsp_tp,
                        nelem,
                        msi_due,
                        depth,
                        pending,
                        wake,
                        _READ_TAIL,
                        head,
                        tail,
                        budget,
                        delay,
                    ),
                )
                self._error_out(ch)
                return
            tp = int(readl(ch.id, _RSP_TP))
            if tp == _U32_TOP:
                ch.irq = _irq(
                    IrqState,
                    (
                        rsp_hp,
                        rsp_tp,
                        nelem,
                        msi_due,
                        depth,
                        pending,
                        wake,
                        _READ_TAIL,
                        head,
                        tail,
                        budget,
                        delay,
                    ),
                )
                self._error_out(ch)
                return
            budget = budget or self.num_events  # read_tail
            if tp != head:  # start_drain
                delay, pc = self.num_delays, _DRAIN
            elif delay:  # poll_empty
                delay -= 1
            else:  # give_up
                pc = _UNMASK
            ch.irq = _irq(
                IrqState,
                (rsp_hp, tp, nelem, msi_due, depth, pending, wake, pc, head, tp, budget, delay),
            )
        elif pc == _DRAIN:
            self._drain(ch)  # consume_one*, then end_drain
            (
                rsp_hp,
                rsp_tp,
                nelem,
                msi_due,
                depth,
                pending,
                wake,
                _pc,
                head,
                tail,
                budget,
                delay,
            ) = ch.irq
            ch.irq = _irq(
                IrqState,
                (
                    rsp_hp,
                    rsp_tp,
                    nelem,
                    msi_due,
                    depth,
                    pending,
                    wake,
                    _WRITE_HEAD,
                    head,
                    tail,
                    budget,
                    delay,
                ),
            )
        elif pc == _WRITE_HEAD:
            self.device.writel(ch.id, _RSP_HP, head)
            ch.irq = _irq(
                IrqState,
                (
                    head,
                    rsp_tp,
                    nelem,
                    msi_due,
                    depth,
                    pending,
                    wake,
                    _READ_TAIL,
                    head,
                    tail,
                    budget,
                    delay,
                ),
            )
        elif pc == _UNMASK:
            new = depth
            if self._mask_on_irq:
                new = depth - 1
                self._mask_sync(ch, depth, new)
            ch.irq = _irq(
                IrqState,
                (
                    rsp_hp,
                    rsp_tp,
                    nelem,
                    msi_due,
                    new,
                    pending,
                    wake,
                    _RECHECK if self.recheck else _IDLE,
                    head,
                    tail,
                    budget,
                    delay,
                ),
            )
            if self.datapath_polling:
                ch.poll = True
        elif pc == _RECHECK:
            tp = int(self.device.readl(ch.id, _RSP_TP))
            if tp == _U32_TOP:
                ch.irq = _irq(
                    IrqState,
                    (
                        rsp_hp,
                        rsp_tp,
                        nelem,
                        msi_due,
                        depth,
                        pending,
                        wake,
                        _IDLE,
                        head,
                        tail,
                        budget,
                        delay,
                    ),
                )
                return
            if tp != head:
                new = depth
                if self._mask_on_irq:
                    new = depth + 1
                    self._mask_sync(ch, depth, new)
                ch.irq = _irq(
                    IrqState,
                    (
                        rsp_hp,
                        tp,
                        nelem,
                        msi_due,
                        new,
                        pending,
                        wake,
                        _READ_TAIL,
                        head,
                        tp,
                        budget,
                        delay,
                    ),
                )
            else:
                ch.irq = _irq(
                    IrqState,
                    (
                        rsp_hp,
                        tp,
                        nelem,
                        msi_due,
                        depth,
                        pending,
                        wake,
                        _IDLE,
                        head,
                        tp,
                        budget,
                        delay,
                    ),
                )
        else:  # pragma: no cover
            raise AssertionError(f"IRQ thread of dbc {ch.id} rests at {pc}")

    # -- drain -------------------------------------------------------------
    def _drain(self, ch: HostChannel) -> None:
        """Consume ``arith.drain_count`` responses as one array slice (consume_one*)."""
        (rsp_hp, rsp_tp, nelem, msi_due, depth, pending, wake, pc, head, tail, budget, delay) = (
            ch.irq
        )
        k = int(arith.drain_count(head, tail, budget, nelem, U32))
        if k:
            words = ch.cache[1] if ch.cache is not None else self._rings(ch)[1]
            index = self._by_rid[ch.id]
            if k == 1:
                self._credit(ch, index, words[head * _RSP_WORDS], 1)
            else:
                first, rest = arith.wrap_split(head, k, nelem, U32)
                batch = words[head * _RSP_WORDS : (head + first) * _RSP_WORDS : _RSP_WORDS].tolist()
                if rest:
                    batch += words[: rest * _RSP_WORDS : _RSP_WORDS].tolist()
                for rid, cnt in Counter(batch).items():
                    self._credit(ch, index, rid, cnt)
            head = int(arith.ring_advance(head, k, nelem, U32))
        ch.irq = _irq(
            IrqState,
            (
                rsp_hp,
                rsp_tp,
                nelem,
                msi_due,
                depth,
                pending,
                wake,
                pc,
                head,
                tail,
                budget - k,
                delay,
            ),
        )

    def _credit(self, ch: HostChannel, index: dict[int, list[Bo]], rid: int, cnt: int) -> None:
        """``cnt`` responses with req_id ``rid``: credit queued BOs with that id in queue
        order (the driver's xfer_list walk, one response at a time)."""
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
