"""MANAGE's user side: uapi transaction builders, the result record, host bookkeeping.

Split from :mod:`qaicmodel.spec.control.manage` (which re-exports every public name):
``qaic_manage_trans_*`` layouts (qaic_accel.h; control-path.md §3.3), ``struct
qaic_user`` / ``qdev->dbc[i]`` control fields, ``struct ioctl_resources``.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

import attrs

from qaicmodel.spec.control import nnc
from qaicmodel.spec.control.ssr import DbcState

__all__ = [
    "MAX_MSG",
    "MAX_COUNT",
    "DMA_RESERVE",
    "MODEL_DMA_LIMIT",
    "usr_passthrough",
    "usr_dma_xfer",
    "usr_activate",
    "usr_deactivate",
    "usr_status",
    "user_message",
    "parse_user_result",
    "User",
    "HostDbc",
    "DataPathHooks",
    "NullHooks",
    "ManageResult",
]

MAX_MSG = 4096  # QAIC_MANAGE_MAX_MSG_LENGTH
MAX_COUNT = MAX_MSG // 8  # 512
DMA_RESERVE = 1024  # "save 1K for follow-up transactions"
#: The biggest FIFO chunk the model will allocate (a model limit: ENOMEM beyond).
MODEL_DMA_LIMIT = 64 << 20

_TH = struct.Struct("<II")


# --------------------------------------------------------------------------
# uapi manage transactions (qaic_accel.h, control-path.md §3.3)


def usr_passthrough(data: bytes, *, length: int | None = None) -> bytes:
    """``qaic_manage_trans_passthrough`` (type 1)."""
    ln = 8 + len(data) if length is None else length
    return _TH.pack(nnc.TransType.PASSTHROUGH_FROM_USR, ln) + data


def usr_dma_xfer(tag: int, addr: int, size: int, pad: int = 0) -> bytes:
    """``qaic_manage_trans_dma_xfer`` (type 5, 32 bytes)."""
    return _TH.pack(nnc.TransType.DMA_XFER_FROM_USR, 32) + struct.pack(
        "<IIQQ", tag, pad, addr, size
    )


def usr_activate(queue_size: int, eventfd: int = 0, options: int = 0, pad: int = 0) -> bytes:
    """``qaic_manage_trans_activate_to_dev`` (type 7, 24 bytes)."""
    return _TH.pack(nnc.TransType.ACTIVATE_FROM_USR, 24) + struct.pack(
        "<IIII", queue_size, eventfd, options, pad
    )


def usr_deactivate(dbc_id: int, pad: int = 0) -> bytes:
    """``qaic_manage_trans_deactivate`` (type 10, 16 bytes)."""
    return _TH.pack(nnc.TransType.DEACTIVATE_FROM_USR, 16) + struct.pack("<II", dbc_id, pad)


def usr_status(length: int = 8) -> bytes:
    """``qaic_manage_trans_status_to_dev`` (type 12, 8 bytes; ``length`` may lie)."""
    return _TH.pack(nnc.TransType.STATUS_FROM_USR, length)


def user_message(*trans: bytes) -> tuple[int, int, bytes]:
    """(len, count, data) of a ``qaic_manage_msg`` holding ``trans``."""
    data = b"".join(trans)
    return len(data), len(trans), data


def parse_user_result(data: bytes, count: int) -> list[dict[str, Any]]:
    """Read back the transactions the driver copied to the user (types 3, 8, 14)."""
    out, off = [], 0
    for _ in range(count):
        if off + 8 > len(data):
            break
        t, ln = _TH.unpack_from(data, off)
        d: dict[str, Any] = {"type": t, "len": ln}
        if t == nnc.TransType.PASSTHROUGH_FROM_DEV:
            d["data"] = data[off + 8 : off + ln]
        elif t == nnc.TransType.ACTIVATE_FROM_DEV and off + 24 <= len(data):
            d["status"], d["dbc_id"], d["options"] = struct.unpack_from("<IIQ", data, off + 8)
        elif t == nnc.TransType.STATUS_FROM_DEV and off + 24 <= len(data):
            (d["major"], d["minor"], d["status"], d["status_flags"]) = struct.unpack_from(
                "<HHIQ", data, off + 8
            )
        else:
            break  # deactivate responses write nothing; the count still includes them
        out.append(d)
        off += max(ln, 8)
    return out


# --------------------------------------------------------------------------
# host bookkeeping


@attrs.define
class User:
    """One open DRM file (``struct qaic_user``)."""

    handle: int
    host_uid: Any = None
    chunk_id: int = 0
    closed: bool = False

    def next_chunk(self) -> int:
        """atomic_inc_return on a u32; 0 is skipped."""
        self.chunk_id = (self.chunk_id + 1) & 0xFFFFFFFF
        if self.chunk_id == 0:
            self.chunk_id = 1
        return self.chunk_id


@attrs.define
class HostDbc:
    """The control fields of ``qdev->dbc[i]``: owner (``usr``), ``in_use``, FIFO chunk, state."""

    usr: User | None = None
    in_use: bool = False
    buf: int | None = None
    total_size: int = 0
    nelem: int = 0
    state: DbcState = DbcState.IDLE


class DataPathHooks(Protocol):
    """What the control plane tells the host data path (spec/host)."""

    def assign(self, dbc: int, user: User, nelem: int, req_q: int, rsp_q: int) -> None: ...
    def release(self, dbc: int) -> None: ...
    def disable(self, dbc: int) -> None: ...
    def enable(self, dbc: int, user: User) -> None: ...


class NullHooks:
    def assign(self, dbc: int, user: User, nelem: int, req_q: int, rsp_q: int) -> None:
        pass

    def release(self, dbc: int) -> None:
        pass

    def disable(self, dbc: int) -> None:
        pass

    def enable(self, dbc: int, user: User) -> None:
        pass


@attrs.frozen
class ManageResult:
    """What MANAGE returns: ``result`` ("ok" or an errno name) and the user struct after."""

    result: str
    len: int
    count: int
    data: bytes


@attrs.define
class _Res:
    """``struct ioctl_resources``."""

    buf: int | None = None
    total_size: int = 0
    nelem: int = 0
    rsp_q: int = 0
    dma_chunk_id: int = 0
    xferred: int = 0
    dma_trans: tuple[int, int, int, int] | None = None  # (tag, pad, addr, size)


class _Err(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name
