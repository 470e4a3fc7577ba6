"""QSM, the device's management firmware, as it answers NNC messages.

Rules (aic100.rst "Hardware Description", "High-level Use Flow", "DMA
Bridge", "Neural Network Control (NNC) Protocol", "Subsystem Restart (SSR)";
control-path.md §1-2; userspace.md §5 for the command ids):
  Q1 up to 16 NSPs; "Each NSP can only run one workload at a time, but
     multiple NSPs may be assigned to a single workload";
  Q2 16 DMA Bridge channels; "Each active workload is assigned a single DMA
     Bridge channel ... solely for the use of that workload";
  Q3 up to 32 GB of DDR; the host loads and unloads images by request, the
     data arriving through DMA-transfer transactions (and continuations);
  Q4 activate assigns idle NSPs and a channel; the host donates the FIFO
     memory (one contiguous chunk: request FIFO at the start, response FIFO at
     the end); deactivate returns the NSPs to idle; terminate releases every
     resource of a user ("when the user goes away (eg the process crashes)");
  Q5 isolation: resources belong to (partition id, user id); a request naming
     another owner's channel or image is refused (NNC status -9) and recorded
     in :attr:`Qsm.violations` -- never a crash;
  Q6 refusals are NNC status codes (userspace.md §5: 0 ok, -3 undefined
     request, -4 memory exhausted, -6 parameter error, -9 not permitted, -11
     not found, -13 NSP alloc, -14 VC alloc, -36 NSP under SSR), carried in
     u32 ``status`` fields as two's complement;
  Q7 status answers major.minor and whether CRC is required (flags bit 0);
  Q8 SSR: a crashed workload loses its channel and in-flight inputs at once;
     its NSPs come back idle after AFTER_POWER_UP; loaded images stay in DDR.

Passthrough payloads ("commands") are opaque to the driver; their layouts are
not in the documents, so the model defines a minimal command set with the
UMD's command ids (policy ``nnc-command-set``): every command is
``{cmd u32, len u32, args u32...}`` padded to a multiple of 8
(:mod:`.qsm_records`, re-exported here, holds the commands, status codes and records).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from qaicmodel import arith
from qaicmodel.errors import ArgumentError, DecodeError
from qaicmodel.spec.control import nnc
from qaicmodel.spec.control.qsm_records import (  # noqa: F401  (re-exported)
    Activation,
    Cmd,
    Image,
    QsmViolation,
    St,
    _Load,
    command,
    parse_command,
)
from qaicmodel.spec.control.ssr import DeviceSsr
from qaicmodel.spec.dbc.memory import DmaFault
from qaicmodel.spec.policies import (
    NNC_COMMAND_SET,
    NNC_DEACTIVATE_REFUSAL,
    NNC_MALFORMED_REQUEST,
    NNC_TERMINATE_PARTITION,
    NNC_UNKNOWN_PARTITION,
    QSM_BARE_ACTIVATE_NSPS,
    QSM_MIN_QUEUE_SIZE,
    SSR_CRASHDUMP,
    NncCommandSet,
    NncDeactivateRefusal,
    NncMalformedRequest,
    NncTerminatePartition,
    NncUnknownPartition,
    Policies,
    QsmBareActivateNsps,
    QsmMinQueueSize,
    SsrCrashdump,
)

__all__ = [
    "Qsm",
    "Cmd",
    "St",
    "command",
    "parse_command",
    "QsmViolation",
    "Activation",
    "DDR_MAX",
    "NUM_NSP",
]

NUM_NSP = 16
DDR_MAX = 32 << 30
DDR_ALIGN = 4096


class Qsm:
    """The QSM firmware model.  ``device`` is the DMA Bridge (``activate``/``deactivate``,
    ``host_mem``, ``dev_mem``, ``num_dbc``)."""

    def __init__(
        self,
        device: Any,
        *,
        policies: Policies | None = None,
        num_nsp: int = NUM_NSP,
        ddr_size: int = DDR_MAX,
        crc_required: bool = False,
        version: tuple[int, int] = (nnc.CNTL_MAJOR, nnc.CNTL_MINOR),
        partitions: Iterable[int] = (nnc.NO_PARTITION,),
    ) -> None:
        if not 1 <= num_nsp <= NUM_NSP:
            raise ArgumentError(f"num_nsp must be 1..{NUM_NSP}")
        if not 0 < ddr_size <= DDR_MAX:
            raise ArgumentError(f"ddr_size must be 1..{DDR_MAX}")
        self.device = device
        self.policies = (
            policies if policies is not None else getattr(device, "policies", Policies())
        )
        self.num_nsp = num_nsp
        self.num_dbc = device.num_dbc
        self.ddr_size = ddr_size
        self.crc_required = crc_required
        self.version = version
        self.partitions = set(partitions)
        self.violations: list[QsmViolation] = []
        self._clear()

    def _clear(self) -> None:
        self.nsp: list[int | None] = [None] * self.num_nsp  # NSP -> dbc using it
        self.act: dict[int, Activation] = {}
        self.images: dict[int, Image] = {}
        self.loads: dict[tuple[int, int], _Load] = {}
        self.ssr: dict[int, DeviceSsr] = {}
        self.ssr_nsps: dict[int, tuple[int, ...]] = {}
        self.next_elf = 1
        self.next_act = 1
        self.ddr_free: list[tuple[int, int]] = [(0, self.ddr_size)]

    # -- resources ------------------------------------------------------------
    def idle_nsps(self) -> list[int]:
        return [i for i, d in enumerate(self.nsp) if d is None]

    def idle_channels(self) -> list[int]:
        return [d for d in range(self.num_dbc) if d not in self.act and d not in self.ssr]

    def ddr_used(self) -> int:
        return self.ddr_size - sum(s for _, s in self.ddr_free)

    def _ddr_alloc(self, size: int) -> int | None:
        size = max(DDR_ALIGN, (size + DDR_ALIGN - 1) // DDR_ALIGN * DDR_ALIGN)
        for i, (a, s) in enumerate(self.ddr_free):
            if s >= size:
                self.ddr_free[i] = (a + size, s - size)
                if self.ddr_free[i][1] == 0:
                    del self.ddr_free[i]
                return a
        return None

    def _ddr_free(self, addr: int, size: int) -> None:
        size = max(DDR_ALIGN, (size + DDR_ALIGN - 1) // DDR_ALIGN * DDR_ALIGN)
        self.ddr_free.append((addr, size))
        self.ddr_free.sort()
        merged: list[tuple[int, int]] = []
        for a, s in self.ddr_free:
            if merged and merged[-1][0] + merged[-1][1] == a:
                merged[-1] = (merged[-1][0], merged[-1][1] + s)
            else:
                merged.append((a, s))
        self.ddr_free = merged

    def _violate(self, rule: str, message: str, owner: tuple[int, int] | None = None) -> None:
        self.violations.append(
            QsmViolation(rule, message, owner[1] if owner else None, owner[0] if owner else None)
        )

    def _release_channel(self, dbc: int) -> None:
        a = self.act.pop(dbc)
        for n in a.nsps:
            self.nsp[n] = None
        self.device.deactivate(dbc)

    # -- the control channel ----------------------------------------------------
    def receive(self, data: bytes) -> list[bytes]:
        """One host message in (the reassembled MHI chain); the reply messages out."""
        try:
            msg = nnc.decode(data, "h2d", check_crc=self.crc_required)
        except DecodeError as e:
            self._violate("QSM-MALFORMED", str(e))
            if (
                self.policies[NNC_MALFORMED_REQUEST] is NncMalformedRequest.REPLY_EMPTY
                and len(data) >= 12
            ):
                seq = struct.unpack_from("<I", data, 8)[0]
                return [nnc.Message.build((), seq=seq, crc=self.crc_required).pack()]
            return []
        owner = (msg.partition_id, msg.handle)
        out = self._process(msg, owner)
        reply = nnc.Message.build(
            out,
            seq=msg.seq,
            handle=msg.handle,
            partition_id=msg.partition_id,
            crc=self.crc_required,
        )
        if (reply.len or 0) > nnc.MAX_D2H:
            self._violate("QSM-REPLY-TOO-LONG", f"reply of {reply.len} bytes exceeds 4 KiB")
        return [reply.pack()]

    def _process(self, msg: nnc.Message, owner: tuple[int, int]) -> list[Any]:
        part_ok = (
            msg.partition_id in self.partitions
            or self.policies[NNC_UNKNOWN_PARTITION] is NncUnknownPartition.IGNORE_PARTITION
            or any(isinstance(t, nnc.TerminateToDev) for t in msg.transactions)
        )
        if not part_ok:
            self._violate("QSM-PARTITION", f"partition {msg.partition_id} is not managed", owner)
        out: list[Any] = []
        pending_cmd: tuple[int, list[int]] | None = None
        load: _Load | None = None
        # a continuation of an earlier DMA transfer
        if (
            len(msg.transactions) == 1
            and isinstance(msg.transactions[0], nnc.DmaXfer)
            and (msg.handle, msg.transactions[0].dma_chunk_id) in self.loads
        ):
            return self._continue(msg.transactions[0], msg.handle)
        for t in msg.transactions:
            if isinstance(t, nnc.Passthrough):
                if load is not None:  # a load command whose data never came
                    self._finish_load(load, False)
                cmd_resp, pending_cmd, load = self._command(t, owner, part_ok, out)
                if cmd_resp is not None:
                    out.append(cmd_resp)
            elif isinstance(t, nnc.DmaXfer):
                r = self._dma(t, owner, load, out, msg.handle)
                if r is not None:
                    return r
                load = None
            elif isinstance(t, nnc.ActivateToDev):
                out.extend(self._activate(t, owner, part_ok, pending_cmd, out))
                pending_cmd = None
            elif isinstance(t, nnc.StatusToDev):
                out.append(
                    nnc.StatusFromDev(
                        self.version[0],
                        self.version[1],
                        0,
                        nnc.STATUS_FLAG_CRC if self.crc_required else 0,
                    )
                )
            elif isinstance(t, nnc.TerminateToDev):
                out.append(nnc.TerminateFromDev(self._terminate(t.handle, msg.partition_id)))
            elif isinstance(t, nnc.ValidatePartToDev):
                ok = nnc.status_s32(t.part_id) in self.partitions
                out.append(nnc.ValidatePartFromDev(0 if ok else nnc.status_u32(St.NOT_FOUND)))
        if load is not None:
            self._finish_load(load, False)
        return out

    # -- commands (passthrough) -------------------------------------------------
    def _resp(self, cmd: int, *args: int) -> nnc.Passthrough:
        return nnc.Passthrough(nnc.TransType.PASSTHROUGH_FROM_DEV, command(cmd, *args))

    def _command(
        self, t: nnc.Passthrough, owner: tuple[int, int], part_ok: bool, out: list[Any]
    ) -> tuple[Any, Any, _Load | None]:
        try:
            cmd, args = parse_command(t.data)
        except DecodeError:
            return self._resp(0, St.UNDEFINED_REQUEST & 0xFFFFFFFF), None, None
        if self.policies[NNC_COMMAND_SET] is NncCommandSet.OPAQUE or cmd not in (3, 7, 9, 11):
            return self._resp(cmd + 1, St.UNDEFINED_REQUEST), None, None
        if not part_ok:
            return self._resp(cmd + 1, St.NOT_FOUND), None, None
        a = args + [0] * 4
        if cmd == Cmd.LOAD_ELF_REQ:
            size = a[2] | a[3] << 32
            addr = self._ddr_alloc(size) if size else None
            if addr is None:
                return (
                    self._resp(Cmd.LOAD_ELF_RESP, St.MEMORY_EXHAUSTED if size else St.PARAMETER, 0),
                    None,
                    None,
                )
            img = Image(self.next_elf, owner, addr, size)
            self.next_elf += 1
            load = _Load(img, 0, out, len(out))
            # placeholder answered when the data has arrived
            return self._resp(Cmd.LOAD_ELF_RESP, St.GENERAL, 0), None, load
        if cmd == Cmd.UNLOAD_ELF_REQ:
            old = self.images.get(a[0])
            if old is None:
                return self._resp(Cmd.UNLOAD_ELF_RESP, St.NOT_FOUND, a[0]), None, None
            if old.owner != owner:
                self._violate(
                    "QSM-ISOLATION", f"unload of image {a[0]} owned by {old.owner}", owner
                )
                return self._resp(Cmd.UNLOAD_ELF_RESP, St.NOT_PERMITTED, a[0]), None, None
            if any(x.elf_id == a[0] for x in self.act.values()):
                return self._resp(Cmd.UNLOAD_ELF_RESP, St.NOT_PERMITTED, a[0]), None, None
            del self.images[a[0]]
            self._ddr_free(old.addr, old.size)
            return self._resp(Cmd.UNLOAD_ELF_RESP, St.OK, a[0]), None, None
        if cmd == Cmd.ACTIVATE_REQ:
            return None, (cmd, a), None  # answered with the activate transaction
        # DEACTIVATE_REQ
        return self._deactivate(a[0], owner, out)

    def _deactivate(self, dbc: int, owner: tuple[int, int], out: list[Any]) -> Any:
        st = St.OK
        if dbc in self.ssr:
            st = St.UNDER_SSR
        elif dbc not in self.act:
            st = St.NOT_FOUND
        elif self.act[dbc].owner != owner:
            self._violate(
                "QSM-ISOLATION",
                f"deactivate of channel {dbc} owned by {self.act[dbc].owner}",
                owner,
            )
            st = St.NOT_PERMITTED
        if st == St.OK:
            self._release_channel(dbc)
            out.append(self._resp(Cmd.DEACTIVATE_RESP, St.OK, dbc))
            return nnc.DeactivateFromDev(0, dbc), None, None
        if (
            self.policies[NNC_DEACTIVATE_REFUSAL] is NncDeactivateRefusal.FROM_DEV_NONZERO
            and dbc < 1 << 32
        ):
            out.append(self._resp(Cmd.DEACTIVATE_RESP, st, dbc))
            return nnc.DeactivateFromDev(nnc.status_u32(st), dbc), None, None
        return self._resp(Cmd.DEACTIVATE_RESP, st, dbc), None, None

    # -- DMA transfers (image loads) ----------------------------------------------
    def _read_pairs(self, t: nnc.DmaXfer, img: Image) -> bool:
        for addr, size in t.pairs:
            if img.loaded + size > img.size:
                return False
            try:
                data = self.device.host_mem.read(addr, size)
            except DmaFault:
                return False
            self.device.dev_mem.write(img.addr + img.loaded, data)
            img.loaded += size
        return True

    def _finish_load(self, load: _Load, ok: bool) -> None:
        img = load.image
        if ok and img.loaded == img.size:
            self.images[img.elf_id] = img
            load.held[load.resp_index] = self._resp(Cmd.LOAD_ELF_RESP, St.OK, img.elf_id)
        else:
            self._ddr_free(img.addr, img.size)
            load.held[load.resp_index] = self._resp(Cmd.LOAD_ELF_RESP, St.PARAMETER, 0)

    def _dma(
        self,
        t: nnc.DmaXfer,
        owner: tuple[int, int],
        load: _Load | None,
        out: list[Any],
        handle: int,
    ) -> list[Any] | None:
        if load is None:
            self._violate(
                "QSM-DMA-UNCLAIMED", f"dma_xfer tag {t.tag} follows no load command", owner
            )
            return None
        ok = self._read_pairs(t, load.image)
        if ok and load.image.loaded < load.image.size and t.dma_chunk_id != 0:
            load.chunk_id = t.dma_chunk_id
            self.loads[(handle, t.dma_chunk_id)] = load
            return [nnc.DmaXferCont(t.dma_chunk_id, 0, load.image.loaded)]
        self._finish_load(load, ok)
        return None

    def _continue(self, t: nnc.DmaXfer, handle: int) -> list[Any]:
        load = self.loads.pop((handle, t.dma_chunk_id))
        if t.count == 0 and not t.pairs:  # abort (qaic_control.c abort_dma_cont)
            self._finish_load(load, False)
            return load.held
        ok = self._read_pairs(t, load.image)
        if ok and load.image.loaded < load.image.size:
            self.loads[(handle, t.dma_chunk_id)] = load
            return [nnc.DmaXferCont(t.dma_chunk_id, 0, load.image.loaded)]
        self._finish_load(load, ok)
        return load.held

    # -- activate / terminate -------------------------------------------------------
    def _activate(
        self,
        t: nnc.ActivateToDev,
        owner: tuple[int, int],
        part_ok: bool,
        cmd: tuple[int, list[int]] | None,
        out: list[Any],
    ) -> list[Any]:
        elf_id, want = (cmd[1][0], cmd[1][1]) if cmd else (0, 0)

        def refuse(st: St) -> list[Any]:
            res: list[Any] = []
            if cmd:
                res.append(self._resp(Cmd.ACTIVATE_RESP, st, 0, 0, 0))
            res.append(nnc.ActivateFromDev(nnc.status_u32(st), 0))
            return res

        if not part_ok:
            return refuse(St.NOT_FOUND)
        n = t.req_q_size
        min_n = 2 if self.policies[QSM_MIN_QUEUE_SIZE] is QsmMinQueueSize.REFUSE_1 else 1
        layout_ok = (
            n >= 1
            and t.rsp_q_size == n
            and arith.activate_queue_size_ok(n)
            and t.buf_len == arith.dbc_buf_size(n)
            and t.rsp_q_addr == t.req_q_addr + arith.dbc_rsp_offset(n)
            and self.device.host_mem.mapped(t.req_q_addr, t.buf_len)
        )
        if not layout_ok:
            self._violate(
                "QSM-ACTIVATE-LAYOUT",
                f"donated FIFO memory 0x{t.req_q_addr:x} "
                f"nelem {n} buf_len {t.buf_len} is not one "
                "mapped chunk with the response FIFO at the end",
                owner,
            )
            return refuse(St.PARAMETER)
        if n < min_n:
            # policy qsm-min-queue-size: the QSM's own refusal of a well-formed request
            return refuse(St.PARAMETER)
        if elf_id:
            img = self.images.get(elf_id)
            if img is None:
                return refuse(St.NOT_FOUND)
            if img.owner != owner:
                self._violate(
                    "QSM-ISOLATION", f"activate of image {elf_id} owned by {img.owner}", owner
                )
                return refuse(St.NOT_PERMITTED)
        idle = self.idle_nsps()
        if want == 0:
            want = (
                len(idle)
                if self.policies[QSM_BARE_ACTIVATE_NSPS] is QsmBareActivateNsps.ALL_IDLE
                else 1
            )
        if want > self.num_nsp or len(idle) < max(1, want):
            return refuse(St.NSP_ALLOC)
        chans = self.idle_channels()
        if not chans:
            return refuse(St.VC_ALLOC)
        dbc = chans[0]
        nsps = tuple(idle[: max(1, want)])
        self.device.activate(dbc, t.req_q_addr, t.rsp_q_addr, n)
        for x in nsps:
            self.nsp[x] = dbc
        self.act[dbc] = Activation(
            dbc, owner, nsps, elf_id, n, t.req_q_addr, t.rsp_q_addr, t.buf_len
        )
        res: list[Any] = []
        if cmd:
            mask = sum(1 << x for x in nsps)
            res.append(self._resp(Cmd.ACTIVATE_RESP, St.OK, self.next_act, dbc, mask))
        self.next_act += 1
        res.append(nnc.ActivateFromDev(0, dbc))
        return res

    def _terminate(self, handle: int, partition: int) -> int:
        any_part = self.policies[NNC_TERMINATE_PARTITION] is NncTerminatePartition.ANY_PARTITION

        def mine(o: tuple[int, int]) -> bool:
            return o[1] == handle and (any_part or o[0] == partition)

        for dbc in sorted(d for d, a in self.act.items() if mine(a.owner)):
            self._release_channel(dbc)
        for eid in sorted(e for e, i in self.images.items() if mine(i.owner)):
            img = self.images.pop(eid)
            self._ddr_free(img.addr, img.size)
        for key in [k for k, ld in self.loads.items() if mine(ld.image.owner)]:
            ld = self.loads.pop(key)
            self._ddr_free(ld.image.addr, ld.image.size)
        return 0

    # -- SSR (device side) ------------------------------------------------------------
    def crash(self, dbc: int) -> list[bytes]:
        """The workload on ``dbc`` crashes: its channel and inputs are lost now (Q8)."""
        if dbc not in self.act:
            raise ArgumentError(f"no workload is active on channel {dbc}")
        if self.ssr:
            raise ArgumentError("an SSR is already in progress (the device requests one at a time)")
        a = self.act.pop(dbc)
        self.device.deactivate(dbc)
        self.ssr_nsps[dbc] = a.nsps  # NSPs under restart: neither idle nor usable
        table = None
        if self.policies[SSR_CRASHDUMP] is SsrCrashdump.OFFER:
            base = self.ddr_size - 2 * DDR_ALIGN  # a model dump region at the top of DDR
            entry = struct.pack("<QQQ20s20s", 0, base + DDR_ALIGN, 256, b"nsp", b"nsp.bin")
            self.device.dev_mem.write(base, entry)
            self.device.dev_mem.write(base + DDR_ALIGN, bytes(range(256)))
            table = (base, entry)
        s = DeviceSsr(
            dbc, policies=self.policies, read_mem=self.device.dev_mem.read, dump_table=table
        )
        self.ssr[dbc] = s
        return s.start()

    def ssr_receive(self, data: bytes) -> list[bytes]:
        """A host message on QAIC_SSR; the device's next message(s)."""
        if not self.ssr:
            self._violate("QSM-SSR-UNPROMPTED", "host sent an SSR message with no SSR running")
            return []
        dbc = next(iter(self.ssr))
        s = self.ssr[dbc]
        out = s.on_host(data)
        if s.done:
            del self.ssr[dbc]
            for n in self.ssr_nsps.pop(dbc, ()):  # NSPs restarted: idle again
                self.nsp[n] = None
        return out

    def reset(self) -> None:
        """SoC reset: everything activated, loaded or in flight is lost."""
        for dbc in list(self.act):
            self.device.deactivate(dbc)
        for dbc in list(self.ssr):
            self.device.deactivate(dbc)
        self._clear()

    def check(self) -> list[str]:
        """Resource invariants (for tests): no NSP, channel or DDR byte leaks or is shared."""
        errs = []
        used = [n for a in self.act.values() for n in a.nsps]
        used += [n for ns in self.ssr_nsps.values() for n in ns]
        if len(used) != len(set(used)):
            errs.append("an NSP serves two workloads")
        for a in self.act.values():
            for n in a.nsps:
                if self.nsp[n] != a.dbc:
                    errs.append(f"NSP {n} not marked for channel {a.dbc}")
        busy = {n for n, d in enumerate(self.nsp) if d is not None}
        if busy != set(used):
            errs.append(f"NSPs marked busy {sorted(busy)} but assigned {sorted(used)}")
        held = sum(
            max(DDR_ALIGN, -(-i.size // DDR_ALIGN) * DDR_ALIGN)
            for i in list(self.images.values()) + [ld.image for ld in self.loads.values()]
        )
        if held != self.ddr_used():
            errs.append(f"DDR in use {self.ddr_used()} but images hold {held}")
        if set(self.act) & set(self.ssr):
            errs.append("a channel is both active and under SSR")
        return errs
