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


def test_the_shadow_writes_no_requests_and_keeps_the_lengths_partial_reads() -> None:
    """shadow.py S6: no request bytes, and ``_partial`` splits as over SpecHost's elements."""
    r, bo = _attached(shadow._shadow_of(SpecHost))
    ref, ref_bo = _attached(SpecHost)
    ch = r.host.ch[bo.dbc_id]
    for k, sl in enumerate(bo.slices):
        r.host._write_full(ch, sl, 0x1234 + k, 2 * k)
        r.host._write_partial(ch, sl, 0x99, 5, 0, 17)
    assert not any(_ring(r, bo.dbc_id))
    for sl, rsl in zip(bo.slices, ref_bo.slices, strict=True):
        assert [e.pcie_dma_len for e in sl.enc] == [e.pcie_dma_len for e in rsl.enc]
        for rel in range(0, sl.size + 2, 511):
            assert r.host._partial(sl, rel) == ref.host._partial(rsl, rel)


def test_conform_verdicts_are_the_same_without_the_shadow_shortcuts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """S6 changes no answer: the same fixed episodes give the same reports with the
    shadow's full encoding and request copy put back.  (This test caught a first S6
    that also dropped the shadow's control verdicts, which conform's V-rules read.)"""
    from pathlib import Path

    from qaicmodel.oracle.conform import DEFAULT_HOST, Conformance
    from qaicmodel.oracle.shrink import EPISODE_MOVES, Episode, _episode_seed

    def reports() -> list[str]:
        c = Conformance(
            DEFAULT_HOST, seed=5, budget=60.0, episodes=None, pinned={}, out_dir=Path(".")
        )
        out = []
        for k in range(3 * len(c.rows)):
            ri = k % len(c.rows)
            e = Episode(
                _episode_seed(5, ri, k // len(c.rows)),
                c.rows[ri],
                c.host_cls,
                c.ref_cls,
                kernel=c.kernel,
            )
            out.append(f"{e.run(EPISODE_MOVES, None)!s} after {e.actions} actions")
        return out

    fast = reports()
    monkeypatch.setattr(shadow, "_spec_copy", lambda cls: False)
    full = reports()
    assert fast == full
    assert sum(x.startswith("None") for x in fast) < len(fast)  # some episodes do fail


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


# ---------------------------------------------------------------------------
# issue #12 item 6, second round: the host-call guards and the actor paths


class _Overwriter(SpecHost):
    """Rewrites every published, unconsumed request slot inside the call named ``evil``."""

    evil: str | None = None

    def _clobber(self, name: str) -> None:
        if self.evil != name:
            return
        dev = self.device
        for ch in dev.ch:
            i = ch.req_hp
            while ch.active and i != ch.req_tp:
                dev.host_mem.write(ch.req_q + i * REQ_SIZE, b"\xee" * REQ_SIZE)
                i = (i + 1) % ch.nelem

    def enabled(self) -> Any:
        self._clobber("enabled")
        return super().enabled()

    def step(self, action: Any) -> None:
        self._clobber("step")
        super().step(action)

    def create_bo(self, *a: Any, **kw: Any) -> Any:
        self._clobber("create_bo")
        return super().create_bo(*a, **kw)

    def wait_check(self, *a: Any, **kw: Any) -> Any:
        self._clobber("wait_check")
        return super().wait_check(*a, **kw)


def _published_pair() -> tuple[Any, list[Any]]:
    """A Pair (rules mode) on the _Overwriter whose dbc d0 has published, unconsumed
    request slots (an executed BO), and the steps still to run: a create_bo, a wait."""
    from qaicmodel.oracle.pair import Pair
    from qaicmodel.spec.policies import Policies

    doc = _steps(
        {"op": "open", "user": "u0"},
        {"op": "activate", "user": "u0", "queue_size": 8, "as": "d0"},
        {"op": "create_bo", "user": "u0", "size": 4096, "as": "b"},
        {
            "op": "attach_slice",
            "user": "u0",
            "hdr": {"dbc_id": "d0", "handle": "b", "dir": 1, "size": 4096},
            "entries": [{"size": 4096, "offset": 0, "dev_addr": 0x30_0000}],
        },
        {"op": "execute", "user": "u0", "dbc_id": "d0", "handles": ["b"]},
        {"op": "create_bo", "user": "u0", "size": 4096},
        {"op": "wait", "user": "u0", "dbc_id": "d0", "handle": "b"},
    )
    scen = parse(doc)
    pair = Pair(scen.device, Policies(dict(scen.device.policies)), _Overwriter, SpecHost)
    for st in scen.steps[:5]:
        assert pair.step(st)["result"] == "ok"
    ch = pair.prim.device.ch[pair.prim.names["d0"]]
    assert ch.req_hp != ch.req_tp  # published, not consumed: the device has not acted
    return pair, list(scen.steps[5:])


@pytest.mark.parametrize("evil", ["create_bo", "wait_check", "enabled", "step", None])
def test_a_host_that_overwrites_a_published_slot_in_any_call_is_caught(evil: str | None) -> None:
    """COSIM-REQ-OVERWRITE in an ioctl, in an ioctl inside the wait loop (watchdog depth
    > 0), and in both actor calls; no finding from a host that overwrites nothing."""
    from qaicmodel.oracle.pair import Failure
    from qaicmodel.spec.host.protocol import HostAction

    pair, (create, wait) = _published_pair()
    host = pair.prim.host  # the guarded host (pair._Checked)
    host._host.evil = evil
    if evil in ("create_bo", "wait_check", None):
        st = create if evil == "create_bo" else wait
        if evil is None:
            assert pair.step(create)["result"] == "ok"
            assert pair.step(wait)["result"] == "ok"
            assert pair.watch.findings == []
            return
        with pytest.raises(Failure) as e:
            pair.step(st)
        assert e.value.invariant == "COSIM-REQ-OVERWRITE"
        return
    if evil == "enabled":
        host.enabled()
    else:
        with pytest.raises(Exception):  # noqa: B017 - not enabled: the host refuses it
            host.step(HostAction("thread", 0))
    assert [f.rule for f in pair.watch.findings][:1] == ["COSIM-REQ-OVERWRITE"]


def test_an_actor_call_with_nothing_published_takes_no_snapshot() -> None:
    """The shortcut's condition: with every ring empty the actor call runs bare, and the
    same call with a published slot is checked."""
    from qaicmodel.oracle import pair as pair_mod

    p, _rest = _published_pair()
    taken: list[Any] = []
    watch = p.watch
    real = watch.snapshot

    def counting() -> Any:
        taken.append(1)
        return real()

    watch.snapshot = counting
    guarded = pair_mod._Checked(p.prim.host._host, watch)
    guarded.enabled()
    assert taken == [1]
    ch = p.prim.device.ch[p.prim.names["d0"]]
    hp = ch.req_hp
    ch.req_hp = ch.req_tp  # as if consumed
    try:
        guarded.enabled()
    finally:
        ch.req_hp = hp
    assert taken == [1]


def test_watchdog_reinstalls_its_handler_and_still_stops_a_hang() -> None:
    import signal
    import time

    from qaicmodel.oracle import watchdog

    seen: list[int] = []
    old = signal.signal(signal.SIGALRM, lambda s, f: seen.append(s))
    try:
        with watchdog.timeout(0.05), pytest.raises(watchdog.HostHang):
            watchdog.call("spin", time.sleep, (2.0,), {})
        assert signal.getsignal(signal.SIGALRM) is watchdog._on_alarm
        assert seen == []
        assert watchdog.STATE["depth"] == 0
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGALRM, old)


def test_recorder_forwards_the_device_attributes_it_shortcuts() -> None:
    from qaicmodel.oracle.recorder import Recorder

    dev = Device()
    rec = Recorder(dev, types.SimpleNamespace(find=lambda *a: None))
    assert rec.intc is dev.intc and rec.ch is dev.ch and rec.host_mem is dev.host_mem
    tap: Any = object()
    dev.intc = tap  # a tap put in later (oracle/check/recorder.py): read each time
    assert rec.intc is dev.intc
    assert rec.num_dbc == dev.num_dbc


def test_deliverable_vectors_as_the_rule_says() -> None:
    import random

    from qaicmodel.spec.dbc.intc import Intc

    rng = random.Random(3)
    for _ in range(300):
        c = Intc(rng.randint(1, 6))
        for v in range(c.vectors):
            if rng.random() < 0.4:
                c.mask(v)
            if rng.random() < 0.4:
                c.raise_(v)
        want = [v for v in range(c.vectors) if c.pending(v) and not c.masked(v)]
        assert c.deliverable_vectors() == want


def test_take_finds_the_device_and_host_and_honours_an_actor_override() -> None:
    from qaicmodel.scenario.runner import Runner

    r, _bo = _attached(SpecHost)
    seen: list[Any] = []
    r.device.step = seen.append
    r.host.step = seen.append
    r.take("device", "d-act")
    r.take("host", "h-act")
    assert seen == ["d-act", "h-act"] and r.steps_run == 2

    class NoActors(Runner):
        def actors(self) -> list[tuple[str, Any]]:
            return []

    q = NoActors.__new__(NoActors)
    q.__dict__.update(r.__dict__)
    with pytest.raises(KeyError):
        q.take("device", "d-act")


def test_impl_one_piece_encoding_is_the_general_encoding() -> None:
    import random

    import numpy as np

    from qaicmodel.impl.host import ImplHost, _Segs
    from qaicmodel.spec.host import uapi

    rng = random.Random(5)
    h = ImplHost.__new__(ImplHost)
    h.sg_max_segment = 4096

    def sem() -> Any:
        return uapi.Sem(
            val=rng.choice([0, 4095, rng.randrange(1 << 16)]),
            index=rng.randrange(256),
            presync=rng.choice([0, 1, 7]),
            cmd=rng.randrange(256),
            flags=rng.randrange(256),
        )

    for _ in range(500):
        e = uapi.SliceEntry(
            size=rng.choice([0, 1, 4096, rng.randrange(1 << 64)]),
            sem0=sem(),
            sem1=sem(),
            sem2=sem(),
            sem3=sem(),
            dev_addr=rng.choice([0, (1 << 64) - 1, rng.randrange(1 << 64)]),
            db_addr=rng.randrange(1 << 64),
            db_data=rng.randrange(1 << 32),
            db_len=rng.choice([0, 8, 16, 32]),
        )
        n = rng.choice([1, (1 << 32) + 5, rng.randrange(1 << 64)])
        segs = _Segs(
            np.array([rng.randrange(1 << 64)], dtype=np.uint64), np.array([n], dtype=np.uint64)
        )
        d = rng.choice([uapi.DMA_TO_DEVICE, uapi.DMA_FROM_DEVICE])
        a, b = h._encode(d, e, segs), h._encode_many(d, e, segs)
        assert a.arr.tobytes() == b.arr.tobytes()
        assert (a.n, a.first_len, a.seg_len) == (b.n, b.first_len, b.seg_len)


def test_impl_cached_span_and_sem_words_are_the_arithmetic() -> None:
    import random

    from qaicmodel import arith
    from qaicmodel.arith import U32, U64
    from qaicmodel.impl.host import _sem_word_of, _slice_span

    rng = random.Random(9)
    for _ in range(2000):
        off = rng.choice([0, 1, 4096, rng.randrange(1 << 20), (1 << 64) - 1])
        size = rng.choice([0, 1, 4096, rng.randrange(1 << 20), (1 << 64) - 1])
        covered = rng.choice([4096, 3 * 4096, rng.randrange(1, 1 << 21)])
        seg = rng.choice([4096, covered])
        ok = bool(arith.slice_span_ok(off, size, covered, U64))
        got = _slice_span(off, size, covered, seg)
        assert (got is not None) == ok
        if ok:
            assert got == tuple(int(x) for x in arith.slice_span(off, size, seg, U64))
        v, i, p, c, f = rng.randrange(1 << 16), *(rng.randrange(256) for _ in range(4))
        assert _sem_word_of(v, i, p, c, f) == int(arith.sem_encode(v, i, p, c, f, U32))


def test_made_once_struct_parsers_still_refuse_bad_fields() -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        (
            {
                "op": "attach_slice",
                "user": "u0",
                "hdr": {"dbc_id": 0, "handle": 1, "dir": 1, "size": 1, "bogus": 1},
                "entries": [{}],
            },
            "steps[1].hdr.bogus",
        ),
        ({"op": "execute", "user": "u0", "dbc_id": 0, "handles": [{"dir": 1}]}, "handle"),
        (
            {"op": "partial_execute", "user": "u0", "dbc_id": 0, "entries": [{"x": 1}]},
            "steps[1].entries[0].x",
        ),
    ]
    for step, where in bad:
        with pytest.raises(FormatError) as e:
            parse(_steps({"op": "open", "user": "u0"}, step))
        assert where in str(e.value)


def test_verdicts_name_the_fired_faults_or_none() -> None:
    for log, want in (([], []), ([("b", 1), ("a", 2), ("b", 3)], ["a", "b"])):
        p = _plane([])
        p.fault_log = log
        # dbc 0 held by the host, idle in the QSM: CTRL-HOST-ONLY
        p.client.dbc = [types.SimpleNamespace(in_use=True, usr=None, buf=0x1000)]
        found = verdicts.check(p)
        assert found and all(f.state["faults"] == want for f in found)


def test_wait_check_refuses_the_first_bad_field_in_order() -> None:
    from qaicmodel.errors import ArgumentError

    r, _bo = _attached(SpecHost)
    uid, d0, b = r.uid("u0"), r.names["d0"], r.names["b"]
    for args, name in (
        ((-1, -1, 0, 0), "dbc_id"),
        ((d0, 1 << 32, -1, 0), "handle"),
        ((d0, b, 1 << 32, 0), "timeout_ms"),
        ((d0, b, 0, -1), "pad"),
    ):
        with pytest.raises(ArgumentError, match=f"^{name}="):
            r.host.wait_check(uid, *args)


def test_request_pack_is_the_bytes_it_was_unpacked_from() -> None:
    import random

    import attrs

    from qaicmodel.spec.dbc import wire

    rng = random.Random(2)
    for _ in range(500):
        raw = bytes(rng.randrange(256) for _ in range(REQ_SIZE))
        e = RequestElem(*wire._REQ_STRUCT.unpack(raw))
        assert e.pack() == raw == wire._REQ_STRUCT.pack(*attrs.astuple(e))


def test_pair_checks_count_every_check_of_every_step() -> None:
    """pair.py counts its per-step check groups once per step; ``checks`` adds them up to
    what one count per check and step gives."""
    from qaicmodel.oracle import pair as pair_mod
    from qaicmodel.oracle.rules import RULES as HOST_RULES
    from qaicmodel.spec.policies import Policies

    scen = parse(
        _steps(
            {"op": "open", "user": "u0"},
            {"op": "activate", "user": "u0", "queue_size": 8, "as": "d0"},
            {"op": "create_bo", "user": "u0", "size": 4096, "as": "b"},
        )
    )
    p = pair_mod.Pair(scen.device, Policies({}), SpecHost, SpecHost, False)
    for st in scen.steps:
        p.step(st)
    got = p.checks
    n = len(scen.steps)
    for rule in ("CONF-CRASH", "CONF-HANG", *pair_mod._COSIM, *HOST_RULES, *pair_mod._CTRL):
        assert got[rule] == n, rule
    assert got["CONF-RESULT"] >= 1
