"""PCIe identity: ids, BARs, MSI allocation, passthrough ownership (ssr-ras-boot.md §6)."""

from __future__ import annotations

import pytest

from qaicmodel.errors import ArgumentError, IoctlError
from qaicmodel.spec.control import pcie
from qaicmodel.spec.policies import Policies


def test_ids_and_bars() -> None:
    assert pcie.VENDOR == 0x17CB
    assert set(pcie.DEVICES) == {0xA100, 0xA080, 0xA110}
    b = pcie.bars()
    assert [(x.index, x.size) for x in b] == [(0, 4096), (2, 2 << 20), (4, 64 << 10)]
    assert pcie.bar_mask(pcie.Family.AIC100) == 0x15
    assert pcie.bar_mask(pcie.Family.AIC200) == 0x17
    pcie.check_bars(0x15)
    pcie.check_bars(0x15 | 0x40)  # bits above 5 are masked off
    with pytest.raises(IoctlError) as e:
        pcie.check_bars(0x05)
    assert e.value.name == "EINVAL"
    assert pcie.dbc_reg_offset(3, 0xC) == 0x20000 + 0x3000 + 0xC
    with pytest.raises(ArgumentError):
        pcie.dbc_reg_offset(16, 0)


def test_msi_power_of_two() -> None:
    assert [pcie.msi_enable_count(n) for n in (1, 2, 3, 17, 32)] == [1, 2, 4, 32, 32]
    with pytest.raises(ArgumentError):
        pcie.msi_enable_count(33)


def test_msi_allocation_default_driver() -> None:
    a = pcie.alloc_msi(32)
    assert (a.vectors, a.enabled, a.single_msi) == (17, 32, False)
    assert a.vector_of(None) == 0 and a.vector_of(0) == 1 and a.vector_of(15) == 16
    one = pcie.alloc_msi(17)  # 17 assignable is not enough: MSI enables 32
    assert one.single_msi and one.vector_of(7) == 0
    with pytest.raises(IoctlError):
        pcie.alloc_msi(0)


def test_msi_policies() -> None:
    with pytest.raises(IoctlError) as e:
        pcie.alloc_msi(17, Policies({"pcie-msi-count": "require-32"}))
    assert e.value.name == "ENODEV"
    assert pcie.alloc_msi(17, Policies({"pcie-msix": "msix-present"})).vectors == 17
    assert pcie.alloc_msi(31, Policies({"pcie-msi-count": "exact-32-fallback-1"})).single_msi


def test_passthrough_single_owner() -> None:
    c = pcie.Card()
    c.assign("vm1")
    c.assign("vm1")
    with pytest.raises(IoctlError) as e:
        c.assign("host")
    assert e.value.name == "EBUSY"
    c.release("vm1")
    c.assign("host")
    ident = c.identity()
    assert ident["flr"] is False and ident["msix"] is False and ident["device"] == "0xa100"
    with pytest.raises(ArgumentError):
        pcie.Card(0x1234)


def test_window_and_single_msi_policies() -> None:
    assert pcie.dbc_reg_offset(1, 4, Policies({"pcie-register-window": "bar-start"})) == 0x1004
    a = pcie.alloc_msi(8, Policies({"pcie-single-msi-routing": "unsupported"}))
    assert a.single_msi and a.vector_of(3) is None and a.vector_of(None) == 0


def test_mhi_policies() -> None:
    from qaicmodel.spec.control import mhi

    amss = {
        c.name for c in mhi.channels_in(mhi.Ee.AMSS, policies=Policies({"mhi-ipcr": "present"}))
    }
    assert "IPCR" in amss
    assert "QAIC_TELEMETRY" not in mhi.host_clients()
    assert "QAIC_TELEMETRY" in mhi.host_clients(Policies({"telemetry-channel": "out-of-tree"}))
    assert "QAIC_CONTROL" in mhi.host_clients() and "IPCR" not in mhi.host_clients()
