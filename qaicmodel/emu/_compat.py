"""The model names the board uses, imported in one place.

``qaicmodel.emu._model`` is the maintained entry point into the model
(another engineer moves ``qaicmodel/spec/*`` into sub-packages and keeps
``_model`` current).  Until it exists or while it lacks a name, each name is
taken from the newest known path, then the older flat one.  Names used:
``Qsm``, ``Device``, ``DmaFault``, ``HostMemory``, ``Policies``, ``Policy``,
``register``, ``nnc``, ``boot`` (Sahara packets), ``Ee``, ``MhiState``,
``CHANNELS``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["model_name"]

#: name -> candidate modules, newest layout first (the attribute has the same name)
_PATHS: dict[str, tuple[str, ...]] = {
    "Qsm": ("qaicmodel.spec.control.qsm", "qaicmodel.spec.qsm"),
    "Device": ("qaicmodel.spec.dbc.device", "qaicmodel.spec.device"),
    "DmaFault": ("qaicmodel.spec.dbc.memory", "qaicmodel.spec.memory"),
    "HostMemory": ("qaicmodel.spec.dbc.memory", "qaicmodel.spec.memory"),
    "Policies": ("qaicmodel.spec.policies",),
    "Policy": ("qaicmodel.spec.policies",),
    "register": ("qaicmodel.spec.policies",),
    "Ee": ("qaicmodel.spec.control.mhi", "qaicmodel.spec.mhi"),
    "MhiState": ("qaicmodel.spec.control.mhi", "qaicmodel.spec.mhi"),
    "CHANNELS": ("qaicmodel.spec.control.mhi", "qaicmodel.spec.mhi"),
}
#: module aliases: name -> candidate module paths
_MODULES: dict[str, tuple[str, ...]] = {
    "nnc": ("qaicmodel.spec.control.nnc", "qaicmodel.spec.nnc"),
    "boot": ("qaicmodel.spec.control.boot", "qaicmodel.spec.boot"),
}


def model_name(name: str) -> Any:
    """The model object ``name``: from ``_model`` if it has it, else the known paths."""
    try:
        m = importlib.import_module("qaicmodel.emu._model")
        if hasattr(m, name):
            return getattr(m, name)
    except ImportError:
        pass
    if name in _MODULES:
        for path in _MODULES[name]:
            try:
                return importlib.import_module(path)
            except ImportError:
                continue
    for path in _PATHS.get(name, ()):
        try:
            mod = importlib.import_module(path)
        except ImportError:
            continue
        if hasattr(mod, name):
            return getattr(mod, name)
    raise ImportError(f"model name {name!r} not found in qaicmodel.emu._model or known paths")
