"""Every device fault against the real driver on 7.2 + KASAN: the outcome is the recorded one
(``qaicmodel uml faults``; marker ``uml``; docs/findings.md F10-F15; the DMA continuation
faults have no finding: the driver handles them cleanly).

Needs the KASAN build (``qaicmodel uml build --kernel 7.2 --kasan``); a missing kernel
fails, it never skips.  The faults run in groups that share one guest boot (each group
under the per-test alarm of tests/uml/conftest.py); one group goes through the CLI with
``--json``.  After every group no process of its runs is left and no run directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qaicmodel.emu import faults as F
from qaicmodel.emu import kbuild
from qaicmodel.emu.faultrun import measure
from qaicmodel.emu.runner import RUNDIR_PREFIX

pytestmark = [
    pytest.mark.uml,
    pytest.mark.uml_trace(
        verdict=("inconclusive", "violation"),
        reason="fault episodes: the device breaks the protocol on purpose, and the driver is "
        "re-bound between episodes (its NNC sequence numbers start again at 0)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]

#: groups of faults that share a boot (each well under UML_TEST_TIMEOUT on this machine)
GROUPS: dict[str, list[str]] = {
    "nnc-malformed": [
        "nnc-trans-len-zero",
        "nnc-trans-len-short",
        "nnc-trans-overrun",
        "nnc-len-past-end",
        "nnc-count-too-big",
    ],
    "nnc-overflow": ["nnc-trans-past-4k", "nnc-probe-reply-oversize"],
    "nnc-schedule": [
        "nnc-late-reply",
        "nnc-slow-reply",
        "nnc-cont-unasked",
        "nnc-dma-cont-after-done",
        "nnc-dma-cont-past-end",
    ],
    "nnc-unsolicited": ["nnc-orphan-deactivate"],
    "data-path": ["dbc-completion-error", "dbc-rsp-never-drains"],
    "link-down": ["pci-link-down"],
}
#: a group's workload timeout (faultguest.py G3); the host's episode deadline is 60 s more
EPISODE_S = {"link-down": 15.0}
CLI_GROUP = ["mhi-sys-err", "soc-reset", "ssr-crash"]


def test_groups_cover_the_table() -> None:
    grouped = [n for g in GROUPS.values() for n in g] + CLI_GROUP
    assert sorted(grouped) == sorted(F.FAULTS), "every fault is measured by exactly one test"


def _kasan_or_fail() -> None:
    if kbuild.find_kernel("7.2", kasan=True) is None:
        pytest.fail(
            "no KASAN UML kernel 7.2 in the cache: run `qaicmodel uml build --kernel 7.2 "
            "--kasan` first",
            pytrace=False,
        )


def _no_leftovers(report: dict[str, Any]) -> None:
    for b in report["boots"]:
        assert b["leftover"] == [], b
        text = Path(b["console"]).read_text(errors="replace")
        m = re.search(r"init=(/\S+)/init\b", text)
        assert m, f"no init= in {b['console']}"
        rundir = m.group(1)
        assert not Path(rundir).exists(), f"run directory {rundir} left behind"
        ps = subprocess.run(
            ["ps", "-eo", "stat=,args="], capture_output=True, text=True, timeout=30
        ).stdout
        alive = [ln for ln in ps.splitlines() if rundir in ln and ln.split()[0][:1] not in "ZX"]
        assert alive == [], alive
        assert Path(rundir).name.startswith(RUNDIR_PREFIX)
        assert not Path(b["ctrl"]).exists(), f"control directory {b['ctrl']} left behind"


def _check_rows(report: dict[str, Any], names: list[str]) -> None:
    rows = {r["fault"]: r for r in report["rows"]}
    assert list(rows) == names
    for name, r in rows.items():
        f = F.fault(name)
        assert r["fired"], f"{name}: the fault never fired ({r['detail']})"
        assert r["outcome"] in (f.recorded, *f.also), (
            name,
            r["outcome"],
            r["detail"],
            r["console"],
        )
        assert r["seed"] == report["seed"]
        assert r["reproduce"] == f"qaicmodel uml faults --fault {name} --seed {report['seed']}"


def _check_dma(rows: dict[str, Any]) -> None:
    """The DMA continuation faults (faults.py F6): the driver really split the load, and
    what it did with the device's continuation requests."""
    from qaicmodel.emu.faultguest import SPLIT_PAGES

    after = rows["nnc-dma-cont-after-done"]
    d = after["device"]["dma"]
    # one split transfer of every page; each needless continuation got an abort
    # (abort_dma_cont), and the answer given after the last abort completed the MANAGE
    assert list(d["sent"].values()) == [SPLIT_PAGES * 4096], d
    assert d["asks"] == d["aborts"] == F.trigger("nnc-dma-cont-after-done", 0), d
    assert not d["held_unsent"], d
    assert [c for c in after["calls"] if c[0] == "load-split"] == [["load-split", "ok"]]
    past = rows["nnc-dma-cont-past-end"]
    d = past["device"]["dma"]
    assert past["detail"].startswith("EINVAL on load-split; device usable after"), past
    # the first message went out (4026 one-page segments), no second one and no abort:
    # the device kept the transfer open until the user's terminate
    assert list(d["sent"].values()) == [4026 * 4096], d
    assert (d["aborts"], d["closed_by"]) == (0, "TerminateToDev"), d
    assert past["calls"][:3] == [["status", "ok"], ["load", "ok"], ["unload", "ok"]]


#: like the other real-driver tests (tests/uml/conftest.py): one rerun, never more -- a
#: loaded host can stall a guest (the retry of faultrun.py R6 covers most of it)
@pytest.mark.flaky(reruns=1)
@pytest.mark.parametrize("group", list(GROUPS))
def test_fault_group_outcomes_are_the_recorded_ones(group: str, tmp_path: Path) -> None:
    _kasan_or_fail()
    names = GROUPS[group]
    rep = measure(
        names,
        seed=0,
        kernel="7.2",
        kasan=True,
        console_dir=tmp_path,
        episode_s=EPISODE_S.get(group, 60.0),
    )
    _check_rows(rep, names)
    rows = {r["fault"]: r for r in rep["rows"]}
    if group == "nnc-malformed":
        for n in names:
            assert rows[n]["detail"].startswith("EINVAL on "), rows[n]
    elif group == "nnc-overflow":
        # F10: the probe's 32-byte buffer overflowed; F11: the 4 KiB receive buffer overread
        probe = rows["nnc-probe-reply-oversize"]["detail"]
        assert "slab-out-of-bounds in decode_message" in probe and "Write of size" in probe
        past = rows["nnc-trans-past-4k"]["detail"]
        assert "slab-out-of-bounds in decode_message" in past and "Read of size 4088" in past
        # R3: after each splat the rest runs in a fresh boot
        assert len(rep["boots"]) == 2, rep["boots"]
    elif group == "nnc-schedule":
        assert rows["nnc-late-reply"]["detail"].startswith("ETIMEDOUT on status")
        # F15: the whole activate went out twice
        reqs = rows["nnc-cont-unasked"]["device"]["requests"]
        assert reqs.count("ActivateToDev") == 2, reqs
        assert rows["nnc-slow-reply"]["device"]["held_s"] > 0
        _check_dma(rows)
    elif group == "nnc-unsolicited":
        # F12: every later MANAGE is one reply behind: the check after the workload fails too
        # (in some runs the check itself does not end in time: a hang, F12)
        r = rows["nnc-orphan-deactivate"]
        d = r["detail"]
        assert ("ETIMEDOUT",) == tuple({c[1] for c in r["calls"] if c[1] != "ok"}), r["calls"]
        assert "not usable after (ETIMEDOUT)" in d or d == "stuck task: post-check status", d
        # F12, the device's view (faultboard.py FB1): the orphan reaches the host in the
        # deactivate's receive buffer, after the workload waited for and closed every BO;
        # the QSM keeps the channel (7.2's deactivate puts nothing on the wire for it) until
        # the driver's terminate, and the idle channel writes nothing into the freed FIFOs
        rel = r["device"]["released"]
        assert rel["delivered_step"] is not None and rel["qsm_listed"], rel
        assert rel["ended_by"] == "the driver's TerminateToDev", rel
        assert rel["active_steps"] > 0 and rel["written_bytes"] == 0, rel
        assert rel["req_reads"] == 0 and rel["dbc_dma_in_bytes"] == 0, rel
        assert "wrote 0 bytes into its freed FIFOs" in d, d
    elif group == "data-path":
        assert "livelock" in rows["dbc-rsp-never-drains"]["detail"]  # F13
        assert rows["dbc-completion-error"]["detail"].startswith("every call succeeded")  # F14
    else:
        # WAIT_BO times out; in some runs the guest stops answering altogether (F16)
        d = rows["pci-link-down"]["detail"]
        assert d == "WAIT_BO gave ETIMEDOUT" or d.startswith("stuck task"), d
    # the boot-time probe's lockdep report (F3) is the baseline, never a fault's
    assert all("wrappers" not in r["detail"] for r in rep["rows"])
    _no_leftovers(rep)


@pytest.mark.flaky(reruns=1)
def test_cli_json_reset_faults_recover(tmp_path: Path) -> None:
    _kasan_or_fail()
    args = [a for n in CLI_GROUP for a in ("--fault", n)]
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "qaicmodel",
            "uml",
            "faults",
            "--json",
            "--console-dir",
            str(tmp_path),
            *args,
        ],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "seed 0 (replay with --seed 0)" in p.stderr
    rep = json.loads(p.stdout)
    assert rep["format"] == "qaicmodel-uml-faults/1"
    assert (rep["kernel"], rep["kasan"], rep["seed"]) == ("7.2", True, 0)
    assert isinstance(rep["wall_s"], float) and rep["boots"] and rep["guest_args"]
    for r in rep["rows"]:
        assert set(r) >= {"fault", "outcome", "detail", "seed", "reproduce", "trigger", "when"}
        assert r["detail"].endswith("online again"), r
    _check_rows(rep, CLI_GROUP)
    _no_leftovers(rep)
