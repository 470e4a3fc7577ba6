"""One hunt episode on several policy choices at once: what the host sees, step by step.

Rules (the ``qaicmodel hunt`` vocabulary; see :mod:`qaicmodel.oracle.hunt`):

  V1  A *side* is one scenario :class:`~qaicmodel.scenario.runner.Runner` (one device
      model, one host) built with one :class:`~qaicmodel.spec.policies.Policies`.
      Every side runs the same steps.
  V2  The *host-visible outcome* of a step is its projection :func:`visible`: the
      ioctl result (``ok`` or the errno), the dbc id an activate returns, the bytes a
      ``read_bo`` returns, the ``perf_stats`` records, the ids of the host rules the
      device recorded as broken during the step, the channels left with a stranded
      response, and a host crash (an exception other than an ioctl errno).  Device
      counters, DMA segments, semaphore values and ``dump`` are not host-visible.
  V3  A *seeded run* (``{"op": "run", "seed": S, "actions": N}`` inside the hunt only)
      takes up to N actions, each chosen by ``random.Random(S)`` among the enabled
      ones, on every side separately; each side records the schedule it took, so a
      witness replays exactly even where the alternatives enable different actions.
      A witness is written with plain ``schedule`` runs (scenario.md extension).
  V4  A step no side can run (a ``FormatError``: a name bound by a step that failed, a
      call that would block for ever; or another model error, such as an ``ssr`` of a
      channel without a workload) ends the episode; it is never a difference.  A model
      error on some sides only is an outcome (``model_error``): the model cannot run
      that alternative there, which the report shows as such, never as a witness.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import attrs

from qaicmodel.errors import FormatError, QaicModelError
from qaicmodel.scenario.format import FORMAT, parse
from qaicmodel.scenario.report import violations_of
from qaicmodel.scenario.runner import Runner
from qaicmodel.spec.dbc.config import DeviceConfig

__all__ = ["Outcome", "Sides", "visible", "doc", "kind_of", "NotRunnable"]


class NotRunnable(Exception):
    """V4: the step cannot run on some side (internal)."""


def doc(cfg: DeviceConfig, policies: dict[str, str], steps: list[dict[str, Any]]) -> dict[str, Any]:
    """A scenario document (``qaicmodel-scenario/1``) for ``steps``."""
    dev = cfg.as_dict()
    dev["policies"] = dict(policies)
    return {"format": FORMAT, "device": dev, "steps": steps}


def plain(d: dict[str, Any]) -> dict[str, Any]:
    """A step as the scenario parser accepts it (a seeded run without its seed, V3)."""
    if d.get("op") == "run" and "seed" in d:
        return {k: v for k, v in d.items() if k not in ("seed", "actions")}
    return d


def visible(res: dict[str, Any]) -> dict[str, Any]:
    """V2: the host-visible part of a step's result record."""
    out: dict[str, Any] = {"result": res.get("result")}
    for k in ("dbc_id", "hex", "stats", "crash", "model_error"):
        if k in res:
            out[k] = res[k]
    if res.get("violations"):
        out["rules"] = sorted({v["rule"] for v in res["violations"]})
    if res.get("stranded"):
        out["stranded"] = list(res["stranded"])
    return out


def kind_of(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The kind of a difference between two visible outcomes (the report's column)."""
    if "model_error" in a or "model_error" in b:
        return "model error"
    if "crash" in a or "crash" in b:
        return "host crash"
    if a.get("rules") != b.get("rules"):
        return "rule broken"
    if a.get("stranded") != b.get("stranded"):
        return "stranded completion"
    if a["result"] != b["result"]:
        if "ETIMEDOUT" in (a["result"], b["result"]):
            return "wait timeout"
        return "errno"
    if a.get("hex") != b.get("hex"):
        return "data read back"
    if a.get("dbc_id") != b.get("dbc_id"):
        return "dbc id"
    return "perf stats"


@attrs.frozen
class Outcome:
    """One side's run: per step the visible outcome and (for seeded runs) its schedule."""

    visible: tuple[dict[str, Any], ...]
    schedules: dict[int, list[str]]


class Sides:
    """The same steps on every policy choice (V1); stepwise, for the generator."""

    def __init__(
        self, cfg: DeviceConfig, choices: Sequence[dict[str, str]], host_cls: type | None
    ) -> None:
        from qaicmodel.spec.policies import Policies

        self.cfg = cfg
        self.choices = [dict(c) for c in choices]
        self.runners = [Runner(cfg, host_cls=host_cls, policies=Policies(c)) for c in choices]
        self.outcomes: list[list[dict[str, Any]]] = [[] for _ in choices]
        self.schedules: list[dict[int, list[str]]] = [{} for _ in choices]

    def step(self, i: int, d: dict[str, Any], steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run step ``d`` (index ``i`` of ``steps``) on every side; the raw results."""
        seeded = d.get("op") == "run" and "seed" in d
        try:
            st = parse(doc(self.cfg, {}, [plain(x) for x in [*steps[:i], d]])).steps[i]
        except FormatError as e:
            raise NotRunnable(str(e)) from None
        out: list[dict[str, Any]] = []
        errors = 0
        for k, r in enumerate(self.runners):
            try:
                if seeded:
                    res = _seeded_run(r, i, int(d["seed"]), int(d["actions"]))
                    self.schedules[k][i] = res.pop("schedule")
                else:
                    res = r.step(st)
            except QaicModelError as e:  # FormatError, "no workload to crash", ...
                errors += 1
                msg = e.one_line()
                res = {"step": i, "op": st.op, "result": "model-error", "model_error": msg}
            except Exception as e:  # noqa: BLE001 - a host crash is an outcome (V2)
                res = {"step": i, "op": st.op, "result": "crash", "crash": type(e).__name__}
            out.append(res)
        if errors == len(self.runners):
            raise NotRunnable(out[0]["model_error"])
        for k, res in enumerate(out):
            self.outcomes[k].append(visible(res))
        return out

    def first_difference(self, base: int = 0) -> tuple[int, int] | None:
        """(step, side) of the first step whose outcome differs from side ``base``'s."""
        n = min(len(o) for o in self.outcomes)
        for i in range(n):
            for k in range(len(self.outcomes)):
                if self.outcomes[k][i] != self.outcomes[base][i]:
                    return i, k
        return None

    def result(self, k: int) -> Outcome:
        return Outcome(tuple(self.outcomes[k]), dict(self.schedules[k]))


def _seeded_run(r: Runner, i: int, seed: int, n: int) -> dict[str, Any]:
    """V3: up to ``n`` actions chosen by ``Random(seed)``; the schedule taken."""
    rng = random.Random(seed)
    seen = len(r.device.violations)
    schedule: list[str] = []
    for _ in range(n):
        acts = r.enabled()
        if not acts:
            break
        tag, a = acts[rng.randrange(len(acts))]
        schedule.append(f"{tag}:{a!r}")
        r.take(tag, a)
    res: dict[str, Any] = {"step": i, "op": "run", "result": "ok", "schedule": schedule}
    new = violations_of(r.device)[seen:]
    if new:
        res["violations"] = new
    r.results.append(res)
    return res


def run_all(
    cfg: DeviceConfig,
    choices: Sequence[dict[str, str]],
    steps: list[dict[str, Any]],
    host_cls: type | None,
) -> Sides | None:
    """Every step on every side; None when some step cannot run (V4)."""
    sides = Sides(cfg, choices, host_cls)
    try:
        for i, d in enumerate(steps):
            sides.step(i, d, steps)
    except NotRunnable:
        return None
    return sides
