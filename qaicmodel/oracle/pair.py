"""One conform step on the host under test, judged by the rules (invariants C4).

See :mod:`qaicmodel.oracle.conform` for the rules; :class:`Pair` runs a scenario step
on the host under test and raises :class:`Failure` when an invariant of
:data:`INVARIANTS` breaks.  The verdict comes from the device's rules, the ring
checks of :mod:`qaicmodel.oracle.recorder`, the host-side rules of
:mod:`qaicmodel.oracle.rules` and the errno oracle of :mod:`qaicmodel.oracle.shadow`
(the reference host's answer for the same call in the same state).  With
``differential=True`` the reference host also runs beside it, step for step on its
own device, and any difference in results or device state is a failure too
(CONF-RESULT, CONF-STATE): an optional mode for hosts meant to be the driver's twin.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from qaicmodel.errors import FormatError, QaicModelError, RemoteProtocolError
from qaicmodel.findings import Finding
from qaicmodel.oracle import watchdog
from qaicmodel.oracle.explore_control import CONTROL_FINDINGS, judge
from qaicmodel.oracle.rules import RULES, RuleBook
from qaicmodel.oracle.shadow import Shadow
from qaicmodel.scenario.format import Step
from qaicmodel.scenario.report import violations_of
from qaicmodel.scenario.runner import Runner, dump_channel
from qaicmodel.spec.control.verdicts import RULES as CTRL_RULES
from qaicmodel.spec.dbc.config import DeviceConfig
from qaicmodel.spec.dbc.memory import DmaFault
from qaicmodel.spec.dbc.wire import REQ_SIZE, RequestElem
from qaicmodel.spec.host.protocol import HOST_METHODS

__all__ = ["INVARIANTS", "Failure", "Pair"]

#: where conform's invariants are stated
_INVARIANT_SOURCE = "qaicmodel/oracle/conform.py (conformance invariants)"

INVARIANTS = {
    "CONF-CRASH": "the host raised something other than an ioctl errno",
    "CONF-HANG": "a host call did not return within the watchdog's limit",
    "CONF-VIOLATION": "the device recorded a host rule violation",
    "CONF-STRANDED": "a quiescent run left a response in a ring",
    "CONF-DATA": "an echo inference returned other bytes than were sent",
    "CONF-RESULT": "an ioctl result differs from the reference host's for the same call in "
    "the same state",
    "CONF-STATE": "(--differential) device-visible state differs from the reference host's",
    "CONF-REFERENCE": "the reference host itself crashed or broke a rule (a model bug)",
    "CONF-NEVER-COMPLETES": "a BO was queued with fewer completion-bit request elements "
    "than it has slices: no response can complete it, its WAIT_BO "
    "can only time out",
    # checked by qaicmodel.oracle.cosim's Recorder / World snapshot around the host under test
    "COSIM-REQ-OVERWRITE": "a host call changed a request slot the device had not consumed",
    "COSIM-REQ-OVERRUN": "a REQ_TP write added more elements than the free space",
    "COSIM-RSP-PAST-READ": "an RSP_HP write moved past the RSP_TP value the host had read",
    **RULES,
    **CTRL_RULES,  # the control plane's verdicts (explore_control.py V1-V3)
    **CONTROL_FINDINGS,
}
#: invariants checked on every step by the cosim watch (qaicmodel/oracle/cosim.py)
_COSIM = ("COSIM-REQ-OVERWRITE", "COSIM-REQ-OVERRUN", "COSIM-RSP-PAST-READ")

# Device addresses the echo workload uses (device DDR; doorbells at workload.DB_BASE).
_ECHO_IN = 0x10_0000
_ECHO_OUT = 0x20_0000


class Failure(Exception):
    """An invariant broke at step ``index`` (internal; becomes a report entry).

    Carries the one finding record: :attr:`finding` (rule = the invariant, where =
    the step and its op); the attributes below read from it.
    """

    def __init__(
        self, invariant: str, index: int, op: str, message: str, where: Any = None
    ) -> None:
        super().__init__(f"{invariant} at step {index} ({op}): {message}")
        at = {"step": index, "op": op, **(where or {})}
        self.finding = Finding(invariant, message, _INVARIANT_SOURCE, at)

    @property
    def invariant(self) -> str:
        return self.finding.rule

    @property
    def index(self) -> int:
        return int(self.finding.where["step"])

    @property
    def op(self) -> str:
        return str(self.finding.where["op"])

    @property
    def message(self) -> str:
        return self.finding.message

    @property
    def key(self) -> tuple[str, str]:
        return (self.invariant, self.op)


# ---------------------------------------------------------------------------
# Checking one step on the host under test (+ the reference host)


def _state(r: Runner) -> list[Any]:
    """Everything the host can influence on the device, for CONF-STATE."""
    dev = r.device
    out: list[Any] = []
    for i in range(dev.num_dbc):
        try:
            out.append(dump_channel(dev, i))
        except DmaFault:  # a ring the host freed under a channel still active (control faults)
            out.append({"regs": "ring unmapped", "nelem": None, "sems": None})
    intc = dev.intc
    nvec = 1 if dev.single_msi else dev.num_dbc + 1
    out.append([(intc.masked(v), intc.pending(v)) for v in range(nvec)])
    return out


def _strip(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k not in ("schedule", "expect", "control_verdicts")}


class _Watch:
    """cosim's register-level checks around the host under test (C4, COSIM-*).

    Takes the device's public request snapshot (:meth:`Device.published_requests`) around
    every host call, checks it with :func:`qaicmodel.oracle.cosim.request_overwrites`, and
    gives the host a cosim ``Recorder`` as its device.
    """

    def __init__(self) -> None:
        from qaicmodel.oracle import cosim

        self._cosim = cosim
        self.dev: Any = None
        self.findings: list[Any] = []

    def find(self, rule: str, message: str) -> None:
        self.findings.append(Finding(rule, message))

    def bus(self, dev: Any) -> Any:
        self.dev = dev
        return self._cosim.Recorder(dev, self)

    def wrap(self, host: Any) -> Any:
        return _Checked(host, self)

    def snapshot(self) -> Any:
        """The published, unconsumed request slots: per such channel (dbc, REQ_HP,
        REQ_TP, the ring's bytes); None when every ring is empty (nothing to guard)."""
        out = None
        for ch in self.dev.ch:
            if ch.req_hp != ch.req_tp and ch.active:
                raw = self.dev.host_mem.read(ch.req_q, ch.nelem * REQ_SIZE)
                if out is None:
                    out = []
                out.append((ch.dbc, ch.req_hp, ch.req_tp, raw))
        return out

    def check_snapshot(self, snap: Any) -> None:
        """COSIM-REQ-OVERWRITE for a slot of ``snap`` whose bytes changed (one read and
        one compare per guarded ring; the per-slot finding only when they differ)."""
        if snap is None:
            return
        mem = self.dev.host_mem
        for dbc, hp, tp, raw in snap:
            ch = self.dev.ch[dbc]
            if mem.read(ch.req_q, ch.nelem * REQ_SIZE) == raw:
                continue
            slots, i = [], hp
            while i != tp:
                slots.append((i, raw[i * REQ_SIZE : (i + 1) * REQ_SIZE]))
                i = (i + 1) % ch.nelem
            self.findings.extend(self._cosim.request_overwrites(self.dev, {dbc: slots}))


#: host calls that drive the actors: guarded once per conform step, not per call
_ACTOR_CALLS = frozenset({"enabled", "step"})


class _Checked:
    """The host under test with every interface call wrapped in the snapshot check (and,
    for ioctls, the watchdog; actor calls run under the step's watchdog, see Pair.step).
    Wrappers are made once per method name."""

    def __init__(self, host: Any, watch: _Watch) -> None:
        self._host = host
        self._watch = watch

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._host, name)
        if name not in HOST_METHODS and name not in ("execute_begin", "execute_result"):
            return attr
        watch = self._watch
        snapshot, check = watch.snapshot, watch.check_snapshot
        # Speed only, same checks: when no ring has a published, unconsumed slot before
        # the call (the usual case; :meth:`_Watch.snapshot` would give None) the call runs
        # without the snapshot; inside a guarded step (watchdog depth > 0) an ioctl is a
        # plain call, as watchdog.call makes it (W3).
        guard, wd = watchdog.call, watchdog.STATE
        if name in _ACTOR_CALLS:

            def call(*args: Any, **kw: Any) -> Any:
                for ch in watch.dev.ch:
                    if ch.req_hp != ch.req_tp and ch.active:
                        break
                else:
                    return attr(*args, **kw)
                snap = snapshot()
                try:
                    return attr(*args, **kw)
                finally:
                    check(snap)

        else:

            def call(*args: Any, **kw: Any) -> Any:
                for ch in watch.dev.ch:
                    if ch.req_hp != ch.req_tp and ch.active:
                        break
                else:
                    if wd["depth"] > 0:
                        return attr(*args, **kw)
                    return guard(name, attr, args, kw)  # CONF-HANG
                snap = snapshot()
                try:
                    return guard(name, attr, args, kw)
                finally:
                    check(snap)

        self.__dict__[name] = call  # bound methods of the host stay the same objects
        return call

    def __setattr__(self, name: str, value: Any) -> None:
        """Attribute writes reach the host (the control plane sets ``ssr_dbc``)."""
        if name in ("_host", "_watch"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._host, name, value)


def _unconstructible(host_cls: type, cfg: Any, policies: Any, e: Exception) -> QaicModelError:
    """A host that the CLI's probe could construct but an episode's device could not
    (issue #12 item 5): the probe's one-line error (exit 2), naming the device and
    policies the episode gave it."""
    chosen = getattr(policies, "chosen", policies) or {}
    pols = ",".join(f"{k}={v}" for k, v in sorted(dict(chosen).items())) or "defaults"
    dev = (
        f"num_dbc={cfg.num_dbc}, single_msi={cfg.single_msi}, "
        f"sg_max_segment={cfg.sg_max_segment}, kernel={cfg.kernel}"
    )
    ref = f"{host_cls.__module__}:{host_cls.__qualname__}"
    return watchdog.unconstructible(
        host_cls, ref, e, on=f" on an episode's device ({dev}; policies {pols})"
    )


class Pair:
    """The host under test and (optionally) the reference host, each on its own device."""

    def __init__(
        self,
        cfg: DeviceConfig,
        policies: Any,
        host_cls: type,
        ref_cls: type | None,
        differential: bool = False,
        control_host: Any = None,
        control_faults: Any = (),
    ) -> None:
        """``control_host``/``control_faults``: the control client under test and the
        device-side control faults (``NAME[:SEED[:AT]][+]``; the reference sides get the
        same faults, fresh, and the reference control client)."""
        self.watch = _Watch()
        self.last_schedule: list[str] = []
        try:
            self.prim = Runner(
                cfg,
                host_cls=host_cls,
                policies=policies,
                bus=self.watch.bus,
                wrap_host=self.watch.wrap,
                control_host=control_host,
                control_faults=control_faults,
            )
        except QaicModelError:
            raise
        except Exception as e:  # noqa: BLE001 - the host's constructor, on this device
            raise _unconstructible(host_cls, cfg, policies, e) from None
        self.rules = RuleBook(self.prim)
        self.differential = differential
        self.ref = (
            Runner(cfg, host_cls=ref_cls, policies=policies, control_faults=control_faults)
            if ref_cls and differential
            else None
        )
        self.shadow = (
            Shadow(cfg, policies, ref_cls, self.prim, self.rules, control_faults)
            if ref_cls and not differential
            else None
        )
        #: how often each check ran: single counts, and groups counted once per step
        #: (``checks`` adds them up; one count per group and step is speed only)
        self._single: Counter[str] = Counter()
        self._groups: Counter[tuple[str, ...]] = Counter()
        # CONF-DATA bookkeeping, keyed by (user, handle as written in the step)
        self.written: dict[tuple[str, str], str] = {}  # write_bo at offset 0 -> hex
        self.attached: dict[tuple[str, str], tuple[str, int]] = {}  # -> (dbc, dir)
        self.batch: dict[tuple[str, str], list[str]] = {}  # handles executed together
        self.waited_ok: set[tuple[str, str]] = set()  # executed, then a wait returned ok
        self.nslices: dict[tuple[str, str], int] = {}  # attached BO -> its slice count
        #: failures of invariants the Linux driver itself breaks (conform's DRIVER_FINDINGS):
        #: noted, not raised, so the episode goes on and the host's own failures still show
        self.noted: list[Failure] = []
        self.ref_ctrl: set[str] = set()  # control verdict rules the reference side gave
        self._ctrl_seen = 0

    @property
    def checks(self) -> Counter[str]:
        """How many times each check ran (conform's ``invariants_checked``)."""
        out = Counter(self._single)
        for group, n in self._groups.items():
            for rule in group:
                out[rule] += n
        return out

    def step(
        self, st: Step, chooser: Callable[[int], int] | None = None, n_actions: int = 0
    ) -> dict[str, Any]:
        """Run one step on both sides and check C4; raises :class:`Failure`."""
        if st.op in ("deactivate", "close", "ssr") and _exec_in_flight(self.prim):
            # release_dbc waits (synchronize_srcu) for EXECUTE_BO threads: not runnable
            raise FormatError(
                "step not runnable: an EXECUTE_BO thread is still inside the ioctl",
                where=f"steps[{st.index}]",
            )
        tails = _tails(self.prim)
        room = self.rules.before(st)
        if self.shadow is not None:
            self.shadow.begin()
        try:
            if chooser is not None:
                res = watchdog.call("run", self._random_run, (st, chooser, n_actions), {})
            elif st.op in _DRIVING:  # actors run: one watchdog for the whole step
                res = watchdog.call(st.op, self.prim.step, (st,), {})
            else:
                res = self.prim.step(st)
        except FormatError:
            raise
        except watchdog.HostHang as e:  # a host call never returned (oracle/watchdog.py)
            site = e.site(getattr(self.prim.host, "_host", self.prim.host))
            at = f"; it was running {site}" if site else ""
            raise Failure("CONF-HANG", st.index, st.op, f"{e}{at}") from None
        except Exception as e:  # the host under test crashed ...
            if self.ref is None and _refusal(e):
                # the model's own "this call would sleep" (release waiting for an
                # EXECUTE_BO thread, a second thread at req_lock): not runnable here
                raise FormatError(f"step not runnable: {e}", where=f"steps[{st.index}]") from None
            if self.ref is not None and self._ref_raises(st, type(e)):
                # ... unless the reference refuses the step the same way (e.g. a blocking
                # EXECUTE_BO in a shrunk sequence): the step is not runnable, not a failure
                raise FormatError(f"step not runnable: {e}", where=f"steps[{st.index}]") from None
            if isinstance(e, RemoteProtocolError) and getattr(self.prim.control, "fault_log", None):
                # the control plane gave up on a hostile device (a control fault fired)
                raise Failure("CTRL-FAULT", st.index, st.op, f"the driver gave up: {e}") from None
            site = watchdog.crash_site(e, getattr(self.prim.host, "_host", self.prim.host))
            at = f" at {site}" if site else ""
            raise Failure("CONF-CRASH", st.index, st.op, f"{type(e).__name__}: {e}{at}") from None
        self._groups[_EVERY_STEP] += 1
        if self.watch.findings:
            f = self.watch.findings[0]
            raise Failure(f.rule, st.index, st.op, f.message)
        self._single["CONF-VIOLATION"] += 1
        if res.get("violations"):
            v = res["violations"][0]
            raise Failure("CONF-VIOLATION", st.index, st.op, f"{v['rule']}: {v['message']}")
        if st.op == "run":
            self._single["CONF-STRANDED"] += 1
            stranded = res.get("stranded")
            if stranded is None and "quiescent" not in res and not self.prim.enabled():
                # a run that followed a schedule (random or replayed) and left nothing
                # enabled: the same quiescence check as a free run's
                stranded = self.prim.stranded()
            if stranded:
                raise Failure(
                    "CONF-STRANDED",
                    st.index,
                    st.op,
                    f"response left in the ring of dbc {stranded[0]} at quiescence",
                )
        self._track_data(st, res)
        self._check_rules(st, res, room)
        if self.ref is not None:
            ref_st = st
            if "schedule" in res:
                ref_st = Step(
                    index=st.index, op="run", args={"max_steps": None, "schedule": res["schedule"]}
                )
            try:
                ref_res = self.ref.step(ref_st)
            except FormatError:
                raise
            except Exception as e:
                raise Failure(
                    "CONF-REFERENCE", st.index, st.op, f"{type(e).__name__}: {e}"
                ) from None
            if ref_res.get("violations"):
                v = ref_res["violations"][0]
                raise Failure("CONF-REFERENCE", st.index, st.op, f"{v['rule']}: {v['message']}")
            self._single["CONF-RESULT"] += 1
            if _strip(res) != _strip(ref_res):
                raise Failure(
                    "CONF-RESULT",
                    st.index,
                    st.op,
                    f"host gave {json.dumps(_strip(res))[:300]}, reference gave "
                    f"{json.dumps(_strip(ref_res))[:300]}",
                )
            self._single["CONF-STATE"] += 1
            a, b = _state(self.prim), _state(self.ref)
            if a != b:
                raise Failure("CONF-STATE", st.index, st.op, _state_diff(a, b))
        self._check_control(st, res)
        self._check_completions(st, res, tails)
        return res

    def _check_control(self, st: Step, res: dict[str, Any]) -> None:
        """The control plane's verdicts (rules V1-V3 of oracle/explore_control.py)."""
        self._groups[_CTRL] += 1
        vs = res.get("control_verdicts")
        if not vs:
            return
        ref = self.ref if self.ref is not None else getattr(self.shadow, "r", None)
        if ref is not None:
            for r in ref.results[self._ctrl_seen :]:
                self.ref_ctrl.update(v["rule"] for v in r.get("control_verdicts", ()))
            self._ctrl_seen = len(ref.results)
            self.ref_ctrl.update(v.rule for v in ref.control_verdicts())
        for rule, msg, where, driver in judge(vs, self.ref_ctrl if ref is not None else None):
            f = Failure(rule, st.index, st.op, msg, where)
            if not driver:
                raise f
            self.noted.append(f)

    def _check_rules(self, st: Step, res: dict[str, Any], room: Any) -> None:
        """The host-side rules (:mod:`qaicmodel.oracle.rules`), then the errno oracle."""
        why = self.rules.after(st, res, room)
        self._groups[_RULE_IDS] += 1
        if why is not None:
            rule, _, msg = why.partition(": ")
            raise Failure(rule, st.index, st.op, msg, self.rules.where)
        if self.shadow is None:
            return
        self._single["CONF-RESULT"] += 1
        try:
            why = self.shadow.step(st, res, room)
        except FormatError:
            raise
        except Exception as e:
            raise Failure("CONF-REFERENCE", st.index, st.op, f"{type(e).__name__}: {e}") from None
        if why is not None:
            if res.get("result") == "EAGAIN" and why.endswith("gives ok in the same state"):
                # the reference host's elements fit the same free slots: the host refused
                # with room for the BOs (rules.py judges this only for a BO whose element
                # count it saw before; here the reference host's count is the measure)
                self._single["CONF-EAGAIN"] += 1
                raise Failure("CONF-EAGAIN", st.index, st.op, f"{why} (its elements fit)")
            raise Failure("CONF-RESULT", st.index, st.op, why)

    def _ref_raises(self, st: Step, kind: type) -> bool:
        assert self.ref is not None
        try:
            self.ref.step(st)
        except Exception as e:  # noqa: BLE001 - comparing the kinds of refusal
            return type(e) is kind
        return False

    def _track_data(self, st: Step, res: dict[str, Any]) -> None:
        """CONF-DATA: an output read back after (write input, attach both, execute both
        together, wait on the output -> ok) in this same run must hold the input's bytes."""
        a, ok = st.args, res["result"] == "ok"
        if not ok:
            return
        u = str(a.get("user"))
        if st.op == "write_bo" and a["offset"] == 0:
            self.written[(u, repr(a["handle"]))] = a["hex"].hex()
        elif st.op == "attach_slice":
            h = a["hdr"]
            self.attached[(u, repr(h["handle"]))] = (repr(h["dbc_id"]), h["dir"])
            self.nslices[(u, repr(h["handle"]))] = h.get("count") or len(a["entries"])
        elif st.op == "execute" and a["thread"] is None:
            hs = [repr(e["handle"]) for e in a["handles"]]
            for h in hs:
                self.batch[(u, h)] = hs
                self.waited_ok.discard((u, h))
        elif st.op == "wait" and (u, repr(a["handle"])) in self.batch:
            self.waited_ok.add((u, repr(a["handle"])))
        elif st.op == "read_bo" and a["expect_hex"] is not None:
            out = (u, repr(a["handle"]))
            want = a["expect_hex"].hex()
            if out not in self.waited_ok or self.attached.get(out, ("", 0))[1] != 2:
                return
            dbc = self.attached[out][0]
            if not any(
                self.written.get((u, h)) == want and self.attached.get((u, h)) == (dbc, 1)
                for h in self.batch[out]
            ):
                return
            self._single["CONF-DATA"] += 1
            if res.get("hex_mismatch"):
                raise Failure(
                    "CONF-DATA",
                    st.index,
                    st.op,
                    "the echo output differs from the input sent with it",
                )

    def _check_completions(self, st: Step, res: dict[str, Any], tails: list[int | None]) -> None:
        """CONF-NEVER-COMPLETES (noted in :attr:`noted`, not raised): every BO the step queued (the request elements between
        each channel's REQ_TP before and after, one run of equal req_id per BO) needs one
        completion-bit element per slice (qaic_data.c dbc_irq_threaded_fn counts
        nr_slice_xfer_done up to nr_slice).  Found by issue #14 item 9: PARTIAL_EXECUTE
        with resize 0 on a slice of two or more elements (copy_partial_exec_reqs, 6.12 and
        7.2) sends one element with reqs[0]'s cmd, which has no completion bit."""
        if st.op not in ("execute", "partial_execute", "run", "join") or res["result"] != "ok":
            return
        dev = self.prim.device
        handles: list[str] = []
        names: list[str] = []
        if st.op in ("execute", "partial_execute") and st.args.get("thread") is None:
            key = "handles" if st.op == "execute" else "entries"
            raw = [e["handle"] if isinstance(e, dict) else e for e in st.args[key]]
            handles = [repr(h) for h in raw]
            names = [str(getattr(h, "name", h)) for h in raw]
        u = str(st.args.get("user"))
        self._single["CONF-NEVER-COMPLETES"] += 1
        for i, old in enumerate(tails):
            ch = dev.ch[i]
            if old is None or not ch.active or ch.req_tp == old:
                continue
            groups: list[list[int]] = []  # [req_id, completion elements]
            slot = old
            while slot != ch.req_tp:
                e = RequestElem.unpack(dev.host_mem.read(ch.req_q + REQ_SIZE * slot, REQ_SIZE))
                if not groups or groups[-1][0] != e.req_id:
                    groups.append([e.req_id, 0])
                groups[-1][1] += e.completion
                slot = (slot + 1) % ch.nelem
            for k, (req_id, done) in enumerate(groups):
                h = handles[k] if k < len(handles) else None
                need = self.nslices.get((u, h), 1) if h is not None else 1
                if done < need:
                    what = f"BO {names[k]}" if h is not None else f"the BO with req_id {req_id}"
                    self.noted.append(
                        Failure(
                            "CONF-NEVER-COMPLETES",
                            st.index,
                            st.op,
                            f"{what} was queued on dbc {i} with {done} completion element(s) "
                            f"for {need} slice(s): it can never complete",
                        )
                    )

    def _random_run(self, st: Step, chooser: Callable[[int], int], n: int) -> dict[str, Any]:
        """A ``run`` whose interleaving is chosen at random; the choice becomes its schedule."""
        r = self.prim
        seen = len(r.device.violations)
        schedule: list[str] = []
        dev_steps = 0
        for _ in range(n):
            acts = r.enabled()
            if not acts:
                break
            tag, a = acts[chooser(len(acts))]
            schedule.append(f"{tag}:{a!r}")
            r.take(tag, a)
            dev_steps += tag == "device"
        res: dict[str, Any] = {
            "step": st.index,
            "op": "run",
            "result": "ok",
            "device_steps": dev_steps,
            "steps": len(schedule),
            "schedule": schedule,
        }
        self.last_schedule = schedule
        new = violations_of(r.device)[seen:]
        if new:
            res["violations"] = new
        r.results.append(res)
        return res


#: the control verdict ids checked after every step
_CTRL = tuple({**CTRL_RULES, **CONTROL_FINDINGS})
#: checks run on every step that returns (crash, hang, the register-level COSIM rules)
_EVERY_STEP = ("CONF-CRASH", "CONF-HANG", *_COSIM)
_RULE_IDS = tuple(RULES)

#: steps during which the actors run (the host's enabled/step are called many times)
_DRIVING = frozenset({"run", "wait", "join"})


def _exec_in_flight(r: Runner) -> bool:
    threads = getattr(r.host, "threads", {})
    return any(
        (th := threads.get(tid)) is not None and th.phase.name != "DONE"
        for tid in r.threads.values()
    )


def _refusal(e: Exception) -> bool:
    from qaicmodel.errors import ArgumentError, NotModelledError

    if isinstance(e, NotModelledError):
        return True
    return isinstance(e, ArgumentError) and (" would block" in str(e) or " would wait" in str(e))


def _tails(r: Runner) -> list[int | None]:
    """Each channel's REQ_TP on the device (None: not active)."""
    return [c.req_tp if c.active else None for c in r.device.ch]


def _state_diff(a: list[Any], b: list[Any]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x == y:
            continue
        if i == len(a) - 1:
            return f"interrupt mask/pending differ: host {x}, reference {y}"
        for k in ("regs", "nelem", "sems"):
            if x[k] != y[k]:
                return f"dbc {i} {k}: host {x[k]}, reference {y[k]}"
        for k in ("req", "rsp"):
            for j, (p, q) in enumerate(zip(x[k], y[k], strict=False)):
                if p != q:
                    return f"dbc {i} {k} ring slot {j}: host {p}, reference {q}"
    return "state differs"
