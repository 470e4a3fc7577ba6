"""The control plane, composed: host client + QSM + SSR/RAS clients + boot, over one Device.

``ControlPlane(device, host)`` is what the scenario runner calls for its
``activate``, ``deactivate``, ``close`` and ``ssr`` steps, so those travel as
NNC / SSR messages byte for byte (docs/design.md "Module map").

Rules:
  * construction boots the device (boot.py: PBL -> BHI -> SBL/Sahara -> AMSS)
    and probes QAIC_CONTROL (manage.py M8): only version 5.0 goes ONLINE;
  * activate = MANAGE with one ACTIVATE_FROM_USR (the scenario format says so);
    deactivate = MANAGE with PASSTHROUGH{DEACTIVATE command} + DEACTIVATE_FROM_USR,
    as the open UMD does (userspace.md §5.2; no deactivate wire transaction
    exists, control-path.md §2.3);
  * close = terminate + release of the user's channels (control-path.md §2.4);
  * ssr(dbc) = the workload crashes; the SSR stages run end to end
    (ssr.py), the host never re-activates;
  * reset = SoC reset: every activation is lost, the device boots again;
  * a RAS UE or a failed crashdump requests a SoC reset, done after the message
    that caused it has been handled (no re-entry);
  * control faults (:mod:`faults`, ``faults=`` or :meth:`ControlPlane.add_fault`) sit
    between QSM and host: NNC injectors see every (request, replies) exchange, RAS
    injectors every report, Sahara injectors every SBL packet of a boot; replies a
    fault holds back are delivered after the call that gave up on them returned
    (``_after``), and a TX-ring stall leaves the client no free descriptor;
  * ``control_host`` (``MODULE:CLASS`` or a class, :mod:`protocol`) replaces the
    driver's control client (manage.ControlClient, the reference).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from qaicmodel.errors import ArgumentError, IoctlError, QaicModelError
from qaicmodel.spec.control import boot, faults, manage, nnc, qsm, ssr, timesync
from qaicmodel.spec.control.manage import ManageResult, User
from qaicmodel.spec.control.ras import HostRas
from qaicmodel.spec.control.ssr import DbcState
from qaicmodel.spec.host import kernels
from qaicmodel.spec.policies import Policies

__all__ = ["ControlPlane", "HostHooks"]

#: Model firmware images pulled over Sahara at boot (ids from sahara.c's AIC100 table).
MODEL_IMAGES = {i: f"model image {name}".encode() for i, name in boot.AIC100_IMAGES.items()}


_CLEAN_BOOT: tuple[tuple[Any, ...], bool] | None = None


def _clean_boot() -> tuple[list[Any], bool]:
    """:func:`boot.boot_device` over :data:`MODEL_IMAGES` with no Sahara fault armed.

    That boot is a pure function of the images (the same SBL/host exchange every
    time), so it runs once per process and later boots get a copy of its EE list
    (conform boots two planes per episode; issue #12 item 6)."""
    global _CLEAN_BOOT
    if _CLEAN_BOOT is None:
        ee, ok = boot.boot_device(MODEL_IMAGES)
        _CLEAN_BOOT = (tuple(ee), ok)
    return list(_CLEAN_BOOT[0]), _CLEAN_BOOT[1]


class HostHooks:
    """Adapter from the control plane to the host data path (qaicmodel.spec.host.core).

    Calls ``host.dbc_assign(dbc, uid, nelem, req_q, rsp_q)`` and
    ``host.dbc_release(dbc)``; ``dbc_disable`` / ``dbc_enable`` / ``dbc_ssr`` are
    called only when the host has them.
    """

    def __init__(self, host: Any) -> None:
        self.host = host
        self.ssr_dbc: int | None = None

    def _call(self, name: str, *args: Any) -> None:
        fn = getattr(self.host, name, None) if self.host is not None else None
        if fn is not None:
            fn(*args)

    def assign(self, dbc: int, user: User, nelem: int, req_q: int, rsp_q: int) -> None:
        self._call("dbc_assign", dbc, user.host_uid, nelem, req_q, rsp_q)

    def release(self, dbc: int) -> None:
        if self.ssr_dbc == dbc:
            self._call("dbc_ssr", dbc)  # waiters see -EPIPE (ssr-ras-boot.md §1.10)
        self._call("dbc_release", dbc)

    def disable(self, dbc: int) -> None:
        self._call("dbc_disable", dbc)

    def enable(self, dbc: int, user: User) -> None:
        self._call("dbc_enable", dbc, user.host_uid)


class ControlPlane:
    """Host control path + QSM over one DMA Bridge ``device`` (and optionally a data-path host)."""

    def __init__(
        self,
        device: Any,
        host: Any = None,
        *,
        policies: Policies | None = None,
        crc_required: bool = False,
        version: tuple[int, int] = (5, 0),
        num_nsp: int = qsm.NUM_NSP,
        ddr_size: int = qsm.DDR_MAX,
        sg_max_segment: int | None = None,
        ext_msg_len: int = nnc.MAX_H2D,
        boot_now: bool = True,
        kernel: Any = None,
        control_host: Any = None,
        faults: Iterable[faults.Injector] = (),
    ) -> None:
        from qaicmodel.spec.control.protocol import load_control_host

        self.device = device
        self.injectors: list[Any] = []
        for inj in faults:
            self.add_fault(inj)
        self.host = host
        #: the driver version followed (qaicmodel.spec.host.kernels): the argument, else
        #: the device's ``kernel`` attribute (set by the scenario runner), else the newest
        self.kernel = kernels.parse(kernel) if kernel is not None else kernels.of(device)
        self.policies = (
            policies if policies is not None else getattr(device, "policies", Policies())
        )
        self.qsm = qsm.Qsm(
            device,
            policies=self.policies,
            num_nsp=num_nsp,
            ddr_size=ddr_size,
            crc_required=crc_required,
            version=version,
        )
        self.hooks = HostHooks(host)
        client_cls = (
            manage.ControlClient if control_host is None else load_control_host(control_host)
        )
        try:
            self.client = client_cls(
                self._transport,
                device.host_mem,
                num_dbc=device.num_dbc,
                hooks=self.hooks,
                ext_msg_len=ext_msg_len,
                sg_max_segment=sg_max_segment,
                policies=self.policies,
                kernel=self.kernel,
            )
        except QaicModelError:
            raise
        except Exception as e:  # a user's control host whose constructor fails
            raise ArgumentError(
                f"control host {client_cls.__name__}: constructor failed: {type(e).__name__}: {e}"
            ) from None
        self.client.on_dbc_state = self._state_changed
        self.state_log: list[tuple[int, DbcState]] = []
        self.host_ssr = ssr.HostSsr(
            num_dbc=device.num_dbc,
            release=self._ssr_release,
            set_state=self.client.set_state,
            get_state=lambda d: self.client.dbc[d].state,
            soc_reset=self._request_reset,
            exit_ssr=self._ssr_exit,
        )
        self.ras = HostRas(self.policies, self._request_reset, kernel=self.kernel)
        #: (fault name, detail) of every control fault that fired
        self.fault_log: list[tuple[str, str]] = []
        self.nnc_log: list[tuple[str, bytes]] = []
        self.ssr_log: list[tuple[str, bytes]] = []
        self.resets = 0
        self._reset_requested = False
        self._by_uid: dict[Any, User] = {}
        self.ee: list[Any] = []
        self.chunk_tag = 100
        self.host_time_us = 0  # the model's host clock (no wall-clock time in the model)
        self.boot_sync: bytes | None = None
        if boot_now:
            self.boot()

    # -- faults ----------------------------------------------------------------------
    def add_fault(self, inj: faults.Injector | str) -> faults.Injector:
        """Arm a control fault (an :class:`~faults.Injector`, or ``NAME[:SEED[:AT]][+]``)."""
        if isinstance(inj, str):
            name, seed, at, repeat = faults.parse_spec(inj)
            inj = faults.Injector(name, seed, at=at, repeat=repeat)
        if not isinstance(inj, faults.Injector):
            raise ArgumentError(f"a control fault is a faults.Injector, not {type(inj).__name__}")
        self.injectors.append(inj)
        return inj

    def _inject(self, channel: str, request: bytes, replies: list[bytes]) -> list[bytes]:
        for inj in self.injectors:
            if inj.channel == channel:
                out = inj.exchange(request, replies)
                replies = list(out.now)
                if out.fired:
                    self.fault_log.append((inj.name, out.detail))
        return replies

    def _deliver_late(self) -> None:
        """Replies a fault held back arrive now, after their requester gave up."""
        for inj in self.injectors:
            if inj.channel == "nnc":
                for r in inj.release():
                    self.nnc_log.append(("rx", r))
                    self.client.deliver(r)

    # -- plumbing --------------------------------------------------------------------
    def _transport(self, wrappers: list[bytes]) -> list[bytes]:
        msg = b"".join(wrappers)
        self.nnc_log.append(("tx", msg))
        replies = self._inject("nnc", msg, self.qsm.receive(msg))
        if any(i.stalled for i in self.injectors if i.channel == "nnc"):
            self.client.tx_free = 0  # the device no longer consumes the UL ring
        for r in replies:
            self.nnc_log.append(("rx", r))
        return replies

    def _state_changed(self, dbc: int, state: DbcState) -> None:
        """set_dbc_state; also tells the data-path host which DBC is under SSR
        (``host.ssr_dbc``: its -EPIPE checks, ssr-ras-boot.md §1.10)."""
        self.state_log.append((dbc, state))
        if self.host is not None and hasattr(self.host, "ssr_dbc"):
            if state == DbcState.BEFORE_SHUTDOWN:
                self.host.ssr_dbc = dbc
            elif state == DbcState.IDLE and self.host.ssr_dbc == dbc:
                self.host.ssr_dbc = None

    def _ssr_release(self, dbc: int) -> None:
        """qaic_dbc_enter_ssr (7.2 qaic_data.c): ssr_dbc = D, then release_dbc."""
        self.hooks.ssr_dbc = dbc
        try:
            self.client.release_dbc(dbc)
        finally:
            self.hooks.ssr_dbc = None

    def _ssr_exit(self) -> None:
        """qaic_dbc_exit_ssr (7.2 qaic_data.c): ssr_dbc = QAIC_SSR_DBC_SENTINEL."""
        if self.host is not None and hasattr(self.host, "ssr_dbc"):
            self.host.ssr_dbc = None

    def _request_reset(self) -> None:
        self._reset_requested = True

    def _after(self) -> None:
        self._deliver_late()
        if self._reset_requested:
            self._reset_requested = False
            self.reset()

    @property
    def dev_state(self) -> boot.DevState:
        return self.client.dev_state

    # -- boot / reset ------------------------------------------------------------------
    def boot(self) -> str:
        """PBL -> SBL (Sahara; boot-time timesync) -> AMSS, then the QAIC_CONTROL probe."""
        sahara = [i for i in self.injectors if i.channel == "sahara"]
        self.ee, ok = boot.boot_device(MODEL_IMAGES, inject=sahara) if sahara else _clean_boot()
        if not ok:
            return "EIO"
        # SBL's timesync on QAIC_TIMESYNC (20/21): the host answers with absolute time;
        # the model's clock is a counter, not the wall clock
        sync = timesync.HostBootSync()
        self.boot_sync = sync.on_message(
            timesync.QtsHdr(timesync.MsgType.CMD_TO_HOST).pack(), host_time_us=self.host_time_us
        )
        return self.client.probe()

    def reset(self) -> str:
        """SoC reset (MHI BAR + 0xb0 = BIT(0)): local cleanup, device state lost, reboot."""
        self.resets += 1
        if self.host is not None and hasattr(self.host, "online"):
            self.host.online = False
        self.client.reset()
        self.host_ssr.reset()
        if self.host is not None and hasattr(self.host, "ssr_dbc"):
            self.host.ssr_dbc = None
        self.qsm.reset()
        ret = self.boot()
        if self.host is not None and hasattr(self.host, "online"):
            self.host.online = self.dev_state == boot.DevState.ONLINE
        return ret

    # -- users -------------------------------------------------------------------------
    def open(self, host_uid: Any = None) -> User:
        if self.dev_state != boot.DevState.ONLINE:
            raise IoctlError("ENODEV", "device is not ONLINE")
        u = self.client.open(host_uid)
        if host_uid is not None:
            self._by_uid[host_uid] = u
        return u

    def user_for(self, host_uid: Any) -> User:
        """The control-plane user of a data-path host user (opened lazily)."""
        u = self._by_uid.get(host_uid)
        if u is None or u.closed:
            u = self.open(host_uid)
        return u

    def close(self, user: User) -> None:
        """Terminate + release_dbc of the user's channels (qaic_release_usr)."""
        self.client.close(user)
        self._by_uid = {k: v for k, v in self._by_uid.items() if v is not user}
        self._after()

    # -- MANAGE ------------------------------------------------------------------------
    def manage(self, user: User, length: int, count: int, data: bytes) -> ManageResult:
        r = self.client.manage(user, length, count, data)
        self._after()
        return r

    def _manage_ok(self, user: User, *trans: bytes) -> ManageResult:
        ln, cnt, data = manage.user_message(*trans)
        r = self.manage(user, ln, cnt, data)
        if r.result != "ok":
            raise IoctlError(r.result, "MANAGE refused")
        return r

    def activate(
        self,
        user: User,
        queue_size: int,
        options: int = 0,
        *,
        elf_id: int | None = None,
        num_nsp: int = 0,
    ) -> int:
        """MANAGE with ACTIVATE_FROM_USR (and an ACTIVATE command when ``elf_id`` is given)."""
        trans = [manage.usr_activate(queue_size, 0, options, 0)]
        if elf_id is not None:
            trans.insert(
                0, manage.usr_passthrough(qsm.command(qsm.Cmd.ACTIVATE_REQ, elf_id, num_nsp))
            )
        r = self._manage_ok(user, *trans)
        for t in manage.parse_user_result(r.data, r.count):
            if t["type"] == nnc.TransType.ACTIVATE_FROM_DEV:
                return int(t["dbc_id"])
        raise IoctlError("EINVAL", "no activate response")

    def deactivate(self, user: User, dbc: int) -> None:
        """MANAGE with PASSTHROUGH{DEACTIVATE dbc} + DEACTIVATE_FROM_USR{dbc}."""
        if not isinstance(dbc, int) or not 0 <= dbc < 1 << 32:
            raise ArgumentError(f"dbc_id {dbc!r} is not a u32")
        self._manage_ok(
            user,
            manage.usr_passthrough(qsm.command(qsm.Cmd.DEACTIVATE_REQ, dbc)),
            manage.usr_deactivate(dbc),
        )

    def status(self, user: User) -> dict[str, Any]:
        r = self._manage_ok(user, manage.usr_status())
        return manage.parse_user_result(r.data, r.count)[0]

    def load(self, user: User, image: bytes) -> int:
        """Load an image into DDR: PASSTHROUGH{LOAD_ELF size} + DMA_XFER of a user buffer."""
        if not image:
            raise ArgumentError("image must not be empty")
        buf = self.device.host_mem.alloc(len(image))
        self.device.host_mem.write(buf, image)
        try:
            tag = self.chunk_tag
            size = len(image)
            r = self._manage_ok(
                user,
                manage.usr_passthrough(
                    qsm.command(qsm.Cmd.LOAD_ELF_REQ, tag, 0, size & 0xFFFFFFFF, size >> 32)
                ),
                manage.usr_dma_xfer(tag, buf, size),
            )
        finally:
            self.device.host_mem.free(buf)
        return self._cmd_result(r, qsm.Cmd.LOAD_ELF_RESP)

    def unload(self, user: User, elf_id: int) -> None:
        r = self._manage_ok(
            user, manage.usr_passthrough(qsm.command(qsm.Cmd.UNLOAD_ELF_REQ, elf_id))
        )
        self._cmd_result(r, qsm.Cmd.UNLOAD_ELF_RESP)

    @staticmethod
    def _cmd_result(r: ManageResult, want: int) -> int:
        for t in manage.parse_user_result(r.data, r.count):
            if t["type"] == nnc.TransType.PASSTHROUGH_FROM_DEV:
                cmd, args = qsm.parse_command(t["data"])
                if cmd == want:
                    st = nnc.status_s32(args[0])
                    if st:
                        raise IoctlError("ECANCELED", f"QSM status {st}")
                    return args[1]
        raise IoctlError("EINVAL", "no command response")

    # -- SSR / RAS ---------------------------------------------------------------------
    def ssr(self, dbc: int) -> list[int]:
        """The workload on ``dbc`` crashes; run every SSR stage.  Returns the events sent."""
        msgs = self.qsm.crash(dbc)
        s = self.qsm.ssr[dbc]
        if not kernels.behaviour(self.kernel, "ssr-client"):
            # 6.12: no qaic_ssr.c, no buffer queued on QAIC_SSR: the device's first
            # event is never received and the host never learns of the crash
            for m in msgs:
                self.ssr_log.append(("undelivered", m))
            return list(s.events_sent)
        steps = 0
        while msgs and not self._reset_requested:
            steps += 1
            if steps > 10_000:
                raise ArgumentError("SSR exchange did not terminate")
            nxt: list[bytes] = []
            for m in msgs:
                self.ssr_log.append(("rx", m))
                for reply in self.host_ssr.on_message(m):
                    self.ssr_log.append(("tx", reply))
                    nxt.extend(self.qsm.ssr_receive(reply))
                if self._reset_requested:
                    break
            msgs = nxt
        events = list(s.events_sent)
        self._after()
        return events

    def ras_event(self, data: bytes) -> None:
        """A RAS message arrives on QAIC_STATUS (UE -> SoC reset); 6.12 has no qaic_ras.c
        and receives nothing there."""
        if not kernels.behaviour(self.kernel, "ras-client"):
            return
        for m in self._inject("ras", b"", [data]):
            self.ras.on_message(m)
        self._after()

    # -- views -------------------------------------------------------------------------
    def trace_events(self) -> list[dict[str, str]]:
        """The control traffic as trace.md events (``nnc_tx``/``nnc_rx``, ``ssr_rx``/``ssr_tx``),
        each kind in its own order (the two channels are not interleaved here)."""
        out = [{"ev": f"nnc_{k}", "hex": m.hex()} for k, m in self.nnc_log]
        out += [{"ev": f"ssr_{k}", "hex": m.hex()} for k, m in self.ssr_log if k in ("rx", "tx")]
        return out

    def owner(self, dbc: int) -> int | None:
        u = self.client.dbc[dbc].usr
        return None if u is None else u.handle

    def dbc_state(self, dbc: int) -> DbcState:
        return self.client.dbc[dbc].state

    def check(self) -> list[str]:
        """Cross-side invariants: host and QSM agree on who owns what; no leaks."""
        errs = self.qsm.check()
        for i, d in enumerate(self.client.dbc):
            a = self.qsm.act.get(i)
            if d.in_use and a is None:
                errs.append(f"host holds dbc {i} that QSM does not have active")
            if a is not None and d.in_use and d.usr is not None and a.owner[1] != d.usr.handle:
                errs.append(f"dbc {i}: host owner {d.usr.handle} != QSM owner {a.owner[1]}")
            if a is not None and not self.device.ch[i].active:
                errs.append(f"dbc {i} active in QSM but not on the DMA Bridge")
            if d.in_use and d.buf is None:
                errs.append(f"dbc {i} in use without a FIFO chunk")
        bufs = [d.buf for d in self.client.dbc if d.buf is not None]
        if len(bufs) != len(set(bufs)):
            errs.append("two DBCs share a FIFO chunk")
        return errs


def _u32(data: bytes, off: int) -> int:
    return struct.unpack_from("<I", data, off)[0]
