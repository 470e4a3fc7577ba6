"""The host interface: what a host DMA path offers (the documented protocol).

A *host* is the Linux ``accel/qaic`` data path (drivers/accel/qaic/qaic_data.c)
as an object: the ioctls of ``include/uapi/drm/qaic_accel.h`` (CREATE_BO,
MMAP_BO, ATTACH_SLICE_BO, EXECUTE_BO, PARTIAL_EXECUTE_BO, WAIT_BO,
PERF_STATS_BO, DETACH_SLICE_BO) plus its interrupt side as an *actor*
(``enabled()``/``step()``), driving a :class:`qaicmodel.spec.dbc.device.Device`.

Kernel behaviour followed: current upstream qaic_data.c (2025/2026: the
CVE-2025-22001 ``check_add_overflow`` fix of v6.14, the per-channel
``req_lock`` of "accel/qaic: Synchronize access to DBC request queue head & tail
pointer" (v6.18), zero-resize partial execute (v6.8), ``bo_queued()`` as
list membership, attach validating slices against the BO's own size).  What differs
between the kernels we read (6.12.117, 7.2.13) is a row of
:mod:`qaicmodel.spec.host.kernels`, chosen by ``device.kernel``.  Where
older kernels behave differently in a way a user can observe, the difference is
the policy ``host-attach-hdr-size``; older *bugs* (no req_lock, unchecked
offset+size) are the broken hosts of :mod:`qaicmodel.oracle.broken`.

Two hosts implement the interface: :class:`qaicmodel.spec.host.reference.SpecHost` (the
reference: one element at a time) and :class:`qaicmodel.impl.host.ImplHost`
(numpy).  Both derive from :class:`~qaicmodel.spec.host.core.HostCore`, which holds everything that
must be *one piece of code*: argument validation in the driver's order with
the driver's errnos, client/BO/channel bookkeeping, the execute phases and the
interrupt thread, whose every control decision is taken by the transition
functions of :mod:`qaicmodel.spec.host.irqproto`.  A host supplies the data path:
``_span`` (BO segments a slice covers), ``_encode`` (request elements of a
slice, once, at attach), ``_partial`` / ``_write_full`` / ``_write_partial``
(copy into the request ring) and ``_drain`` (consume responses).

The driver's validation order, ioctl by ioctl, is in :mod:`qaicmodel.spec.host.validate`;
the shared core in :mod:`qaicmodel.spec.host.core`.

Writing your own host (``qaicmodel conform --host MODULE:CLASS``)
-----------------------------------------------------------------
The class is constructed as ``CLASS(device, *, sg_max_segment=None,
datapath_polling=False)`` and must provide every member of :class:`Host`.
The easy way is to subclass :class:`qaicmodel.spec.host.reference.SpecHost` (or
:class:`~qaicmodel.spec.host.core.HostCore`) and override the data-path hooks::

    from qaicmodel.spec.host.reference import SpecHost

    class MyHost(SpecHost):
        def _write_full(self, ch, sl, req_id, tail):   # your ring copy of a whole slice
            super()._write_full(ch, sl, req_id, tail)  # (replace with your own)

(tests/test_docs.py runs this example under ``conform``.)

To test a host written from scratch, implement :class:`Host` directly: raise
``qaicmodel.errors.IoctlError("EINVAL", "why")`` exactly where the driver
returns -EINVAL (see the ``check_*`` helpers of :mod:`qaicmodel.spec.host.validate`
for the order), write
request elements into ``device.host_mem`` at ``req_q + 64 * slot`` and move
REQ_TP with ``device.writel``; read responses at ``rsp_q + 4 * slot`` and move
RSP_HP; expose interrupt handling as actions from ``enabled()`` performed by
``step(action)`` (take MSIs with ``device.intc``).  ``conform`` then runs it
against the device model under adversarial interleavings and reports any
invariant it breaks (see :mod:`qaicmodel.oracle.cosim`).  Optional members the
harness uses when present: ``completions`` (a list of (user, handle), one entry per
BO completion; without it completions are observed through ``wait_check``) and
``execute_begin``/``execute_result`` (EXECUTE_BO as an ioctl thread whose phases
are ``exec`` actions; without them concurrent-execute operations are skipped).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from qaicmodel.errors import ArgumentError
from qaicmodel.spec.host import uapi

__all__ = ["Host", "HostAction", "HOST_METHODS", "load_host"]


@attrs.frozen(order=True)
class HostAction:
    """A host-side event a scheduler may pick.

    ``kind``: ``irq`` (an MSI on vector ``arg`` reaches the hard handler),
    ``thread`` (the IRQ thread of channel ``arg`` runs to its next interleaving
    point), ``poll`` (the datapath-polling work of channel ``arg`` looks once),
    ``exec`` (ioctl thread ``arg`` runs its next execute phase).
    """

    kind: str
    arg: int


@runtime_checkable
class Host(Protocol):
    """The documented host interface (see the module docstring)."""

    device: Any

    def open(self) -> int: ...
    def close(self, user: int) -> None: ...
    def dbc_assign(self, dbc_id: int, user: int, nelem: int, req_q: int, rsp_q: int) -> None: ...
    def dbc_release(self, dbc_id: int) -> None: ...
    def create_bo(self, user: int, size: int, pad: int = 0) -> int: ...
    def bo_segments(self, user: int, handle: int) -> list[tuple[int, int]]: ...
    def mmap_bo(self, user: int, handle: int) -> Any: ...
    def attach_slice(
        self, user: int, hdr: uapi.AttachSliceHdr, entries: Sequence[uapi.SliceEntry] | None
    ) -> None: ...
    def execute(self, user: int, dbc_id: int, handles_dirs: Sequence[tuple[int, int]]) -> None: ...
    def partial_execute(
        self, user: int, dbc_id: int, entries: Sequence[tuple[int, int, int]]
    ) -> None: ...
    def wait_check(
        self, user: int, dbc_id: int, handle: int, timeout_ms: int, pad: int = 0
    ) -> bool: ...
    def perf_stats(
        self, user: int, dbc_id: int, handles: Sequence[int]
    ) -> list[uapi.PerfStatsEntry]: ...
    def detach_slice(self, user: int, handle: int, pad: int = 0) -> None: ...
    def enabled(self) -> list[Any]: ...
    def step(self, action: Any) -> None: ...


def load_host(ref: str) -> type:
    """``MODULE:CLASS`` -> a class implementing :class:`Host`."""
    mod, sep, cls_name = ref.partition(":")
    if not sep or not mod or not cls_name:
        raise ArgumentError(f"--host wants MODULE:CLASS, got {ref!r}")
    module = _import_host_module(mod)
    cls = getattr(module, cls_name, None)
    if not isinstance(cls, type):
        raise ArgumentError(f"{mod!r} has no class {cls_name!r}")
    missing = [m for m in HOST_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise ArgumentError(
            f"{ref} does not implement the host interface "
            f"(qaicmodel.spec.host.Host): missing {', '.join(missing)}"
        )
    return cls


def _import_host_module(mod: str) -> Any:
    """Import ``mod`` the way a user expects: from ``sys.path``, else from the current
    directory (``qaicmodel`` is a console script, so ``.`` is not on ``sys.path``); a
    ``FILE.py`` path is accepted too.  Any failure is one ArgumentError line naming the
    module's file and line (a SyntaxError, an exception raised while importing it)."""
    import os
    import sys

    path = None
    if mod.endswith(".py"):
        path, mod = os.path.abspath(mod), os.path.splitext(os.path.basename(mod))[0]
        if not os.path.isfile(path):
            raise ArgumentError(f"host file {path} does not exist")
    try:
        if path is not None and os.path.dirname(path) not in sys.path:
            sys.path.insert(0, os.path.dirname(path))
        try:
            return importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod.split(".")[0] or os.getcwd() in sys.path:
                raise
            sys.path.insert(0, os.getcwd())  # a module in the current directory
            return importlib.import_module(mod)
    except ImportError as e:
        raise ArgumentError(
            f"cannot import host module {mod!r}: {e} (looked in the current directory and sys.path)"
        ) from None
    except Exception as e:  # noqa: BLE001 - the user's module failed while importing
        import traceback

        fr = traceback.extract_tb(e.__traceback__)[-1:]
        line = getattr(e, "lineno", None) if isinstance(e, SyntaxError) else None
        at = (
            f" at {e.filename}:{line}"
            if isinstance(e, SyntaxError)
            else (f" at {fr[0].filename}:{fr[0].lineno}" if fr else "")
        )
        raise ArgumentError(
            f"host module {mod!r} failed to import: {type(e).__name__}: {e}{at}"
        ) from None


HOST_METHODS = (
    "open",
    "close",
    "dbc_assign",
    "dbc_release",
    "create_bo",
    "bo_segments",
    "mmap_bo",
    "attach_slice",
    "execute",
    "partial_execute",
    "wait_check",
    "perf_stats",
    "detach_slice",
    "enabled",
    "step",
)
