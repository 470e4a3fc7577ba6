"""The speed-ups behind ``qaicmodel bench --conform`` (issue #12 item 6) give exactly what
the code they shortcut gives: ring bytes, boots, parsed steps, decoded messages, verdicts."""

from __future__ import annotations

import types
from typing import Any

import pytest

from qaicmodel.errors import DecodeError, FormatError
from qaicmodel.oracle import shadow
from qaicmodel.scenario.format import FORMAT, parse
from qaicmodel.scenario.runner import Runner
from qaicmodel.scenario.values import _hex
from qaicmodel.spec.control import boot, faults, nnc, plane, verdicts
from qaicmodel.spec.control.plane import ControlPlane
from qaicmodel.spec.dbc.device import Device
from qaicmodel.spec.dbc.memory import PAGE, DevMemory
from qaicmodel.spec.dbc.wire import REQ_SIZE, RequestElem
from qaicmodel.spec.host.reference import SpecHost


def _attached(host_cls: type) -> tuple[Runner, Any]:
    """A runner whose BO ``b`` (3 pages, 4 KiB segments, 3 slices) is attached on d0."""
    doc = {
        "format": FORMAT,
        "device": {"num_dbc": 2, "sg_max_segment": 4096},
        "steps": [
            {"op": "open", "user": "u0"},
            {"op": "activate", "user": "u0", "queue_size": 8, "as": "d0"},
            {"op": "create_bo", "user": "u0", "size": 3 * 4096, "as": "b"},
            {
                "op": "attach_slice",
                "user": "u0",
                "hdr": {"dbc_id": "d0", "handle": "b", "dir": 1, "size": 3 * 4096},
                "entries": [
                    {"size": 8192, "offset": 0, "dev_addr": 0x30_0000},
                    {"size": 4096, "offset": 8192, "dev_addr": 0x40_0000, "db_len": 32},
                ],
            },
        ],
    }
    scen = parse(doc)
    r = Runner(scen.device, host_cls=host_cls)
    for st in scen.steps:
        assert r.step(st)["result"] == "ok"
    return r, r.host.users[r.uid("u0")].bos[r.names["b"]]


def _ring(r: Runner, dbc: int) -> bytes:
    ch = r.device.ch[dbc]
    return r.device.host_mem.read(ch.req_q, ch.nelem * REQ_SIZE)


@pytest.mark.parametrize("tail", [0, 7])
def test_shadow_copies_slices_byte_for_byte_as_the_reference_host(tail: int) -> None:
    got: list[bytes] = []
    want: list[bytes] = []
    for cls, out in ((shadow._shadow_of(SpecHost), got), (SpecHost, want)):
        r, bo = _attached(cls)
        ch = r.host.ch[bo.dbc_id]
        for k, sl in enumerate(bo.slices):
            r.host._write_full(ch, sl, 0x1234 + k, (tail + 2 * k) % ch.nelem)
        out.append(_ring(r, bo.dbc_id))
    assert got == want and any(got[0])


def test_a_reference_host_with_its_own_copy_keeps_it() -> None:
    copied: list[int] = []

    class OwnCopy(SpecHost):
        def _write_full(self, ch: Any, sl: Any, req_id: int, tail: int) -> None:
            copied.append(req_id)
            super()._write_full(ch, sl, req_id, tail)

    assert shadow._spec_copy(shadow._shadow_of(SpecHost))
    assert not shadow._spec_copy(shadow._shadow_of(OwnCopy))
    r, bo = _attached(shadow._shadow_of(OwnCopy))
    r.host._write_full(r.host.ch[bo.dbc_id], bo.slices[0], 1, 0)
    assert copied == [1]


def test_a_clean_boot_is_the_same_boot_every_time_and_a_sahara_fault_still_acts() -> None:
    a = ControlPlane(Device(num_dbc=2))
    b = ControlPlane(Device(num_dbc=2))
    assert a.ee == b.ee == boot.boot_device(plane.MODEL_IMAGES)[0] and a.ee is not b.ee
    a.ee.append("mutated")  # a plane's EE list is its own
    assert ControlPlane(Device(num_dbc=2)).ee == b.ee
    name = faults.names("sahara")[0]
    faulted = ControlPlane(Device(num_dbc=2), faults=[faults.Injector(name, 1)])
    assert faulted.ee == boot.boot_device(plane.MODEL_IMAGES, inject=[faults.Injector(name, 1)])[0]


def _steps(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT, "device": {"num_dbc": 2}, "steps": list(steps)}


def test_parse_still_names_the_unbound_field_and_gives_fresh_zero_structs() -> None:
    with pytest.raises(FormatError) as e:
        parse(
            _steps(
                {"op": "open", "user": "u0"},
                {"op": "execute", "user": "u0", "dbc_id": 0, "handles": [1, "nope"]},
            )
        )
    assert "steps[1].handles[1].handle" in str(e.value) and "'nope'" in str(e.value)
    doc = _steps(
        {"op": "open", "user": "u0"},
        {
            "op": "attach_slice",
            "user": "u0",
            "hdr": {"dbc_id": 0, "handle": 1, "dir": 1, "size": 4096},
            "entries": [{"size": 4096}, {"size": 0}],
        },
    )
    first = parse(doc).steps[1].args["entries"]
    first[0]["sem0"]["val"] = 7  # a caller's copy: the next parse is untouched
    again = parse(doc).steps[1].args["entries"]
    assert (
        again[0]["sem0"]
        == again[1]["sem3"]
        == {
            "val": 0,
            "index": 0,
            "presync": 0,
            "cmd": 0,
            "flags": 0,
            "pad": 0,
        }
    )
    assert again[0]["sem0"] is not again[1]["sem0"]


@pytest.mark.parametrize(
    ("text", "want"),
    [("0x00ff", b"\x00\xff"), ("ab cd\n", b"\xab\xcd"), ("", b""), ("abc", None), ("zz", None)],
)
def test_hex_fields(text: str, want: bytes | None) -> None:
    if want is None:
        with pytest.raises(FormatError, match="even number of hex digits"):
            _hex(text, "w")
    else:
        assert _hex(text, "w") == want


def test_decode_is_the_same_message_and_a_bad_one_raises_every_time() -> None:
    m = nnc.Message.build([nnc.StatusToDev()], seq=3).pack()
    assert nnc.decode(m, "h2d") == nnc.decode(bytearray(m), "h2d")
    for _ in range(2):
        with pytest.raises(DecodeError):
            nnc.decode(b"\x00" * 8, "h2d")


def test_request_unpack_of_a_subclass_is_that_subclass() -> None:
    class Mine(RequestElem):
        pass

    raw = RequestElem(req_id=5, pcie_dma_len=64).pack()
    assert RequestElem.unpack(raw) == RequestElem.unpack(memoryview(raw))
    assert type(Mine.unpack(raw)) is Mine


def test_device_words_read_as_the_bytes_do() -> None:
    mem = DevMemory()
    mem.write(PAGE - 2, b"\x01\x02\x03\x04\x05")
    for addr in (0, PAGE - 4, PAGE - 2, PAGE - 1, PAGE, 5 * PAGE, (1 << 64) - 4):
        for n in (1, 2, 4, 8):
            if addr + n <= 1 << 64:
                assert mem.read_u(addr, n) == int.from_bytes(mem.read(addr, n), "little")


def _plane(log: list[tuple[str, bytes]]) -> Any:
    client = types.SimpleNamespace(dbc=[], violations=[], leaked_bufs=[])
    qsm = types.SimpleNamespace(act={}, ssr=set(), violations=[])
    return types.SimpleNamespace(
        client=client, qsm=qsm, nnc_log=log, fault_log=[], device=types.SimpleNamespace(ch=[])
    )


def test_tracker_reads_the_log_once_and_finds_what_check_finds() -> None:
    def msg(seq: int) -> bytes:
        return nnc.Message.build([nnc.StatusToDev()], seq=seq).pack()

    log: list[tuple[str, bytes]] = [("tx", msg(5)), ("rx", b"r")]
    p, t = _plane(log), verdicts.Tracker()
    assert t.new(p) == []
    log += [("tx", msg(5)), ("tx", b"\x00" * 12)]  # a repeated seq, then a broken message
    want = [(f.rule, f.message) for f in verdicts.check(p, wire_from=2)]
    assert [(f.rule, f.message) for f in t.new(p)] == want
    assert [r for r, _m in want] == ["CTRL-SEQ", "CTRL-SEQ", "CTRL-WIRE"]
