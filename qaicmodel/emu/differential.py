"""Differential: the model's hosts against the real driver, on the same call sequence.

One scenario runs on a model host (spec or impl, :class:`~qaicmodel.scenario.runner.Runner`)
and on the real driver (:func:`~qaicmodel.scenario.linux.run_scenario_linux`); then

  X1 every step's result is compared (``ok`` or the errno name), on *every* step (a
     model run does not stop at a failed ``expect`` here), and, where both are ``ok``,
     the values a step returns that both hosts know (``dbc_id``, ``handle``, the
     ``perf_stats`` queue fields, ``read_bo``/``ddr_read`` bytes);
  X2 the request elements the device consumed, per channel in consumption order, are
     compared byte for byte, with the host-side DMA addresses *mapped*: the model's
     host and the guest's allocator place BOs at different addresses, so where a
     source or destination address differs, the first pairing of a model address
     with a guest address fixes it and every later use must agree (a bijection);
     equal addresses (device addresses) need no mapping.  The direction bits do not
     say which side is the host's (a zero-resize partial execute clears them);
  X3 each difference is one :class:`Divergence` (kind ``errno``, ``value``,
     ``element``, ``element-count``), with the step or element and both sides.
Whether a divergence is a host bug or a kernel-version difference is the reader's
judgement (the report lists them; ``qaicmodel/spec/host/kernels.py`` names the
version differences the model knows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from qaicmodel.errors import FormatError, QaicModelError
from qaicmodel.scenario.format import load
from qaicmodel.scenario.runner import Runner
from qaicmodel.spec.dbc.wire import RequestElem

__all__ = ["Divergence", "Differential", "model_side", "compare", "run_differential", "RESULT_KEYS"]

#: step -> the result keys both hosts know (X1)
RESULT_KEYS = {
    "activate": ("dbc_id",),
    "create_bo": ("handle",),
    "read_bo": ("hex",),
    "ddr_read": ("hex",),
    "perf_stats": ("stats",),
    "nsp": ("value",),
}


@attrs.frozen
class Divergence:
    kind: str
    where: str
    model: Any
    linux: Any

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def __str__(self) -> str:
        return f"{self.kind} at {self.where}: model {self.model!r}, linux {self.linux!r}"


@attrs.define
class Differential:
    host: str
    results_model: list[dict[str, Any]]
    results_linux: list[dict[str, Any]]
    elems_model: list[tuple[int, bytes]]
    elems_linux: list[tuple[int, bytes]]
    divergences: list[Divergence]
    linux_failure: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "steps": len(self.results_model),
            "elements": [len(self.elems_model), len(self.elems_linux)],
            "linux_failure": self.linux_failure,
            "divergences": [d.as_dict() for d in self.divergences],
        }


def model_side(
    obj_or_path: Any, host_cls: type | None = None, kernel: str | None = None
) -> tuple[list[dict[str, Any]], list[tuple[int, bytes]]]:
    """Every step on a model host (X1) and the consumed request elements (X2)."""
    sc = load(obj_or_path)
    cfg = sc.device if kernel is None else attrs.evolve(sc.device, kernel=kernel)
    r = Runner(cfg, host_cls=host_cls)
    elems: list[tuple[int, bytes]] = []

    def seen(ev: tuple[Any, ...]) -> None:
        if ev[0] == "consume":
            elems.append((ev[1], ev[4].pack()))

    r.device.observers.append(seen)
    out = []
    for st in sc.steps:
        try:
            out.append(r.step(st))
        except (FormatError, QaicModelError) as e:
            out.append({"step": st.index, "op": st.op, "result": f"error: {e}"})
    return out, elems


def compare(
    res_m: list[dict[str, Any]],
    res_l: list[dict[str, Any]],
    el_m: list[tuple[int, bytes]],
    el_l: list[tuple[int, bytes]],
    map_dbc: Callable[[int], int] | None = None,
) -> list[Divergence]:
    out: list[Divergence] = []
    by_step = {r["step"]: r for r in res_l}
    for rm in res_m:
        rl = by_step.get(rm["step"])
        where = f"step {rm['step']} ({rm['op']})"
        if rl is None:
            out.append(Divergence("errno", where, rm["result"], "no result"))
            continue
        if rm["result"] != rl["result"]:
            out.append(Divergence("errno", where, rm["result"], rl["result"]))
            continue
        if rm["result"] != "ok":
            continue
        for k in RESULT_KEYS.get(rm["op"], ()):
            if rm.get(k) != rl.get(k):
                out.append(Divergence("value", f"{where}.{k}", rm.get(k), rl.get(k)))
    # X2: per channel, in consumption order
    fwd: dict[int, int] = {}
    back: dict[int, int] = {}
    chans = sorted({d for d, _ in el_m} | {d for d, _ in el_l})
    for dbc in chans:
        a = [raw for d, raw in el_m if d == dbc]
        b = [raw for d, raw in el_l if d == dbc]
        if len(a) != len(b):
            out.append(Divergence("element-count", f"dbc {dbc}", len(a), len(b)))
        for n, (ra, rb) in enumerate(zip(a, b, strict=False)):
            ea, eb = RequestElem.unpack(ra), RequestElem.unpack(rb)
            where = f"dbc {dbc} element {n}"
            for field in ("pcie_dma_source_addr", "pcie_dma_dest_addr"):
                am, al = getattr(ea, field), getattr(eb, field)
                if am == al and am not in fwd and al not in back:
                    continue  # a device address (the same on both sides)
                if fwd.setdefault(am, al) != al or back.setdefault(al, am) != am:
                    out.append(
                        Divergence(
                            "element",
                            f"{where}.{field}",
                            f"0x{am:x} (mapped to 0x{fwd[am]:x})",
                            f"0x{al:x} (mapped from 0x{back[al]:x})",
                        )
                    )
                eb = attrs.evolve(eb, **{field: am})
            if ea != eb:
                diffs = {
                    f.name: (getattr(ea, f.name), getattr(eb, f.name))
                    for f in attrs.fields(RequestElem)
                    if getattr(ea, f.name) != getattr(eb, f.name)
                }
                out.append(
                    Divergence(
                        "element",
                        where,
                        {k2: hex(v[0]) for k2, v in diffs.items()},
                        {k2: hex(v[1]) for k2, v in diffs.items()},
                    )
                )
    return out


def run_differential(
    obj_or_path: Any,
    *,
    host: str = "spec",
    timeout: float = 120.0,
    kernel: str | None = None,
    console: Any = None,
    datapath: str = "polling",
    linux_policies: list[str] | None = None,
) -> Differential:
    """X1-X3 for one scenario: model host ``host`` (spec|impl|MODULE:CLASS) vs Linux 7.2."""
    from qaicmodel.scenario.cli import HOST_ALIASES
    from qaicmodel.scenario.linux import run_scenario_linux
    from qaicmodel.spec.host.protocol import load_host

    cls = load_host(HOST_ALIASES.get(host, host))
    res_m, el_m = model_side(obj_or_path, cls, kernel)
    lx = run_scenario_linux(
        obj_or_path,
        kernel=kernel,
        timeout=timeout,
        console=console,
        datapath=datapath,
        policies=linux_policies,
    )
    el_l = [(d, raw) for d, _slot, raw in lx.board.consumed]
    divs = compare(res_m, lx.report.results, el_m, el_l)
    return Differential(
        host=host,
        results_model=res_m,
        results_linux=lx.report.results,
        elems_model=el_m,
        elems_linux=el_l,
        divergences=divs,
        linux_failure=lx.run.failure(),
    )
