"""Conform episodes, replay, shrinking and reproducer files (rules C3, C5)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qaicmodel.errors import FormatError
from qaicmodel.oracle.explore import Explorer
from qaicmodel.oracle.pair import Failure, Pair
from qaicmodel.scenario.format import FORMAT, _parse_step, parse
from qaicmodel.scenario.runner import Runner
from qaicmodel.spec.dbc.config import DeviceConfig

__all__ = ["Episode", "replay", "shrink", "write_reproducer", "EPISODE_MOVES"]

#: Steps (moves) per episode.
EPISODE_MOVES = 40
#: Shrinking stops after this many replays or seconds.
SHRINK_REPLAYS = 400
SHRINK_SECONDS = 20.0


# ---------------------------------------------------------------------------
# Episodes, replay and shrinking (C3, C5)


def _doc(
    cfg: DeviceConfig, policies: dict[str, str], steps: list[dict[str, Any]]
) -> dict[str, Any]:
    dev = cfg.as_dict()
    dev["policies"] = policies
    return {"format": FORMAT, "device": dev, "steps": steps}


def _episode_seed(seed: int, row: int, episode: int) -> int:
    return (seed * 1_000_003 + row * 10_007 + episode) & 0xFFFF_FFFF_FFFF


class Episode:
    """One generated episode: its steps (as written to a scenario) and what happened."""

    def __init__(
        self,
        seed: int,
        policies: Any,
        host_cls: type,
        ref_cls: type | None,
        kernel: str | None = None,
        differential: bool = False,
        control: tuple[Any, tuple[str, ...]] = (None, ()),
    ) -> None:
        """``control``: (control host, control fault specs) of :class:`Pair`."""
        self.rng = random.Random(seed)
        self.explorer = Explorer(
            self.rng, threads=hasattr(host_cls, "execute_begin"), kernel=kernel
        )
        self.policies = policies
        self.pair = Pair(self.explorer.cfg, policies, host_cls, ref_cls, differential, *control)
        self.steps: list[dict[str, Any]] = []
        self.actions = 0
        #: steps up to the first driver finding (Pair.noted), when one was noted
        self.noted_at: int | None = None

    def run(self, moves: int, deadline: float | None) -> Failure | None:
        ex = self.explorer
        todo: list[tuple[dict[str, Any], int]] = [(s, 0) for s in ex.first_steps()]
        # each new step is parsed alone, with the names and users bound so far (the
        # scenario parser's rules P1-P6, step by step; parsing the growing document
        # again at every step was quadratic)
        bound: set[str] = set()
        users: dict[str, bool] = {}
        made = 0
        while made < moves:
            if todo:
                d, n = todo.pop(0)
            else:
                if deadline is not None and time.monotonic() > deadline and made > 5:
                    break
                d, n = ex.next_move()
            made += 1
            i = len(self.steps)
            self.steps.append(d)
            try:
                st = _parse_step(i, d, ex.cfg, bound, users)
            except FormatError as e:  # a generator bug: report it plainly
                raise AssertionError(f"conform generated an invalid step {d}: {e}") from None
            before = self.pair.prim.steps_run
            try:
                res = self.pair.step(st, self.rng.randrange if n else None, n)
            except FormatError:  # a step both hosts refuse (not runnable): end the episode
                self.steps.pop()
                break
            except Failure as f:
                if n:  # the interleaving this random run took is part of the reproducer
                    d.pop("max_steps", None)
                    d["schedule"] = list(self.pair.last_schedule)
                return f
            if "schedule" in res:
                d.pop("max_steps", None)
                d["schedule"] = res["schedule"]
            if self.pair.noted and self.noted_at is None:
                self.noted_at = len(self.steps)  # a driver finding: keep exploring
            self.actions += self.pair.prim.steps_run - before
            ex.observe(d, res)
        if self.noted_at is not None:  # no failure of the host's own: the driver finding
            del self.steps[self.noted_at :]
            return self.pair.noted[0]
        return None


def replay(
    cfg: DeviceConfig,
    policies: dict[str, str],
    steps: list[dict[str, Any]],
    host_cls: type,
    ref_cls: type | None,
    differential: bool = False,
    control: tuple[Any, tuple[str, ...]] = (None, ()),
) -> Failure | None:
    """Run recorded steps on fresh devices; the first failure, or None.
    ``control``: (control host, control fault specs), as the episode had them."""
    try:
        scen = parse(_doc(cfg, policies, steps))
    except FormatError:
        return None
    from qaicmodel.spec.policies import Policies

    pols = Policies(dict(scen.device.policies))
    pair = Pair(scen.device, pols, host_cls, ref_cls, differential, *control)
    try:
        for st in scen.steps:
            res = pair.step(st)
            if res["result"] == "schedule-diverged" and pair.ref is None:
                return None
    except Failure as f:
        return f
    except FormatError:
        return None
    if pair.noted:  # no failure of the host's own: the first driver finding, if any
        return pair.noted[0]
    return None


def _ddmin(
    items: list[Any], fails: Callable[[list[Any]], bool], budget: Callable[[], bool]
) -> list[Any]:
    """Zeller's delta debugging: a 1-minimal sub-list that still fails."""
    n = 2
    while len(items) >= 2 and budget():
        chunk = max(1, len(items) // n)
        parts = [items[k : k + chunk] for k in range(0, len(items), chunk)]
        reduced = False
        for k in range(len(parts)):
            if not budget():
                break
            cand = [x for j, p in enumerate(parts) if j != k for x in p]
            if cand and fails(cand):
                items, n, reduced = cand, max(n - 1, 2), True
                break
        if not reduced:
            if n >= len(items):
                break
            n = min(len(items), n * 2)
    return items


def shrink(
    cfg: DeviceConfig,
    policies: dict[str, str],
    steps: list[dict[str, Any]],
    failure: Failure,
    host_cls: type,
    ref_cls: type | None,
    differential: bool = False,
    control: tuple[Any, tuple[str, ...]] = (None, ()),
) -> tuple[list[dict[str, Any]], Failure, int]:
    """Minimal steps (and schedules) that still break the same invariant (C5)."""
    replays = 0
    t_end = time.monotonic() + SHRINK_SECONDS
    last = failure

    def budget() -> bool:
        return replays < SHRINK_REPLAYS and time.monotonic() < t_end

    def fails(cand: list[dict[str, Any]]) -> bool:
        nonlocal replays, last
        replays += 1
        f = replay(cfg, policies, cand, host_cls, ref_cls, differential, control)
        if f is not None and f.key == failure.key:
            last = f
            return True
        return False

    steps = steps[: failure.index + 1]
    if not fails(steps):  # the recorded episode does not replay: report it unshrunk
        return steps, failure, replays
    steps = _ddmin(steps, fails, budget)
    for k, d in enumerate(steps):
        sched = d.get("schedule")
        if not sched or not budget():
            continue

        def fails_sched(cand: list[str], k: int = k) -> bool:
            trial = [dict(x) for x in steps]
            trial[k]["schedule"] = cand
            return fails(trial)

        steps[k] = dict(d, schedule=_ddmin(list(sched), fails_sched, budget))
    # the final replay fixes `last` to this exact list
    fails(steps)
    return steps, last, replays


def write_reproducer(
    path: Path,
    cfg: DeviceConfig,
    policies: dict[str, str],
    steps: list[dict[str, Any]],
    failure: Failure,
    ref_cls: type | None,
    header: str,
    control_faults: tuple[str, ...] = (),
) -> None:
    """The shrunk steps as a scenario; expects are the reference host's results (C5)."""
    out = [dict(s) for s in steps]
    lost = failure.finding.where if failure.invariant == "CONF-LOST" else {}
    if ref_cls is not None:
        from qaicmodel.spec.policies import Policies

        scen = parse(_doc(cfg, policies, out))
        runner = Runner(
            scen.device,
            host_cls=ref_cls,
            policies=Policies(dict(scen.device.policies)),
            control_faults=control_faults,
        )
        for st, d in zip(scen.steps, out, strict=True):
            try:
                res = runner.step(st)
            except Exception:  # noqa: BLE001 - the reference side stops here
                break
            if st.op not in ("run", "nsp", "dump", "ddr_write", "ddr_read"):
                d["expect"] = res["result"]
        label = next((k for k, v in runner.users.items() if v == lost.get("user")), None)
        if label is not None and "bo" in lost:
            # CONF-LOST: a WAIT_BO on the BO, so the scenario itself shows it (the
            # reference completes it; the host under test times out)
            wait = {"op": "wait", "user": label, "dbc_id": lost["dbc"], "handle": lost["bo"]}
            out.append(wait)
            scen = parse(_doc(cfg, policies, out))
            try:
                wait["expect"] = runner.step(scen.steps[-1])["result"]
            except Exception:  # noqa: BLE001 - the reference side stops here
                out.pop()
    if out:
        out[-1]["note"] = f"{header}: {failure}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_doc(cfg, policies, out), indent=1) + "\n")
