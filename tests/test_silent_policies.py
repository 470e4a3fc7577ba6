"""The device choices named by the sentence-by-sentence pass (qaicmodel/spec/policies/silent.py):
each default is the model's old behaviour, each other alternative really changes what the
device does."""

from __future__ import annotations

from typing import Any

import pytest

from qaicmodel import arith
from qaicmodel.errors import PolicyError
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.channel import CC_DMA_FAULT, CC_RESERVED_BITS, CC_SUCCESS
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.dbc.wire import (
    CMD_BULK,
    CMD_COMPLETION,
    DB_WRITE,
    RequestElem,
    ResponseElem,
    SemCmd,
    SemOp,
)
from qaicmodel.spec.policies import REGISTRY, Policies
from qaicmodel.spec.policies.silent import SILENT, UNMODELLED
from qaicmodel.spec.scheduler import FirstScheduler, run

DDR = 0x10_0000


def _dev(n: int = 4, /, **pol: str) -> Device:
    dev = Device(policies=Policies({k.replace("_", "-"): v for k, v in pol.items()}))
    base = dev.host_mem.alloc(arith.dbc_buf_size(n))
    dev.activate(0, base, base + arith.dbc_rsp_offset(n), n)
    return dev


def _run_one(dev: Device, elem: RequestElem) -> tuple[int, int]:
    """Publish ``elem`` in slot 0, let the device finish, return (completion code, bytes moved)."""
    dev.host_mem.write(dev.req_slot_addr(0, 0), elem.pack())
    dev.writel(0, regs.REQ_TP, 1)
    run([dev], FirstScheduler(), 10_000)
    rsp = ResponseElem.unpack(dev.host_mem.read(dev.rsp_slot_addr(0, 0), 4))
    return rsp.completion_code, dev.stats.bytes_moved


def _to_dev(length: int, src: int, **extra: Any) -> RequestElem:
    return RequestElem(
        req_id=7,
        pcie_dma_cmd=1 | CMD_BULK | CMD_COMPLETION,
        pcie_dma_source_addr=src,
        pcie_dma_dest_addr=DDR,
        pcie_dma_len=length,
        **extra,
    )


def test_bar2_unmapped_read() -> None:
    off = regs.DBC_BASE + 0x10  # inside DBC 0's 4 KiB block, past its four registers
    assert Device().bar_read(off) == 0
    dev = Device(policies=Policies({"bar2-unmapped-read": "all-ones"}))
    assert dev.bar_read(off) == 0xFFFFFFFF
    assert [v.rule for v in dev.violations] == ["HOST-BAR-UNMAPPED"]


@pytest.mark.parametrize(("alt", "tp"), [("accepted", 0), ("ignored", 2)])
def test_req_tp_overrun(alt: str, tp: int) -> None:
    dev = _dev(4, req_tp_overrun=alt)
    dev.writel(0, regs.REQ_TP, 2)  # two published, none consumed
    dev.writel(0, regs.REQ_TP, 0)  # two more than the free space of one (keep-one-free)
    assert "HOST-REQ-OVERRUN" in [v.rule for v in dev.violations]
    assert dev.readl(0, regs.REQ_TP) == tp


@pytest.mark.parametrize(("alt", "hp"), [("accepted", 3), ("ignored", 0)])
def test_rsp_hp_overread(alt: str, hp: int) -> None:
    dev = _dev(4, rsp_hp_overread=alt)
    dev.writel(0, regs.RSP_HP, 3)  # frees three responses the device never wrote
    assert [v.rule for v in dev.violations] == ["HOST-RSP-OVERREAD"]
    assert dev.readl(0, regs.RSP_HP) == hp


@pytest.mark.parametrize(("alt", "want"), [("nothing", (CC_SUCCESS, 0)), ("4g", (CC_DMA_FAULT, 0))])
def test_dma_zero_length(alt: str, want: tuple[int, int]) -> None:
    dev = _dev(dma_zero_length=alt, dma_fault="error")
    src = dev.host_mem.alloc(4096)
    assert _run_one(dev, _to_dev(0, src)) == want


@pytest.mark.parametrize(
    ("alt", "want"), [("ignored", (CC_SUCCESS, 16)), ("error", (CC_RESERVED_BITS, 0))]
)
def test_reserved_bits_device(alt: str, want: tuple[int, int]) -> None:
    dev = _dev(reserved_bits_device=alt)
    src = dev.host_mem.alloc(4096)
    assert _run_one(dev, _to_dev(16, src, reserved1=1)) == want
    assert "RESERVED-BITS-SET" in [v.rule for v in dev.violations]


def test_reserved_bits_error_leaves_clean_requests_alone() -> None:
    dev = _dev(reserved_bits_device="error")
    src = dev.host_mem.alloc(4096)
    assert _run_one(dev, _to_dev(16, src)) == (CC_SUCCESS, 16)


def _fault_then_doorbell(**pol: str) -> tuple[int, int, int, int]:
    """A to-device transfer from unmapped memory with a postsync INC and a doorbell:
    (completion code, semaphore 3, doorbell word, responses written)."""
    dev = _dev(**pol)
    elem = _to_dev(
        16,
        0xDEAD_0000_0000,
        doorbell_addr=DB,
        doorbell_attr=DB_WRITE,
        doorbell_data=1,
        sem_cmd0=SemCmd.build(op=SemOp.INC, index=3, value=1, enable=True).word,
    )
    code, _moved = _run_one(dev, elem)
    return code, dev.ch[0].sems[3], dev.dev_mem.read_u(DB, 4), dev.ch[0].responses


DB = 0x4000_1000


@pytest.mark.parametrize(
    ("alt", "want"),
    [("continue", (CC_DMA_FAULT, 1, 1, 1)), ("skip", (CC_DMA_FAULT, 0, 0, 1))],
)
def test_after_dma_fault(alt: str, want: tuple[int, int, int, int]) -> None:
    assert _fault_then_doorbell(after_dma_fault=alt) == want


@pytest.mark.parametrize(("alt", "responses"), [("silent", 0), ("respond", 1)])
def test_error_without_completion(alt: str, responses: int) -> None:
    dev = _dev(error_without_completion=alt)
    bad = RequestElem(
        req_id=9,
        pcie_dma_cmd=1 | CMD_BULK,
        pcie_dma_source_addr=0xDEAD_0000_0000,
        pcie_dma_dest_addr=DDR,
        pcie_dma_len=16,
    )
    dev.host_mem.write(dev.req_slot_addr(0, 0), bad.pack())
    dev.writel(0, regs.REQ_TP, 1)
    run([dev], FirstScheduler(), 10_000)
    assert dev.ch[0].responses == responses
    if responses:
        rsp = ResponseElem.unpack(dev.host_mem.read(dev.rsp_slot_addr(0, 0), 4))
        assert (rsp.req_id, rsp.completion_code) == (9, CC_DMA_FAULT)


def test_error_without_completion_leaves_good_requests_alone() -> None:
    dev = _dev(error_without_completion="respond")
    src = dev.host_mem.alloc(4096)
    good = RequestElem(
        req_id=9,
        pcie_dma_cmd=1 | CMD_BULK,
        pcie_dma_source_addr=src,
        pcie_dma_dest_addr=DDR,
        pcie_dma_len=16,
    )
    dev.host_mem.write(dev.req_slot_addr(0, 0), good.pack())
    dev.writel(0, regs.REQ_TP, 1)
    run([dev], FirstScheduler(), 10_000)
    assert dev.ch[0].responses == 0 and dev.stats.bytes_moved == 16


@pytest.mark.parametrize(("alt", "want"), [("zero", [0, 0]), ("kept", [5, 0])])
def test_sem_at_activate(alt: str, want: list[int]) -> None:
    dev = _dev(sem_at_activate=alt)
    dev.nsp_sem(0, 2, SemOp.INIT, 5)
    dev.deactivate(0)
    base = dev.host_mem.alloc(arith.dbc_buf_size(4))
    dev.activate(0, base, base + arith.dbc_rsp_offset(4), 4)
    got = [dev.ch[0].sems[2]]
    dev.reset()  # a SoC reset clears what was kept
    dev.activate(0, base, base + arith.dbc_rsp_offset(4), 4)
    assert got + [dev.ch[0].sems[2]] == want


@pytest.mark.parametrize(("alt", "want"), [("storage", 0x1234), ("inert", 0)])
def test_bar4_contents(alt: str, want: int) -> None:
    from qaicmodel.emu.board import Board

    board = Board(policies={"bar4-contents": alt})
    board.bar_write(4, 0x10, 4, 0x1234)
    board.bar_memset(4, 0x20, 4, 0x12)
    assert board.bar_read(4, 0x10, 4) == want
    assert board.bar_read(4, 0x20, 4) == (0x12121212 if want else 0)


@pytest.mark.parametrize(("alt", "want"), [("dropped", 0x11223344), ("merged", 0x1122AA44)])
def test_narrow_register_write(alt: str, want: int) -> None:
    from qaicmodel.emu import mhi_regs
    from qaicmodel.emu.board import Board

    board = Board(policies={"narrow-register-write": alt})
    imgaddr = board.bar_read(0, mhi_regs.BHIOFF, 4) + mhi_regs.BHI_IMGADDR_LOW  # PBL: writable
    board.bar_write(0, imgaddr, 4, 0x11223344)
    board.bar_write(0, imgaddr + 1, 1, 0xAA)  # a 1-byte write: PCI-ACCESS-WIDTH either way
    assert board.bar_read(0, imgaddr, 4) == want


SILENT_DEFAULTS = {
    "bar2-unmapped-read": "zero",
    "req-tp-overrun": "accepted",
    "rsp-hp-overread": "accepted",
    "sem-at-activate": "zero",
    "dma-zero-length": "nothing",
    "reserved-bits-device": "ignored",
    "after-dma-fault": "continue",
    "error-without-completion": "silent",
    "bar4-contents": "storage",
    "narrow-register-write": "dropped",
}


def test_silent_policies_are_registered_with_their_old_behaviour_as_default() -> None:
    assert {p.id: p.default for p in SILENT} == SILENT_DEFAULTS
    for pid in SILENT_DEFAULTS:
        assert REGISTRY[pid].category == "device" and len(REGISTRY[pid].alternatives) == 2
    assert {p.id for p in REGISTRY.values() if p.area == "dma-bridge-silent"} == {
        p.id for p in (*SILENT, *UNMODELLED) if p.area == "dma-bridge-silent"
    }


def test_unmodelled_choices_run_one_reading_and_refuse_the_other() -> None:
    for pol in UNMODELLED:
        assert REGISTRY[pol.id] is pol
        assert pol.category == "modelling-limit" and list(pol.alternatives) == [pol.default]
        assert pol.decision.startswith("The other reading is not modelled: '")
        other = pol.decision.split("'")[1]
        with pytest.raises(PolicyError, match="no alternative"):
            Policies({pol.id: other})
