"""The host's interrupt side as an actor: hard IRQ, IRQ thread, polling, completion.

Every control decision is taken by the transition functions of
:mod:`qaicmodel.spec.host.irqproto` (``self.proto``); this mixin of
:class:`qaicmodel.spec.host.core.HostCore` applies them to a channel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qaicmodel.arith import U32
from qaicmodel.errors import ArgumentError
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.host import irqproto
from qaicmodel.spec.host.irqproto import PC, IrqState
from qaicmodel.spec.host.protocol import HostAction
from qaicmodel.spec.host.records import Bo, ExecThread, HostChannel, WaitThread
from qaicmodel.spec.host.validate import U32_MAX

__all__ = ["IrqSide"]


class IrqSide:
    """``enabled()`` / ``step()`` of a host: the IRQ side of :class:`HostCore`."""

    if TYPE_CHECKING:
        device: Any
        ch: list[HostChannel]
        threads: dict[int, ExecThread]
        waiters: dict[int, WaitThread]
        completions: list[tuple[int, int]]
        online: bool
        single_msi: bool
        datapath_polling: bool
        proto: Any
        _mask_on_irq: bool
        recheck: bool

        def _readl(self, dbc: int, reg: int) -> int: ...
        def _writel(self, dbc: int, reg: int, val: int) -> None: ...
        def _drain(self, ch: HostChannel) -> None: ...
        def _xfer_remove(self, ch: HostChannel, bo: Bo) -> None: ...
        def _exec_runnable(self, th: ExecThread) -> bool: ...
        def _exec_step(self, th: ExecThread) -> None: ...
        def _wake(self, w: WaitThread) -> None: ...

    def enabled(self) -> list[HostAction]:
        """Host events possible now, in a fixed order: MSIs, IRQ threads, polls, ioctls."""
        out: list[HostAction] = []
        intc = self.device.intc
        for v in intc.deliverable_vectors():
            if v == 0 and not self.single_msi:
                continue  # vector 0 is MHI's
            out.append(HostAction("irq", v))
        for ch in self.ch:
            s = ch.irq
            if s.pc or s.wake:
                out.append(HostAction("thread", ch.id))
        if self.datapath_polling:
            dev = self.device
            for ch in self.ch:
                if ch.poll and (
                    not ch.xfer
                    or ch.usr is None
                    or not self.online
                    or dev.ch[ch.id].rsp_hp != dev.ch[ch.id].rsp_tp
                ):
                    out.append(HostAction("poll", ch.id))
        for tid, th in self.threads.items():
            if self._exec_runnable(th):
                out.append(HostAction("exec", tid))
        for tid, w in self.waiters.items():
            if not w.finished and w.bo is not None and w.bo.done:
                out.append(HostAction("wake", tid))  # complete_all woke the sleeper
        return out

    def step(self, action: HostAction) -> None:
        if not self.is_enabled(action):
            raise ArgumentError(f"host action {action!r} is not enabled")
        kind = action.kind
        if kind == "thread":
            self._thread(self.ch[action.arg])
        elif kind == "irq":
            self._hard_irq(action.arg)
        elif kind == "poll":
            self._poll(self.ch[action.arg])
        elif kind == "wake":
            self._wake(self.waiters[action.arg])
        else:
            self._exec_step(self.threads[action.arg])

    def is_enabled(self, action: Any) -> bool:
        """Whether ``action`` is among :meth:`enabled` (without building the list)."""
        if not isinstance(action, HostAction) or not isinstance(action.arg, int):
            return False
        kind, arg = action.kind, action.arg
        if kind == "thread":
            if not 0 <= arg < len(self.ch):
                return False
            s = self.ch[arg].irq
            return bool(s.pc or s.wake)
        if kind == "exec":
            th = self.threads.get(arg)
            return th is not None and self._exec_runnable(th)
        return action in self.enabled()

    def quiescent(self) -> bool:
        return not self.enabled()

    def _apply(self, ch: HostChannel, name: str) -> IrqState:
        """Apply irqproto transition ``name`` to the channel: do its register reads, check
        its guard, take its update, do its register writes and mask changes."""
        guard, update = self.proto[name]
        s = ch.irq
        for reg in irqproto.READS.get(name, ()):
            s = s.with_(
                **{reg: self._readl(ch.id, regs.RSP_HP if reg == "rsp_hp" else regs.RSP_TP)}
            )
        if not guard(s, U32):
            raise AssertionError(f"irqproto {name} not enabled in {s}")  # host bug
        new = update(s, U32)
        if "rsp_hp" in irqproto.WRITES.get(name, ()):
            self._writel(ch.id, regs.RSP_HP, self._head_to_write(ch, new.rsp_hp))
        self._sync_mask(ch, s.depth, new.depth)
        ch.irq = new
        return new

    def _head_to_write(self, ch: HostChannel, head: int) -> int:
        return head

    def _sync_mask(self, ch: HostChannel, old: int, new: int) -> None:
        """disable_irq_nosync / enable_irq: the line is masked while the depth is > 0."""
        if self._mask_on_irq and (old == 0) != (new == 0):
            v = self.device.vector(ch.id)
            if new:
                self.device.intc.mask(v)
            else:
                self.device.intc.unmask(v)

    def _take(self, ch: HostChannel, name: str, s: IrqState) -> IrqState:
        """Transition ``name`` from ``s`` (the registers already read into it): check its
        guard, return its update (the caller does the mask changes)."""
        guard, update = self.proto[name]
        if not guard(s, U32):
            raise AssertionError(f"irqproto {name} not enabled on dbc {ch.id} in {s}")  # host bug
        return update(s, U32)

    def _decide(self, ch: HostChannel, names: tuple[str, ...]) -> str:
        """The one transition among ``names`` whose guard holds (no register reads)."""
        hits = [n for n in names if n in self.proto and self.proto[n][0](ch.irq, U32)]
        if len(hits) != 1:
            raise AssertionError(f"irqproto: {hits} enabled among {names}")  # host bug
        return hits[0]

    def _hard_irq(self, v: int) -> None:
        """dbc_irq_handler for every DBC on vector ``v`` (all of them in single-MSI mode)."""
        self.device.intc.ack(v)
        for ch in self.ch:
            if self.device.vector(ch.id) != v:
                continue
            if self.datapath_polling or ch.usr is None:
                continue  # IRQ_HANDLED at once
            hp = self._readl(ch.id, regs.RSP_HP)
            if hp == U32_MAX:
                continue  # IRQ_NONE
            tp = self._readl(ch.id, regs.RSP_TP)
            if tp == U32_MAX:
                continue
            s = ch.irq.with_(rsp_hp=hp, rsp_tp=tp, pending=True)
            new = self._take(ch, "hard_irq", s)
            self._sync_mask(ch, s.depth, new.depth)
            ch.irq = new

    def _error_out(self, ch: HostChannel, force: bool = False) -> None:
        """dbc_irq_threaded_fn ``error_out``: enable_irq (or re-arm polling) and return.

        ``force``: release_dbc waits (synchronize_srcu) for a running thread, so a
        release ends every run the thread still owes at once.
        """
        d = ch.irq.depth
        nd = d
        if self._mask_on_irq:
            nd = 0 if force else max(d - 1, 0)
        self._sync_mask(ch, d, nd)
        ch.irq = ch.irq.with_(depth=nd, pc=int(PC.IDLE), wake=False if force else ch.irq.wake)
        if self.datapath_polling:
            ch.poll = True

    def _thread(self, ch: HostChannel) -> None:
        """One run of the IRQ thread up to its next interleaving point (a register access
        whose timing against the device matters)."""
        pc = ch.irq.pc
        if pc == PC.IDLE:
            hp = self._readl(ch.id, regs.RSP_HP)
            if hp == U32_MAX:
                self._error_out(ch)
                return
            ch.irq = self._take(ch, "thread_start", ch.irq.with_(rsp_hp=hp))
            pc = PC.READ_TAIL
        if pc == PC.READ_TAIL:
            if ch.usr is None:
                self._error_out(ch)
                return
            tp = self._readl(ch.id, regs.RSP_TP)
            if tp == U32_MAX:
                self._error_out(ch)
                return
            ch.irq = self._take(ch, "read_tail", ch.irq.with_(rsp_tp=tp))
            name = self._decide(ch, ("poll_empty", "give_up", "start_drain"))
            self._apply(ch, name)
        elif pc == PC.DRAIN:
            self._drain(ch)
            self._apply(ch, "end_drain")
        elif pc == PC.WRITE_HEAD:
            self._apply(ch, "write_head")
        elif pc == PC.UNMASK:
            self._apply(ch, "unmask")
            if self.datapath_polling:
                ch.poll = True  # schedule_work(&dbc->poll_work)
        elif pc == PC.RECHECK:
            tp = self._readl(ch.id, regs.RSP_TP)
            if tp == U32_MAX:
                ch.irq = ch.irq.with_(pc=int(PC.IDLE))
                return
            s = ch.irq.with_(rsp_tp=tp)
            new = self._take(ch, "recheck", s)
            self._sync_mask(ch, s.depth, new.depth)
            ch.irq = new
        else:  # pragma: no cover - CHECK is never a resting point
            raise AssertionError(f"IRQ thread of dbc {ch.id} rests at {pc}")

    def _poll(self, ch: HostChannel) -> None:
        """qaic_irq_polling_work, one look: stop when nothing is queued or the channel
        is gone; wake the IRQ thread when a response is there."""
        if not self.online or ch.usr is None or not ch.xfer:
            ch.poll = False
            return
        hp = self._readl(ch.id, regs.RSP_HP)
        tp = self._readl(ch.id, regs.RSP_TP)
        if hp == U32_MAX or tp == U32_MAX:
            ch.poll = False
            return
        if hp != tp:
            ch.irq = ch.irq.with_(wake=True)  # irq_wake_thread
            ch.poll = False

    def _complete(self, ch: HostChannel, bo: Bo) -> None:
        """All of a BO's slices answered: off the xfer list, completion fires."""
        self._xfer_remove(ch, bo)
        bo.nr_slice_xfer_done = 0
        bo.done = True
        bo.completions += 1
        self.completions.append(bo.key)
