"""The guest's processes: every process a run starts ends with it.

The guest kernel is started in its own session with ``PR_SET_PDEATHSIG`` and this
process as a child subreaper, so UML's helper processes (forked from vmlinux) are
reparented here and :class:`Reaper` can kill and reap all of them, whatever happens.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time

__all__ = ["Reaper", "set_pdeathsig"]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37

# -- processes -------------------------------------------------------------------


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int) -> int:
    return int(_libc().prctl(option, ctypes.c_ulong(arg), 0, 0, 0))


def set_pdeathsig() -> None:  # runs in the child between fork and exec
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _proc_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, session id, start time) of every process (from /proc/PID/stat)."""
    out: dict[int, tuple[int, int, int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                raw = fh.read()
        except OSError:
            continue
        rest = raw[raw.rfind(b")") + 2 :].split()
        try:
            out[int(name)] = (int(rest[1]), int(rest[3]), int(rest[19]))
        except (IndexError, ValueError):
            continue
    return out


class Reaper:
    """Finds and kills every process of one guest: its tree, the sessions its
    processes lead, and orphans reparented to this (subreaper) process.

    Processes are known by (pid, start time), so a recycled pid is never mistaken
    for a guest's; the runner's own session is never treated as the guest's.
    """

    def __init__(self) -> None:
        self.root: int | None = None
        self.known: dict[int, int] = {}  # pid -> start time
        self.sessions: set[int] = set()
        self._before: set[tuple[int, int]] = set()
        self._was_subreaper: int | None = None
        self._my_sid = os.getsid(0)

    def __enter__(self) -> Reaper:
        """Become a child subreaper (orphans of the guest's helpers come to us)."""
        flag = ctypes.c_int(0)
        try:
            if _libc().prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0:
                self._was_subreaper = flag.value
            _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        except (OSError, AttributeError):
            self._was_subreaper = None
        me = os.getpid()
        self._before = {(p, st) for p, (pp, _sid, st) in _proc_table().items() if pp == me}
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.kill_all()
        finally:
            self.restore()

    def restore(self) -> None:
        if self._was_subreaper is not None:
            _prctl(_PR_SET_CHILD_SUBREAPER, self._was_subreaper)
            self._was_subreaper = None

    def track(self, pid: int) -> None:
        """The guest itself (started in a session of its own)."""
        self.root = pid
        entry = _proc_table().get(pid)
        if entry is not None:
            self.known[pid] = entry[2]
            if entry[1] == pid and pid != self._my_sid:
                self.sessions.add(pid)

    def scan(self) -> set[int]:
        """The guest's processes now (and remember them)."""
        if self.root is None:
            return set()
        table = _proc_table()
        me = os.getpid()
        found = {p for p, st in self.known.items() if p in table and table[p][2] == st}
        for p, (pp, sid, st) in table.items():
            if p == me:
                continue
            if sid in self.sessions:
                found.add(p)
            elif pp == me and (p, st) not in self._before:
                found.add(p)  # an orphan of the guest's helpers, reparented to us
        grew = True
        while grew:
            grew = False
            for p, (pp, _sid, _st) in table.items():
                if pp in found and p not in found and p != me:
                    found.add(p)
                    grew = True
        for p in found:
            sid = table[p][1]
            if sid == p and sid != self._my_sid:
                self.sessions.add(sid)  # a guest process that called setsid()
            self.known[p] = table[p][2]
        return found

    def kill_all(self, wait: float = 5.0) -> list[int]:
        """SIGKILL every process of the guest and reap the ones that are our children;
        returns the pids still alive afterwards (empty when all is well)."""
        deadline = time.monotonic() + wait
        while True:
            alive = {p for p in self.scan() if not _is_zombie(p)}
            if not alive or time.monotonic() > deadline:
                break
            for p in alive:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
            self._reap()
        self._reap()
        return sorted(alive)

    def _reap(self) -> None:
        for p in list(self.known):
            if p == self.root:
                continue  # the guest itself: its Popen reaps it
            try:
                got, _ = os.waitpid(p, os.WNOHANG)
            except ChildProcessError:
                continue
            if got == p:
                del self.known[p]


def _exists(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return True
    return raw[raw.rfind(b")") + 2 : raw.rfind(b")") + 3] in (b"Z", b"X")


# -- one run -----------------------------------------------------------------------
