"""``qaicmodel uml determinism``: the same seeded workload twice, the device's choices and traces compared.

Issue #10 item 7: with ``--seed`` a run makes the same device choices and the same trace,
modulo guest timing noise; this command quantifies the noise.

  M1 one workload (:data:`WORKLOADS`; default ``echo``: every data-path ioctl on the echo
     workload, ``qaicmodel.guest.client echo``) runs three times on the real 7.2 driver,
     each against a fresh :class:`~qaicmodel.emu.datapath.DatapathBoard` inside a
     :class:`~qaicmodel.emu.tracing.Recorder`: seed S, seed S again, seed S2;
  M2 the **device-choice sequence** of a run is what the backend's seeded scheduler did
     where it had a choice: every step taken with more than one action enabled, as
     ``(enabled actions, how often exactly those were enabled before, action taken)``
     (tracing T2).  ``Backend.pick`` makes the action taken a function of the seed and
     the first two, so two runs of equal seeds take the same action at every
     *situation* (first two) both meet -- the guest's timing decides which situations
     a run meets, never the choice in one.  The report gives the situations both runs
     met, the fraction of those with the same action (1.0 for equal seeds; the property
     ``tests/uml/test_guest_datapath.py`` asserts), and, as sequences, the fraction of
     equal entries and the common prefix;
  M3 the trace is **normalised for timing** before it is compared: a run of identical
     polling reads (same ``readl`` dbc, register and value, one after another) counts as
     one event -- how often the guest's poll loop read an unchanged register is the guest's
     timing, not the device's behaviour -- and the guest's DMA addresses (FIFOs and BO
     pages from its allocator, in ``activate``, ``req`` and NNC messages) are named by
     first appearance.  The report gives the fraction of events equal in
     both runs (raw and normalised), and per event kind the number that differ, with the
     reason this module knows for that kind (:data:`WHY`);
  M4 the run's seeds are printed; ``--seed`` replays.  Not a timed measurement.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qaicmodel.errors import ArgumentError, UmlError

__all__ = [
    "run_once",
    "compare",
    "situations",
    "measure_determinism",
    "normalise",
    "add_args",
    "run_cli",
]

UNBIND = "echo 0000:00:00.0 > /sys/bus/pci/drivers/qaic/unbind"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WORKLOADS = ("echo", "elements")
#: event kind -> why it can differ between two runs of the same seed (M3)
WHY = {
    "readl": "the guest polls the ring registers (the driver's poll work and WAIT loop) as "
    "often as its timing allows; after normalisation, a value read in one run and not the "
    "other means the device had progressed further when the read came",
    "writel": "follows the readl values the driver saw (RSP_HP after draining a different "
    "number of responses at a time)",
    "msi": "MSIs go out on a turn that answered no request (backend F7 hold-back): how many "
    "coalesce depends on when the guest's requests arrive",
    "req": "the guest's allocator and the order of ioctls are the same; a differing element "
    "would be a host-side difference (none expected)",
    "nnc_tx": "MANAGE messages carry no timestamps; a difference would be a driver change",
    "nnc_rx": "the QSM's answers depend only on the requests",
    "activate": "the same channel, FIFO addresses from the guest's DMA allocator",
    "deactivate": "released at the same call",
}


def _board(seed: int) -> Any:
    from qaicmodel.emu.datapath import DatapathBoard
    from qaicmodel.emu.tracing import Recorder

    return Recorder(DatapathBoard(policies=["mhi-start-ee=amss"], kernel="7.2", seed=seed))


def run_once(seed: int, workload: str = "echo", *, timeout: float = 100.0) -> dict[str, Any]:
    """One run of ``workload`` with ``seed`` (M1): choices, trace events, the run's failure."""
    from qaicmodel.emu import runner

    if workload not in WORKLOADS:
        raise ArgumentError(f"workload must be one of {', '.join(WORKLOADS)}, not {workload!r}")
    extra = ("qaic.datapath_polling=1",)
    if workload == "echo":
        rec = _board(seed)
        cmd = f"{sys.executable} -m qaicmodel.guest.client echo; rc=$?; {UNBIND}; exit $rc"
        with (
            tempfile.NamedTemporaryFile(prefix="qaicmodel-det-", suffix=".txt") as con,
            open(os.devnull, "wb") as sink,
        ):
            res = runner.run(
                ["/bin/sh", "-c", cmd],
                kernel="7.2",
                board=rec,
                seed=seed,
                timeout=timeout,
                capture=True,
                echo=sink,
                console=Path(con.name),
                extra_args=extra,
            )
        failure = res.failure() or (
            f"the guest's echo exited with status {res.status}: {res.output[-300:]!r}"
            if res.status
            else None
        )
    else:
        from qaicmodel.scenario.linux import run_scenario_linux

        with tempfile.NamedTemporaryFile(prefix="qaicmodel-det-", suffix=".txt") as con:
            lx = run_scenario_linux(
                EXAMPLES / "request_elements.json",
                seed=seed,
                timeout=timeout,
                console=Path(con.name),
                record=True,
            )
        rec = lx.recorder
        failure = lx.run.failure() or (
            None if lx.report.first_mismatch is None else str(lx.report.first_mismatch)
        )
    return {
        "seed": seed,
        "failure": failure,
        "choices": [list(c) for c in rec.choices if c[0] > 1],
        "steps": len(rec.choices),
        "trace": list(rec.trace),
    }


def _addresses(trace: Sequence[dict[str, Any]]) -> dict[int, str]:
    """M3: the guest's DMA addresses (FIFOs, BO segments), named by first appearance."""
    from qaicmodel.spec.dbc.wire import RequestElem

    names: dict[int, str] = {}
    for e in trace:
        found: list[int] = []
        if e.get("ev") == "activate":
            found = [e["req_q"], e["rsp_q"]]
        elif e.get("ev") == "req":
            el = RequestElem.unpack(bytes.fromhex(e["hex"]))
            found = [el.pcie_dma_source_addr, el.pcie_dma_dest_addr]
        for a in found:
            if a >= 1 << 24 and a not in names:  # device addresses are small and fixed
                names[a] = f"<A{len(names)}>"
    return names


def normalise(trace: Sequence[dict[str, Any]]) -> list[str]:
    """M3: events as text, the guest's DMA addresses by name, a run of identical polling
    reads as one."""
    names = _addresses(trace)
    subs = [(a.to_bytes(8, "little").hex(), n) for a, n in names.items()]
    out: list[str] = []
    for e in trace:
        d = {k: v for k, v in e.items() if k != "t"}
        if d.get("ev") == "activate":
            d["req_q"], d["rsp_q"] = names.get(d["req_q"]), names.get(d["rsp_q"])
        if "hex" in d:
            for h, n in subs:
                d["hex"] = d["hex"].replace(h, n)
        s = json.dumps(d, sort_keys=True)
        if d.get("ev") == "readl" and out and out[-1] == s:
            continue
        out.append(s)
    return out


def _ratio(a: Sequence[Any], b: Sequence[Any]) -> tuple[float, int]:
    """(matched / longer length, common prefix length)."""
    if not a and not b:
        return 1.0, 0
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    same = sum(m.size for m in sm.get_matching_blocks())
    prefix = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        prefix += 1
    return same / max(len(a), len(b)), prefix


def _kinds_differing(a: list[str], b: list[str]) -> dict[str, int]:
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    c: Counter[str] = Counter()
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            continue
        for s in a[i1:i2] + b[j1:j2]:
            c[json.loads(s)["ev"]] += 1
    return dict(sorted(c.items()))


def situations(choices: Sequence[Sequence[Any]]) -> dict[tuple[str, int], str]:
    """M2: (enabled actions, occurrence) -> the action taken, for every real choice."""
    seen: Counter[str] = Counter()
    out: dict[tuple[str, int], str] = {}
    for c in choices:
        if c[0] > 1:
            seen[c[2]] += 1
            out[(c[2], seen[c[2]])] = c[1]
    return out


def compare(r1: dict[str, Any], r2: dict[str, Any]) -> dict[str, Any]:
    """M2-M3 for two runs."""
    c1 = [(c[2], c[1]) for c in r1["choices"]]
    c2 = [(c[2], c[1]) for c in r2["choices"]]
    cr, cp = _ratio(c1, c2)
    s1, s2 = situations(r1["choices"]), situations(r2["choices"])
    common = sorted(set(s1) & set(s2))
    same = sum(1 for k in common if s1[k] == s2[k])
    raw1 = [json.dumps(e, sort_keys=True) for e in r1["trace"]]
    raw2 = [json.dumps(e, sort_keys=True) for e in r2["trace"]]
    rr, _ = _ratio(raw1, raw2)
    n1, n2 = normalise(r1["trace"]), normalise(r2["trace"])
    nr, npre = _ratio(n1, n2)
    kinds = _kinds_differing(n1, n2)
    return {
        "seeds": [r1["seed"], r2["seed"]],
        "choices": [len(c1), len(c2)],
        "choices_identical": c1 == c2,
        "situations": [len(s1), len(s2)],
        "situations_common": len(common),
        "situations_same_choice": same,
        "same_choice_fraction": round(same / len(common), 4) if common else None,
        "choices_equal_fraction": round(cr, 4),
        "choices_common_prefix": cp,
        "events": [len(raw1), len(raw2)],
        "events_normalised": [len(n1), len(n2)],
        "trace_equal_fraction_raw": round(rr, 4),
        "trace_equal_fraction_normalised": round(nr, 4),
        "trace_common_prefix_normalised": npre,
        "trace_identical_normalised": n1 == n2,
        "differing_kinds": {k: {"events": v, "why": WHY.get(k, "")} for k, v in kinds.items()},
    }


def measure_determinism(
    seed: int = 1, seed2: int = 2, workload: str = "echo", *, timeout: float = 100.0
) -> dict[str, Any]:
    """M1-M3: seed, the same seed again, another seed."""
    if seed == seed2:
        raise ArgumentError(f"--seed2 must differ from --seed ({seed})")
    runs = [run_once(s, workload, timeout=timeout) for s in (seed, seed, seed2)]
    for r in runs:
        if r["failure"] is not None:
            raise UmlError(f"the run with seed {r['seed']} failed: {r['failure']}")
    return {
        "format": "qaicmodel-uml-determinism/1",
        "workload": workload,
        "kernel": "7.2",
        "same_seed": compare(runs[0], runs[1]),
        "other_seed": compare(runs[0], runs[2]),
        "steps": [r["steps"] for r in runs],
    }


def report(r: dict[str, Any]) -> str:
    out = [f"determinism, workload {r['workload']}, kernel {r['kernel']} (steps {r['steps']}):"]
    for name in ("same_seed", "other_seed"):
        c = r[name]
        out.append(
            f"  seeds {c['seeds'][0]} vs {c['seeds'][1]}: device choices "
            f"{c['choices'][0]}/{c['choices'][1]}; situations met by both "
            f"{c['situations_common']}, same choice in {c['situations_same_choice']}"
            f" ({c['same_choice_fraction']}); as sequences identical {c['choices_identical']}, "
            f"equal {c['choices_equal_fraction']:.1%}, common prefix {c['choices_common_prefix']}"
        )
        out.append(
            f"    trace events {c['events'][0]}/{c['events'][1]} "
            f"(normalised {c['events_normalised'][0]}/{c['events_normalised'][1]}): equal "
            f"{c['trace_equal_fraction_raw']:.1%} raw, "
            f"{c['trace_equal_fraction_normalised']:.1%} normalised"
        )
        for k, v in c["differing_kinds"].items():
            out.append(f"      {k:<10} {v['events']:>5} differ: {v['why']}")
    return "\n".join(out)


def add_args(p: Any) -> None:
    p.add_argument("--seed", type=int, default=1, help="the seed run twice (default 1)")
    p.add_argument("--seed2", type=int, default=2, help="the other seed (default 2)")
    p.add_argument("--workload", choices=WORKLOADS, default="echo", help="default echo")
    p.add_argument("--timeout", type=float, default=100.0, metavar="S", help="per run")
    p.add_argument("--json", action="store_true", help="one JSON object")


def run_cli(args: Any) -> int:
    from qaicmodel.emu import kbuild

    if args.seed < 0 or args.seed2 < 0:
        raise ArgumentError("seeds must be >= 0")
    if args.seed == args.seed2:
        raise ArgumentError(f"--seed2 must differ from --seed ({args.seed})")
    if args.timeout <= 0:
        raise ArgumentError(f"--timeout must be positive, not {args.timeout}")
    if kbuild.find_kernel("7.2") is None:
        raise UmlError("no 7.2 kernel has been built: run `qaicmodel uml build --kernel 7.2`")
    print(
        f"qaicmodel: uml determinism: seeds {args.seed} (twice) and {args.seed2}; replay with "
        f"--seed {args.seed} --seed2 {args.seed2}",
        file=sys.stderr,
        flush=True,
    )
    r = measure_determinism(args.seed, args.seed2, args.workload, timeout=args.timeout)
    print(json.dumps(r, indent=1) if args.json else report(r))
    return 0
