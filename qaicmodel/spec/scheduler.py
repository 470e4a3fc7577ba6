"""Schedulers: who acts next, chosen explicitly (no threads, no clocks).

Every actor (device, workload, host IRQ side, host ioctl threads) exposes
``enabled() -> list[Action]`` and ``step(action)`` (docs/design.md "Actors and
scheduling").  :func:`run` repeatedly collects the union of enabled actions
and lets a scheduler pick one, until nothing is enabled or ``max_steps``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol

from qaicmodel.errors import ArgumentError

__all__ = ["Actor", "Scheduler", "FirstScheduler", "RandomScheduler", "run", "enabled_pairs"]


class Actor(Protocol):
    def enabled(self) -> list[Any]: ...

    def step(self, action: Any) -> None: ...


class Scheduler(Protocol):
    def pick(self, actions: Sequence[Any]) -> int:
        """Index of the action to run (``actions`` is non-empty)."""
        ...


class FirstScheduler:
    """Deterministic default: the first enabled action of the first actor that has one."""

    def pick(self, actions: Sequence[Any]) -> int:
        return 0

    def __repr__(self) -> str:
        return "FirstScheduler()"


class RandomScheduler:
    """Uniform choice among enabled actions from a seeded PRNG (replayable: same seed, same run)."""

    def __init__(self, seed: int) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ArgumentError(f"RandomScheduler needs an int seed, got {seed!r}")
        self.seed = seed
        self._rng = random.Random(seed)

    def pick(self, actions: Sequence[Any]) -> int:
        return self._rng.randrange(len(actions))

    def __repr__(self) -> str:
        return f"RandomScheduler(seed={self.seed})"


def enabled_pairs(actors: Sequence[Actor]) -> list[tuple[Actor, Any]]:
    """Every (actor, action) enabled now, actors in the order given."""
    return [(a, act) for a in actors for act in a.enabled()]


def run(
    actors: Sequence[Actor], scheduler: Scheduler | None = None, max_steps: int = 100_000
) -> int:
    """Step the actors until none has an enabled action or ``max_steps``; returns steps taken."""
    if not isinstance(max_steps, int) or max_steps < 0:
        raise ArgumentError(f"max_steps must be a non-negative int, got {max_steps!r}")
    sched = scheduler if scheduler is not None else FirstScheduler()
    steps = 0
    while steps < max_steps:
        pairs = enabled_pairs(actors)
        if not pairs:
            break
        i = sched.pick([act for _, act in pairs])
        if not isinstance(i, int) or not 0 <= i < len(pairs):
            raise ArgumentError(f"scheduler {sched!r} picked {i!r} of {len(pairs)} actions")
        actor, act = pairs[i]
        actor.step(act)
        steps += 1
    return steps
