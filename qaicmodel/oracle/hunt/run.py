"""A whole hunt: every target in turn, the witnesses written, the report built.

Rules:

  R1  Targets: every registered policy named by ``--policy`` (all when none is named)
      except the virtual board's (spec/policies/board.py: read only by the UML emulator,
      never by the scenario runner; listed as ``not searched``); one target per
      non-default alternative (``--policy ID=ALT`` keeps one).  ``--pairs`` adds the
      pair targets of search.py S1 over the same policies.
  R2  ``--budget`` seconds are split evenly over the targets; ``--episodes N`` runs
      exactly N episodes per target instead (an exact replay of ``--seed``).
  R3  Each witness is written as ``OUT/hunt-<target>.json`` (witness.py W1, W2) and
      checked against the host under test under every side (search.py S4).  When the
      host is correct on it, the target's search goes on for a witness it is not
      correct on (S5); one found is written as ``OUT/hunt-<target>.host.json`` and
      reported as the row's ``host_break``, and the row's ``host_correct`` is then
      False.  ``host_correct`` True means: correct on every witness found.
  R4  The report: one row per target -- found or not, the difference, the host's
      correctness under every side, seconds, episodes -- and the seed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from qaicmodel.errors import ArgumentError, PolicyError
from qaicmodel.oracle.hunt.search import (
    Target,
    host_breaks,
    host_checks,
    pair_targets,
    search,
    single_targets,
)
from qaicmodel.oracle.hunt.witness import file_name, witness_doc, write_witness

__all__ = ["Hunt", "targets_for", "REPORT_FORMAT", "NO_DIFFERENCE"]

REPORT_FORMAT = "qaicmodel-hunt/1"
NO_DIFFERENCE = "no host-visible difference found"


def _board_ids() -> tuple[str, ...]:
    from qaicmodel.spec.policies import board

    return tuple(board.POLICY_IDS)


def targets_for(names: list[str], pairs: bool) -> tuple[list[Target], list[str], list[str]]:
    """R1: (targets, policies searched, board policies not searched)."""
    from qaicmodel.spec.policies import REGISTRY

    chosen: dict[str, str | None] = {}
    for n in names:
        pid, _, alt = n.partition("=")
        pid = pid.strip()
        if pid not in REGISTRY:
            raise PolicyError(f"unknown policy {pid!r} (see `qaicmodel ambiguities`)")
        if alt:
            REGISTRY[pid].alt(alt.strip())  # PolicyError when it is no alternative
            if alt.strip() == REGISTRY[pid].default:
                raise PolicyError(
                    f"{pid}={alt.strip()} is the default; name a non-default alternative"
                )
        chosen[pid] = alt.strip() or None
    pids = sorted(chosen) if chosen else sorted(REGISTRY)
    skipped = [p for p in pids if p in _board_ids()]
    pids = [p for p in pids if p not in skipped]
    ts = [
        t
        for t in single_targets(pids)
        if chosen.get(t.policies[0]) in (None, t.choices[1][t.policies[0]])
    ]
    if pairs:
        if len(pids) < 2:
            raise ArgumentError("--pairs needs at least two policies the model reads")
        ts += pair_targets(pids)
    return ts, pids, skipped


class Hunt:
    """R1-R4 for one host."""

    def __init__(
        self,
        *,
        host_ref: str,
        host_cls: type,
        ref_cls: type | None,
        seed: int,
        budget: float,
        episodes: int | None,
        names: list[str],
        pairs: bool,
        out_dir: Path,
        kernel: str | None = None,
        progress: Any = None,
    ) -> None:
        if budget <= 0:
            raise ArgumentError(f"--budget must be positive, not {budget}")
        if episodes is not None and episodes < 1:
            raise ArgumentError(f"--episodes must be at least 1, not {episodes}")
        self.targets, self.pids, self.skipped = targets_for(names, pairs)
        self.host_ref, self.host_cls, self.ref_cls = host_ref, host_cls, ref_cls
        self.seed, self.budget, self.episodes = seed, budget, episodes
        self.out_dir, self.kernel, self.progress = out_dir, kernel, progress
        self.rows: list[dict[str, Any]] = []
        self.witness_docs: list[tuple[Path, dict[str, Any]]] = []
        self.elapsed = 0.0

    def run(self) -> Hunt:
        from qaicmodel.oracle.hunt.search import GENERATOR_ERRORS

        GENERATOR_ERRORS.clear()
        t0 = time.monotonic()
        share = self.budget / max(1, len(self.targets))
        for idx, t in enumerate(self.targets):
            t1 = time.monotonic()
            w, eps = search(
                t,
                idx,
                seed=self.seed,
                host_cls=self.host_cls,
                kernel=self.kernel,
                deadline=t1 + share,
                episodes=self.episodes,
            )
            row = self._row(t, w, eps, time.monotonic() - t1)
            if row.get("host_correct") is True:
                eps = self._host_break(t, idx, row, eps, t1 + share)
                row.update(episodes=eps, seconds=round(time.monotonic() - t1, 2))
            self.rows.append(row)
            if self.progress is not None:
                self.progress.write(
                    f"hunt {idx + 1}/{len(self.targets)} {t.label}: {row['status']} "
                    f"({row['episodes']} episodes, {row['seconds']:.1f} s)\n"
                )
                self.progress.flush()
        self.elapsed = time.monotonic() - t0
        return self

    def _host_break(
        self, t: Target, idx: int, row: dict[str, Any], eps: int, deadline: float
    ) -> int:
        """R3/S5: go on for a witness the host is not correct on; episodes run in all."""
        if self.episodes is None and time.monotonic() > deadline:
            return eps
        accept = host_breaks(t, self.host_cls, self.ref_cls)
        w, eps = search(
            t,
            idx,
            seed=self.seed,
            host_cls=self.host_cls,
            kernel=self.kernel,
            deadline=deadline,
            episodes=self.episodes,
            start=eps,
            accept=accept,
        )
        if w is None:
            return eps
        # the witness is the last candidate S5 accepted: its checks are already made
        assert accept.accepted is not None and accept.accepted[0] == w.steps
        checks = accept.accepted[1]
        a, b = w.sides.outcomes[0][w.step], w.sides.outcomes[w.side][w.step]
        path = (self.out_dir / file_name(t.label)).with_suffix(".host.json")
        d = witness_doc(w, host=self.host_ref, seed=self.seed, command=row["command"])
        write_witness(path, d)
        self.witness_docs.append((path, d))
        row["host_break"] = {
            "kind": w.kind,
            "difference": _describe(w.steps[w.step]["op"], w.step, a, b, t),
            "steps": len(w.steps),
            "steps_before_shrink": w.steps_before_shrink,
            "shrink_replays": w.shrink_replays,
            "episode": w.episode,
            "witness": str(path),
            "replay": f"qaicmodel hunt --replay {path}",
            "host_checks": checks,
        }
        row["host_correct"] = _verdict(checks)  # False: S5 accepted it, so a side failed
        return eps

    def _row(self, t: Target, w: Any, eps: int, dt: float) -> dict[str, Any]:
        from qaicmodel.spec.policies import REGISTRY

        row: dict[str, Any] = {
            "target": t.label,
            "policies": list(t.policies),
            "category": "+".join(sorted({REGISTRY[p].category for p in t.policies})),
            "pair": t.pair,
            "episodes": eps,
            "seconds": round(dt, 2),
        }
        if w is None:
            row.update(status="none", difference=NO_DIFFERENCE)
            return row
        a, b = w.sides.outcomes[0][w.step], w.sides.outcomes[w.side][w.step]
        status = "model-error" if w.kind == "model error" else "witness"
        cmd = f"qaicmodel hunt --policy {t.policies[0]} --seed {self.seed} --host {self.host_ref}"
        d = witness_doc(w, host=self.host_ref, seed=self.seed, command=cmd)
        path = self.out_dir / file_name(t.label)
        write_witness(path, d)
        self.witness_docs.append((path, d))
        checks = host_checks(w, self.host_cls, self.ref_cls) if status == "witness" else []
        row.update(
            status=status,
            kind=w.kind,
            difference=_describe(w.steps[w.step]["op"], w.step, a, b, t),
            steps=len(w.steps),
            steps_before_shrink=w.steps_before_shrink,
            shrink_replays=w.shrink_replays,
            episode=w.episode,
            witness=str(path),
            replay=f"qaicmodel hunt --replay {path}",
            command=cmd,
            host_checks=checks,
            host_correct=_verdict(checks),
        )
        return row

    def report(self) -> dict[str, Any]:
        found = [r for r in self.rows if r["status"] == "witness"]
        dependent = [r for r in found if r.get("host_correct") is False]
        return {
            "format": REPORT_FORMAT,
            "host": self.host_ref,
            "seed": self.seed,
            "budget_s": self.budget,
            "episodes_per_target": self.episodes,
            "elapsed_s": round(self.elapsed, 2),
            "targets": len(self.rows),
            "generator_errors": _generator_errors(),
            "witnesses": len(found),
            "host_depends_on_a_reading": [r["target"] for r in dependent],
            "not_searched": [
                {"policy": p, "why": "read only by the UML board (spec/policies/board.py)"}
                for p in self.skipped
            ],
            "replay": f"--seed {self.seed} --episodes "
            f"{max([r['episodes'] for r in self.rows] or [1])}",
            "rows": self.rows,
        }


def _generator_errors() -> dict[str, int]:
    """Errors conform's episode generator raised (each ended an episode), by message."""
    from collections import Counter

    from qaicmodel.oracle.hunt.search import GENERATOR_ERRORS

    return dict(Counter(GENERATOR_ERRORS))


def _verdict(checks: list[dict[str, Any]]) -> bool | None:
    """False when some side failed, None when some side could not be checked."""
    if any(c["correct"] is False for c in checks):
        return False
    if not checks or any(c["correct"] is None for c in checks):
        return None
    return True


def _describe(op: str, i: int, a: dict[str, Any], b: dict[str, Any], t: Target) -> str:
    left, right = _short(a), _short(b)
    names = [",".join(f"{k}={v}" for k, v in c.items() if k in t.policies) for c in t.choices]
    other = names[3] if t.pair else names[1]
    return f"step {i} {op}: {names[0]} -> {left}; {other} -> {right}"


def _short(v: dict[str, Any]) -> str:
    parts = [str(v["result"])]
    if "rules" in v:
        parts.append("broke " + "/".join(v["rules"]))
    if "stranded" in v:
        parts.append(f"stranded response on dbc {v['stranded'][0]}")
    if "hex" in v:
        parts.append(f"data {v['hex'][:16]}{'...' if len(v['hex']) > 16 else ''}")
    if "dbc_id" in v:
        parts.append(f"dbc {v['dbc_id']}")
    if "crash" in v:
        parts.append(f"crash {v['crash']}")
    if "model_error" in v:
        parts.append(v["model_error"])
    return " ".join(parts)
