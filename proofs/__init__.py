"""z3 proofs over qaicmodel's own arithmetic and protocols (issue #5).

Each ``pN_*`` module exposes ``run(fn_overrides=None) -> Result``; the
functions under proof (from :mod:`qaicmodel.arith` and
:mod:`qaicmodel.spec.host.irqproto`) are evaluated on z3 terms through
:class:`~proofs.z3ops.Z3Ops`, so a proof is about the code the model runs.
``python -m proofs`` runs them all.  What is proved, with bounds, is in
docs/proofs.md.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MODULES", "load"]

#: the proof modules, in the issue's order
MODULES = (
    "p1_fifo_space",
    "p2_wrap_copy",
    "p3_drain",
    "p4_encodings",
    "p5_irq",
    "p6_req_id",
    "p7_activation",
    "p8_slices",
)


def load(name: str) -> ModuleType:
    """Import one proof module by its short name (``"p1_fifo_space"``)."""
    from qaicmodel.errors import ArgumentError

    if name not in MODULES:
        raise ArgumentError(f"unknown proof {name!r}; known: {', '.join(MODULES)}")
    return importlib.import_module(f"proofs.{name}")
