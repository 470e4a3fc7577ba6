"""``qaicmodel bench [--json]``: host-side cost of the DMA path, impl vs spec vs a plain copy.

What is measured (issue #3 "bench"):
  B1  *large slice*: one BO of 1000 DMA segments (``sg_max_segment`` 4096, one slice
      entry covering it) -> 1000 request elements per execute.  Per element:
      (EXECUTE_BO time + every host interrupt-side step until the BO completed) / 1000.
  B2  *one-element BO*: a 4 KiB BO with one slice, execute + drain, in microseconds.
  B3  *floor*: a bare numpy copy of the same 1000 x 64 request bytes into a ring
      (``REQ_DTYPE`` slice assignment), per element.
  B4  host time only: ``time.perf_counter_ns`` wraps each host call (``execute`` and the
      host actor's ``step``); device-model and workload steps run between them untimed.
      Device-model code a host *calls* (the simulated registers ``Device.readl``/``writel``,
      ``Device.vector`` and the interrupt controller's ``ack``/``mask``/``unmask``) runs
      inside those windows; it is the model of the hardware, not host work, so each such
      call is timed too and its inner time is subtracted (:class:`_DeviceClock`).  The
      exclusion is exact for the device's own code and conservative for the host: the
      wrapper's call and one timer read stay in host time.  The excluded total is reported
      (``*_device_us``).  Host memory reads/writes (``host_mem``) are host work and counted.
  B7  informative, not used by the targets: the *fastest* repetition of the impl host
      (large slice per element; one-element round trip).  On the 2-CPU VM this was
      written on, timed windows are often stretched by 100-500 us stalls with no page
      fault counted (timed inside the host, they land even in a bare memoryview copy or
      a pure-int arith call, and they hit every host alike); the best repetition shows
      the code's own cost, the median (which the targets use) what a user sees here.
  B5  each figure is the median over repetitions inside this one run; the ratios
      (impl/copy, spec/impl) are computed from those medians.  The large-slice figure is
      also split into its EXECUTE_BO part (per element) and its interrupt-side part
      (per BO: hard IRQ, thread passes, re-polls, unmask, missed-event check).
  B6  a second floor, informative: the same bytes copied as raw bytes (memoryview slice
      assignment, i.e. memcpy).  numpy's structured-dtype assignment of B3 is much slower
      than memcpy, so the B3 floor is generous; the ratio target stays defined on B3.
  B8  a third floor, informative: the B3 copy timed inside every large-slice round trip,
      just before EXECUTE_BO, into a ring of the same size that nothing else touches --
      i.e. after the device model ran, with caches as cold as the host finds them.  The
      B3 floor is timed in a tight loop with warm caches; B8 says how much of the gap to
      the host is the cache state rather than host code.  The target stays on B3.
Targets (printed, not enforced): impl <= 3x copy per element on large slices; impl
>= 50x faster than spec; one-element round trip < 2 us of host time.

``qaicmodel bench --check`` measures the trace checker instead (K1-K3 of
:mod:`qaicmodel.oracle.check.bench`: events/s and ratios to ``json.loads`` of the same lines,
peak memory of generated streams).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from qaicmodel.errors import NotModelledError
from qaicmodel.scenario.runner import DEFAULT_HOST as SCENARIO_HOST
from qaicmodel.scenario.runner import Runner
from qaicmodel.spec.dbc.config import DeviceConfig
from qaicmodel.spec.host.protocol import load_host

__all__ = ["SEGMENTS", "run_bench", "add_args", "run_cli", "SPEC_HOST", "IMPL_HOST"]

SEGMENTS = 1000
PAGE = 4096
QUEUE = 2048  # > SEGMENTS: the whole slice fits, responses never stall
SPEC_HOST = SCENARIO_HOST
IMPL_HOST = "qaicmodel.impl.host:ImplHost"
TARGETS = {"impl_over_copy_max": 3.0, "spec_over_impl_min": 50.0, "one_elem_us_max": 2.0}


class _Rig:
    """One device + one host + one channel, set up through the scenario runner's seam."""

    def __init__(self, host_cls: type, nsegs: int) -> None:
        from qaicmodel.spec.host import uapi

        self.r = Runner(DeviceConfig(sg_max_segment=PAGE), host_cls=host_cls)
        self.host = self.r.host
        self.uid = self.host.open()
        self.r.users["bench"] = self.uid
        self.dbc = self.r.control_activate("bench", QUEUE, 0)
        size = nsegs * PAGE
        self.handle = self.host.create_bo(self.uid, size)
        hdr = uapi.AttachSliceHdr(count=1, dbc_id=self.dbc, handle=self.handle, dir=1, size=size)
        self.host.attach_slice(
            self.uid, hdr, [uapi.SliceEntry(size=size, offset=0, dev_addr=0x10_0000)]
        )
        self.nsegs = nsegs
        self.device = self.r.device
        self.clock = _DeviceClock(self.device)
        import numpy as np

        from qaicmodel.spec.dbc.wire import REQ_DTYPE

        # B8: the same numpy copy as B3, but timed at the point in each round trip where
        # the host's own copy runs (after the device model ran), into a ring of the same
        # size that nothing else touches: the floor under the host's cache conditions.
        self.floor_src = np.zeros(nsegs, dtype=REQ_DTYPE)
        self.floor_ring = np.zeros(QUEUE, dtype=REQ_DTYPE)

    def round_trip(self) -> int:
        """Host nanoseconds for one execute + drain of the BO (B1, B4)."""
        exec_ns, drain_ns = self.split_round_trip()
        return exec_ns + drain_ns

    def split_round_trip(self) -> tuple[int, int]:
        """(EXECUTE_BO ns, interrupt-side ns until the BO completed), device calls excluded."""
        exec_ns, host_ns, _dev_ns = self.split_round_trip3()
        return exec_ns, host_ns

    def split_round_trip3(self) -> tuple[int, int, int]:
        """(EXECUTE_BO ns, interrupt-side ns, device-model ns excluded from both) (B4)."""
        exec_ns, host_ns, dev_ns, _floor = self.split_round_trip4()
        return exec_ns, host_ns, dev_ns

    def split_round_trip4(self) -> tuple[int, int, int, int]:
        """As :meth:`split_round_trip3`, plus the B8 cold numpy-copy floor (ns, whole slice)."""
        from qaicmodel.spec.dbc.device import Advance

        host, dev, clock = self.host, self.device, self.clock
        t0 = time.perf_counter_ns()
        self.floor_ring[0 : self.nsegs] = self.floor_src
        floor_ns = time.perf_counter_ns() - t0
        d0 = clock.ns
        t0 = time.perf_counter_ns()
        host.execute(self.uid, self.dbc, [(self.handle, 1)])
        exec_ns = time.perf_counter_ns() - t0
        exec_ns -= clock.ns - d0
        host_ns = 0
        while True:
            acts = dev.enabled()
            if acts:
                # advance in-flight work before consuming more: keeps the device model's
                # per-step cost flat (its time is not measured anyway)
                adv = [a for a in acts if isinstance(a, Advance)]
                dev.step(adv[0] if adv else acts[0])
                continue
            hacts = host.enabled()
            if hacts:
                d1 = clock.ns
                t0 = time.perf_counter_ns()
                host.step(hacts[0])
                host_ns += time.perf_counter_ns() - t0 - (clock.ns - d1)
                continue
            break
        if not host.wait_check(self.uid, self.dbc, self.handle, 0):
            raise NotModelledError("bench: the BO did not complete (host or device model bug)")
        return exec_ns, host_ns, clock.ns - d0, floor_ns


class _DeviceClock:
    """Times the device-model calls a host makes (B4): ``ns`` grows by the time spent
    inside ``Device.readl``/``writel``/``vector`` and ``intc.ack``/``mask``/``unmask``.

    The wrappers are instance attributes on this rig's device, so both hosts pay the
    same (small) wrapper cost, which stays in their host time."""

    def __init__(self, device: Any) -> None:
        self.ns = 0
        for obj, names in (
            (device, ("readl", "writel", "vector")),
            (device.intc, ("ack", "mask", "unmask")),
        ):
            for name in names:
                setattr(obj, name, self._timed(getattr(obj, name)))

    def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.perf_counter_ns

        def timed(*args: Any) -> Any:
            t0 = clock()
            try:
                return fn(*args)
            finally:
                self.ns += clock() - t0

        return timed


def _median_ns(fn: Callable[[], int], reps: int) -> float:
    fn()  # warm-up (first-call costs, caches)
    return float(statistics.median(fn() for _ in range(reps)))


def copy_floor_ns(n: int = SEGMENTS, reps: int = 2001) -> float:
    """B3: median ns to copy n request elements into a ring with numpy."""
    import numpy as np

    from qaicmodel.spec.dbc.wire import REQ_DTYPE

    ring = np.zeros(QUEUE, dtype=REQ_DTYPE)
    reqs = np.zeros(n, dtype=REQ_DTYPE)
    reqs["req_id"] = 7
    reqs["pcie_dma_len"] = PAGE

    def once() -> int:
        t0 = time.perf_counter_ns()
        ring[0:n] = reqs
        return time.perf_counter_ns() - t0

    return _median_ns(once, reps)


def memcpy_floor_ns(n: int = SEGMENTS, reps: int = 2001) -> float:
    """B6: median ns to copy the same n x 64 bytes as raw bytes (memoryview, memcpy)."""
    import numpy as np

    from qaicmodel.spec.dbc.wire import REQ_DTYPE

    ring = np.zeros(QUEUE, dtype=REQ_DTYPE).view(np.uint8).data
    reqs = np.zeros(n, dtype=REQ_DTYPE).view(np.uint8).data
    nbytes = n * REQ_DTYPE.itemsize

    def once() -> int:
        t0 = time.perf_counter_ns()
        ring[0:nbytes] = reqs
        return time.perf_counter_ns() - t0

    return _median_ns(once, reps)


def machine() -> dict[str, Any]:
    import numpy as np

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "numpy": np.__version__,
    }


def run_bench(
    *, spec: str = SPEC_HOST, impl: str = IMPL_HOST, quick: bool = False
) -> dict[str, Any]:
    """Every figure of B1-B5 from one run; ``quick`` cuts repetitions (tests)."""
    spec_cls, impl_cls = load_host(spec), load_host(impl)
    reps_large = {"impl": 3 if quick else 15, "spec": 1 if quick else 3}
    reps_one = {"impl": 20 if quick else 300, "spec": 5 if quick else 60}
    large: dict[str, float] = {}
    split: dict[str, tuple[float, float, float]] = {}
    one: dict[str, float] = {}
    best: dict[str, float] = {}
    cold_floor = 0.0
    for name, cls in (("impl", impl_cls), ("spec", spec_cls)):
        rig = _Rig(cls, SEGMENTS)
        rig.round_trip()  # warm-up
        runs4 = [rig.split_round_trip4() for _ in range(reps_large[name])]
        runs = [(e, d, x) for e, d, x, _ in runs4]
        if name == "impl":
            cold_floor = statistics.median(f for *_, f in runs4) / SEGMENTS
        large[name] = statistics.median(e + d for e, d, _ in runs) / SEGMENTS
        best[name] = min(e + d for e, d, _ in runs) / SEGMENTS
        split[name] = (
            statistics.median(e for e, _, _ in runs) / SEGMENTS,
            statistics.median(d for _, d, _ in runs) / 1000,
            statistics.median(x for _, _, x in runs) / 1000,
        )
        rig1 = _Rig(cls, 1)
        rig1.round_trip()  # warm-up
        trips = [rig1.round_trip() for _ in range(reps_one[name])]
        one[name] = float(statistics.median(trips))
        best[name + "_one"] = float(min(trips))
    copy_ns = copy_floor_ns(reps=101 if quick else 2001) / SEGMENTS
    memcpy_ns = memcpy_floor_ns(reps=101 if quick else 2001) / SEGMENTS
    impl_over_copy = large["impl"] / copy_ns if copy_ns else float("inf")
    spec_over_impl = large["spec"] / large["impl"] if large["impl"] else float("inf")
    one_us = one["impl"] / 1000
    return {
        "format": "qaicmodel-bench/1",
        "machine": machine(),
        "hosts": {"impl": impl, "spec": spec},
        "large_slice": {
            "elements": SEGMENTS,
            "copy_ns_per_elem": round(copy_ns, 2),
            "memcpy_ns_per_elem": round(memcpy_ns, 2),
            "copy_cold_ns_per_elem": round(cold_floor, 2),
            "impl_over_cold_copy": round(large["impl"] / cold_floor, 2) if cold_floor else None,
            "impl_ns_per_elem": round(large["impl"], 1),
            "spec_ns_per_elem": round(large["spec"], 1),
            "impl_over_copy": round(impl_over_copy, 2),
            "spec_over_impl": round(spec_over_impl, 1),
            "impl_execute_ns_per_elem": round(split["impl"][0], 1),
            "impl_drain_us": round(split["impl"][1], 1),
            "spec_execute_ns_per_elem": round(split["spec"][0], 1),
            "spec_drain_us": round(split["spec"][1], 1),
            "impl_best_ns_per_elem": round(best["impl"], 1),
            "impl_device_us": round(split["impl"][2], 1),
            "spec_device_us": round(split["spec"][2], 1),
        },
        "one_element": {
            "impl_us": round(one_us, 2),
            "spec_us": round(one["spec"] / 1000, 2),
            "impl_best_us": round(best["impl_one"] / 1000, 2),
            "spec_over_impl": round(one["spec"] / one["impl"], 1) if one["impl"] else None,
        },
        "targets": {
            "impl_over_copy_max": TARGETS["impl_over_copy_max"],
            "impl_over_copy_met": impl_over_copy <= TARGETS["impl_over_copy_max"],
            "spec_over_impl_min": TARGETS["spec_over_impl_min"],
            "spec_over_impl_met": spec_over_impl >= TARGETS["spec_over_impl_min"],
            "one_elem_us_max": TARGETS["one_elem_us_max"],
            "one_elem_us_met": one_us < TARGETS["one_elem_us_max"],
        },
        "quick": quick,
    }


def text(rep: dict[str, Any]) -> str:
    m, ls, oe, t = rep["machine"], rep["large_slice"], rep["one_element"], rep["targets"]

    def ok(flag: bool) -> str:
        return "met" if flag else "MISSED"

    rows = [
        ("measurement", "value", "target"),
        ("plain numpy copy, ns/element (floor)", f"{ls['copy_ns_per_elem']}", ""),
        ("  raw byte copy (memcpy), ns/element", f"{ls['memcpy_ns_per_elem']}", ""),
        ("  same numpy copy, cache-cold as the host, ns/el", f"{ls['copy_cold_ns_per_elem']}", ""),
        ("impl host, ns/element (1000-seg slice)", f"{ls['impl_ns_per_elem']}", ""),
        ("spec host, ns/element (1000-seg slice)", f"{ls['spec_ns_per_elem']}", ""),
        ("  of which EXECUTE_BO, impl ns/element", f"{ls['impl_execute_ns_per_elem']}", ""),
        ("  of which interrupt-side drain, impl us", f"{ls['impl_drain_us']}", ""),
        ("  impl fastest repetition, ns/element", f"{ls['impl_best_ns_per_elem']}", ""),
        ("  device-model calls excluded, impl us/BO", f"{ls['impl_device_us']}", ""),
        ("  device-model calls excluded, spec us/BO", f"{ls['spec_device_us']}", ""),
        (
            "impl / copy",
            f"{ls['impl_over_copy']}x",
            f"<= {t['impl_over_copy_max']:g}x ({ok(t['impl_over_copy_met'])})",
        ),
        ("  impl / cache-cold copy (information)", f"{ls['impl_over_cold_copy']}x", ""),
        (
            "spec / impl",
            f"{ls['spec_over_impl']}x",
            f">= {t['spec_over_impl_min']:g}x ({ok(t['spec_over_impl_met'])})",
        ),
        (
            "impl one-element BO round trip, us",
            f"{oe['impl_us']}",
            f"< {t['one_elem_us_max']:g} ({ok(t['one_elem_us_met'])})",
        ),
        ("  impl fastest repetition, us", f"{oe['impl_best_us']}", ""),
        ("spec one-element BO round trip, us", f"{oe['spec_us']}", ""),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    out = [f"| {a:<{w0}} | {b:>{w1}} | {c} |" for a, b, c in rows]
    out.insert(1, f"|{'-' * (w0 + 2)}|{'-' * (w1 + 2)}|---|")
    out.append("")
    out.append(
        f"machine: {m['platform']}, {m['cpu_count']} CPUs, {m['implementation']} "
        f"{m['python']}, numpy {m['numpy']}"
    )
    out.append(
        "host time only (device-model steps and the device-model calls hosts make "
        "excluded); medians (except 'fastest'); ratios and targets from the medians"
    )
    return "\n".join(out)


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    p.add_argument(
        "--spec",
        default=SPEC_HOST,
        metavar="MODULE:CLASS",
        help="the reference host to compare against",
    )
    p.add_argument(
        "--impl", default=IMPL_HOST, metavar="MODULE:CLASS", help="the fast host to measure"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="measure `qaicmodel check` instead (qaicmodel/oracle/check/bench.py): events/s "
        "and the ratio to json.loads on a recorded and two generated traces, "
        "and peak memory at --check-mem sizes",
    )
    p.add_argument(
        "--check-mem",
        default="100000,1000000",
        metavar="N,N",
        help="with --check: generated-trace sizes for the memory figures "
        "(default 100000,1000000; the issue's 10M: 100000,10000000)",
    )
    p.add_argument(
        "--uml",
        action="store_true",
        help="measure the UML bridge instead (qaicmodel/emu/bench.py): guest MMIO "
        "reads/s through the real driver and boot-to-online time, as ratios to "
        "a plain socket round trip; the data path's round trips and BOs/s beside the "
        "impl host, and the model/bridge/guest split (needs `qaicmodel uml build`)",
    )
    p.add_argument("--kernel", default="7.2", help="with --uml: the guest kernel (default 7.2)")
    p.add_argument(
        "--conform",
        action="store_true",
        help="measure conform's exploration instead (qaicmodel/oracle/conform_bench.py): "
        "actor steps/s of conform episodes, rule verdict and --differential, as ratios "
        "to a bare scheduler loop",
    )
    p.add_argument(
        "--fuzz",
        action="store_true",
        help="measure decoder fuzzing instead (qaicmodel/testing/fuzz/bench.py): "
        "examples/s per worker and the scaling from 1 to 2 workers",
    )


def run_cli(args: argparse.Namespace) -> int:
    if getattr(args, "conform", False):
        from qaicmodel.oracle import conform_bench

        sys.stderr.write("qaicmodel bench --conform: measuring ...\n")
        brep = conform_bench.run(seconds=4.0 if args.quick else 20.0)
        print(json.dumps(brep, indent=2) if args.json else conform_bench.text(brep))
        return 0
    if getattr(args, "fuzz", False):
        from qaicmodel.testing.fuzz import bench as fuzz_bench

        sys.stderr.write("qaicmodel bench --fuzz: measuring ...\n")
        frep = fuzz_bench.run_fuzz_bench(quick=args.quick)
        print(json.dumps(frep, indent=2) if args.json else fuzz_bench.text(frep))
        return 0
    if getattr(args, "uml", False):
        from qaicmodel.emu import bench as uml_bench

        sys.stderr.write("qaicmodel bench --uml: measuring ...\n")
        q = args.quick
        urep = uml_bench.run(
            args.kernel, n=300 if q else 2000, n_one=50 if q else 200, n_big=1 if q else 5
        )
        print(json.dumps(urep, indent=2) if args.json else uml_bench.report(urep))
        return 0
    if getattr(args, "check", False):
        from qaicmodel.errors import FormatError
        from qaicmodel.oracle.check import bench as check_bench

        try:
            sizes = tuple(int(x) for x in args.check_mem.split(","))
        except ValueError:
            raise FormatError(
                f"expected sizes like 100000,1000000, got {args.check_mem!r}", where="--check-mem"
            ) from None
        if not sizes or any(n < 100 for n in sizes):
            raise FormatError("sizes must be >= 100 events", where="--check-mem")
        sys.stderr.write("qaicmodel bench --check: measuring ...\n")
        crep = check_bench.run_check_bench(quick=args.quick, mem_events=sizes)
        print(json.dumps(crep, indent=2) if args.json else check_bench.text(crep))
        return 0
    load_host(args.spec), load_host(args.impl)  # bad hosts: exit 2, one line
    sys.stderr.write("qaicmodel bench: measuring (host time only) ...\n")
    rep = run_bench(spec=args.spec, impl=args.impl, quick=args.quick)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print(text(rep))
    return 0
