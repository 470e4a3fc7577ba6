"""Which policy alternatives the real Linux driver depends on -- measured, not read off the code.

Issue #10 item 5: for each data-path policy (areas ``dma-bridge`` and ``nnc``) every
alternative ran a fixed workload on the real ``accel/qaic`` driver in the UML guest
(``qaicmodel uml policies``, qaicmodel/emu/policy_table.py P1-P7) with that alternative
pinned and everything else at its default.  This module is the record:

  M1 :data:`MEASURED` maps policy id -> kernel version -> :class:`Measurement`: the
     alternatives that work (every call ok, data intact, no device rule broken, clean
     run) on every workload, and for each one that does not, how it fails (the outcome
     class of P2-P6, the workload, the first symptom);
  M2 the driver *depends on* a policy when some alternative fails (:func:`depends`); a
     policy whose every alternative works is one the driver is indifferent to on these
     workloads -- not proof it is indifferent on every workload;
  M3 every entry names the date and the command that measured it; the full output is
     kept as tests/uml/data/uml-policies-7.2.json, and tests/uml/test_policies_measured.py
     ties this table to it and re-measures every failing alternative (and the default
     beside it) fresh on each run of the guest tests;
  M4 only 7.2 is measured: 6.12's UML cannot run user space on this machine
     (docs/findings.md F2);
  M5 workloads: ``echo`` and ``elements`` for every policy; ``resize0``
     (examples/partial_resize0.json, docs/findings.md F8) where noted -- a race, so
     the count of runs that worked is given;
  M6 noise: about 1 run in 6 of ``elements`` ends in ``HOST-RSP-OVERREAD`` (an RSP_HP no
     RSP_TP read justifies) under *any* alternative, the defaults included: UML's
     non-re-entrant virtio_pcidev (docs/findings.md F7; MHI's hard-IRQ handler still
     reads registers in polling mode).  Such a row was re-measured; a row counts as
     failing only when it failed every time (fence-scope ``all-outstanding``: one
     wait-timeout in the first full run while the model was being edited, then 3 of 3
     works -- recorded as works).  Alternatives the registry no longer has are dropped
     from the table (the recorded JSON keeps them).

``qaicmodel ambiguities`` shows the entry under each policy (``linux 7.2 (measured)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["Measurement", "MEASURED", "DATE", "COMMAND", "depends", "for_policy", "as_json"]

DATE = "2026-12-02"
COMMAND = "qaicmodel uml policies --json"
KERNEL = "7.2"


@attrs.frozen
class Measurement:
    """M1: one policy on one kernel."""

    policy: str
    kernel: str
    works: tuple[str, ...]
    fails: Mapping[str, str]
    workloads: tuple[str, ...]
    date: str
    command: str

    def as_json(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "works": list(self.works),
            "fails": dict(self.fails),
            "workloads": list(self.workloads),
            "date": self.date,
            "command": self.command,
        }


def _m(
    pid: str,
    works: tuple[str, ...],
    fails: Mapping[str, str] | None = None,
    workloads: tuple[str, ...] = ("echo", "elements"),
) -> Measurement:
    cmd = (
        COMMAND
        if workloads == ("echo", "elements")
        else (f"{COMMAND} --policy-id {pid} " + " ".join(f"--workload {w}" for w in workloads))
    )
    return Measurement(pid, KERNEL, works, dict(fails or {}), workloads, DATE, cmd)


#: M1: policy id -> kernel -> what the real driver did under each alternative
_TABLE = (
    _m("completion-code-values", ("distinct", "one")),
    _m("dma-fault", ("error", "partial")),
    _m("doorbell-data-width", ("truncate",)),
    _m("doorbell-misaligned", ("skip-error", "align-down", "write-anyway")),
    _m("doorbell-reserved-len", ("skip-error", "as-32")),
    _m("fence-scope", ("earlier-before-presync", "earlier-before-dma", "all-outstanding")),
    _m("fence-without-enable", ("honoured", "needs-enable")),
    _m("force-msi", ("honoured", "ignored")),
    _m(
        "head-index-meaning",
        ("next-slot",),
        fails={
            "last-consumed": "violation (echo): HOST-RSP-OVERREAD: RSP_HP 0 -> 2 frees 2 responses but the device wrote only 1 (RSP_TP 1)"
        },
    ),
    _m("illegal-direction", ("error-if-requested", "error-always", "as-none")),
    _m(
        "inactive-dbc-regs",
        ("all-ones",),
        fails={
            "zero": "violation (resize0): HOST-INACTIVE-DBC: host wrote RSP_HP of dbc 0, which is not active (1 of 3 runs work under load; intermittent: 5 of 5 worked in a clean-clone CI run, F8)"
        },
        workloads=("echo", "elements", "resize0"),
    ),
    _m("linked-list", ("error",)),
    _m("msi-empty-transition", ("host-head",)),
    _m("msi-while-masked", ("latched", "lost")),
    _m("nnc-command-set", ("model-commands", "opaque")),
    _m("nnc-deactivate-refusal", ("resp-only", "from-dev-nonzero")),
    _m("nnc-malformed-request", ("drop", "reply-empty")),
    _m("nnc-terminate-partition", ("any-partition", "partition-0")),
    _m("nnc-unknown-partition", ("refuse", "ignore-partition")),
    _m("nnc-version-minor", ("exact-5.0", "any-minor")),
    _m("presync-multiple", ("error", "all-gate", "first-only")),
    _m("presync-non-wait", ("apply", "ignore")),
    _m("processing-order", ("rule-permitted", "fifo")),
    _m("qsm-bare-activate-nsps", ("one", "all-idle")),
    _m("qsm-min-queue-size", ("refuse-1", "accept-1")),
    _m("response-order", ("completion-order", "request-order")),
    _m("response-ring-full", ("stall", "drop")),
    _m("ring-full-rule", ("keep-one-free", "all-slots")),
    _m("sem-enable-bit", ("enable-gates", "command-gates")),
    _m("sem-inc-amount", ("by-one", "by-value")),
    _m("sem-overflow", ("saturate", "wrap")),
    _m("sem-p-decrements", ("decrement", "wait-only")),
    _m("sem-reserved-cmd", ("error", "ignore")),
    _m(
        "sem-underflow",
        ("saturate", "wrap"),
        fails={
            "block": "hang (elements): no end within 60 s (3 of 3 runs; the first "
            "measurement: wait-timeout at step 8, a WAIT_BO that must succeed gave ETIMEDOUT)"
        },
    ),
    _m("tail-out-of-range", ("ignore", "modulo")),
)
MEASURED: dict[str, dict[str, Measurement]] = {m.policy: {m.kernel: m} for m in _TABLE}


def for_policy(pid: str) -> dict[str, Measurement]:
    """Kernel -> measurement for ``pid`` (empty when it was not measured)."""
    return dict(MEASURED.get(pid, {}))


def depends(pid: str, kernel: str = KERNEL) -> bool:
    """M2: some alternative of ``pid`` fails on the real driver of ``kernel``."""
    m = MEASURED.get(pid, {}).get(kernel)
    return bool(m and m.fails)


def as_json(pid: str) -> dict[str, Any]:
    """``qaicmodel ambiguities``' view: kernel -> the measurement as JSON."""
    return {k: m.as_json() for k, m in for_policy(pid).items()}
