"""Scenario files (``qaicmodel-scenario/1``): parsing and validation.

Contract: ``shared/formats/scenario.md``; the compatible extensions are documented in
``docs/formats-extensions.md`` (see :mod:`qaicmodel.scenario` for the list).

Parsing rules (:func:`parse`; all checked before anything runs, each failure is a
:class:`~qaicmodel.errors.FormatError` naming ``steps[i].field``):

  P1  the top level is an object with ``format`` = ``qaicmodel-scenario/1``, optional
      ``device``, and ``steps`` (a list); no other keys.
  P2  a step is an object with ``op`` from :data:`OPS`; its other keys are that op's fields
      (:data:`OPS`), ``expect``, ``note``, and ``as`` on ops that return a handle or a
      dbc id.  An unknown key is an error (a typo must not silently change a test).
  P3  integers are JSON integers or ``"0x..."`` strings, and must fit the C type of the
      uapi field they fill (``u8``..``u64``); values inside the C type but rejected by
      the driver are passed through, so a scenario can test validation.
  P4  nested uapi structs (slice entries, semaphores) are zero-initialised: a missing
      field is 0, as in a C runner that memsets its structs.
  P5  a name used where the uapi wants a number must be bound by an earlier ``as``; a
      ``user`` must have been opened by an earlier ``open`` step.
  P6  ``expect`` is ``"ok"`` or a Linux errno name.
"""

from __future__ import annotations

import errno as _errno
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from qaicmodel import arith
from qaicmodel.errors import (
    FormatError,
    PolicyError,
)
from qaicmodel.spec.dbc.config import FAMILIES, DeviceConfig

__all__ = [
    "FORMAT",
    "OPS",
    "WORKLOADS",
    "Ref",
    "Step",
    "Scenario",
    "parse",
    "load",
    "parse_device",
    "MODEL_IO_LIMIT",
]

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


def _ref32(v: Any, where: str) -> int | Ref:
    """P5: a bound name, or a plain u32 (so a bogus handle/dbc can be passed on purpose)."""
    if isinstance(v, str) and not v.lower().startswith("0x"):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", v):
            raise FormatError(f"{v!r} is not a valid name", where=where)
        return Ref(v)
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
    if not re.fullmatch(r"(?:[0-9a-fA-F]{2})*", text):
        raise FormatError("expected an even number of hex digits", where=where)
    if len(text) // 2 > MODEL_IO_LIMIT:
        raise FormatError(f"more than {MODEL_IO_LIMIT} bytes", where=where)
    return bytes.fromhex(text)


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
                out[k] = fn(d[k], f"{where}.{k}")
            elif k in required:
                raise FormatError("missing", where=f"{where}.{k}")
            else:
                out[k] = fn({}, f"{where}.{k}") if getattr(fn, "is_struct", False) else 0
        return out

    parse_s.is_struct = True  # type: ignore[attr-defined]
    return parse_s


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


def _hdr(v: Any, where: str) -> dict[str, Any]:
    d = _obj(v, where)
    out = _struct(_HDR_FIELDS, required=("dbc_id", "handle", "dir", "size"))(d, where)
    if "count" not in d:
        out["count"] = None
    return out


def _entries(v: Any, where: str) -> list[dict[str, Any]]:
    return [_ENTRY(e, f"{where}[{k}]") for k, e in enumerate(_list(v, where))]


def _exec_item(v: Any, where: str) -> dict[str, Any]:
    """``execute`` handles: a handle, or (extension) {"handle", "dir"} as qaic_execute_entry."""
    if isinstance(v, dict):
        d = _struct({"handle": _ref32, "dir": U32}, required=("handle",))(v, where)
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
        d = _struct({"handle": _ref32, "dir": U32, "resize": U64}, required=("handle",))(e, w)
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
    d = _struct({"index": U8, "cmd": U8, "val": U16}, required=("index", "cmd"))(v, where)
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

#: op -> (fields, whether ``as`` may bind its result).  Field names are the uapi's
#: (scenario.md "Steps").
OPS: dict[str, tuple[tuple[FieldSpec, ...], bool]] = {
    "open": ((_USER,), False),
    "close": ((_USER,), False),
    "activate": (
        (
            _USER,
            FieldSpec("queue_size", U32, _REQ),
            FieldSpec("options", U32, 0),
            FieldSpec("workload", _workload, None),
        ),
        True,
    ),
    "deactivate": ((_USER, _DBC), False),
    "create_bo": ((_USER, FieldSpec("size", U64, _REQ), FieldSpec("pad", U32, 0)), True),
    "attach_slice": (
        (_USER, FieldSpec("hdr", _hdr, _REQ), FieldSpec("entries", _entries, _REQ)),
        False,
    ),
    "execute": (
        (_USER, _DBC, FieldSpec("handles", _exec_list, _REQ), FieldSpec("thread", _name, None)),
        False,
    ),
    "partial_execute": (
        (_USER, _DBC, FieldSpec("entries", _pexec_list, _REQ), FieldSpec("thread", _name, None)),
        False,
    ),
    "join": ((FieldSpec("thread", _name, _REQ),), False),
    "wait": (
        (
            _USER,
            _DBC,
            _HANDLE,
            FieldSpec("timeout_ms", U32, 0),
            FieldSpec("pad", U32, 0),
            FieldSpec("thread", _name, None),
        ),
        False,
    ),
    "perf_stats": ((_USER, _DBC, FieldSpec("handles", _ref_list, _REQ)), False),
    "detach_slice": ((_USER, _HANDLE, FieldSpec("pad", U32, 0)), False),
    "write_bo": (
        (_USER, _HANDLE, FieldSpec("offset", U64, 0), FieldSpec("hex", _hex, _REQ)),
        False,
    ),
    "read_bo": (
        (
            _USER,
            _HANDLE,
            FieldSpec("offset", U64, 0),
            FieldSpec("length", _length, _REQ),
            FieldSpec("expect_hex", _hex, None),
        ),
        False,
    ),
    "nsp": ((_DBC, FieldSpec("sem", _nsp_sem, _REQ)), False),
    "ddr_write": ((FieldSpec("addr", U64, _REQ), FieldSpec("hex", _hex, _REQ)), False),
    "ddr_read": (
        (
            FieldSpec("addr", U64, _REQ),
            FieldSpec("length", _length, _REQ),
            FieldSpec("expect_hex", _hex, None),
        ),
        False,
    ),
    "run": (
        (FieldSpec("max_steps", _pos_int, None), FieldSpec("schedule", _schedule, None)),
        False,
    ),
    "ssr": ((_DBC,), False),
    "dump": ((_DBC,), False),
}
_COMMON = ("op", "expect", "note", "as")
#: ops that act on a channel outside the uapi: an integer dbc_id must be < num_dbc.
_CHANNEL_OPS = frozenset({"nsp", "ssr", "dump"})


@attrs.frozen
class Step:
    """One parsed step (scenario.md "Steps")."""

    index: int
    op: str
    args: Mapping[str, Any] = attrs.field(eq=False)
    expect: str | None = None
    note: str | None = None
    as_: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)


@attrs.frozen
class Scenario:
    device: DeviceConfig
    steps: tuple[Step, ...]


def parse_device(v: Any) -> DeviceConfig:
    if v is None:
        return DeviceConfig()
    d = _obj(v, "device")
    known = (
        "family",
        "num_dbc",
        "single_msi",
        "datapath_polling",
        "sg_max_segment",
        "policies",
        "kernel",
    )
    for k in d:
        if k not in known:
            raise FormatError(f"unknown key (known: {', '.join(known)})", where=f"device.{k}")
    family = d.get("family", "aic100")
    if family not in FAMILIES:
        raise FormatError(
            f"family must be one of {', '.join(FAMILIES)}, got {family!r}", where="device.family"
        )
    num_dbc = _int(d.get("num_dbc", 16), "device.num_dbc")
    if not 1 <= num_dbc <= 16:
        raise FormatError(f"num_dbc must be 1..16, got {num_dbc}", where="device.num_dbc")
    single_msi = _bool(d.get("single_msi", False), "device.single_msi")
    polling = _bool(d.get("datapath_polling", False), "device.datapath_polling")
    sg = d.get("sg_max_segment")
    if sg is not None:
        sg = _int(sg, "device.sg_max_segment")
        if sg <= 0 or sg % 4096 or sg >= 1 << 32:
            raise FormatError(
                f"sg_max_segment must be a positive multiple of 4096, got {sg}",
                where="device.sg_max_segment",
            )
    kernel = d.get("kernel")
    if kernel is not None:
        from qaicmodel.spec.host import kernels

        if kernel not in kernels.CHOICES:
            raise FormatError(
                f"kernel must be one of {', '.join(kernels.CHOICES)}, got {kernel!r}",
                where="device.kernel",
            )
    pols = _obj(d.get("policies", {}), "device.policies")
    from qaicmodel.spec.policies import Policies

    for pid, alt in pols.items():
        if not isinstance(alt, str):
            raise FormatError("a policy alternative is a string", where=f"device.policies.{pid}")
        try:
            Policies({pid: alt})
        except PolicyError as e:
            raise FormatError(str(e), where=f"device.policies.{pid}") from None
    return DeviceConfig(
        family=family,
        num_dbc=num_dbc,
        single_msi=single_msi,
        datapath_polling=polling,
        sg_max_segment=sg,
        policies=dict(pols),
        kernel=kernel,
    )


def _parse_step(
    i: int, v: Any, device: DeviceConfig, bound: set[str], users: dict[str, bool]
) -> Step:
    d = _obj(v, f"steps[{i}]")
    op = d.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise FormatError(f"unknown op {op!r} (known: {', '.join(OPS)})", where=_where(i, "op"))
    fields, binds = OPS[op]
    names = {f.name for f in fields}
    for k in d:
        if k not in names and k not in _COMMON:
            raise FormatError(
                f"unknown field for {op} (fields: {', '.join(sorted(names))})", where=_where(i, k)
            )
    args: dict[str, Any] = {}
    for f in fields:
        if f.name in d:
            args[f.name] = f.parse(d[f.name], _where(i, f.name))
        elif f.default is _REQ:
            raise FormatError(f"{op} needs {f.name}", where=_where(i, f.name))
        else:
            args[f.name] = f.default
    expect = _expect(d["expect"], _where(i, "expect")) if "expect" in d else None
    note = _text(d["note"], _where(i, "note")) if "note" in d else None
    as_ = None
    if "as" in d:
        if not binds:
            raise FormatError(f"{op} returns nothing to bind", where=_where(i, "as"))
        as_ = _text(d["as"], _where(i, "as"))
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", as_) or as_.lower().startswith("0x"):
            raise FormatError(f"{as_!r} is not a valid name", where=_where(i, "as"))
    _check_refs(i, args, bound)
    if "user" in args:
        label = args["user"]
        if op == "open":
            if users.get(label):
                raise FormatError(f"user {label!r} is already open", where=_where(i, "user"))
            users[label] = True
        elif label not in users:
            raise FormatError(f"user {label!r} was never opened", where=_where(i, "user"))
        elif op == "close":
            users[label] = False
    if op in _CHANNEL_OPS and isinstance(args["dbc_id"], int) and args["dbc_id"] >= device.num_dbc:
        raise FormatError(
            f"dbc_id {args['dbc_id']} >= num_dbc {device.num_dbc}", where=_where(i, "dbc_id")
        )
    if op == "attach_slice":
        cnt = args["hdr"]["count"]
        if cnt is not None and cnt > len(args["entries"]):
            raise FormatError(
                f"hdr.count {cnt} > {len(args['entries'])} entries given",
                where=_where(i, "hdr.count"),
            )
    if op in ("execute", "partial_execute", "wait") and args["thread"] is not None:
        bound.add("thread:" + args["thread"])
    if op == "join" and "thread:" + args["thread"] not in bound:
        raise FormatError(
            f"thread {args['thread']!r} is not started by an earlier execute or wait",
            where=_where(i, "thread"),
        )
    if as_ is not None:
        bound.add(as_)
    return Step(index=i, op=op, args=args, expect=expect, note=note, as_=as_, raw=d)


def _check_refs(i: int, obj: Any, bound: set[str], path: str = "") -> None:
    """P5: every name must be bound by an earlier step."""
    if isinstance(obj, Ref):
        if obj.name not in bound:
            raise FormatError(
                f'name {obj.name!r} is not bound by an earlier "as"',
                where=_where(i, path.lstrip(".")),
            )
    elif isinstance(obj, dict):
        for k, x in obj.items():
            _check_refs(i, x, bound, f"{path}.{k}")
    elif isinstance(obj, list):
        for k, x in enumerate(obj):
            _check_refs(i, x, bound, f"{path}[{k}]")


def parse(obj: Any) -> Scenario:
    """Validate a decoded JSON document (rules P1-P6)."""
    d = _obj(obj, "(top level)")
    for k in d:
        if k not in ("format", "device", "steps"):
            raise FormatError("unknown top-level key (known: format, device, steps)", where=k)
    if d.get("format") != FORMAT:
        raise FormatError(f"format must be {FORMAT!r}, got {d.get('format')!r}", where="format")
    device = parse_device(d.get("device"))
    if "steps" not in d:
        raise FormatError("missing", where="steps")
    raw_steps = _list(d["steps"], "steps")
    bound: set[str] = set()
    users: dict[str, bool] = {}  # label -> open now
    steps = tuple(_parse_step(i, s, device, bound, users) for i, s in enumerate(raw_steps))
    return Scenario(device=device, steps=steps)


def load(obj_or_path: Any) -> Scenario:
    """A :class:`Scenario` from a path, JSON text/bytes read from a file, or a decoded dict."""
    if isinstance(obj_or_path, Scenario):
        return obj_or_path
    if isinstance(obj_or_path, (str, Path)):
        path = Path(obj_or_path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise FormatError(f"cannot read: {e.strerror or e}", where=str(path)) from None
        return parse(_decode_json(data, str(path)))
    if isinstance(obj_or_path, (bytes, bytearray)):
        return parse(_decode_json(bytes(obj_or_path), "(input)"))
    return parse(obj_or_path)


def _decode_json(data: bytes, where: str) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8 (byte {e.start})", where=where) from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise FormatError(
            f"not JSON: {e.msg} (line {e.lineno} column {e.colno})", where=where
        ) from None
    except RecursionError:
        raise FormatError("not JSON: nested too deeply", where=where) from None
    except ValueError as e:  # e.g. an integer literal longer than Python's digit limit
        raise FormatError(f"not JSON: {e}", where=where) from None


def _reject_constant(name: str) -> Any:
    raise FormatError(f"{name} is not JSON", where="(input)")
