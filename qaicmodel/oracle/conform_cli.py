"""The ``qaicmodel conform`` command line: arguments, the text report, ``--replay``.

The exploration itself (rules C1-C6) is :mod:`qaicmodel.oracle.conform`; this module
only parses, validates and prints (C6: exit 0 conformed, 1 a failure, 2 bad arguments).

Rules of the command line:
  U1  Everything that can be wrong before the run is exit 2 with one line, before the
      run starts: arguments, ``--host`` (importable -- also from the current directory or
      as ``FILE.py:CLASS`` -- a class implementing the host interface, and constructible:
      :func:`qaicmodel.oracle.watchdog.probe`), and ``--out`` (a directory conform can
      create and write a file in: :func:`check_out_dir`, which leaves nothing behind).
  U2  Every host call runs under the watchdog (``--host-timeout``; CONF-HANG).
  U3  A failure is told in one sentence first (:func:`story`: which rule, which step and
      which BO / channel / slot, what the host did), then the details.
  U4  The report prints one replay line: the exact command (host, seed, per-row episode
      counts, pinned policies, kernel, host timeout) that reruns this run episode for
      episode (``--episodes N,N,...``: one count per row).
  U5  A reproducer records its host (the ``--host MODULE:CLASS`` in its note, written by
      conform); ``--replay FILE`` runs that host unless ``--host`` is given.
  U6  ``--differential`` adds the step-for-step comparison with the reference host
      (CONF-STATE; C4b of :mod:`qaicmodel.oracle.conform`) to the rules' verdict.  A
      reproducer records the mode it was found in (`` --differential`` in its note) and
      ``--replay`` uses that mode unless ``--differential`` or ``--rules`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from qaicmodel.errors import ArgumentError
from qaicmodel.oracle import watchdog
from qaicmodel.oracle.conform import DEFAULT_BUDGET, DEFAULT_HOST, run_conformance
from qaicmodel.oracle.explore_control import control_of_note, probe_control
from qaicmodel.oracle.shrink import replay
from qaicmodel.scenario.format import load
from qaicmodel.scenario.runner import DEFAULT_HOST as SCENARIO_HOST
from qaicmodel.spec.host.kernels import CHOICES as KERNEL_CHOICES
from qaicmodel.spec.host.protocol import load_host

__all__ = [
    "add_args",
    "check_out_dir",
    "replay_command",
    "replay_file",
    "reproducer_host",
    "reproducer_mode",
    "run_cli",
    "story",
]


# ---------------------------------------------------------------------------
# The failure's story (U3)

#: invariant -> what the host did, from the failure's message
_DID = {
    "CONF-CRASH": "the host raised {m}",
    "CONF-HANG": "{m}",
    "CONF-VIOLATION": "the device caught the host breaking {m}",
    "CONF-STATE": "the host left the device in another state than the reference host ({m})",
    "CONF-REFERENCE": "the reference host itself failed ({m}): a model bug",
}


def _names(args: dict[str, Any]) -> str:
    """`` of BO b3 on dbc c1 (user u0)``: the objects a step names."""
    bos: list[str] = []
    if "handle" in args:
        bos.append(str(args["handle"]))
    hdr = args.get("hdr")
    if isinstance(hdr, dict) and "handle" in hdr:
        bos.append(str(hdr["handle"]))
    for key in ("handles", "entries"):
        for e in args.get(key) or []:
            if isinstance(e, dict) and "handle" in e:
                bos.append(str(e["handle"]))
            elif not isinstance(e, dict):
                bos.append(str(e))
    dbc = args.get("dbc_id", hdr.get("dbc_id") if isinstance(hdr, dict) else None)
    out = ""
    if bos:
        out += f" of BO {', '.join(dict.fromkeys(bos))}"
    if dbc is not None:
        out += f" on dbc {dbc}"
    if "user" in args:
        out += f", user {args['user']}"
    return out


def _result_of(part: str) -> str | None:
    m = re.search(r'"result": "([^"]+)"', part)
    return m.group(1) if m else None


def story(f: dict[str, Any], steps: list[dict[str, Any]] | None = None) -> str:
    """One sentence: which rule broke at which step, on which BO/channel/slot, and what
    the host did (U3).  ``f`` is a report failure (or a replay's ``failure``); ``steps``
    are the reproducer's, to name the step's objects."""
    where = dict(f.get("finding", {}).get("where") or {})
    i = where.get("step", f.get("step"))
    op = where.get("op", f.get("op", "?"))
    args = steps[i] if steps is not None and isinstance(i, int) and 0 <= i < len(steps) else {}
    extra = ", ".join(
        f"{k} {_fmt(v)}" for k, v in where.items() if k not in ("step", "op") and v is not None
    )
    rule, msg = f["invariant"], str(f["message"])
    if rule == "CONF-RESULT" and "reference gave" in msg:
        host, _, ref = msg.partition("reference gave")
        a, b = _result_of(host), _result_of(ref)
        did = (
            f"the host answered {a} where the reference host answers {b}"
            if a and b and a != b
            else "the host's result differs from the reference host's in its details"
        )
    else:
        did = _DID.get(rule, "{m}").format(m=msg)
    return (
        f"{rule} at step {i} ({op}{_names(args)}" + (f"; {extra}" if extra else "") + f"): {did}."
    )


def _fmt(v: Any) -> str:
    """Addresses and slots as a user reads them: integers >= 4096 in hex."""
    return f"0x{v:x}" if isinstance(v, int) and not isinstance(v, bool) and v >= 4096 else str(v)


def _steps_of(path: str) -> list[dict[str, Any]] | None:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    steps = doc.get("steps") if isinstance(doc, dict) else None
    return steps if isinstance(steps, list) else None


# ---------------------------------------------------------------------------
# The text report


def replay_command(rep: dict[str, Any], timeout: float | None = None) -> str:
    """The exact command that reruns this run (U4)."""
    argv = ["qaicmodel", "conform", "--host", rep["host"], *rep["replay"].split()]
    for k, v in rep["policies_covered"]["pinned"].items():
        argv += ["--policy", f"{k}={v}"]
    if rep.get("kernel"):
        argv += ["--kernel-version", str(rep["kernel"])]
    if rep.get("mode") == "differential":
        argv.append("--differential")
    if rep.get("control_host"):
        argv += ["--control-host", str(rep["control_host"])]
    for f in rep.get("control_faults", ()):
        argv += ["--control-fault", f]
    if timeout is not None and timeout != watchdog.DEFAULT_TIMEOUT:
        argv += ["--host-timeout", f"{timeout:g}"]
    return shlex.join(argv)


def _text(rep: dict[str, Any], timeout: float | None = None) -> str:
    cov = rep["policies_covered"]
    lines = [
        f"qaicmodel conform: {rep['verdict']}",
        f"  host:       {rep['host']}"
        + (
            f" (checked against {rep['reference']})"
            if rep["reference"]
            else " (reference host; checked against the device's rules only)"
        ),
        f"  seed:       {rep['seed']}",
        f"  mode:       {rep.get('mode', 'rules')}"
        + (
            " (step for step with the reference host)"
            if rep.get("mode") == "differential"
            else " (the device's rules and the host-side invariants)"
        ),
        f"  replay:     {replay_command(rep, timeout)}",
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
        lines.append(f"  FAILURE {f.get('story') or story(f, _steps_of(f['reproducer']))}")
        lines.append(f"    {f['invariant']}: {f['description']}")
        lines.append(f"    detail:     {f['message']}")
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
        lines.append(f"  DRIVER FINDING ({hits} episodes) {story(f, _steps_of(f['reproducer']))}")
        lines.append(f"    {f['driver_finding']}")
        lines.append(f"    reproducer: {f['reproducer']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Arguments


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--host",
        default=None,
        metavar="MODULE:CLASS",
        help=f"the host to check (default {DEFAULT_HOST}); any class implementing "
        "qaicmodel.spec.host.Host. MODULE is imported from sys.path, else from the "
        "current directory; FILE.py:CLASS works too. With --replay, the default is the "
        "host recorded in the reproducer, and an explicit --host overrides it",
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
        type=_episodes,
        default=None,
        metavar="N|N,N,...",
        help="exactly N episodes per policy row (exact replay; ignores --budget); "
        "a comma list gives each row its own count (the report's replay line uses it)",
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
        help="where reproducer scenarios are written (default ./conform-failures); "
        "checked to be writable before the run",
    )
    p.add_argument(
        "--host-timeout",
        type=float,
        default=watchdog.DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"a host call running longer is a CONF-HANG failure (default "
        f"{watchdog.DEFAULT_TIMEOUT:g}; 0 disables the watchdog)",
    )
    p.add_argument(
        "--control-host",
        default=None,
        metavar="MODULE:CLASS",
        help="the control client under test (a qaicmodel.spec.control.protocol.ControlHost; "
        "default the driver's, manage.ControlClient); its CTRL-* verdicts are conform's; "
        "with --replay it overrides the one the reproducer records",
    )
    p.add_argument(
        "--control-fault",
        action="append",
        default=[],
        metavar="NAME[:SEED[:AT]][+]",
        help="arm a device-side control fault (qaicmodel/spec/control/faults.py) in every "
        "episode; repeatable",
    )
    p.add_argument(
        "--differential",
        dest="mode",
        action="store_const",
        const="differential",
        default=None,
        help="also compare the host with the reference host step for step (device state "
        "after every step: CONF-STATE); a correct host of another shape fails this mode. "
        "The default verdict is by the rules alone. A reproducer records the mode; "
        "--replay uses it",
    )
    p.add_argument(
        "--rules",
        dest="mode",
        action="store_const",
        const="rules",
        help="with --replay: judge by the rules alone, whatever mode the reproducer records",
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
        "test side by side with the reference host) and report its failure; the host "
        "is the one the file records unless --host is given",
    )


def _episodes(text: str) -> int | list[int]:
    try:
        counts = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"want N or N,N,..., got {text!r}") from None
    return counts[0] if len(counts) == 1 else counts


def check_out_dir(out: str | Path) -> None:
    """U1: ``--out`` must be a directory conform can create and write a file in.  Creates
    what is missing, writes and removes a probe file, then removes the directories it
    created: nothing is left behind.  ArgumentError (one line) otherwise."""
    path = Path(out).absolute()
    made: list[Path] = []
    try:
        missing = [p for p in [path, *path.parents] if not p.exists()]
        for p in reversed(missing):
            p.mkdir()
            made.append(p)
        if not path.is_dir():
            raise NotADirectoryError(f"{path} is not a directory")
        probe = path / f".conform-write-check-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ArgumentError(
            f"--out {out}: reproducers cannot be written there ({e.strerror or e})"
        ) from None
    finally:
        for p in reversed(made):
            try:
                p.rmdir()
            except OSError:
                pass


# ---------------------------------------------------------------------------
# --replay


def reproducer_host(path: str) -> str | None:
    """The host a reproducer records (U5): the ``--host MODULE:CLASS`` of a step's note
    (conform writes ``qaicmodel conform --seed S --host MODULE:CLASS: ...``), or None."""
    for st in reversed(_steps_of(path) or []):
        note = st.get("note") if isinstance(st, dict) else None
        if isinstance(note, str):
            m = re.search(r"--host (\S+?):?(?=\s|$)", note)
            if m:
                return m.group(1)
    return None


def reproducer_mode(path: str) -> str | None:
    """The mode a reproducer records (U6): ``"differential"`` when a step's conform note
    carries `` --differential``, ``"rules"`` for any other conform note, else None."""
    seen = False
    for st in _steps_of(path) or []:
        note = st.get("note") if isinstance(st, dict) else None
        if isinstance(note, str) and note.startswith("qaicmodel conform "):
            head = note.split(": ", 1)[0].split()
            if "--differential" in head:
                return "differential"
            seen = True
    return "rules" if seen else None


def replay_file(
    path: str,
    host: str | None = None,
    mode: str | None = None,
    control_host: str | None = None,
    control_faults: list[str] | None = None,
) -> dict[str, Any]:
    """``--replay``: a scenario file through :func:`replay` (all C4 checks).  ``host``
    None: the host the file records (:func:`reproducer_host`), else the default host.
    ``mode`` None: the mode the file records (:func:`reproducer_mode`), else rules.
    ``control_host``/``control_faults`` None (or no faults): the ones the file's note
    records (``control_of_note``), else the driver's control client and none."""
    scen = load(path)
    recorded = reproducer_host(path)
    recorded_mode = reproducer_mode(path)
    use_mode = mode or recorded_mode or "rules"
    ref = host or recorded or DEFAULT_HOST
    raw = json.loads(Path(path).read_text())
    notes = [st.get("note") for st in raw.get("steps", []) if isinstance(st, dict)]
    rec_control, rec_faults = control_of_note(" ".join(n for n in notes if isinstance(n, str)))
    control = (
        control_host if control_host is not None else rec_control,
        tuple(control_faults) if control_faults else rec_faults,
    )
    host_cls = load_host(ref)
    ref_cls = load_host(SCENARIO_HOST)
    f = replay(
        scen.device,
        dict(scen.device.policies),
        raw["steps"],
        host_cls,
        None if ref_cls is host_cls else ref_cls,
        use_mode == "differential",
        control=control,
    )
    return {
        "format": "qaicmodel-conform-replay/1",
        "file": path,
        "host": ref,
        "host_from": "--host" if host else "the reproducer" if recorded else "the default",
        "control_host": control[0],
        "control_host_from": "--control-host"
        if control_host is not None
        else "the reproducer"
        if rec_control is not None
        else "the default",
        "control_faults": list(control[1]),
        "mode": use_mode,
        "mode_from": f"--{mode}" if mode else "the reproducer" if recorded_mode else "the default",
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


# ---------------------------------------------------------------------------
# The command


def run_cli(args: argparse.Namespace) -> int:
    from qaicmodel.spec.policies import Policies

    if not args.budget > 0 or args.budget > 24 * 3600:
        raise ArgumentError(f"--budget must be in (0, 86400] seconds, got {args.budget}")
    eps = args.episodes
    if eps is not None and min(eps if isinstance(eps, list) else [eps]) < 1:
        raise ArgumentError(f"--episodes must be >= 1, got {eps}")
    if args.seed is not None and not 0 <= args.seed < 1 << 64:
        raise ArgumentError(f"--seed must be 0 .. 2**64-1, got {args.seed}")
    if not 0 <= args.host_timeout <= 24 * 3600:
        raise ArgumentError(
            f"--host-timeout must be in [0, 86400] seconds, got {args.host_timeout}"
        )
    pinned = dict(Policies.parse(args.policy).chosen)
    with watchdog.timeout(args.host_timeout):
        if args.replay is not None:
            return _replay_cli(args)
        host = args.host or DEFAULT_HOST
        cls = load_host(host)  # a bad --host is exit 2 before anything is printed
        from qaicmodel.spec.dbc.config import DeviceConfig

        watchdog.probe(cls, host, DeviceConfig(kernel=args.kernel_version))
        probe_control(args.control_host, args.control_fault, args.kernel_version)
        check_out_dir(args.out)
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
        sys.stderr.write(f"qaicmodel conform: seed {seed}, host {host}, budget {args.budget:g} s\n")
        rep = run_conformance(
            host,
            seed=seed,
            budget=args.budget,
            episodes=eps,
            policies=pinned,
            out_dir=args.out,
            progress=sys.stderr,
            kernel=args.kernel_version,
            control_host=args.control_host,
            control_faults=args.control_fault,
            differential=args.mode == "differential",
        )
    rep["replay_command"] = replay_command(rep, args.host_timeout)
    for f in [*rep["failures"], *rep.get("driver_findings", [])]:
        f["story"] = story(f, _steps_of(f["reproducer"]))
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print(_text(rep, args.host_timeout))
    return 0 if not rep["failures"] else 1


def _replay_cli(args: argparse.Namespace) -> int:
    recorded = reproducer_host(args.replay)
    host = args.host or recorded or DEFAULT_HOST
    cls = load_host(host)
    watchdog.probe(cls, host, load(args.replay).device)
    if args.control_host is not None or args.control_fault:
        probe_control(args.control_host, args.control_fault, args.kernel_version)
    out = replay_file(args.replay, args.host, args.mode, args.control_host, args.control_fault)
    mode = f"mode {out['mode']} (from {out['mode_from']})"
    if args.json:
        print(json.dumps(out, indent=2))
    elif out["failure"] is None:
        print(f"{args.replay}: conforms (host {host}, from {out['host_from']}; {mode})")
    else:
        f = out["failure"]
        print(f"{args.replay}: FAILED {story(f, _steps_of(args.replay))}")
        print(f"  host:   {host} (from {out['host_from']})")
        print(f"  mode:   {mode}")
        if out["control_host"] is not None:
            print(f"  control host: {out['control_host']} (from {out['control_host_from']})")
        print(f"  detail: {f['invariant']} at step {f['step']} ({f['op']}): {f['message']}")
    return 0 if out["failure"] is None else 1
