"""The runner's process handling with a fake "guest" program (no kernel needed):
timeouts, guests that die, fork, daemonise or panic, SIGINT/SIGTERM — and that no
process outlives the run."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from qaicmodel.emu import runner
from qaicmodel.emu.testboard import StubBoard

pytestmark = pytest.mark.uml
ROOT = Path(__file__).resolve().parents[2]

_FAKE = r'''#!{python}
"""A stand-in for vmlinux: reads the runner's kernel command line and misbehaves."""
import json, os, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
rundir = os.path.dirname(args["init"])
mode = {mode!r}
marker = {marker!r}
out_fd = int(args["con1"].split("fd:")[1]) if "con1" in args else None

def sleeper():
    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", marker])

print("Linux version 0.0-fake", flush=True)
print("rundir " + rundir, flush=True)
if mode == "status":
    if out_fd is not None:
        os.write(out_fd, b"hello from the command\n")
    with open(os.path.join(rundir, "status"), "w") as fh:
        json.dump({{"status": 3}}, fh)
    sys.exit(0)
if mode == "die":
    sys.exit(1)
if mode == "fork-hang":
    if os.fork() == 0:
        sleeper()
    time.sleep(600)
if mode == "daemon":
    os.setsid()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            sleeper()
        os._exit(0)
    time.sleep(0.3)
    sys.exit(0)
if mode == "panic":
    if os.fork() == 0:
        sleeper()
    print("[    0.630000] RIP: 0033:mhi_deinit_dev_ctxt+0x52/0xf8", flush=True)
    print("[    0.630000] Kernel panic - not syncing: Kernel mode fault at addr 0x28", flush=True)
    time.sleep(600)
if mode in ("bad-vhost", "board-crash"):
    import socket
    path = args["virtio_uml.device"].rsplit(":", 1)[0]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    if mode == "bad-vhost":
        sock.sendall(bytes([99, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]))
    else:
        sys.path[:0] = [{tests!r}, {root!r}]
        from fake_frontend import FakeFrontend
        fe = FakeFrontend(sock, lambda: time.sleep(0.1))
        fe.handshake()
        fe.cfg_write(0x04, 2, 6)
        try:
            fe.mmio_read(0, 0x10, 4)
        except AssertionError:
            pass
    time.sleep(600)
if mode == "warn-then-status":
    print("------------[ cut here ]------------", flush=True)
    print("WARNING: CPU: 0 PID: 1 at drivers/accel/qaic/qaic_drv.c:1 probe+0x1/0x2", flush=True)
    with open(os.path.join(rundir, "status"), "w") as fh:
        json.dump({{"status": 0}}, fh)
    sys.exit(0)
'''


def _fake(tmp_path: Path, mode: str) -> tuple[Path, str]:
    marker = f"qaicmodel-test-{uuid.uuid4().hex}"
    p = tmp_path / f"fake-{mode}"
    p.write_text(
        _FAKE.format(
            python=sys.executable,
            mode=mode,
            marker=marker,
            tests=str(Path(__file__).parent),
            root=str(ROOT),
        )
    )
    p.chmod(0o755)
    return p, marker


def _alive(marker: str) -> list[int]:
    """Processes whose command line holds ``marker`` (zombies excluded)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{name}/cmdline").read_bytes()
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        if marker.encode() in cmd and stat[stat.rfind(")") + 2] not in "ZX":
            out.append(int(name))
    return out


def _run(tmp_path: Path, mode: str, **kw: object) -> tuple[runner.RunResult, str]:
    fake, marker = _fake(tmp_path, mode)
    kw.setdefault("timeout", 20.0)
    res = runner.run(
        ["true"],
        vmlinux=fake,
        board=StubBoard(),
        console=tmp_path / "console.txt",
        capture=True,
        echo=open(os.devnull, "wb"),
        **kw,  # type: ignore[arg-type]
    )
    return res, marker


def test_status_and_output_come_back(tmp_path: Path) -> None:
    res, marker = _run(tmp_path, "status")
    assert res.status == 3 and res.exit_code == 3 and res.failure() is None
    assert res.output == b"hello from the command\n"
    assert res.console.read_text().startswith("Linux version 0.0-fake")
    assert not _alive(marker)


def test_guest_that_dies_without_status(tmp_path: Path) -> None:
    res, _ = _run(tmp_path, "die")
    assert res.status is None and res.guest_exit == 1
    assert "without reporting the command's status" in (res.failure() or "")
    assert res.exit_code != 0


def test_timeout_kills_the_guest_and_its_children(tmp_path: Path) -> None:
    t0 = time.monotonic()
    res, marker = _run(tmp_path, "fork-hang", timeout=1.5)
    assert time.monotonic() - t0 < 10
    assert res.timed_out and "did not finish within 1.5 s" in (res.failure() or "")
    assert res.exit_code != 0
    assert not _alive(marker)
    assert res.leftover == []


def test_daemonised_helpers_die_too(tmp_path: Path) -> None:
    """A helper that calls setsid twice and is orphaned (as UML's winch thread
    setsids): the runner is a subreaper, so it still finds and kills it."""
    res, marker = _run(tmp_path, "daemon")
    assert not _alive(marker)


def test_panic_line_ends_the_run_and_is_quoted(tmp_path: Path) -> None:
    t0 = time.monotonic()
    res, marker = _run(tmp_path, "panic", timeout=30.0)
    assert time.monotonic() - t0 < runner.PANIC_GRACE + 8
    why = res.failure() or ""
    assert "kernel panic in the guest" in why and "mhi_deinit_dev_ctxt" in why
    assert not res.timed_out and not _alive(marker)


def test_malformed_vhost_message_is_one_line(tmp_path: Path) -> None:
    res, marker = _run(tmp_path, "bad-vhost")
    why = res.failure() or ""
    assert why.startswith("device side: vhost-user: request 99: request not supported"), why
    assert res.exit_code == 2 and not _alive(marker)


class _CrashBoard(StubBoard):
    def bar_read(self, bar: int, off: int, size: int) -> int:
        raise RuntimeError("boom")


def test_board_exception_is_one_line_and_a_traceback_file(tmp_path: Path) -> None:
    fake, marker = _fake(tmp_path, "board-crash")
    res = runner.run(
        ["true"],
        vmlinux=fake,
        board=_CrashBoard(),
        console=tmp_path / "c.txt",
        timeout=30.0,
        echo=open(os.devnull, "wb"),
        hotplug=False,
    )
    why = res.failure() or ""
    assert why.startswith("device side failed: RuntimeError: boom (traceback in "), why
    tb = Path(why.rsplit("traceback in ", 1)[1].rstrip(")"))
    assert "bar_read" in tb.read_text()
    assert not _alive(marker)


def test_a_warning_fails_a_successful_command(tmp_path: Path) -> None:
    res, _ = _run(tmp_path, "warn-then-status")
    assert res.status == 0
    assert res.failure() is not None and "kernel warning" in (res.failure() or "")
    assert res.exit_code == 2


def test_run_directory_is_removed_and_console_kept(tmp_path: Path) -> None:
    res, _ = _run(tmp_path, "status")
    text = res.console.read_text()
    rundir = Path(re.search(r"^rundir (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert rundir.name.startswith("qaicmodel-uml-") and not rundir.exists()


def test_stale_run_directory_of_a_killed_runner_is_removed(tmp_path: Path) -> None:
    stale = Path(tempfile.mkdtemp(prefix=runner.RUNDIR_PREFIX))
    (stale / "owner").write_text("999999999 12345\n")  # no such process
    alien = Path(tempfile.mkdtemp(prefix=runner.RUNDIR_PREFIX))  # no owner file: left alone
    try:
        _run(tmp_path, "status")
        assert not stale.exists() and alien.exists()
    finally:
        shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(alien, ignore_errors=True)


def test_init_script_shape(tmp_path: Path) -> None:
    text = runner.init_script(
        rundir=tmp_path,
        cmd=["python3", "-c", "print(1)"],
        env={"PATH": "/usr/bin"},
        cwd="/",
        output="/dev/tty1",
    )
    assert text.startswith(f"#!{sys.executable} -S\n")
    compile(text, "init", "exec")
    argv = runner.guest_argv(
        Path("/k/vmlinux"),
        socket_path=tmp_path / "s",
        init=tmp_path / "i",
        rundir=tmp_path,
        firmware=tmp_path / "fw",
        console_fd=5,
        output_fd=7,
    )
    joined = " ".join(argv)
    for want in (
        "mem=256M",
        "rootfstype=hostfs",
        f"init={tmp_path}/i",
        f"virtio_uml.device={tmp_path}/s:1234",
        "virt_pci.max_delay_us=",
        "virtio_pcidev.max_delay_us=",
        "con0=null,fd:5",
        "con1=null,fd:7",
        "con=null",
        "console=tty0",
        f"firmware_class.path={tmp_path}/fw",
        f"uml_dir={tmp_path}/uml",
    ):
        assert want in joined


def _cli(args: list[str], **kw: object) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "qaicmodel", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )  # type: ignore[call-overload]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_to_the_runner_leaves_nothing(tmp_path: Path, sig: signal.Signals) -> None:
    fake, marker = _fake(tmp_path, "fork-hang")
    p = _cli(
        [
            "uml",
            "run",
            "--vmlinux",
            str(fake),
            "--board",
            "dead",
            "--timeout",
            "60",
            "--console",
            str(tmp_path / "c.txt"),
            "--",
            "true",
        ]
    )
    _wait_started(p, marker)
    p.send_signal(sig)
    try:
        _out, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert p.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    time.sleep(0.2)
    assert not _alive(marker)


def test_runner_killed_outright_takes_the_guest_along(tmp_path: Path) -> None:
    """SIGKILL cannot be handled: PR_SET_PDEATHSIG takes the guest down; its own
    children (UML's userspace stubs) set PDEATHSIG on it in turn (here: none do,
    so only the guest itself is checked)."""
    fake, marker = _fake(tmp_path, "fork-hang")
    p = _cli(
        [
            "uml",
            "run",
            "--vmlinux",
            str(fake),
            "--board",
            "dead",
            "--timeout",
            "60",
            "--console",
            str(tmp_path / "c.txt"),
            "--",
            "true",
        ]
    )
    _wait_started(p, marker)
    guest = [pid for pid in _guest_pids(p.pid)]
    p.kill()
    p.communicate(timeout=20)
    time.sleep(0.3)
    for pid in guest:
        assert (
            not Path(f"/proc/{pid}").exists()
            or Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"
        )
    for pid in _alive(marker):  # the fake's own child has no PDEATHSIG: clean it up here
        os.kill(pid, signal.SIGKILL)
    m = re.search(r"^rundir (\S+)$", (tmp_path / "c.txt").read_text(), re.M)
    assert m
    runner._remove_stale_rundirs()  # what the next run does first
    assert not Path(m.group(1)).exists()


def _wait_started(p: subprocess.Popen[str], marker: str) -> None:
    deadline = time.monotonic() + 60
    while not _alive(marker) and time.monotonic() < deadline:
        if p.poll() is not None:
            pytest.fail(
                f"the CLI exited ({p.returncode}) before the fake guest started: "
                f"{p.communicate()[1][-2000:]}"
            )
        time.sleep(0.05)
    assert _alive(marker), "the fake guest did not start within 60 s"


def _guest_pids(parent: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == parent:
                out.append(int(name))
    return out


@pytest.mark.parametrize(
    "args, text",
    [
        (["uml", "run", "--timeout", "0", "--", "true"], "qaicmodel: uml: bad argument: --timeout"),
        (["uml", "run", "--seed", "-1", "--", "true"], "qaicmodel: uml: bad argument: --seed"),
        (
            ["uml", "run", "--policy", "no-such-policy=x", "--", "true"],
            "qaicmodel: uml: bad policy",
        ),
        (
            ["uml", "run", "--trace", "/tmp/x.jsonl", "--board", "dead", "--", "true"],
            "qaicmodel: uml: bad argument: --trace needs the model's board",
        ),
        (
            ["uml", "run", "--vmlinux", "/nonexistent/vmlinux", "--", "true"],
            "qaicmodel: uml: /nonexistent/vmlinux is not an executable UML kernel",
        ),
        (["uml"], "qaicmodel: uml: give a subcommand"),
    ],
)
def test_bad_input_is_one_line_and_status_2(args: list[str], text: str) -> None:
    p = _cli(args)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2, err
    assert text in err and "Traceback" not in err
    assert (
        len(
            [
                ln
                for ln in err.splitlines()
                if ln.startswith("qaicmodel: uml:") and not re.search(r"seed \d+ \(replay", ln)
            ]
        )
        == 1
    )
