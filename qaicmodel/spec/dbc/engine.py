"""The request engine of the DMA Bridge: consuming a request and advancing it a stage.

A consumed request element becomes an :class:`~qaicmodel.spec.dbc.channel.InFlight`
record with a plan of stages (fence, presync, DMA, postsync, doorbell, response); each
stage's guard, emptiness test and effect is one row of :data:`STAGE_TABLE`.  This is a
mixin of :class:`qaicmodel.spec.dbc.device.Device` (rules R4-R10 of its docstring).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from qaicmodel import arith
from qaicmodel.spec.dbc.channel import (
    _ERROR_PLAN,
    CC_BAD_DOORBELL,
    CC_DMA_FAULT,
    CC_ILLEGAL_DIR,
    CC_LINKED_LIST,
    CC_MULTI_PRESYNC,
    CC_RESERVED_BITS,
    CC_SEM_RESERVED,
    CC_SUCCESS,
    Channel,
    DeviceStats,
    InFlight,
    Stage,
    _Ctx,
)
from qaicmodel.spec.dbc.memory import DevMemory, DmaFault, HostMemory
from qaicmodel.spec.dbc.wire import (
    REQ_SIZE,
    RSP_SIZE,
    DbLen,
    Dir,
    RequestElem,
    ResponseElem,
    SemCmd,
    SemOp,
)
from qaicmodel.spec.policies import (
    DMA_ZERO_LENGTH,
    DbcChoice,
    DmaZeroLength,
    DoorbellMisaligned,
    DoorbellReservedLen,
    FenceWithoutEnable,
    ForceMsi,
    IllegalDirection,
    OnDmaFault,
    Policies,
    PresyncMultiple,
    PresyncNonWait,
    ProcessingOrder,
    ResponseOrder,
    ResponseRingFull,
    SemReservedCmd,
)

__all__ = ["Engine", "StageRule", "STAGE_TABLE"]


class Engine:
    """The stage guards and effects of :class:`~qaicmodel.spec.dbc.device.Device`."""

    if TYPE_CHECKING:
        policies: Policies
        host_mem: HostMemory
        dev_mem: DevMemory
        stats: DeviceStats
        _p: DbcChoice
        _plan: Any
        _rule_permitted: bool
        _reserved_error: bool
        _errors_respond: bool
        _fault_skips: bool

        def _emit(self, *event: Any) -> None: ...
        def _violation(
            self,
            rule: str,
            message: str,
            dbc: int | None = None,
            source: str = "aic100.rst DMA Bridge",
        ) -> None: ...
        def _capacity(self, ch: Channel) -> int: ...
        def _cc(self, code: int) -> int: ...
        def _active(self, cmd: SemCmd) -> bool: ...
        def _sem_apply(
            self, ch: Channel, op: SemOp, index: int, value: int, dry: bool = False
        ) -> bool: ...

    # -- consuming a request ----------------------------------------------------
    def _classify(self, ch: Channel, seq: int, slot: int, elem: RequestElem) -> InFlight:
        """Decide, at consume time, what this request will do (R6-R10)."""
        p = self._p
        rec = InFlight(seq=seq, slot=slot, elem=elem, plan=self._plan)
        rec.wants_response = elem.completion
        d = elem.dir
        error = CC_SUCCESS
        if d is Dir.ILLEGAL:  # policy illegal-direction
            rule = p.illegal_direction
            if rule is IllegalDirection.AS_NONE:
                d = Dir.NONE
            else:
                error = CC_ILLEGAL_DIR
                if rule is IllegalDirection.ERROR_ALWAYS:
                    rec.wants_response = True
        if not error and self._reserved_error and elem.reserved_set():
            error = CC_RESERVED_BITS  # policy reserved-bits-device
        if not error and d in (Dir.TO_DEV, Dir.FROM_DEV) and not elem.bulk:
            error = CC_LINKED_LIST  # linked-list: a modelling limit, one reading
        cmds = [s for s in elem.sems if self._active(s)]
        reserved = [s for s in cmds if s.op is SemOp.RESERVED]
        if reserved:
            if not error and p.sem_reserved_cmd is SemReservedCmd.ERROR:
                error = CC_SEM_RESERVED
            cmds = [s for s in cmds if s.op is not SemOp.RESERVED]
        pre = [s for s in cmds if s.presync]
        post = [s for s in cmds if not s.presync]
        if len(pre) > 1:
            multi = p.presync_multiple
            if multi is PresyncMultiple.ERROR and not error:
                error = CC_MULTI_PRESYNC
            elif multi is PresyncMultiple.FIRST_ONLY:
                pre = pre[:1]
        if p.presync_non_wait is PresyncNonWait.IGNORE:
            pre = [s for s in pre if s.op in (SemOp.WAIT_EQ, SemOp.WAIT_GE, SemOp.P)]
        if error:
            rec.code = error
            rec.plan = _ERROR_PLAN
            if error != CC_ILLEGAL_DIR:  # that one has its own policy, illegal-direction
                self._on_error(rec)
            return rec
        rec.dir = d
        rec.xfer = d in (Dir.TO_DEV, Dir.FROM_DEV)
        gate_all = p.fence_without_enable is FenceWithoutEnable.HONOURED
        words = [s for s in elem.sems if gate_all or self._active(s)]
        rec.fence_todev = any(s.todev_fence for s in words)
        rec.fence_fromdev = any(s.fromdev_fence for s in words)
        rec.pre, rec.post = pre, post
        rec.sem_indices = frozenset(s.index for s in pre + post)
        return rec

    def _consume(self, ch: Channel) -> None:
        slot = ch.req_hp
        seq = ch.next_seq
        ch.next_seq += 1
        ch.req_hp = arith.ring_advance(ch.req_hp, 1, ch.nelem)
        ch.req_count -= 1
        ch.consumed += 1
        self.stats.consumed += 1
        try:
            raw = self.host_mem.read(ch.req_q + slot * REQ_SIZE, REQ_SIZE)
        except DmaFault:
            # the host unmapped its own FIFO: nothing can be read, nothing is done
            self.stats.ring_faults += 1
            self._emit("ring_fault", ch.dbc, slot)
            return
        elem = RequestElem.unpack(raw)
        for v in elem.violations():
            self._violation(
                v.rule,
                f"request element {slot} of dbc {ch.dbc}: {v.field}: {v.message}",
                ch.dbc,
                v.source,
            )
        rec = self._classify(ch, seq, slot, elem)
        ch.inflight[seq] = rec
        if rec.xfer:
            self.stats.bytes_requested += elem.pcie_dma_len
        self._emit("consume", ch.dbc, seq, slot, elem)
        self._skip_trivial(ch, rec)

    # -- stage guards and effects ------------------------------------------------
    def _fence_ok(self, rec: InFlight, ctx: _Ctx) -> bool:
        """R7: every fenced direction has no blocking transfer (policy fence-scope)."""
        for d, on in ((Dir.TO_DEV, rec.fence_todev), (Dir.FROM_DEV, rec.fence_fromdev)):
            if on and (ctx.started_undone[d] if ctx.started_undone is not None else ctx.undone[d]):
                return False
        return True

    def _sem_step_ok(self, ch: Channel, rec: InFlight, cmd: SemCmd, ctx: _Ctx) -> bool:
        if self._rule_permitted and cmd.index in ctx.sem_busy:
            return False  # R5: an earlier request still owes a step on this semaphore
        return self._sem_apply(ch, cmd.op, cmd.index, cmd.value, dry=True)

    def _response_ok(self, ch: Channel, rec: InFlight, ctx: _Ctx) -> bool:
        if self._p.response_order is ResponseOrder.REQUEST_ORDER and ctx.resp_owed:
            return False
        if ch.rsp_count >= self._capacity(ch):
            return self._p.response_ring_full is ResponseRingFull.DROP
        return True

    def _can_advance(self, ch: Channel, rec: InFlight, ctx: _Ctx) -> bool:
        """R4/R5: the guard of the request's current stage (``STAGE_TABLE``)."""
        return STAGE_TABLE[rec.stage].guard(self, ch, rec, ctx)

    def _trivial(self, rec: InFlight) -> bool:
        """Stages with nothing to do are passed without an action of their own."""
        return STAGE_TABLE[rec.stage].empty(rec)

    def _skip_trivial(self, ch: Channel, rec: InFlight) -> None:
        """Pass empty stages; under processing-order=fifo only the oldest request moves (R5)."""
        fifo = self._p.processing_order is ProcessingOrder.FIFO
        while True:
            if fifo and next(iter(ch.inflight)) != rec.seq:
                return
            while rec.stage is not Stage.DONE and self._trivial(rec):
                rec.pos += 1
            if rec.stage is not Stage.DONE:
                return
            self._finish(ch, rec)
            if not (fifo and ch.inflight):
                return
            rec = next(iter(ch.inflight.values()))  # the next request may now move

    def _do_stage(self, ch: Channel, rec: InFlight) -> None:
        """Run the current stage's effect; move on when it says the stage is finished."""
        if STAGE_TABLE[rec.stage].effect(self, ch, rec):
            rec.pos += 1
        self._skip_trivial(ch, rec)

    def _sem_effect(self, ch: Channel, rec: InFlight) -> bool:
        """One semaphore command of a PRESYNC/POSTSYNC step; finished when none is left."""
        todo = rec.pre if rec.stage is Stage.PRESYNC else rec.post
        cmd = todo.pop(0)
        applied = self._sem_apply(ch, cmd.op, cmd.index, cmd.value)
        assert applied, "guard checked the semaphore command"
        return not todo

    def _on_error(self, rec: InFlight) -> None:
        """A request failed: policy error-without-completion (an error response whatever
        bit 4 says, under ``respond``)."""
        if self._errors_respond:
            rec.wants_response = True

    def _host_prefix(self, addr: int, length: int) -> int:
        """Bytes from ``addr`` that lie in one mapped host region (for dma-fault=partial)."""
        for start, size in self.host_mem.regions():
            if start <= addr < start + size:
                return min(length, start + size - addr)
        return 0

    def _dma(self, ch: Channel, rec: InFlight) -> None:
        """R8: move pcie_dma_len bytes between host memory and device DDR."""
        e = rec.elem
        length = e.pcie_dma_len
        if not length and self.policies[DMA_ZERO_LENGTH] is DmaZeroLength.FOUR_GIB:
            length = 1 << 32  # policy dma-zero-length
        src, dst = e.pcie_dma_source_addr, e.pcie_dma_dest_addr
        to_dev = rec.dir is Dir.TO_DEV
        host_addr = src if to_dev else dst
        dev_addr = dst if to_dev else src
        host_ok = self._host_prefix(host_addr, length)
        dev_ok = max(0, min(length, DevMemory.LIMIT - dev_addr))
        n = min(host_ok, dev_ok)
        if n < length:
            rec.code = rec.code or CC_DMA_FAULT
            self.stats.dma_faults += 1
            if self._p.dma_fault is OnDmaFault.ERROR:
                n = 0
            self._on_error(rec)
            if self._fault_skips:  # policy after-dma-fault: straight to the response
                rec.post = []
                rec.plan = rec.plan[: rec.pos + 1] + _ERROR_PLAN
        if n:
            if to_dev:
                self.dev_mem.write(dst, self.host_mem.view(src, n).tobytes())
            else:
                self.host_mem.write(dst, self.dev_mem.read(src, n))
        rec.moved = n
        rec.dma_done = True
        self.stats.bytes_moved += n
        self._emit("dma", ch.dbc, rec.seq, rec.dir, src, dst, length, n)

    def _doorbell(self, ch: Channel, rec: InFlight) -> None:
        """R9: write doorbell_data (truncated to its width) at doorbell_addr in device memory."""
        e = rec.elem
        p = self._p
        dl = e.db_len
        if dl is DbLen.RESERVED:
            if p.doorbell_reserved_len is DoorbellReservedLen.SKIP_ERROR:
                rec.code = rec.code or CC_BAD_DOORBELL
                self._on_error(rec)
                return
            dl = DbLen.W32
        width = dl.nbytes
        addr = e.doorbell_addr
        if addr % width:
            mis = p.doorbell_misaligned
            if mis is DoorbellMisaligned.SKIP_ERROR:
                rec.code = rec.code or CC_BAD_DOORBELL
                self._on_error(rec)
                return
            if mis is DoorbellMisaligned.ALIGN_DOWN:
                addr -= addr % width
        try:
            self.dev_mem.write_u(addr, width, e.doorbell_data)
        except DmaFault:
            rec.code = rec.code or CC_BAD_DOORBELL
            self._on_error(rec)
            return
        self.stats.doorbells += 1
        self._emit(
            "doorbell", ch.dbc, rec.seq, addr, width, e.doorbell_data & ((1 << 8 * width) - 1)
        )

    def _respond(self, ch: Channel, rec: InFlight) -> None:
        """R10/R11: write {req_id, completion_code} at RSP_TP; MSI on empty -> non-empty."""
        ch.wanted_responses += 1
        code = self._cc(rec.code)
        if ch.rsp_count >= self._capacity(ch):  # guard allowed it: policy response-ring-full=drop
            self.stats.responses_dropped += 1
            self._emit("response_dropped", ch.dbc, rec.seq, rec.elem.req_id, code)
            return
        slot = ch.rsp_tp
        rsp = ResponseElem(rec.elem.req_id, code)
        self.host_mem.write(ch.rsp_q + slot * RSP_SIZE, rsp.pack())
        was_empty = ch.rsp_count == 0
        ch.rsp_tp = arith.ring_advance(ch.rsp_tp, 1, ch.nelem)
        ch.rsp_count += 1
        ch.responses += 1
        self.stats.responses += 1
        if code:
            self.stats.errors += 1
        if was_empty:
            ch.empty_transitions += 1
            self.stats.empty_transitions += 1
            ch.msi_due = True
        self._emit("response", ch.dbc, rec.seq, slot, rsp)

    def _finish(self, ch: Channel, rec: InFlight) -> None:
        del ch.inflight[rec.seq]
        self.stats.completed += 1
        if rec.elem.force_msi and self._p.force_msi is ForceMsi.HONOURED:
            ch.msi_due = True
            ch.msi_forced += 1
            self.stats.msi_forced += 1
        self._emit("done", ch.dbc, rec.seq, rec.elem.req_id, self._cc(rec.code))


# -- the stage table (R4) ---------------------------------------------------------
# In this stage: may the request advance now (guard), is there nothing to do so the
# stage is passed without an action (empty), and what advancing does (effect; it
# returns True when the stage is finished).  Sources per row: aic100.rst "Request
# FIFO" ("Overall, a request is processed in 4 steps") and userspace.md §7 (fence
# first).


@attrs.frozen
class StageRule:
    guard: Callable[[Engine, Channel, InFlight, _Ctx], bool]
    empty: Callable[[InFlight], bool]
    effect: Callable[[Engine, Channel, InFlight], bool]


def _always(dev: Engine, ch: Channel, rec: InFlight, ctx: _Ctx) -> bool:
    return True


def _never(dev: Engine, ch: Channel, rec: InFlight, ctx: _Ctx) -> bool:
    return False


def _then_done(
    step: Callable[[Engine, Channel, InFlight], None],
) -> Callable[[Engine, Channel, InFlight], bool]:
    def effect(dev: Engine, ch: Channel, rec: InFlight) -> bool:
        step(dev, ch, rec)
        return True

    return effect


STAGE_TABLE: dict[Stage, StageRule] = {
    # R7 fences: wait for the transfers the fence names (fence-scope, fence-without-enable)
    Stage.FENCE: StageRule(
        guard=lambda dev, ch, rec, ctx: dev._fence_ok(rec, ctx),
        empty=lambda rec: not (rec.fence_todev or rec.fence_fromdev),
        effect=_then_done(lambda dev, ch, rec: None),
    ),
    # step 1: "If specified, the presync semaphore condition must be true"
    Stage.PRESYNC: StageRule(
        guard=lambda dev, ch, rec, ctx: dev._sem_step_ok(ch, rec, rec.pre[0], ctx),
        empty=lambda rec: not rec.pre,
        effect=lambda dev, ch, rec: dev._sem_effect(ch, rec),
    ),
    # step 2: "If enabled, the DMA transfer occurs"
    Stage.DMA: StageRule(
        guard=_always,
        empty=lambda rec: not rec.xfer,
        effect=_then_done(lambda dev, ch, rec: dev._dma(ch, rec)),
    ),
    # step 3: "If specified, the postsync semaphore conditions must be true"
    Stage.POSTSYNC: StageRule(
        guard=lambda dev, ch, rec, ctx: dev._sem_step_ok(ch, rec, rec.post[0], ctx),
        empty=lambda rec: not rec.post,
        effect=lambda dev, ch, rec: dev._sem_effect(ch, rec),
    ),
    # step 4: "If enabled, the doorbell is written"
    Stage.DOORBELL: StageRule(
        guard=_always,
        empty=lambda rec: not rec.elem.db_write,
        effect=_then_done(lambda dev, ch, rec: dev._doorbell(ch, rec)),
    ),
    # "Response FIFO": a response only when the completion bit asks for one
    Stage.RESPONSE: StageRule(
        guard=lambda dev, ch, rec, ctx: dev._response_ok(ch, rec, ctx),
        empty=lambda rec: not rec.wants_response,
        effect=_then_done(lambda dev, ch, rec: dev._respond(ch, rec)),
    ),
    Stage.DONE: StageRule(guard=_never, empty=lambda rec: False, effect=lambda dev, ch, rec: False),
}
