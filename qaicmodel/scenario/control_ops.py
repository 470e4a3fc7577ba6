"""Scenario steps that reach the control plane: their fields and their execution.

Extensions of ``qaicmodel-scenario/1`` (docs/formats-extensions.md "Control steps"):

  manage         a raw DRM_IOCTL_QAIC_MANAGE: ``hex`` is the user buffer (uapi
                 transactions), ``len`` (default: its size) and ``count`` (default: the
                 transactions found walking the ``{type u32, len u32}`` headers) fill
                 ``qaic_manage_msg``; the result is the errno (``expect``) and, on ok or
                 ECANCELED, the buffer the driver copied back (``hex``, ``len``, ``count``,
                 ``transactions``); ``expect_hex`` compares it (``hex_mismatch``).
  control_fault  arms a device-side control fault from this step on
                 (qaicmodel.spec.control.faults: ``fault`` name, ``seed``, ``at`` = which
                 eligible exchange, ``repeat``); faults armed before the control plane
                 exists apply to its first boot too (Sahara faults).
  ras            the device sends one RAS report on QAIC_STATUS: ``err_type``, ``source``
                 (struct ras_data defaults otherwise), or raw ``hex``.
  reset          SoC reset: every activation is lost and the device boots again (Sahara);
                 the result is the boot's (``ok``, or ``EIO`` when boot fails).

Execution rules (:class:`ControlSteps`, mixed into the scenario Runner):

  K1  the control plane is made on the first control step with the runner's control
      host (``--control-host``; default the reference, manage.ControlClient) and the
      faults armed so far (``--control-fault`` and ``control_fault`` steps);
  K2  after every step the control plane's new verdicts (spec/control/verdicts.py) go in
      the step's result as ``control_verdicts`` (reported; not a mismatch by themselves).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

from qaicmodel.errors import ArgumentError, FormatError, IoctlError
from qaicmodel.scenario.values import (
    _REQ,
    _USER,
    U32,
    FieldSpec,
    _bool,
    _hex,
    _int,
    _text,
    _where,
)

__all__ = ["CONTROL_OPS", "ControlSteps", "check_control_step", "walk_count"]


def _fault_name(v: Any, where: str) -> str:
    from qaicmodel.spec.control import faults

    name = _text(v, where)
    if name not in faults.FAULTS:
        raise FormatError(
            f"unknown control fault {name!r} (known: {', '.join(faults.FAULTS)})", where=where
        )
    return name


def _count(v: Any, where: str) -> int:
    n = _int(v, where)
    if n < 0:
        raise FormatError(f"expected a number >= 0, got {n}", where=where)
    return n


#: op -> (fields, whether ``as`` may bind a result): merged into format.OPS.
CONTROL_OPS: dict[str, tuple[tuple[FieldSpec, ...], bool]] = {
    "manage": (
        (
            _USER,
            FieldSpec("hex", _hex, _REQ),
            FieldSpec("len", U32, None),
            FieldSpec("count", U32, None),
            FieldSpec("expect_hex", _hex, None),
        ),
        False,
    ),
    "control_fault": (
        (
            FieldSpec("fault", _fault_name, _REQ),
            FieldSpec("seed", _count, 0),
            FieldSpec("at", _count, 0),
            FieldSpec("repeat", _bool, False),
        ),
        False,
    ),
    "ras": (
        (
            FieldSpec("err_type", U32, 0),
            FieldSpec("source", U32, 2),
            FieldSpec("hex", _hex, None),
        ),
        False,
    ),
    "reset": ((), False),
}


def check_control_step(i: int, op: str, args: Mapping[str, Any]) -> None:
    """Parse-time checks of the control steps beyond their fields."""
    if op == "ras" and args["hex"] is not None and len(args["hex"]) > 4096:
        raise FormatError("a RAS report is at most 4096 bytes here", where=_where(i, "hex"))


def walk_count(data: bytes) -> int:
    """Transactions found walking ``{type u32, len u32}`` headers (a len < 8 stops)."""
    n = off = 0
    while off + 8 <= len(data):
        ln = struct.unpack_from("<I", data, off + 4)[0]
        n += 1
        if ln < 8:
            break
        off += ln
    return n


class ControlSteps:
    """The control-plane seam of the scenario Runner (rules E5, K1, K2)."""

    device: Any
    host: Any
    cfg: Any
    owner: dict[int, str]
    workloads: dict[int, list[Any]]
    users: dict[str, int | None]
    uid: Any  # Runner.uid(label) -> host user id

    control: Any = None
    control_host: Any = None
    pending_faults: list[Any]

    def _init_control(self, control_host: Any, faults: Any) -> None:
        from qaicmodel.spec.control import faults as fmod
        from qaicmodel.spec.control.protocol import load_control_host
        from qaicmodel.spec.control.verdicts import Tracker

        self.control = None
        self.control_host = None if control_host is None else load_control_host(control_host)
        self.pending_faults = []
        for f in faults or ():
            if isinstance(f, str):
                name, seed, at, repeat = fmod.parse_spec(f)
                f = fmod.Injector(name, seed, at=at, repeat=repeat)
            self.pending_faults.append(f)
        self._verdicts = Tracker()

    # -- the control-plane seam (E5): activate, deactivate, close and ssr travel as NNC /
    # SSR messages through qaicmodel.spec.control.plane (QSM + the driver's control path)
    def control_plane(self) -> Any:
        """The runner's :class:`~qaicmodel.spec.control.plane.ControlPlane` (made on first use)."""
        if self.control is None:
            from qaicmodel.spec.control.plane import ControlPlane

            self.control = ControlPlane(
                self.device,
                self.host,
                sg_max_segment=self.cfg.sg_max_segment,
                kernel=getattr(self.cfg, "kernel", None),
                control_host=self.control_host,
                faults=self.pending_faults,
            )
        return self.control

    def control_verdicts(self) -> list[Any]:
        """The control plane's verdicts not reported before (spec/control/verdicts.py);
        [] while no control step ran.  The hook ``conform`` reads (notes/conform-api.md)."""
        if self.control is None:
            return []
        found: list[Any] = self._verdicts.new(self.control)
        return found

    def _forget(self, dbc: int) -> None:
        self.workloads.pop(dbc, None)
        self.owner.pop(dbc, None)

    def control_activate(self, user: str, queue_size: int, options: int) -> int:
        """``activate``: MANAGE with one ACTIVATE_FROM_USR; returns the dbc_id."""
        cp = self.control_plane()
        dbc: int = cp.activate(cp.user_for(self.uid(user)), queue_size, options)
        self.owner[dbc] = user
        return dbc

    def control_deactivate(self, user: str, dbc: int) -> None:
        """``deactivate``: PASSTHROUGH{DEACTIVATE} + DEACTIVATE_FROM_USR (EINVAL/EPERM first)."""
        cp = self.control_plane()
        cp.deactivate(cp.user_for(self.uid(user)), dbc)
        self._forget(dbc)

    def control_close(self, user: str) -> None:
        """``close``: terminate + release_dbc (control plane), then the data path's close."""
        cp = self.control_plane()
        uid = self.uid(user)
        cp.close(cp.user_for(uid))
        self.host.close(uid)
        for dbc in sorted(d for d, u in self.owner.items() if u == user):
            self._forget(dbc)
        self.users[user] = None

    def control_ssr(self, dbc: int) -> None:
        """``ssr``: the workload on ``dbc`` crashes and every SSR stage runs."""
        cp = self.control_plane()
        if dbc not in cp.qsm.act:
            raise ArgumentError(f"ssr: no workload is active on channel {dbc}")
        cp.ssr(dbc)
        self._forget(dbc)
        if cp.resets:  # a failed crashdump reset the SoC: every channel is gone
            self._forget_lost()

    def _forget_lost(self) -> None:
        cp = self.control
        for d in list(self.owner):
            if d not in cp.qsm.act:
                self._forget(d)

    # -- the control steps ------------------------------------------------------------
    def _op_manage(self, st: Any, a: Mapping[str, Any]) -> dict[str, Any]:
        from qaicmodel.spec.control import manage

        cp = self.control_plane()
        data = a["hex"]
        length = len(data) if a["len"] is None else a["len"]
        count = walk_count(data) if a["count"] is None else a["count"]
        r = cp.manage(cp.user_for(self.uid(a["user"])), length, count, data)
        out: dict[str, Any] = {"len": r.len, "count": r.count}
        if r.result in ("ok", "ECANCELED"):
            out["hex"] = r.data.hex()
            out["transactions"] = [
                {k: (v.hex() if isinstance(v, bytes) else v) for k, v in t.items()}
                for t in manage.parse_user_result(r.data, r.count)
            ]
            if a["expect_hex"] is not None and a["expect_hex"] != r.data:
                out["hex_mismatch"] = True
        for d in [d for d in self.owner if not cp.client.dbc[d].in_use]:
            self._forget(d)  # deactivated (or lost) through the raw message
        if r.result != "ok":
            out["_raise"] = r.result
        return out

    def _op_control_fault(self, st: Any, a: Mapping[str, Any]) -> dict[str, Any]:
        from qaicmodel.spec.control import faults

        inj = faults.Injector(a["fault"], a["seed"], at=a["at"], repeat=a["repeat"])
        if self.control is None:
            self.pending_faults.append(inj)
        else:
            self.control.add_fault(inj)
        return {"fault": inj.name, "channel": inj.channel}

    def _op_ras(self, st: Any, a: Mapping[str, Any]) -> dict[str, Any]:
        from qaicmodel.spec.control.ras import RasMsg

        cp = self.control_plane()
        if a["hex"] is not None:
            data = a["hex"]
        else:
            try:
                data = RasMsg(err_type=a["err_type"], source=a["source"]).pack()
            except ArgumentError as e:
                raise FormatError(str(e), where=_where(st.index, "err_type")) from None
        resets = cp.resets
        cp.ras_event(data)
        if cp.resets != resets:
            self._forget_lost()
        return {
            "ce_count": cp.ras.ce_count,
            "ue_count": cp.ras.ue_count,
            "ue_nf_count": cp.ras.ue_nf_count,
            "dropped": cp.ras.dropped,
            "resets": cp.resets,
        }

    def _op_reset(self, st: Any, a: Mapping[str, Any]) -> dict[str, Any]:
        cp = self.control_plane()
        ret = cp.reset()
        self._forget_lost()
        if ret != "ok":
            raise IoctlError(ret, "the device did not boot after the reset")
        return {"dev_state": cp.dev_state.name}
