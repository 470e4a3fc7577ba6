"""QSM's vocabulary: the model command set, NNC status codes, and QSM's records.

Split from :mod:`qaicmodel.spec.control.qsm` (which re-exports every name).  Command
ids and status codes: userspace.md §5.1-§5.2 (QNncProtocol.h); the command layout
``{cmd u32, len u32, args u32...}`` padded to 8 bytes is the model's (policy
``nnc-command-set``).
"""

from __future__ import annotations

import enum
import struct
from typing import Any

import attrs

from qaicmodel.errors import DecodeError
from qaicmodel.findings import Finding

__all__ = [
    "Cmd",
    "St",
    "command",
    "parse_command",
    "QsmViolation",
    "Activation",
    "Image",
]


class Cmd(enum.IntEnum):
    """NNC command ids (userspace.md §5.1, QNncProtocol.h), the subset the model speaks."""

    LOAD_ELF_REQ = 3
    LOAD_ELF_RESP = 4
    UNLOAD_ELF_REQ = 7
    UNLOAD_ELF_RESP = 8
    ACTIVATE_REQ = 9
    ACTIVATE_RESP = 10
    DEACTIVATE_REQ = 11
    DEACTIVATE_RESP = 12


class St(enum.IntEnum):
    """NNC status codes (userspace.md §5.2)."""

    OK = 0
    GENERAL = -1
    UNDEFINED_REQUEST = -3
    MEMORY_EXHAUSTED = -4
    PARAMETER = -6
    NOT_PERMITTED = -9
    NOT_FOUND = -11
    NSP_ALLOC = -13
    VC_ALLOC = -14
    UNDER_SSR = -36


def command(cmd: int, *args: int) -> bytes:
    """A model NNC command: ``{cmd, len, args...}`` (u32s), padded to 8 bytes."""
    words = [cmd, 0, *args]
    if len(words) % 2:
        words.append(0)
    words[1] = 4 * len(words)
    return struct.pack(f"<{len(words)}I", *(w & 0xFFFFFFFF for w in words))


def parse_command(data: bytes) -> tuple[int, list[int]]:
    """(cmd, args) of a model command; DecodeError if it is not one."""
    if len(data) < 8 or len(data) % 4:
        raise DecodeError(f"command of {len(data)} bytes", rule="NNC-CMD-SIZE")
    cmd, ln = struct.unpack_from("<II", data)
    if ln != len(data):
        raise DecodeError(f"command len {ln} but {len(data)} bytes", offset=4, rule="NNC-CMD-LEN")
    args = list(struct.unpack_from(f"<{len(data) // 4 - 2}I", data, 8))
    return cmd, args


class QsmViolation(Finding):
    """Something a host asked for that QSM refused as a rule breach (isolation etc.): a
    :class:`Finding` at ``handle`` / ``partition``."""

    __slots__ = ()

    def __init__(
        self,
        rule: str,
        message: str,
        handle: int | None = None,
        partition: int | None = None,
        source: str = "control-path.md §1",
    ) -> None:
        super().__init__(rule, message, source, {"handle": handle, "partition": partition})


@attrs.define
class Activation:
    dbc: int
    owner: tuple[int, int]  # (partition, handle)
    nsps: tuple[int, ...]
    elf_id: int
    nelem: int
    req_q: int
    rsp_q: int
    buf_len: int


@attrs.define
class Image:
    elf_id: int
    owner: tuple[int, int]
    addr: int
    size: int
    loaded: int = 0


@attrs.define
class _Load:
    image: Image
    chunk_id: int
    held: list[Any]  # response transactions waiting for the load to finish
    resp_index: int  # where the LOAD_ELF_RESP goes in ``held``
