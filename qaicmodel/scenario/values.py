"""Scenario field values: the parsers of ``qaicmodel-scenario/1`` fields (rules P3-P6).

Split from :mod:`qaicmodel.scenario.format` (which re-exports the public names): every
parser takes ``(value, where)`` and returns the parsed value or raises
:class:`~qaicmodel.errors.FormatError` naming ``where``.

  P3  integers are JSON integers or ``"0x..."`` strings, and must fit the C type of the
      uapi field they fill (``u8``..``u64``);
  P4  nested uapi structs are zero-initialised (a missing field is 0);
  P5  a name is bound by an earlier ``as`` (:class:`Ref`);
  P6  ``expect`` is ``"ok"`` or a Linux errno name.
"""

from __future__ import annotations

import errno as _errno
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from qaicmodel import arith
from qaicmodel.errors import FormatError

FORMAT = "qaicmodel-scenario/1"

#: A model limit, not device behaviour: the most bytes one read_bo / ddr_read / hex field
#: may ask the model to copy (FormatError beyond).
MODEL_IO_LIMIT = 16 << 20

_EXTRA_ERRNOS = frozenset({"ERESTARTSYS"})


# ---------------------------------------------------------------------------
# Values


@attrs.frozen
class Ref:
    """A name bound by an earlier step's ``as`` (scenario.md "Steps")."""

    name: str


def _where(i: int | None, field: str) -> str:
    return f"steps[{i}].{field}" if i is not None else field


def _int(v: Any, where: str) -> int:
    """P3: a JSON integer or a ``"0x..."`` string."""
    if isinstance(v, bool):
        raise FormatError(f"expected an integer, got {json.dumps(v)}", where=where)
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", v):
            return int(v, 16)
        raise FormatError(f'expected an integer or a "0x..." string, got {v!r}', where=where)
    raise FormatError(f"expected an integer, got {type(v).__name__}", where=where)


def _uint(bits: int) -> Callable[[Any, str], int]:
    def parse_u(v: Any, where: str) -> int:
        n = _int(v, where)
        if not 0 <= n < (1 << bits):
            raise FormatError(f"{n} does not fit in u{bits}", where=where)
        return n

    parse_u.__name__ = f"u{bits}"
    return parse_u


U8, U16, U32, U64 = _uint(8), _uint(16), _uint(32), _uint(64)
#: the plain unsigned parsers and their limits: a parser given a plain ``int`` in range
#: returns it unchanged, so callers may take such a value as it is (parsing speed only)
PLAIN_LIMITS: dict[Any, int] = {U8: 1 << 8, U16: 1 << 16, U32: 1 << 32, U64: 1 << 64}


def _ref32(v: Any, where: str) -> int | Ref:
    """P5: a bound name, or a plain u32 (so a bogus handle/dbc can be passed on purpose)."""
    if isinstance(v, str) and not v.lower().startswith("0x"):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", v):
            raise FormatError(f"{v!r} is not a valid name", where=where)
        return Ref(v)
    if type(v) is int and 0 <= v < 1 << 32:
        return v  # what U32 returns for it
    return U32(v, where)


def _user(v: Any, where: str) -> str:
    """A user label (an int or a name): the scenario's name for one DRM file."""
    if isinstance(v, bool) or not isinstance(v, (int, str)) or v == "":
        raise FormatError("a user is an integer or a non-empty string", where=where)
    return str(v)


def _hex(v: Any, where: str) -> bytes:
    if not isinstance(v, str):
        raise FormatError("expected a string of hex digits", where=where)
    text = v[2:] if v[:2].lower() == "0x" else v
    text = "".join(text.split())
    try:  # with no whitespace left, fromhex takes exactly pairs of hex digits
        data = bytes.fromhex(text)
    except ValueError:
        raise FormatError("expected an even number of hex digits", where=where) from None
    if len(data) > MODEL_IO_LIMIT:
        raise FormatError(f"more than {MODEL_IO_LIMIT} bytes", where=where)
    return data


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise FormatError("expected true or false", where=where)
    return v


def _text(v: Any, where: str) -> str:
    if not isinstance(v, str):
        raise FormatError("expected a string", where=where)
    return v


def _length(v: Any, where: str) -> int:
    n = U64(v, where)
    if n > MODEL_IO_LIMIT:
        raise FormatError(f"length {n} exceeds the model's limit of {MODEL_IO_LIMIT}", where=where)
    return n


def _pos_int(v: Any, where: str) -> int:
    n = _int(v, where)
    if n < 0:
        raise FormatError(f"expected a count >= 0, got {n}", where=where)
    return n


def _expect(v: Any, where: str) -> str:
    """P6: "ok" or a Linux errno name."""
    if isinstance(v, str) and (
        v == "ok" or (v.startswith("E") and hasattr(_errno, v)) or v in _EXTRA_ERRNOS
    ):
        return v
    raise FormatError(f'expect must be "ok" or an errno name (EINVAL, ...), got {v!r}', where=where)


def _obj(v: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(v, dict):
        raise FormatError(f"expected an object, got {type(v).__name__}", where=where)
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise FormatError(f"expected a list, got {type(v).__name__}", where=where)
    return v


def _struct(
    fields: Mapping[str, Callable[[Any, str], Any]], required: tuple[str, ...] = ()
) -> Callable[[Any, str], dict[str, Any]]:
    """A zero-initialised uapi struct (P4): unknown keys rejected, missing ones 0."""

    def parse_s(v: Any, where: str) -> dict[str, Any]:
        d = _obj(v, where)
        for k in d:
            if k not in fields:
                raise FormatError(
                    f"unknown field (known: {', '.join(fields)})", where=f"{where}.{k}"
                )
        out: dict[str, Any] = {}
        for k, fn in fields.items():
            if k in d:
                x = d[k]
                lim = PLAIN_LIMITS.get(fn)
                if lim is not None and type(x) is int and 0 <= x < lim:
                    out[k] = x  # what fn returns for it
                else:
                    out[k] = fn(x, f"{where}.{k}")
            elif k in required:
                raise FormatError("missing", where=f"{where}.{k}")
            else:
                out[k] = _zero(fn, f"{where}.{k}") if getattr(fn, "is_struct", False) else 0
        return out

    parse_s.is_struct = True  # type: ignore[attr-defined]
    return parse_s


#: struct parser -> (what it makes of an absent, all-zero struct, whether that is flat)
_ZEROS: dict[Any, tuple[dict[str, Any], bool]] = {}


def _zero(fn: Callable[[Any, str], dict[str, Any]], where: str) -> dict[str, Any]:
    """``fn({}, where)``, a fresh copy each time (the first call raises what it raises)."""
    known = _ZEROS.get(fn)
    if known is None:
        z = fn({}, where)
        known = _ZEROS[fn] = (z, not any(isinstance(v, dict) for v in z.values()))
    return dict(known[0]) if known[1] else _copy(known[0])


def _copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in d.items()}


# struct qaic_sem (qaic_accel.h; control-path.md §3.3): val u16, index u8, presync u8,
# cmd u8, flags u8, pad u16.
_SEM = _struct({"val": U16, "index": U8, "presync": U8, "cmd": U8, "flags": U8, "pad": U16})
# struct qaic_attach_slice_entry (72 bytes).
_ENTRY = _struct(
    {
        "size": U64,
        "offset": U64,
        "dev_addr": U64,
        "db_addr": U64,
        "db_data": U32,
        "db_len": U32,
        "sem0": _SEM,
        "sem1": _SEM,
        "sem2": _SEM,
        "sem3": _SEM,
    }
)
# struct qaic_attach_slice_hdr (24 bytes); count defaults to len(entries) (extension).
_HDR_FIELDS = {"count": U32, "dbc_id": _ref32, "handle": _ref32, "dir": U32, "size": U64}


# the struct parsers below are made once (a parser is a pure function of its fields)
_HDR = _struct(_HDR_FIELDS, required=("dbc_id", "handle", "dir", "size"))
_EXEC_ENTRY = _struct({"handle": _ref32, "dir": U32}, required=("handle",))
_PEXEC_ENTRY = _struct({"handle": _ref32, "dir": U32, "resize": U64}, required=("handle",))
_NSP_SEM = _struct({"index": U8, "cmd": U8, "val": U16}, required=("index", "cmd"))


def _hdr(v: Any, where: str) -> dict[str, Any]:
    d = _obj(v, where)
    out = _HDR(d, where)
    if "count" not in d:
        out["count"] = None
    return out


def _entries(v: Any, where: str) -> list[dict[str, Any]]:
    return [_ENTRY(e, f"{where}[{k}]") for k, e in enumerate(_list(v, where))]


def _exec_item(v: Any, where: str) -> dict[str, Any]:
    """``execute`` handles: a handle, or (extension) {"handle", "dir"} as qaic_execute_entry."""
    if isinstance(v, dict):
        d = _EXEC_ENTRY(v, where)
        if "dir" not in v:
            d["dir"] = None
        return d
    return {"handle": _ref32(v, where), "dir": None}


def _exec_list(v: Any, where: str) -> list[dict[str, Any]]:
    return [_exec_item(e, f"{where}[{k}]") for k, e in enumerate(_list(v, where))]


def _pexec_list(v: Any, where: str) -> list[dict[str, Any]]:
    out = []
    for k, e in enumerate(_list(v, where)):
        w = f"{where}[{k}]"
        d = _PEXEC_ENTRY(e, w)
        if "dir" not in _obj(e, w):
            d["dir"] = None
        out.append(d)
    return out


def _ref_list(v: Any, where: str) -> list[int | Ref]:
    items = _list(v, where)
    if len(items) > 0xFFFF:  # qaic_perf_stats_hdr.count is u16
        raise FormatError("more than 65535 handles", where=where)
    return [_ref32(e, f"{where}[{k}]") for k, e in enumerate(items)]


def _nsp_sem(v: Any, where: str) -> dict[str, Any]:
    """The workload side's semaphore operation: index 0..31, cmd 0..6, val 12 bits (Device.nsp_sem)."""
    d = _NSP_SEM(v, where)
    if d["index"] > arith.SEM_INDEX_MASK:
        raise FormatError(f"semaphore index {d['index']} > 31", where=f"{where}.index")
    if d["cmd"] > arith.SEM_CMD_MAX:
        raise FormatError(f"semaphore command {d['cmd']} > 6", where=f"{where}.cmd")
    if d["val"] > arith.SEM_VAL_MASK:
        raise FormatError(f"semaphore value {d['val']} > 4095", where=f"{where}.val")
    return d


def _schedule(v: Any, where: str) -> list[str]:
    """Extension on ``run``: the exact actions to take, as ``actor:repr`` strings."""
    out = []
    for k, e in enumerate(_list(v, where)):
        if not isinstance(e, str) or ":" not in e:
            raise FormatError(
                'a schedule entry is an "actor:Action(...)" string', where=f"{where}[{k}]"
            )
        out.append(e)
    return out


def _u32_list(v: Any, where: str) -> list[int]:
    items = _list(v, where)
    if not items:
        raise FormatError("needs at least one doorbell number", where=where)
    return [U32(e, f"{where}[{k}]") for k, e in enumerate(items)]


_PROTOCOL_FIELDS: dict[str, Callable[[Any, str], Any]] = {
    "in_doorbells": _u32_list,
    "out_doorbells": _u32_list,
    "sem_in": U8,
    "sem_out": U8,
    "inferences": U32,
    "db_base": U64,
}

#: workload kinds for the ``workload`` extension on ``activate``
#: (qaicmodel/spec/dbc/workload.py; userspace.md §8):
#: kind -> ("module:Class", {constructor keyword: parser}, required keywords).
WORKLOADS: dict[str, tuple[str, dict[str, Callable[[Any, str], Any]], tuple[str, ...]]] = {
    "echo": (
        "qaicmodel.spec.dbc.workload:EchoWorkload",
        {"in_addr": U64, "out_addr": U64, "length": _length, "n_nsps": U8, **_PROTOCOL_FIELDS},
        ("in_addr", "out_addr", "length"),
    ),
    "compiler": (
        "qaicmodel.spec.dbc.workload:CompilerProtocolWorkload",
        {"n_in_nsps": U8, "n_out_nsps": U8, **_PROTOCOL_FIELDS},
        (),
    ),
}


def _workload(v: Any, where: str) -> dict[str, Any] | None:
    if v is None:
        return None
    d = _obj(v, where)
    kind = d.get("kind")
    if not isinstance(kind, str) or kind not in WORKLOADS:
        raise FormatError(
            f"unknown workload kind {kind!r} (known: {', '.join(WORKLOADS)})", where=f"{where}.kind"
        )
    _ref, fields, required = WORKLOADS[kind]
    rest = {k: x for k, x in d.items() if k != "kind"}
    args = _struct(fields, required=required)(rest, where)
    return {"kind": kind, "args": {k: x for k, x in args.items() if k in rest}}


def _name(v: Any, where: str) -> str:
    """A name a step binds (``as``, ``thread``)."""
    if (
        not isinstance(v, str)
        or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", v)
        or v.lower().startswith("0x")
    ):
        raise FormatError(f"{v!r} is not a valid name", where=where)
    return v


@attrs.frozen
class FieldSpec:
    """One field of a step: name, parser, and default (``_REQ`` = required)."""

    name: str
    parse: Callable[[Any, str], Any]
    default: Any = None


_REQ = object()
_USER = FieldSpec("user", _user, "0")
_DBC = FieldSpec("dbc_id", _ref32, _REQ)
_HANDLE = FieldSpec("handle", _ref32, _REQ)
