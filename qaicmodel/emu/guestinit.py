"""What the guest runs: the init program and the kernel command line of a run.

The init (a Python program run by the host's interpreter, since the guest's root file
system is the host's: ``rootfstype=hostfs``) mounts proc/sys/devtmpfs/tmpfs, plugs the
device in once the root is mounted (the driver asks for its firmware as it probes),
runs the command, records its status in the run directory, unbinds the PCI drivers
(docs/findings.md F1) and powers off with ``reboot(RB_POWER_OFF)``.  The command-line
parameters are UML's (arch/um/drivers/virtio_uml.c ``virtio_uml.device=``) and
virt-pci's (``max_delay_us``: 6.12 ``virt_pci.``, 7.2 ``virtio_pcidev.``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["INIT_MARK", "MAX_DELAY_US", "init_script", "guest_argv"]

#: microseconds a guest register read waits for the device before giving up
MAX_DELAY_US = 200_000_000

INIT_MARK = "qaicmodel-init:"


# -- the guest's init ------------------------------------------------------------

_INIT = r'''#!{python} -S
"""The guest's init (PID 1), written by qaicmodel uml run.  Never raises."""
import ctypes, json, os, sys, time

CFG = json.loads({cfg!r})
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                       ctypes.c_void_p]
RB_POWER_OFF = 0x4321FEDC


def say(text):
    try:
        os.write(1, ("{mark} " + text + "\n").encode())
    except OSError:
        pass


def mounted(target):
    try:
        with open("/proc/mounts") as fh:
            return any(line.split()[1] == target for line in fh)
    except OSError:
        return False


def mount(src, target, fstype):
    if target != "/proc" and mounted(target):
        return
    try:
        os.makedirs(target, exist_ok=True)
    except OSError:
        pass
    if libc.mount(src.encode(), target.encode(), fstype.encode(), 0, None) != 0:
        say("mount %s on %s failed: %s" % (fstype, target, os.strerror(ctypes.get_errno())))


def put(name, text):
    path = os.path.join(CFG["rundir"], name)
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(path + ".tmp", path)


def child():
    try:
        os.setsid()
        if CFG["output"]:
            import termios
            fd = os.open(CFG["output"], os.O_RDWR | os.O_NOCTTY)
            try:
                attrs = termios.tcgetattr(fd)
                attrs[1] &= ~termios.OPOST
                termios.tcsetattr(fd, termios.TCSANOW, attrs)
            except termios.error:
                pass
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
        else:  # interactive: the console is the shell's controlling terminal
            import fcntl, termios
            fd = os.open("/dev/tty0", os.O_RDWR)
            fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
            for k in (0, 1, 2):
                os.dup2(fd, k)
        os.chdir(CFG["cwd"])
        os.execvpe(CFG["cmd"][0], CFG["cmd"], CFG["env"])
    except BaseException as e:
        try:
            os.write(2, ("qaicmodel-init: cannot run %r: %s\n" % (CFG["cmd"][0], e)).encode())
        finally:
            os._exit(127)


def plug_device():
    """The device appears after the root file system (and so its firmware path) is
    mounted: wait for the runner to plug it in, then rescan the PCI bus."""
    say("waiting for the device")
    flag = os.path.join(CFG["rundir"], "present")
    end = time.monotonic() + 30
    while not os.path.exists(flag):
        if time.monotonic() > end:
            say("the device was never plugged in")
            return
        time.sleep(0.002)
    with open("/sys/bus/pci/rescan", "w") as fh:
        fh.write("1")
    say("device scanned")


def main():
    say("started")
    mount("proc", "/proc", "proc")
    mount("sysfs", "/sys", "sysfs")
    mount("devtmpfs", "/dev", "devtmpfs")
    mount("tmpfs", "/dev/shm", "tmpfs")
    mount("devpts", "/dev/pts", "devpts")
    if CFG["hotplug"]:
        plug_device()
    pid = os.fork()
    if pid == 0:
        child()
    status = None
    while status is None:
        try:
            got, st = os.wait()
        except ChildProcessError:
            status = 255
            break
        except InterruptedError:
            continue
        if got == pid:
            code = os.waitstatus_to_exitcode(st)
            status = code if code >= 0 else 128 - code
    say("command exited with status %d" % status)
    put("status", json.dumps({{"status": status}}))
    if CFG["unbind"]:
        unbind_all()


def unbind_all():
    """Unbind every PCI driver (remove, without the shutdown that precedes it at
    poweroff)."""
    base = "/sys/bus/pci/devices"
    for dev in sorted(os.listdir(base)):
        drv = os.path.join(base, dev, "driver")
        if os.path.exists(drv):
            say("unbinding %s" % dev)
            with open(os.path.join(drv, "unbind"), "w") as fh:
                fh.write(dev)


try:
    main()
except BaseException as e:
    say("init failed: %r" % (e,))
    try:
        put("init-error", repr(e))
    except BaseException:
        pass
finally:
    try:
        os.kill(-1, 9)
    except OSError:
        pass
    libc.sync()
    say("power off")
    libc.reboot(RB_POWER_OFF)
    os._exit(0)
'''


def init_script(
    *,
    rundir: Path,
    cmd: Sequence[str],
    env: dict[str, str],
    cwd: str,
    output: str | None,
    hotplug: bool = True,
    unbind: bool = True,
    python: str | None = None,
) -> str:
    """The text of the guest's init for these settings."""
    cfg = json.dumps(
        {
            "rundir": str(rundir),
            "cmd": list(cmd),
            "env": env,
            "cwd": cwd,
            "output": output,
            "hotplug": hotplug,
            "unbind": unbind,
        }
    )
    return _INIT.format(python=python or sys.executable, cfg=cfg, mark=INIT_MARK)


def guest_argv(
    vmlinux: Path,
    *,
    socket_path: Path,
    init: Path,
    rundir: Path,
    firmware: Path,
    mem: str = "256M",
    interactive: bool = False,
    console_fd: int = 1,
    output_fd: int | None = None,
    max_delay_us: int = MAX_DELAY_US,
    extra: Sequence[str] = (),
) -> list[str]:
    """The guest kernel's command line."""
    from qaicmodel.emu.backend import device_arg

    con0 = f"fd:0,fd:{console_fd}" if interactive else f"null,fd:{console_fd}"
    argv = [
        str(vmlinux),
        f"mem={mem}",
        "root=/dev/root",
        "rootfstype=hostfs",
        "rootflags=/",
        "rw",
        f"init={init}",
        device_arg(socket_path),
        f"virt_pci.max_delay_us={max_delay_us}",
        f"virtio_pcidev.max_delay_us={max_delay_us}",
        "con=null",
        f"con0={con0}",
    ]
    if output_fd is not None:
        argv.append(f"con1=null,fd:{output_fd}")
    argv += [
        "console=tty0",
        f"firmware_class.path={firmware}",
        f"uml_dir={rundir}/uml",
        "umid=guest",
        *extra,
    ]
    return argv
