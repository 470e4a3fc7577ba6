"""Scenario steps for synthetic memory: ``import_bo`` (docs/formats-extensions.md).

  import_bo  a PRIME import (qaic_gem_prime_import) of a dma-buf of ``size`` bytes -- any
             size, page multiple or not; ``entries`` (default: one page each, the last
             short) are the exporter's scatter entries and ``merge`` (default true) maps
             them through an IOMMU, which merges them into fewer DMA segments
             (spec/dbc/memory.py import_backing).  Binds the handle with ``as``; the
             result has ``handle`` and ``segments`` like ``create_bo``.

A BO of any size up to 2**64 needs no step of its own: ``create_bo`` backs sizes above the
dense limit with sparse memory (memory.bo_backing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qaicmodel.errors import FormatError, NotModelledError
from qaicmodel.scenario.values import _REQ, _USER, U64, FieldSpec, _bool, _int, _list

__all__ = ["MEMORY_OPS", "MemorySteps"]


def _entries(v: Any, where: str) -> list[int]:
    out = []
    for k, e in enumerate(_list(v, where)):
        n = _int(e, f"{where}[{k}]")
        if not 0 < n <= 0xFFFFFFFF:
            raise FormatError(f"an entry is 1 .. 4294967295 bytes, got {n}", where=f"{where}[{k}]")
        out.append(n)
    if not out:
        raise FormatError("needs at least one entry", where=where)
    return out


#: op -> (fields, whether ``as`` may bind a result): merged into format.OPS.
MEMORY_OPS: dict[str, tuple[tuple[FieldSpec, ...], bool]] = {
    "import_bo": (
        (
            _USER,
            FieldSpec("size", U64, _REQ),
            FieldSpec("entries", _entries, None),
            FieldSpec("merge", _bool, True),
        ),
        True,
    ),
}


class MemorySteps:
    """``import_bo`` on the scenario Runner's host (when it has ``import_bo``)."""

    host: Any
    uid: Any

    def _op_import_bo(self, st: Any, a: Mapping[str, Any]) -> dict[str, Any]:
        fn = getattr(self.host, "import_bo", None)
        if fn is None:
            raise NotModelledError("this host has no import_bo (PRIME import)")
        uid = self.uid(a["user"])
        handle = fn(uid, a["size"], entries=a["entries"], merge=a["merge"])
        segs = [[int(x), int(n)] for x, n in self.host.bo_segments(uid, handle)]
        return {"handle": int(handle), "segments": segs}
