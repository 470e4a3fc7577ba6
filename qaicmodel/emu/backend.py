"""The single-threaded event loop behind the guest's vhost-user socket.

One loop turn (:meth:`Backend.turn`): wait (``selectors``) for the socket, the
virtqueue kick eventfds and any reader the runner added (the guest console, the
guest's exit); handle every vhost-user message, service virtqueue 0 (polled as
well as kicked: kicks coalesce), flush queued MSIs into virtqueue 1; then let the
board make progress: the **seeded scheduler** picks one of ``board.actions()``
(:meth:`Backend.pick`: a function of the seed, the enabled actions and how often
exactly those were enabled before, so a guest-timing difference that changes one
choice does not shift every later one; emu/determinism.py measures it) and calls
``board.step(action)``, at most
``steps_per_turn`` times and never while the guest has a request waiting, so a
guest register read is answered within one step.  There are no threads and no
clocks in the device: the scheduler is its only source of progress, and the same
seed replays the same choices for the same guest behaviour.

The loop never blocks while the board has actions enabled (select timeout 0).
"""

from __future__ import annotations

import hashlib
import os
import random
import select
import selectors
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qaicmodel.emu.config import ConfigSpace
from qaicmodel.emu.guestmem import GuestMemory
from qaicmodel.emu.vhost import VhostUserDevice, recv_message
from qaicmodel.emu.virtpci import Board, Violation, VirtPci
from qaicmodel.errors import UmlError

__all__ = ["Backend", "CMD_VQ", "IRQ_VQ", "device_arg", "VIRTIO_DEVICE_ID"]

CMD_VQ = 0
IRQ_VQ = 1
#: CONFIG_UML_PCI_OVER_VIRTIO_DEVICE_ID in the project's kconfig fragment
VIRTIO_DEVICE_ID = 1234
_LISTEN, _CONN, _KICK, _EXTRA = "listen", "conn", "kick", "extra"


class Backend:
    """The device side of one guest: vhost-user + virt-pci + a board + the scheduler.

    ``board`` is any object with the board contract (:mod:`qaicmodel.emu`);
    ``config`` defaults to the AIC100's config space from the model's PCIe module.
    ``present`` False: slot 0 looks empty until :meth:`plug` (the runner's hot-plug).
    ``log`` (optional) gets one line per noteworthy event.

    Use: :meth:`listen` (or :meth:`adopt` a connected socket), then :meth:`turn` /
    :meth:`serve` until done, :meth:`close`; :attr:`violations` and :meth:`summary`
    say what happened.  The board is attached (``board.attach(mem, msi)``) when the
    guest sends its memory table.
    """

    def __init__(
        self,
        board: Board,
        *,
        seed: int = 0,
        steps_per_turn: int = 32,
        config: ConfigSpace | None = None,
        present: bool = True,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.board = board
        self.seed = seed
        self.rng = random.Random(seed)
        self._seen: dict[str, int] = {}  # enabled set -> times seen (pick)
        self.wait_s = 0.0  # seconds spent waiting in select (the guest's turn; bench)
        self.steps_per_turn = steps_per_turn
        self.config = config or ConfigSpace(bar4_size=board.bars.get(4, 0x10000))
        self.pci = VirtPci(self.config, board, present=present)
        self.vu = VhostUserDevice(2, on_memory=self._on_memory)
        self.sel = selectors.DefaultSelector()
        self.listener: socket.socket | None = None
        self.socket_path: Path | None = None
        self.conn: socket.socket | None = None
        self.connected = False
        self.disconnected = False
        self._kicks: dict[int, int] = {}  # fd -> queue index
        self._extra: dict[int, Callable[[int], None]] = {}
        self.log = log
        self.steps = 0
        self.turns = 0
        self.pci.immediate = False  # the loop decides when MSIs go out (F7)
        self._msi_at = float("-inf")  # when the last MSI went out (time.monotonic)
        self._hold_t: float | None = None  # since when MSIs wait behind answered turns
        self.messages = 0
        self.attached = False
        self.started = time.monotonic()

    # -- the board --------------------------------------------------------------

    def _on_memory(self, mem: GuestMemory) -> None:
        self._say(
            f"memory table: {', '.join(f'guest {r.guest_addr:#x}+{r.size:#x}' for r in mem.table())}"
        )
        self.board.attach(mem, self.pci.msi)
        self.attached = True

    def plug(self) -> None:
        """Make the function appear in slot 0 (the guest finds it at its next bus scan)."""
        self.pci.present = True

    def _say(self, text: str) -> None:
        if self.log is not None:
            self.log(text)

    @property
    def violations(self) -> list[Violation]:
        """The emulator's own violations, then the board's (as :class:`Violation`)."""
        out = list(self.pci.violations)
        for v in getattr(self.board, "violations", None) or []:
            if isinstance(v, Violation):
                out.append(v)
            elif isinstance(v, tuple) and len(v) >= 2:
                out.append(Violation(str(v[0]), str(v[1])))
            else:
                rule = getattr(v, "rule", None)
                out.append(
                    Violation(str(rule), str(getattr(v, "where", v)))
                    if rule
                    else Violation(str(v), "")
                )
        return out

    # -- sockets ----------------------------------------------------------------

    def listen(self, path: str | os.PathLike[str]) -> Path:
        """Bind and listen on the unix socket the guest connects to."""
        p = Path(path)
        if len(os.fsencode(p)) >= 108:
            raise UmlError(f"socket path {p} is too long for a unix socket (max 107 bytes)")
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(p))
        s.listen(1)
        s.setblocking(False)
        self.listener = s
        self.socket_path = p
        self.sel.register(s, selectors.EVENT_READ, (_LISTEN, None))
        return p

    def adopt(self, conn: socket.socket) -> None:
        """Use an already connected socket (tests: a socketpair)."""
        self._set_conn(conn)

    def _set_conn(self, conn: socket.socket) -> None:
        conn.setblocking(True)
        conn.settimeout(5.0)  # a started message must finish within this
        self.conn = conn
        self.connected = True
        self.sel.register(conn, selectors.EVENT_READ, (_CONN, None))
        self._say("guest connected")

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        if self.conn is not None or self.disconnected:
            conn.close()  # one frontend per device
            return
        self._set_conn(conn)

    def add_reader(self, fd: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(fd)`` from the loop whenever ``fd`` is readable."""
        self._extra[fd] = callback
        self.sel.register(fd, selectors.EVENT_READ, (_EXTRA, callback))

    def remove_reader(self, fd: int) -> None:
        if self._extra.pop(fd, None) is not None:
            try:
                self.sel.unregister(fd)
            except (KeyError, ValueError):
                pass

    def _sync_kicks(self) -> None:
        want = {q.kick_fd: q.index for q in self.vu.queues if q.kick_fd is not None}
        for fd in list(self._kicks):
            if want.get(fd) != self._kicks[fd]:
                try:
                    self.sel.unregister(fd)
                except (KeyError, ValueError):
                    pass
                del self._kicks[fd]
        for fd, index in want.items():
            if fd not in self._kicks:
                self.sel.register(fd, selectors.EVENT_READ, (_KICK, index))
                self._kicks[fd] = index

    def _drop_conn(self) -> None:
        if self.conn is not None:
            try:
                self.sel.unregister(self.conn)
            except (KeyError, ValueError):
                pass
            self.conn.close()
            self.conn = None
        for fd in list(self._kicks):
            try:
                self.sel.unregister(fd)
            except (KeyError, ValueError):
                pass
        self._kicks.clear()
        self.vu.close()
        self.disconnected = True

    # -- the loop ---------------------------------------------------------------

    def _handle_messages(self, limit: int = 64) -> None:
        """Every whole message waiting on the socket (at most ``limit``)."""
        for _ in range(limit):
            if self.conn is None:
                return
            msg = recv_message(self.conn)
            if msg is None:
                self._say("guest closed the vhost-user connection")
                self._drop_conn()
                return
            self.messages += 1
            reply = self.vu.handle(msg)
            if reply is not None:
                try:
                    self.conn.sendall(self.vu.reply_header(msg, reply))
                except (BrokenPipeError, ConnectionResetError):
                    self._drop_conn()
                    return
            self.pci.bind(self.vu.queues[CMD_VQ], self.vu.queues[IRQ_VQ])
            self._sync_kicks()
            readable, _, _ = select.select([self.conn], [], [], 0)
            if not readable:
                return

    def busy(self) -> bool:
        """Something to do without waiting: board actions or guest requests queued."""
        if self.pci.msi_waiting and self.vu.queues[IRQ_VQ].pending():
            return True
        if self.vu.queues[CMD_VQ].pending():
            return True
        return bool(self.attached and self.board.actions())

    def turn(self, timeout: float | None) -> None:
        """One loop turn; waits at most ``timeout`` seconds (None: until an event)."""
        self.turns += 1
        wait = 0.0 if self.busy() else timeout
        t0 = time.perf_counter()
        events = self.sel.select(wait)
        self.wait_s += time.perf_counter() - t0
        for key, _ev in events:
            kind, arg = key.data
            if kind == _CONN:
                if self.conn is not None:
                    self._handle_messages()
            elif kind == _KICK:
                q = self.vu.queues[arg]
                q.drain_kick()
            elif kind == _LISTEN:
                self._accept()
            elif kind == _EXTRA:
                arg(key.fd)
        self._service()
        self._schedule()

    #: after an MSI went out, the first request waits this long before it is answered,
    #: so that a read the guest's interrupt handler issues meanwhile is outstanding too
    #: and is answered first (docs/findings.md F7); seconds
    MSI_SETTLE = 0.0005
    #: how long after an MSI the settle applies; seconds
    MSI_WINDOW = 0.005

    def _answer(self) -> int:
        """Answer every request on virtqueue 0 (in order, virtpci.service)."""
        cmd = self.vu.queues[CMD_VQ]
        if cmd.pending() and time.monotonic() - self._msi_at < self.MSI_WINDOW:
            time.sleep(self.MSI_SETTLE)
        return self.pci.service()

    #: the longest MSIs are held back by turns that answered requests; seconds (a guest
    #: that polls without pause would otherwise never get one)
    MSI_HOLD_MAX = 0.002

    def _send_msis(self) -> None:
        self._hold_t = None
        if self.pci.flush_msi():
            self._msi_at = time.monotonic()

    def _held_too_long(self) -> bool:
        if not self.pci.msi_waiting:
            self._hold_t = None
            return False
        now = time.monotonic()
        if self._hold_t is None:
            self._hold_t = now
        return now - self._hold_t > self.MSI_HOLD_MAX

    def _service(self) -> None:
        if self.conn is None:
            return
        if self._answer() == 0 or self._held_too_long():
            # MSIs go out on a turn that answered nothing (or after MSI_HOLD_MAX): an
            # interrupt that lands while the guest still spins on a read it was just
            # answered makes its handler's own read take that answer (docs/findings.md F7)
            self._send_msis()

    def _schedule(self) -> None:
        if not self.attached or self.conn is None:
            return
        cmd = self.vu.queues[CMD_VQ]
        for _ in range(self.steps_per_turn):
            acts = self.board.actions()
            if not acts:
                return
            action = acts[0] if len(acts) == 1 else self.pick(acts)
            self.board.step(action)
            self.steps += 1
            if cmd.pending():
                self._answer()  # the guest waits in a busy loop: answer first
                if self._held_too_long():
                    self._send_msis()
                return  # and hold MSIs until a later turn (F7)
            self._send_msis()

    def pick(self, acts: list[Any]) -> Any:
        """The seeded choice among ``acts``: blake2b of (seed, occurrence, the actions)."""
        key = repr(acts)
        n = self._seen[key] = self._seen.get(key, 0) + 1
        h = hashlib.blake2b(f"{self.seed}|{n}|{key}".encode(), digest_size=8).digest()
        return acts[int.from_bytes(h, "little") % len(acts)]

    def serve(
        self, until: Callable[[], bool], *, timeout: float | None = None, tick: float = 0.25
    ) -> bool:
        """Run turns until ``until()`` is true (True) or ``timeout`` seconds pass (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not until():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self.turn(tick if left is None else min(tick, left))
        return True

    def close(self) -> None:
        self._drop_conn()
        for fd in list(self._extra):
            self.remove_reader(fd)
        if self.listener is not None:
            try:
                self.sel.unregister(self.listener)
            except (KeyError, ValueError):
                pass
            self.listener.close()
            self.listener = None
        if self.socket_path is not None:
            try:
                self.socket_path.unlink()
            except FileNotFoundError:
                pass
        self.sel.close()

    def summary(self) -> dict[str, Any]:
        s = self.pci.stats
        return {
            "seed": self.seed,
            "messages": self.messages,
            "turns": self.turns,
            "steps": self.steps,
            "cfg_reads": s.cfg_reads,
            "cfg_writes": s.cfg_writes,
            "mmio_reads": s.mmio_reads,
            "mmio_writes": s.mmio_writes,
            "memsets": s.memsets,
            "msi_sent": s.msi_sent,
            "msi_dropped": s.msi_dropped,
            "wait_s": self.wait_s,
            "alive_s": time.monotonic() - self.started,
            "violations": [str(v) for v in self.violations],
        }


def device_arg(socket_path: str | os.PathLike[str]) -> str:
    """The guest's ``virtio_uml.device=`` value for this socket."""
    return f"virtio_uml.device={os.fspath(socket_path)}:{VIRTIO_DEVICE_ID}"
