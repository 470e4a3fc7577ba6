"""Witness files: a scenario that shows two readings of the document apart.

Rules (the ``witness`` extension of ``qaicmodel-scenario/1``, docs/formats-extensions.md):

  W1  A witness is an ordinary scenario: ``device.policies`` is the first side's choice
      (written out, even where it is the default), the steps are the shrunk episode with
      that side's interleavings as ``schedule`` runs, every ioctl step carries ``expect``
      = that side's result and every ``read_bo`` that returned ok carries ``expect_hex``,
      so ``qaicmodel scenario FILE`` holds (exit 0) and ``qaicmodel scenario FILE --policy
      ID=ALT`` shows the difference (exit 1) -- except a difference only in a returned
      dbc id or ``perf_stats`` record, which the scenario format has no ``expect`` for
      (``hunt --replay`` shows every kind).
  W2  The top-level ``witness`` object records every side: its ``policies``, its host-
      visible ``results`` per step (side.py V2) and, where a side took another
      interleaving than the first, its ``schedules`` (step index -> actions); plus
      ``first_difference`` {step, op, kind, outcomes of the two sides}, the ``host``, the
      ``seed`` and the command that found it.
  W3  ``qaicmodel hunt --replay FILE`` runs the steps once per recorded side (with that
      side's schedules) and compares the host-visible results with the recorded ones:
      the witness *holds* when every side gives its recorded results.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qaicmodel.errors import FormatError
from qaicmodel.oracle.hunt.search import Witness, side_steps
from qaicmodel.oracle.hunt.side import doc, kind_of, run_all
from qaicmodel.scenario.format import load, parse_device

__all__ = ["WITNESS_FORMAT", "witness_doc", "write_witness", "read_witness", "replay_witness"]

WITNESS_FORMAT = "qaicmodel-hunt-witness/1"
#: ops whose result is not an ioctl's (no ``expect`` is written on them)
_NOT_IOCTL = frozenset({"run", "nsp", "dump", "ddr_write", "ddr_read", "ssr"})


def file_name(label: str) -> str:
    """``hunt-P=B.json`` (``+`` joins a pair); only file-name-safe characters."""
    safe = "".join(c if c.isalnum() or c in "=+-._" else "_" for c in label)
    return f"hunt-{safe}.json"


def witness_doc(w: Witness, *, host: str, seed: int, command: str) -> dict[str, Any]:
    """W1 + W2."""
    base = w.sides.outcomes[0]
    steps = side_steps(w.steps, w.sides.schedules[0])
    for i, d in enumerate(steps):
        vis = base[i]
        res = str(vis["result"])
        if d["op"] not in _NOT_IOCTL and (res == "ok" or res.startswith("E")):
            d["expect"] = res
        if d["op"] == "read_bo" and vis["result"] == "ok" and "hex" in vis:
            d["expect_hex"] = vis["hex"]
    i, k = w.step, w.side
    steps[i]["note"] = f"hunt: {w.target.label}: {w.kind} here"
    sides = []
    for n, choice in enumerate(w.target.choices):
        sched = {
            str(j): s for j, s in w.sides.schedules[n].items() if s != w.sides.schedules[0].get(j)
        }
        sides.append(
            {
                "policies": dict(choice),
                "results": list(w.sides.outcomes[n]),
                **({"schedules": sched} if sched else {}),
            }
        )
    out = doc(w.cfg, w.target.choices[0], steps)
    out["witness"] = {
        "format": WITNESS_FORMAT,
        "target": w.target.label,
        "pair": w.target.pair,
        "sides": sides,
        "first_difference": {
            "step": i,
            "op": w.steps[i]["op"],
            "kind": w.kind,
            "outcomes": [base[i], w.sides.outcomes[k][i]],
            "sides": [0, k],
        },
        "host": host,
        "seed": seed,
        "episode_seed": w.episode_seed,
        "steps_before_shrink": w.steps_before_shrink,
        "command": command,
    }
    return out


def write_witness(path: Path, d: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(d, indent=1) + "\n")
    tmp.replace(path)
    return path


def read_witness(path: str | Path) -> dict[str, Any]:
    """A witness file, checked: a valid scenario with a well-formed ``witness`` (FormatError)."""
    p = Path(path)
    load(p)  # the scenario part, by the scenario parser (exit 2 on any fault)
    d = json.loads(p.read_text(encoding="utf-8"))
    w = d.get("witness")
    if not isinstance(w, dict) or w.get("format") != WITNESS_FORMAT:
        raise FormatError(f"no {WITNESS_FORMAT!r} witness object", where=f"{p}: witness")
    sides = w.get("sides")
    if not isinstance(sides, list) or len(sides) < 2:
        raise FormatError("needs a list of at least two sides", where=f"{p}: witness.sides")
    from qaicmodel.spec.policies import Policies

    n = len(d["steps"])
    for k, s in enumerate(sides):
        where = f"{p}: witness.sides[{k}]"
        if not isinstance(s, dict) or not isinstance(s.get("policies"), dict):
            raise FormatError("a side is an object with policies", where=where)
        try:
            Policies(s["policies"])
        except Exception as e:  # noqa: BLE001 - PolicyError, TypeError on odd values
            raise FormatError(str(e), where=f"{where}.policies") from None
        res = s.get("results")
        if not isinstance(res, list) or len(res) != n:
            raise FormatError(f"results must list the {n} steps", where=f"{where}.results")
        sched = s.get("schedules", {})
        if not isinstance(sched, dict) or not all(
            isinstance(v, list) and k2.isdigit() and int(k2) < n for k2, v in sched.items()
        ):
            raise FormatError("schedules maps step indexes to lists", where=f"{where}.schedules")
    return d


def side_doc(d: dict[str, Any], k: int) -> dict[str, Any]:
    """The scenario as side ``k`` runs it: its policies, its schedules, no expects."""
    side = d["witness"]["sides"][k]
    steps = []
    for i, s in enumerate(d["steps"]):
        s2 = {x: v for x, v in s.items() if x not in ("expect", "expect_hex")}
        if str(i) in side.get("schedules", {}):
            s2["schedule"] = list(side["schedules"][str(i)])
        steps.append(s2)
    dev = dict(d.get("device") or {})
    dev["policies"] = {**dev.get("policies", {}), **side["policies"]}
    return {"format": d["format"], "device": dev, "steps": steps}


def replay_witness(d: dict[str, Any], host_cls: type | None) -> dict[str, Any]:
    """W3: per side, whether the recorded results come back; and whether they differ."""
    rows = []
    cfg = parse_device(d.get("device"))
    for k, side in enumerate(d["witness"]["sides"]):
        sd = side_doc(d, k)
        steps = sd["steps"]
        sides = run_all(cfg, [sd["device"]["policies"]], steps, host_cls)
        got = list(sides.outcomes[0]) if sides is not None else None
        first = None
        if got is not None:
            for i, (a, b) in enumerate(zip(got, side["results"], strict=True)):
                if a != b:
                    first = {"step": i, "recorded": b, "got": a}
                    break
        rows.append(
            {
                "policies": side["policies"],
                "holds": got is not None and first is None,
                "first_change": first
                if got is not None
                else {"step": None, "got": "a step could not run"},
            }
        )
    fd = d["witness"].get("first_difference", {})
    a, b = fd.get("outcomes", [{}, {}])[:2] if fd else ({}, {})
    return {
        "target": d["witness"].get("target"),
        "holds": all(r["holds"] for r in rows),
        "kind": kind_of(a, b) if a and b and "result" in a and "result" in b else None,
        "sides": rows,
    }
