"""The generator moves of issue #12 item 2 (a mixin of :class:`qaicmodel.oracle.explore.Explorer`).

Kinds (see the docstring of :mod:`qaicmodel.oracle.explore`): ``invalid`` (calls in a
state that forbids them), ``faulty`` (a device completion code other than success),
``race`` (deactivate / SSR / close / detach / perf stats / attach while a BO is in flight
and a WAIT_BO thread sleeps on it; qaic_data.c qaic_wait_bo_ioctl's post-wake checks,
release_dbc), ``fill`` (a request ring filled to its last free slot, qaic_data.c
fifo_space_avail), ``burst`` (many responses in flight over the IRQ thread's
missed-event window, dbc_irq_threaded_fn), ``big`` (a sparse BO just over 4 GiB and a
slice past 4 GiB: offsets that do not fit 32 bits, qaic_data.c
clone_range_of_sgt_for_slice; only without a segment limit, where the model backs it
with a few 4 GiB segments instead of millions of small ones), ``refill`` (a BO run to
completion, the ring then filled by another BO, and the first BO executed again when the
ring has exactly its element count free: fifo_space_avail, CONF-EAGAIN).
"""

from __future__ import annotations

import itertools
import random
from typing import TYPE_CHECKING, Any

__all__ = ["StateMoves"]


class StateMoves:
    """Moves that reach the driver's state-dependent paths."""

    if TYPE_CHECKING:
        rng: random.Random
        users: list[str]
        chans: list[dict[str, Any]]
        bos: list[dict[str, Any]]
        stale: list[dict[str, Any]]
        pending: list[Any]

        def _name(self, prefix: str) -> str: ...
        def _user_bos(self, user: str, sliced: bool | None = None) -> list[dict[str, Any]]: ...
        def _sliced(self) -> tuple[str, list[dict[str, Any]]]: ...
        def _m_create(self) -> tuple[dict[str, Any], int]: ...
        def _m_attach(self) -> tuple[dict[str, Any], int]: ...
        def _m_run(self) -> tuple[dict[str, Any], int]: ...

        cfg: Any

    def _m_invalid(self) -> tuple[dict[str, Any], int]:
        """Calls in a state that forbids them (issue #12 item 2)."""
        r = self.rng
        user = r.choice(self.users)
        sliced, unsliced = self._user_bos(user, True), self._user_bos(user, False)
        kinds = ["huge", "pad-foreign"]
        if sliced:
            kinds += ["reslice", "perf-foreign"]
        if unsliced and self.chans:
            kinds += ["perf-unsliced", "wrap", "enospc"]
        if unsliced and self.stale:
            kinds.append("attach-stale")
        kind = r.choice(kinds)
        if kind == "huge":
            return {"op": "create_bo", "user": user, "size": 1 << 44, "as": self._name("z")}, 0
        if kind == "pad-foreign":
            ch = r.choice(self.chans + self.stale) if self.chans or self.stale else None
            dbc = ch["name"] if ch else 0
            return {"op": "wait", "user": user, "dbc_id": dbc, "handle": 4242, "pad": 1}, 0
        if kind == "reslice":
            b = r.choice(sliced)
            return self._attach_whole(user, b, b["dbc"]), 0
        if kind == "perf-foreign":
            others = [c["name"] for c in self.chans + self.stale]
            return {
                "op": "perf_stats",
                "user": user,
                "dbc_id": r.choice(others) if others else 0,
                "handles": [r.choice(sliced)["name"]],
            }, 0
        b = r.choice(unsliced)
        if kind == "perf-unsliced":
            return {
                "op": "perf_stats",
                "user": user,
                "dbc_id": r.choice(self.chans)["name"],
                "handles": [b["name"]],
            }, 0
        if kind == "attach-stale":
            return self._attach_whole(user, b, r.choice(self.stale)["name"]), 0
        if kind == "enospc":  # more slices than the ring has slots, then a fitting attach
            ch = min(self.chans, key=lambda c: c["nelem"])
            k = ch["nelem"] + 1
            st = self._attach_whole(user, b, ch["name"])
            cut = [round(i * b["size"] / k) for i in range(k + 1)]
            st["entries"] = [
                {"size": hi - lo, "offset": lo, "dev_addr": 0x30_0000 + lo}
                for lo, hi in itertools.pairwise(cut)
                if hi > lo
            ]
            self.pending = [self._attach_whole(user, b, ch["name"])]
            return st, 0
        st = self._attach_whole(user, b, r.choice(self.chans)["name"])
        e = st["entries"][0]
        e["offset"] = (1 << 64) - 4096 * r.choice([1, 2])
        e["size"] = 4096 * r.choice([2, 3])
        return st, 0

    def _attach_whole(self, user: str, b: dict[str, Any], dbc: Any) -> dict[str, Any]:
        return {
            "op": "attach_slice",
            "user": user,
            "hdr": {
                "dbc_id": dbc,
                "handle": b["name"],
                "dir": self.rng.choice([1, 2]),
                "size": b["size"],
            },
            "entries": [{"size": b["size"], "offset": 0, "dev_addr": 0x30_0000}],
        }

    def _m_faulty(self) -> tuple[dict[str, Any], int]:
        """A slice whose device range runs past 2**64: a DMA fault, a non-zero completion
        code; the BO must complete all the same (qaic_data.c only logs the status)."""
        r = self.rng
        user = r.choice(self.users)
        bos = self._user_bos(user, sliced=False)
        chans = [c for c in self.chans if c["user"] == user]
        if not bos or not chans:
            return self._m_create()
        b, ch = r.choice(bos), r.choice(chans)
        st = self._attach_whole(user, b, ch["name"])
        st["entries"][0]["dev_addr"] = (1 << 64) - r.choice([64, 2048, 4096])
        self.pending = [
            {"op": "execute", "user": user, "dbc_id": ch["name"], "handles": [b["name"]]},
            {"op": "wait", "user": user, "dbc_id": ch["name"], "handle": b["name"]},
        ]
        return st, 0

    def _m_burst(self) -> tuple[dict[str, Any], int]:
        """Every idle sliced BO of a channel executed one call at a time, then one long
        random run: many responses in flight while the IRQ thread drains, polls and
        unmasks (the missed-event window of dbc_irq_threaded_fn)."""
        user, bos = self._sliced()
        by_dbc: dict[str, list[dict[str, Any]]] = {}
        for b in bos:
            by_dbc.setdefault(b["dbc"], []).append(b)
        if not by_dbc:
            return self._m_attach()
        dbc = self.rng.choice(sorted(by_dbc))
        execs: list[Any] = [
            {"op": "execute", "user": user, "dbc_id": dbc, "handles": [b["name"]]}
            for b in by_dbc[dbc][:4]
        ]
        self.pending = [
            *execs[1:],
            ({"op": "run"}, self.rng.randint(20, 80)),
            {"op": "run", "max_steps": 5000},  # a stranded response shows at quiescence
        ]
        return execs[0], 0

    def _m_big(self) -> tuple[dict[str, Any], int]:
        """create_bo of 4 GiB + a few pages (synthetic memory: nothing is allocated), a
        slice of a page or less past 4 GiB, execute, wait.  The BO stays out of
        ``self.bos`` (name ``big*``), so no other move copies or slices all of it."""
        r = self.rng
        user = r.choice(self.users)
        chans = [c for c in self.chans if c["user"] == user]
        name = self._name("big")
        size = (1 << 32) + 4096 * r.randint(1, 4)
        st = {"op": "create_bo", "user": user, "size": size, "as": name}
        if not chans:
            return st, 0
        dbc = r.choice(chans)["name"]
        n = r.choice([4096, 100, 2048])
        off = (1 << 32) + 4096 * r.randrange((size - (1 << 32)) // 4096)
        self.pending = [
            {
                "op": "attach_slice",
                "user": user,
                "hdr": {"dbc_id": dbc, "handle": name, "dir": r.choice([1, 2]), "size": size},
                "entries": [{"size": n, "offset": off, "dev_addr": 0x30_0000}],
            },
            {"op": "execute", "user": user, "dbc_id": dbc, "handles": [name]},
            {"op": "wait", "user": user, "dbc_id": dbc, "handle": name},
        ]
        return st, 0

    def _m_refill(self) -> tuple[dict[str, Any], int]:
        """A BO of k one-page slices executed and waited for, then a BO of the rest of the
        ring's free slots, then the first BO again: with nothing else in flight it fits
        exactly (fifo_space_avail keeps one slot free), so -EAGAIN there is the host's."""
        r = self.rng
        small = [c for c in self.chans if 4 <= c["nelem"] <= 16]
        if not small:
            return self._m_run()
        ch = r.choice(small)
        user, dbc = ch["user"], ch["name"]
        k = r.randint(1, (ch["nelem"] - 1) // 2)
        m = ch["nelem"] - 1 - k
        a, c = self._name("f"), self._name("f")
        hdr = {"dbc_id": dbc, "dir": r.choice([1, 2])}

        def sliced(name: str, n: int) -> list[dict[str, Any]]:
            ents = [
                {"size": 4096, "offset": 4096 * i, "dev_addr": 0x60_0000 + 4096 * i}
                for i in range(n)
            ]
            return [
                {"op": "create_bo", "user": user, "size": 4096 * n, "as": name},
                {
                    "op": "attach_slice",
                    "user": user,
                    "hdr": {**hdr, "handle": name, "size": 4096 * n},
                    "entries": ents,
                },
            ]

        first, *rest = sliced(a, k)
        self.pending = [
            *rest,
            {"op": "execute", "user": user, "dbc_id": dbc, "handles": [a]},
            {"op": "run", "max_steps": 5000},
            {"op": "wait", "user": user, "dbc_id": dbc, "handle": a},
            *sliced(c, m),
            {"op": "execute", "user": user, "dbc_id": dbc, "handles": [c]},
            {"op": "execute", "user": user, "dbc_id": dbc, "handles": [a]},
            ({"op": "run"}, r.randint(5, 40)),
        ]
        return first, 0

    def _m_fill(self) -> tuple[dict[str, Any], int]:
        """Fill a small request ring to its last free slot with one BO of one-element
        slices, then ask for one element more (fifo_space_avail keeps a slot free), then
        let the device and the IRQ side race over the full rings."""
        r = self.rng
        small = [c for c in self.chans if c["nelem"] <= 16]
        if not small:
            return self._m_run()
        ch = r.choice(small)
        user, k = ch["user"], ch["nelem"] - 1
        a, b = self._name("f"), self._name("f")
        ents = [
            {"size": 4096, "offset": 4096 * i, "dev_addr": 0x60_0000 + 4096 * i} for i in range(k)
        ]
        one = [{"size": 4096, "offset": 0, "dev_addr": 0x70_0000}]
        hdr = {"dbc_id": ch["name"], "dir": 1}
        self.pending = [
            {
                "op": "attach_slice",
                "user": user,
                "hdr": {**hdr, "handle": a, "size": 4096 * k},
                "entries": ents,
            },
            {"op": "create_bo", "user": user, "size": 4096, "as": b},
            {
                "op": "attach_slice",
                "user": user,
                "hdr": {**hdr, "handle": b, "size": 4096},
                "entries": one,
            },
            {"op": "execute", "user": user, "dbc_id": ch["name"], "handles": [a]},
            {"op": "execute", "user": user, "dbc_id": ch["name"], "handles": [b]},
            ({"op": "run"}, r.randint(5, 40)),
            {"op": "execute", "user": user, "dbc_id": ch["name"], "handles": [b]},
            ({"op": "run"}, r.randint(5, 40)),
        ]
        return {"op": "create_bo", "user": user, "size": 4096 * k, "as": a}, 0

    def _m_race(self) -> tuple[dict[str, Any], int]:
        """A BO in flight and a WAIT_BO thread asleep on it, then a control or ioctl call
        on its channel between random runs, then the waiter's join."""
        r = self.rng
        user, bos = self._sliced()
        if not bos:
            return self._m_attach()
        b = r.choice(bos)
        ch = next((c for c in self.chans if c["name"] == b["dbc"]), None)
        if ch is None:
            return self._m_attach()
        w = self._name("w")
        what = r.choice(["deactivate", "deactivate", "ssr", "close", "detach", "perf", "attach"])
        if what == "close" and len(self.users) < 2:
            what = "deactivate"  # the episode keeps one open user
        mid: dict[str, Any]
        if what == "deactivate":
            mid = {"op": "deactivate", "user": ch["user"], "dbc_id": ch["name"]}
        elif what == "ssr":
            mid = {"op": "ssr", "dbc_id": ch["name"]}
        elif what == "close":
            mid = {"op": "close", "user": user}
        elif what == "detach":
            mid = {"op": "detach_slice", "user": user, "handle": b["name"]}
        elif what == "perf":
            mid = {"op": "perf_stats", "user": user, "dbc_id": ch["name"], "handles": [b["name"]]}
        else:
            free = self._user_bos(user, sliced=False)
            mid = self._attach_whole(user, free[0], ch["name"]) if free else {"op": "run"}
        self.pending = [
            {"op": "wait", "user": user, "dbc_id": ch["name"], "handle": b["name"], "thread": w},
            ({"op": "run"}, r.randint(0, 12)),
            mid,
            ({"op": "run"}, r.randint(0, 12)),
            {"op": "join", "thread": w},
        ]
        if what in ("deactivate", "ssr") and r.random() < 0.5:
            self.pending.append(
                {
                    "op": "activate",
                    "user": ch["user"],
                    "queue_size": r.choice([4, 16]),
                    "as": self._name("d"),
                }
            )
        return {"op": "execute", "user": user, "dbc_id": ch["name"], "handles": [b["name"]]}, 0
