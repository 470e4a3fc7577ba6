"""The trace checker's host actions (C3 of :mod:`qaicmodel.oracle.check`): ``writel``,
``req``, ``activate``, ``deactivate``, ``irq_disable``/``irq_enable`` and the BAR2 accesses
that hit no register.  A host action must be legal in every possible device state; the
elements a REQ_TP write publishes are checked against the element rules (wire.py)."""

from __future__ import annotations

from qaicmodel import arith
from qaicmodel.oracle.check.channels import ChannelBook, Mode, _Chan
from qaicmodel.oracle.check.rules import MAX_NELEM
from qaicmodel.oracle.trace import Event
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.wire import REQ_SIZE

__all__ = ["HostActions"]


class HostActions(ChannelBook):
    """The host-action event handlers (C3, C5, C6, C12)."""

    def ev_writel(self, ev: Event) -> None:
        if ev.width != 4:
            self._reg_width(ev)
        c = self.ch[ev.dbc]  # type: ignore[index]
        reg, val = ev.reg, ev.val
        assert reg is not None and val is not None
        if reg in regs.DEVICE_OWNED:
            self._violate(
                ev,
                "HOST-WRITE-DEVICE-REG",
                f"host wrote 0x{val:x} to {regs.REG_NAMES[reg]} of dbc {c.dbc}, which "
                'only the device writes ("Read only by the host")',
                self._state(c),
            )
        sets = c.sets
        if sets is None:
            if c.mode is Mode.LOST:
                if val >= c.nelem:  # state-free: an index is below nelem
                    self._violate(
                        ev,
                        "HOST-REG-OUT-OF-RANGE",
                        f"{regs.REG_NAMES[reg]} write {val} of dbc {c.dbc} is not an "
                        f"index below nelem {c.nelem}",
                        self._state(c),
                    )
                c.seen[reg] = val
                self._try_resync(c)
            elif c.mode is Mode.KNOWN:
                self._inactive(ev, c, f"wrote {regs.REG_NAMES[reg]}")
            return
        d = c.dbc
        old_tp = sets.req_tp()
        bad = sets.host(lambda t: t.writel(d, reg, val))
        if bad is not None:
            v, pre = bad
            self._violate(ev, v.rule, v.message, {"mode": c.mode.value, **pre}, v.source, c)
        if reg == regs.REQ_TP and self.contents_known:
            self._published(c, ev, old_tp, val)

    def _published(self, c: _Chan, ev: Event, old: int, new: int) -> None:
        """C3: the element rules of every element a REQ_TP write hands to the device; C10:
        the responses they ask for, per req_id."""
        n = c.nelem
        if not 0 <= new < n:
            return
        ring = c.ring
        width_rule = False  # doorbell-data-width has one reading now (issue #13 item 3)
        for k in range(int(arith.ring_occupancy(old, new, n))):
            slot = (old + k) % n
            elem = self._elem(bytes(ring[slot * REQ_SIZE : (slot + 1) * REQ_SIZE]))
            if elem.completion:
                c.asked[elem.req_id] = c.asked.get(elem.req_id, 0) + 1
            if elem.db_write and width_rule:
                w = elem.db_len.nbytes
                if w and elem.doorbell_data >> (8 * w):
                    self._violate(
                        ev,
                        "REQ-DB-DATA-WIDTH",
                        f"element {slot}: doorbell_data 0x{elem.doorbell_data:x} is "
                        f"wider than its {8 * w}-bit length",
                        self._state(c),
                    )
            viol = elem.violations()
            if viol:
                v = viol[0]
                self._violate(
                    ev,
                    v.rule,
                    f"REQ_TP {old} -> {new} publishes element {slot} of "
                    f"dbc {c.dbc}: {v.field}: {v.message}",
                    self._state(c),
                    v.source,
                )

    def ev_req(self, ev: Event) -> None:
        c = self.ch[ev.dbc]  # type: ignore[index]
        idx, data = ev.idx, ev.data
        assert idx is not None and data is not None
        if c.mode is Mode.NO_GEOMETRY:
            return
        sets = c.sets
        if c.mode is Mode.KNOWN and sets is None:
            self._violate(
                ev,
                "HOST-INACTIVE-DBC",
                f"request element {idx} written for dbc {c.dbc}, which has no active FIFO",
                self._state(c),
            )
        if idx >= c.nelem:
            self._violate(
                ev,
                "HOST-REQ-SLOT",
                f"request element {idx} written, but the FIFO of dbc {c.dbc} has {c.nelem} slots",
                self._state(c),
            )
        if sets is not None:
            busy = sets.busy_slot(idx)
            if busy is not None:
                self._violate(
                    ev,
                    "HOST-REQ-OVERWRITE",
                    f"host wrote request slot {idx} of dbc {c.dbc}, which is published "
                    "and may not be consumed yet (the device need not have got "
                    "further than the host observed)",
                    self._state(c, busy, len(sets.states)),
                )
        c.ring[idx * REQ_SIZE : (idx + 1) * REQ_SIZE] = data
        if sets is not None:
            sets.note_slot(idx, self._elem(data))

    def ev_activate(self, ev: Event) -> None:
        c = self.ch[ev.dbc]  # type: ignore[index]
        assert ev.nelem is not None and ev.req_q is not None and ev.rsp_q is not None
        # 1 passes the driver's checks (7.2 encode_activate) and is the device's to
        # refuse (policy qsm-min-queue-size): not a host rule.
        if not arith.activate_queue_size_ok(ev.nelem):
            self._violate(
                ev,
                "HOST-ACTIVATE-NELEM",
                f"dbc {c.dbc} activated with nelem {ev.nelem}, a queue size the "
                "driver does not accept",
                self._state(c),
            )
        if c.mode is Mode.KNOWN and c.sets is not None:
            self._violate(
                ev, "HOST-DBC-ACTIVE", f"dbc {c.dbc} activated while active", self._state(c)
            )
        self._note_peak(c)
        self._geometry(c, ev.nelem, ev.req_q, ev.rsp_q)
        c.resynced, c.seen = False, {}
        if ev.nelem > MAX_NELEM:
            self._inconclusive(
                ev,
                f"dbc {c.dbc}: nelem {ev.nelem} is beyond the checker's limit "
                f"of {MAX_NELEM} elements; the channel is not checked",
                "request-ring",
            )
            c.mode, c.sets = Mode.NO_GEOMETRY, None
            return
        c.mode = Mode.KNOWN
        c.sets = self._new_sets(c)

    def ev_deactivate(self, ev: Event) -> None:
        c = self.ch[ev.dbc]  # type: ignore[index]
        self._note_peak(c)
        c.mode, c.resynced, c.seen, c.sets = Mode.KNOWN, False, {}, None

    def ev_irq(self, ev: Event) -> None:
        v = ev.vector
        assert v is not None
        if v == 0 or self.single_msi:
            return  # vector 0 is MHI's and shared in single-MSI mode: not modelled here
        c = self.ch[v - 1]
        if c.sets is None or not self.watch_msi:
            return
        on = ev.ev == "irq_enable"
        if on and c.sets.may_have_lost():
            c.recheck_owed = ev.line
        c.sets.mask(on)

    def ev_bar(self, ev: Event) -> None:
        what = "read" if ev.ev == "bar_read" else f"wrote 0x{ev.val:x} to"
        self._violate(
            ev,
            "HOST-BAR-UNMAPPED",
            f"host {what} BAR2 offset 0x{ev.offset:x}, which is no DBC register",
            {"offset": ev.offset},
        )
