"""Witnesses on the real accel/qaic driver (``qaicmodel hunt --host linux``).

Rules:

  L1  Each side of a witness runs once on the real driver of the 7.2 UML guest against
      the model's board built with that side's policies, through the ``qaicmodel
      scenario FILE --host linux`` path (:func:`qaicmodel.scenario.linux.run_scenario_linux`,
      its rules H1-H6): without ``expect``s, and with every ``run`` a plain run (the
      guest's device runs by itself, so a recorded interleaving cannot be imposed).
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

__all__ = ["linux_replay"]

_NOT_IOCTL = frozenset({"run", "nsp", "dump", "ddr_write", "ddr_read", "ssr"})


def linux_replay(path: Path, d: dict[str, Any], timeout: float) -> dict[str, Any]:
    """L1-L3 for every side of witness ``d``."""
    from qaicmodel.oracle.hunt.witness import side_doc
    from qaicmodel.scenario.linux import run_scenario_linux

    sides = []
    for k, side in enumerate(d["witness"]["sides"]):
        sd = side_doc(d, k)
        sd["steps"] = [{"op": "run"} if st["op"] == "run" else st for st in sd["steps"]]
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
            if sd["steps"][i]["op"] in _NOT_IOCTL:
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
