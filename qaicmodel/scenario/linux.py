"""``qaicmodel scenario FILE --host linux``: a scenario on the real driver in the UML guest.

The host half of the Linux host (the guest half is :mod:`qaicmodel.guest.scenario`):

  H1 the guest runs ``python3 -m qaicmodel.guest.client scenario FILE --reply DIR``
     against a :class:`~qaicmodel.emu.datapath.DatapathBoard` (no automatic
     workload: the scenario's activate steps name theirs); the board starts in
     AMSS (``mhi-start-ee=amss``) so the boot does not dominate the run;
  H2 the guest's output is read as it comes (the runner's ``echo`` sink): a
     ``HOSTOP`` line is answered at once, between two device steps of the
     single-threaded loop, by writing ``DIR/reply-N.json``: an activate's workload
     (:data:`~qaicmodel.scenario.format.WORKLOADS`), ``nsp``, ``ddr_write``,
     ``ddr_read``, ``dump`` on the board's DMA Bridge, ``ssr`` (the QSM crashes the
     channel's workload, ``Board.crash``; the guest then waits for the driver's SSR,
     qaicmodel/guest/scenario.py L3b);
  H3 ``RESULT`` lines are the steps' results in order; the report applies the
     scenario's ``expect`` to them exactly as on the model's hosts (report.py
     ``mismatch_of``); the board's rule violations are the report's violations;
  H4 the run's failure (splat, timeout, leftover process, the guest never
     finishing) is a mismatch at the first step without a result;
  H5 only kernels whose UML runs user space on this machine can be the guest
     (7.2; docs/findings.md F2);
  H6 ``datapath`` ``polling`` (the default) boots the guest with
     ``qaic.datapath_polling=1``: the device still raises its MSIs (single-MSI
     mode, vector 0) and the driver's IRQ thread still drains the response ring
     (woken by the poll work), but the hard-IRQ handler reads no register.  In
     ``irq`` mode it reads RSP_HP/RSP_TP in hard-IRQ context, and UML's
     virtio_pcidev (7.2, arch/um/drivers/virtio_pcidev.c ``virtio_pcidev_send_cmd``)
     is not re-entrant: a hard-IRQ MMIO read nested in a process-context one takes
     the other's completion, so a register read returns another register's value
     (seen: the IRQ thread writes a wrong RSP_HP, HOST-RSP-OVERREAD, or waits out
     the virt-pci delay).  That is the emulator's transport, not the qaic driver,
     so polling is the default; ``irq`` shows it (docs/findings.md F7).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import attrs

from qaicmodel.errors import ArgumentError, UmlError
from qaicmodel.scenario.format import WORKLOADS, Scenario, load
from qaicmodel.scenario.report import Report, mismatch_of
from qaicmodel.scenario.runner import dump_channel

__all__ = ["LinuxRun", "run_scenario_linux", "UML_KERNEL", "DATAPATH_MODES"]

DATAPATH_MODES = ("polling", "irq")

UML_KERNEL = "7.2"
PCI = "0000:00:00.0"
RESULT = "QAICMODEL-RESULT "
HOSTOP = "QAICMODEL-HOSTOP "
DONE = "QAICMODEL-DONE"


class _Bridge:
    """The runner's echo sink: parses the guest's lines, answers host ops (H2)."""

    def __init__(self, sc: Scenario, board: Any, reply_dir: Path) -> None:
        self.sc = sc
        self.board = board
        self.reply_dir = reply_dir
        self.buf = b""
        self.results: list[dict[str, Any]] = []
        self.done = False
        self.text: list[str] = []
        self.hostops = 0

    def write(self, data: bytes) -> int:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for raw in lines:
            self._line(raw.decode("utf-8", "replace").rstrip("\r"))
        return len(data)

    def flush(self) -> None:
        pass

    def _line(self, line: str) -> None:
        if line.startswith(RESULT):
            self.results.append(json.loads(line[len(RESULT) :]))
        elif line.startswith(HOSTOP):
            req = json.loads(line[len(HOSTOP) :])
            try:
                reply = self.hostop(req)
            except Exception as e:  # noqa: BLE001 - reported as the step's result
                reply = {"_raise": "host-op-failed", "detail": f"{type(e).__name__}: {e}"}
            name = self.reply_dir / f"reply-{req['step']}.json"
            tmp = name.with_suffix(".tmp")
            tmp.write_text(json.dumps(reply))
            os.rename(tmp, name)
            self.hostops += 1
        elif line.strip() == DONE:
            self.done = True
        else:
            self.text.append(line)

    def hostop(self, req: dict[str, Any]) -> dict[str, Any]:
        st = self.sc.steps[req["step"]]
        a = st.args
        dev = self.board.device
        dbc = req.get("dbc_id")
        if st.op == "activate":
            ref, _f, _r = WORKLOADS[a["workload"]["kind"]]
            mod, _, cls_name = ref.partition(":")
            cls = getattr(importlib.import_module(mod), cls_name)
            self.board.workloads[dbc] = cls(dev, dbc, **a["workload"]["args"])
            return {}
        if st.op == "ssr":
            self.board.crash(dbc)  # ArgumentError when no workload is active there
            return {}
        if st.op in ("nsp", "dump") and (dbc is None or not 0 <= dbc < dev.num_dbc):
            return {"_raise": "host-op-failed", "detail": f"no channel {dbc}"}
        if st.op == "nsp":
            s = a["sem"]
            if not dev.ch[dbc].active:
                return {"_raise": "host-op-failed", "detail": f"channel {dbc} is not active"}
            dev.nsp_sem(dbc, s["index"], s["cmd"], s["val"])
            return {"value": int(dev.ch[dbc].sems[s["index"]])}
        if st.op == "ddr_write":
            dev.dev_mem.write(a["addr"], a["hex"])
            return {}
        if st.op == "ddr_read":
            data = dev.dev_mem.read(a["addr"], a["length"])
            out: dict[str, Any] = {"hex": data.hex()}
            if a["expect_hex"] is not None and a["expect_hex"] != data:
                out["hex_mismatch"] = True
            return out
        if st.op == "dump":
            if dbc is None:
                return {"_raise": "host-op-failed", "detail": "dump names no channel"}
            return dump_channel(dev, dbc)
        return {"_raise": "not-modelled"}


@attrs.define
class LinuxRun:
    """A scenario's run on the real driver: the report, the board, the UML run."""

    report: Report
    board: Any
    run: Any
    hostops: int
    guest_text: list[str]
    #: the run's :class:`~qaicmodel.emu.tracing.Recorder` (``record=True``), else None
    recorder: Any = None


def run_scenario_linux(
    obj_or_path: Any,
    *,
    kernel: str | None = None,
    seed: int = 0,
    timeout: float = 120.0,
    console: Path | None = None,
    policies: list[str] | None = None,
    vmlinux: Path | None = None,
    extra_args: tuple[str, ...] = (),
    datapath: str = "polling",
    record: bool = False,
) -> LinuxRun:
    """H1-H6.  ``record``: the board runs inside a :class:`~qaicmodel.emu.tracing.Recorder`
    (its trace and device choices in :attr:`LinuxRun.recorder`).  ``kernel`` is the scenario's ``--kernel-version`` (upstream = 7.2)."""
    if datapath not in DATAPATH_MODES:
        raise ArgumentError(
            f"datapath must be one of {', '.join(DATAPATH_MODES)}, not {datapath!r}"
        )
    if datapath == "polling":
        extra_args = ("qaic.datapath_polling=1", *extra_args)
    from qaicmodel.emu import kbuild, runner
    from qaicmodel.emu.datapath import DatapathBoard

    sc = load(obj_or_path)
    want = kernel or sc.device.kernel or "upstream"
    uml = UML_KERNEL if want in ("upstream", UML_KERNEL) else want
    if uml != UML_KERNEL:
        raise ArgumentError(
            f"--host linux runs the data path on a {UML_KERNEL} guest only "
            f"({uml}'s UML cannot run user space here: docs/findings.md F2)"
        )
    if vmlinux is None and kbuild.find_kernel(uml) is None:
        raise UmlError(
            f"no {uml} kernel has been built: run `qaicmodel uml build --kernel {uml}` first"
        )
    pols = ["mhi-start-ee=amss"] + [f"{k}={v}" for k, v in sc.device.policies.items()]
    pols += list(policies or [])
    board = DatapathBoard(policies=pols, kernel=uml, workload=None, seed=seed)
    recorder = None
    if record:
        from qaicmodel.emu.tracing import Recorder

        recorder = Recorder(board)
    work = Path(tempfile.mkdtemp(prefix="qaicmodel-linux-scenario-"))
    try:
        (work / "reply").mkdir()
        scen = work / "scenario.json"
        # the guest re-parses the same file (the parse is the contract on both sides)
        if isinstance(obj_or_path, (str, os.PathLike)):
            shutil.copyfile(obj_or_path, scen)
        elif isinstance(obj_or_path, (bytes, bytearray)):
            scen.write_bytes(bytes(obj_or_path))
        elif isinstance(obj_or_path, dict):
            scen.write_text(json.dumps(obj_or_path))
        else:
            raise ArgumentError("--host linux needs the scenario as a file, bytes or a dict")
        bridge = _Bridge(sc, board, work / "reply")
        cmd = (
            f"{sys.executable} -m qaicmodel.guest.client scenario {scen} --reply "
            f"{work / 'reply'}; rc=$?; echo {PCI} > /sys/bus/pci/drivers/qaic/unbind; "
            "exit $rc"
        )
        res = runner.run(
            ["/bin/sh", "-c", cmd],
            kernel=None if vmlinux else uml,
            vmlinux=vmlinux,
            board=recorder if recorder is not None else board,
            timeout=timeout,
            echo=bridge,  # type: ignore[arg-type]
            console=console,
            seed=seed,
            extra_args=extra_args,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = bridge.results
    mismatch = None
    for r in results:
        st = sc.steps[r["step"]]
        if st.expect is not None:
            r["expect"] = st.expect
        mismatch = mismatch_of(st, r)
        if mismatch is None and r["result"] == "not-supported":  # guest/scenario.py L3
            mismatch = {
                "step": st.index,
                "op": st.op,
                "expect": st.expect or "ok",
                "result": f"not-supported on the linux host: {r.get('reason', '')}",
            }
        if mismatch is not None:
            break
    why = res.failure()
    if mismatch is None and (why is not None or len(results) < len(sc.steps)):
        k = len(results)
        st = sc.steps[min(k, len(sc.steps) - 1)]
        mismatch = {
            "step": st.index,
            "op": st.op,
            "expect": st.expect or "ok",
            "result": f"linux host: {why or 'the guest stopped before this step'}",
        }
    viols = [{"rule": v.rule, "message": v.message, "where": v.where} for v in board.violations]
    if mismatch is None and viols:
        mismatch = {
            "step": len(results) - 1,
            "op": "run",
            "expect": "ok",
            "result": f"violation {viols[0]['rule']}",
        }
    return LinuxRun(
        report=Report(results=results, first_mismatch=mismatch, violations=viols),
        board=board,
        run=res,
        hostops=bridge.hostops,
        guest_text=bridge.text,
        recorder=recorder,
    )
