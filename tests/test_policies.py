"""The DMA-bridge part of the ambiguity registry, its covering sets, and that the device reads it."""

from __future__ import annotations

import inspect
import itertools

import pytest

from qaicmodel.errors import PolicyError
from qaicmodel.spec.dbc import device, intc
from qaicmodel.spec.policies import REGISTRY, Policies, each_alternative, pairwise

DB_IDS = sorted(pid for pid, p in REGISTRY.items() if p.area == "dma-bridge")


def test_dma_bridge_policies_are_complete_records() -> None:
    assert len(DB_IDS) >= 22
    for pid in DB_IDS:
        p = REGISTRY[pid]
        assert p.default in p.alternatives and len(p.alternatives) >= 2
        assert p.source.startswith("seed 003") and p.quote and p.question and p.rationale


def test_pairwise_covers_every_pair_of_alternatives() -> None:
    rows = pairwise(DB_IDS)
    assert rows[0] == Policies({pid: REGISTRY[pid].default for pid in DB_IDS})
    seen = {(a, r[a], b, r[b]) for r in rows for a, b in itertools.combinations(DB_IDS, 2)}
    for a, b in itertools.combinations(DB_IDS, 2):
        for x in REGISTRY[a].alternatives:
            for y in REGISTRY[b].alternatives:
                assert (a, x, b, y) in seen, (a, x, b, y)
    # far fewer rows than the full product
    assert len(rows) < 40


def test_each_alternative_lists_every_non_default() -> None:
    got = {(pid, p[pid]) for p in each_alternative(DB_IDS) for pid in p.chosen}
    want = {(pid, alt) for pid in DB_IDS for alt in REGISTRY[pid].alternatives
            if alt != REGISTRY[pid].default}
    assert got == want


def test_the_device_reads_every_dma_bridge_policy() -> None:
    src = inspect.getsource(device) + inspect.getsource(intc)
    for pid in DB_IDS:
        assert f'"{pid}"' in src, f"device never reads policy {pid}"


@pytest.mark.parametrize("bad", [{"no-such-policy": "x"}, {"ring-full-rule": "sometimes"}])
def test_unknown_policy_or_alternative_is_a_policy_error(bad: dict[str, str]) -> None:
    with pytest.raises(PolicyError):
        Policies(bad)


def test_policies_parse_label_and_with() -> None:
    p = Policies.parse(["fence-scope=all-outstanding", " force-msi = ignored "])
    assert p["fence-scope"] == "all-outstanding" and p["force-msi"] == "ignored"
    assert p.label() == "fence-scope=all-outstanding,force-msi=ignored"
    assert p.with_(force_msi="honoured").label() == "fence-scope=all-outstanding"
    assert Policies()["ring-full-rule"] == "keep-one-free"
    assert Policies().is_("processing-order", "rule-permitted")
    with pytest.raises(PolicyError):
        Policies.parse(["fence-scope"])
    with pytest.raises(PolicyError):
        Policies().is_("processing-order", "random")
