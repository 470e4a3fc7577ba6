"""``qaicmodel hunt --host linux``: a witness on the real 7.2 driver (marker ``uml``).

The recorded witness for ``head-index-meaning=last-consumed`` (the seed's literal reading of
"the latest item in the FIFO the device has consumed") replays on the real driver:
under ``next-slot`` the driver is correct, under ``last-consumed`` it frees a response
the device never wrote (HOST-RSP-OVERREAD), as the model's reference host does.  So the
Linux driver depends on the ``next-slot`` reading.  A missing kernel is a failure
naming ``qaicmodel uml build``, never a skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qaicmodel.emu import kbuild
from qaicmodel.oracle.hunt.linux import linux_replay
from qaicmodel.oracle.hunt.witness import read_witness, replay_witness

#: found by ``qaicmodel hunt --budget 900 --seed 13`` (2026-12-02), kept as it was written
WITNESS = Path(__file__).resolve().parent / "data" / "hunt-head-index-meaning=last-consumed.json"

pytestmark = pytest.mark.uml


@pytest.mark.uml_trace(
    verdict="violation",
    reason="under head-index-meaning=last-consumed the driver breaks HOST-RSP-OVERREAD: "
    "that is what the test shows",
)
def test_the_real_driver_depends_on_the_next_slot_reading() -> None:
    if kbuild.find_kernel("7.2") is None:
        pytest.fail("no UML kernel 7.2 in the cache: run `qaicmodel uml build --kernel 7.2`")
    path = WITNESS
    d = read_witness(path)
    assert replay_witness(d, None)["holds"]  # the model still gives the recorded outcomes
    out = linux_replay(path, d, timeout=180)
    literal, driver = out["sides"][1], out["sides"][0]
    assert driver["driver_correct"], driver  # matches_model is timing-dependent (linux.py L3)
    assert not literal["driver_correct"] and "HOST-RSP-OVERREAD" in literal["rules_broken"]
