"""``qaicmodel decode request|response|sem HEX``: every field, decoded bits, reserved bits, broken rules.

Source: aic100.rst "Request FIFO" / "Response FIFO" (field names are the
seed's; the reserved words are called ``reserved0..3`` in wire order).  Input is
the raw little-endian bytes; a wrong length is a DecodeError (CLI: exit 2, one
line).  Functions return JSON-able dicts; :mod:`qaicmodel.cli` prints them, through
:func:`human` for the text form: every address (a key naming an ``addr``/``address``) and
every command word in hex; JSON keeps the integers.  ``decode sem`` reports the byte order
it read (``byte_order``): the hex is the wire bytes, least significant first.
"""

from __future__ import annotations

import re
from typing import Any

from qaicmodel.errors import DecodeError
from qaicmodel.spec.dbc.device import CC_NAMES  # model-defined codes (completion-code-values)
from qaicmodel.spec.dbc.wire import RequestElem, ResponseElem, SemCmd, SemOp, Violation

__all__ = ["describe_request", "describe_response", "describe_sem", "human", "SEM_SIZE"]

SEM_SIZE = 4
_SEED_FIELDS = (
    "req_id",
    "seq_id",
    "pcie_dma_cmd",
    "pcie_dma_source_addr",
    "pcie_dma_dest_addr",
    "pcie_dma_len",
    "doorbell_addr",
    "doorbell_attr",
    "doorbell_data",
    "sem_cmd0",
    "sem_cmd1",
    "sem_cmd2",
    "sem_cmd3",
)
_RESERVED = ("reserved0", "reserved1", "reserved2", "reserved3")


def _bytes(data: Any, what: str) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"{what} must be bytes, not {type(data).__name__}")
    return bytes(data)


def _viol(v: Violation) -> dict[str, Any]:
    return v.as_dict()  # the one finding shape (qaicmodel/findings.py)


def describe_request(data: bytes) -> dict[str, Any]:
    """A 64-byte request element (aic100.rst ``struct request_elem``)."""
    e = RequestElem.unpack(_bytes(data, "request element"))
    d = e.as_dict()
    out: dict[str, Any] = {"kind": "request_elem", "size": 64}
    out.update({k: d[k] for k in _SEED_FIELDS})
    out["reserved"] = {k: d[k] for k in _RESERVED}
    out["decoded"] = d["decoded"]
    out["reserved_bits_set"] = {k: f"0x{v:x}" for k, v in e.reserved_set().items()}
    out["violations"] = [_viol(v) for v in e.violations()]
    return out


def describe_response(data: bytes) -> dict[str, Any]:
    """A 4-byte response element (aic100.rst ``struct response_elem``)."""
    r = ResponseElem.unpack(_bytes(data, "response element"))
    return {
        "kind": "response_elem",
        "size": 4,
        "req_id": r.req_id,
        "completion_code": r.completion_code,
        "decoded": {
            "success": r.completion_code == 0,
            "model_meaning": CC_NAMES.get(r.completion_code, "error (unknown code)"),
        },
        "reserved_bits_set": {},
        "violations": [],
    }


def describe_sem(data: bytes) -> dict[str, Any]:
    """One 4-byte sem_cmd word, little-endian (aic100.rst "Request FIFO", sem_cmd)."""
    raw = _bytes(data, "sem_cmd word")
    if len(raw) != SEM_SIZE:
        raise DecodeError(f"a sem_cmd word is {SEM_SIZE} bytes, got {len(raw)}", rule="ELEM-LENGTH")
    s = SemCmd(int.from_bytes(raw, "little"))
    order = (
        f"little-endian: bytes {raw.hex(' ')} are the word 0x{s.word:08x} "
        f"(to decode the number 0x{raw.hex()}, give {raw[::-1].hex()})"
    )
    viol: list[Violation] = []
    if s.enable and s.op is SemOp.RESERVED:
        viol.append(Violation("SEM-CMD-RESERVED", "sem_cmd", "semaphore command 7 is reserved"))
    if s.reserved:
        viol.append(Violation("RESERVED-BITS-SET", "sem_cmd", "reserved bits are set"))
    return {
        "kind": "sem_cmd",
        "size": 4,
        "sem_cmd": s.word,
        "byte_order": order,
        "decoded": s.as_dict(),
        "reserved_bits_set": {"sem_cmd": f"0x{s.reserved:x}"} if s.reserved else {},
        "violations": [_viol(v) for v in viol],
    }


#: keys whose integer values are shown in hex in text output (addresses, command words)
_HEX_KEY = re.compile(r"addr|address|^sem_cmd\d?$|^pcie_dma_cmd$|^word$")


def human(obj: Any, key: str = "") -> Any:
    """The text view of a decoder's dict: addresses and command words in hex."""
    if isinstance(obj, dict):
        return {k: human(v, str(k)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [human(v, key) for v in obj]
    if isinstance(obj, int) and not isinstance(obj, bool) and _HEX_KEY.search(key):
        return f"0x{obj:x}"
    return obj
