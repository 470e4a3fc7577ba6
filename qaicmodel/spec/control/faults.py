"""Control-channel faults: named, seeded misbehaviours of the device side's replies.

One table (:data:`FAULTS`) of what a broken or hostile device can send the host on
QAIC_CONTROL (NNC, MHI 10/11), QAIC_STATUS (RAS, 14/15) and QAIC_SAHARA (2/3); each
row names the 7.2 driver functions it exercises (qaic_control.c, qaic_ras.c,
sahara.c of linux-source-7.2) and what that driver does with it.

The API is pure (no state, no I/O), so the model (:mod:`qaicmodel.spec.control.plane`,
scenarios, ``conform``) and the UML emulator (``qaicmodel/emu/``, the real driver)
apply the same faults byte for byte:

``apply(name, seed, request, replies) -> Outcome``
    ``request``: the host's message that the device answers (the reassembled MHI
    chain for NNC; the host's last packet for Sahara; ``b""`` for RAS, which is
    unsolicited).  ``replies``: the well-formed messages the device would send.
    The outcome says what the device sends instead: ``now`` (in answer, in order),
    ``late`` (held back, to be delivered after the requester gave up -- i.e. after
    the host's wait timed out or at the next exchange), and ``stall`` (the device
    stops consuming the host's TX (UL) ring after this request: every later
    request finds no free descriptor).  Same (name, seed, request, replies) ->
    same outcome, on every machine (``random.Random`` seeded with a string).
``eligible(name, request, replies) -> bool``
    Whether the fault can do what it says on this exchange (e.g. a late
    deactivate reply needs a reply holding DEACTIVATE_FROM_DEV).  :func:`apply`
    on an ineligible exchange returns the replies unchanged (``Outcome.fired``
    False).
:class:`Injector` ``(name, seed, at=0, repeat=False)``
    The only stateful piece: fires the fault on the ``at``-th eligible exchange
    (every one from there with ``repeat``), keeps ``late`` replies until
    :meth:`Injector.release`, and remembers a stall.  Each firing derives its seed
    from (seed, firing number), so a run replays exactly from its printed seed.

Rules:
  * a fault changes only bytes the device controls; the host's request is never
    altered;
  * every byte fault keeps the message's other fields as they were, so exactly one
    rule of the wire format breaks (the one the row names); a CRC the device had
    computed is recomputed after the change when ``recrc`` is true (it is for every
    NNC byte fault except ``nnc-bad-crc``), so CRC checking does not mask the fault;
  * ``expect`` is the 7.2 driver's observable answer (the MANAGE errno, or what the
    driver does for RAS and Sahara, which have no ioctl).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from qaicmodel.errors import ArgumentError
from qaicmodel.spec.control import nnc
from qaicmodel.spec.control.fault_transforms import (
    _STATUS_TYPES,
    Check,
    Outcome,
    Transform,
    _any_reply,
    _bad_crc,
    _bad_magic,
    _cont_nothing_left,
    _cont_unasked,
    _count_too_big,
    _count_zero,
    _dbc_out_of_range,
    _duplicate,
    _edit_first,
    _has_dma,
    _has_trans,
    _hold,
    _is_ras,
    _len_below_hdr,
    _len_past_end,
    _no_dma,
    _no_reply,
    _overrun,
    _ras_edit,
    _ras_field,
    _ras_long,
    _ras_short,
    _ras_storm,
    _read_past_image,
    _read_too_large,
    _sahara_cmd,
    _sahara_edit,
    _sahara_length_field,
    _sahara_truncate,
    _status_nonzero,
    _table_len,
    _trans_len,
    _tx_stall,
    _unknown_cmd,
    _unsolicited_deactivate,
    _wrong_seq,
    lone_cont,
)

__all__ = [
    "Fault",
    "Outcome",
    "FAULTS",
    "CHANNELS",
    "fault",
    "names",
    "apply",
    "eligible",
    "Injector",
    "parse_spec",
]

CHANNELS = ("nnc", "ras", "sahara")

_SRC = "linux-source-7.2 drivers/accel/qaic/"


@attrs.frozen
class Fault:
    """One row of :data:`FAULTS`."""

    name: str
    channel: str
    summary: str
    driver: str  # the 7.2 functions the fault exercises
    expect: str  # what the 7.2 driver does
    check: Check = attrs.field(repr=False)
    transform: Transform = attrs.field(repr=False)
    kind: str = "bytes"  # "bytes": reply bytes change; "schedule": when / whether they arrive

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "channel": self.channel,
            "kind": self.kind,
            "summary": self.summary,
            "driver": self.driver,
            "expect": self.expect,
        }


_ALL = None
_T = nnc.TransType
_CTRL = _SRC + "qaic_control.c"

#: name -> Fault.  Channel ``nnc``: replies on QAIC_CONTROL; ``ras``: QAIC_STATUS;
#: ``sahara``: QAIC_SAHARA device packets.
FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        # ---- NNC: malformed replies -------------------------------------------------
        Fault(
            "nnc-trans-len-zero",
            "nnc",
            "a reply transaction's len is 0",
            f"{_CTRL} decode_message (hdr_len < sizeof(wire_trans_hdr)); qaic_manage",
            "EINVAL; nothing copied back (a lone DMA_XFER_CONT with len 0 is still "
            "taken as a continuation: qaic_manage looks at count and type only)",
            _has_trans(_ALL),
            _edit_first(_ALL, _trans_len(lambda r, m, o, ln: 0)),
        ),
        Fault(
            "nnc-trans-len-short",
            "nnc",
            "a reply transaction's len is 1..7, shorter than its 8-byte header",
            f"{_CTRL} decode_message",
            "EINVAL",
            _has_trans(_ALL),
            _edit_first(_ALL, _trans_len(lambda r, m, o, ln: r.randint(1, 7))),
        ),
        Fault(
            "nnc-trans-overrun",
            "nnc",
            "a reply transaction's len runs 8..64 bytes past the message end",
            f"{_CTRL} decode_message (size_add(msg_len, hdr_len) > msg_hdr_len), "
            "decode_deactivate (msg_len += sizeof(*in_trans))",
            "EINVAL, transactions before it decoded (their side effects stay) -- but the "
            "bound is checked against hdr.len, which counts the 32-byte header: an "
            "overrun of up to 32 bytes passes it, and a DEACTIVATE_FROM_DEV, which "
            "advances by 16 whatever its len says, is then accepted (ok)",
            _has_trans(_ALL),
            _edit_first(_ALL, _trans_len(_overrun)),
        ),
        Fault(
            "nnc-len-past-end",
            "nnc",
            "the reply header's len is past the bytes sent (inside or beyond 4 KiB)",
            f"{_CTRL} decode_message (msg_hdr_len > QAIC_MANAGE_MAX_MSG_LENGTH; final "
            "msg_len check); qaic_mhi_dl_xfer_cb (bytes_xferd unchecked)",
            "EINVAL (len > 4096, or the transactions do not sum to len); bytes past the "
            "transfer are read from the uninitialised receive buffer",
            _any_reply,
            _edit_first(_ALL, _len_past_end),
        ),
        Fault(
            "nnc-len-below-header",
            "nnc",
            "the reply header's len is 8..31, below the 32-byte header",
            f"{_CTRL} decode_message (u32 msg_hdr_len - sizeof(hdr) wraps at the end)",
            "EINVAL -- after the first transaction was decoded: an ACTIVATE_FROM_DEV "
            "saved its channel (save_dbc_buf) or a DEACTIVATE_FROM_DEV released one",
            _has_trans(_ALL),
            _edit_first(_ALL, _len_below_hdr),
        ),
        Fault(
            "nnc-count-too-big",
            "nnc",
            "the reply's count exceeds the transactions that fit in len",
            f"{_CTRL} decode_message (msg_len > msg_hdr_len - sizeof(trans_hdr))",
            "EINVAL after the real transactions were decoded",
            _any_reply,
            _edit_first(_ALL, _count_too_big),
        ),
        Fault(
            "nnc-count-zero",
            "nnc",
            "the reply's count is 0 while len covers transactions",
            f"{_CTRL} decode_message (final msg_len != msg_hdr_len - sizeof(hdr))",
            "EINVAL",
            _has_trans(_ALL),
            _edit_first(_ALL, _count_zero),
        ),
        Fault(
            "nnc-status-nonzero",
            "nnc",
            "an ACTIVATE/DEACTIVATE/STATUS_FROM_DEV reply carries a non-zero NNC status",
            f"{_CTRL} decode_activate, decode_deactivate (enable_dbc), decode_status",
            "ECANCELED with the decoded transactions copied back; a refused deactivate "
            "gives the channel back to the caller (enable_dbc)",
            _has_trans(_STATUS_TYPES),
            _edit_first(_STATUS_TYPES, _status_nonzero),
        ),
        Fault(
            "nnc-dbc-out-of-range",
            "nnc",
            "an ACTIVATE/DEACTIVATE_FROM_DEV reply names a dbc_id >= num_dbc",
            f"{_CTRL} decode_activate, decode_deactivate",
            "ENODEV (the QSM's channel stays active: host and QSM disagree)",
            _has_trans(_STATUS_TYPES[:2]),
            _edit_first(_STATUS_TYPES[:2], _dbc_out_of_range),
        ),
        Fault(
            "nnc-bad-magic",
            "nnc",
            "the reply's magic is not 'QAIC'",
            f"{_CTRL} qaic_mhi_dl_xfer_cb (freed at once); msg_xfer",
            "ETIMEDOUT (the reply is dropped before anyone sees it)",
            _any_reply,
            _edit_first(_ALL, _bad_magic),
        ),
        Fault(
            "nnc-bad-crc",
            "nnc",
            "the reply's crc32 has one bit flipped",
            f"{_CTRL} msg_xfer (qdev->valid_crc), valid_crc",
            "EPIPE once the device required CRC at probe; otherwise unseen",
            _any_reply,
            _edit_first(_ALL, _bad_crc, recrc=False),
        ),
        Fault(
            "nnc-wrong-seq",
            "nnc",
            "the reply carries a sequence number no one waits for",
            f"{_CTRL} resp_worker (no waiter: decode_message(..., NULL, ..., true)); msg_xfer",
            "ETIMEDOUT for the caller; a DEACTIVATE_FROM_DEV in it still releases its "
            "channel (orphaned deactivate)",
            _any_reply,
            _edit_first(_ALL, _wrong_seq),
        ),
        # ---- NNC: late, unsolicited, missing -----------------------------------------
        Fault(
            "nnc-late-deactivate",
            "nnc",
            "the reply holding DEACTIVATE_FROM_DEV arrives after the requester gave up",
            f"{_CTRL} msg_xfer (timeout, elem removed), resp_worker, decode_deactivate "
            "(usr NULL: release_dbc whatever the status)",
            "ETIMEDOUT; when the late reply lands the channel is released on the host",
            _has_trans((_T.DEACTIVATE_FROM_DEV,)),
            _hold((_T.DEACTIVATE_FROM_DEV,)),
            kind="schedule",
        ),
        Fault(
            "nnc-late-reply",
            "nnc",
            "the reply arrives after the requester gave up",
            f"{_CTRL} msg_xfer (-ETIMEDOUT), resp_worker (dropped, orphan decode)",
            "ETIMEDOUT; an activate done by the QSM is then unknown to the host",
            _any_reply,
            _hold(_ALL),
            kind="schedule",
        ),
        Fault(
            "nnc-duplicate-reply",
            "nnc",
            "a reply is sent twice",
            f"{_CTRL} resp_worker (the second finds no waiter)",
            "the call's own result; the copy is decoded as an orphan (deactivates released)",
            _any_reply,
            _duplicate,
            kind="schedule",
        ),
        Fault(
            "nnc-unsolicited-deactivate",
            "nnc",
            "an extra DEACTIVATE_FROM_DEV (random dbc, unknown sequence number) arrives",
            f"{_CTRL} resp_worker, decode_message(orphaned_deactivate), decode_deactivate",
            "the call's own result; the named channel is released on the host while the "
            "QSM keeps it active (host and QSM disagree on ownership)",
            lambda req, rep: len(req) >= 24,
            _unsolicited_deactivate,
            kind="schedule",
        ),
        Fault(
            "nnc-no-reply",
            "nnc",
            "the request is consumed and never answered",
            f"{_CTRL} msg_xfer (wait_for_completion_interruptible_timeout)",
            "ETIMEDOUT after control_resp_timeout_s (60 s)",
            lambda req, rep: True,
            _no_reply,
            kind="schedule",
        ),
        Fault(
            "nnc-tx-stall",
            "nnc",
            "the device stops consuming the TX (UL) ring: no reply, no free descriptor",
            f"{_CTRL} msg_xfer (mhi_get_free_desc_count, QAIC_MHI_RETRY_MAX), "
            "qaic_manage_msg_xfer (sequence number taken first)",
            "ETIMEDOUT for this request; EAGAIN for every later one (a sequence gap each)",
            lambda req, rep: True,
            _tx_stall,
            kind="schedule",
        ),
        # ---- NNC: DMA continuation -----------------------------------------------------
        Fault(
            "nnc-cont-nothing-left",
            "nnc",
            "a lone DMA_XFER_CONT asks for more after the whole transfer was sent",
            f"{_CTRL} qaic_manage (dma_xfer_continue), encode_message, "
            "find_and_map_user_pages (remaining == 0), abort_dma_cont",
            "chunk id 0 (one-message transfer): the user message is encoded again and "
            "its DMA finds nothing left: EINVAL, nothing sent; chunk id set: the same "
            "failure is replaced by abort_dma_cont's message, whose answer MANAGE "
            "returns (ok, 0 transactions here) -- the real reply, e.g. LOAD_ELF_RESP, is "
            "lost while the device keeps the image",
            _has_dma,
            _cont_nothing_left,
        ),
        Fault(
            "nnc-cont-unasked",
            "nnc",
            "a lone DMA_XFER_CONT {chunk 0, xferred 0} answers a request without DMA",
            f"{_CTRL} qaic_manage (chunk id and size match the zeroed resources)",
            "the whole user message is encoded and sent again (an activate allocates a "
            "second FIFO chunk; the QSM's first activation is unknown to the host)",
            _no_dma,
            _cont_unasked,
        ),
        # ---- RAS ------------------------------------------------------------------------
        Fault(
            "ras-bad-magic",
            "ras",
            "a RAS report whose magic is not 0x55aa",
            _SRC + "qaic_ras.c decode_ras_msg",
            "dropped (logged); no counter moves",
            _is_ras,
            _ras_field(0, "<H", lambda r: r.choice([0, 0xAA55, 0xFFFF]), "magic"),
        ),
        Fault(
            "ras-bad-version",
            "ras",
            "a RAS report with ver 0 or > 2",
            _SRC + "qaic_ras.c decode_ras_msg",
            "dropped (logged)",
            _is_ras,
            _ras_field(2, "<H", lambda r: r.choice([0, 3, 0xFFFF]), "ver"),
        ),
        Fault(
            "ras-not-push",
            "ras",
            "a RAS report whose type is not MSG_PUSH",
            _SRC + "qaic_ras.c decode_ras_msg",
            "dropped (logged)",
            _is_ras,
            _ras_field(8, "<B", lambda r: r.choice([1, 2, 255]), "type"),
        ),
        Fault(
            "ras-bad-len",
            "ras",
            "a RAS report whose len field is not 92",
            _SRC + "qaic_ras.c decode_ras_msg",
            "dropped (logged)",
            _is_ras,
            _ras_field(10, "<H", lambda r: r.choice([0, 91, 93, 104, 0xFFFF]), "len"),
        ),
        Fault(
            "ras-bad-err-type",
            "ras",
            "a RAS report whose err_type is >= ERR_TYPE_MAX",
            _SRC + "qaic_ras.c decode_ras_msg",
            "dropped (logged)",
            _is_ras,
            _ras_field(20, "<I", lambda r: r.choice([3, 4, 0xFFFFFFFF]), "err_type"),
        ),
        Fault(
            "ras-short",
            "ras",
            "a RAS report shorter than 104 bytes",
            _SRC + "qaic_ras.c qaic_ras_mhi_dl_xfer_cb (bytes_xferd unchecked)",
            "decoded from the recycled 104-byte buffer: the tail is the previous report's "
            "(the model drops it: RAS-SIZE)",
            _is_ras,
            _ras_edit(_ras_short),
        ),
        Fault(
            "ras-oversize",
            "ras",
            "a RAS report longer than the host's 104-byte receive buffer",
            _SRC + "qaic_ras.c qaic_ras_mhi_dl_xfer_cb (transaction_status: kfree, no requeue)",
            "MHI overflow: the only RAS buffer is freed and not requeued; QAIC_STATUS "
            "receives nothing after it",
            _is_ras,
            _ras_edit(_ras_long),
        ),
        Fault(
            "ras-storm",
            "ras",
            "each RAS report is sent 2..5 times",
            _SRC + "qaic_ras.c decode_ras_msg (UE: mhi_soc_reset per report)",
            "every copy counts and each UE copy calls mhi_soc_reset; the model merges "
            "requests made before the reset ran into one reset",
            _is_ras,
            _ras_storm,
            kind="schedule",
        ),
        # ---- Sahara ---------------------------------------------------------------------
        Fault(
            "sahara-hello-bad-length",
            "sahara",
            "HELLO whose length field is not 0x30",
            _SRC + "sahara.c sahara_hello",
            "logged, no HELLO_RESP: the boot stalls in SBL",
            _sahara_cmd(0x1),
            _sahara_edit((0x1,), _sahara_length_field),
        ),
        Fault(
            "sahara-read-bad-length",
            "sahara",
            "READ_DATA whose length field is not 0x14",
            _SRC + "sahara.c sahara_read_data",
            "logged, no data sent: the boot stalls",
            _sahara_cmd(0x3),
            _sahara_edit((0x3,), _sahara_length_field),
        ),
        Fault(
            "sahara-read-too-large",
            "sahara",
            "READ_DATA asking for more than SAHARA_TRANSFER_MAX_SIZE (0x80000)",
            _SRC + "sahara.c sahara_read_data, sahara_send_reset",
            "RESET",
            _sahara_cmd(0x3),
            _sahara_edit((0x3,), _read_too_large),
        ),
        Fault(
            "sahara-read-past-image",
            "sahara",
            "READ_DATA whose offset lies past the image",
            _SRC + "sahara.c sahara_read_data, sahara_send_reset",
            "RESET",
            _sahara_cmd(0x3),
            _sahara_edit((0x3,), _read_past_image),
        ),
        Fault(
            "sahara-eoi-bad-length",
            "sahara",
            "END_OF_IMAGE whose length field is not 0x10",
            _SRC + "sahara.c sahara_end_of_image",
            "logged, no DONE: the boot stalls",
            _sahara_cmd(0x4),
            _sahara_edit((0x4,), _sahara_length_field),
        ),
        Fault(
            "sahara-truncated",
            "sahara",
            "a packet shorter than its length field says (the field kept)",
            _SRC + "sahara.c sahara_mhi_dl_xfer_cb (rx_size not checked by the fw handlers)",
            "the missing bytes are read from the previous packet in the rx buffer "
            "(the model rejects it: SAHARA-LENGTH)",
            _sahara_cmd(0x1, 0x3, 0x4, 0x10),
            _sahara_edit((0x1, 0x3, 0x4, 0x10), _sahara_truncate),
        ),
        Fault(
            "sahara-memdebug-bad-table",
            "sahara",
            "MEM_DEBUG64 whose table_length is 0, not a multiple of 64, or > 0xffff",
            _SRC + "sahara.c sahara_memory_debug64",
            "0 or misaligned: logged, nothing sent; > 0xffff: RESET",
            _sahara_cmd(0x10),
            _sahara_edit((0x10,), _table_len),
        ),
        Fault(
            "sahara-unknown-cmd",
            "sahara",
            "a packet with a command the host does not know",
            _SRC + "sahara.c sahara_processing (default: logged)",
            "logged, nothing sent",
            _sahara_cmd(0x1, 0x3, 0x4, 0x10),
            _sahara_edit((0x1, 0x3, 0x4, 0x10), _unknown_cmd),
        ),
    )
}


def names(channel: str | None = None) -> list[str]:
    """Fault names, in table order (of one channel when given)."""
    return [n for n, f in FAULTS.items() if channel is None or f.channel == channel]


def fault(name: str) -> Fault:
    """The row named ``name``; ArgumentError listing the names otherwise."""
    f = FAULTS.get(name) if isinstance(name, str) else None
    if f is None:
        raise ArgumentError(f"unknown control fault {name!r} (known: {', '.join(FAULTS)})")
    return f


def _rng(name: str, seed: int) -> random.Random:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ArgumentError(f"fault seed must be an int >= 0, got {seed!r}")
    return random.Random(f"qaicmodel-fault:{name}:{seed}")


def _norm(request: bytes, replies: Sequence[bytes]) -> tuple[bytes, tuple[bytes, ...]]:
    if not isinstance(request, (bytes, bytearray, memoryview)):
        raise ArgumentError("request must be bytes")
    if isinstance(replies, (bytes, bytearray)) or not all(
        isinstance(r, (bytes, bytearray, memoryview)) for r in replies
    ):
        raise ArgumentError("replies must be a sequence of bytes")
    return bytes(request), tuple(bytes(r) for r in replies)


def eligible(name: str, request: bytes, replies: Sequence[bytes]) -> bool:
    """Whether fault ``name`` can act on this exchange."""
    f = fault(name)
    req, rep = _norm(request, replies)
    return bool(f.check(req, rep))


def apply(
    name: str,
    seed: int,
    request: bytes,
    replies: Sequence[bytes],
    *,
    ctx: Mapping[str, Any] | None = None,
) -> Outcome:
    """What the device sends instead of ``replies`` under fault ``name`` (pure).

    ``ctx`` is what the caller knows beyond this exchange; only ``dma_sent`` ({chunk id:
    bytes the host sent under it before this request}) is read, by
    ``nnc-cont-nothing-left`` (an :class:`Injector` supplies it)."""
    f = fault(name)
    req, rep = _norm(request, replies)
    if not f.check(req, rep):
        return Outcome(rep, fired=False)
    return f.transform(_rng(name, seed), req, rep, ctx)


class Injector:
    """Fire fault ``name`` on the ``at``-th eligible exchange (``repeat``: and every later one).

    ``exchange(request, replies)`` returns the :class:`Outcome` for that exchange
    (unchanged replies when it does not fire); ``release()`` hands over the replies
    held back so far (deliver them after the requester gave up); ``stalled`` stays
    true once a stall fired.  ``log`` records (exchange number, detail) of each firing.
    """

    def __init__(self, name: str, seed: int = 0, *, at: int = 0, repeat: bool = False) -> None:
        self.fault = fault(name)
        _rng(name, seed)  # validates the seed
        if not isinstance(at, int) or isinstance(at, bool) or at < 0:
            raise ArgumentError(f"fault 'at' must be an int >= 0, got {at!r}")
        self.name, self.seed, self.at, self.repeat = name, seed, at, repeat
        self.seen = 0  # eligible exchanges so far
        self.exchanges = 0
        self.fired = 0
        self.stalled = False
        self.held: list[bytes] = []
        self.log: list[tuple[int, str]] = []
        #: chunk id -> xferred_size of the device's last DMA_XFER_CONT for it
        self.dma_sent: dict[int, int] = {}

    @property
    def channel(self) -> str:
        return self.fault.channel

    def exchange(self, request: bytes, replies: Sequence[bytes]) -> Outcome:
        req, rep = _norm(request, replies)
        n = self.exchanges
        self.exchanges += 1
        if self.stalled:
            return Outcome((), stall=True, fired=False, detail="TX ring stalled")
        ctx = {"dma_sent": dict(self.dma_sent)}
        for r in rep:  # the device's own progress report (before any fault)
            cont = lone_cont(r)
            if cont is not None:
                self.dma_sent[cont[0]] = cont[1]
        if not self.fault.check(req, rep):
            return Outcome(rep, fired=False)
        k = self.seen
        self.seen += 1
        if k < self.at or (k > self.at and not self.repeat):
            return Outcome(rep, fired=False)
        out = apply(self.name, self.seed * 1_000_003 + self.fired, req, rep, ctx=ctx)
        if out.fired:
            self.fired += 1
            self.log.append((n, out.detail))
            self.held.extend(out.late)
            self.stalled = self.stalled or out.stall
        return out

    def release(self) -> list[bytes]:
        out, self.held = self.held, []
        return out


def parse_spec(text: str) -> tuple[str, int, int, bool]:
    """``NAME[:SEED[:AT]][+]`` (CLI ``--control-fault``) -> (name, seed, at, repeat)."""
    if not isinstance(text, str) or not text:
        raise ArgumentError("a control fault is NAME[:SEED[:AT]][+]")
    repeat = text.endswith("+")
    parts = text.rstrip("+").split(":")
    if len(parts) > 3:
        raise ArgumentError(f"control fault {text!r} is not NAME[:SEED[:AT]][+]")
    fault(parts[0])
    try:
        nums = [int(p, 0) for p in parts[1:]]
    except ValueError:
        raise ArgumentError(f"control fault {text!r}: SEED and AT are integers") from None
    seed = nums[0] if nums else 0
    at = nums[1] if len(nums) > 1 else 0
    if seed < 0 or at < 0:
        raise ArgumentError(f"control fault {text!r}: SEED and AT are >= 0")
    return parts[0], seed, at, repeat
