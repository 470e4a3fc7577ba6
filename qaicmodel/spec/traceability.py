"""Every sentence of aic100.rst (seed 003) accounted for: the splitter, the lookup, the render.

The table itself is :data:`qaicmodel.spec.trace_table.TABLE`; ``docs/traceability.md`` is
rendered from it (:func:`render`, ``python3 -m qaicmodel.spec.traceability --render``), and
``qaicmodel ambiguities --sentence TEXT`` looks a sentence up in it.

Rules:
  S1  Sections (:data:`SECTIONS`) are line ranges of the seed, each checked against the
      text its first line starts with, so an edited seed fails loudly instead of shifting.
  S2  A paragraph is a run of non-blank lines of one range, joined with single spaces
      (every run of whitespace collapses to one space).  A paragraph that starts with a
      bullet (``•``) or a list number (``1.``) is an item: the marker is dropped.
  S3  A paragraph whose first line starts with ``struct `` is code: it is one unit.
  S4  A paragraph that is neither an item nor code and does not end in ``.``, ``!``,
      ``?`` or ``:`` is a label (a heading, a table cell such as ``0 & 1``): it is no
      sentence; it is the context shown with the sentences that follow it.
  S5  Every other paragraph is split into sentences after ``.``, ``!`` or ``?`` followed
      by whitespace and an upper-case letter, a digit, a quote or ``(``.
  S6  A sentence is keyed by (section, text, occurrence): the n-th identical text of a
      section (``Read only by the host.`` is said of two registers) is occurrence n.
  S7  Each entry of the table names the references that implement the sentence
      (:func:`resolve`: a rule id of the code, ``module:R3`` for a numbered rule of a
      module's docstring, ``module:Name`` for a code object), the registry's policy ids
      where the sentence leaves the device open (a ``modelling-limit`` entry runs one
      reading and names the other, e.g. :data:`qaicmodel.spec.policies.silent.UNMODELLED`),
      or ``not modelled`` with the reason.
"""

from __future__ import annotations

import ast
import importlib
import pathlib
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from qaicmodel.errors import ArgumentError, NotModelledError

__all__ = [
    "SECTIONS",
    "Sentence",
    "Entry",
    "split",
    "seed_path",
    "lookup",
    "rule_ids",
    "resolve",
    "render",
    "problems",
    "sentence_cli",
    "counts",
]

#: name -> (title, ((first line, last line, what the first line starts with), ...)); lines
#: are 1-based and inclusive, in seed 003.
SECTIONS: dict[str, tuple[str, tuple[tuple[int, int, str], ...]]] = {
    "pcie": (
        "PCIe (Hardware Description)",
        (
            (6, 6, "The PCIe interface of AIC100"),
            (12, 28, "An AIC100 card consists of"),
        ),
    ),
    "dma-bridge": (
        "DMA Bridge",
        (
            (53, 53, "The DMA Bridge is custom DMA engine"),
            (189, 207, "The DMA Bridge is one of the main interfaces"),
        ),
    ),
    "request-fifo": ("Request FIFO", ((211, 314, "A request FIFO element has"),)),
    "response-fifo": ("Response FIFO", ((318, 329, "Once a request is fully processed"),)),
    "nnc": ("Neural Network Control (NNC) Protocol", ((333, 369, "The NNC protocol is how"),)),
    "ssr": ("Subsystem Restart (SSR)", ((373, 377, "SSR is the concept"),)),
    "ras": (
        "Reliability, Accessibility, Serviceability (RAS)",
        ((381, 381, "AIC100 is expected to be deployed"),),
    ),
    "boot": ("Boot Flow", ((78, 96, "AIC100 uses a flashless boot flow"),)),
    "mhi-channels": (
        "MHI Channels (and the MHI interface)",
        (
            (43, 43, "AIC100 has one MHI interface over PCIe"),
            (113, 184, "AIC100 defines a number of MHI channels"),
        ),
    ),
}

_ITEM = re.compile(r"^(?:•|\d+\.)\s+")
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"(])")
_ENDS = (".", "!", "?", ":")
NOT_MODELLED = "not modelled"


@attrs.frozen
class Sentence:
    """One sentence of the seed (S2-S6): its section, text, occurrence, line, context."""

    section: str
    text: str
    occurrence: int
    line: int
    context: str


@attrs.frozen
class Entry:
    """One row of the table (S7)."""

    section: str
    sentence: str
    rules: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()
    not_modelled: str = ""
    note: str = ""
    occurrence: int = 1

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.section, self.sentence, self.occurrence)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def seed_path() -> pathlib.Path:
    """Seed 003 beside the clone (``shared/seeds``), or under ``$QAICMODEL_SHARED``."""
    import os

    roots = [os.environ.get("QAICMODEL_SHARED", "")]
    here = pathlib.Path(__file__).resolve()
    roots += [str(p / "shared") for p in here.parents[:4]]
    for root in roots:
        if root:
            files = sorted(pathlib.Path(root, "seeds").glob("003_*.txt"))
            if files:
                return files[0]
    raise NotModelledError("seed 003 (aic100.rst) not found under shared/seeds")


def split(
    text: str, sections: Mapping[str, tuple[str, tuple[tuple[int, int, str], ...]]] | None = None
) -> list[Sentence]:
    """The sentences of ``sections`` (:data:`SECTIONS`) in ``text`` (the seed), in order
    (S1-S6)."""
    lines = text.split("\n")
    out: list[Sentence] = []
    for name, (_title, ranges) in (SECTIONS if sections is None else sections).items():
        seen: dict[str, int] = {}
        context = ""
        for first, last, starts in ranges:
            if first > len(lines) or not lines[first - 1].strip().startswith(starts):
                raise NotModelledError(
                    f"seed 003 line {first} does not start with {starts!r} (section {name})"
                )
            para: list[str] = []
            start = first
            for n in range(first, last + 2):
                raw = lines[n - 1] if n <= last else ""
                if raw.strip():
                    if not para:
                        start = n
                    para.append(raw)
                    continue
                if not para:
                    continue
                context = _paragraph(name, para, start, context, seen, out)
                para = []
    return out


def _paragraph(
    name: str, para: list[str], line: int, context: str, seen: dict[str, int], out: list[Sentence]
) -> str:
    joined = _norm(" ".join(para))
    item = _ITEM.match(joined)
    if para[0].strip().startswith("struct "):
        units = [joined]
    elif item:
        units = _SPLIT.split(joined[item.end() :])
    elif not joined.endswith(_ENDS):
        return joined  # S4: a label
    else:
        units = _SPLIT.split(joined)
    for u in units:
        seen[u] = seen.get(u, 0) + 1
        out.append(Sentence(name, u, seen[u], line, context))
    return context


# -- references (S7) -----------------------------------------------------------------------

_RULE_ID = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+$")
_CACHE: dict[str, Any] = {}


def rule_ids() -> set[str]:
    """Every rule id the code uses: string constants of the ``qaicmodel`` sources that look
    like ``HOST-REQ-OVERRUN`` (docstrings excluded)."""
    if "ids" in _CACHE:
        return set(_CACHE["ids"])
    root = pathlib.Path(__file__).resolve().parents[1]
    ids: set[str] = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                if (
                    body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                ):
                    docs.add(id(body[0].value))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docs
                and _RULE_ID.match(node.value)
            ):
                ids.add(node.value)
    _CACHE["ids"] = frozenset(ids)
    return ids


def resolve(ref: str) -> str | None:
    """Why ``ref`` does not resolve, or None when it does (S7)."""
    if ":" not in ref:
        return None if ref in rule_ids() else f"{ref}: no such rule id in the code"
    mod, _, name = ref.partition(":")
    try:
        module = importlib.import_module(f"qaicmodel.{mod}")
    except ImportError:
        return f"{ref}: no module qaicmodel.{mod}"
    if re.fullmatch(r"[A-Z]\d{1,2}", name):
        doc = module.__doc__ or ""
        if re.search(rf"^\s+{name}\s", doc, re.M):
            return None
        return f"{ref}: qaicmodel.{mod} states no rule {name}"
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            return f"{ref}: qaicmodel.{mod} has no {name}"
        obj = getattr(obj, part)
    return None


def _policy_ids() -> tuple[set[str], set[str]]:
    """(every registered id, the ids of modelling limits: one reading run, others named)."""
    from qaicmodel.spec.policies import REGISTRY

    return set(REGISTRY), {k for k, p in REGISTRY.items() if p.category == "modelling-limit"}


def problems(sentences: Sequence[Sentence], table: Iterable[Entry]) -> list[str]:
    """Everything wrong with ``table`` against ``sentences`` (empty: complete and sound)."""
    want = {(s.section, s.text, s.occurrence) for s in sentences}
    registry, _limits = _policy_ids()
    out: list[str] = []
    got: set[tuple[str, str, int]] = set()
    for e in table:
        if e.key in got:
            out.append(f"twice in the table: {e.key}")
        got.add(e.key)
        if e.key not in want:
            out.append(f"not a sentence of seed 003 section {e.section}: {e.sentence!r}")
        if not (e.rules or e.policies or e.not_modelled):
            out.append(f"accounts for nothing: {e.sentence!r}")
        for r in e.rules:
            why = resolve(r)
            if why:
                out.append(why)
        for p in e.policies:
            if p not in registry:
                out.append(f"{p}: no such policy in the registry")
    for key in sorted(want - got):
        out.append(f"missing from the table: {key}")
    return out


# -- lookup and render ---------------------------------------------------------------------


def _table() -> tuple[Entry, ...]:
    from qaicmodel.spec.trace_table import TABLE

    return TABLE


def lookup(fragment: str) -> list[Entry]:
    """The entries whose sentence contains ``fragment`` (whitespace and case folded);
    ArgumentError when none does."""
    want = _norm(fragment).lower()
    if not want:
        raise ArgumentError("--sentence needs some text of aic100.rst")
    hits = [e for e in _table() if want in _norm(e.sentence).lower()]
    if not hits:
        raise ArgumentError(
            f"no sentence of the traced aic100.rst sections contains {fragment!r} "
            "(docs/traceability.md lists them)"
        )
    return hits


def _limit_ids() -> set[str]:
    return _policy_ids()[1]


def entry_text(e: Entry) -> str:
    """One entry as the lines ``qaicmodel ambiguities --sentence`` prints."""
    un = _limit_ids()
    title = SECTIONS[e.section][0]
    occ = f" (occurrence {e.occurrence})" if e.occurrence > 1 else ""
    lines = [f'[{title}]{occ} "{e.sentence}"']
    if e.rules:
        lines.append(f"  implemented by: {', '.join(e.rules)}")
    if e.policies:
        shown = [
            f"{p} (modelling limit: one reading modelled)" if p in un else p for p in e.policies
        ]
        lines.append(f"  open, policies: {', '.join(shown)}")
    if e.not_modelled:
        lines.append(f"  not modelled: {e.not_modelled}")
    if e.note:
        lines.append(f"  note: {e.note}")
    return "\n".join(lines)


def entry_json(e: Entry) -> dict[str, Any]:
    return {
        "section": e.section,
        "sentence": e.sentence,
        "occurrence": e.occurrence,
        "rules": list(e.rules),
        "policies": list(e.policies),
        "not_modelled": e.not_modelled,
        "note": e.note,
    }


def counts(table: Iterable[Entry]) -> dict[str, dict[str, int]]:
    """Per section: sentences implemented (some rule), open (some policy), not modelled
    (neither).  A sentence with both a rule and a policy counts in both."""
    out: dict[str, dict[str, int]] = {
        s: {"sentences": 0, "implemented": 0, "policy": 0, "not_modelled": 0} for s in SECTIONS
    }
    for e in table:
        c = out[e.section]
        c["sentences"] += 1
        c["implemented"] += bool(e.rules)
        c["policy"] += bool(e.policies)
        c["not_modelled"] += not (e.rules or e.policies)
    return out


def _policy(pid: str) -> dict[str, Any]:
    from qaicmodel.spec.policies import REGISTRY

    return REGISTRY[pid].as_dict()


def sentence_cli(fragment: str, as_json: bool) -> int:
    """``qaicmodel ambiguities --sentence TEXT``: every matching entry with its policies."""
    hits = lookup(fragment)
    if as_json:
        import json

        rows = [{**entry_json(e), "policies": [_policy(p) for p in e.policies]} for e in hits]
        print(json.dumps({"format": "qaicmodel-trace-sentences/1", "entries": rows}, indent=2))
        return 0
    out: list[str] = []
    for e in hits:
        out.append(entry_text(e))
        for pid in e.policies:
            p = _policy(pid)
            out.append(f"  {pid}: {p['question']}")
            for alt, desc in p["alternatives"].items():
                mark = "*" if alt == p["default"] else " "
                out.append(f"     {mark} {alt}: {desc}")
            if p.get("decision"):
                out.append(f"     decision: {p['decision']}")
        out.append("")
    print("\n".join(out).rstrip())
    return 0


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(table: Sequence[Entry]) -> str:
    """docs/traceability.md: the table, section by section (generated; do not edit)."""
    un = _limit_ids()
    out = [
        "# Traceability: every sentence of aic100.rst (seed 003) accounted for",
        "",
        "<!-- generated by `python3 -m qaicmodel.spec.traceability --render`"
        " from qaicmodel/spec/trace_table.py; do not edit -->",
        "",
        "Each sentence of the traced sections (split by the rules of "
        "`qaicmodel/spec/traceability.py`) maps to the code that implements it "
        "(a rule id, `module:R3` = numbered rule of that module's docstring, "
        "`module:Name` = a code object; modules under `qaicmodel.`), the policies "
        "where it is open (`qaicmodel ambiguities`; marked † for a modelling limit: the "
        "model runs one reading, the entry names the other), or "
        '"not modelled" and why.  One sentence: `qaicmodel ambiguities --sentence "..."`.',
        "",
        "| section | sentences | implemented | policy | not modelled |",
        "|---|---|---|---|---|",
    ]
    for name, c in counts(table).items():
        out.append(
            f"| {SECTIONS[name][0]} | {c['sentences']} | {c['implemented']} | "
            f"{c['policy']} | {c['not_modelled']} |"
        )
    for name, (title, _r) in SECTIONS.items():
        out += ["", f"## {title}", "", "| # | sentence | implemented by | open | notes |"]
        out.append("|---|---|---|---|---|")
        for i, e in enumerate((e for e in table if e.section == name), 1):
            pols = ", ".join(f"`{p}`" + (" †" if p in un else "") for p in e.policies)
            notes = "; ".join(
                x
                for x in (f"not modelled: {e.not_modelled}" if e.not_modelled else "", e.note)
                if x
            )
            out.append(
                f"| {i} | {_cell(e.sentence)} | {', '.join(f'`{r}`' for r in e.rules)} | "
                f"{pols} | {_cell(notes)} |"
            )
    return "\n".join(out) + "\n"


def _main(argv: Sequence[str]) -> int:
    docs = pathlib.Path(__file__).resolve().parents[2] / "docs" / "traceability.md"
    if list(argv) == ["--render"]:
        docs.write_text(render(_table()), encoding="utf-8")
        print(f"wrote {docs}")
        return 0
    if list(argv) == ["--sentences"]:
        for s in split(seed_path().read_text(encoding="utf-8")):
            print(f"{s.section}\t{s.occurrence}\t{s.line}\t{s.context}\t{s.text}")
        return 0
    sys.stderr.write("usage: python3 -m qaicmodel.spec.traceability --render | --sentences\n")
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
