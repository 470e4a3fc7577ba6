"""`qaicmodel decode request|response|sem HEX [--json]` (aic100.rst field names)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qaicmodel.cli import main
from qaicmodel.errors import DecodeError
from qaicmodel.spec.dbc.describe import describe_request, describe_response, describe_sem
from qaicmodel.spec.dbc.wire import RequestElem, SemCmd, SemOp

SEED_KEYS = [
    "req_id",
    "seq_id",
    "pcie_dma_cmd",
    "pcie_dma_source_addr",
    "pcie_dma_dest_addr",
    "pcie_dma_len",
    "doorbell_addr",
    "doorbell_attr",
    "doorbell_data",
    "sem_cmd0",
    "sem_cmd1",
    "sem_cmd2",
    "sem_cmd3",
]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_request_json_has_every_seed_field(capsys: pytest.CaptureFixture[str]) -> None:
    e = RequestElem(
        req_id=0x1234,
        seq_id=5,
        pcie_dma_cmd=0x99,
        pcie_dma_source_addr=0x1000,
        pcie_dma_dest_addr=0x2000,
        pcie_dma_len=64,
        doorbell_addr=0x4000_0000,
        doorbell_attr=0x80,
        doorbell_data=1,
        sem_cmd0=SemCmd.build(op=SemOp.WAIT_EQ, index=1, value=3, presync=True).word,
    )
    rc, out, _ = _run(capsys, "decode", "request", e.pack().hex(), "--json")
    assert rc == 0
    d = json.loads(out)
    for k in SEED_KEYS:
        assert d[k] == getattr(e, k), k
    assert d["decoded"]["dir_name"] == "TO_DEV" and d["decoded"]["force_msi"]
    assert (
        d["decoded"]["sems"][0]["cmd_name"] == "WAIT_EQ" and d["decoded"]["sems"][0]["value"] == 3
    )
    assert d["violations"] == [] and d["reserved_bits_set"] == {}


def test_request_reports_reserved_bits_and_broken_rules(capsys: pytest.CaptureFixture[str]) -> None:
    e = RequestElem(pcie_dma_cmd=0x07, reserved1=0x10, doorbell_attr=0x80, doorbell_addr=0x3)
    rc, out, _ = _run(capsys, "decode", "request", e.pack().hex(), "--json")
    d = json.loads(out)
    assert rc == 0
    assert d["reserved_bits_set"] == {"pcie_dma_cmd": "0x4", "reserved1": "0x10"}
    assert {v["rule"] for v in d["violations"]} == {
        "REQ-DIR-ILLEGAL",
        "REQ-DB-MISALIGNED",
        "RESERVED-BITS-SET",
    }
    rc, text, _ = _run(capsys, "decode", "request", e.pack().hex())
    assert rc == 0 and "REQ-DIR-ILLEGAL" in text and "pcie_dma_source_addr: 0" in text


def test_response_and_sem(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "decode", "response", "34120000", "--json")
    d = json.loads(out)
    assert rc == 0 and d["req_id"] == 0x1234 and d["completion_code"] == 0
    assert d["decoded"]["success"]
    word = SemCmd.build(op=SemOp.RESERVED, index=3, value=7).word | (1 << 23)
    rc, out, _ = _run(capsys, "decode", "sem", word.to_bytes(4, "little").hex(), "--json")
    d = json.loads(out)
    assert rc == 0 and d["decoded"]["index"] == 3 and d["decoded"]["value"] == 7
    assert {v["rule"] for v in d["violations"]} == {"SEM-CMD-RESERVED", "RESERVED-BITS-SET"}


@pytest.mark.parametrize(
    "argv",
    [
        ["decode", "request", "00" * 63],
        ["decode", "request", "zz"],
        ["decode", "response", "123"],
        ["decode", "sem", "00"],
        ["decode", "response", ""],
        ["decode", "bogus", "00"],
    ],
)
def test_bad_input_is_exit_2_and_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse usage errors
        rc = int(e.code or 0)
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1


@given(st.binary(max_size=80))
def test_describers_raise_only_decode_error(raw: bytes) -> None:
    for fn, size in ((describe_request, 64), (describe_response, 4), (describe_sem, 4)):
        if len(raw) == size:
            d = fn(raw)
            json.dumps(d)
        else:
            with pytest.raises(DecodeError):
                fn(raw)
