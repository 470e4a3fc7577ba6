"""What the firmware does on each MHI channel (seed 003 "MHI Channels").

Rules:
  C1 channel table and execution environments: the model's ``mhi.CHANNELS``
     (aic100.rst "MHI Channels" with mhi_controller.c's ring sizes and EEs;
     IPCR 24/25 only with policy ``mhi-ipcr=present``); the device serves a
     channel only in its EE and drops the SBL channels when it enters AMSS
     (pm.c ``mhi_pm_mission_mode_transition`` destroys them on the host side
     without channel commands, so the device must not touch their rings again);
  C2 QAIC_LOOPBACK 0/1: "Any data sent to the device on this channel is sent
     back to the host";
  C3 QAIC_CONTROL 10/11: each host transfer is one NNC message for the QSM
     (``Qsm.receive``); its replies go back on 11 (qaic_control.c queues
     4 KiB receive buffers, QAIC_MANAGE_MAX_MSG_LENGTH);
  C4 QAIC_SSR 6/7: host messages go to ``Qsm.ssr_receive``; device-initiated
     SSR starts with :meth:`Services.crash`;
  C5 QAIC_STATUS 14/15: RAS reports are pushed by :meth:`Services.ras_event`
     (the host never sends, qaic_ras.c);
  C6 QAIC_TIMESYNC_PERIODIC 22/23: the host sends a sync message every period
     (qaic_timesync.c); the device takes it and keeps the offset;
  C7 SBL: QAIC_SAHARA 2/3 (sahara_dev.py), QAIC_LOGGING 12/13 boot log (policy
     ``sbl-bootlog``; qaic_debugfs.c NUL-terminates each buffer), QAIC_TIMESYNC
     20/21 boot-time sync: the device sends CMD_TO_HOST (8-byte header,
     signature 0x55aa, msg_type 0) and the host answers SYNC_REQ with its time
     (qaic_timesync.c ``qaic_boot_timesync_worker``);
  C8 any other channel in the table (DIAG, QDSS, TELEMETRY, DEBUG, IPCR): the
     device consumes what the host sends and answers nothing (no in-tree
     client speaks on them; policy ``telemetry-channel`` default ``unused``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from qaicmodel.emu import firmware
from qaicmodel.emu._model import CHANNELS, nnc
from qaicmodel.emu.mhi_dev import EE_AMSS, EE_SBL, MhiDevice
from qaicmodel.emu.sahara_dev import SAHARA_RX, SAHARA_TX, SaharaDevice

__all__ = ["Services", "BOOTLOG_LINES"]

LOOPBACK, CONTROL, SSR, STATUS, TS_PERIODIC = 0, 10, 6, 14, 22
LOGGING, TIMESYNC = 12, 20
TS_SIGNATURE = 0x55AA
BOOTLOG_LINES = (
    "qaicmodel SBL: virtual AIC100 (qaicmodel), no vendor firmware",
    "qaicmodel SBL: DDR ready (model)",
    "qaicmodel SBL: fetching runtime images over Sahara",
)


def trans_names(data: bytes, direction: str) -> list[str]:
    try:
        m = nnc.decode(data, direction)
    except Exception:  # noqa: BLE001 - a log helper; malformed messages are the QSM's to judge
        return ["?"]
    return [type(t).__name__ for t in m.transactions]


class Services:
    """The firmware's channel services and boot progress for one board."""

    def __init__(self, mhi: MhiDevice, qsm: Callable[[], Any], policies: Any) -> None:
        self.mhi = mhi
        self._qsm = qsm
        self.policies = policies
        ipcr = policies["mhi-ipcr"] == "present"
        self.table = {c.num: c for c in CHANNELS if ipcr or not c.upstream_only}
        #: (direction, channel, transaction type names) of every QAIC_CONTROL message
        self.control_log: list[tuple[str, int, list[str]]] = []
        #: the raw messages of the first 64 log entries (direction, bytes)
        self.control_raw: list[tuple[str, bytes]] = []
        self.loopback_echoes = 0
        self.timesync_msgs: list[bytes] = []
        self.ras_sent = 0
        self.reset()

    def reset(self) -> None:
        """Power on / SoC reset: every service starts over."""
        images = (
            firmware.AIC100_IMAGE_IDS if self.policies["sahara-images"] == "driver-table" else (1,)
        )
        self.sahara = SaharaDevice(images, lambda d: self.mhi.send(SAHARA_TX, d))
        self.bootlog_sent = False
        self.boot_ts_sent = False
        self.sbl_failed_handled = False

    # -- channel table (C1) -----------------------------------------------------------
    def channel_ok(self, ch: int, ee: int) -> bool:
        c = self.table.get(ch)
        return c is not None and int(c.ee) == ee

    def on_channel(self, ch: int, what: str) -> None:
        if what == "mhi-reset" and self.mhi.ee == EE_SBL:
            self.reset()
        elif ch in (SAHARA_RX, SAHARA_TX) and what == "reset":
            self.reset()

    def enter_amss(self) -> None:
        """SBL jumps into the QSM: the SBL channels are gone (C1)."""
        for c in self.mhi.channels:
            if c.state and not self.channel_ok(c.num, EE_AMSS):
                c.state, c.ring = 0, None
                c.outbox.clear()
                self.mhi.ul_dirty.discard(c.num)
                self.mhi.dropped.add(c.num)
        self.mhi.set_ee(EE_AMSS)

    # -- host transfers ------------------------------------------------------------------
    def on_message(self, ch: int, data: bytes) -> None:
        if ch == LOOPBACK:
            self.loopback_echoes += 1
            self.mhi.send(LOOPBACK + 1, data)
        elif ch == CONTROL:
            self._control("h2d", ch, data)
            for reply in self._qsm().receive(data):
                self._control("d2h", ch + 1, reply)
                self.mhi.send(CONTROL + 1, reply)
        elif ch == SSR:
            for reply in self._qsm().ssr_receive(data):
                self.mhi.send(SSR + 1, reply)
        elif ch == SAHARA_RX:
            self.sahara.on_host(data)
        elif ch in (TS_PERIODIC, TIMESYNC):
            self.timesync_msgs.append(data)
        # C8: everything else is consumed without an answer

    def _control(self, direction: str, ch: int, data: bytes) -> None:
        self.control_log.append((direction, ch, trans_names(data, direction)))
        if len(self.control_raw) < 64:
            self.control_raw.append((direction, bytes(data)))

    def crash(self, dbc: int) -> None:
        """A workload crashes: the QSM's SSR messages go out on QAIC_SSR (C4)."""
        for m in self._qsm().crash(dbc):
            self.mhi.send(SSR + 1, m)

    def ras_event(self, data: bytes) -> None:
        """Push one RAS report on QAIC_STATUS (C5)."""
        self.ras_sent += 1
        self.mhi.send(STATUS + 1, data)

    # -- firmware progress (SBL) ------------------------------------------------------
    def actions(self) -> list[tuple[Any, ...]]:
        m = self.mhi
        if m.ee != EE_SBL or m.state != 2:  # SBL work needs MHI M0
            return []
        out: list[tuple[Any, ...]] = []
        s = self.sahara
        if (
            not s.started
            and m.running(SAHARA_RX)
            and m.running(SAHARA_TX)
            and m.host_buffers(SAHARA_TX) > 0
        ):
            out.append(("sahara-hello",))
        if s.done and not m.channels[LOGGING + 1].outbox:
            # SBL jumps into the QSM once its boot log is offloaded (seed 003 Boot Flow
            # lists the offload among SBL's work; the lines would be lost with channel 13)
            out.append(("amss",))
        if s.failed and not self.sbl_failed_handled:
            out.append(("sbl-failed",))
        if (
            not self.bootlog_sent
            and self.policies["sbl-bootlog"] == "offload"
            and m.running(LOGGING + 1)
        ):
            out.append(("bootlog",))
        if not self.boot_ts_sent and m.running(TIMESYNC + 1) and m.host_buffers(TIMESYNC + 1):
            out.append(("boot-timesync",))
        return out

    def step(self, action: tuple[Any, ...]) -> None:
        kind = action[0]
        if kind == "sahara-hello":
            self.sahara.start()
        elif kind == "amss":
            self.sahara.done = False
            self.enter_amss()
        elif kind == "sbl-failed":
            self.sbl_failed_handled = True
            if self.policies["sahara-failure"] == "sys-err":
                self.mhi.sys_err(event=self.policies["sys-err-report"] == "event-and-intvec")
        elif kind == "bootlog":
            self.bootlog_sent = True
            for line in BOOTLOG_LINES:
                self.mhi.send(LOGGING + 1, line.encode() + b"\n\x00")
        elif kind == "boot-timesync":
            self.boot_ts_sent = True
            self.mhi.send(TIMESYNC + 1, struct.pack("<HHBBH", TS_SIGNATURE, 0, 0, 0, 0))
