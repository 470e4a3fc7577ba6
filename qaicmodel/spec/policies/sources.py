"""Where each registry entry's source and quote come from, checked mechanically.

Rules (issue #13 item 3; tests/test_registry_hygiene.py applies them to every entry):

  Q1  ``Policy.source`` names its documents exactly: ``seed NNN`` (``shared/seeds/NNN_*``),
      a fact sheet by file name (``control-path.md``, ``ssr-ras-boot.md``,
      ``userspace.md`` in ``shared/reference/``), and driver code as ``path/file.c
      function`` followed by the kernel versions in parentheses, e.g.
      ``drivers/accel/qaic/qaic_drv.c init_msi (6.12, 7.2)``.
  Q2  ``Policy.quote`` is verbatim in one of the named seeds or fact sheets; ``...``
      marks an omission.  Compared after folding whitespace, Markdown emphasis and code
      marks (``*``, ``**``, backticks) and the typographic apostrophe; case counts.  Kernel
      files are never quoted (the project copies no kernel text): they are named only.
  Q3  Every ``file function`` named exists as a definition in that file of every kernel
      version named (the Debian ``linux-source-V`` trees ``qaicmodel uml build`` unpacks).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs

__all__ = ["DriverRef", "Sources", "parse_source", "fold", "quote_problem", "driver_problems"]

_REF_DOCS = ("control-path.md", "ssr-ras-boot.md", "userspace.md")
_DRIVER = re.compile(r"((?:drivers|include)/[\w/.-]+\.[ch]) (\w+)")
_VERSIONS = re.compile(r"\((\d+\.\d+(?:, \d+\.\d+)*)\)")


@attrs.frozen
class DriverRef:
    """``path function (versions)`` in a source (Q1)."""

    path: str
    function: str
    versions: tuple[str, ...]


@attrs.frozen
class Sources:
    seeds: tuple[str, ...]
    reference: tuple[str, ...]
    driver: tuple[DriverRef, ...]


def parse_source(source: str) -> Sources:
    """Q1: the documents a source string names."""
    seeds = tuple(dict.fromkeys(re.findall(r"seed (\d{3})", source)))
    refs = tuple(d for d in _REF_DOCS if d in source)
    driver: list[DriverRef] = []
    # each driver clause runs to the next ';' (several files may share one version list)
    for clause in source.split(";"):
        found = _DRIVER.findall(clause)
        if not found:
            continue
        vs = _VERSIONS.findall(clause)
        versions = tuple(v.strip() for v in vs[-1].split(",")) if vs else ()
        driver.extend(DriverRef(p, f, versions) for p, f in found)
    return Sources(seeds, refs, tuple(driver))


def fold(text: str) -> str:
    """Q2's comparison form."""
    text = text.replace("\u2019", "'").replace("*", "").replace("`", "")
    return re.sub(r"\s+", " ", text).strip()


def quote_problem(pol: Any, seeds_dir: Path, reference_dir: Path) -> str | None:
    """Q2 for one policy: None when the quote is verbatim in a named document."""
    src = parse_source(pol.source)
    texts: dict[str, str] = {}
    for s in src.seeds:
        files = sorted(seeds_dir.glob(f"{s}_*.txt"))
        if not files:
            return f"seed {s} is not under {seeds_dir}"
        texts[f"seed {s}"] = fold(files[0].read_text(encoding="utf-8"))
    for r in src.reference:
        texts[r] = fold((reference_dir / r).read_text(encoding="utf-8"))
    if not texts:
        return "the source names no seed or fact sheet to quote from"
    frags = [fold(f).strip(" .") for f in pol.quote.split("...")]
    frags = [f for f in frags if f]
    if not frags:
        return "empty quote"
    for text in texts.values():
        if all(f in text for f in frags):
            return None
    missing = next(f for f in frags if not any(f in t for t in texts.values()))
    return f"{missing!r} is not verbatim in {', '.join(texts)}"


def driver_problems(pol: Any, kernel_src: Path) -> list[str]:
    """Q3 for one policy: every problem (empty: all named functions exist)."""
    out = []
    for ref in parse_source(pol.source).driver:
        if not ref.versions:
            out.append(f"{ref.path} {ref.function}: no kernel version named")
        for v in ref.versions:
            f = kernel_src / f"linux-source-{v}" / ref.path
            if not f.is_file():
                out.append(f"{ref.path} is not in linux-source-{v}")
                continue
            text = f.read_text(encoding="utf-8", errors="replace")
            if not re.search(rf"^\w[^;\n]*\b{re.escape(ref.function)}\s*(\(|\[)", text, re.M):
                out.append(f"{ref.path}: no definition of {ref.function} in {v}")
    return out
