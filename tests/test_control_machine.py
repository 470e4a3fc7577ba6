"""A stateful machine over the control plane: users open and close, activate, deactivate
(their own and others' channels), load images, crash workloads (SSR at any moment), reset.

Invariants (issue #4): a channel is owned by at most one user and host and QSM agree on it;
a closed (terminated) user owns nothing; every SSR runs its stages in order and ends with the
channel idle or the device reset; no NSP, channel, DDR or FIFO memory leaks.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from qaicmodel.errors import IoctlError
from qaicmodel.spec.control import manage
from qaicmodel.spec.control.plane import ControlPlane
from qaicmodel.spec.control.ssr import DbcState, Event
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.policies import Policies

ORDER = [Event.BEFORE_SHUTDOWN, Event.AFTER_SHUTDOWN, Event.BEFORE_POWER_UP, Event.AFTER_POWER_UP]


class ControlMachine(RuleBasedStateMachine):
    users = Bundle("users")

    def __init__(self) -> None:
        super().__init__()
        self.cp: ControlPlane | None = None
        self.closed: list[manage.User] = []
        self.resets_seen = 0

    @rule(crashdump=st.booleans(), num_dbc=st.integers(2, 5), num_nsp=st.integers(2, 6))
    def setup(self, crashdump: bool, num_dbc: int, num_nsp: int) -> None:
        if self.cp is not None:
            return
        pol = Policies({"ssr-crashdump": "offer" if crashdump else "none"})
        self.cp = ControlPlane(
            Device(num_dbc=num_dbc, policies=pol), num_nsp=num_nsp, ddr_size=1 << 20
        )

    def _cp(self) -> ControlPlane:
        if self.cp is None:
            self.cp = ControlPlane(Device(num_dbc=3), num_nsp=4, ddr_size=1 << 20)
        return self.cp

    @rule(target=users)
    def open(self) -> manage.User:
        return self._cp().open()

    @rule(u=consumes(users))
    def close(self, u: manage.User) -> None:
        cp = self._cp()
        if u.closed:
            return
        cp.close(u)
        self.closed.append(u)

    @rule(u=users, qs=st.sampled_from([0, 1, 2, 8, 64, 0x0F0F0F0F]))
    def activate(self, u: manage.User, qs: int) -> None:
        cp = self._cp()
        if u.closed:
            return
        try:
            d = cp.activate(u, qs)
        except IoctlError as e:
            assert e.name in ("EINVAL", "ECANCELED", "ENOMEM"), e
            if qs in (0, 0x0F0F0F0F):
                assert e.name == "EINVAL"
        else:
            assert qs >= 2 and cp.owner(d) == u.handle
            assert cp.dbc_state(d) == DbcState.ASSIGNED

    @rule(u=users, dbc=st.integers(0, 5))
    def deactivate(self, u: manage.User, dbc: int) -> None:
        cp = self._cp()
        if u.closed:
            return
        owner = cp.owner(dbc) if dbc < cp.device.num_dbc else None
        try:
            cp.deactivate(u, dbc)
        except IoctlError as e:
            if dbc >= cp.device.num_dbc:
                assert e.name == "EINVAL"
            else:
                assert owner != u.handle and e.name == "EPERM"
                assert cp.owner(dbc) == owner  # someone else's channel is untouched
        else:
            assert owner == u.handle and cp.owner(dbc) is None
            assert not cp.device.ch[dbc].active

    @rule(u=users, size=st.integers(1, 300_000))
    def load(self, u: manage.User, size: int) -> None:
        cp = self._cp()
        if u.closed:
            return
        try:
            cp.load(u, bytes(size))
        except IoctlError as e:
            assert e.name == "ECANCELED"  # DDR exhausted

    @rule(u=users, eid=st.integers(1, 20))
    def unload(self, u: manage.User, eid: int) -> None:
        cp = self._cp()
        if u.closed:
            return
        img = cp.qsm.images.get(eid)
        try:
            cp.unload(u, eid)
        except IoctlError:
            assert img is None or img.owner[1] != u.handle
        else:
            assert img is not None and img.owner[1] == u.handle

    @rule(data=st.data())
    def ssr(self, data: st.DataObject) -> None:
        cp = self._cp()
        active = sorted(cp.qsm.act)
        if not active:
            return
        dbc = data.draw(st.sampled_from(active))
        others = {d: cp.owner(d) for d in active if d != dbc}
        resets = cp.resets
        events = cp.ssr(dbc)
        assert events == ORDER[: len(events)]
        if cp.resets == resets:  # ran to completion
            assert events == ORDER
            assert cp.dbc_state(dbc) == DbcState.IDLE and cp.owner(dbc) is None
            assert {d: cp.owner(d) for d in others} == others  # other channels untouched
        else:
            assert cp.qsm.act == {}

    @rule()
    def reset(self) -> None:
        cp = self._cp()
        assert cp.reset() == "ok"
        assert cp.qsm.act == {} and all(not d.in_use for d in cp.client.dbc)

    @rule(err=st.sampled_from([0, 1, 2]))
    def ras(self, err: int) -> None:
        from qaicmodel.spec.control.ras import RasMsg

        cp = self._cp()
        resets = cp.resets
        cp.ras_event(RasMsg(err_type=err).pack())
        assert cp.resets == resets + (err == 1)  # only UE resets the SoC
        if err == 1:
            assert cp.qsm.act == {}

    @rule(u=users)
    def stale_reply(self, u: manage.User) -> None:
        """A reply nobody waits for is dropped; only a DEACTIVATE_FROM_DEV in it has an
        effect: its channel is released (resp_worker orphaned-deactivate handling, 6.12
        and 7.2; issue #14 item 7, tests/test_kernel_fidelity.py)."""
        from qaicmodel.spec.control import nnc

        cp = self._cp()
        owners = {d: cp.owner(d) for d in range(cp.device.num_dbc)}
        stale = nnc.Message.build(
            [nnc.StatusFromDev(), nnc.DeactivateFromDev(0, 0)],
            seq=cp.client.next_seq + 7,
            handle=u.handle,
        ).pack()
        assert cp.client.deliver(stale) is False
        owners[0] = None
        assert {d: cp.owner(d) for d in range(cp.device.num_dbc)} == owners
        if 0 in cp.qsm.act:  # the host let go of a channel QSM still runs: deactivate
            cp.qsm._release_channel(0)  # it there too, as the real sequence would

    @invariant()
    def consistent(self) -> None:
        cp = self.cp
        if cp is None:
            return
        assert cp.check() == []
        # a channel is owned by at most one user, and that user is open
        for i, d in enumerate(cp.client.dbc):
            if d.usr is not None:
                assert not d.usr.closed
                assert d.in_use and cp.qsm.act[i].owner[1] == d.usr.handle
        # terminated users own nothing
        for u in self.closed:
            if u.handle in cp.client.users:
                continue  # the handle was handed out again
            assert all(a.owner[1] != u.handle for a in cp.qsm.act.values())
            assert all(i.owner[1] != u.handle for i in cp.qsm.images.values())
        # no leak of FIFO memory: one host region per channel in use
        in_use = sum(d.in_use for d in cp.client.dbc)
        assert len(cp.device.host_mem.regions()) == in_use
        # NSPs: busy exactly for active workloads (no SSR is left running between rules)
        assert not cp.qsm.ssr
        busy = [n for n, d in enumerate(cp.qsm.nsp) if d is not None]
        assert sorted(busy) == sorted(n for a in cp.qsm.act.values() for n in a.nsps)


TestControlMachine = ControlMachine.TestCase
