"""Which Linux kernel's ``accel/qaic`` driver the host model follows, and what changed.

:class:`KernelVersion` names the driver versions the model was checked against
(6.12.117 and 7.2.13, Debian ``linux-source`` packages; ``upstream`` = the newest
read, 7.2).  :data:`TABLE` lists every behaviour the model follows that differs
between them, or that the model used to get wrong for both, one row per behaviour
with the value for each version and where each version's source has it.

Every module that follows one of these reads it through :func:`behaviour`; the
version travels as ``device.kernel`` (set by the scenario runner and ``conform``
from the scenario's ``device.kernel`` / ``--kernel-version``), as the
``ControlPlane(kernel=...)`` argument, or defaults to :data:`DEFAULT`, the newest
(the driver a user gets from kernel.org today; older behaviour is kept so traces
and hosts written against an older kernel can be checked).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from qaicmodel.errors import ArgumentError

__all__ = [
    "KernelVersion",
    "Behaviour",
    "TABLE",
    "DEFAULT",
    "UPSTREAM",
    "parse",
    "of",
    "behaviour",
    "CHOICES",
]


class KernelVersion(enum.Enum):
    """A driver version the model follows (the kernel's major.minor)."""

    V6_12 = "6.12"
    V7_2 = "7.2"

    def __str__(self) -> str:
        return self.value


#: The newest driver read (``upstream``).
UPSTREAM = KernelVersion.V7_2
#: The version the model follows unless told otherwise: the newest.
DEFAULT = UPSTREAM
#: What ``--kernel-version`` and a scenario's ``device.kernel`` accept.
CHOICES = ("6.12", "7.2", "upstream")


def parse(value: Any) -> KernelVersion:
    """``"6.12"``, ``"7.2"``, ``"upstream"`` (or a :class:`KernelVersion`, or None for the
    default) -> :class:`KernelVersion`; ArgumentError otherwise."""
    if value is None:
        return DEFAULT
    if isinstance(value, KernelVersion):
        return value
    if value == "upstream":
        return UPSTREAM
    for k in KernelVersion:
        if k.value == value:
            return k
    raise ArgumentError(f"kernel version must be one of {', '.join(CHOICES)}, got {value!r}")


def of(obj: Any) -> KernelVersion:
    """The kernel an object follows: its ``kernel`` attribute (a device, a host, a control
    plane), else the default."""
    return parse(getattr(obj, "kernel", None))


@attrs.frozen
class Behaviour:
    """One row: a behaviour of the driver, its value and its source per version."""

    id: str
    what: str
    values: Mapping[KernelVersion, Any]
    sources: Mapping[KernelVersion, str]


_6, _7 = KernelVersion.V6_12, KernelVersion.V7_2

_ROWS = [
    Behaviour(
        "manage-activate-status-limit",
        "the wire-message bound against which encode_activate and encode_status refuse "
        "with -ENOSPC (issue #14 item 1)",
        {_6: 4096, _7: 65536},
        {
            _6: "6.12 qaic_control.c encode_activate, encode_status: "
            "QAIC_MANAGE_MAX_MSG_LENGTH (SZ_4K)",
            _7: "7.2 qaic_control.c encode_activate, encode_status: "
            "QAIC_MANAGE_WIRE_MSG_LENGTH (SZ_64K)",
        },
    ),
    Behaviour(
        "ssr-client",
        "whether the host answers QAIC_SSR (MHI 6/7) at all (issue #14 items 2, 3)",
        {_6: False, _7: True},
        {
            _6: "6.12 has no qaic_ssr.c: no MHI driver claims QAIC_SSR, no receive buffer is "
            "queued, the device's SSR events are never received",
            _7: "7.2 qaic_ssr.c ssr_worker, ssr_dump_worker",
        },
    ),
    Behaviour(
        "ras-client",
        "whether the host reads RAS messages on QAIC_STATUS (a UE resets the SoC)",
        {_6: False, _7: True},
        {
            _6: "6.12 has no qaic_ras.c",
            _7: "7.2 qaic_ras.c qaic_ras_mhi_dl_xfer_cb / decode_ras_msg",
        },
    ),
    Behaviour(
        "dbc-states",
        "whether the host keeps per-DBC states (sysfs dbc<N>_state, uevents)",
        {_6: False, _7: True},
        {
            _6: "6.12 qaic.h: no enum dbc_states; save_dbc_buf/decode_deactivate set none",
            _7: "7.2 qaic_control.c save_dbc_buf (ASSIGNED), decode_deactivate (IDLE); "
            "qaic_sysfs.c",
        },
    ),
    Behaviour(
        "datapath-ssr-epipe",
        "ATTACH_SLICE, EXECUTE and WAIT (before and after sleeping) fail -EPIPE on the DBC "
        "under SSR (issue #14 item 5)",
        {_6: False, _7: True},
        {
            _6: "6.12 qaic_data.c: no qdev->ssr_dbc",
            _7: "7.2 qaic_data.c qaic_attach_slice_bo_ioctl, __qaic_execute_bo_ioctl, "
            "qaic_wait_bo_ioctl (dbc->id == qdev->ssr_dbc)",
        },
    ),
    Behaviour(
        "perf-stats-slice-checks",
        "PERF_STATS_BO refuses (-EINVAL) a BO that is not sliced, or sliced on another DBC",
        {_6: False, _7: True},
        {
            _6: "6.12 qaic_data.c qaic_perf_stats_bo_ioctl: only the lookup (-ENOENT)",
            _7: "7.2 qaic_data.c qaic_perf_stats_bo_ioctl: !bo->sliced, "
            "bo->dbc->id != hdr.dbc_id -> -EINVAL",
        },
    ),
    Behaviour(
        "orphaned-deactivate",
        "a reply that matches no waiter is still searched for DEACTIVATE_FROM_DEV, whose "
        "channel is released (whatever its status: usr is NULL) (issue #14 item 7)",
        {_6: True, _7: True},
        {
            _6: "6.12 qaic_control.c resp_worker -> decode_message(.., NULL, .., true)",
            _7: "7.2 qaic_control.c resp_worker -> decode_message(.., NULL, .., true)",
        },
    ),
    Behaviour(
        "nnc-seq-before-ring-check",
        "the sequence number is taken before msg_xfer checks the MHI ring for room: a "
        "message refused for lack of room (-EAGAIN) leaves a gap (issue #14 item 8)",
        {_6: True, _7: True},
        {
            _6: "6.12 qaic_control.c qaic_manage_msg_xfer (next_seq_num++) then msg_xfer "
            "(mhi_get_free_desc_count, QAIC_MHI_RETRY_MAX)",
            _7: "7.2 qaic_control.c qaic_manage_msg_xfer then msg_xfer (same)",
        },
    ),
    Behaviour(
        "manage-reads-whole-struct",
        "encode_activate / encode_deactivate / encode_dma read their whole uapi struct "
        "whatever hdr.len says: a short transaction reads the next one's bytes "
        "(issue #14 item 6)",
        {_6: True, _7: True},
        {
            _6: "6.12 qaic_control.c encode_activate (in_trans->queue_size..pad)",
            _7: "7.2 qaic_control.c encode_activate (in_trans->queue_size..pad)",
        },
    ),
]

#: behaviour id -> row
TABLE: dict[str, Behaviour] = {b.id: b for b in _ROWS}


def behaviour(kernel: Any, bid: str) -> Any:
    """The value of behaviour ``bid`` for ``kernel`` (a version, its name, or None)."""
    row = TABLE.get(bid)
    if row is None:
        raise ArgumentError(f"no kernel behaviour {bid!r}")
    return row.values[parse(kernel)]
