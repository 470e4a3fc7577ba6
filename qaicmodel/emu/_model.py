"""The one place the emulator imports the model from.

Everything under ``qaicmodel/emu/`` takes model objects from here, so a move inside
``qaicmodel/spec/`` changes this file only.  Names are re-exported unchanged:

* the DMA Bridge device (:class:`Device`), its host memory (:class:`HostMemory`,
  :class:`DmaFault`) and register map (:mod:`regs`);
* policies (:class:`Policies`, and :class:`Policy` / :func:`register` / :class:`Alt` for
  policy modules: ``register(Policy(..., kind=MyAlt))``, ``kind`` optional);
* the control plane: :class:`Qsm`, the modules :mod:`nnc`, :mod:`boot` (Sahara:
  ``boot.SaharaPkt``, ``boot.DeviceSbl``, ``boot.AIC100_IMAGES``, ``boot.SBL_IMAGE``),
  :mod:`mhi` (also :class:`Ee`, :class:`MhiState`, :data:`CHANNELS`), :mod:`pcie` (also ``VENDOR``, ``NUM_DBC``, ``Family``,
  ``bars``, ``msi_enable_count``),
  :mod:`ssr`, :mod:`ras`, :mod:`timesync`, and the façade :mod:`plane`
  (also as ``control``; :class:`ControlPlane`);
* the host uapi (:mod:`uapi`).
"""

from __future__ import annotations

from qaicmodel.spec.control import boot, mhi, nnc, pcie, plane, ras, ssr, timesync
from qaicmodel.spec.control.mhi import CHANNELS, Ee, MhiState
from qaicmodel.spec.control.pcie import NUM_DBC, VENDOR, Family, bars, msi_enable_count
from qaicmodel.spec.control.plane import ControlPlane
from qaicmodel.spec.control.qsm import Qsm
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.dbc.memory import DmaFault, HostMemory
from qaicmodel.spec.host import uapi
from qaicmodel.spec.policies import Alt, Policies, Policy, register

#: the control-plane façade module under the name it had before the move (spec/control.py)
control = plane

__all__ = [
    "Device",
    "HostMemory",
    "DmaFault",
    "regs",
    "Policies",
    "Policy",
    "Alt",
    "register",
    "Qsm",
    "nnc",
    "boot",
    "mhi",
    "Ee",
    "MhiState",
    "CHANNELS",
    "pcie",
    "VENDOR",
    "NUM_DBC",
    "Family",
    "bars",
    "msi_enable_count",
    "ssr",
    "ras",
    "timesync",
    "plane",
    "control",
    "ControlPlane",
    "uapi",
]
