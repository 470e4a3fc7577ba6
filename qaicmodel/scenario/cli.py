"""``qaicmodel scenario FILE.json [--json] [--host MODULE:CLASS] [--control-host MODULE:CLASS]
[--control-fault NAME[:SEED[:AT]][+] ...]``."""

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
        "--control-host",
        default=None,
        metavar="MODULE:CLASS",
        help="control client to run instead of the driver's (qaic_control.c model, "
        "qaicmodel.spec.control.manage:ControlClient); see qaicmodel.spec.control.protocol",
    )
    p.add_argument(
        "--control-fault",
        action="append",
        default=[],
        metavar="NAME[:SEED[:AT]][+]",
        help="arm a device-side control fault (qaicmodel.spec.control.faults) on the AT-th "
        "eligible exchange (default the first; '+': and every later one); repeatable",
    )
    p.add_argument(
        "--host-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="--host MODULE:CLASS: a host call running longer than S seconds fails the "
        "scenario (exit 1; default 5, 0 disables the watchdog)",
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
    if args.host == "linux" and (args.control_host or args.control_fault):
        from qaicmodel.errors import ArgumentError

        raise ArgumentError("--control-host/--control-fault run on the model, not --host linux")
    control: dict[str, object] = {}
    if args.control_host or args.control_fault:
        from qaicmodel.spec.control import faults
        from qaicmodel.spec.control.protocol import load_control_host

        control["control_host"] = (
            load_control_host(args.control_host) if args.control_host else None
        )
        control["control_faults"] = [faults.parse_spec(f) and f for f in args.control_fault]
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
        host_cls = load_host(ref) if ref else None  # also finds MODULE in the current dir
        from qaicmodel.oracle import watchdog

        if host_cls is not None and ref is not None:
            from qaicmodel.scenario.format import load

            watchdog.probe(host_cls, ref, load(args.file).device)  # failing constructor: exit 2
            host_cls = watchdog.guard_host(host_cls)  # a hang or crash: one line, exit 1
        try:
            with watchdog.timeout(args.host_timeout):
                report = run_scenario(
                    args.file,
                    host_cls=host_cls,
                    kernel=args.kernel_version,
                    policies=args.policy,
                    **control,
                )
        except (watchdog.HostHang, watchdog.HostCrash) as e:
            site = e.site(load_host(ref)) if isinstance(e, watchdog.HostHang) and ref else None
            print(f"HOST FAILED ({ref}): {e}" + (f"; it was running {site}" if site else ""))
            return 1
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report.text())
    return report.exit_code
