"""``qaicmodel conform``: run a host against the device model under random interleavings.

``qaicmodel conform [--host MODULE:CLASS] [--budget SECONDS] [--seed N] [--policy ID=ALT ...]``

Rules:
  C1  Policy rows: :func:`qaicmodel.spec.policies.pairwise` over every registered policy
      that ``--policy`` does not pin; pinned policies take their given alternative in
      every row.  Every pair of alternatives of every two policies runs in some row,
      except that the policies of ``cosim.DRIVER_ASSUMES`` (alternatives under which the
      Linux driver itself cannot conform) stay at their defaults unless pinned.
  C2  The budget is split evenly over the rows; a row runs episodes until its share is
      used.  ``--episodes N`` runs exactly N episodes per row instead (budget ignored),
      so ``--seed S --episodes N`` replays a run exactly.
  C3  An episode is a random scenario (the ``qaicmodel-scenario/1`` vocabulary, see
      :mod:`qaicmodel.scenario`) built step by step from a PRNG seeded by (seed, row,
      episode): users, channels with an echo workload, buffer objects, slices (mostly
      valid, some not), executes, waits, semaphore pokes, and ``run`` steps whose
      interleaving of device, host-IRQ and workload actions is chosen at random and
      recorded as a ``schedule``; also control calls (deactivate, SSR, close) with BOs in
      flight and WAIT_BO threads asleep, calls in states that forbid them and device
      completion codes other than success (:mod:`qaicmodel.oracle.explore`).  Each step
      runs on the host under test; unless it *is* the reference host, the reference host
      answers the same call in the same state (C4).
  C4  The verdict comes from rules, never from resemblance to the reference host
      (issue #12 item 1).  Invariants checked after every step (stable ids):
        CONF-CRASH      the host raised something other than an ioctl errno;
        CONF-HANG       a host call did not return within the watchdog's limit;
        CONF-VIOLATION  the device recorded a host rule violation (HOST-REQ-OVERRUN, ...);
        CONF-STRANDED   a quiescent run left a response in a ring (missed-event check);
        CONF-DATA       an echo inference returned other bytes than were sent;
        CONF-REQ-ELEM, CONF-COMPLETE-TWICE, CONF-COMPLETE-EARLY, CONF-LOST, CONF-EAGAIN
                        the host-side rules of :mod:`qaicmodel.oracle.rules`: request
                        elements describe exactly the slices' bytes, each execution
                        completes exactly once and only after all its responses, nothing
                        answered is left uncompleted, EAGAIN only without room;
        CONF-RESULT     the errno (or ok, the handle, the channel) differs from what the
                        reference host answers for the same call in the same state (the
                        errno shadow of :mod:`qaicmodel.oracle.shadow`);
        CONF-NEVER-COMPLETES  a BO queued with fewer completion elements than slices (a
                        driver finding, see DRIVER_FINDINGS);
        CONF-REFERENCE  the reference host crashed or broke a device rule (a model bug,
                        reported rather than hidden);
        COSIM-REQ-OVERWRITE, COSIM-REQ-OVERRUN, COSIM-RSP-PAST-READ
                        request slots written only when free, the tail moving forward by
                        at most the free space, RSP_HP never past the RSP_TP read
                        (:mod:`qaicmodel.oracle.recorder`'s ``Recorder`` and the
                        request-slot snapshot around every host call).
  C4b ``--differential`` (``differential=True``): the reference host also runs beside the
      host, step for step, each on its own device; a different step result
      (CONF-RESULT) or device state -- registers, FIFO bytes, semaphores, interrupt masks
      (CONF-STATE) -- is a failure too.  For hosts meant to be the driver's exact twin;
      correct hosts of other shapes (qaicmodel/oracle/shapes.py) fail it.
  C5  A failure is shrunk (delta debugging over the steps, then over each ``run``'s
      schedule) and written as a scenario file whose ``expect`` fields are the reference
      host's results, so ``qaicmodel scenario FILE --host MODULE:CLASS`` shows it.
  C6  Exit status: 0 everything conformed, 1 a failure was found, 2 bad arguments.
      The seed is always printed; progress (one line per row) goes to stderr, the report
      to stdout.

Time: the *driver* of the exploration reads the clock to honour ``--budget``; the model
never does (docs/design.md).

Pieces: :mod:`qaicmodel.oracle.pair` (one step on the host under test and the
reference host, invariants C4), :mod:`qaicmodel.oracle.explore` (the episode
generator, C3), :mod:`qaicmodel.oracle.shrink` (episodes, replay, shrinking and
reproducer files, C5); this module runs the whole thing (C1, C2, C6) and is the command.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from qaicmodel.errors import ArgumentError
from qaicmodel.oracle.explore_control import CONTROL_FINDINGS, fault_specs
from qaicmodel.oracle.pair import INVARIANTS, Failure
from qaicmodel.oracle.shrink import (
    EPISODE_MOVES,
    Episode,
    _episode_seed,
    replay,
    shrink,
    write_reproducer,
)
from qaicmodel.scenario.runner import DEFAULT_HOST as SCENARIO_HOST
from qaicmodel.spec.host.protocol import HOST_METHODS, load_host

#: Invariants the Linux driver itself breaks (a host that does what the driver does hits
#: them): conform reports the first of each, shrunk, under ``driver_findings`` and the
#: verdict ``driver-findings`` -- never ``conforms`` -- but they do not stop exploring
#: and do not make the exit status 1.
DRIVER_FINDINGS: dict[str, str] = {
    "CONF-NEVER-COMPLETES": "issue #14 item 9: qaic_data.c copy_partial_exec_reqs (6.12, "
    "7.2) with resize 0 on a slice of two or more elements sends "
    "one element carrying reqs[0]'s cmd (GENMASK(7, 2)), which has "
    "no completion bit: the BO never completes, WAIT_BO times out "
    "(confirmed on the real 7.2 driver in the UML guest: docs/findings.md F9)",
    **CONTROL_FINDINGS,  # CTRL-DRIVER, CTRL-FAULT (oracle/explore_control.py V1, V2)
}

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_BUDGET",
    "INVARIANTS",
    "Failure",
    "Conformance",
    "run_conformance",
]

#: The host ``conform`` checks unless told otherwise: the fast host (qaicmodel/impl/host.py).
DEFAULT_HOST = "qaicmodel.impl.host:ImplHost"
#: Seconds; keeps ``qaicmodel conform`` near a minute on 2 cores including start-up.
DEFAULT_BUDGET = 40.0
#: Stop the whole run after this many failures (each is shrunk, which costs time).
MAX_FAILURES = 3


# ---------------------------------------------------------------------------
# The whole run (C1, C2, C6)


class Conformance:
    """A conformance run: the rows, the counters, the failures."""

    def __init__(
        self,
        host_ref: str | type,
        *,
        seed: int,
        budget: float,
        episodes: int | list[int] | None,
        pinned: dict[str, str],
        out_dir: Path,
        progress: Any = None,
        kernel: str | None = None,
        differential: bool = False,
        control_host: str | type | None = None,
        control_faults: Any = (),
    ) -> None:
        from qaicmodel.spec.control.protocol import load_control_host
        from qaicmodel.spec.policies import REGISTRY, Policies, pairwise

        #: the control client under test and the control faults armed in every episode
        faults = fault_specs(control_faults)
        if control_host is not None:
            load_control_host(control_host)  # a bad reference: ArgumentError before the run
        self.control = (control_host, faults)
        self.control_ref = (
            control_host
            if control_host is None or isinstance(control_host, str)
            else f"{control_host.__module__}:{control_host.__qualname__}"
        )

        #: C4b: also run the reference host step for step and compare (CONF-STATE)
        self.differential = bool(differential)

        Policies(pinned)  # validates ids and alternatives (PolicyError)
        if isinstance(host_ref, str):
            self.host_ref, self.host_cls = host_ref, load_host(host_ref)
        else:
            self.host_ref = f"{host_ref.__module__}:{host_ref.__qualname__}"
            self.host_cls = _check_host(host_ref)
        ref_cls = load_host(SCENARIO_HOST)
        self.ref_cls = None if ref_cls is self.host_cls else ref_cls
        self.seed, self.budget, self.episodes = seed, budget, episodes
        from qaicmodel.spec.host import kernels

        self.kernel = str(kernels.parse(kernel))  # the driver version (spec/host/kernels.py)
        self.out_dir = out_dir
        self.progress = progress
        from qaicmodel.oracle.cosim import DRIVER_ASSUMES

        # policies under whose non-default alternatives the Linux driver itself does not
        # conform (found by the cosim machines) stay at their defaults unless pinned
        self.held = {
            p: why for p, why in DRIVER_ASSUMES.items() if p in REGISTRY and p not in pinned
        }
        # the virtual board's boot/MHI policies (spec/policies/board.py) are read only by
        # the UML emulator, never by the co-simulated device: varying them here would only
        # spend conform's rows; and only the device's ambiguities vary (category "device"; kernel-version,
        # modelling-limit, driver-bug and settled entries are not readings of the device)
        from qaicmodel.spec.policies import ambiguities
        from qaicmodel.spec.policies import board as _board

        device = set(ambiguities())
        self.registry = {
            k: v for k, v in REGISTRY.items() if k in device and k not in _board.POLICY_IDS
        }
        self.held = {p: why for p, why in self.held.items() if p in self.registry}
        free = [p for p in sorted(self.registry) if p not in pinned and p not in self.held]
        self.rows = [Policies({**r.chosen, **pinned}) for r in pairwise(free)]
        self.pinned = pinned
        self.checks: Counter[str] = Counter()
        self.steps = self.actions = self.episodes_run = 0
        #: responses with a completion code other than success, over all episodes
        self.error_responses = 0
        self.failures: list[dict[str, Any]] = []
        #: failures of DRIVER_FINDINGS invariants (the first of each; all are counted)
        self.driver_findings: list[dict[str, Any]] = []
        self.driver_hits: Counter[str] = Counter()
        self.rows_run: list[Any] = []
        self.row_log: list[dict[str, Any]] = []
        self.elapsed = 0.0

    def run(self) -> Conformance:
        t0 = time.monotonic()
        share = self.budget / max(1, len(self.rows))
        for ri, row in enumerate(self.rows):
            if len(self.failures) >= MAX_FAILURES:
                break
            if any(f["invariant"] == "CONF-HANG" for f in self.failures):
                break  # each replay of a hang costs a watchdog period: one is enough
            # --episodes N, or one count per row (the exact replay of a budgeted run)
            limit = self.episodes
            if isinstance(limit, list):
                if ri >= len(limit):
                    break
                limit = limit[ri]
            t_row = time.monotonic()
            deadline = None if self.episodes is not None else t_row + share
            steps0, ep, row_fail = self.steps, 0, 0
            while True:
                if limit is not None and ep >= limit:
                    break
                if deadline is not None and time.monotonic() >= deadline and ep > 0:
                    break
                f = self._episode(ri, row, ep, deadline)
                ep += 1
                if f:
                    row_fail += 1
                    break
            self.rows_run.append(row)
            dt = max(time.monotonic() - t_row, 1e-9)
            n = self.steps - steps0
            self.row_log.append(
                {
                    "row": ri,
                    "policies": row.label(),
                    "episodes": ep,
                    "steps": n,
                    "failures": row_fail,
                }
            )
            if self.progress is not None:
                self.progress.write(
                    f"row {ri + 1}/{len(self.rows)} [{row.label()[:60]}]: {ep} episodes, "
                    f"{n} steps, {n / dt:.0f} steps/s, {row_fail} failures\n"
                )
                self.progress.flush()
        self.elapsed = time.monotonic() - t0
        return self

    def _episode(self, ri: int, row: Any, ep: int, deadline: float | None) -> bool:
        eseed = _episode_seed(self.seed, ri, ep)
        e = Episode(
            eseed,
            row,
            self.host_cls,
            self.ref_cls,
            kernel=self.kernel,
            differential=self.differential,
            control=self.control,
        )
        # an episode is never cut short by the deadline (only rows are), so the per-row
        # episode counts of `replay` replay a budgeted run exactly
        f = e.run(EPISODE_MOVES, None)
        self.episodes_run += 1
        self.steps += len(e.steps)
        self.actions += e.actions
        self.error_responses += e.pair.rules.error_codes
        self.checks.update(e.pair.checks)
        if f is None:
            return False
        # V2 (oracle/explore_control.py): after a control fault fired, what the reference
        # host also does is the driver's reaction to a hostile device
        reaction = f.invariant not in DRIVER_FINDINGS and self._fault_reaction(e, f)
        known = reaction or f.invariant in DRIVER_FINDINGS
        if known:  # the Linux driver itself does this: report once, go on exploring
            hit = "CTRL-FAULT" if reaction else f.invariant
            self.driver_hits[hit] += 1
            if self.driver_hits[hit] > 1:
                return False
        pols = {  # a pinned board policy (not in self.registry) is not the device's
            k: v
            for k, v in row.chosen.items()
            if k in self.registry and self.registry[k].default != v
        }
        small, f2, replays = shrink(
            e.explorer.cfg,
            pols,
            e.steps,
            f,
            self.host_cls,
            self.ref_cls,
            self.differential,
            self.control,
        )
        again = replay(
            e.explorer.cfg,
            pols,
            small,
            self.host_cls,
            self.ref_cls,
            self.differential,
            self.control,
        )
        name = f"conform-{self.seed}-row{ri}-ep{ep}.json"
        path = self.out_dir / name
        write_reproducer(
            path,
            e.explorer.cfg,
            pols,
            small,
            f2,
            self.ref_cls,
            f"qaicmodel conform --seed {self.seed} --host {self.host_ref}{self._control_args()}"
            f"{self._mode_arg()}",
            self.control[1],
        )
        (self.driver_findings if known else self.failures).append(
            {
                "invariant": f2.invariant,
                "description": INVARIANTS[f2.invariant],
                "message": f2.message,
                "row": ri,
                "policies": row.label(),
                "episode": ep,
                "episode_seed": eseed,
                "steps_before_shrink": len(e.steps),
                "steps_after_shrink": len(small),
                "shrink_replays": replays,
                "reproduces": again is not None and again.key == f2.key,
                "reproducer": str(path),
                "replay": f"qaicmodel conform --replay {path} --host {self.host_ref}"
                f"{self._control_args()}{self._mode_arg()}",
                "finding": f2.finding.as_dict(),
                **(
                    {"driver_finding": DRIVER_FINDINGS["CTRL-FAULT" if reaction else f.invariant]}
                    if known
                    else {}
                ),
            }
        )
        return not known

    def _fault_reaction(self, e: Episode, f: Failure) -> bool:
        """A failure after a control fault fired that the reference host, as the host
        under test, shows too (rule V2 of oracle/explore_control.py)."""
        if not getattr(e.pair.prim.control, "fault_log", None):
            return False
        if self.ref_cls is None:
            return True
        pols = {k: v for k, v in e.policies.chosen.items() if k in self.registry}
        got = replay(
            e.explorer.cfg,
            pols,
            e.steps[: f.index + 1],
            self.ref_cls,
            None,
            False,
            (None, self.control[1]),
        )
        return got is not None and got.invariant == f.invariant

    def coverage(self) -> dict[str, Any]:
        pids = sorted(self.registry)
        alts = {(p, a) for p in pids for a in self.registry[p].alternatives}
        pairs_total = sum(
            len(self.registry[a].alternatives) * len(self.registry[b].alternatives)
            for a, b in itertools.combinations(pids, 2)
        )
        seen_alts = {(p, r[p]) for r in self.rows_run for p in pids}
        seen_pairs = {
            (a, r[a], b, r[b]) for r in self.rows_run for a, b in itertools.combinations(pids, 2)
        }
        return {
            "policies": len(pids),
            "alternatives_covered": len(seen_alts & alts),
            "alternatives_total": len(alts),
            "pairs_covered": len(seen_pairs),
            "pairs_total": pairs_total,
            "rows_run": len(self.rows_run),
            "rows_total": len(self.rows),
            "pinned": dict(self.pinned),
            "held_at_default": dict(self.held),
        }

    def report(self) -> dict[str, Any]:
        return {
            "format": "qaicmodel-conform/1",
            "verdict": (
                "FAILED"
                if self.failures
                else "driver-findings"
                if self.driver_findings
                else "conforms"
            ),
            "host": self.host_ref,
            "reference": SCENARIO_HOST if self.ref_cls is not None else None,
            "mode": "differential" if self.differential else "rules",
            "control_host": self.control_ref,
            "control_faults": list(self.control[1]),
            "seed": self.seed,
            "kernel": self.kernel,
            "budget_s": self.budget,
            "episodes_per_row": self.episodes,
            "elapsed_s": round(self.elapsed, 2),
            "episodes": self.episodes_run,
            "steps": self.steps,
            "actions": self.actions,
            "device_error_responses": self.error_responses,
            "invariants_checked": dict(sorted(self.checks.items())),
            "invariants_total": sum(self.checks.values()),
            "policies_covered": self.coverage(),
            "replay": f"--seed {self.seed} --episodes {self._replay_episodes()}",
            "rows": self.row_log,
            "failures": self.failures,
            "driver_findings": self.driver_findings,
            "driver_finding_hits": dict(self.driver_hits),
        }

    def _mode_arg(self) -> str:
        """`` --differential`` when this run compares step for step ('' for the rules)."""
        return " --differential" if self.differential else ""

    def _control_args(self) -> str:
        """`` --control-host X --control-fault F ...`` of this run ('' by default)."""
        out = f" --control-host {self.control_ref}" if self.control_ref else ""
        return out + "".join(f" --control-fault {f}" for f in self.control[1])

    def _replay_episodes(self) -> str:
        """``--episodes`` that replays this run exactly: N, or one count per row run."""
        if isinstance(self.episodes, int):
            return str(self.episodes)
        counts = [r["episodes"] for r in self.row_log] or [1]
        if isinstance(self.episodes, list) or len(set(counts)) > 1:
            return ",".join(map(str, counts))
        return str(counts[0])


def _check_host(cls: type) -> type:
    missing = [m for m in HOST_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise ArgumentError(
            f"{cls.__qualname__} does not implement the host interface: "
            f"missing {', '.join(missing)}"
        )
    return cls


def run_conformance(
    host: str | type = DEFAULT_HOST,
    *,
    seed: int | None = None,
    budget: float = DEFAULT_BUDGET,
    episodes: int | list[int] | None = None,
    policies: dict[str, str] | None = None,
    out_dir: str | Path = "conform-failures",
    progress: Any = None,
    kernel: str | None = None,
    differential: bool = False,
    control_host: str | type | None = None,
    control_faults: Any = (),
) -> dict[str, Any]:
    """Python API for the ``conform`` command; returns the report dict.
    ``control_host``/``control_faults``: the control client under test (``MODULE:CLASS``
    or a class) and control faults (``NAME[:SEED[:AT]][+]``) armed in every episode.
    ``differential``: also compare with the reference host step for step (C4b)."""
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    return (
        Conformance(
            host,
            seed=seed,
            budget=budget,
            episodes=episodes,
            pinned=dict(policies or {}),
            out_dir=Path(out_dir),
            progress=progress,
            kernel=kernel,
            differential=differential,
            control_host=control_host,
            control_faults=control_faults,
        )
        .run()
        .report()
    )
