"""Every broken host of qaicmodel.oracle.broken fails ``qaicmodel check`` on some recorded
trace (issue #11 item 4), with a rule check.TRACE_VISIBILITY names for it; the trace
events each needs are the ones that table lists (trace extensions ``complete``/``idle``
for the completion and missed-event families)."""

from __future__ import annotations

import json

import pytest

from qaicmodel.oracle.broken import BROKEN
from qaicmodel.oracle.check import RULES, TRACE_VISIBILITY, check, record_cosim
from qaicmodel.oracle.trace import parse_jsonl

NAMES = sorted(c.__name__ for c in BROKEN)


def test_every_registered_broken_host_is_described() -> None:
    assert set(TRACE_VISIBILITY) == set(NAMES)
    for _pols, rules, events in TRACE_VISIBILITY.values():
        assert rules and events
        assert all(r in RULES for r in rules)


@pytest.mark.parametrize(
    "cls",
    sorted(BROKEN, key=lambda c: str(getattr(c, "__name__", c))),
    ids=lambda c: getattr(c, "__name__", str(c)),
)
def test_broken_host_fails_check_on_a_recorded_trace(cls: type) -> None:
    pols, rules, _events = TRACE_VISIBILITY[cls.__name__]
    for seed in range(40):
        text, _found = record_cosim(cls, seed=seed, steps=300, policies=pols)
        r = check(parse_jsonl(text))
        if r.exit == 1:
            assert r.violation is not None and r.violation.rule in rules, r.text()
            return
    pytest.fail(f"{cls.__name__}: no recorded trace in 40 seeds fails check")


def test_missed_event_needs_the_idle_event() -> None:
    """Without ``idle`` the NoRecheckHost's stranded response is not visible (the report
    says the family was not checked)."""
    cls = next(c for c in BROKEN if c.__name__ == "NoRecheckHost")
    pols = TRACE_VISIBILITY["NoRecheckHost"][0]
    for seed in range(40):
        text, _found = record_cosim(cls, seed=seed, steps=300, policies=pols)
        if check(parse_jsonl(text)).exit != 1:
            continue
        lines = [x for x in text.splitlines() if json.loads(x).get("ev") != "idle"]
        r = check(parse_jsonl("\n".join(lines) + "\n"))
        assert r.exit != 1
        assert r.families["missed-events"]["status"] == "not-checked"
        return
    pytest.fail("no NoRecheckHost trace failed")
