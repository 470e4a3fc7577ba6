"""Every guest run's boundary trace and device choices, around any model board (issue #10 items 4, 7).

Rules:
  T1 :class:`Recorder` is a board (the contract of :mod:`qaicmodel.emu`) that forwards
     every call to the board it wraps and records, in the order the single-threaded
     backend makes them, the host/device boundary as ``qaicmodel-trace/1``
     (/work/shared/formats/trace.md): ``readl``/``writel`` of the four ring registers of
     each channel (BAR2, 32-bit), ``req`` for every element a REQ_TP write publishes
     (read from guest memory at that write, before it is forwarded), ``msi`` (as the
     transport gets it: single-MSI mode puts every one on vector 0), ``nnc_tx``/``nnc_rx``
     (QAIC_CONTROL 10/11) and ``ssr_tx``/``ssr_rx`` (QAIC_SSR 6/7) as whole MHI
     messages, and ``activate``/``deactivate`` as the model's Device emits them; a SoC
     reset (the Device's ``reset`` event) releases every active channel, so it is
     recorded as a ``mark`` and one ``deactivate`` per channel that was active.  Not
     visible from the device side: ``rsp``, ``irq_disable``/``irq_enable``;
  T2 it also records the **device choices**: every ``board.step(action)`` the backend's
     seeded scheduler takes, with the actions that were enabled
     (:attr:`Recorder.choices`); the backend's seeded pick (``Backend.pick``) only runs
     when more than one is enabled;
  T3 the header's ``device`` names the board's channel count, single-MSI mode, the
     driver's ``datapath_polling`` (the guest's ``qaic.datapath_polling=1``), the board's
     chosen policies and kernel, so ``qaicmodel check`` judges with the same choices;
  T4 ``QAICMODEL_UML_TRACE_DIR=DIR``: :func:`qaicmodel.emu.runner.run` wraps every model
     board in a :class:`Recorder` and writes ``DIR/run-PID-N.jsonl`` (the trace) and
     ``DIR/run-PID-N.json`` (:func:`save`: the board, the kernel arguments, the run's
     failure, the choices); a stand-in board (:mod:`qaicmodel.emu.testboard`, no device
     model) writes the ``.json`` alone with ``"board": "stub"`` (nothing to trace).  The
     guest test suite sets it for every test (tests/uml/conftest.py).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "Recorder",
    "ENV",
    "wrap",
    "save",
    "header",
    "is_model_board",
    "ring_register",
    "register_events",
    "published_requests",
]

ENV = "QAICMODEL_UML_TRACE_DIR"
DBC_BASE, DBC_STRIDE = 0x20000, 0x1000  # board.py B2
REG_NAMES = {0x0: "REQ_HP", 0x4: "REQ_TP", 0x8: "RSP_HP", 0xC: "RSP_TP"}
CONTROL, SSR = 10, 6  # MHI channels of QAIC_CONTROL and QAIC_SSR (host to device)
_COUNTER = itertools.count()


def is_model_board(board: Any) -> bool:
    """A board with the model's device behind it (not a transport stand-in)."""
    return hasattr(board, "mhi") and hasattr(board, "device") and hasattr(board, "services")


def ring_register(off: int, size: int, num_dbc: int) -> tuple[int, str] | None:
    """(dbc, register name) of a 32-bit BAR2 access to one of a channel's four ring
    registers, else None (T1)."""
    rel = off - DBC_BASE
    if size != 4 or rel < 0 or rel >= DBC_STRIDE * num_dbc:
        return None
    name = REG_NAMES.get(rel % DBC_STRIDE)
    return None if name is None else (rel // DBC_STRIDE, name)


def register_events(ev: str, off: int, size: int, val: int, num_dbc: int) -> list[dict[str, Any]]:
    """The ``readl``/``writel`` trace event of a ring-register access (none for others)."""
    r = ring_register(off, size, num_dbc)
    if r is None:
        return []
    return [{"ev": ev, "dbc": r[0], "reg": r[1], "val": val & 0xFFFFFFFF}]


def published_requests(
    device: Any, mem: Any, off: int, size: int, val: int
) -> list[dict[str, Any]]:
    """The ``req`` events of the elements a REQ_TP write of ``val`` publishes, as guest
    memory holds them at that write (before the device sees it; T1).  Stops at an
    unmapped slot: the device records that fault itself."""
    r = ring_register(off, size, device.num_dbc)
    if r is None or r[1] != "REQ_TP":
        return []
    dbc = r[0]
    ch = device.ch[dbc]
    if not ch.active or not ch.nelem:
        return []
    out: list[dict[str, Any]] = []
    n = ch.nelem
    i, end = ch.req_tp % n, val % n
    for _ in range(n):
        if i == end:
            break
        try:
            raw = mem.read(ch.req_q + 64 * i, 64)
        except Exception:  # noqa: BLE001 - unmapped: the device records the fault
            break
        out.append({"ev": "req", "dbc": dbc, "idx": i, "hex": bytes(raw).hex()})
        i = (i + 1) % n
    return out


class Recorder:
    """T1-T2 around ``board``; every other attribute is the board's."""

    def __init__(self, board: Any) -> None:
        self.inner = board
        self.stem: Path | None = None  # T4: where this run's files go
        self.trace: list[dict[str, Any]] = []
        #: (actions enabled, the one taken, repr of the enabled list when more than one)
        self.choices: list[tuple[int, str, str]] = []
        self._active: set[int] = set()
        self._enabled: list[Any] = []
        mhi = board.mhi
        to_dev, send = mhi.on_message, mhi.send

        def on_message(ch: int, data: bytes) -> None:
            if ch in (CONTROL, SSR):
                ev = "nnc_tx" if ch == CONTROL else "ssr_tx"
                self.trace.append({"ev": ev, "hex": bytes(data).hex()})
            to_dev(ch, data)

        def to_host(ch: int, data: bytes) -> None:
            if ch in (CONTROL + 1, SSR + 1):
                ev = "nnc_rx" if ch == CONTROL + 1 else "ssr_rx"
                self.trace.append({"ev": ev, "hex": bytes(data).hex()})
            send(ch, data)

        mhi.on_message = on_message
        mhi.send = to_host
        self._observe()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    # -- the board contract -------------------------------------------------------------
    @property
    def bars(self) -> dict[int, int]:
        return dict(self.inner.bars)

    def attach(self, mem: Any, msi: Callable[[int], None]) -> None:
        def sent(vector: int) -> None:
            self.trace.append({"ev": "msi", "vector": vector})
            msi(vector)

        self.inner.attach(mem, sent)
        self._observe()  # attach builds a new Device

    def bar_read(self, bar: int, off: int, size: int) -> int:
        v = int(self.inner.bar_read(bar, off, size))
        if bar == 2:
            self.trace += register_events("readl", off, size, v, self.inner.device.num_dbc)
        return v

    def bar_write(self, bar: int, off: int, size: int, value: int) -> None:
        if bar == 2:
            dev = self.inner.device
            self.trace += published_requests(dev, self.inner.mem, off, size, value)
            self.trace += register_events("writel", off, size, value, dev.num_dbc)
        self.inner.bar_write(bar, off, size, value)

    def bar_memset(self, bar: int, off: int, size: int, byte: int) -> None:
        self.inner.bar_memset(bar, off, size, byte)

    def actions(self) -> list[tuple[Any, ...]]:
        acts = list(self.inner.actions())
        self._enabled = acts
        return acts

    def step(self, action: tuple[Any, ...]) -> None:
        n = len(self._enabled)
        self.choices.append((n, _action_name(action), repr(self._enabled) if n > 1 else ""))
        self.inner.step(action)

    @property
    def violations(self) -> Any:
        return self.inner.violations

    # -- recording ----------------------------------------------------------------------
    def _observe(self) -> None:
        dev = self.inner.device
        if self._event not in dev.observers:
            dev.observers.append(self._event)

    def _event(self, ev: tuple[Any, ...]) -> None:
        kind = ev[0]
        if kind == "activate":
            dbc, req_q, rsp_q, nelem = ev[1:5]
            self._active.add(dbc)
            self.trace.append(
                {"ev": "activate", "dbc": dbc, "nelem": nelem, "req_q": req_q, "rsp_q": rsp_q}
            )
        elif kind == "deactivate":
            self._active.discard(ev[1])
            self.trace.append({"ev": "deactivate", "dbc": ev[1]})
        elif kind == "reset":
            self.trace.append({"ev": "mark", "text": "SoC reset: every channel is released"})
            for dbc in sorted(self._active):
                self.trace.append({"ev": "deactivate", "dbc": dbc})
            self._active.clear()

    # -- output -------------------------------------------------------------------------
    def trace_lines(self, extra_args: Sequence[str] = ()) -> list[str]:
        head = {"format": "qaicmodel-trace/1", "device": header(self.inner, extra_args)}
        return [json.dumps(head)] + [json.dumps(e) for e in self.trace]


def _action_name(action: tuple[Any, ...]) -> str:
    """A stable text for a scheduler action (NSP actions are records)."""
    return repr(action)


def header(board: Any, extra_args: Sequence[str] = ()) -> dict[str, Any]:
    """T3: the trace header's ``device`` object."""
    from qaicmodel.spec.host import kernels

    dev: dict[str, Any] = {
        "family": "aic100",
        "num_dbc": board.device.num_dbc,
        "single_msi": getattr(board, "msi_vectors", 1) == 1,
    }
    if "qaic.datapath_polling=1" in extra_args:
        dev["datapath_polling"] = True
    chosen = dict(getattr(board.policies, "chosen", {}) or {})
    if chosen:
        dev["policies"] = chosen
    if getattr(board, "kernel", None) in kernels.CHOICES:
        dev["kernel"] = board.kernel
    return dev


def wrap(board: Any, directory: str | os.PathLike[str] | None = None) -> Any:
    """T4: a :class:`Recorder` around a model board; any other board as it is.  With
    ``directory``, the run is announced there (``run-PID-N.started``) before the guest
    starts, so a run that never reached :func:`save` is seen as a missing trace."""
    rec = (
        board if isinstance(board, Recorder) else Recorder(board) if is_model_board(board) else None
    )
    if rec is None:
        return board
    if directory is not None and rec.stem is None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        rec.stem = d / f"run-{os.getpid()}-{next(_COUNTER)}"
        rec.stem.with_suffix(".started").write_text(type(rec.inner).__name__ + "\n")
    return rec


def save(
    board: Any,
    directory: str | os.PathLike[str],
    *,
    extra_args: Sequence[str] = (),
    failure: str | None = None,
    seed: int = 0,
) -> Path:
    """T4: write this run's trace and its description; the description's path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    stem = getattr(board, "stem", None) if isinstance(board, Recorder) else None
    if stem is None:
        stem = d / f"run-{os.getpid()}-{next(_COUNTER)}"
    meta: dict[str, Any] = {
        "board": type(getattr(board, "inner", board)).__name__,
        "extra_args": list(extra_args),
        "failure": failure,
        "seed": seed,
    }
    if isinstance(board, Recorder):
        lines = board.trace_lines(extra_args)
        stem.with_suffix(".jsonl").write_text("\n".join(lines) + "\n")
        meta.update(trace=stem.with_suffix(".jsonl").name, events=len(lines) - 1)
        meta["steps"] = len(board.choices)
        meta["choice_points"] = sum(1 for c in board.choices if c[0] > 1)
    else:
        meta["board"] = "stub"
    path = stem.with_suffix(".json")
    path.write_text(json.dumps(meta))
    return path
