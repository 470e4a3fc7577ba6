"""The interrupt protocol of one DMA Bridge channel, as a dual-typed transition system.

Sources: aic100.rst "Response FIFO" (an MSI only on the empty -> non-empty
transition; "the host is expected to drain the response FIFO, and must take care
to handle any race conditions"); qaic_data.c ``dbc_irq_handler`` (hard handler:
empty -> IRQ_NONE, else ``disable_irq_nosync`` and wake the thread) and
``dbc_irq_threaded_fn`` (drain up to NUM_EVENTS per pass, write RSP_HP after each
pass, re-poll NUM_DELAYS times when empty, ``enable_irq``, then re-read RSP_TP:
the missed-event check); control-path.md §4.2; policies ``msi-while-masked`` and
``msi-empty-transition`` (host-head).

Rules of this module (the style of :mod:`qaicmodel.arith`):
  * a transition is ``(guard(s, ops), update(s, ops))``; no Python branching on
    state values, only on the structural parameters of :func:`make_transitions`;
  * the same functions run on ints (:data:`qaicmodel.arith.U32`) and on z3
    bit-vectors/bools (``proofs``);
  * the reference host (:mod:`qaicmodel.spec.host.reference`, through ``HostCore``'s IRQ
    side :mod:`qaicmodel.spec.host.irqside`) takes every IRQ-side control decision by
    evaluating these guards and applying these updates, so a proof about
    :data:`TRANSITIONS` is a proof about the code that runs.  Exactly: every
    transition of :data:`HOST_TRANSITIONS` has its guard checked before its update
    (``hard_irq``, ``thread_start``, ``read_tail``, ``recheck`` in ``irqside._take``;
    ``poll_empty`` / ``give_up`` / ``start_drain`` chosen by ``irqside._decide``;
    ``end_drain``, ``write_head``, ``unmask`` in ``irqside._apply``; ``consume_one``
    as the loop condition of ``reference._drain``).  Not covered: the
    :data:`DEVICE_TRANSITIONS` (``device_post``, ``raise_msi``) are a model of the
    device that the device model (``qaicmodel/spec/dbc/engine.py``) implements on
    its own (tested, not proved), and the fast host (``qaicmodel/impl/host.py``)
    takes the same decisions on plain ints without evaluating these guards
    (checked against the reference host by tests/test_host_equiv.py).  The paths
    where a register read returns all-ones (a dead link) end the run without a
    transition (``irqside._error_out``).

State (:class:`IrqState`): ``rsp_hp``/``rsp_tp`` (the registers), ``nelem``,
``msi_due`` (the device saw the ring go empty -> non-empty and owes an MSI),
``depth`` (Linux ``disable_irq`` depth; the vector is masked while > 0),
``pending`` (an MSI raised and not yet taken by the hard handler: the intc
latch), ``wake`` (the IRQ thread has been woken: IRQTF_RUNTHREAD), ``pc`` (the
thread's program counter, :class:`PC`), ``head`` (the thread's local RSP_HP),
``tail`` (the thread's last-read RSP_TP), ``budget`` (event_count) and
``delay`` (delay_count).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, NamedTuple

from qaicmodel.arith import U32, ring_advance, ring_occupancy
from qaicmodel.spec.policies import MsiWhileMasked

__all__ = [
    "PC",
    "IrqState",
    "NUM_EVENTS",
    "NUM_DELAYS",
    "READS",
    "WRITES",
    "Transition",
    "make_transitions",
    "TRANSITIONS",
    "HOST_TRANSITIONS",
    "DEVICE_TRANSITIONS",
    "initial",
    "stranded",
    "enabled",
    "quiescent",
]

#: qaic_data.c NUM_EVENTS / NUM_DELAYS
NUM_EVENTS = 128
NUM_DELAYS = 10


class PC(enum.IntEnum):
    """Where the IRQ thread is (labels of dbc_irq_threaded_fn)."""

    IDLE = 0  # not running
    READ_TAIL = 1  # at ``read_fifo``: about to read RSP_TP
    CHECK = 2  # has read RSP_TP: drain, poll again, or give up
    DRAIN = 3  # consuming response elements
    WRITE_HEAD = 4  # about to write RSP_HP
    UNMASK = 5  # ``normal_out``: enable_irq
    RECHECK = 6  # missed-event check: re-read RSP_TP


class IrqState(NamedTuple):
    """One channel's interrupt-side state; fields hold ints/bools or z3 terms.

    (A NamedTuple, not an attrs class: ``with_`` is on the IRQ hot path.)
    """

    rsp_hp: Any
    rsp_tp: Any
    nelem: Any
    msi_due: Any
    depth: Any
    pending: Any
    wake: Any
    pc: Any
    head: Any
    tail: Any
    budget: Any
    delay: Any

    def with_(self, **kw: Any) -> IrqState:
        return self._replace(**kw)


def initial(nelem: Any, ops: Any = U32) -> IrqState:
    """A freshly activated channel: empty rings, vector unmasked, thread idle."""
    z = ops.const(0)
    return IrqState(
        rsp_hp=z,
        rsp_tp=z,
        nelem=nelem,
        msi_due=False,
        depth=z,
        pending=False,
        wake=False,
        pc=ops.const(PC.IDLE),
        head=z,
        tail=z,
        budget=z,
        delay=z,
    )


#: device registers each transition reads (the host performs these readl's)
READS: dict[str, tuple[str, ...]] = {
    "hard_irq": ("rsp_hp", "rsp_tp"),
    "thread_start": ("rsp_hp",),
    "read_tail": ("rsp_tp",),
    "recheck": ("rsp_tp",),
}
#: device registers each transition writes
WRITES: dict[str, tuple[str, ...]] = {"write_head": ("rsp_hp",)}

Transition = tuple[Callable[[IrqState, Any], Any], Callable[[IrqState, Any], IrqState]]


def _at(s: IrqState, pc: PC, ops: Any) -> Any:
    return ops.eq(s.pc, ops.const(int(pc)))


def make_transitions(
    *,
    recheck: bool = True,
    msi_while_masked: str = "latched",
    mask_on_irq: bool = True,
    num_events: int = NUM_EVENTS,
    num_delays: int = NUM_DELAYS,
) -> dict[str, Transition]:
    """The transition table for one variant.

    ``recheck``: the driver's missed-event check after enable_irq (False = a
    broken host). ``msi_while_masked``: the policy alternative. ``mask_on_irq``:
    False in single-MSI and datapath-polling modes, where the DBC handlers never
    disable the (shared) line (qaic_data.c ``!qdev->single_msi``).
    """
    try:
        mode = MsiWhileMasked(msi_while_masked)
    except ValueError:
        raise ValueError(
            f"msi_while_masked must be 'latched' or 'lost', not {msi_while_masked!r}"
        ) from None
    latched = mode is MsiWhileMasked.LATCHED

    # -- device side ------------------------------------------------------
    def post_g(s: IrqState, ops: Any) -> Any:
        # keep-one-free: the device stalls on a full response ring (response-ring-full=stall)
        return ops.ult(
            ring_occupancy(s.rsp_hp, s.rsp_tp, s.nelem, ops), ops.sub(s.nelem, ops.const(1))
        )

    def post_u(s: IrqState, ops: Any) -> IrqState:
        # msi-empty-transition=host-head: empty means RSP_TP == RSP_HP at posting time
        edge = ops.eq(s.rsp_tp, s.rsp_hp)
        return s.with_(
            rsp_tp=ring_advance(s.rsp_tp, ops.const(1), s.nelem, ops),
            msi_due=ops.lor(s.msi_due, edge),
        )

    def raise_g(s: IrqState, ops: Any) -> Any:
        return s.msi_due

    def raise_u(s: IrqState, ops: Any) -> IrqState:
        masked = ops.ne(s.depth, ops.const(0))
        kept = ops.lor(s.pending, latched)  # latched: held pending; lost: unchanged
        return s.with_(msi_due=False, pending=ops.ite(masked, kept, True))

    # -- hard handler -----------------------------------------------------
    def hard_g(s: IrqState, ops: Any) -> Any:
        return ops.land(s.pending, ops.eq(s.depth, ops.const(0)))

    def hard_u(s: IrqState, ops: Any) -> IrqState:
        nonempty = ops.ne(s.rsp_hp, s.rsp_tp)  # head == tail -> IRQ_NONE
        inc = ops.ite(ops.land(nonempty, mask_on_irq), ops.const(1), ops.const(0))
        return s.with_(pending=False, depth=ops.add(s.depth, inc), wake=ops.lor(s.wake, nonempty))

    # -- threaded handler -------------------------------------------------
    def start_g(s: IrqState, ops: Any) -> Any:
        return ops.land(_at(s, PC.IDLE, ops), s.wake)

    def start_u(s: IrqState, ops: Any) -> IrqState:
        return s.with_(
            wake=False,
            head=s.rsp_hp,
            budget=ops.const(num_events),
            delay=ops.const(num_delays),
            pc=ops.const(int(PC.READ_TAIL)),
        )

    def read_g(s: IrqState, ops: Any) -> Any:
        return _at(s, PC.READ_TAIL, ops)

    def read_u(s: IrqState, ops: Any) -> IrqState:
        budget = ops.ite(ops.eq(s.budget, ops.const(0)), ops.const(num_events), s.budget)
        return s.with_(tail=s.rsp_tp, budget=budget, pc=ops.const(int(PC.CHECK)))

    def poll_g(s: IrqState, ops: Any) -> Any:
        return ops.land(
            _at(s, PC.CHECK, ops), ops.eq(s.tail, s.head), ops.ne(s.delay, ops.const(0))
        )

    def poll_u(s: IrqState, ops: Any) -> IrqState:
        return s.with_(delay=ops.sub(s.delay, ops.const(1)), pc=ops.const(int(PC.READ_TAIL)))

    def giveup_g(s: IrqState, ops: Any) -> Any:
        return ops.land(
            _at(s, PC.CHECK, ops), ops.eq(s.tail, s.head), ops.eq(s.delay, ops.const(0))
        )

    def giveup_u(s: IrqState, ops: Any) -> IrqState:
        return s.with_(pc=ops.const(int(PC.UNMASK)))

    def drain_g(s: IrqState, ops: Any) -> Any:
        return ops.land(_at(s, PC.CHECK, ops), ops.ne(s.tail, s.head))

    def drain_u(s: IrqState, ops: Any) -> IrqState:
        return s.with_(delay=ops.const(num_delays), pc=ops.const(int(PC.DRAIN)))

    def one_g(s: IrqState, ops: Any) -> Any:
        return ops.land(
            _at(s, PC.DRAIN, ops), ops.ne(s.head, s.tail), ops.ne(s.budget, ops.const(0))
        )

    def one_u(s: IrqState, ops: Any) -> IrqState:
        return s.with_(
            head=ring_advance(s.head, ops.const(1), s.nelem, ops),
            budget=ops.sub(s.budget, ops.const(1)),
        )

    def end_g(s: IrqState, ops: Any) -> Any:
        return ops.land(
            _at(s, PC.DRAIN, ops), ops.lor(ops.eq(s.head, s.tail), ops.eq(s.budget, ops.const(0)))
        )

    def end_u(s: IrqState, ops: Any) -> IrqState:
        return s.with_(pc=ops.const(int(PC.WRITE_HEAD)))

    def whead_g(s: IrqState, ops: Any) -> Any:
        return _at(s, PC.WRITE_HEAD, ops)

    def whead_u(s: IrqState, ops: Any) -> IrqState:
        return s.with_(rsp_hp=s.head, pc=ops.const(int(PC.READ_TAIL)))

    def unmask_g(s: IrqState, ops: Any) -> Any:
        return _at(s, PC.UNMASK, ops)

    def unmask_u(s: IrqState, ops: Any) -> IrqState:
        dec = ops.const(1 if mask_on_irq else 0)
        nxt = PC.RECHECK if recheck else PC.IDLE
        return s.with_(depth=ops.sub(s.depth, dec), pc=ops.const(int(nxt)))

    def recheck_g(s: IrqState, ops: Any) -> Any:
        return _at(s, PC.RECHECK, ops)

    def recheck_u(s: IrqState, ops: Any) -> IrqState:
        again = ops.ne(s.rsp_tp, s.head)
        inc = ops.ite(ops.land(again, mask_on_irq), ops.const(1), ops.const(0))
        return s.with_(
            tail=s.rsp_tp,
            depth=ops.add(s.depth, inc),
            pc=ops.ite(again, ops.const(int(PC.READ_TAIL)), ops.const(int(PC.IDLE))),
        )

    table: dict[str, Transition] = {
        "device_post": (post_g, post_u),
        "raise_msi": (raise_g, raise_u),
        "hard_irq": (hard_g, hard_u),
        "thread_start": (start_g, start_u),
        "read_tail": (read_g, read_u),
        "poll_empty": (poll_g, poll_u),
        "give_up": (giveup_g, giveup_u),
        "start_drain": (drain_g, drain_u),
        "consume_one": (one_g, one_u),
        "end_drain": (end_g, end_u),
        "write_head": (whead_g, whead_u),
        "unmask": (unmask_g, unmask_u),
    }
    if recheck:
        table["recheck"] = (recheck_g, recheck_u)
    return table


#: the driver's protocol with the default policy (msi-while-masked=latched)
TRANSITIONS: dict[str, Transition] = make_transitions()
DEVICE_TRANSITIONS = ("device_post", "raise_msi")
HOST_TRANSITIONS = tuple(n for n in TRANSITIONS if n not in DEVICE_TRANSITIONS)


def stranded(s: IrqState, ops: Any = U32) -> Any:
    """A response sits in the ring, the vector is unmasked, no MSI is pending or owed,
    and the IRQ thread is idle and not woken: nothing will ever drain it."""
    return ops.land(
        ops.ne(s.rsp_hp, s.rsp_tp),
        ops.eq(s.depth, ops.const(0)),
        ops.lnot(s.pending),
        ops.lnot(s.msi_due),
        ops.lnot(s.wake),
        _at(s, PC.IDLE, ops),
    )


def enabled(s: IrqState, table: dict[str, Transition] | None = None, ops: Any = U32) -> list[str]:
    """Names of the transitions whose guard holds (int-level helper)."""
    t = TRANSITIONS if table is None else table
    return [name for name, (g, _u) in t.items() if g(s, ops)]


def quiescent(s: IrqState, table: dict[str, Transition] | None = None, ops: Any = U32) -> bool:
    """Only the device could still act (by posting a new response)."""
    return all(n == "device_post" for n in enabled(s, table, ops))
