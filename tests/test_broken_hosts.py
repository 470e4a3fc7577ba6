"""Each invariant of the co-simulation can fail: a deliberately broken host is caught.

The machine is the same one tests/test_cosim_machine.py runs against the real hosts
(qaicmodel.testing.machine.make_machine); only the host class differs.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from qaicmodel.oracle.broken import BROKEN, BROKEN_HOSTS, NoRecheckHost
from qaicmodel.oracle.cosim import random_run
from qaicmodel.spec.host.reference import SpecHost
from qaicmodel.spec.policies import Policies
from qaicmodel.testing.machine import make_machine

FIND = settings(
    max_examples=400,
    stateful_step_count=40,
    deadline=None,
    database=None,
    derandomize=True,
    phases=(Phase.explicit, Phase.generate),
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
)

#: every registered broken host the co-simulation must catch, with its visible policies
CASES = [
    (b.cls, {"policies": Policies(dict(b.policies))} if b.policies else {})
    for b in BROKEN_HOSTS.values()
    if b.cosim_rules
]


@pytest.mark.parametrize("cls,kw", CASES, ids=[c.__name__ for c, _ in CASES])
def test_machine_catches_broken_host(cls: type, kw: dict) -> None:
    with pytest.raises(AssertionError) as info:
        run_state_machine_as_test(make_machine((cls,), **kw), settings=FIND)
    first = re.search(r"COSIM-[A-Z-]+", str(info.value))  # later ones may be knock-on effects
    assert first is not None and first.group(0) in BROKEN[cls], str(info.value)[:300]


@pytest.mark.parametrize("cls,kw", CASES, ids=[c.__name__ for c, _ in CASES])
def test_random_run_catches_broken_host(cls: type, kw: dict) -> None:
    """The seeded driver ``conform`` uses finds them too."""
    for seed in range(100):
        _w, found = random_run(cls, seed=seed, steps=400, **kw)
        if found:
            assert found[0].rule in BROKEN[cls], found
            return
    pytest.fail(f"{cls.__name__} not caught in 100 seeds")


def test_every_invariant_is_shown_failing() -> None:
    """Between them the broken hosts (and tests/test_cosim_machine.py's driver-assumption
    and divergence tests) exercise every finding rule of the co-simulation."""
    shown = {r for rules in BROKEN.values() for r in rules}
    shown |= {"COSIM-LOST-COMPLETE", "COSIM-DIVERGENCE"}
    from qaicmodel.oracle.cosim import RULES

    assert set(RULES) <= shown


def test_correct_host_passes_the_same_search() -> None:
    """Control: the reference host under the same policies is not flagged."""
    for seed in range(10):
        _w, found = random_run(
            SpecHost, seed=seed, steps=400, policies=Policies({"msi-while-masked": "lost"})
        )
        assert not found, found


def test_no_recheck_is_safe_when_masked_msis_latch() -> None:
    """Without the re-check the driver relies on masked MSIs being latched: under the
    default policy the same search finds nothing."""
    for seed in range(10):
        _w, found = random_run(NoRecheckHost, seed=seed, steps=400)
        assert not found, found
