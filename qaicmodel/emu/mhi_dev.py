"""The MHI device side: state machine, context arrays, command/event/transfer rings, BHI.

Everything the device reads or writes in host memory goes through ``mem``
(the guest memory; ``read``/``write`` raise the model's DmaFault outside it).
Nothing happens on its own: a host register write only records a request;
the work is an *action* (:meth:`MhiDevice.actions`) that the board's
scheduler takes with :meth:`MhiDevice.step`.

Rules (host expectations read in ``drivers/bus/mhi/host`` 6.12/7.2, device
behaviour after ``drivers/bus/mhi/ep``; layouts from ``drivers/bus/mhi/common.h``):
  M1 contexts are 44 bytes (``struct mhi_chan_ctxt`` / ``mhi_event_ctxt`` /
     ``mhi_cmd_ctxt``: three le32 then rbase, rlen, rp, wp as le64) in arrays
     at CCABAP (per channel), ECABAP (per event ring), CRCBAP (one command
     ring) -- init.c ``mhi_init_dev_ctxt``/``mhi_init_mmio``;
  M2 ring elements are 16 bytes {ptr le64, dword0, dword1}; a transfer TRE has
     len in dword0[15:0], CHAIN bit 0, IEOB bit 8, IEOT bit 9, BEI bit 10, type 2
     in dword1[23:16]; a command has type in dword1[23:16] and channel in
     dword1[31:24] (NOP 1, RESET 16, STOP 17, START 18);
  M3 the device writes events at the event ring's rp, advances rp, stores it in
     the context and raises the ring's MSI (``msivec``); it may write while
     rp != wp, wp being the host's doorbell (main.c ``mhi_process_ctrl_ev_ring``,
     ``mhi_recycle_ev_ring_element``; ep/ring.c ``mhi_ep_ring_add_element``);
  M4 events: state change {dword0[31:24] state, type 0x20}, command completion
     {ptr = command element, code in dword0[31:24], type 0x21}, transfer
     {ptr = TRE, code, len dword0[15:0], channel dword1[31:24], type 0x22},
     EE {dword0[31:24] ee, type 0x40} -- common.h; codes SUCCESS 1, EOT 2,
     OVERFLOW 3, EOB 4, UNDEFINED_ERR 0x10;
  M5 to-device (even) channels: a TD is TREs up to the first without CHAIN; an
     EOT event goes to the TRE with IEOT, an EOB event to a chained TRE with
     IEOB (ep/main.c ``mhi_ep_read_completion``); from-device (odd) channels: a
     message fills host TREs in order, OVERFLOW for every TRE but the last, EOT
     for the last (ep/main.c ``mhi_ep_queue_skb``);
  M6 MHI states: RESET -> READY (device) -> M0 (host writes MHICTRL) -> M3/M0;
     after READY->M0 the device sends a state-change M0 then an EE event for
     its current EE (ep/sm.c ``mhi_ep_set_m0_state``); MHICTRL.RESET makes the
     device drop every ring, clear MHICTRL, MHISTATUS and BHI_INTVEC and, out
     of PBL, become READY again (pm.c ``mhi_pm_disable_transition`` waits
     for both; ep/main.c ``mhi_ep_reset_worker``);
  M7 START_CHAN reads the channel context, marks chcfg CHSTATE RUNNING (2),
     completes SUCCESS; STOP marks STOP (4); RESET marks DISABLED (0) and drops
     what the device held for the channel (ep/main.c ``mhi_ep_process_cmd_ring``);
  M8 BHI (PBL only): IMGTXDB starts the load of IMGSIZE bytes at IMGADDR; the
     result is BHI_STATUS[31:30] SUCCESS (2) or ERROR (3) with BHI_ERRCODE, and
     an MSI on BHI_INTVEC (boot.c ``mhi_fw_load_bhi`` waits on state_event,
     woken by the intvec interrupt);
  M9 SYS_ERR: MHISTATUS state 0xFF and SYSERR bit, a state-change event when
     the event ring runs (policy ``sys-err-report``; ep/main.c
     ``mhi_ep_handle_syserr``), and an MSI on BHI_INTVEC (main.c
     ``mhi_intvec_threaded_handler``).
Bad host behaviour (pointers outside memory or outside their ring, unknown
commands, doorbells for channels that do not run) is a recorded violation and
never a traceback; the ring concerned stops.
"""

from __future__ import annotations

import collections
import struct
from collections.abc import Callable
from typing import Any

from qaicmodel.emu import mhi_regs as R
from qaicmodel.emu._model import DmaFault
from qaicmodel.emu.mhi_defs import (  # noqa: F401 - re-exported: the names were defined here
    _CTX,
    _CTX_RP,
    _EL,
    CC_EOB,
    CC_EOT,
    CC_OVERFLOW,
    CC_SUCCESS,
    CC_UNDEFINED_ERR,
    CH_DISABLED,
    CH_ENABLED,
    CH_ERROR,
    CH_RUNNING,
    CH_STOP,
    CMD_NAMES,
    CMD_NOP,
    CMD_RESET,
    CMD_START,
    CMD_STOP,
    CTX_SIZE,
    EE_AMSS,
    EE_NAMES,
    EE_PBL,
    EE_SBL,
    EL_SIZE,
    EV_CMD_COMPLETION,
    EV_EE,
    EV_STATE_CHANGE,
    EV_TX,
    PKT_TRANSFER,
    ST_M0,
    ST_M1,
    ST_M2,
    ST_M3,
    ST_READY,
    ST_RESET,
    ST_SYS_ERR,
    STATE_NAMES,
    TRE_CHAIN,
    TRE_IEOB,
    TRE_IEOT,
    Channel,
    Ring,
    Violation,
)
from qaicmodel.emu.mhi_rings import RingWork

__all__ = ["MhiDevice", "Violation", "CTX_SIZE", "EL_SIZE"]


class MhiDevice(RingWork):
    """The MHI device behind BAR0.  ``msi(vector)`` raises one MSI.

    ``on_message(ch, data)`` receives each to-device TD; ``on_channel(ch, what)``
    hears "start"/"stop"/"reset"/"mhi-reset"; ``channel_ok(ch, ee)`` says whether
    the device serves channel ``ch`` in EE ``ee`` (the board's channel table).
    """

    def __init__(
        self,
        regs: R.MhiRegs,
        mem: Any,
        msi: Callable[[int], None],
        *,
        image_check: Callable[[bytes], int] | None = None,
        on_message: Callable[[int, bytes], None] | None = None,
        on_channel: Callable[[int, str], None] | None = None,
        channel_ok: Callable[[int, int], bool] | None = None,
        on_bhi_image: Callable[[bytes], None] | None = None,
    ) -> None:
        self.regs = regs
        self.mem = mem
        self.msi = msi
        self.image_check = image_check or (lambda img: 0)
        self.on_message = on_message or (lambda ch, data: None)
        self.on_channel = on_channel or (lambda ch, what: None)
        self.channel_ok = channel_ok or (lambda ch, ee: True)
        self.on_bhi_image = on_bhi_image or (lambda img: None)
        self.violations: list[Violation] = []
        self.trace: list[tuple[Any, ...]] = []
        self.msis = 0
        self.soc_reset_pending = False
        self._power_on(EE_PBL)

    # -- state ------------------------------------------------------------------
    def _power_on(self, ee: int, *, ready: bool = False) -> None:
        #: the EE the firmware left in this power cycle (None: none yet)
        self.left_ee: int | None = None
        self.regs.reset_all()
        self.regs.set_bhi(R.BHI_EXECENV, ee)
        self.channels = [Channel(i) for i in range(R.NUM_CHANNELS)]
        self.ev_rings: dict[int, Ring] = {}
        self.cmd_ring: Ring | None = None
        self.pending_events: collections.deque[tuple[int, bytes]] = collections.deque()
        self.req_state: int | None = None  # an MHICTRL state request not yet taken
        self.req_reset = False
        self.bhi_pending = False
        self.want_ready = ready  # the device will become READY (SBL/AMSS firmware up)
        self.ready_ee: int | None = None  # the EE entered when READY is taken (PBL->SBL)
        self.cmd_pending = False
        self.ul_dirty: set[int] = set()
        #: channels the device dropped on an EE change (their doorbells are ignored)
        self.dropped: set[int] = set()

    def boot_in(self, ee: int) -> None:
        """The device powers on in ``ee`` (board start, policy mhi-start-ee)."""
        self._power_on(ee, ready=ee != EE_PBL)

    @property
    def ee(self) -> int:
        return self.regs.ee

    @property
    def state(self) -> int:
        return self.regs.mhi_state()

    def _violate(self, rule: str, message: str, where: str) -> None:
        self.violations.append(Violation(rule, message, where))
        self.trace.append(("violation", rule, where))

    def _log(self, *ev: Any) -> None:
        self.trace.append(ev)

    # -- host register writes (requests only) -------------------------------------
    def host_write(self, off: int, val: int) -> None:
        eff = self.regs.write(off, val)
        if eff is None:
            return
        kind = eff[0]
        if kind == "bad":
            self._violate(eff[1], eff[2], self.regs.where(off))
        elif kind == "ctrl":
            old, new = eff[1], eff[2]
            if new & R.MHICTRL_RESET and not old & R.MHICTRL_RESET:
                self.req_reset = True
            ns, os_ = (new >> 8) & 0xFF, (old >> 8) & 0xFF
            if ns != os_ and not new & R.MHICTRL_RESET:
                self.req_state = ns
        elif kind == "crdb":
            self.cmd_pending = True
        elif kind == "erdb":
            n = eff[1]
            ring = self.ev_rings.get(n)
            if ring is not None:
                wp = self.regs.erdb[n]
                if ring.valid(wp):
                    ring.wp = wp
                else:
                    self._violate(
                        "MHI-RING-PTR",
                        f"event ring {n} doorbell 0x{wp:x} outside "
                        f"its ring 0x{ring.rbase:x}+{ring.rlen}",
                        f"ERDB({n})",
                    )
        elif kind == "chdb":
            n = eff[1]
            if n == R.WAKE_DB_CHANNEL:
                return  # device wake (pm.c mhi_assert_dev_wake): nothing to do
            ch = self.channels[n]
            if n in self.dropped:
                # the host has not yet seen the EE change that took this channel away
                # (sahara.c re-queues its receive buffer after the last DONE_RESP): a race
                # of MHI itself, not a host error (services.py C1)
                self._log("db-ignored", n)
                return
            if ch.state != CH_RUNNING or ch.ring is None:
                self._violate(
                    "MHI-DB-CHANNEL", f"doorbell for channel {n} which is not running", f"CHDB({n})"
                )
                return
            wp = self.regs.chdb[n]
            if not ch.ring.valid(wp):
                self._violate(
                    "MHI-RING-PTR",
                    f"channel {n} doorbell 0x{wp:x} outside its ring "
                    f"0x{ch.ring.rbase:x}+{ch.ring.rlen}",
                    f"CHDB({n})",
                )
                return
            ch.ring.wp = wp
            if ch.to_device:
                self.ul_dirty.add(n)
        elif kind == "bhi-txdb":
            if self.ee != EE_PBL:
                self._violate(
                    "BHI-NOT-PBL",
                    f"BHI_IMGTXDB written in EE {EE_NAMES.get(self.ee)}",
                    "BHI_IMGTXDB",
                )
            else:
                self.bhi_pending = True
        elif kind == "soc-reset":
            self.soc_reset_pending = True

    def _mapped(self, addr: int, length: int) -> bool:
        mapped = getattr(self.mem, "mapped", None)
        if mapped is not None:
            return bool(mapped(addr, length))
        try:
            self.mem.read(addr, length)
        except DmaFault:
            return False
        return True

    # -- actions ------------------------------------------------------------------
    def actions(self) -> list[tuple[Any, ...]]:
        """The MHI work possible now, in a fixed order."""
        out: list[tuple[Any, ...]] = []
        if self.soc_reset_pending:
            out.append(("soc-reset",))
        if self.req_reset:
            out.append(("mhi-reset",))
        if self.bhi_pending:
            out.append(("bhi-load",))
        if (
            self.want_ready
            and self.state == ST_RESET
            and not self.req_reset
            and not self.regs.core[R.MHICTRL] & R.MHICTRL_RESET
        ):
            out.append(("ready",))
        if self.req_state is not None and not self.req_reset:
            out.append(("state", self.req_state))
        if self.cmd_pending and self.cmd_ring is not None and self.state == ST_M0:
            out.append(("cmd",))
        if self.state == ST_M0:
            for n in sorted(self.ul_dirty):
                if self._td_ready(self.channels[n]):
                    out.append(("ul", n))
            for ch in self.channels:
                if (
                    not ch.to_device
                    and ch.outbox
                    and ch.state == CH_RUNNING
                    and ch.ring is not None
                    and ch.ring.rp != ch.ring.wp
                ):
                    out.append(("dl", ch.num))
        if self.pending_events and self._ring_room():
            out.append(("events",))
        return out

    def step(self, action: tuple[Any, ...]) -> None:
        kind = action[0]
        if kind == "soc-reset":
            self.soc_reset_pending = False
            self._log("soc-reset")
        elif kind == "mhi-reset":
            self._mhi_reset()
        elif kind == "bhi-load":
            self._bhi_load()
        elif kind == "ready":
            self._enter_ready()
        elif kind == "state":
            self._state_request(action[1])
        elif kind == "cmd":
            self._process_cmds()
        elif kind == "ul":
            self._ul(self.channels[action[1]])
        elif kind == "dl":
            self._dl(self.channels[action[1]])
        elif kind == "events":
            self._flush_events()
        self._flush_events()

    # -- events (M3, M4) ----------------------------------------------------------
    def _ring_room(self) -> bool:
        if not self.pending_events:
            return False
        ring = self.ev_rings.get(self.pending_events[0][0])
        return ring is not None and ring.rp != ring.wp

    def _queue_event(self, er: int, el: bytes) -> None:
        self.pending_events.append((er, el))

    def _flush_events(self) -> None:
        raised: set[int] = set()
        while self.pending_events:
            er, el = self.pending_events[0]
            ring = self.ev_rings.get(er)
            if ring is None:
                self.pending_events.popleft()  # the ring went away (MHI reset)
                continue
            if ring.rp == ring.wp:
                break  # full: wait for the host to recycle elements
            try:
                self.mem.write(ring.rp, el)
                ring.rp = ring.next(ring.rp)
                self.mem.write(ring.ctx_addr + _CTX_RP, struct.pack("<Q", ring.rp))
            except DmaFault as e:
                self._violate(
                    "MHI-DMA-FAULT",
                    f"event ring {er} write at 0x{e.addr:x} is outside guest memory",
                    f"event ring {er}",
                )
                del self.ev_rings[er]
                continue
            self.pending_events.popleft()
            raised.add(self._ev_vector(er))
        for v in sorted(raised):
            self._raise(v)

    def _ev_vector(self, er: int) -> int:
        ring = self.ev_rings.get(er)
        return ring.msivec if ring is not None else 0

    def _raise(self, vector: int) -> None:
        self.msis += 1
        self.msi(vector)

    def _intvec(self) -> None:
        """An MSI on BHI_INTVEC (M8, M9)."""
        self._raise(self.regs.bhi[R.BHI_INTVEC])

    def _state_event(self, state: int) -> None:
        self._queue_event(0, _EL.pack(0, state << 24, EV_STATE_CHANGE << 16))

    def _ee_event(self, ee: int) -> None:
        self._queue_event(0, _EL.pack(0, ee << 24, EV_EE << 16))

    # -- state machine (M6, M8, M9) -------------------------------------------------
    def _running_channels(self) -> set[int]:
        return {c.num for c in self.channels if c.state != CH_DISABLED}

    def _mhi_reset(self) -> None:
        """MHICTRL.RESET: drop every ring, back to MHI RESET; READY again out of PBL."""
        self.req_reset = False
        self.req_state = None
        stale = self._running_channels()
        for ch in self.channels:
            if ch.state != CH_DISABLED or ch.outbox:
                ch.state, ch.ring = CH_DISABLED, None
                ch.outbox.clear()
                ch.out_off = 0
        self.ev_rings.clear()
        self.cmd_ring = None
        self.pending_events.clear()
        self.cmd_pending = False
        self.ul_dirty.clear()
        self.dropped = stale  # the host may still ring them once (a race, not an error)
        self.regs.set(R.MHICTRL, 0)
        self.regs.set(R.MHISTATUS, 0)
        self.regs.set_bhi(R.BHI_INTVEC, 0)
        self.on_channel(-1, "mhi-reset")
        if self.ee != EE_PBL:
            self.want_ready = True
        self._log("state", "RESET")

    def _enter_ready(self) -> None:
        if self.ready_ee is not None:
            self.regs.set_bhi(R.BHI_EXECENV, self.ready_ee)
            self._log("ee", EE_NAMES[self.ready_ee])
            self.ready_ee = None
        self.want_ready = False
        self.regs.set_mhi_state(ST_READY, ready=True, syserr=False)
        self._log("state", "READY")

    def _state_request(self, want: int) -> None:
        self.req_state = None
        cur = self.state
        if want == ST_M0 and cur == ST_READY:
            if not self._init_contexts():
                return
            self.regs.set_mhi_state(ST_M0)
            self._log("state", "M0")
            self._state_event(ST_M0)
            self._ee_event(self.ee)
        elif want == ST_M0 and cur == ST_M3:
            self.regs.set_mhi_state(ST_M0)
            self._log("state", "M0")
            self._state_event(ST_M0)
        elif want == ST_M3 and cur == ST_M0:
            self.regs.set_mhi_state(ST_M3)
            self._log("state", "M3")
            self._state_event(ST_M3)
        elif want == cur:
            pass
        else:
            self._violate(
                "MHI-STATE-REQ",
                f"host asked for {STATE_NAMES.get(want, want)} in {STATE_NAMES.get(cur, cur)}",
                "MHICTRL",
            )

    def _read_ctx(self, addr: int, what: str) -> tuple[int, ...] | None:
        try:
            return _CTX.unpack(self.mem.read(addr, CTX_SIZE))
        except DmaFault:
            self._violate(
                "MHI-CTX-FAULT", f"{what} context at 0x{addr:x} is outside guest memory", what
            )
            return None

    def _ring_from_ctx(self, name: str, ctx_addr: int) -> tuple[Ring, tuple[int, ...]] | None:
        c = self._read_ctx(ctx_addr, name)
        if c is None:
            return None
        rbase, rlen, rp, wp = c[3], c[4], c[5], c[6]
        if rlen == 0 or rlen % EL_SIZE or rbase % EL_SIZE:
            self._violate(
                "MHI-RING-LEN",
                f"{name}: rbase 0x{rbase:x} rlen {rlen} is not a ring of 16-byte elements",
                name,
            )
            return None
        if not self._mapped(rbase, rlen):
            self._violate(
                "MHI-DMA-FAULT", f"{name}: ring 0x{rbase:x}+{rlen} is outside guest memory", name
            )
            return None
        ring = Ring(name, ctx_addr, rbase, rlen, rp, wp)
        if not ring.valid(rp) or not ring.valid(wp):
            self._violate(
                "MHI-RING-PTR",
                f"{name}: rp 0x{rp:x} / wp 0x{wp:x} outside ring 0x{rbase:x}+{rlen}",
                name,
            )
            return None
        return ring, c

    def _init_contexts(self) -> bool:
        """READY -> M0: read the event and command contexts the host set up (M1)."""
        ner = (self.regs.core[R.MHICFG] >> 16) & 0xFF
        if not 1 <= ner <= R.MAX_EV_RINGS:
            self._violate("MHI-CFG-NER", f"MHICFG.NER is {ner}", "MHICFG")
            return False
        ecab = self.regs.u64(R.ECABAP_LOWER)
        for i in range(ner):
            r = self._ring_from_ctx(f"event ring {i}", ecab + i * CTX_SIZE)
            if r is None:
                return False
            ring, c = r
            ring.msivec = c[2]
            self.ev_rings[i] = ring
        r = self._ring_from_ctx("command ring", self.regs.u64(R.CRCBAP_LOWER))
        if r is None:
            self.ev_rings.clear()
            return False
        self.cmd_ring = r[0]
        return True

    def _bhi_load(self) -> None:
        """M8: PBL pulls the image named by IMGADDR/IMGSIZE and validates it."""
        self.bhi_pending = False
        b = self.regs.bhi
        addr = b[R.BHI_IMGADDR_LOW] | (b[R.BHI_IMGADDR_HIGH] << 32)
        size = b[R.BHI_IMGSIZE]
        code = 0
        img = b""
        try:
            img = bytes(self.mem.read(addr, size)) if size else b""
        except DmaFault:
            self._violate(
                "BHI-DMA-FAULT",
                f"BHI image 0x{addr:x}+{size} is outside guest memory",
                "BHI_IMGADDR",
            )
            code = 0x1
        if not code:
            code = 0x2 if not img else self.image_check(img)
        if code:
            self.regs.set_bhi(R.BHI_ERRCODE, code)
            self.regs.set_bhi(R.BHI_ERRDBG1, size)
            self.regs.set_bhi(R.BHI_STATUS, R.BHI_STATUS_ERROR << R.BHI_STATUS_SHIFT)
            self._log("bhi", "error", code)
        else:
            self.regs.set_bhi(R.BHI_STATUS, R.BHI_STATUS_SUCCESS << R.BHI_STATUS_SHIFT)
            self._log("bhi", "success", size)
            self.on_bhi_image(img)
            # PBL jumps to SBL; SBL brings MHI to READY in EE SBL (seed 003 Boot Flow)
            self.ready_ee = EE_SBL
            self.want_ready = True
        self._intvec()

    def set_ee(self, ee: int) -> None:
        """The firmware moves to ``ee`` (SBL -> AMSS): EXECENV and an EE event (M6)."""
        self.left_ee = self.ee
        self.regs.set_bhi(R.BHI_EXECENV, ee)
        self._log("ee", EE_NAMES.get(ee, ee))
        if self.state == ST_M0:
            self._ee_event(ee)
        self._flush_events()

    def sys_err(self, *, event: bool = True) -> None:
        """M9: the device enters SYS_ERR (``event``: policy sys-err-report)."""
        self.regs.set_mhi_state(ST_SYS_ERR, syserr=True)
        self._log("state", "SYS_ERR")
        if event and 0 in self.ev_rings:
            self._state_event(ST_SYS_ERR)
            self._flush_events()
        self._intvec()

    def reboot_pbl(self, *, announce: bool) -> None:
        """SoC reset: power on again in PBL (policy soc-reset-notify).

        Doorbells for channels that ran before are ignored, not violations: qaic_ras.c
        re-queues its receive buffer right after its own mhi_soc_reset (7.2)."""
        stale = self._running_channels()
        self._power_on(EE_PBL)
        self.dropped = stale
        self.on_channel(-1, "mhi-reset")
        if announce:
            self.regs.set_mhi_state(ST_SYS_ERR, syserr=True)
            self._intvec()
