"""The ambiguity registry: every policy traceable to a sentence of its source document."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

from qaicmodel.spec.policies import REGISTRY, Policies, pairwise

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared"


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u2019", "'")).strip().lower()


def _seed(prefix: str) -> str:
    files = sorted((SHARED / "seeds").glob(f"{prefix}_*.txt"))
    assert files, f"seed {prefix} not found under {SHARED} (shared/ must sit beside the clone)"
    return _norm(files[0].read_text(encoding="utf-8"))


def test_at_least_15_policies_listed() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "qaicmodel", "ambiguities", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    pols = json.loads(p.stdout)["policies"]
    assert len(pols) >= 15
    ids = [q["id"] for q in pols]
    assert len(ids) == len(set(ids))
    for q in pols:
        assert q["default"] in q["alternatives"]
        assert q["quote"] and q["source"] and q["rationale"]


def test_seed_quotes_are_verbatim() -> None:
    """A policy that cites a seed quotes it word for word ("..." marks an omission)."""
    checked = 0
    for pol in REGISTRY.values():
        m = re.search(r"seed (\d{3})", pol.source)
        if not m:
            continue
        text = _seed(m.group(1))
        for fragment in pol.quote.split("..."):
            frag = _norm(fragment).strip(" .")
            if frag:
                assert frag in text, f"{pol.id}: {fragment!r} is not in seed {m.group(1)}"
        checked += 1
    assert checked >= 15


def test_pairwise_covers_every_pair() -> None:
    ids = [p for p in REGISTRY if REGISTRY[p].area == "dma-bridge"]
    rows = pairwise(ids)
    assert rows[0] == Policies({p: REGISTRY[p].default for p in ids})
    for a in ids:
        for b in ids:
            if a >= b:
                continue
            for x in REGISTRY[a].alternatives:
                for y in REGISTRY[b].alternatives:
                    assert any(r[a] == x and r[b] == y for r in rows), (a, x, b, y)
    # far fewer rows than the full product
    full = 1
    for p in ids:
        full *= len(REGISTRY[p].alternatives)
    assert len(rows) < full
