"""``qaicmodel bench --fuzz``: decoder fuzzing examples/s per worker, 1 and 2 workers.

Rules (issue #13 "Performance"):
  P1  One run measures both: the ``decoders`` campaign with ``-j 1`` and then ``-j 2``,
      alternately, three times (once with ``--quick``), 8 s each (3 s), the same seed and
      a fresh directory database each time; every
      worker runs the properties in the same order in chunks of 100 examples, so each
      worker's mix of decoders is the same in both phases (a campaign staggers them).
  P2  A worker's rate is its examples over the time from its first example to its last
      (process start-up is not counted); the campaign's rate is the sum over workers.
  P3  Scaling = rate(2 workers) / rate(1 worker); near-linear is 2.0.  The machine's load
      average (1 min) before each phase and the CPU count are printed with the figures,
      since other processes on the machine take cores from the workers; so are each
      worker's examples per CPU-second and the share of a CPU it got (CPU time over wall
      time): per-CPU-second rates that do not drop from 1 to 2 workers say the campaign
      itself scales, and the CPU shares say how much of the machine the workers got.
  P4  The figures are medians over the repetitions of each phase.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["run_fuzz_bench", "text"]


def _phase(jobs: int, tmp: Path, budget: float, seed: int, rep_no: int) -> dict[str, Any]:
    from qaicmodel.testing.fuzz.campaign import Config, run_campaign

    load = os.getloadavg()[0]
    cfg = Config(
        targets=("decoders",),
        jobs=jobs,
        db=str(tmp / f"db{jobs}-{rep_no}"),
        out=str(tmp / f"out{jobs}-{rep_no}"),
        budget=budget,
        seed=seed,
        quiet=True,
        stagger=False,
        chunk=100,
    )
    rep = run_campaign(cfg, emit=lambda s: None)
    ws = rep["workers"]
    return {
        "jobs": jobs,
        "load_avg_1min_before": round(load, 2),
        "per_worker_examples_per_s": [w["examples_per_s"] for w in ws],
        "total_examples_per_s": round(sum(w["examples_per_s"] for w in ws), 1),
        "per_worker_examples_per_cpu_s": [w["examples_per_cpu_s"] for w in ws],
        "per_worker_cpu_share": [
            round(w["cpu_seconds"] / w["seconds"], 2) if w["seconds"] else 0.0 for w in ws
        ],
        "examples": rep["examples"],
        "failures": len(rep["failures"]),
    }


def run_fuzz_bench(quick: bool = False, seed: int = 1) -> dict[str, Any]:
    """P1-P4."""
    budget, reps = (3.0, 1) if quick else (8.0, 3)
    phases = []
    with tempfile.TemporaryDirectory(prefix="qaicmodel-fuzz-bench-") as tmp:
        for r in range(reps):
            for jobs in (1, 2):
                phases.append(_phase(jobs, Path(tmp), budget, seed, r))

    def med(jobs: int, key: str) -> float:
        return statistics.median(p[key] for p in phases if p["jobs"] == jobs)

    one, two = med(1, "total_examples_per_s"), med(2, "total_examples_per_s")
    cpu1 = statistics.median(
        r for p in phases if p["jobs"] == 1 for r in p["per_worker_examples_per_cpu_s"]
    )
    cpu2 = statistics.median(
        r for p in phases if p["jobs"] == 2 for r in p["per_worker_examples_per_cpu_s"]
    )
    return {
        "format": "qaicmodel-bench-fuzz/1",
        "target": "decoders",
        "budget_s_per_phase": budget,
        "repetitions": reps,
        "seed": seed,
        "cpus": os.cpu_count(),
        "phases": phases,
        "median_total_examples_per_s": {"1": one, "2": two},
        "scaling_1_to_2": round(two / one, 2) if one else 0.0,
        "median_per_worker_examples_per_cpu_s": {"1": cpu1, "2": cpu2},
        "per_cpu_s_ratio_2_to_1": round(cpu2 / cpu1, 2) if cpu1 else 0.0,
        "target_scaling": 2.0,
    }


def text(rep: dict[str, Any]) -> str:
    out = [
        f"fuzz bench: target {rep['target']}, {rep['budget_s_per_phase']:.0f} s per phase, "
        f"seed {rep['seed']}, {rep['cpus']} CPUs"
    ]
    for ph in rep["phases"]:
        per = ", ".join(f"{r:,.0f}" for r in ph["per_worker_examples_per_s"])
        out.append(
            f"  -j {ph['jobs']}: {ph['total_examples_per_s']:,.0f} examples/s "
            f"(per worker: {per}); load average before {ph['load_avg_1min_before']}"
        )
        cpu = ", ".join(f"{r:,.0f}" for r in ph["per_worker_examples_per_cpu_s"])
        share = ", ".join(f"{r:.0%}" for r in ph["per_worker_cpu_share"])
        out.append(f"        per CPU-second of each worker: {cpu}; CPU each worker got: {share}")
    out.append(
        f"  scaling 1 -> 2 workers (medians): {rep['scaling_1_to_2']:.2f}x wall-clock "
        f"(near-linear = 2.0x); examples per CPU-second per worker "
        f"{rep['median_per_worker_examples_per_cpu_s']['1']:,.0f} -> "
        f"{rep['median_per_worker_examples_per_cpu_s']['2']:,.0f} "
        f"({rep['per_cpu_s_ratio_2_to_1']:.2f}x; 1.0x = no loss from the second worker)"
    )
    return "\n".join(out)
