"""The boot of seed 003: PBL -> BHI -> SBL -> Sahara -> AMSS, against a fake host."""

from __future__ import annotations

from pathlib import Path

from mhi_host import FakeHost

from qaicmodel.emu import firmware
from qaicmodel.emu import mhi_regs as R
from qaicmodel.emu._model import nnc


def test_full_boot_to_online() -> None:
    h = FakeHost()
    assert h.b.ee == "PBL"
    h.power_up()  # BHI load of the synthetic sbl.bin
    assert h.ees == [1] and h.b.ee == "SBL"
    assert h.bhi(R.BHI_STATUS) >> 30 == R.BHI_STATUS_SUCCESS
    host = h.sahara()
    assert list(h.b.services.sahara.received) == list(firmware.AIC100_IMAGE_IDS)
    assert host.active is None and not host.log
    assert h.ees == [1, 2] and h.b.ee == "AMSS"
    h.open(10, 128)
    h.post_rx(11, 4096)
    h.send(10, nnc.Message.build([nnc.StatusToDev()], seq=1).pack())
    h.pump()
    st = nnc.decode(h.recv(11)[0], "d2h").transactions[0]
    assert (st.major, st.minor) == (5, 0)
    assert h.b.violations == []


def test_sbl_channels_vanish_in_amss_and_late_doorbells_are_not_violations() -> None:
    h = FakeHost()
    h.power_up()
    h.sahara()  # the fake host re-posts a receive buffer on 3 after the last DONE_RESP
    assert h.b.mhi.channels[3].state == 0
    assert ("db-ignored", 3) in h.b.mhi.trace
    assert h.b.violations == []


def test_late_start_of_an_sbl_channel_after_amss_is_traced_not_a_violation() -> None:
    """Seen against the 7.2 driver (about 1 run in 7): the SBL timesync client's START
    for channel 20 reaches the device after it entered AMSS.  The device answers with an
    error completion and traces it; a START for an SBL channel on a device that never
    left SBL in this power cycle stays a violation (test_board_mhi)."""
    h = FakeHost()
    h.power_up()
    h.sahara()
    assert h.b.ee == "AMSS"
    assert h.start(20) == 0x10
    assert ("late-cmd", "START", 20) in h.b.mhi.trace
    assert h.b.violations == []
    assert h.start(30) == 0x10  # never an AIC100 channel: still a violation
    assert [v.rule for v in h.b.violations] == ["MHI-CHAN-UNKNOWN"]


def test_bootlog_and_boot_timesync() -> None:
    h = FakeHost()
    h.power_up()
    h.open(12)
    h.post_rx(13, 512, 16)
    h.open(20)
    h.post_rx(21, 8)
    h.pump()
    lines = h.recv(13)
    assert len(lines) == 3 and lines[0].startswith(b"qaicmodel SBL")
    (cmd,) = h.recv(21)
    assert cmd == bytes.fromhex("aa55000000000000")  # CMD_TO_HOST


def test_bhi_rejects_a_corrupt_image() -> None:
    img = bytearray(firmware.make_image(0))
    img[-1] ^= 1
    h = FakeHost()
    h.init_ctx()
    h.bhi_load(bytes(img))
    assert h.bhi(R.BHI_STATUS) >> 30 == R.BHI_STATUS_ERROR
    assert h.bhi(R.BHI_ERRCODE) == firmware.ERR_CRC
    assert h.b.ee == "PBL" and h.msis  # the intvec MSI wakes boot.c's wait


def test_bhi_accept_any_policy() -> None:
    h = FakeHost(policies={"bhi-image-check": "accept-any"})
    h.init_ctx()
    h.bhi_load(b"not an image at all")
    assert h.bhi(R.BHI_STATUS) >> 30 == R.BHI_STATUS_SUCCESS


def test_bhi_image_outside_memory_is_a_violation() -> None:
    h = FakeHost()
    bhi = h.r(R.BHIOFF)
    h.w(bhi + R.BHI_IMGADDR_HIGH, 0x7)
    h.w(bhi + R.BHI_IMGADDR_LOW, 0)
    h.w(bhi + R.BHI_IMGSIZE, 4096)
    h.w(bhi + R.BHI_IMGTXDB, 1)
    h.run()
    assert h.bhi(R.BHI_STATUS) >> 30 == R.BHI_STATUS_ERROR
    assert [v.rule for v in h.b.violations] == ["BHI-DMA-FAULT"]


def test_missing_image_host_reset_keeps_sbl() -> None:
    images = {i: firmware.make_image(i) for i in firmware.AIC100_IMAGE_IDS if i != 4}
    h = FakeHost()
    h.power_up()
    h.sahara(images)
    s = h.b.services.sahara
    assert s.failed and "RESET" in s.failed
    assert list(s.received) == [1, 2]
    assert h.b.ee == "SBL"


def test_missing_image_sys_err_policy() -> None:
    images = {1: firmware.make_image(1)}
    h = FakeHost(policies={"sahara-failure": "sys-err"})
    h.power_up()
    h.sahara(images)
    assert h.b.mhi_state == "SYS_ERR"


def test_first_only_images() -> None:
    h = FakeHost(policies={"sahara-images": "first-only"})
    h.power_up()
    h.sahara()
    assert list(h.b.services.sahara.received) == [1] and h.b.ee == "AMSS"


def test_write_images(tmp_path: Path) -> None:
    paths = firmware.write_images(tmp_path)
    assert (tmp_path / "qcom/aic100/sbl.bin") in paths
    assert len(paths) == 1 + len(firmware.AIC100_IMAGE_IDS)
    for p in paths:
        data = p.read_bytes()
        assert firmware.check_image(data) == 0
    assert firmware.write_images(tmp_path / "nosbl", sbl=False, images=()) == []
    big = firmware.make_image(1)
    assert len(big) > 0xFFFF  # spans several MHI transfers
