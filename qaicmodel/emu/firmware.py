"""Synthetic AIC100 firmware images: ``sbl.bin`` for BHI, ``fwN.bin`` for Sahara.

No vendor firmware: the files are the model's own format, made only so that
the real driver has something to serve and the device something to check
(policy ``bhi-image-check``).  The guest finds them through the kernel's
``firmware_class.path=DIR`` (the driver asks for ``qcom/aic100/sbl.bin``,
mhi_controller.c ``fw_image_paths``, and ``qcom/aic100/fwN.bin``, sahara.c
``aic100_image_table``).

Format (little endian)::

    0x00  magic  "QAICMFW\\0"
    0x08  u32    format version (1)
    0x0c  u32    image id (0 = SBL, else the Sahara image id)
    0x10  u32    payload length
    0x14  u32    CRC-32 (zlib) of the payload
    0x18  40s    name, NUL padded
    0x40  payload (deterministic bytes from the image id)
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

__all__ = [
    "HEADER_SIZE",
    "SBL_PATH",
    "IMAGE_PATHS",
    "AIC100_IMAGE_IDS",
    "make_image",
    "check_image",
    "parse_header",
    "write_images",
    "ImageError",
]

MAGIC = b"QAICMFW\x00"
FORMAT = 1
HEADER_SIZE = 0x40
_HDR = struct.Struct("<8sIIII40s")
SBL_PATH = "qcom/aic100/sbl.bin"
#: sahara.c aic100_image_table: id -> file
AIC100_IMAGE_IDS = (1, 2, 4, 5, 6, 8, 9, 10)
IMAGE_PATHS = {i: f"qcom/aic100/fw{i}.bin" for i in AIC100_IMAGE_IDS}
#: payload sizes: image 1 spans several MHI packets (> 0xffff) and image 2 more than one
#: Sahara READ_DATA (> 0x80000 is too slow for the test budget, so 2 stays below)
_SIZES = {0: 0x3000, 1: 0x14000, 2: 0x9000}
_DEFAULT_SIZE = 0x1800

# BHI_ERRCODE values the model's PBL writes (policy bhi-image-check)
ERR_SHORT, ERR_MAGIC, ERR_ID, ERR_LENGTH, ERR_CRC = 0x10, 0x11, 0x12, 0x13, 0x14


class ImageError(ValueError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _payload(image_id: int, size: int) -> bytes:
    out = bytearray()
    seed = f"qaicmodel-fw-{image_id}".encode()
    n = 0
    while len(out) < size:
        out += hashlib.sha256(seed + n.to_bytes(4, "little")).digest()
        n += 1
    return bytes(out[:size])


def make_image(image_id: int, size: int | None = None) -> bytes:
    """The synthetic image ``image_id`` (0 = SBL)."""
    size = _SIZES.get(image_id, _DEFAULT_SIZE) if size is None else size
    body = _payload(image_id, size)
    name = b"sbl" if image_id == 0 else f"fw{image_id}".encode()
    return _HDR.pack(MAGIC, FORMAT, image_id, size, zlib.crc32(body), name) + body


def parse_header(data: bytes) -> tuple[int, int, int]:
    """(image id, payload length, crc) of an image header; ImageError if it is not one."""
    if len(data) < HEADER_SIZE:
        raise ImageError(ERR_SHORT, f"image of {len(data)} bytes is shorter than its header")
    magic, fmt, image_id, length, crc, _name = _HDR.unpack_from(data)
    if magic != MAGIC or fmt != FORMAT:
        raise ImageError(ERR_MAGIC, "not a qaicmodel synthetic image (bad magic/format)")
    return image_id, length, crc


def check_image(data: bytes, want_id: int | None = None) -> int:
    """0 when ``data`` is a whole valid image (of ``want_id``), else a BHI_ERRCODE."""
    try:
        image_id, length, crc = parse_header(data)
    except ImageError as e:
        return e.code
    if want_id is not None and image_id != want_id:
        return ERR_ID
    if len(data) != HEADER_SIZE + length:
        return ERR_LENGTH
    if zlib.crc32(data[HEADER_SIZE:]) != crc:
        return ERR_CRC
    return 0


def write_images(
    directory: str | Path, *, sbl: bool = True, images: tuple[int, ...] = AIC100_IMAGE_IDS
) -> list[Path]:
    """Write ``qcom/aic100/sbl.bin`` and the Sahara images under ``directory``.

    ``sbl=False`` or fewer ``images`` make the failed-firmware cases (the
    poweroff-panic reproducer runs with no ``sbl.bin``).
    """
    root = Path(directory)
    (root / "qcom" / "aic100").mkdir(parents=True, exist_ok=True)
    out = []
    if sbl:
        p = root / SBL_PATH
        p.write_bytes(make_image(0))
        out.append(p)
    for i in images:
        p = root / IMAGE_PATHS[i]
        p.write_bytes(make_image(i))
        out.append(p)
    return out
