"""Scenario execution: one device model, one host, workloads, step by step.

Execution rules (:class:`Runner`):

  E1  steps run in order on one device model and one host; an ioctl's result is ``ok`` or
      the errno name of the :class:`~qaicmodel.errors.IoctlError` the host raised.
  E2  the run stops at the first step whose ``expect`` does not hold (exit 1).
  E3  ``run`` and ``wait`` drive the actors (device, host interrupt side, workloads) with
      the deterministic default schedule: the first enabled action of the first actor
      that has one (scheduler.FirstScheduler order).
  E4  ``wait``: the host's validation first; then the actors run until the BO completes;
      when no action is enabled and it has not completed the result is ``ETIMEDOUT``
      (scenario.md "wait in the model").
  E5  ``activate``/``deactivate``/``close``/``ssr`` go through :func:`_activate`,
      :func:`_deactivate`, :func:`_close`, :func:`_ssr` -- the seam to the control plane
      (qaicmodel/spec/control/plane.py: NNC MANAGE messages to the QSM model).
  E6  a host rule violation recorded by the device during a step, or a response left in
      a ring when a ``run`` ends quiescent (interrupt mode), makes that step a mismatch
      (the reference host never does either; formats-extensions.md).
  E7  the control steps (``manage``, ``control_fault``, ``ras``, ``reset``) and the
      control-plane seam live in :mod:`qaicmodel.scenario.control_ops` (rules K1-K2).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from qaicmodel.errors import (
    ArgumentError,
    FormatError,
    IoctlError,
    NotModelledError,
)
from qaicmodel.scenario.control_ops import ControlSteps
from qaicmodel.scenario.format import (
    WORKLOADS,
    Ref,
    Step,
    _where,
    load,
)
from qaicmodel.scenario.memory_ops import MemorySteps
from qaicmodel.scenario.report import Report, mismatch_of, violations_of
from qaicmodel.spec.dbc.config import DeviceConfig
from qaicmodel.spec.host import kernels
from qaicmodel.spec.host.protocol import load_host

__all__ = ["DEFAULT_HOST", "Runner", "ScheduleDiverged", "dump_channel", "run_scenario"]

#: The reference host (qaicmodel/spec/host/reference.py) runs scenarios unless told otherwise.
DEFAULT_HOST = "qaicmodel.spec.host:SpecHost"
#: ``run`` without ``max_steps`` stops after this many actor steps (reports quiescent=false).
DEFAULT_RUN_LIMIT = 200_000

# ---------------------------------------------------------------------------
# Running


class ScheduleDiverged(Exception):
    """Internal: a ``schedule`` entry is not enabled now (the step's result says so)."""


class Runner(ControlSteps, MemorySteps):
    """One device model + one host + workloads, driven step by step (rules E1-E5).

    ``conform`` drives a Runner directly (``step``), so checks can run between steps.
    """

    def __init__(
        self,
        device_cfg: DeviceConfig | None = None,
        *,
        host_cls: type | None = None,
        policies: Any = None,
        bus: Callable[[Any], Any] | None = None,
        wrap_host: Callable[[Any], Any] | None = None,
        control_host: Any = None,
        control_faults: Any = (),
    ) -> None:
        """``bus`` (device -> what the host is given) and ``wrap_host`` (host -> what the
        runner calls) let ``conform`` watch every register access and host call;
        ``control_host`` (``MODULE:CLASS`` or a class) replaces the driver's control
        client and ``control_faults`` (``NAME[:SEED[:AT]][+]`` or faults.Injector) arm
        device-side control faults (rule K1)."""
        from qaicmodel.spec.dbc.device import Device
        from qaicmodel.spec.dbc.memory import DevMemory, HostMemory
        from qaicmodel.spec.policies import Policies

        cfg = device_cfg or DeviceConfig()
        self.cfg = cfg
        pols = policies if policies is not None else Policies(dict(cfg.policies))
        self.device = Device(
            num_dbc=cfg.num_dbc,
            policies=pols,
            single_msi=cfg.single_msi,
            host_mem=HostMemory(),
            dev_mem=DevMemory(),
        )
        # the driver version the host and control plane follow (spec/host/kernels.py)
        self.device.kernel = kernels.parse(cfg.kernel)
        cls = host_cls if host_cls is not None else load_host(DEFAULT_HOST)
        host = cls(
            bus(self.device) if bus is not None else self.device,
            sg_max_segment=cfg.sg_max_segment,
            datapath_polling=cfg.datapath_polling,
        )
        self.host = wrap_host(host) if wrap_host is not None else host
        self.names: dict[str, int] = {}
        self.users: dict[str, int | None] = {}  # label -> host user id (None: closed)
        self.owner: dict[int, str] = {}  # dbc -> user label (activated here)
        self.workloads: dict[int, list[Any]] = {}  # dbc -> workload actors
        self.bo_dir: dict[tuple[str, int], int] = {}
        self.threads: dict[str, int] = {}  # thread name -> host exec thread id
        self.waits: dict[str, int] = {}  # thread name -> host wait thread id
        self.results: list[dict[str, Any]] = []
        self.steps_run = 0
        self._init_control(control_host, control_faults)  # the ControlPlane: first control step

    # -- actors (E3)
    def actors(self) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = [("device", self.device), ("host", self.host)]
        for dbc in sorted(self.workloads):
            for k, w in enumerate(self.workloads[dbc]):
                out.append((f"workload{dbc}.{k}", w))
        return out

    def enabled(self) -> list[tuple[str, Any]]:
        """Every enabled action as (actor tag, action), in deterministic order."""
        return [(tag, a) for tag, actor in self.actors() for a in actor.enabled()]

    def take(self, tag: str, action: Any) -> None:
        if tag in ("device", "host") and type(self).actors is Runner.actors:
            # actors()' first two entries, without building the list (speed only)
            actor = self.device if tag == "device" else self.host
        else:
            actor = next((a for t, a in self.actors() if t == tag), None)
        if actor is None:
            raise KeyError(tag)
        actor.step(action)
        self.steps_run += 1

    def drive(
        self, max_steps: int | None = None, until: Callable[[], bool] | None = None
    ) -> tuple[int, int, bool]:
        """FirstScheduler order until quiescent / ``until()`` / ``max_steps``.

        Returns (steps, device_steps, quiescent).
        """
        limit = DEFAULT_RUN_LIMIT if max_steps is None else max_steps
        steps = dev_steps = 0
        actors = self.actors()
        while steps < limit:
            if until is not None and until():
                return steps, dev_steps, False
            for tag, actor in actors:
                acts = actor.enabled()
                if acts:
                    actor.step(acts[0])
                    self.steps_run += 1
                    steps += 1
                    dev_steps += tag == "device"
                    break
            else:
                return steps, dev_steps, True
        return steps, dev_steps, not self.enabled()

    def follow(self, schedule: list[str]) -> int:
        """Take exactly the listed actions (``run`` extension); raise ScheduleDiverged."""
        dev_steps = 0
        for k, want in enumerate(schedule):
            for tag, a in self.enabled():
                if f"{tag}:{a!r}" == want:
                    self.take(tag, a)
                    dev_steps += tag == "device"
                    break
            else:
                raise ScheduleDiverged(f"schedule[{k}] {want} is not enabled")
        return dev_steps

    # -- name resolution (P5)
    def val(self, x: Any, i: int, field: str) -> int:
        if isinstance(x, Ref):
            if x.name not in self.names:
                raise FormatError(
                    f"name {x.name!r} is unbound (the step that binds it failed)",
                    where=_where(i, field),
                )
            return self.names[x.name]
        return int(x)

    def uid(self, label: str) -> int | None:
        return self.users.get(label)

    # -- steps
    def step(self, st: Step) -> dict[str, Any]:
        """Run one step; returns its result record (E1)."""
        res: dict[str, Any] = {"step": st.index, "op": st.op}
        a = st.args
        seen = len(self.device.violations)
        try:
            if st.op != "open" and "user" in a and self.uid(a["user"]) is None:
                # the DRM file was closed: the VFS answers before the driver
                raise IoctlError("EBADF", f"user {a['user']} is closed")
            out = getattr(self, f"_op_{st.op}")(st, a)
            res["result"] = "ok"
            if out:
                res.update(out)
                if "_raise" in res:
                    res["result"] = res.pop("_raise")
        except IoctlError as e:
            res["result"] = e.name
        except ScheduleDiverged as e:
            res["result"] = "schedule-diverged"
            res["detail"] = str(e)
        if st.as_ is not None and res["result"] == "ok":
            self.names[st.as_] = res["dbc_id"] if st.op == "activate" else res["handle"]
        new = violations_of(self.device)[seen:]
        if new:
            res["violations"] = new
        verdicts = self.control_verdicts()
        if verdicts:
            res["control_verdicts"] = [v.as_dict() for v in verdicts]
        self.results.append(res)
        return res

    def _op_open(self, st: Step, a: Mapping[str, Any]) -> None:
        self.users[a["user"]] = self.host.open()

    def _op_close(self, st: Step, a: Mapping[str, Any]) -> None:
        self.control_close(a["user"])

    def _op_activate(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        dbc = self.control_activate(a["user"], a["queue_size"], a["options"])
        if a["workload"] is not None:
            self._start_workload(dbc, a["workload"], st.index)
        return {"dbc_id": dbc}

    def _start_workload(self, dbc: int, spec: Mapping[str, Any], i: int) -> None:
        ref, _fields, _req = WORKLOADS[spec["kind"]]
        mod, _, cls_name = ref.partition(":")
        cls = getattr(importlib.import_module(mod), cls_name)
        try:
            actor = cls(self.device, dbc, **spec["args"])
        except ArgumentError as e:
            raise FormatError(str(e), where=_where(i, "workload")) from None
        self.workloads.setdefault(dbc, []).append(actor)

    def _op_deactivate(self, st: Step, a: Mapping[str, Any]) -> None:
        self.control_deactivate(a["user"], self.val(a["dbc_id"], st.index, "dbc_id"))

    def _op_create_bo(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        uid = self.uid(a["user"])
        handle = self.host.create_bo(uid, a["size"], a["pad"])
        segs = [[int(x), int(n)] for x, n in self.host.bo_segments(uid, handle)]
        return {"handle": int(handle), "segments": segs}

    def _op_attach_slice(self, st: Step, a: Mapping[str, Any]) -> None:
        from qaicmodel.spec.host import uapi

        h, i = a["hdr"], st.index
        entries = a["entries"]
        count = len(entries) if h["count"] is None else h["count"]
        handle = self.val(h["handle"], i, "hdr.handle")
        hdr = uapi.AttachSliceHdr(
            count=count,
            dbc_id=self.val(h["dbc_id"], i, "hdr.dbc_id"),
            handle=handle,
            dir=h["dir"],
            size=h["size"],
        )
        ents = _slice_entries(uapi, entries, count)
        self.host.attach_slice(self.uid(a["user"]), hdr, ents)
        self.bo_dir[(a["user"], handle)] = h["dir"]

    def _exec_pairs(self, st: Step, a: Mapping[str, Any], key: str) -> list[Any]:
        out = []
        for k, e in enumerate(a[key]):
            handle = self.val(e["handle"], st.index, f"{key}[{k}].handle")
            d = e["dir"] if e["dir"] is not None else self.bo_dir.get((a["user"], handle), 0)
            out.append((handle, d, e["resize"]) if "resize" in e else (handle, d))
        return out

    def _op_execute(self, st: Step, a: Mapping[str, Any]) -> None:
        dbc = self.val(a["dbc_id"], st.index, "dbc_id")
        pairs = self._exec_pairs(st, a, "handles")
        if a["thread"] is not None:
            return self._begin(st, a, dbc, pairs, False)
        self.host.execute(self.uid(a["user"]), dbc, pairs)
        return None

    def _op_partial_execute(self, st: Step, a: Mapping[str, Any]) -> None:
        dbc = self.val(a["dbc_id"], st.index, "dbc_id")
        ents = self._exec_pairs(st, a, "entries")
        if a["thread"] is not None:
            return self._begin(st, a, dbc, ents, True)
        self.host.partial_execute(self.uid(a["user"]), dbc, ents)
        return None

    def _begin(
        self, st: Step, a: Mapping[str, Any], dbc: int, ents: list[Any], partial: bool
    ) -> None:
        """Extension ``thread``: an ioctl thread enters EXECUTE_BO; its phases become host
        actions (``exec``) and ``join`` gives the ioctl's result."""
        begin = getattr(self.host, "execute_begin", None)
        if begin is None:
            raise NotModelledError("this host has no execute_begin (concurrent EXECUTE_BO threads)")
        self.threads[a["thread"]] = begin(self.uid(a["user"]), dbc, ents, partial)

    def _op_join(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        """Run the actors (default schedule) until the thread left EXECUTE_BO; its result."""
        if a["thread"] in self.waits:
            return self._join_wait(st, a)
        tid = self.threads.get(a["thread"])
        if tid is None:
            raise FormatError(
                f"thread {a['thread']!r} did not start (its step failed) or was joined already",
                where=_where(st.index, "thread"),
            )

        def finished() -> bool:
            th = getattr(self.host, "threads", {}).get(tid)
            return th is None or th.phase.name == "DONE"

        _s, dev_steps, _q = self.drive(until=finished)
        if not finished():
            return {
                "result_detail": "the thread cannot finish",
                "device_steps": dev_steps,
                "_raise": "EDEADLK",
            }
        del self.threads[a["thread"]]
        err = self.host.execute_result(tid)
        if err is not None:
            raise err
        return {"device_steps": dev_steps}

    def _join_wait(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        """Run the actors until the WAIT_BO thread woke (its ``wake`` action ran); when
        nothing can wake it any more, ETIMEDOUT (E4)."""
        tid = self.waits[a["thread"]]
        th = self.host.waiters

        def finished() -> bool:
            return th[tid].finished

        _s, dev_steps, _q = self.drive(until=finished)
        del self.waits[a["thread"]]
        if not finished():
            self.host.wait_result(tid, abandon=True)
            raise IoctlError("ETIMEDOUT", "no enabled action completes the BO")
        err = self.host.wait_result(tid)
        if err is not None:
            raise err
        return {"device_steps": dev_steps}

    def _op_wait(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        uid = self.uid(a["user"])
        dbc = self.val(a["dbc_id"], st.index, "dbc_id")
        handle = self.val(a["handle"], st.index, "handle")
        if a.get("thread") is not None:
            # extension ``thread``: WAIT_BO as an ioctl thread that sleeps until the BO's
            # completion fires, then runs its checks after waking; ``join`` gives its result
            begin = getattr(self.host, "wait_begin", None)
            if begin is None:
                raise NotModelledError("this host has no wait_begin (WAIT_BO threads)")
            self.waits[a["thread"]] = begin(uid, dbc, handle, a["timeout_ms"], a["pad"])
            return {"device_steps": 0}

        def done() -> bool:
            return bool(self.host.wait_check(uid, dbc, handle, a["timeout_ms"], a["pad"]))

        if done():
            return {"device_steps": 0}
        _steps, dev_steps, _q = self.drive(until=done)
        if not done():  # E4: nothing left that could complete it
            raise IoctlError("ETIMEDOUT", "no enabled action completes the BO")
        return {"device_steps": dev_steps}

    def _op_perf_stats(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        handles = [self.val(h, st.index, f"handles[{k}]") for k, h in enumerate(a["handles"])]
        ents = self.host.perf_stats(
            self.uid(a["user"]), self.val(a["dbc_id"], st.index, "dbc_id"), handles
        )
        return {
            "stats": [
                {
                    "handle": int(e.handle),
                    "queue_level_before": int(e.queue_level_before),
                    "num_queue_element": int(e.num_queue_element),
                }
                for e in ents
            ]
        }

    def _op_detach_slice(self, st: Step, a: Mapping[str, Any]) -> None:
        self.host.detach_slice(
            self.uid(a["user"]), self.val(a["handle"], st.index, "handle"), a["pad"]
        )

    def _bo_view(self, st: Step, a: Mapping[str, Any], length: int) -> Any:
        view = self.host.mmap_bo(self.uid(a["user"]), self.val(a["handle"], st.index, "handle"))
        size = int(view.shape[0]) if hasattr(view, "shape") else len(view)  # > 2**63: sparse
        if a["offset"] + length > size:
            # a C runner would touch memory past the mapping: SIGSEGV; the model says EFAULT
            raise IoctlError("EFAULT", f"[{a['offset']}, +{length}) is outside the {size}-byte BO")
        return view

    def _op_write_bo(self, st: Step, a: Mapping[str, Any]) -> None:
        data = a["hex"]
        view = self._bo_view(st, a, len(data))
        off = a["offset"]
        view[off : off + len(data)] = data if not hasattr(view, "dtype") else _np_bytes(data)

    def _op_read_bo(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        n = a["length"]
        view = self._bo_view(st, a, n)
        off = a["offset"]
        data = bytes(view[off : off + n])
        return _with_expected_hex(data, a["expect_hex"])

    def _op_nsp(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        dbc = self.val(a["dbc_id"], st.index, "dbc_id")
        s = a["sem"]
        if not self.device.ch[dbc].active:
            raise FormatError(f"channel {dbc} is not active", where=_where(st.index, "dbc_id"))
        self.device.nsp_sem(dbc, s["index"], s["cmd"], s["val"])
        return {"value": int(self.device.ch[dbc].sems[s["index"]])}

    def _op_ddr_write(self, st: Step, a: Mapping[str, Any]) -> None:
        _ddr_check(st, a["addr"], len(a["hex"]))
        self.device.dev_mem.write(a["addr"], a["hex"])

    def _op_ddr_read(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        _ddr_check(st, a["addr"], a["length"])
        return _with_expected_hex(self.device.dev_mem.read(a["addr"], a["length"]), a["expect_hex"])

    def _op_run(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        if a["schedule"] is not None:
            dev_steps = self.follow(a["schedule"])
            return {"device_steps": dev_steps, "steps": len(a["schedule"])}
        steps, dev_steps, quiescent = self.drive(max_steps=a["max_steps"])
        out: dict[str, Any] = {"device_steps": dev_steps, "steps": steps, "quiescent": quiescent}
        stranded = self.stranded() if quiescent else []
        if stranded:
            out["stranded"] = stranded
        return out

    def stranded(self) -> list[int]:
        """Active channels with a response the host never drained (interrupt mode only).

        Invariant of the driver's interrupt protocol (qaic_data.c dbc_irq_threaded_fn,
        missed-event check): at quiescence no response is left in the ring.
        """
        if self.cfg.datapath_polling:
            return []
        return [
            i
            for i in range(self.device.num_dbc)
            if self.device.ch[i].active and self.device.ch[i].rsp_hp != self.device.ch[i].rsp_tp
        ]

    def _op_ssr(self, st: Step, a: Mapping[str, Any]) -> None:
        self.control_ssr(self.val(a["dbc_id"], st.index, "dbc_id"))

    def _op_dump(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any]:
        return dump_channel(self.device, self.val(a["dbc_id"], st.index, "dbc_id"))


def _np_bytes(data: bytes) -> Any:
    import numpy as np

    return np.frombuffer(data, dtype=np.uint8)


def _with_expected_hex(data: bytes, expected: bytes | None) -> dict[str, Any]:
    out: dict[str, Any] = {"hex": data.hex()}
    if expected is not None and expected != data:
        out["hex_mismatch"] = True
    return out


def _ddr_check(st: Step, addr: int, length: int) -> None:
    if addr + length > 1 << 64:
        raise FormatError(
            f"[0x{addr:x}, +{length}) runs past the 64-bit device address space",
            where=_where(st.index, "addr"),
        )


#: [entries list, count, their uapi records] of the last attach: conform's primary and
#: its errno shadow attach one step's (never mutated) entries one after the other, and
#: the records are frozen, so they share them
_LAST_ENTRIES: list[Any] = [None, 0, ()]


def _slice_entries(uapi: Any, entries: list[Mapping[str, Any]], count: int) -> list[Any]:
    last = _LAST_ENTRIES
    if last[0] is not entries or last[1] != count:
        last[:] = [entries, count, tuple(_slice_entry(uapi, e) for e in entries[:count])]
    return list(last[2])


def _slice_entry(uapi: Any, e: Mapping[str, Any]) -> Any:
    sems = {k: _sem(uapi, e[k]) for k in ("sem0", "sem1", "sem2", "sem3")}
    rest = {k: v for k, v in e.items() if k not in sems}
    return uapi.SliceEntry(**rest, **sems)


#: a semaphore's (field, value) pairs -> its uapi.Sem (frozen, so shared)
_SEMS: dict[tuple[tuple[str, Any], ...], Any] = {}


def _sem(uapi: Any, fields: Mapping[str, Any]) -> Any:
    key = tuple(fields.items())
    sem = _SEMS.get(key)
    if sem is None:
        sem = uapi.Sem(**fields)
        if len(_SEMS) < 4096:
            _SEMS[key] = sem
    return sem


def dump_channel(device: Any, dbc: int) -> dict[str, Any]:
    """``dump`` (scenario.md): registers, nelem, both rings as hex, the 32 semaphores."""
    from qaicmodel.spec.dbc.wire import REQ_SIZE, RSP_SIZE

    ch = device.ch[dbc]
    nelem = int(ch.nelem) if ch.active else 0
    out: dict[str, Any] = {
        "regs": {
            "req_hp": int(ch.req_hp),
            "req_tp": int(ch.req_tp),
            "rsp_hp": int(ch.rsp_hp),
            "rsp_tp": int(ch.rsp_tp),
        },
        "nelem": nelem,
        "req": [],
        "rsp": [],
        "sems": [int(s) for s in ch.sems],
    }
    if nelem:
        req = device.host_mem.read(ch.req_q, REQ_SIZE * nelem)
        rsp = device.host_mem.read(ch.rsp_q, RSP_SIZE * nelem)
        out["req"] = [req[k : k + REQ_SIZE].hex() for k in range(0, len(req), REQ_SIZE)]
        out["rsp"] = [rsp[k : k + RSP_SIZE].hex() for k in range(0, len(rsp), RSP_SIZE)]
    return out


def run_scenario(
    obj_or_path: Any,
    *,
    host_cls: type | None = None,
    kernel: str | None = None,
    policies: list[str] | None = None,
    control_host: Any = None,
    control_faults: Any = (),
) -> Report:
    """Parse and run a scenario (path, bytes, dict or :class:`Scenario`); rules E1-E5.
    ``kernel`` (``--kernel-version``) overrides the file's ``device.kernel``;
    ``policies`` (``--policy ID=ALT``) override the file's ``device.policies``."""
    sc = load(obj_or_path)
    cfg = sc.device if kernel is None else attrs.evolve(sc.device, kernel=kernel)
    if policies:
        from qaicmodel.spec.policies import Policies

        chosen = dict(Policies.parse(list(policies)).chosen)
        cfg = attrs.evolve(cfg, policies={**dict(cfg.policies), **chosen})
    runner = Runner(
        cfg, host_cls=host_cls, control_host=control_host, control_faults=control_faults
    )
    mismatch = None
    for st in sc.steps:
        res = runner.step(st)
        if st.expect is not None:
            res["expect"] = st.expect
        mismatch = mismatch_of(st, res)
        if mismatch is not None:
            break
    return Report(
        results=runner.results, first_mismatch=mismatch, violations=violations_of(runner.device)
    )
