"""README.md keeps its promises: it runs the commands it quotes and compares their output.

The two set-up commands cannot run inside the suite (they install and run the suite);
the test checks that CI runs the test one verbatim and that its parts are the real
ones (the extras exist in setup.cfg, the subcommands exist).  Everything else README
shows -- the Python example, each line of "Examples", the command table, the conform
replay promise -- is run here and its output compared with what README says.
"""

from __future__ import annotations

import configparser
import pathlib
import re
import shlex
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _qaicmodel(
    *args: str, timeout: float = 300, cwd: pathlib.Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qaicmodel", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


def _tracked_state() -> str:
    """``git status`` of the checkout (what a test must leave as it found it)."""
    p = subprocess.run(
        [
            "git",
            "status",
            "--porcelain",
            "--untracked-files=all",
            "--",
            "hunt-witnesses",
            "examples",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    return p.stdout if p.returncode == 0 else ""


def _block(after: str, lang: str) -> str:
    return README.split(after, 1)[1].split(f"```{lang}", 1)[1].split("```", 1)[0]


def _commands() -> list[str]:
    block = _block("## The two commands", "sh")
    return [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def test_two_setup_commands() -> None:
    cmds = _commands()
    assert len(cmds) == 2
    main_job, tests = cmds
    assert main_job == "python3 -m pip install -q -e . && qaicmodel conform"
    parts = [p.strip() for p in tests.split("&&")]
    assert parts[0] == "python3 -m pip install -q -e '.[test,proofs]'"
    assert parts[1].startswith("qaicmodel uml build") and parts[2:] == [
        "python3 -m pytest",
        "python3 -m proofs",
    ]
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    extras = cfg["options.extras_require"]
    assert "test" in extras and "proofs" in extras and "z3-solver" in extras["proofs"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _commands()[1] in ci.splitlines()


def test_python_example_runs_and_prints_what_it_says() -> None:
    """The example's ``print`` lines end in a comment giving their output."""
    code = _block("## Driving the device model from Python", "python")
    assert "from qaicmodel import " in code  # the public surface (qaicmodel/__init__.py)
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert p.returncode == 0, p.stderr
    said = [ln.split("#", 1)[1].strip() for ln in code.splitlines() if ln.startswith("print(")]
    got = p.stdout.splitlines()
    assert len(got) == len(said) == 2
    # "req_id=7, code 0": the fields of the decoded response
    assert "req_id=7" in got[0] and "completion_code=0" in got[0] and said[0] == "req_id=7, code 0"
    assert got[1] == said[1]


def _examples() -> list[tuple[str, str]]:
    out = []
    for ln in _block("\nExamples:\n", "sh").splitlines():
        if not ln.startswith("qaicmodel "):
            continue
        cmd, _, note = ln.partition("#")
        out.append((cmd.strip(), note.strip()))
    return out


def test_every_example_command_runs_as_described(tmp_path: pathlib.Path) -> None:
    """Each line of README's "Examples": exit 0 unless the comment says ``exit N``; an
    ``exit 1: RULE at line N`` comment must be the verdict line; piping to a pager aside."""
    examples = _examples()
    assert len(examples) >= 5
    before = _tracked_state()
    work = tmp_path / "user"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    for cmd, note in examples:
        argv = shlex.split(cmd.split("|", 1)[0])[1:]
        p = _qaicmodel(*argv, cwd=work)
        m = re.match(r"exit (\d+)(?:: (\S+) at line (\d+))?", note)
        want = int(m.group(1)) if m else 0
        assert p.returncode == want, (cmd, p.returncode, p.stderr[-2000:])
        assert p.stdout.strip(), cmd
        if m and m.group(2):
            assert re.search(rf"^line {m.group(3)} \(\w+\): {m.group(2)}:", p.stdout, re.M), (
                cmd,
                p.stdout,
            )
    # run where a user would (examples/ beside them); what they write stays there, the
    # checkout is untouched (the hunt example once rewrote hunt-witnesses/ in the repo)
    assert _tracked_state() == before
    assert list((work / "hunt-witnesses").glob("*.json")), "the hunt example wrote no witness"


def test_decode_example_reports_the_rules_it_names() -> None:
    """ "illegal direction 3 and a misaligned 32-bit doorbell are reported as rules broken"."""
    m = re.search(r"qaicmodel decode request ([0-9a-f]{128})", README)
    assert m
    p = _qaicmodel("decode", "request", m.group(1), "--json")
    assert p.returncode == 0, p.stderr
    assert "REQ-DIR-ILLEGAL" in p.stdout and "REQ-DB-MISALIGNED" in p.stdout


def test_check_example_exit_codes() -> None:
    """The command table: "0 conforming, 1 a violation ... 2 malformed"."""
    for name, rc in (("conforming.jsonl", 0), ("overrun.jsonl", 1)):
        p = _qaicmodel("check", str(ROOT / "examples" / "traces" / name))
        assert p.returncode == rc, (name, p.stdout, p.stderr)
    p = _qaicmodel("check", str(ROOT / "README.md"))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1


def test_the_command_table_lists_the_real_subcommands() -> None:
    table = README.split("## Command line", 1)[1].split("\n\n", 2)[1]
    listed = set(re.findall(r"^\| `qaicmodel (\w+)", table, re.M))
    p = _qaicmodel("--help")
    assert p.returncode == 0
    real = set(re.findall(r"^    (\w+)", p.stdout, re.M))
    assert listed and listed <= real, (listed, real)


def test_conform_prints_its_seed_and_replays_exactly(tmp_path: pathlib.Path) -> None:
    """ "`qaicmodel conform` prints its seed; `--seed N --episodes M` replays a run exactly"."""
    runs = [
        _qaicmodel(
            "conform", "--seed", "3", "--episodes", "1", "--json", "--out", str(tmp_path / str(i))
        )
        for i in range(2)
    ]
    for p in runs:
        assert p.returncode == 0, p.stderr[-2000:]
        assert "seed 3" in p.stderr
    import json

    a, b = (json.loads(p.stdout) for p in runs)
    for rep in (a, b):
        rep.pop("seconds", None)
        rep.pop("time", None)
    assert a.get("steps") == b.get("steps") and a.get("failures") == b.get("failures")
