"""The ``qaicmodel`` command line.

Every subcommand lives in the module that owns its concept and is imported
lazily, so ``qaicmodel decode`` does not pay for numpy-heavy hosts.  Any
:class:`~qaicmodel.errors.QaicModelError` becomes exit status 2 and one line on
stderr; so does an argument the parser rejects.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from qaicmodel.errors import QaicModelError

__all__ = ["main", "DECODERS", "emit"]

#: ``qaicmodel decode KIND``: kind -> "module:function"; the function takes the
#: raw bytes and returns a JSON-able dict (see :func:`qaicmodel.spec.dbc.describe.describe_request`).
DECODERS: dict[str, str] = {
    "request": "qaicmodel.spec.dbc.describe:describe_request",
    "response": "qaicmodel.spec.dbc.describe:describe_response",
    "sem": "qaicmodel.spec.dbc.describe:describe_sem",
    "nnc": "qaicmodel.spec.control.nnc:describe",
    "ssr": "qaicmodel.spec.control.ssr:describe",
    "ras": "qaicmodel.spec.control.ras:describe",
    "sahara": "qaicmodel.spec.control.boot:describe",
}

#: subcommand -> (module:function that adds its arguments, module:function that runs it)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "decode": (
        "Decode a FIFO element, semaphore word or control message from hex",
        "qaicmodel.cli:_decode_args",
        "qaicmodel.cli:_decode_run",
    ),
    "ambiguities": (
        "List the ambiguity registry (policies)",
        "qaicmodel.cli:_amb_args",
        "qaicmodel.cli:_amb_run",
    ),
    "scenario": (
        "Run a scenario file (shared/formats/scenario.md)",
        "qaicmodel.scenario.cli:add_args",
        "qaicmodel.scenario.cli:run_cli",
    ),
    "conform": (
        "Run a host against the device model under random interleavings",
        "qaicmodel.oracle.conform_cli:add_args",
        "qaicmodel.oracle.conform_cli:run_cli",
    ),
    "bench": (
        "Benchmark the host DMA path (impl vs spec vs a plain copy)",
        "qaicmodel.bench:add_args",
        "qaicmodel.bench:run_cli",
    ),
    "check": (
        "Check a host/device trace for conformance",
        "qaicmodel.oracle.check.cli:add_args",
        "qaicmodel.oracle.check.cli:run_cli",
    ),
    "uml": (
        "Build a User-Mode Linux kernel, or boot it against the virtual AIC100",
        "qaicmodel.cli:_uml_args",
        "qaicmodel.cli:_uml_run",
    ),
    "hunt": (
        "Hunt ambiguities: shortest scenarios whose outcome differs between policy readings",
        "qaicmodel.oracle.hunt.cli:add_args",
        "qaicmodel.oracle.hunt.cli:run_cli",
    ),
    "fuzz": (
        "Fuzzing campaigns: decoders, a host under conform, the real driver (shared database)",
        "qaicmodel.testing.fuzz.cli:add_args",
        "qaicmodel.testing.fuzz.cli:run_cli",
    ),
}


def _load(ref: str) -> Callable[..., Any]:
    mod, _, fn = ref.partition(":")
    try:
        module = importlib.import_module(mod)
    except ModuleNotFoundError as e:
        if e.name == mod:
            from qaicmodel.errors import NotModelledError

            raise NotModelledError(
                f"{mod} is missing from this installation (reinstall qaicmodel)"
            ) from None
        raise
    func: Callable[..., Any] = getattr(module, fn)
    return func


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: usage error: {message} (try --help)\n")
        raise SystemExit(2)


def emit(obj: Any, as_json: bool, text: Callable[[Any], str] | None = None) -> None:
    """Print ``obj`` as JSON or as readable text."""
    if as_json:
        print(json.dumps(obj, indent=2, sort_keys=False))
    else:
        print(text(obj) if text is not None else _as_text(obj))


def _as_text(obj: Any, indent: int = 0) -> str:
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(_as_text(v, indent + 1))
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                sub = _as_text(v, indent + 1).lstrip()
                lines.append(f"{pad}- {sub}")
            else:
                lines.append(f"{pad}- {_scalar(v)}")
    else:
        lines.append(f"{pad}{_scalar(obj)}")
    return "\n".join(lines)


def _scalar(v: Any) -> str:
    if v == [] or v == {}:
        return "(none)"
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    return str(v)


# -- decode -------------------------------------------------------------------


def parse_hex(text: str) -> bytes:
    """Hex digits, optionally with 0x, spaces, colons or underscores between bytes."""
    from qaicmodel.errors import DecodeError

    cleaned = text.strip()
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    cleaned = "".join(ch for ch in cleaned if ch not in " \t\n:_-")
    if not cleaned:
        raise DecodeError("no hex digits given", rule="HEX")
    bad = next((i for i, ch in enumerate(cleaned) if ch not in "0123456789abcdefABCDEF"), None)
    if bad is not None:
        raise DecodeError(f"{cleaned[bad]!r} is not a hex digit (character {bad})", rule="HEX")
    if len(cleaned) % 2:
        raise DecodeError(f"odd number of hex digits ({len(cleaned)})", rule="HEX")
    return bytes.fromhex(cleaned)


def _decode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=sorted(DECODERS), help="what the bytes are")
    p.add_argument("hex", help="the bytes, as hex (little-endian wire order)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _decode_run(args: argparse.Namespace) -> int:
    data = parse_hex(args.hex)
    result = _load(DECODERS[args.kind])(data)
    from qaicmodel.spec.dbc.describe import human  # text: addresses in hex

    emit(result, args.json, lambda r: _as_text(human(r)))
    return 0


# -- ambiguities --------------------------------------------------------------


def _amb_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--sentence",
        metavar="TEXT",
        help="the rules and policies of every aic100.rst sentence containing TEXT "
        "(docs/traceability.md)",
    )


def _amb_run(args: argparse.Namespace) -> int:
    if args.sentence is not None:
        from qaicmodel.spec.traceability import sentence_cli

        return sentence_cli(args.sentence, args.json)
    from qaicmodel.spec.policies.listing import listing_json, listing_text

    if args.json:  # one list per category (spec/policies/listing.py)
        emit(listing_json(), True)
    else:
        print(listing_text())
    return 0


# -- uml ----------------------------------------------------------------------

#: ``qaicmodel uml SUB``: sub -> (help, module:function adding its arguments, module:function running it)
UML_COMMANDS: dict[str, tuple[str, str, str]] = {
    "build": (
        "Build (or find) the UML kernel the real driver runs in",
        "qaicmodel.emu.kbuild:add_args",
        "qaicmodel.emu.kbuild:run_cli",
    ),
    "run": (
        "Boot the UML guest against the device model and run a command in it",
        "qaicmodel.emu.runcli:add_args",
        "qaicmodel.emu.runcli:run_cli",
    ),
    "policies": (
        "Every data-path policy alternative against the real driver: a table",
        "qaicmodel.emu.policy_table:add_args",
        "qaicmodel.emu.policy_table:run_cli",
    ),
    "faults": (
        "Named, seeded device faults against the real driver: what it did, per fault",
        "qaicmodel.emu.faultrun:add_args",
        "qaicmodel.emu.faultrun:run_cli",
    ),
    "determinism": (
        "The same seeded workload twice on the real driver: device choices and traces compared",
        "qaicmodel.emu.determinism:add_args",
        "qaicmodel.emu.determinism:run_cli",
    ),
}


def _uml_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="uml_command", metavar="SUBCOMMAND", parser_class=_Parser)
    for name, (helptext, add_ref, _run) in UML_COMMANDS.items():
        _load(add_ref)(sub.add_parser(name, help=helptext, description=helptext))


def _uml_run(args: argparse.Namespace) -> int:
    if not getattr(args, "uml_command", None):
        sys.stderr.write("qaicmodel: uml: give a subcommand: " + ", ".join(UML_COMMANDS) + "\n")
        return 2
    try:
        return int(_load(UML_COMMANDS[args.uml_command][2])(args) or 0)
    except QaicModelError as e:
        if e.kind == "uml":
            raise
        from qaicmodel.errors import UmlError

        raise UmlError(e.one_line()) from None


# -- main ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qaicmodel", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (helptext, add_ref, _run) in COMMANDS.items():
        p = sub.add_parser(name, help=helptext, description=helptext)
        try:
            _load(add_ref)(p)
        except QaicModelError:
            p.set_defaults(_missing=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 2
        return int(_load(COMMANDS[args.command][2])(args) or 0)
    except QaicModelError as e:
        sys.stderr.write(f"qaicmodel: {e.one_line()}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("qaicmodel: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
