"""Compatibility shim: the registry is complete once :mod:`qaicmodel.spec.policies` is imported.

Every policy is declared in ``qaicmodel/spec/policies/`` and imported eagerly,
so there is nothing left to load.  ``load_all`` is a no-op kept for callers not
yet moved (``qaicmodel/check.py``); new code uses
:func:`qaicmodel.spec.policies.all_policies`.
"""

from __future__ import annotations

from qaicmodel.spec.policies import all_policies

__all__ = ["POLICY_MODULES", "all_policies", "load_all"]

#: the modules that declare policies (all imported by the package itself)
POLICY_MODULES = ["qaicmodel.spec.policies"]


def load_all() -> None:
    """Nothing to do: kept for old callers (see the module docstring)."""
