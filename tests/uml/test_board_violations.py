"""Bad guest behaviour: a recorded violation with an id, never a traceback."""

from __future__ import annotations

import random
import struct

from mhi_host import CTX, EL, FakeHost

from qaicmodel.emu import mhi_regs as R

AMSS = {"mhi-start-ee": "amss"}
OUTSIDE = 0x7_0000_0000


def rules(h: FakeHost) -> list[str]:
    return [v.rule for v in h.b.violations]


def test_event_context_outside_memory() -> None:
    h = FakeHost(policies=AMSS)
    h.init_ctx()
    h.run()
    h.init_mmio()
    h.w(R.ECABAP_HIGHER, OUTSIDE >> 32)
    h.w(R.ECABAP_LOWER, 0)
    h.set_state(2)
    h.run()
    assert rules(h) == ["MHI-CTX-FAULT"]
    assert h.b.mhi_state == "READY"  # no M0 without an event ring


def test_event_ring_outside_memory() -> None:
    h = FakeHost(policies=AMSS)
    h.init_ctx()
    h.mem.write(h.er_ctx + 12, struct.pack("<QQQQ", OUTSIDE, 512, OUTSIDE, OUTSIDE))
    h.run()
    h.init_mmio()
    h.set_state(2)
    h.run()
    assert "MHI-DMA-FAULT" in rules(h)


def test_channel_ring_outside_memory_fails_start() -> None:
    h = FakeHost(policies=AMSS)
    h.power_up()
    h.mem.write(
        h.chan_ctx + 10 * CTX, struct.pack("<IIIQQQQ", 1, 1, 0, OUTSIDE, 512, OUTSIDE, OUTSIDE)
    )
    assert h.cmd(18, 10) == 0x10
    assert rules(h) == ["MHI-DMA-FAULT"]


def test_bad_ring_length_and_event_ring_index() -> None:
    h = FakeHost(policies=AMSS)
    h.power_up()
    rb = h.mem.alloc(512, 512)
    h.mem.write(h.chan_ctx + 10 * CTX, struct.pack("<IIIQQQQ", 1, 1, 0, rb, 500, rb, rb))
    assert h.cmd(18, 10) == 0x10
    h.mem.write(h.chan_ctx + 10 * CTX, struct.pack("<IIIQQQQ", 1, 1, 5, rb, 512, rb, rb))
    assert h.cmd(18, 10) == 0x10
    assert rules(h) == ["MHI-RING-LEN", "MHI-CHAN-ERINDEX"]


def test_tre_buffer_outside_memory_stops_the_channel() -> None:
    h = FakeHost(policies=AMSS)
    h.power_up()
    h.open(0)
    c = h.chans[0]
    h.mem.write(c.wp, EL.pack(OUTSIDE, 64, (2 << 16) | (1 << 9)))
    c.wp += 16
    h._ring(c)
    h.pump()
    assert rules(h) == ["MHI-DMA-FAULT"]
    assert h.b.mhi.channels[0].state == 5  # ERROR
    h._ring(c)  # the host keeps ringing: recorded, no crash
    assert rules(h)[-1] == "MHI-DB-CHANNEL"


def test_doorbell_outside_ring_and_for_idle_channel() -> None:
    h = FakeHost(policies=AMSS)
    h.power_up()
    h.open(0)
    db = h.r(R.CHDBOFF)
    h.w(db + 4, 0)
    h.w(db, 0x10)  # channel 0, outside its ring
    h.w(db + 8 * 40, 0x10)  # channel 40 never started
    h.w(h.r(R.CHDBOFF) + 8 * 127, 1)  # device wake: fine
    h.w(R.CRDB_HIGHER, 0)
    h.w(R.CRDB_LOWER, 8)  # command doorbell outside (and misaligned)
    h.run()
    assert rules(h) == ["MHI-RING-PTR", "MHI-DB-CHANNEL", "MHI-RING-PTR"]


def test_unknown_command_and_state_request() -> None:
    h = FakeHost(policies=AMSS)
    h.power_up()
    assert h.cmd(0x33, 0) == 0x10
    h.set_state(4)  # M2 while M0 without M1
    h.run()
    assert rules(h) == ["MHI-CMD-UNKNOWN", "MHI-STATE-REQ"]


def test_bhi_doorbell_outside_pbl() -> None:
    h = FakeHost(policies=AMSS)
    h.w(h.r(R.BHIOFF) + R.BHI_IMGTXDB, 1)
    assert rules(h) == ["BHI-NOT-PBL"]


def test_random_register_and_memory_garbage_never_raises() -> None:
    rng = random.Random(2026)
    for start in ("pbl", "amss"):
        h = FakeHost(policies={"mhi-start-ee": start})
        h.init_ctx()
        for _ in range(3000):
            k = rng.random()
            if k < 0.6:
                off = rng.randrange(0, 0x1000, 4)
                h.b.bar_write(
                    0,
                    off,
                    4,
                    rng.choice(
                        [
                            0,
                            1,
                            2,
                            0xFFFFFFFF,
                            rng.getrandbits(32),
                            h.mem.base + rng.randrange(0, 1 << 20),
                        ]
                    ),
                )
            elif k < 0.8:
                a = h.mem.base + rng.randrange(0, 2 << 20)
                h.mem.write(a, rng.randbytes(16))
            else:
                h.b.bar_read(0, rng.randrange(0, 0x1000, 4), 4)
            acts = h.b.actions()
            if acts:
                h.b.step(rng.choice(acts))
        assert all(isinstance(v.rule, str) and v.rule for v in h.b.violations)
