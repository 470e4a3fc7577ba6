"""A fuzzing campaign: N worker processes, one shared Hypothesis example database.

Rules (the package docstring's Z1-Z4 hold throughout):
  C1  The database is ``--db DIR`` (Hypothesis' DirectoryBasedExampleDatabase; default
      ``.qaicmodel-fuzz-db``) or ``--db redis://HOST:PORT[/N]`` (Hypothesis'
      RedisExampleDatabase, the ``fuzz`` extra's redis client); each property has its own
      key, ``qaicmodel-fuzz:`` + its name.  Redis is reached (PING) before any worker starts.
  C2  Worker ``w`` runs chunks: chunk ``c`` fuzzes property ``(w + c) mod k`` of the k
      that are still live for it, through a seeded ``@given`` run like
      :func:`hypothesis.find` (phases explicit, reuse, generate, shrink; no deadline,
      health checks off; seed Z3).  A property that failed is dropped by that worker; the
      campaign ends when the budget (``--budget`` seconds, or ``--examples`` per worker) is
      spent or nothing is live.  The budget ends a run mid-chunk (a BaseException
      Hypothesis does not catch); a chunk that found a failure may shrink it for
      ``SHRINK_GRACE`` seconds more.
  C3  Z2 in detail: the first failing input of a chunk is written as a replay file from
      inside the check, before Hypothesis sees the exception (and saves the input to the
      database); the shrunk input is written when ``find`` returns, then the unshrunk file
      is removed, then the parent is told.  Files are ``OUT/<property>-<sha1[:12]>.json``
      (``qaicmodel-fuzz-failure/1``), written to a temporary name, fsync'd and renamed.
  C4  Workers die with the campaign: PR_SET_PDEATHSIG(SIGKILL) (Linux), and each checks
      that its parent is alive between examples.  The parent terminates and then kills
      any worker still running when it leaves, whatever happens.
  C5  Progress goes to stderr: a line rewritten in place on a terminal, a plain line every
      2 s otherwise -- examples/s per worker, behaviours (distinct outcome strings of the
      checks, across workers), failures.  Failures and the summary go to stdout.
  C6  Before forking, the parent runs every cheap check once (their lazy imports) and draws
      from every property's strategy (Hypothesis reads the constants of every loaded module
      on its first draw, and ``st.text`` builds its character tables: seconds of CPU); the
      workers inherit all of it and start fuzzing at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from qaicmodel.errors import ArgumentError, QaicModelError

__all__ = [
    "Config",
    "run_campaign",
    "open_database",
    "check_database",
    "write_failure",
    "FAILURE_FORMAT",
    "DEFAULT_DB",
    "DEFAULT_OUT",
]

FAILURE_FORMAT = "qaicmodel-fuzz-failure/1"
DEFAULT_DB = ".qaicmodel-fuzz-db"
DEFAULT_OUT = "fuzz-failures"
KEY_PREFIX = b"qaicmodel-fuzz:"


@attrs.frozen
class Config:
    """What a campaign runs (the parsed command line)."""

    targets: tuple[str, ...]
    jobs: int
    db: str
    out: str
    budget: float
    seed: int
    examples: int | None = None
    params: dict[str, Any] = attrs.field(factory=dict)
    quiet: bool = False
    #: bench (qaicmodel/testing/fuzz/bench.py): every worker runs the properties in the same
    #: order (not staggered by worker) and chunks of this many examples
    stagger: bool = True
    chunk: int | None = None


# -- the database (C1) -------------------------------------------------------------


def _redis_addr(spec: str) -> tuple[str, int, int]:
    rest = spec[len("redis://") :]
    hostport, _, dbn = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    try:
        return host or "127.0.0.1", int(port), int(dbn or 0)
    except ValueError:
        raise ArgumentError(f"--db wants redis://HOST:PORT[/N], got {spec!r}") from None


def open_database(spec: str) -> Any:
    """C1: the Hypothesis example database ``spec`` names."""
    if spec.startswith("redis://"):
        host, port, dbn = _redis_addr(spec)
        try:
            import redis
        except ImportError:
            raise ArgumentError(
                "--db redis://... needs the redis client: pip install 'qaicmodel[fuzz]'"
            ) from None
        from hypothesis.extra.redis import RedisExampleDatabase

        client = redis.Redis(host=host, port=port, db=dbn, socket_timeout=10)
        return RedisExampleDatabase(client)
    from hypothesis.database import DirectoryBasedExampleDatabase

    return DirectoryBasedExampleDatabase(spec)


def check_database(spec: str) -> None:
    """C1: fail early, with one line, when the database cannot be used."""
    if spec.startswith("redis://"):
        db = open_database(spec)
        try:
            db.redis.ping()
        except Exception as e:  # the client's connection errors
            raise ArgumentError(
                f"--db {spec}: cannot reach redis ({type(e).__name__}: {e})"
            ) from None
        return
    p = Path(spec)
    if p.exists() and not p.is_dir():
        raise ArgumentError(f"--db {spec} exists and is not a directory")


def db_key(prop: str) -> bytes:
    return KEY_PREFIX + prop.encode()


# -- failures (C3) ---------------------------------------------------------------


def failure_path(out: Path, prop: str, inp: dict[str, Any]) -> Path:
    digest = hashlib.sha1(json.dumps(inp, sort_keys=True).encode()).hexdigest()[:12]
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in prop)
    return out / f"{safe}-{digest}.json"


def write_failure(out: Path, record: dict[str, Any]) -> Path:
    """C3: atomically, durably."""
    out.mkdir(parents=True, exist_ok=True)
    path = failure_path(out, record["property"], record["input"])
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".tmp-", suffix=".part")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        dfd = os.open(out, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path


def _error_text(e: BaseException) -> tuple[str, str]:
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-6:])
    return f"{type(e).__name__}: {e}", tb


# -- the worker (C2, C3, C4) -------------------------------------------------------


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def chunk_seed(seed: int, prop: str, worker: int, chunk: int) -> int:
    """Z3."""
    h = hashlib.sha256(f"{seed}/{prop}/{worker}/{chunk}".encode()).digest()
    return int.from_bytes(h[:8], "little")


class _Found(Exception):
    pass


class _Budget(BaseException):
    """The budget is spent: not an Exception, so Hypothesis lets it through unshrunk."""


#: seconds past the budget a chunk that found a failure may go on shrinking it
SHRINK_GRACE = 10.0


def _search(inputs: Any, cond: Callable[[Any], bool], s: Any, hseed: int, key: bytes) -> Any:
    """:func:`hypothesis.find`, but seeded *and* with the database (C2).

    ``find(random=...)`` seeds through ``@seed``, which turns the database off; here
    ``@settings`` goes on top of ``@seed`` so the database stays, and the key is set the
    way ``find`` sets it.
    """
    from hypothesis import given, seed
    from hypothesis.errors import NoSuchExample

    last: list[Any] = []

    @s
    @seed(hseed)
    @given(inputs)
    def test(x: Any) -> None:
        if cond(x):
            last[:] = [x]
            raise _Found

    test._hypothesis_internal_database_key = key
    try:
        test()
    except _Found:
        return last[0]
    raise NoSuchExample("no failure")


class _Worker:
    """One worker process's state (C2-C4)."""

    def __init__(self, wid: int, cfg: Config, start: float, q: Any, parent: int) -> None:
        self.wid, self.cfg, self.q, self.parent = wid, cfg, q, parent
        self.deadline = start + cfg.budget
        self.out = Path(cfg.out)
        self.n = 0
        self.first: float | None = None
        self.cpu_first = 0.0
        self.last_sent = time.monotonic()
        self.seen: set[str] = set()
        self.fresh: list[str] = []
        # the current chunk
        self.prop: Any = None
        self.chunk = 0
        self.hseed = 0
        self.known = 0
        self.calls = 0
        self.found: dict[str, Any] = {}

    def elapsed(self) -> float:
        return time.monotonic() - self.first if self.first is not None else 0.0

    def cpu(self) -> float:
        return time.process_time() - self.cpu_first if self.first is not None else 0.0

    def send_progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_sent >= 0.5:
            self.last_sent = now
            msg = ("progress", self.wid, self.n, self.elapsed(), self.cpu(), list(self.fresh))
            self.q.put(msg)
            self.fresh.clear()

    def record(self, x: Any, e: BaseException, shrunk: bool) -> dict[str, Any]:
        from qaicmodel.testing.fuzz.targets import encode_input

        err, tb = _error_text(e)
        return {
            "format": FAILURE_FORMAT,
            "property": self.prop.name,
            "input": encode_input(x),
            "error": err,
            "traceback": tb,
            "seed": self.cfg.seed,
            "worker": self.wid,
            "chunk": self.chunk,
            "hypothesis_seed": self.hseed,
            "shrunk": shrunk,
            "from_database": self.found.get("call", self.calls) <= self.known,
            "targets": list(self.cfg.targets),
            "params": self.cfg.params,
        }

    def cond(self, x: Any) -> bool:
        """The search condition: True when the check fails (Z1, C3)."""
        from qaicmodel.testing.fuzz.targets import behaviour_of_error

        if os.getppid() != self.parent:
            os._exit(3)  # C4: the campaign is gone
        now = time.monotonic()
        if now >= self.deadline + (SHRINK_GRACE if self.found else 0.0):
            raise _Budget  # ends the Hypothesis run at once (a BaseException)
        if self.cfg.examples is not None and self.n >= self.cfg.examples and not self.found:
            raise _Budget
        self.calls += 1
        self.n += 1
        if self.first is None:
            self.first, self.cpu_first = time.monotonic(), time.process_time()
        try:
            sig = self.prop.check(x)
        except QaicModelError as e:
            if not self.prop.allow_errors:
                return self.failed(x, e)
            sig = behaviour_of_error(e)
        except Exception as e:
            return self.failed(x, e)
        if sig not in self.seen:
            self.seen.add(sig)
            self.fresh.append(f"{self.prop.name} {sig}")
        self.send_progress()
        return False

    def failed(self, x: Any, e: BaseException) -> bool:
        self.found["last"] = (x, e)
        if "first_path" not in self.found:  # C3: on disk before Hypothesis saves it
            self.found["call"] = self.calls
            self.found["first_path"] = write_failure(self.out, self.record(x, e, shrunk=False))
        return True

    def run(self) -> None:
        from hypothesis import HealthCheck, Phase, Verbosity, settings
        from hypothesis.errors import NoSuchExample

        from qaicmodel.testing.fuzz.targets import build

        cfg = self.cfg
        db = open_database(cfg.db)
        live = build(list(cfg.targets), cfg.params)
        for chunk in range(10**9):
            if not live or time.monotonic() >= self.deadline:
                break
            if cfg.examples is not None and self.n >= cfg.examples:
                break
            self.prop = prop = live[((self.wid if cfg.stagger else 0) + chunk) % len(live)]
            self.chunk, self.calls, self.found = chunk, 0, {}
            self.hseed = chunk_seed(cfg.seed, prop.name, self.wid, chunk)
            key = db_key(prop.name)
            self.known = sum(1 for _ in db.fetch(key))
            phases = [Phase.explicit, Phase.reuse, Phase.generate]
            if prop.shrink:
                phases.append(Phase.shrink)
            s = settings(
                database=db,
                max_examples=cfg.chunk or prop.chunk,
                deadline=None,
                phases=phases,
                derandomize=False,
                print_blob=False,
                verbosity=Verbosity.quiet,
                suppress_health_check=list(HealthCheck),
                report_multiple_bugs=False,
            )
            try:
                x = _search(prop.inputs, self.cond, s, self.hseed, key)
            except NoSuchExample:
                continue
            except _Budget:
                if "last" not in self.found:
                    break
                x = self.found["last"][0]  # shrinking cut short: the smallest so far
            except Exception:  # e.g. Flaky: the input failed once and then passed; keep it
                if "last" not in self.found:
                    raise
                x = self.found["last"][0]
            rec = self.record(x, self.found["last"][1], shrunk=prop.shrink)
            path = write_failure(self.out, rec)
            if self.found["first_path"] != path:
                with contextlib.suppress(OSError):
                    self.found["first_path"].unlink()
            live.remove(prop)
            self.q.put(("failure", self.wid, {**rec, "file": str(path)}))
        self.send_progress(force=True)
        self.q.put(("done", self.wid, self.n, self.elapsed(), self.cpu()))


def _worker(wid: int, cfg: Config, start: float, q: Any, parent: int) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it ends us (C4)
    if os.getppid() != parent:
        return
    try:
        _Worker(wid, cfg, start, q, parent).run()
    except Exception as e:  # a bug of the campaign itself, not of a target: say so
        q.put(("crash", wid, _error_text(e)[0]))


# -- the parent (C4, C5) -----------------------------------------------------------


def rate(r: float) -> str:
    return f"{r:,.2f}" if r < 10 else f"{r:,.0f}"


@attrs.define
class _View:
    jobs: int
    tty: bool
    quiet: bool
    start: float = attrs.field(factory=time.monotonic)
    counts: dict[int, tuple[int, float, float]] = attrs.field(factory=dict)
    behaviours: set[str] = attrs.field(factory=set)
    failures: list[dict[str, Any]] = attrs.field(factory=list)
    last_plain: float = 0.0
    shown: int = 0  # behaviours at the last line

    def rates(self) -> list[float]:
        return [
            n / dt if dt > 0 else 0.0
            for n, dt, _ in (self.counts.get(w, (0, 0.0, 0.0)) for w in range(self.jobs))
        ]

    def line(self) -> str:
        per = "  ".join(f"w{w} {rate(r)} ex/s" for w, r in enumerate(self.rates()))
        new, self.shown = len(self.behaviours) - self.shown, len(self.behaviours)
        return (
            f"[{time.monotonic() - self.start:5.0f}s] {per} | behaviours {len(self.behaviours)}"
            f" (+{new} new) | failures {len(self.failures)}"
        )

    def show(self, final: bool = False) -> None:
        if self.quiet:
            return
        if not final and time.monotonic() - self.last_plain < (1.0 if self.tty else 2.0):
            return
        self.last_plain = time.monotonic()
        if self.tty:  # one line, rewritten in place (and cleared to its end)
            sys.stderr.write("\r" + self.line() + "\x1b[K" + ("\n" if final else ""))
        else:
            sys.stderr.write("progress " + self.line() + "\n")
        sys.stderr.flush()


def _warm_up(props: list[Any]) -> None:
    """C6: in the parent, before the fork, so no worker pays for it."""
    from hypothesis import HealthCheck, Phase, given, settings

    for p in props:
        if p.warm:  # the checks' lazy imports
            with contextlib.suppress(Exception):
                p.check(b"")
    for p in props:  # each strategy's first draw (e.g. st.text builds its charmap)

        @settings(
            database=None,
            max_examples=3,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),  # the slow first draw is the point
        )
        @given(p.inputs)
        def first_draw(x: Any) -> None:
            pass  # and Hypothesis reads the loaded modules' constants on its first draw

        first_draw()


def run_campaign(cfg: Config, emit: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the campaign ``cfg``; return its report (C2-C5)."""
    from qaicmodel.testing.fuzz.targets import build

    check_database(cfg.db)
    props = build(list(cfg.targets), cfg.params)
    _warm_up(props)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    start = time.monotonic()
    view = _View(cfg.jobs, sys.stderr.isatty(), cfg.quiet, start=start)
    procs = [
        ctx.Process(target=_worker, args=(w, cfg, start, q, os.getpid()), daemon=True)
        for w in range(cfg.jobs)
    ]
    done: dict[int, tuple[int, float, float]] = {}
    crashed: dict[int, str] = {}
    seen_files: set[str] = set()
    # the budget, a shrink's grace, and for slow targets one example's own time limit
    slow = any(not p.shrink for p in props)
    grace = cfg.budget + SHRINK_GRACE + 30
    grace += float(cfg.params.get("example_timeout", 300.0)) + 60 if slow else 0.0
    try:
        for p in procs:
            p.start()
        while len(done) < cfg.jobs:
            try:
                msg = q.get(timeout=0.25)
            except queue_mod.Empty:
                if time.monotonic() - start > grace or not any(p.is_alive() for p in procs):
                    break
                view.show()
                continue
            kind, wid = msg[0], msg[1]
            if kind == "progress":
                view.counts[wid] = (msg[2], msg[3], msg[4])
                view.behaviours.update(msg[5])
            elif kind == "failure":
                rec = msg[2]
                if rec["file"] not in seen_files:
                    seen_files.add(rec["file"])
                    view.failures.append(rec)
                    if view.tty and not view.quiet:
                        sys.stderr.write("\n")
                    origin = " (already in the database)" if rec["from_database"] else ""
                    emit(
                        f"FAIL {rec['property']}{origin}: {rec['error']} -- input "
                        f"{json.dumps(rec['input'])[:200]} -- replay file {rec['file']}"
                    )
                    sys.stdout.flush()
            elif kind == "crash":
                crashed[wid] = msg[2]
                done[wid] = view.counts.get(wid, (0, 0.0, 0.0))
            elif kind == "done":
                done[wid] = (msg[2], msg[3], msg[4])
                view.counts[wid] = done[wid]
            view.show()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
        q.close()
    view.show(final=True)
    per = [
        {
            "worker": w,
            "examples": n,
            "seconds": round(dt, 3),
            "examples_per_s": round(n / dt, 3) if dt else 0.0,
            "cpu_seconds": round(cpu, 3),
            "examples_per_cpu_s": round(n / cpu, 3) if cpu else 0.0,
        }
        for w, (n, dt, cpu) in sorted(view.counts.items())
    ]
    return {
        "format": "qaicmodel-fuzz/1",
        "targets": list(cfg.targets),
        "properties": [p.name for p in props],
        "seed": cfg.seed,
        "jobs": cfg.jobs,
        "db": cfg.db,
        "workers": per,
        "examples": sum(w["examples"] for w in per),
        "behaviours": len(view.behaviours),
        "failures": view.failures,
        "workers_finished": len(done) - len(crashed),
        "workers_stopped": [w for w in range(cfg.jobs) if w not in done],
        "worker_errors": crashed,
    }
