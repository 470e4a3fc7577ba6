"""Shared machinery: a claim is negated and handed to z3; sat = counterexample.

A proof module builds :class:`Claim` objects from the project's own functions
(``qaicmodel.arith`` on :class:`~proofs.z3ops.Z3Ops`) and calls
:func:`run_claims`.  The functions under proof are looked up in a table the
caller may override (``fn_overrides``), which is how ``tests/test_proofs.py``
injects mutants and checks that each proof then reports COUNTEREXAMPLE.

Two kinds of claim:
  * ``expect="proved"`` -- the goal holds for every assignment satisfying the
    hypotheses (z3 says the negation is unsat);
  * ``expect="counterexample"`` -- a *demonstration*: the goal is expected to
    FAIL (e.g. "what breaks if the bound is lifted", "the protocol without the
    re-check").  z3 must produce a concrete counterexample, which is reported
    as a note; if z3 instead proves the goal, the demonstration is wrong and
    the proof fails.

Timing uses ``time.perf_counter`` (the proofs are not part of the model, so the
no-wall-clock rule of the model does not apply; the issue asks for the time).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import z3

from proofs.z3ops import as_int
from qaicmodel.errors import ArgumentError

__all__ = [
    "Status",
    "Claim",
    "ClaimOutcome",
    "Result",
    "run_claims",
    "functions",
    "zext",
    "mod_rel",
    "imod_rel",
    "TIMEOUT_MS",
]

#: Per-claim solver timeout; a timeout is reported as UNKNOWN (a failure).
TIMEOUT_MS = 120_000


class Status(enum.Enum):
    PROVED = "PROVED"
    COUNTEREXAMPLE = "COUNTEREXAMPLE"
    UNKNOWN = "UNKNOWN"


@attrs.frozen
class Claim:
    """``hyps => goal`` for all values of the free variables."""

    name: str
    goal: Any
    hyps: tuple[Any, ...] = ()
    #: terms whose values are printed in a counterexample (label -> z3 term)
    show: Mapping[str, Any] = attrs.field(factory=dict)
    expect: str = attrs.field(
        default="proved", validator=attrs.validators.in_(("proved", "counterexample"))
    )
    #: z3 tactic: "qfbv" for bit-vector claims, "" for z3's default (integer claims)
    tactic: str = "qfbv"
    #: for trace claims: turns a counterexample model into readable steps
    trace: Callable[[Any], list[str]] | None = None


@attrs.frozen
class ClaimOutcome:
    name: str
    status: Status  # what z3 said about the goal
    seconds: float
    values: Mapping[str, int | bool]
    expect: str
    trace: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        want = Status.PROVED if self.expect == "proved" else Status.COUNTEREXAMPLE
        return self.status is want


@attrs.frozen
class Result:
    """The outcome of one proof module."""

    name: str
    title: str
    bound: str
    outcomes: tuple[ClaimOutcome, ...]
    seconds: float

    @property
    def status(self) -> Status:
        """PROVED when every claim came out as expected; else the first bad outcome."""
        for o in self.outcomes:
            if not o.ok:
                if o.status is Status.UNKNOWN:
                    return Status.UNKNOWN
                # an expected-counterexample claim that z3 proved is also a failure;
                # report it as COUNTEREXAMPLE to the demonstration
                return Status.COUNTEREXAMPLE
        return Status.PROVED

    @property
    def proved(self) -> bool:
        return self.status is Status.PROVED

    @property
    def failed_claim(self) -> ClaimOutcome | None:
        return next((o for o in self.outcomes if not o.ok), None)

    @property
    def counterexample(self) -> Mapping[str, int | bool]:
        bad = self.failed_claim
        return bad.values if bad is not None else {}

    def report(self) -> str:
        """Human-readable lines: status, time, then details."""
        head = f"{self.name}: {self.status.value} ({self.seconds:.2f} s) -- {self.title}"
        lines = [head, f"    bound: {self.bound}"]
        for o in self.outcomes:
            if o.ok and o.expect == "proved":
                lines.append(f"    ok   {o.name} ({o.seconds:.2f} s)")
            elif o.ok:
                lines.append(
                    f"    ok   {o.name}: expected counterexample found "
                    f"({o.seconds:.2f} s): {_fmt(o.values)}"
                )
                lines.extend(f"           {i:2d}. {step}" for i, step in enumerate(o.trace, 1))
            elif o.expect == "proved":
                lines.append(f"    FAIL {o.name}: {o.status.value}: {_fmt(o.values)}")
                lines.extend(f"           {i:2d}. {step}" for i, step in enumerate(o.trace, 1))
            else:
                lines.append(
                    f"    FAIL {o.name}: a counterexample was expected but z3 says {o.status.value}"
                )
        return "\n".join(lines)


def _fmt(values: Mapping[str, int | bool]) -> str:
    def one(v: int | bool) -> str:
        if isinstance(v, bool):
            return str(v)
        return str(v) if v < 4096 else f"{v:#x}"

    return ", ".join(f"{k}={one(v)}" for k, v in values.items()) or "(no values)"


def _check(claim: Claim, timeout_ms: int) -> ClaimOutcome:
    s = z3.Tactic(claim.tactic).solver() if claim.tactic else z3.Solver()
    s.set("timeout", timeout_ms)
    for h in claim.hyps:
        s.add(h)
    s.add(z3.Not(claim.goal))
    t0 = time.perf_counter()
    r = s.check()
    if r == z3.unsat and claim.hyps:
        # guard against a vacuous proof: the hypotheses alone must be satisfiable
        v = z3.Solver()
        v.set("timeout", timeout_ms)
        v.add(*claim.hyps)
        if v.check() != z3.sat:
            return ClaimOutcome(
                claim.name,
                Status.UNKNOWN,
                time.perf_counter() - t0,
                {"vacuous_hypotheses": True},
                claim.expect,
            )
    dt = time.perf_counter() - t0
    if r == z3.unsat:
        return ClaimOutcome(claim.name, Status.PROVED, dt, {}, claim.expect)
    if r == z3.sat:
        m = s.model()
        vals = {k: as_int(m, t) for k, t in claim.show.items()}
        steps = tuple(claim.trace(m)) if claim.trace is not None else ()
        return ClaimOutcome(claim.name, Status.COUNTEREXAMPLE, dt, vals, claim.expect, steps)
    return ClaimOutcome(claim.name, Status.UNKNOWN, dt, {"solver_gave_up": True}, claim.expect)


def run_claims(
    name: str,
    title: str,
    bound: str,
    claims: Iterable[Claim],
    timeout_ms: int = TIMEOUT_MS,
    fail_fast: bool = False,
) -> Result:
    """Check every claim in order.  ``fail_fast`` stops at the first claim that does
    not come out as expected (the mutant tests use it; the report then lists
    only the claims checked so far)."""
    t0 = time.perf_counter()
    outcomes: list[ClaimOutcome] = []
    for c in claims:
        outcomes.append(_check(c, timeout_ms))
        if fail_fast and not outcomes[-1].ok:
            break
    return Result(name, title, bound, tuple(outcomes), time.perf_counter() - t0)


def functions(
    defaults: Mapping[str, Callable[..., Any]], overrides: Mapping[str, Callable[..., Any]] | None
) -> dict[str, Callable[..., Any]]:
    """The functions under proof: ``defaults`` with ``overrides`` (mutants) applied."""
    fns = dict(defaults)
    for k, f in (overrides or {}).items():
        if k not in fns:
            raise ArgumentError(f"no function {k!r} under proof here; known: {sorted(fns)}")
        fns[k] = f
    return fns


def zext(x: Any, to: int = 64) -> Any:
    """Zero-extend a bit-vector term to ``to`` bits: exact arithmetic for the spec side.

    Specs are written in a width where nothing can wrap, so they state the
    mathematical property; the code under proof runs at its own width.
    """
    return z3.ZeroExt(to - x.size(), x)


def mod_rel(x: Any, r: Any, n: Any) -> Any:
    """``r == x mod n`` for ``0 <= x < 2n`` (all terms exact, same width), without division."""
    return z3.And(z3.ULT(r, n), z3.Or(x == r, x == r + n))


def imod_rel(x: Any, r: Any, n: Any) -> Any:
    """Integer version of :func:`mod_rel`: ``r == x mod n`` for ``0 <= x < 2n``."""
    return z3.And(0 <= r, r < n, z3.Or(x == r, x == r + n))
