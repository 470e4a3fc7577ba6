"""Co-simulation: spec host and fast host against the device model, adversarially interleaved.

Also the interrupt protocol (qaicmodel.spec.host.irqproto) random-walked at int level.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

from qaicmodel.arith import U32, ring_occupancy
from qaicmodel.impl.host import ImplHost
from qaicmodel.oracle.cosim import DRIVER_ASSUMES, Pair, World, machine_policy_rows
from qaicmodel.spec.host import irqproto
from qaicmodel.spec.host.reference import SpecHost
from qaicmodel.spec.policies import Policies
from qaicmodel.testing.machine import make_machine

HOSTS = (SpecHost, ImplHost)

# -- the interrupt protocol ----------------------------------------------------------


def walk(table: dict, nelem: int, seed: int, steps: int) -> list[irqproto.IrqState]:
    """A random walk over the enabled transitions; returns the states visited."""
    rng = random.Random(seed)
    s = irqproto.initial(nelem)
    seen = [s]
    for _ in range(steps):
        names = irqproto.enabled(s, table)
        if not names:
            break
        g, u = table[rng.choice(names)]
        s = u(s, U32)
        seen.append(s)
    return seen


@pytest.mark.parametrize("lost", [False, True])
@pytest.mark.parametrize("mask_on_irq", [True, False])
@given(seed=st.integers(0, 1 << 30), nelem=st.integers(2, 6))
def test_irqproto_never_strands_with_recheck(
    lost: bool, mask_on_irq: bool, seed: int, nelem: int
) -> None:
    table = irqproto.make_transitions(
        msi_while_masked="lost" if lost else "latched",
        mask_on_irq=mask_on_irq,
        num_events=2,
        num_delays=1,
    )
    for s in walk(table, nelem, seed, 300):
        assert not irqproto.stranded(s), s
        assert s.depth in (0, 1, 2)
        # RSP_HP never passes RSP_TP: what the host takes (RSP_HP -> its local head) and
        # what it frees was posted (RSP_HP -> RSP_TP); both indexes stay in the ring
        assert 0 <= s.rsp_hp < nelem and 0 <= s.head < nelem and 0 <= s.rsp_tp < nelem
        taken = ring_occupancy(s.rsp_hp, s.head, nelem)
        posted = ring_occupancy(s.rsp_hp, s.rsp_tp, nelem)
        assert taken <= posted, s


def test_irqproto_strands_without_recheck_and_lost() -> None:
    """The same walk finds a stranded response once the re-check is gone and masked
    MSIs are lost: the property above can fail."""
    table = irqproto.make_transitions(
        recheck=False, msi_while_masked="lost", num_events=2, num_delays=1
    )
    hits = [
        seed for seed in range(300) if any(irqproto.stranded(s) for s in walk(table, 3, seed, 200))
    ]
    assert hits


def test_irqproto_latched_alone_suffices() -> None:
    """Without the re-check but with latched MSIs nothing strands either (the re-check
    is what makes the driver safe under msi-while-masked=lost)."""
    table = irqproto.make_transitions(
        recheck=False, msi_while_masked="latched", num_events=2, num_delays=1
    )
    for seed in range(200):
        assert not any(irqproto.stranded(s) for s in walk(table, 3, seed, 200))


def test_irqproto_tables() -> None:
    assert "recheck" in irqproto.TRANSITIONS
    assert "recheck" not in irqproto.make_transitions(recheck=False)
    assert set(irqproto.DEVICE_TRANSITIONS) | set(irqproto.HOST_TRANSITIONS) == set(
        irqproto.TRANSITIONS
    )
    with pytest.raises(ValueError):
        irqproto.make_transitions(msi_while_masked="maybe")


# -- host vs device machines ----------------------------------------------------------

_FAST = settings(
    max_examples=8, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)
)


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"single_msi": True},
        {"datapath_polling": True},
        {"single_msi": True, "datapath_polling": True},
        {"sg_max_segment": None},
        {"nelem1": 3, "num_events": 1, "num_delays": 0},
    ],
    ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) or "default",
)
def test_pair_machine(variant: dict) -> None:
    """Spec and fast host agree exactly and keep every invariant (default policies)."""
    run_state_machine_as_test(
        make_machine(HOSTS, **variant),
        settings=settings(settings.default, deadline=None, suppress_health_check=list(HealthCheck)),
    )


ROWS = machine_policy_rows()
#: for machines that must fail: no shrinking (slow, and the failure is the point)
FIND = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    database=None,
    derandomize=True,
    phases=(Phase.explicit, Phase.generate),
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("row", range(len(ROWS)), ids=lambda i: ROWS[i].label()[:60])
def test_pair_machine_policy_rows(row: int) -> None:
    """Every alternative and every pair of alternatives (pairwise covering set)."""
    run_state_machine_as_test(make_machine(HOSTS, policies=ROWS[row]), settings=_FAST)


def test_rows_cover_msi_lost() -> None:
    assert any(r["msi-while-masked"] == "lost" for r in ROWS)
    assert all(r[p] == "keep-one-free" for r in ROWS for p in ["ring-full-rule"])


@pytest.mark.parametrize(
    "pid,alt,rule",
    [
        ("ring-full-rule", "all-slots", "COSIM-LOST-COMPLETE"),
        ("response-ring-full", "drop", "COSIM-LOST-COMPLETE"),
        ("head-index-meaning", "last-consumed", "COSIM-DEVICE-RULE"),
    ],
)
def test_driver_assumption_is_necessary(pid: str, alt: str, rule: str) -> None:
    """Under these device alternatives the driver itself loses completions or breaks a
    device rule: a seeded search with the correct spec host finds it (deterministic:
    plain ``random.Random`` seeds, so the outcome does not depend on which other
    modules were imported), and the same seed is clean under the defaults.  This is
    why machine rows hold these policies at their defaults."""
    from qaicmodel.oracle.cosim import random_run

    assert pid in DRIVER_ASSUMES
    pol = Policies({pid: alt})
    found: list = []
    for seed in range(100):
        _w, found = random_run(SpecHost, seed=seed, steps=400, policies=pol, nelem1=3)
        if found:
            break
    assert found and found[0].rule == rule, (pid, [f.rule for f in found])
    _w, clean = random_run(SpecHost, seed=seed, steps=400, nelem1=3)
    assert not clean


def test_driver_relies_on_fence_without_enable() -> None:
    """encode_reqs's automatic fence has cmd 0 (enable bit clear).  Under
    fence-without-enable=needs-enable the co-simulation finds a round trip that reads the
    device buffer before the split slice that wrote it finished (found by the seeded
    search; the same seed under the default policy is clean)."""
    from qaicmodel.oracle.cosim import random_run

    assert "fence-without-enable" in DRIVER_ASSUMES
    pol = Policies({"fence-without-enable": "needs-enable"})
    for seed in range(150):
        _w, found = random_run(SpecHost, seed=seed, steps=600, policies=pol, datapath_polling=True)
        if found:
            break
    assert [f.rule for f in found] == ["COSIM-DATA-MISMATCH"]
    _w, clean = random_run(SpecHost, seed=seed, steps=600, datapath_polling=True)
    assert not clean


def test_pair_reports_divergence() -> None:
    """A Pair notices when the two hosts differ (here: an ioctl result)."""

    class Off(ImplHost):
        def create_bo(self, user: int, size: int, pad: int = 0) -> int:
            return super().create_bo(user, size + 4096, pad)

    p = Pair(lambda f: World(f), (SpecHost, Off))
    assert not p.findings
    p.do("mmap", lambda w: w.ioctl("mmap_bo", 0, 1))
    assert any(f.rule == "COSIM-DIVERGENCE" for f in p.findings)


class _ProtocolOnly:
    """A host that offers only the documented interface (host.protocol.Host), wrapping another."""

    MEMBERS = (
        "open",
        "close",
        "dbc_assign",
        "dbc_release",
        "create_bo",
        "bo_segments",
        "mmap_bo",
        "attach_slice",
        "execute",
        "partial_execute",
        "wait_check",
        "perf_stats",
        "detach_slice",
        "enabled",
        "step",
    )
    inner_cls: type = ImplHost

    def __init__(self, device: object, **kw: object) -> None:
        self._inner = self.inner_cls(device, **kw)
        self.device = device
        for m in self.MEMBERS:
            setattr(self, m, getattr(self._inner, m))


def test_protocol_only_host_is_checked_too() -> None:
    """A user's host with only the documented interface: completions are observed through
    WAIT_BO, so the same invariants apply (and still catch a broken one)."""
    from qaicmodel.oracle.broken import EarlyCompleteHost
    from qaicmodel.oracle.cosim import random_run
    from qaicmodel.spec.host.protocol import Host

    assert isinstance(_ProtocolOnly(World(SpecHost).dev), Host)
    for seed in range(5):
        w, found = random_run(_ProtocolOnly, seed=seed, steps=300)
        assert not found, found
        assert sum(w.completed.values()) > 0

    class Broken(_ProtocolOnly):
        inner_cls = EarlyCompleteHost

    assert any(random_run(Broken, seed=s, steps=400)[1] for s in range(60))
