"""``qaicmodel uml faults [--json] [--fault NAME ...]``: device faults against the real driver.

Every fault of :data:`qaicmodel.emu.faults.FAULTS` runs as one episode (faultguest.py G2)
on a :class:`~qaicmodel.emu.faults.FaultBoard`; the episodes share a guest boot, the
driver unbound and bound again around each one and the board power-cycled in between.

Rules:
  R1 default kernel 7.2, the KASAN + lockdep build (``qaicmodel uml build --kasan``);
     guest arguments: ``qaic.datapath_polling=1`` (the data path without UML's
     interrupt race, docs/findings.md F7), ``qaic.control_resp_timeout_s=4`` (a
     missing reply costs 4 s, not 60), ``kasan_multi_shot`` (every KASAN report, not
     only the first of the boot);
  R2 what the driver did, per fault: ``splat`` (a kernel splat between the episode's
     kernel-log marks, emu/splat.py; UML's own virt-pci warning, docs/findings.md F7, is
     noted in the detail and is never the outcome), else ``hang`` (a step that did not end: the
     guest says which, or the host's episode deadline; or a WAIT_BO that gave
     ETIMEDOUT), else ``recovery`` (a fault that resets the device, and the driver
     had it online again for the check after the workload), else ``errno`` (the
     first failing call and its errno), else ``wrong-data`` (the echo differs), else
     ``works`` (every call succeeded: the fault had no visible effect); ``not-fired``
     when the trigger never came;
  R3 a boot that ends inside an episode (a stuck step, a dead guest) records that
     episode's fault and starts a new boot for the faults after it; so does an episode
     whose console shows a splat (the guest is told to stop at its ``done``), or after
     which the driver failed the check (faultguest.py G3): a fault that corrupted memory
     or wedged the driver must not be charged with the next fault's outcome;
  R4 the console before the first episode (the boot-time probe: docs/findings.md F3's
     lockdep report) is the baseline, reported apart and never charged to a fault;
     lockdep reports once per boot, so lockdep findings inside episodes are hidden
     by it (KASAN, BUG and WARN are not);
  R5 every row prints its seed and the one command that replays it;
  R6 a hang whose cause may be the guest's transport -- the whole guest stopped answering
     (the host's episode deadline) or UML's virt-pci warning (F7) came with it -- is
     measured once more in a fresh boot, and the second result is the row
     (``retried``), like ``qaicmodel uml policies`` does for the same race;
  R7 ``nnc-orphan-deactivate``: the detail ends with the device's view of the channel after
     the host had the unsolicited deactivate (faultboard.py FB1; docs/findings.md F12);
  R8 the ``nnc-dma-*`` faults: the detail ends with the device's view of the transfer
     (faultboard.py FB2): the bytes each chunk id named, the continuations asked, the
     host's aborts and whether the device's transfer was left open.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from qaicmodel.emu import faults as F
from qaicmodel.emu import splat as splatmod
from qaicmodel.errors import ArgumentError, UmlError

__all__ = [
    "GUEST_ARGS",
    "measure",
    "classify",
    "released_note",
    "dma_note",
    "add_args",
    "run_cli",
    "reproducer",
]

GUEST_ARGS = (
    "qaic.datapath_polling=1",
    "qaic.control_resp_timeout_s=4",
    "kasan_multi_shot",
)
#: responses made up by dbc-rsp-never-drains that the driver consumed: this many is a
#: response loop that does not end while the device keeps it fed
LIVELOCK = 20
BOOT_S = 60.0  # the boot and the initial unbind
#: an episode's bind, status check and unbind on top of its workload's --timeout (F5)
EPISODE_SLACK = 60.0
MARK = "qaicmodel-fault: "
_ACCESS = re.compile(r"(Read|Write) of size \d+")
_BLOCKED = re.compile(r"task:(\S+)\s+state:D")


class _Sink:
    """The guest command's output: the G1 requests, answered through ``ctrl``."""

    def __init__(self, board: Any, ctrl: Path, console: Path) -> None:
        self.board, self.ctrl, self.console = board, ctrl, console
        self.stopped: str | None = None  # the episode after which the guest was stopped (R3)
        self.buf = b""
        self.results: list[dict[str, Any]] = []
        self.device: dict[str, dict[str, Any]] = {}
        self.current: str | None = None
        self.lines: list[str] = []

    def write(self, data: bytes) -> int:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for raw in lines:
            self._line(raw.decode("utf-8", "replace"))
        return len(data)

    def flush(self) -> None:
        pass

    def _splatted(self, name: str) -> bool:
        """Whether the console (current on disk: the runner writes it unbuffered) shows a
        splat since episode ``name`` began."""
        try:
            lines = self.console.read_text(errors="replace").splitlines()
        except OSError:
            return False
        return bool(_real(splatmod.find(_slices(lines)[1].get(name, [])))[0])

    def _ack(self, n: str, text: str = "ok") -> None:
        tmp = self.ctrl / f".ack-{n}"
        tmp.write_text(text)
        tmp.rename(self.ctrl / f"ack-{n}")

    def _line(self, line: str) -> None:
        if not line.startswith("@@fault "):
            self.lines.append(line)
            return
        try:
            _tag, n, req = line.split(" ", 2)
        except ValueError:
            self.lines.append(line)  # not a request (a torn line): shown if the run fails
            return
        verb, _, rest = req.partition(" ")
        if verb == "arm":
            name = rest.split()[1]
            self.board.arm(name)
            self.current = name
            self._ack(n)
        elif verb == "done":
            rec = self.board.disarm()
            if self.current is not None:
                self.device[self.current] = rec
            if self.current is not None and self._splatted(self.current):
                self.stopped = self.current
                self._ack(n, "stop")  # R3: a kernel that splatted is not a clean one
            else:
                self._ack(n)
        elif verb == "result":
            self.results.append(json.loads(rest))
            self.current = None


def _real(splats: list[Any]) -> tuple[list[Any], list[Any]]:
    """R2: (the kernel's splats, UML transport warnings: docs/findings.md F7).

    The warnings of UML's virt-pci transport (``splat.is_uml_transport``: the nested
    command of F7, the full command queue of a posted config write seen in F8) are the
    guest's transport, not the driver: noted in the detail, never the outcome."""
    race = [x for x in splats if splatmod.is_uml_transport(x)]
    return [x for x in splats if x not in race], race


def _slices(lines: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """R4: the baseline console and each episode's console lines."""
    base: list[str] = []
    eps: dict[str, list[str]] = {}
    cur: list[str] | None = None
    started = False
    for ln in lines:
        text = splatmod.strip_time(ln)
        i = text.find(MARK)
        if i >= 0:
            what = text[i + len(MARK) :].strip()
            if what.startswith("begin "):
                cur = eps.setdefault(what.split()[1], [])
                started = True
                continue
            if what.startswith("end "):
                cur = None
                continue
            if what == "episodes start":
                started = True
                continue
        if cur is not None:
            cur.append(ln)
        elif not started:
            base.append(ln)
    return base, eps


def classify(
    f: F.DeviceFault,
    res: dict[str, Any] | None,
    dev: dict[str, Any] | None,
    splats: list[Any],
    console: list[str] | None = None,
) -> tuple[str, str]:
    """R2: (outcome, detail); ``console``: the episode's lines (a KASAN report's access)."""
    if splats:
        access = ""
        for ln in console or ():
            m = _ACCESS.search(ln)
            if m:
                access = f" ({m.group(0)})"
                break
        s = splats[0]
        more = f" (+{len(splats) - 1} more)" if len(splats) > 1 else ""
        at = f" in {s.where}" if s.where and s.where not in s.text else ""
        return "splat", f"{s.kind}: {s.text}{at}{access}{more}"
    if res is None or "stuck" in (res or {}):
        what = (res or {}).get("stuck", "the guest stopped answering (episode deadline)")
        blocked = sorted({m.group(1) for ln in console or () if (m := _BLOCKED.search(ln))})
        return "hang", f"stuck task: {what}" + (
            f"; blocked (SysRq w): {', '.join(blocked)}" if blocked else ""
        )
    calls = [tuple(c) for c in res.get("calls", [])]
    failed = [(n, r) for n, r in calls if r != "ok"]
    if dev is not None and not dev.get("fired"):
        return "not-fired", f"the trigger ({dev.get('trigger')}) never came"
    for n, r in failed:
        if n == "wait" and r == "ETIMEDOUT":
            return "hang", "WAIT_BO gave ETIMEDOUT"
    spun = (dev or {}).get("phantom_consumed", 0)
    if spun >= LIVELOCK:
        return "hang", (
            f"livelock: the driver consumed {spun} responses the device never wrote and "
            "did not leave its response loop while the channel was assigned"
        )
    post = res.get("post")
    if f.reset_class and post == "ok":
        how = f"{failed[0][1]} on {failed[0][0]}, then " if failed else ""
        return "recovery", f"{how}online again"
    after = "; device usable after" if post == "ok" else f"; device not usable after ({post})"
    if failed:
        n, r = failed[0]
        return "errno", f"{r} on {n}{after}"
    if res.get("echo_intact") is False or res.get("partial_intact") is False:
        return "wrong-data", "the echoed bytes differ" + after
    return "works", "every call succeeded" + after


def released_note(dev: dict[str, Any] | None) -> str:
    """R7: what the device did with the channel an unsolicited deactivate named, after the
    message reached the host (faultboard.py FB1), as a detail suffix ('' for other faults)."""
    r = (dev or {}).get("released")
    if r is None:
        return ""
    d = r["dbc"]
    if r["delivered_step"] is None:
        return f"; the DEACTIVATE_FROM_DEV for dbc {d} never reached a host buffer"
    if not r["qsm_listed"] and r["ended_by"] == "inactive before the host had the message":
        return f"; dbc {d} was already inactive on the device when the host had the message"
    end = f"until {r['ended_by']}" if r["ended_by"] else "to the end of the episode"
    return (
        f"; after the host had the deactivate the device kept dbc {d} active for "
        f"{r['active_steps']} steps ({r['active_s']:g} s, {end}) and wrote "
        f"{r['written_bytes']} bytes into its freed FIFOs ({r['rsp_writes']} responses, "
        f"{r['dma_in_bytes']} DMA bytes; read {r['req_reads']} request elements, "
        f"{r['dma_out_bytes']} DMA bytes; the channel's DMA wrote {r['dbc_dma_in_bytes']} "
        "bytes to the host)"
    )


def dma_note(dev: dict[str, Any] | None) -> str:
    """R8: the device's view of the DMA transfer (faultboard.py FB2), a detail suffix."""
    d = (dev or {}).get("dma")
    if d is None:
        return ""
    sent = ", ".join(f"chunk {k}: {v} bytes" for k, v in d["sent"].items()) or "no split transfer"
    return (
        f"; device: {sent}; {d['asks']} continuation(s) asked, {d['aborts']} abort(s) from "
        f"the host for chunk {d['chunk']}"
        + ("; the held answer never went out" if d["held_unsent"] else "")
        + (
            f"; the device kept the transfer open until the host's {d['closed_by']}"
            if d.get("closed_by")
            else ""
        )
        + f"; {d['open_transfers']} transfer(s) left open on the device"
    )


def reproducer(name: str, seed: int, kernel: str, kasan: bool) -> str:
    extra = ("" if kernel == "7.2" else f" --kernel {kernel}") + ("" if kasan else " --no-kasan")
    return f"qaicmodel uml faults --fault {name} --seed {seed}{extra}"


def _boot(
    todo: list[str], *, seed: int, vmlinux: Path, episode_s: float, console: Path
) -> tuple[_Sink, Any, list[str]]:
    from qaicmodel.emu import runner
    from qaicmodel.emu.faultboard import FaultBoard

    board = FaultBoard(seed=seed, kernel="7.2", episode_s=episode_s + EPISODE_SLACK)
    with tempfile.TemporaryDirectory(prefix="qaicmodel-faults-") as d:
        sink = _Sink(board, Path(d), console)
        env = dict(os.environ, QAICMODEL_FAULT_EPISODE_S=f"{episode_s:g}")
        res = runner.run(
            [sys.executable, "-m", "qaicmodel.emu.faultguest", d, *todo],
            vmlinux=vmlinux,
            board=board,
            seed=seed,
            timeout=BOOT_S + (episode_s + EPISODE_SLACK + 10) * len(todo),
            console=console,
            echo=sink,  # type: ignore[arg-type]
            env=env,
            extra_args=GUEST_ARGS,
        )
    if sink.current is not None and sink.current not in sink.device:
        sink.device[sink.current] = board.disarm()  # the run ended inside this episode
    lines = console.read_text(errors="replace").splitlines()
    return sink, res, lines


def measure(
    names: list[str],
    *,
    seed: int = 0,
    kernel: str = "7.2",
    kasan: bool = True,
    episode_s: float = 60.0,
    console_dir: Path | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Every fault of ``names`` against the real driver (R1-R5); the report."""
    from qaicmodel.emu.runner import resolve_kernel

    for n in names:
        F.fault(n)
    vmlinux = resolve_kernel(kernel, kasan=kasan)
    cdir = Path(console_dir or tempfile.mkdtemp(prefix="qaicmodel-faults-consoles-"))
    cdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    rows: list[dict[str, Any]] = []
    boots: list[dict[str, Any]] = []
    todo = list(names)
    retried: set[str] = set()
    while todo:
        console = cdir / f"boot{len(boots)}.txt"
        sink, res, lines = _boot(
            todo, seed=seed, vmlinux=vmlinux, episode_s=episode_s, console=console
        )
        base, eps = _slices(lines)
        boots.append(
            {
                "console": str(console),
                "faults": list(todo),
                "seconds": round(res.seconds, 1),
                "baseline_splats": [s.quote() for s in splatmod.find(base)],
                "end": res.failure(),
                "leftover": list(res.leftover),
                "ctrl": str(sink.ctrl),
            }
        )
        results = {r["fault"]: r for r in sink.results if "fault" in r}
        done: list[str] = []
        retry_now: str | None = None
        for name in todo:
            r = results.get(name)
            if r is None and name != sink.current and name not in eps:
                break  # never started in this boot
            f = F.fault(name)
            sp = splatmod.find(eps.get(name, []))
            if r is None and not (sp or res.splats or res.timed_out or res.error):
                tail = "; ".join(sink.lines[-3:]) or "no output"
                raise UmlError(
                    f"the fault guest stopped in episode {name} without a result or a "
                    f"kernel splat (status {res.status}; last output: {tail}; console "
                    f"{console})"
                )
            if r is None and res.splats and not sp:
                # the guest died in this episode: its splat may follow the last mark
                sp = [s for s in res.splats if s.line > len(base)]
            sp, race = _real(sp)
            outcome, detail = classify(f, r, sink.device.get(name), sp, eps.get(name))
            if race:
                detail += f" (and {len(race)} UML transport warning(s), docs/findings.md F7)"
            detail += released_note(sink.device.get(name)) + dma_note(sink.device.get(name))
            row = {
                "fault": name,
                "layer": f.layer,
                "outcome": outcome,
                "detail": detail,
                "trigger": F.trigger(name, seed),
                "what": f.what.replace("{t}", str(F.trigger(name, seed))),
                "when": f.when.replace("{t}", str(F.trigger(name, seed))),
                "fired": (sink.device.get(name) or {}).get("fired", []),
                "device": {
                    k: v
                    for k, v in (sink.device.get(name) or {}).items()
                    if k not in ("fault", "fired")
                },
                "calls": (r or {}).get("calls", []),
                "seconds": (r or {}).get("seconds"),
                "seed": seed,
                "reproduce": reproducer(name, seed, kernel, kasan),
                "recorded": f.recorded,
                "also": list(f.also),
                "console": str(console),
            }
            transport = (r is None and bool(res.error)) or bool(race)
            if outcome == "hang" and transport and name not in retried:
                retried.add(name)  # R6: once more in a fresh boot
                retry_now = name
                break
            row["retried"] = name in retried
            rows.append(row)
            done.append(name)
            if progress is not None:
                progress(row)
            if r is None or "stuck" in r or sink.stopped == name or r.get("post") != "ok":
                break  # R3: the rest in a new boot
        if not done and retry_now is None:
            raise UmlError(
                f"the fault guest ended before its first episode: {res.failure()} "
                f"(console {console})"
            )
        todo = [n for n in todo if n not in done]
    return {
        "format": "qaicmodel-uml-faults/1",
        "kernel": kernel,
        "kasan": kasan,
        "seed": seed,
        "guest_args": list(GUEST_ARGS),
        "wall_s": round(time.monotonic() - t0, 1),
        "boots": boots,
        "rows": rows,
    }


def _line(row: dict[str, Any]) -> str:
    note = released_note(row.get("device")).removeprefix("; ")
    return (
        f"{row['fault']:<26} {row['outcome']:<10} {row['detail'][:110]}\n"
        + (f"{'':<26} device: {note}\n" if note else "")
        + f"{'':<26} seed {row['seed']}, {row['when']}; reproduce: {row['reproduce']}"
    )


def add_args(p: Any) -> None:
    from qaicmodel.emu import kbuild

    p.add_argument("--json", action="store_true", help="one JSON object: the report")
    p.add_argument(
        "--list",
        action="store_true",
        help="print the fault table (what, when for --seed, the driver source, the recorded "
        "outcome) and boot nothing",
    )
    p.add_argument(
        "--fault",
        action="append",
        default=None,
        metavar="NAME",
        help=f"only this fault (repeatable; default every one: {', '.join(F.FAULTS)})",
    )
    p.add_argument(
        "--kernel",
        default="7.2",
        choices=sorted(kbuild.KERNELS),
        help="the built kernel to boot (default 7.2)",
    )
    p.add_argument(
        "--no-kasan",
        action="store_true",
        help="boot the plain build instead of the KASAN/lockdep one",
    )
    p.add_argument("--seed", type=int, default=0, help="chooses every fault's trigger (default 0)")
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="a fault episode's workload gets S seconds before it counts as stuck (default 60)",
    )
    p.add_argument(
        "--console-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the guest consoles here (default: a new temporary directory)",
    )


def run_cli(args: Any) -> int:
    if args.seed < 0:
        raise ArgumentError(f"--seed must be >= 0, not {args.seed}")
    if args.timeout <= 0:
        raise ArgumentError(f"--timeout must be positive, not {args.timeout}")
    names = args.fault or F.names()
    for n in names:
        F.fault(n)
    kasan = not args.no_kasan
    if args.list:
        table = [F.fault(n).as_dict(seed=args.seed) for n in names]
        if args.json:
            print(
                json.dumps(
                    {"format": "qaicmodel-uml-fault-table/1", "seed": args.seed, "faults": table},
                    indent=1,
                )
            )
        else:
            for d in table:
                print(
                    f"{d['name']:<26} {d['layer']:<4} {d['recorded']:<9} {d['what']}\n"
                    f"{'':<26} when: {d['when']}; exercises: {d['source']}"
                )
        return 0

    def show(row: dict[str, Any]) -> None:
        if not args.json:
            print(_line(row), flush=True)

    print(
        f"qaicmodel: uml faults: seed {args.seed} (replay with --seed {args.seed}), kernel "
        f"{args.kernel}{' + KASAN' if kasan else ''}, {len(names)} faults",
        file=sys.stderr,
        flush=True,
    )
    rep = measure(
        names,
        seed=args.seed,
        kernel=args.kernel,
        kasan=kasan,
        episode_s=args.timeout,
        console_dir=args.console_dir,
        progress=show,
    )
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        print(f"{len(rep['rows'])} faults in {rep['wall_s']} s, {len(rep['boots'])} boot(s)")
    return 0
