#!/usr/bin/env python3
"""Fuzz every control-plane decoder with random and mutated inputs (not part of CI).

Usage: python tools/fuzz_decoders.py [-n N] [--seed S]

Each input goes through every decoder (strict decode and describe) of NNC,
SSR, RAS, Sahara and timesync, through the NNC command parser, QSM's request
handler and the host's SSR, RAS and Sahara clients.  Anything but a result or DecodeError is a failure:
the input is printed as hex and the exit status is 1.  The seed is printed so a
run can be replayed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qaicmodel.errors import DecodeError  # noqa: E402
from qaicmodel.spec.control import boot, nnc, qsm, ras, ssr, timesync  # noqa: E402
from qaicmodel.spec.dbc.device import Device  # noqa: E402


def seeds() -> list[bytes]:
    return [
        nnc.Message.build(
            [nnc.ActivateToDev(1, 2, 3, 4, 5, 6), nnc.DmaXfer(1, ((1, 2), (3, 4)), 3)], seq=1
        ).pack(),
        nnc.Message.build([nnc.StatusFromDev(), nnc.Passthrough(3, bytes(16))], seq=2).pack(),
        nnc.Message.build([nnc.DmaXferCont(1, 0, 5)], seq=3).pack(),
        nnc.Message.build([nnc.TerminateToDev(4)], seq=4, partition_id=0).pack(),
        nnc.Message.build(
            [nnc.Passthrough(4, qsm.command(qsm.Cmd.DEACTIVATE_REQ, 1)), nnc.StatusToDev()], seq=5
        ).pack(),
        ssr.event(1, 2).pack(),
        ssr.SsrMsg(ssr.Cmd.DEBUG_TRANSFER_INFO, 1, {"tbl_addr": 9, "tbl_len": 64}).pack(),
        ssr.SsrMsg(ssr.Cmd.MEMORY_READ_RSP, 1, {}, bytes(8)).pack(),
        ras.RasMsg().pack(),
        boot.pkt(boot.SaharaCmd.HELLO, version=2, mode=0).pack(),
        boot.pkt(boot.SaharaCmd.READ_DATA, image=1, offset=0, length=4).pack(),
        boot.pkt(boot.SaharaCmd.MEM_DEBUG64, table_address=1, table_length=64).pack(),
        timesync.QtsHdr().pack(),
        qsm.command(qsm.Cmd.LOAD_ELF_REQ, 1, 0, 100, 0),
    ]


def mutate(rng: random.Random, base: bytes) -> bytes:
    b = bytearray(base)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(6)
        if op == 0 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1 and b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op == 2:
            del b[rng.randrange(len(b) + 1) :]
        elif op == 3:
            b += rng.randbytes(rng.randrange(1, 33))
        elif op == 4 and len(b) >= 4:
            i = rng.randrange(len(b) - 3)
            b[i : i + 4] = rng.choice(
                [b"\0\0\0\0", b"\xff\xff\xff\xff", b"\x08\0\0\0", b"\x10\0\0\0", rng.randbytes(4)]
            )
        elif op == 5 and b:
            i = rng.randrange(len(b))
            b[i:i] = rng.randbytes(rng.randrange(1, 9))
    return bytes(b)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000, help="number of inputs")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"seed {seed}", flush=True)
    rng = random.Random(seed)
    base = seeds()
    q = qsm.Qsm(Device())
    hs = ssr.HostSsr(
        num_dbc=16,
        release=lambda d: None,
        set_state=lambda d, st: None,
        get_state=lambda d: ssr.DbcState.BEFORE_POWER_UP,
        soc_reset=lambda: None,
    )
    hr = ras.HostRas(q.policies, lambda: None)
    hsa = boot.HostSahara({1: bytes(64)})
    strict: list[Callable[[bytes], Any]] = [
        nnc.decode,
        lambda x: nnc.decode(x, "d2h", check_crc=True),
        ssr.decode,
        ras.decode,
        boot.decode,
        timesync.decode,
        qsm.parse_command,
    ]
    describe = [nnc.describe, ssr.describe, ras.describe, boot.describe, timesync.describe]
    calls = decode_errors = 0
    t0 = time.monotonic()
    for i in range(args.n):
        kind = rng.randrange(4)
        if kind == 0:
            data = rng.randbytes(rng.randrange(0, 160))
        else:
            data = mutate(rng, rng.choice(base))
        try:
            for fn in strict:
                calls += 1
                try:
                    fn(data)
                except DecodeError:
                    decode_errors += 1
            for fn in describe:
                calls += 1
                json.dumps(fn(data))
            calls += 4
            q.receive(data)
            hs.on_message(data)
            hr.on_message(data)
            hsa.on_packet(data)
            if len(q.act) > 8 or len(q.violations) > 1000:
                q.reset()
                q.violations.clear()
            if i % 10_000 == 0:  # keep the clients' logs small
                hs.dropped.clear()
                hsa.log.clear()
                hr.log.clear()
        except Exception:
            print(f"FAIL at input {i}: {data.hex()}")
            traceback.print_exc()
            return 1
    dt = time.monotonic() - t0
    print(
        f"inputs {args.n}  decoder calls {calls}  DecodeErrors {decode_errors}  "
        f"unexpected exceptions 0  seed {seed}  {dt:.0f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
