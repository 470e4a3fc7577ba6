"""The splat classifier on the real consoles of the feasibility runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from qaicmodel.emu import splat

pytestmark = pytest.mark.uml

#: copies of the feasibility runs' consoles (shared/reference/uml/boot-console-*.txt)
CONSOLES = Path(__file__).parent / "consoles"


def _console(name: str) -> list[str]:
    return (CONSOLES / name).read_text().splitlines()


def test_7_2_poweroff_panic_is_found_with_its_function() -> None:
    found = splat.find(_console("boot-console-7.2.13.txt"))
    assert len(found) == 1
    s = found[0]
    assert s.kind == "panic"
    assert s.text.startswith("Kernel panic - not syncing: Kernel mode fault at addr 0x28")
    assert s.where == "mhi_deinit_dev_ctxt+0x52/0xf8"
    assert "mhi_deinit_dev_ctxt" in s.quote()


def test_6_12_boot_has_no_splat() -> None:
    lines = _console("boot-console-6.12.117.txt")
    assert any("operating in 1 MSI mode" in x for x in lines)
    assert splat.find(lines) == []


@pytest.mark.parametrize(
    "line, kind",
    [
        (
            "[    1.234567] WARNING: CPU: 0 PID: 1 at drivers/bus/mhi/host/pm.c:123 foo+0x1/0x2",
            "warning",
        ),
        ("[    0.5] BUG: KASAN: slab-use-after-free in mhi_irq_handler+0x2c/0x1a0", "kasan"),
        ("WARNING: possible circular locking dependency detected", "lockdep"),
        ("BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580", "bug"),
        ("kernel BUG at drivers/accel/qaic/qaic_data.c:42!", "bug"),
        ("Oops: general protection fault, probably for non-canonical address", "oops"),
        ("Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b", "panic"),
        ("watchdog: BUG: soft lockup - CPU#0 stuck for 22s!", "bug"),
        ("INFO: task kworker/0:1:12 blocked for more than 120 seconds.", "lockup"),
        ("UBSAN: shift-out-of-bounds in drivers/bus/mhi/host/main.c:10:2", "ubsan"),
    ],
)
def test_splat_lines(line: str, kind: str) -> None:
    assert splat.classify_line(line) == kind


@pytest.mark.parametrize(
    "line",
    [
        "Checking that ptrace can change system call numbers...OK",
        "mhi mhi0: Direct firmware load for qcom/aic100/sbl.bin failed with error -2",
        "qaic 0000:00:00.0: Allocating 17 MSIs failed, operating in 1 MSI mode. Performance may be impacted.",
        "Failed to initialize ubd device 0 :Couldn't determine size of device's file",
        "epollctl add err fd 1, Operation not permitted",
        "[    0.000000] Kernel command line: root=/dev/root rootfstype=hostfs",
        "qaicmodel-init: command exited with status 0",
    ],
)
def test_not_splats(line: str) -> None:
    assert splat.classify_line(line) is None


def test_cut_here_and_its_warning_count_once() -> None:
    lines = [
        "------------[ cut here ]------------",
        "WARNING: CPU: 0 PID: 7 at arch/um/drivers/virtio_pcidev.c:165 send_cmd+0x1/0x2",
        "um virt-pci delay: 40001",
        "Call Trace:",
        " [<6003d327>] virtio_pcidev_send_cmd+0xb9/0xc1",
    ]
    found = splat.find(lines)
    assert [s.kind for s in found] == ["warning"]
    assert found[0].line == 2 and found[0].where == "virtio_pcidev_send_cmd+0xb9/0xc1"
