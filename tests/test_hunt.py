"""``qaicmodel hunt``: witnesses that replay and differ, honest "none", exact seeds, bad args."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qaicmodel.cli import main
from qaicmodel.oracle.hunt.run import NO_DIFFERENCE


def _hunt(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    rc = main(["hunt", "--json", *args])
    out = capsys.readouterr().out
    return rc, json.loads(out)


def _row(rep: dict[str, Any], target: str) -> dict[str, Any]:
    return next(r for r in rep["rows"] if r["target"] == target)


def test_known_policy_yields_a_witness_that_replays_and_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = "head-index-meaning=last-consumed"
    rc, rep = _hunt(
        capsys, "--policy", target, "--seed", "1", "--episodes", "5", "--out", str(tmp_path)
    )
    row = _row(rep, target)
    assert row["status"] == "witness", row
    # exit 1 exactly when the host is incorrect under some side (it depends on a reading)
    assert rc == (1 if row["host_correct"] is False else 0)
    path = Path(row["witness"])
    doc = json.loads(path.read_text())
    w = doc["witness"]
    i = w["first_difference"]["step"]
    a, b = (s["results"][i] for s in w["sides"])
    assert a != b and w["first_difference"]["kind"] == row["kind"]
    assert doc["device"]["policies"] == {"head-index-meaning": "next-slot"}
    assert row["steps"] <= row["steps_before_shrink"]
    # the file is an ordinary scenario: it holds as written, and shows the difference
    assert main(["scenario", str(path)]) == 0
    if row["kind"] not in ("perf stats", "dbc id"):  # no scenario expect for those (W1)
        assert main(["scenario", str(path), "--policy", target]) == 1
    capsys.readouterr()
    assert main(["hunt", "--replay", str(path)]) == 0
    assert "holds" in capsys.readouterr().out


def test_a_tampered_witness_does_not_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = "head-index-meaning=last-consumed"
    _hunt(capsys, "--policy", target, "--seed", "1", "--episodes", "5", "--out", str(tmp_path))
    path = next(tmp_path.glob("hunt-*.json"))
    doc = json.loads(path.read_text())
    i = doc["witness"]["first_difference"]["step"]
    doc["witness"]["sides"][1]["results"][i] = {"result": "ok"}  # claim no difference
    path.write_text(json.dumps(doc))
    assert main(["hunt", "--replay", str(path)]) == 1
    assert "DOES NOT HOLD" in capsys.readouterr().out


def test_policy_without_host_visible_difference_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """completion-code-values: the driver only logs a non-zero status, so no uapi-level
    outcome can tell the codes apart; the hunt must say so, not invent a witness."""
    target = "completion-code-values=one"
    rc, rep = _hunt(
        capsys, "--policy", target, "--seed", "2", "--episodes", "4", "--out", str(tmp_path)
    )
    row = _row(rep, target)
    assert row["status"] == "none" and row["difference"] == NO_DIFFERENCE
    assert row["episodes"] == 4 and rc == 0
    assert list(tmp_path.glob("*.json")) == []


def test_seed_replays_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--policy", "sem-underflow", "--policy", "qsm-bare-activate-nsps"]
    args += ["--seed", "11", "--episodes", "6"]
    _, one = _hunt(capsys, *args, "--out", str(tmp_path / "a"))
    _, two = _hunt(capsys, *args, "--out", str(tmp_path / "b"))

    def strip(rep: dict[str, Any]) -> list[dict[str, Any]]:
        keep = ("target", "status", "difference", "episodes", "steps", "episode", "kind")
        return [{k: r.get(k) for k in keep} for r in rep["rows"]]

    assert strip(one) == strip(two) and one["seed"] == two["seed"] == 11
    assert any(r["status"] == "witness" for r in one["rows"])
    for f in (tmp_path / "a").glob("*.json"):
        assert f.read_text() == (tmp_path / "b" / f.name).read_text()


def test_pairs_report_interactions_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, rep = _hunt(
        capsys,
        "--pairs",
        "--policy",
        "qsm-bare-activate-nsps",
        "--policy",
        "response-ring-full",
        "--seed",
        "5",
        "--episodes",
        "2",
        "--out",
        str(tmp_path),
    )
    pair_rows = [r for r in rep["rows"] if r["pair"]]
    assert [r["target"] for r in pair_rows] == [
        "qsm-bare-activate-nsps=all-idle+response-ring-full=drop"
    ]
    for r in pair_rows:
        if r["status"] == "witness":  # an interaction: neither single change differs
            doc = json.loads(Path(r["witness"]).read_text())
            i = doc["witness"]["first_difference"]["step"]
            res = [s["results"][i] for s in doc["witness"]["sides"]]
            assert res[0] == res[1] == res[2] != res[3]


@pytest.mark.parametrize(
    "args",
    [
        ["--policy", "no-such-policy"],
        ["--policy", "sem-underflow=sometimes"],
        ["--policy", "sem-underflow=saturate"],  # the default: nothing to compare
        ["--budget", "0"],
        ["--episodes", "0"],
        ["--pairs", "--policy", "sem-underflow"],
        ["--host", "no.such.module:Host"],
        ["--budget", "soon"],
    ],
)
def test_bad_arguments_exit_2(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        rc = main(["hunt", "--out", str(tmp_path), *args])
    except SystemExit as e:  # argparse's usage errors (cli._Parser) exit 2 themselves
        rc = int(e.code or 0)
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("qaicmodel") and "Traceback" not in err and err.count("\n") == 1


def test_replay_of_a_file_without_witness_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"format": "qaicmodel-scenario/1", "steps": []}))
    assert main(["hunt", "--replay", str(plain)]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "format": "qaicmodel-scenario/1",
                "steps": [],
                "witness": {"format": "qaicmodel-hunt-witness/1", "sides": [{}]},
            }
        )
    )
    assert main(["hunt", "--replay", str(bad)]) == 2
    assert "witness.sides" in capsys.readouterr().err


def test_a_one_element_queue_under_accept_1_is_a_witness_not_a_model_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The driver passes queue size 1 (7.2 qaic_control.c encode_activate checks only 0
    and overflow), so under ``qsm-min-queue-size=accept-1`` the channel is activated and
    the host model must take it; it raised "nelem must be an int >= 2" (MODEL-ERR)."""
    target = "qsm-min-queue-size=accept-1"
    _rc, rep = _hunt(
        capsys, "--policy", target, "--seed", "1", "--episodes", "7", "--out", str(tmp_path)
    )
    row = _row(rep, target)
    assert row["status"] == "witness", row
    assert row["host_correct"] is not False, row


@pytest.mark.unit
def test_linux_sides_wait_for_every_executed_bo_before_the_guest_closes() -> None:
    """L1b: on the real driver a plain ``run`` does not drain; the guest must wait.

    A witness that ends with ``run`` (the model drains there) otherwise lets the guest
    close its fd before the driver's IRQ thread consumed the response, and the rule
    the witness shows is never broken (CI, 2026-12-02: the last-consumed side ran clean
    twice in a row).
    """
    from qaicmodel.oracle.hunt.linux import linux_steps

    steps: list[dict[str, Any]] = [
        {"op": "open", "user": "u0"},
        {"op": "activate", "user": "u0", "queue_size": 16, "as": "d0"},
        {"op": "create_bo", "user": "u0", "size": 4096, "as": "b3"},
        {"op": "create_bo", "user": "u0", "size": 4096, "as": "b4"},
        {"op": "execute", "user": "u0", "dbc_id": "d0", "handles": ["b3"], "thread": "t5"},
        {
            "op": "partial_execute",
            "user": "u0",
            "dbc_id": "d0",
            "entries": [{"handle": "b4", "resize": 0}, {"handle": "b3"}],
        },
        {"op": "run", "schedule": ["x"]},
    ]
    out = linux_steps(steps)
    assert out[: len(steps) - 1] == steps[:-1] and out[len(steps) - 1] == {"op": "run"}
    extra = out[len(steps) :]
    assert extra[0] == {"op": "join", "thread": "t5"}
    waits = [(s["op"], s["handle"], s["dbc_id"], s["user"]) for s in extra[1:]]
    assert waits == [("wait", "b3", "d0", "u0"), ("wait", "b4", "d0", "u0")]
    assert all(s["timeout_ms"] > 0 for s in extra[1:])
    # a BO closed, or a channel or user gone, after its execute is not waited for
    gone = steps + [
        {"op": "gem_close", "user": "u0", "handle": "b4"},
        {"op": "deactivate", "user": "u0", "dbc_id": "d0"},
    ]
    assert [s for s in linux_steps(gone)[len(gone) :] if s["op"] == "wait"] == []
    closed = steps[:-1] + [{"op": "gem_close", "user": "u0", "handle": "b4"}]
    waited = [s["handle"] for s in linux_steps(closed)[len(closed) :] if s["op"] == "wait"]
    assert waited == ["b3"]


def test_a_host_correct_first_witness_does_not_end_the_hunt_for_a_host_break(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """S5: under seed 1280181454 the first difference of head-index-meaning is an errno
    the spec host handles correctly under both readings, but the host does depend on the
    next-slot reading (F16); the hunt must go on looking and exit 1 (the clean-clone CI
    run of 2026-12-02 exited 0 on this seed, against the README's example)."""
    target = "head-index-meaning=last-consumed"
    rc, rep = _hunt(
        capsys,
        *("--policy", target, "--seed", "1280181454", "--episodes", "6"),
        *("--out", str(tmp_path)),
    )
    row = _row(rep, target)
    assert row["status"] == "witness" and row["kind"] == "errno", row
    assert all(c["correct"] is True for c in row["host_checks"])  # the first witness
    brk = row["host_break"]
    assert row["host_correct"] is False and rc == 1
    assert rep["host_depends_on_a_reading"] == [target]
    assert any(c["correct"] is False for c in brk["host_checks"])
    assert brk["episode"] > row["episode"] and brk["steps"] <= brk["steps_before_shrink"]
    path = Path(brk["witness"])
    assert path.name == "hunt-head-index-meaning=last-consumed.host.json"
    assert main(["hunt", "--replay", str(path)]) == 0
    assert "holds" in capsys.readouterr().out
    # the table says which witness shows what
    args = ["hunt", "--policy", target, "--seed", "1280181454", "--episodes", "6"]
    assert main([*args, "--out", str(tmp_path / "t")]) == 1
    out = capsys.readouterr().out
    assert "host correct on this witness under every alternative" in out
    assert "later witness: host DEPENDS ON ONE READING" in out
    assert "hunt-head-index-meaning=last-consumed.host.json" in out


def test_echo_claims_end_once_the_episode_changes_a_semaphore() -> None:
    """generate.py G6: after a G3 mutation, an nsp or a G4 pair, no read_bo carries
    conform's expect_hex (the echo's ordering may have changed); before, they do."""
    import random

    from qaicmodel.oracle.hunt.generate import HuntExplorer
    from qaicmodel.oracle.hunt.search import single_targets
    from qaicmodel.oracle.hunt.side import NotRunnable, Sides, plain

    target = single_targets(["sem-overflow"])[0]
    kept = after = 0
    for seed in range(30):
        gen = HuntExplorer(random.Random(seed), threads=True)
        sides = Sides(gen.cfg, target.choices, None)
        steps: list[dict[str, Any]] = []
        todo = gen.first_steps()
        for _ in range(40):
            d = todo.pop(0) if todo else gen.next_move()
            if d["op"] == "read_bo":
                if gen.sems_changed:
                    assert "expect_hex" not in d, (seed, len(steps), d)
                    after += 1
                else:
                    kept += "expect_hex" in d
            steps.append(d)
            try:
                res = sides.step(len(steps) - 1, d, steps)
            except NotRunnable:
                break
            gen.observe(plain(d), res[0])
    assert kept > 0 and after > 0, (kept, after)


def test_a_host_failing_under_every_side_is_no_host_break() -> None:
    """search.py S5: the host must fail under one side and pass under another."""
    from qaicmodel.oracle.hunt import search

    target = search.single_targets(["sem-overflow"])[0]
    verdicts: list[list[bool | None]] = []

    def fake(_t: Any, _c: Any, _s: Any, _sd: Any, _h: Any, _r: Any) -> list[dict[str, Any]]:
        return [{"correct": v} for v in verdicts[-1]]

    mp = pytest.MonkeyPatch()
    mp.setattr(search, "side_checks", fake)
    try:
        accept = search.host_breaks(target, object, None)
        out = []
        for v in ([False, False], [True, True], [False, True], [None, False], [True, False]):
            verdicts.append(list(v))
            out.append(accept(None, [], None))  # type: ignore[arg-type]
    finally:
        mp.undo()
    assert out == [False, False, True, False, True]


def test_a_driver_finding_is_the_drivers_not_the_host_being_incorrect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """search.py S4, as conform: CTRL-FAULT (a DRIVER_FINDINGS invariant) leaves the host
    correct and is reported as ``driver_finding``; any other failure does not."""
    from qaicmodel.oracle import shrink
    from qaicmodel.oracle.hunt import search
    from qaicmodel.oracle.hunt.side import Sides
    from qaicmodel.oracle.pair import Failure
    from qaicmodel.spec.dbc.config import DeviceConfig

    target = search.single_targets(["sem-overflow"])[0]
    answers = [
        Failure("CTRL-FAULT", 3, "activate", "CTRL-QSM-ONLY under fault nnc-wrong-seq"),
        Failure("CONF-LOST", 4, "wait", "BO 2 of user 0"),
    ]
    monkeypatch.setattr(shrink, "replay", lambda *a: answers.pop(0))
    cfg = DeviceConfig()
    checks = search.side_checks(target, cfg, [], Sides(cfg, target.choices, None), object, None)
    assert [c["correct"] for c in checks] == [True, False]
    assert "CTRL-FAULT" in checks[0]["driver_finding"] and checks[0]["failure"] is None
    assert "driver_finding" not in checks[1] and "CONF-LOST" in checks[1]["failure"]


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).resolve().parents[1] / "hunt-witnesses").glob("*.json")),
    ids=lambda p: p.name,
)
def test_the_witnesses_docs_hunt_md_cites_still_hold(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hunt", "--replay", str(path)]) == 0
    assert "holds" in capsys.readouterr().out
