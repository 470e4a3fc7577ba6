"""``qaicmodel uml run``: boot the UML guest against the device model, run a command in it.

The device model (:class:`~qaicmodel.emu.backend.Backend` with a board) runs in
*this* process; the guest kernel is a child process that connects to the
backend's unix socket.  The guest's root file system is the host's (hostfs), so
the host's Python and this project run inside it.  Its init is a Python script
(run by this interpreter, :data:`sys.executable`): it mounts proc, sysfs,
devtmpfs and a tmpfs with ``mount(2)`` through ctypes, runs the command with its
output on the guest's second console (``con1``, a pipe to the runner), writes the
command's status into the run directory and powers off with ``reboot(2)``.

Guest command line (names checked in both kernels): ``mem=``, ``root=/dev/root
rootfstype=hostfs rootflags=/ rw``, ``init=``, ``virtio_uml.device=SOCKET:1234``
(``arch/um/drivers/virtio_uml.c``), the virt-pci request timeout
``virt_pci.max_delay_us`` (6.12: ``virt-pci.c``) and ``virtio_pcidev.max_delay_us``
(7.2: ``virtio_pcidev.c``; a module parameter of a module that is not there is
ignored, so both are passed), ``con0=``/``con1=``/``con=`` and ``console=tty0``
(``arch/um/drivers/stdio_console.c``), ``uml_dir=``/``umid=``
(``arch/um/os-Linux/umid.c``: keeps UML's pid file and mconsole socket in the run
directory), ``firmware_class.path=``.

No process outlives :func:`run`: the guest gets ``PR_SET_PDEATHSIG``; the runner is
a child subreaper while it runs (UML's helpers call ``setsid`` — UML itself does
in ``arch/um/os-Linux/main.c`` — so a process group is not enough); at the end
every process descended from the guest, or reparented to the runner from its
sessions, is killed with SIGKILL and reaped, and the run directory is removed
(the console is kept).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from qaicmodel.emu import splat as splatmod
from qaicmodel.emu.guestinit import INIT_MARK, MAX_DELAY_US, guest_argv, init_script
from qaicmodel.emu.procs import Reaper, set_pdeathsig
from qaicmodel.emu.rundir import (  # noqa: F401 - HINTS: re-exported
    HINTS,
    RUNDIR_PREFIX,
    _drain,
    _raise_interrupt,
)
from qaicmodel.emu.rundir import hints as _hints
from qaicmodel.emu.rundir import owner_tag as _owner_tag
from qaicmodel.emu.rundir import read_status as _read_status
from qaicmodel.emu.rundir import remove_stale_rundirs as _remove_stale_rundirs
from qaicmodel.errors import ArgumentError, QaicModelError, UmlError

if TYPE_CHECKING:  # the device side is imported when a run starts (keeps the CLI light)
    from qaicmodel.emu.backend import Backend
    from qaicmodel.emu.virtpci import Violation

__all__ = [
    "run",
    "RunResult",
    "guest_argv",
    "init_script",
    "Reaper",
    "DEFAULT_TIMEOUT",
    "MAX_DELAY_US",
]

DEFAULT_TIMEOUT = 120.0
#: virt-pci's wait for an answer, in udelay(1) steps (default 40000: a slow answer
#: from a Python device must not make a register read fail with -EIO)
PANIC_GRACE = 3.0  # seconds the guest gets to exit by itself after a panic line


@attrs.define
class RunResult:
    """What a run came to; :meth:`failure` says why it is not a success, in one line."""

    status: int | None
    console: Path
    splats: list[splatmod.Splat]
    violations: list[Violation]
    timed_out: bool
    guest_exit: int | None
    seconds: float
    boot_seconds: float | None
    output: bytes
    error: str | None
    summary: dict[str, Any]
    leftover: list[int] = attrs.Factory(list)
    init_error: str | None = None
    timeout: float = 0.0
    hints: list[str] = attrs.Factory(list)

    def failure(self) -> str | None:
        if self.error:
            return self.error
        if self.splats:
            s = self.splats[0]
            more = f" (+{len(self.splats) - 1} more)" if len(self.splats) > 1 else ""
            hint = f"; {self.hints[0]}" if self.hints else ""
            return f"kernel {s.kind} in the guest, {s.quote()}{more}{hint}"
        if self.timed_out:
            return f"the guest did not finish within {self.timeout:g} s (--timeout)"
        if self.violations:
            v = self.violations
            return f"the guest broke the device's rules: {v[0]}" + (
                f" (+{len(v) - 1} more)" if len(v) > 1 else ""
            )
        if self.init_error:
            return f"the guest's init failed: {self.init_error}"
        if self.status is None:
            return (
                f"the guest exited (status {self.guest_exit}) without reporting the "
                "command's status"
            )
        if self.leftover:
            return f"processes outlived the guest: {self.leftover}"
        return None

    @property
    def exit_code(self) -> int:
        if self.failure() is not None:
            return 2 if self.status in (None, 0) else self.status
        return self.status or 0


def _default_board(policies: Sequence[str], seed: int) -> Any:
    """The model's board (``qaicmodel.emu.board.Board``) if it is part of this build,
    else None."""
    try:
        from qaicmodel.emu import board as boardmod
    except ModuleNotFoundError as e:
        if e.name == "qaicmodel.emu.board":
            return None
        raise
    return boardmod.Board(policies=policies, seed=seed)


def _write_firmware(directory: Path) -> None:
    try:
        from qaicmodel.emu import firmware
    except ModuleNotFoundError as e:
        if e.name == "qaicmodel.emu.firmware":
            return
        raise
    firmware.write_images(directory)


def resolve_kernel(
    kernel: str | None,
    vmlinux: Path | None = None,
    *,
    kernel_tree: Path | None = None,
    kasan: bool = False,
) -> Path:
    """The vmlinux to boot: ``vmlinux`` as given, else the cached build of ``kernel_tree``
    or of the Debian kernel ``kernel`` (``qaicmodel uml build`` made it)."""
    if vmlinux is not None:
        p = Path(vmlinux)
        if not p.is_file() or not os.access(p, os.X_OK):
            raise UmlError(f"{p} is not an executable UML kernel")
        return p
    from qaicmodel.emu import kbuild

    name = kernel or kbuild.DEFAULT_KERNEL
    flag = " --kasan" if kasan else ""
    if kernel_tree is not None:
        k = kbuild.find_kernel(name, kasan=kasan, kernel_tree=Path(kernel_tree))
        if k is None:
            raise UmlError(
                f"{kernel_tree} has not been built: run `qaicmodel uml build "
                f"--kernel-tree {kernel_tree}{flag}` first"
            )
        return Path(k.path)
    k = kbuild.find_kernel(name, kasan=kasan)
    if k is None:
        raise UmlError(
            f"no {name}{flag} kernel has been built: run `qaicmodel uml build "
            f"--kernel {name}{flag}` first"
        )
    return Path(k.path)


def run(
    cmd: Sequence[str] | None,
    *,
    kernel: str | None = None,
    vmlinux: Path | None = None,
    board: Any = None,
    policies: Sequence[str] = (),
    seed: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
    console: Path | None = None,
    mem: str = "256M",
    echo: IO[bytes] | None = None,
    capture: bool = False,
    log: Callable[[str], None] | None = None,
    steps_per_turn: int = 32,
    env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
    hotplug: bool = True,
    unbind: bool = True,
) -> RunResult:
    """Boot the guest against ``board`` (default: the model's board), run ``cmd`` in it.

    ``hotplug`` (default): the PCI function is absent while the kernel boots and is
    plugged in once the init has mounted the root file system (the init then
    rescans the bus), because the driver asks for its firmware as it probes and a
    UML kernel without initramfs has no file system before the root is mounted;
    ``hotplug=False`` presents it from the first bus scan.

    ``unbind`` (default): after the command, the init unbinds every PCI driver
    before it powers off, which avoids the qaic double teardown at poweroff
    (shutdown, then remove: the panic in ``mhi_deinit_dev_ctxt``, docs/findings.md
    F1); ``unbind=False`` powers off with the driver bound and so reproduces F1.

    ``cmd`` None is an interactive shell on the guest console (this process's
    terminal).  ``echo`` gets the command's output as it comes (default: this
    process's stdout); ``capture`` also keeps it in :attr:`RunResult.output`.
    The console is saved to ``console`` (default: a fresh file under the system's
    temporary directory) and kept.
    """
    if timeout <= 0:
        raise ArgumentError(f"--timeout must be positive, not {timeout}")
    if cmd is not None and not cmd:
        raise ArgumentError("no command given after --")
    path = resolve_kernel(kernel, vmlinux)
    if board is None:
        board = _default_board(policies, seed)
        if board is None:
            from qaicmodel.emu.testboard import StubBoard

            if log is not None:
                log(
                    "the model's board (qaicmodel.emu.board) is not part of this build: "
                    "running against the stand-in board (BARs read 0)"
                )
            board = StubBoard()
    trace_dir = os.environ.get("QAICMODEL_UML_TRACE_DIR")  # every run traced (emu/tracing.py T4)
    if trace_dir:
        from qaicmodel.emu import tracing

        board = tracing.wrap(board, trace_dir)
    if console is None:
        fd, name = tempfile.mkstemp(prefix="qaicmodel-uml-console-", suffix=".txt")
        os.close(fd)
        console = Path(name)
    g = _Guest(
        board,
        Path(console),
        echo=echo,
        capture=capture,
        log=log,
        seed=seed,
        steps_per_turn=steps_per_turn,
        interactive=cmd is None,
        hotplug=hotplug,
        unbind=unbind,
    )
    res = g.run(
        path,
        list(cmd) if cmd is not None else None,
        timeout=timeout,
        mem=mem,
        env=env,
        extra_args=extra_args,
    )
    if trace_dir:
        tracing.save(board, trace_dir, extra_args=extra_args, failure=res.failure(), seed=seed)
    return res


class _Guest:
    """The state of one run (the callbacks of the loop share it)."""

    def __init__(
        self,
        board: Any,
        console: Path,
        *,
        echo: IO[bytes] | None,
        capture: bool,
        log: Callable[[str], None] | None,
        seed: int,
        steps_per_turn: int,
        interactive: bool,
        hotplug: bool,
        unbind: bool,
    ) -> None:
        self.board = board
        self.hotplug = hotplug
        self.unbind = unbind
        self.rundir: Path | None = None
        self.plugged_at: float | None = None
        self.console = console
        self.out_sink = echo if echo is not None else getattr(sys.stdout, "buffer", None)
        self.capture = capture
        self.log = log
        self.seed = seed
        self.steps_per_turn = steps_per_turn
        self.interactive = interactive
        self.captured = bytearray()
        self.lines: list[str] = []
        self.partial = b""
        self.boot_at: float | None = None
        self.panic_at: float | None = None
        self.exited = False
        self.t0 = time.monotonic()
        self.backend: Backend | None = None
        self.console_fh: IO[bytes] | None = None

    # loop callbacks
    def on_console(self, fd: int) -> None:
        data = os.read(fd, 65536)
        if not data:
            assert self.backend is not None
            self.backend.remove_reader(fd)
            return
        self.console_data(data)

    def console_data(self, data: bytes) -> None:
        assert self.console_fh is not None
        self.console_fh.write(data)
        if self.interactive and self.out_sink is not None:
            self.out_sink.write(data)
            self.out_sink.flush()
        *lines, self.partial = (self.partial + data).split(b"\n")
        for raw in lines:
            self._line(raw.decode("utf-8", "replace"))

    def _line(self, line: str) -> None:
        self.lines.append(line)
        if self.boot_at is None and INIT_MARK in line and "started" in line:
            self.boot_at = time.monotonic() - self.t0
        if (
            self.hotplug
            and self.plugged_at is None
            and INIT_MARK in line
            and "waiting for the device" in line
        ):
            self.plug()
        if self.panic_at is None and splatmod.classify_line(line) == "panic":
            self.panic_at = time.monotonic()

    def plug(self) -> None:
        assert self.backend is not None and self.rundir is not None
        self.backend.plug()
        (self.rundir / "present").write_text("1\n")
        self.plugged_at = time.monotonic() - self.t0

    def on_output(self, fd: int) -> None:
        data = os.read(fd, 65536)
        if not data:
            assert self.backend is not None
            self.backend.remove_reader(fd)
            return
        self.output_data(data)

    def output_data(self, data: bytes) -> None:
        if self.capture:
            self.captured.extend(data)
        if self.out_sink is not None:
            self.out_sink.write(data)
            self.out_sink.flush()

    def on_exit(self, fd: int) -> None:
        self.exited = True
        assert self.backend is not None
        self.backend.remove_reader(fd)

    def run(
        self,
        vmlinux: Path,
        cmd: list[str] | None,
        *,
        timeout: float,
        mem: str,
        env: dict[str, str] | None,
        extra_args: Sequence[str],
    ) -> RunResult:
        _remove_stale_rundirs()
        rundir = self.rundir = Path(tempfile.mkdtemp(prefix=RUNDIR_PREFIX))
        (rundir / "owner").write_text(_owner_tag(os.getpid()))
        fds: list[int] = []
        proc: subprocess.Popen[bytes] | None = None
        error: str | None = None
        timed_out = False
        guest_exit: int | None = None
        leftover: list[int] = []
        saved_tty: Any = None
        reaper = Reaper()
        old_term: Any = None
        term_installed = False
        try:
            (rundir / "uml").mkdir()
            fw = rundir / "firmware"
            fw.mkdir()
            _write_firmware(fw)
            from qaicmodel.emu.backend import Backend

            self.backend = backend = Backend(
                self.board,
                seed=self.seed,
                steps_per_turn=self.steps_per_turn,
                present=not self.hotplug,
                log=self.log,
            )
            getattr(self.board, "on_backend", lambda _b: None)(backend)  # emu/bench.py
            sock = backend.listen(rundir / "vu.sock")
            con_r, con_w = os.pipe()
            fds += [con_r, con_w]
            out_r: int | None = None
            out_w: int | None = None
            if not self.interactive:
                out_r, out_w = os.pipe()
                fds += [out_r, out_w]
            init = rundir / "init"
            guest_env = dict(env if env is not None else os.environ)
            argv_cmd = [guest_env.get("SHELL") or "/bin/sh"] if cmd is None else cmd
            init.write_text(
                init_script(
                    rundir=rundir,
                    cmd=argv_cmd,
                    env=guest_env,
                    cwd=os.getcwd(),
                    output=None if self.interactive else "/dev/tty1",
                    hotplug=self.hotplug,
                    unbind=self.unbind,
                )
            )
            init.chmod(0o755)
            argv = guest_argv(
                vmlinux,
                socket_path=sock,
                init=init,
                rundir=rundir,
                firmware=fw,
                mem=mem,
                interactive=self.interactive,
                console_fd=con_w,
                output_fd=out_w,
                extra=extra_args,
            )
            if self.interactive and sys.stdin.isatty():
                import termios

                saved_tty = termios.tcgetattr(sys.stdin.fileno())
            # unbuffered: the console on disk is current even if this process is killed
            self.console_fh = open(self.console, "wb", buffering=0)  # noqa: SIM115
            reaper.__enter__()
            if threading.current_thread() is threading.main_thread():
                old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
                term_installed = True
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=None if self.interactive else subprocess.DEVNULL,
                    stdout=con_w,
                    stderr=subprocess.STDOUT,
                    pass_fds=[fd for fd in (con_w, out_w) if fd is not None],
                    preexec_fn=set_pdeathsig,
                    start_new_session=True,
                    cwd=rundir,
                )
            except OSError as e:
                raise UmlError(f"cannot start the guest kernel {vmlinux}: {e}") from None
            reaper.track(proc.pid)
            for fd in (con_w, out_w):
                if fd is not None:
                    os.close(fd)
                    fds.remove(fd)
            backend.add_reader(con_r, self.on_console)
            if out_r is not None:
                backend.add_reader(out_r, self.on_output)
            pidfd = os.pidfd_open(proc.pid)
            fds.append(pidfd)
            backend.add_reader(pidfd, self.on_exit)
            deadline = self.t0 + timeout
            last_scan = 0.0
            try:
                while not self.exited:
                    now = time.monotonic()
                    if now >= deadline:
                        timed_out = True
                        break
                    if self.panic_at is not None and now - self.panic_at > PANIC_GRACE:
                        break
                    backend.turn(min(0.25, deadline - now))
                    if now - last_scan > 0.5:
                        reaper.scan()
                        last_scan = now
            except QaicModelError as e:
                error = f"device side: {e.one_line()}"
            except Exception as e:  # a bug in the board or the backend: one line + a file
                tb = self.console.with_suffix(".backend.txt")
                tb.write_text(traceback.format_exc())
                error = f"device side failed: {type(e).__name__}: {e} (traceback in {tb})"
            if self.exited:
                guest_exit = proc.wait()
                _drain(con_r, self.console_data)
                if out_r is not None:
                    _drain(out_r, self.output_data)
        finally:
            if term_installed:
                signal.signal(signal.SIGTERM, old_term if old_term is not None else signal.SIG_DFL)
            if proc is not None:
                reaper.scan()
                if proc.poll() is None:
                    proc.kill()
                    try:
                        proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        pass
            leftover = reaper.kill_all()
            reaper.restore()
            if saved_tty is not None:
                import termios

                try:
                    termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved_tty)
                except termios.error:
                    pass
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            if self.partial:
                self._line(self.partial.decode("utf-8", "replace"))
                self.partial = b""
            if self.console_fh is not None:
                self.console_fh.close()
            status, init_error = _read_status(rundir)
            summary: dict[str, Any] = {}
            violations: list[Violation] = []
            if self.backend is not None:
                summary = self.backend.summary()
                violations = self.backend.violations
                self.backend.close()
            shutil.rmtree(rundir, ignore_errors=True)
        return RunResult(
            status=status,
            console=self.console,
            splats=splatmod.find(self.lines),
            violations=violations,
            timed_out=timed_out,
            guest_exit=guest_exit,
            seconds=time.monotonic() - self.t0,
            boot_seconds=self.boot_at,
            output=bytes(self.captured),
            error=error,
            summary=summary,
            leftover=leftover,
            init_error=init_error,
            timeout=timeout,
            hints=_hints(self.lines),
        )
