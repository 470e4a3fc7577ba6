"""MHI as the host sees it: channels, execution environments, the loopback channel.

Rules:
  * aic100.rst "MHI Channels": channels come in pairs, even = host->device,
    odd = device->host; 0 & 1 loop back ("Any data sent to the device on this
    channel is sent back to the host"); the table below adds the names, ring
    sizes and execution environments of mhi_controller.c (control-path.md §4.1,
    ssr-ras-boot.md §4.1): every ring has 32 elements except QAIC_CONTROL (128);
  * a channel exists only while the device is in one of its execution
    environments (``ee``): SBL channels vanish when the device enters AMSS;
  * execution environments and MHI states keep the MHI core's numbering
    (ssr-ras-boot.md §4.2).
  * IPCR 24/25 is newer upstream only (not in aic100.rst): it is listed with
    ``upstream_only=True`` and excluded unless asked for (policy ``mhi-ipcr``).
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from qaicmodel.errors import ArgumentError, LocalProtocolError
from qaicmodel.spec.policies import MHI_IPCR, TELEMETRY_CHANNEL, MhiIpcr, Policies, TelemetryChannel

__all__ = [
    "Ee",
    "MhiState",
    "MhiChannel",
    "CHANNELS",
    "channel",
    "channels_in",
    "host_clients",
    "Loopback",
    "EE_SEQUENCE",
]


class Ee(enum.IntEnum):
    """``enum mhi_ee_type`` (MHI core)."""

    PBL = 0
    SBL = 1
    AMSS = 2
    RDDM = 3
    WFW = 4
    PTHRU = 5
    EDL = 6
    FP = 7


class MhiState(enum.IntEnum):
    """``enum mhi_state`` (MHI core)."""

    RESET = 0x0
    READY = 0x1
    M0 = 0x2
    M1 = 0x3
    M2 = 0x4
    M3 = 0x5
    M3_FAST = 0x6
    BHI = 0x7
    SYS_ERR = 0xFF


#: The execution environments the host sees during a normal boot (aic100.rst "Boot Flow").
EE_SEQUENCE = (Ee.PBL, Ee.SBL, Ee.AMSS)


@attrs.frozen
class MhiChannel:
    """One entry of ``aic100_channels`` (mhi_controller.c)."""

    num: int
    name: str
    to_device: bool
    elements: int
    ee: Ee
    host_user: str  # the in-tree client driver, "" when none binds it
    upstream_only: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "num": self.num,
            "name": self.name,
            "dir": "to_device" if self.to_device else "from_device",
            "elements": self.elements,
            "ee": self.ee.name,
            "host_user": self.host_user,
            "upstream_only": self.upstream_only,
        }


def _pair(
    num: int, name: str, ee: Ee, user: str, elements: int = 32, upstream_only: bool = False
) -> list[MhiChannel]:
    return [
        MhiChannel(num, name, True, elements, ee, user, upstream_only),
        MhiChannel(num + 1, name, False, elements, ee, user, upstream_only),
    ]


CHANNELS: tuple[MhiChannel, ...] = tuple(
    _pair(0, "QAIC_LOOPBACK", Ee.AMSS, "")
    + _pair(2, "QAIC_SAHARA", Ee.SBL, "sahara")
    + _pair(4, "QAIC_DIAG", Ee.AMSS, "")
    + _pair(6, "QAIC_SSR", Ee.AMSS, "qaic_ssr")
    + _pair(8, "QAIC_QDSS", Ee.AMSS, "")
    + _pair(10, "QAIC_CONTROL", Ee.AMSS, "qaic_mhi", elements=128)
    + _pair(12, "QAIC_LOGGING", Ee.SBL, "qaic_bootlog")
    + _pair(14, "QAIC_STATUS", Ee.AMSS, "qaic_ras")
    + _pair(16, "QAIC_TELEMETRY", Ee.AMSS, "")
    + _pair(18, "QAIC_DEBUG", Ee.AMSS, "")
    + _pair(20, "QAIC_TIMESYNC", Ee.SBL, "qaic_timesync")
    + _pair(22, "QAIC_TIMESYNC_PERIODIC", Ee.AMSS, "qaic_timesync_periodic")
    + _pair(24, "IPCR", Ee.AMSS, "qrtr", upstream_only=True)
)


def channel(num: int) -> MhiChannel:
    """The channel numbered ``num`` (ArgumentError if the table has none)."""
    for ch in CHANNELS:
        if ch.num == num:
            return ch
    raise ArgumentError(f"MHI channel {num} is not in the AIC100 channel table")


def channels_in(
    ee: Ee, *, ipcr: bool | None = None, policies: Policies | None = None
) -> list[MhiChannel]:
    """The channels that exist while the device is in ``ee`` (policy ``mhi-ipcr``)."""
    if ipcr is None:
        ipcr = (policies or Policies())[MHI_IPCR] is MhiIpcr.PRESENT
    return [c for c in CHANNELS if c.ee == ee and (ipcr or not c.upstream_only)]


def host_clients(policies: Policies | None = None) -> list[str]:
    """Channel names a host client binds (policy ``telemetry-channel``)."""
    names = sorted({c.name for c in CHANNELS if c.host_user})
    pol = policies or Policies()
    if pol[TELEMETRY_CHANNEL] is TelemetryChannel.OUT_OF_TREE:
        names.append("QAIC_TELEMETRY")
    if pol[MHI_IPCR] is MhiIpcr.ABSENT:
        names.remove("IPCR")
    return sorted(names)


class Loopback:
    """Channels 0/1: whatever the host sends on 0 comes back on 1 (aic100.rst).

    Only in AMSS; the device echoes one buffer per host buffer and a host that
    has not queued a receive buffer gets nothing (the echo waits, in order).
    """

    def __init__(self, ring: int = 32) -> None:
        self.ring = ring
        self.ee = Ee.AMSS
        self._pending: list[bytes] = []

    def send(self, data: bytes) -> None:
        if self.ee != Ee.AMSS:
            raise LocalProtocolError("QAIC_LOOPBACK exists only in AMSS", rule="MHI-EE")
        if len(self._pending) >= self.ring:
            raise LocalProtocolError(
                f"loopback ring of {self.ring} elements is full", rule="MHI-RING-FULL"
            )
        self._pending.append(bytes(data))

    def receive(self) -> bytes | None:
        return self._pending.pop(0) if self._pending else None
