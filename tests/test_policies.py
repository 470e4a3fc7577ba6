"""The DMA-bridge part of the ambiguity registry, its covering sets, and that the device reads it."""

from __future__ import annotations

import ast
import itertools
import pathlib

import attrs
import pytest

from qaicmodel.errors import PolicyError
from qaicmodel.spec.dbc import device
from qaicmodel.spec.policies import REGISTRY, DbcChoice, Policies, each_alternative, pairwise

DB_IDS = sorted(pid for pid, p in REGISTRY.items() if p.area == "dma-bridge")


def test_dma_bridge_policies_are_complete_records() -> None:
    assert len(DB_IDS) >= 22
    for pid in DB_IDS:
        p = REGISTRY[pid]
        least = 1 if p.category in ("settled", "modelling-limit") else 2
        assert p.default in p.alternatives and len(p.alternatives) >= least
        assert p.source.startswith("seed 003") and p.quote and p.question and p.rationale
        if len(p.alternatives) == 1:  # an alternative was removed: the entry says why
            assert p.decision, pid


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
    want = {
        (pid, alt)
        for pid in DB_IDS
        for alt in REGISTRY[pid].alternatives
        if alt != REGISTRY[pid].default
    }
    assert got == want


def _reads(pkg_dir: pathlib.Path) -> set[str]:
    """Names the code under ``pkg_dir`` reads as policies: ``x._p.<field>`` / ``p.<field>``
    attributes of a resolved choice and ``policies[<CONST>]`` subscripts (AST, not text)."""
    names: set[str] = set()
    for path in pkg_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                base = node.value
                if (isinstance(base, ast.Name) and base.id == "p") or (
                    isinstance(base, ast.Attribute) and base.attr == "_p"
                ):
                    names.add(node.attr)
            elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Name):
                names.add(node.slice.id.lower())
    return names


def test_the_device_reads_every_dma_bridge_policy() -> None:
    """Every dma-bridge policy is a typed field of the device's resolved choice, and the
    device package reads that field (or subscripts its Policy constant) somewhere."""
    fields = {f.name for f in attrs.fields(DbcChoice)}
    assert fields == {pid.replace("-", "_") for pid in DB_IDS}
    read = _reads(pathlib.Path(device.__file__).parent)
    for pid in DB_IDS:
        if len(REGISTRY[pid].alternatives) == 1:  # one reading: nothing to read
            assert pid.replace("-", "_") not in read, f"dead read of settled policy {pid}"
            continue
        assert pid.replace("-", "_") in read, f"the device never reads policy {pid}"


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
