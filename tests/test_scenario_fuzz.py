"""Fuzz the scenario parser: any bytes, any JSON document -> a Scenario or FormatError.

Rule under test: scenario.md "exit 2 when the file is malformed" -- the parser
(qaicmodel.load/parse) never raises anything but FormatError.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from qaicmodel.errors import FormatError
from qaicmodel.scenario.format import FORMAT, OPS, Scenario, load, parse

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["0x10", "0xffffffffffffffffff", "h", "u1", "ok", "EINVAL", "echo"])
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=8)
            | st.sampled_from(["op", "user", "dbc_id", "handle", "hdr", "entries", "sem0", "as"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)

_field_values = st.one_of(
    _scalars,
    st.lists(_scalars, max_size=3),
    st.dictionaries(
        st.sampled_from(
            ["count", "dbc_id", "handle", "dir", "size", "index", "cmd", "val", "kind", "in_addr"]
        ),
        _scalars,
        max_size=4,
    ),
)


@st.composite
def _near_valid(draw: st.DrawFn) -> dict:
    """Documents shaped like scenarios, with random field values (reaches deep checks)."""
    steps = [{"op": "open"}]
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(sorted(OPS)))
        fields = [f.name for f in OPS[op][0]] + ["expect", "as", "note", "bogus"]
        step: dict[str, Any] = {"op": op}
        for name in draw(st.lists(st.sampled_from(fields), max_size=4, unique=True)):
            step[name] = draw(_field_values)
        steps.append(step)
    doc: dict[str, Any] = {"format": FORMAT, "steps": steps}
    if draw(st.booleans()):
        doc["device"] = draw(
            st.dictionaries(
                st.sampled_from(
                    [
                        "family",
                        "num_dbc",
                        "single_msi",
                        "datapath_polling",
                        "sg_max_segment",
                        "policies",
                        "x",
                    ]
                ),
                _field_values,
                max_size=3,
            )
        )
    return doc


def _parse_or_format_error(doc: object) -> None:
    try:
        sc = parse(doc)
    except FormatError as e:
        assert e.one_line().startswith("malformed input: ")
        assert "\n" not in e.one_line()
    else:
        assert isinstance(sc, Scenario)


@given(st.binary(max_size=300))
def test_random_bytes_give_format_error(data: bytes) -> None:
    try:
        load(data)
    except FormatError:
        pass
    else:  # only a real scenario may parse; random bytes essentially never are one
        assert json.loads(data)["format"] == FORMAT


@given(_json)
def test_random_json_documents_give_format_error(doc: object) -> None:
    _parse_or_format_error(doc)
    _parse_or_format_error({"format": FORMAT, "steps": [doc]})


@given(_near_valid())
def test_near_valid_scenarios_give_scenario_or_format_error(doc: dict) -> None:
    _parse_or_format_error(doc)
    # the text form goes through the same path
    try:
        load(json.dumps(doc).encode())
    except FormatError:
        pass
