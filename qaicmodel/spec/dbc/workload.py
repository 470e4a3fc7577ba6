"""NSP workload actors: the device-side half of the semaphore/doorbell protocol.

Source: userspace.md §8 (the open compiler's metadata, ``Program.cpp``, and its
NSP runtime ``ComputeAPI.cpp`` / ``NSPContext.cpp``); aic100.rst "Request FIFO"
("By using the semaphores in conjunction with the workload running on the
NSPs, the data pipeline can be synchronized").

The protocol (both workloads below speak exactly this one, so one host-side
slice layout serves both):

  * semaphores of the channel: ``sem_in`` (default 0) gates inputs, ``sem_out``
    (default 1) gates outputs.  Initially sem_in = 0, sem_out = N_out.
  * doorbells: 32-bit words at ``doorbell_addr(k) = db_base + 4 k`` in device
    memory (L2TCM, reached through MCID 0; §8 "Doorbell k is at offset 4k").
    Input doorbells start at 0, output doorbells at 1 ("buffer free").  The
    exit doorbell is k = 280 (offset 0x460).
  * every INPUT request (direction to-device): presync ``WAIT_EQ(sem_in,
    N_in)``; the LAST input of an inference also postsync ``INIT(sem_in, 0)``;
    doorbell: 32-bit write of 1 to its input doorbell.
  * every OUTPUT request (direction from-device): presync ``WAIT_EQ(sem_out,
    0)``; the LAST output also postsync ``INIT(sem_out, N_out)``; doorbell:
    32-bit write of 1 to its output doorbell.
  * the workload, per inference (phases, one action each):
    ARM_IN   clear the input doorbells to 0;
    INC_IN   each of the N_in input NSPs increments sem_in by 1 (one action per NSP);
    WAIT_IN  all input doorbells read 1 (the inputs arrived);
    COMPUTE  run the kernel (echo: copy the input region to the output region);
    ARM_OUT  clear the output doorbells to 0;
    DEC_OUT  each of the N_out output NSPs decrements sem_out by 1;
    WAIT_OUT all output doorbells read 1 (the host has the outputs) -> next inference.
  * a 1 in the exit doorbell ends the workload (action ``exit``).

:func:`input_slice` / :func:`output_slice` give the uapi ``qaic_attach_slice_entry``
fields (doorbell and semaphores) a host must use.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import attrs

from qaicmodel.errors import ArgumentError
from qaicmodel.spec.dbc.wire import SemOp

__all__ = [
    "DB_BASE",
    "EXIT_DOORBELL",
    "doorbell_addr",
    "Phase",
    "NspAction",
    "CompilerProtocolWorkload",
    "EchoWorkload",
    "input_slice",
    "output_slice",
]

#: The model's device address of doorbell word 0 (MCID 0 window; the real value
#: is ``mcid_base`` from the activate response -- userspace.md §6.2).  Chosen to
#: stay clear of the low DDR addresses workloads use for data.
DB_BASE = 0x4000_0000
#: userspace.md §8: "exit doorbell offset = 280x4 = 0x460"
EXIT_DOORBELL = 280


def doorbell_addr(k: int, db_base: int = DB_BASE) -> int:
    """Device address of doorbell word ``k`` (userspace.md §8: offset 4k, 32-bit)."""
    if not isinstance(k, int) or not 0 <= k <= EXIT_DOORBELL:
        raise ArgumentError(f"doorbell number {k!r} out of range 0..{EXIT_DOORBELL}")
    return db_base + 4 * k


def _sem(cmd: int, index: int, val: int, presync: int) -> dict[str, int]:
    return {"val": val, "index": index, "presync": presync, "cmd": cmd, "flags": 0, "pad": 0}


_NO_SEM = {"val": 0, "index": 0, "presync": 0, "cmd": 0, "flags": 0, "pad": 0}


def input_slice(
    k: int, *, last: bool, n_in: int = 1, sem_in: int = 0, db_base: int = DB_BASE
) -> dict[str, Any]:
    """uapi slice fields of an input whose doorbell is ``k`` (userspace.md §8)."""
    return {
        "db_addr": doorbell_addr(k, db_base),
        "db_data": 1,
        "db_len": 32,
        "sem0": _sem(SemOp.WAIT_EQ, sem_in, n_in, 1),
        "sem1": _sem(SemOp.INIT, sem_in, 0, 0) if last else dict(_NO_SEM),
        "sem2": dict(_NO_SEM),
        "sem3": dict(_NO_SEM),
    }


def output_slice(
    k: int, *, last: bool, n_out: int = 1, sem_out: int = 1, db_base: int = DB_BASE
) -> dict[str, Any]:
    """uapi slice fields of an output whose doorbell is ``k`` (userspace.md §8)."""
    return {
        "db_addr": doorbell_addr(k, db_base),
        "db_data": 1,
        "db_len": 32,
        "sem0": _sem(SemOp.WAIT_EQ, sem_out, 0, 1),
        "sem1": _sem(SemOp.INIT, sem_out, n_out, 0) if last else dict(_NO_SEM),
        "sem2": dict(_NO_SEM),
        "sem3": dict(_NO_SEM),
    }


class Phase(enum.Enum):
    """Where the workload is in its inference loop (module docstring)."""

    ARM_IN = "arm_in"
    INC_IN = "inc_in"
    WAIT_IN = "wait_in"
    COMPUTE = "compute"
    ARM_OUT = "arm_out"
    DEC_OUT = "dec_out"
    WAIT_OUT = "wait_out"
    FINISHED = "finished"  # the requested number of inferences ran
    EXITED = "exited"  # the exit doorbell was rung


@attrs.frozen(order=True)
class NspAction:
    """One workload step on channel ``dbc``; ``nsp`` names the NSP for per-NSP steps."""

    dbc: int
    kind: str
    nsp: int = 0


class CompilerProtocolWorkload:
    """The open compiler's NSP runtime protocol (userspace.md §8) as an actor."""

    def __init__(
        self,
        dev: Any,
        dbc: int,
        n_in_nsps: int = 1,
        n_out_nsps: int = 1,
        in_doorbells: Sequence[int] = (0,),
        out_doorbells: Sequence[int] = (1,),
        *,
        sem_in: int = 0,
        sem_out: int = 1,
        inferences: int | None = None,
        db_base: int = DB_BASE,
        init: bool = True,
    ) -> None:
        dev._chan(dbc)
        for name, v, lo in (("n_in_nsps", n_in_nsps, 1), ("n_out_nsps", n_out_nsps, 1)):
            if not isinstance(v, int) or not lo <= v <= 16:
                raise ArgumentError(f"{name} must be 1..16 (NSPs per AIC100), got {v!r}")
        for name, s in (("sem_in", sem_in), ("sem_out", sem_out)):
            if not isinstance(s, int) or not 0 <= s < 32:
                raise ArgumentError(f"{name} must be a semaphore index 0..31, got {s!r}")
        if sem_in == sem_out:
            raise ArgumentError("sem_in and sem_out must differ")
        if inferences is not None and (not isinstance(inferences, int) or inferences < 0):
            raise ArgumentError(
                f"inferences must be a non-negative int or None, got {inferences!r}"
            )
        self.dev = dev
        self.dbc = dbc
        self.n_in = n_in_nsps
        self.n_out = n_out_nsps
        self.in_db = [doorbell_addr(k, db_base) for k in in_doorbells]
        self.out_db = [doorbell_addr(k, db_base) for k in out_doorbells]
        if not self.in_db or not self.out_db:
            raise ArgumentError("a workload needs at least one input and one output doorbell")
        self.exit_db = doorbell_addr(EXIT_DOORBELL, db_base)
        self.sem_in, self.sem_out = sem_in, sem_out
        self.inferences = inferences
        self.completed = 0
        self.phase = Phase.ARM_IN if inferences != 0 else Phase.FINISHED
        self._todo: list[int] = []  # NSPs that still owe their inc/dec this phase
        self._cursor = 0  # doorbells already seen rung in this wait (see _all_rung)
        if init:
            self.initialise()

    # -- set-up (userspace.md §8: "Initial sem0 = 0 ... Initial sem1 = N_out")
    def initialise(self) -> None:
        d = self.dev
        d.nsp_sem(self.dbc, self.sem_in, SemOp.INIT, 0)
        d.nsp_sem(self.dbc, self.sem_out, SemOp.INIT, self.n_out)
        for a in self.in_db:
            d.dev_mem.write_u(a, 4, 0)
        for a in self.out_db:
            d.dev_mem.write_u(a, 4, 1)

    def reset(self) -> None:
        """Start over (e.g. after the channel was re-activated): initial values, phase ARM_IN."""
        self._todo, self._cursor = [], 0
        self.phase = Phase.ARM_IN if self.inferences != 0 else Phase.FINISHED
        self.completed = 0
        self.initialise()

    def _all_rung(self, addrs: list[int]) -> bool:
        """Every doorbell word reads 1 (``os_doorbell_wait_eq``).

        A cursor skips words already seen at 1 so a long wait costs O(1) per
        query; the final answer always re-reads every word.
        """
        read = self.dev.dev_mem.read_u
        while self._cursor < len(addrs) and read(addrs[self._cursor], 4) == 1:
            self._cursor += 1
        if self._cursor < len(addrs):
            return False
        if all(read(a, 4) == 1 for a in addrs):
            return True
        self._cursor = 0
        return False

    def compute(self) -> None:
        """The kernel; the compiler-protocol workload computes nothing."""

    # -- actor interface
    def enabled(self) -> list[NspAction]:
        ph = self.phase
        if ph in (Phase.FINISHED, Phase.EXITED) or not self.dev.ch[self.dbc].active:
            return []
        if self.dev.dev_mem.read_u(self.exit_db, 4) == 1:
            return [NspAction(self.dbc, "exit")]
        if ph is Phase.INC_IN:
            return [NspAction(self.dbc, "inc_in", n) for n in self._todo]
        if ph is Phase.DEC_OUT:
            # a sem-underflow=block decrement of an empty semaphore cannot go yet
            if not self.dev._sem_apply(self.dev.ch[self.dbc], SemOp.DEC, self.sem_out, 1, dry=True):
                return []
            return [NspAction(self.dbc, "dec_out", n) for n in self._todo]
        if ph is Phase.WAIT_IN and not self._all_rung(self.in_db):
            return []
        if ph is Phase.WAIT_OUT and not self._all_rung(self.out_db):
            return []
        return [NspAction(self.dbc, ph.value)]

    def step(self, action: NspAction) -> None:
        if action not in self.enabled():
            raise ArgumentError(f"workload action {action!r} is not enabled")
        d, kind = self.dev, action.kind
        if kind == "exit":
            self.phase = Phase.EXITED
        elif kind == "arm_in":
            for a in self.in_db:
                d.dev_mem.write_u(a, 4, 0)
            self._todo = list(range(self.n_in))
            self.phase = Phase.INC_IN
        elif kind == "inc_in":
            d.nsp_sem(self.dbc, self.sem_in, SemOp.INC, 1)
            self._todo.remove(action.nsp)
            if not self._todo:
                self.phase = Phase.WAIT_IN
        elif kind == "wait_in":
            self._cursor = 0
            self.phase = Phase.COMPUTE
        elif kind == "compute":
            self.compute()
            self.phase = Phase.ARM_OUT
        elif kind == "arm_out":
            for a in self.out_db:
                d.dev_mem.write_u(a, 4, 0)
            self._todo = list(range(self.n_out))
            self.phase = Phase.DEC_OUT
        elif kind == "dec_out":
            d.nsp_sem(self.dbc, self.sem_out, SemOp.DEC, 1)
            self._todo.remove(action.nsp)
            if not self._todo:
                self.phase = Phase.WAIT_OUT
        elif kind == "wait_out":
            self._cursor = 0
            self.completed += 1
            done = self.inferences is not None and self.completed >= self.inferences
            self.phase = Phase.FINISHED if done else Phase.ARM_IN


class EchoWorkload(CompilerProtocolWorkload):
    """Each inference copies ``length`` bytes of device memory from ``in_addr`` to ``out_addr``.

    Same protocol as :class:`CompilerProtocolWorkload` (one input NSP and one
    output NSP by default): the host sends its input to ``in_addr`` (a
    to-device slice with :func:`input_slice`), reads the result from
    ``out_addr`` (a from-device slice with :func:`output_slice`), and gets its
    own bytes back -- userspace.md §8 ``examples/simple_io`` is "effectively an
    echo test".
    """

    def __init__(
        self,
        dev: Any,
        dbc: int,
        in_addr: int,
        out_addr: int,
        length: int,
        in_doorbells: Sequence[int] = (0,),
        out_doorbells: Sequence[int] = (1,),
        *,
        n_nsps: int = 1,
        **kw: Any,
    ) -> None:
        for name, v in (("in_addr", in_addr), ("out_addr", out_addr), ("length", length)):
            if not isinstance(v, int) or v < 0:
                raise ArgumentError(f"{name} must be a non-negative int, got {v!r}")
        self.in_addr, self.out_addr, self.length = in_addr, out_addr, length
        super().__init__(dev, dbc, n_nsps, n_nsps, in_doorbells, out_doorbells, **kw)

    def compute(self) -> None:
        mem = self.dev.dev_mem
        mem.write(self.out_addr, mem.read(self.in_addr, self.length))
