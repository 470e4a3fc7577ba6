"""``qaicmodel fuzz --replay``: re-run every saved failure (cli.py F3).

Rules:
  R1  A replay file (``qaicmodel-fuzz-failure/1``) names its property, the targets and
      parameters of its campaign and the input; the property's check runs on the input
      and the result is "still fails" (an exception the property does not allow) or
      "passes now".  A file that is not one is a FormatError (exit 2).
  R2  Then, for the properties of the given targets (else of the targets the files
      name), Hypothesis replays what the database holds (reuse phase only, no generation);
      every input that still fails is written as a replay file and reported.
"""

from __future__ import annotations

import json
import unittest
from pathlib import Path
from typing import Any

from qaicmodel.errors import FormatError, QaicModelError

__all__ = ["replay", "run_one"]


def _load(path: Path) -> dict[str, Any]:
    from qaicmodel.testing.fuzz.campaign import FAILURE_FORMAT

    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise FormatError(f"cannot read replay file: {e}", where=str(path)) from None
    if not isinstance(rec, dict) or rec.get("format") != FAILURE_FORMAT:
        raise FormatError(f"not a {FAILURE_FORMAT} file", where=str(path))
    for k in ("property", "input", "targets", "params"):
        if k not in rec:
            raise FormatError(f"missing {k!r}", where=str(path))
    return rec


def run_one(prop: Any, x: Any) -> str | None:
    """R1: None if the check holds, else the error line."""
    try:
        prop.check(x)
    except QaicModelError as e:
        return None if prop.allow_errors else f"{type(e).__name__}: {e}"
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def replay(out: Path, db: str, targets: list[str], *, db_given: bool) -> dict[str, Any]:
    from qaicmodel.testing.fuzz.targets import build, decode_input

    rows: list[dict[str, Any]] = []
    named: list[str] = list(targets)
    params: dict[str, Any] = {"out": str(out)}
    files = sorted(out.glob("*.json")) if out.is_dir() else []
    for path in files:
        rec = _load(path)
        params = {**rec["params"], **params}
        props = {p.name: p for p in build(rec["targets"], rec["params"])}
        if rec["property"] not in props:
            raise FormatError(f"unknown property {rec['property']!r}", where=str(path))
        err = run_one(props[rec["property"]], decode_input(rec["input"]))
        rows.append({"source": str(path), "property": rec["property"], "still_fails": err})
        named += [t for t in rec["targets"] if t not in named]
        print(
            f"{'STILL FAILS' if err else 'passes now'}: {rec['property']} ({path}){': ' + err if err else ''}"
        )
    if db_given or Path(db).is_dir():
        rows += _from_database(db, named or ["decoders"], params, out)
    still = [r for r in rows if r["still_fails"]]
    print(f"replay: {len(rows)} saved failures re-run, {len(still)} still fail")
    return {"format": "qaicmodel-fuzz-replay/1", "rows": rows, "still_failing": len(still)}


def _from_database(
    db: str, targets: list[str], params: dict[str, Any], out: Path
) -> list[dict[str, Any]]:
    """R2."""
    from hypothesis import Phase, find, settings
    from hypothesis.errors import NoSuchExample

    from qaicmodel.testing.fuzz.campaign import (
        FAILURE_FORMAT,
        check_database,
        db_key,
        failure_path,
        open_database,
        write_failure,
    )
    from qaicmodel.testing.fuzz.targets import build, encode_input

    check_database(db)
    database = open_database(db)
    rows = []
    for prop in build(targets, params):
        if not any(True for _ in database.fetch(db_key(prop.name))):
            continue  # nothing saved (Hypothesis would skip a reuse-only run)
        errs: list[str] = []

        def cond(x: Any, prop: Any = prop, errs: list[str] = errs) -> bool:
            err = run_one(prop, x)
            if err:
                errs.append(err)
            return err is not None

        s = settings(database=database, phases=[Phase.reuse], deadline=None, max_examples=100)
        try:
            x = find(prop.inputs, cond, settings=s, database_key=db_key(prop.name))
        except (NoSuchExample, unittest.SkipTest):
            continue
        rec: dict[str, Any] = {
            "format": FAILURE_FORMAT,
            "property": prop.name,
            "input": encode_input(x),
            "error": errs[-1],
            "traceback": "",
            "seed": None,
            "shrunk": True,
            "from_database": True,
            "targets": targets,
            "params": params,
        }
        if failure_path(out, prop.name, rec["input"]).exists():
            continue  # the replay file of this very input ran above
        path = write_failure(out, rec)
        print(f"STILL FAILS: {prop.name} (database {db}; written to {path}): {errs[-1]}")
        rows.append({"source": f"database {db}", "property": prop.name, "still_fails": errs[-1]})
    return rows
