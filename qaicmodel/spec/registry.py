"""The whole ambiguity registry: imports every module that registers policies."""

from __future__ import annotations

import importlib

from qaicmodel.spec.policies import REGISTRY, Policy

__all__ = ["POLICY_MODULES", "all_policies", "load_all"]

#: Every module that calls ``policies.register`` at import time.
POLICY_MODULES = [
    "qaicmodel.spec.policies",
    "qaicmodel.spec.control.mhi",
    "qaicmodel.spec.control.ssr",
    "qaicmodel.spec.control.ras",
    "qaicmodel.spec.control.pcie",
    "qaicmodel.spec.control.qsm",
    "qaicmodel.spec.control.nnc",
    "qaicmodel.spec.host.core",
]


def load_all() -> None:
    for mod in POLICY_MODULES:
        importlib.import_module(mod)


def all_policies() -> list[Policy]:
    load_all()
    return [REGISTRY[k] for k in sorted(REGISTRY)]
