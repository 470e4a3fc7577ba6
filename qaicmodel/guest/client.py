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
     builds and parses them); closing the fd makes the driver send the terminate;
  G5 a DMA transfer (:meth:`Client.load`) is one MANAGE holding the model's LOAD_ELF_REQ
     command (a passthrough, policy ``nnc-command-set``) and a
     ``qaic_manage_trans_dma_xfer`` (:data:`DMA_XFER`, 32 bytes in 7.2's qaic_accel.h)
     naming a user buffer (:class:`DmaBuffer`); qaic_control.c ``encode_dma`` pins its
     pages and sends their DMA addresses, split over several messages (DMA_XFER_CONT
     asked by the device) when they do not fit one 64 KiB wire message less 1 KiB
     (``encode_addr_size_pairs``, 7.2); bad arguments raise ArgumentError before any
     ioctl, a failing MANAGE raises OSError with the driver's errno and leaves nothing
     mapped.
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

from qaicmodel.errors import ArgumentError, DecodeError
from qaicmodel.spec.control import manage as mg
from qaicmodel.spec.control import nnc
from qaicmodel.spec.control import qsm_records as QR
from qaicmodel.spec.host import uapi as U

__all__ = [
    "Client",
    "DmaBuffer",
    "DMA_XFER",
    "MANAGE_MSG",
    "dma_xfer_trans",
    "errno_name",
    "GEM_CLOSE",
    "echo",
    "main",
]

ACCEL = "/dev/accel/accel0"
#: DRM_IOCTL_GEM_CLOSE: _IOW('d', 0x09, struct drm_gem_close {u32 handle, u32 pad})
GEM_CLOSE = (1 << 30) | (8 << 16) | (ord("d") << 8) | 0x09
_MSG = struct.Struct("<IIQ")  # struct qaic_manage_msg {u32 len, u32 count, u64 data}: 16 bytes
MANAGE_MSG = _MSG
#: struct qaic_manage_trans_dma_xfer (7.2 include/uapi/drm/qaic_accel.h): hdr {u32 type,
#: u32 len}, u32 tag, u32 pad, u64 addr, u64 size -- 32 bytes, no holes
DMA_XFER = struct.Struct("<IIIIQQ")
PAGE = mmap.PAGESIZE
_MAP_FIXED = 0x10  # <asm-generic/mman-common.h>; the mmap module does not export it
_U32, _U64 = (1 << 32) - 1, (1 << 64) - 1


def _uint(name: str, v: Any, top: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= top:
        raise ArgumentError(f"{name} must be an int in 0..{top:#x}, not {v!r}")
    return v


def dma_xfer_trans(tag: int, addr: int, size: int, pad: int = 0) -> bytes:
    """One ``qaic_manage_trans_dma_xfer`` (type DMA_XFER_FROM_USR, len 32) (G5)."""
    return DMA_XFER.pack(
        nnc.TransType.DMA_XFER_FROM_USR,
        DMA_XFER.size,
        _uint("tag", tag, _U32),
        _uint("pad", pad, _U32),
        _uint("addr", addr, _U64),
        _uint("size", size, _U64),
    )


class DmaBuffer:
    """A user buffer of ``pages`` pages for a DMA_XFER (G5), unmapped by :meth:`close`.

    ``scattered=False``: private anonymous memory, every page written (the driver may
    merge physically adjacent pages into one segment).  ``scattered=True``: one shared
    page (a memfd) mapped at every page of the range, so no two neighbouring pages are
    physically consecutive and qaic_control.c ``find_and_map_user_pages`` makes one
    segment per page (``sg_alloc_table_from_pages`` merges consecutive page frames
    only): more than about 4026 pages cannot fit one message and the driver splits the
    transfer.  Every page holds :meth:`pattern`."""

    def __init__(self, pages: int, *, scattered: bool = False) -> None:
        _uint("pages", pages, 1 << 20)
        if pages == 0:
            raise ArgumentError("a DMA buffer needs at least one page")
        self.pages, self.scattered = pages, scattered
        self.size = pages * PAGE
        self._fd = -1
        libc = ctypes.CDLL(None, use_errno=True)
        self._mmap, self._munmap = libc.mmap, libc.munmap
        self._mmap.restype = ctypes.c_void_p
        self._mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_long,
        ]
        self._munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        rw = mmap.PROT_READ | mmap.PROT_WRITE
        self.addr = self._map(0, self.size, rw, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1)
        try:
            page = self.pattern()
            if scattered:
                self._fd = os.memfd_create("qaicmodel-dma")
                os.ftruncate(self._fd, PAGE)
                for i in range(pages):
                    self._map(
                        self.addr + i * PAGE, PAGE, rw, mmap.MAP_SHARED | _MAP_FIXED, self._fd
                    )
                ctypes.memmove(self.addr, page, PAGE)
            else:
                for i in range(pages):
                    ctypes.memmove(self.addr + i * PAGE, page, PAGE)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def pattern() -> bytes:
        return bytes((7 * i + 1) & 0xFF for i in range(PAGE))

    def _map(self, at: int, n: int, prot: int, flags: int, fd: int) -> int:
        got = self._mmap(at or None, n, prot, flags, fd, 0)
        if got is None or got == _U64 or (at and got != at):
            err = ctypes.get_errno()
            raise OSError(err, f"mmap of {n} bytes: {os.strerror(err)}")
        return int(got)

    def close(self) -> None:
        if self.addr:
            self._munmap(self.addr, self.size)
            self.addr = 0
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> DmaBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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

    # -- DMA transfers (G5) ------------------------------------------------------------
    def load(self, addr: int, size: int, tag: int = 1) -> int:
        """Load ``size`` bytes at user address ``addr`` into device DDR: one MANAGE of
        PASSTHROUGH{LOAD_ELF_REQ tag, size} + DMA_XFER{tag, addr, size}; the image id.
        A refused load (QSM status != 0) is ECANCELED, as on the model's hosts
        (spec/control/plane.py ``load``); no LOAD_ELF_RESP in the answer is EPROTO."""
        trans = dma_xfer_trans(tag, addr, size)
        cmd = QR.command(QR.Cmd.LOAD_ELF_REQ, tag, 0, size & _U32, size >> 32)
        return self._command_result(
            self.manage(mg.usr_passthrough(cmd), trans), QR.Cmd.LOAD_ELF_RESP
        )

    def unload(self, elf_id: int) -> None:
        cmd = QR.command(QR.Cmd.UNLOAD_ELF_REQ, _uint("elf_id", elf_id, _U32))
        self._command_result(self.manage(mg.usr_passthrough(cmd)), QR.Cmd.UNLOAD_ELF_RESP)

    @staticmethod
    def _command_result(res: list[dict[str, Any]], want: int) -> int:
        for t in res:
            if t["type"] != nnc.TransType.PASSTHROUGH_FROM_DEV:
                continue
            try:
                cmd, args = QR.parse_command(t["data"])
            except DecodeError:
                continue
            if cmd == want and len(args) >= 2:
                if args[0]:
                    raise OSError(errno.ECANCELED, f"QSM status {nnc.status_s32(args[0])}")
                return int(args[1])
        raise OSError(errno.EPROTO, f"no command {int(want)} answer in {res!r}")

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
