"""``qaicmodel bench --conform``: conform's exploration speed as a ratio to a bare loop.

What is measured (issue #12 item 6), all in one run, on the same machine state:
  CB1  *conform*: conform episodes (:class:`qaicmodel.oracle.shrink.Episode`, the rule
       verdict, the default host, the pairwise policy rows in turn, the episode seeds of
       ``--seed``) for ``seconds``; figures: device+host actor steps per second
       (``actions``, what a fuzzing campaign's reach depends on) and scenario steps per
       second.  Shrinking is not part of it (it runs only after a failure).
  CB2  *differential*: the same episodes with ``--differential`` (the reference host run
       beside it step for step, its device state compared after every step: the old
       verdict), same figures.
  CB3  *bare loop*: a scheduler loop (:func:`qaicmodel.spec.scheduler.run` with a
       seeded :class:`~qaicmodel.spec.scheduler.RandomScheduler`) over the same device,
       host and echo workload, set up by the scenario runner: execute an inference,
       run the actors until quiescent, again -- no checks, no generator; actor steps
       per second.
  CB4  ratios: conform / bare loop and differential / bare loop (actor steps per
       second).  The target, conform >= 20000 actor steps/s, is printed, not enforced.

The bench reads the clock; the model never does (docs/design.md).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

__all__ = ["TARGET_STEPS_PER_S", "bare_loop", "episodes", "run", "text"]

TARGET_STEPS_PER_S = 20_000.0


def bare_loop(seconds: float, seed: int = 1) -> dict[str, Any]:
    """CB3: actor steps per second of a plain scheduler loop."""
    from qaicmodel.impl.host import ImplHost
    from qaicmodel.scenario.format import parse
    from qaicmodel.scenario.runner import Runner
    from qaicmodel.spec import scheduler
    from qaicmodel.spec.dbc.workload import input_slice, output_slice

    n = 4096
    doc = {
        "format": "qaicmodel-scenario/1",
        "device": {"num_dbc": 2, "sg_max_segment": 4096},
        "steps": [
            {"op": "open", "user": "u0"},
            {
                "op": "activate",
                "user": "u0",
                "queue_size": 16,
                "as": "d0",
                "workload": {
                    "kind": "echo",
                    "in_addr": 0x10_0000,
                    "out_addr": 0x20_0000,
                    "length": n,
                },
            },
            {"op": "create_bo", "user": "u0", "size": n, "as": "i"},
            {"op": "create_bo", "user": "u0", "size": n, "as": "o"},
            {
                "op": "attach_slice",
                "user": "u0",
                "hdr": {"dbc_id": "d0", "handle": "i", "dir": 1, "size": n},
                "entries": [{"size": n, "dev_addr": 0x10_0000, **input_slice(0, last=True)}],
            },
            {
                "op": "attach_slice",
                "user": "u0",
                "hdr": {"dbc_id": "d0", "handle": "o", "dir": 2, "size": n},
                "entries": [{"size": n, "dev_addr": 0x20_0000, **output_slice(1, last=True)}],
            },
        ],
    }
    scen = parse(doc)
    r = Runner(scen.device, host_cls=ImplHost)
    for st in scen.steps:
        r.step(st)
    uid, dbc = r.uid("u0"), r.names["d0"]
    hin, hout = r.names["i"], r.names["o"]
    actors = [a for _t, a in r.actors()]
    sched = scheduler.RandomScheduler(seed)
    steps = rounds = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        r.host.execute(uid, dbc, [(hin, 1), (hout, 2)])
        steps += scheduler.run(actors, sched, max_steps=10_000)
        rounds += 1
    dt = time.perf_counter() - t0
    return {
        "actor_steps": steps,
        "inferences": rounds,
        "seconds": round(dt, 3),
        "per_s": steps / dt,
    }


def episodes(seconds: float, seed: int = 1, differential: bool = False) -> dict[str, Any]:
    """CB1/CB2: conform episodes for ``seconds``; actor steps and scenario steps per second."""
    from qaicmodel.oracle.conform import DEFAULT_HOST, Conformance
    from qaicmodel.oracle.pair import Failure
    from qaicmodel.oracle.shrink import EPISODE_MOVES, Episode, _episode_seed

    c = Conformance(
        DEFAULT_HOST,
        seed=seed,
        budget=seconds,
        episodes=None,
        pinned={},
        out_dir=Path("."),
        differential=differential,
    )
    actions = steps = eps = fails = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        ri = eps % len(c.rows)
        e = Episode(
            _episode_seed(seed, ri, eps // len(c.rows)),
            c.rows[ri],
            c.host_cls,
            c.ref_cls,
            kernel=c.kernel,
            differential=differential,
        )
        f = e.run(EPISODE_MOVES, None)
        fails += isinstance(f, Failure)
        actions += e.actions
        steps += len(e.steps)
        eps += 1
    dt = time.perf_counter() - t0
    return {
        "mode": "differential" if differential else "rules",
        "episodes": eps,
        "actor_steps": actions,
        "scenario_steps": steps,
        "episodes_with_findings": fails,
        "seconds": round(dt, 3),
        "per_s": actions / dt,
        "scenario_steps_per_s": steps / dt,
    }


def run(seconds: float = 10.0, seed: int = 1) -> dict[str, Any]:
    """CB1-CB4 in one run."""
    bare = bare_loop(seconds / 2, seed)
    rules = episodes(seconds, seed)
    diff = episodes(seconds / 2, seed, differential=True)
    return {
        "format": "qaicmodel-bench-conform/1",
        "seed": seed,
        "bare_loop": bare,
        "conform": rules,
        "differential": diff,
        "ratio_conform_over_bare": rules["per_s"] / bare["per_s"],
        "ratio_differential_over_bare": diff["per_s"] / bare["per_s"],
        "target_steps_per_s": TARGET_STEPS_PER_S,
        "target_met": rules["per_s"] >= TARGET_STEPS_PER_S,
    }


def text(rep: dict[str, Any]) -> str:
    b, c, d = rep["bare_loop"], rep["conform"], rep["differential"]
    return "\n".join(
        [
            f"qaicmodel bench --conform (seed {rep['seed']})",
            f"  bare scheduler loop     {b['per_s']:9.0f} actor steps/s "
            f"({b['actor_steps']} steps, {b['inferences']} inferences, {b['seconds']} s)",
            f"  conform (rules)         {c['per_s']:9.0f} actor steps/s, "
            f"{c['scenario_steps_per_s']:.0f} scenario steps/s ({c['episodes']} episodes)"
            f"  = {rep['ratio_conform_over_bare']:.2f} x bare",
            f"  conform --differential  {d['per_s']:9.0f} actor steps/s, "
            f"{d['scenario_steps_per_s']:.0f} scenario steps/s ({d['episodes']} episodes)"
            f"  = {rep['ratio_differential_over_bare']:.2f} x bare",
            f"  target: conform >= {rep['target_steps_per_s']:.0f} actor steps/s: "
            + ("met" if rep["target_met"] else "NOT met"),
        ]
    )
