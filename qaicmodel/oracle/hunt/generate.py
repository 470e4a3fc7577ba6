"""The hunt's episode generator: conform's moves plus the control plane's.

Rules:

  G1  The data-path moves are conform's (:class:`qaicmodel.oracle.explore.Explorer`,
      used read-only through its public methods ``first_steps``, ``next_move`` and
      ``observe``); a conform random ``run`` of N actions becomes a seeded run (side.py
      V3) whose seed is drawn from the episode's PRNG; a ``create_bo`` above
      :data:`HUGE_BO` bytes becomes a zero-size one.  Control moves are never put inside
      one of conform's macro moves (its ``pending`` steps).
  G2  With probability :data:`CONTROL_SHARE` a move is a control-plane one instead, in
      the uapi's vocabulary: ``activate`` of one more channel (queue sizes 1, 2, 4, 16),
      ``deactivate`` by the owner or by another user, ``close`` of the second user and
      its re-``open`` with a new ``activate``, and ``ssr`` of an active channel.  These
      reach the QSM/NNC/SSR policies that conform's data-path moves never touch.
  G3  With probability :data:`SEM_MUTATION` an ``attach_slice`` conform generated has one
      semaphore command replaced by one conform never makes but the uapi accepts: a
      presync init/increment/decrement, a P (command 6), values up to 4095; and a
      control move may be an ``nsp`` step setting a semaphore to 0 or 4095.  These reach
      the semaphore policies at their edges.
  G4  A control move may also be a *semaphore pair*: on one channel, two fresh BOs whose
      slices carry a random semaphore operation (the producer: init/inc/dec/P, pre- or
      postsync, values 0, 1, 2 or 4095) and a random presync wait on the same index (the
      consumer), optionally after an ``nsp`` setting that semaphore, executed together,
      then a ``wait`` on the consumer: the shortest shape in which a semaphore reading
      decides whether a BO completes.
  G5  Everything is drawn from one ``random.Random(seed)``: an episode is a function of
      its seed and of the results its steps returned on the first side.
  G6  Once a G3 mutation, an ``nsp`` step or a G4 pair is in the episode, conform's echo
      claim no longer holds: the semaphores that order an echo's output after its input
      may have changed, so the output may legitimately hold other bytes.  Later
      ``read_bo`` moves go out without conform's ``expect_hex`` (the claim its CONF-DATA
      judges); what they read is still each side's host-visible outcome (side.py V2).
      (Without G6, S5's search for a host failure found CONF-DATA "failures" under every
      side of one witness: the output slice's presync let it run before the input.)
"""

from __future__ import annotations

import random
from typing import Any

from qaicmodel.oracle.explore import Explorer

__all__ = ["HuntExplorer", "CONTROL_SHARE"]

#: G2: share of moves that are control-plane moves
CONTROL_SHARE = 0.15
#: G1: conform's "huge" create_bo (1 << 44 bytes) makes the model's BO backing take
#: gigabytes (qaicmodel/spec/dbc/memory.py bo_backing; reported in notes/conform-api.md);
#: the hunt asks for a zero-size BO instead (the same EINVAL path on every side)
HUGE_BO = 1 << 30
#: G3: share of attach_slice moves whose semaphores are mutated
SEM_MUTATION = 0.3


class HuntExplorer:
    """G1-G3 around one conform :class:`Explorer`."""

    def __init__(self, rng: random.Random, threads: bool, kernel: str | None = None) -> None:
        self.rng = rng
        self.ex = Explorer(rng, threads=threads, kernel=kernel)
        self.cfg = self.ex.cfg
        self.closed: set[str] = set()
        self.queue: list[dict[str, Any]] = []
        self.n = 0
        #: G6: a semaphore was changed from conform's choice in this episode
        self.sems_changed = False

    def first_steps(self) -> list[dict[str, Any]]:
        return [self._claims(self._seeded(s, 0)) for s in self.ex.first_steps()]

    def observe(self, step: dict[str, Any], res: dict[str, Any]) -> None:
        op, ok = step.get("op"), res.get("result") == "ok"
        self.ex.observe(step, res)
        if op == "close" and ok:
            user = step["user"]
            self.closed.add(user)
            self._drop(lambda c: c["user"] == user)
            self.ex.bos[:] = [b for b in self.ex.bos if b["user"] != user]
        elif op == "open" and ok:
            self.closed.discard(step["user"])
            if step["user"] not in self.ex.users:  # re-opened: conform's moves may use it
                self.ex.users.append(step["user"])
        elif op == "ssr" and ok:
            self._drop(lambda c: c["name"] == step["dbc_id"])

    def _drop(self, pred: Any) -> None:
        gone = {c["name"] for c in self.ex.chans if pred(c)}
        self.ex.chans[:] = [c for c in self.ex.chans if c["name"] not in gone]
        for b in self.ex.bos:
            if b["dbc"] in gone:
                b["dbc"] = b["dir"] = None

    def next_move(self) -> dict[str, Any]:
        return self._claims(self._next_move())

    def _claims(self, d: dict[str, Any]) -> dict[str, Any]:
        """G6 on one move."""
        if d.get("op") == "nsp":
            self.sems_changed = True
        if self.sems_changed and d.get("op") == "read_bo" and "expect_hex" in d:
            d = {k: v for k, v in d.items() if k != "expect_hex"}
        return d

    def _next_move(self) -> dict[str, Any]:
        if self.queue:
            return self.queue.pop(0)
        # never inside one of conform's macro moves (its queued steps assume theirs run next)
        if not getattr(self.ex, "pending", None) and self.rng.random() < CONTROL_SHARE:
            move = self._control()
            if move is not None:
                return move
        d, n = self.ex.next_move()
        if d.get("op") == "create_bo" and int(d.get("size", 0)) > HUGE_BO:
            d = {**d, "size": 0}  # G1: see HUGE_BO
        return self._seeded(d, n)

    def _seeded(self, d: dict[str, Any], n: int) -> dict[str, Any]:
        if d.get("op") == "run" and n:
            return {"op": "run", "seed": self.rng.getrandbits(32), "actions": n}
        if d.get("op") == "attach_slice" and self.rng.random() < SEM_MUTATION:
            return self._mutate(d)
        return d

    def _mutate(self, d: dict[str, Any]) -> dict[str, Any]:
        """G3: one semaphore command of one entry, from the uapi's wider range."""
        r = self.rng
        self.sems_changed = True
        entries = [dict(e) for e in d["entries"]]
        e = r.choice(entries)
        sem = {
            "cmd": r.choice([1, 2, 3, 6, 6]),
            "index": r.choice([2, 3]),
            "val": r.choice([0, 1, 2, 4095]),
            "presync": r.choice([0, 1]),
        }
        e[r.choice(["sem0", "sem1"])] = sem  # e is one of the copies in entries
        return {**d, "entries": entries}

    def _sem_pair(self, ch: dict[str, Any]) -> dict[str, Any]:
        """G4: producer and consumer slices on one semaphore, executed together."""
        r = self.rng
        self.sems_changed = True
        user, idx = ch["user"], r.choice([2, 3])
        a, b = self._name(), self._name()
        prod = {
            "cmd": r.choice([1, 2, 2, 3, 6]),
            "index": idx,
            "val": r.choice([0, 1, 2, 4095]),
            "presync": r.choice([0, 0, 1]),
        }
        cons = {"cmd": r.choice([4, 5, 6]), "index": idx, "val": r.choice([0, 1]), "presync": 1}

        def attach(h: str, sem: dict[str, int]) -> dict[str, Any]:
            entry = {"size": 4096, "dev_addr": 0x30_0000, "sem0": sem}
            hdr = {"dbc_id": ch["name"], "handle": h, "dir": 1, "size": 4096}
            return {"op": "attach_slice", "user": user, "hdr": hdr, "entries": [entry]}

        steps: list[dict[str, Any]] = []
        if r.random() < 0.6:
            val = r.choice([0, 1, 4095])
            steps.append(
                {"op": "nsp", "dbc_id": ch["name"], "sem": {"index": idx, "cmd": 1, "val": val}}
            )
        steps += [
            {"op": "create_bo", "user": user, "size": 4096, "as": b},
            attach(a, prod),
            attach(b, cons),
            {"op": "execute", "user": user, "dbc_id": ch["name"], "handles": [a, b]},
            {"op": "wait", "user": user, "dbc_id": ch["name"], "handle": b},
        ]
        self.queue.extend(steps)
        return {"op": "create_bo", "user": user, "size": 4096, "as": a}

    # -- G2
    def _name(self) -> str:
        self.n += 1
        return f"h{self.n}"

    def _open_users(self) -> list[str]:
        return [u for u in self.ex.users if u not in self.closed]

    def _control(self) -> dict[str, Any] | None:
        r = self.rng
        users = self._open_users()
        chans = [c for c in self.ex.chans if c["user"] in users]
        kind = r.choice(
            ["activate", "activate", "deactivate", "foreign", "close", "ssr", "nsp", "pair", "pair"]
        )
        if kind == "pair" and chans:
            return self._sem_pair(r.choice(chans))
        if kind == "nsp" and chans:  # G3: a semaphore at an edge of its range
            return {
                "op": "nsp",
                "dbc_id": r.choice(chans)["name"],
                "sem": {"index": r.choice([2, 3]), "cmd": 1, "val": r.choice([0, 4095])},
            }
        if kind == "activate" and users:
            user, size = r.choice(users), r.choice([1, 2, 4, 16])
            name = self._name()
            self.ex.chans.append({"name": name, "user": user, "nelem": size, "echo": False})
            return {"op": "activate", "user": user, "queue_size": size, "as": name}
        if kind == "deactivate" and chans:
            c = r.choice(chans)
            return {"op": "deactivate", "user": c["user"], "dbc_id": c["name"]}
        if kind == "foreign" and chans and len(users) > 1:
            c = r.choice(chans)
            other = r.choice([u for u in users if u != c["user"]])
            return {"op": "deactivate", "user": other, "dbc_id": c["name"]}
        if kind == "close":
            if "u1" in self.closed:  # re-open it with a fresh channel
                name = self._name()
                self.ex.chans.append({"name": name, "user": "u1", "nelem": 4, "echo": False})
                self.queue.append({"op": "activate", "user": "u1", "queue_size": 4, "as": name})
                return {"op": "open", "user": "u1"}
            if "u1" in users and len(users) > 1:  # one user always stays open
                return {"op": "close", "user": "u1"}
        if kind == "ssr" and chans:
            return {"op": "ssr", "dbc_id": r.choice(chans)["name"]}
        return None
