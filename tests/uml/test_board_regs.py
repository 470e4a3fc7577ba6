"""BAR semantics of the board: MHI register block, BHI, BAR2 into the DMA Bridge, BAR4."""

from __future__ import annotations

import pytest

from qaicmodel.emu import mhi_regs as R
from qaicmodel.emu._model import Policies
from qaicmodel.emu.board import BARS, Board


def rules(b: Board) -> list[str]:
    return [v.rule for v in b.violations]


def test_bars_and_identity() -> None:
    b = Board()
    assert b.bars == {0: 0x1000, 2: 0x200000, 4: 0x10000} == BARS
    assert b.bar_read(0, R.MHIVER, 4) == R.MHIVER_VALUE
    assert b.bar_read(0, R.BHIOFF, 4) < 0x1000  # prepare_for_power_up range check
    # init.c mhi_init_mmio: CHDBOFF < 4096 - 8*127, ERDBOFF < 4096 - 8*NER
    assert b.bar_read(0, R.CHDBOFF, 4) < 0x1000 - 8 * 127
    assert b.bar_read(0, R.ERDBOFF, 4) < 0x1000 - 8
    assert b.bar_read(0, R.SOC_HW_VERSION, 4) == 0x60110200
    assert b.bar_read(0, b.bar_read(0, R.BHIOFF, 4) + R.BHI_EXECENV, 4) == 0  # PBL
    assert b.violations == []


@pytest.mark.parametrize("start", ["pbl", "amss"])
def test_no_register_reads_all_ones(start: str) -> None:
    """mhi_controller.c mhi_read_reg: 0xFFFFFFFF means link down (-EIO)."""
    b = Board(policies={"mhi-start-ee": start})
    for off in range(0, 0x1000, 4):
        assert b.bar_read(0, off, 4) != 0xFFFFFFFF, hex(off)


def test_read_only_and_unmapped_writes_are_violations() -> None:
    b = Board()
    b.bar_write(0, R.MHIVER, 4, 5)
    b.bar_write(0, R.MHISTATUS, 4, 1)
    b.bar_write(0, b.bar_read(0, R.BHIOFF, 4) + R.BHI_EXECENV, 4, 2)
    b.bar_write(0, 0xF00, 4, 1)
    assert rules(b) == ["MHI-REG-RO", "MHI-REG-RO", "MHI-REG-RO", "MHI-REG-UNMAPPED"]
    assert b.bar_read(0, R.MHIVER, 4) == R.MHIVER_VALUE
    assert b.bar_read(0, R.MHISTATUS, 4) == 0
    assert b.ee == "PBL"


def test_widths_ranges_and_bar4() -> None:
    b = Board()
    b.bar_write(0, R.MHICTRL, 2, 0x200)
    b.bar_read(0, 0x1FFC, 4)
    b.bar_read(3, 0, 4)
    assert rules(b) == ["PCI-ACCESS-WIDTH", "PCI-BAR-RANGE", "PCI-BAR-RANGE"]
    b.bar_write(4, 0x10, 8, 0x1122334455667788)
    assert b.bar_read(4, 0x10, 4) == 0x55667788
    assert b.bar_read(4, 0x14, 2) == 0x3344
    b.bar_memset(4, 0x100, 16, 0xAB)
    assert b.bar_read(4, 0x108, 8) == 0xABABABABABABABAB


def test_qtimer_is_64_bit_and_counts_steps() -> None:
    b = Board(policies={"mhi-start-ee": "amss"})
    t0 = b.bar_read(0, R.QTIMER_LOW, 8)
    b.run()
    t1 = b.bar_read(0, R.QTIMER_LOW, 8)
    assert t1 - t0 == b.steps * 19200 > 0


def test_bhi_writes_and_soc_reset_request() -> None:
    b = Board()
    bhi = b.bar_read(0, R.BHIOFF, 4)
    b.bar_write(0, bhi + R.BHI_INTVEC, 4, 0)
    b.bar_write(0, bhi + R.BHI_IMGADDR_LOW, 4, 0x1000)
    assert b.bar_read(0, bhi + R.BHI_IMGADDR_LOW, 4) == 0x1000
    assert b.bar_read(0, bhi + R.BHI_SERIALNU, 4) != 0
    b.bar_write(0, R.SOC_RESET_REQ_OFFSET, 4, 1)
    assert ("mhi", "soc-reset") in b.actions()
    assert b.bar_read(0, R.SOC_RESET_REQ_OFFSET, 4) == 0  # the driver reads back to flush


@pytest.mark.parametrize("alt, want", [("all-ones", 0xFFFFFFFF), ("zero", 0)])
def test_bar2_is_the_dma_bridge(alt: str, want: int) -> None:
    b = Board(policies=[f"inactive-dbc-regs={alt}"])
    assert b.bar_read(2, 0x20000, 4) == want  # DBC 0 REQ_HP of an idle channel
    b.bar_read(2, 0x100, 4)  # below the DBC block
    assert rules(b) == ["HOST-BAR-UNMAPPED"]


def test_an_idle_channel_reads_all_ones_by_default() -> None:
    """inactive-dbc-regs defaults to all-ones (docs/findings.md F8)."""
    assert Board().bar_read(2, 0x20000 + 0x1000 * 3 + 0xC, 4) == 0xFFFFFFFF


def test_policies_registered() -> None:
    p = Policies(
        {
            "mhi-start-ee": "amss",
            "soc-reset-notify": "silent",
            "bhi-image-check": "accept-any",
            "sahara-images": "first-only",
            "sbl-bootlog": "none",
            "sahara-failure": "sys-err",
        }
    )
    assert p["mhi-start-ee"] == "amss"
    assert Policies()["mhi-start-ee"] == "pbl"
    with pytest.raises(Exception, match="no alternative"):
        Policies({"mhi-start-ee": "sbl"})
    assert Board(policies=["mhi-start-ee=amss"]).ee == "AMSS"
