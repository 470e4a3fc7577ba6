"""The co-simulation as a Hypothesis stateful machine (tests and fuzzing campaigns build on it).

:func:`make_machine` runs one host (or two, as a :class:`~qaicmodel.oracle.cosim.Pair`)
against the device model of a :class:`~qaicmodel.oracle.cosim.World`; Hypothesis picks
operations, single actor steps and random bursts, and no invariant may break after any
rule.  Hypothesis is imported only when a machine is built.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from qaicmodel.oracle.cosim import PAGE, Finding, Pair, World
from qaicmodel.spec.host import uapi
from qaicmodel.spec.policies import PROCESSING_ORDER, Policies, ProcessingOrder

__all__ = ["make_machine"]


_USERS = (0, 1, 2)
_HANDLES = (0, 5, 6, 7)  # never a tracked BO (those are 1..4)
_DBCS = (0, 1, 2, 16)


def _burst(w: World, seed: int, n: int) -> list[Any]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        acts = w.enabled()
        if not acts:
            break
        out.append(w.act(rng.randrange(len(acts))))
    return out


def _settle(w: World, seed: int) -> bool:
    return w.settle(random.Random(seed), 3000)


def make_machine(
    host_factories: Sequence[Callable[..., Any]],
    *,
    policies: Policies | None = None,
    **world_kw: Any,
) -> type:
    """A RuleBasedStateMachine running one host (or, with two factories, a :class:`Pair`)
    against the device: operations, single actor steps and random bursts interleaved by
    Hypothesis; after every rule no invariant may be broken."""
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

    pair = len(host_factories) == 2
    fifo = policies is not None and policies[PROCESSING_ORDER] is ProcessingOrder.FIFO
    sems = st.builds(
        uapi.Sem,
        val=st.sampled_from([0, 1, 0xFFF, 0x1000]),
        index=st.sampled_from([8, 9, 31, 32]),
        presync=st.sampled_from([0, 0, 2]),
        cmd=st.sampled_from([0, 1, 2, 3, 7]),
        flags=st.sampled_from([0, 1, 2, 4]),
        pad=st.sampled_from([0, 0, 1]),
    )
    entries = st.lists(
        st.builds(
            uapi.SliceEntry,
            size=st.sampled_from([0, 1, PAGE, 2 * PAGE, 1 << 63]),
            sem0=sems,
            sem1=st.just(uapi.Sem()),
            sem2=sems,
            sem3=st.just(uapi.Sem()),
            dev_addr=st.sampled_from([0x60_0000, 0x61_0000]),
            db_addr=st.sampled_from([0x70_0000, 0x70_0002, 0x70_0001]),
            db_len=st.sampled_from([0, 8, 16, 32, 12]),
            offset=st.sampled_from([0, PAGE, 3 * PAGE, (1 << 64) - PAGE]),
        ),
        max_size=3,
    )
    hdrs = st.builds(
        uapi.AttachSliceHdr,
        count=st.integers(0, 3),
        dbc_id=st.sampled_from(_DBCS),
        handle=st.sampled_from(_HANDLES),
        dir=st.integers(0, 3),
        size=st.sampled_from([0, PAGE, 8 * PAGE]),
    )
    users, handles, dbcs = (
        st.sampled_from(_USERS),
        st.sampled_from(_HANDLES),
        st.sampled_from(_DBCS),
    )
    calls = st.one_of(
        st.tuples(
            st.just("create_bo"),
            users,
            st.sampled_from([0, 1, PAGE, PAGE + 1, (1 << 64) - 1]),
            st.sampled_from([0, 0, 1]),
        ),
        st.tuples(st.just("attach_slice"), users, hdrs, st.one_of(st.none(), entries)),
        st.tuples(
            st.just("execute"),
            users,
            dbcs,
            st.lists(st.tuples(handles, st.integers(0, 3)), max_size=3),
        ),
        st.tuples(
            st.just("partial_execute"),
            users,
            dbcs,
            st.lists(
                st.tuples(handles, st.integers(0, 3), st.sampled_from([0, 1, PAGE, 3 * PAGE])),
                max_size=2,
            ),
        ),
        st.tuples(
            st.just("wait_check"),
            users,
            dbcs,
            handles,
            st.sampled_from([0, 5000]),
            st.sampled_from([0, 0, 1]),
        ),
        st.tuples(st.just("perf_stats"), users, dbcs, st.lists(handles, max_size=3)),
        st.tuples(st.just("detach_slice"), users, handles, st.sampled_from([0, 0, 1])),
        st.tuples(st.just("mmap_bo"), users, handles),
    )

    class CosimMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()

            def mk(f: Callable[..., Any]) -> World:
                return World(f, policies=policies, **world_kw)

            if pair:
                self.pair: Pair | None = Pair(mk, host_factories)
                self.w = self.pair.a
            else:
                self.pair = None
                self.w = mk(host_factories[0])

        def _do(self, what: str, op: Callable[[World], Any]) -> Any:
            if self.pair is not None:
                return self.pair.do(what, op)
            return op(self.w)

        def _findings(self) -> list[Finding]:
            return self.pair.all_findings() if self.pair is not None else self.w.findings

        @rule(i=st.integers(0, 63))
        def act(self, i: int) -> None:
            self._do(f"act {i}", lambda w: w.act(i) if w.enabled() else None)

        @rule(seed=st.integers(0, 1 << 16), n=st.integers(1, 80))
        def burst(self, seed: int, n: int) -> None:
            self._do(f"burst {seed} {n}", lambda w: _burst(w, seed, n))

        @precondition(lambda self: self.w.echo_ready())
        @rule(data=st.binary(min_size=1, max_size=64), mode=st.integers(0, 1 if fifo else 2))
        def echo(self, data: bytes, mode: int) -> None:
            self._do(f"echo {mode}", lambda w: w.echo_submit(data, mode))

        @precondition(lambda self: self.w.echo_pending)
        @rule()
        def echo_out(self) -> None:
            self._do("echo_out", lambda w: w.echo_out())

        @precondition(lambda self: self.w._idle("A", "B"))
        @rule(
            data=st.binary(min_size=1, max_size=64),
            resize=st.one_of(st.none(), st.integers(1, 3 * PAGE)),
        )
        def dma_write(self, data: bytes, resize: int | None) -> None:
            if resize is not None:
                resize = min(resize, self.w.dma_len)
            self._do("dma_write", lambda w: w.dma_write(data, resize))

        @precondition(lambda self: self.w._idle("A", "B") and self.w.executed["A"] > 0)
        @rule()
        def dma_read(self) -> None:
            self._do("dma_read", lambda w: w.dma_read())

        @precondition(lambda self: self.w._idle("C", "D") and hasattr(self.w.host, "execute_begin"))
        @rule(partial=st.booleans())
        def concurrent(self, partial: bool) -> None:
            self._do("concurrent", lambda w: w.concurrent(partial))

        @rule(call=calls)
        def ioctl(self, call: tuple[Any, ...]) -> None:
            name, *args = call
            self._do(f"{name}{tuple(args)!r}", lambda w: w.ioctl(name, *args))

        @rule(seed=st.integers(0, 1 << 16))
        def settle(self, seed: int) -> None:
            self._do("settle", lambda w: _settle(w, seed))

        @invariant()
        def no_findings(self) -> None:
            f = self._findings()
            assert not f, "; ".join(str(x) for x in f[:3])

        def teardown(self) -> None:
            self._do("final settle", lambda w: _settle(w, 0))
            f = self._findings()
            assert not f, "; ".join(str(x) for x in f[:3])

    return CosimMachine
