"""Bug classes of the driver's fix history re-created as hosts that synthetic memory makes
expressible (issue #12 item 4): each is caught by conform's generator alone, within its
default budget, by the rule that guards it."""

from __future__ import annotations

from pathlib import Path

import pytest

from qaicmodel.oracle import conform, conform_cli
from qaicmodel.oracle.broken import BROKEN_HOSTS
from qaicmodel.scenario.runner import DEFAULT_HOST as SCENARIO_HOST

pytestmark = pytest.mark.machines

#: host -> the invariant that must catch it
EXPECT = {
    "Offset32Host": "CONF-REQ-ELEM",
    "SgWalkHost": "CONF-REQ-ELEM",
    "TwoFreeHost": "CONF-EAGAIN",
}


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_generator_alone_catches_the_bug_class_by_its_rule(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conform, "MAX_FAILURES", 1)
    rep = conform.run_conformance(
        BROKEN_HOSTS[name].cls,
        seed=1,
        budget=conform.DEFAULT_BUDGET,
        out_dir=tmp_path / "repro",
    )
    assert rep["verdict"] == "FAILED", name
    f = rep["failures"][0]
    assert f["invariant"] == EXPECT[name], (f["invariant"], f["message"])
    assert f["reproduces"] is True
    ref = f"qaicmodel.oracle.broken:{name}"
    assert conform_cli.replay_file(f["reproducer"], ref)["verdict"] == "FAILED"
    assert conform_cli.replay_file(f["reproducer"], SCENARIO_HOST)["verdict"] == "conforms"


def test_large_bo_slices_stay_cheap_for_the_model(tmp_path: Path) -> None:
    """The generator's large BOs (just over 4 GiB, sparse) on the reference host: the
    run conforms and keeps its speed (no gigabyte tables: the BO is never materialised)."""
    import resource

    rep = conform.run_conformance(
        conform.DEFAULT_HOST, seed=1, episodes=3, out_dir=tmp_path / "repro"
    )
    assert rep["failures"] == [], rep["failures"][:1]
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 2 << 20  # KiB: < 2 GiB
