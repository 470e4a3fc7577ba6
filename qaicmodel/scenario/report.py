"""A scenario run's report (scenario.md "Report"; ``qaicmodel-result/1``)."""

from __future__ import annotations

import json
from typing import Any

import attrs

from qaicmodel.findings import Finding
from qaicmodel.scenario.format import Step

__all__ = ["RESULT_FORMAT", "Report", "mismatch_of", "violations_of"]

RESULT_FORMAT = "qaicmodel-result/1"

# ---------------------------------------------------------------------------
# Report


@attrs.frozen
class Report:
    """What a scenario run returned (scenario.md "Report")."""

    results: list[dict[str, Any]]
    first_mismatch: dict[str, Any] | None
    violations: list[dict[str, Any]] = attrs.field(factory=list)

    @property
    def exit_code(self) -> int:
        return 0 if self.first_mismatch is None else 1

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": RESULT_FORMAT,
            "results": self.results,
            "first_mismatch": self.first_mismatch,
        }
        if self.violations:
            out["violations"] = self.violations
        return out

    def text(self) -> str:
        lines = []
        for r in self.results:
            extra = " ".join(
                f"{k}={_short(_hex_addrs(v, k))}"
                for k, v in r.items()
                if k not in ("step", "op", "result", "expect", "control_verdicts")
            )
            exp = f"(expect {r['expect']})" if "expect" in r else ""
            lines.append(
                f"{r['step']:>4}  {r['op']:<16} {r['result']:<10} {exp:<20} {extra}".rstrip()
            )
            for v in r.get("control_verdicts", ()):
                lines.append(f"      control verdict {v['rule']}: {v['message']}")
        for v in self.violations:
            lines.append(f"violation {v['rule']}: {v['message']}")
        if self.first_mismatch is None:
            lines.append(f"ok: {len(self.results)} steps, every expect held")
        else:
            m = self.first_mismatch
            lines.append(
                f"MISMATCH at step {m['step']} ({m['op']}): expected {m['expect']}, "
                f"got {m['result']}"
            )
        return "\n".join(lines)


def _short(v: Any) -> str:
    s = _dump(v)
    return s if len(s) <= 60 else s[:57] + "..."


class _Hex(int):
    """An address in the text report (printed ``0x...``)."""


def _dump(v: Any) -> str:
    """Compact JSON, except that :class:`_Hex` integers print in hex."""
    if isinstance(v, _Hex):
        return f"0x{int(v):x}"
    if isinstance(v, list):
        return "[" + ",".join(_dump(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_dump(x)}" for k, x in v.items()) + "}"
    return json.dumps(v)


def _hex_addrs(v: Any, key: str) -> Any:
    """The text report shows addresses in hex: ``segments`` ``[[dma_addr, length]]`` and
    any ``*addr*`` integer (JSON keeps integers)."""
    if key == "segments" and isinstance(v, list):
        return [
            [_Hex(s[0]), *s[1:]] if isinstance(s, list) and s and isinstance(s[0], int) else s
            for s in v
        ]
    if isinstance(v, dict):
        return {k: _hex_addrs(x, str(k)) for k, x in v.items()}
    if isinstance(v, list):
        return [_hex_addrs(x, key) for x in v]
    if isinstance(v, int) and not isinstance(v, bool) and "addr" in key:
        return _Hex(v)
    return v


def mismatch_of(st: Step, res: dict[str, Any]) -> dict[str, Any] | None:
    """E2: the step's expect (if any) against its result."""
    got = res["result"]
    if res.get("violations"):
        return {
            "step": st.index,
            "op": st.op,
            "expect": st.expect or "ok",
            "result": f"violation {res['violations'][0]['rule']}",
        }
    if res.get("stranded"):
        return {
            "step": st.index,
            "op": st.op,
            "expect": st.expect or "ok",
            "result": f"stranded response on dbc {res['stranded'][0]}",
        }
    if got == "schedule-diverged" or res.get("hex_mismatch"):
        return {
            "step": st.index,
            "op": st.op,
            "expect": st.expect or "ok",
            "result": "hex differs" if res.get("hex_mismatch") else got,
        }
    if st.expect is not None and got != st.expect:
        return {"step": st.index, "op": st.op, "expect": st.expect, "result": got}
    return None


def violations_of(device: Any) -> list[dict[str, Any]]:
    """The device's findings in the one serialized shape (:meth:`Finding.as_dict`)."""
    out: list[dict[str, Any]] = []
    for v in getattr(device, "violations", []):
        if isinstance(v, Finding):
            out.append(v.as_dict())
        else:  # a foreign record (a test double): rule and message only
            out.append(
                {"rule": str(getattr(v, "rule", v)), "message": str(getattr(v, "message", ""))}
            )
    return out
