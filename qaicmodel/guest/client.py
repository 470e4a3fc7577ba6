"""A uapi client of the real ``accel/qaic`` driver: plain ``fcntl.ioctl`` over the model's structs.

Runs inside the UML guest (``python3 -m qaicmodel.guest.client ...``).  Every ioctl
of ``include/uapi/drm/qaic_accel.h`` plus ``DRM_IOCTL_GEM_CLOSE``
(``include/uapi/drm/drm.h``: ``_IOW('d', 0x09, struct drm_gem_close)``), with the
byte layouts of :mod:`qaicmodel.spec.host.uapi` -- the same records the model's
hosts take, so one call sequence runs on the spec host, the impl host and Linux.

Rules:
  G1 a failing ioctl raises :class:`OSError`; :func:`errno_name` gives the name the
     scenario format uses (``EINVAL``, ...; ``ok`` for success);
  G2 pointer fields (``data`` of ATTACH_SLICE, EXECUTE, PERF_STATS; MANAGE's
     ``data``) point at ctypes buffers this client owns for the call;
  G3 MMAP_BO gives an offset into the DRM file; :meth:`Client.mmap` maps the BO
     there (``MAP_SHARED``, read/write), so reads and writes go to the BO's pages;
  G4 activate / deactivate are MANAGE transactions (the model's ``manage`` module
     builds and parses them); closing the fd makes the driver send the terminate.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import mmap
import os
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any

from qaicmodel.spec.control import manage as mg
from qaicmodel.spec.host import uapi as U

__all__ = ["Client", "errno_name", "GEM_CLOSE", "echo", "main"]

ACCEL = "/dev/accel/accel0"
#: DRM_IOCTL_GEM_CLOSE: _IOW('d', 0x09, struct drm_gem_close {u32 handle, u32 pad})
GEM_CLOSE = (1 << 30) | (8 << 16) | (ord("d") << 8) | 0x09
_MSG = struct.Struct("<IIQ")  # struct qaic_manage_msg


def errno_name(e: BaseException | None) -> str:
    """``ok`` or the errno name of an OSError (G1)."""
    if e is None:
        return "ok"
    if isinstance(e, OSError) and e.errno is not None:
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__


def _nr(name: str) -> int:
    return U.IOCTLS[f"DRM_IOCTL_QAIC_{name}"][0]


class Client:
    """One open DRM file of the accel node."""

    def __init__(self, path: str = ACCEL) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR)
        self.maps: dict[int, mmap.mmap] = {}

    # -- plumbing ----------------------------------------------------------------
    def _ioctl(self, nr: int, raw: bytes) -> bytes:
        buf = bytearray(raw)
        fcntl.ioctl(self.fd, nr, buf, True)
        return bytes(buf)

    def close(self) -> None:
        for m in self.maps.values():
            try:
                m.close()
            except (BufferError, ValueError):
                pass
        self.maps.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- MANAGE (G4) -----------------------------------------------------------------
    def manage(self, *trans: bytes) -> list[dict[str, Any]]:
        length, count, data = mg.user_message(*trans)
        buf = ctypes.create_string_buffer(data, mg.MAX_MSG)
        out = self._ioctl(_nr("MANAGE"), _MSG.pack(length, count, ctypes.addressof(buf)))
        out_len, out_count, _ = _MSG.unpack(out)
        return list(mg.parse_user_result(buf.raw[:out_len], out_count))

    def activate(self, queue_size: int, options: int = 0) -> int:
        res = self.manage(mg.usr_activate(queue_size, options=options))
        act = next((t for t in res if "dbc_id" in t), None)
        if act is None:
            raise OSError(errno.EPROTO, f"no activate answer in {res!r}")
        return int(act["dbc_id"])

    def deactivate(self, dbc_id: int) -> None:
        self.manage(mg.usr_deactivate(dbc_id))

    # -- the data path -------------------------------------------------------------
    def create_bo(self, size: int, pad: int = 0) -> int:
        out = self._ioctl(_nr("CREATE_BO"), U.CreateBo(size=size, pad=pad).pack())
        return int(U.CreateBo.unpack(out).handle)

    def mmap_bo(self, handle: int, pad: int = 0) -> int:
        out = self._ioctl(_nr("MMAP_BO"), U.MmapBo(handle=handle, pad=pad).pack())
        return int(U.MmapBo.unpack(out).offset)

    def mmap(self, handle: int, size: int) -> mmap.mmap:
        """Map the BO (G3); kept until :meth:`close` or :meth:`unmap`."""
        if handle not in self.maps:
            off = self.mmap_bo(handle)
            self.maps[handle] = mmap.mmap(
                self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=off
            )
        return self.maps[handle]

    def unmap(self, handle: int) -> None:
        m = self.maps.pop(handle, None)
        if m is not None:
            m.close()

    def write_bo(self, handle: int, size: int, offset: int, data: bytes) -> None:
        m = self.mmap(handle, size)
        m[offset : offset + len(data)] = data

    def read_bo(self, handle: int, size: int, offset: int, length: int) -> bytes:
        m = self.mmap(handle, size)
        return bytes(m[offset : offset + length])

    def attach_slice(self, hdr: U.AttachSliceHdr, entries: Sequence[U.SliceEntry]) -> None:
        raw = b"".join(e.pack() for e in entries)
        buf = ctypes.create_string_buffer(raw, max(len(raw), 1))
        self._ioctl(
            _nr("ATTACH_SLICE_BO"), U.AttachSlice(hdr=hdr, data=ctypes.addressof(buf)).pack()
        )

    def _execute(self, name: str, dbc_id: int, raw: bytes, count: int) -> None:
        buf = ctypes.create_string_buffer(raw, max(len(raw), 1))
        self._ioctl(
            _nr(name),
            U.Execute(
                hdr=U.ExecuteHdr(count=count, dbc_id=dbc_id), data=ctypes.addressof(buf)
            ).pack(),
        )

    def execute(
        self, dbc_id: int, entries: Sequence[tuple[int, int]], count: int | None = None
    ) -> None:
        """EXECUTE_BO of ``(handle, dir)`` pairs."""
        raw = b"".join(U.ExecuteEntry(handle=h, dir=d).pack() for h, d in entries)
        self._execute("EXECUTE_BO", dbc_id, raw, len(entries) if count is None else count)

    def partial_execute(
        self, dbc_id: int, entries: Sequence[tuple[int, int, int]], count: int | None = None
    ) -> None:
        """PARTIAL_EXECUTE_BO of ``(handle, dir, resize)`` triples."""
        raw = b"".join(
            U.PartialExecuteEntry(handle=h, dir=d, resize=r).pack() for h, d, r in entries
        )
        self._execute("PARTIAL_EXECUTE_BO", dbc_id, raw, len(entries) if count is None else count)

    def wait(self, handle: int, dbc_id: int, timeout_ms: int = 0, pad: int = 0) -> None:
        self._ioctl(
            _nr("WAIT_BO"), U.Wait(handle=handle, timeout=timeout_ms, dbc_id=dbc_id, pad=pad).pack()
        )

    def perf_stats(
        self, dbc_id: int, handles: Sequence[int], count: int | None = None
    ) -> list[U.PerfStatsEntry]:
        raw = b"".join(U.PerfStatsEntry(handle=h).pack() for h in handles)
        buf = ctypes.create_string_buffer(raw, max(len(raw), 1))
        n = len(handles) if count is None else count
        self._ioctl(
            _nr("PERF_STATS_BO"),
            U.PerfStats(
                hdr=U.PerfStatsHdr(count=n, dbc_id=dbc_id), data=ctypes.addressof(buf)
            ).pack(),
        )
        size = U.PerfStatsEntry.SIZE
        return [
            U.PerfStatsEntry.unpack(buf.raw[i * size : (i + 1) * size]) for i in range(len(handles))
        ]

    def detach_slice(self, handle: int, pad: int = 0) -> None:
        self._ioctl(_nr("DETACH_SLICE_BO"), U.DetachSlice(handle=handle, pad=pad).pack())

    def gem_close(self, handle: int) -> None:
        self.unmap(handle)
        self._ioctl(GEM_CLOSE, struct.pack("<II", handle, 0))


# -- the echo workload's slices (qaicmodel/spec/dbc/workload.py protocol) --------------


def echo_entries(in_addr: int, out_addr: int, size: int) -> tuple[U.SliceEntry, U.SliceEntry]:
    """The input and output slice entries of the model's echo workload (one NSP each)."""
    from qaicmodel.spec.dbc import workload as W

    def entry(fields: dict[str, Any], dev_addr: int) -> U.SliceEntry:
        sems = {k: U.Sem(**fields[k]) for k in ("sem0", "sem1", "sem2", "sem3")}
        return U.SliceEntry(
            size=size,
            dev_addr=dev_addr,
            db_addr=fields["db_addr"],
            db_data=fields["db_data"],
            db_len=fields["db_len"],
            offset=0,
            **sems,
        )

    return (
        entry(W.input_slice(0, last=True), in_addr),
        entry(W.output_slice(1, last=True), out_addr),
    )


def echo(
    path: str = ACCEL,
    *,
    size: int = 4096,
    in_addr: int = 0x100000,
    out_addr: int = 0x200000,
    queue_size: int = 16,
    timeout_ms: int = 10000,
    rounds: int = 1,
) -> dict[str, Any]:
    """Every data-path ioctl once (more with ``rounds``), on the echo workload.

    The answer records each call's result (``ok`` or an errno name), whether the
    echoed bytes came back intact, and the EXECUTE->WAIT round-trip times."""
    calls: list[tuple[str, str]] = []
    out: dict[str, Any] = {"calls": calls}

    def call(name: str, fn: Any, *a: Any, **kw: Any) -> Any:
        try:
            r = fn(*a, **kw)
        except OSError as e:
            calls.append((name, errno_name(e)))
            raise
        calls.append((name, "ok"))
        return r

    c = Client(path)
    try:
        dbc = call("activate", c.activate, queue_size)
        out["dbc_id"] = dbc
        hin = call("create_bo", c.create_bo, size)
        hout = call("create_bo", c.create_bo, size)
        call("mmap_bo", c.mmap_bo, hin)
        pattern = bytes(range(256)) * (size // 256) + bytes(size % 256)
        c.write_bo(hin, size, 0, pattern)
        c.write_bo(hout, size, 0, b"\xee" * size)
        ein, eout = echo_entries(in_addr, out_addr, size)
        call(
            "attach_slice",
            c.attach_slice,
            U.AttachSliceHdr(count=1, dbc_id=dbc, handle=hin, dir=U.DMA_TO_DEVICE, size=size),
            [ein],
        )
        call(
            "attach_slice",
            c.attach_slice,
            U.AttachSliceHdr(count=1, dbc_id=dbc, handle=hout, dir=U.DMA_FROM_DEVICE, size=size),
            [eout],
        )
        rtt: list[float] = []
        intact = True
        for r in range(rounds):
            data = bytes((b + r) & 0xFF for b in pattern) if r else pattern
            c.write_bo(hin, size, 0, data)
            t0 = time.monotonic()
            call("execute", c.execute, dbc, [(hin, U.DMA_TO_DEVICE), (hout, U.DMA_FROM_DEVICE)])
            call("wait", c.wait, hout, dbc, timeout_ms)
            rtt.append(time.monotonic() - t0)
            call("wait", c.wait, hin, dbc, timeout_ms)
            intact = intact and c.read_bo(hout, size, 0, size) == data
        out["echo_intact"] = intact
        out["rtt_s"] = rtt
        stats = call("perf_stats", c.perf_stats, dbc, [hin, hout])
        out["perf"] = [
            [
                s.handle,
                s.queue_level_before,
                s.num_queue_element,
                s.submit_latency_us,
                s.device_latency_us,
            ]
            for s in stats
        ]
        # partial execute: the whole input, half the output
        second = bytes((b ^ 0x5A) for b in pattern)
        c.write_bo(hin, size, 0, second)
        call(
            "partial_execute",
            c.partial_execute,
            dbc,
            [(hin, U.DMA_TO_DEVICE, size), (hout, U.DMA_FROM_DEVICE, size // 2)],
        )
        call("wait", c.wait, hout, dbc, timeout_ms)
        call("wait", c.wait, hin, dbc, timeout_ms)
        got = c.read_bo(hout, size, 0, size)
        half = size // 2
        out["partial_intact"] = (
            got[:half] == second[:half] and got[half:] == pattern[half:]
            if rounds == 1
            else got[:half] == second[:half]
        )
        call("detach_slice", c.detach_slice, hin)
        call("detach_slice", c.detach_slice, hout)
        call("gem_close", c.gem_close, hin)
        call("gem_close", c.gem_close, hout)
        call("deactivate", c.deactivate, dbc)
    except OSError as e:
        out["error"] = f"{errno_name(e)}: {e.strerror}"
    finally:
        c.close()
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    from qaicmodel.guest import wait_online

    ap = argparse.ArgumentParser(prog="python3 -m qaicmodel.guest.client")
    sub = ap.add_subparsers(dest="command", required=True)
    e = sub.add_parser("echo", help="every data-path ioctl on the echo workload; JSON result")
    e.add_argument("--size", type=int, default=4096)
    e.add_argument("--rounds", type=int, default=1)
    e.add_argument("--timeout-ms", type=int, default=10000)
    s = sub.add_parser("scenario", help="run a scenario's ioctl steps (JSON lines on stdout)")
    s.add_argument("file")
    s.add_argument(
        "--reply",
        default=None,
        metavar="DIR",
        help="the host's reply directory for device-side steps (host ops)",
    )
    for p in (e, s):
        p.add_argument("--device", default=ACCEL)
        p.add_argument(
            "--wait", type=float, default=30.0, help="seconds to wait for the device to come online"
        )
    a = ap.parse_args(argv)
    wait_online(a.device, a.wait)
    if a.command == "echo":
        res = echo(a.device, size=a.size, rounds=a.rounds, timeout_ms=a.timeout_ms)
        print(json.dumps(res), flush=True)
        ok = "error" not in res and res.get("echo_intact") and res.get("partial_intact")
        return 0 if ok else 1
    from qaicmodel.guest import scenario as gs

    return gs.run_file(a.file, a.device, a.reply)


if __name__ == "__main__":
    sys.exit(main())
