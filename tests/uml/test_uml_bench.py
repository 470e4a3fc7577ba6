"""`qaicmodel bench --uml` runs end to end and reports what it says (not a timed test)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qaicmodel.emu import kbuild

pytestmark = pytest.mark.uml


def test_bench_uml_reports_ratios_to_the_socket_round_trip() -> None:
    if kbuild.find_kernel("7.2") is None:
        pytest.fail("no 7.2 kernel: run `qaicmodel uml build --kernel 7.2` first")
    p = subprocess.run(
        [sys.executable, "-m", "qaicmodel", "bench", "--uml", "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    for key in ("socket_rtt_us", "guest_mmio_read_us", "guest_cfg_read_us", "boot_to_online_s"):
        assert r[key] > 0, (key, r)
    # the ratios are computed from the same run's figures
    assert r["mmio_over_socket_rtt"] == pytest.approx(r["guest_mmio_read_us"] / r["socket_rtt_us"])
    assert r["guest_mmio_reads_per_s"] == pytest.approx(1e6 / r["guest_mmio_read_us"])
    assert r["boot_to_online_in_socket_rtts"] == pytest.approx(
        r["boot_to_online_s"] * 1e6 / r["socket_rtt_us"]
    )
