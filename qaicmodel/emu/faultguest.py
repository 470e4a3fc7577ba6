"""The guest side of ``qaicmodel uml faults``: one episode per fault, in one boot.

Runs inside the UML guest (``python3 -m qaicmodel.emu.faultguest CTRL NAME...``).

Rules:
  G1 the host and the guest talk through the command's output and a host directory
     (hostfs, ``CTRL``): the guest prints ``@@fault REQUEST`` and waits for the file
     ``CTRL/ack-N`` (N counts the requests); requests: ``arm I NAME`` (the host
     power-cycles the board and arms NAME), ``done I`` (the host disarms it),
     ``result JSON`` (no answer);
  G2 one episode: kernel-log mark ``qaicmodel-fault: begin NAME`` (/dev/kmsg, so the
     console shows where the episode starts), arm, bind the driver, wait for the
     device online, run the workload (:func:`workload`, a child process), check the
     device once more (a status MANAGE after up to 20 s: did the driver recover?),
     unbind, mark ``end NAME``, disarm, print the result;
  G3 every step that can block in the kernel runs in a child process with a
     timeout; a child that does not end is a stuck task: the result says which step
     and the guest stops (exit status 3), because a wedged driver makes the next
     episodes meaningless; the host boots a new guest for the rest; the guest also
     stops when the host answers ``stop`` to ``done`` (it saw a kernel splat) and
     when the check after the workload failed (the driver is not usable any more);
  G4 the workload: MANAGE status, then the echo of qaicmodel.guest.client (activate,
     every data-path ioctl, two rounds, WAIT_BO timeout 3 s, close); it prints one
     JSON line with every call's result (``ok`` or the errno name).  A fault whose
     ``workload`` is ``dma`` (faults.py F6) runs :func:`dma_workload` instead: MANAGE
     status, a load of a 16-page buffer (one message), its unload, a load of a
     :data:`SPLIT_PAGES`-page scattered buffer (the driver splits it: client.py G5) and
     its unload.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "workload"]

PCI = "0000:00:00.0"
DRV = "/sys/bus/pci/drivers/qaic"
ACCEL = "/dev/accel/accel0"
STUCK_EXIT = 3
#: pages of the split load: one segment each, 4026 fit the first message (7.2
#: encode_addr_size_pairs with the 32-byte LOAD_ELF passthrough before it), the rest the second
SPLIT_PAGES = 4100


def workload(timeout_ms: int = 3000) -> dict[str, Any]:
    """G4: status, then the echo; every call's result."""
    from qaicmodel.guest import client, wait_online
    from qaicmodel.guest import status as guest_status

    online = wait_online(ACCEL, 15.0)
    calls: list[list[str]] = []
    try:
        st = guest_status(ACCEL)
        calls.append(["status", "ok" if "major" in st else "EPROTO"])
    except OSError as e:
        calls.append(["status", client.errno_name(e)])
    res = client.echo(ACCEL, rounds=2, timeout_ms=timeout_ms)
    calls += [list(c) for c in res.get("calls", [])]
    return {
        "online": online,
        "calls": calls,
        "error": res.get("error"),
        "echo_intact": res.get("echo_intact"),
        "partial_intact": res.get("partial_intact"),
    }


def dma_workload() -> dict[str, Any]:
    """G4, ``dma``: status, a one-message load, a split load; every call's result."""
    from qaicmodel.guest import client, wait_online
    from qaicmodel.guest import status as guest_status

    out: dict[str, Any] = {"online": wait_online(ACCEL, 15.0), "error": None}
    calls: list[list[str]] = []
    out["calls"] = calls

    def call(name: str, fn: Any, *a: Any) -> Any:
        try:
            r = fn(*a)
        except OSError as e:
            calls.append([name, client.errno_name(e)])
            out["error"] = out["error"] or f"{client.errno_name(e)}: {e.strerror}"
            return None
        calls.append([name, "ok"])
        return r

    def status() -> dict[str, Any]:
        st = guest_status(ACCEL)
        if "major" not in st:
            raise OSError(errno.EPROTO, "no status answer")
        return st

    call("status", status)
    try:
        with client.Client(ACCEL) as c:
            for name, pages, scattered in (("load", 16, False), ("load-split", SPLIT_PAGES, True)):
                with client.DmaBuffer(pages, scattered=scattered) as b:
                    elf = call(name, c.load, b.addr, b.size, len(calls))
                if elf is not None:
                    call("unload", c.unload, elf)
    except OSError as e:  # opening the node, or mapping a buffer (not the MANAGE)
        calls.append(["setup", client.errno_name(e)])
    return out


class _Host:
    def __init__(self, ctrl: Path) -> None:
        self.ctrl = ctrl
        self.n = 0

    def ask(self, request: str, timeout: float = 30.0) -> str | None:
        n = self.n
        self.n += 1
        print(f"@@fault {n} {request}", flush=True)
        ack = self.ctrl / f"ack-{n}"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if ack.exists():
                return ack.read_text()
            time.sleep(0.02)
        return None

    def tell(self, request: str) -> None:
        print(f"@@fault - {request}", flush=True)


def _kmsg(text: str) -> None:
    try:
        with open("/dev/kmsg", "w") as fh:
            fh.write(f"qaicmodel-fault: {text}\n")
    except OSError:
        pass


def _child(argv: list[str], timeout: float) -> tuple[int | None, str]:
    """G3: (exit status or None if it did not end, stdout)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out
    except subprocess.TimeoutExpired:
        p.kill()
        try:
            out, _ = p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            out = ""  # in D state: it cannot even die
        return None, out


def _sysfs(action: str, timeout: float) -> bool:
    rc, _ = _child(["/bin/sh", "-c", f"echo {PCI} > {DRV}/{action}"], timeout)
    return rc is not None


def _episode(host: _Host, i: int, name: str, episode_s: float) -> dict[str, Any]:
    from qaicmodel.emu.faults import fault

    r: dict[str, Any] = {"fault": name, "index": i}
    kind = fault(name).workload
    t0 = time.monotonic()
    _kmsg(f"begin {name}")
    if host.ask(f"arm {i} {name}") is None:
        r["stuck"] = "arm (no answer from the host)"
        return r
    if not _sysfs("bind", 30):
        r["stuck"] = "bind"
        return r
    rc, out = _child(
        [sys.executable, "-m", "qaicmodel.emu.faultguest", "--workload", kind], episode_s
    )
    if rc is None:
        r["stuck"] = "workload"
        line = next((ln for ln in out.splitlines() if ln.startswith("{")), None)
        if line:
            r.update(json.loads(line))
        return r
    line = next((ln for ln in out.splitlines() if ln.startswith("{")), None)
    r.update(json.loads(line) if line else {"error": f"workload exited {rc} without a result"})
    rc, out = _child([sys.executable, "-m", "qaicmodel.guest", "status", "--wait", "20"], 40)
    if rc is None:
        r["stuck"] = "post-check status"
        return r
    line = next((ln for ln in out.splitlines() if ln.startswith("{")), "{}")
    post = json.loads(line)
    r["post"] = "ok" if "major" in post else str(post.get("error", "no answer")).split(":")[0]
    if not _sysfs("unbind", 30):
        r["stuck"] = "unbind"
        return r
    _kmsg(f"end {name}")
    r["seconds"] = round(time.monotonic() - t0, 2)
    return r


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--workload"]:
        res = dma_workload() if args[1:2] == ["dma"] else workload()
        print(json.dumps(res), flush=True)
        return 0
    ctrl, names = Path(args[0]), args[1:]
    episode_s = float(os.environ.get("QAICMODEL_FAULT_EPISODE_S", "60"))
    host = _Host(ctrl)
    from qaicmodel.guest import wait_online

    wait_online(ACCEL, 30.0)  # the boot-time probe: let it finish before the unbind
    if not _sysfs("unbind", 30):
        host.tell(json.dumps({"stuck": "initial unbind"}))
        return STUCK_EXIT
    _kmsg("episodes start")
    for i, name in enumerate(names):
        r = _episode(host, i, name, episode_s)
        if "stuck" in r:
            _kmsg(f"end {name} (stuck: {r['stuck']})")
        answer = host.ask(f"done {i}", timeout=10)
        host.tell("result " + json.dumps(r))
        if "stuck" in r:
            return STUCK_EXIT
        if answer == "stop" or r.get("post") != "ok":
            return 0  # a splat, or a driver left unusable: the rest in a fresh boot
    return 0


if __name__ == "__main__":
    sys.exit(main())
