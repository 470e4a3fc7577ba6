"""``qaicmodel ambiguities``: the registry, one listing per category.

The device ambiguities come first; kernel-version behaviours, modelling limits, known
driver bugs and settled points follow as their own lists (``Policy.category``,
:data:`~qaicmodel.spec.policies.CATEGORIES`).  The JSON keeps ``policies`` (every
entry, as before) and adds ``lists`` (category -> ids) and ``ambiguities`` (the ids of
the device ambiguities).
"""

from __future__ import annotations

from typing import Any

__all__ = ["listing_json", "listing_text", "FORMAT"]

FORMAT = "qaicmodel-ambiguities/1"


def listing_json() -> dict[str, Any]:
    from qaicmodel.spec.policies import CATEGORIES, all_policies, ambiguities, by_category

    return {
        "format": FORMAT,
        "policies": [p.as_dict() for p in all_policies()],
        "ambiguities": ambiguities(),
        "lists": {CATEGORIES[c]: ids for c, ids in by_category().items()},
        "linux_measured": _measured_json(),  # spec/policies/measured.py
    }


def _measured_json() -> dict[str, Any]:
    from qaicmodel.spec.policies.measured import MEASURED, as_json

    return {pid: as_json(pid) for pid in MEASURED}


def _measured_lines(pid: str) -> list[str]:
    from qaicmodel.spec.policies.measured import for_policy

    out = []
    for kernel, m in for_policy(pid).items():
        fails = "; ".join(f"{a} fails: {how}" for a, how in m.fails.items())
        out.append(
            f"  linux {kernel} (measured {m.date}, `{m.command}`): works {', '.join(m.works)}"
            + (f"; {fails}" if fails else "")
        )
    return out


def _entry(p: dict[str, Any]) -> list[str]:
    out = [f"{p['id']}  [{p['area']}]"]
    out.append(f"  source:   {p['source']}")
    out.append(f'  quote:    "{p["quote"]}"')
    out.append(f"  question: {p['question']}")
    for alt, desc in p["alternatives"].items():
        mark = "*" if alt == p["default"] else " "
        out.append(f"   {mark} {alt}: {desc}")
    out.append(f"  why default: {p['rationale']}")
    if p.get("decision"):
        out.append(f"  decision: {p['decision']}")
    out += _measured_lines(p["id"])
    out.append("")
    return out


def listing_text() -> str:
    from qaicmodel.spec.policies import CATEGORIES, REGISTRY, by_category

    cats = by_category()
    total = sum(len(v) for v in cats.values())
    counts = ", ".join(f"{len(cats[c])} {CATEGORIES[c]}" for c in CATEGORIES)
    out = [f"{total} registry entries: {counts} (default marked *)", ""]
    for c, title in CATEGORIES.items():
        if not cats[c]:
            continue
        out += [f"== {title} ({len(cats[c])})", ""]
        for pid in cats[c]:
            out += _entry(REGISTRY[pid].as_dict())
    return "\n".join(out).rstrip()
