"""Witnesses on the real accel/qaic driver (``qaicmodel hunt --host linux``).

Rules:

  L1  Each side of a witness runs once on the real driver of the 7.2 UML guest against
      the model's board built with that side's policies, through the ``qaicmodel
      scenario FILE --host linux`` path (:func:`qaicmodel.scenario.linux.run_scenario_linux`,
      its rules H1-H6): without ``expect``s, and with every ``run`` a plain run (the
      guest's device runs by itself, so a recorded interleaving cannot be imposed).
  L1b After the witness's last step the guest joins every thread still running and waits
      (WAIT_BO, :data:`DRAIN_MS`) on every executed BO whose user, channel and handle
      are still there: the model drains at ``run``, the real driver only when its IRQ
      thread gets to the response, and a guest that closes first never shows the rule
      the witness is about.  These steps' results are not compared with the model's.
  L2  ``driver_correct``: the guest finished every step, no kernel splat, no timeout, and
      the board recorded no host rule broken.  A driver that is correct under one side
      and not under another depends on that reading of the document: the finding.
  L3  ``matches_model``: per ioctl step, the result (and a read_bo's bytes) equals the one
      the model's reference host recorded for that side; reported, not judged (the
      real driver's timing differs: work the model leaves queued may have completed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qaicmodel.errors import QaicModelError

__all__ = ["DRAIN_MS", "linux_replay", "linux_steps"]

#: L1b: how long the guest waits on each executed BO after the witness's steps
DRAIN_MS = 5000
#: L1b: steps after which an executed BO is not waited for (what they name is gone)
_GONE = {"gem_close": "handle", "detach_slice": "handle", "deactivate": "dbc_id", "close": "user"}

_NOT_IOCTL = frozenset({"run", "nsp", "dump", "ddr_write", "ddr_read", "ssr"})


def linux_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """L1 and L1b: a side's steps as the guest runs them."""
    out = [{"op": "run"} if st["op"] == "run" else st for st in steps]
    threads: list[str] = []
    pending: dict[str, tuple[str, str]] = {}  # handle -> (user, dbc_id), in execute order
    for st in steps:
        op = st["op"]
        if op in ("execute", "partial_execute", "wait") and st.get("thread") is not None:
            threads.append(st["thread"])
        elif op == "join" and st.get("thread") in threads:
            threads.remove(st["thread"])
        if op in ("execute", "partial_execute"):
            items = st["handles"] if op == "execute" else st["entries"]
            for it in items:
                h = it["handle"] if isinstance(it, dict) else it
                pending[h] = (st["user"], st["dbc_id"])
        elif op in _GONE:
            key = _GONE[op]
            for h, (user, dbc) in list(pending.items()):
                if {"handle": h, "dbc_id": dbc, "user": user}[key] == st.get(key):
                    del pending[h]
    out += [{"op": "join", "thread": t} for t in threads]
    out += [
        {"op": "wait", "user": u, "dbc_id": d, "handle": h, "timeout_ms": DRAIN_MS}
        for h, (u, d) in pending.items()
    ]
    return out


def linux_replay(path: Path, d: dict[str, Any], timeout: float) -> dict[str, Any]:
    """L1-L3 for every side of witness ``d``."""
    from qaicmodel.oracle.hunt.witness import side_doc
    from qaicmodel.scenario.linux import run_scenario_linux

    sides = []
    for k, side in enumerate(d["witness"]["sides"]):
        sd = side_doc(d, k)
        n_witness = len(sd["steps"])
        sd["steps"] = linux_steps(sd["steps"])
        pols = ",".join(f"{a}={b}" for a, b in side["policies"].items())
        try:
            lx = run_scenario_linux(sd, timeout=timeout)
        except QaicModelError as e:
            sides.append({"policies": pols, "ok": False, "verdict": f"not run: {e.one_line()}"})
            continue
        rules = sorted({v["rule"] for v in lx.report.violations})
        why = lx.run.failure()
        done = len(lx.report.results) == len(sd["steps"])
        correct = not rules and why is None and done
        diff = None
        for r in lx.report.results:
            i = r["step"]
            if i >= n_witness or sd["steps"][i]["op"] in _NOT_IOCTL:
                continue
            want = side["results"][i]
            if r.get("result") != want["result"] or ("hex" in want and r.get("hex") != want["hex"]):
                diff = f"step {i} {sd['steps'][i]['op']}: model {want['result']}, linux {r.get('result')}"
                break
        parts = ["driver correct" if correct else "DRIVER BROKE A RULE" if rules else "run failed"]
        if rules:
            parts.append("broke " + "/".join(rules))
        if why is not None:
            parts.append(str(why))
        elif not done:
            parts.append(f"the guest stopped after {len(lx.report.results)} steps")
        parts.append("results as the model's" if diff is None else diff)
        sides.append(
            {
                "policies": pols,
                "ok": correct,
                "driver_correct": correct,
                "matches_model": diff is None,
                "verdict": "; ".join(parts),
                "results": [r.get("result") for r in lx.report.results],
                "rules_broken": rules,
            }
        )
    return {"witness": str(path), "target": d["witness"]["target"], "sides": sides}
