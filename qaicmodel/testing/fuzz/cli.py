"""``qaicmodel fuzz TARGET ... [-j N] [--db DIR|redis://HOST:PORT] [--budget S] [--seed N]``
and ``qaicmodel fuzz --replay``.

Rules:
  F1  This module imports neither hypothesis nor a target at import time (Z4): the parser
      is built for every ``qaicmodel`` command.
  F2  Every campaign prints its seed and the command that replays it first; a campaign
      exits 1 when it found a failure, 0 when not; a bad argument, or a worker stopped by
      an internal error (a bug of the campaign, not of a target), exits 2 with one line.
  F3  ``--replay`` re-runs every replay file under ``--out`` (the check itself, on the
      recorded input, no Hypothesis) and then every failure the database holds for the
      properties of TARGET (or of the targets the replay files name): Hypothesis' reuse
      phase only, each hit written as a replay file too.  Exit 1 when any still fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from qaicmodel.errors import ArgumentError

__all__ = ["add_args", "run_cli", "TARGETS"]

#: TARGET -> what it fuzzes (the properties are in targets.py / hosts.py)
TARGETS: dict[str, str] = {
    "decoders": "every decoder below, the trace readers and the scenario parser",
    "request": "describe_request (64-byte request FIFO element)",
    "response": "describe_response (4-byte response FIFO element)",
    "sem": "describe_sem (sem_cmd word)",
    "nnc": "NNC describe/decode (both directions, CRC) and QSM's command parser",
    "ssr": "SSR describe/decode",
    "ras": "RAS describe/decode",
    "sahara": "Sahara describe/decode",
    "timesync": "QTS header describe/decode",
    "trace": "trace readers: qaicmodel-trace/1 JSON Lines and mmiotrace text",
    "scenario": "the scenario file parser (qaicmodel-scenario/1)",
    "host": "a host under conform (--host M:C|spec|impl): conform seeds, one episode per row",
    "guest": "the real accel/qaic driver in the UML guest: short scenarios via "
    "`qaicmodel scenario FILE --host linux` against the spec host's outcomes",
    "hunt": "the ambiguity hunt's search (qaicmodel hunt): one episode per example; a "
    "witness that does not replay is a failure",
    "planted": "TEST-ONLY: a decoder with a planted bug, and one that never fails",
}
DEFAULT_BUDGET = 60.0


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target",
        nargs="*",
        metavar="TARGET",
        help="what to fuzz: " + ", ".join(TARGETS) + " (several may be given)",
    )
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="worker processes")
    p.add_argument(
        "--db",
        default=None,
        metavar="DIR|redis://HOST:PORT",
        help="the shared example database (default .qaicmodel-fuzz-db)",
    )
    p.add_argument("--out", default="fuzz-failures", metavar="DIR", help="replay files")
    p.add_argument(
        "--budget", type=float, default=DEFAULT_BUDGET, metavar="S", help="seconds (default 60)"
    )
    p.add_argument("--seed", type=int, default=None, metavar="N", help="campaign seed")
    p.add_argument(
        "--examples", type=int, default=None, metavar="N", help="stop each worker after N examples"
    )
    p.add_argument("--host", default=None, metavar="M:C|spec|impl", help="host for TARGET host")
    p.add_argument(
        "--example-timeout",
        type=float,
        default=None,
        metavar="S",
        help="host, guest: seconds one example may run (default 300 host, 120 guest)",
    )
    p.add_argument("--replay", action="store_true", help="re-run every saved failure (F3)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def _targets(args: argparse.Namespace) -> list[str]:
    names = [t for arg in args.target for t in arg.split(",") if t]
    if not names and args.host:
        names = ["host"]
    for t in names:
        if t not in TARGETS:
            raise ArgumentError(f"unknown fuzz target {t!r}; known: {', '.join(TARGETS)}")
    return names


def _params(args: argparse.Namespace, targets: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {"out": args.out}
    if args.example_timeout is not None:
        if args.example_timeout <= 0:
            raise ArgumentError(f"--example-timeout must be positive, not {args.example_timeout}")
        params["example_timeout"] = args.example_timeout
    if "host" in targets:
        from qaicmodel.spec.host.protocol import load_host
        from qaicmodel.testing.fuzz.hosts import HOST_ALIASES

        ref = HOST_ALIASES.get(args.host or "impl", args.host or "impl")
        load_host(ref)  # ArgumentError now, not in a worker
        params["host"] = ref
    if "guest" in targets:
        from qaicmodel.emu import kbuild

        if kbuild.find_kernel("7.2") is None:
            raise ArgumentError(
                "fuzz target guest needs the UML kernel: qaicmodel uml build --kernel 7.2"
            )
    return params


def run_cli(args: argparse.Namespace) -> int:
    targets = _targets(args)
    if args.jobs < 1 or args.jobs > 256:
        raise ArgumentError(f"-j must be 1..256, not {args.jobs}")
    if args.budget <= 0:
        raise ArgumentError(f"--budget must be positive, not {args.budget}")
    if args.examples is not None and args.examples < 1:
        raise ArgumentError(f"--examples must be >= 1, not {args.examples}")
    db = args.db or ".qaicmodel-fuzz-db"
    if args.replay:
        from qaicmodel.testing.fuzz.replay import replay

        rep = replay(Path(args.out), db, targets, db_given=args.db is not None)
        if args.json:
            print(json.dumps(rep, indent=2))
        return 1 if rep["still_failing"] else 0
    if not targets:
        raise ArgumentError("give a TARGET (" + ", ".join(TARGETS) + ") or --replay")
    from qaicmodel.testing.fuzz.campaign import Config, rate, run_campaign

    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    cfg = Config(
        targets=tuple(targets),
        jobs=args.jobs,
        db=db,
        out=args.out,
        budget=args.budget,
        seed=seed,
        examples=args.examples,
        params=_params(args, targets),
        quiet=args.quiet,
    )
    again = f"qaicmodel fuzz {' '.join(targets)} -j {args.jobs} --seed {seed}"
    if args.examples is not None:
        again += f" --examples {args.examples}"
    if args.host:
        again += f" --host {args.host}"
    print(f"qaicmodel fuzz: seed {seed} (replay: {again}; saved failures: qaicmodel fuzz --replay)")
    sys.stdout.flush()
    rep = run_campaign(cfg)
    if rep["worker_errors"]:  # a bug of the campaign, not a finding: one line, exit 2
        w, err = next(iter(rep["worker_errors"].items()))
        sys.stderr.write(f"qaicmodel: fuzz: worker {w} stopped on an internal error: {err}\n")
        return 2
    if rep["workers_stopped"]:
        sys.stderr.write(
            f"qaicmodel: fuzz: workers {rep['workers_stopped']} were stopped at the time "
            "limit in the middle of an example (its examples are not counted)\n"
        )
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        per = ", ".join(
            f"w{w['worker']} {w['examples']} ({rate(w['examples_per_s'])}/s)"
            for w in rep["workers"]
        )
        print(
            f"fuzz: {rep['examples']} examples [{per}], {rep['behaviours']} behaviours, "
            f"{len(rep['failures'])} failures; seed {seed}"
        )
    return 1 if rep["failures"] else 0
