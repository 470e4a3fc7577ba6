"""Scenario runner: ``qaicmodel scenario FILE.json [--json]``.

Contract: ``shared/formats/scenario.md`` (``qaicmodel-scenario/1``); the compatible
extensions (``workload`` on ``activate``, ``schedule`` on ``run``, ``thread`` on
``execute``/``partial_execute`` with ``join``, ``expect_hex`` on ``read_bo``/``ddr_read``,
``{"handle", "dir"}`` execute items, ``pad`` on ``wait``) and the points scenario.md leaves
open are documented in ``docs/formats-extensions.md``.

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

Execution rules (:class:`Runner`):

  E1  steps run in order on one device model and one host; an ioctl's result is ``ok`` or
      the errno name of the :class:`~qaicmodel.errors.IoctlError` the host raised.
  E2  the run stops at the first step whose ``expect`` does not hold (exit 1).
  E3  ``run`` and ``wait`` drive the actors (device, host interrupt side, workloads) with
      the deterministic default schedule: the first enabled action of the first actor
      that has one (scheduler.FirstScheduler order).
  E4  ``wait``: the host's validation first; then the actors run until the BO completes;
      when no action is enabled and it has not completed the result is ``ETIMEDOUT``
      (scenario.md "wait in the model").
  E5  ``activate``/``deactivate``/``close``/``ssr`` go through :func:`_activate`,
      :func:`_deactivate`, :func:`_close`, :func:`_ssr` -- the seam to the control plane
      (qaicmodel/spec/control.py: NNC MANAGE messages to the QSM model).
  E6  a host rule violation recorded by the device during a step, or a response left in
      a ring when a ``run`` ends quiescent (interrupt mode), makes that step a mismatch
      (the reference host never does either; formats-extensions.md).
"""

from __future__ import annotations

import argparse
import errno as _errno
import importlib
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from qaicmodel import arith
from qaicmodel.errors import (
    ArgumentError,
    FormatError,
    IoctlError,
    NotModelledError,
    PolicyError,
)

__all__ = [
    "FORMAT",
    "RESULT_FORMAT",
    "OPS",
    "Scenario",
    "Step",
    "DeviceConfig",
    "Ref",
    "Report",
    "Runner",
    "parse",
    "load",
    "run_scenario",
    "load_host",
    "DEFAULT_HOST",
    "add_args",
    "run_cli",
]

FORMAT = "qaicmodel-scenario/1"
RESULT_FORMAT = "qaicmodel-result/1"
#: The reference host (qaicmodel/spec/host.py) runs scenarios unless told otherwise.
DEFAULT_HOST = "qaicmodel.spec.host:SpecHost"

#: A model limit, not device behaviour: the most bytes one read_bo / ddr_read / hex field
#: may ask the model to copy (FormatError beyond).
MODEL_IO_LIMIT = 16 << 20
#: ``run`` without ``max_steps`` stops after this many actor steps (reports quiescent=false).
DEFAULT_RUN_LIMIT = 200_000

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
        raise FormatError(f"expected an integer or a \"0x...\" string, got {v!r}", where=where)
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
    if isinstance(v, str) and (v == "ok" or (v.startswith("E") and hasattr(_errno, v))
                               or v in _EXTRA_ERRNOS):
        return v
    raise FormatError(f"expect must be \"ok\" or an errno name (EINVAL, ...), got {v!r}",
                      where=where)


def _obj(v: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(v, dict):
        raise FormatError(f"expected an object, got {type(v).__name__}", where=where)
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise FormatError(f"expected a list, got {type(v).__name__}", where=where)
    return v


def _struct(fields: Mapping[str, Callable[[Any, str], Any]], required: tuple[str, ...] = ()
            ) -> Callable[[Any, str], dict[str, Any]]:
    """A zero-initialised uapi struct (P4): unknown keys rejected, missing ones 0."""

    def parse_s(v: Any, where: str) -> dict[str, Any]:
        d = _obj(v, where)
        for k in d:
            if k not in fields:
                raise FormatError(f"unknown field (known: {', '.join(fields)})",
                                  where=f"{where}.{k}")
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
_ENTRY = _struct({"size": U64, "offset": U64, "dev_addr": U64, "db_addr": U64,
                  "db_data": U32, "db_len": U32,
                  "sem0": _SEM, "sem1": _SEM, "sem2": _SEM, "sem3": _SEM})
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
            raise FormatError("a schedule entry is an \"actor:Action(...)\" string",
                              where=f"{where}[{k}]")
        out.append(e)
    return out


def _u32_list(v: Any, where: str) -> list[int]:
    items = _list(v, where)
    if not items:
        raise FormatError("needs at least one doorbell number", where=where)
    return [U32(e, f"{where}[{k}]") for k, e in enumerate(items)]


_PROTOCOL_FIELDS: dict[str, Callable[[Any, str], Any]] = {
    "in_doorbells": _u32_list, "out_doorbells": _u32_list, "sem_in": U8, "sem_out": U8,
    "inferences": U32, "db_base": U64}

#: workload kinds for the ``workload`` extension on ``activate``
#: (qaicmodel/spec/workload.py; userspace.md §8):
#: kind -> ("module:Class", {constructor keyword: parser}, required keywords).
WORKLOADS: dict[str, tuple[str, dict[str, Callable[[Any, str], Any]], tuple[str, ...]]] = {
    "echo": ("qaicmodel.spec.workload:EchoWorkload",
             {"in_addr": U64, "out_addr": U64, "length": _length, "n_nsps": U8,
              **_PROTOCOL_FIELDS},
             ("in_addr", "out_addr", "length")),
    "compiler": ("qaicmodel.spec.workload:CompilerProtocolWorkload",
                 {"n_in_nsps": U8, "n_out_nsps": U8, **_PROTOCOL_FIELDS}, ()),
}


def _workload(v: Any, where: str) -> dict[str, Any] | None:
    if v is None:
        return None
    d = _obj(v, where)
    kind = d.get("kind")
    if not isinstance(kind, str) or kind not in WORKLOADS:
        raise FormatError(f"unknown workload kind {kind!r} (known: {', '.join(WORKLOADS)})",
                          where=f"{where}.kind")
    _ref, fields, required = WORKLOADS[kind]
    rest = {k: x for k, x in d.items() if k != "kind"}
    args = _struct(fields, required=required)(rest, where)
    return {"kind": kind, "args": {k: x for k, x in args.items() if k in rest}}


def _name(v: Any, where: str) -> str:
    """A name a step binds (``as``, ``thread``)."""
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", v) \
            or v.lower().startswith("0x"):
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
    "activate": ((_USER, FieldSpec("queue_size", U32, _REQ), FieldSpec("options", U32, 0),
                  FieldSpec("workload", _workload, None)), True),
    "deactivate": ((_USER, _DBC), False),
    "create_bo": ((_USER, FieldSpec("size", U64, _REQ), FieldSpec("pad", U32, 0)), True),
    "attach_slice": ((_USER, FieldSpec("hdr", _hdr, _REQ), FieldSpec("entries", _entries, _REQ)),
                     False),
    "execute": ((_USER, _DBC, FieldSpec("handles", _exec_list, _REQ),
                 FieldSpec("thread", _name, None)), False),
    "partial_execute": ((_USER, _DBC, FieldSpec("entries", _pexec_list, _REQ),
                         FieldSpec("thread", _name, None)), False),
    "join": ((FieldSpec("thread", _name, _REQ),), False),
    "wait": ((_USER, _DBC, _HANDLE, FieldSpec("timeout_ms", U32, 0), FieldSpec("pad", U32, 0)),
             False),
    "perf_stats": ((_USER, _DBC, FieldSpec("handles", _ref_list, _REQ)), False),
    "detach_slice": ((_USER, _HANDLE, FieldSpec("pad", U32, 0)), False),
    "write_bo": ((_USER, _HANDLE, FieldSpec("offset", U64, 0), FieldSpec("hex", _hex, _REQ)),
                 False),
    "read_bo": ((_USER, _HANDLE, FieldSpec("offset", U64, 0), FieldSpec("length", _length, _REQ),
                 FieldSpec("expect_hex", _hex, None)), False),
    "nsp": ((_DBC, FieldSpec("sem", _nsp_sem, _REQ)), False),
    "ddr_write": ((FieldSpec("addr", U64, _REQ), FieldSpec("hex", _hex, _REQ)), False),
    "ddr_read": ((FieldSpec("addr", U64, _REQ), FieldSpec("length", _length, _REQ),
                  FieldSpec("expect_hex", _hex, None)), False),
    "run": ((FieldSpec("max_steps", _pos_int, None), FieldSpec("schedule", _schedule, None)),
            False),
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
class DeviceConfig:
    """The ``device`` object (scenario.md "Top level"), defaults as documented."""

    family: str = "aic100"
    num_dbc: int = 16
    single_msi: bool = False
    datapath_polling: bool = False
    sg_max_segment: int | None = None
    policies: Mapping[str, str] = attrs.field(factory=dict, eq=False)

    def as_dict(self) -> dict[str, Any]:
        return {"family": self.family, "num_dbc": self.num_dbc, "single_msi": self.single_msi,
                "datapath_polling": self.datapath_polling,
                "sg_max_segment": self.sg_max_segment, "policies": dict(self.policies)}


@attrs.frozen
class Scenario:
    device: DeviceConfig
    steps: tuple[Step, ...]


#: families whose DMA Bridge the model covers (control-path.md §2.2: 16 DBCs on each).
FAMILIES = ("aic100", "aic080")


def _parse_device(v: Any) -> DeviceConfig:
    if v is None:
        return DeviceConfig()
    d = _obj(v, "device")
    known = ("family", "num_dbc", "single_msi", "datapath_polling", "sg_max_segment", "policies")
    for k in d:
        if k not in known:
            raise FormatError(f"unknown key (known: {', '.join(known)})", where=f"device.{k}")
    family = d.get("family", "aic100")
    if family not in FAMILIES:
        raise FormatError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}",
                          where="device.family")
    num_dbc = _int(d.get("num_dbc", 16), "device.num_dbc")
    if not 1 <= num_dbc <= 16:
        raise FormatError(f"num_dbc must be 1..16, got {num_dbc}", where="device.num_dbc")
    single_msi = _bool(d.get("single_msi", False), "device.single_msi")
    polling = _bool(d.get("datapath_polling", False), "device.datapath_polling")
    sg = d.get("sg_max_segment")
    if sg is not None:
        sg = _int(sg, "device.sg_max_segment")
        if sg <= 0 or sg % 4096 or sg >= 1 << 32:
            raise FormatError(f"sg_max_segment must be a positive multiple of 4096, got {sg}",
                              where="device.sg_max_segment")
    pols = _obj(d.get("policies", {}), "device.policies")
    from qaicmodel.spec import registry
    from qaicmodel.spec.policies import Policies

    registry.load_all()
    for pid, alt in pols.items():
        if not isinstance(alt, str):
            raise FormatError("a policy alternative is a string", where=f"device.policies.{pid}")
        try:
            Policies({pid: alt})
        except PolicyError as e:
            raise FormatError(str(e), where=f"device.policies.{pid}") from None
    return DeviceConfig(family=family, num_dbc=num_dbc, single_msi=single_msi,
                        datapath_polling=polling, sg_max_segment=sg, policies=dict(pols))


def _parse_step(i: int, v: Any, device: DeviceConfig, bound: set[str],
                users: dict[str, bool]) -> Step:
    d = _obj(v, f"steps[{i}]")
    op = d.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise FormatError(f"unknown op {op!r} (known: {', '.join(OPS)})", where=_where(i, "op"))
    fields, binds = OPS[op]
    names = {f.name for f in fields}
    for k in d:
        if k not in names and k not in _COMMON:
            raise FormatError(f"unknown field for {op} (fields: {', '.join(sorted(names))})",
                              where=_where(i, k))
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
        raise FormatError(f"dbc_id {args['dbc_id']} >= num_dbc {device.num_dbc}",
                          where=_where(i, "dbc_id"))
    if op == "attach_slice":
        cnt = args["hdr"]["count"]
        if cnt is not None and cnt > len(args["entries"]):
            raise FormatError(f"hdr.count {cnt} > {len(args['entries'])} entries given",
                              where=_where(i, "hdr.count"))
    if op in ("execute", "partial_execute") and args["thread"] is not None:
        bound.add("thread:" + args["thread"])
    if op == "join" and "thread:" + args["thread"] not in bound:
        raise FormatError(f"thread {args['thread']!r} is not started by an earlier execute",
                          where=_where(i, "thread"))
    if as_ is not None:
        bound.add(as_)
    return Step(index=i, op=op, args=args, expect=expect, note=note, as_=as_, raw=d)


def _check_refs(i: int, obj: Any, bound: set[str], path: str = "") -> None:
    """P5: every name must be bound by an earlier step."""
    if isinstance(obj, Ref):
        if obj.name not in bound:
            raise FormatError(f"name {obj.name!r} is not bound by an earlier \"as\"",
                              where=_where(i, path.lstrip(".")))
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
    device = _parse_device(d.get("device"))
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
        raise FormatError(f"not JSON: {e.msg} (line {e.lineno} column {e.colno})",
                          where=where) from None
    except RecursionError:
        raise FormatError("not JSON: nested too deeply", where=where) from None
    except ValueError as e:  # e.g. an integer literal longer than Python's digit limit
        raise FormatError(f"not JSON: {e}", where=where) from None


def _reject_constant(name: str) -> Any:
    raise FormatError(f"{name} is not JSON", where="(input)")


# ---------------------------------------------------------------------------
# Hosts


def load_host(ref: str) -> type:
    """``MODULE:CLASS`` -> a class implementing :class:`qaicmodel.spec.hostapi.Host`."""
    mod, sep, cls_name = ref.partition(":")
    if not sep or not mod or not cls_name:
        raise ArgumentError(f"--host wants MODULE:CLASS, got {ref!r}")
    try:
        module = importlib.import_module(mod)
    except ImportError as e:
        raise ArgumentError(f"cannot import host module {mod!r}: {e}") from None
    cls = getattr(module, cls_name, None)
    if not isinstance(cls, type):
        raise ArgumentError(f"{mod!r} has no class {cls_name!r}")
    missing = [m for m in _HOST_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise ArgumentError(f"{ref} does not implement the host interface "
                            f"(qaicmodel.spec.hostapi.Host): missing {', '.join(missing)}")
    return cls


_HOST_METHODS = ("open", "close", "dbc_assign", "dbc_release", "create_bo", "bo_segments",
                 "mmap_bo", "attach_slice", "execute", "partial_execute", "wait_check",
                 "perf_stats", "detach_slice", "enabled", "step")


# ---------------------------------------------------------------------------
# Running


class ScheduleDiverged(Exception):
    """Internal: a ``schedule`` entry is not enabled now (the step's result says so)."""


class Runner:
    """One device model + one host + workloads, driven step by step (rules E1-E5).

    ``conform`` drives a Runner directly (``step``), so checks can run between steps.
    """

    def __init__(self, device_cfg: DeviceConfig | None = None, *, host_cls: type | None = None,
                 policies: Any = None, bus: Callable[[Any], Any] | None = None,
                 wrap_host: Callable[[Any], Any] | None = None) -> None:
        """``bus`` (device -> what the host is given) and ``wrap_host`` (host -> what the
        runner calls) let ``conform`` watch every register access and host call."""
        from qaicmodel.spec import registry
        from qaicmodel.spec.device import Device
        from qaicmodel.spec.memory import DevMemory, HostMemory
        from qaicmodel.spec.policies import Policies

        registry.load_all()
        cfg = device_cfg or DeviceConfig()
        self.cfg = cfg
        pols = policies if policies is not None else Policies(dict(cfg.policies))
        self.device = Device(num_dbc=cfg.num_dbc, policies=pols, single_msi=cfg.single_msi,
                             host_mem=HostMemory(), dev_mem=DevMemory())
        cls = host_cls if host_cls is not None else load_host(DEFAULT_HOST)
        host = cls(bus(self.device) if bus is not None else self.device,
                   sg_max_segment=cfg.sg_max_segment, datapath_polling=cfg.datapath_polling)
        self.host = wrap_host(host) if wrap_host is not None else host
        self.names: dict[str, int] = {}
        self.users: dict[str, int | None] = {}      # label -> host user id (None: closed)
        self.owner: dict[int, str] = {}             # dbc -> user label (activated here)
        self.workloads: dict[int, list[Any]] = {}   # dbc -> workload actors
        self.bo_dir: dict[tuple[str, int], int] = {}
        self.threads: dict[str, int] = {}          # thread name -> host exec thread id
        self.results: list[dict[str, Any]] = []
        self.steps_run = 0

    # -- actors (E3)
    def actors(self) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = [("device", self.device), ("host", self.host)]
        for dbc in sorted(self.workloads):
            for k, w in enumerate(self.workloads[dbc]):
                out.append((f"workload{dbc}.{k}", w))
        return out

    def enabled(self) -> list[tuple[str, Any]]:
        """Every enabled action as (actor tag, action), in deterministic order."""
        return [(tag, a) for tag, actor in self.actors() for a in actor.enabled()]

    def take(self, tag: str, action: Any) -> None:
        dict(self.actors())[tag].step(action)
        self.steps_run += 1

    def drive(self, max_steps: int | None = None,
              until: Callable[[], bool] | None = None) -> tuple[int, int, bool]:
        """FirstScheduler order until quiescent / ``until()`` / ``max_steps``.

        Returns (steps, device_steps, quiescent).
        """
        limit = DEFAULT_RUN_LIMIT if max_steps is None else max_steps
        steps = dev_steps = 0
        actors = self.actors()
        while steps < limit:
            if until is not None and until():
                return steps, dev_steps, False
            for tag, actor in actors:
                acts = actor.enabled()
                if acts:
                    actor.step(acts[0])
                    self.steps_run += 1
                    steps += 1
                    dev_steps += tag == "device"
                    break
            else:
                return steps, dev_steps, True
        return steps, dev_steps, not self.enabled()

    def follow(self, schedule: list[str]) -> int:
        """Take exactly the listed actions (``run`` extension); raise ScheduleDiverged."""
        dev_steps = 0
        for k, want in enumerate(schedule):
            for tag, a in self.enabled():
                if f"{tag}:{a!r}" == want:
                    self.take(tag, a)
                    dev_steps += tag == "device"
                    break
            else:
                raise ScheduleDiverged(f"schedule[{k}] {want} is not enabled")
        return dev_steps

    # -- name resolution (P5)
    def val(self, x: Any, i: int, field: str) -> int:
        if isinstance(x, Ref):
            if x.name not in self.names:
                raise FormatError(f"name {x.name!r} is unbound (the step that binds it failed)",
                                  where=_where(i, field))
            return self.names[x.name]
        return int(x)

    def uid(self, label: str) -> int | None:
        return self.users.get(label)

    # -- steps
    def step(self, st: Step) -> dict[str, Any]:
        """Run one step; returns its result record (E1)."""
        res: dict[str, Any] = {"step": st.index, "op": st.op}
        a = st.args
        seen = len(self.device.violations)
        try:
            if st.op != "open" and "user" in a and self.uid(a["user"]) is None:
                # the DRM file was closed: the VFS answers before the driver
                raise IoctlError("EBADF", f"user {a['user']} is closed")
            out = getattr(self, f"_op_{st.op}")(st, a)
            res["result"] = "ok"
            if out:
                res.update(out)
                if "_raise" in res:
                    res["result"] = res.pop("_raise")
        except IoctlError as e:
            res["result"] = e.name
        except ScheduleDiverged as e:
            res["result"] = "schedule-diverged"
            res["detail"] = str(e)
        if st.as_ is not None and res["result"] == "ok":
            self.names[st.as_] = res["dbc_id"] if st.op == "activate" else res["handle"]
        new = _violations(self.device)[seen:]
        if new:
            res["violations"] = new
        self.results.append(res)
        return res

    def _op_open(self, st: Step, a: Mapping[str, Any]) -> None:
        self.users[a["user"]] = self.host.open()

    def _op_close(self, st: Step, a: Mapping[str, Any]) -> None:
        _close(self, a["user"])

    def _op_activate(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        dbc = _activate(self, a["user"], a["queue_size"], a["options"])
        if a["workload"] is not None:
            self._start_workload(dbc, a["workload"], st.index)
        return {"dbc_id": dbc}

    def _start_workload(self, dbc: int, spec: Mapping[str, Any], i: int) -> None:
        ref, _fields, _req = WORKLOADS[spec["kind"]]
        mod, _, cls_name = ref.partition(":")
        cls = getattr(importlib.import_module(mod), cls_name)
        try:
            actor = cls(self.device, dbc, **spec["args"])
        except ArgumentError as e:
            raise FormatError(str(e), where=_where(i, "workload")) from None
        self.workloads.setdefault(dbc, []).append(actor)

    def _op_deactivate(self, st: Step, a: Mapping[str, Any]) -> None:
        _deactivate(self, a["user"], self.val(a["dbc_id"], st.index, "dbc_id"))

    def _op_create_bo(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        uid = self.uid(a["user"])
        handle = self.host.create_bo(uid, a["size"], a["pad"])
        segs = [[int(x), int(n)] for x, n in self.host.bo_segments(uid, handle)]
        return {"handle": int(handle), "segments": segs}

    def _op_attach_slice(self, st: Step, a: Mapping[str, Any]) -> None:
        from qaicmodel.spec import uapi

        h, i = a["hdr"], st.index
        entries = a["entries"]
        count = len(entries) if h["count"] is None else h["count"]
        handle = self.val(h["handle"], i, "hdr.handle")
        hdr = uapi.AttachSliceHdr(count=count, dbc_id=self.val(h["dbc_id"], i, "hdr.dbc_id"),
                                  handle=handle, dir=h["dir"], size=h["size"])
        ents = [_slice_entry(uapi, e) for e in entries[:count]]
        self.host.attach_slice(self.uid(a["user"]), hdr, ents)
        self.bo_dir[(a["user"], handle)] = h["dir"]

    def _exec_pairs(self, st: Step, a: Mapping[str, Any], key: str) -> list[Any]:
        out = []
        for k, e in enumerate(a[key]):
            handle = self.val(e["handle"], st.index, f"{key}[{k}].handle")
            d = e["dir"] if e["dir"] is not None else self.bo_dir.get((a["user"], handle), 0)
            out.append((handle, d, e["resize"]) if "resize" in e else (handle, d))
        return out

    def _op_execute(self, st: Step, a: Mapping[str, Any]) -> None:
        dbc = self.val(a["dbc_id"], st.index, "dbc_id")
        pairs = self._exec_pairs(st, a, "handles")
        if a["thread"] is not None:
            return self._begin(st, a, dbc, pairs, False)
        self.host.execute(self.uid(a["user"]), dbc, pairs)
        return None

    def _op_partial_execute(self, st: Step, a: Mapping[str, Any]) -> None:
        dbc = self.val(a["dbc_id"], st.index, "dbc_id")
        ents = self._exec_pairs(st, a, "entries")
        if a["thread"] is not None:
            return self._begin(st, a, dbc, ents, True)
        self.host.partial_execute(self.uid(a["user"]), dbc, ents)
        return None

    def _begin(self, st: Step, a: Mapping[str, Any], dbc: int, ents: list[Any],
               partial: bool) -> None:
        """Extension ``thread``: an ioctl thread enters EXECUTE_BO; its phases become host
        actions (``exec``) and ``join`` gives the ioctl's result."""
        begin = getattr(self.host, "execute_begin", None)
        if begin is None:
            raise NotModelledError("this host has no execute_begin (concurrent EXECUTE_BO "
                                   "threads)")
        self.threads[a["thread"]] = begin(self.uid(a["user"]), dbc, ents, partial)

    def _op_join(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        """Run the actors (default schedule) until the thread left EXECUTE_BO; its result."""
        tid = self.threads.get(a["thread"])
        if tid is None:
            raise FormatError(f"thread {a['thread']!r} did not start (its step failed) or was "
                              "joined already", where=_where(st.index, "thread"))

        def finished() -> bool:
            th = getattr(self.host, "threads", {}).get(tid)
            return th is None or th.phase.name == "DONE"

        _s, dev_steps, _q = self.drive(until=finished)
        if not finished():
            return {"result_detail": "the thread cannot finish", "device_steps": dev_steps,
                    "_raise": "EDEADLK"}
        del self.threads[a["thread"]]
        err = self.host.execute_result(tid)
        if err is not None:
            raise err
        return {"device_steps": dev_steps}

    def _op_wait(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        uid = self.uid(a["user"])
        dbc = self.val(a["dbc_id"], st.index, "dbc_id")
        handle = self.val(a["handle"], st.index, "handle")

        def done() -> bool:
            return bool(self.host.wait_check(uid, dbc, handle, a["timeout_ms"], a["pad"]))

        if done():
            return {"device_steps": 0}
        _steps, dev_steps, _q = self.drive(until=done)
        if not done():  # E4: nothing left that could complete it
            raise IoctlError("ETIMEDOUT", "no enabled action completes the BO")
        return {"device_steps": dev_steps}

    def _op_perf_stats(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        handles = [self.val(h, st.index, f"handles[{k}]") for k, h in enumerate(a["handles"])]
        ents = self.host.perf_stats(self.uid(a["user"]),
                                    self.val(a["dbc_id"], st.index, "dbc_id"), handles)
        return {"stats": [{"handle": int(e.handle),
                           "queue_level_before": int(e.queue_level_before),
                           "num_queue_element": int(e.num_queue_element)} for e in ents]}

    def _op_detach_slice(self, st: Step, a: Mapping[str, Any]) -> None:
        self.host.detach_slice(self.uid(a["user"]), self.val(a["handle"], st.index, "handle"),
                               a["pad"])

    def _bo_view(self, st: Step, a: Mapping[str, Any], length: int) -> Any:
        view = self.host.mmap_bo(self.uid(a["user"]), self.val(a["handle"], st.index, "handle"))
        size = len(view)
        if a["offset"] + length > size:
            # a C runner would touch memory past the mapping: SIGSEGV; the model says EFAULT
            raise IoctlError("EFAULT", f"[{a['offset']}, +{length}) is outside the {size}-byte BO")
        return view

    def _op_write_bo(self, st: Step, a: Mapping[str, Any]) -> None:
        data = a["hex"]
        view = self._bo_view(st, a, len(data))
        off = a["offset"]
        view[off:off + len(data)] = data if not hasattr(view, "dtype") else \
            _np_bytes(data)

    def _op_read_bo(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        n = a["length"]
        view = self._bo_view(st, a, n)
        off = a["offset"]
        data = bytes(view[off:off + n])
        return _with_expected_hex(data, a["expect_hex"])

    def _op_nsp(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        dbc = self.val(a["dbc_id"], st.index, "dbc_id")
        s = a["sem"]
        if not self.device.ch[dbc].active:
            raise FormatError(f"channel {dbc} is not active", where=_where(st.index, "dbc_id"))
        self.device.nsp_sem(dbc, s["index"], s["cmd"], s["val"])
        return {"value": int(self.device.ch[dbc].sems[s["index"]])}

    def _op_ddr_write(self, st: Step, a: Mapping[str, Any]) -> None:
        _ddr_check(st, a["addr"], len(a["hex"]))
        self.device.dev_mem.write(a["addr"], a["hex"])

    def _op_ddr_read(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        _ddr_check(st, a["addr"], a["length"])
        return _with_expected_hex(self.device.dev_mem.read(a["addr"], a["length"]),
                                  a["expect_hex"])

    def _op_run(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        if a["schedule"] is not None:
            dev_steps = self.follow(a["schedule"])
            return {"device_steps": dev_steps, "steps": len(a["schedule"])}
        steps, dev_steps, quiescent = self.drive(max_steps=a["max_steps"])
        out: dict[str, Any] = {"device_steps": dev_steps, "steps": steps, "quiescent": quiescent}
        stranded = self.stranded() if quiescent else []
        if stranded:
            out["stranded"] = stranded
        return out

    def stranded(self) -> list[int]:
        """Active channels with a response the host never drained (interrupt mode only).

        Invariant of the driver's interrupt protocol (qaic_data.c dbc_irq_threaded_fn,
        missed-event check): at quiescence no response is left in the ring.
        """
        if self.cfg.datapath_polling:
            return []
        return [i for i in range(self.device.num_dbc)
                if self.device.ch[i].active and self.device.ch[i].rsp_hp != self.device.ch[i].rsp_tp]

    def _op_ssr(self, st: Step, a: Mapping[str, Any]) -> None:
        _ssr(self, self.val(a["dbc_id"], st.index, "dbc_id"))

    def _op_dump(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        return dump_channel(self.device, self.val(a["dbc_id"], st.index, "dbc_id"))


def _np_bytes(data: bytes) -> Any:
    import numpy as np

    return np.frombuffer(data, dtype=np.uint8)


def _with_expected_hex(data: bytes, expected: bytes | None) -> dict[str, Any]:
    out: dict[str, Any] = {"hex": data.hex()}
    if expected is not None and expected != data:
        out["hex_mismatch"] = True
    return out


def _ddr_check(st: Step, addr: int, length: int) -> None:
    if addr + length > 1 << 64:
        raise FormatError(f"[0x{addr:x}, +{length}) runs past the 64-bit device address space",
                          where=_where(st.index, "addr"))


def _slice_entry(uapi: Any, e: Mapping[str, Any]) -> Any:
    sems = {k: uapi.Sem(**e[k]) for k in ("sem0", "sem1", "sem2", "sem3")}
    rest = {k: v for k, v in e.items() if k not in sems}
    return uapi.SliceEntry(**rest, **sems)


def dump_channel(device: Any, dbc: int) -> dict[str, Any]:
    """``dump`` (scenario.md): registers, nelem, both rings as hex, the 32 semaphores."""
    from qaicmodel.spec.wire import REQ_SIZE, RSP_SIZE

    ch = device.ch[dbc]
    nelem = int(ch.nelem) if ch.active else 0
    out: dict[str, Any] = {
        "regs": {"req_hp": int(ch.req_hp), "req_tp": int(ch.req_tp),
                 "rsp_hp": int(ch.rsp_hp), "rsp_tp": int(ch.rsp_tp)},
        "nelem": nelem, "req": [], "rsp": [], "sems": [int(s) for s in ch.sems],
    }
    if nelem:
        req = device.host_mem.read(ch.req_q, REQ_SIZE * nelem)
        rsp = device.host_mem.read(ch.rsp_q, RSP_SIZE * nelem)
        out["req"] = [req[k:k + REQ_SIZE].hex() for k in range(0, len(req), REQ_SIZE)]
        out["rsp"] = [rsp[k:k + RSP_SIZE].hex() for k in range(0, len(rsp), RSP_SIZE)]
    return out


# -- the control-plane seam (E5): activate, deactivate, close and ssr travel as NNC / SSR
# messages through qaicmodel.spec.control (QSM + the driver's control path).


def _activate(r: Runner, user: str, queue_size: int, options: int) -> int:
    from qaicmodel.spec.control import scenario_activate

    return scenario_activate(r, user, queue_size, options)


def _deactivate(r: Runner, user: str, dbc: int) -> None:
    from qaicmodel.spec.control import scenario_deactivate

    scenario_deactivate(r, user, dbc)


def _close(r: Runner, user: str) -> None:
    from qaicmodel.spec.control import scenario_close

    scenario_close(r, user)


def _ssr(r: Runner, dbc: int) -> None:
    from qaicmodel.spec.control import scenario_ssr

    scenario_ssr(r, dbc)


# ---------------------------------------------------------------------------
# Report


@attrs.frozen
class Report:
    """What a scenario run returned (scenario.md "Report")."""

    results: list[dict[str, Any]]
    first_mismatch: dict[str, Any] | None
    violations: list[dict[str, str]] = attrs.field(factory=list)

    @property
    def exit_code(self) -> int:
        return 0 if self.first_mismatch is None else 1

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": RESULT_FORMAT, "results": self.results,
                               "first_mismatch": self.first_mismatch}
        if self.violations:
            out["violations"] = self.violations
        return out

    def text(self) -> str:
        lines = []
        for r in self.results:
            extra = " ".join(f"{k}={_short(v)}" for k, v in r.items()
                             if k not in ("step", "op", "result", "expect"))
            exp = f"(expect {r['expect']})" if "expect" in r else ""
            lines.append(f"{r['step']:>4}  {r['op']:<16} {r['result']:<10} {exp:<20} {extra}"
                         .rstrip())
        for v in self.violations:
            lines.append(f"violation {v['rule']}: {v['message']}")
        if self.first_mismatch is None:
            lines.append(f"ok: {len(self.results)} steps, every expect held")
        else:
            m = self.first_mismatch
            lines.append(f"MISMATCH at step {m['step']} ({m['op']}): expected {m['expect']}, "
                         f"got {m['result']}")
        return "\n".join(lines)


def _short(v: Any) -> str:
    s = json.dumps(v, separators=(",", ":"))
    return s if len(s) <= 60 else s[:57] + "..."


def _mismatch(st: Step, res: dict[str, Any]) -> dict[str, Any] | None:
    """E2: the step's expect (if any) against its result."""
    got = res["result"]
    if res.get("violations"):
        return {"step": st.index, "op": st.op, "expect": st.expect or "ok",
                "result": f"violation {res['violations'][0]['rule']}"}
    if res.get("stranded"):
        return {"step": st.index, "op": st.op, "expect": st.expect or "ok",
                "result": f"stranded response on dbc {res['stranded'][0]}"}
    if got == "schedule-diverged" or res.get("hex_mismatch"):
        return {"step": st.index, "op": st.op, "expect": st.expect or "ok",
                "result": "hex differs" if res.get("hex_mismatch") else got}
    if st.expect is not None and got != st.expect:
        return {"step": st.index, "op": st.op, "expect": st.expect, "result": got}
    return None


def _violations(device: Any) -> list[dict[str, str]]:
    out = []
    for v in getattr(device, "violations", []):
        rule = getattr(v, "rule", None) or (v[0] if isinstance(v, tuple) else str(v))
        msg = getattr(v, "message", None) or (v[1] if isinstance(v, tuple) and len(v) > 1 else "")
        out.append({"rule": str(rule), "message": str(msg)})
    return out


def run_scenario(obj_or_path: Any, *, host_cls: type | None = None) -> Report:
    """Parse and run a scenario (path, bytes, dict or :class:`Scenario`); rules E1-E5."""
    sc = load(obj_or_path)
    runner = Runner(sc.device, host_cls=host_cls)
    mismatch = None
    for st in sc.steps:
        res = runner.step(st)
        if st.expect is not None:
            res["expect"] = st.expect
        mismatch = _mismatch(st, res)
        if mismatch is not None:
            break
    return Report(results=runner.results, first_mismatch=mismatch,
                  violations=_violations(runner.device))


# ---------------------------------------------------------------------------
# CLI


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="scenario file (qaicmodel-scenario/1)")
    p.add_argument("--json", action="store_true", help="print the qaicmodel-result/1 report")
    p.add_argument("--host", default=None, metavar="MODULE:CLASS",
                   help=f"host implementation to run (default {DEFAULT_HOST})")


def run_cli(args: argparse.Namespace) -> int:
    host_cls = load_host(args.host) if args.host else None
    report = run_scenario(args.file, host_cls=host_cls)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report.text())
    return report.exit_code
