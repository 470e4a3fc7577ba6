"""``qaicmodel conform``: run a host against the device model under random interleavings.

``qaicmodel conform [--host MODULE:CLASS] [--budget SECONDS] [--seed N] [--policy ID=ALT ...]``

Rules:
  C1  Policy rows: :func:`qaicmodel.spec.policies.pairwise` over every registered policy
      that ``--policy`` does not pin; pinned policies take their given alternative in
      every row.  Every pair of alternatives of every two policies runs in some row,
      except that the policies of ``cosim.DRIVER_ASSUMES`` (alternatives under which the
      Linux driver itself cannot conform) stay at their defaults unless pinned.
  C2  The budget is split evenly over the rows; a row runs episodes until its share is
      used.  ``--episodes N`` runs exactly N episodes per row instead (budget ignored),
      so ``--seed S --episodes N`` replays a run exactly.
  C3  An episode is a random scenario (the ``qaicmodel-scenario/1`` vocabulary, see
      :mod:`qaicmodel.scenario`) built step by step from a PRNG seeded by (seed, row,
      episode): users, channels with an echo workload, buffer objects, slices (mostly
      valid, some not), executes, waits, semaphore pokes, and ``run`` steps whose
      interleaving of device, host-IRQ and workload actions is chosen at random and
      recorded as a ``schedule``.  Each step runs on the host under test and -- unless it
      *is* the reference host -- on the reference host (``qaicmodel.spec.host``) side by
      side, each with its own device model.
  C4  Invariants checked after every step (stable ids):
        CONF-CRASH      the host raised something other than an ioctl errno;
        CONF-VIOLATION  the device recorded a host rule violation (HOST-REQ-OVERRUN, ...);
        CONF-STRANDED   a quiescent run left a response in a ring (missed-event check);
        CONF-DATA       an echo inference returned other bytes than were sent (checked
                        when input and output were executed together and the output's
                        wait returned ok in the same run);
        CONF-RESULT     an ioctl returned other than the reference host's result;
        CONF-STATE      registers, FIFO bytes, semaphores or interrupt masks differ
                        from the reference host's device after the same step;
        CONF-REFERENCE  the reference host crashed or broke a device rule (a model bug,
                        reported rather than hidden);
        COSIM-REQ-OVERWRITE, COSIM-REQ-OVERRUN, COSIM-RSP-PAST-READ
                        the co-simulation harness's register-level invariants
                        (qaicmodel/spec/cosim.py ``Recorder`` and ``World`` snapshots),
                        reused, not re-implemented: the host under test sees the device
                        through a cosim ``Recorder`` and every host call is wrapped in
                        cosim's request-slot snapshot check.
  C5  A failure is shrunk (delta debugging over the steps, then over each ``run``'s
      schedule) and written as a scenario file whose ``expect`` fields are the reference
      host's results, so ``qaicmodel scenario FILE --host MODULE:CLASS`` shows it.
  C6  Exit status: 0 everything conformed, 1 a failure was found, 2 bad arguments.
      The seed is always printed; progress (one line per row) goes to stderr, the report
      to stdout.

Time: the *driver* of the exploration reads the clock to honour ``--budget``; the model
never does (docs/design.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qaicmodel import scenario as sc
from qaicmodel.errors import ArgumentError, FormatError

__all__ = ["DEFAULT_HOST", "DEFAULT_BUDGET", "INVARIANTS", "Failure", "Conformance",
           "add_args", "run_cli", "run_conformance"]

#: The host ``conform`` checks unless told otherwise: the fast host (qaicmodel/impl/host.py).
DEFAULT_HOST = "qaicmodel.impl.host:ImplHost"
#: Seconds; keeps ``qaicmodel conform`` near a minute on 2 cores including start-up.
DEFAULT_BUDGET = 40.0
#: Steps (moves) per episode.
EPISODE_MOVES = 40
#: Stop the whole run after this many failures (each is shrunk, which costs time).
MAX_FAILURES = 3
#: Shrinking stops after this many replays or seconds.
SHRINK_REPLAYS = 400
SHRINK_SECONDS = 20.0

INVARIANTS = {
    "CONF-CRASH": "the host raised something other than an ioctl errno",
    "CONF-VIOLATION": "the device recorded a host rule violation",
    "CONF-STRANDED": "a quiescent run left a response in a ring",
    "CONF-DATA": "an echo inference returned other bytes than were sent",
    "CONF-RESULT": "an ioctl result differs from the reference host's",
    "CONF-STATE": "device-visible state differs from the reference host's",
    "CONF-REFERENCE": "the reference host itself crashed or broke a rule (a model bug)",
    # checked by qaicmodel.spec.cosim's Recorder / World snapshot around the host under test
    "COSIM-REQ-OVERWRITE": "a host call changed a request slot the device had not consumed",
    "COSIM-REQ-OVERRUN": "a REQ_TP write added more elements than the free space",
    "COSIM-RSP-PAST-READ": "an RSP_HP write moved past the RSP_TP value the host had read",
}
#: invariants checked on every step by the cosim watch (qaicmodel/spec/cosim.py)
_COSIM = ("COSIM-REQ-OVERWRITE", "COSIM-REQ-OVERRUN", "COSIM-RSP-PAST-READ")

# Device addresses the echo workload uses (device DDR; doorbells at workload.DB_BASE).
_ECHO_IN = 0x10_0000
_ECHO_OUT = 0x20_0000


class Failure(Exception):
    """An invariant broke at step ``index`` (internal; becomes a report entry)."""

    def __init__(self, invariant: str, index: int, op: str, message: str) -> None:
        super().__init__(f"{invariant} at step {index} ({op}): {message}")
        self.invariant = invariant
        self.index = index
        self.op = op
        self.message = message

    @property
    def key(self) -> tuple[str, str]:
        return (self.invariant, self.op)


# ---------------------------------------------------------------------------
# Checking one step on the host under test (+ the reference host)


def _state(r: sc.Runner) -> list[Any]:
    """Everything the host can influence on the device, for CONF-STATE."""
    dev = r.device
    out: list[Any] = []
    for i in range(dev.num_dbc):
        out.append(sc.dump_channel(dev, i))
    intc = dev.intc
    nvec = 1 if dev.single_msi else dev.num_dbc + 1
    out.append([(intc.masked(v), intc.pending(v)) for v in range(nvec)])
    return out


def _strip(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if k not in ("schedule", "expect")}


class _Watch:
    """cosim's register-level checks around the host under test (C4, COSIM-*).

    Borrows :class:`qaicmodel.spec.cosim.World`'s request-slot snapshot methods (they
    need only ``dev`` and ``find``) and gives the host a cosim ``Recorder`` as its device.
    """

    def __init__(self) -> None:
        from qaicmodel.spec import cosim

        self._cosim = cosim
        self.dev: Any = None
        self.findings: list[Any] = []

    def find(self, rule: str, message: str) -> None:
        self.findings.append(self._cosim.Finding(rule, message))

    def bus(self, dev: Any) -> Any:
        self.dev = dev
        return self._cosim.Recorder(dev, self)  # type: ignore[arg-type]

    def wrap(self, host: Any) -> Any:
        return _Checked(host, self)

    def snapshot(self) -> Any:
        return self._cosim.World._snapshot(self)  # type: ignore[arg-type]

    def check_snapshot(self, snap: Any) -> None:
        self._cosim.World._check_snapshot(self, snap)  # type: ignore[arg-type]


class _Checked:
    """The host under test with every interface call wrapped in the snapshot check."""

    def __init__(self, host: Any, watch: _Watch) -> None:
        self._host = host
        self._watch = watch

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._host, name)
        if name not in sc._HOST_METHODS and name not in ("execute_begin", "execute_result"):
            return attr

        def call(*args: Any, **kw: Any) -> Any:
            snap = self._watch.snapshot()
            try:
                return attr(*args, **kw)
            finally:
                self._watch.check_snapshot(snap)

        return call


class Pair:
    """The host under test and (optionally) the reference host, each on its own device."""

    def __init__(self, cfg: sc.DeviceConfig, policies: Any, host_cls: type,
                 ref_cls: type | None) -> None:
        self.watch = _Watch()
        self.last_schedule: list[str] = []
        self.prim = sc.Runner(cfg, host_cls=host_cls, policies=policies, bus=self.watch.bus,
                              wrap_host=self.watch.wrap)
        self.ref = sc.Runner(cfg, host_cls=ref_cls, policies=policies) if ref_cls else None
        self.checks: Counter[str] = Counter()
        # CONF-DATA bookkeeping, keyed by (user, handle as written in the step)
        self.written: dict[tuple[str, str], str] = {}       # write_bo at offset 0 -> hex
        self.attached: dict[tuple[str, str], tuple[str, int]] = {}  # -> (dbc, dir)
        self.batch: dict[tuple[str, str], list[str]] = {}   # handles executed together
        self.waited_ok: set[tuple[str, str]] = set()  # executed, then a wait returned ok

    def step(self, st: sc.Step, chooser: Callable[[int], int] | None = None,
             n_actions: int = 0) -> dict[str, Any]:
        """Run one step on both sides and check C4; raises :class:`Failure`."""
        try:
            if chooser is not None:
                res = self._random_run(st, chooser, n_actions)
            else:
                res = self.prim.step(st)
        except FormatError:
            raise
        except Exception as e:  # the host under test crashed ...
            if self.ref is not None and self._ref_raises(st, type(e)):
                # ... unless the reference refuses the step the same way (e.g. a blocking
                # EXECUTE_BO in a shrunk sequence): the step is not runnable, not a failure
                raise FormatError(f"step not runnable: {e}", where=f"steps[{st.index}]") from None
            raise Failure("CONF-CRASH", st.index, st.op, f"{type(e).__name__}: {e}") from None
        self.checks["CONF-CRASH"] += 1
        self.checks.update(_COSIM)
        if self.watch.findings:
            f = self.watch.findings[0]
            raise Failure(f.rule, st.index, st.op, f.message)
        self.checks["CONF-VIOLATION"] += 1
        if res.get("violations"):
            v = res["violations"][0]
            raise Failure("CONF-VIOLATION", st.index, st.op, f"{v['rule']}: {v['message']}")
        if st.op == "run":
            self.checks["CONF-STRANDED"] += 1
            if res.get("stranded"):
                raise Failure("CONF-STRANDED", st.index, st.op,
                              f"response left in the ring of dbc {res['stranded'][0]} at "
                              "quiescence")
        self._track_data(st, res)
        if self.ref is not None:
            ref_st = st
            if "schedule" in res:
                ref_st = sc.Step(index=st.index, op="run",
                                 args={"max_steps": None, "schedule": res["schedule"]})
            try:
                ref_res = self.ref.step(ref_st)
            except FormatError:
                raise
            except Exception as e:
                raise Failure("CONF-REFERENCE", st.index, st.op,
                              f"{type(e).__name__}: {e}") from None
            if ref_res.get("violations"):
                v = ref_res["violations"][0]
                raise Failure("CONF-REFERENCE", st.index, st.op, f"{v['rule']}: {v['message']}")
            self.checks["CONF-RESULT"] += 1
            if _strip(res) != _strip(ref_res):
                raise Failure("CONF-RESULT", st.index, st.op,
                              f"host gave {json.dumps(_strip(res))[:300]}, reference gave "
                              f"{json.dumps(_strip(ref_res))[:300]}")
            self.checks["CONF-STATE"] += 1
            a, b = _state(self.prim), _state(self.ref)
            if a != b:
                raise Failure("CONF-STATE", st.index, st.op, _state_diff(a, b))
        return res

    def _ref_raises(self, st: sc.Step, kind: type) -> bool:
        assert self.ref is not None
        try:
            self.ref.step(st)
        except Exception as e:  # noqa: BLE001 - comparing the kinds of refusal
            return type(e) is kind
        return False

    def _track_data(self, st: sc.Step, res: dict[str, Any]) -> None:
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
            if not any(self.written.get((u, h)) == want and self.attached.get((u, h)) == (dbc, 1)
                       for h in self.batch[out]):
                return
            self.checks["CONF-DATA"] += 1
            if res.get("hex_mismatch"):
                raise Failure("CONF-DATA", st.index, st.op,
                              "the echo output differs from the input sent with it")

    def _random_run(self, st: sc.Step, chooser: Callable[[int], int], n: int) -> dict[str, Any]:
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
        res: dict[str, Any] = {"step": st.index, "op": "run", "result": "ok",
                               "device_steps": dev_steps, "steps": len(schedule),
                               "schedule": schedule}
        self.last_schedule = schedule
        new = sc._violations(r.device)[seen:]
        if new:
            res["violations"] = new
        r.results.append(res)
        return res


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


# ---------------------------------------------------------------------------
# The episode generator (C3)


class Explorer:
    """Builds one random episode step by step, watching the results as it goes."""

    def __init__(self, rng: random.Random, threads: bool = True) -> None:
        self.rng = rng
        self.threads = threads  # the host offers execute_begin (concurrent EXECUTE_BO)
        self.cfg = sc.DeviceConfig(
            num_dbc=rng.choice([2, 4]),
            single_msi=rng.random() < 0.2,
            datapath_polling=rng.random() < 0.15,
            sg_max_segment=rng.choice([None, None, 4096, 8192]))
        self.users = ["u0"]
        self.chans: list[dict[str, Any]] = []   # {name, user, nelem, echo}
        self.bos: list[dict[str, Any]] = []     # {name, user, size, dbc, dir}
        self.pending: list[Any] = []  # queued macro steps (dicts, or callables making one)
        self.n = 0
        self.echo_len = 0
        self.last_wait: str | None = None

    # -- helpers
    def _name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def _user_bos(self, user: str, sliced: bool | None = None) -> list[dict[str, Any]]:
        return [b for b in self.bos if b["user"] == user
                and (sliced is None or (b["dbc"] is not None) == sliced)]

    def _sem(self) -> dict[str, int]:
        r = self.rng
        roll = r.random()
        if roll < 0.6:
            return {}
        if roll < 0.8:  # a presync wait on a semaphore the nsp moves can release
            return {"cmd": r.choice([4, 5, 6]), "index": r.choice([2, 3]),
                    "val": r.choice([0, 1]), "presync": 1}
        if roll < 0.97:  # a postsync operation
            return {"cmd": r.choice([1, 2, 3]), "index": r.choice([2, 3]), "val": r.randrange(3)}
        return {"cmd": r.choice([7, 2]), "index": r.choice([2, 40]), "flags": r.choice([0, 4]),
                "presync": r.choice([0, 2])}  # mostly invalid: validation paths

    # -- moves
    def first_steps(self) -> list[dict[str, Any]]:
        r = self.rng
        nelem = r.choice([4, 8, 16, 64])
        self.echo_len = r.choice([64, 4096, 8192])
        steps: list[dict[str, Any]] = [{"op": "open", "user": "u0"},
                 {"op": "activate", "user": "u0", "queue_size": nelem, "as": "d0",
                  "workload": {"kind": "echo", "in_addr": _ECHO_IN, "out_addr": _ECHO_OUT,
                               "length": self.echo_len}}]
        self.chans.append({"name": "d0", "user": "u0", "nelem": nelem, "echo": True})
        if r.random() < 0.4:
            self.users.append("u1")
            steps.append({"op": "open", "user": "u1"})
            steps.append({"op": "activate", "user": "u1", "queue_size": r.choice([4, 16]),
                          "as": "d1"})
            self.chans.append({"name": "d1", "user": "u1", "nelem": 16, "echo": False})
        return steps

    def observe(self, step: dict[str, Any], res: dict[str, Any]) -> None:
        """Learn from a result (bindings that worked, slices that held)."""
        ok = res.get("result") == "ok"
        op = step["op"]
        if op == "wait":
            self.last_wait = res.get("result")
        if op == "create_bo":
            if ok and not step["as"].startswith(("in", "out")):
                self.bos.append({"name": step["as"], "user": step["user"],
                                 "size": (step["size"] + 4095) // 4096 * 4096, "dbc": None,
                                 "dir": None})
        elif op == "attach_slice" and ok:
            for b in self.bos:
                if b["name"] == step["hdr"]["handle"]:
                    b["dbc"], b["dir"] = step["hdr"]["dbc_id"], step["hdr"]["dir"]
        elif op == "detach_slice" and ok:
            for b in self.bos:
                if b["name"] == step["handle"]:
                    b["dbc"] = b["dir"] = None
        elif op == "deactivate" and ok:
            self.chans = [c for c in self.chans if c["name"] != step["dbc_id"]]
            for b in self.bos:
                if b["dbc"] == step["dbc_id"]:
                    b["dbc"] = b["dir"] = None
        elif op == "activate" and not ok:
            self.chans = [c for c in self.chans if c["name"] != step.get("as")]

    def next_move(self) -> tuple[dict[str, Any], int]:
        """The next step dict and, for a random ``run``, how many actions it may take."""
        if self.pending:
            nxt = self.pending.pop(0)
            if isinstance(nxt, tuple):  # (step, random-run length)
                return nxt
            return (nxt() if callable(nxt) else nxt), 0
        r = self.rng
        moves: list[tuple[float, Callable[[], tuple[dict[str, Any], int]]]] = [
            (3, self._m_run_random), (1, self._m_run), (2, self._m_create), (2, self._m_attach),
            (3, self._m_execute), (1, self._m_partial), (1, self._m_wait), (1, self._m_detach),
            (0.5, self._m_perf), (1.5, self._m_nsp), (2, self._m_echo), (0.3, self._m_bogus),
            (1.5 if self.threads else 0, self._m_concurrent),
        ]
        total = sum(w for w, _ in moves)
        x = r.random() * total
        for w, fn in moves:
            x -= w
            if x <= 0:
                return fn()
        return moves[0][1]()

    def _m_run_random(self) -> tuple[dict[str, Any], int]:
        return {"op": "run"}, self.rng.randint(1, 30)

    def _m_run(self) -> tuple[dict[str, Any], int]:
        return {"op": "run", "max_steps": 5000}, 0

    def _m_create(self) -> tuple[dict[str, Any], int]:
        r = self.rng
        size = r.choice([4096, 8192, 12288, 100, 5000, 4096 * 5])
        return {"op": "create_bo", "user": r.choice(self.users), "size": size,
                "as": self._name("b")}, 0

    def _m_attach(self) -> tuple[dict[str, Any], int]:
        r = self.rng
        user = r.choice(self.users)
        bos = self._user_bos(user, sliced=False)
        chans = [c for c in self.chans if c["user"] == user] or self.chans
        if not bos or not chans:
            return self._m_create()
        bo, ch = r.choice(bos), r.choice(chans)
        size = bo["size"]
        k = r.choice([1, 1, 2])
        cut = sorted({0, size} | {r.randrange(1, size) for _ in range(k - 1)})
        entries = []
        for lo, hi in itertools.pairwise(cut):
            e: dict[str, Any] = {"size": hi - lo, "offset": lo,
                                 "dev_addr": 0x30_0000 + r.randrange(4) * 0x1_0000 + lo}
            if r.random() < 0.6:
                e.update({"db_addr": 0x50_0000 + 4 * r.randrange(4), "db_data": 1,
                          "db_len": r.choice([32, 32, 16, 8])})
            for s in ("sem0", "sem1"):
                sem = self._sem()
                if sem:
                    e[s] = sem
            entries.append(e)
        if r.random() < 0.05:
            entries[0]["size"] = size + 4096  # past the end: EINVAL
        return {"op": "attach_slice", "user": user,
                "hdr": {"dbc_id": ch["name"], "handle": bo["name"], "dir": r.choice([1, 2]),
                        "size": size}, "entries": entries}, 0

    def _sliced(self) -> tuple[str, list[dict[str, Any]]]:
        user = self.rng.choice(self.users)
        return user, self._user_bos(user, sliced=True)

    def _m_execute(self) -> tuple[dict[str, Any], int]:
        r = self.rng
        user, bos = self._sliced()
        if not bos:
            return self._m_attach()
        chosen = r.sample(bos, k=min(len(bos), r.choice([1, 1, 2])))
        return {"op": "execute", "user": user, "dbc_id": chosen[0]["dbc"],
                "handles": [b["name"] for b in chosen]}, 0

    def _m_partial(self) -> tuple[dict[str, Any], int]:
        r = self.rng
        user, bos = self._sliced()
        if not bos:
            return self._m_attach()
        b = r.choice(bos)
        resize = r.choice([0, 1, b["size"] // 2, b["size"], b["size"] + 1])
        return {"op": "partial_execute", "user": user, "dbc_id": b["dbc"],
                "entries": [{"handle": b["name"], "resize": resize}]}, 0

    def _m_wait(self) -> tuple[dict[str, Any], int]:
        user, bos = self._sliced()
        if not bos:
            return self._m_run()
        b = self.rng.choice(bos)
        return {"op": "wait", "user": user, "dbc_id": b["dbc"], "handle": b["name"]}, 0

    def _m_detach(self) -> tuple[dict[str, Any], int]:
        user, bos = self._sliced()
        if not bos:
            return self._m_create()
        return {"op": "detach_slice", "user": user, "handle": self.rng.choice(bos)["name"]}, 0

    def _m_perf(self) -> tuple[dict[str, Any], int]:
        user, bos = self._sliced()
        if not bos:
            return self._m_create()
        return {"op": "perf_stats", "user": user, "dbc_id": bos[0]["dbc"],
                "handles": [b["name"] for b in bos[:3]]}, 0

    def _m_nsp(self) -> tuple[dict[str, Any], int]:
        r = self.rng
        if not self.chans:
            return self._m_run()
        ch = r.choice(self.chans)
        return {"op": "nsp", "dbc_id": ch["name"],
                "sem": {"index": r.choice([2, 3]), "cmd": r.choice([1, 2, 3]),
                        "val": r.randrange(3)}}, 0

    def _m_bogus(self) -> tuple[dict[str, Any], int]:
        """Validation paths: wrong dbc, bogus handle, other user's channel."""
        r = self.rng
        user = r.choice(self.users)
        return r.choice([
            {"op": "execute", "user": user, "dbc_id": r.choice([0, 1, 7, 99]), "handles": [4242]},
            {"op": "wait", "user": user, "dbc_id": r.choice([0, 1, 99]), "handle": 4242},
            {"op": "create_bo", "user": user, "size": 0, "as": self._name("z")},
            {"op": "detach_slice", "user": user, "handle": 4242},
        ]), 0

    def _m_concurrent(self) -> tuple[dict[str, Any], int]:
        """Two ioctl threads inside EXECUTE_BO on one channel, interleaved at random with
        each other and the device (the req_lock race of qaic_data.c; extension ``thread``)."""
        r = self.rng
        user, bos = self._sliced()
        by_dbc: dict[str, list[dict[str, Any]]] = {}
        for b in bos:
            by_dbc.setdefault(b["dbc"], []).append(b)
        pairs = [v for v in by_dbc.values() if len(v) >= 2]
        if not pairs:
            return self._m_attach()
        b1, b2 = r.sample(r.choice(pairs), 2)
        t1, t2 = self._name("t"), self._name("t")
        op = r.choice(["execute", "execute", "partial_execute"])

        def ex(b: dict[str, Any], t: str) -> dict[str, Any]:
            if op == "execute":
                return {"op": op, "user": user, "dbc_id": b["dbc"], "handles": [b["name"]],
                        "thread": t}
            return {"op": op, "user": user, "dbc_id": b["dbc"],
                    "entries": [{"handle": b["name"], "resize": b["size"]}], "thread": t}

        self.pending = [ex(b2, t2), ({"op": "run"}, r.randint(2, 25)),
                        {"op": "join", "thread": t1}, {"op": "join", "thread": t2}]
        return ex(b1, t1), 0

    def _m_echo(self) -> tuple[dict[str, Any], int]:
        """One echo inference on d0 with fresh BOs (CONF-DATA)."""
        echo = [c for c in self.chans if c["echo"]]
        if not echo:
            return self._m_run()
        from qaicmodel.spec.workload import input_slice, output_slice

        r = self.rng
        ch, n = echo[0], self.echo_len
        bi, bo = self._name("in"), self._name("out")
        data = bytes(r.randrange(256) for _ in range(min(n, 64))) * (n // min(n, 64))
        user = ch["user"]
        ins = {"size": n, "dev_addr": _ECHO_IN, **input_slice(0, last=True)}
        outs = {"size": n, "dev_addr": _ECHO_OUT, **output_slice(1, last=True)}
        self.pending = [
            {"op": "create_bo", "user": user, "size": n, "as": bo},
            {"op": "write_bo", "user": user, "handle": bi, "hex": data.hex()},
            {"op": "attach_slice", "user": user, "hdr": {"dbc_id": ch["name"], "handle": bi,
                                                         "dir": 1, "size": _page(n)},
             "entries": [ins]},
            {"op": "attach_slice", "user": user, "hdr": {"dbc_id": ch["name"], "handle": bo,
                                                         "dir": 2, "size": _page(n)},
             "entries": [outs]},
            {"op": "execute", "user": user, "dbc_id": ch["name"], "handles": [bi, bo]},
            {"op": "wait", "user": user, "dbc_id": ch["name"], "handle": bo},
            # data integrity is only asserted when the wait completed (a random slice
            # blocking the channel may legitimately hold the inference back)
            lambda: {"op": "read_bo", "user": user, "handle": bo, "length": n,
                     **({"expect_hex": data.hex()} if self.last_wait == "ok" else {})},
        ]
        # the echo BOs are not handed to the random moves (their protocol is fixed)
        return {"op": "create_bo", "user": user, "size": n, "as": bi}, 0


def _page(n: int) -> int:
    return (n + 4095) // 4096 * 4096


# ---------------------------------------------------------------------------
# Episodes, replay and shrinking (C3, C5)


def _doc(cfg: sc.DeviceConfig, policies: dict[str, str], steps: list[dict[str, Any]]
         ) -> dict[str, Any]:
    dev = cfg.as_dict()
    dev["policies"] = policies
    return {"format": sc.FORMAT, "device": dev, "steps": steps}


def _episode_seed(seed: int, row: int, episode: int) -> int:
    return (seed * 1_000_003 + row * 10_007 + episode) & 0xFFFF_FFFF_FFFF


class Episode:
    """One generated episode: its steps (as written to a scenario) and what happened."""

    def __init__(self, seed: int, policies: Any, host_cls: type, ref_cls: type | None) -> None:
        self.rng = random.Random(seed)
        self.explorer = Explorer(self.rng, threads=hasattr(host_cls, "execute_begin"))
        self.policies = policies
        self.pair = Pair(self.explorer.cfg, policies, host_cls, ref_cls)
        self.steps: list[dict[str, Any]] = []
        self.actions = 0

    def run(self, moves: int, deadline: float | None) -> Failure | None:
        ex = self.explorer
        todo: list[tuple[dict[str, Any], int]] = [(s, 0) for s in ex.first_steps()]
        made = 0
        while made < moves:
            if todo:
                d, n = todo.pop(0)
            else:
                if deadline is not None and time.monotonic() > deadline and made > 5:
                    break
                d, n = ex.next_move()
            made += 1
            i = len(self.steps)
            self.steps.append(d)
            try:
                st = sc.parse(_doc(ex.cfg, {}, self.steps)).steps[i]
            except FormatError as e:  # a generator bug: report it plainly
                raise AssertionError(f"conform generated an invalid step {d}: {e}") from None
            before = self.pair.prim.steps_run
            try:
                res = self.pair.step(st, self.rng.randrange if n else None, n)
            except FormatError:  # a step both hosts refuse (not runnable): end the episode
                self.steps.pop()
                return None
            except Failure as f:
                if n:  # the interleaving this random run took is part of the reproducer
                    d.pop("max_steps", None)
                    d["schedule"] = list(self.pair.last_schedule)
                return f
            if "schedule" in res:
                d.pop("max_steps", None)
                d["schedule"] = res["schedule"]
            self.actions += self.pair.prim.steps_run - before
            ex.observe(d, res)
        return None


def replay(cfg: sc.DeviceConfig, policies: dict[str, str], steps: list[dict[str, Any]],
           host_cls: type, ref_cls: type | None) -> Failure | None:
    """Run recorded steps on fresh devices; the first failure, or None."""
    try:
        scen = sc.parse(_doc(cfg, policies, steps))
    except FormatError:
        return None
    from qaicmodel.spec.policies import Policies

    pair = Pair(scen.device, Policies(dict(scen.device.policies)), host_cls, ref_cls)
    try:
        for st in scen.steps:
            res = pair.step(st)
            if res["result"] == "schedule-diverged" and pair.ref is None:
                return None
    except Failure as f:
        return f
    except FormatError:
        return None
    return None


def _ddmin(items: list[Any], fails: Callable[[list[Any]], bool],
           budget: Callable[[], bool]) -> list[Any]:
    """Zeller's delta debugging: a 1-minimal sub-list that still fails."""
    n = 2
    while len(items) >= 2 and budget():
        chunk = max(1, len(items) // n)
        parts = [items[k:k + chunk] for k in range(0, len(items), chunk)]
        reduced = False
        for k in range(len(parts)):
            if not budget():
                break
            cand = [x for j, p in enumerate(parts) if j != k for x in p]
            if cand and fails(cand):
                items, n, reduced = cand, max(n - 1, 2), True
                break
        if not reduced:
            if n >= len(items):
                break
            n = min(len(items), n * 2)
    return items


def shrink(cfg: sc.DeviceConfig, policies: dict[str, str], steps: list[dict[str, Any]],
           failure: Failure, host_cls: type, ref_cls: type | None
           ) -> tuple[list[dict[str, Any]], Failure, int]:
    """Minimal steps (and schedules) that still break the same invariant (C5)."""
    replays = 0
    t_end = time.monotonic() + SHRINK_SECONDS
    last = failure

    def budget() -> bool:
        return replays < SHRINK_REPLAYS and time.monotonic() < t_end

    def fails(cand: list[dict[str, Any]]) -> bool:
        nonlocal replays, last
        replays += 1
        f = replay(cfg, policies, cand, host_cls, ref_cls)
        if f is not None and f.key == failure.key:
            last = f
            return True
        return False

    steps = steps[:failure.index + 1]
    if not fails(steps):  # the recorded episode does not replay: report it unshrunk
        return steps, failure, replays
    steps = _ddmin(steps, fails, budget)
    for k, d in enumerate(steps):
        sched = d.get("schedule")
        if not sched or not budget():
            continue

        def fails_sched(cand: list[str], k: int = k) -> bool:
            trial = [dict(x) for x in steps]
            trial[k]["schedule"] = cand
            return fails(trial)

        steps[k] = dict(d, schedule=_ddmin(list(sched), fails_sched, budget))
    # the final replay fixes `last` to this exact list
    fails(steps)
    return steps, last, replays


def write_reproducer(path: Path, cfg: sc.DeviceConfig, policies: dict[str, str],
                     steps: list[dict[str, Any]], failure: Failure, ref_cls: type | None,
                     header: str) -> None:
    """The shrunk steps as a scenario; expects are the reference host's results (C5)."""
    out = [dict(s) for s in steps]
    if ref_cls is not None:
        from qaicmodel.spec.policies import Policies

        scen = sc.parse(_doc(cfg, policies, out))
        runner = sc.Runner(scen.device, host_cls=ref_cls,
                           policies=Policies(dict(scen.device.policies)))
        for st, d in zip(scen.steps, out, strict=True):
            try:
                res = runner.step(st)
            except Exception:  # noqa: BLE001 - the reference side stops here
                break
            if st.op not in ("run", "nsp", "dump", "ddr_write", "ddr_read"):
                d["expect"] = res["result"]
    if out:
        out[-1]["note"] = f"{header}: {failure}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_doc(cfg, policies, out), indent=1) + "\n")


# ---------------------------------------------------------------------------
# The whole run (C1, C2, C6)


class Conformance:
    """A conformance run: the rows, the counters, the failures."""

    def __init__(self, host_ref: str | type, *, seed: int, budget: float,
                 episodes: int | None, pinned: dict[str, str], out_dir: Path,
                 progress: Any = None) -> None:
        from qaicmodel.spec import registry
        from qaicmodel.spec.policies import REGISTRY, Policies, pairwise

        registry.load_all()
        Policies(pinned)  # validates ids and alternatives (PolicyError)
        if isinstance(host_ref, str):
            self.host_ref, self.host_cls = host_ref, sc.load_host(host_ref)
        else:
            self.host_ref = f"{host_ref.__module__}:{host_ref.__qualname__}"
            self.host_cls = _check_host(host_ref)
        ref_cls = sc.load_host(sc.DEFAULT_HOST)
        self.ref_cls = None if ref_cls is self.host_cls else ref_cls
        self.seed, self.budget, self.episodes = seed, budget, episodes
        self.out_dir = out_dir
        self.progress = progress
        from qaicmodel.spec.cosim import DRIVER_ASSUMES

        # policies under whose non-default alternatives the Linux driver itself does not
        # conform (found by the cosim machines) stay at their defaults unless pinned
        self.held = {p: why for p, why in DRIVER_ASSUMES.items()
                     if p in REGISTRY and p not in pinned}
        free = [p for p in sorted(REGISTRY) if p not in pinned and p not in self.held]
        self.rows = [Policies({**r.chosen, **pinned}) for r in pairwise(free)]
        self.pinned = pinned
        self.registry = REGISTRY
        self.checks: Counter[str] = Counter()
        self.steps = self.actions = self.episodes_run = 0
        self.failures: list[dict[str, Any]] = []
        self.rows_run: list[Any] = []
        self.row_log: list[dict[str, Any]] = []
        self.elapsed = 0.0

    def run(self) -> Conformance:
        t0 = time.monotonic()
        share = self.budget / max(1, len(self.rows))
        for ri, row in enumerate(self.rows):
            if len(self.failures) >= MAX_FAILURES:
                break
            t_row = time.monotonic()
            deadline = None if self.episodes is not None else t_row + share
            steps0, ep, row_fail = self.steps, 0, 0
            while True:
                if self.episodes is not None and ep >= self.episodes:
                    break
                if deadline is not None and time.monotonic() >= deadline and ep > 0:
                    break
                f = self._episode(ri, row, ep, deadline)
                ep += 1
                if f:
                    row_fail += 1
                    break
            self.rows_run.append(row)
            dt = max(time.monotonic() - t_row, 1e-9)
            n = self.steps - steps0
            self.row_log.append({"row": ri, "policies": row.label(), "episodes": ep,
                                 "steps": n, "failures": row_fail})
            if self.progress is not None:
                self.progress.write(
                    f"row {ri + 1}/{len(self.rows)} [{row.label()[:60]}]: {ep} episodes, "
                    f"{n} steps, {n / dt:.0f} steps/s, {row_fail} failures\n")
                self.progress.flush()
        self.elapsed = time.monotonic() - t0
        return self

    def _episode(self, ri: int, row: Any, ep: int, deadline: float | None) -> bool:
        eseed = _episode_seed(self.seed, ri, ep)
        e = Episode(eseed, row, self.host_cls, self.ref_cls)
        f = e.run(EPISODE_MOVES, deadline)
        self.episodes_run += 1
        self.steps += len(e.steps)
        self.actions += e.actions
        self.checks.update(e.pair.checks)
        if f is None:
            return False
        pols = {k: v for k, v in row.chosen.items() if self.registry[k].default != v}
        small, f2, replays = shrink(e.explorer.cfg, pols, e.steps, f, self.host_cls,
                                    self.ref_cls)
        again = replay(e.explorer.cfg, pols, small, self.host_cls, self.ref_cls)
        name = f"conform-{self.seed}-row{ri}-ep{ep}.json"
        path = self.out_dir / name
        write_reproducer(path, e.explorer.cfg, pols, small, f2, self.ref_cls,
                         f"qaicmodel conform --seed {self.seed} --host {self.host_ref}")
        self.failures.append({
            "invariant": f2.invariant, "description": INVARIANTS[f2.invariant],
            "message": f2.message, "row": ri, "policies": row.label(), "episode": ep,
            "episode_seed": eseed, "steps_before_shrink": len(e.steps),
            "steps_after_shrink": len(small), "shrink_replays": replays,
            "reproduces": again is not None and again.key == f2.key,
            "reproducer": str(path),
            "replay": f"qaicmodel conform --replay {path} --host {self.host_ref}"})
        return True

    def coverage(self) -> dict[str, Any]:
        pids = sorted(self.registry)
        alts = {(p, a) for p in pids for a in self.registry[p].alternatives}
        pairs_total = sum(len(self.registry[a].alternatives) * len(self.registry[b].alternatives)
                          for a, b in itertools.combinations(pids, 2))
        seen_alts = {(p, r[p]) for r in self.rows_run for p in pids}
        seen_pairs = {(a, r[a], b, r[b]) for r in self.rows_run
                      for a, b in itertools.combinations(pids, 2)}
        return {"policies": len(pids), "alternatives_covered": len(seen_alts & alts),
                "alternatives_total": len(alts), "pairs_covered": len(seen_pairs),
                "pairs_total": pairs_total, "rows_run": len(self.rows_run),
                "rows_total": len(self.rows), "pinned": dict(self.pinned),
                "held_at_default": dict(self.held)}

    def report(self) -> dict[str, Any]:
        return {
            "format": "qaicmodel-conform/1",
            "verdict": "conforms" if not self.failures else "FAILED",
            "host": self.host_ref,
            "reference": sc.DEFAULT_HOST if self.ref_cls is not None else None,
            "seed": self.seed,
            "budget_s": self.budget, "episodes_per_row": self.episodes,
            "elapsed_s": round(self.elapsed, 2),
            "episodes": self.episodes_run, "steps": self.steps, "actions": self.actions,
            "invariants_checked": dict(sorted(self.checks.items())),
            "invariants_total": sum(self.checks.values()),
            "policies_covered": self.coverage(),
            "replay": f"--seed {self.seed} --episodes "
                      f"{max([r['episodes'] for r in self.row_log] or [1])}",
            "rows": self.row_log,
            "failures": self.failures,
        }


def _text(rep: dict[str, Any]) -> str:
    cov = rep["policies_covered"]
    lines = [
        f"qaicmodel conform: {rep['verdict']}",
        f"  host:       {rep['host']}"
        + (f" (checked against {rep['reference']})" if rep["reference"] else " (reference host; "
           "checked against the device's rules only)"),
        f"  seed:       {rep['seed']}  (replay every episode of this run: {rep['replay']})",
        f"  time:       {rep['elapsed_s']} s of a {rep['budget_s']} s budget",
        f"  episodes:   {rep['episodes']}   steps: {rep['steps']}   actor actions: "
        f"{rep['actions']}",
        f"  invariants: {rep['invariants_total']} checks "
        + ", ".join(f"{k} {v}" for k, v in rep["invariants_checked"].items()),
        f"  policies:   {cov['policies']} policies, {cov['alternatives_covered']}/"
        f"{cov['alternatives_total']} alternatives, {cov['pairs_covered']}/"
        f"{cov['pairs_total']} pairs, {cov['rows_run']}/{cov['rows_total']} pairwise rows",
    ]
    if cov["pinned"]:
        lines.append("  pinned:     " + ", ".join(f"{k}={v}" for k, v in cov["pinned"].items()))
    for k, why in cov["held_at_default"].items():
        lines.append(f"  held:       {k} at its default (the driver itself assumes it: {why}; "
                     f"--policy {k}=ALT to explore)")
    if not rep["failures"]:
        lines.append("  failures:   none")
    for f in rep["failures"]:
        lines.append(f"  FAILURE {f['invariant']} ({f['description']}): {f['message']}")
        lines.append(f"    policies {f['policies']}; episode {f['episode']}; shrunk "
                     f"{f['steps_before_shrink']} -> {f['steps_after_shrink']} steps")
        lines.append(f"    reproducer: {f['reproducer']}"
                     + ("" if f["reproduces"] else "  (WARNING: did not replay)"))
        lines.append(f"    replay:     {f['replay']}")
    return "\n".join(lines)


def _check_host(cls: type) -> type:
    missing = [m for m in sc._HOST_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise ArgumentError(f"{cls.__qualname__} does not implement the host interface: "
                            f"missing {', '.join(missing)}")
    return cls


def run_conformance(host: str | type = DEFAULT_HOST, *, seed: int | None = None,
                    budget: float = DEFAULT_BUDGET, episodes: int | None = None,
                    policies: dict[str, str] | None = None, out_dir: str | Path = "conform-failures",
                    progress: Any = None) -> dict[str, Any]:
    """Python API for the ``conform`` command; returns the report dict."""
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    return Conformance(host, seed=seed, budget=budget, episodes=episodes,
                       pinned=dict(policies or {}), out_dir=Path(out_dir),
                       progress=progress).run().report()


# ---------------------------------------------------------------------------
# CLI


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=DEFAULT_HOST, metavar="MODULE:CLASS",
                   help=f"the host to check (default {DEFAULT_HOST}); any class implementing "
                        "qaicmodel.spec.hostapi.Host")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS",
                   help=f"time to spend exploring (default {DEFAULT_BUDGET:g})")
    p.add_argument("--seed", type=int, default=None,
                   help="PRNG seed (always printed); with --episodes the run replays exactly")
    p.add_argument("--episodes", type=int, default=None, metavar="N",
                   help="exactly N episodes per policy row (exact replay; ignores --budget)")
    p.add_argument("--policy", action="append", default=[], metavar="ID=ALT",
                   help="pin a policy in every row (repeatable)")
    p.add_argument("--out", default="conform-failures", metavar="DIR",
                   help="where reproducer scenarios are written (default ./conform-failures)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--replay", default=None, metavar="FILE",
                   help="re-run a reproducer scenario with every conform check (host under "
                        "test side by side with the reference host) and report its failure")


def replay_file(path: str, host: str) -> dict[str, Any]:
    """``--replay``: a scenario file through :func:`replay` (all C4 checks)."""
    scen = sc.load(path)
    raw = json.loads(Path(path).read_text())
    host_cls = sc.load_host(host)
    ref_cls = sc.load_host(sc.DEFAULT_HOST)
    f = replay(scen.device, dict(scen.device.policies), raw["steps"], host_cls,
               None if ref_cls is host_cls else ref_cls)
    return {"format": "qaicmodel-conform-replay/1", "file": path, "host": host,
            "verdict": "conforms" if f is None else "FAILED",
            "failure": None if f is None else {"invariant": f.invariant, "step": f.index,
                                               "op": f.op, "message": f.message}}


def run_cli(args: argparse.Namespace) -> int:
    from qaicmodel.spec import registry
    from qaicmodel.spec.policies import Policies

    if not args.budget > 0 or args.budget > 24 * 3600:
        raise ArgumentError(f"--budget must be in (0, 86400] seconds, got {args.budget}")
    if args.episodes is not None and args.episodes < 1:
        raise ArgumentError(f"--episodes must be >= 1, got {args.episodes}")
    if args.seed is not None and not 0 <= args.seed < 1 << 64:
        raise ArgumentError(f"--seed must be 0 .. 2**64-1, got {args.seed}")
    registry.load_all()
    pinned = dict(Policies.parse(args.policy).chosen)
    sc.load_host(args.host)  # a bad --host is exit 2 before anything is printed
    if args.replay is not None:
        out = replay_file(args.replay, args.host)
        if args.json:
            print(json.dumps(out, indent=2))
        elif out["failure"] is None:
            print(f"{args.replay}: conforms (host {args.host})")
        else:
            f = out["failure"]
            print(f"{args.replay}: FAILED {f['invariant']} at step {f['step']} ({f['op']}): "
                  f"{f['message']}")
        return 0 if out["failure"] is None else 1
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    sys.stderr.write(f"qaicmodel conform: seed {seed}, host {args.host}, budget "
                     f"{args.budget:g} s\n")
    rep = run_conformance(args.host, seed=seed, budget=args.budget, episodes=args.episodes,
                          policies=pinned, out_dir=args.out, progress=sys.stderr)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        print(_text(rep))
    return 0 if not rep["failures"] else 1
