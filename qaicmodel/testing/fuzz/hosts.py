"""Fuzz targets that run a host: a host under ``conform``, the real driver in the guest.

Rules:
  H1  ``host``: the input is a conform seed; the check is ``qaicmodel conform --host H
      --seed N --episodes 1 --json`` (conform's public command, read-only: the episode
      machinery belongs to the conform module), one episode per policy row, in a child
      process bounded by ``--example-timeout`` (a conform run that does not end is a
      failure too, not a stuck campaign).  A report with failures is a failure, replayed
      by the same command (conform's own reproducers go to ``OUT/conform/``).  Seeds are
      not shrunk (a smaller seed is not a simpler run).
  H2  ``guest``: the input is a small uapi scenario (open, activate, create_bo,
      attach_slice, execute, wait, read_bo, detach_slice, deactivate; shared/formats/
      scenario.md).  The spec host runs it first and its outcomes become the steps'
      ``expect``; then ``qaicmodel scenario FILE --host linux --json`` runs it on the real
      accel/qaic driver in the UML guest.  Exit 1 (the driver disagrees with the spec host)
      or 2 (the guest failed), or a run past its timeout, is a failure.  Each example boots
      a kernel (20-60 s): one example per chunk, no shrinking, bounded by ``--budget``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from qaicmodel.testing.fuzz.targets import SLOW_CHUNK, Prop, PropertyFailed

__all__ = ["host_prop", "guest_prop", "HOST_ALIASES"]

HOST_ALIASES = {"spec": "qaicmodel.spec.host:SpecHost", "impl": "qaicmodel.impl.host:ImplHost"}


def host_prop(params: dict[str, Any]) -> Prop:
    """H1."""
    host = HOST_ALIASES.get(params.get("host") or "impl", params.get("host") or "impl")
    out = Path(params.get("out", "fuzz-failures")) / "conform"
    timeout = float(params.get("example_timeout", 300.0))

    def check(seed: int) -> str:
        again = f"qaicmodel conform --host {host} --seed {seed} --episodes 1"
        cmd = [sys.executable, "-m", "qaicmodel", "conform", "--host", host, "--seed", str(seed)]
        cmd += ["--episodes", "1", "--json", "--out", str(out)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PropertyFailed(f"{again}: did not finish within {timeout:.0f} s") from None
        try:
            rep = json.loads(p.stdout)
        except ValueError:
            last = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise PropertyFailed(f"{again}: exit {p.returncode}: {last}") from None
        if rep["failures"]:
            f = rep["failures"][0]
            raise PropertyFailed(f"{again}: {json.dumps(f, sort_keys=True)[:300]}")
        return f"{rep['verdict']}:{','.join(sorted(rep['driver_finding_hits']))}"

    return Prop(
        f"host[{host}]",
        st.integers(0, 2**32 - 1),
        check,
        allow_errors=False,
        chunk=SLOW_CHUNK,
        shrink=False,
        warm=False,
    )


_SIZES = [4096, 8192, 12288]


@st.composite
def guest_scenario(draw: st.DrawFn) -> dict[str, Any]:
    """H2: a short scenario over one user, one channel and up to two BOs."""
    steps: list[dict[str, Any]] = [
        {"op": "open", "user": "a"},
        {
            "op": "activate",
            "user": "a",
            "queue_size": draw(st.sampled_from([1, 2, 4, 16])),
            "as": "d",
        },
    ]
    bos: list[tuple[str, int]] = []
    for i in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["create_bo", "attach", "execute", "wait", "read_bo", "detach"]))
        if op == "create_bo" or not bos:
            size = draw(st.sampled_from(_SIZES))
            bos.append((f"b{i}", size))
            steps.append({"op": "create_bo", "user": "a", "size": size, "as": f"b{i}"})
            continue
        name, size = draw(st.sampled_from(bos))
        if op == "attach":
            steps.append(
                {
                    "op": "attach_slice",
                    "user": "a",
                    "hdr": {
                        "dbc_id": "d",
                        "handle": name,
                        "dir": draw(st.sampled_from([1, 2])),
                        "size": size,
                    },
                    "entries": [{"size": draw(st.sampled_from([size, 4096])), "offset": 0}],
                }
            )
        elif op == "execute":
            steps.append({"op": "execute", "user": "a", "dbc_id": "d", "handles": [name]})
        elif op == "wait":
            steps.append(
                {"op": "wait", "user": "a", "handle": name, "dbc_id": "d", "timeout_ms": 100}
            )
        elif op == "read_bo":
            steps.append({"op": "read_bo", "user": "a", "handle": name, "length": 4})
        else:
            steps.append({"op": "detach_slice", "user": "a", "handle": name})
    if draw(st.booleans()):
        steps.append({"op": "deactivate", "user": "a", "dbc_id": "d"})
    return {"format": "qaicmodel-scenario/1", "device": {"num_dbc": 16}, "steps": steps}


def with_spec_expects(doc: dict[str, Any]) -> dict[str, Any]:
    """H2: the spec host's outcome of every step becomes its ``expect``."""
    from qaicmodel.scenario.runner import run_scenario

    rep = run_scenario(doc)
    steps = [dict(s) for s in doc["steps"]]
    for r in rep.results:
        steps[r["step"]]["expect"] = r["result"]
    return {**doc, "steps": steps}


def guest_prop(params: dict[str, Any]) -> Prop:
    """H2."""
    timeout = float(params.get("example_timeout", 120.0))

    def check(doc: dict[str, Any]) -> str:
        full = with_spec_expects(doc)
        fd, name = tempfile.mkstemp(prefix="qaicmodel-fuzz-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(full, f)
            cmd = [sys.executable, "-m", "qaicmodel", "scenario", name, "--host", "linux"]
            cmd += ["--json", "--timeout", str(timeout)]
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)
            except subprocess.TimeoutExpired:
                raise PropertyFailed(
                    f"the guest run did not end within {timeout + 60:.0f} s"
                ) from None
        finally:
            os.unlink(name)
        if p.returncode == 1:
            mm = json.loads(p.stdout).get("first_mismatch")
            raise PropertyFailed(f"the real driver disagrees with the spec host: {json.dumps(mm)}")
        if p.returncode != 0:
            last = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise PropertyFailed(f"the guest run failed (exit {p.returncode}): {last}")
        return "agrees:" + ",".join(str(s.get("expect")) for s in full["steps"])

    return Prop(
        "guest[linux]",
        guest_scenario(),
        check,
        allow_errors=False,
        chunk=SLOW_CHUNK,
        shrink=False,
        warm=False,
    )
