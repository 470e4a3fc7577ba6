"""A fake MHI host for the board tests: pokes BAR0 the way drivers/bus/mhi/host does.

Our own reading of the host (init.c context set-up and mhi_init_mmio, pm.c
power-up/READY/M0, boot.c BHI, main.c rings and events), small enough to see
at once.  Guest memory is a bytearray with the GuestMemory interface.
"""

from __future__ import annotations

import struct
from typing import Any

from qaicmodel.emu import firmware
from qaicmodel.emu import mhi_regs as R
from qaicmodel.emu._model import DmaFault, boot
from qaicmodel.emu.board import Board

EL = struct.Struct("<QII")
CTX = 44


class FakeMem:
    """Guest memory: one region [base, base+size) backed by a bytearray."""

    def __init__(self, base: int = 0x3000_0000, size: int = 8 << 20) -> None:
        self.base = base
        self.size = size
        self.buf = bytearray(size)
        self.next = base

    def mapped(self, addr: int, length: int) -> bool:
        return self.base <= addr and addr + length <= self.base + self.size and length >= 0

    def _off(self, addr: int, length: int) -> int:
        if not self.mapped(addr, length):
            raise DmaFault(addr, length)
        return addr - self.base

    def read(self, addr: int, length: int) -> bytes:
        o = self._off(addr, length)
        return bytes(self.buf[o : o + length])

    def write(self, addr: int, data: Any) -> None:
        data = bytes(data)
        o = self._off(addr, len(data))
        self.buf[o : o + len(data)] = data

    def view(self, addr: int, length: int) -> memoryview:
        o = self._off(addr, length)
        return memoryview(self.buf)[o : o + length]

    def alloc(self, size: int, align: int = 4096) -> int:
        a = (self.next + align - 1) // align * align
        self.next = a + size
        assert self.next <= self.base + self.size
        return a


class Chan:
    def __init__(self, num: int, rbase: int, n: int) -> None:
        self.num, self.rbase, self.n = num, rbase, n
        self.wp = rbase
        self.bufs: dict[int, tuple[int, int]] = {}  # TRE addr -> (buffer, len)
        self.partial = b""
        self.got: list[bytes] = []
        self.done = 0  # to-device TREs completed


class FakeHost:
    def __init__(self, board: Board | None = None, **kw: Any) -> None:
        self.b = board or Board(**kw)
        self.mem = FakeMem()
        self.msis: list[int] = []
        self.b.attach(self.mem, self.msis.append)
        self.chans: dict[int, Chan] = {}
        self.states: list[int] = []
        self.ees: list[int] = []
        self.cc: list[int] = []
        self.ctx_ready = False

    # -- registers --------------------------------------------------------------
    def r(self, off: int) -> int:
        return self.b.bar_read(0, off, 4)

    def w(self, off: int, v: int) -> None:
        self.b.bar_write(0, off, 4, v)

    def bhi(self, off: int) -> int:
        return self.r(self.r(R.BHIOFF) + off)

    def run(self) -> int:
        return self.b.run()

    # -- contexts (init.c mhi_init_dev_ctxt) ------------------------------------
    def init_ctx(self) -> None:
        m = self.mem
        self.chan_ctx = m.alloc(128 * CTX)
        self.er_ctx = m.alloc(CTX)
        self.cmd_ctx = m.alloc(CTX)
        self.er_len = 32 * 16
        self.er_base = m.alloc(self.er_len, self.er_len)
        self.er_rp = self.er_base
        m.write(
            self.er_ctx,
            struct.pack("<IIIQQQQ", 0, 1, 0, self.er_base, self.er_len, self.er_base, self.er_base),
        )
        self.cmd_len = 128 * 16
        self.cmd_base = m.alloc(self.cmd_len, self.cmd_len)
        self.cmd_wp = self.cmd_base
        m.write(
            self.cmd_ctx,
            struct.pack(
                "<IIIQQQQ", 0, 0, 0, self.cmd_base, self.cmd_len, self.cmd_base, self.cmd_base
            ),
        )
        self.ctx_ready = True

    def init_mmio(self) -> None:
        for lo, addr in (
            (R.CCABAP_LOWER, self.chan_ctx),
            (R.ECABAP_LOWER, self.er_ctx),
            (R.CRCBAP_LOWER, self.cmd_ctx),
        ):
            self.w(lo + 4, addr >> 32)
            self.w(lo, addr & 0xFFFFFFFF)
        cfg = self.r(R.MHICFG)
        self.w(R.MHICFG, (cfg & ~0x00FF0000) | (1 << 16))
        # SW event ring: wp = base + len - el (pm.c mhi_ready_state_transition)
        wp = self.er_base + self.er_len - 16
        self.mem.write(self.er_ctx + 36, struct.pack("<Q", wp))
        self.ring_er(wp)

    def ring_er(self, wp: int) -> None:
        db = self.r(R.ERDBOFF)
        self.w(db + 4, wp >> 32)
        self.w(db, wp & 0xFFFFFFFF)

    def set_state(self, st: int) -> None:
        v = self.r(R.MHICTRL)
        self.w(R.MHICTRL, (v & ~0xFF00) | (st << 8))

    # -- power up (pm.c mhi_async_power_up and the st_worker) ----------------------
    def power_up(self, sbl: bytes | None = None) -> None:
        if not self.ctx_ready:
            self.init_ctx()
        self.w(self.r(R.BHIOFF) + R.BHI_INTVEC, 0)
        ee = self.bhi(R.BHI_EXECENV)
        if ee == 0:
            self.bhi_load(firmware.make_image(0) if sbl is None else sbl)
            assert self.bhi(R.BHI_STATUS) >> 30 == R.BHI_STATUS_SUCCESS
        self.ready_and_m0()

    def bhi_load(self, img: bytes) -> None:
        buf = self.mem.alloc(len(img))
        self.mem.write(buf, img)
        base = self.r(R.BHIOFF)
        self.w(base + R.BHI_STATUS, 0)
        self.w(base + R.BHI_IMGADDR_HIGH, buf >> 32)
        self.w(base + R.BHI_IMGADDR_LOW, buf & 0xFFFFFFFF)
        self.w(base + R.BHI_IMGSIZE, len(img))
        self.w(base + R.BHI_IMGTXDB, 0x1234)
        self.run()

    def ready_and_m0(self) -> None:
        self.run()
        assert not self.r(R.MHICTRL) & R.MHICTRL_RESET
        assert self.r(R.MHISTATUS) & R.MHISTATUS_READY, self.b.status()
        self.init_mmio()
        self.set_state(2)
        self.pump()

    def pump(self, rounds: int = 50) -> None:
        """Let the device run and take every event, until nothing moves."""
        for _ in range(rounds):
            n = self.run()
            e = self.events()
            if not n and not e:
                return

    # -- events (main.c mhi_process_ctrl_ev_ring) -------------------------------------
    def events(self) -> int:
        (dev_rp,) = struct.unpack("<Q", self.mem.read(self.er_ctx + 28, 8))
        count = 0
        while self.er_rp != dev_rp:
            ptr, d0, d1 = EL.unpack(self.mem.read(self.er_rp, 16))
            t = (d1 >> 16) & 0xFF
            if t == 0x20:
                self.states.append(d0 >> 24)
            elif t == 0x40:
                self.ees.append(d0 >> 24)
            elif t == 0x21:
                self.cc.append(d0 >> 24)
            elif t == 0x22:
                self.tx_event(d1 >> 24, ptr, d0 >> 24, d0 & 0xFFFF)
            self.er_rp += 16
            if self.er_rp >= self.er_base + self.er_len:
                self.er_rp = self.er_base
            count += 1
        if count:
            (wp,) = struct.unpack("<Q", self.mem.read(self.er_ctx + 36, 8))
            for _ in range(count):
                wp += 16
                if wp >= self.er_base + self.er_len:
                    wp = self.er_base
            self.mem.write(self.er_ctx + 36, struct.pack("<Q", wp))
            self.ring_er(wp)
        return count

    def tx_event(self, ch: int, ptr: int, code: int, ln: int) -> None:
        c = self.chans[ch]
        if ch % 2 == 0:
            c.done += 1
            return
        buf, _blen = c.bufs.pop(ptr)
        c.partial += self.mem.read(buf, ln)
        if code == 2:  # EOT
            c.got.append(c.partial)
            c.partial = b""

    # -- commands ------------------------------------------------------------------
    def cmd(self, ctype: int, ch: int) -> int:
        self.mem.write(self.cmd_wp, EL.pack(0, 0, (ch << 24) | (ctype << 16)))
        self.cmd_wp += 16
        if self.cmd_wp >= self.cmd_base + self.cmd_len:
            self.cmd_wp = self.cmd_base
        self.mem.write(self.cmd_ctx + 36, struct.pack("<Q", self.cmd_wp))
        self.w(R.CRDB_HIGHER, self.cmd_wp >> 32)
        self.w(R.CRDB_LOWER, self.cmd_wp & 0xFFFFFFFF)
        n = len(self.cc)
        self.pump()
        assert len(self.cc) > n, "no command completion"
        return self.cc[-1]

    def start(self, ch: int, elements: int = 32) -> int:
        ln = elements * 16
        rbase = self.mem.alloc(ln, ln)
        self.mem.write(
            self.chan_ctx + ch * CTX,
            struct.pack("<IIIQQQQ", 1, 1 if ch % 2 == 0 else 2, 0, rbase, ln, rbase, rbase),
        )
        self.chans[ch] = Chan(ch, rbase, elements)
        return self.cmd(18, ch)

    def open(self, ul: int, elements: int = 32) -> None:
        assert self.start(ul, elements) == 1
        assert self.start(ul + 1, elements) == 1

    def _tre(self, c: Chan, buf: int, ln: int, flags: int) -> None:
        self.mem.write(c.wp, EL.pack(buf, ln, (2 << 16) | flags))
        c.bufs[c.wp] = (buf, ln)
        c.wp += 16
        if c.wp >= c.rbase + c.n * 16:
            c.wp = c.rbase

    def _ring(self, c: Chan) -> None:
        self.mem.write(self.chan_ctx + c.num * CTX + 36, struct.pack("<Q", c.wp))
        db = self.r(R.CHDBOFF) + 8 * c.num
        self.w(db + 4, c.wp >> 32)
        self.w(db, c.wp & 0xFFFFFFFF)

    def send(self, ch: int, data: bytes, chunk: int = 0xFFFF) -> None:
        """A to-device transfer: buffers of at most ``chunk`` chained, the last with EOT."""
        c = self.chans[ch]
        parts = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
        for i, p in enumerate(parts):
            buf = self.mem.alloc(max(len(p), 1), 16)
            self.mem.write(buf, p)
            last = i == len(parts) - 1
            self._tre(c, buf, len(p), (1 << 9) if last else 1)
        self._ring(c)

    def post_rx(self, ch: int, size: int, n: int = 1) -> None:
        c = self.chans[ch]
        for _ in range(n):
            self._tre(c, self.mem.alloc(size, 16), size, 1 << 9)
        self._ring(c)

    def recv(self, ch: int) -> list[bytes]:
        got, self.chans[ch].got = self.chans[ch].got, []
        return got

    # -- services --------------------------------------------------------------------
    def sahara(self, images: dict[int, bytes] | None = None, limit: int = 200) -> Any:
        """Serve Sahara the way sahara.c does, with the model's host side."""
        if images is None:
            images = {i: firmware.make_image(i) for i in firmware.AIC100_IMAGE_IDS}
        host = boot.HostSahara(images)
        self.open(2)
        self.post_rx(3, 0xFFFF)
        for _ in range(limit):
            self.pump()
            msgs = self.recv(3)
            if not msgs:
                break
            for m in msgs:
                for reply in host.on_packet(m):
                    self.send(2, reply)
                self.post_rx(3, 0xFFFF)
        return host
