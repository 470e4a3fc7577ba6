"""The ``qaicmodel conform`` command line: arguments, the text report, ``--replay``.

The exploration itself (rules C1-C6) is :mod:`qaicmodel.oracle.conform`; this module
only parses, validates and prints (C6: exit 0 conformed, 1 a failure, 2 bad arguments).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from qaicmodel.errors import ArgumentError
from qaicmodel.oracle.conform import DEFAULT_BUDGET, DEFAULT_HOST, run_conformance
from qaicmodel.oracle.shrink import replay
from qaicmodel.scenario.format import load
from qaicmodel.scenario.runner import DEFAULT_HOST as SCENARIO_HOST
from qaicmodel.spec.host.kernels import CHOICES as KERNEL_CHOICES
from qaicmodel.spec.host.protocol import load_host

__all__ = ["add_args", "replay_file", "run_cli"]


def _text(rep: dict[str, Any]) -> str:
    cov = rep["policies_covered"]
    lines = [
        f"qaicmodel conform: {rep['verdict']}",
        f"  host:       {rep['host']}"
        + (
            f" (checked against {rep['reference']})"
            if rep["reference"]
            else " (reference host; checked against the device's rules only)"
        ),
        f"  seed:       {rep['seed']}  (replay every episode of this run: {rep['replay']})",
        f"  time:       {rep['elapsed_s']} s of a {rep['budget_s']} s budget",
        f"  episodes:   {rep['episodes']}   steps: {rep['steps']}   actor actions: "
        f"{rep['actions']}",
        f"  invariants: {rep['invariants_total']} checks "
        + ", ".join(f"{k} {v}" for k, v in rep["invariants_checked"].items()),
        f"  policies:   {cov['policies']} policies, {cov['alternatives_covered']}/"
        f"{cov['alternatives_total']} alternatives, {cov['pairs_covered']}/"
        f"{cov['pairs_total']} pairs, {cov['rows_run']}/{cov['rows_total']} pairwise rows",
    ]
    if cov["pinned"]:
        lines.append("  pinned:     " + ", ".join(f"{k}={v}" for k, v in cov["pinned"].items()))
    for k, why in cov["held_at_default"].items():
        lines.append(
            f"  held:       {k} at its default (the driver itself assumes it: {why}; "
            f"--policy {k}=ALT to explore)"
        )
    if not rep["failures"]:
        lines.append("  failures:   none")
    for f in rep["failures"]:
        lines.append(f"  FAILURE {f['invariant']} ({f['description']}): {f['message']}")
        lines.append(
            f"    policies {f['policies']}; episode {f['episode']}; shrunk "
            f"{f['steps_before_shrink']} -> {f['steps_after_shrink']} steps"
        )
        lines.append(
            f"    reproducer: {f['reproducer']}"
            + ("" if f["reproduces"] else "  (WARNING: did not replay)")
        )
        lines.append(f"    replay:     {f['replay']}")
    for f in rep.get("driver_findings", []):
        hits = rep.get("driver_finding_hits", {}).get(f["invariant"], 1)
        lines.append(f"  DRIVER FINDING {f['invariant']} ({hits} episodes): {f['message']}")
        lines.append(f"    {f['driver_finding']}")
        lines.append(f"    reproducer: {f['reproducer']}")
    return "\n".join(lines)


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        metavar="MODULE:CLASS",
        help=f"the host to check (default {DEFAULT_HOST}); any class implementing "
        "qaicmodel.spec.host.Host",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET,
        metavar="SECONDS",
        help=f"time to spend exploring (default {DEFAULT_BUDGET:g})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="PRNG seed (always printed); with --episodes the run replays exactly",
    )
    p.add_argument(
        "--episodes",
        type=int,
        default=None,
        metavar="N",
        help="exactly N episodes per policy row (exact replay; ignores --budget)",
    )
    p.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="ID=ALT",
        help="pin a policy in every row (repeatable)",
    )
    p.add_argument(
        "--out",
        default="conform-failures",
        metavar="DIR",
        help="where reproducer scenarios are written (default ./conform-failures)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--kernel-version",
        default="upstream",
        choices=KERNEL_CHOICES,
        help="the accel/qaic driver version the hosts follow (default upstream = the newest, 7.2)",
    )
    p.add_argument(
        "--replay",
        default=None,
        metavar="FILE",
        help="re-run a reproducer scenario with every conform check (host under "
        "test side by side with the reference host) and report its failure",
    )


def replay_file(path: str, host: str) -> dict[str, Any]:
    """``--replay``: a scenario file through :func:`replay` (all C4 checks)."""
    scen = load(path)
    raw = json.loads(Path(path).read_text())
    host_cls = load_host(host)
    ref_cls = load_host(SCENARIO_HOST)
    f = replay(
        scen.device,
        dict(scen.device.policies),
        raw["steps"],
        host_cls,
        None if ref_cls is host_cls else ref_cls,
    )
    return {
        "format": "qaicmodel-conform-replay/1",
        "file": path,
        "host": host,
        "verdict": "conforms" if f is None else "FAILED",
        "failure": None
        if f is None
        else {
            "invariant": f.invariant,
            "step": f.index,
            "op": f.op,
            "message": f.message,
            "finding": f.finding.as_dict(),
        },
    }


def run_cli(args: argparse.Namespace) -> int:
    from qaicmodel.spec.policies import Policies

    if not args.budget > 0 or args.budget > 24 * 3600:
        raise ArgumentError(f"--budget must be in (0, 86400] seconds, got {args.budget}")
    if args.episodes is not None and args.episodes < 1:
        raise ArgumentError(f"--episodes must be >= 1, got {args.episodes}")
    if args.seed is not None and not 0 <= args.seed < 1 << 64:
        raise ArgumentError(f"--seed must be 0 .. 2**64-1, got {args.seed}")
    pinned = dict(Policies.parse(args.policy).chosen)
    load_host(args.host)  # a bad --host is exit 2 before anything is printed
    if args.replay is not None:
        out = replay_file(args.replay, args.host)
        if args.json:
            print(json.dumps(out, indent=2))
        elif out["failure"] is None:
            print(f"{args.replay}: conforms (host {args.host})")
        else:
            f = out["failure"]
            print(
                f"{args.replay}: FAILED {f['invariant']} at step {f['step']} ({f['op']}): "
                f"{f['message']}"
            )
        return 0 if out["failure"] is None else 1
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    sys.stderr.write(
        f"qaicmodel conform: seed {seed}, host {args.host}, budget {args.budget:g} s\n"
    )
    rep = run_conformance(
        args.host,
        seed=seed,
        budget=args.budget,
        episodes=args.episodes,
        policies=pinned,
        out_dir=args.out,
        progress=sys.stderr,
        kernel=args.kernel_version,
    )
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print(_text(rep))
    return 0 if not rep["failures"] else 1
