"""Guest-side programs: run inside the UML guest against the real driver.

``python3 -m qaicmodel.guest status`` opens ``/dev/accel/accel0``, sends one
``DRM_IOCTL_QAIC_MANAGE`` with a status transaction (the uapi layouts of the
model's ``uapi`` and ``manage`` modules) and prints the QSM's answer as JSON;
closing the fd makes the driver send the terminate transaction
(qaic_control.c ``qaic_release_usr``).
"""

from __future__ import annotations

import errno
import fcntl
import importlib
import json
import os
import struct
from typing import Any

__all__ = ["ACCEL", "manage", "status", "main"]

ACCEL = "/dev/accel/accel0"
_MSG = struct.Struct("<IIQ")  # struct qaic_manage_msg {len, count, data}


def _mod(name: str) -> Any:
    for path in (
        "qaicmodel.emu._model",
        f"qaicmodel.spec.control.{name}",
        f"qaicmodel.spec.host.{name}",
        f"qaicmodel.spec.{name}",
    ):
        try:
            m = importlib.import_module(path)
        except ImportError:
            continue
        if path.endswith("_model"):
            if hasattr(m, name):
                return getattr(m, name)
            continue
        return m
    raise ImportError(f"model module {name!r} not found")


def manage(fd: int, *trans: bytes) -> list[dict[str, Any]]:
    """One MANAGE ioctl carrying ``trans``; the transactions the driver copied back."""
    import ctypes

    mg = _mod("manage")
    uapi = _mod("uapi")
    length, count, data = mg.user_message(*trans)
    buf = ctypes.create_string_buffer(data, mg.MAX_MSG)
    arg = bytearray(_MSG.pack(length, count, ctypes.addressof(buf)))
    nr = uapi.IOCTLS["DRM_IOCTL_QAIC_MANAGE"][0]
    fcntl.ioctl(fd, nr, arg, True)
    out_len, out_count, _ = _MSG.unpack(arg)
    result: list[dict[str, Any]] = mg.parse_user_result(buf.raw[:out_len], out_count)
    return result


def status(path: str = ACCEL) -> dict[str, Any]:
    """Open the accel node, ask the QSM's status, close (the driver sends terminate)."""
    mg = _mod("manage")
    fd = os.open(path, os.O_RDWR)
    try:
        res = manage(fd, mg.usr_status())
    finally:
        os.close(fd)
    for t in res:
        if "major" in t:
            return {
                "major": t["major"],
                "minor": t["minor"],
                "status": t["status"],
                "status_flags": t["status_flags"],
            }
    return {"error": "no status transaction in the answer", "answer": repr(res)}


def _dbc_states(dbc: int, seconds: float) -> list[Any]:
    """The distinct successive values of /sys/class/accel/accel0/dbc<N>_state (qaic_sysfs.c)."""
    import time

    seen: list[Any] = []
    name = f"/sys/class/accel/accel0/dbc{dbc}_state"
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with open(name) as fh:
                v = int(fh.read().strip())
        except (OSError, ValueError) as e:
            if not seen or seen[-1] != repr(e):
                seen.append(repr(e))
            time.sleep(0.005)
            continue
        if not seen or seen[-1] != v:
            seen.append(v)
        time.sleep(0.005)
    return seen


def activate(path: str = ACCEL, queue_size: int = 8, hold: float = 0.0) -> dict[str, Any]:
    """Activate a DMA Bridge channel (bare activate transaction), then close.

    The uapi deactivate transaction only disables the channel in the driver (nothing goes
    on the wire, qaic_control.c ``encode_deactivate``); the QSM releases the channel on
    the terminate the close sends."""
    mg = _mod("manage")
    fd = os.open(path, os.O_RDWR)
    try:
        res = manage(fd, mg.usr_activate(queue_size))
        act = next((t for t in res if "dbc_id" in t), None)
        if act is None:
            return {"error": "no activate answer", "answer": repr(res)}
        out: dict[str, Any] = {"dbc_id": act["dbc_id"], "status": act["status"]}
        if hold:
            out["dbc_states"] = _dbc_states(act["dbc_id"], hold)
        manage(fd, mg.usr_deactivate(act["dbc_id"]))
        out["disabled"] = True
        return out
    finally:
        os.close(fd)


def wait_online(path: str, seconds: float) -> bool:
    """Retry opening ``path`` while it gives ENODEV/ENOENT, for up to ``seconds``."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            os.close(os.open(path, os.O_RDWR))
            return True
        except OSError as e:
            if e.errno not in (errno.ENODEV, errno.ENOENT) or time.monotonic() >= deadline:
                return False
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python3 -m qaicmodel.guest")
    ap.add_argument("command", choices=["status", "open", "activate"])
    ap.add_argument("--device", default=ACCEL)
    ap.add_argument("--expect", default=None, help="MAJOR.MINOR the status must report")
    ap.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds to wait for the device to come online (open gives "
        "ENODEV until the QSM's status made it ONLINE)",
    )
    ap.add_argument(
        "--hold",
        type=float,
        default=0.0,
        help="activate: seconds to keep the channel, printing its dbc state changes",
    )
    a = ap.parse_args(argv)
    wait_online(a.device, a.wait)
    try:
        if a.command == "open":
            os.close(os.open(a.device, os.O_RDWR))
            print(json.dumps({"open": a.device}))
            return 0
        st = activate(a.device, hold=a.hold) if a.command == "activate" else status(a.device)
    except OSError as e:
        print(
            json.dumps(
                {
                    "error": f"{errno.errorcode.get(e.errno or 0, e.errno)}: {e.strerror}",
                    "device": a.device,
                }
            )
        )
        return 1
    print(json.dumps(st))
    if "error" in st:
        return 1
    if a.expect is not None and f"{st.get('major')}.{st.get('minor')}" != a.expect:
        return 1
    return 0
