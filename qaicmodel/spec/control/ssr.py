"""Subsystem Restart (SSR): the QAIC_SSR messages (MHI 6/7) and both ends of the protocol.

Rules (aic100.rst "Subsystem Restart (SSR)"; ssr-ras-boot.md §1, which reads
qaic_ssr.c and qaic_data.c):
  * every message is LE and starts with ``{cmd u32, len u32, dbc_id u32}``;
    ``len`` counts the whole message; ``cmd`` values are bit flags;
  * the device drives: SSR_EVENT BEFORE_SHUTDOWN -> AFTER_SHUTDOWN ->
    BEFORE_POWER_UP -> [crashdump offer] -> AFTER_POWER_UP; the host answers
    each event with SSR_EVENT_RSP echoing it (or NACK, only for AFTER_POWER_UP
    while a dump is unfinished) and never sends anything unprompted;
  * host side: BEFORE_SHUTDOWN releases the channel (waiters woken, BOs
    unsliced, FIFOs freed); AFTER_POWER_UP ends with the channel IDLE; the host
    never re-activates: userspace must ("the host will need to re-activate the
    workload if it desires to recover the workload");
  * the host drops device messages whose ``len`` exceeds its 32-byte buffer or
    naming a DBC >= num_dbc (0xFFFFFFFF included), and nothing else: fields are read
    from the buffer whatever the length; unknown commands are ignored; unknown events
    are echoed (7.2 qaic_ssr.c ssr_worker);
  * during a crashdump only the dump buffer is queued: every device message is taken
    for a MEMORY_READ_RSP, and anything wrong resets the SoC (ssr_dump_worker);
  * 6.12 has no qaic_ssr.c: the control plane delivers nothing (kernels ``ssr-client``).

The device side (QSM's half, :class:`DeviceSsr`) is in :mod:`.ssr_device`.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import Any

import attrs

from qaicmodel.errors import ArgumentError
from qaicmodel.spec.control import parsed

__all__ = [
    "Cmd",
    "Event",
    "DbcState",
    "SsrMsg",
    "decode",
    "parse",
    "describe",
    "HostSsr",
    "RX_SIZE",
    "SENTINEL",
    "DUMP_ENTRY_SIZE",
]

RX_SIZE = 32  # SSR_RESP_MSG_SZ: the host's receive buffer
SENTINEL = 0xFFFFFFFF  # QAIC_SSR_DBC_SENTINEL: no SSR in progress
DUMP_ENTRY_SIZE = 64  # struct debug_info_table
MEM_READ_CHUNK = 65472  # SSR_MEM_READ_CHUNK_SIZE on a 64-bit kernel (inference, §1.9)
#: SSR_MEM_READ_DATA_SIZE (7.2 qaic_ssr.c): 64 KiB - sizeof(struct ssr_crashdump) (48)
MEM_READ_DATA_SIZE = MEM_READ_CHUNK + 16
RX_RESP = "resp"  # the 32-byte ssr_resp buffer is queued (ssr_worker)
RX_DUMP = "dump"  # only the crashdump buffer is queued (ssr_dump_worker)
_HDR = struct.Struct("<III")


class Cmd(enum.IntEnum):
    """``hdr.cmd`` bit flags (ssr-ras-boot.md §1.2)."""

    DEBUG_TRANSFER_INFO = 1 << 0
    DEBUG_TRANSFER_INFO_RSP = 1 << 1
    MEMORY_READ = 1 << 2
    MEMORY_READ_RSP = 1 << 3
    DEBUG_TRANSFER_DONE = 1 << 4
    DEBUG_TRANSFER_DONE_RSP = 1 << 5
    SSR_EVENT = 1 << 8
    SSR_EVENT_RSP = 1 << 9


class Event(enum.IntEnum):
    """SSR event codes (§1.3)."""

    NACK = 1 << 0
    BEFORE_SHUTDOWN = 1 << 1
    AFTER_SHUTDOWN = 1 << 2
    BEFORE_POWER_UP = 1 << 3
    AFTER_POWER_UP = 1 << 4


class DbcState(enum.IntEnum):
    """qaic.h ``enum dbc_states`` (sysfs ``dbc<N>_state``)."""

    IDLE = 0
    ASSIGNED = 1
    BEFORE_SHUTDOWN = 2
    AFTER_SHUTDOWN = 3
    BEFORE_POWER_UP = 4
    AFTER_POWER_UP = 5


#: cmd -> (body layout after the 12-byte header, field names, device->host?)
LAYOUTS: dict[int, tuple[str, tuple[str, ...], bool]] = {
    Cmd.DEBUG_TRANSFER_INFO: ("IQQ", ("resv", "tbl_addr", "tbl_len"), True),
    Cmd.DEBUG_TRANSFER_INFO_RSP: ("I", ("ret",), False),
    Cmd.MEMORY_READ: ("IQQ", ("resv", "addr", "len"), False),
    Cmd.MEMORY_READ_RSP: ("I", ("resv",), True),  # + data[]
    Cmd.DEBUG_TRANSFER_DONE: ("I", ("resv",), False),
    Cmd.DEBUG_TRANSFER_DONE_RSP: ("I", ("ret",), True),
    Cmd.SSR_EVENT: ("I", ("event",), True),
    Cmd.SSR_EVENT_RSP: ("I", ("event",), False),
}


def _u32(inst: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 32:
        raise ArgumentError(f"SsrMsg.{attribute.name}={value!r} is not a u32")


def _as_dict(value: Any) -> dict[str, int]:
    return dict(value)


@attrs.frozen
class SsrMsg:
    """One QAIC_SSR message: header, the command's fields (by name), trailing data."""

    cmd: int = attrs.field(validator=_u32)
    dbc_id: int = attrs.field(default=0, validator=_u32)
    fields: dict[str, int] = attrs.field(factory=dict, converter=_as_dict, eq=False)
    data: bytes = b""
    len: int | None = None
    _key: tuple[Any, ...] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        lay = LAYOUTS.get(self.cmd)
        if lay is None:
            raise ArgumentError(f"SSR cmd 0x{self.cmd:x} has no layout")
        fmt, names, _ = lay
        full = {n: int(self.fields.get(n, 0)) for n in names}
        extra = set(self.fields) - set(names)
        if extra:
            raise ArgumentError(f"SSR cmd {Cmd(self.cmd).name} has no field(s) {sorted(extra)}")
        struct.pack("<" + fmt, *full.values())  # range check
        object.__setattr__(self, "fields", full)
        if self.len is None:
            object.__setattr__(self, "len", _HDR.size + struct.calcsize("<" + fmt) + len(self.data))
        object.__setattr__(self, "_key", tuple(full.items()))

    def __getitem__(self, name: str) -> int:
        return self.fields[name]

    def pack(self) -> bytes:
        fmt, names, _ = LAYOUTS[self.cmd]
        return (
            _HDR.pack(self.cmd, self.len, self.dbc_id)
            + struct.pack("<" + fmt, *(self.fields[n] for n in names))
            + self.data
        )

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "cmd": self.cmd,
            "cmd_name": Cmd(self.cmd).name,
            "len": self.len,
            "dbc_id": self.dbc_id,
        }
        d.update(self.fields)
        if self.cmd in (Cmd.SSR_EVENT, Cmd.SSR_EVENT_RSP):
            try:
                d["event_name"] = Event(self.fields["event"]).name
            except ValueError:
                d["event_name"] = "UNKNOWN"
        if self.data:
            d["data_hex"] = self.data.hex()
        return d


def event(dbc: int, ev: int) -> SsrMsg:
    return SsrMsg(Cmd.SSR_EVENT, dbc, {"event": ev})


def event_rsp(dbc: int, ev: int) -> SsrMsg:
    return SsrMsg(Cmd.SSR_EVENT_RSP, dbc, {"event": ev})


def parse(data: bytes, num_dbc: int = 16) -> tuple[SsrMsg | None, list[dict[str, Any]]]:
    """Lenient read: the message (when its layout could be read) and every broken rule."""
    data = bytes(data)
    viol: list[dict[str, Any]] = []

    def v(rule: str, off: int | None, msg: str) -> None:
        viol.append({"rule": rule, "offset": off, "message": msg})

    if len(data) < _HDR.size:
        v("SSR-SHORT", len(data), f"an SSR message starts with a 12-byte header; got {len(data)}")
        return None, viol
    cmd, mlen, dbc = _HDR.unpack_from(data, 0)
    lay = LAYOUTS.get(cmd)
    if lay is None:
        v("SSR-CMD", 0, f"cmd 0x{cmd:x} is not an SSR command (the host ignores it)")
        return None, viol
    fmt, names, d2h = lay
    size = _HDR.size + struct.calcsize("<" + fmt)
    if mlen != len(data):
        v("SSR-LEN", 4, f"len {mlen} but the message has {len(data)} bytes")
    if len(data) < size:
        v("SSR-SIZE", 4, f"{Cmd(cmd).name} needs {size} bytes, got {len(data)}")
        return None, viol
    if cmd != Cmd.MEMORY_READ_RSP and len(data) != size:
        v("SSR-SIZE", 4, f"{Cmd(cmd).name} is {size} bytes, got {len(data)}")
    if d2h and cmd != Cmd.MEMORY_READ_RSP and mlen > RX_SIZE:
        v("SSR-LEN-MAX", 4, f"len {mlen} exceeds the host's {RX_SIZE}-byte buffer (dropped)")
    if dbc >= num_dbc and (d2h or dbc != SENTINEL):  # ssr_worker: the sentinel too
        v("SSR-DBC", 8, f"dbc_id {dbc} is not below num_dbc {num_dbc} (dropped)")
    vals = struct.unpack_from("<" + fmt, data, _HDR.size)
    fields = dict(zip(names, vals, strict=True))
    if cmd == Cmd.SSR_EVENT and fields["event"] not in (2, 4, 8, 16):
        v("SSR-EVENT", 12, f"event 0x{fields['event']:x} is not a device event")
    if cmd == Cmd.SSR_EVENT_RSP and fields["event"] not in (1, 2, 4, 8, 16):
        v("SSR-EVENT", 12, f"event 0x{fields['event']:x} is not an event or NACK")
    if cmd == Cmd.DEBUG_TRANSFER_INFO and (
        fields["tbl_len"] == 0 or fields["tbl_len"] % DUMP_ENTRY_SIZE
    ):
        v("SSR-TBL-LEN", 24, f"tbl_len {fields['tbl_len']} is not a non-zero multiple of 64")
    if cmd == Cmd.DEBUG_TRANSFER_INFO_RSP and fields["ret"] not in (0, 1):
        v("SSR-RET", 12, f"ret {fields['ret']} is neither ACK (0) nor NACK (1)")
    tail = data[size:] if cmd == Cmd.MEMORY_READ_RSP else b""
    msg = SsrMsg(cmd, dbc, fields, tail, len=mlen)
    return msg, viol


def decode(data: bytes | bytearray | memoryview, num_dbc: int = 16) -> SsrMsg:
    """Strict decode: an :class:`SsrMsg` or DecodeError naming the rule and offset."""
    msg: SsrMsg = parsed.strict("SSR message", "SSR-TYPE", parse, data, num_dbc)
    return msg


def describe(data: bytes) -> dict[str, Any]:
    """``qaicmodel decode ssr HEX``."""
    return parsed.describe("ssr", "message", parse, data)


# --------------------------------------------------------------------------
# policies (what the documents leave open): qaicmodel/spec/policies/control.py

# --------------------------------------------------------------------------
# host side (qaic_ssr.c ssr_worker and friends)

#: event -> (new DBC state, host action) -- ssr-ras-boot.md §1.8
HOST_EVENT_TABLE: dict[int, tuple[DbcState, str]] = {
    Event.BEFORE_SHUTDOWN: (DbcState.BEFORE_SHUTDOWN, "enter"),
    Event.AFTER_SHUTDOWN: (DbcState.AFTER_SHUTDOWN, ""),
    Event.BEFORE_POWER_UP: (DbcState.BEFORE_POWER_UP, ""),
    Event.AFTER_POWER_UP: (DbcState.AFTER_POWER_UP, "exit"),
}


class HostSsr:
    """The host's SSR client (7.2 qaic_ssr.c).  ``release(dbc)`` is the driver's
    ``qaic_dbc_enter_ssr`` -> ``release_dbc``; ``set_state(dbc, state)`` its
    ``set_dbc_state``; ``soc_reset()`` ``mhi_soc_reset``; ``exit_ssr()``
    ``qaic_dbc_exit_ssr``.

    Which of the driver's two receive buffers is queued decides what a device message
    is (not its command): the 32-byte ``ssr_resp`` buffer (``ssr_worker``), or, from an
    ACKed DEBUG_TRANSFER_INFO until DEBUG_TRANSFER_DONE is sent, only the crashdump
    buffer (``ssr_dump_worker``).  Fields are read from the buffer whatever the
    message's length, so a short message reads what the previous one left there.  A
    message longer than the queued buffer is an MHI overflow: the driver frees (or
    keeps) the buffer without queueing another, and nothing more is received until a
    reset (:attr:`rx` None).
    """

    def __init__(
        self,
        *,
        num_dbc: int,
        release: Callable[[int], None],
        set_state: Callable[[int, DbcState], None],
        get_state: Callable[[int], DbcState],
        soc_reset: Callable[[], None],
        dump_buffer: bool = True,
        exit_ssr: Callable[[], None] | None = None,
    ) -> None:
        self.num_dbc = num_dbc
        self.ssr_dbc = SENTINEL
        self._release = release
        self._set_state = set_state
        self._get_state = get_state
        self._soc_reset = soc_reset
        self._exit_ssr = exit_ssr
        self.dump_buffer = dump_buffer
        self.dump: dict[str, Any] | None = None
        self.coredumps: list[bytes] = []
        self.dropped: list[dict[str, Any]] = []
        self.reset()

    def reset(self) -> None:
        """qaic_clean_up_ssr: a device reset cancels any SSR or dump in progress; the MHI
        channel comes back with a fresh 32-byte buffer queued (qaic_ssr_mhi_probe)."""
        self.ssr_dbc = SENTINEL
        self.dump = None
        self.rx: str | None = RX_RESP
        self._resp = bytearray(RX_SIZE)  # kzalloc'd once, reused for every message
        self._crash = bytearray(MEM_READ_DATA_SIZE)  # drmm_kzalloc'd, reused

    def _drop(self, data: bytes, why: str) -> list[bytes]:
        self.dropped.append({"hex": bytes(data).hex(), "why": why})
        return []

    def on_message(self, data: bytes) -> list[bytes]:
        """Handle one device message; return the host's replies (in order)."""
        data = bytes(data)
        if self.rx is None:
            return self._drop(data, "no receive buffer queued (an earlier overflow)")
        buf = self._resp if self.rx == RX_RESP else self._crash
        if len(data) > len(buf):  # MHI -EOVERFLOW: dl_xfer_cb frees/keeps, queues nothing
            self.rx = None
            return self._drop(data, f"{len(data)} bytes overflow the {len(buf)}-byte buffer")
        buf[: len(data)] = data
        if self.rx == RX_DUMP:
            return self._dump_worker(data)
        return self._ssr_worker(data)

    # -- ssr_worker: the 32-byte buffer ---------------------------------------------
    def _ssr_worker(self, data: bytes) -> list[bytes]:
        b = self._resp
        cmd, ln, dbc = _HDR.unpack_from(b, 0)
        if ln > RX_SIZE or dbc >= self.num_dbc:
            return self._drop(data, f"hdr.len {ln} > {RX_SIZE} or dbc_id {dbc} >= num_dbc")
        if cmd == Cmd.SSR_EVENT:
            return self._on_event(dbc, struct.unpack_from("<I", b, 12)[0])
        if cmd == Cmd.DEBUG_TRANSFER_INFO:
            _resv, tbl_addr, tbl_len = struct.unpack_from("<IQQ", b, 12)
            return self._on_dump_info(dbc, tbl_addr, tbl_len)
        if cmd == Cmd.DEBUG_TRANSFER_DONE_RSP:
            return self._on_done_rsp(struct.unpack_from("<I", b, 12)[0])
        return self._drop(data, f"cmd 0x{cmd:x} is not handled (ignored)")

    def _on_event(self, dbc: int, ev: int) -> list[bytes]:
        row = HOST_EVENT_TABLE.get(ev)
        if row is None:  # unknown event: no state change, still echoed
            return [event_rsp(dbc, ev).pack()]
        state, action = row
        if action == "exit" and self.dump is not None:
            self.dump = None  # an unfinished dump is freed and the event NACKed
            return [event_rsp(dbc, Event.NACK).pack()]
        self._set_state(dbc, state)
        if action == "enter":  # qaic_dbc_enter_ssr
            self.ssr_dbc = dbc
            self._release(dbc)
        out = [event_rsp(dbc, ev).pack()]
        if action == "exit":  # qaic_dbc_exit_ssr, then IDLE
            self.ssr_dbc = SENTINEL
            if self._exit_ssr is not None:
                self._exit_ssr()
            self._set_state(dbc, DbcState.IDLE)
        return out

    def _on_dump_info(self, dbc: int, tbl_addr: int, tbl_len: int) -> list[bytes]:
        """dbg_xfer_info_rsp: NACK unless buffer, state BEFORE_POWER_UP, valid tbl_len."""
        ok = (
            self.dump_buffer
            and self._get_state(dbc) == DbcState.BEFORE_POWER_UP
            and tbl_len != 0
            and tbl_len % DUMP_ENTRY_SIZE == 0
        )
        if not ok:
            return [SsrMsg(Cmd.DEBUG_TRANSFER_INFO_RSP, dbc, {"ret": 1}).pack()]
        self.dump = {
            "tbl_addr": tbl_addr,
            "tbl_len": tbl_len,
            "table": b"",
            "entries": [],
            "ent": 0,
            "ent_off": 0,
            "data": [],
        }
        return [
            SsrMsg(Cmd.DEBUG_TRANSFER_INFO_RSP, dbc, {"ret": 0}).pack(),
            self._read(tbl_addr, min(tbl_len, MEM_READ_CHUNK)),
        ]

    def _read(self, addr: int, length: int) -> bytes:
        """mem_read_req: queue the crashdump buffer, send MEMORY_READ naming ssr_dbc."""
        self.rx = RX_DUMP
        return SsrMsg(
            Cmd.MEMORY_READ, self.ssr_dbc, {"resv": 0, "addr": addr, "len": length}
        ).pack()

    def _fail(self) -> list[bytes]:
        self.dump = None
        self._soc_reset()
        return []

    # -- ssr_dump_worker: the crashdump buffer ----------------------------------------
    def _dump_worker(self, data: bytes) -> list[bytes]:
        b = self._crash
        cmd, ln, dbc = _HDR.unpack_from(b, 0)
        d = self.dump
        if dbc != self.ssr_dbc or d is None:
            return self._fail()  # reset_device
        if cmd != Cmd.MEMORY_READ_RSP or ln > MEM_READ_DATA_SIZE:
            return self._fail()  # free_dump_info, reset_device
        n = (ln - 16) & (1 << 64) - 1  # data_len = hdr.len - sizeof(*mem_rd_resp), u64
        chunk = bytes(b[16 : 16 + n])
        if not d["entries"] and len(d["table"]) < d["tbl_len"]:  # ssr_copy_table
            if n > d["tbl_len"] - len(d["table"]):
                return self._fail()
            d["table"] += chunk
            if len(d["table"]) == d["tbl_len"]:  # alloc_dump
                for i in range(0, d["tbl_len"], DUMP_ENTRY_SIZE):
                    _perf, base, length = struct.unpack_from("<QQQ", d["table"], i)
                    if length == 0:
                        return self._fail()
                    d["entries"].append((base, length))
        else:  # ssr_copy_dump
            base, length = d["entries"][d["ent"]]
            if n > length - d["ent_off"]:
                return self._fail()
            d["data"].append(chunk)
            d["ent_off"] += n
            if d["ent_off"] == length:
                d["ent"] += 1
                d["ent_off"] = 0
        if len(d["table"]) < d["tbl_len"]:
            got = len(d["table"])
            return [self._read(d["tbl_addr"] + got, min(d["tbl_len"] - got, MEM_READ_CHUNK))]
        if d["ent"] < len(d["entries"]):
            base, length = d["entries"][d["ent"]]
            return [self._read(base + d["ent_off"], min(MEM_READ_CHUNK, length - d["ent_off"]))]
        self.rx = RX_RESP  # send_xfer_done queues the 32-byte buffer again
        return [SsrMsg(Cmd.DEBUG_TRANSFER_DONE, dbc, {"resv": 0}).pack()]

    def _on_done_rsp(self, ret: int) -> list[bytes]:
        d = self.dump
        if d is None:
            return []
        self.dump = None
        if ret == 0:
            meta = struct.pack(
                "<QQQQ",
                0x1234567890ABCDEF,
                1,
                32 + d["tbl_len"] + sum(len(x) for x in d["data"]),
                d["tbl_len"],
            )
            self.coredumps.append(meta + d["table"] + b"".join(d["data"]))
        return []


def __getattr__(name: str) -> Any:
    """The device side lives in :mod:`.ssr_device` (``ssr.DeviceSsr`` still works)."""
    if name in ("DeviceSsr", "DevStage", "DEV_TABLE"):
        from qaicmodel.spec.control import ssr_device

        return getattr(ssr_device, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
