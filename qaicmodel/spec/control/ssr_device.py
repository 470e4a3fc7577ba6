"""SSR, the device side: QSM's half of one Subsystem Restart (the stages it drives).

Split from :mod:`qaicmodel.spec.control.ssr` (the messages and the host side; rules
there).  Rules (aic100.rst "Subsystem Restart (SSR)"; ssr-ras-boot.md §1): the device
sends BEFORE_SHUTDOWN, AFTER_SHUTDOWN, BEFORE_POWER_UP, [a crashdump offer], then
AFTER_POWER_UP, each only after the host echoed the previous one (:data:`DEV_TABLE`);
a host reply it did not ask for is recorded in :attr:`DeviceSsr.violations`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from qaicmodel.errors import DecodeError
from qaicmodel.findings import Finding
from qaicmodel.spec.control.ssr import Cmd, Event, SsrMsg, decode, event
from qaicmodel.spec.policies import (
    SSR_CRASHDUMP,
    SSR_NACK_RECOVERY,
    Policies,
    SsrCrashdump,
    SsrNackRecovery,
)

__all__ = ["DevStage", "DEV_TABLE", "DeviceSsr"]


class DevStage(enum.Enum):
    """Where the device is in one SSR (the next thing it waits for)."""

    ACK_BEFORE_SHUTDOWN = "ack-before-shutdown"
    ACK_AFTER_SHUTDOWN = "ack-after-shutdown"
    ACK_BEFORE_POWER_UP = "ack-before-power-up"
    DUMP = "dump"
    ACK_AFTER_POWER_UP = "ack-after-power-up"
    DONE = "done"


#: stage -> (event the host must echo, next stage, event the device sends next)
DEV_TABLE: dict[DevStage, tuple[int, DevStage, int | None]] = {
    DevStage.ACK_BEFORE_SHUTDOWN: (
        Event.BEFORE_SHUTDOWN,
        DevStage.ACK_AFTER_SHUTDOWN,
        Event.AFTER_SHUTDOWN,
    ),
    DevStage.ACK_AFTER_SHUTDOWN: (
        Event.AFTER_SHUTDOWN,
        DevStage.ACK_BEFORE_POWER_UP,
        Event.BEFORE_POWER_UP,
    ),
    DevStage.ACK_BEFORE_POWER_UP: (
        Event.BEFORE_POWER_UP,
        DevStage.ACK_AFTER_POWER_UP,
        Event.AFTER_POWER_UP,
    ),
    DevStage.ACK_AFTER_POWER_UP: (Event.AFTER_POWER_UP, DevStage.DONE, None),
}


#: the source of :class:`DeviceSsr`'s findings
_SSR_SRC = 'aic100.rst "Subsystem Restart (SSR)"; ssr-ras-boot.md §1'


class DeviceSsr:
    """QSM's side of one SSR on ``dbc``.  ``read_mem(addr, n)`` serves dump reads;
    ``dump_table`` is the packed debug_info_table the device offers (policy)."""

    def __init__(
        self,
        dbc: int,
        *,
        policies: Policies,
        read_mem: Callable[[int, int], bytes],
        dump_table: tuple[int, bytes] | None = None,
    ) -> None:
        self.dbc = dbc
        self.policies = policies
        self.read_mem = read_mem
        self.dump_table = dump_table
        self.stage = DevStage.ACK_BEFORE_SHUTDOWN
        self.events_sent: list[int] = []
        #: host replies a conforming host would not send (``str(f)``: ``RULE: message``)
        self.violations: list[Finding] = []

    def start(self) -> list[bytes]:
        self.events_sent.append(Event.BEFORE_SHUTDOWN)
        return [event(self.dbc, Event.BEFORE_SHUTDOWN).pack()]

    @property
    def done(self) -> bool:
        return self.stage == DevStage.DONE

    def on_host(self, data: bytes) -> list[bytes]:
        """A host reply arrives; return the device's next message(s)."""
        try:
            msg = decode(data)
        except DecodeError as e:
            self.violations.append(Finding("SSR-HOST-MALFORMED", str(e), _SSR_SRC))
            return []
        if msg.cmd == Cmd.SSR_EVENT_RSP:
            return self._on_ack(msg["event"])
        if self.stage != DevStage.DUMP:
            self.violations.append(
                Finding(
                    "SSR-HOST-UNPROMPTED",
                    f"{Cmd(msg.cmd).name} outside a dump",
                    _SSR_SRC,
                    where={"stage": self.stage.value},
                )
            )
            return []
        if msg.cmd == Cmd.DEBUG_TRANSFER_INFO_RSP:
            if msg["ret"] == 0:
                return []  # ACK: the host's MEMORY_READs follow
            self.stage = DevStage.ACK_AFTER_POWER_UP  # NACK: no dump, go on
            self.events_sent.append(Event.AFTER_POWER_UP)
            return [event(self.dbc, Event.AFTER_POWER_UP).pack()]
        if msg.cmd == Cmd.MEMORY_READ:
            data_ = self.read_mem(msg["addr"], msg["len"])
            dbc = msg.dbc_id  # ssr-unknown-dump-dbc: the request's DBC, echoed (settled)
            return [SsrMsg(Cmd.MEMORY_READ_RSP, dbc, {"resv": 0}, data_).pack()]
        if msg.cmd == Cmd.DEBUG_TRANSFER_DONE:
            self.stage = DevStage.ACK_AFTER_POWER_UP
            self.events_sent.append(Event.AFTER_POWER_UP)
            return [
                SsrMsg(Cmd.DEBUG_TRANSFER_DONE_RSP, self.dbc, {"ret": 0}).pack(),
                event(self.dbc, Event.AFTER_POWER_UP).pack(),
            ]
        self.violations.append(
            Finding(
                "SSR-HOST-CMD",
                f"unexpected {Cmd(msg.cmd).name}",
                _SSR_SRC,
                where={"stage": self.stage.value},
            )
        )
        return []

    def _on_ack(self, ev: int) -> list[bytes]:
        if self.stage == DevStage.ACK_AFTER_POWER_UP and ev == Event.NACK:
            if self.policies[SSR_NACK_RECOVERY] is SsrNackRecovery.RESEND:
                self.events_sent.append(Event.AFTER_POWER_UP)
                return [event(self.dbc, Event.AFTER_POWER_UP).pack()]
            self.stage = DevStage.DONE
            return []
        row = DEV_TABLE.get(self.stage)
        if row is None or ev != row[0]:
            self.violations.append(
                Finding(
                    "SSR-HOST-ACK",
                    f"got event 0x{ev:x} in stage {self.stage.value}",
                    _SSR_SRC,
                    where={"stage": self.stage.value},
                )
            )
            return []
        _, nxt, send = row
        if (
            self.stage == DevStage.ACK_BEFORE_POWER_UP
            and self.dump_table is not None
            and self.policies[SSR_CRASHDUMP] is SsrCrashdump.OFFER
        ):
            self.stage = DevStage.DUMP
            addr, table = self.dump_table
            return [
                SsrMsg(
                    Cmd.DEBUG_TRANSFER_INFO,
                    self.dbc,
                    {"resv": 0, "tbl_addr": addr, "tbl_len": len(table)},
                ).pack()
            ]
        self.stage = nxt
        if send is None:
            return []
        self.events_sent.append(send)
        return [event(self.dbc, send).pack()]
