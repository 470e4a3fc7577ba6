"""The trace checker's observations (C4, C10 of :mod:`qaicmodel.oracle.check`): ``readl``,
``rsp``, ``msi`` keep the possible device states that explain them; ``complete`` and
``idle`` check the host's bookkeeping of responses against them."""

from __future__ import annotations

from qaicmodel.oracle.check.channels import _REG_RULE, ChannelBook, Mode
from qaicmodel.oracle.trace import Event
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.policies import INACTIVE_DBC_REGS, InactiveDbcRegs

__all__ = ["Observations"]


class Observations(ChannelBook):
    """The observation event handlers (C4, C10)."""

    def ev_readl(self, ev: Event) -> None:
        if ev.width != 4:
            self._reg_width(ev)
        c = self.ch[ev.dbc]  # type: ignore[index]
        reg, val = ev.reg, ev.val
        assert reg is not None and val is not None
        sets = c.sets
        if sets is None:
            if c.mode is Mode.LOST:
                if val >= c.nelem:  # state-free: a FIFO index is below nelem
                    self._violate(
                        ev,
                        _REG_RULE.get(reg, "DEV-REG-VALUE"),
                        f"{regs.REG_NAMES[reg]} of dbc {c.dbc} read {val}, not an index "
                        f"below nelem {c.nelem}",
                        self._state(c),
                    )
                c.seen[reg] = val
                self._try_resync(c)
            elif c.mode is Mode.KNOWN:
                want = (
                    0xFFFFFFFF
                    if self.policies[INACTIVE_DBC_REGS] is InactiveDbcRegs.ALL_ONES
                    else 0
                )
                if val != want:
                    self._violate(
                        ev,
                        _REG_RULE.get(reg, "DEV-REG-VALUE"),
                        f"{regs.REG_NAMES[reg]} of dbc {c.dbc} read {val}, but an "
                        f"inactive channel shows {want}",
                        self._state(c),
                        c=c,
                    )
            return
        d = c.dbc
        if reg == regs.REQ_HP:
            ok = sets.read_req_hp(val)
        elif reg == regs.RSP_TP:
            c.recheck_owed = 0
            ok = sets.read_rsp_tp(val)
        else:  # host-owned: the same in every state
            ok = sets.read_host_reg(reg, val)
        if not ok:
            pre = sets.states
            possible = sets.reg_values(reg)
            shown = ", ".join(str(x) for x in possible[:8]) + (" ..." if len(possible) > 8 else "")
            later = (
                " (or what its own progress from there gives)" if reg in regs.DEVICE_OWNED else ""
            )
            name = regs.REG_NAMES[reg]
            extra = (
                " (all ones: the link is down or the device is gone)" if val == 0xFFFFFFFF else ""
            )
            self._violate(
                ev,
                _REG_RULE.get(reg, "DEV-REG-VALUE"),
                f"{name} of dbc {d} read {val}{extra}, but a conforming device can only "
                f"show {shown}{later} here",
                self._state(c, pre[-1], len(pre)),
                c=c,
            )
            return
        sets.states = ok

    def ev_rsp(self, ev: Event) -> None:
        c = self.ch[ev.dbc]  # type: ignore[index]
        idx, data = ev.idx, ev.data
        assert idx is not None and data is not None
        sets = c.sets
        if c.mode is not Mode.KNOWN:
            return
        d = c.dbc
        if sets is None:
            self._violate(
                ev,
                "HOST-RSP-NOT-WRITTEN",
                f"host read response slot {idx} of dbc {d}, which is not active",
                self._state(c),
            )
            return
        pre = sets.states
        bad = sets.unwritten(idx)
        if bad is not None:
            self._violate(
                ev,
                "HOST-RSP-NOT-WRITTEN",
                f"host read response slot {idx} of dbc {d}, which the device need "
                "not have written yet (beyond the RSP_TP the host read) or the host "
                "already freed",
                self._state(c, bad, len(pre)),
            )
        rid = int.from_bytes(data[:2], "little")
        c.read[rid] = c.read.get(rid, 0) + 1
        if not self.contents_known:
            return
        ok = sets.rsp_states(idx, data)
        if not ok:
            got = rid, int.from_bytes(data[2:], "little")
            want = sets.rsp_words(idx)
            self._violate(
                ev,
                "DEV-RSP-CONTENT",
                f"response slot {idx} of dbc {d} reads req_id {got[0]} code {got[1]}, "
                f"which no conforming device wrote there (possible: {', '.join(want[:6])})",
                self._state(c, pre[-1], len(pre)),
                c=c,
            )
            return
        sets.states = ok

    def ev_msi(self, ev: Event) -> None:
        v = ev.vector
        assert v is not None
        if v == 0:
            return  # MHI (and every DBC in single-MSI mode): not modelled here
        if self.single_msi:
            self._violate(
                ev,
                "DEV-MSI-VECTOR",
                f"MSI on vector {v}, but in single-MSI mode every DBC raises vector 0",
                {"vector": v},
            )
        c = self.ch[v - 1]
        if c.mode is not Mode.KNOWN:
            return
        sets = c.sets
        if sets is None:
            self._violate(
                ev,
                "DEV-MSI-SPURIOUS",
                f"MSI on vector {v}, but dbc {c.dbc} is not active",
                self._state(c),
                c=c,
            )
            return
        ok, masked_pending = sets.msi()
        if not ok:
            st = self._state(c, sets.states[-1] if sets.states else None, len(sets.states))
            if masked_pending:
                self._violate(
                    ev,
                    "DEV-MSI-MASKED",
                    f"MSI on vector {v} arrived while the host had it disabled",
                    st,
                    c=c,
                )
            else:
                self._violate(
                    ev,
                    "DEV-MSI-SPURIOUS",
                    f"MSI on vector {v} (dbc {c.dbc}), but no possible run of the device "
                    "had one due (no response FIFO empty -> non-empty transition, no "
                    "force-MSI)",
                    st,
                    c=c,
                )
            return
        sets.take_msi(ok)
        c.recheck_owed = 0

    def ev_complete(self, ev: Event) -> None:
        """C10: a completion must follow every response its BO asked for, once."""
        c = self.ch[ev.dbc]  # type: ignore[index]
        rid = ev.req_id
        assert rid is not None
        if c.mode is not Mode.KNOWN or c.resynced or not self.contents_known:
            return
        asked, got = c.asked.get(rid, 0), c.read.get(rid, 0)
        st = {**self._state(c), "req_id": rid, "responses_asked": asked, "responses_read": got}
        if asked == 0:
            self._violate(
                ev,
                "HOST-COMPLETE-UNKNOWN",
                f"host completed the BO with req_id {rid} on dbc {c.dbc}, but no "
                "request with that id asked for a response since it last completed "
                "(a completion twice, or for work never published)",
                st,
            )
        if got < asked:
            self._violate(
                ev,
                "HOST-COMPLETE-EARLY",
                f"host completed the BO with req_id {rid} on dbc {c.dbc} after reading "
                f"{got} of the {asked} responses its requests asked for",
                st,
            )
        c.asked[rid] = 0
        c.read[rid] = max(0, got - asked)

    def ev_idle(self, ev: Event) -> None:
        """C10: the host stopped; no consistent run may hold a response it will not hear of."""
        if not self.watch_msi:
            return
        for c in self.ch:
            if c.sets is None or c.mode is not Mode.KNOWN:
                continue
            if c.recheck_owed:
                self._violate(
                    ev,
                    "HOST-RSP-STRANDED",
                    f"the host stopped without re-reading RSP_TP of dbc {c.dbc} after "
                    f"enabling its MSI (line {c.recheck_owed}); an MSI raised while the "
                    "vector was masked may have been lost (msi-while-masked=lost), so "
                    "a response may wait in the ring unannounced",
                    self._state(c),
                )
            s = c.sets.stranded()
            if s is not None:
                self._violate(
                    ev,
                    "HOST-RSP-STRANDED",
                    f"the host stopped, but in a possible run of the device a response "
                    f"of dbc {c.dbc} is in the ring with no MSI to announce it (an MSI "
                    "raised while the vector was masked, then no re-read of RSP_TP "
                    "after enabling it)",
                    self._state(c, s, len(c.sets.states)),
                )
