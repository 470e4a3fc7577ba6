"""qaicmodel: an executable reference model of the Qualcomm Cloud AI 100 (AIC100)
host interface as the Linux ``accel/qaic`` driver sees it.

The public surface, importable from here (each name is loaded on first use, so
``import qaicmodel`` stays cheap and never pulls in z3 or hypothesis):

* the device: :class:`Device`, :class:`DeviceConfig`, :class:`HostMemory`,
  :class:`DevMemory`, the FIFO elements :class:`RequestElem` / :class:`ResponseElem`;
* policies: :class:`Policies`, :class:`Policy`, :class:`Alt`;
* actors and scheduling: :func:`run`, :class:`RandomScheduler`, :class:`FirstScheduler`;
* hosts: the interface :class:`Host`, :class:`SpecHost` (reference), :class:`ImplHost`
  (fast, numpy), :class:`HostCore`, :func:`load_host`; the control plane :class:`ControlPlane`;
* checkers: :func:`run_conformance` (``qaicmodel conform``), :func:`run_scenario`,
  :func:`check` / :func:`check_stream` (traces), :func:`parse_jsonl` /
  :func:`parse_mmiotrace`, and the one finding record :class:`Finding`;
* :mod:`arith` (the proved arithmetic) and every exception (:class:`QaicModelError`
  and its subclasses, from :mod:`qaicmodel.errors`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from qaicmodel.errors import (
    ArgumentError,
    DecodeError,
    FormatError,
    IoctlError,
    LocalProtocolError,
    NotModelledError,
    PolicyError,
    QaicModelError,
    RemoteProtocolError,
    TransportError,
    UmlError,
)

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "arith": "qaicmodel.arith",
    "Device": "qaicmodel.spec.dbc.device",
    "DeviceConfig": "qaicmodel.spec.dbc.config",
    "HostMemory": "qaicmodel.spec.dbc.memory",
    "DevMemory": "qaicmodel.spec.dbc.memory",
    "RequestElem": "qaicmodel.spec.dbc.wire",
    "ResponseElem": "qaicmodel.spec.dbc.wire",
    "Policies": "qaicmodel.spec.policies",
    "Policy": "qaicmodel.spec.policies",
    "Alt": "qaicmodel.spec.policies",
    "run": "qaicmodel.spec.scheduler",
    "RandomScheduler": "qaicmodel.spec.scheduler",
    "FirstScheduler": "qaicmodel.spec.scheduler",
    "Host": "qaicmodel.spec.host.protocol",
    "load_host": "qaicmodel.spec.host.protocol",
    "HostCore": "qaicmodel.spec.host.core",
    "SpecHost": "qaicmodel.spec.host.reference",
    "ImplHost": "qaicmodel.impl.host",
    "ControlPlane": "qaicmodel.spec.control.plane",
    "run_conformance": "qaicmodel.oracle.conform",
    "run_scenario": "qaicmodel.scenario.runner",
    "check": "qaicmodel.oracle.check",
    "check_stream": "qaicmodel.oracle.check",
    "parse_jsonl": "qaicmodel.oracle.trace",
    "parse_mmiotrace": "qaicmodel.oracle.trace",
    "Finding": "qaicmodel.findings",
}

__all__ = [
    "arith",
    "Device",
    "DeviceConfig",
    "HostMemory",
    "DevMemory",
    "RequestElem",
    "ResponseElem",
    "Policies",
    "Policy",
    "Alt",
    "run",
    "RandomScheduler",
    "FirstScheduler",
    "Host",
    "load_host",
    "HostCore",
    "SpecHost",
    "ImplHost",
    "ControlPlane",
    "run_conformance",
    "run_scenario",
    "check",
    "check_stream",
    "parse_jsonl",
    "parse_mmiotrace",
    "Finding",
    "QaicModelError",
    "ArgumentError",
    "DecodeError",
    "FormatError",
    "PolicyError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "IoctlError",
    "NotModelledError",
    "UmlError",
    "TransportError",
]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'qaicmodel' has no attribute {name!r}")
    m = importlib.import_module(mod)
    value = m if mod == f"qaicmodel.{name}" else getattr(m, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # the names as mypy and editors see them
    from qaicmodel import arith
    from qaicmodel.findings import Finding
    from qaicmodel.impl.host import ImplHost
    from qaicmodel.oracle.check import check, check_stream
    from qaicmodel.oracle.conform import run_conformance
    from qaicmodel.oracle.trace import parse_jsonl, parse_mmiotrace
    from qaicmodel.scenario.runner import run_scenario
    from qaicmodel.spec.control.plane import ControlPlane
    from qaicmodel.spec.dbc.config import DeviceConfig
    from qaicmodel.spec.dbc.device import Device
    from qaicmodel.spec.dbc.memory import DevMemory, HostMemory
    from qaicmodel.spec.dbc.wire import RequestElem, ResponseElem
    from qaicmodel.spec.host.core import HostCore
    from qaicmodel.spec.host.protocol import Host, load_host
    from qaicmodel.spec.host.reference import SpecHost
    from qaicmodel.spec.policies import Alt, Policies, Policy
    from qaicmodel.spec.scheduler import FirstScheduler, RandomScheduler, run
