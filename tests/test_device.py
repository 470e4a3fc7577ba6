"""The DMA Bridge device model: registers, request steps, semaphores, MSIs, and every policy.

Each dma-bridge policy has a case in POLICY_CASES that observes what the
device does; the test asserts every alternative gives a different observation
(so each alternative really changes behaviour) and checks the expected values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qaicmodel import arith
from qaicmodel.errors import ArgumentError, LocalProtocolError
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.device import (
    CC_BAD_DOORBELL,
    CC_DMA_FAULT,
    CC_ILLEGAL_DIR,
    CC_LINKED_LIST,
    CC_MULTI_PRESYNC,
    CC_SEM_RESERVED,
    Advance,
    Consume,
    Device,
    RaiseMsi,
    Stage,
)
from qaicmodel.spec.dbc.wire import (
    CMD_BULK,
    CMD_COMPLETION,
    CMD_FORCE_MSI,
    DB_WRITE,
    RequestElem,
    ResponseElem,
    SemCmd,
    SemOp,
)
from qaicmodel.spec.dbc.workload import (
    CompilerProtocolWorkload,
    EchoWorkload,
    Phase,
    doorbell_addr,
    input_slice,
    output_slice,
)
from qaicmodel.spec.policies import REGISTRY, Policies
from qaicmodel.spec.scheduler import FirstScheduler, RandomScheduler, run

DDR = 0x10_0000
DB = 0x4000_1000

# -- helpers -------------------------------------------------------------------


def make(
    n: int = 8,
    dbc: int = 0,
    single_msi: bool = False,
    *,
    policies: Mapping[str, str] | None = None,
    **pol: str,
) -> Device:
    chosen = {k.replace("_", "-"): v for k, v in pol.items()} | dict(policies or {})
    dev = Device(policies=Policies(chosen), single_msi=single_msi)
    base = dev.host_mem.alloc(arith.dbc_buf_size(n))
    dev.activate(dbc, base, base + arith.dbc_rsp_offset(n), n)
    return dev


def sem(
    op: int,
    index: int = 0,
    value: int = 0,
    presync: bool = False,
    enable: bool = True,
    todev: bool = False,
    fromdev: bool = False,
) -> int:
    return SemCmd.build(
        op=op,
        index=index,
        value=value,
        presync=presync,
        enable=enable,
        todev_fence=todev,
        fromdev_fence=fromdev,
    ).word


def req(
    req_id: int = 0,
    d: int = 0,
    *,
    src: int = 0,
    dst: int = 0,
    length: int = 0,
    completion: bool = True,
    bulk: bool = True,
    force: bool = False,
    db: int | None = None,
    db_len: int = 0,
    db_data: int = 1,
    sems: tuple[int, ...] = (),
) -> RequestElem:
    cmd = (
        d
        | (CMD_BULK if bulk else 0)
        | (CMD_COMPLETION if completion else 0)
        | (CMD_FORCE_MSI if force else 0)
    )
    words = list(sems) + [0] * (4 - len(sems))
    return RequestElem(
        req_id=req_id,
        pcie_dma_cmd=cmd,
        pcie_dma_source_addr=src,
        pcie_dma_dest_addr=dst,
        pcie_dma_len=length,
        doorbell_addr=db or 0,
        doorbell_attr=(DB_WRITE | db_len) if db is not None else 0,
        doorbell_data=db_data,
        sem_cmd0=words[0],
        sem_cmd1=words[1],
        sem_cmd2=words[2],
        sem_cmd3=words[3],
    )


def push(dev: Device, *elems: RequestElem, dbc: int = 0) -> None:
    ch = dev.ch[dbc]
    tp = ch.req_tp
    for e in elems:
        dev.host_mem.write(dev.req_slot_addr(dbc, tp), e.pack())
        tp = (tp + 1) % ch.nelem
    dev.writel(dbc, regs.REQ_TP, tp)


def settle(dev: Device, *actors: Any) -> int:
    return run([dev, *actors], FirstScheduler(), 10_000)


def responses(dev: Device, dbc: int = 0, drain: bool = False) -> list[tuple[int, int]]:
    ch = dev.ch[dbc]
    out: list[tuple[int, int]] = []
    i = ch.rsp_hp
    while i != ch.rsp_tp or (len(out) == 0 and ch.rsp_count == ch.nelem):
        r = ResponseElem.unpack(dev.host_mem.read(dev.rsp_slot_addr(dbc, i), 4))
        out.append((r.req_id, r.completion_code))
        i = (i + 1) % ch.nelem
        if len(out) == ch.rsp_count:
            break
    if drain:
        dev.writel(dbc, regs.RSP_HP, i)
    return out


def rules(dev: Device) -> list[str]:
    return [v.rule for v in dev.violations]


# -- policy cases: policies -> observation ---------------------------------------


def case_ring_full(p: dict[str, str]) -> Any:
    dev = make(4, policies=p)
    push(dev, *[req(i, completion=False) for i in range(3)])
    push(dev, req(3, completion=False))  # the 4th element: overrun only when one slot is kept free
    settle(dev)
    return ("HOST-REQ-OVERRUN" in rules(dev), dev.stats.consumed)


def _sem_after(p: dict[str, str], *words: int, init: int = 0, index: int = 2) -> int:
    dev = make(policies=p)
    dev.nsp_sem(0, index, SemOp.INIT, init)
    push(dev, req(1, completion=False, sems=words))
    settle(dev)
    return dev.ch[0].sems[index]


def case_sem_inc_amount(p: dict[str, str]) -> Any:
    return _sem_after(p, sem(SemOp.INC, 2, 5))


def case_sem_overflow(p: dict[str, str]) -> Any:
    return _sem_after(p, sem(SemOp.INC, 2, 1), init=4095)


def case_sem_underflow(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    push(dev, req(1, completion=False, sems=(sem(SemOp.DEC, 2, 1),)))
    settle(dev)
    return (dev.ch[0].sems[2], len(dev.ch[0].inflight))


def case_sem_p(p: dict[str, str]) -> Any:
    return _sem_after(p, sem(SemOp.P, 2, 0), init=2)


def case_sem_enable_bit(p: dict[str, str]) -> Any:
    return _sem_after(p, sem(SemOp.INC, 2, 1, enable=False))


def _blocker(index: int = 1) -> RequestElem:
    """A to-device request stuck on its presync until semaphore ``index`` is 1."""
    return req(
        10,
        1,
        src=0,
        dst=DDR,
        length=0,
        completion=False,
        sems=(sem(SemOp.WAIT_EQ, index, 1, presync=True),),
    )


def case_fence_without_enable(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    fence_only = sem(SemOp.NOP, enable=False, todev=True)
    push(dev, _blocker(), req(11, completion=False, sems=(fence_only, sem(SemOp.INC, 2, 1))))
    settle(dev)
    return dev.ch[0].sems[2]


def case_fence_scope(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    dev.nsp_sem(0, 3, SemOp.INIT, 1)
    # A: an earlier to-device transfer blocked on sem1; B: fenced, with a presync P on sem3;
    # C (consumed after B): a to-device fence-free transfer blocked on sem4.
    b = req(
        11,
        completion=False,
        sems=(sem(SemOp.P, 3, 0, presync=True, todev=True), sem(SemOp.INC, 2, 1)),
    )
    push(dev, _blocker(1), b)
    settle(dev)
    first = (dev.ch[0].sems[3], dev.ch[0].sems[2])
    dev2 = make(policies=p)
    a2 = req(
        20,
        1,
        completion=False,
        sems=(sem(SemOp.NOP, enable=False, todev=True), sem(SemOp.INC, 2, 1)),
    )
    push(dev2, a2)
    dev2.step(Consume(0))
    push(dev2, _blocker(4))
    dev2.step(Consume(0))
    settle(dev2)
    return first, dev2.ch[0].sems[2]


def case_presync_multiple(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    push(
        dev,
        req(5, sems=(sem(SemOp.WAIT_GE, 1, 0, presync=True), sem(SemOp.INC, 2, 1, presync=True))),
    )
    settle(dev)
    return dev.ch[0].sems[2], responses(dev)


def case_processing_order(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    push(dev, _blocker(), req(7))
    settle(dev)
    return responses(dev)


def case_response_order(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    push(dev, req(1, sems=(sem(SemOp.WAIT_EQ, 1, 1),)), req(2))
    settle(dev)
    before = responses(dev)
    dev.nsp_sem(0, 1, SemOp.INIT, 1)
    settle(dev)
    return before, responses(dev)


def case_illegal_direction(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    push(dev, req(9, 3, completion=False, sems=(sem(SemOp.INC, 2, 1),)))
    settle(dev)
    return dev.ch[0].sems[2], responses(dev)


def case_doorbell_reserved_len(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    push(dev, req(4, db=DB, db_len=3, db_data=0xAABBCCDD))
    settle(dev)
    return dev.dev_mem.read_u(DB, 4), responses(dev)


def case_doorbell_misaligned(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    push(dev, req(4, db=DB + 2, db_len=0, db_data=0x11223344))
    settle(dev)
    return dev.dev_mem.read(DB, 8), responses(dev)


def case_linked_list(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    src = dev.host_mem.alloc(4096)
    dev.host_mem.write(src, b"\x5a" * 16)
    push(dev, req(3, 1, src=src, dst=DDR, length=16, bulk=False))
    settle(dev)
    return dev.dev_mem.read(DDR, 16), responses(dev)


def case_msi_while_masked(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    dev.intc.mask(1)
    push(dev, req(1))
    settle(dev)
    lost = dev.intc.lost[1]
    dev.intc.unmask(1)
    return dev.intc.deliverable(1), lost


def case_force_msi(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    push(dev, req(1, completion=False, force=True))
    settle(dev)
    return dev.ch[0].msi_raised, dev.intc.pending(1)


def case_msi_empty_transition(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    push(dev, req(1))
    settle(dev)
    push(dev, req(2))
    settle(dev)
    return dev.ch[0].msi_raised


def case_response_ring_full(p: dict[str, str]) -> Any:
    dev = make(4, policies=p)
    push(dev, req(1), req(2), req(3))
    settle(dev)
    push(dev, req(4))
    settle(dev)
    return len(responses(dev)), len(dev.ch[0].inflight), dev.stats.responses_dropped


def case_tail_out_of_range(p: dict[str, str]) -> Any:
    dev = make(4, policies=p)
    dev.writel(0, regs.REQ_TP, 5)
    return "HOST-REG-OUT-OF-RANGE" in rules(dev), dev.readl(0, regs.REQ_TP)


def case_dma_fault(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    src = dev.host_mem.alloc(4096)
    dev.host_mem.write(src + 4088, b"ABCDEFGH")
    push(dev, req(6, 1, src=src + 4088, dst=DDR, length=16))
    settle(dev)
    return dev.dev_mem.read(DDR, 16), responses(dev), dev.stats.bytes_moved


def case_doorbell_data_width(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    push(dev, req(1, db=DB, db_len=2, db_data=0x1FF))
    settle(dev)
    return dev.dev_mem.read_u(DB, 4), "REQ-DB-DATA-WIDTH" in rules(dev)


def case_sem_reserved_cmd(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    push(dev, req(2, sems=(sem(SemOp.RESERVED, 1, 0), sem(SemOp.INC, 2, 1))))
    settle(dev)
    return dev.ch[0].sems[2], responses(dev)


def case_completion_code_values(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    push(dev, req(2, 1, length=0, bulk=False))
    settle(dev)
    return responses(dev)


def case_inactive_dbc_regs(p: dict[str, str]) -> Any:
    dev = make(policies=p)
    return dev.readl(5, regs.RSP_TP), dev.bar_read(regs.dbc_reg_offset(7, regs.REQ_HP))


def case_presync_non_wait(p: dict[str, str]) -> Any:
    return _sem_after(p, sem(SemOp.INC, 2, 1, presync=True))


def case_head_index_meaning(p: dict[str, str]) -> Any:
    """One request consumed and answered; the host then frees the response the way
    qaic_data.c does (RSP_HP := the next slot it will read, here 1)."""
    dev = make(policies=p)
    push(dev, req(3))
    settle(dev)
    req_hp = dev.readl(0, regs.REQ_HP)
    dev.writel(0, regs.RSP_HP, 1)
    return req_hp, "HOST-RSP-OVERREAD" in rules(dev)


POLICY_CASES: dict[str, Callable[[dict[str, str]], Any]] = {
    "ring-full-rule": case_ring_full,
    "sem-inc-amount": case_sem_inc_amount,
    "sem-overflow": case_sem_overflow,
    "sem-underflow": case_sem_underflow,
    "sem-p-decrements": case_sem_p,
    "sem-enable-bit": case_sem_enable_bit,
    "fence-without-enable": case_fence_without_enable,
    "fence-scope": case_fence_scope,
    "presync-multiple": case_presync_multiple,
    "processing-order": case_processing_order,
    "response-order": case_response_order,
    "illegal-direction": case_illegal_direction,
    "doorbell-reserved-len": case_doorbell_reserved_len,
    "doorbell-misaligned": case_doorbell_misaligned,
    "linked-list": case_linked_list,
    "msi-while-masked": case_msi_while_masked,
    "force-msi": case_force_msi,
    "msi-empty-transition": case_msi_empty_transition,
    "response-ring-full": case_response_ring_full,
    "tail-out-of-range": case_tail_out_of_range,
    "dma-fault": case_dma_fault,
    "doorbell-data-width": case_doorbell_data_width,
    "sem-reserved-cmd": case_sem_reserved_cmd,
    "completion-code-values": case_completion_code_values,
    "inactive-dbc-regs": case_inactive_dbc_regs,
    "presync-non-wait": case_presync_non_wait,
    "head-index-meaning": case_head_index_meaning,
}

EXPECTED: dict[str, dict[str, Any]] = {
    "ring-full-rule": {"keep-one-free": (True, 0), "all-slots": (False, 4)},
    "sem-inc-amount": {"by-one": 1, "by-value": 5},
    "sem-overflow": {"saturate": 4095, "wrap": 0},
    "sem-underflow": {"saturate": (0, 0), "wrap": (4095, 0), "block": (0, 1)},
    "sem-p-decrements": {"decrement": 1, "wait-only": 2},
    "sem-enable-bit": {"enable-gates": 0, "command-gates": 1},
    "fence-without-enable": {"honoured": 0, "needs-enable": 1},
    "fence-scope": {
        "earlier-before-presync": ((1, 0), 1),
        "earlier-before-dma": ((0, 0), 1),
        "all-outstanding": ((1, 0), 0),
    },
    "presync-multiple": {
        "error": (0, [(5, CC_MULTI_PRESYNC)]),
        "all-gate": (1, [(5, 0)]),
        "first-only": (0, [(5, 0)]),
    },
    "processing-order": {"rule-permitted": [(7, 0)], "fifo": []},
    "response-order": {
        "completion-order": ([(2, 0)], [(2, 0), (1, 0)]),
        "request-order": ([], [(1, 0), (2, 0)]),
    },
    "illegal-direction": {
        "error-if-requested": (0, []),
        "error-always": (0, [(9, CC_ILLEGAL_DIR)]),
        "as-none": (1, []),
    },
    "doorbell-reserved-len": {
        "skip-error": (0, [(4, CC_BAD_DOORBELL)]),
        "as-32": (0xAABBCCDD, [(4, 0)]),
    },
    "doorbell-misaligned": {
        "skip-error": (bytes(8), [(4, CC_BAD_DOORBELL)]),
        "align-down": (bytes.fromhex("4433221100000000"), [(4, 0)]),
        "write-anyway": (bytes.fromhex("0000443322110000"), [(4, 0)]),
    },
    "linked-list": {"error": (bytes(16), [(3, CC_LINKED_LIST)])},
    "msi-while-masked": {"latched": (True, 0), "lost": (False, 1)},
    "force-msi": {"honoured": (1, True), "ignored": (0, False)},
    "msi-empty-transition": {"host-head": 1},
    "response-ring-full": {"stall": (3, 1, 0), "drop": (3, 0, 1)},
    "tail-out-of-range": {"ignore": (True, 0), "modulo": (True, 1)},
    "dma-fault": {
        "error": (bytes(16), [(6, CC_DMA_FAULT)], 0),
        "partial": (b"ABCDEFGH" + bytes(8), [(6, CC_DMA_FAULT)], 8),
    },
    "doorbell-data-width": {"truncate": (0xFF, False)},
    "sem-reserved-cmd": {"error": (0, [(2, CC_SEM_RESERVED)]), "ignore": (1, [(2, 0)])},
    "completion-code-values": {"distinct": [(2, CC_LINKED_LIST)], "one": [(2, 1)]},
    "inactive-dbc-regs": {"zero": (0, 0), "all-ones": (0xFFFFFFFF, 0xFFFFFFFF)},
    "presync-non-wait": {"apply": 1, "ignore": 0},
    "head-index-meaning": {"next-slot": (1, False), "last-consumed": (0, True)},
}

DB_POLICIES = sorted(pid for pid, pol in REGISTRY.items() if pol.area == "dma-bridge")


def test_every_dma_bridge_policy_has_a_case() -> None:
    assert sorted(POLICY_CASES) == DB_POLICIES
    for pid in DB_POLICIES:
        assert sorted(EXPECTED[pid]) == sorted(REGISTRY[pid].alternatives), pid


@pytest.mark.parametrize("pid", DB_POLICIES)
def test_each_alternative_changes_behaviour(pid: str) -> None:
    seen = {}
    for alt in REGISTRY[pid].alternatives:
        seen[alt] = POLICY_CASES[pid]({pid: alt})
        assert seen[alt] == EXPECTED[pid][alt], (pid, alt, seen[alt])
    values = list(seen.values())
    assert all(
        values[i] != values[j] for i in range(len(values)) for j in range(i + 1, len(values))
    )


# -- registers -------------------------------------------------------------------


def test_device_owned_register_write_is_a_violation_without_effect() -> None:
    dev = make()
    dev.writel(0, regs.REQ_HP, 3)
    dev.writel(0, regs.RSP_TP, 2)
    assert rules(dev) == ["HOST-WRITE-DEVICE-REG"] * 2
    assert dev.readl(0, regs.REQ_HP) == 0 and dev.readl(0, regs.RSP_TP) == 0


def test_write_to_inactive_channel_is_a_violation() -> None:
    dev = make()
    dev.writel(3, regs.REQ_TP, 1)
    assert rules(dev) == ["HOST-INACTIVE-DBC"]
    assert dev.enabled() == []


def test_rsp_overread_is_recorded() -> None:
    dev = make()
    push(dev, req(1))
    settle(dev)
    dev.writel(0, regs.RSP_HP, 2)
    assert rules(dev) == ["HOST-RSP-OVERREAD"]


def test_bar_offsets_map_to_registers() -> None:
    dev = make(dbc=2)
    dev.bar_write(0x20000 + 2 * 0x1000 + 0x4, 1)
    assert dev.readl(2, regs.REQ_TP) == 1
    assert dev.bar_read(0x22004) == 1
    assert dev.bar_read(0x10) == 0 and rules(dev) == ["HOST-BAR-UNMAPPED"]
    dev.bar_write(0x22010, 5)
    assert rules(dev) == ["HOST-BAR-UNMAPPED"] * 2
    for bad in (-4, 2 * 1024 * 1024, "0x20000"):
        with pytest.raises(ArgumentError):
            dev.bar_read(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.readl(16, 0),
        lambda d: d.readl(0, 0x10),
        lambda d: d.writel(0, 4, -1),
        lambda d: d.writel(0, 4, 1 << 32),
        lambda d: d.nsp_sem(0, 32, 1, 0),
        lambda d: d.nsp_sem(0, 0, 7, 0),
        lambda d: d.nsp_sem(0, 0, 1, 4096),
        lambda d: d.nsp_sem(1, 0, 1, 0),
        lambda d: d.activate(0, 0, 0, 8),
        lambda d: d.activate(1, 0, 0, 8),
        lambda d: d.step(Consume(0)),
        lambda d: d.step(Advance(0, 9)),
        lambda d: d.step(RaiseMsi(0)),
        lambda d: d.step("consume"),
    ],
)
def test_bad_arguments_raise_argument_error(call: Callable[[Device], Any]) -> None:
    with pytest.raises(ArgumentError):
        call(make())


def test_strict_mode_raises_local_protocol_error() -> None:
    dev = Device(strict=True)
    with pytest.raises(LocalProtocolError) as ei:
        dev.writel(0, regs.REQ_TP, 1)
    assert ei.value.rule == "HOST-INACTIVE-DBC"


# -- request processing ----------------------------------------------------------


def test_to_device_then_from_device_moves_bytes() -> None:
    dev = make()
    a = dev.host_mem.alloc(4096)
    b = dev.host_mem.alloc(4096)
    dev.host_mem.write(a, bytes(range(200)))
    push(dev, req(1, 1, src=a, dst=DDR, length=200), req(2, 2, src=DDR, dst=b + 8, length=200))
    settle(dev)
    assert dev.host_mem.read(b + 8, 200) == bytes(range(200))
    assert dev.stats.bytes_moved == dev.stats.bytes_requested == 400
    assert responses(dev) == [(1, 0), (2, 0)]


@pytest.mark.parametrize("db_len,width", [(0, 4), (1, 2), (2, 1)])
def test_doorbell_widths_write_only_their_bytes(db_len: int, width: int) -> None:
    dev = make()
    dev.dev_mem.write(DB, b"\xee" * 8)
    push(dev, req(1, db=DB, db_len=db_len, db_data=0x44332211))
    settle(dev)
    assert dev.dev_mem.read(DB, 8) == bytes.fromhex("11223344")[:width] + b"\xee" * (8 - width)


def test_no_response_without_completion_bit() -> None:
    dev = make()
    push(dev, req(1, completion=False), req(2))
    settle(dev)
    assert responses(dev) == [(2, 0)]


def test_steps_follow_the_documented_order() -> None:
    dev = make()
    dev.nsp_sem(0, 1, SemOp.INIT, 0)
    a = dev.host_mem.alloc(4096)
    events: list[str] = []
    dev.observers.append(lambda ev: events.append(ev[0]))
    push(
        dev,
        req(
            1,
            1,
            src=a,
            dst=DDR,
            length=4,
            db=DB,
            db_len=0,
            sems=(sem(SemOp.WAIT_EQ, 1, 1, presync=True), sem(SemOp.INC, 2, 1)),
        ),
    )
    settle(dev)
    assert dev.blocked(0) == [(0, Stage.PRESYNC)]
    dev.nsp_sem(0, 1, SemOp.INC, 1)
    settle(dev)
    kinds = [e for e in events if e in ("consume", "sem", "dma", "doorbell", "response", "done")]
    assert kinds == ["consume", "sem", "dma", "sem", "doorbell", "response", "done"]


def test_semaphore_commands() -> None:
    dev = make()
    assert dev.nsp_sem(0, 4, SemOp.INIT, 7)
    assert dev.nsp_sem(0, 4, SemOp.WAIT_EQ, 7) and not dev.nsp_sem(0, 4, SemOp.WAIT_EQ, 6)
    assert dev.nsp_sem(0, 4, SemOp.WAIT_GE, 7) and not dev.nsp_sem(0, 4, SemOp.WAIT_GE, 8)
    assert dev.nsp_sem(0, 4, SemOp.P, 0) and dev.ch[0].sems[4] == 6
    dev.nsp_sem(0, 4, SemOp.INIT, 0)
    assert not dev.nsp_sem(0, 4, SemOp.P, 0) and dev.ch[0].sems[4] == 0


def test_requests_sharing_a_semaphore_keep_fifo_order() -> None:
    dev = make()
    # both wait for sem1 == 1; the first re-inits it to 0 afterwards, so the second must wait
    first = req(1, sems=(sem(SemOp.WAIT_EQ, 1, 1, presync=True), sem(SemOp.INIT, 1, 0)))
    second = req(2, sems=(sem(SemOp.WAIT_EQ, 1, 1, presync=True),))
    push(dev, first, second)
    dev.nsp_sem(0, 1, SemOp.INIT, 1)
    settle(dev)
    assert responses(dev) == [(1, 0)]
    dev.nsp_sem(0, 1, SemOp.INIT, 1)
    settle(dev)
    assert responses(dev) == [(1, 0), (2, 0)]


def test_rule_permitted_allows_other_orders_than_fifo() -> None:
    orders = set()
    for seed in range(30):
        dev = make()
        push(dev, req(1, sems=(sem(SemOp.INC, 1, 1),)), req(2, sems=(sem(SemOp.INC, 2, 1),)))
        run([dev], RandomScheduler(seed))
        orders.add(tuple(r for r, _ in responses(dev)))
    assert orders == {(1, 2), (2, 1)}


def test_single_msi_uses_vector_zero() -> None:
    dev = make(single_msi=True)
    assert dev.intc.vectors == 1 and dev.vector(0) == 0
    push(dev, req(1))
    settle(dev)
    assert dev.intc.pending(0)
    assert make().intc.vectors == 17


def test_msi_only_on_empty_to_non_empty() -> None:
    dev = make()
    push(dev, req(1))
    settle(dev)
    push(dev, req(2))
    settle(dev)
    assert dev.ch[0].msi_raised == 1
    responses(dev, drain=True)
    push(dev, req(3))
    settle(dev)
    assert dev.ch[0].msi_raised == 2 and dev.intc.raised[1] == 2


@pytest.mark.parametrize("alt, want", [("zero", 0), ("all-ones", 0xFFFFFFFF)])
def test_deactivate_drops_work_and_resets_registers(alt: str, want: int) -> None:
    dev = make(inactive_dbc_regs=alt)
    push(dev, _blocker(), req(2))
    dev.step(Consume(0))
    dev.deactivate(0)
    assert [dev.readl(0, r) for r in (0, 4, 8, 12)] == [want] * 4
    assert dev.enabled() == [] and dev.ch[0].inflight == {}
    assert dev.quiescent() and dev.idle()


def test_enabled_is_deterministic_and_step_checks() -> None:
    dev = make()
    push(dev, req(1), req(2))
    assert dev.enabled() == [Consume(0)]
    dev.step(Consume(0))
    dev.step(Consume(0))
    assert dev.enabled() == [Advance(0, 0), Advance(0, 1)]
    assert dev.blocked(0) == [(0, Stage.RESPONSE), (1, Stage.RESPONSE)]
    dev.step(Advance(0, 1))
    assert dev.enabled() == [Advance(0, 0), RaiseMsi(0)]
    with pytest.raises(ArgumentError):
        dev.step(Advance(0, 1))


# -- workloads ---------------------------------------------------------------------


def _protocol_req(
    req_id: int, d: int, src: int, dst: int, length: int, sl: dict[str, Any]
) -> RequestElem:
    def word(s: dict[str, int]) -> int:
        return arith.sem_encode(s["val"], s["index"], s["presync"], s["cmd"], s["flags"])

    return RequestElem(
        req_id=req_id,
        pcie_dma_cmd=CMD_BULK | CMD_COMPLETION | d,
        pcie_dma_source_addr=src,
        pcie_dma_dest_addr=dst,
        pcie_dma_len=length,
        doorbell_addr=sl["db_addr"],
        doorbell_attr=DB_WRITE,
        doorbell_data=1,
        sem_cmd0=word(sl["sem0"]),
        sem_cmd1=word(sl["sem1"]),
        sem_cmd2=word(sl["sem2"]),
        sem_cmd3=word(sl["sem3"]),
    )


@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 6))
def test_echo_workload_returns_the_input_pipelined(seed: int, k: int) -> None:
    dev = make(64)
    w = EchoWorkload(dev, 0, DDR, DDR + 0x1000, 32, inferences=k)
    ins = [dev.host_mem.alloc(32) for _ in range(k)]
    outs = [dev.host_mem.alloc(32) for _ in range(k)]
    elems = []
    for i in range(k):
        dev.host_mem.write(ins[i], bytes([i + 1]) * 32)
        elems.append(_protocol_req(2 * i, 1, ins[i], DDR, 32, input_slice(0, last=True)))
        elems.append(
            _protocol_req(2 * i + 1, 2, DDR + 0x1000, outs[i], 32, output_slice(1, last=True))
        )
    push(dev, *elems)
    run([dev, w], RandomScheduler(seed), 100_000)
    assert w.completed == k and w.phase is Phase.FINISHED
    for i in range(k):
        assert dev.host_mem.read(outs[i], 32) == bytes([i + 1]) * 32
    assert sorted(r for r, _ in responses(dev)) == list(range(2 * k))
    assert dev.violations == []


def test_compiler_protocol_with_several_nsps_and_buffers() -> None:
    dev = make(512)
    n_in, n_out, per = 3, 2, 2
    w = CompilerProtocolWorkload(
        dev, 0, n_in, n_out, in_doorbells=(0, 1), out_doorbells=(2, 3), inferences=50
    )
    host = dev.host_mem.alloc(4096)
    elems = []
    rid = 0
    for _ in range(50):
        for j in range(per):
            elems.append(
                _protocol_req(
                    rid, 1, host, DDR + 64 * j, 64, input_slice(j, last=j == per - 1, n_in=n_in)
                )
            )
            rid += 1
        for j in range(per):
            elems.append(
                _protocol_req(
                    rid,
                    2,
                    DDR + 0x800 + 64 * j,
                    host + 1024,
                    64,
                    output_slice(2 + j, last=j == per - 1, n_out=n_out),
                )
            )
            rid += 1
    for chunk in range(0, len(elems), 100):
        push(dev, *elems[chunk : chunk + 100])
        run([dev, w], RandomScheduler(chunk))
        responses(dev, drain=True)
    assert w.completed == 50 and dev.stats.responses == 200 and dev.violations == []
    assert dev.dev_mem.read_u(doorbell_addr(2), 4) == 1


def test_exit_doorbell_stops_the_workload() -> None:
    dev = make()
    w = CompilerProtocolWorkload(dev, 0)
    push(dev, req(1, completion=False, db=doorbell_addr(280), db_len=0, db_data=1))
    settle(dev, w)
    assert w.phase is Phase.EXITED and w.enabled() == []


def _split_slice(dev: Device, src: int, fence: bool) -> list[RequestElem]:
    """A to-device slice the driver split into 3 segments, no presync: the last element
    carries the doorbell and, in sem_cmd0, the fence the driver adds (flags only, enable clear;
    qaic_data.c encode_reqs)."""
    word0 = arith.sem_encode(0, 0, 0, 0, 2 if fence else 0)
    return [
        req(1, 1, src=src, dst=DDR, length=16, completion=False),
        req(1, 1, src=src + 16, dst=DDR + 16, length=16, completion=False),
        req(1, 1, src=src + 32, dst=DDR + 32, length=16, db=DB, db_len=0, sems=(word0,)),
    ]


def _doorbell_before_data(policies: dict[str, str], fence: bool, seeds: int = 40) -> bool:
    for seed in range(seeds):
        dev = make(policies=policies)
        src = dev.host_mem.alloc(4096)
        dev.host_mem.write(src, bytes(range(1, 49)))
        early: list[bool] = []

        def watch(ev: tuple[Any, ...], dev: Device = dev, early: list[bool] = early) -> None:
            if ev[0] == "doorbell":
                early.append(dev.dev_mem.read(DDR, 48) != bytes(range(1, 49)))

        dev.observers.append(watch)
        push(dev, *_split_slice(dev, src, fence))
        run([dev], RandomScheduler(seed))
        if early and early[0]:
            return True
    return False


def test_driver_fence_keeps_the_doorbell_after_every_segment() -> None:
    assert not _doorbell_before_data({}, fence=True)
    # the same slice without the fence, or with a device that needs the enable bit, is unsafe
    assert _doorbell_before_data({}, fence=False)
    assert _doorbell_before_data({"fence-without-enable": "needs-enable"}, fence=True)
    assert not _doorbell_before_data({"processing-order": "fifo"}, fence=False)


def test_workload_reset_after_reactivation() -> None:
    dev = make()
    w = EchoWorkload(dev, 0, DDR, DDR + 64, 8)
    settle(dev, w)
    assert w.phase is Phase.WAIT_IN and dev.ch[0].sems[0] == 1
    dev.deactivate(0)
    assert w.enabled() == []
    base = dev.host_mem.alloc(arith.dbc_buf_size(8))
    dev.activate(0, base, base + arith.dbc_rsp_offset(8), 8)
    w.reset()
    assert w.phase is Phase.ARM_IN and dev.ch[0].sems[1] == 1


_junk = st.one_of(
    st.integers(-5, 1 << 33),
    st.none(),
    st.text(max_size=3),
    st.floats(0, 10),
    st.booleans(),
    st.lists(st.integers(0, 3), max_size=2),
)


@given(
    calls=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "readl",
                    "writel",
                    "bar_read",
                    "bar_write",
                    "nsp_sem",
                    "activate",
                    "deactivate",
                    "step",
                    "vector",
                    "req_slot_addr",
                    "mask",
                    "raise_",
                ]
            ),
            st.lists(_junk, min_size=4, max_size=4),
        ),
        max_size=12,
    )
)
def test_any_arguments_give_a_library_error_or_work(calls: list[tuple[str, list[Any]]]) -> None:
    from qaicmodel.errors import QaicModelError

    dev = make()
    for name, args in calls:
        fn = {"mask": dev.intc.mask, "raise_": dev.intc.raise_}.get(name) or getattr(dev, name)
        n = {
            "readl": 2,
            "writel": 3,
            "bar_read": 1,
            "bar_write": 2,
            "nsp_sem": 4,
            "activate": 4,
            "deactivate": 1,
            "step": 1,
            "vector": 1,
            "req_slot_addr": 2,
            "mask": 1,
            "raise_": 1,
        }[name]
        try:
            fn(*args[:n])
        except QaicModelError:
            pass


def _trace(seed: int) -> list[Any]:
    dev = make()
    w = EchoWorkload(dev, 0, DDR, DDR + 64, 8, inferences=2)
    src = dev.host_mem.alloc(64)
    dst = dev.host_mem.alloc(64)
    elems = []
    for i in range(2):
        elems.append(_protocol_req(2 * i, 1, src, DDR, 8, input_slice(0, last=True)))
        elems.append(_protocol_req(2 * i + 1, 2, DDR + 64, dst, 8, output_slice(1, last=True)))
    push(dev, *elems)
    events: list[Any] = []
    dev.observers.append(events.append)
    run([dev, w], RandomScheduler(seed))
    return events


def test_random_scheduler_replays_and_varies() -> None:
    assert _trace(7) == _trace(7)
    assert len({repr(_trace(s)) for s in range(8)}) > 1


def test_run_limits_and_checks_the_scheduler() -> None:
    dev = make()
    push(dev, req(1), req(2))
    assert run([dev], FirstScheduler(), 1) == 1

    class Bad:
        def pick(self, actions: Any) -> int:
            return len(actions)

    with pytest.raises(ArgumentError):
        run([dev], Bad())
    with pytest.raises(ArgumentError):
        run([dev], FirstScheduler(), -1)
    with pytest.raises(ArgumentError):
        RandomScheduler("seed")  # type: ignore[arg-type]


def test_reset_releases_every_channel_and_msi() -> None:
    dev = make()
    push(dev, req(1))
    settle(dev)
    assert dev.intc.pending(1)
    dev.intc.mask(3)
    dev.reset()
    assert not dev.intc.pending(1) and not dev.intc.masked(3)
    assert not any(c.active for c in dev.ch) and dev.enabled() == []
