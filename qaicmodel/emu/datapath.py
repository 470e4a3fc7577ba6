"""The board with NSP workloads: the device side of the real driver's data path.

The model's :class:`~qaicmodel.emu.board.Board` has the DMA Bridge (its channels run
on the guest's memory) but no NSPs: a request whose presync waits on a semaphore
the NSPs raise would wait forever.  :class:`DatapathBoard` adds them:

  D1 when the QSM activates a channel (the Device's ``activate`` event), a workload
     actor for it is made by ``workload(device, dbc)`` (default: the model's echo
     workload, :class:`~qaicmodel.spec.dbc.workload.EchoWorkload`, 4 KiB from
     :data:`ECHO_IN` to :data:`ECHO_OUT`); deactivate and reset drop it;
  D2 the workload's actions are board actions ``("nsp", action)``, picked by the
     backend's seeded scheduler like every other device action (no threads, no
     clocks);
  D3 every request element the device consumes is recorded as it read it
     (:attr:`DatapathBoard.consumed`: ``(dbc, slot, 64 raw bytes)``), with the
     channel's FIFO addresses (:attr:`DatapathBoard.fifos`), for the differential
     against the model's hosts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qaicmodel.emu.board import Board
from qaicmodel.spec.dbc.workload import EchoWorkload

__all__ = ["DatapathBoard", "ECHO_IN", "ECHO_OUT", "ECHO_LEN", "echo_workload"]

ECHO_IN = 0x100000
ECHO_OUT = 0x200000
ECHO_LEN = 4096


def echo_workload(in_addr: int = ECHO_IN, out_addr: int = ECHO_OUT,
                  length: int = ECHO_LEN) -> Callable[[Any, int], Any]:
    """A workload factory: the echo workload on every activated channel."""
    def make(dev: Any, dbc: int) -> Any:
        return EchoWorkload(dev, dbc, in_addr, out_addr, length)

    return make


_ECHO = echo_workload()


class DatapathBoard(Board):
    """The board plus one NSP workload per activated channel (D1-D3)."""

    def __init__(self, *a: Any, workload: Callable[[Any, int], Any] | None = _ECHO,
                 **kw: Any) -> None:
        """``workload``: the factory of D1 (None: no automatic workload; the caller puts
        actors in :attr:`workloads` itself, as the Linux scenario host does)."""
        self.workload_factory = workload
        self.workloads: dict[int, Any] = {}
        self.consumed: list[tuple[int, int, bytes]] = []
        self.fifos: dict[int, tuple[int, int, int]] = {}  # dbc -> (req_q, rsp_q, nelem)
        #: (dbc, req_q, rsp_q, nelem, both FIFOs in the attached memory at activation)
        self.activations: list[tuple[int, int, int, int, bool]] = []
        #: every DMA Bridge event (the Device's observer tuples; consume as its raw bytes)
        self.events: list[tuple[Any, ...]] = []
        #: every guest access to BAR2 (the DMA Bridge registers): (r|w, offset, value)
        self.bar2_log: list[tuple[str, int, int]] = []
        super().__init__(*a, **kw)

    def _build(self, mem: Any) -> None:
        super()._build(mem)
        self.workloads = {}
        self.device.observers.append(self._dp_event)

    def _dp_event(self, ev: tuple[Any, ...]) -> None:
        kind = ev[0]
        self.events.append(ev if kind != "consume" else ev[:4] + (ev[4].pack(),))
        if kind == "activate":
            dbc, req_q, rsp_q, nelem = ev[1:5]
            self.fifos[dbc] = (req_q, rsp_q, nelem)
            mapped = bool(self.mem.mapped(req_q, 64 * nelem) and self.mem.mapped(rsp_q, 4 * nelem))
            self.activations.append((dbc, req_q, rsp_q, nelem, mapped))
            if self.workload_factory is not None:
                self.workloads[dbc] = self.workload_factory(self.device, dbc)
        elif kind == "deactivate":
            self.workloads.pop(ev[1], None)
        elif kind == "reset":
            self.workloads.clear()
        elif kind == "consume":
            _dbc, _seq, slot, elem = ev[1:5]
            self.consumed.append((ev[1], slot, elem.pack()))

    def bar_read(self, bar: int, off: int, size: int) -> int:
        v = super().bar_read(bar, off, size)
        if bar == 2:
            self.bar2_log.append(("r", off, v))
        return v

    def bar_write(self, bar: int, off: int, size: int, value: int) -> None:
        if bar == 2:
            self.bar2_log.append(("w", off, value))
        super().bar_write(bar, off, size, value)

    def actions(self) -> list[tuple[Any, ...]]:
        out = super().actions()
        for w in self.workloads.values():
            out += [("nsp", a) for a in w.enabled()]
        return out

    def step(self, action: tuple[Any, ...]) -> None:
        if action[0] == "nsp":
            self.steps += 1
            w = self.workloads.get(action[1].dbc)
            if w is not None:
                w.step(action[1])
            return
        super().step(action)
