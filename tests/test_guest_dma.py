"""The guest client's DMA_XFER MANAGE (qaicmodel/guest/client.py G5) without a kernel:
struct sizes and layout of 7.2's include/uapi/drm/qaic_accel.h, the message the client
hands the driver, its error paths, and the scattered user buffer."""

from __future__ import annotations

import ctypes
import errno
import struct
from typing import Any

import pytest

from qaicmodel.errors import ArgumentError
from qaicmodel.guest import client as C
from qaicmodel.spec.control import manage as mg
from qaicmodel.spec.control import qsm_records as QR
from qaicmodel.spec.host import uapi as U

pytestmark = pytest.mark.unit


def test_struct_sizes_are_7_2s() -> None:
    # qaic_accel.h (7.2): qaic_manage_trans_dma_xfer {hdr{u32,u32}, u32 tag, u32 pad,
    # u64 addr, u64 size} = 32; qaic_manage_msg {u32 len, u32 count, u64 data} = 16
    assert C.DMA_XFER.size == 32
    assert C.MANAGE_MSG.size == 16
    # DRM_IOCTL_QAIC_MANAGE = _IOWR('d', DRM_COMMAND_BASE + 0, struct qaic_manage_msg)
    assert U.IOCTLS["DRM_IOCTL_QAIC_MANAGE"][0] == 0xC0106440


def test_dma_xfer_field_offsets() -> None:
    raw = C.dma_xfer_trans(0x11223344, 0x0102030405060708, 0x1112131415161718, pad=0x55667788)
    assert len(raw) == 32
    assert struct.unpack_from("<II", raw, 0) == (5, 32)  # QAIC_TRANS_DMA_XFER_FROM_USR, len
    assert struct.unpack_from("<I", raw, 8)[0] == 0x11223344  # tag
    assert struct.unpack_from("<I", raw, 12)[0] == 0x55667788  # pad
    assert struct.unpack_from("<Q", raw, 16)[0] == 0x0102030405060708  # addr
    assert struct.unpack_from("<Q", raw, 24)[0] == 0x1112131415161718  # size
    # the same bytes as the model's hosts send (spec/control/manage_uapi.py)
    assert raw == mg.usr_dma_xfer(0x11223344, 0x0102030405060708, 0x1112131415161718, 0x55667788)


@pytest.mark.parametrize(
    "kw",
    [
        {"tag": -1, "addr": 0, "size": 1},
        {"tag": 1 << 32, "addr": 0, "size": 1},
        {"tag": True, "addr": 0, "size": 1},
        {"tag": 0, "addr": 1 << 64, "size": 1},
        {"tag": 0, "addr": 0, "size": -4096},
        {"tag": 0, "addr": 0, "size": 1.5},
    ],
)
def test_bad_fields_are_argument_errors(kw: dict[str, Any]) -> None:
    with pytest.raises(ArgumentError):
        C.dma_xfer_trans(**kw)


class _FakeDriver:
    """Stands for the MANAGE ioctl: records the user message, writes ``answer`` back."""

    def __init__(self, answer: bytes | None, count: int = 1, err: int = 0) -> None:
        self.answer, self.count, self.err = answer, count, err
        self.seen: list[tuple[int, int, bytes]] = []

    def __call__(self, nr: int, raw: bytes) -> bytes:
        assert nr == U.IOCTLS["DRM_IOCTL_QAIC_MANAGE"][0]
        length, count, ptr = C.MANAGE_MSG.unpack(raw)
        self.seen.append((length, count, ctypes.string_at(ptr, length)))
        if self.err:
            raise OSError(self.err, "fake")
        assert self.answer is not None
        ctypes.memmove(ptr, self.answer, len(self.answer))
        return C.MANAGE_MSG.pack(len(self.answer), self.count, ptr)


def _client(fake: _FakeDriver) -> C.Client:
    c = C.Client.__new__(C.Client)
    c.path, c.fd, c.maps = "fake", -1, {}
    c._ioctl = fake  # type: ignore[method-assign]
    return c


def _resp(cmd: int, *args: int) -> bytes:
    """A PASSTHROUGH_FROM_DEV (type 3) carrying the model's command answer."""
    body = QR.command(cmd, *args)
    return struct.pack("<II", 3, 8 + len(body)) + body


def test_load_sends_passthrough_and_dma_xfer_and_returns_the_image_id() -> None:
    fake = _FakeDriver(_resp(QR.Cmd.LOAD_ELF_RESP, 0, 7))
    size = (5 << 32) + 4096
    assert _client(fake).load(0x7F0000001000, size, tag=3) == 7
    ((length, count, data),) = fake.seen
    assert (length, count, len(data)) == (64, 2, 64)
    t, ln = struct.unpack_from("<II", data, 0)
    assert (t, ln) == (1, 32)  # PASSTHROUGH_FROM_USR: the LOAD_ELF_REQ command
    assert QR.parse_command(data[8:32]) == (QR.Cmd.LOAD_ELF_REQ, [3, 0, 4096, 5])
    assert data[32:] == C.dma_xfer_trans(3, 0x7F0000001000, size)


@pytest.mark.parametrize(
    ("fake", "want"),
    [
        (_FakeDriver(None, err=errno.EINVAL), "EINVAL"),  # the driver's errno, unchanged
        (_FakeDriver(None, err=errno.EFAULT), "EFAULT"),
        (_FakeDriver(_resp(QR.Cmd.LOAD_ELF_RESP, 0xFFFFFFFA, 0)), "ECANCELED"),  # QSM -6
        (_FakeDriver(_resp(QR.Cmd.UNLOAD_ELF_RESP, 0, 1)), "EPROTO"),  # not the answer
        (_FakeDriver(b"", count=0), "EPROTO"),
    ],
)
def test_load_errors_are_oserrors_with_an_errno(fake: _FakeDriver, want: str) -> None:
    with pytest.raises(OSError) as ei:
        _client(fake).load(0x1000, 4096)
    assert C.errno_name(ei.value) == want


def test_scattered_buffer_maps_one_page_everywhere() -> None:
    page = C.PAGE
    with C.DmaBuffer(6, scattered=True) as b:
        assert b.size == 6 * page and b.addr % page == 0
        assert all(ctypes.string_at(b.addr + i * page, page) == b.pattern() for i in range(6))
        ctypes.memmove(b.addr + 3 * page + 10, b"QAIC", 4)  # one physical page behind all six
        assert ctypes.string_at(b.addr + 10, 4) == b"QAIC"
        assert ctypes.string_at(b.addr + 5 * page + 10, 4) == b"QAIC"
    assert b.addr == 0 and b._fd == -1
    with C.DmaBuffer(2) as flat:
        ctypes.memmove(flat.addr, b"ZZ", 2)
        assert ctypes.string_at(flat.addr + page, 2) == b.pattern()[:2]  # its own pages


@pytest.mark.parametrize("pages", [0, -1, True, 1 << 21])
def test_bad_buffer_sizes_are_argument_errors(pages: Any) -> None:
    with pytest.raises(ArgumentError):
        C.DmaBuffer(pages)
