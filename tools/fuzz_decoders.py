#!/usr/bin/env python3
"""Fuzz every decoder for a long time (not part of CI): ``qaicmodel fuzz decoders``.

Usage: python tools/fuzz_decoders.py [-n N] [--seed S] [-j J] [--budget S]

Kept for its old command line; the campaign itself is ``qaicmodel fuzz decoders -j J
--examples N --seed S`` (qaicmodel/testing/fuzz/, issue #13 item 4): every decoder of
``qaicmodel decode``, the strict NNC/SSR/RAS/Sahara/QTS decoders, QSM's command parser, the
trace readers and the scenario parser, on random and mutated bytes; anything but a result
or an exception of qaicmodel.errors is a failure, written to fuzz-failures/ and replayed by
``qaicmodel fuzz --replay``.  The seed is printed first; the exit status is 1 on a failure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qaicmodel.cli import main as qaicmodel_main  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000, help="examples per worker")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("-j", type=int, default=1, help="worker processes")
    ap.add_argument("--budget", type=float, default=3600.0, help="seconds at most")
    args = ap.parse_args()
    argv = ["fuzz", "decoders", "-j", str(args.j), "--examples", str(args.n)]
    argv += ["--budget", str(args.budget)]
    if args.seed is not None:
        argv += ["--seed", str(args.seed)]
    return qaicmodel_main(argv)


if __name__ == "__main__":
    sys.exit(main())
