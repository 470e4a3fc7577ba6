"""The ambiguity registry's framework: :class:`Policy`, :class:`Alt`, :class:`Policies`.

Where aic100.rst (the seed ``003_*.txt``) does not decide a behaviour, the
model does not decide quietly: the point is a :class:`Policy` with a stable id,
the sentence it comes from, its alternatives, and a default.  The default is
what the Linux driver relies on where it relies on anything; the rationale
says so.  A device is built with a :class:`Policies` choice (defaults for the
rest) and never changes it.

Each policy's alternatives are an :class:`Alt` enum (a ``str`` enum, so a
member compares equal to its id).  :class:`Policies` resolves every choice to
its member once, at construction; code compares members
(``policies[SEM_UNDERFLOW] is SemUnderflow.BLOCK``) or dispatches through a
:meth:`Policy.table` checked complete at import.  The declarations live in
:mod:`qaicmodel.spec.policies` (``dbc``, ``control``, ``host``), imported
eagerly by the package.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar, overload

import attrs

from qaicmodel.errors import PolicyError

__all__ = [
    "Alt",
    "Policy",
    "Policies",
    "REGISTRY",
    "CATEGORIES",
    "register",
    "pairwise",
    "each_alternative",
    "all_ids",
    "all_policies",
    "ambiguities",
    "by_category",
]

SEED = "seed 003 (aic100.rst)"

#: What an entry is (``Policy.category``) -> the title of its listing in
#: ``qaicmodel ambiguities``.  Only ``device`` entries are ambiguities of the device
#: (the points where aic100.rst leaves the device open); the others are kept in the
#: registry so every id the code resolves today still resolves, but are listed apart:
#:   kernel-version   the alternatives are accel/qaic driver versions (a host property);
#:   modelling-limit  the alternatives are choices of the model's scope or carriers;
#:   driver-bug       the alternatives are a driver as written vs. its evident intent;
#:   settled          one plausible device reading is left (the others were removed).
CATEGORIES: dict[str, str] = {
    "device": "device ambiguities",
    "kernel-version": "kernel-version behaviours",
    "modelling-limit": "modelling limits",
    "driver-bug": "known driver bugs",
    "settled": "settled points",
}
#: categories whose entries may have a single alternative
_SINGLE_OK = frozenset({"modelling-limit", "settled"})


class Alt(enum.StrEnum):
    """The alternatives of one policy: member value = the alternative's stable id.

    A member equals its id as a string (plugins compare ``policies[pid] == "pbl"``), but
    comparing it with a string that is no alternative of its policy raises
    :class:`PolicyError`: a misspelt alternative is an error, never a silent False.
    """

    def __eq__(self, other: object) -> bool:
        if (
            isinstance(other, str)
            and not isinstance(other, Alt)
            and other not in type(self)._value2member_map_
        ):
            raise PolicyError(
                f"{type(self).__name__} has no alternative {other!r}; "
                f"choose one of {', '.join(type(self)._value2member_map_)}"
            )
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = str.__hash__


A = TypeVar("A", bound=Alt)
T = TypeVar("T")


def _camel(pid: str) -> str:
    return "".join(w.capitalize() for w in re.split(r"[-.]", pid))


def _const(alt: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "_", alt).upper()


def _norm_alts(m: Mapping[Any, str]) -> dict[str, str]:
    return {str(k): v for k, v in m.items()}


@attrs.frozen
class Policy(Generic[A]):
    """One open point of the documents.

    ``kind`` is the :class:`Alt` enum of its alternatives; its members must be
    exactly the keys of ``alternatives``, in order (checked here, so a
    misspelt alternative fails at import).  A policy declared without a
    ``kind`` (a plugin's, e.g. the emulator's) gets one built from the keys.
    """

    id: str
    area: str
    source: str  # document and section
    quote: str  # the sentence(s) that leave the point open
    question: str
    alternatives: Mapping[str, str] = attrs.field(converter=_norm_alts)  # alt id -> behaviour
    default: str = attrs.field(converter=str)
    rationale: str
    kind: type[A] = attrs.field(default=None, eq=False, kw_only=True)
    #: what the entry is (:data:`CATEGORIES`); ``device`` = an ambiguity of the device
    category: str = attrs.field(default="device", kw_only=True)
    #: the registry-hygiene decision on this entry and its reason (issue #13 item 3)
    decision: str = attrs.field(default="", kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.default not in self.alternatives:
            raise PolicyError(f"policy {self.id}: default {self.default!r} is not an alternative")
        if self.category not in CATEGORIES:
            raise PolicyError(
                f"policy {self.id}: category {self.category!r} is not one of "
                f"{', '.join(CATEGORIES)}"
            )
        if len(self.alternatives) < (1 if self.category in _SINGLE_OK else 2):
            raise PolicyError(f"policy {self.id}: needs at least two alternatives")
        if self.kind is None:
            kind = Alt(_camel(self.id), [(_const(a), a) for a in self.alternatives])  # type: ignore[call-arg]
            object.__setattr__(self, "kind", kind)
        members = [m.value for m in self.kind]
        if members != list(self.alternatives):
            raise PolicyError(
                f"policy {self.id}: enum {self.kind.__name__} has {members}, "
                f"the declaration {list(self.alternatives)}"
            )

    @property
    def default_alt(self) -> A:
        """The default as its enum member."""
        return self.kind(self.default)

    def alt(self, name: str) -> A:
        """The member for alternative id ``name`` (PolicyError if there is none)."""
        try:
            return self.kind(name)
        except ValueError:
            raise PolicyError(
                f"policy {self.id!r} has no alternative {name!r}; "
                f"choose one of {', '.join(self.alternatives)}"
            ) from None

    def table(self, entries: Mapping[A | str, T]) -> dict[A, T]:
        """A dispatch table with exactly one entry per alternative (PolicyError otherwise)."""
        keys = {self.alt(str(k)) for k in entries}
        missing = [m.value for m in self.kind if m not in keys]
        if missing or len(keys) != len(entries):
            raise PolicyError(
                f"policy {self.id}: table misses {missing or 'nothing'} or repeats an entry"
            )
        return {self.alt(str(k)): v for k, v in entries.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "area": self.area,
            "source": self.source,
            "quote": self.quote,
            "question": self.question,
            "alternatives": dict(self.alternatives),
            "default": self.default,
            "rationale": self.rationale,
            "category": self.category,
            **({"decision": self.decision} if self.decision else {}),
        }


REGISTRY: dict[str, Policy[Any]] = {}


def register(policy: Policy[A]) -> Policy[A]:
    """Add ``policy`` to the registry (ids are unique and stable); returns it.

    The declarations in this package call it at import; a plugin (the UML
    plugin) calls it for its own ids.
    """
    old = REGISTRY.get(policy.id)
    if old is not None and old != policy:
        raise PolicyError(f"policy id {policy.id!r} registered twice with different contents")
    REGISTRY[policy.id] = policy
    return policy


def all_ids() -> list[str]:
    return sorted(REGISTRY)


def all_policies() -> list[Policy[Any]]:
    """Every registered policy, by id."""
    return [REGISTRY[k] for k in sorted(REGISTRY)]


def ambiguities() -> list[str]:
    """The ids of the device ambiguities (category ``device``), sorted.

    What a covering set over the device's open points should vary
    (``pairwise(ambiguities())``); the other categories are not readings of the device.
    """
    return [k for k in sorted(REGISTRY) if REGISTRY[k].category == "device"]


def by_category() -> dict[str, list[str]]:
    """Every category of :data:`CATEGORIES` -> its ids, sorted (empty lists included)."""
    out: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for k in sorted(REGISTRY):
        out[REGISTRY[k].category].append(k)
    return out


def _as_dict(m: Mapping[str, str]) -> dict[str, str]:
    return {str(k): str(v) for k, v in m.items()}


@attrs.frozen
class Policies:
    """A choice of one alternative per policy; unnamed policies take their default.

    ``chosen`` keeps the ids as given (labels, JSON); each is resolved to its
    :class:`Alt` member once, here.  ``policies[SEM_UNDERFLOW]`` (a
    :class:`Policy`) is typed as that policy's enum; ``policies["sem-underflow"]``
    gives the same member.
    """

    chosen: Mapping[str, str] = attrs.field(factory=dict, converter=_as_dict)
    _resolved: dict[str, Alt] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        resolved: dict[str, Alt] = {}
        for pid, alt in self.chosen.items():
            pol = REGISTRY.get(pid)
            if pol is None:
                raise PolicyError(f"unknown policy {pid!r} (see `qaicmodel ambiguities`)")
            resolved[pid] = pol.alt(alt)
        object.__setattr__(self, "_resolved", resolved)

    @overload
    def __getitem__(self, key: Policy[A]) -> A: ...
    @overload
    def __getitem__(self, key: str) -> Alt: ...
    def __getitem__(self, key: Policy[Any] | str) -> Alt:
        pid = key if isinstance(key, str) else key.id
        alt = self._resolved.get(pid)
        if alt is not None:
            return alt
        pol = REGISTRY.get(pid)
        if pol is None:
            raise PolicyError(f"unknown policy {pid!r}")
        return pol.default_alt

    def is_(self, pid: str, alt: str) -> bool:
        """True when policy ``pid`` is set to ``alt`` (``alt`` must exist)."""
        pol = REGISTRY.get(pid)
        if pol is None:
            raise PolicyError(f"unknown policy {pid!r}")
        return self[pid] is pol.alt(alt)

    def with_(self, **kw: str) -> Policies:
        d = dict(self.chosen)
        d.update({k.replace("_", "-"): v for k, v in kw.items()})
        return Policies(d)

    @classmethod
    def parse(cls, items: Iterable[str]) -> Policies:
        """From ``ID=ALT`` strings (the CLI's ``--policy``)."""
        d: dict[str, str] = {}
        for item in items:
            if "=" not in item:
                raise PolicyError(f"--policy wants ID=ALT, got {item!r}")
            k, v = item.split("=", 1)
            d[k.strip()] = v.strip()
        return cls(d)

    def label(self) -> str:
        diff = {k: v for k, v in self.chosen.items() if REGISTRY[k].default != v}
        return ",".join(f"{k}={v}" for k, v in sorted(diff.items())) or "defaults"


def pairwise(ids: Iterable[str] | None = None) -> list[Policies]:
    """A covering set: every pair of alternatives of every two policies appears in some row.

    Deterministic greedy construction (each new row picks, policy by policy,
    the alternative that covers most uncovered pairs; ties go to the default).
    The first row is all defaults.
    """
    pids = sorted(ids) if ids is not None else all_ids()
    alts = {p: list(REGISTRY[p].alternatives) for p in pids}
    uncovered: set[tuple[str, str, str, str]] = set()
    for a, b in itertools.combinations(pids, 2):
        for x in alts[a]:
            for y in alts[b]:
                uncovered.add((a, x, b, y))
    singles = {(p, x) for p in pids for x in alts[p]}
    rows: list[dict[str, str]] = [{p: REGISTRY[p].default for p in pids}]

    def cover(row: dict[str, str]) -> None:
        for a, b in itertools.combinations(pids, 2):
            uncovered.discard((a, row[a], b, row[b]))
        for p in pids:
            singles.discard((p, row[p]))

    cover(rows[0])
    while uncovered or singles:
        # seed the row with one uncovered pair (or single) so progress is guaranteed
        row: dict[str, str] = {}
        if uncovered:
            a, x, b, y = min(uncovered)
            row[a], row[b] = x, y
        else:
            p, x = min(singles)
            row[p] = x
        for p in pids:
            if p in row:
                continue
            best, best_n = REGISTRY[p].default, -1
            for x in alts[p]:
                n = sum(
                    1
                    for q, y in row.items()
                    if ((p, x, q, y) if p < q else (q, y, p, x)) in uncovered
                )
                if n > best_n or (n == best_n and x == REGISTRY[p].default):
                    best, best_n = x, n
            row[p] = best
        cover(row)
        rows.append(row)
    return [Policies(r) for r in rows]


def each_alternative(ids: Iterable[str] | None = None) -> Iterator[Policies]:
    """One device per (policy, non-default alternative), the rest at defaults."""
    for pid in sorted(ids) if ids is not None else all_ids():
        for alt in REGISTRY[pid].alternatives:
            if alt != REGISTRY[pid].default:
                yield Policies({pid: alt})
