"""One record for "a rule was broken": :class:`Finding`.

Every checker reports in this shape: the device's host violations
(``Device.violations``), the request-element rules (``RequestElem.violations``),
the NNC/SSR/RAS/Sahara decoders' rule violations, QSM's refusals
(``Qsm.violations``), the driver model's (``ControlClient.violations``) and the
device-side SSR's (``DeviceSsr.violations``), the co-simulation invariants
(``World.findings``), ``conform``'s failures (:class:`qaicmodel.oracle.pair.Failure`
carries one), the scenario report, and the trace checker
(:class:`qaicmodel.oracle.check.TraceFinding`, a subclass).  The CLI prints :meth:`Finding.text`
and serializes :meth:`Finding.as_dict`.

Fields (issue #8 item 3): ``rule`` (stable id), ``message`` (one sentence),
``source`` (the document and section the rule comes from), ``where`` (the
location: a dbc, a byte offset, a field, a trace line, a conform step), and
``state`` (the model state that makes it a finding, when the checker has one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["Finding"]


def _dict(m: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(m) if m else {}


@attrs.frozen(hash=False)
class Finding:
    """A broken rule: id, sentence, source, where, state.

    ``where`` keys are also readable as attributes (``f.dbc``, ``f.offset``,
    ``f.field``): the names the per-checker records used before this one.
    """

    rule: str
    message: str
    source: str = ""
    where: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)
    state: Mapping[str, Any] = attrs.field(factory=dict, converter=_dict)

    def __hash__(self) -> int:
        return hash((self.rule, self.message, self.source, repr(sorted(self.where.items()))))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("where", "state"):
            raise AttributeError(name)
        try:
            return self.where[name]
        except KeyError:
            raise AttributeError(f"Finding has no field or location {name!r}") from None

    def as_dict(self) -> dict[str, Any]:
        """JSON: ``rule``, ``message``, ``source``, ``where``, ``state``, and each ``where``
        key at top level too (the shape the older records serialized to)."""
        out: dict[str, Any] = {"rule": self.rule, "message": self.message}
        for k, v in self.where.items():
            out.setdefault(k, v)
        out.update(source=self.source, where=dict(self.where), state=dict(self.state))
        return out

    def text(self) -> str:
        """One line: ``RULE: message (where)``."""
        loc = ", ".join(f"{k} {v}" for k, v in self.where.items() if v is not None)
        return f"{self.rule}: {self.message}" + (f" ({loc})" if loc else "")

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"
