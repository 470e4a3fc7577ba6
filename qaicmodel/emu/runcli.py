"""``qaicmodel uml run``: the command line over :func:`qaicmodel.emu.runner.run`."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qaicmodel.emu.runner import DEFAULT_TIMEOUT, _default_board, resolve_kernel, run
from qaicmodel.errors import ArgumentError, QaicModelError, UmlError

__all__ = ["add_args", "run_cli"]


# -- the command line ----------------------------------------------------------------


def add_args(p: Any) -> None:
    from qaicmodel.emu import kbuild

    p.add_argument(
        "--kernel",
        default=kbuild.DEFAULT_KERNEL,
        choices=sorted(kbuild.KERNELS),
        help=f"the built kernel to boot (default {kbuild.DEFAULT_KERNEL}; build it "
        "with `qaicmodel uml build`)",
    )
    p.add_argument(
        "--kasan",
        action="store_true",
        help="boot the KASAN/lockdep build (`qaicmodel uml build --kasan`)",
    )
    p.add_argument(
        "--kernel-tree",
        type=Path,
        default=None,
        metavar="DIR",
        help="boot the build of your own kernel tree (`qaicmodel uml build "
        "--kernel-tree DIR` made it)",
    )
    p.add_argument(
        "--vmlinux",
        type=Path,
        default=None,
        help="boot this UML kernel binary instead of a built one",
    )
    p.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="ID=ALT",
        help="choose a policy alternative for the device (repeatable)",
    )
    p.add_argument("--seed", type=int, default=0, help="the device scheduler's seed (default 0)")
    p.add_argument(
        "--trace",
        type=Path,
        default=None,
        metavar="OUT.jsonl",
        help="record the host/device boundary as qaicmodel-trace/1 (register "
        "accesses, request elements, MSIs, NNC messages; the board runs an "
        "echo workload on every activated channel); `qaicmodel check` it",
    )
    p.add_argument(
        "--kernel-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more guest kernel command-line argument (repeatable), e.g. "
        "qaic.datapath_polling=1",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"kill the guest after S seconds (default {DEFAULT_TIMEOUT:g})",
    )
    p.add_argument(
        "--console",
        type=Path,
        default=None,
        metavar="FILE",
        help="save the guest console here (default: a new temporary file)",
    )
    p.add_argument(
        "--board",
        choices=["model", "dead", "zero"],
        default="model",
        help="the device behind the BARs: the model's AIC100 (default); for "
        "debugging the transport, 'dead' (BARs read all ones: the driver's "
        "probe fails cleanly) or 'zero' (BARs read 0: MHI sees the boot ROM "
        "and never gets further)",
    )
    p.add_argument(
        "--poweroff",
        choices=["unbind", "raw"],
        default="unbind",
        help="'unbind' (default): unbind the PCI drivers before powering off, "
        "which avoids the driver's double teardown at poweroff; 'raw': power "
        "off with the driver bound (reproduces docs/findings.md F1)",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print the device side's events (connection, memory table)",
    )
    p.add_argument(
        "cmd",
        nargs="*",
        metavar="-- CMD ARGS",
        help="the command to run in the guest (none: an interactive shell)",
    )


def run_cli(args: Any) -> int:
    if args.seed < 0:
        raise ArgumentError(f"--seed must be >= 0, not {args.seed}")
    if args.timeout <= 0:
        raise ArgumentError(f"--timeout must be positive, not {args.timeout}")
    extra = tuple(getattr(args, "kernel_arg", None) or ())
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    board: Any = None
    if args.policy:
        _check_policies(args.policy)
    if args.board != "model":
        if args.trace is not None:
            raise ArgumentError(f"--trace needs the model's board, not --board {args.board}")
        if args.policy:
            raise ArgumentError(f"--policy needs the model's board, not --board {args.board}")
        from qaicmodel.emu.testboard import StubBoard

        board = StubBoard(fill=0xFF if args.board == "dead" else 0)

    def say(text: str) -> None:
        print(f"qaicmodel: uml: {text}", file=sys.stderr, flush=True)

    vmlinux = resolve_kernel(
        args.kernel, args.vmlinux, kernel_tree=args.kernel_tree, kasan=args.kasan
    )
    say(f"seed {args.seed} (replay with --seed {args.seed})")
    if board is None and args.trace is not None:
        # the board with the NSP side (an echo workload on every activated channel) that
        # records the boundary as qaicmodel-trace/1 (qaicmodel/emu/datapath.py D4)
        from qaicmodel.emu.datapath import DatapathBoard

        board = DatapathBoard(policies=args.policy, seed=args.seed, record=True)
    if board is None:
        try:
            board = _default_board(args.policy, args.seed)
        except QaicModelError:
            raise
        except Exception as e:  # a bug in the board's constructor: one line
            raise UmlError(f"the model's board failed to start: {type(e).__name__}: {e}") from None
        if board is None:
            from qaicmodel.emu.testboard import StubBoard

            say(
                "the model's board (qaicmodel.emu.board) is not part of this build: running "
                "against --board zero"
            )
            board = StubBoard()
    console = args.console
    if console is None:
        fd, name = tempfile.mkstemp(prefix="qaicmodel-uml-console-", suffix=".txt")
        os.close(fd)
        console = Path(name)
    try:
        res = run(
            cmd or None,
            vmlinux=vmlinux,
            board=board,
            policies=args.policy,
            seed=args.seed,
            timeout=args.timeout,
            console=console,
            log=say if args.verbose else None,
            unbind=args.poweroff == "unbind",
            extra_args=extra,
        )
    finally:
        say(f"console saved to {console}")
    if args.trace is not None:
        polling = "qaic.datapath_polling=1" in extra
        lines = board.trace_lines({"datapath_polling": True} if polling else None)
        args.trace.write_text("\n".join(lines) + "\n")
        say(
            f"trace ({len(lines) - 1} events) written to {args.trace}; check it with "
            f"`qaicmodel check {args.trace}`"
        )
    why = res.failure()
    if why is not None:
        say(why)
    return res.exit_code


def _check_policies(items: Sequence[str]) -> None:
    try:
        from qaicmodel.emu._model import Policies
    except ImportError:
        from qaicmodel.spec.policies import Policies
    Policies.parse(items)  # raises PolicyError on an unknown id or alternative
