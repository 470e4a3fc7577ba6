"""The board that injects the faults of :mod:`qaicmodel.emu.faults` (rules F2-F5 there).

:class:`FaultBoard` is the data-path board (:mod:`qaicmodel.emu.datapath`) with one armed
fault at a time: control faults change the QSM's replies on QAIC_CONTROL (the model's
``Injector``, :mod:`qaicmodel.spec.control.faults`), data-path and MHI faults act on a
response, a register read, an MSI or the firmware's state.

Rule FB1 (docs/findings.md F12): for ``nnc-orphan-deactivate`` the board follows the
channel it named from the moment the message reached a host receive buffer (the MHI
transfer on QAIC_CONTROL's channel 11; qaic_control.c ``resp_worker`` ->
``decode_deactivate`` -> qaic_data.c ``release_dbc`` then frees the channel's FIFOs,
linux-source-7.2): whether the QSM still held the channel then, for how many board steps
it kept it and what ended that (the host request the QSM released it for, or a reset),
and every DMA Bridge access the device made into the freed FIFO block (responses written,
request elements read, DMA transfers overlapping it) -- writes the guest's KASAN cannot see.

Rule FB2 (faults.py F6): for the ``nnc-dma-*`` faults the board counts, per non-zero
``dma_chunk_id``, the bytes the host's DMA_XFER_TO_DEV transactions named (the driver's
``resources->xferred_dma_size``, qaic_control.c ``encode_addr_size_pairs``,
linux-source-7.2) and the host's aborts (a lone DMA_XFER_TO_DEV of that chunk id with
count 0: ``abort_dma_cont``).  ``nnc-dma-cont-after-done`` holds the QSM's answer to the
last chunk and asks for a continuation at the whole size instead; an abort is answered
with the next request, or after ``{t}`` requests with the held answer (its sequence
number the abort's: replies are matched by it).  ``nnc-dma-cont-past-end`` answers the
first chunk with a continuation past the end; the QSM keeps the transfer open until the
host aborts it or the episode ends, which the record says.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from pathlib import Path
from typing import Any

import attrs

from qaicmodel.emu.board import QTIMER_TICKS_PER_STEP
from qaicmodel.emu.datapath import DatapathBoard
from qaicmodel.emu.faults import FAULTS, DeviceFault, fault, trigger
from qaicmodel.emu.mhi_dev import EE_AMSS
from qaicmodel.emu.services import trans_names
from qaicmodel.emu.tracing import DBC_BASE, DBC_STRIDE
from qaicmodel.errors import DecodeError, UmlError
from qaicmodel.spec.control import faults as cfaults
from qaicmodel.spec.control import nnc
from qaicmodel.spec.control import qsm_records as QR
from qaicmodel.spec.control.crc import nnc_crc

__all__ = ["FaultBoard"]

_RSP_TP = 0xC  # DBC register offsets (spec/dbc/regs.py)
_RSP_HP = 0x8
_TO_DEV, _FROM_DEV = 1, 2  # a request's DMA direction (aic100.rst "Request FIFO", pcie_dma_cmd)
_TARGET = {1: "StatusToDev", 2: "ActivateToDev"}  # the control faults' trigger (F3)
#: the faults whose trigger is the n-th data-path response of the episode
_RESPONSE_TRIGGERED = frozenset(
    n for n, f in FAULTS.items() if f.layer != "nnc" or n == "nnc-orphan-deactivate"
)
_DMA_FAULTS = frozenset(n for n, f in FAULTS.items() if f.workload == "dma")  # FB2


@attrs.define
class _Released:
    """FB1: the channel the unsolicited deactivate named, as the device treats it after."""

    dbc: int
    msg: bytes  # the message, until it reaches a host buffer
    req_q: int = 0
    end: int = 0  # the FIFO block is [req_q, end): both rings, as the driver allocated them
    delivered: int | None = None  # the board step it reached the host
    t_delivered: float = 0.0
    qsm_listed: bool = False  # the QSM still had the channel activated then
    active_steps: int = 0  # board steps the channel stayed active after that
    active_s: float = 0.0
    ended_by: str | None = None
    rsp_writes: int = 0  # response elements the device wrote into the freed ring
    req_reads: int = 0  # request elements it read from the freed ring
    dma_in: int = 0  # bytes of DMA transfers writing into the freed block
    dma_out: int = 0  # bytes of DMA transfers reading from it
    dbc_dma_in: int = 0  # bytes the channel's own transfers wrote to the host, anywhere

    def overlaps(self, addr: int, n: int) -> bool:
        return n > 0 and addr < self.end and self.req_q < addr + n

    def as_dict(self) -> dict[str, Any]:
        return {
            "dbc": self.dbc,
            "fifo": [self.req_q, self.end],
            "delivered_step": self.delivered,
            "qsm_listed": self.qsm_listed,
            "active_steps": self.active_steps,
            "active_s": round(self.active_s, 3),
            "ended_by": self.ended_by,
            "rsp_writes": self.rsp_writes,
            "req_reads": self.req_reads,
            "dma_in_bytes": self.dma_in,
            "dma_out_bytes": self.dma_out,
            "written_bytes": 4 * self.rsp_writes + self.dma_in,
            "dbc_dma_in_bytes": self.dbc_dma_in,
        }


def _oversize(reply: bytes, extra: int) -> bytes:
    """``reply`` with a PASSTHROUGH_FROM_DEV of ``extra`` bytes appended (len, count fixed)."""
    crc, magic, seq, ln, count, handle, part, pad = struct.unpack_from("<IIIIIIiI", reply)
    body = (
        reply[nnc.HDR_SIZE : ln]
        + struct.pack("<II", nnc.TransType.PASSTHROUGH_FROM_DEV, extra)
        + (b"QAICFLT!" * (extra // 8))[: extra - 8]
    )
    new_len = nnc.HDR_SIZE + len(body)
    msg = struct.pack("<IIIIIIiI", 0, magic, seq, new_len, count + 1, handle, part, pad) + body
    if crc:
        msg = struct.pack("<I", nnc_crc(msg, new_len)) + msg[4:]
    return msg


def _past_4k(reply: bytes) -> bytes:
    """A whole receive buffer (4096 bytes, len 4096, count 1) whose one transaction, a
    PASSTHROUGH_FROM_DEV of len 4096, starts after the 32-byte header and so ends 32
    bytes past the message (qaic_control.c decode_message bounds a transaction by the
    message length, header included)."""
    _crc, magic, seq, _ln, _count, handle, part, pad = struct.unpack_from("<IIIIIIiI", reply)
    size = nnc.MAX_D2H
    body = struct.pack("<II", nnc.TransType.PASSTHROUGH_FROM_DEV, size)
    body += (b"QAIC4KIB" * (size // 8))[: size - nnc.HDR_SIZE - 8]
    return struct.pack("<IIIIIIiI", 0, magic, seq, size, 1, handle, part, pad) + body


class FaultBoard(DatapathBoard):
    """The data-path board with one armed fault at a time (F3-F5)."""

    def __init__(self, *a: Any, seed: int = 0, episode_s: float = 90.0, **kw: Any) -> None:
        kw.setdefault("policies", ["mhi-start-ee=amss"])
        super().__init__(*a, seed=seed, **kw)
        self.run_seed = seed
        self.episode_s = episode_s
        self.active: DeviceFault | None = None
        self.trigger_value = 0
        self.deadline: float | None = None
        self.dumped = False
        self._mconsole: Path | None = None
        self._clear()
        self.mhi.on_message = self._on_message

    def _clear(self) -> None:
        self.injector: cfaults.Injector | None = None
        self.exchanges = 0
        self.requests: list[str] = []  # the transaction kinds of each host request
        self.responses = 0
        self.fired: list[str] = []
        self.pending = False  # a device-side trigger waits for its action (F4)
        self.link_down = False
        self.never_drains: int | None = None  # the dbc whose RSP_TP runs ahead
        self.lost_msis = 0
        self.phantom = 0  # RSP_HP writes that consumed a response the fault made up
        self.held_since: float | None = None
        self.held_wall = 0.0
        self.released: _Released | None = None  # FB1
        self._rx: list[str] = []  # the kinds of the host request the QSM is handling
        # FB2
        self.dma_sent: dict[int, int] = {}  # chunk id -> bytes the host's pairs named
        self.dma_chunk = 0  # the transfer the fault acts on
        self.dma_held: bytes | None = None  # the QSM's answer to the last chunk, held
        self.dma_asks = 0  # continuations the fault asked for
        self.dma_aborts = 0  # the host's aborts of dma_chunk
        self.dma_open: tuple[int, int] | None = None  # (handle, chunk) the QSM keeps open
        self.dma_closed_by: str | None = None  # the host request after which it was not

    # -- episodes (F3) ---------------------------------------------------------------
    def arm(self, name: str) -> None:
        f = fault(name)
        self.power_cycle()
        self._clear()
        self.active = f
        self.trigger_value = trigger(name, self.run_seed)
        if f.control is not None:
            self.injector = cfaults.Injector(f.control, self.run_seed)
        self.deadline = time.monotonic() + self.episode_s
        self.dumped = False

    def disarm(self) -> dict[str, Any]:
        f = self.active
        out: dict[str, Any] = {
            "fault": f.name if f else None,
            "trigger": self.trigger_value,
            "fired": list(self.fired),
            "requests": list(self.requests),
            "responses": self.responses,
        }
        if self.injector is not None:
            out["fired"] += [d for _n, d in self.injector.log]
        if self.phantom:
            out["phantom_consumed"] = self.phantom
        if self.lost_msis:
            out["lost_msis"] = self.lost_msis
        if self.held_wall:
            out["held_s"] = round(self.held_wall, 3)
        if self.released is not None:
            out["released"] = self.released.as_dict()
        if f is not None and f.name in _DMA_FAULTS:
            out["dma"] = {
                "sent": {str(k): v for k, v in self.dma_sent.items()},
                "chunk": self.dma_chunk,
                "asks": self.dma_asks,
                "aborts": self.dma_aborts,
                "held_unsent": self.dma_held is not None,
                "open_transfers": len(self.qsm.loads),
                "closed_by": self.dma_closed_by,
            }
        self.active = None
        self.deadline = None
        self._clear()
        # the driver is unbound and its memory freed: whatever it left queued must never run
        # now (a link-down episode leaves requests the device did not take while the link
        # was down; running them after would DMA into freed guest pages)
        self.power_cycle()
        return out

    def power_cycle(self) -> None:
        """The device powers on again in AMSS with nothing activated (F3)."""
        self._hold = 0
        self.device.reset()
        self.qsm.reset()
        self.services.reset()
        self.workloads.clear()
        self.mhi.boot_in(EE_AMSS)

    # -- control plane ---------------------------------------------------------------------
    def _on_message(self, ch: int, data: bytes) -> None:
        if ch != 10 or self.active is None or self.active.layer != "nnc":
            self.services.on_message(ch, data)
            return
        svc = self.services
        svc._control("h2d", ch, data)
        kinds = trans_names(data, "h2d")
        if self.active.name in _DMA_FAULTS:
            self.exchanges += 1
            self.requests.append(",".join(kinds))
            for r in self._dma_fault(data):
                svc._control("d2h", ch + 1, r)
                self.mhi.send(11, r)
            return
        self._rx = kinds
        try:
            replies = self.qsm.receive(data)
        finally:
            self._rx = []
        n = self.exchanges
        self.exchanges += 1
        self.requests.append(",".join(kinds))
        nth = sum(1 for r in self.requests if kinds and r == ",".join(kinds))
        f = self.active
        target = _TARGET.get(self.trigger_value)
        if self.injector is not None:
            late = self.injector.release()  # held back at an earlier exchange: late now
            if target in kinds and nth == (2 if target == "StatusToDev" else 1):
                replies = list(self.injector.exchange(data, replies).now)
            replies = late + list(replies)
        elif f.name == "nnc-trans-past-4k" and target in kinds and replies:
            if nth == (2 if target == "StatusToDev" else 1):
                replies = [_past_4k(replies[0])] + list(replies[1:])
                self.fired.append(f"{target} reply: 4096 bytes, one passthrough of len 4096")
        elif f.name == "nnc-probe-reply-oversize" and n == 0 and replies:
            replies = [_oversize(replies[0], self.trigger_value)] + list(replies[1:])
            self.fired.append(f"probe reply + passthrough of {self.trigger_value} bytes")
        elif f.name == "nnc-slow-reply" and "ActivateToDev" in kinds and replies:
            self._hold = self.trigger_value
            self.held_since = time.monotonic()
            self.fired.append(f"activate reply held {self.trigger_value} steps")
        for r in replies:
            svc._control("d2h", ch + 1, r)
            self.mhi.send(11, r)

    # -- FB2: DMA continuations --------------------------------------------------------------
    def _cont(self, m: nnc.Message, chunk: int, xferred: int) -> bytes:
        return nnc.Message.build(
            (nnc.DmaXferCont(chunk, 0, xferred),),
            seq=m.seq,
            handle=m.handle,
            partition_id=m.partition_id,
            crc=self.qsm.crc_required,
        ).pack()

    def _dma_fault(self, data: bytes) -> list[bytes]:
        """FB2: the QSM's replies to one host message, as the armed DMA fault changes them."""
        try:
            m: nnc.Message | None = nnc.decode(data, "h2d")
        except DecodeError:
            m = None
        dma = [t for t in (m.transactions if m else ()) if isinstance(t, nnc.DmaXfer)]
        lone = m is not None and len(m.transactions) == 1 and len(dma) == 1
        if lone and self.dma_chunk and dma[0].dma_chunk_id == self.dma_chunk:
            if dma[0].count == 0 and not dma[0].pairs:
                self.dma_aborts += 1
                if self.dma_held is not None:
                    assert m is not None
                    if self.dma_asks < self.trigger_value:
                        self.dma_asks += 1
                        return [self._cont(m, self.dma_chunk, self.dma_sent[self.dma_chunk])]
                    held = nnc.decode(self.dma_held, "d2h")
                    self.dma_held = None
                    again = attrs.evolve(held, seq=m.seq)
                    return [(again.with_crc() if held.crc32 else again).pack()]
        replies = list(self.qsm.receive(data))
        if self.dma_open is not None and self.dma_open not in self.qsm.loads:
            self.dma_open, self.dma_closed_by = None, "/".join(trans_names(data, "h2d"))
        for t in dma:
            if t.dma_chunk_id:
                n = sum(size for _a, size in t.pairs)
                self.dma_sent[t.dma_chunk_id] = self.dma_sent.get(t.dma_chunk_id, 0) + n
        if m is None or not dma or not dma[0].dma_chunk_id or self.fired or self.dma_chunk:
            return replies
        t, name = dma[0], self.active.name if self.active else ""
        if name == "nnc-dma-cont-past-end" and not lone:
            size = self._load_size(m)
            self.dma_chunk = t.dma_chunk_id
            if (m.handle, t.dma_chunk_id) in self.qsm.loads:
                self.dma_open = (m.handle, t.dma_chunk_id)
            xferred = size + self.trigger_value
            self.fired.append(
                f"chunk {t.dma_chunk_id}'s first message answered with DMA_XFER_CONT "
                f"xferred {xferred} (transfer size {size})"
            )
            return [self._cont(m, t.dma_chunk_id, xferred)]
        if name == "nnc-dma-cont-after-done" and lone and t.pairs and replies:
            if any(
                isinstance(x, nnc.DmaXferCont) for x in nnc.decode(replies[0], "d2h").transactions
            ):
                return replies  # not the last chunk
            self.dma_chunk, self.dma_held, self.dma_asks = t.dma_chunk_id, replies[0], 1
            total = self.dma_sent[t.dma_chunk_id]
            self.fired.append(
                f"chunk {t.dma_chunk_id} complete ({total} bytes): DMA_XFER_CONT xferred "
                f"{total} asked instead of the answer"
            )
            return [self._cont(m, t.dma_chunk_id, total)] + replies[1:]
        return replies

    @staticmethod
    def _load_size(m: nnc.Message) -> int:
        """The size the message's LOAD_ELF_REQ command announced (0 if none)."""
        for t in m.transactions:
            if isinstance(t, nnc.Passthrough):
                try:
                    cmd, a = QR.parse_command(t.data)
                except DecodeError:
                    continue
                if cmd == QR.Cmd.LOAD_ELF_REQ and len(a) >= 4:
                    return a[2] | a[3] << 32
        return 0

    def _orphan_deactivate(self) -> None:
        dbc = next(iter(self.qsm.act), 0)
        msg = nnc.Message.build(
            (nnc.DeactivateFromDev(0, dbc),), seq=0x7FFF0000 + self.exchanges, crc=False
        ).pack()
        self.services._control("d2h", 11, msg)
        self.mhi.send(11, msg)
        self.released = _Released(dbc, msg)
        self.fired.append(f"unsolicited DEACTIVATE_FROM_DEV dbc {dbc}")

    def _check_delivered(self) -> None:
        """FB1: the unsolicited message has left the outbox: it is in a host buffer."""
        r = self.released
        if r is None or r.delivered is not None or r.msg in self.mhi.channels[11].outbox:
            return
        r.delivered, r.t_delivered = self.steps, time.monotonic()
        ch = self.device.ch[r.dbc]
        r.qsm_listed = r.dbc in self.qsm.act
        if ch.active:
            r.req_q, r.end = ch.req_q, max(ch.req_q + 64 * ch.nelem, ch.rsp_q + 4 * ch.nelem)
        else:
            r.ended_by = "inactive before the host had the message"

    def _release_event(self, ev: tuple[Any, ...]) -> None:
        """FB1: the device's accesses to the freed FIFOs, and the end of the channel."""
        r = self.released
        if r is None or r.delivered is None or r.ended_by is not None:
            return
        kind = ev[0]
        if kind in ("deactivate", "reset") and ev[1] in (r.dbc, None):
            r.active_s = time.monotonic() - r.t_delivered
            if kind == "reset":
                r.ended_by = "a device reset"
            else:
                r.ended_by = "the driver's " + ("/".join(self._rx) or "?")
        elif kind == "response" and ev[1] == r.dbc:
            r.rsp_writes += 1
        elif kind == "consume" and ev[1] == r.dbc:
            r.req_reads += 1
        elif kind == "dma":
            _k, dbc, _seq, direction, src, dst, _length, n = ev
            if direction == _FROM_DEV and dbc == r.dbc:
                r.dbc_dma_in += n
            if direction == _FROM_DEV and r.overlaps(dst, n):
                r.dma_in += n
            elif direction == _TO_DEV and r.overlaps(src, n):
                r.dma_out += n

    # -- data path --------------------------------------------------------------------------
    def _build(self, mem: Any) -> None:
        super()._build(mem)
        self.device.observers.append(self._fault_event)
        self.device.observers.append(self._release_event)

    def _fault_event(self, ev: tuple[Any, ...]) -> None:
        f = self.active
        if f is None or ev[0] != "response":
            return
        self.responses += 1
        if self.responses != self.trigger_value or f.name not in _RESPONSE_TRIGGERED:
            return
        if f.name == "dbc-completion-error":
            dbc, slot, rsp = ev[1], ev[3], ev[4]
            code = random.Random(f"{self.run_seed}:{f.name}:code").randint(1, 0xFFFF)
            addr = self.device.ch[dbc].rsp_q + 4 * slot
            self.mem.write(addr, struct.pack("<HH", rsp.req_id, code))
            self.fired.append(f"response {self.responses} (dbc {dbc} slot {slot}) code {code}")
        elif f.name == "dbc-rsp-never-drains":
            self.never_drains = ev[1]
            self.fired.append(f"dbc {ev[1]} RSP_TP runs ahead from response {self.responses}")
        elif f.name == "pci-link-down":
            self.link_down = True
            self.fired.append(f"link down after response {self.responses}")
        else:
            self.pending = True

    def _fire_pending(self) -> None:
        self.pending = False
        f = self.active
        assert f is not None
        if f.name == "mhi-sys-err":
            self.inject_sys_err()
        elif f.name == "soc-reset":
            self._soc_reset()
        elif f.name == "ssr-crash":
            dbc = next(iter(self.qsm.act), None)
            if dbc is None:
                return
            self.crash(dbc)
        elif f.name == "nnc-orphan-deactivate":
            self._orphan_deactivate()
            return
        self.fired.append(f"{f.name} after response {self.responses}")

    # -- the transport's view -------------------------------------------------------------
    def bar_read(self, bar: int, off: int, size: int) -> int:
        if self.link_down and bar in (0, 2):
            return (1 << (8 * size)) - 1
        v = super().bar_read(bar, off, size)
        nd = self.never_drains
        if nd is not None and bar == 2 and off == DBC_BASE + DBC_STRIDE * nd + _RSP_TP:
            ch = self.device.ch[nd]
            if ch.active and ch.nelem:
                return (ch.rsp_hp + 1) % ch.nelem
        return v

    def bar_write(self, bar: int, off: int, size: int, value: int) -> None:
        if self.link_down and bar in (0, 2):
            return
        nd = self.never_drains
        if nd is not None and bar == 2 and off == DBC_BASE + DBC_STRIDE * nd + _RSP_HP:
            ch = self.device.ch[nd]
            if ch.active:
                ch.rsp_hp = value % max(ch.nelem, 1)  # consumed what the fault made up
                self.phantom += 1
                ch.rsp_count = 0
                return
        super().bar_write(bar, off, size, value)

    def _raise(self, vector: int) -> None:
        if self.link_down:
            self.lost_msis += 1
            return
        super()._raise(vector)

    # -- progress ---------------------------------------------------------------------------
    def on_backend(self, backend: Any) -> None:
        """The runner's hook: where the guest's mconsole socket is (F5)."""
        sock = getattr(backend, "socket_path", None)
        if sock is not None:
            self._mconsole = Path(sock).parent / "uml" / "guest" / "mconsole"

    def _sysrq(self, key: str) -> bool:
        """Ask the guest for a SysRq dump over UML's mconsole (arch/um/drivers/mconsole.h:
        {magic 0xcafebabe, version 2, len, data[512]} on a unix datagram socket)."""
        path = self._mconsole
        if path is None or not path.exists():
            return False
        cmd = f"sysrq {key}".encode()
        msg = struct.pack("=III", 0xCAFEBABE, 2, len(cmd)) + cmd.ljust(512, b"\0")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(msg, str(path))
        except OSError:
            return False
        return True

    def actions(self) -> list[tuple[Any, ...]]:
        if self.deadline is not None and time.monotonic() > self.deadline:
            name = self.active.name if self.active else "?"
            if not self.dumped:
                # F5: show the blocked tasks on the console, give the guest 3 s to print them
                self.dumped = True
                if self._sysrq("w"):
                    self.deadline = time.monotonic() + 3.0
                    return []
            self.deadline = None
            raise UmlError(f"fault episode {name} did not end within {self.episode_s:g} s")
        if self.link_down:
            return []  # a device behind a dead link does nothing the host can see
        out = super().actions()
        if self.pending:
            out.append(("fault",))
        return out

    def step(self, action: tuple[Any, ...]) -> None:
        if action[0] == "fault":
            self.steps += 1
            self.regs.qtimer += QTIMER_TICKS_PER_STEP
            self._fire_pending()
            return
        was = self._hold
        super().step(action)
        r = self.released
        if r is not None and r.delivered is not None and r.ended_by is None:
            r.active_steps += 1
        if action[:3] == ("mhi", "dl", 11):
            self._check_delivered()
        if was == 1 and self._hold == 0 and self.held_since is not None:
            self.held_wall = time.monotonic() - self.held_since
            self.held_since = None
