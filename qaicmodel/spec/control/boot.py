"""Boot: PBL -> BHI (SBL image) -> SBL (Sahara) -> AMSS/QSM, the host's device states, SoC reset.

Rules (aic100.rst "Boot Flow"; ssr-ras-boot.md §4, which reads sahara.c,
mhi_controller.c, qaic_drv.c and the MHI core):
  * PBL runs from ROM and offers BHI; the host writes the SBL image
    ("qcom/aic100/sbl.bin") through BHI; SBL signals EE SBL, then pulls the
    runtime images with Sahara on QAIC_SAHARA (2/3); QSM signals EE AMSS;
  * Sahara packets are LE ``{cmd u32, length u32, ...}`` with exact lengths
    (HELLO/HELLO_RESP 0x30, READ_DATA 0x14, END_OF_IMAGE 0x10, DONE/RESET 0x8,
    MEM_DEBUG64/MEM_READ64 0x18); the host speaks version 2 only and answers
    a READ_DATA it cannot serve with RESET;
  * host device states (qaic.h ``enum dev_states``): OFFLINE 0, BOOT 1, ONLINE 2;
    the QAIC_CONTROL probe sets BOOT, and only an NNC status answer of version
    5.0 (major 5, minor <= 0) sets ONLINE;
  * reset without FLR (aic100.rst: "AIC100 does not implement FLR"): the host
    writes BIT(0) at MHI BAR + 0xb0 (``MHI_SOC_RESET_REQ``); the device reboots
    from PBL and everything activated is lost.
"""

from __future__ import annotations

import enum
import struct
from typing import Any

import attrs

from qaicmodel.errors import ArgumentError
from qaicmodel.spec.control import parsed
from qaicmodel.spec.control.mhi import Ee

__all__ = [
    "DevState",
    "SaharaCmd",
    "SaharaPkt",
    "parse",
    "decode",
    "describe",
    "HostSahara",
    "DeviceSbl",
    "SOC_RESET_OFFSET",
    "SOC_RESET_REQ",
    "SBL_IMAGE",
    "AIC100_IMAGES",
    "boot_device",
]

SOC_RESET_OFFSET = 0xB0  # MHI_SOC_RESET_REQ_OFFSET
SOC_RESET_REQ = 1 << 0
SBL_IMAGE = "qcom/aic100/sbl.bin"
SAHARA_VERSION = 2
TRANSFER_MAX = 0x80000  # SAHARA_TRANSFER_MAX_SIZE: one READ_DATA at most
PACKET_MAX = 0xFFFF
#: AIC100 image table (sahara.c): id -> file under qcom/aic100/
AIC100_IMAGES = {
    1: "fw1.bin",
    2: "fw2.bin",
    4: "fw4.bin",
    5: "fw5.bin",
    6: "fw6.bin",
    8: "fw8.bin",
    9: "fw9.bin",
    10: "fw10.bin",
}


class DevState(enum.IntEnum):
    """qaic.h ``enum dev_states``."""

    OFFLINE = 0
    BOOT = 1
    ONLINE = 2


class SaharaCmd(enum.IntEnum):
    HELLO = 0x1
    HELLO_RESP = 0x2
    READ_DATA = 0x3
    END_OF_IMAGE = 0x4
    DONE = 0x5
    DONE_RESP = 0x6
    RESET = 0x7
    RESET_RESP = 0x8
    MEM_DEBUG = 0x9
    MEM_READ = 0xA
    CMD_READY = 0xB
    SWITCH_MODE = 0xC
    EXECUTE = 0xD
    EXECUTE_RESP = 0xE
    EXECUTE_DATA = 0xF
    MEM_DEBUG64 = 0x10
    MEM_READ64 = 0x11
    READ_DATA64 = 0x12
    RESET_STATE = 0x13
    WRITE_DATA = 0x14


#: cmd -> (body layout, names); exact packet length = 8 + body (sahara.c)
LAYOUTS: dict[int, tuple[str, tuple[str, ...]]] = {
    SaharaCmd.HELLO: ("IIII24s", ("version", "version_compat", "max_length", "mode", "reserved")),
    SaharaCmd.HELLO_RESP: ("IIII24s", ("version", "version_compat", "status", "mode", "reserved")),
    SaharaCmd.READ_DATA: ("III", ("image", "offset", "length")),
    SaharaCmd.END_OF_IMAGE: ("II", ("image", "status")),
    SaharaCmd.DONE: ("", ()),
    SaharaCmd.RESET: ("", ()),
    SaharaCmd.MEM_DEBUG64: ("QQ", ("table_address", "table_length")),
    SaharaCmd.MEM_READ64: ("QQ", ("memory_address", "memory_length")),
}
_HDR = struct.Struct("<II")


@attrs.frozen
class SaharaPkt:
    """One Sahara packet; ``fields`` by name for the known layouts, ``data`` otherwise."""

    cmd: int
    fields: tuple[tuple[str, Any], ...] = ()
    data: bytes = b""
    length: int | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.cmd, int) or not 0 <= self.cmd < 1 << 32:
            raise ArgumentError(f"Sahara cmd {self.cmd!r} is not a u32")
        lay = LAYOUTS.get(self.cmd)
        if lay is not None:
            names = lay[1]
            given = dict(self.fields)
            if set(given) - set(names):
                raise ArgumentError(
                    f"Sahara {SaharaCmd(self.cmd).name} has no field(s) "
                    f"{sorted(set(given) - set(names))}"
                )
            full = tuple((n, given.get(n, bytes(24) if n == "reserved" else 0)) for n in names)
            struct.pack("<" + lay[0], *(v for _, v in full))  # range check
            object.__setattr__(self, "fields", full)
        if self.length is None:
            body = struct.calcsize("<" + lay[0]) if lay else 0
            object.__setattr__(self, "length", 8 + body + len(self.data))

    def __getitem__(self, name: str) -> Any:
        return dict(self.fields)[name]

    def pack(self) -> bytes:
        lay = LAYOUTS.get(self.cmd)
        body = struct.pack("<" + lay[0], *(v for _, v in self.fields)) if lay else b""
        return _HDR.pack(self.cmd, self.length) + body + self.data

    def as_dict(self) -> dict[str, Any]:
        try:
            name = SaharaCmd(self.cmd).name
        except ValueError:
            name = "UNKNOWN"
        d: dict[str, Any] = {"cmd": self.cmd, "cmd_name": name, "length": self.length}
        for k, v in self.fields:
            d[k] = v.hex() if isinstance(v, bytes) else v
        if self.data:
            d["data_hex"] = self.data.hex()
        return d


def pkt(cmd: int, **fields: Any) -> SaharaPkt:
    return SaharaPkt(cmd, tuple(fields.items()))


def parse(data: bytes) -> tuple[SaharaPkt | None, list[dict[str, Any]]]:
    """Lenient read of one Sahara packet and the rules it breaks."""
    data = bytes(data)
    viol: list[dict[str, Any]] = []
    if len(data) < 8:
        viol.append(
            {
                "rule": "SAHARA-SHORT",
                "offset": len(data),
                "message": f"a Sahara packet starts with 8 bytes; got {len(data)}",
            }
        )
        return None, viol
    cmd, length = _HDR.unpack_from(data, 0)
    if length != len(data):
        viol.append(
            {
                "rule": "SAHARA-LENGTH",
                "offset": 4,
                "message": f"length {length} but the packet has {len(data)} bytes",
            }
        )
    if len(data) > PACKET_MAX:
        viol.append(
            {
                "rule": "SAHARA-MAX",
                "offset": None,
                "message": f"{len(data)} bytes exceeds the 0xffff packet limit",
            }
        )
    lay = LAYOUTS.get(cmd)
    if cmd not in SaharaCmd.__members__.values():
        viol.append(
            {"rule": "SAHARA-CMD", "offset": 0, "message": f"cmd 0x{cmd:x} is not a Sahara command"}
        )
        return SaharaPkt(cmd, (), data[8:], length=length), viol
    if lay is None:
        return SaharaPkt(cmd, (), data[8:], length=length), viol
    size = 8 + struct.calcsize("<" + lay[0])
    if len(data) != size:
        viol.append(
            {
                "rule": "SAHARA-SIZE",
                "offset": 4,
                "message": f"{SaharaCmd(cmd).name} is {size} bytes, got {len(data)}",
            }
        )
        if len(data) < size:
            return None, viol
    vals = struct.unpack_from("<" + lay[0], data, 8)
    p = SaharaPkt(cmd, tuple(zip(lay[1], vals, strict=True)), data[size:], length=length)
    if cmd == SaharaCmd.HELLO:
        if p["version"] != SAHARA_VERSION:
            viol.append(
                {
                    "rule": "SAHARA-VERSION",
                    "offset": 8,
                    "message": f"version {p['version']}; the host speaks only 2",
                }
            )
        if p["mode"] not in (0, 1, 2):
            viol.append(
                {
                    "rule": "SAHARA-MODE",
                    "offset": 20,
                    "message": f"mode {p['mode']} is not 0, 1 or 2",
                }
            )
    if cmd == SaharaCmd.MEM_DEBUG64:
        tl = p["table_length"]
        if tl == 0 or tl % 64 or tl > PACKET_MAX:
            viol.append(
                {
                    "rule": "SAHARA-TABLE",
                    "offset": 16,
                    "message": f"table_length {tl} is not a non-zero multiple of 64 <= 0xffff",
                }
            )
    return p, viol


def decode(data: bytes | bytearray | memoryview) -> SaharaPkt:
    """Strict decode: a :class:`SaharaPkt` or DecodeError naming the rule and offset."""
    pkt: SaharaPkt = parsed.strict("Sahara packet", "SAHARA-TYPE", parse, data)
    return pkt


def describe(data: bytes) -> dict[str, Any]:
    """``qaicmodel decode sahara HEX``."""
    return parsed.describe("sahara", "packet", parse, data)


# --------------------------------------------------------------------------
# host side (sahara.c)


READ_MAX = 0xFFF0  # SAHARA_READ_MAX_SIZE: dump reads
DUMP_ENTRY = 64  # struct sahara_debug_table_entry64


class HostSahara:
    """The host's Sahara client.  ``images``: id -> bytes (what ``request_firmware`` finds).

    Memory-debug (RAM dump) mode: after a valid MEM_DEBUG64 the host reads the
    table, then every entry in chunks of at most 0xfff0 bytes (a 0x10-byte chunk
    is shrunk to 8 so it cannot pass for END_OF_IMAGE), each answer being raw
    bytes of exactly the requested size; the result goes to :attr:`dumps`, then
    the host sends RESET.  A wrong-sized answer aborts with RESET.
    """

    def __init__(self, images: dict[int, bytes]) -> None:
        self.images = dict(images)
        self.active: int | None = None
        self.log: list[str] = []
        self.dump: dict[str, Any] | None = None
        self.dumps: list[bytes] = []

    def _read64(self, addr: int, length: int) -> bytes:
        self.dump["want"] = length  # type: ignore[index]
        return pkt(SaharaCmd.MEM_READ64, memory_address=addr, memory_length=length).pack()

    def _next_read(self) -> list[bytes]:
        d = self.dump
        assert d is not None
        while d["ent"] < len(d["entries"]):
            addr, length = d["entries"][d["ent"]]
            if d["off"] < length:
                n = min(READ_MAX, length - d["off"])
                if n == 0x10:
                    n = 8
                return [self._read64(addr + d["off"], n)]
            d["ent"] += 1
            d["off"] = 0
        meta = struct.pack(
            "<QQQQ", 0x1234567890ABCDEF, 1, 32 + len(d["table"]) + len(d["data"]), len(d["table"])
        )
        self.dumps.append(meta + d["table"] + bytes(d["data"]))
        self.dump = None
        return [pkt(SaharaCmd.RESET).pack()]

    def _on_dump_data(self, data: bytes) -> list[bytes]:
        d = self.dump
        assert d is not None
        if len(data) != d["want"]:
            self.dump = None
            self.log.append("dump: answer of the wrong size, aborted")
            return [pkt(SaharaCmd.RESET).pack()]
        if not d["entries"]:
            d["table"] = data
            for i in range(0, len(data), DUMP_ENTRY):
                _t, addr, length = struct.unpack_from("<QQQ", data, i)
                d["entries"].append((addr, length))
        else:
            d["data"] += data
            d["off"] += len(data)
        return self._next_read()

    def on_packet(self, data: bytes) -> list[bytes]:
        if self.dump is not None:
            return self._on_dump_data(bytes(data))
        p, viol = parse(data)
        if (
            p is not None
            and p.cmd == SaharaCmd.MEM_DEBUG64
            and all(v["rule"] == "SAHARA-TABLE" for v in viol)
            and viol
        ):
            # 7.2 sahara_memory_debug64: a zero or misaligned table length is only
            # logged; a table longer than one packet is refused with RESET
            tl = p["table_length"]
            if tl == 0 or tl % DUMP_ENTRY:
                self.log.append(f"rejected: SAHARA-TABLE length {tl}")
                return []
            return [pkt(SaharaCmd.RESET).pack()]
        if p is None or viol:
            self.log.append(f"rejected: {viol[0]['rule'] if viol else '?'}")
            return []  # error log, no reply
        if p.cmd == SaharaCmd.HELLO:
            return [
                pkt(
                    SaharaCmd.HELLO_RESP, version=2, version_compat=2, status=0, mode=p["mode"]
                ).pack()
            ]
        if p.cmd == SaharaCmd.READ_DATA:
            img, off, ln = p["image"], p["offset"], p["length"]
            blob = self.images.get(img)
            if (
                blob is None
                or (self.active is not None and img != self.active)
                or ln > TRANSFER_MAX
                or off >= len(blob)
                or off + ln > len(blob)
            ):
                self.log.append(f"READ_DATA image {img} +{off}/{ln} refused")
                return [pkt(SaharaCmd.RESET).pack()]
            self.active = img
            return [blob[off : off + ln]]  # raw bytes, one chained transfer
        if p.cmd == SaharaCmd.END_OF_IMAGE:
            if self.active is not None and p["image"] != self.active:
                self.log.append("END_OF_IMAGE for another image")
                return []
            self.active = None
            return [] if p["status"] else [pkt(SaharaCmd.DONE).pack()]
        if p.cmd in (SaharaCmd.DONE_RESP, SaharaCmd.RESET_RESP):
            return []
        if p.cmd == SaharaCmd.MEM_DEBUG64:
            self.dump = {
                "entries": [],
                "ent": 0,
                "off": 0,
                "table": b"",
                "data": bytearray(),
                "want": 0,
            }
            return [self._read64(p["table_address"], p["table_length"])]
        self.log.append(f"unknown command 0x{p.cmd:x}")
        return []


class DeviceSbl:
    """SBL's side of Sahara: HELLO, then READ_DATA for each image, END_OF_IMAGE.

    ``inject``: control-fault injectors (:mod:`faults`, channel ``sahara``) that may
    rewrite each packet SBL sends; a packet the host does not answer stalls the boot.
    """

    def __init__(self, wanted: dict[int, int], chunk: int = TRANSFER_MAX, inject: Any = ()) -> None:
        self.wanted = dict(wanted)  # image id -> size SBL expects
        self.chunk = chunk
        self.received: dict[int, bytes] = {}
        self.failed = False
        self.inject = list(inject)
        self._last = b""  # the host's last packet (the "request" a fault sees)

    def _send(self, host: HostSahara, packet: bytes) -> list[bytes]:
        sent = [packet]
        for inj in self.inject:
            sent = list(inj.exchange(self._last, sent).now)
        out: list[bytes] = []
        for p in sent:
            out.extend(host.on_packet(p))
        if out:
            self._last = out[-1]
        return out

    def run(self, host: HostSahara) -> bool:
        """Drive the exchange to completion; True when every image arrived."""
        r = self._send(
            host,
            pkt(SaharaCmd.HELLO, version=2, version_compat=2, max_length=PACKET_MAX, mode=0).pack(),
        )
        if not r or decode(r[0]).cmd != SaharaCmd.HELLO_RESP:
            self.failed = True
            return False
        for img, size in self.wanted.items():
            got = b""
            while len(got) < size:
                n = min(self.chunk, size - len(got))
                r = self._send(
                    host, pkt(SaharaCmd.READ_DATA, image=img, offset=len(got), length=n).pack()
                )
                if len(r) != 1 or len(r[0]) != n:
                    self.failed = True  # RESET from the host
                    return False
                got += r[0]
            self.received[img] = got
            r = self._send(host, pkt(SaharaCmd.END_OF_IMAGE, image=img, status=0).pack())
            if not r or decode(r[0]).cmd != SaharaCmd.DONE:
                self.failed = True
                return False
            self._send(host, pkt(SaharaCmd.DONE_RESP).pack())
        return True


def boot_device(
    images: dict[int, bytes],
    wanted: dict[int, int] | None = None,
    sbl: bytes | None = b"SBL",
    inject: Any = (),
) -> tuple[list[Ee], bool]:
    """The EEs the host sees during one boot, and whether the device reached AMSS.

    No SBL image (``sbl=None``) leaves the device in PBL; a Sahara failure
    leaves it in SBL (the driver then SoC-resets it, ssr-ras-boot.md §4.2).
    """
    seen = [Ee.PBL]
    if sbl is None:
        return seen, False
    seen.append(Ee.SBL)
    need = wanted if wanted is not None else {k: len(v) for k, v in images.items()}
    if not DeviceSbl(need, inject=inject).run(HostSahara(images)):
        return seen, False
    seen.append(Ee.AMSS)
    return seen, True
