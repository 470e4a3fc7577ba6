"""``qaicmodel bench --uml``: the bridge's cost, as ratios to a plain socket round trip.

Three figures, measured in one run:

* ``socket_rtt``: a 16-byte request and a 16-byte answer over a unix socketpair
  between two processes (the floor any request/answer bridge pays);
* guest MMIO through the bridge: a program in the guest reads the driver's
  debugfs file ``dbc000/queued``, whose ``queued_show`` reads REQ_HP and REQ_TP
  with ``readl`` (drivers/accel/qaic/qaic_debugfs.c, ``qaic_data_get_fifo_info``,
  7.2): two MMIO reads through virt-pci, vhost-user, the backend and the model per
  read of the file; config-space reads (``pread`` of the sysfs ``config`` file,
  one CFG_READ round trip each) are measured beside them;
* boot to online: from starting the guest to the moment the model's QSM sends
  the answer to the driver's first status transaction (what makes the driver
  set the device ONLINE, qaic_drv.c ``qaic_mhi_probe``), full boot (PBL, BHI,
  SBL, Sahara, AMSS).

Absolute times on a shared 2-core machine are noise; the ratios are the claim.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import time
from typing import Any

from qaicmodel.errors import UmlError

__all__ = ["socket_rtt", "guest_rates", "boot_to_online", "run"]

_GUEST = r"""
import glob, os, subprocess, sys, time
n = int(sys.argv[1])
out = {}
fd = os.open("/sys/bus/pci/devices/0000:00:00.0/config", os.O_RDONLY)
t = time.perf_counter()
for _ in range(n):
    os.pread(fd, 4, 0)
out["cfg_read_s"] = (time.perf_counter() - t) / n
os.close(fd)
if not os.path.ismount("/sys/kernel/debug"):
    subprocess.run(["mount", "-t", "debugfs", "none", "/sys/kernel/debug"], check=True)
paths = sorted(glob.glob("/sys/kernel/debug/accel/*/dbc000/queued"))
if not paths:
    print("BENCH-ERROR no dbc000/queued in debugfs", flush=True)
    sys.exit(4)
fd = os.open(paths[0], os.O_RDONLY)
os.pread(fd, 64, 0)
t = time.perf_counter()
for _ in range(n):
    os.pread(fd, 64, 0)
out["queued_read_s"] = (time.perf_counter() - t) / n
print("BENCH " + __import__("json").dumps(out), flush=True)
"""


def socket_rtt(n: int = 20000) -> float:
    """Seconds per 16-byte request + 16-byte answer over a unix socketpair (median of 5)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # the echoing peer
        try:
            a.close()
            while True:
                m = b.recv(16)
                if not m:
                    break
                b.sendall(m)
        finally:
            os._exit(0)
    b.close()
    try:
        msg = bytes(16)
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(n // 5):
                a.sendall(msg)
                got = 0
                while got < 16:
                    got += len(a.recv(16 - got))
            runs.append((time.perf_counter() - t) / (n // 5))
        return statistics.median(runs)
    finally:
        a.close()
        os.waitpid(pid, 0)


def _board(seed: int) -> Any:
    from qaicmodel.emu.board import Board

    return Board(seed=seed)


def guest_rates(
    kernel: str = "7.2", *, n: int = 2000, seed: int = 0, timeout: float = 120.0
) -> dict[str, float]:
    """Seconds per guest config read and per debugfs ``queued`` read (2 MMIO reads)."""
    from qaicmodel.emu import runner

    with open(os.devnull, "wb") as sink:
        res = runner.run(
            [sys.executable, "-c", _GUEST, str(n)],
            kernel=kernel,
            board=_board(seed),
            seed=seed,
            timeout=timeout,
            capture=True,
            echo=sink,
            unbind=True,
        )
    why = res.failure()
    text = res.output.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCH ")), None)
    if why is not None or line is None:
        raise UmlError(
            f"the guest benchmark failed: {why or text.strip()[-200:]} (console {res.console})"
        )
    out: dict[str, float] = json.loads(line[6:])
    return out


def boot_to_online(
    kernel: str = "7.2", *, seed: int = 0, repeat: int = 3, timeout: float = 120.0
) -> float:
    """Median seconds from starting the guest to the QSM's first status answer."""
    from qaicmodel.emu import runner

    times = []
    for i in range(repeat):
        board = _board(seed + i)
        t0 = time.monotonic()
        online: list[float] = []
        control = board.services._control

        def spy(
            direction: str,
            ch: int,
            data: bytes,
            _c: Any = control,
            _o: list[float] = online,
            _b: Any = board,
        ) -> None:
            _c(direction, ch, data)
            if (
                direction == "d2h"
                and not _o
                and any("Status" in n for n in _b.services.control_log[-1][2])
            ):
                _o.append(time.monotonic())

        board.services._control = spy
        with open(os.devnull, "wb") as sink:
            res = runner.run(
                ["true"],
                kernel=kernel,
                board=board,
                seed=seed + i,
                timeout=timeout,
                capture=True,
                echo=sink,
                unbind=True,
            )
        if not online:
            raise UmlError(
                f"the device never went online: {res.failure() or 'no status answer'}"
                f" (console {res.console})"
            )
        times.append(online[0] - t0)
    return statistics.median(times)


def run(kernel: str = "7.2", *, n: int = 2000, seed: int = 0) -> dict[str, Any]:
    """All three figures and their ratios, from one run."""
    rtt = socket_rtt()
    rates = guest_rates(kernel, n=n, seed=seed)
    online = boot_to_online(kernel, seed=seed)
    mmio = rates["queued_read_s"] / 2
    return {
        "kernel": kernel,
        "machine": f"{os.cpu_count()} cores, {sys.platform}, Python {sys.version.split()[0]}",
        "socket_rtt_us": rtt * 1e6,
        "guest_cfg_read_us": rates["cfg_read_s"] * 1e6,
        "guest_mmio_read_us": mmio * 1e6,
        "guest_mmio_reads_per_s": 1 / mmio,
        "mmio_over_socket_rtt": mmio / rtt,
        "cfg_over_socket_rtt": rates["cfg_read_s"] / rtt,
        "boot_to_online_s": online,
        "boot_to_online_in_socket_rtts": online / rtt,
    }


def report(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"UML bridge, kernel {r['kernel']} ({r['machine']}):",
            f"  plain socket round trip (16 B each way)      {r['socket_rtt_us']:9.1f} us",
            f"  guest MMIO read through the real driver      {r['guest_mmio_read_us']:9.1f} us"
            f"   ({r['guest_mmio_reads_per_s']:.0f}/s, {r['mmio_over_socket_rtt']:.1f}x the socket)",
            f"  guest config-space read                      {r['guest_cfg_read_us']:9.1f} us"
            f"   ({r['cfg_over_socket_rtt']:.1f}x the socket)",
            f"  boot to online (PBL, BHI, SBL, Sahara, AMSS) {r['boot_to_online_s']:9.3f} s"
            f"    ({r['boot_to_online_in_socket_rtts']:.0f} socket round trips)",
        ]
    )


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - `qaicmodel bench --uml`
    r = run()
    print(report(r))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
