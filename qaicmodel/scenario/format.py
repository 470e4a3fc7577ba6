"""Scenario files (``qaicmodel-scenario/1``): parsing and validation.

Contract: ``shared/formats/scenario.md``; the compatible extensions are documented in
``docs/formats-extensions.md`` (see :mod:`qaicmodel.scenario` for the list).

Parsing rules (:func:`parse`; all checked before anything runs, each failure is a
:class:`~qaicmodel.errors.FormatError` naming ``steps[i].field``):

  P1  the top level is an object with ``format`` = ``qaicmodel-scenario/1``, optional
      ``device``, and ``steps`` (a list); optionally ``witness`` (an object: what
      ``qaicmodel hunt`` recorded, read by ``hunt --replay``); no other keys.
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

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from qaicmodel.errors import (
    FormatError,
    PolicyError,
)
from qaicmodel.scenario.control_ops import CONTROL_OPS, check_control_step
from qaicmodel.scenario.memory_ops import MEMORY_OPS
from qaicmodel.scenario.values import (  # noqa: F401  (re-exported: format's public names)
    _DBC,
    _HANDLE,
    _REQ,
    _USER,
    FORMAT,
    MODEL_IO_LIMIT,
    PLAIN_LIMITS,
    U8,
    U16,
    U32,
    U64,
    WORKLOADS,
    FieldSpec,
    Ref,
    _bool,
    _entries,
    _exec_list,
    _expect,
    _hdr,
    _hex,
    _int,
    _length,
    _list,
    _name,
    _nsp_sem,
    _obj,
    _pexec_list,
    _pos_int,
    _ref32,
    _ref_list,
    _schedule,
    _struct,
    _text,
    _where,
    _workload,
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
    **CONTROL_OPS,  # extensions: manage, control_fault, ras, reset (scenario/control_ops.py)
    **MEMORY_OPS,  # extension: import_bo (scenario/memory_ops.py)
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


#: id of an op's field tuple -> (the tuple, the set of its field names), made once per op
_FIELD_NAMES: dict[int, tuple[tuple[Any, ...], frozenset[str]]] = {}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def _parse_step(
    i: int, v: Any, device: DeviceConfig, bound: set[str], users: dict[str, bool]
) -> Step:
    d = _obj(v, f"steps[{i}]")
    op = d.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise FormatError(f"unknown op {op!r} (known: {', '.join(OPS)})", where=_where(i, "op"))
    fields, binds = OPS[op]
    known = _FIELD_NAMES.get(id(fields))
    if known is None or known[0] is not fields:
        known = _FIELD_NAMES[id(fields)] = (fields, frozenset(f.name for f in fields))
    names = known[1]
    for k in d:
        if k not in names and k not in _COMMON:
            raise FormatError(
                f"unknown field for {op} (fields: {', '.join(sorted(names))})", where=_where(i, k)
            )
    args: dict[str, Any] = {}
    for f in fields:
        if f.name in d:
            x = d[f.name]
            lim = PLAIN_LIMITS.get(f.parse)
            if lim is not None and type(x) is int and 0 <= x < lim:
                args[f.name] = x  # what f.parse returns for it
            else:
                args[f.name] = f.parse(x, _where(i, f.name))
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
        if not _NAME.fullmatch(as_) or as_.lower().startswith("0x"):
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
    check_control_step(i, op, args)
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
    """P5: every name must be bound by an earlier step.  (:func:`_refs_bound` first: the
    walk that builds each field's path for the message runs only when a name is unbound.)"""
    if not path and _refs_bound(obj, bound):
        return
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


def _refs_bound(obj: Any, bound: set[str]) -> bool:
    """Whether every :class:`Ref` inside ``obj`` (dicts and lists) names a bound name."""
    todo = [obj]
    while todo:
        o = todo.pop()
        if isinstance(o, Ref):
            if o.name not in bound:
                return False
            continue
        if isinstance(o, dict):
            o = o.values()
        elif not isinstance(o, list):
            continue
        for x in o:
            if type(x) is int:  # most leaves: neither a name nor a container
                continue
            if isinstance(x, (dict, list, Ref)):
                todo.append(x)
    return True


def parse(obj: Any) -> Scenario:
    """Validate a decoded JSON document (rules P1-P6)."""
    d = _obj(obj, "(top level)")
    for k in d:
        if k not in ("format", "device", "steps", "witness"):
            raise FormatError(
                "unknown top-level key (known: format, device, steps, witness)", where=k
            )
    if "witness" in d:  # extension: a hunt witness's record (qaicmodel/oracle/hunt/witness.py)
        _obj(d["witness"], "witness")
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
