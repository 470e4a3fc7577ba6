"""The DMA Bridge device model: 16 channels, their FIFOs, semaphores, DMA, doorbells, MSIs.

Sources: aic100.rst (seed 003) "DMA Bridge", "Request FIFO", "Response FIFO";
control-path.md §2 (FIFO layout, register block), §4.2 (MSI vectors);
userspace.md §7 (processing order), §8 (semaphore protocol).

Rules (each names its source; open points read ``self.policies``):
  R1  Registers are FIFO indexes; REQ_HP and RSP_TP are device-owned, REQ_TP and
      RSP_HP host-owned ("DMA Bridge").  A host write to a device-owned register
      is violation HOST-WRITE-DEVICE-REG and has no effect.
  R2  The request FIFO is at ``req_q``, element i at ``req_q + 64 i``; the
      response FIFO at ``rsp_q``, element i at ``rsp_q + 4 i`` ("DMA Bridge":
      "FIFO base address + register * element size").
  R3  Ring capacity: ``ring-full-rule`` (n-1 with one slot kept free, or n).
      A REQ_TP write adding more than the free space is HOST-REQ-OVERRUN; an
      RSP_HP write freeing more than the device wrote is HOST-RSP-OVERREAD; a
      value >= nelem is HOST-REG-OUT-OF-RANGE (``tail-out-of-range``).
  R4  A request is processed in steps ("Request FIFO": "Overall, a request is
      processed in 4 steps"; userspace.md §7 adds the fence first):
      FENCE -> PRESYNC -> DMA -> POSTSYNC -> DOORBELL -> RESPONSE -> DONE
      (``fence-scope`` may move FENCE after PRESYNC).  Each step is one
      :class:`Advance` action, so a scheduler interleaves them.
  R5  Which requests may advance: ``processing-order`` -- "fifo" lets only
      the oldest in-flight request move; "rule-permitted" lets any move, except
      that semaphore steps on one semaphore index happen in FIFO order (a
      request may run a semaphore command on index i only when every earlier
      request using i has finished its semaphore steps) -- userspace.md §7 and
      the fence comment of qaic_data.c ``encode_reqs``.
  R6  Semaphores: 32 per channel, 12-bit values; commands 0 NOP, 1 init,
      2 inc, 3 dec, 4 wait-equal, 5 wait-greater-or-equal, 6 "P", 7 reserved
      ("Request FIFO", sem_cmd).  Open points: ``sem-inc-amount``,
      ``sem-overflow``, ``sem-underflow``, ``sem-p-decrements``,
      ``sem-enable-bit``, ``sem-reserved-cmd``, ``presync-non-wait``,
      ``presync-multiple``.
  R7  Fences: bit 30 waits for to-device transfers, bit 29 for from-device
      transfers ("Request FIFO", sem_cmd); ``fence-scope``,
      ``fence-without-enable``.  "earlier-*" waits for transfers of requests
      consumed before this one; "all-outstanding" waits while any request of the
      channel has passed its own fence step and not finished its transfer (a
      request still held at its fence is not outstanding, so two fenced
      requests cannot wait for each other).
  R8  Transfers: direction 0 none, 1 to device (host -> DDR), 2 from device
      (DDR -> host), 3 illegal ("Request FIFO", pcie_dma_cmd);
      ``illegal-direction``, ``linked-list``, ``dma-fault``.
  R9  Doorbell: written after the postsync step when attr bit 7 is set; width
      32/16/8 by bits 1:0, naturally aligned, only the low bits of the data are
      valid ("Request FIFO", doorbell_attr / doorbell_data);
      ``doorbell-reserved-len``, ``doorbell-misaligned``, ``doorbell-data-width``.
  R10 A response {req_id, completion_code} is written only when bit 4 is set
      ("Response FIFO"); ``response-order``, ``response-ring-full``,
      ``completion-code-values``.
  R11 MSI: a channel's MSI is due when its response FIFO goes from empty to
      non-empty, or when a completed request has the force-MSI bit ("Response
      FIFO"; ``msi-empty-transition``, ``force-msi``).  A separate
      :class:`RaiseMsi` action raises it on vector dbc+1 (vector 0 in single-MSI
      mode; control-path.md §4.2).
  R12 No threads, no clocks: :meth:`Device.enabled` lists what can happen now,
      :meth:`Device.step` does one of them.

Host violations are recorded in ``Device.violations`` (raised as
LocalProtocolError with ``strict=True``) under stable rule ids:
HOST-WRITE-DEVICE-REG, HOST-REQ-OVERRUN, HOST-RSP-OVERREAD,
HOST-REG-OUT-OF-RANGE (an index >= nelem), HOST-INACTIVE-DBC,
HOST-BAR-UNMAPPED (a BAR2 offset that is no DBC register), the element rules
of :meth:`wire.RequestElem.violations` (REQ-DIR-ILLEGAL, REQ-DB-LEN-RESERVED,
REQ-DB-MISALIGNED, REQ-MULTI-PRESYNC, SEM-CMD-RESERVED, RESERVED-BITS-SET),
checked when the device consumes the element.  ``Device.observers`` receive every event
(consume, sem, dma, doorbell, response, done, msi, writel, violation, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qaicmodel import arith
from qaicmodel.errors import ArgumentError, LocalProtocolError
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.channel import (
    _PLANS,
    CC_BAD_DOORBELL,
    CC_DMA_FAULT,
    CC_ILLEGAL_DIR,
    CC_LINKED_LIST,
    CC_MULTI_PRESYNC,
    CC_NAMES,
    CC_SEM_RESERVED,
    CC_SUCCESS,
    NUM_SEMS,
    SEM_MAX,
    Action,
    Advance,
    Channel,
    Consume,
    DeviceStats,
    HostViolation,
    InFlight,
    RaiseMsi,
    Stage,
    _Ctx,
)
from qaicmodel.spec.dbc.engine import Engine
from qaicmodel.spec.dbc.intc import Intc
from qaicmodel.spec.dbc.memory import DevMemory, HostMemory
from qaicmodel.spec.dbc.wire import (
    REQ_SIZE,
    RSP_SIZE,
    Dir,
    SemCmd,
    SemOp,
)
from qaicmodel.spec.policies import (
    AFTER_DMA_FAULT,
    BAR2_UNMAPPED_READ,
    ERROR_WITHOUT_COMPLETION,
    REQ_TP_OVERRUN,
    RESERVED_BITS_DEVICE,
    RSP_HP_OVERREAD,
    SEM_AT_ACTIVATE,
    AfterDmaFault,
    Bar2UnmappedRead,
    CompletionCodeValues,
    DbcChoice,
    ErrorWithoutCompletion,
    FenceScope,
    HeadIndexMeaning,
    InactiveDbcRegs,
    Policies,
    ProcessingOrder,
    ReqTpOverrun,
    ReservedBitsDevice,
    RingFullRule,
    RspHpOverread,
    SemAtActivate,
    SemEnableBit,
    SemIncAmount,
    SemOverflow,
    SemPDecrements,
    SemUnderflow,
    TailOutOfRange,
)

__all__ = [
    "Device",
    "Channel",
    "InFlight",
    "Stage",
    "Consume",
    "Advance",
    "RaiseMsi",
    "Action",
    "HostViolation",
    "DeviceStats",
    "NUM_SEMS",
    "SEM_MAX",
    "CC_SUCCESS",
    "CC_ILLEGAL_DIR",
    "CC_LINKED_LIST",
    "CC_MULTI_PRESYNC",
    "CC_SEM_RESERVED",
    "CC_BAD_DOORBELL",
    "CC_DMA_FAULT",
    "CC_NAMES",
]

#: every policy this module (and Intc) reads


class Device(Engine):
    """One AIC100 DMA Bridge (docs/design.md "Device API")."""

    def __init__(
        self,
        num_dbc: int = regs.NUM_DBC,
        policies: Policies | None = None,
        single_msi: bool = False,
        host_mem: HostMemory | None = None,
        dev_mem: DevMemory | None = None,
        *,
        strict: bool = False,
    ) -> None:
        if (
            not isinstance(num_dbc, int)
            or isinstance(num_dbc, bool)
            or not 1 <= num_dbc <= regs.NUM_DBC
        ):
            raise ArgumentError(f"num_dbc must be 1..{regs.NUM_DBC}, got {num_dbc!r}")
        if policies is not None and not isinstance(policies, Policies):
            raise ArgumentError(f"policies must be a Policies, not {type(policies).__name__}")
        self.num_dbc = num_dbc
        self.policies = policies if policies is not None else Policies()
        self.single_msi = bool(single_msi)
        self.host_mem = host_mem if host_mem is not None else HostMemory()
        self.dev_mem = dev_mem if dev_mem is not None else DevMemory()
        self.strict = strict
        self.intc = Intc(1 if self.single_msi else num_dbc + 1, self.policies)
        self.ch = [Channel(i) for i in range(num_dbc)]
        self.violations: list[HostViolation] = []
        self.stats = DeviceStats()
        #: callables receiving every device event as a tuple (kind, dbc, ...)
        self.observers: list[Callable[[tuple[Any, ...]], None]] = []
        # the policy choice, resolved once into typed fields (hot path)
        p = self._p = DbcChoice.of(self.policies)
        self._plan = _PLANS[p.fence_scope]
        self._version = 0  # bumped by every state change; keys the enabled() cache
        self._cache: tuple[int, list[Action]] | None = None
        self._keep_one_free = p.ring_full_rule is RingFullRule.KEEP_ONE_FREE
        self._rule_permitted = p.processing_order is ProcessingOrder.RULE_PERMITTED
        # the silent choices (spec/policies/silent.py)
        pol = self.policies
        self._reserved_error = pol[RESERVED_BITS_DEVICE] is ReservedBitsDevice.ERROR
        self._errors_respond = pol[ERROR_WITHOUT_COMPLETION] is ErrorWithoutCompletion.RESPOND
        self._fault_skips = pol[AFTER_DMA_FAULT] is AfterDmaFault.SKIP
        self._sems_kept = pol[SEM_AT_ACTIVATE] is SemAtActivate.KEPT
        #: per channel: the semaphores at its last deactivation (sem-at-activate=kept)
        self._saved_sems: tuple[tuple[int, ...], ...] = ((0,) * NUM_SEMS,) * num_dbc

    # -- helpers --------------------------------------------------------------
    def _emit(self, *event: Any) -> None:
        for fn in self.observers:
            fn(event)

    def _violation(
        self, rule: str, message: str, dbc: int | None = None, source: str = "aic100.rst DMA Bridge"
    ) -> None:
        v = HostViolation(rule, message, dbc, source)
        self.violations.append(v)
        self._emit("violation", dbc, rule, message)
        if self.strict:
            raise LocalProtocolError(message, rule=rule)

    def _chan(self, dbc: Any) -> Channel:
        if not isinstance(dbc, int) or isinstance(dbc, bool) or not 0 <= dbc < self.num_dbc:
            raise ArgumentError(f"dbc {dbc!r} out of range 0..{self.num_dbc - 1}")
        return self.ch[dbc]

    def vector(self, dbc: int) -> int:
        """MSI vector of channel ``dbc``: dbc+1, or 0 in single-MSI mode (control-path.md §4.2)."""
        self._chan(dbc)
        return 0 if self.single_msi else dbc + 1

    def _capacity(self, ch: Channel) -> int:
        """Elements a ring holds (R3, policy ring-full-rule)."""
        return ch.nelem - 1 if self._keep_one_free else ch.nelem

    def req_slot_addr(self, dbc: int, idx: int) -> int:
        """Bus address of request element ``idx`` (R2)."""
        ch = self._chan(dbc)
        if not ch.active or not isinstance(idx, int) or not 0 <= idx < ch.nelem:
            raise ArgumentError(f"dbc {dbc} is not active or slot {idx!r} out of range")
        return ch.req_q + idx * REQ_SIZE

    def rsp_slot_addr(self, dbc: int, idx: int) -> int:
        """Bus address of response element ``idx`` (R2)."""
        ch = self._chan(dbc)
        if not ch.active or not isinstance(idx, int) or not 0 <= idx < ch.nelem:
            raise ArgumentError(f"dbc {dbc} is not active or slot {idx!r} out of range")
        return ch.rsp_q + idx * RSP_SIZE

    def _cc(self, code: int) -> int:
        """Completion code as written (policy completion-code-values)."""
        if code and self._p.completion_code_values is CompletionCodeValues.ONE:
            return 1
        return code

    # -- control plane ----------------------------------------------------------
    def activate(self, dbc: int, req_q: int, rsp_q: int, nelem: int) -> None:
        """QSM assigns channel ``dbc`` with FIFOs in donated host memory (control-path.md §2.1)."""
        ch = self._chan(dbc)
        if ch.active:
            raise ArgumentError(f"dbc {dbc} is already active")
        for name, v in (("req_q", req_q), ("rsp_q", rsp_q), ("nelem", nelem)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ArgumentError(f"activate: {name} must be a non-negative int, got {v!r}")
        if not arith.activate_queue_size_ok(nelem):
            raise ArgumentError(f"activate: nelem {nelem} is not a queue size the driver accepts")
        if not self.host_mem.mapped(req_q, nelem * REQ_SIZE):
            raise ArgumentError(
                f"activate: request FIFO 0x{req_q:x}+{nelem * REQ_SIZE} is not mapped host memory"
            )
        if not self.host_mem.mapped(rsp_q, nelem * RSP_SIZE):
            raise ArgumentError(
                f"activate: response FIFO 0x{rsp_q:x}+{nelem * RSP_SIZE} is not mapped host memory"
            )
        ch.reset()
        ch.active, ch.nelem, ch.req_q, ch.rsp_q = True, nelem, req_q, rsp_q
        if self._sems_kept:  # policy sem-at-activate
            ch.sems = list(self._saved_sems[dbc])
        self._version += 1
        self._emit("activate", dbc, req_q, rsp_q, nelem)

    def deactivate(self, dbc: int) -> None:
        """Release the channel: in-flight work is dropped, registers and semaphores read 0
        (sem-at-activate=kept saves the semaphores for the next activation)."""
        ch = self._chan(dbc)
        if self._sems_kept and ch.active:
            saved = list(self._saved_sems)
            saved[dbc] = tuple(ch.sems)
            self._saved_sems = tuple(saved)  # a new tuple: state copies share the old one
        ch.reset()
        self._version += 1
        self._emit("deactivate", dbc)

    def reset(self) -> None:
        """SoC reset (no FLR; aic100.rst "Hardware Description"): every channel is released,
        every pending MSI is gone.  Memories are left to their owners."""
        for ch in self.ch:
            ch.reset()
        self._saved_sems = ((0,) * NUM_SEMS,) * self.num_dbc
        self.intc.reset()
        self._version += 1
        self._emit("reset", None)

    # -- registers (R1, R3) -----------------------------------------------------
    @staticmethod
    def _reg(reg: Any) -> int:
        if not isinstance(reg, int) or isinstance(reg, bool) or reg not in regs.REG_NAMES:
            raise ArgumentError(f"register offset {reg!r} is not one of 0x0, 0x4, 0x8, 0xC")
        return reg

    def readl(self, dbc: int, reg: int) -> int:
        ch = self._chan(dbc)
        self._reg(reg)
        if not ch.active:
            # policy inactive-dbc-regs
            return 0xFFFFFFFF if self._p.inactive_dbc_regs is InactiveDbcRegs.ALL_ONES else 0
        if reg == regs.REQ_HP and self._p.head_index_meaning is HeadIndexMeaning.LAST_CONSUMED:
            # the slot consumed last: one behind the next slot to consume
            return arith.ring_advance(ch.req_hp, ch.nelem - 1, ch.nelem)
        return {
            regs.REQ_HP: ch.req_hp,
            regs.REQ_TP: ch.req_tp,
            regs.RSP_HP: ch.rsp_hp,
            regs.RSP_TP: ch.rsp_tp,
        }[reg]

    def writel(self, dbc: int, reg: int, val: int) -> None:
        ch = self._chan(dbc)
        self._reg(reg)
        if not isinstance(val, int) or isinstance(val, bool) or not 0 <= val <= 0xFFFFFFFF:
            raise ArgumentError(f"register value {val!r} is not a u32")
        name = regs.REG_NAMES[reg]
        self._version += 1
        self._emit("writel", dbc, reg, val)
        if reg in regs.DEVICE_OWNED:
            self._violation(
                "HOST-WRITE-DEVICE-REG",
                f"host wrote 0x{val:x} to device-owned {name} of dbc {dbc} "
                '("Read only by the host")',
                dbc,
            )
            return
        if not ch.active:
            self._violation(
                "HOST-INACTIVE-DBC", f"host wrote {name} of dbc {dbc}, which is not active", dbc
            )
            return
        if val >= ch.nelem:
            self._violation(
                "HOST-REG-OUT-OF-RANGE",
                f"{name} write {val} of dbc {dbc} is not an index below nelem {ch.nelem}",
                dbc,
            )
            if self._p.tail_out_of_range is TailOutOfRange.IGNORE:
                return
            val %= ch.nelem
        if reg == regs.REQ_TP:
            self._write_req_tp(ch, val)
        else:
            if self._p.head_index_meaning is HeadIndexMeaning.LAST_CONSUMED:
                # the host names the response it consumed last: the next slot is one on
                val = arith.ring_advance(val, 1, ch.nelem)
            self._write_rsp_hp(ch, val)

    def _write_req_tp(self, ch: Channel, val: int) -> None:
        """Host adds requests (aic100.rst "Host increments this register")."""
        n = ch.nelem
        added = arith.ring_occupancy(ch.req_tp, val, n)
        if self._keep_one_free:
            free = arith.fifo_space(ch.req_hp, ch.req_tp, n)
        else:
            free = n - ch.req_count
        if added > free:
            self._violation(
                "HOST-REQ-OVERRUN",
                f"REQ_TP {ch.req_tp} -> {val} adds {added} elements but only {free} "
                f"slots are free (REQ_HP {ch.req_hp}, nelem {n}); unconsumed "
                "requests are overwritten",
                ch.dbc,
                "qaic_data.c fifo_space_avail",
            )
            if self.policies[REQ_TP_OVERRUN] is ReqTpOverrun.IGNORED:
                return
        ch.req_tp = val
        if self._keep_one_free:
            ch.req_count = arith.ring_occupancy(ch.req_hp, val, n)
        else:
            # the device counts modulo n: a rewrite of the same value adds nothing
            total = ch.req_count + added
            ch.req_count = (total - 1) % n + 1 if total else 0

    def _write_rsp_hp(self, ch: Channel, val: int) -> None:
        """Host frees responses ("Indicates the latest item in the FIFO the host has consumed")."""
        n = ch.nelem
        freed = arith.ring_occupancy(ch.rsp_hp, val, n)
        if freed > ch.rsp_count:
            self._violation(
                "HOST-RSP-OVERREAD",
                f"RSP_HP {ch.rsp_hp} -> {val} frees {freed} responses but the device "
                f"wrote only {ch.rsp_count} (RSP_TP {ch.rsp_tp})",
                ch.dbc,
                "aic100.rst Response FIFO",
            )
            if self.policies[RSP_HP_OVERREAD] is RspHpOverread.IGNORED:
                return
        ch.rsp_hp = val
        if self._keep_one_free:
            ch.rsp_count = arith.ring_occupancy(val, ch.rsp_tp, n)
        else:
            # ring-full-rule=all-slots: the device counts; a write of the current value frees
            # nothing, so a host that read a full ring (n responses) cannot say so -- the
            # ambiguity the policy names.
            ch.rsp_count = (
                (ch.rsp_count - freed) % n if freed > ch.rsp_count else ch.rsp_count - freed
            )

    def bar_read(self, off: int) -> int:
        """A 32-bit read of BAR2 at ``off`` (control-path.md §2.2: base 0x20000, 4 KiB per DBC)."""
        where = regs.decode_offset(off, self.num_dbc)
        if where is None:
            self._violation(
                "HOST-BAR-UNMAPPED", f"host read BAR2 offset 0x{off:x}, not a DBC register", None
            )
            return 0 if self.policies[BAR2_UNMAPPED_READ] is Bar2UnmappedRead.ZERO else 0xFFFFFFFF
        return self.readl(*where)

    def bar_write(self, off: int, val: int) -> None:
        if not isinstance(val, int) or isinstance(val, bool) or not 0 <= val <= 0xFFFFFFFF:
            raise ArgumentError(f"register value {val!r} is not a u32")
        where = regs.decode_offset(off, self.num_dbc)
        if where is None:
            self._violation(
                "HOST-BAR-UNMAPPED",
                f"host wrote 0x{val:x} to BAR2 offset 0x{off:x}, not a DBC register",
                None,
            )
            return
        self.writel(where[0], where[1], val)

    # -- semaphores (R6) --------------------------------------------------------
    def _active(self, cmd: SemCmd) -> bool:
        """Is this sem_cmd word a command at all? (policy sem-enable-bit)"""
        if self._p.sem_enable_bit is SemEnableBit.ENABLE_GATES:
            return cmd.enable and cmd.op is not SemOp.NOP
        return cmd.op is not SemOp.NOP

    def _sem_apply(self, ch: Channel, op: SemOp, index: int, value: int, dry: bool = False) -> bool:
        """Run one semaphore command; False (and no change) when it must wait."""
        p = self._p
        s = ch.sems[index]
        amount = 1 if p.sem_inc_amount is SemIncAmount.BY_ONE else value
        new = s
        if op is SemOp.NOP or op is SemOp.RESERVED:
            return True
        if op is SemOp.INIT:
            new = value
        elif op is SemOp.INC:
            new = s + amount
            if new > SEM_MAX:
                new = SEM_MAX if p.sem_overflow is SemOverflow.SATURATE else new & SEM_MAX
        elif op is SemOp.DEC:
            new = s - amount
            if new < 0:
                under = p.sem_underflow
                if under is SemUnderflow.BLOCK:
                    return False
                new = 0 if under is SemUnderflow.SATURATE else new & SEM_MAX
        elif op is SemOp.WAIT_EQ:
            return s == value
        elif op is SemOp.WAIT_GE:
            return s >= value
        elif op is SemOp.P:
            if s == 0:
                return False
            if p.sem_p_decrements is SemPDecrements.DECREMENT:
                new = s - 1
        if not dry and new != s:
            ch.sems[index] = new
            self._emit("sem", ch.dbc, index, s, new)
        return True

    def nsp_sem(self, dbc: int, index: int, op: int, val: int = 0) -> bool:
        """The workload (NSP firmware) acting on one of the channel's semaphores.

        Same command numbering and policies as the bridge's sem_cmd (R6).  For
        the waits (4, 5, 6) it returns whether the condition holds now (6 also
        decrements when it does); for the others True, or False when a
        ``sem-underflow=block`` decrement cannot go.
        """
        ch = self._chan(dbc)
        if not ch.active:
            raise ArgumentError(f"nsp_sem: dbc {dbc} is not active")
        if not isinstance(index, int) or not 0 <= index < NUM_SEMS:
            raise ArgumentError(f"nsp_sem: semaphore index {index!r} out of range 0..31")
        if not isinstance(op, int) or not 0 <= op <= 6:
            raise ArgumentError(f"nsp_sem: command {op!r} is not 0..6")
        if not isinstance(val, int) or not 0 <= val <= SEM_MAX:
            raise ArgumentError(f"nsp_sem: value {val!r} is not 0..4095")
        self._version += 1
        return self._sem_apply(ch, SemOp(op), index, val)

    # -- the actor interface (R12) ------------------------------------------------
    def _advances(self, ch: Channel) -> list[Advance]:
        """Advance actions of one channel: one pass in consumption order (R5)."""
        if not ch.inflight:
            return []
        ctx = _Ctx()
        if self._p.fence_scope is FenceScope.ALL_OUTSTANDING:
            started = {Dir.TO_DEV: 0, Dir.FROM_DEV: 0}
            for r in ch.inflight.values():
                if r.xfer and not r.dma_done and r.fence_passed:
                    started[r.dir] += 1
            ctx.started_undone = started
        out: list[Advance] = []
        for rec in ch.inflight.values():
            if self._can_advance(ch, rec, ctx):
                out.append(Advance(ch.dbc, rec.seq))
            if not self._rule_permitted:
                break  # processing-order=fifo: only the oldest request moves
            ctx.add(rec)
        return out

    def enabled(self) -> list[Action]:
        """Every device action possible now, in a deterministic order (channel, then kind, then seq)."""
        if self._cache is not None and self._cache[0] == self._version:
            return list(self._cache[1])
        out: list[Action] = []
        for ch in self.ch:
            if not ch.active:
                continue
            if ch.req_count > 0:
                out.append(Consume(ch.dbc))
            out.extend(self._advances(ch))
            if ch.msi_due:
                out.append(RaiseMsi(ch.dbc))
        self._cache = (self._version, out)
        return list(out)

    def is_enabled(self, action: Any) -> bool:
        if not isinstance(action, (Consume, Advance, RaiseMsi)):
            return False
        if self._cache is not None and self._cache[0] == self._version:
            return action in self._cache[1]
        if not isinstance(action.dbc, int) or not 0 <= action.dbc < self.num_dbc:
            return False
        ch = self.ch[action.dbc]
        if not ch.active:
            return False
        if isinstance(action, Consume):
            return ch.req_count > 0
        if isinstance(action, RaiseMsi):
            return ch.msi_due
        return action in self._advances(ch)

    def step(self, action: Action) -> None:
        """Perform one enabled action (ArgumentError if it is not enabled now)."""
        if not self.is_enabled(action):
            raise ArgumentError(f"device action {action!r} is not enabled")
        self._version += 1
        ch = self.ch[action.dbc]
        if isinstance(action, Consume):
            self._consume(ch)
        elif isinstance(action, RaiseMsi):
            ch.msi_due = False
            ch.msi_raised += 1
            self.stats.msi_raised += 1
            v = self.vector(ch.dbc)
            self.intc.raise_(v)
            self._emit("msi", ch.dbc, v)
        else:
            self._do_stage(ch, ch.inflight[action.seq])

    @property
    def msi_per_vector(self) -> list[int]:
        """MSIs raised per vector (0 = MHI, i+1 = DBC i; all on 0 in single-MSI mode)."""
        return list(self.intc.raised)

    def published_requests(self) -> dict[int, list[tuple[int, bytes]]]:
        """A public snapshot of the request FIFOs: per active channel, ``(slot, raw 64
        bytes)`` of every element the host has published (REQ_HP up to REQ_TP) and the
        device has not consumed yet ("Request FIFO"; the host may not rewrite these)."""
        out: dict[int, list[tuple[int, bytes]]] = {}
        for ch in self.ch:
            if not ch.active:
                continue
            slots = []
            i = ch.req_hp
            for _ in range(arith.ring_occupancy(ch.req_hp, ch.req_tp, ch.nelem)):
                slots.append((i, self.host_mem.read(ch.req_q + i * REQ_SIZE, REQ_SIZE)))
                i = (i + 1) % ch.nelem
            out[ch.dbc] = slots
        return out

    def quiescent(self) -> bool:
        """Nothing can happen without an outside action (host or workload)."""
        return not self.enabled()

    def idle(self) -> bool:
        """No unconsumed request, no in-flight request and no due MSI on any channel."""
        return all(not (c.req_count or c.inflight or c.msi_due) for c in self.ch if c.active)

    def blocked(self, dbc: int) -> list[tuple[int, Stage]]:
        """(seq, stage) of every in-flight request of ``dbc`` (for reports and `dump`)."""
        return [(r.seq, r.stage) for r in self._chan(dbc).inflight.values()]
