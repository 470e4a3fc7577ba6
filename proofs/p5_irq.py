"""Proof 5 -- the interrupt protocol cannot strand a response.

The transition system is :mod:`qaicmodel.spec.host.irqproto` (``make_transitions``:
the device's MSI rule -- an MSI only on the empty -> non-empty edge of the
response FIFO, aic100.rst "Response FIFO" -- and the host's hard handler,
mask (``disable_irq_nosync``), drain, unmask (``enable_irq``) and re-check,
qaic_data.c ``dbc_irq_handler``/``dbc_irq_threaded_fn``).  The reference host
takes its IRQ-side decisions by evaluating that same table.  Safety property:
``not stranded(s)`` in every reachable state (irqproto ``stranded``: a
response in the ring, vector unmasked, no MSI pending or owed, thread idle
and not woken).

Proof by an inductive invariant (for every 32-bit state; no bound on the
number of steps, ring size or responses):

  R  depth == [pc in READ_TAIL..UNMASK] + [wake]    (who will unmask)
  H  pc in {READ_TAIL, CHECK, UNMASK, RECHECK} => head == rsp_hp; pc == UNMASK => tail == head
  J  pc == IDLE => rsp_hp == rsp_tp or msi_due or pending or wake
  K  (latched only) after the last empty read (CHECK with tail == head, or UNMASK):
     rsp_tp == tail or msi_due or pending or wake

Variants (policy ``msi-while-masked`` x the driver's re-check):
  * latched + re-check (the driver, default policy): PROVED;
  * lost + re-check: PROVED -- the re-check is what covers the 'lost' reading;
  * latched, re-check removed: PROVED -- the latch alone also suffices;
  * lost, re-check removed: z3 returns a COUNTEREXAMPLE trace (bounded model
    check from the initial state, ring of 4, the driver's NUM_EVENTS=128 and
    NUM_DELAYS=10): a response posted after the thread's last empty read raises
    an MSI while the vector is masked, the MSI is lost, the thread unmasks and
    goes idle -- stranded.
  * single-MSI / datapath-polling mode (``mask_on_irq=False``: the line is never
    disabled; depth stays 0), latched + re-check: PROVED.

Functions under proof: ``irqproto.make_transitions`` (its guards/updates,
which call ``arith.ring_advance``/``ring_occupancy``), ``irqproto.stranded``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import z3

from proofs._harness import Claim, Result, functions, run_claims
from proofs.z3ops import Z32
from qaicmodel.spec.host import irqproto
from qaicmodel.spec.host.irqproto import PC, IrqState

NAME = "p5_irq"
TITLE = "interrupt protocol: no response stranded with the vector unmasked and no MSI"
#: steps of the bounded search for the counterexample (the shortest is 34:
#: NUM_DELAYS=10 empty polls take 20 steps)
BMC_DEPTH = 34
BMC_NELEM = 4
BOUND = (
    "invariant: every 32-bit state, unbounded steps; counterexample search: "
    f"ring of {BMC_NELEM} elements, traces up to {BMC_DEPTH} steps from the initial state"
)

DEFAULTS: dict[str, Callable[..., Any]] = {
    "make_transitions": irqproto.make_transitions,
    "stranded": irqproto.stranded,
}


_BV = ("rsp_hp", "rsp_tp", "nelem", "depth", "pc", "head", "tail", "budget", "delay")
_BOOL = ("msi_due", "pending", "wake")
_MASKED_PCS = (PC.READ_TAIL, PC.CHECK, PC.DRAIN, PC.WRITE_HEAD, PC.UNMASK)


def _sym_state(tag: str) -> IrqState:
    kw: dict[str, Any] = {k: z3.BitVec(f"{k}{tag}", 32) for k in _BV}
    kw.update({k: z3.Bool(f"{k}{tag}") for k in _BOOL})
    return IrqState(**kw)


def _b(v: Any) -> Any:
    return z3.BoolVal(v) if isinstance(v, bool) else v


def _bv(v: Any) -> Any:
    return z3.BitVecVal(v, 32) if isinstance(v, int) else v


def _pc_in(s: IrqState, pcs: tuple[PC, ...]) -> Any:
    return z3.Or(*[s.pc == int(p) for p in pcs])


def invariant(s: IrqState, latched: bool, masking: bool = True) -> Any:
    """The inductive invariant (spec side, plain z3).  ``masking=False``: single-MSI /
    polling mode, where the DBC handlers never disable the line (depth stays 0)."""
    pc, wake = _bv(s.pc), _b(s.wake)
    hp, tp, head, tail = _bv(s.rsp_hp), _bv(s.rsp_tp), _bv(s.head), _bv(s.tail)
    msi_due, pending = _b(s.msi_due), _b(s.pending)
    owed = z3.Or(msi_due, pending, wake)
    parts = [
        z3.ULE(pc, int(PC.RECHECK)),
        _bv(s.depth)
        == (
            z3.If(_pc_in(s, _MASKED_PCS), z3.BitVecVal(1, 32), z3.BitVecVal(0, 32))
            + z3.If(wake, z3.BitVecVal(1, 32), z3.BitVecVal(0, 32))
            if masking
            else z3.BitVecVal(0, 32)
        ),
        z3.Implies(_pc_in(s, (PC.READ_TAIL, PC.CHECK, PC.UNMASK, PC.RECHECK)), head == hp),
        z3.Implies(pc == int(PC.UNMASK), tail == head),
        z3.Implies(pc == int(PC.IDLE), z3.Or(hp == tp, owed)),
    ]
    if latched:
        last_read = z3.Or(z3.And(pc == int(PC.CHECK), tail == head), pc == int(PC.UNMASK))
        parts.append(z3.Implies(last_read, z3.Or(tp == tail, owed)))
    return z3.And(*parts)


def _induction_claims(
    f: dict[str, Callable[..., Any]], label: str, recheck: bool, policy: str, masking: bool = True
) -> list[Claim]:
    ops = Z32
    table = f["make_transitions"](recheck=recheck, msi_while_masked=policy, mask_on_irq=masking)
    latched = policy == "latched"
    s = _sym_state("")
    inv = invariant(s, latched, masking)
    show = {k: getattr(s, k) for k in _BV + _BOOL}
    claims = [
        Claim(
            f"{label}: initial state satisfies the invariant",
            invariant(irqproto.initial(s.nelem, ops), latched, masking),
            (),
            show,
        ),
        Claim(
            f"{label}: invariant excludes stranded states",
            z3.Not(_b(f["stranded"](s, ops))),
            (inv,),
            show,
        ),
    ]
    for name, (guard, update) in table.items():
        claims.append(
            Claim(
                f"{label}: invariant preserved by {name}",
                invariant(update(s, ops), latched, masking),
                (inv, _b(guard(s, ops))),
                show,
            )
        )
    return claims


def _bmc_claim(f: dict[str, Callable[..., Any]], label: str, recheck: bool, policy: str) -> Claim:
    """Bounded search from the initial state for a stranded state (with stuttering)."""
    ops = Z32
    table = f["make_transitions"](recheck=recheck, msi_while_masked=policy)
    names = list(table)
    s = irqproto.initial(z3.BitVecVal(BMC_NELEM, 32), ops)
    sels = []
    path = []
    for t in range(BMC_DEPTH):
        sel = z3.BitVec(f"step{t}", 8)
        sels.append(sel)
        nxt = s
        cond = [z3.ULE(sel, len(names))]
        for i, name in enumerate(names):
            guard, update = table[name]
            cond.append(z3.Implies(sel == i, _b(guard(s, ops))))
            u = update(s, ops)
            nxt = IrqState(
                **{k: _pick(sel == i, getattr(u, k), getattr(nxt, k)) for k in _BV + _BOOL}
            )
        path.extend(cond)
        s = nxt  # sel == len(names): stutter

    def trace(m: Any) -> list[str]:
        out = []
        for sel in sels:
            v = m.eval(sel, model_completion=True).as_long()
            if v < len(names):
                out.append(names[v])
        return out

    final = _b(f["stranded"](s, ops))
    return Claim(
        f"{label}: no stranded state within {BMC_DEPTH} steps",
        z3.Not(z3.And(*path, final)),
        (),
        {"rsp_hp": _bv(s.rsp_hp), "rsp_tp": _bv(s.rsp_tp), "depth": _bv(s.depth)},
        expect="counterexample",
        trace=trace,
    )


def _pick(c: Any, a: Any, b: Any) -> Any:
    if isinstance(a, bool) or isinstance(b, bool) or z3.is_bool(a) or z3.is_bool(b):
        return z3.If(c, _b(a), _b(b))
    return z3.If(c, _bv(a), _bv(b))


def run(
    fn_overrides: Mapping[str, Callable[..., Any]] | None = None, *, fail_fast: bool = False
) -> Result:
    f = functions(DEFAULTS, fn_overrides)
    claims: list[Claim] = []
    claims += _induction_claims(f, "latched+recheck (driver)", True, "latched")
    claims += _induction_claims(f, "lost+recheck", True, "lost")
    claims += _induction_claims(f, "latched, no recheck", False, "latched")
    claims += _induction_claims(
        f, "single-MSI (no masking), latched+recheck", True, "latched", masking=False
    )
    claims.append(_bmc_claim(f, "lost, no recheck", False, "lost"))
    return run_claims(NAME, TITLE, BOUND, claims, fail_fast=fail_fast)


if __name__ == "__main__":
    print(run().report())
