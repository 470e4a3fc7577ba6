"""C8: the control messages of a trace (``nnc_tx``/``nnc_rx``, ``ssr_rx``/``ssr_tx``),
decoded and checked for the driver's sequence numbers; a mixin of :class:`~.checker.Checker`."""

from __future__ import annotations

from typing import Any

from qaicmodel.oracle.trace import Event

__all__ = ["ControlMessages"]


class ControlMessages:
    """The NNC and SSR events (C8).  The checker supplies ``_violate`` and the state below."""

    num_dbc: int
    nnc_last_seq: int | None
    nnc_outstanding: set[int]

    def _violate(
        self,
        ev: Event,
        rule: str,
        message: str,
        state: dict[str, Any],
        source: str | None = None,
        c: Any = None,
    ) -> None:
        raise NotImplementedError

    def ev_nnc(self, ev: Event) -> None:
        from qaicmodel.spec.control import nnc

        assert ev.data is not None
        tx = ev.ev == "nnc_tx"
        who = "HOST" if tx else "DEV"
        p = nnc.parse(ev.data, "h2d" if tx else "d2h")
        if p.violations:
            v = p.violations[0]
            self._violate(
                ev,
                f"{who}-{v.rule}",
                f"{'sent' if tx else 'received'} NNC message: {v.message} (byte {v.offset})",
                {"size": len(ev.data)},
                "control-path.md §1 (qaicmodel.spec.control.nnc)",
            )
        seq = p.header.get("sequence_number")
        if seq is None:
            return
        if tx:
            if self.nnc_last_seq is not None and not nnc.seq_follows(self.nnc_last_seq, seq):
                self._violate(
                    ev,
                    "HOST-NNC-SEQ",
                    f"sequence number {seq} after {self.nnc_last_seq}; the driver's numbers rise",
                    {"last_sequence_number": self.nnc_last_seq},
                )
            self.nnc_last_seq = seq
            self.nnc_outstanding.add(seq)
        else:
            if seq not in self.nnc_outstanding:
                self._violate(
                    ev,
                    "DEV-NNC-UNMATCHED",
                    f"response with sequence number {seq}, which answers no outstanding request",
                    {"outstanding": sorted(self.nnc_outstanding)[:16]},
                )
            self.nnc_outstanding.discard(seq)

    def ev_ssr(self, ev: Event) -> None:
        from qaicmodel.spec.control import ssr

        assert ev.data is not None
        _msg, viol = ssr.parse(ev.data, self.num_dbc)
        if viol:
            who = "HOST" if ev.ev == "ssr_tx" else "DEV"
            v = viol[0]
            self._violate(
                ev,
                f"{who}-{v['rule']}",
                f"SSR message: {v['message']}",
                {"size": len(ev.data)},
                "aic100.rst Subsystem Restart (qaicmodel.spec.control.ssr)",
            )
