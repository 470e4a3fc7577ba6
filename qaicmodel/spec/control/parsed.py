"""The two faces every control-plane decoder shares (SSR, RAS, Sahara).

Each of those modules has a lenient ``parse(data) -> (record | None, violations)``
that collects every broken rule with its byte offset.  From it:
  * :func:`strict` is the library's decoder: the record, or :class:`DecodeError`
    for the first broken rule -- never another exception;
  * :func:`describe` is what ``qaicmodel decode KIND HEX`` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from qaicmodel.errors import DecodeError
from qaicmodel.findings import Finding

__all__ = ["strict", "describe", "finding", "SOURCES"]

T = TypeVar("T")
Parse = Callable[..., tuple[Any, list[dict[str, Any]]]]


def strict(what: str, type_rule: str, parse: Parse, data: Any, *args: Any) -> Any:
    """``parse`` ``data``; raise DecodeError for the first violation, else return the record."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"{what} must be bytes, not {type(data).__name__}", rule=type_rule)
    record, viol = parse(bytes(data), *args)
    if viol:
        raise DecodeError(viol[0]["message"], offset=viol[0]["offset"], rule=viol[0]["rule"])
    assert record is not None
    return record


#: where each decoder's rules come from (the module docstrings give the sections)
SOURCES = {
    "ssr": 'aic100.rst "Subsystem Restart (SSR)"; ssr-ras-boot.md §1',
    "ras": 'aic100.rst "Reliability, Accessibility, Serviceability (RAS)"; ssr-ras-boot.md §2',
    "timesync": 'aic100.rst "Boot Flow"; ssr-ras-boot.md §3',
    "sahara": 'aic100.rst "Boot Flow"; ssr-ras-boot.md §4',
}


def finding(kind: str, v: dict[str, Any]) -> dict[str, Any]:
    """One parse violation ``{rule, offset, message}`` in the one finding shape."""
    return Finding(
        v["rule"], v["message"], SOURCES.get(kind, ""), {"offset": v["offset"]}
    ).as_dict()


def describe(kind: str, key: str, parse: Parse, data: bytes) -> dict[str, Any]:
    """The ``decode`` command's dict: the record (or None) and every violation (as
    :meth:`qaicmodel.findings.Finding.as_dict`)."""
    record, viol = parse(data)
    return {
        "kind": kind,
        "size": len(bytes(data)),
        key: None if record is None else record.as_dict(),
        "violations": [finding(kind, v) for v in viol],
    }
