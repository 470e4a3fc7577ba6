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
    p.add_argument(
        "--host",
        default=None,
        metavar="MODULE:CLASS|spec|impl|linux",
        help=f"host implementation to run (default {DEFAULT_HOST}); 'spec' and "
        "'impl' name the model's two hosts, 'linux' runs the ioctl steps on "
        "the real accel/qaic driver in the UML guest against the model "
        "(needs `qaicmodel uml build --kernel 7.2`)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="--host linux: kill the guest after S seconds (default 120)",
    )
    p.add_argument(
        "--console", default=None, metavar="FILE", help="--host linux: save the guest console here"
    )
    p.add_argument(
        "--linux-datapath",
        default="polling",
        choices=["polling", "irq"],
        help="--host linux: the driver's data-path mode (default polling: "
        "qaic.datapath_polling=1; irq reads the ring registers in hard-IRQ "
        "context, which UML's virtio_pcidev does not survive reliably, see "
        "qaicmodel/scenario/linux.py H6)",
    )
    p.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="ID=ALT",
        help="choose a policy alternative, over the file's device.policies (repeatable)",
    )
    p.add_argument(
        "--kernel-version",
        default=None,
        choices=KERNEL_CHOICES,
        help="the accel/qaic driver version the host follows (default: the "
        "file's device.kernel, else upstream = the newest, 7.2)",
    )


#: short names of the model's hosts for ``--host``
HOST_ALIASES = {"spec": DEFAULT_HOST, "impl": "qaicmodel.impl.host:ImplHost"}


def run_cli(args: argparse.Namespace) -> int:
    if args.host == "linux":
        import sys
        from pathlib import Path

        from qaicmodel.scenario.linux import run_scenario_linux

        if args.timeout <= 0:
            from qaicmodel.errors import ArgumentError

            raise ArgumentError(f"--timeout must be positive, not {args.timeout}")
        lx = run_scenario_linux(
            args.file,
            kernel=args.kernel_version,
            timeout=args.timeout,
            console=Path(args.console) if args.console else None,
            datapath=args.linux_datapath,
            policies=args.policy,
        )
        print(f"qaicmodel: scenario: linux host: guest console {lx.run.console}", file=sys.stderr)
        report = lx.report
    else:
        ref = HOST_ALIASES.get(args.host, args.host) if args.host else None
        host_cls = load_host(ref) if ref else None
        report = run_scenario(
            args.file, host_cls=host_cls, kernel=args.kernel_version, policies=args.policy
        )
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report.text())
    return report.exit_code
