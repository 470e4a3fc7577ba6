"""``qaicmodel hunt``: the command line (arguments, the table, ``--replay``, ``--host linux``).

``qaicmodel hunt [--policy ID[=ALT] ...] [--pairs] [--host M:C|spec|impl|linux]
[--budget S] [--episodes N] [--seed N] [--out DIR] [--json] [--replay FILE]``

Exit status: 0 the hunt ran and the host under test behaved correctly under every side
of every witness (``--replay``: the witness holds); 1 the host depends on one reading
somewhere (``--replay``: the witness no longer holds; ``--host linux``: the real
driver broke a rule or differed from the model); 2 bad arguments.

``--host linux`` searches with the reference host and then runs every witness on the
real accel/qaic driver in the UML guest once per side (qaicmodel/scenario/linux.py, the
``qaicmodel scenario FILE --host linux`` path; :mod:`.linux`).  Per side it says whether
the driver broke no device rule and left no splat (``driver_correct``; exit 1 when not)
and whether it gave the results the model's reference host recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from qaicmodel.errors import ArgumentError

__all__ = ["add_args", "run_cli", "table"]

DEFAULT_BUDGET = 120.0
DEFAULT_OUT = "hunt-witnesses"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="ID[=ALT]",
        help="hunt this policy (repeatable; ID=ALT: only that alternative); default: all",
    )
    p.add_argument("--pairs", action="store_true", help="also hunt pairs of policies (S1)")
    p.add_argument(
        "--host",
        default="spec",
        metavar="MODULE:CLASS|spec|impl|linux",
        help="the host under test (default spec, the reference host); linux: search with "
        "the reference host, then replay every witness on the real driver in UML",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET,
        metavar="S",
        help=f"seconds for the whole search (default {DEFAULT_BUDGET:.0f})",
    )
    p.add_argument(
        "--episodes",
        type=int,
        default=None,
        metavar="N",
        help="exactly N episodes per target (budget ignored): an exact replay",
    )
    p.add_argument("--seed", type=int, default=None, metavar="N", help="PRNG seed (printed)")
    p.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"where witnesses are written (default {DEFAULT_OUT}/)",
    )
    p.add_argument("--json", action="store_true", help="print the qaicmodel-hunt/1 report")
    p.add_argument(
        "--replay",
        default=None,
        metavar="FILE",
        help="re-run a witness file on every recorded side; exit 0 if it holds",
    )
    p.add_argument(
        "--kernel-version",
        default=None,
        metavar="V",
        help="the accel/qaic driver version the model's hosts follow",
    )
    p.add_argument(
        "--linux-timeout",
        type=float,
        default=180.0,
        metavar="S",
        help="--host linux: kill each guest after S seconds (default 180)",
    )


def _hosts(ref: str) -> tuple[str, type, type | None]:
    from qaicmodel.scenario.cli import HOST_ALIASES
    from qaicmodel.scenario.runner import DEFAULT_HOST
    from qaicmodel.spec.host.protocol import load_host

    full = HOST_ALIASES.get(ref, ref)
    cls = load_host(full)
    refc = load_host(DEFAULT_HOST)
    return full, cls, (None if refc is cls else refc)


def run_cli(args: argparse.Namespace) -> int:
    if args.kernel_version is not None:
        from qaicmodel.spec.host import kernels

        kernels.parse(args.kernel_version)
    linux = args.host == "linux"
    if linux and args.linux_timeout <= 0:
        raise ArgumentError(f"--linux-timeout must be positive, not {args.linux_timeout}")
    host_ref, host_cls, ref_cls = _hosts("spec" if linux else args.host)
    if args.replay is not None:
        return _replay(args, host_cls, linux)
    from qaicmodel.oracle.hunt.run import Hunt

    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    hunt = Hunt(
        host_ref=host_ref,
        host_cls=host_cls,
        ref_cls=ref_cls,
        seed=seed,
        budget=args.budget,
        episodes=args.episodes,
        names=list(args.policy),
        pairs=args.pairs,
        out_dir=Path(args.out),
        kernel=args.kernel_version,
        progress=sys.stderr,
    )  # the arguments are checked here, before anything runs
    print(f"qaicmodel: hunt: seed {seed}", file=sys.stderr)
    rep = hunt.run().report()
    if linux:
        from qaicmodel.oracle.hunt.linux import linux_replay

        rep["linux"] = [linux_replay(path, d, args.linux_timeout) for path, d in hunt.witness_docs]
        rep["host"] = "linux (search: " + host_ref + ")"
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print(table(rep))
    bad = bool(rep["host_depends_on_a_reading"])
    if linux:
        bad = bad or any(not s["ok"] for r in rep["linux"] for s in r["sides"])
    return 1 if bad else 0


def _replay(args: argparse.Namespace, host_cls: type, linux: bool) -> int:
    from qaicmodel.oracle.hunt.witness import read_witness, replay_witness

    d = read_witness(args.replay)
    out = replay_witness(d, host_cls)
    if linux:
        from qaicmodel.oracle.hunt.linux import linux_replay

        out["linux"] = linux_replay(Path(args.replay), d, args.linux_timeout)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, s in enumerate(out["sides"]):
            pols = ",".join(f"{a}={b}" for a, b in s["policies"].items())
            ch = s["first_change"]
            what = "recorded results" if s["holds"] else f"differs at step {ch['step']}: {ch}"
            print(f"side {k} [{pols}]: {what}")
        for s in out.get("linux", {}).get("sides", []):
            print(f"linux [{s['policies']}]: {s['verdict']}")
        print(f"witness {out['target']}: {'holds' if out['holds'] else 'DOES NOT HOLD'}")
    ok = out["holds"] and all(s["ok"] for s in out.get("linux", {}).get("sides", []))
    return 0 if ok else 1


def table(rep: dict[str, Any]) -> str:
    """R4 as text: one line per target."""
    lines = [
        f"hunt: host {rep['host']}, seed {rep['seed']}, {rep['targets']} targets, "
        f"{rep['witnesses']} witnesses, {rep['elapsed_s']:.0f} s",
        "",
        f"{'target':<44} {'result':<9} {'time':>6}  difference / host under test",
    ]
    for r in rep["rows"]:
        res = {"witness": "WITNESS", "none": "none", "model-error": "MODEL-ERR"}[r["status"]]
        cat = "" if r["category"] == "device" else f" [{r['category']}]"
        lines.append(f"{r['target']:<44} {res:<9} {r['seconds']:>5.1f}s  {r['difference']}{cat}")
        if r["status"] == "witness":
            bad = [c for c in r["host_checks"] if c["correct"] is not True]
            if bad:
                host = _host_line("host", r["host_correct"], bad)
            elif "host_break" in r:
                host = "host correct on this witness under every alternative"
            else:
                host = "host correct under every alternative (on every witness found)"
            lines.append(f"{'':<61}{host[:200]}")
            lines += _driver_lines(r["host_checks"])
            lines.append(f"{'':<61}{r['witness']} ({r['steps']} steps)")
            hb = r.get("host_break")
            if hb is not None:
                fails = [c for c in hb["host_checks"] if c["correct"] is not True]
                lines.append(f"{'':<61}{hb['difference'][:200]}")
                lines.append(
                    f"{'':<61}{_host_line('later witness: host', r['host_correct'], fails)[:200]}"
                )
                lines += _driver_lines(hb["host_checks"])
                lines.append(f"{'':<61}{hb['witness']} ({hb['steps']} steps)")
    for s in rep["not_searched"]:
        lines.append(f"{s['policy']:<44} {'-':<9} {'':>6}  not searched: {s['why']}")
    for lx in rep.get("linux", []):
        for s in lx["sides"]:
            lines.append(f"linux {lx['target']} [{s['policies']}]: {s['verdict']}")
    for msg, n in rep.get("generator_errors", {}).items():
        lines.append(f"conform's episode generator raised {n}x (episode ended): {msg}")
    lines.append("")
    lines.append(f"replay: qaicmodel hunt {rep['replay']}")
    return "\n".join(lines)


def _sides(c: dict[str, Any]) -> str:
    return ",".join(f"{a}={b}" for a, b in c["policies"].items())


def _host_line(head: str, correct: bool | None, bad: list[dict[str, Any]]) -> str:
    word = "DEPENDS ON ONE READING" if correct is False else "not checked"
    return f"{head} {word}: " + "; ".join(f"{_sides(c)}: {c['failure']}" for c in bad)


def _driver_lines(checks: list[dict[str, Any]]) -> list[str]:
    """search.py S4: a driver finding is the driver's, not the host being incorrect."""
    return [
        f"{'':<61}{('driver finding, not the host: ' + _sides(c) + ': ' + c['driver_finding'])[:200]}"
        for c in checks
        if c.get("driver_finding")
    ]
