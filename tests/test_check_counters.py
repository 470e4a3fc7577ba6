"""The counter engine (oracle/check/counters.py CounterStates, L10) against the device-copy engine
(ChannelStates) on traces without request contents: same verdict, same rule, same line --
under the policies L10 covers.  Register values are drawn near the real ones so that
both conforming and violating traces come up."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from qaicmodel.oracle.check.checker import Checker, _policies
from qaicmodel.oracle.trace import dumps, parse_jsonl

POLICY_SETS = [
    {},
    {"ring-full-rule": "all-slots"},
    {"msi-while-masked": "lost"},
    {"response-ring-full": "drop", "ring-full-rule": "all-slots"},
    {"head-index-meaning": "last-consumed"},
    {"tail-out-of-range": "modulo", "fence-scope": "earlier-before-dma"},
]

_reg = st.sampled_from(["REQ_HP", "REQ_TP", "RSP_HP", "RSP_TP"])
_ev = st.one_of(
    st.builds(lambda r, v: {"ev": "readl", "dbc": 0, "reg": r, "val": v}, _reg, st.integers(0, 4)),
    st.builds(
        lambda r, v: {"ev": "writel", "dbc": 0, "reg": r, "val": v},
        st.sampled_from(["REQ_TP", "RSP_HP"]),
        st.integers(0, 4),
    ),
    st.builds(
        lambda k: {"ev": k, "vector": 1}, st.sampled_from(["msi", "irq_disable", "irq_enable"])
    ),
    st.just({"ev": "idle"}),
)


def verdict(
    events: list[dict[str, Any]], pols: dict[str, str], counters: bool, bound: int
) -> tuple[Any, ...]:
    t = parse_jsonl(
        dumps(
            {"policies": pols},
            [
                {"ev": "activate", "dbc": 0, "nelem": 4, "req_q": "0x1000", "rsp_q": "0x2000"},
                *events,
            ],
        )
    )
    ck = Checker(
        t.device,
        t.kinds(),
        _policies(t.device, None),
        nelem=None,
        max_states=bound,
        counters=counters,
    )
    r = ck.run(t.events)
    v = r.violation
    return r.verdict, v and v.rule, v and v.line


@given(st.lists(_ev, max_size=24), st.sampled_from(range(len(POLICY_SETS))))
def test_counters_agree_with_device_copies(events: list[dict[str, Any]], row: int) -> None:
    pols = POLICY_SETS[row]
    a = verdict(events, pols, True, 100_000)
    b = verdict(events, pols, False, 100_000)
    assert a == b, (pols, a, b)


def test_counters_are_used_for_register_traces() -> None:
    t = parse_jsonl(
        dumps(
            None,
            [
                {"ev": "activate", "dbc": 0, "nelem": 4, "req_q": "0x1000", "rsp_q": "0x2000"},
                {"ev": "writel", "dbc": 0, "reg": "REQ_TP", "val": 1},
            ],
        )
    )
    ck = Checker(t.device, t.kinds(), _policies(t.device, None))
    ck.run(t.events)
    assert type(ck.ch[0].sets).__name__ == "CounterStates"
