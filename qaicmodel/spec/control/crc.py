"""CRC-32 of NNC messages.

Rules (control-path.md §1.6, qaic_control.c ``gen_crc`` / ``valid_crc``):
  * the algorithm is Linux ``crc32_le`` seeded with ~0 and inverted at the end,
    i.e. the standard CRC-32 (reflected polynomial 0xEDB88320) -- exactly what
    :func:`zlib.crc32` computes, so this module uses zlib rather than a table;
  * the CRC covers the whole message, bytes ``0 .. hdr.len``, with the 4-byte
    ``crc32`` field at offset 0 taken as zero (the struct comment "crc of
    everything following this field" does not match the code);
  * a sender that has turned CRC off writes 0 in the field (``gen_crc_stub``).
"""

from __future__ import annotations

import zlib

__all__ = ["crc32", "nnc_crc", "CRC_FIELD"]

#: Offset and size of the crc32 field in ``wire_msg_hdr``.
CRC_FIELD = (0, 4)


def crc32(data: bytes | bytearray | memoryview) -> int:
    """Standard CRC-32 (zlib/Ethernet) of ``data``."""
    return zlib.crc32(bytes(data)) & 0xFFFFFFFF


def nnc_crc(msg: bytes | bytearray | memoryview, length: int | None = None) -> int:
    """CRC-32 of ``msg[:length]`` with bytes 0..3 (the crc field) zeroed.

    ``length`` defaults to the whole buffer; a receiver passes ``hdr.len``
    (``valid_crc`` runs over ``hdr.len`` bytes before anything checks that
    value).  Bytes beyond the buffer are not invented: the CRC then covers
    what exists.
    """
    data = bytes(msg)
    if length is not None:
        data = data[: max(0, length)]
    if len(data) >= 4:
        data = b"\0\0\0\0" + data[4:]
    else:
        data = b"\0" * len(data)
    return crc32(data)
