"""Policies are declared in one place, eagerly, and resolved to typed values (issue #8 item 2)."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import qaicmodel
from qaicmodel.errors import PolicyError
from qaicmodel.spec.policies import (
    REGISTRY,
    SEM_UNDERFLOW,
    Alt,
    Policies,
    Policy,
    SemUnderflow,
)

PKG = pathlib.Path(qaicmodel.__file__).parent


def _policy(**kw: object) -> Policy[Alt]:
    base: dict[str, object] = dict(
        id="t-x",
        area="t",
        source="s",
        quote="q",
        question="?",
        alternatives={"a-b": "one", "c": "two"},
        default="a-b",
        rationale="r",
    )
    base.update(kw)
    return Policy(**base)  # type: ignore[arg-type]


def test_a_fresh_interpreter_with_only_the_policies_package_knows_every_policy() -> None:
    code = (
        "import sys; from qaicmodel.spec.policies import Policies, REGISTRY; "
        "p = Policies({'host-attach-hdr-size': 'checked', 'nnc-version-minor': 'any-minor'}); "
        "assert p['host-attach-hdr-size'] == 'checked'; "
        "print(sorted(REGISTRY)); "
        "print(sorted(m for m in sys.modules if m.startswith('qaicmodel.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    ids, mods = out.stdout.splitlines()
    from qaicmodel.spec.policies import board, control, dbc, host, silent

    exported = [getattr(m, n) for m in (dbc, control, host, silent) for n in m.__all__]
    flat = [x for e in exported for x in (e if isinstance(e, tuple) else (e,))]
    declared = {x.id for x in flat if isinstance(x, Policy)} | set(board.POLICY_IDS)
    assert set(ast.literal_eval(ids)) == declared and declared <= set(REGISTRY)
    loaded = set(ast.literal_eval(mods))
    assert loaded <= {
        "qaicmodel.errors",
        "qaicmodel.spec",
        "qaicmodel.spec.policies",
        "qaicmodel.spec.policies._base",
        "qaicmodel.spec.policies.dbc",
        "qaicmodel.spec.policies.control",
        "qaicmodel.spec.policies.board",
        "qaicmodel.spec.policies.host",
        "qaicmodel.spec.policies.silent",
    }, loaded  # no model module was needed


def test_the_registry_is_complete_before_any_model_module_is_imported() -> None:
    """Nothing outside qaicmodel/spec/policies/ registers a policy (the emulator aside)."""
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        if rel.startswith(("spec/policies/", "emu/")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert (
                    node.func.id != "register"
                    or not node.args
                    or not (
                        isinstance(node.args[0], ast.Call)
                        and getattr(node.args[0].func, "id", "") == "Policy"
                    )
                ), rel


def test_choices_resolve_to_enum_members() -> None:
    p = Policies({"sem-underflow": "block"})
    assert p[SEM_UNDERFLOW] is SemUnderflow.BLOCK and p["sem-underflow"] is SemUnderflow.BLOCK
    assert Policies()[SEM_UNDERFLOW] is SemUnderflow.SATURATE
    assert SemUnderflow.BLOCK == "block" and p.chosen == {"sem-underflow": "block"}
    for pol in REGISTRY.values():
        assert [m.value for m in pol.kind] == list(pol.alternatives)
        assert issubclass(pol.kind, Alt) and pol.default_alt.value == pol.default


def test_a_misspelt_alternative_fails_at_declaration() -> None:
    class Kind(Alt):
        A_B = "a-b"
        C = "cc"  # misspelt

    with pytest.raises(PolicyError):
        _policy(kind=Kind)
    with pytest.raises(PolicyError):
        _policy(default="a_b")
    ok = _policy()  # a plugin's policy: the enum is built from the keys
    assert ok.kind("a-b").name == "A_B"


def test_a_dispatch_table_must_cover_every_alternative() -> None:
    assert SEM_UNDERFLOW.table({"saturate": 0, "wrap": 1, "block": 2})[SemUnderflow.WRAP] == 1
    with pytest.raises(PolicyError):
        SEM_UNDERFLOW.table({"saturate": 0, "wrap": 1})
    with pytest.raises(PolicyError):
        SEM_UNDERFLOW.table({"saturate": 0, "wrap": 1, "blok": 2})


def _string_compares(tree: ast.AST) -> list[int]:
    """Lines comparing a policy lookup (``x[...]`` on something named *polic* or ``_p``, or
    ``x["<a registered policy id>"]``, or a ``.<policy>`` field of ``_p``) with a string
    literal."""
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        if not any(isinstance(s, ast.Constant) and isinstance(s.value, str) for s in sides):
            continue
        for s in sides:
            if isinstance(s, ast.Subscript):
                src = ast.unparse(s.value)
                key = s.slice.value if isinstance(s.slice, ast.Constant) else None
                if "polic" in src or src.endswith("_p") or key in REGISTRY:
                    bad.append(node.lineno)
    return bad


def test_library_code_compares_no_policy_with_a_string() -> None:
    """The 48 ``p["sem-underflow"] == "block"`` sites are enum comparisons now, the trace
    checker's included.  The emulator and the guest programs (owned elsewhere for now) are
    skipped by name, not silently."""
    found = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        if rel.startswith(("emu/", "guest/")):
            continue
        lines = _string_compares(ast.parse(path.read_text()))
        if lines:
            found[rel] = lines
    assert not found, found


def test_every_alternative_named_in_code_exists() -> None:
    """``SemUnderflow.BLOK`` would be an AttributeError only when its line runs; this finds
    it statically in every module (the enum classes of qaicmodel.spec.policies)."""
    from qaicmodel.spec import policies

    kinds = {
        n: v
        for n, v in vars(policies).items()
        if isinstance(v, type) and issubclass(v, Alt) and v is not Alt
    }
    bad = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in kinds
                and not node.attr.startswith("_")
                and node.attr not in kinds[node.value.id].__members__
                and not hasattr(kinds[node.value.id], node.attr)
            ):
                bad.append(f"{path.relative_to(PKG)}:{node.lineno} {node.value.id}.{node.attr}")
    assert not bad, bad


def test_comparing_a_choice_with_a_misspelt_string_raises() -> None:
    """The string form (still used by plugins: the emulator) cannot fail silently."""
    p = Policies({"sem-underflow": "block"})
    assert p["sem-underflow"] == "block" and p["sem-underflow"] != "wrap"
    with pytest.raises(PolicyError):
        _ = p["sem-underflow"] == "blok"
    with pytest.raises(PolicyError):
        _ = p["sem-underflow"] != "Block"
    table: dict[str, int] = {SemUnderflow.BLOCK: 1}
    assert table["block"] == 1  # hashes like its id
