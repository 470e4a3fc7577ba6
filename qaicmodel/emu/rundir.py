"""The run directory of ``qaicmodel uml run`` and what the guest leaves in it.

A run directory (``qaicmodel-uml-*`` under the system's temporary directory) holds the
vhost-user socket, UML's pid file and mconsole socket (``uml_dir=``), the firmware
path, the init script and the command's ``status``; its ``owner`` file names the
runner (pid and start time), so a directory whose runner was killed outright is
recognised and removed by the next run.  Also here: the console hints for known
environment problems (not driver findings) and the pipe drain used after the guest
exited.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["HINTS", "RUNDIR_PREFIX", "hints", "owner_tag", "remove_stale_rundirs", "read_status"]


#: console line -> what it means (known environment problems, not driver findings)
HINTS = {
    "ptrace set fp regs failed": "this kernel's UML cannot start user space on this host: "
    "6.12's arch/x86/um/os-Linux/registers.c passes a fixed FP_SIZE buffer to "
    "PTRACE_SETREGSET(NT_X86_XSTATE), smaller than the host's XSAVE area (AVX-512/AMX), so "
    "init dies with SIGSEGV; 7.2 sizes it from the host (host_fp_size): use --kernel 7.2",
}


def hints(lines: list[str]) -> list[str]:
    return [h for key, h in HINTS.items() if any(key in ln for ln in lines)]


RUNDIR_PREFIX = "qaicmodel-uml-"


def owner_tag(pid: int) -> str:
    """pid and start time: a recycled pid is not the owner."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
        start = int(raw[raw.rfind(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        start = 0
    return f"{pid} {start}\n"


def remove_stale_rundirs() -> None:
    """Run directories whose runner was killed outright (SIGKILL skips ``finally``):
    their owner process is gone, so nobody uses them."""
    base = Path(tempfile.gettempdir())
    for d in base.glob(RUNDIR_PREFIX + "*"):
        try:
            pid_s, start_s = (d / "owner").read_text().split()
            pid = int(pid_s)
        except (OSError, ValueError):
            continue  # not ours to judge (no owner file)
        if owner_tag(pid) != f"{pid} {start_s}\n":
            shutil.rmtree(d, ignore_errors=True)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _drain(fd: int, data_cb: Callable[[bytes], None]) -> None:
    """Read what a pipe still holds after its writer exited (until EOF or 1 s)."""
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if not r:
            return
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        data_cb(data)


def read_status(rundir: Path) -> tuple[int | None, str | None]:
    status: int | None = None
    err: str | None = None
    try:
        status = int(json.loads((rundir / "status").read_text())["status"])
    except (OSError, ValueError, KeyError, TypeError):
        status = None
    try:
        err = (rundir / "init-error").read_text().strip() or None
    except OSError:
        err = None
    return status, err
