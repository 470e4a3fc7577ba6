"""A scenario's steps on the real driver, inside the guest (``--host linux``, guest half).

``python3 -m qaicmodel.guest.client scenario FILE --reply DIR`` parses FILE with the
scenario format module (so the file is checked as on every host) and runs each
step; the host half is :mod:`qaicmodel.scenario.linux`.

Rules:
  L1 ioctl steps (open, close, activate, deactivate, create_bo, attach_slice,
     execute, partial_execute, wait, perf_stats, detach_slice, write_bo, read_bo)
     are real ioctls on ``/dev/accel/accel0`` (:class:`~qaicmodel.guest.client.Client`);
     the result is ``ok`` or the errno name;
  L2 device-side steps (``nsp``, ``ddr_write``, ``ddr_read``, ``dump``) and an
     activate's ``workload`` are *host ops*: the guest prints one ``HOSTOP`` line
     (step index and the resolved channel) and waits for the host's reply file in the
     reply directory (shared through hostfs; the guest only lists the directory
     until the name appears, so no negative dentry hides it);
  L3 an op this host does not carry out gives ``not-supported`` with the reason; ``run``
     without a schedule is a no-op: on Linux the device runs by itself and
     WAIT_BO blocks.  A ``run`` *schedule* names the model's device and host actions one
     by one; the real driver and the board's own scheduler cannot be told which to take,
     so it is refused: result ``not-supported`` with the reason (:data:`NOT_SUPPORTED`);
  L3a ``thread`` on ``execute``/``partial_execute``/``wait``: the ioctl runs in a guest
     thread (``threading``; the step's result is ``ok`` once it started -- a WAIT_BO
     thread once it sleeps in the ioctl, state ``S`` in /proc, so that the next step
     finds it waiting as the model's does, at most :data:`SLEEP_WAIT` s); ``join`` waits
     for it (a WAIT_BO: its own timeout plus :data:`JOIN_GRACE`; an EXECUTE_BO:
     :data:`JOIN_GRACE`) and gives the ioctl's result, ``EDEADLK`` if it has not
     returned by then (the model's runner says EDEADLK when the thread cannot finish);
  L3b ``ssr``: a host op (the board's QSM crashes the channel's workload,
     ``Board.crash``: the SSR messages on QAIC_SSR), then the guest waits until the
     driver has taken the channel through the SSR back to IDLE (``dbc<N>_state`` 0 in
     sysfs, qaic_sysfs.c; 7.2's qaic_ssr.c) or :data:`SSR_WAIT` seconds pass
     (``ssr-timeout``);
  L4 each result is one ``RESULT`` line of JSON in step order; then ``DONE``;
  L5 a step on a closed user gives EBADF without a system call (the fd number may
     already belong to another open), as the model's runner does; ``read_bo`` /
     ``write_bo`` outside the BO give EFAULT (the model's rule).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from qaicmodel.guest.client import Client, errno_name
from qaicmodel.scenario.format import Ref, Step, load
from qaicmodel.spec.host import uapi as U

__all__ = ["run_file", "RESULT", "HOSTOP", "DONE"]

RESULT = "QAICMODEL-RESULT "
HOSTOP = "QAICMODEL-HOSTOP "
DONE = "QAICMODEL-DONE"
HOST_OPS = frozenset({"nsp", "ddr_write", "ddr_read", "dump", "ssr"})
#: L3: what this host cannot do, and why
NOT_SUPPORTED = {
    "run-schedule": "a run schedule picks the model's device and host actions one by one; "
    "on Linux the real driver and the board's seeded scheduler run by themselves",
}
JOIN_GRACE = 10.0  # seconds
SLEEP_WAIT = 2.0  # seconds a WAIT_BO thread gets to fall asleep before the next step
SSR_WAIT = 10.0  # seconds


class _Thread:
    """One ioctl in a guest thread (L3a)."""

    def __init__(self, fn: Any, budget: float, *, sleeps: bool = False) -> None:
        self.result = "ok"
        self.budget = budget
        self.t = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.t.start()
        if sleeps:
            self._until_asleep(SLEEP_WAIT)

    def _until_asleep(self, seconds: float) -> None:
        """L3a: until the thread sleeps (``S`` in /proc/self/task/TID/stat: inside
        WAIT_BO's wait_for_completion) or has returned."""
        end = time.monotonic() + seconds
        while self.t.is_alive() and time.monotonic() < end:
            try:
                with open(f"/proc/self/task/{self.t.native_id}/stat") as fh:
                    if fh.read().rpartition(")")[2].split()[0] == "S":
                        return
            except OSError:
                return
            time.sleep(0.001)

    def _run(self, fn: Any) -> None:
        try:
            fn()
        except _Fail as e:
            self.result = e.name
        except OSError as e:
            self.result = errno_name(e)


class _Fail(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class GuestRunner:
    def __init__(self, device: str, reply_dir: str | None, timeout: float = 60.0) -> None:
        self.device = device
        self.reply_dir = reply_dir
        self.timeout = timeout
        self.users: dict[str, Client | None] = {}
        self.names: dict[str, int] = {}
        self.bo_size: dict[tuple[str, int], int] = {}
        self.bo_dir: dict[tuple[str, int], int] = {}
        self.threads: dict[str, _Thread] = {}

    def val(self, x: Any) -> int:
        if isinstance(x, Ref):
            if x.name not in self.names:
                raise _Fail("unbound")
            return self.names[x.name]
        return int(x)

    def client(self, a: Mapping[str, Any]) -> Client:
        c = self.users.get(a["user"])
        if c is None:
            raise _Fail("EBADF")
        return c

    def hostop(self, st: Step, **extra: Any) -> dict[str, Any]:
        """L2: ask the host side, wait for its reply."""
        if self.reply_dir is None:
            raise _Fail("not-modelled")
        print(HOSTOP + json.dumps({"step": st.index, **extra}), flush=True)
        name = f"reply-{st.index}.json"
        end = time.monotonic() + self.timeout
        while name not in os.listdir(self.reply_dir):
            if time.monotonic() > end:
                raise _Fail("host-op-timeout")
            time.sleep(0.001)
        with open(os.path.join(self.reply_dir, name)) as fh:
            return dict(json.load(fh))

    def step(self, st: Step) -> dict[str, Any]:
        res: dict[str, Any] = {"step": st.index, "op": st.op}
        try:
            out = self._do(st, st.args)
            res["result"] = "ok"
            if out:
                res.update(out)
                if "_raise" in res:
                    res["result"] = res.pop("_raise")
        except _Fail as e:
            res["result"] = e.name
        except OSError as e:
            res["result"] = errno_name(e)
        if st.as_ is not None and res["result"] == "ok":
            self.names[st.as_] = res["dbc_id"] if st.op == "activate" else res["handle"]
        return res

    def _do(self, st: Step, a: Mapping[str, Any]) -> dict[str, Any] | None:
        op = st.op
        if op == "run" and a.get("schedule") is not None:
            return {"_raise": "not-supported", "reason": NOT_SUPPORTED["run-schedule"]}
        if op == "join":
            th = self.threads.pop(a["thread"])
            th.t.join(th.budget)
            if th.t.is_alive():
                return {"_raise": "EDEADLK", "result_detail": "the thread has not returned"}
            return {"_raise": th.result} if th.result != "ok" else None
        if a.get("thread") is not None and op in ("execute", "partial_execute", "wait"):
            budget = JOIN_GRACE + (a["timeout_ms"] / 1000 if op == "wait" else 0.0)
            args = dict(a, thread=None)
            self.threads[a["thread"]] = _Thread(
                lambda: self._do(st, args), budget, sleeps=op == "wait"
            )
            return None
        if op == "ssr":
            reply = self.hostop(st, dbc_id=self.val(a["dbc_id"]))
            if "_raise" in reply:
                raise _Fail(reply["_raise"])
            return {"dbc_states": _until_idle(self.val(a["dbc_id"]), SSR_WAIT)}
        if op == "open":
            self.users[a["user"]] = Client(self.device)
            return None
        if op == "run":
            return {"note": "the device runs by itself on the linux host"}
        if op in HOST_OPS:
            extra = {"dbc_id": self.val(a["dbc_id"])} if "dbc_id" in a else {}
            reply = self.hostop(st, **extra)
            if "_raise" in reply:
                raise _Fail(reply["_raise"])
            return reply
        c = self.client(a)
        u = a["user"]
        if op == "close":
            c.close()
            self.users[u] = None
            return None
        if op == "activate":
            dbc = c.activate(a["queue_size"], a["options"])
            if a.get("workload") is not None:
                reply = self.hostop(st, dbc_id=dbc)
                if "_raise" in reply:
                    raise _Fail(reply["_raise"])
            return {"dbc_id": dbc}
        if op == "deactivate":
            c.deactivate(self.val(a["dbc_id"]))
            return None
        if op == "create_bo":
            h = c.create_bo(a["size"], a["pad"])
            self.bo_size[(u, h)] = a["size"]
            return {"handle": h}
        if op == "attach_slice":
            h = a["hdr"]
            entries = a["entries"]
            count = len(entries) if h["count"] is None else h["count"]
            handle = self.val(h["handle"])
            hdr = U.AttachSliceHdr(
                count=count,
                dbc_id=self.val(h["dbc_id"]),
                handle=handle,
                dir=h["dir"],
                size=h["size"],
            )
            c.attach_slice(hdr, [_slice_entry(e) for e in entries[:count]])
            self.bo_dir[(u, handle)] = h["dir"]
            return None
        if op in ("execute", "partial_execute"):
            dbc = self.val(a["dbc_id"])
            key = "handles" if op == "execute" else "entries"
            ents: list[Any] = []
            for e in a[key]:
                handle = self.val(e["handle"])
                d = e["dir"] if e["dir"] is not None else self.bo_dir.get((u, handle), 0)
                ents.append((handle, d, e["resize"]) if "resize" in e else (handle, d))
            if op == "execute":
                c.execute(dbc, ents)
            else:
                c.partial_execute(dbc, ents)
            return None
        if op == "wait":
            t0 = time.monotonic()
            c.wait(self.val(a["handle"]), self.val(a["dbc_id"]), a["timeout_ms"], a["pad"])
            return {"wall_ms": round((time.monotonic() - t0) * 1000, 3)}
        if op == "perf_stats":
            handles = [self.val(h) for h in a["handles"]]
            stats = c.perf_stats(self.val(a["dbc_id"]), handles)
            return {
                "stats": [
                    {
                        "handle": e.handle,
                        "queue_level_before": e.queue_level_before,
                        "num_queue_element": e.num_queue_element,
                    }
                    for e in stats
                ]
            }
        if op == "detach_slice":
            c.detach_slice(self.val(a["handle"]), a["pad"])
            return None
        if op in ("write_bo", "read_bo"):
            handle = self.val(a["handle"])
            off = c.mmap_bo(handle)  # ENOENT for an unknown handle, as the model
            del off
            size = self.bo_size.get((u, handle), 0)
            length = len(a["hex"]) if op == "write_bo" else a["length"]
            if a["offset"] + length > size:
                raise _Fail("EFAULT")
            if op == "write_bo":
                c.write_bo(handle, size, a["offset"], a["hex"])
                return None
            data = c.read_bo(handle, size, a["offset"], length)
            out: dict[str, Any] = {"hex": data.hex()}
            if a["expect_hex"] is not None and a["expect_hex"] != data:
                out["hex_mismatch"] = True
            return out
        return {"_raise": "not-supported", "reason": f"the linux host has no {op!r} step (L3)"}


def _until_idle(dbc: int, seconds: float) -> list[Any]:
    """L3b: the successive values of ``dbc<N>_state`` until it reads 0 (IDLE)."""
    seen: list[Any] = []
    end = time.monotonic() + seconds
    name = f"/sys/class/accel/accel0/dbc{dbc}_state"
    while True:
        try:
            with open(name) as fh:
                v: Any = int(fh.read().strip())
        except (OSError, ValueError) as e:
            v = repr(e)
        if not seen or seen[-1] != v:
            seen.append(v)
        if v == 0:
            return seen
        if time.monotonic() > end:
            raise _Fail("ssr-timeout")
        time.sleep(0.002)


def _slice_entry(e: Mapping[str, Any]) -> U.SliceEntry:
    sems: dict[str, Any] = {k: U.Sem(**e[k]) for k in ("sem0", "sem1", "sem2", "sem3")}
    rest = {k: v for k, v in e.items() if k not in sems}
    return U.SliceEntry(**rest, **sems)


def run_file(path: str, device: str, reply_dir: str | None = None) -> int:
    sc = load(path)
    r = GuestRunner(device, reply_dir)
    try:
        for st in sc.steps:
            print(RESULT + json.dumps(r.step(st)), flush=True)
    finally:
        for c in r.users.values():
            if c is not None:
                c.close()
    print(DONE, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_file(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "/dev/accel/accel0"))
