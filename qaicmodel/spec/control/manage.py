"""Host side of the control path: DRM_IOCTL_QAIC_MANAGE and the control-channel client.

Rules (control-path.md §1.4-§1.9, §2, which read qaic_control.c; the check
order below is the driver's):
  M1 ioctl: user ``len`` > 4096 -> EINVAL; device not ONLINE -> ENODEV;
     unreadable user buffer -> EFAULT; then ``len`` > 4096 or ``count`` > 512
     -> EINVAL;
  M2 encode_message: count 0 or len < 8 -> EINVAL; per transaction: consumed
     > len - 8, hdr.len < 8, consumed + hdr.len > len, unknown type -> EINVAL;
     consumed != len at the end -> EINVAL (encode_* rules at each function);
     activate/status ENOSPC past 4 KiB of wire message in 6.12, 64 KiB in 7.2
     (kernels ``manage-activate-status-limit``); activate/deactivate/dma read their
     whole struct whatever hdr.len says (``DRV-MANAGE-SHORT-TRANS`` in violations);
  M3 every message gets ``seq = next_seq++`` (never reset), magic, handle,
     partition (-1; terminate: 0) and, while CRC generation is on, CRC-32;
     sending when OFFLINE -> ENODEV; no UL ring room (``tx_free``) -> EAGAIN after
     the number was taken (a gap); no response -> ETIMEDOUT; a response
     failing the CRC check (once enabled) -> EPIPE;
  M4 responses are matched by sequence number only; one with a bad magic is
     dropped; an unmatched one is dropped after its DEACTIVATE_FROM_DEV transactions
     release their channels (resp_worker, orphaned deactivate; 6.12 and 7.2);
  M5 a lone DMA_XFER_CONT answer continues the DMA transfer (chunk id and
     transferred size must match, else EINVAL); an encode failure while a chunk
     id is active is replaced by an abort message;
  M6 decode_message: hdr.len < 8 or > 4096 -> EINVAL; per-transaction bounds
     against the full hdr.len; unknown type -> EINVAL; decode_* rules; length
     sum mismatch -> EINVAL; activate/status refused (status != 0) ->
     ECANCELED, device-assigned dbc_id >= num_dbc -> ENODEV;
  M7 copy-back: on success *or ECANCELED* the decoded transactions (up to
     4096 bytes, possibly more than the user sent) replace the user's buffer
     and ``len``/``count``; nothing on other errors;
  M8 version: the probe-time status query must answer 5.0 (minor <= 0) for
     the device to go ONLINE; its status_flags bit 0 decides CRC for good.

Modules: the uapi builders and records are in :mod:`.manage_uapi`, encode_message /
decode_message (M2, M5, M6) in :mod:`.manage_codec`; both re-exported here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from qaicmodel.errors import ArgumentError, RemoteProtocolError
from qaicmodel.findings import Finding
from qaicmodel.spec.control import nnc
from qaicmodel.spec.control.boot import DevState
from qaicmodel.spec.control.crc import nnc_crc
from qaicmodel.spec.control.manage_codec import ManageCodec
from qaicmodel.spec.control.manage_uapi import (  # noqa: F401  (re-exported)
    _TH,
    DMA_RESERVE,
    MAX_COUNT,
    MAX_MSG,
    MODEL_DMA_LIMIT,
    DataPathHooks,
    HostDbc,
    ManageResult,
    NullHooks,
    User,
    _Err,
    _Res,
    parse_user_result,
    user_message,
    usr_activate,
    usr_deactivate,
    usr_dma_xfer,
    usr_passthrough,
    usr_status,
)
from qaicmodel.spec.control.ssr import DbcState
from qaicmodel.spec.host import kernels
from qaicmodel.spec.policies import NNC_VERSION_MINOR, NncVersionMinor, Policies

__all__ = [
    "ManageResult",
    "User",
    "HostDbc",
    "DataPathHooks",
    "ControlClient",
    "usr_passthrough",
    "usr_dma_xfer",
    "usr_activate",
    "usr_deactivate",
    "usr_status",
    "user_message",
    "parse_user_result",
    "MAX_MSG",
    "MAX_COUNT",
]


Transport = Callable[[list[bytes]], list[bytes]]


class ControlClient(ManageCodec):
    """The driver's control-channel side (qaic_control.c), one per device.

    ``transport(wrappers)`` queues one message (its MHI chain) and returns the
    device's reply messages; they go through :meth:`deliver` like the DL callback.
    """

    def __init__(
        self,
        transport: Transport,
        host_mem: Any,
        *,
        num_dbc: int = 16,
        hooks: DataPathHooks | None = None,
        ext_msg_len: int = nnc.MAX_H2D,
        sg_max_segment: int | None = None,
        policies: Policies | None = None,
        kernel: Any = None,
    ) -> None:
        if not 24 + 16 + 32 <= ext_msg_len <= nnc.MAX_H2D:
            raise ArgumentError("ext_msg_len must be 72..65536")
        self.transport = transport
        self.kernel = kernels.parse(kernel)  # the driver version followed (kernels.TABLE)
        self.policies = policies if policies is not None else Policies()
        self.host_mem = host_mem
        self.num_dbc = num_dbc
        self.hooks: DataPathHooks = hooks if hooks is not None else NullHooks()
        self.ext_msg_len = ext_msg_len
        self.sg_max_segment = sg_max_segment
        self.dev_state = DevState.OFFLINE
        self.next_seq = 0
        self.gen_crc = True  # qaic_control_open: generate, do not check
        self.check_crc = False
        self.dbc = [HostDbc() for _ in range(num_dbc)]
        self.users: dict[int, User] = {}
        self._pending: dict[int, bytes | None] = {}
        self.sent: list[bytes] = []
        self.dropped: list[bytes] = []
        self.leaked_bufs: list[int] = []
        #: what the driver does that a conforming host would not (``str(f)``: ``RULE: message``)
        self.violations: list[Finding] = []
        self.on_dbc_state: Callable[[int, DbcState], None] | None = None
        #: free descriptors on the control channel's UL ring (None: always room); a
        #: message needs one per wrapper (msg_xfer mhi_get_free_desc_count)
        self.tx_free: int | None = None

    # -- users (IDA: smallest free handle) -------------------------------------
    def open(self, host_uid: Any = None) -> User:
        """A new user: the data-path host's id when it is a free int (one ``qaic_user``
        on both sides), else the smallest free handle."""
        if (
            isinstance(host_uid, int)
            and not isinstance(host_uid, bool)
            and 0 <= host_uid < 1 << 32
            and host_uid not in self.users
        ):
            h = host_uid
        else:
            h = 0
            while h in self.users:
                h += 1
        u = User(h, host_uid)
        self.users[h] = u
        return u

    # -- DBC bookkeeping (qaic_data.c) ---------------------------------------------
    def set_state(self, dbc: int, state: DbcState) -> None:
        """set_dbc_state (7.2 qaic_control.c / qaic_ssr.c); 6.12 keeps no DBC states."""
        if not kernels.behaviour(self.kernel, "dbc-states"):
            return
        if 0 <= dbc < self.num_dbc and self.dbc[dbc].state != state:
            self.dbc[dbc].state = state
            if self.on_dbc_state is not None:
                self.on_dbc_state(dbc, state)

    def release_dbc(self, dbc: int) -> None:
        """release_dbc: no-op unless in use; waiters woken, FIFOs freed, BOs unsliced."""
        d = self.dbc[dbc]
        if not d.in_use:
            return
        self.hooks.release(dbc)
        if d.buf is not None:
            self.host_mem.free(d.buf)
        d.buf, d.total_size, d.nelem, d.usr, d.in_use = None, 0, 0, None, False

    def _save_dbc_buf(self, dbc: int, res: _Res, usr: User) -> None:
        d = self.dbc[dbc]
        if res.buf is None:
            return
        if d.in_use:  # wait_event_interruptible would block; the driver overwrites after
            self.violations.append(
                Finding(
                    "HOST-DBC-REASSIGNED",
                    f"device assigned dbc {dbc} still in use on the host",
                    "qaic_control.c save_dbc_buf (wait_event_interruptible on in_use)",
                    where={"dbc": dbc},
                )
            )
            self.release_dbc(dbc)
        d.buf, d.total_size, d.nelem, d.usr, d.in_use = (
            res.buf,
            res.total_size,
            res.nelem,
            usr,
            True,
        )
        self.hooks.assign(dbc, usr, res.nelem, res.buf, res.rsp_q)
        self.set_state(dbc, DbcState.ASSIGNED)
        res.buf = None

    def _free_dbc_buf(self, res: _Res) -> None:
        if res.buf is not None:
            self.host_mem.free(res.buf)
        res.buf = None

    # -- transport -----------------------------------------------------------------
    def deliver(self, data: bytes) -> bool:
        """DL callback + resp_worker: hand a reply to its waiter, or drop it."""
        if len(data) < nnc.HDR_SIZE or len(data) > nnc.MAX_D2H:
            self.dropped.append(data)  # MHI error: the 4 KiB receive buffer overflowed
            return False
        magic, seq = struct.unpack_from("<II", data, 4)
        if magic != nnc.MAGIC:  # qaic_mhi_dl_xfer_cb: freed at once
            self.dropped.append(data)
            return False
        if seq not in self._pending or self._pending[seq] is not None:
            # resp_worker: no waiter -> decode_message(.., orphaned_deactivate=true), drop
            if kernels.behaviour(self.kernel, "orphaned-deactivate"):
                self._decode_orphan(data)
            self.dropped.append(data)
            return False
        self._pending[seq] = data
        return True

    def _decode_orphan(self, rsp: bytes) -> None:
        """decode_message(qdev, NULL, msg, NULL, NULL, true) (6.12 and 7.2 qaic_control.c):
        only DEACTIVATE_FROM_DEV is decoded; with usr NULL decode_deactivate releases the
        channel whatever its status (7.2: and sets it IDLE); any bound error stops."""
        wire = rsp.ljust(MAX_MSG, b"\0")
        hdr_len, count = struct.unpack_from("<II", wire, 12)
        if hdr_len < 8 or hdr_len > MAX_MSG:
            return
        msg_len = 0
        for _ in range(count):
            off = nnc.HDR_SIZE + msg_len
            if msg_len > hdr_len - 8 or off + 8 > MAX_MSG:
                return
            ttype, tlen = _TH.unpack_from(wire, off)
            if tlen < 8 or msg_len + tlen > hdr_len:
                return
            if ttype != nnc.TransType.DEACTIVATE_FROM_DEV:
                msg_len += tlen
                continue
            _status, dbc = struct.unpack_from("<II", wire, off + 8)
            if dbc >= self.num_dbc:
                return  # -ENODEV
            seq = struct.unpack_from("<I", wire, 8)[0]
            self.violations.append(
                Finding(
                    "DRV-ORPHANED-DEACTIVATE",
                    f"a reply no one waits for (seq {seq}) released dbc {dbc}",
                    "qaic_control.c decode_message(..., NULL, ...) -> decode_deactivate",
                    where={"dbc": dbc, "seq": seq},
                )
            )
            self.release_dbc(dbc)
            self.set_state(dbc, DbcState.IDLE)
            msg_len += 16

    def _xfer(self, msg: nnc.Message) -> bytes:
        """msg_xfer: queue, wait, check CRC.  Raises _Err with the errno name."""
        if self.dev_state == DevState.OFFLINE:
            raise _Err("ENODEV")
        wrappers = nnc.chain(msg)
        if self.tx_free is not None and len(wrappers) > self.tx_free:
            # no room after QAIC_MHI_RETRY_MAX tries: -EAGAIN, the sequence number taken
            # by qaic_manage_msg_xfer is not given back (a gap on the wire)
            raise _Err("EAGAIN")
        self.sent.append(b"".join(wrappers))
        self._pending[msg.seq] = None
        for reply in self.transport(wrappers):
            self.deliver(reply)
        buf = self._pending.pop(msg.seq)
        if buf is None:
            raise _Err("ETIMEDOUT")
        if self.check_crc:
            ln = struct.unpack_from("<I", buf, 12)[0]
            if struct.unpack_from("<I", buf, 0)[0] != nnc_crc(buf, ln):
                raise _Err("EPIPE")
        return buf

    def _send(self, usr: User | None, trans: list[Any], *, partition: int | None = None) -> bytes:
        seq = self.next_seq
        self.next_seq = (self.next_seq + 1) & 0xFFFFFFFF
        handle = usr.handle if usr is not None else 0
        part = nnc.NO_PARTITION if partition is None else partition
        m = nnc.Message(tuple(trans), seq=seq, handle=handle, partition_id=part)
        if self.gen_crc:
            m = m.with_crc()
        return self._xfer(m)

    # -- MANAGE ------------------------------------------------------------------------
    def manage(self, usr: User | None, length: int, count: int, data: bytes) -> ManageResult:
        """DRM_IOCTL_QAIC_MANAGE (qaic_manage_ioctl).  ``data`` is the user buffer."""
        if not isinstance(data, (bytes, bytearray)):
            raise ArgumentError("manage data must be bytes")
        for name, v in (("len", length), ("count", count)):
            if not isinstance(v, int) or not 0 <= v < 1 << 32:
                raise ArgumentError(f"manage {name} must be a u32, got {v!r}")
        if length > MAX_MSG:
            return ManageResult("EINVAL", length, count, bytes(data))
        if usr is None or usr.closed or self.dev_state != DevState.ONLINE:
            return ManageResult("ENODEV", length, count, bytes(data))
        if len(data) < length:
            return ManageResult("EFAULT", length, count, bytes(data))
        buf = bytearray(MAX_MSG)
        buf[:length] = data[:length]
        ret, out_len, out_count = self._manage(usr, length, count, buf)
        if ret in ("ok", "ECANCELED"):
            return ManageResult(ret, out_len, out_count, bytes(buf[:out_len]))
        return ManageResult(ret, length, count, bytes(data))

    def _manage(
        self, usr: User | None, length: int, count: int, buf: bytearray
    ) -> tuple[str, int, int]:
        if length > MAX_MSG or count > MAX_COUNT:
            return "EINVAL", length, count
        res = _Res()
        stalls = 0
        try:
            while True:
                before = res.xferred
                rsp = self._manage_xfer(usr, length, count, buf, res)
                rcount = struct.unpack_from("<I", rsp, 16)[0]
                if rcount == 1:
                    t = struct.unpack_from("<I", rsp.ljust(40, b"\0"), 32)[0]
                    if t == nnc.TransType.DMA_XFER_CONT:
                        chunk, _pad, xferred = struct.unpack_from("<IIQ", rsp.ljust(56, b"\0"), 40)
                        if chunk == res.dma_chunk_id and xferred == res.xferred:
                            # the driver would loop as long as the device asks; the model
                            # stops a device that asks again without progress
                            stalls = stalls + 1 if res.xferred == before else 0
                            if stalls > 2:
                                raise RemoteProtocolError(
                                    "device keeps asking for a DMA continuation without progress",
                                    rule="DEV-CONT-LOOP",
                                )
                            continue
                        raise _Err("EINVAL")
                out_len, out_count = self._decode_message(usr, rsp, res, buf)
                return "ok", out_len, out_count
        except _Err as e:
            if e.name == "ECANCELED":
                return "ECANCELED", self._out_len, self._out_count
            return e.name, length, count
        finally:
            self._free_dbc_buf(res)

    def _manage_xfer(
        self, usr: User | None, length: int, count: int, buf: bytearray, res: _Res
    ) -> bytes:
        try:
            trans = self._encode_message(usr, length, count, buf, res)
        except _Err:
            if not res.dma_chunk_id:
                raise
            # abort_dma_cont: a lone zero-pair dma_xfer with the chunk id
            trans = [nnc.DmaXfer(tag=0, pairs=(), dma_chunk_id=res.dma_chunk_id)]
        return self._send(usr, trans)

    # -- probe, close, reset ---------------------------------------------------------------
    def probe(self) -> str:
        """QAIC_CONTROL probe: BOOT, status query, ONLINE only for 5.0 (M8)."""
        self.gen_crc, self.check_crc = True, False
        self.dev_state = DevState.BOOT
        buf = bytearray(MAX_MSG)
        buf[:8] = usr_status()
        ret, _ln, _cnt = self._manage(None, 8, 1, buf)
        if ret != "ok":
            return ret
        _t, _l, major, minor, _st, flags = struct.unpack_from("<IIHHIQ", buf, 0)
        any_minor = self.policies[NNC_VERSION_MINOR] is NncVersionMinor.ANY_MINOR
        if major != nnc.CNTL_MAJOR or (minor > nnc.CNTL_MINOR and not any_minor):
            return "EINVAL"  # control channel closed, state stays BOOT
        if flags & nnc.STATUS_FLAG_CRC:
            self.check_crc = True
        else:
            self.gen_crc = False
        self.dev_state = DevState.ONLINE
        return "ok"

    def close(self, usr: User) -> None:
        """qaic_postclose -> qaic_release_usr: terminate (48 bytes), then release."""
        if usr.closed:
            raise ArgumentError(f"user {usr.handle} is already closed")
        if self.dev_state == DevState.ONLINE:
            try:
                self._send(usr, [nnc.TerminateToDev(usr.handle)], partition=0)
            except _Err:
                pass  # the result is ignored
            for i, d in enumerate(self.dbc):
                if d.usr is usr:  # release_dbc only: the sysfs state is not reset here
                    self.release_dbc(i)
        usr.closed = True
        del self.users[usr.handle]

    def reset(self) -> None:
        """qaic_dev_reset_clean_local_state: OFFLINE, wake waiters, release every DBC."""
        self.dev_state = DevState.OFFLINE
        self._pending.clear()
        for i in range(self.num_dbc):
            self.release_dbc(i)
