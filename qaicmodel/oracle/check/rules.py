"""The checker's tables (trace.md "Check"): exit status per verdict, rule families and the
event kinds each needs, rule ids with their family and source, and what a trace shows of
each broken host (:data:`TRACE_VISIBILITY`)."""

from __future__ import annotations

__all__ = ["EXIT", "FAMILIES", "RULES", "TRACE_VISIBILITY", "MAX_NELEM"]

#: exit status per verdict (trace.md "Check")
EXIT = {"conforming": 0, "violation": 1, "inconclusive": 3}

#: family -> (event kinds it needs, what it covers)
FAMILIES: dict[str, tuple[tuple[str, ...], str]] = {
    "registers": (("readl", "writel"), "register ownership, index range, access width, BAR map"),
    "request-ring": (("writel",), "REQ_TP writes against free space; slot overwrites"),
    "request-elements": (("req",), "aic100.rst Request FIFO element rules"),
    "response-ring": (
        ("writel",),
        "RSP_HP writes and response reads against what the device wrote",
    ),
    "device-registers": (("readl",), "REQ_HP / RSP_TP values a conforming device can show"),
    "responses": (("rsp", "req"), "response contents {req_id, completion_code}"),
    "msi": (("msi",), "MSIs: due (empty -> non-empty, force-MSI), unmasked, right vector"),
    "lifecycle": (("activate",), "activate / deactivate of channels"),
    "nnc": (("nnc_tx", "nnc_rx"), "NNC control messages: layout, CRC, sequence numbers"),
    "ssr": (("ssr_rx", "ssr_tx"), "SSR messages: layout"),
    "completions": (
        ("complete", "req", "rsp"),
        "BO completions after every response asked for, once",
    ),
    "missed-events": (("idle", "msi"), "no response left unannounced when the host stops"),
}

#: a model limit: larger rings are not checked (a state's response ring is copied when the
#: set of possible states branches)
MAX_NELEM = 4096

_DMA = "aic100.rst DMA Bridge"
_REQ = "aic100.rst Request FIFO"
_RSP = "aic100.rst Response FIFO"
#: rule id -> (family, source).  Device-recorded rules carry their own source too.
RULES: dict[str, tuple[str, str]] = {
    "HOST-WRITE-DEVICE-REG": ("registers", _DMA),
    "HOST-REG-OUT-OF-RANGE": ("registers", _DMA),
    "HOST-INACTIVE-DBC": ("registers", "control-path.md §2.1; aic100.rst DMA Bridge"),
    "HOST-BAR-UNMAPPED": ("registers", "control-path.md §2.2 (QAIC_DBC_BASE, 4 KiB per DBC)"),
    "HOST-REG-WIDTH": (
        "registers",
        "aic100.rst DMA Bridge (32-bit registers); qaic_data.c readl/writel",
    ),
    "HOST-REQ-OVERRUN": ("request-ring", "qaic_data.c fifo_space_avail; aic100.rst DMA Bridge"),
    "HOST-REQ-OVERWRITE": (
        "request-ring",
        _REQ + " (elements between REQ_HP and REQ_TP belong to the device)",
    ),
    "HOST-REQ-SLOT": ("request-ring", _DMA + " (element i at req_q + 64 i, i < nelem)"),
    "REQ-DIR-ILLEGAL": ("request-elements", _REQ),
    "REQ-DB-LEN-RESERVED": ("request-elements", _REQ),
    "REQ-DB-MISALIGNED": ("request-elements", _REQ),
    "REQ-DB-DATA-WIDTH": ("request-elements", _REQ),
    "REQ-MULTI-PRESYNC": ("request-elements", _REQ),
    "SEM-CMD-RESERVED": ("request-elements", _REQ),
    "RESERVED-BITS-SET": ("request-elements", _REQ),
    "HOST-RSP-OVERREAD": ("response-ring", _RSP),
    "HOST-RSP-NOT-WRITTEN": (
        "response-ring",
        _RSP + " (only elements between RSP_HP and RSP_TP are valid)",
    ),
    "DEV-REQ-HP": ("device-registers", _DMA + "; " + _REQ),
    "DEV-RSP-TP": ("device-registers", _DMA + "; " + _RSP),
    "DEV-REG-VALUE": ("device-registers", _DMA + " (REQ_TP / RSP_HP are written by the host)"),
    "DEV-RSP-CONTENT": ("responses", _RSP),
    "DEV-MSI-SPURIOUS": ("msi", _RSP + " (MSI on empty -> non-empty, or force-MSI)"),
    "DEV-MSI-MASKED": (
        "msi",
        "control-path.md §4.2; qaicmodel.spec.intc (a masked vector is not delivered)",
    ),
    "DEV-MSI-VECTOR": ("msi", "control-path.md §4.2 (vector 0 MHI, i+1 DBC i; single MSI: 0)"),
    "HOST-DBC-ACTIVE": ("lifecycle", "control-path.md §2.1 (QSM activates a free channel)"),
    "HOST-ACTIVATE-NELEM": (
        "lifecycle",
        "qaic_control.c encode_activate (arith.activate_queue_size_ok)",
    ),
    "HOST-NNC-SEQ": ("nnc", "control-path.md §1.5 (seq = next_seq_num++)"),
    "DEV-NNC-UNMATCHED": ("nnc", "control-path.md §1.5 (responses are matched by sequence number)"),
    "HOST-COMPLETE-EARLY": (
        "completions",
        "qaic_data.c dbc_irq_threaded_fn (a BO completes when nr_slice_xfer_done == nr_slice)",
    ),
    "HOST-COMPLETE-UNKNOWN": (
        "completions",
        "qaic_data.c dbc_irq_threaded_fn (the BO leaves xfer_list when it completes)",
    ),
    "HOST-RSP-STRANDED": (
        "missed-events",
        "qaic_data.c dbc_irq_threaded_fn (re-read RSP_TP after "
        'enable_irq: "check for a missed event"); ' + _RSP + " (MSI only on empty -> non-empty)",
    ),
}

#: What a trace can show of each broken host of qaicmodel.oracle.broken (issue #11 item 4):
#: class name -> (device policies it needs, the check rules that catch it, which events the
#: trace must carry).  tests/test_check_broken.py records a trace of each and checks it.
TRACE_VISIBILITY: dict[str, tuple[dict[str, str], tuple[str, ...], str]] = {
    "NoRecheckHost": (
        {"msi-while-masked": "lost"},
        ("HOST-RSP-STRANDED",),
        "msi, irq_disable/irq_enable and idle (the stranded response is only "
        "visible once the host says it stopped)",
    ),
    "NoReserveHost": (
        {},
        ("HOST-REQ-OVERRUN", "HOST-REQ-OVERWRITE"),
        "writel/readl (REQ_HP, REQ_TP): register traces suffice",
    ),
    "NoLockHost": (
        {},
        ("HOST-REQ-OVERWRITE", "HOST-REQ-OVERRUN", "HOST-COMPLETE-UNKNOWN", "HOST-COMPLETE-EARLY"),
        "req (slot writes) and writel; a lost submission whose slots were "
        "overwritten before publication needs complete events",
    ),
    "OverreadHost": (
        {},
        ("HOST-RSP-OVERREAD", "HOST-RSP-NOT-WRITTEN", "HOST-RSP-STRANDED"),
        "readl/writel (RSP_TP, RSP_HP): register traces suffice (when a bound "
        "hides the overread, the ring it leaves behind is HOST-RSP-STRANDED at idle)",
    ),
    "EarlyCompleteHost": (
        {},
        ("HOST-COMPLETE-EARLY",),
        "req, rsp and complete (a completion is host-internal)",
    ),
    "DoubleCompleteHost": (
        {},
        ("HOST-COMPLETE-UNKNOWN", "HOST-COMPLETE-EARLY"),
        "req, rsp and complete",
    ),
}


def _family(rule: str) -> str:
    if rule in RULES:
        return RULES[rule][0]
    for pre, fam in (
        ("HOST-NNC", "nnc"),
        ("DEV-NNC", "nnc"),
        ("HOST-SSR", "ssr"),
        ("DEV-SSR", "ssr"),
    ):
        if rule.startswith(pre):
            return fam
    return "registers"
