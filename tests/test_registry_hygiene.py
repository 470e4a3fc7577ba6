"""Registry hygiene (issue #13 item 3): verbatim quotes, exact sources, honest categories."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import attrs
import pytest

from qaicmodel.emu.kbuild import cache_dir
from qaicmodel.errors import PolicyError
from qaicmodel.spec.policies import (
    CATEGORIES,
    REGISTRY,
    Policies,
    Policy,
    ambiguities,
    by_category,
    pairwise,
)
from qaicmodel.spec.policies.sources import driver_problems, parse_source, quote_problem

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared"
SEEDS, REFERENCE = SHARED / "seeds", SHARED / "reference"
KERNEL_SRC = cache_dir() / "src"


@pytest.mark.parametrize("pid", sorted(REGISTRY))
def test_quote_is_verbatim_in_a_named_document(pid: str) -> None:
    assert SEEDS.is_dir() and REFERENCE.is_dir(), f"shared/ must sit beside the clone ({SHARED})"
    assert quote_problem(REGISTRY[pid], SEEDS, REFERENCE) is None, quote_problem(
        REGISTRY[pid], SEEDS, REFERENCE
    )


@pytest.mark.parametrize(
    "pid", sorted(p for p in REGISTRY if parse_source(REGISTRY[p].source).driver)
)
def test_named_driver_functions_exist_in_the_named_kernels(pid: str) -> None:
    assert KERNEL_SRC.is_dir(), "run `qaicmodel uml build` first (it unpacks the kernel sources)"
    assert driver_problems(REGISTRY[pid], KERNEL_SRC) == []


def test_the_checks_can_fail() -> None:
    """A paraphrased quote and a function no kernel has are both caught."""
    p = REGISTRY["sem-underflow"]
    wrong = attrs.evolve(p, quote="3 is a decrement of the value.")
    assert quote_problem(wrong, SEEDS, REFERENCE) is not None
    case = attrs.evolve(wrong, quote="3 IS DECREMENT.")  # case counts
    assert quote_problem(case, SEEDS, REFERENCE) is not None
    ghost = attrs.evolve(
        REGISTRY["pcie-msi-count"], source="seed 003; drivers/accel/qaic/qaic_drv.c no_such (7.2)"
    )
    assert driver_problems(ghost, KERNEL_SRC) == [
        "drivers/accel/qaic/qaic_drv.c: no definition of no_such in 7.2"
    ]
    unversioned = attrs.evolve(ghost, source="seed 003; drivers/accel/qaic/qaic_drv.c init_msi")
    assert driver_problems(unversioned, KERNEL_SRC)


#: the decisions issue #13 item 3 asks for: id -> category
DECIDED = {
    "host-attach-hdr-size": "kernel-version",
    "ras-counter-saturation": "kernel-version",
    "pcie-msi-count": "kernel-version",
    "mhi-ipcr": "kernel-version",
    "nnc-command-set": "modelling-limit",
    "qsm-bare-activate-nsps": "modelling-limit",
    "linked-list": "modelling-limit",
    "nnc-version-minor": "driver-bug",
    "msi-empty-transition": "settled",
    "ssr-unknown-dump-dbc": "settled",
    "doorbell-data-width": "settled",
}
#: alternatives removed as implausible (their code paths went with them)
REMOVED = {
    "msi-empty-transition": "every-response",
    "ssr-unknown-dump-dbc": "zero",
    "linked-list": "as-bulk",
    "doorbell-data-width": "violation",
}


@pytest.mark.parametrize("pid", sorted(DECIDED))
def test_weak_entries_are_decided_with_a_reason(pid: str) -> None:
    p = REGISTRY[pid]
    assert p.category == DECIDED[pid] and len(p.decision) > 40
    assert pid not in ambiguities()
    assert Policies()[pid] == p.default  # the id still resolves for the code using it


@pytest.mark.parametrize("pid", sorted(REMOVED))
def test_removed_alternatives_are_refused(pid: str) -> None:
    assert REMOVED[pid] not in REGISTRY[pid].alternatives
    with pytest.raises(PolicyError):
        Policies({pid: REMOVED[pid]})


def test_every_entry_outside_the_device_list_says_why() -> None:
    cats = by_category()
    assert sorted(cats) == sorted(CATEGORIES)
    assert sorted(x for ids in cats.values() for x in ids) == sorted(REGISTRY)
    for c, ids in cats.items():
        for pid in ids:
            assert c == "device" or REGISTRY[pid].decision, pid
    assert ambiguities() == cats["device"]
    for pid in ambiguities():
        assert len(REGISTRY[pid].alternatives) >= 2, pid


def test_a_device_entry_needs_two_alternatives() -> None:
    with pytest.raises(PolicyError):
        Policy(
            id="x-one",
            area="a",
            source="s",
            quote="q",
            question="?",
            alternatives={"only": "one"},
            default="only",
            rationale="r",
        )
    with pytest.raises(PolicyError):
        attrs.evolve(REGISTRY["sem-underflow"], category="no-such-category")


def test_pairwise_over_the_device_ambiguities_skips_the_rest() -> None:
    rows = pairwise(ambiguities())
    assert all(not (set(r.chosen) & set(DECIDED)) for r in rows)
    assert {p for r in rows for p in r.chosen} == set(ambiguities())


def test_ambiguities_command_lists_each_category_apart() -> None:
    run = [sys.executable, "-m", "qaicmodel", "ambiguities"]
    p = subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert len(d["policies"]) == len(REGISTRY)  # every entry, as before
    assert d["ambiguities"] == ambiguities()
    assert d["lists"]["known driver bugs"] == ["nnc-version-minor"]
    assert "host-attach-hdr-size" in d["lists"]["kernel-version behaviours"]
    t = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert t.returncode == 0
    heads = [ln for ln in t.stdout.splitlines() if ln.startswith("== ")]
    assert [h.split(" (")[0][3:] for h in heads] == [
        CATEGORIES[c] for c in CATEGORIES if by_category()[c]
    ]
    assert "decision: Known driver bug" in t.stdout
