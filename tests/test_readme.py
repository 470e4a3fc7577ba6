"""README.md keeps its promises: the two set-up commands, CI runs the test one, the example runs."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    block = README.split("## The two commands", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def test_two_setup_commands() -> None:
    cmds = _commands()
    assert len(cmds) == 2
    main_job, tests = cmds
    assert "pip install" in main_job and "qaicmodel conform" in main_job
    assert "pip install" in tests and "pytest" in tests and "proofs" in tests


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _commands()[1] in ci


def test_python_example_runs_and_prints_what_it_says() -> None:
    code = README.split("## Driving the device model from Python", 1)[1]
    code = code.split("```python", 1)[1].split("```", 1)[0]
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "req_id=7" in lines[0] and "completion_code=0" in lines[0]
    assert lines[1] == "1 True []"


def test_decode_example_reports_the_rules_it_names() -> None:
    m = re.search(r"qaicmodel decode request ([0-9a-f]{128})", README)
    assert m
    p = subprocess.run([sys.executable, "-m", "qaicmodel", "decode", "request", m.group(1),
                        "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "REQ-DIR-ILLEGAL" in p.stdout and "REQ-DB-MISALIGNED" in p.stdout


def test_check_example_exit_codes() -> None:
    for name, rc in (("conforming.jsonl", 0), ("overrun.jsonl", 1)):
        p = subprocess.run([sys.executable, "-m", "qaicmodel", "check",
                            str(ROOT / "examples" / "traces" / name)],
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert p.returncode == rc, (name, p.stdout, p.stderr)
    assert "HOST-REQ-OVERRUN at line 12" in README
