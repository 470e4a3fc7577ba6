"""conform's control-plane moves and the verdicts they bring (issue #12 item 3).

Generator (a mixin of :class:`qaicmodel.oracle.explore.Explorer`, weights in
:data:`CONTROL_WEIGHTS`):

  manage         a raw DRM_IOCTL_QAIC_MANAGE (scenario op ``manage``): valid STATUS,
                 ACTIVATE and DEACTIVATE messages, several transactions in one message,
                 and malformed ones (a header length below 8, an unknown type, count 0,
                 ``len`` past the buffer or above 4096, a DEACTIVATE of a channel out of
                 range, a passthrough of random bytes, a DMA_XFER from address 0);
                 qaic_control.c qaic_manage_ioctl / encode_message (7.2);
  control_fault  a device-side fault of :data:`qaicmodel.spec.control.faults.FAULTS`
                 (name, ``seed``, ``at``, ``repeat`` drawn from the episode's PRNG), then a
                 call that makes the exchange it acts on (STATUS, activate, RAS, reset);
  ras            one RAS report (an error type and source, or a few raw bytes);
  reset          a SoC reset (every activation is lost; the device boots again);
  import_bo      a PRIME import of an odd size (not a page multiple; at most a few
                 pages, so the model stays fast), IOMMU merging on or off, then a slice of
                 its bytes (memory.import_backing).

Verdicts (:func:`judge`, called by :class:`qaicmodel.oracle.pair.Pair` after every step):
the control plane's verdicts of the step (``control_verdicts``, rule ids of
:data:`qaicmodel.spec.control.verdicts.RULES`) become conform verdicts:

  V1  ``CTRL-DRIVER`` (a quirk of the real driver the client recorded) is a driver
      finding (conform's DRIVER_FINDINGS), never the host's failure;
  V2  a verdict with a control fault fired (``state["faults"]``) that the reference side
      also gives (the errno shadow's control plane, or the differential reference) is
      the driver's reaction to a hostile device: a driver finding ``CTRL-FAULT``;
  V3  any other verdict is a failure of the host under test with the verdict's rule id.
"""

from __future__ import annotations

import random
import struct
from typing import TYPE_CHECKING, Any

__all__ = ["ControlMoves", "CONTROL_WEIGHTS", "CONTROL_FINDINGS", "judge", "fault_specs"]

#: move name -> weight in Explorer.next_move (the other moves weigh ~24 in all)
CONTROL_WEIGHTS: dict[str, float] = {
    "_m_manage": 0.5,
    "_m_control_fault": 0.35,
    "_m_ras": 0.15,
    "_m_reset": 0.06,
    "_m_import": 0.3,
}

#: the invariant of rule V2 (a driver finding, see conform.DRIVER_FINDINGS)
CONTROL_FINDINGS: dict[str, str] = {
    "CTRL-DRIVER": "a quirk of the real driver's control path the reference control client "
    "records (DRV-MANAGE-SHORT-TRANS, DRV-ORPHANED-DEACTIVATE, HOST-DBC-REASSIGNED; "
    "spec/control/verdicts.py, qaic_control.c 7.2)",
    "CTRL-FAULT": "the driver's reaction to a control fault of the device (a verdict the "
    "reference control client gives too under the same fault; spec/control/faults.py)",
}

_TH = struct.Struct("<II")
#: a run to quiescence (nothing in flight) before a reset
_QUIESCE: dict[str, Any] = {"op": "run", "max_steps": 5000}


def fault_specs(specs: Any) -> tuple[str, ...]:
    """``--control-fault`` values checked (``NAME[:SEED[:AT]][+]``; ArgumentError)."""
    from qaicmodel.spec.control import faults

    out = tuple(specs or ())
    for s in out:
        faults.parse_spec(s)
    return out


class ControlMoves:
    """The control-plane moves of the Explorer (module docstring)."""

    if TYPE_CHECKING:
        rng: random.Random
        users: list[str]
        chans: list[dict[str, Any]]
        bos: list[dict[str, Any]]
        pending: list[Any]
        cfg: Any
        last_wait: str | None

        def _name(self, prefix: str) -> str: ...
        def _gone(self, chans: list[dict[str, Any]]) -> None: ...
        def _attach_whole(self, user: str, b: dict[str, Any], dbc: Any) -> dict[str, Any]: ...

    def _m_manage(self) -> tuple[dict[str, Any], int]:
        from qaicmodel.spec.control import manage

        r = self.rng
        user = r.choice(self.users)
        kind = r.choice(
            ["status", "status", "activate", "deactivate", "two", "short", "unknown",
             "count0", "past", "big", "passthrough", "dma"]
        )  # fmt: skip
        st: dict[str, Any] = {"op": "manage", "user": user}
        if kind == "status":
            st["hex"] = manage.usr_status().hex()
        elif kind == "activate":  # a channel the explorer does not track (close ends it)
            st["hex"] = manage.usr_activate(r.choice([4, 16])).hex()
        elif kind == "deactivate":
            st["hex"] = manage.usr_deactivate(r.choice([self.cfg.num_dbc, 16, 99])).hex()
        elif kind == "two":
            st["hex"] = (manage.usr_status() + manage.usr_status()).hex()
        elif kind == "short":
            st["hex"] = manage.usr_status(r.choice([0, 4])).hex()
        elif kind == "unknown":
            st["hex"] = _TH.pack(r.choice([0, 2, 0xFF]), 8).hex()
        elif kind == "count0":
            st.update(hex=manage.usr_status().hex(), count=0)
        elif kind == "past":
            st.update(hex=manage.usr_status().hex(), len=r.choice([16, 64]))
        elif kind == "big":
            st.update(hex=manage.usr_status().hex(), len=4097)
        elif kind == "passthrough":
            st["hex"] = manage.usr_passthrough(bytes(r.randrange(256) for _ in range(8))).hex()
        else:
            st["hex"] = manage.usr_dma_xfer(r.randrange(4), 0, r.choice([0, 4096])).hex()
        return st, 0

    def _m_control_fault(self) -> tuple[dict[str, Any], int]:
        from qaicmodel.spec.control import faults

        r = self.rng
        channel = r.choices(["nnc", "ras", "sahara"], weights=[6, 2, 1])[0]
        name = r.choice(faults.names(channel))
        st: dict[str, Any] = {
            "op": "control_fault",
            "fault": name,
            "seed": r.randrange(1 << 16),
            "at": r.choice([0, 0, 0, 1, 2]),
        }
        if r.random() < 0.15:
            st["repeat"] = True
        user = r.choice(self.users)
        if channel == "nnc":
            follow = r.choice(["status", "status", "activate"])
            if follow == "activate":
                q = r.choice([4, 16])
                nxt = {"op": "activate", "user": user, "queue_size": q, "as": self._name("d")}
            else:
                nxt = self._m_manage_status(user)
            self.pending = [nxt, self._m_manage_status(user)]
        elif channel == "ras":
            self.pending = [dict(_QUIESCE), self._m_ras()[0]]
        elif self._may_reset():  # Sahara runs at boot: a reset makes the exchange
            self.pending = [dict(_QUIESCE), {"op": "reset"}]
        return st, 0

    def _m_manage_status(self, user: str) -> dict[str, Any]:
        from qaicmodel.spec.control import manage

        return {"op": "manage", "user": user, "hex": manage.usr_status().hex()}

    def _m_ras(self) -> tuple[dict[str, Any], int]:
        """A RAS report (after a quiescent run: a fatal one resets the SoC, see _m_reset)."""
        r = self.rng
        if r.random() < 0.2:
            return {"op": "ras", "hex": bytes(r.randrange(256) for _ in range(16)).hex()}, 0
        err = r.choice([0, 0, 1, 2, 3, 9] if self._may_reset() else [0, 0, 2, 3, 9])  # 1 = UE
        return {"op": "ras", "err_type": err, "source": r.randrange(4)}, 0

    def _may_reset(self) -> bool:
        """No BO sliced, no echo wait left unfinished: nothing can be in flight.  (A SoC
        reset with a BO in flight makes the model's device fault on the unmapped ring:
        DmaFault from Device.step, a model limit these moves found; see CHANGELOG.)"""
        return not any(b["dbc"] is not None for b in self.bos) and self.last_wait in (None, "ok")

    def _m_reset(self) -> tuple[dict[str, Any], int]:
        """A SoC reset, after a quiescent run: a reset with a BO in flight makes the model's
        device fault on the unmapped ring (DmaFault, a model limit found by this move)."""
        if not self._may_reset():
            return self._m_manage()
        self.pending = [{"op": "reset"}]
        return dict(_QUIESCE), 0

    def _m_import(self) -> tuple[dict[str, Any], int]:
        r = self.rng
        user = r.choice(self.users)
        size = r.choice([1, 100, 4095, 4097, 5000, 3 * 4096 + 7, 8191])
        st: dict[str, Any] = {
            "op": "import_bo",
            "user": user,
            "size": size,
            # merged imports ignore sg_max_segment (one segment of the whole size), which
            # ImplHost's element split does not expect: only without a segment limit
            "merge": self.cfg.sg_max_segment is None and r.random() < 0.5,
            "as": self._name("i"),
        }
        if r.random() < 0.3:  # the exporter's own scatter entries (uniform but the last)
            n = -(-size // 4096)
            st["entries"] = [4096] * (n - 1) + [size - 4096 * (n - 1)]
        chans = [c for c in self.chans if c["user"] == user]
        if chans and r.random() < 0.7:
            b = {"name": st["as"], "size": size}
            att = self._attach_whole(user, b, r.choice(chans)["name"])
            dbc = att["hdr"]["dbc_id"]
            self.pending = [
                att,
                {"op": "execute", "user": user, "dbc_id": dbc, "handles": [st["as"]]},
                {"op": "wait", "user": user, "dbc_id": dbc, "handle": st["as"]},
            ]
        return st, 0

    def _observe_control(self, step: dict[str, Any], res: dict[str, Any]) -> None:
        """What a control step changed: a reset (or a RAS that reset the SoC) loses every
        activation.  (Imported BOs stay with their own moves: the others want pages.)"""
        op = step["op"]
        if op == "reset" or (op == "ras" and res.get("resets")):
            self._gone(list(self.chans))


# ---------------------------------------------------------------------------
# Verdicts (V1-V3)


def judge(
    verdicts: list[dict[str, Any]], ref_rules: set[str] | None
) -> list[tuple[str, str, dict[str, Any], bool]]:
    """(invariant, message, where, driver finding?) for each control verdict of a step.

    ``ref_rules``: the verdict rules the reference side gave so far (None: the host under
    test is the reference, so any faulted verdict is the driver's reaction)."""
    out = []
    for v in verdicts:
        rule, msg = v["rule"], v["message"]
        where = {k: v["where"][k] for k in ("dbc", "seq", "entry") if k in (v.get("where") or {})}
        state = v.get("state") or {}
        if rule == "CTRL-DRIVER":
            out.append((rule, msg, where, True))
        elif state.get("faults") and (ref_rules is None or rule in ref_rules):
            faults = ", ".join(state["faults"])
            out.append(("CTRL-FAULT", f"{rule} under fault {faults}: {msg}", where, True))
        else:
            out.append((rule, msg, where, False))
    return out


# ---------------------------------------------------------------------------
# The command's side: checking the arguments, reading a reproducer's note


def probe_control(control_host: Any, faults: Any, kernel: str | None = None) -> None:
    """Check ``--control-host`` and ``--control-fault`` before a run (ArgumentError, one
    line): the reference loads, the specs parse, the control host's constructor runs."""
    from qaicmodel.scenario.runner import Runner
    from qaicmodel.spec.dbc.config import DeviceConfig

    fault_specs(faults)
    if control_host is None:
        return
    Runner(DeviceConfig(kernel=kernel), control_host=control_host).control_plane()


def control_of_note(note: str) -> tuple[str | None, tuple[str, ...]]:
    """The ``--control-host`` and ``--control-fault``s a reproducer's note records."""
    import re

    def strip(v: str) -> str:
        return v[:-1] if v.endswith(":") else v

    m = re.search(r"--control-host (\S+)", note)
    faults = tuple(strip(v) for v in re.findall(r"--control-fault (\S+)", note))
    return (strip(m.group(1)) if m else None), faults
