"""The CLI contract shared by every subcommand: exit 2 and one line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qaicmodel.cli import main, parse_hex
from qaicmodel.errors import DecodeError


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qaicmodel", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["decode", "request", "zz"],
        ["decode", "request", "00"],
        ["decode", "response", "0011223"],
        ["decode", "bogus-kind", "00"],
        ["ambiguities", "--no-such-flag"],
        ["no-such-command"],
    ],
)
def test_bad_input_is_exit_2_and_one_line(argv: list[str]) -> None:
    p = run(*argv)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert p.stdout == ""


def test_python_m_matches_console_entry(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["ambiguities", "--json"])
    assert rc == 0
    in_process = json.loads(capsys.readouterr().out)
    p = run("ambiguities", "--json")
    assert p.returncode == 0
    assert json.loads(p.stdout) == in_process


@pytest.mark.parametrize(
    "text,expected",
    [
        ("0x0011", b"\x00\x11"),
        ("00 11:22_33", b"\x00\x11\x22\x33"),
        ("AbCd", b"\xab\xcd"),
    ],
)
def test_parse_hex_accepts_common_dump_styles(text: str, expected: bytes) -> None:
    assert parse_hex(text) == expected


@pytest.mark.parametrize("text", ["", "0x", "abc", "0g", "12 3"])
def test_parse_hex_rejects_with_decode_error(text: str) -> None:
    with pytest.raises(DecodeError):
        parse_hex(text)
