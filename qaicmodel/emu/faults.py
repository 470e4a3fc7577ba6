"""Device faults against the real driver: the one table of named, seeded faults
(``qaicmodel uml faults``, issue #10 item 6; the board that injects them is
:mod:`qaicmodel.emu.faultboard`).

Rules:
  F1 :data:`FAULTS` is the one table: name -> what the device does wrong, when (the
     trigger, chosen by :func:`trigger` from the run's seed and the fault's name only,
     so ``--fault NAME --seed N`` replays it alone), and the driver source it
     exercises (linux-source-7.2 function names; the seed sentence where aic100.rst
     says what the device should do).  ``recorded`` is the outcome measured on
     7.2 + KASAN (``qaicmodel uml faults``), which tests/uml/test_faults.py holds the
     real driver to;
  F2 control-plane faults (``layer="nnc"`` with ``control`` set) are the model's
     (:mod:`qaicmodel.spec.control.faults`, applied with its ``Injector`` to the
     QSM's replies on QAIC_CONTROL); this module only adds the ones that need the
     emulator's view of the run (the probe's reply, an unsolicited message during
     the data path, a reply held for N device steps);
  F3 an *episode* is one fault on a freshly powered device:
     :meth:`~qaicmodel.emu.faultboard.FaultBoard.arm` (the guest has unbound the
     driver) power-cycles the board (AMSS start, QSM, DMA Bridge and every service as
     new: like a slot power cycle, since the driver's remove leaves MHI in M0,
     qaic_drv.c ``qaic_pci_remove`` with ``link_up`` false) and arms the fault;
     :meth:`~qaicmodel.emu.faultboard.FaultBoard.disarm` (the guest has unbound the
     driver again) ends it, says whether and how it fired, and power-cycles again, so
     nothing the last driver left queued runs into its freed memory.  Exchanges and
     responses are counted from the arm: NNC exchange 0 is the probe's version query
     (qaic_drv.c ``qaic_mhi_probe`` -> qaic_control.c ``get_cntl_version``); a
     control fault of the model's table targets the reply to the workload's status
     request (trigger 1) or to its activate request (trigger 2; faultguest.py G4),
     every other exchange passes unchanged (late replies held back are released at
     the next exchange, whichever it is);
  F4 device-side triggers fire as a board action (``("fault",)``) the seeded
     scheduler takes, never inside another action's callback;
  F5 the harness's only clock: an episode that has not ended ``episode_s`` wall
     seconds after its arm ends the run (UmlError), because a wedged guest cannot
     say so itself; first the board asks the guest for SysRq ``w`` (blocked tasks)
     over UML's mconsole and gives it 3 s to print them;
  F6 the ``nnc-dma-*`` faults act on a real DMA transfer, so their episode runs the
     ``dma`` workload (faultguest.py G4: a one-message load and a load the driver splits
     over two messages, qaicmodel/guest/client.py G5) instead of the echo; the board
     tells a split transfer by its non-zero ``dma_chunk_id`` (qaic_control.c
     ``encode_dma``, linux-source-7.2; aic100.rst "Neural Network Control (NNC)
     Protocol": a host message is at most 64K, "but there is a continuation feature
     where message N+1 can be marked as a continuation of message N").
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from qaicmodel.errors import ArgumentError

__all__ = ["DeviceFault", "FAULTS", "names", "fault", "trigger", "OUTCOMES"]

#: what the driver did (faultrun.py classifies): a clean errno, recovery (the device
#: reset and the driver brought it back), hang (WAIT_BO timed out, a task is stuck, or a
#: livelock: a loop that does not end while the device keeps it fed),
#: splat (KASAN/BUG/WARN/lockdep), works (no visible effect), not-fired (the trigger
#: never came: a harness failure)
OUTCOMES = ("errno", "recovery", "hang", "splat", "works", "wrong-data", "not-fired")

_SRC = "linux-source-7.2 drivers/accel/qaic/"
_CTRL = _SRC + "qaic_control.c"
_DATA = _SRC + "qaic_data.c"


@attrs.frozen
class DeviceFault:
    """One row of :data:`FAULTS` (F1)."""

    name: str
    layer: str  # nnc | dbc | mhi | ssr | pci
    what: str
    when: str  # the trigger; {t} is the seeded value
    source: str
    choices: tuple[int, ...]  # the trigger values the seed picks from
    recorded: str  # the outcome on 7.2 + KASAN
    control: str | None = None  # the model's control fault (spec/control/faults.py)
    reset_class: bool = False  # the fault resets the device: "recovery" is possible
    #: other outcomes measured in some runs (guest timing), with ``recorded`` the ones the
    #: tests accept; each is explained in docs/findings.md
    also: tuple[str, ...] = ()
    workload: str = "echo"  # the guest's workload (F6): echo | dma

    def as_dict(self, seed: int | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "layer": self.layer,
            "what": self.what,
            "when": self.when,
            "source": self.source,
            "recorded": self.recorded,
            "also": list(self.also),
            "control": self.control,
            "workload": self.workload,
        }
        if seed is not None:
            t = trigger(self.name, seed)
            d["trigger"] = t
            d["when"] = self.when.replace("{t}", str(t))
            d["what"] = self.what.replace("{t}", str(t))
        return d


_NNC_AT = (1, 2)  # 1: the workload's status request, 2: its activate request (F3)

FAULTS: dict[str, DeviceFault] = {
    f.name: f
    for f in (
        # ---- control plane: the model's table (F2) -------------------------------------
        DeviceFault(
            "nnc-trans-len-zero",
            "nnc",
            "a reply transaction's len is 0",
            "the reply to request kind {t} of the episode (1 status, 2 activate)",
            f"{_CTRL} decode_message",
            _NNC_AT,
            "errno",
            control="nnc-trans-len-zero",
        ),
        DeviceFault(
            "nnc-trans-len-short",
            "nnc",
            "a reply transaction's len is 1..7, shorter than its header",
            "the reply to request kind {t} of the episode",
            f"{_CTRL} decode_message",
            _NNC_AT,
            "errno",
            control="nnc-trans-len-short",
        ),
        DeviceFault(
            "nnc-trans-overrun",
            "nnc",
            "a reply transaction runs 8..32 bytes past the message end",
            "the reply to request kind {t} of the episode",
            f"{_CTRL} decode_message (size_add(msg_len, hdr_len) > msg_hdr_len)",
            _NNC_AT,
            "errno",
            control="nnc-trans-overrun",
        ),
        DeviceFault(
            "nnc-len-past-end",
            "nnc",
            "the reply header's len is past the bytes sent",
            "the reply to request kind {t} of the episode",
            f"{_CTRL} decode_message; qaic_mhi_dl_xfer_cb",
            _NNC_AT,
            "errno",
            control="nnc-len-past-end",
        ),
        DeviceFault(
            "nnc-count-too-big",
            "nnc",
            "the reply's count exceeds the transactions that fit",
            "the reply to request kind {t} of the episode",
            f"{_CTRL} decode_message (msg_len > msg_hdr_len - sizeof(trans_hdr))",
            _NNC_AT,
            "errno",
            control="nnc-count-too-big",
        ),
        DeviceFault(
            "nnc-late-reply",
            "nnc",
            "the reply is held back and delivered at the next exchange, after the "
            "requester's control_resp_timeout_s ran out",
            "the reply to request kind {t} of the episode",
            f"{_CTRL} msg_xfer (-ETIMEDOUT), resp_worker (no waiter: orphan decode)",
            _NNC_AT,
            "errno",
            control="nnc-late-reply",
        ),
        DeviceFault(
            "nnc-cont-unasked",
            "nnc",
            "a lone DMA_XFER_CONT {chunk 0, xferred 0} answers a request that has no "
            "DMA: a continuation with nothing left to send",
            "the reply to request kind {t} of the episode",
            f"{_CTRL} qaic_manage (dma_xfer_continue), encode_message, encode_activate",
            _NNC_AT,
            "works",
            control="nnc-cont-unasked",
        ),
        # ---- control plane: the emulator's own (F2) -------------------------------------
        DeviceFault(
            "nnc-trans-past-4k",
            "nnc",
            "a reply that fills the whole 4 KiB receive buffer (len 4096, count 1) with one "
            "PASSTHROUGH_FROM_DEV of len 4096: the transaction runs past the message end "
            "by the 32-byte header",
            "the reply to request kind {t} of the episode (1 status, 2 activate)",
            f"{_CTRL} decode_message (a transaction bounded by msg_hdr_len, header "
            "included), decode_passthrough (memcpy of len - 8 bytes); msg_xfer "
            "(kmalloc of QAIC_MANAGE_MAX_MSG_LENGTH)",
            _NNC_AT,
            "splat",
        ),
        DeviceFault(
            "nnc-probe-reply-oversize",
            "nnc",
            "the answer to the probe's version query carries, after its STATUS_FROM_DEV, "
            "a PASSTHROUGH_FROM_DEV of {t} bytes (a count of transactions that do not "
            "fit the probe's buffer)",
            "NNC exchange 0 (the probe's version query); passthrough of {t} bytes",
            f"{_CTRL} get_cntl_version (kmalloc of one status result), qaic_manage, "
            "decode_message, decode_passthrough (bounded by QAIC_MANAGE_MAX_MSG_LENGTH "
            "only)",
            (64, 128, 256),
            "splat",
        ),
        DeviceFault(
            "nnc-orphan-deactivate",
            "nnc",
            "an unsolicited message (a sequence number nobody waits for) holding "
            "DEACTIVATE_FROM_DEV {status 0} for the caller's active channel: a deactivate "
            "reply after the requester gave up",
            "after data-path response {t} of the episode",
            f"{_CTRL} resp_worker, decode_message(orphaned_deactivate), decode_deactivate; "
            f"{_DATA} release_dbc",
            (1, 2, 3),
            "errno",
            also=("hang",),
        ),
        DeviceFault(
            "nnc-slow-reply",
            "nnc",
            "the reply goes out only after {t} more device steps (1 ms of QTimer each)",
            "the activate reply, held {t} steps",
            f"{_CTRL} msg_xfer (wait_for_completion_interruptible_timeout)",
            (10000, 20000, 40000),
            "works",
        ),
        DeviceFault(
            "nnc-dma-cont-after-done",
            "nnc",
            "after the last chunk of a DMA transfer the driver split over two messages, "
            "the device asks for more: a lone DMA_XFER_CONT {the transfer's chunk id, "
            "xferred = the whole size}, nothing left to send; it asks again after each of "
            "the driver's aborts, {t} time(s) in all, then gives the held answer",
            "the reply to the split load's last chunk; {t} continuation request(s)",
            f"{_CTRL} qaic_manage (dma_xfer_continue), encode_message, encode_dma, "
            "find_and_map_user_pages (remaining 0), qaic_manage_msg_xfer, abort_dma_cont",
            (1, 2, 3),
            "works",
            workload="dma",
        ),
        DeviceFault(
            "nnc-dma-cont-past-end",
            "nnc",
            "the first chunk of a DMA transfer the driver split is answered with a "
            "DMA_XFER_CONT whose xferred size is {t} bytes past the transfer's end",
            "the reply to the split load's first chunk; offset size + {t}",
            f"{_CTRL} qaic_manage (the continuation's chunk id and xferred size against "
            "resources), encode_dma",
            (4096, 1 << 20, 1 << 32),
            "errno",
            workload="dma",
        ),
        # ---- data path --------------------------------------------------------------------
        DeviceFault(
            "dbc-completion-error",
            "dbc",
            "a response element carries a non-zero completion code",
            "data-path response {t} of the episode",
            f"{_DATA} dbc_irq_threaded_fn (status only logged with pci_dbg); aic100.rst "
            '"Response Element": the status field',
            (1, 2, 3, 4),
            "works",
        ),
        DeviceFault(
            "dbc-rsp-never-drains",
            "dbc",
            "the response FIFO never drains: RSP_TP always reads one past RSP_HP",
            "from data-path response {t} of the episode on",
            f"{_DATA} dbc_irq_threaded_fn (read_fifo loop), qaic_irq_polling_work",
            (1, 2, 3),
            "hang",
        ),
        DeviceFault(
            "pci-link-down",
            "pci",
            "link down: every BAR0/BAR2 read returns all ones, writes and MSIs are lost",
            "from data-path response {t} of the episode on",
            f"{_DATA} qaic_irq_polling_work, dbc_irq_threaded_fn (U32_MAX: link error); "
            f"{_SRC}mhi_controller.c mhi_read_reg",
            (1, 2, 3),
            "hang",
        ),
        # ---- MHI / SoC ----------------------------------------------------------------------
        DeviceFault(
            "mhi-sys-err",
            "mhi",
            "the firmware enters MHI SYS_ERR (policy sys-err-report)",
            "after data-path response {t} of the episode",
            f"{_SRC}mhi_controller.c mhi_status_cb, qaic_drv.c "
            "qaic_dev_reset_clean_local_state; drivers/bus/mhi/host/pm.c",
            (1, 2, 3),
            "recovery",
            reset_class=True,
        ),
        DeviceFault(
            "soc-reset",
            "mhi",
            "the SoC resets by itself: back to PBL, announced with SYS_ERR "
            "(policy soc-reset-notify)",
            "after data-path response {t} of the episode",
            f"{_SRC}mhi_controller.c mhi_status_cb, boot through BHI and sahara.c again",
            (1, 2, 3),
            "recovery",
            reset_class=True,
        ),
        DeviceFault(
            "ssr-crash",
            "ssr",
            "the workload on the caller's channel crashes: the QSM's SSR events on QAIC_SSR",
            "after data-path response {t} of the episode",
            f"{_SRC}qaic_ssr.c ssr_worker, qaic_data.c wakeup_dbc",
            (1, 2, 3),
            "recovery",
            reset_class=True,
        ),
    )
}


def names() -> list[str]:
    return list(FAULTS)


def fault(name: str) -> DeviceFault:
    f = FAULTS.get(name) if isinstance(name, str) else None
    if f is None:
        raise ArgumentError(f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
    return f


def trigger(name: str, seed: int) -> int:
    """The fault's trigger value for ``seed`` (F1: depends on the name and seed only)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ArgumentError(f"--seed must be an int >= 0, not {seed!r}")
    return random.Random(f"qaicmodel-uml-fault:{name}:{seed}").choice(fault(name).choices)
