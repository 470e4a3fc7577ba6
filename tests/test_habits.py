"""Project habits (issue #8 item 7): dependencies, packaging files, test purposes."""

from __future__ import annotations

import ast
import configparser
import importlib.util
import pathlib
import subprocess
import sys

import qaicmodel

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = pathlib.Path(qaicmodel.__file__).parent
#: test support (imports hypothesis by design) and the guest programs (not Python modules
#: of the library proper)
_EXEMPT = ("testing/", "guest/")


def _modules() -> list[str]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel.startswith(_EXEMPT) or rel == "__main__.py":
            continue
        parts = ["qaicmodel", *path.relative_to(PKG).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out.append(".".join(parts))
    return out


def test_no_library_module_imports_z3_or_hypothesis() -> None:
    """Statically: only qaicmodel/testing/ may import hypothesis; nothing imports z3."""
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                top = n.split(".")[0]
                assert top != "z3", f"{rel} imports z3 (the proofs extra)"
                if not rel.startswith("testing/"):
                    assert top != "hypothesis", f"{rel} imports hypothesis (test support only)"


def test_importing_every_library_module_loads_neither_z3_nor_hypothesis() -> None:
    """Dynamically, in a fresh interpreter (what ``python3 -X importtime`` would show)."""
    code = (
        "import importlib, sys\n"
        f"for m in {_modules()!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('z3', 'hypothesis'))\n"
        "print(len(sys.modules), bad)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip().endswith("[]"), p.stdout


def test_import_qaicmodel_is_cheap_and_exports_the_public_surface() -> None:
    code = (
        "import sys, qaicmodel\n"
        "print(sorted(m for m in sys.modules if m.startswith('qaicmodel')))\n"
        "for n in qaicmodel.__all__: getattr(qaicmodel, n)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.splitlines()[0] == "['qaicmodel', 'qaicmodel.errors']"
    for name in (
        "Device",
        "Policies",
        "SpecHost",
        "ImplHost",
        "check",
        "run_conformance",
        "Finding",
        "QaicModelError",
    ):
        assert name in qaicmodel.__all__


def test_packaging_files() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["metadata"]["license"] == "GPL-2.0-only"
    lic = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "GNU GENERAL PUBLIC LICENSE" in lic and "Version 2, June 1991" in lic
    assert "z3" not in cfg["options"]["install_requires"]
    assert "z3-solver" in cfg["options.extras_require"]["proofs"]
    assert "py.typed" in cfg["options.package_data"]["qaicmodel"]
    assert (PKG / "py.typed").exists()
    assert (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").startswith("# Changelog")
    pre = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    assert "ruff-format" in pre and "mypy" in pre
    tox = (ROOT / "tox.ini").read_text(encoding="utf-8")
    for tool in (
        "ruff check qaicmodel proofs tests tools",
        "ruff format --check qaicmodel proofs tests tools",
        "mypy qaicmodel tests tools proofs",
    ):
        assert tool in tox


def test_every_test_file_has_a_purpose() -> None:
    """tests/conftest.py PURPOSE gives each file one of the registered markers."""
    spec = importlib.util.spec_from_file_location("_tests_conftest", ROOT / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    files = {p.name for p in (ROOT / "tests").glob("test_*.py")}
    assert files == set(conftest.PURPOSE), files ^ set(conftest.PURPOSE)
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    markers = {
        ln.split(":")[0].strip() for ln in cfg["tool:pytest"]["markers"].splitlines() if ln.strip()
    }
    assert set(conftest.PURPOSE.values()) <= markers
