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
     against the model's hosts;
  D4 ``record=True`` keeps the boundary as ``qaicmodel-trace/1`` events
     (/work/shared/formats/trace.md; :meth:`DatapathBoard.trace_lines`), in the
     order the single-threaded backend saw them: ``activate``/``deactivate`` (the
     QSM's), ``readl``/``writel`` of the four ring registers of each channel, ``req``
     for every element a REQ_TP write publishes (read from guest memory at that
     write, before it: the host wrote them first), ``msi`` (single-MSI mode: every
     one on vector 0, MHI's too), ``nnc_tx``/``nnc_rx`` (QAIC_CONTROL messages).
     Not visible from the device side: ``rsp`` (what the host read of a response),
     ``irq_disable``/``irq_enable``;
  D5 ``slow_terminate=N`` (a seeded device fault, "slow replies"): the answer to a
     terminate (QAIC_CONTROL, channel 11) goes out only after N more board steps
     (``("hold",)`` actions, one QTimer millisecond each): the QSM has already
     released the user's channels, the driver has not yet (qaic_drv.c
     ``qaic_postclose``: ``qaic_release_usr`` waits for this answer, then
     ``release_dbc``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qaicmodel.emu.board import QTIMER_TICKS_PER_STEP, Board
from qaicmodel.emu.tracing import published_requests, register_events
from qaicmodel.spec.dbc.workload import EchoWorkload

__all__ = ["DatapathBoard", "ECHO_IN", "ECHO_OUT", "ECHO_LEN", "echo_workload"]

ECHO_IN = 0x100000
ECHO_OUT = 0x200000
ECHO_LEN = 4096


def echo_workload(
    in_addr: int = ECHO_IN, out_addr: int = ECHO_OUT, length: int = ECHO_LEN
) -> Callable[[Any, int], Any]:
    """A workload factory: the echo workload on every activated channel."""

    def make(dev: Any, dbc: int) -> Any:
        return EchoWorkload(dev, dbc, in_addr, out_addr, length)

    return make


_ECHO = echo_workload()


class DatapathBoard(Board):
    """The board plus one NSP workload per activated channel (D1-D3)."""

    def __init__(
        self,
        *a: Any,
        workload: Callable[[Any, int], Any] | None = _ECHO,
        record: bool = False,
        slow_terminate: int = 0,
        **kw: Any,
    ) -> None:
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
        self.record = record
        self.trace: list[dict[str, Any]] = []
        self.slow_terminate = slow_terminate
        self._hold = 0  # steps the terminate answer still waits (D5)
        self.held_steps = 0
        super().__init__(*a, **kw)
        if record:
            orig = self.services._control

            def control(direction: str, ch: int, data: bytes) -> None:
                self.trace.append(
                    {"ev": "nnc_tx" if direction == "h2d" else "nnc_rx", "hex": bytes(data).hex()}
                )
                orig(direction, ch, data)

            self.services._control = control  # type: ignore[method-assign]
        if slow_terminate:
            orig2 = self.services._control

            def control2(direction: str, ch: int, data: bytes) -> None:
                orig2(direction, ch, data)
                if direction == "h2d" and "TerminateToDev" in self.services.control_log[-1][2]:
                    self._hold = self.slow_terminate

            self.services._control = control2  # type: ignore[method-assign]

    def _build(self, mem: Any) -> None:
        super()._build(mem)
        self.workloads = {}
        self.device.observers.append(self._dp_event)

    def _dp_event(self, ev: tuple[Any, ...]) -> None:
        kind = ev[0]
        self.events.append(ev if kind != "consume" else ev[:4] + (ev[4].pack(),))
        if self.record and kind in ("activate", "deactivate"):
            t: dict[str, Any] = {"ev": kind, "dbc": ev[1]}
            if kind == "activate":
                t.update(nelem=ev[4], req_q=ev[2], rsp_q=ev[3])
            self.trace.append(t)
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
            if self.record:
                self.trace += register_events("readl", off, size, v, self.device.num_dbc)
        return v

    def bar_write(self, bar: int, off: int, size: int, value: int) -> None:
        if bar == 2:
            self.bar2_log.append(("w", off, value))
            if self.record:
                self.trace += published_requests(self.device, self.mem, off, size, value)
                self.trace += register_events("writel", off, size, value, self.device.num_dbc)
        super().bar_write(bar, off, size, value)

    def _raise(self, vector: int) -> None:
        super()._raise(vector)
        if self.record:
            self.trace.append({"ev": "msi", "vector": self.msi_log[-1]})

    def trace_lines(self, device: dict[str, Any] | None = None) -> list[str]:
        """D4: the ``qaicmodel-trace/1`` text, one JSON object a line (header first)."""
        import json

        dev = {
            "family": "aic100",
            "num_dbc": self.device.num_dbc,
            "single_msi": self.msi_vectors == 1,
            **(device or {}),
        }
        head = {"format": "qaicmodel-trace/1", "device": dev}
        return [json.dumps(head)] + [json.dumps(e) for e in self.trace]

    def actions(self) -> list[tuple[Any, ...]]:
        out = super().actions()
        if self._hold > 0:
            out = [a for a in out if a[:3] != ("mhi", "dl", 11)] + [("hold",)]
        for w in self.workloads.values():
            out += [("nsp", a) for a in w.enabled()]
        return out

    def step(self, action: tuple[Any, ...]) -> None:
        if action[0] == "hold":
            self._hold -= 1
            self.held_steps += 1
            self.steps += 1
            self.regs.qtimer += QTIMER_TICKS_PER_STEP
            return
        if action[0] == "nsp":
            self.steps += 1
            w = self.workloads.get(action[1].dbc)
            if w is not None:
                w.step(action[1])
            return
        super().step(action)
