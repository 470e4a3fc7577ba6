"""``qaicmodel scenario FILE.json [--json] [--host MODULE:CLASS]``."""

from __future__ import annotations

import argparse
import json

from qaicmodel.scenario.runner import DEFAULT_HOST, run_scenario
from qaicmodel.spec.host.kernels import CHOICES as KERNEL_CHOICES
from qaicmodel.spec.host.protocol import load_host

__all__ = ["add_args", "run_cli"]

# ---------------------------------------------------------------------------
# CLI


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="scenario file (qaicmodel-scenario/1)")
    p.add_argument("--json", action="store_true", help="print the qaicmodel-result/1 report")
    p.add_argument("--host", default=None, metavar="MODULE:CLASS",
                   help=f"host implementation to run (default {DEFAULT_HOST})")
    p.add_argument("--kernel-version", default=None, choices=KERNEL_CHOICES,
                   help="the accel/qaic driver version the host follows (default: the "
                        "file's device.kernel, else upstream = the newest, 7.2)")


def run_cli(args: argparse.Namespace) -> int:
    host_cls = load_host(args.host) if args.host else None
    report = run_scenario(args.file, host_cls=host_cls, kernel=args.kernel_version)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report.text())
    return report.exit_code

