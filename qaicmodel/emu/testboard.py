"""A stand-in board for the transport's tests: every BAR reads a constant, every access
is recorded, and one MSI can be scripted.  It follows the board contract of
:mod:`qaicmodel.emu` and nothing of the AIC100 beyond its BAR sizes.

With ``fill=0`` the MHI host stack reads "boot ROM (PBL)" everywhere and asks for
``sbl.bin``; with ``fill=0xff`` ``mhi_register_controller`` reads an all-ones
``SOC_HW_VERSION`` (a dead link), the qaic probe fails cleanly and no MHI
teardown runs at poweroff.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["StubBoard", "Access", "DEFAULT_BARS"]

DEFAULT_BARS = {0: 0x1000, 2: 0x200000, 4: 0x10000}


@attrs.frozen
class Access:
    kind: str  # "r", "w", "set"
    bar: int
    off: int
    size: int
    value: int


class StubBoard:
    """BARs that read ``fill`` bytes; ``msi_after``: raise MSI 0 once after that many
    BAR accesses (as a scheduler action, so the backend's seeded scheduler sends it)."""

    def __init__(
        self,
        *,
        bars: dict[int, int] | None = None,
        fill: int = 0,
        msi_after: int | None = None,
        msi_vector: int = 0,
        keep: int = 100_000,
    ) -> None:
        self.bars = dict(DEFAULT_BARS if bars is None else bars)
        self.fill = fill & 0xFF
        self.msi_after = msi_after
        self.msi_vector = msi_vector
        self.accesses: list[Access] = []
        self.count = 0
        self.keep = keep
        self.mem: Any = None
        self.msi: Callable[[int], None] | None = None
        self.msi_raised = 0
        self.steps: list[str] = []
        self.violations: list[tuple[str, str]] = []

    def attach(self, mem: Any, msi: Callable[[int], None]) -> None:
        self.mem = mem
        self.msi = msi

    def _record(self, a: Access) -> None:
        self.count += 1
        if len(self.accesses) < self.keep:
            self.accesses.append(a)

    def bar_read(self, bar: int, off: int, size: int) -> int:
        self._record(Access("r", bar, off, size, 0))
        return int.from_bytes(bytes([self.fill]) * size, "little")

    def bar_write(self, bar: int, off: int, size: int, value: int) -> None:
        self._record(Access("w", bar, off, size, value))

    def bar_memset(self, bar: int, off: int, size: int, byte: int) -> None:
        self._record(Access("set", bar, off, size, byte))

    def actions(self) -> list[str]:
        if (
            self.msi_after is not None
            and self.msi is not None
            and not self.msi_raised
            and self.count >= self.msi_after
        ):
            return ["msi"]
        return []

    def step(self, action: str) -> None:
        self.steps.append(action)
        if action == "msi" and self.msi is not None:
            self.msi_raised += 1
            self.msi(self.msi_vector)
