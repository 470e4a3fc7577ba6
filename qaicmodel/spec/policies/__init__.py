"""The ambiguity registry: every point where the documents leave the device open.

One place: the framework (:mod:`._base`) and every declaration (:mod:`.dbc`,
:mod:`.control`, :mod:`.host`), all imported here, so the registry is complete
once this package is imported (``Policies({"host-attach-hdr-size": "checked"})``
works in a fresh interpreter).  ``qaicmodel ambiguities`` lists it.

The virtual AIC100's boot/MHI policies are in :mod:`.board`.  A plugin may add its
own with ``register(Policy(...))``; ``kind=`` (an :class:`Alt` subclass) is optional.

Not every entry is an ambiguity of the device: ``Policy.category`` says what it is
(:data:`CATEGORIES`: device ambiguities, kernel-version behaviours, modelling limits,
known driver bugs, settled points); :func:`ambiguities` lists the device ones and
:func:`by_category` all of them.  Every id stays resolvable whatever its category.
"""

from __future__ import annotations

from qaicmodel.spec.policies import board as _board
from qaicmodel.spec.policies import control as _control
from qaicmodel.spec.policies import dbc as _dbc
from qaicmodel.spec.policies import host as _host
from qaicmodel.spec.policies import silent as _silent
from qaicmodel.spec.policies._base import (
    CATEGORIES,
    REGISTRY,
    SEED,
    Alt,
    Policies,
    Policy,
    all_ids,
    all_policies,
    ambiguities,
    by_category,
    each_alternative,
    pairwise,
    register,
)
from qaicmodel.spec.policies.control import *  # noqa: F403
from qaicmodel.spec.policies.dbc import *  # noqa: F403
from qaicmodel.spec.policies.host import *  # noqa: F403
from qaicmodel.spec.policies.silent import *  # noqa: F403

__all__ = [
    "Alt",
    "Policy",
    "Policies",
    "REGISTRY",
    "SEED",
    "register",
    "pairwise",
    "each_alternative",
    "all_ids",
    "all_policies",
    "ambiguities",
    "by_category",
    "CATEGORIES",
    *_dbc.__all__,
    *_control.__all__,
    *_host.__all__,
    *_board.__all__,
    *_silent.__all__,
]
