"""The control-host interface: what a driver's control client offers the control plane.

A *control host* is the host side of QAIC_CONTROL (drivers/accel/qaic/qaic_control.c):
DRM_IOCTL_QAIC_MANAGE, the probe-time version check, terminate on close, the
response matching of resp_worker and the channel bookkeeping (``qdev->dbc[i]``).
The reference is :class:`qaicmodel.spec.control.manage.ControlClient`; a user's own
client replaces it with ``--control-host MODULE:CLASS`` (``scenario``, ``conform``),
just as ``--host`` replaces the data path (:mod:`qaicmodel.spec.host.protocol`).

Writing your own control host
-----------------------------
The class is constructed by :class:`~qaicmodel.spec.control.plane.ControlPlane` as
``CLASS(transport, host_mem, *, num_dbc, hooks, ext_msg_len, sg_max_segment,
policies, kernel)`` and must provide every member of :class:`ControlHost`:

* ``transport(wrappers)`` sends one NNC message (a list of MHI buffers: the
  chain :func:`qaicmodel.spec.control.nnc.chain` builds) and returns the device's
  reply messages; pass each to your own ``deliver``.  Replies may be malformed,
  late, duplicated or missing (control faults, :mod:`qaicmodel.spec.control.faults`);
  ``deliver`` may also be called by the plane later with a reply no one waits for.
* ``host_mem`` is the host memory the device reads (``alloc``/``free``/``mapped``,
  :class:`qaicmodel.spec.dbc.memory.HostMemory`): allocate the donated FIFO memory
  of an activate there.
* ``hooks`` tells the data-path host about channels: call ``hooks.assign(dbc,
  user, nelem, req_q, rsp_q)`` when a channel becomes the user's, ``hooks.release(dbc)``
  when it is released, ``hooks.disable(dbc)`` / ``hooks.enable(dbc, user)`` around a
  deactivate (:class:`qaicmodel.spec.control.manage.DataPathHooks`).
* ``dbc[i]`` has ``usr`` (a user or None), ``in_use``, ``buf`` (FIFO address or None),
  ``state`` (:class:`qaicmodel.spec.control.ssr.DbcState`); ``dev_state`` is a
  :class:`~qaicmodel.spec.control.boot.DevState`; ``tx_free`` is the number of free
  UL descriptors (None: always room) -- the plane sets it to 0 when the TX ring stalls.
* ``manage`` returns a :class:`~qaicmodel.spec.control.manage.ManageResult` whose
  ``result`` is ``"ok"`` or the errno name the driver would return.

The easy way is to subclass ``ControlClient`` and override what you change.  The
control plane's consistency checks (host and QSM agree on who owns each channel,
no FIFO chunk leaked or shared; :mod:`qaicmodel.spec.control.verdicts`) judge any
control host the same way.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from qaicmodel.errors import ArgumentError

__all__ = ["ControlHost", "CONTROL_HOST_MEMBERS", "load_control_host"]


@runtime_checkable
class ControlHost(Protocol):
    """The members :class:`~qaicmodel.spec.control.plane.ControlPlane` uses."""

    dbc: list[Any]
    dev_state: Any
    tx_free: int | None
    on_dbc_state: Callable[[int, Any], None] | None

    def probe(self) -> str: ...
    def open(self, host_uid: Any = None) -> Any: ...
    def close(self, usr: Any) -> None: ...
    def manage(self, usr: Any, length: int, count: int, data: bytes) -> Any: ...
    def deliver(self, data: bytes) -> bool: ...
    def release_dbc(self, dbc: int) -> None: ...
    def set_state(self, dbc: int, state: Any) -> None: ...
    def reset(self) -> None: ...


#: methods a control-host class must have (checked when it is loaded)
CONTROL_HOST_MEMBERS = (
    "probe",
    "open",
    "close",
    "manage",
    "deliver",
    "release_dbc",
    "set_state",
    "reset",
)


def load_control_host(ref: Any) -> type:
    """``MODULE:CLASS`` (or a class) -> a class implementing :class:`ControlHost`.

    A module is looked up on ``sys.path`` and then in the current directory.
    """
    if isinstance(ref, type):
        cls = ref
        name = f"{cls.__module__}:{cls.__qualname__}"
    else:
        if not isinstance(ref, str):
            raise ArgumentError(f"--control-host wants MODULE:CLASS, got {ref!r}")
        mod, sep, cls_name = ref.partition(":")
        if not sep or not mod or not cls_name:
            raise ArgumentError(f"--control-host wants MODULE:CLASS, got {ref!r}")
        try:
            module = _import(mod)
        except ImportError as e:
            raise ArgumentError(f"cannot import control host module {mod!r}: {e}") from None
        except Exception as e:  # the user's module failed while importing
            raise ArgumentError(
                f"control host module {mod!r} failed to import: {type(e).__name__}: {e}"
            ) from None
        found = getattr(module, cls_name, None)
        if not isinstance(found, type):
            raise ArgumentError(f"{mod!r} has no class {cls_name!r}")
        cls, name = found, ref
    missing = [m for m in CONTROL_HOST_MEMBERS if not callable(getattr(cls, m, None))]
    if missing:
        raise ArgumentError(
            f"{name} does not implement the control-host interface "
            f"(qaicmodel.spec.control.protocol.ControlHost): missing {', '.join(missing)}"
        )
    return cls


def _import(mod: str) -> Any:
    try:
        return importlib.import_module(mod)
    except ModuleNotFoundError as e:
        if e.name != mod.split(".")[0] or str(Path.cwd()) in sys.path:
            raise
        sys.path.insert(0, str(Path.cwd()))
        try:
            return importlib.import_module(mod)
        finally:
            sys.path.remove(str(Path.cwd()))
