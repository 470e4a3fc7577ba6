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
  * the host drops device messages longer than its 32-byte buffer or naming a
    DBC >= num_dbc; unknown commands are ignored; unknown events are echoed.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import Any

import attrs

from qaicmodel.errors import ArgumentError, DecodeError
from qaicmodel.spec.control import parsed
from qaicmodel.spec.policies import Policies, Policy, register

__all__ = ["Cmd", "Event", "DbcState", "SsrMsg", "decode", "parse", "describe",
           "HostSsr", "DeviceSsr", "RX_SIZE", "SENTINEL", "DUMP_ENTRY_SIZE"]

RX_SIZE = 32  # SSR_RESP_MSG_SZ: the host's receive buffer
SENTINEL = 0xFFFFFFFF  # QAIC_SSR_DBC_SENTINEL: no SSR in progress
DUMP_ENTRY_SIZE = 64  # struct debug_info_table
MEM_READ_CHUNK = 65472  # SSR_MEM_READ_CHUNK_SIZE on a 64-bit kernel (inference, §1.9)
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
        return (_HDR.pack(self.cmd, self.len, self.dbc_id)
                + struct.pack("<" + fmt, *(self.fields[n] for n in names)) + self.data)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"cmd": self.cmd, "cmd_name": Cmd(self.cmd).name, "len": self.len,
                             "dbc_id": self.dbc_id}
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
    if dbc >= num_dbc and dbc != SENTINEL:
        v("SSR-DBC", 8, f"dbc_id {dbc} is not below num_dbc {num_dbc} (dropped)")
    vals = struct.unpack_from("<" + fmt, data, _HDR.size)
    fields = dict(zip(names, vals, strict=True))
    if cmd == Cmd.SSR_EVENT and fields["event"] not in (2, 4, 8, 16):
        v("SSR-EVENT", 12, f"event 0x{fields['event']:x} is not a device event")
    if cmd == Cmd.SSR_EVENT_RSP and fields["event"] not in (1, 2, 4, 8, 16):
        v("SSR-EVENT", 12, f"event 0x{fields['event']:x} is not an event or NACK")
    if cmd == Cmd.DEBUG_TRANSFER_INFO and (fields["tbl_len"] == 0
                                           or fields["tbl_len"] % DUMP_ENTRY_SIZE):
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
# policies (what the documents leave open)

register(Policy(
    id="ssr-crashdump",
    area="ssr",
    source="seed 003 (aic100.rst) Subsystem Restart (SSR); ssr-ras-boot.md §1.9",
    quote="A multi-stage recovery process is then used to cleanup both sides, and get the "
          "DBC/NSPs into a working state.",
    question="Does the device offer a crashdump (DEBUG_TRANSFER_INFO) in BEFORE_POWER_UP?",
    alternatives={
        "offer": "the device offers its dump table after the BEFORE_POWER_UP ack",
        "none": "no crashdump is offered; BEFORE_POWER_UP is followed by AFTER_POWER_UP",
    },
    default="none",
    rationale="The dump is optional in the driver (qaic_ssr.c accepts its absence); the "
              "shorter sequence is the common case. Tests run both.",
))

register(Policy(
    id="ssr-nack-recovery",
    area="ssr",
    source="ssr-ras-boot.md §1.8 (qaic_ssr.c)",
    quote="if a dump is still in progress: free it and NACK (state unchanged, ssr_dbc not "
          "cleared)",
    question="What does the device do after the host NACKs AFTER_POWER_UP?",
    alternatives={
        "resend": "the device sends AFTER_POWER_UP again; the host then completes",
        "give-up": "the device considers the SSR over; the host keeps ssr_dbc set until reset",
    },
    default="resend",
    rationale="Nothing documents the device's reaction; resending lets both sides agree "
              "again, 'give-up' is the pessimistic case.",
))

register(Policy(
    id="ssr-unknown-dump-dbc",
    area="ssr",
    source="ssr-ras-boot.md §1.9 (qaic_ssr.c)",
    quote="must have dbc_id == ssr_dbc (else SoC reset)",
    question="Does the device name the crashed DBC in MEMORY_READ_RSP or echo the request's?",
    alternatives={
        "echo": "MEMORY_READ_RSP carries the dbc_id of the MEMORY_READ",
        "zero": "MEMORY_READ_RSP carries dbc_id 0 (the host resets the SoC unless D is 0)",
    },
    default="echo",
    rationale="The host compares against ssr_dbc, which it put in the request; echoing "
              "is the only reading under which the dump ever succeeds for D != 0.",
))


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
    """The host's SSR client.  ``release(dbc)`` is the driver's ``release_dbc``;
    ``set_state(dbc, state)`` its ``set_dbc_state``; ``soc_reset()`` ``mhi_soc_reset``.
    """

    def __init__(self, *, num_dbc: int, release: Callable[[int], None],
                 set_state: Callable[[int, DbcState], None],
                 get_state: Callable[[int], DbcState],
                 soc_reset: Callable[[], None], dump_buffer: bool = True) -> None:
        self.num_dbc = num_dbc
        self.ssr_dbc = SENTINEL
        self._release = release
        self._set_state = set_state
        self._get_state = get_state
        self._soc_reset = soc_reset
        self.dump_buffer = dump_buffer
        self.dump: dict[str, Any] | None = None
        self.coredumps: list[bytes] = []
        self.dropped: list[dict[str, Any]] = []

    def reset(self) -> None:
        """qaic_clean_up_ssr: a device reset cancels any SSR or dump in progress."""
        self.ssr_dbc = SENTINEL
        self.dump = None

    def on_message(self, data: bytes) -> list[bytes]:
        """Handle one device message; return the host's replies (in order)."""
        msg, viol = parse(data, self.num_dbc)
        drop_rules = {"SSR-SHORT", "SSR-CMD", "SSR-LEN-MAX", "SSR-DBC", "SSR-SIZE"}
        if msg is None or any(x["rule"] in drop_rules for x in viol):
            self.dropped.append({"hex": bytes(data).hex(), "violations": viol})
            return []
        handler = {Cmd.SSR_EVENT: self._on_event,
                   Cmd.DEBUG_TRANSFER_INFO: self._on_dump_info,
                   Cmd.MEMORY_READ_RSP: self._on_mem_read_rsp,
                   Cmd.DEBUG_TRANSFER_DONE_RSP: self._on_done_rsp}.get(Cmd(msg.cmd))
        if handler is None:  # a host->device command arriving from the device: ignored
            self.dropped.append({"hex": bytes(data).hex(), "violations": viol})
            return []
        return handler(msg)

    def _on_event(self, msg: SsrMsg) -> list[bytes]:
        ev, dbc = msg["event"], msg.dbc_id
        row = HOST_EVENT_TABLE.get(ev)
        if row is None:  # unknown event: no state change, still echoed
            return [event_rsp(dbc, ev).pack()]
        state, action = row
        if action == "exit" and self.dump is not None:
            self.dump = None  # an unfinished dump is freed and the event NACKed
            return [event_rsp(dbc, Event.NACK).pack()]
        self._set_state(dbc, state)
        if action == "enter":
            self.ssr_dbc = dbc
            self._release(dbc)
        out = [event_rsp(dbc, ev).pack()]
        if action == "exit":
            self.ssr_dbc = SENTINEL
            self._set_state(dbc, DbcState.IDLE)
        return out

    def _on_dump_info(self, msg: SsrMsg) -> list[bytes]:
        tbl_len = msg["tbl_len"]
        ok = (self.dump_buffer and self._get_state(msg.dbc_id) == DbcState.BEFORE_POWER_UP
              and tbl_len != 0 and tbl_len % DUMP_ENTRY_SIZE == 0)
        if not ok:
            return [SsrMsg(Cmd.DEBUG_TRANSFER_INFO_RSP, msg.dbc_id, {"ret": 1}).pack()]
        self.dump = {"tbl_addr": msg["tbl_addr"], "tbl_len": tbl_len, "table": b"",
                     "entries": [], "ent": 0, "ent_off": 0, "data": []}
        return [SsrMsg(Cmd.DEBUG_TRANSFER_INFO_RSP, msg.dbc_id, {"ret": 0}).pack(),
                self._read(msg["tbl_addr"], min(tbl_len, MEM_READ_CHUNK))]

    def _read(self, addr: int, length: int) -> bytes:
        return SsrMsg(Cmd.MEMORY_READ, self.ssr_dbc,
                      {"resv": 0, "addr": addr, "len": length}).pack()

    def _fail(self) -> list[bytes]:
        self.dump = None
        self._soc_reset()
        return []

    def _on_mem_read_rsp(self, msg: SsrMsg) -> list[bytes]:
        d = self.dump
        if msg.dbc_id != self.ssr_dbc or d is None:
            return self._fail()
        if not d["entries"] and len(d["table"]) < d["tbl_len"]:
            d["table"] += msg.data
            if len(d["table"]) > d["tbl_len"]:
                return self._fail()
            if len(d["table"]) < d["tbl_len"]:
                got = len(d["table"])
                return [self._read(d["tbl_addr"] + got, min(d["tbl_len"] - got, MEM_READ_CHUNK))]
            for i in range(0, d["tbl_len"], DUMP_ENTRY_SIZE):
                _perf, base, length = struct.unpack_from("<QQQ", d["table"], i)
                if length == 0:
                    return self._fail()
                d["entries"].append((base, length))
        else:
            base, length = d["entries"][d["ent"]]
            d["data"].append(msg.data)
            d["ent_off"] += len(msg.data)
            if d["ent_off"] > length:
                return self._fail()
            if d["ent_off"] == length:
                d["ent"] += 1
                d["ent_off"] = 0
        if d["ent"] < len(d["entries"]):
            base, length = d["entries"][d["ent"]]
            return [self._read(base + d["ent_off"], min(MEM_READ_CHUNK, length - d["ent_off"]))]
        return [SsrMsg(Cmd.DEBUG_TRANSFER_DONE, self.ssr_dbc, {"resv": 0}).pack()]

    def _on_done_rsp(self, msg: SsrMsg) -> list[bytes]:
        d = self.dump
        self.dump = None
        if d is not None and msg["ret"] == 0:
            meta = struct.pack("<QQQQ", 0x1234567890ABCDEF, 1,
                               32 + d["tbl_len"] + sum(len(x) for x in d["data"]), d["tbl_len"])
            self.coredumps.append(meta + d["table"] + b"".join(d["data"]))
        return []


# --------------------------------------------------------------------------
# device side: QSM's half of the sequence


class DevStage(enum.Enum):
    """Where the device is in one SSR (the next thing it waits for)."""

    ACK_BEFORE_SHUTDOWN = "ack-before-shutdown"
    ACK_AFTER_SHUTDOWN = "ack-after-shutdown"
    ACK_BEFORE_POWER_UP = "ack-before-power-up"
    DUMP = "dump"
    ACK_AFTER_POWER_UP = "ack-after-power-up"
    DONE = "done"


#: stage -> (event the host must echo, next stage, event the device sends next)
DEV_TABLE: dict[DevStage, tuple[int, DevStage, int | None]] = {
    DevStage.ACK_BEFORE_SHUTDOWN: (Event.BEFORE_SHUTDOWN, DevStage.ACK_AFTER_SHUTDOWN,
                                   Event.AFTER_SHUTDOWN),
    DevStage.ACK_AFTER_SHUTDOWN: (Event.AFTER_SHUTDOWN, DevStage.ACK_BEFORE_POWER_UP,
                                  Event.BEFORE_POWER_UP),
    DevStage.ACK_BEFORE_POWER_UP: (Event.BEFORE_POWER_UP, DevStage.ACK_AFTER_POWER_UP,
                                   Event.AFTER_POWER_UP),
    DevStage.ACK_AFTER_POWER_UP: (Event.AFTER_POWER_UP, DevStage.DONE, None),
}


class DeviceSsr:
    """QSM's side of one SSR on ``dbc``.  ``read_mem(addr, n)`` serves dump reads;
    ``dump_table`` is the packed debug_info_table the device offers (policy)."""

    def __init__(self, dbc: int, *, policies: Policies, read_mem: Callable[[int, int], bytes],
                 dump_table: tuple[int, bytes] | None = None) -> None:
        self.dbc = dbc
        self.policies = policies
        self.read_mem = read_mem
        self.dump_table = dump_table
        self.stage = DevStage.ACK_BEFORE_SHUTDOWN
        self.events_sent: list[int] = []
        self.violations: list[str] = []

    def start(self) -> list[bytes]:
        self.events_sent.append(Event.BEFORE_SHUTDOWN)
        return [event(self.dbc, Event.BEFORE_SHUTDOWN).pack()]

    @property
    def done(self) -> bool:
        return self.stage == DevStage.DONE

    def on_host(self, data: bytes) -> list[bytes]:
        """A host reply arrives; return the device's next message(s)."""
        try:
            msg = decode(data)
        except DecodeError as e:
            self.violations.append(f"SSR-HOST-MALFORMED: {e}")
            return []
        if msg.cmd == Cmd.SSR_EVENT_RSP:
            return self._on_ack(msg["event"])
        if self.stage != DevStage.DUMP:
            self.violations.append(f"SSR-HOST-UNPROMPTED: {Cmd(msg.cmd).name} outside a dump")
            return []
        if msg.cmd == Cmd.DEBUG_TRANSFER_INFO_RSP:
            if msg["ret"] == 0:
                return []  # ACK: the host's MEMORY_READs follow
            self.stage = DevStage.ACK_AFTER_POWER_UP  # NACK: no dump, go on
            self.events_sent.append(Event.AFTER_POWER_UP)
            return [event(self.dbc, Event.AFTER_POWER_UP).pack()]
        if msg.cmd == Cmd.MEMORY_READ:
            data_ = self.read_mem(msg["addr"], msg["len"])
            dbc = msg.dbc_id if self.policies["ssr-unknown-dump-dbc"] == "echo" else 0
            return [SsrMsg(Cmd.MEMORY_READ_RSP, dbc, {"resv": 0}, data_).pack()]
        if msg.cmd == Cmd.DEBUG_TRANSFER_DONE:
            self.stage = DevStage.ACK_AFTER_POWER_UP
            self.events_sent.append(Event.AFTER_POWER_UP)
            return [SsrMsg(Cmd.DEBUG_TRANSFER_DONE_RSP, self.dbc, {"ret": 0}).pack(),
                    event(self.dbc, Event.AFTER_POWER_UP).pack()]
        self.violations.append(f"SSR-HOST-CMD: unexpected {Cmd(msg.cmd).name}")
        return []

    def _on_ack(self, ev: int) -> list[bytes]:
        if self.stage == DevStage.ACK_AFTER_POWER_UP and ev == Event.NACK:
            if self.policies["ssr-nack-recovery"] == "resend":
                self.events_sent.append(Event.AFTER_POWER_UP)
                return [event(self.dbc, Event.AFTER_POWER_UP).pack()]
            self.stage = DevStage.DONE
            return []
        row = DEV_TABLE.get(self.stage)
        if row is None or ev != row[0]:
            self.violations.append(f"SSR-HOST-ACK: got event 0x{ev:x} in stage {self.stage.value}")
            return []
        _, nxt, send = row
        if (self.stage == DevStage.ACK_BEFORE_POWER_UP and self.dump_table is not None
                and self.policies["ssr-crashdump"] == "offer"):
            self.stage = DevStage.DUMP
            addr, table = self.dump_table
            return [SsrMsg(Cmd.DEBUG_TRANSFER_INFO, self.dbc,
                           {"resv": 0, "tbl_addr": addr, "tbl_len": len(table)}).pack()]
        self.stage = nxt
        if send is None:
            return []
        self.events_sent.append(send)
        return [event(self.dbc, send).pack()]
