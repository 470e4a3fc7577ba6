"""Fuzz target ``hunt``: the ambiguity hunt's search (``qaicmodel hunt``, read-only).

Rules:
  U1  The input is (policy target index, hunt seed).  The targets are every non-default
      alternative of every registry policy (``ID=ALT``, as ``qaicmodel hunt --policy``
      takes them); one example is ``qaicmodel hunt --policy ID=ALT --seed N --episodes 1
      --json`` in a child process bounded by ``--example-timeout`` (default 300 s).
  U2  The property: the hunt ends (no exit 2, no timeout), and a witness it writes replays:
      ``qaicmodel hunt --replay FILE`` exits 0 (every side's recorded outcomes come back).
      Not shrunk (a smaller seed is not a simpler search).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from typing import Any

from hypothesis import strategies as st

from qaicmodel.testing.fuzz.targets import SLOW_CHUNK, Prop, PropertyFailed

__all__ = ["hunt_prop", "hunt_targets"]


def hunt_targets() -> list[str]:
    from qaicmodel.spec.policies import REGISTRY

    return [
        f"{pid}={alt}"
        for pid in sorted(REGISTRY)
        for alt in REGISTRY[pid].alternatives
        if alt != REGISTRY[pid].default
    ]


def _run(cmd: list[str], timeout: float, what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PropertyFailed(f"{what}: did not finish within {timeout:.0f} s") from None


def hunt_prop(params: dict[str, Any]) -> Prop:
    """U1, U2."""
    targets = hunt_targets()
    timeout = float(params.get("example_timeout", 300.0))

    def check(x: Any) -> str:
        label, seed = targets[int(x[0]) % len(targets)], int(x[1])
        again = f"qaicmodel hunt --policy {label} --seed {seed} --episodes 1"
        with tempfile.TemporaryDirectory(prefix="qaicmodel-fuzz-hunt-") as tmp:
            cmd = [sys.executable, "-m", "qaicmodel", "hunt", "--policy", label]
            cmd += ["--seed", str(seed), "--episodes", "1", "--json", "--out", tmp]
            p = _run(cmd, timeout, again)
            try:
                row = json.loads(p.stdout)["rows"][0]
            except (ValueError, KeyError, IndexError):
                last = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
                raise PropertyFailed(f"{again}: exit {p.returncode}: {last}") from None
            if row.get("status") == "witness" and row.get("witness"):
                cmd = [sys.executable, "-m", "qaicmodel", "hunt", "--replay", row["witness"]]
                r = _run(cmd, timeout, f"{again}: its witness's --replay")
                if r.returncode != 0:
                    lines = r.stdout.strip().splitlines() or ["(no output)"]
                    raise PropertyFailed(f"{again}: its witness does not replay: {lines[-1]}")
        return f"{row.get('status')}:{label}"

    return Prop(
        "hunt",
        st.tuples(st.integers(0, len(targets) - 1), st.integers(0, 2**32 - 1)),
        check,
        allow_errors=False,
        chunk=SLOW_CHUNK,
        shrink=False,
        warm=False,
    )
