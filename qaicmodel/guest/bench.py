"""The guest half of ``qaicmodel bench --uml``'s data-path figures (runs inside the UML guest).

``python3 -m qaicmodel.guest.bench N_ONE N_BIG`` on the real driver:

  GB1 activate a channel of :data:`QUEUE` elements (room for a 1000-element slice);
  GB2 *one-element BO*: a 4 KiB BO with one slice entry (to the device, no semaphores,
      no doorbell), so one request element with the completion bit; N_ONE times
      EXECUTE_BO + WAIT_BO, each timed (``time.perf_counter``) -- the round trip through
      the driver, the bridge and the model;
  GB3 *1000-segment slice*: a 4000 KiB BO with :data:`SEGMENTS` slice entries of 4 KiB
      each (one request element each: the guest's allocator gives the driver large
      contiguous blocks, so one entry covering the BO would be a handful of elements);
      N_BIG times EXECUTE_BO + WAIT_BO;
  GB4 before and after each timed phase a ``QAICMODEL-BENCH`` line marks the window for
      the host side (:mod:`qaicmodel.emu.bench` splits its wall time); the last line is
      ``QAICMODEL-BENCH`` with the results as JSON.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from qaicmodel.guest.client import ACCEL, Client
from qaicmodel.spec.host import uapi as U

__all__ = ["MARK", "QUEUE", "SEGMENTS", "PAGE", "DEV_ADDR", "main"]

MARK = "QAICMODEL-BENCH "
QUEUE = 2048
SEGMENTS = 1000
PAGE = 4096
DEV_ADDR = 0x100000


def _mark(**kw: object) -> None:
    print(MARK + json.dumps(kw), flush=True)


def _bo(c: Client, dbc: int, nseg: int) -> int:
    size = nseg * PAGE
    h = c.create_bo(size)
    ents = [
        U.SliceEntry(size=PAGE, offset=i * PAGE, dev_addr=DEV_ADDR + i * PAGE) for i in range(nseg)
    ]
    c.attach_slice(
        U.AttachSliceHdr(count=nseg, dbc_id=dbc, handle=h, dir=U.DMA_TO_DEVICE, size=size), ents
    )
    return h


def _round_trips(c: Client, dbc: int, h: int, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        c.execute(dbc, [(h, U.DMA_TO_DEVICE)])
        c.wait(h, dbc, 30000)
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    from qaicmodel.guest import wait_online

    args = sys.argv[1:] if argv is None else argv
    n_one, n_big = int(args[0]), int(args[1])
    wait_online(ACCEL, 30.0)
    with Client(ACCEL) as c:
        dbc = c.activate(QUEUE)
        h1 = _bo(c, dbc, 1)
        hb = _bo(c, dbc, SEGMENTS)
        _round_trips(c, dbc, h1, 3)  # warm-up
        _mark(phase="one", at="start")
        one = _round_trips(c, dbc, h1, n_one)
        _mark(phase="one", at="end")
        _round_trips(c, dbc, hb, 1)  # warm-up
        _mark(phase="big", at="start")
        big = _round_trips(c, dbc, hb, n_big)
        _mark(phase="big", at="end")
        c.deactivate(dbc)
    _mark(
        result={
            "one_rtt_s": statistics.median(one),
            "one_best_s": min(one),
            "big_bo_s": statistics.median(big),
            "n_one": n_one,
            "n_big": n_big,
            "segments": SEGMENTS,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
