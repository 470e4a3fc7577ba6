"""``qaicmodel hunt --host linux``: a witness on the real 7.2 driver (marker ``uml``).

The witness for ``head-index-meaning=last-consumed`` (the seed's literal reading of
"the latest item in the FIFO the device has consumed") replays on the real driver:
under ``next-slot`` the driver is correct, under ``last-consumed`` it frees a response
the device never wrote (HOST-RSP-OVERREAD), as the model's reference host does.  So the
Linux driver depends on the ``next-slot`` reading.  A missing kernel is a failure
naming ``qaicmodel uml build``, never a skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qaicmodel.cli import main
from qaicmodel.emu import kbuild
from qaicmodel.oracle.hunt.linux import linux_replay

pytestmark = pytest.mark.uml


@pytest.mark.uml_trace(
    verdict="violation",
    reason="under head-index-meaning=last-consumed the driver breaks HOST-RSP-OVERREAD: "
    "that is what the test shows",
)
def test_the_real_driver_depends_on_the_next_slot_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if kbuild.find_kernel("7.2") is None:
        pytest.fail("no UML kernel 7.2 in the cache: run `qaicmodel uml build --kernel 7.2`")
    target = "head-index-meaning=last-consumed"
    args = ["hunt", "--json", "--policy", target, "--seed", "1", "--episodes", "5"]
    main([*args, "--out", str(tmp_path)])
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["status"] == "witness"
    path = Path(row["witness"])
    out = linux_replay(path, json.loads(path.read_text()), timeout=180)
    literal, driver = out["sides"][1], out["sides"][0]
    assert driver["driver_correct"], driver  # matches_model is timing-dependent (linux.py L3)
    assert not literal["driver_correct"] and "HOST-RSP-OVERREAD" in literal["rules_broken"]
