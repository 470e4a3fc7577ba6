"""``qaicmodel bench --check`` (qaicmodel/oracle/check/bench.py): the generated traces conform,
the report has its figures; no timing is asserted (figures come from the command)."""

from __future__ import annotations

from qaicmodel.oracle.check import bench as cb
from qaicmodel.oracle.check import check
from qaicmodel.oracle.trace import parse_jsonl


def test_generated_traces_conform() -> None:
    for regs_only in (False, True):
        text = b"\n".join(cb.synthetic(3000, registers_only=regs_only)).decode() + "\n"
        r = check(parse_jsonl(text))
        assert r.exit == 0, r.text()
        assert ("req" in parse_jsonl(text).kinds()) is not regs_only


def test_measure_and_memory_report_shape() -> None:
    m = cb.measure(list(cb.synthetic(1500)), reps=1)
    assert m["verdict"] == "conforming" and m["events"] >= 1500 and m["over_json"] > 0
    mem = cb.memory(1000, registers_only=True)
    assert mem["verdict"] == "conforming" and mem["peak_rss_kib"] > 0
    rep = {
        "recorded_15k": m,
        "synthetic_full": m,
        "synthetic_registers": m,
        "memory": {"1000": mem},
        "targets": {
            **cb.TARGETS,
            "recorded_s_met": True,
            "full_over_json_met": True,
            "registers_over_json_met": False,
        },
    }
    txt = cb.text(rep)
    assert "MISSED" in txt and "json.loads" in txt and "peak RSS" in txt
