"""Soundness of ``qaicmodel check`` under every bound (issue #11, oracle/check C11).

Property: a trace recorded from a conforming co-simulation (reference or fast host, any
policy row the co-simulation machines use) never gets a violation -- whatever
``max_states`` is, and whatever part of the trace is kept (register-only, no request
contents, no interrupts, no responses: the views a real capture may give).  A trace of a
broken host gets, whenever it is a violation, one of the rules that host is known to
break (check.TRACE_VISIBILITY).  Bounded in CI by ``HYPOTHESIS_PROFILE=ci``.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from qaicmodel.impl.host import ImplHost
from qaicmodel.oracle.broken import BROKEN
from qaicmodel.oracle.check import TRACE_VISIBILITY, check, record_cosim
from qaicmodel.oracle.cosim import machine_policy_rows
from qaicmodel.oracle.trace import dumps, parse_jsonl
from qaicmodel.spec.host.reference import SpecHost

ROWS = machine_policy_rows()
BOUNDS = st.sampled_from([1, 2, 3, 5, 8, 20, 100, 4000])

#: views of a trace a capture may give (a conforming trace stays conforming in each)
VIEWS: dict[str, set[str] | None] = {
    "all": None,
    "registers": {"activate", "deactivate", "readl", "writel"},
    "no-contents": {
        "activate",
        "deactivate",
        "readl",
        "writel",
        "msi",
        "irq_disable",
        "irq_enable",
        "rsp",
        "idle",
    },
    "no-interrupts": {"activate", "deactivate", "readl", "writel", "req", "rsp", "complete"},
    "no-responses": {
        "activate",
        "deactivate",
        "readl",
        "writel",
        "req",
        "msi",
        "irq_disable",
        "irq_enable",
    },
}


def view(text: str, keep: set[str] | None) -> str:
    lines = text.splitlines()
    head = json.loads(lines[0])
    evs: list[dict[str, Any]] = [json.loads(x) for x in lines[1:]]
    if keep is not None:
        evs = [e for e in evs if e["ev"] in keep]
    return dumps(head.get("device"), evs)


@given(
    host=st.sampled_from([SpecHost, ImplHost]),
    seed=st.integers(0, 10**6),
    steps=st.integers(10, 160),
    row=st.one_of(st.none(), st.integers(0, len(ROWS) - 1)),
    lost=st.booleans(),
    bound=BOUNDS,
    which=st.sampled_from(sorted(VIEWS)),
)
def test_conforming_traces_never_violate(
    host: type, seed: int, steps: int, row: int | None, lost: bool, bound: int, which: str
) -> None:
    pols = dict(ROWS[row].chosen) if row is not None else {}
    if lost:
        pols["msi-while-masked"] = "lost"
    text, found = record_cosim(host, seed=seed, steps=steps, policies=pols)
    assume(not found)
    r = check(parse_jsonl(view(text, VIEWS[which])), max_states=bound)
    assert r.exit in (0, 3), (host.__name__, seed, steps, pols, bound, which, r.text())
    if r.exit == 3:
        assert r.inconclusive  # a reason is given


@given(
    cls=st.sampled_from(sorted(BROKEN, key=lambda c: c.__name__)),
    seed=st.integers(0, 10**6),
    steps=st.integers(10, 300),
    bound=BOUNDS,
)
def test_broken_host_traces_name_a_rule_it_breaks(
    cls: type, seed: int, steps: int, bound: int
) -> None:
    pols, rules, _events = TRACE_VISIBILITY[cls.__name__]
    text, _found = record_cosim(cls, seed=seed, steps=steps, policies=pols)
    r = check(parse_jsonl(text), max_states=bound)
    if r.exit == 1:
        assert r.violation is not None and r.violation.rule in rules, (seed, steps, r.text())
