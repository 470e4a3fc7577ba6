"""``python -m proofs [-q] [NAME ...]``: run the proofs, print each result and a summary.

Exit status 0 when every proof is PROVED, 1 when any is not, 2 on a bad
argument (one line, like the qaicmodel CLI).
"""

from __future__ import annotations

import argparse
import sys
import time

from proofs import MODULES, load
from qaicmodel.errors import QaicModelError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m proofs", description=__doc__)
    ap.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"proofs to run (default: all): {', '.join(MODULES)}",
    )
    ap.add_argument(
        "-q", "--quiet", action="store_true", help="one line per proof instead of one per claim"
    )
    args = ap.parse_args(argv)
    try:
        mods = [load(n) for n in (args.names or MODULES)]
    except QaicModelError as e:
        print(f"python -m proofs: {e.one_line()}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    proved = failed = 0
    for mod in mods:
        res = mod.run()
        print(res.report().splitlines()[0] if args.quiet else res.report(), flush=True)
        if res.proved:
            proved += 1
        else:
            failed += 1
    print(f"{proved} proved, {failed} failed ({time.perf_counter() - t0:.1f} s)")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
