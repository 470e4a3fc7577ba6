"""The MHI device's command ring and transfer rings (rules M5, M7 of :mod:`qaicmodel.emu.mhi_dev`).

A mixin of :class:`~qaicmodel.emu.mhi_dev.MhiDevice`: it uses the device's ``mem``,
``regs``, ``channels``, ``cmd_ring``, ``ev_rings`` and its event and violation helpers.
"""

from __future__ import annotations

import collections
import struct
from collections.abc import Callable
from typing import Any

from qaicmodel.emu import mhi_regs as R
from qaicmodel.emu._model import DmaFault
from qaicmodel.emu.mhi_defs import (
    _CTX_RP,
    _EL,
    CC_EOB,
    CC_EOT,
    CC_OVERFLOW,
    CC_SUCCESS,
    CC_UNDEFINED_ERR,
    CH_DISABLED,
    CH_ERROR,
    CH_RUNNING,
    CH_STOP,
    CMD_NAMES,
    CMD_NOP,
    CMD_START,
    CMD_STOP,
    CTX_SIZE,
    EE_NAMES,
    EL_SIZE,
    EV_CMD_COMPLETION,
    EV_TX,
    PKT_TRANSFER,
    TRE_CHAIN,
    TRE_IEOB,
    TRE_IEOT,
    Channel,
    Ring,
)

__all__ = ["RingWork"]


class RingWork:
    """Commands (M7) and transfers (M5) for :class:`~qaicmodel.emu.mhi_dev.MhiDevice`."""

    # provided by MhiDevice
    mem: Any
    regs: R.MhiRegs
    channels: list[Channel]
    cmd_ring: Ring | None
    ev_rings: dict[int, Ring]
    ul_dirty: set[int]
    dropped: set[int]
    left_ee: int | None
    channel_ok: Callable[[int, int], bool]
    on_channel: Callable[[int, str], None]
    on_message: Callable[[int, bytes], None]
    cmd_pending: bool
    pending_events: collections.deque[tuple[int, bytes]]

    @property
    def ee(self) -> int:
        return self.regs.ee

    def _violate(self, rule: str, message: str, where: str) -> None:
        raise NotImplementedError

    def _log(self, *ev: Any) -> None:
        raise NotImplementedError

    def _queue_event(self, er: int, el: bytes) -> None:
        raise NotImplementedError

    def _ring_from_ctx(self, name: str, ctx_addr: int) -> tuple[Ring, tuple[int, ...]] | None:
        raise NotImplementedError

    # -- command ring (M7) ----------------------------------------------------------
    def _process_cmds(self) -> None:
        self.cmd_pending = False
        ring = self.cmd_ring
        assert ring is not None
        db = self.regs.crdb
        if not ring.valid(db):
            self._violate(
                "MHI-RING-PTR",
                f"command doorbell 0x{db:x} outside the command ring 0x{ring.rbase:x}+{ring.rlen}",
                "CRDB",
            )
            return
        ring.wp = db
        while ring.rp != ring.wp:
            at = ring.rp
            try:
                _ptr, _d0, d1 = _EL.unpack(self.mem.read(at, EL_SIZE))
            except DmaFault:
                self._violate(
                    "MHI-DMA-FAULT",
                    f"command element 0x{at:x} is outside guest memory",
                    "command ring",
                )
                self.cmd_ring = None
                return
            code = self._command((d1 >> 16) & 0xFF, (d1 >> 24) & 0xFF)
            self._queue_event(0, _EL.pack(at, code << 24, EV_CMD_COMPLETION << 16))
            ring.rp = ring.next(at)
        try:
            self.mem.write(ring.ctx_addr + _CTX_RP, struct.pack("<Q", ring.rp))
        except DmaFault:
            pass

    def _set_chstate(self, ch: Channel, state: int) -> None:
        addr = self.regs.u64(R.CCABAP_LOWER) + ch.num * CTX_SIZE
        try:
            (cfg,) = struct.unpack("<I", self.mem.read(addr, 4))
            self.mem.write(addr, struct.pack("<I", (cfg & ~0xFF) | state))
        except DmaFault:
            self._violate(
                "MHI-CTX-FAULT",
                f"channel {ch.num} context at 0x{addr:x} is outside guest memory",
                f"channel {ch.num}",
            )

    def _command(self, ctype: int, chid: int) -> int:
        name = CMD_NAMES.get(ctype)
        if name is None:
            self._violate("MHI-CMD-UNKNOWN", f"command type 0x{ctype:x}", "command ring")
            return CC_UNDEFINED_ERR
        if ctype == CMD_NOP:
            return CC_SUCCESS
        self._log("cmd", name, chid)
        if (
            chid in self.dropped
            or (self.left_ee is not None and self.channel_ok(chid, self.left_ee))
        ) and not self.channel_ok(chid, self.ee):
            # a channel of the previous EE, commanded after the EE change: the host's
            # client had not yet seen the change (a race of the driver's workers, e.g. the
            # SBL timesync client against the AMSS transition): answered as an error and
            # traced, like a doorbell on a dropped channel, not a rule the host broke
            self._log("late-cmd", name, chid)
            return CC_UNDEFINED_ERR
        if chid >= R.WAKE_DB_CHANNEL or not self.channel_ok(chid, self.ee):
            self._violate(
                "MHI-CHAN-UNKNOWN",
                f"{name} for channel {chid}, which the device "
                f"does not serve in {EE_NAMES.get(self.ee)}",
                f"channel {chid}",
            )
            return CC_UNDEFINED_ERR
        ch = self.channels[chid]
        self.dropped.discard(chid)
        if ctype == CMD_START:
            r = self._ring_from_ctx(
                f"channel {chid}", self.regs.u64(R.CCABAP_LOWER) + chid * CTX_SIZE
            )
            if r is None:
                return CC_UNDEFINED_ERR
            ring, c = r
            er = c[2]
            if er not in self.ev_rings:
                self._violate(
                    "MHI-CHAN-ERINDEX", f"channel {chid} names event ring {er}", f"channel {chid}"
                )
                return CC_UNDEFINED_ERR
            ch.ring, ch.er_index, ch.state = ring, er, CH_RUNNING
            ch.out_off = 0
            self._set_chstate(ch, CH_RUNNING)
            if ch.to_device and ring.rp != ring.wp:
                self.ul_dirty.add(chid)
            self.on_channel(chid, "start")
        elif ctype == CMD_STOP:
            if ch.state != CH_RUNNING:
                self._violate(
                    "MHI-CHAN-STATE",
                    f"STOP for channel {chid} which is not running",
                    f"channel {chid}",
                )
                return CC_UNDEFINED_ERR
            ch.state = CH_STOP
            self._set_chstate(ch, CH_STOP)
            self.on_channel(chid, "stop")
        else:  # RESET
            ch.state, ch.ring = CH_DISABLED, None
            ch.outbox.clear()
            ch.out_off = 0
            self.ul_dirty.discard(chid)
            self._set_chstate(ch, CH_DISABLED)
            self.on_channel(chid, "reset")
        return CC_SUCCESS

    # -- transfers (M5) -------------------------------------------------------------
    def _read_tre(self, ch: Channel, at: int) -> tuple[int, int, int] | None:
        try:
            ptr, d0, d1 = _EL.unpack(self.mem.read(at, EL_SIZE))
        except DmaFault:
            self._violate(
                "MHI-DMA-FAULT",
                f"channel {ch.num} TRE 0x{at:x} is outside guest memory",
                f"channel {ch.num}",
            )
            self._chan_error(ch)
            return None
        return ptr, d0 & 0xFFFF, d1

    def _chan_error(self, ch: Channel) -> None:
        ch.state = CH_ERROR
        self.ul_dirty.discard(ch.num)
        self._set_chstate(ch, CH_ERROR)

    def _td_ready(self, ch: Channel) -> bool:
        """A whole TD (up to a TRE without CHAIN) sits between rp and wp."""
        ring = ch.ring
        if ch.state != CH_RUNNING or ring is None or ring.rp == ring.wp:
            return False
        at = ring.rp
        while at != ring.wp:
            t = self._read_tre(ch, at)
            if t is None:
                return False
            if not t[2] & TRE_CHAIN:
                return True
            at = ring.next(at)
        return False

    def _ul(self, ch: Channel) -> None:
        """One to-device TD: read every buffer, events as the TREs ask, deliver."""
        ring = ch.ring
        assert ring is not None
        data = bytearray()
        while ring.rp != ring.wp:
            at = ring.rp
            t = self._read_tre(ch, at)
            if t is None:
                return
            ptr, ln, d1 = t
            if (d1 >> 16) & 0xFF != PKT_TRANSFER:
                self._violate(
                    "MHI-TRE-TYPE",
                    f"channel {ch.num} TRE 0x{at:x} has type 0x{(d1 >> 16) & 0xFF:x}",
                    f"channel {ch.num}",
                )
            try:
                data += self.mem.read(ptr, ln)
            except DmaFault:
                self._violate(
                    "MHI-DMA-FAULT",
                    f"channel {ch.num} buffer 0x{ptr:x}+{ln} is outside guest memory",
                    f"channel {ch.num}",
                )
                self._chan_error(ch)
                return
            chain = bool(d1 & TRE_CHAIN)
            if chain and d1 & TRE_IEOB:
                self._queue_event(
                    ch.er_index, _EL.pack(at, (CC_EOB << 24) | ln, (ch.num << 24) | (EV_TX << 16))
                )
            elif not chain and d1 & TRE_IEOT:
                self._queue_event(
                    ch.er_index, _EL.pack(at, (CC_EOT << 24) | ln, (ch.num << 24) | (EV_TX << 16))
                )
            ring.rp = ring.next(at)
            if not chain:
                break
        self._store_rp(ch)
        if not self._td_ready(ch):
            self.ul_dirty.discard(ch.num)
        self._log("ul", ch.num, len(data))
        self.on_message(ch.num, bytes(data))

    def _store_rp(self, ch: Channel) -> None:
        ring = ch.ring
        if ring is None:
            return
        try:
            self.mem.write(ring.ctx_addr + _CTX_RP, struct.pack("<Q", ring.rp))
        except DmaFault:
            pass

    def _dl(self, ch: Channel) -> None:
        """Fill host TREs with the next from-device message (OVERFLOW then EOT)."""
        ring = ch.ring
        assert ring is not None
        msg = ch.outbox[0]
        while ring.rp != ring.wp:
            at = ring.rp
            t = self._read_tre(ch, at)
            if t is None:
                return
            ptr, ln, _d1 = t
            part = msg[ch.out_off : ch.out_off + ln]
            try:
                self.mem.write(ptr, part)
            except DmaFault:
                self._violate(
                    "MHI-DMA-FAULT",
                    f"channel {ch.num} buffer 0x{ptr:x}+{ln} is outside guest memory",
                    f"channel {ch.num}",
                )
                self._chan_error(ch)
                return
            ch.out_off += len(part)
            done = ch.out_off >= len(msg)
            code = CC_EOT if done else CC_OVERFLOW
            self._queue_event(
                ch.er_index, _EL.pack(at, (code << 24) | len(part), (ch.num << 24) | (EV_TX << 16))
            )
            ring.rp = ring.next(at)
            if done:
                ch.outbox.popleft()
                ch.out_off = 0
                self._log("dl", ch.num, len(msg))
                break
        self._store_rp(ch)

    def send(self, ch: int, data: bytes) -> None:
        """Queue a from-device message on channel ``ch`` (odd)."""
        self.channels[ch].outbox.append(bytes(data))

    def running(self, ch: int) -> bool:
        return self.channels[ch].state == CH_RUNNING

    def host_buffers(self, ch: int) -> int:
        """How many receive TREs the host has posted on channel ``ch``."""
        c = self.channels[ch]
        if c.ring is None:
            return 0
        return ((c.ring.wp - c.ring.rp) % c.ring.rlen) // EL_SIZE
