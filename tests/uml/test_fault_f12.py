"""docs/findings.md F12 on the fault board, without a kernel: after the unsolicited
DEACTIVATE_FROM_DEV reached the host, the board follows the channel it named (faultboard.py
FB1) and the fault's detail says what the device did with it (faultrun.py R7; marker ``uml``
like the rest of the fault board's tests).  The real driver's run is asserted in
test_faults.py (group ``nnc-unsolicited``)."""

from __future__ import annotations

import pytest

from qaicmodel import arith
from qaicmodel.emu.faultboard import FaultBoard
from qaicmodel.emu.faultrun import released_note
from qaicmodel.spec.control import nnc
from qaicmodel.spec.dbc import regs
from qaicmodel.spec.dbc.wire import CMD_COMPLETION, RequestElem

pytestmark = pytest.mark.uml

NELEM = 16


def _activated() -> tuple[FaultBoard, int, int]:
    """A board armed with the fault and one channel the QSM activated: (board, dbc, req_q)."""
    b = FaultBoard(seed=0)
    b.arm("nnc-orphan-deactivate")
    base = b.mem.alloc(arith.dbc_buf_size(NELEM))
    act = nnc.ActivateToDev(
        base, base + arith.dbc_rsp_offset(NELEM), NELEM, NELEM, arith.dbc_buf_size(NELEM), 0
    )
    b._on_message(10, nnc.Message.build([act], seq=1, handle=7, crc=False).pack())
    (dbc,) = b.qsm.act
    b.mhi.channels[11].outbox.clear()  # the host took the activate's reply
    return b, dbc, base


def _deliver(b: FaultBoard) -> None:
    """The orphan deactivate goes into a host receive buffer (an ("mhi", "dl", 11) step)."""
    b._orphan_deactivate()
    assert b.released is not None and b.released.delivered is None
    b.mhi.channels[11].outbox.clear()
    b._check_delivered()


def _run_device(b: FaultBoard) -> int:
    n = 0
    while acts := [a for a in b.actions() if a[0] == "dbc"]:
        b.step(acts[0])
        n += 1
    return n


def _terminate(b: FaultBoard) -> None:
    msg = nnc.Message.build([nnc.TerminateToDev(7, 0)], seq=9, handle=7, crc=False).pack()
    b._on_message(10, msg)


def test_device_writes_into_the_released_fifos_are_counted() -> None:
    b, dbc, req_q = _activated()
    _deliver(b)
    r = b.released
    assert r is not None and r.qsm_listed and r.req_q == req_q
    assert r.end == req_q + arith.dbc_rsp_offset(NELEM) + 4 * NELEM
    # a request the host had published before it freed the FIFOs, taken afterwards
    b.mem.write(req_q, RequestElem(req_id=3, pcie_dma_cmd=CMD_COMPLETION).pack())
    b.device.writel(dbc, regs.REQ_TP, 1)
    steps = _run_device(b)
    _terminate(b)
    assert dbc not in b.qsm.act
    b.device.writel(dbc, regs.REQ_TP, 2)  # a dead channel: nothing more is counted
    _run_device(b)
    rec = b.disarm()["released"]
    assert rec["rsp_writes"] == 1 and rec["req_reads"] == 1 and rec["written_bytes"] == 4
    assert rec["active_steps"] == steps > 0
    assert rec["ended_by"] == "the driver's TerminateToDev"
    note = released_note({"released": rec})
    assert f"kept dbc {dbc} active for {steps} steps" in note
    assert "until the driver's TerminateToDev" in note
    assert "wrote 4 bytes into its freed FIFOs (1 responses" in note


def test_an_idle_channel_is_kept_but_not_written() -> None:
    """The 7.2 driver's shape of F12: the channel idle when the host frees it."""
    b, dbc, _q = _activated()
    _deliver(b)
    _terminate(b)
    rec = b.disarm()["released"]
    assert rec["written_bytes"] == 0 and rec["req_reads"] == 0 and rec["qsm_listed"]
    assert "wrote 0 bytes into its freed FIFOs" in released_note({"released": rec})


def test_a_message_still_in_the_outbox_was_never_delivered() -> None:
    b, dbc, _q = _activated()
    b._orphan_deactivate()
    b._check_delivered()
    rec = b.disarm()
    assert rec["released"]["delivered_step"] is None
    assert released_note(rec) == (
        f"; the DEACTIVATE_FROM_DEV for dbc {dbc} never reached a host buffer"
    )


def test_other_faults_have_no_release_note() -> None:
    b = FaultBoard(seed=0)
    b.arm("nnc-late-reply")
    rec = b.disarm()
    assert "released" not in rec and released_note(rec) == ""
