"""SBL's side of Sahara over QAIC_SAHARA (2 host->device, 3 device->host).

Rules (seed 003 "Boot Flow": "SBL uses the Sahara protocol to obtain the
runtime firmware images from the host"; packet layouts and lengths from the
model's ``boot`` module, which reads sahara.c; host behaviour from
``drivers/accel/qaic/sahara.c`` 6.12/7.2):
  S1 the device speaks first: HELLO (0x30 bytes, version 2, version_compat 2,
     max_length 0xffff, mode IMAGE_TX_PENDING 0) once the host has started both
     channels and queued a receive buffer on 3; the host answers HELLO_RESP;
  S2 per image: READ_DATA {image, offset, length} with length <= 0x80000
     (SAHARA_TRANSFER_MAX_SIZE); the host answers with exactly ``length`` raw
     bytes as one transfer (chained MHI buffers), or RESET if it cannot;
     the device first reads the image header, then the payload;
  S3 END_OF_IMAGE {image, status 0}: the host releases the file and sends DONE;
     the device answers DONE_RESP {image_tx_status}: IMAGE_TX_PENDING (0) with
     more images to come (then a new HELLO), IMAGE_TX_COMPLETE (1) after the
     last (the host ignores DONE_RESP, sahara.c ``sahara_processing``);
  S4 a host RESET is answered with RESET_RESP; what SBL does then is policy
     ``sahara-failure``; a bad image is END_OF_IMAGE with a non-zero status
     (the host then sends nothing, sahara.c ``sahara_end_of_image``).
The image ids requested are policy ``sahara-images``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from qaicmodel.emu import firmware
from qaicmodel.emu._model import boot

__all__ = ["SaharaDevice", "SAHARA_TX", "SAHARA_RX"]

SAHARA_TX = 3  # device -> host
SAHARA_RX = 2  # host -> device
TRANSFER_MAX = 0x80000
MODE_PENDING, MODE_COMPLETE = 0, 1


def _pkt(cmd: int, **fields: Any) -> bytes:
    return bytes(boot.SaharaPkt(cmd, tuple(fields.items())).pack())


def _done_resp(status: int) -> bytes:
    return bytes(boot.SaharaPkt(boot.SaharaCmd.DONE_RESP, (), struct.pack("<I", status)).pack())


class SaharaDevice:
    """The SBL Sahara client.  ``send(data)`` queues a packet on channel 3.

    ``done`` is True after the last DONE_RESP (every image arrived and checked);
    ``failed`` names what went wrong otherwise.
    """

    def __init__(
        self, images: tuple[int, ...], send: Callable[[bytes], None], chunk: int = TRANSFER_MAX
    ) -> None:
        self.images = list(images)
        self.send = send
        self.chunk = chunk
        self.received: dict[int, bytes] = {}
        self.log: list[str] = []
        self.done = False
        self.failed: str | None = None
        self.started = False
        self._i = 0  # index of the image in progress
        self._want: tuple[str, int] | None = None  # what the next host packet must be
        self._buf = b""
        self._total = 0

    # -- the device speaks --------------------------------------------------------
    def start(self) -> None:
        """S1: the first HELLO (the board calls this when the channels run)."""
        self.started = True
        self._hello()

    def _hello(self) -> None:
        self._want = ("HELLO_RESP", 0)
        self.send(
            _pkt(
                boot.SaharaCmd.HELLO,
                version=2,
                version_compat=2,
                max_length=0xFFFF,
                mode=MODE_PENDING,
            )
        )

    def _read(self, offset: int, length: int) -> None:
        img = self.images[self._i]
        self._want = ("DATA", length)
        self.send(_pkt(boot.SaharaCmd.READ_DATA, image=img, offset=offset, length=length))

    def _fail(self, why: str) -> None:
        self.failed = why
        self.log.append("failed: " + why)
        self._want = None

    # -- the host answers ---------------------------------------------------------
    def on_host(self, data: bytes) -> None:
        """One transfer from the host on channel 2."""
        if self.done or self.failed or self._want is None:
            self.log.append(f"unexpected {len(data)} bytes from the host")
            return
        kind, n = self._want
        if (
            len(data) == 8
            and struct.unpack_from("<I", data)[0] == boot.SaharaCmd.RESET
            and not (kind == "DATA" and n == 8)
        ):
            self.send(_pkt(boot.SaharaCmd.RESET_RESP))
            self._fail(f"host sent RESET while the device waited for {kind}")
            return
        if kind == "HELLO_RESP":
            self._on_hello_resp(data)
        elif kind == "DATA":
            self._on_data(data, n)
        elif kind == "DONE":
            self._on_done(data)

    def _on_hello_resp(self, data: bytes) -> None:
        p, viol = boot.parse(data)
        if p is None or viol or p.cmd != boot.SaharaCmd.HELLO_RESP or p["status"] != 0:
            self._fail(f"bad HELLO_RESP {data[:16].hex()}")
            return
        self._buf, self._total = b"", 0
        self._read(0, firmware.HEADER_SIZE)

    def _on_data(self, data: bytes, n: int) -> None:
        if len(data) != n:
            self._fail(f"READ_DATA answer of {len(data)} bytes, asked for {n}")
            return
        self._buf += data
        img = self.images[self._i]
        if self._total == 0:
            try:
                image_id, length, _crc = firmware.parse_header(self._buf)
            except firmware.ImageError as e:
                return self._end(img, e.code)
            if image_id != img:
                return self._end(img, firmware.ERR_ID)
            self._total = firmware.HEADER_SIZE + length
        if len(self._buf) < self._total:
            self._read(len(self._buf), min(self.chunk, self._total - len(self._buf)))
            return
        code = firmware.check_image(self._buf, img)
        if not code:
            self.received[img] = self._buf
        self._end(img, code)

    def _end(self, img: int, status: int) -> None:
        self.log.append(f"image {img}: {len(self._buf)} bytes, status {status}")
        self.send(_pkt(boot.SaharaCmd.END_OF_IMAGE, image=img, status=status))
        if status:
            self._fail(f"image {img} failed its check (code 0x{status:x})")
            return
        self._want = ("DONE", 0)

    def _on_done(self, data: bytes) -> None:
        if len(data) < 8 or struct.unpack_from("<I", data)[0] != boot.SaharaCmd.DONE:
            self._fail(f"expected DONE, got {data[:16].hex()}")
            return
        self._i += 1
        last = self._i >= len(self.images)
        self.send(_done_resp(MODE_COMPLETE if last else MODE_PENDING))
        if last:
            self.done = True
            self._want = None
        else:
            self._hello()
