"""``qaicmodel fuzz guest``: a bounded campaign on the real 7.2 driver (marker ``uml``).

Two generated scenarios (qaicmodel/testing/fuzz/hosts.py H2) run through ``qaicmodel
scenario FILE --host linux`` against the spec host's outcomes; with seed 2 the driver
agrees on both.  A missing kernel is a failure naming ``qaicmodel uml build``, never a skip.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qaicmodel.emu import kbuild

pytestmark = pytest.mark.uml
ROOT = Path(__file__).resolve().parents[2]


def test_a_bounded_guest_campaign_runs_the_real_driver(tmp_path: Path) -> None:
    if kbuild.find_kernel("7.2") is None:
        pytest.fail("no UML kernel 7.2 in the cache: run `qaicmodel uml build --kernel 7.2`")
    args = ["guest", "--examples", "2", "--seed", "2", "--budget", "90", "--json", "--quiet"]
    p = subprocess.run(
        [sys.executable, "-m", "qaicmodel", "fuzz", *args, "--db", str(tmp_path / "db")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=110,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rep = json.loads(p.stdout[p.stdout.index("\n{") :])
    assert rep["properties"] == ["guest[linux]"]
    assert rep["examples"] == 2 and rep["failures"] == []
    assert rep["behaviours"] >= 1  # each is "agrees:" + the outcomes of one scenario
