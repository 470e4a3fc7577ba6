"""The check report (trace.md "Report"): the verdict, the first violation as a
:class:`TraceFinding`, inconclusive reasons and the status of each rule family; as text,
JSON (``--json``) and JUnit XML (``--junit``)."""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree as ET

import attrs

from qaicmodel.findings import Finding
from qaicmodel.oracle.check.rules import EXIT, _family

__all__ = ["Report", "TraceFinding", "MAX_REASONS"]

# -- findings and the report -------------------------------------------------------

#: a report keeps at most this many inconclusive reasons (the total is counted)
MAX_REASONS = 100


@attrs.frozen(hash=False)
class TraceFinding(Finding):
    """One broken rule at one event (trace.md "Report"): a :class:`qaicmodel.findings.Finding`
    whose ``where`` is the trace line, the event and the channel (``state["dbc"]``), and
    whose :meth:`as_dict` keeps the check report's fields and their order (``line``,
    ``event``, ``rule``, ``family``, ``message``, ``state``, ``source``, ``where``)."""

    @classmethod
    def at(
        cls, line: int, event: str, rule: str, message: str, state: dict[str, Any], source: str
    ) -> TraceFinding:
        return cls(
            rule=rule,
            message=message,
            source=source,
            state=state,
            where={"line": line, "event": event, "dbc": state.get("dbc")},
        )

    @property
    def line(self) -> int:
        return int(self.where["line"])

    @property
    def event(self) -> str:
        return str(self.where["event"])

    @property
    def family(self) -> str:
        return _family(self.rule)

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "event": self.event,
            "rule": self.rule,
            "family": self.family,
            "message": self.message,
            "state": dict(self.state),
            "source": self.source,
            "where": dict(self.where),
        }


@attrs.define
class Report:
    verdict: str = "conforming"
    events: int = 0
    violation: TraceFinding | None = None
    inconclusive: list[dict[str, Any]] = attrs.field(factory=list)
    families: dict[str, dict[str, str]] = attrs.field(factory=dict)
    source: str = "jsonl"
    inconclusive_total: int = 0
    seconds: float = 0.0
    peak_states: int = 0

    @property
    def exit(self) -> int:
        return EXIT[self.verdict]

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": "qaicmodel-check/1",
            "verdict": self.verdict,
            "exit": self.exit,
            "trace_format": self.source,
            "events": self.events,
            "violation": self.violation.as_dict() if self.violation else None,
            "inconclusive": self.inconclusive,
            "inconclusive_total": self.inconclusive_total,
            "families": self.families,
            "not_checked": sorted(
                f for f, v in self.families.items() if v["status"] == "not-checked"
            ),
            "seconds": round(self.seconds, 6),
            "events_per_s": round(self.events_per_s, 1),
            "peak_states": self.peak_states,
        }

    def text(self) -> str:
        out = [f"{self.verdict.upper()}: {self.events} events ({self.source})"]
        if self.violation is not None:
            v = self.violation
            out += [
                f"line {v.line} ({v.event}): {v.rule}: {v.message}",
                f"  state:  {json.dumps(v.state, sort_keys=True)}",
                f"  source: {v.source}",
            ]
        for inc in self.inconclusive[:5]:
            out.append(f"inconclusive: line {inc['line']}: {inc['reason']}")
        if self.inconclusive_total > 5:
            out.append(f"inconclusive: ... {self.inconclusive_total - 5} more")
        for fam, st in self.families.items():
            if st["status"] == "not-checked":
                out.append(f"not checked: {fam}: {st['reason']}")
        return "\n".join(out)

    def junit(self) -> str:
        """One test case per rule family (JUnit XML, for CI systems)."""
        fams = self.families
        suite = ET.Element(
            "testsuite",
            name="qaicmodel-check",
            tests=str(len(fams)),
            failures=str(sum(v["status"] == "fail" for v in fams.values())),
            skipped=str(sum(v["status"] in ("not-checked", "inconclusive") for v in fams.values())),
            errors="0",
        )
        for fam, st in fams.items():
            case = ET.SubElement(suite, "testcase", classname="qaicmodel.check", name=fam)
            if st["status"] == "fail" and self.violation is not None:
                v = self.violation
                fail = ET.SubElement(case, "failure", message=f"{v.rule}: {v.message}", type=v.rule)
                fail.text = json.dumps(v.as_dict(), indent=2)
            elif st["status"] in ("not-checked", "inconclusive"):
                ET.SubElement(case, "skipped", message=f"{st['status']}: {st['reason']}")
        return ET.tostring(suite, encoding="unicode", xml_declaration=True)


class _Stop(Exception):
    """Internal: the first violation was found."""
