"""The conform episode generator (rule C3 of :mod:`qaicmodel.oracle.conform`).

Move kinds (weights in :meth:`Explorer.next_move`): random and quiescent runs; create,
attach (mostly valid slices), execute, partial execute, wait, detach, perf stats, nsp
semaphore pokes, echo inferences (CONF-DATA), bogus calls (wrong channel or handle),
concurrent EXECUTE_BO threads; and, for issue #12 item 2:

  invalid   calls in a state that forbids them: re-slicing a sliced BO, perf stats on an
            unsliced BO or on another channel, a slice whose offset + size wraps 2**64,
            a CREATE_BO too large for create_sgt (2**44 bytes: ENOMEM), WAIT_BO with a bad pad on
            another user's channel (which check comes first), attach to a channel that
            was deactivated;
  faulty    a slice whose device range runs past 2**64: the device answers with a
            non-success completion code (DMA fault) and the BO must still complete;
  race      a BO in flight with a WAIT_BO thread asleep on it, then -- between random
            runs -- deactivate, SSR or close of its channel's owner, or a detach,
            perf stats or attach on the same channel; then the waiter's join (its
            checks after waking run), sometimes a fresh activate;
  control   raw MANAGE messages, control faults, RAS reports, resets and PRIME imports
            (issue #12 item 3; :mod:`qaicmodel.oracle.explore_control`).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

from qaicmodel.oracle.explore_control import CONTROL_WEIGHTS, ControlMoves
from qaicmodel.oracle.explore_moves import StateMoves
from qaicmodel.oracle.pair import _ECHO_IN, _ECHO_OUT
from qaicmodel.spec.dbc.config import DeviceConfig

__all__ = ["Explorer"]


# ---------------------------------------------------------------------------
# The episode generator (C3)


class Explorer(StateMoves, ControlMoves):
    """Builds one random episode step by step, watching the results as it goes."""

    def __init__(self, rng: random.Random, threads: bool = True, kernel: str | None = None) -> None:
        self.rng = rng
        self.threads = threads  # the host offers execute_begin (concurrent EXECUTE_BO)
        self.cfg = DeviceConfig(
            num_dbc=rng.choice([2, 4]),
            single_msi=rng.random() < 0.2,
            datapath_polling=rng.random() < 0.15,
            sg_max_segment=rng.choice([None, None, 4096, 8192]),
            kernel=kernel,
        )
        self.users = ["u0"]
        self.chans: list[dict[str, Any]] = []  # {name, user, nelem, echo}
        self.bos: list[dict[str, Any]] = []  # {name, user, size, dbc, dir}
        self.pending: list[Any] = []  # queued macro steps (dicts, or callables making one)
        self.n = 0
        self.echo_len = 0
        self.last_wait: str | None = None
        self.stale: list[dict[str, Any]] = []  # channels deactivated, SSR'd or closed
        self._moves: tuple[list[Any], float] | None = None  # next_move's table, once built

    # -- helpers
    def _name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def _user_bos(self, user: str, sliced: bool | None = None) -> list[dict[str, Any]]:
        return [
            b
            for b in self.bos
            if b["user"] == user and (sliced is None or (b["dbc"] is not None) == sliced)
        ]

    def _sem(self) -> dict[str, int]:
        r = self.rng
        roll = r.random()
        if roll < 0.6:
            return {}
        if roll < 0.8:  # a presync wait on a semaphore the nsp moves can release
            return {
                "cmd": r.choice([4, 5, 6]),
                "index": r.choice([2, 3]),
                "val": r.choice([0, 1]),
                "presync": 1,
            }
        if roll < 0.97:  # a postsync operation
            return {"cmd": r.choice([1, 2, 3]), "index": r.choice([2, 3]), "val": r.randrange(3)}
        return {
            "cmd": r.choice([7, 2]),
            "index": r.choice([2, 40]),
            "flags": r.choice([0, 4]),
            "presync": r.choice([0, 2]),
        }  # mostly invalid: validation paths

    # -- moves
    def first_steps(self) -> list[dict[str, Any]]:
        r = self.rng
        nelem = r.choice([4, 8, 16, 64])
        self.echo_len = r.choice([64, 4096, 8192])
        steps: list[dict[str, Any]] = [
            {"op": "open", "user": "u0"},
            {
                "op": "activate",
                "user": "u0",
                "queue_size": nelem,
                "as": "d0",
                "workload": {
                    "kind": "echo",
                    "in_addr": _ECHO_IN,
                    "out_addr": _ECHO_OUT,
                    "length": self.echo_len,
                },
            },
        ]
        self.chans.append({"name": "d0", "user": "u0", "nelem": nelem, "echo": True})
        if r.random() < 0.4:
            self.users.append("u1")
            steps.append({"op": "open", "user": "u1"})
            steps.append(
                {"op": "activate", "user": "u1", "queue_size": r.choice([4, 16]), "as": "d1"}
            )
            self.chans.append(
                {"name": "d1", "user": "u1", "nelem": steps[-1]["queue_size"], "echo": False}
            )
        return steps

    def observe(self, step: dict[str, Any], res: dict[str, Any]) -> None:
        """Learn from a result (bindings that worked, slices that held)."""
        ok = res.get("result") == "ok"
        op = step["op"]
        self._observe_control(step, res)  # reset, RAS, import_bo (explore_control.py)
        if op == "wait":
            self.last_wait = res.get("result")
        if op == "create_bo":
            if ok and not step["as"].startswith(("in", "out", "big")):  # big: _m_big only
                self.bos.append(
                    {
                        "name": step["as"],
                        "user": step["user"],
                        "size": (step["size"] + 4095) // 4096 * 4096,
                        "dbc": None,
                        "dir": None,
                    }
                )
        elif op == "attach_slice" and ok:
            for b in self.bos:
                if b["name"] == step["hdr"]["handle"]:
                    b["dbc"], b["dir"] = step["hdr"]["dbc_id"], step["hdr"]["dir"]
        elif op == "detach_slice" and ok:
            for b in self.bos:
                if b["name"] == step["handle"]:
                    b["dbc"] = b["dir"] = None
        elif op in ("deactivate", "ssr") and ok:
            self._gone([c for c in self.chans if c["name"] == step["dbc_id"]])
        elif op == "close" and ok:
            self._gone([c for c in self.chans if c["user"] == step["user"]])
            self.users = [u for u in self.users if u != step["user"]]
            self.bos = [b for b in self.bos if b["user"] != step["user"]]
        elif op == "activate" and not ok:
            self.chans = [c for c in self.chans if c["name"] != step.get("as")]
        elif op == "activate" and ok and not any(c["name"] == step["as"] for c in self.chans):
            self.chans.append(
                {
                    "name": step["as"],
                    "user": step["user"],
                    "nelem": step["queue_size"],
                    "echo": False,
                }
            )

    def _gone(self, chans: list[dict[str, Any]]) -> None:
        """Channels released (release_dbc): their BOs are no longer sliced."""
        names = {c["name"] for c in chans}
        self.stale += chans
        self.chans = [c for c in self.chans if c["name"] not in names]
        for b in self.bos:
            if b["dbc"] in names:
                b["dbc"] = b["dir"] = None

    def next_move(self) -> tuple[dict[str, Any], int]:
        """The next step dict and, for a random ``run``, how many actions it may take."""
        if self.pending:
            nxt = self.pending.pop(0)
            if isinstance(nxt, tuple):  # (step, random-run length)
                return nxt
            return (nxt() if callable(nxt) else nxt), 0
        r = self.rng
        moves, total = self._moves or self._move_table()
        x = r.random() * total
        for w, fn in moves:
            x -= w
            if x <= 0:
                return fn()
        return moves[0][1]()

    def _move_table(
        self,
    ) -> tuple[list[tuple[float, Callable[[], tuple[dict[str, Any], int]]]], float]:
        """The weighted moves of :meth:`next_move` and their total weight: fixed for the
        episode (the weights read only ``threads`` and ``cfg``), so built once."""
        moves: list[tuple[float, Callable[[], tuple[dict[str, Any], int]]]] = [
            (3, self._m_run_random),
            (1, self._m_run),
            (2, self._m_create),
            (2, self._m_attach),
            (3, self._m_execute),
            (1, self._m_partial),
            (1, self._m_wait),
            (1, self._m_detach),
            (0.5, self._m_perf),
            (1.5, self._m_nsp),
            (2, self._m_echo),
            (0.3, self._m_bogus),
            (1.5 if self.threads else 0, self._m_concurrent),
            (1.2, self._m_invalid),
            (0.5, self._m_faulty),
            (1.0 if self.threads else 0, self._m_race),
            (0.6, self._m_fill),
            (1.0, self._m_burst),
            (0.2 if self.cfg.sg_max_segment is None else 0, self._m_big),
            (0.3, self._m_refill),
        ]
        moves += [(w, getattr(self, m)) for m, w in CONTROL_WEIGHTS.items()]
        self._moves = (moves, sum(w for w, _ in moves))
        return self._moves

    def _m_run_random(self) -> tuple[dict[str, Any], int]:
        return {"op": "run"}, self.rng.randint(1, 30)

    def _m_run(self) -> tuple[dict[str, Any], int]:
        return {"op": "run", "max_steps": 5000}, 0

    def _m_create(self) -> tuple[dict[str, Any], int]:
        r = self.rng
        size = r.choice([4096, 8192, 12288, 100, 5000, 4096 * 5])
        return {
            "op": "create_bo",
            "user": r.choice(self.users),
            "size": size,
            "as": self._name("b"),
        }, 0

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
            e: dict[str, Any] = {
                "size": hi - lo,
                "offset": lo,
                "dev_addr": 0x30_0000 + r.randrange(4) * 0x1_0000 + lo,
            }
            if r.random() < 0.6:
                e.update(
                    {
                        "db_addr": 0x50_0000 + 4 * r.randrange(4),
                        "db_data": 1,
                        "db_len": r.choice([32, 32, 16, 8]),
                    }
                )
            for s in ("sem0", "sem1"):
                sem = self._sem()
                if sem:
                    e[s] = sem
            entries.append(e)
        if r.random() < 0.05:
            entries[0]["size"] = size + 4096  # past the end: EINVAL
        return {
            "op": "attach_slice",
            "user": user,
            "hdr": {
                "dbc_id": ch["name"],
                "handle": bo["name"],
                "dir": r.choice([1, 2]),
                "size": size,
            },
            "entries": entries,
        }, 0

    def _sliced(self) -> tuple[str, list[dict[str, Any]]]:
        user = self.rng.choice(self.users)
        return user, self._user_bos(user, sliced=True)

    def _m_execute(self) -> tuple[dict[str, Any], int]:
        r = self.rng
        user, bos = self._sliced()
        if not bos:
            return self._m_attach()
        chosen = r.sample(bos, k=min(len(bos), r.choice([1, 1, 2])))
        return {
            "op": "execute",
            "user": user,
            "dbc_id": chosen[0]["dbc"],
            "handles": [b["name"] for b in chosen],
        }, 0

    def _m_partial(self) -> tuple[dict[str, Any], int]:
        r = self.rng
        user, bos = self._sliced()
        if not bos:
            return self._m_attach()
        b = r.choice(bos)
        resize = r.choice([0, 1, b["size"] // 2, b["size"], b["size"] + 1])
        return {
            "op": "partial_execute",
            "user": user,
            "dbc_id": b["dbc"],
            "entries": [{"handle": b["name"], "resize": resize}],
        }, 0

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
        return {
            "op": "perf_stats",
            "user": user,
            "dbc_id": bos[0]["dbc"],
            "handles": [b["name"] for b in bos[:3]],
        }, 0

    def _m_nsp(self) -> tuple[dict[str, Any], int]:
        r = self.rng
        if not self.chans:
            return self._m_run()
        ch = r.choice(self.chans)
        return {
            "op": "nsp",
            "dbc_id": ch["name"],
            "sem": {"index": r.choice([2, 3]), "cmd": r.choice([1, 2, 3]), "val": r.randrange(3)},
        }, 0

    def _m_bogus(self) -> tuple[dict[str, Any], int]:
        """Validation paths: wrong dbc, bogus handle, other user's channel."""
        r = self.rng
        user = r.choice(self.users)
        return r.choice(
            [
                {
                    "op": "execute",
                    "user": user,
                    "dbc_id": r.choice([0, 1, 7, 99]),
                    "handles": [4242],
                },
                {"op": "wait", "user": user, "dbc_id": r.choice([0, 1, 99]), "handle": 4242},
                {"op": "create_bo", "user": user, "size": 0, "as": self._name("z")},
                {"op": "detach_slice", "user": user, "handle": 4242},
            ]
        ), 0

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
                return {
                    "op": op,
                    "user": user,
                    "dbc_id": b["dbc"],
                    "handles": [b["name"]],
                    "thread": t,
                }
            return {
                "op": op,
                "user": user,
                "dbc_id": b["dbc"],
                "entries": [{"handle": b["name"], "resize": b["size"]}],
                "thread": t,
            }

        self.pending = [
            ex(b2, t2),
            ({"op": "run"}, r.randint(2, 25)),
            {"op": "join", "thread": t1},
            {"op": "join", "thread": t2},
        ]
        return ex(b1, t1), 0

    def _m_echo(self) -> tuple[dict[str, Any], int]:
        """One echo inference on d0 with fresh BOs (CONF-DATA)."""
        echo = [c for c in self.chans if c["echo"]]
        if not echo:
            return self._m_run()
        from qaicmodel.spec.dbc.workload import input_slice, output_slice

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
            {
                "op": "attach_slice",
                "user": user,
                "hdr": {"dbc_id": ch["name"], "handle": bi, "dir": 1, "size": _page(n)},
                "entries": [ins],
            },
            {
                "op": "attach_slice",
                "user": user,
                "hdr": {"dbc_id": ch["name"], "handle": bo, "dir": 2, "size": _page(n)},
                "entries": [outs],
            },
            {"op": "execute", "user": user, "dbc_id": ch["name"], "handles": [bi, bo]},
            {"op": "wait", "user": user, "dbc_id": ch["name"], "handle": bo},
            # data integrity is only asserted when the wait completed (a random slice
            # blocking the channel may legitimately hold the inference back)
            lambda: {
                "op": "read_bo",
                "user": user,
                "handle": bo,
                "length": n,
                **({"expect_hex": data.hex()} if self.last_wait == "ok" else {}),
            },
        ]
        # the echo BOs are not handed to the random moves (their protocol is fixed)
        return {"op": "create_bo", "user": user, "size": n, "as": bi}, 0


def _page(n: int) -> int:
    return (n + 4095) // 4096 * 4096
