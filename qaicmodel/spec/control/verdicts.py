"""The control plane's own consistency checks, as verdicts (findings with stable rule ids).

Rules (control-path.md §1-2; the invariants a conforming control host keeps with the
QSM it talks to -- the reference client, manage.ControlClient, keeps every one of them
when the device behaves):

  CTRL-OWNER        a channel the host holds for user U is active in the QSM for U
                    (qaic_control.c save_dbc_buf / release_dbc vs the QSM's activation);
  CTRL-HOST-ONLY    the host holds no channel the QSM does not have active (nor under SSR);
  CTRL-QSM-ONLY     every channel active in the QSM is held by the host (else it is
                    stranded on the device until terminate or reset);
  CTRL-BRIDGE       every channel active in the QSM is active on the DMA Bridge;
  CTRL-FIFO         a held channel has a FIFO chunk, and no two channels share one;
  CTRL-FIFO-LEAK    no FIFO chunk was allocated and then forgotten (``leaked_bufs``);
  CTRL-WIRE         every message the host sent is a well-formed host->device NNC
                    message (nnc.parse: no violation other than a zero CRC);
  CTRL-SEQ          sequence numbers on the wire rise (nnc.seq_follows);
  CTRL-QSM          the QSM recorded no rule breach by the host (QSM-ISOLATION, ...);
  CTRL-DRIVER       a driver quirk the client recorded (``violations``: DRV-*, HOST-*),
                    carried through with its own rule id in ``state["rule"]``.

Each verdict is a :class:`qaicmodel.findings.Finding`; ``state["faults"]`` lists the
control faults that had fired (:mod:`faults`), so a caller can tell a host's own breach
from the consequence of a hostile device.  :class:`Tracker` yields each verdict once.
"""

from __future__ import annotations

import functools
from typing import Any

from qaicmodel.findings import Finding
from qaicmodel.spec.control import nnc

__all__ = ["RULES", "check", "Tracker"]

RULES: dict[str, str] = {
    "CTRL-OWNER": "host and QSM disagree on who owns a channel",
    "CTRL-HOST-ONLY": "the host holds a channel the QSM does not have active",
    "CTRL-QSM-ONLY": "a channel active in the QSM is unknown to the host",
    "CTRL-BRIDGE": "a channel active in the QSM is not active on the DMA Bridge",
    "CTRL-FIFO": "a held channel has no FIFO chunk, or two channels share one",
    "CTRL-FIFO-LEAK": "a FIFO chunk was allocated and forgotten",
    "CTRL-WIRE": "the host sent a malformed NNC message",
    "CTRL-SEQ": "the host's sequence numbers do not rise",
    "CTRL-QSM": "the QSM recorded a rule breach by the host",
    "CTRL-DRIVER": "the control client recorded a driver quirk",
}
_SRC = "control-path.md §1-2; qaic_control.c (7.2)"


def _f(rule: str, message: str, faults: list[str], **where: Any) -> Finding:
    return Finding(rule, message, _SRC, where=where, state={"faults": faults})


#: ``check``'s default ``seq_before``: find it by reading the log from its start
_SCAN: Any = object()


def check(plane: Any, *, wire_from: int = 0, seq_before: Any = _SCAN) -> list[Finding]:
    """Every verdict the plane's state and logs give now (``wire_from``: first nnc_log
    entry to read).  ``seq_before``: the sequence number of the last message sent before
    ``wire_from`` (None: there is none), when the caller knows it (:class:`Tracker`), so
    the entries before ``wire_from`` need not be read again."""
    fired = getattr(plane, "fault_log", None)
    faults = sorted({name for name, _d in fired}) if fired else []  # none fired: [] at once
    out: list[Finding] = []
    client, qsm = plane.client, plane.qsm
    act, bridge = qsm.act, plane.device.ch
    for i, d in enumerate(client.dbc):
        a = act.get(i)
        held = d.in_use
        if held and a is None and i not in qsm.ssr:
            out.append(_f("CTRL-HOST-ONLY", f"host holds dbc {i}; QSM has it idle", faults, dbc=i))
        if a is not None:
            if held and d.usr is not None and a.owner[1] != d.usr.handle:
                out.append(
                    _f(
                        "CTRL-OWNER",
                        f"dbc {i}: host owner {d.usr.handle}, QSM owner {a.owner[1]}",
                        faults,
                        dbc=i,
                    )
                )
            if not held:
                out.append(
                    _f(
                        "CTRL-QSM-ONLY",
                        f"dbc {i} active in the QSM, not held by the host",
                        faults,
                        dbc=i,
                    )
                )
            if not bridge[i].active:
                out.append(
                    _f("CTRL-BRIDGE", f"dbc {i} active in QSM, idle on the bridge", faults, dbc=i)
                )
        if held and d.buf is None:
            out.append(_f("CTRL-FIFO", f"dbc {i} held without a FIFO chunk", faults, dbc=i))
    bufs = [d.buf for d in client.dbc if d.buf is not None]
    if len(bufs) != len(set(bufs)):
        out.append(_f("CTRL-FIFO", "two channels share a FIFO chunk", faults))
    for b in getattr(client, "leaked_bufs", []):
        out.append(
            _f("CTRL-FIFO-LEAK", f"FIFO chunk 0x{b:x} allocated and forgotten", faults, addr=b)
        )
    last: int | None = None
    log, start = plane.nnc_log, 0
    if seq_before is not _SCAN:
        last, start = seq_before, wire_from
    for k in range(start, len(log)):
        kind, msg = log[k]
        if kind != "tx":
            continue
        if len(msg) >= 12:
            seq = int.from_bytes(msg[8:12], "little")
            if last is not None and k >= wire_from and not nnc.seq_follows(last, seq):
                out.append(_f("CTRL-SEQ", f"sequence number {seq} after {last}", faults, seq=seq))
            last = seq
        if k < wire_from:
            continue
        bad = _wire_breach(bytes(msg))
        if bad:
            out.append(_f("CTRL-WIRE", f"message {k}: {bad[0]}: {bad[1]}", faults, entry=k))
    for v in qsm.violations:
        out.append(_f("CTRL-QSM", f"{v.rule}: {v.message}", faults, qsm_rule=v.rule))
    for v in getattr(client, "violations", []):
        out.append(
            Finding(
                "CTRL-DRIVER",
                f"{v.rule}: {v.message}",
                v.source,
                v.where,
                {"rule": v.rule, "faults": faults},
            )
        )
    return out


@functools.lru_cache(maxsize=4096)
def _wire_breach(msg: bytes) -> tuple[str, str] | None:
    """CTRL-WIRE: the first rule (id, message) a host->device message breaks, a zero CRC
    aside (cached: nnc.parse is a pure function of the bytes)."""
    p = nnc.parse(msg, "h2d")
    bad = [v for v in p.violations if not (v.rule == "NNC-CRC" and p.header.get("crc32") == 0)]
    return (bad[0].rule, bad[0].message) if bad else None


class Tracker:
    """Yield each verdict of a plane once (``new()``), in the order they appear."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()
        self._wire = 0
        self._seq: int | None = None  # check's seq_before for entry self._wire

    def new(self, plane: Any) -> list[Finding]:
        if plane is None:
            return []
        log = plane.nnc_log
        if len(log) < self._wire:  # a log started afresh: check reads it from its start
            found = check(plane, wire_from=self._wire)
            self._wire, self._seq = 0, None
        else:
            found = check(plane, wire_from=self._wire, seq_before=self._seq)
        for k in range(self._wire, len(log)):  # the last sequence number, as check reads it
            kind, msg = log[k]
            if kind == "tx" and len(msg) >= 12:
                self._seq = int.from_bytes(msg[8:12], "little")
        self._wire = len(log)
        out = []
        for f in found:
            key = (f.rule, f.message)
            if key not in self._seen:
                self._seen.add(key)
                out.append(f)
        return out
