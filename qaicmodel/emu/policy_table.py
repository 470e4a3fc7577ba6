"""``qaicmodel uml policies [--json]``: every data-path policy alternative against the real driver.

For each policy of the registry whose choice the data path can see (areas ``dma-bridge``
and ``nnc``), and each of its alternatives, one fixed workload runs on the real 7.2
driver in the UML guest against the board with that alternative pinned (everything
else at its default; ``mhi-start-ee=amss``), and the outcome is classified:

  P1 ``works``: every call ok, the data intact, no device rule broken, a clean run;
  P2 ``wrong-data``: a read-back differs from what the workload must give;
  P3 ``wait-timeout``: a WAIT_BO that must succeed gave ETIMEDOUT;
  P4 ``errno``: another call failed (the errno and the call are named);
  P5 ``violation``: the driver broke a device rule under this alternative (rule id);
  P6 ``splat`` / ``hang``: a kernel splat, or the guest did not finish in time;
  P7 ``uml-race``: the run hit UML's non-re-entrant virtio_pcidev (the "um virt-pci
     delay" warning in ``virtio_pcidev_send_cmd``: an MMIO from interrupt or timer
     context nested in a process-context one; qaicmodel/scenario/linux.py H6): the
     emulator's transport, not the driver, so the run is repeated (up to 2 more times)
     and ``uml-race`` is the outcome only if every try hit it.

Workloads: ``echo`` (``qaicmodel.guest.client echo``: every data-path ioctl, semaphore
WAIT_EQ/INIT, 32-bit doorbells, the echo workload) and ``elements``
(``examples/request_elements.json``: every semaphore command, 8/16/32-bit doorbells, sync
fences, partial executes), the default pair; on request (``--workload resize0``) also
``resize0`` (``examples/partial_resize0.json``: a BO that never completes is still queued
when its file is closed, so the channel is released under the driver's poll work --
docs/findings.md F8, where ``inactive-dbc-regs`` shows).  The table says which alternatives the Linux driver depends
on -- measured, not read off the code.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from qaicmodel.errors import ArgumentError

__all__ = ["AREAS", "WORKLOADS", "measure", "table", "add_args", "run_cli"]

AREAS = ("dma-bridge", "nnc")
WORKLOADS = ("echo", "elements")
#: every workload ``--workload`` accepts (the default is :data:`WORKLOADS`)
ALL_WORKLOADS = (*WORKLOADS, "resize0")
SCENARIOS = {"elements": "request_elements.json", "resize0": "partial_resize0.json"}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UNBIND = "echo 0000:00:00.0 > /sys/bus/pci/drivers/qaic/unbind"


def _classify_run(res: Any, violations: list[Any]) -> tuple[str, str] | None:
    if res.splats:
        q = res.splats[0].quote()
        return ("uml-race" if "virtio_pcidev_send_cmd" in q else "splat"), q
    if res.timed_out:
        return "hang", f"no end within {res.timeout:g} s"
    if violations:
        v = violations[0]
        return "violation", f"{v.rule}: {v.message}"
    return None


def _echo(pins: list[str], timeout: float, extra: tuple[str, ...]) -> tuple[str, str]:
    from qaicmodel.emu import runner
    from qaicmodel.emu.datapath import DatapathBoard

    b = DatapathBoard(policies=["mhi-start-ee=amss", *pins], kernel="7.2")
    cmd = (
        f"{sys.executable} -m qaicmodel.guest.client echo --timeout-ms 3000; rc=$?; "
        f"{UNBIND}; exit $rc"
    )
    with tempfile.NamedTemporaryFile(prefix="qaicmodel-policy-", suffix=".txt") as con:
        res = runner.run(
            ["/bin/sh", "-c", cmd],
            kernel="7.2",
            board=b,
            timeout=timeout,
            capture=True,
            echo=open("/dev/null", "wb"),  # noqa: SIM115
            console=Path(con.name),
            extra_args=extra,
        )
    bad = _classify_run(res, b.violations)
    if bad:
        return bad
    line = next(
        (ln for ln in res.output.decode(errors="replace").splitlines() if ln.startswith("{")), None
    )
    if line is None:
        return "errno", f"no result from the guest ({res.failure()})"
    got = json.loads(line)
    failed = [(n, r) for n, r in got.get("calls", []) if r != "ok"]
    if failed:
        n, r = failed[0]
        return ("wait-timeout", f"{n}: {r}") if r == "ETIMEDOUT" else ("errno", f"{n}: {r}")
    if not (got.get("echo_intact") and got.get("partial_intact")):
        return "wrong-data", "the echoed bytes differ"
    return "works", ""


def _elements(
    pins: list[str], timeout: float, extra: tuple[str, ...], name: str = "elements"
) -> tuple[str, str]:
    from qaicmodel.scenario.linux import run_scenario_linux

    with tempfile.NamedTemporaryFile(prefix="qaicmodel-policy-", suffix=".txt") as con:
        lx = run_scenario_linux(
            EXAMPLES / SCENARIOS[name],
            timeout=timeout,
            policies=pins,
            console=Path(con.name),
            datapath="polling" if extra else "irq",
        )
    bad = _classify_run(lx.run, lx.board.violations)
    if bad:
        return bad
    m = lx.report.first_mismatch
    if m is None:
        return "works", ""
    where = f"step {m['step']} ({m['op']}): {m['result']}"
    if m["result"] == "hex differs":
        return "wrong-data", where
    if m["result"] == "ETIMEDOUT":
        return "wait-timeout", where
    return "errno", where


def measure(
    pid: str, alt: str, workload: str, *, timeout: float = 60.0, datapath: str = "polling"
) -> tuple[str, str]:
    extra = ("qaic.datapath_polling=1",) if datapath == "polling" else ()
    pins = [f"{pid}={alt}"]
    for _ in range(3):  # P7
        if workload == "echo":
            got = _echo(pins, timeout, extra)
        else:
            got = _elements(pins, timeout, extra, workload)
        if got[0] != "uml-race":
            break
    return got


def table(
    *,
    areas: tuple[str, ...] = AREAS,
    ids: list[str] | None = None,
    workloads: tuple[str, ...] = WORKLOADS,
    timeout: float = 60.0,
    datapath: str = "polling",
    progress: Any = None,
) -> list[dict[str, Any]]:
    from qaicmodel.spec.policies import all_policies

    rows = []
    for p in all_policies():
        if ids is not None and p.id not in ids:
            continue
        if ids is None and p.area not in areas:
            continue
        for alt in p.alternatives:
            row: dict[str, Any] = {"policy": p.id, "alternative": alt, "default": alt == p.default}
            for w in workloads:
                outcome, detail = measure(p.id, alt, w, timeout=timeout, datapath=datapath)
                row[w] = {"outcome": outcome, "detail": detail}
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def _line(row: dict[str, Any], workloads: tuple[str, ...]) -> str:
    cells = [f"{row[w]['outcome']:<12}" for w in workloads]
    detail = "; ".join(f"{w}: {row[w]['detail']}" for w in workloads if row[w]["detail"])
    mark = "*" if row["default"] else " "
    return f"{row['policy']:<24} {mark}{row['alternative']:<24} {' '.join(cells)} {detail}"[:220]


def add_args(p: Any) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object: the rows")
    p.add_argument(
        "--policy-id",
        action="append",
        default=None,
        metavar="ID",
        help="only this policy (repeatable; default: every dma-bridge and nnc one)",
    )
    p.add_argument(
        "--workload",
        action="append",
        choices=ALL_WORKLOADS,
        default=None,
        help="only this workload (repeatable; default echo and elements)",
    )
    p.add_argument(
        "--linux-datapath",
        choices=["polling", "irq"],
        default="polling",
        help="the driver's data-path mode (default polling; see "
        "qaicmodel/scenario/linux.py H6 for why irq is unreliable under UML)",
    )
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="per run (default 60)")


def run_cli(args: Any) -> int:
    from qaicmodel.emu import kbuild
    from qaicmodel.errors import UmlError
    from qaicmodel.spec.policies import REGISTRY

    if kbuild.find_kernel("7.2") is None:
        raise UmlError("no 7.2 kernel has been built: run `qaicmodel uml build --kernel 7.2`")
    for pid in args.policy_id or []:
        if pid not in REGISTRY:
            raise ArgumentError(f"unknown policy {pid!r}")
    if args.timeout <= 0:
        raise ArgumentError(f"--timeout must be positive, not {args.timeout}")
    wl = tuple(args.workload) if args.workload else WORKLOADS

    def show(row: dict[str, Any]) -> None:
        if not args.json:
            print(_line(row, wl), flush=True)

    if not args.json:
        print(
            f"{'policy':<24}  {'alternative (* default)':<24} " + " ".join(f"{w:<12}" for w in wl)
        )
    rows = table(
        ids=args.policy_id,
        workloads=wl,
        timeout=args.timeout,
        datapath=args.linux_datapath,
        progress=show,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "format": "qaicmodel-uml-policies/1",
                    "kernel": "7.2",
                    "datapath": args.linux_datapath,
                    "rows": rows,
                },
                indent=1,
            )
        )
    return 0
