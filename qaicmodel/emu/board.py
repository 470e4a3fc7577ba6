"""The AIC100 as one PCI function: BAR0 MHI, BAR2 DMA Bridge, BAR4, the firmware.

Rules (seed 003 "Hardware Description"; ssr-ras-boot.md §6):
  B1 three 64-bit BARs: BAR0 4 KiB MHI, BAR2 2 MiB DMA Bridge, BAR4 64 KiB
     "currently has no purpose" (plain storage here; policy ``bar4-contents``); the driver maps BAR0 and
     BAR2 (qaic_drv.c ``init_pci``);
  B2 BAR2: DBC i's registers at 0x20000 + 0x1000*i, into the model's DMA Bridge
     ``Device`` (``bar_read``/``bar_write``), whose host memory is the guest's;
  B3 registers are 32 bits wide; a 64-bit access is two 32-bit ones, low word
     first (the QTimer read, qaic_timesync.c ``read_qtimer``); other widths and
     misaligned offsets are violations (``PCI-ACCESS-WIDTH``; what a narrow write does is
     policy ``narrow-register-write``), as are offsets
     past a BAR (``PCI-BAR-RANGE``);
  B4 MSIs: vector 0 is MHI, vector i+1 DBC i; with one MSI enabled everything
     is vector 0 (qaic.rst single-MSI mode; control-path.md §4.2);
  B5 SoC reset (BIT(0) at BAR0 + 0xb0): the whole device reboots to PBL;
     everything activated or loaded is lost (policy ``soc-reset-notify``);
  B6 the start EE is policy ``mhi-start-ee`` (``pbl``: the full boot of seed 003
     "Boot Flow"; ``amss``: the QSM already runs).
No threads, no clocks: the backend's seeded scheduler picks among
:meth:`Board.actions` and calls :meth:`Board.step`; the QTimer advances by 1 ms
(19200 ticks of its 19.2 MHz clock, qaic_timesync.c) per step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from qaicmodel.emu import firmware
from qaicmodel.emu import mhi_regs as R
from qaicmodel.emu._model import Device, HostMemory, Policies, Qsm
from qaicmodel.emu.mhi_dev import EE_AMSS, EE_NAMES, EE_PBL, STATE_NAMES, MhiDevice, Violation
from qaicmodel.emu.services import Services

__all__ = ["Board", "BARS", "QTIMER_TICKS_PER_STEP"]

BARS = {0: 0x1000, 2: 0x200000, 4: 0x10000}
QTIMER_TICKS_PER_STEP = 19200


def _policies(p: Any) -> Any:
    if p is None:
        return Policies()
    if isinstance(p, Policies):
        return p
    if isinstance(p, Mapping):
        return Policies(dict(p))
    if isinstance(p, Iterable) and not isinstance(p, (str, bytes)):
        return Policies.parse(list(p))
    raise TypeError(f"policies must be Policies, a mapping or ID=ALT strings, not {p!r}")


class Board:
    """One virtual AIC100 (the board contract of ``qaicmodel.emu``)."""

    bars = dict(BARS)

    def __init__(
        self,
        policies: Any = None,
        seed: int = 0,
        kernel: str | None = None,
        *,
        msi_vectors: int = 1,
    ) -> None:
        self.policies = _policies(policies)
        self.seed = seed
        self.kernel = kernel
        self.msi_vectors = msi_vectors
        self.bar4 = bytearray(BARS[4])
        # silent choices named in spec/policies/silent.py
        self._bar4_inert = self.policies["bar4-contents"] == "inert"
        self._narrow_merged = self.policies["narrow-register-write"] == "merged"
        self.regs = R.MhiRegs(serial=0x51A1C100 ^ (seed & 0xFFFF))
        self._own: list[Violation] = []
        self.msi_log: list[int] = []
        self._msi: Callable[[int], None] = lambda v: None
        self.steps = 0
        self.mhi = MhiDevice(self.regs, HostMemory(), self._raise)
        self.services = Services(self.mhi, lambda: self.qsm, self.policies)
        self.mhi.on_message = self.services.on_message
        self.mhi.on_channel = self.services.on_channel
        self.mhi.channel_ok = self.services.channel_ok
        self.mhi.image_check = self._check_sbl
        self._build(HostMemory())
        self._start()

    # -- wiring -------------------------------------------------------------------
    def _build(self, mem: Any) -> None:
        self.mem = mem
        self.mhi.mem = mem
        self.device = Device(policies=self.policies, single_msi=self.msi_vectors == 1, host_mem=mem)
        self.device.observers.append(self._device_event)
        self.qsm = Qsm(self.device, policies=self.policies)

    def _start(self) -> None:
        start = self.policies["mhi-start-ee"]
        self.mhi.boot_in(EE_AMSS if start == "amss" else EE_PBL)
        self.services.reset()

    def attach(self, mem: Any, msi: Callable[[int], None]) -> None:
        """The transport's guest memory and MSI sender (call before any guest access)."""
        self._msi = msi
        self._build(mem)

    def _raise(self, vector: int) -> None:
        v = 0 if self.msi_vectors == 1 else vector
        self.msi_log.append(v)
        self._msi(v)

    def _device_event(self, ev: tuple[Any, ...]) -> None:
        if ev[0] == "msi":
            self.device.intc.ack(ev[2])
            self._raise(ev[2])

    def _check_sbl(self, img: bytes) -> int:
        """PBL's validation of the BHI image (policy bhi-image-check)."""
        if self.policies["bhi-image-check"] == "accept-any":
            return 0
        return firmware.check_image(img, 0)

    # -- BAR access (B1-B3) ----------------------------------------------------------
    def _bad(self, rule: str, message: str, where: str) -> None:
        self._own.append(Violation(rule, message, where))

    def _check(self, bar: int, off: int, size: int, what: str) -> bool:
        if bar not in BARS:
            self._bad(
                "PCI-BAR-RANGE", f"{what} on BAR{bar}, which the device does not have", f"BAR{bar}"
            )
            return False
        if size not in (1, 2, 4, 8) or off < 0 or off + size > BARS[bar]:
            self._bad(
                "PCI-BAR-RANGE",
                f"{what} of {size} bytes at BAR{bar}+0x{off:x} is "
                f"outside the {BARS[bar]:#x}-byte BAR",
                f"BAR{bar}+0x{off:x}",
            )
            return False
        return True

    def bar_read(self, bar: int, off: int, size: int) -> int:
        if not self._check(bar, off, size, "read"):
            return 0
        if bar == 4:
            return int.from_bytes(self.bar4[off : off + size], "little")
        if size == 8 and off % 8 == 0:
            return self.bar_read(bar, off, 4) | (self.bar_read(bar, off + 4, 4) << 32)
        if size != 4 or off % 4:
            self._bad(
                "PCI-ACCESS-WIDTH",
                f"{size}-byte read at BAR{bar}+0x{off:x}; the registers are 32-bit",
                f"BAR{bar}+0x{off:x}",
            )
            word = self.bar_read(bar, off & ~3, 4) if off % 4 + size <= 4 else 0
            return (word >> (8 * (off % 4))) & ((1 << (8 * size)) - 1)
        if bar == 0:
            return self.regs.read(off)
        return int(self.device.bar_read(off))

    def bar_write(self, bar: int, off: int, size: int, value: int) -> None:
        if not self._check(bar, off, size, "write"):
            return
        value &= (1 << (8 * size)) - 1
        if bar == 4:
            if not self._bar4_inert:
                self.bar4[off : off + size] = value.to_bytes(size, "little")
            return
        if size == 8 and off % 8 == 0:
            self.bar_write(bar, off, 4, value & 0xFFFFFFFF)
            self.bar_write(bar, off + 4, 4, value >> 32)
            return
        if size != 4 or off % 4:
            self._bad(
                "PCI-ACCESS-WIDTH",
                f"{size}-byte write at BAR{bar}+0x{off:x}; the registers are 32-bit",
                f"BAR{bar}+0x{off:x}",
            )
            if self._narrow_merged and off % 4 + size <= 4:  # policy narrow-register-write
                base, shift = off & ~3, 8 * (off % 4)
                mask = ((1 << (8 * size)) - 1) << shift
                word = self.bar_read(bar, base, 4)
                self.bar_write(bar, base, 4, (word & ~mask) | (value << shift))
            return
        if bar == 0:
            self.mhi.host_write(off, value)
        else:
            self.device.bar_write(off, value)

    def bar_memset(self, bar: int, off: int, size: int, byte: int) -> None:
        if bar not in BARS or off < 0 or size < 0 or off + size > BARS[bar]:
            self._bad(
                "PCI-BAR-RANGE",
                f"memset of {size} bytes at BAR{bar}+0x{off:x} is outside the BAR",
                f"BAR{bar}+0x{off:x}",
            )
            return
        if bar == 4:
            if not self._bar4_inert:
                self.bar4[off : off + size] = bytes([byte & 0xFF]) * size
            return
        word = int.from_bytes(bytes([byte & 0xFF]) * 4, "little")
        if off % 4 or size % 4:
            self._bad(
                "PCI-ACCESS-WIDTH",
                f"memset of {size} bytes at BAR{bar}+0x{off:x} is not whole registers",
                f"BAR{bar}+0x{off:x}",
            )
            return
        for o in range(off, off + size, 4):
            self.bar_write(bar, o, 4, word)

    # -- progress ---------------------------------------------------------------------
    def actions(self) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = [("mhi",) + a for a in self.mhi.actions()]
        out += [("fw",) + a for a in self.services.actions()]
        out += [("dbc", a) for a in self.device.enabled()]
        return out

    def step(self, action: tuple[Any, ...]) -> None:
        self.steps += 1
        self.regs.qtimer += QTIMER_TICKS_PER_STEP
        if action[0] == "mhi":
            if action[1] == "soc-reset":
                self._soc_reset()
            else:
                self.mhi.step(action[1:])
        elif action[0] == "fw":
            self.services.step(action[1:])
            self.mhi._flush_events()
        elif action[0] == "dbc":
            self.device.step(action[1])
        else:
            raise ValueError(f"unknown board action {action!r}")

    def run(self, limit: int = 100000) -> int:
        """Take the first enabled action until none is left (tests); the steps taken."""
        n = 0
        while n < limit:
            acts = self.actions()
            if not acts:
                break
            self.step(acts[0])
            n += 1
        return n

    def _soc_reset(self) -> None:
        """B5: reboot to PBL; the QSM, the DMA Bridge and every service start over."""
        self.mhi.soc_reset_pending = False
        self.device.reset()
        self.qsm.reset()
        self.services.reset()
        self.mhi.reboot_pbl(announce=self.policies["soc-reset-notify"] == "syserr-msi")
        self.mhi.trace.append(("soc-reset",))

    # -- test and scenario hooks ---------------------------------------------------------
    def inject_sys_err(self) -> None:
        """The firmware hits a fatal error: MHI SYS_ERR (policy sys-err-report)."""
        self.mhi.sys_err(event=self.policies["sys-err-report"] == "event-and-intvec")

    def crash(self, dbc: int) -> None:
        self.services.crash(dbc)

    def ras_event(self, data: bytes) -> None:
        self.services.ras_event(data)

    # -- observation ---------------------------------------------------------------------
    @property
    def ee(self) -> str:
        return EE_NAMES.get(self.mhi.ee, str(self.mhi.ee))

    @property
    def mhi_state(self) -> str:
        return STATE_NAMES.get(self.mhi.state, str(self.mhi.state))

    @property
    def violations(self) -> list[Violation]:
        out = list(self._own) + list(self.mhi.violations)
        for v in self.device.violations:
            out.append(
                Violation(v.rule, v.message, f"DBC {v.dbc}" if v.dbc is not None else "BAR2")
            )
        for q in self.qsm.violations:
            out.append(Violation(q.rule, q.message, "QAIC_CONTROL"))
        return out

    def status(self) -> dict[str, Any]:
        """A summary for logs and tests."""
        return {
            "ee": self.ee,
            "mhi_state": self.mhi_state,
            "steps": self.steps,
            "msis": len(self.msi_log),
            "sahara": list(self.services.sahara.received),
            "control": len(self.services.control_log),
            "violations": [v.rule for v in self.violations],
        }
