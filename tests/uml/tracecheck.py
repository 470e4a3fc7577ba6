"""Every guest run's trace, judged (issue #10 item 4: a property of the test suite).

tests/uml/conftest.py points ``QAICMODEL_UML_TRACE_DIR`` (qaicmodel/emu/tracing.py T4) at a
fresh directory for every test, so every :func:`qaicmodel.emu.runner.run` with a model
board -- in the test's process or in a ``qaicmodel`` child it starts -- records its trace
there; after the test, :func:`judge` checks each with ``qaicmodel check``'s own function
(``qaicmodel.oracle.check.cli.check_file``) and the test fails when

  J1 a run was announced (``run-*.started``) but wrote no trace (a missing trace);
  J2 a trace's verdict is not ``conforming``, unless the test carries
     ``@pytest.mark.uml_trace(verdict="inconclusive"|"violation", reason=...)``
     naming the verdict its runs may have and why;
  J3 a trace with no events (the run never reached the boundary the trace records: no
     MSI, no NNC message, no ring register -- e.g. a guest that panics or powers off
     before MHI is up) has nothing to judge and passes; ``qaicmodel check`` calls it
     inconclusive (C9).

:func:`booting_tests` finds, without running them, the tests of a file that boot a guest
(they call the runner, the Linux scenario host, the differential, the policy table or the
UML bench, or start ``qaicmodel uml run|policies``, ``scenario --host linux`` or
``bench --uml``), directly or through a helper of the same module; the contracts test
(test_trace_contract.py) uses it to show every one of them is under this conftest.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

__all__ = ["judge", "booting_tests", "VERDICTS", "BOOT_CALLS"]

VERDICTS = ("conforming", "inconclusive", "violation")
#: call targets that boot a guest (the last name of the called expression)
BOOT_CALLS = frozenset(
    {
        "run_scenario_linux",
        "run_differential",
        "guest_rates",
        "boot_to_online",
        "measure_determinism",
        "run_twice",
        "run_once",  # qaicmodel.emu.determinism.run_once
        "datapath_rates",
    }
)
#: module.function calls that boot a guest
BOOT_ATTRS = frozenset({("runner", "run"), ("uml_bench", "run"), ("policy_table", "measure")})
#: (module, function) imported by name that boot a guest (every qaicmodel entry point that
#: reaches emu/runner.py's run; extend when a new one appears)
BOOT_IMPORTS = frozenset(
    {
        ("qaicmodel.emu.runner", "run"),
        ("qaicmodel.emu.faultrun", "measure"),
        ("qaicmodel.emu.policy_table", "measure"),
        ("qaicmodel.emu.policy_table", "table"),
        ("qaicmodel.emu.determinism", "run_once"),
        ("qaicmodel.emu.determinism", "measure_determinism"),
        ("qaicmodel.emu.bench", "datapath_rates"),
        ("qaicmodel.oracle.hunt.linux", "linux_replay"),
        ("qaicmodel.scenario.linux", "run_scenario_linux"),
        ("qaicmodel.emu.differential", "run_differential"),
    }
)


def judge(directory: Path, allowed: tuple[str, ...] = ("conforming",)) -> list[str]:
    """J1-J2 for every run recorded in ``directory``: one line per problem."""
    from qaicmodel.oracle.check.cli import check_file

    problems: list[str] = []
    for started in sorted(directory.glob("run-*.started")):
        meta_path = started.with_suffix(".json")
        if not meta_path.exists():
            problems.append(f"{started.stem}: a model-board run wrote no trace (J1)")
            continue
        meta = json.loads(meta_path.read_text())
        trace = directory / str(meta.get("trace", ""))
        if not meta.get("trace") or not trace.is_file():
            problems.append(f"{started.stem}: the trace file is missing (J1)")
            continue
        if not meta.get("events"):
            continue  # J3
        rep = check_file(str(trace))
        if rep.verdict not in allowed:
            why = rep.violation.as_dict() if rep.violation else rep.inconclusive[:2]
            problems.append(
                f"{started.stem} ({meta['board']}, {meta.get('events')} events): "
                f"`qaicmodel check` says {rep.verdict.upper()}: {why} (trace kept at {trace})"
            )
    return problems


def runs(directory: Path) -> list[dict[str, Any]]:
    """The run descriptions (``run-*.json``) in ``directory``."""
    return [json.loads(p.read_text()) for p in sorted(directory.glob("run-*.json"))]


def _boots_here(node: ast.AST, imported: frozenset[str] = frozenset()) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            f = n.func
            if isinstance(f, ast.Name) and (f.id in BOOT_CALLS or f.id in imported):
                return True
            if isinstance(f, ast.Attribute):
                if f.attr in BOOT_CALLS:
                    return True
                if isinstance(f.value, ast.Name) and (f.value.id, f.attr) in BOOT_ATTRS:
                    return True
        if isinstance(n, ast.List):
            words = [e.value for e in n.elts if isinstance(e, ast.Constant)]
            pairs = set(zip(words, words[1:], strict=False))
            if (
                ("uml", "run") in pairs
                or ("uml", "policies") in pairs
                or ("--host", "linux") in pairs
                or "--uml" in words
            ):
                return True
    return False


def _called_names(node: ast.AST) -> set[str]:
    return {
        n.func.id
        for n in ast.walk(node)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }


def booting_tests(path: Path) -> list[str]:
    """The test functions of ``path`` that boot a guest (directly or via a module helper)."""
    tree = ast.parse(path.read_text())
    imported = frozenset(
        (a.asname or a.name)
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom)
        for a in n.names
        if (n.module, a.name) in BOOT_IMPORTS
    )
    funcs: dict[str, ast.AST] = {}
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            funcs[n.name] = n
        elif isinstance(n, ast.ClassDef):
            for m in n.body:
                if isinstance(m, ast.FunctionDef):
                    funcs[f"{n.name}.{m.name}"] = m
    boots = {name for name, f in funcs.items() if _boots_here(f, imported)}
    while True:  # helpers of the same module, to a fixpoint
        more = {
            name
            for name, f in funcs.items()
            if name not in boots and _called_names(f) & {b.split(".")[-1] for b in boots}
        }
        if not more:
            break
        boots |= more
    return sorted(b for b in boots if b.split(".")[-1].startswith("test_"))
