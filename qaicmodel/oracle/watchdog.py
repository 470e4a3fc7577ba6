"""Guards around calls into a host under test: a watchdog (CONF-HANG) and where a
host crashed (CONF-CRASH).

Rules:
  W1  :func:`call` runs one host call under a one-shot ``SIGALRM`` timer
      (``signal.setitimer(ITIMER_REAL, seconds)``) of :data:`TIMEOUT` seconds; when it
      fires while the call is still running, :class:`HostHang` is raised *inside* the
      call (the host's own frames unwind), naming the call and how long it ran.
  W2  The timer is armed only in the main thread (Python delivers signals there) and only
      when :data:`TIMEOUT` > 0; elsewhere :func:`call` is a plain call.  The model itself
      never uses threads (docs/design.md), so conform always runs in the main thread.
  W3  Nested guarded calls arm only the outermost timer; every call disarms what it armed,
      whatever happens (``finally``), so no alarm outlives its call.
  W4  What the watchdog cannot stop: a call blocked inside C code that does not return to
      the interpreter (a numpy kernel that never ends, a non-interruptible system call);
      Python code, ``time.sleep`` and lock waits are interrupted.
  W5  :func:`crash_site` names the innermost traceback frame in the host's own source file
      (the module defining the host's class, then any class it derives from outside
      qaicmodel, then qaicmodel's own host code), as ``FILE:LINE in FUNCTION``.

Time: the watchdog reads the clock (``setitimer``) to stop a runaway host; the model
never does (docs/design.md: only drivers of an exploration may).
"""

from __future__ import annotations

import _signal
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from qaicmodel.errors import QaicModelError
from qaicmodel.spec.host.protocol import HOST_METHODS

__all__ = [
    "DEFAULT_TIMEOUT",
    "HostHang",
    "call",
    "crash_site",
    "describe_call",
    "guard_host",
    "HostCrash",
    "probe",
    "timeout",
    "unconstructible",
]

#: Seconds one host call may take before it is reported as CONF-HANG (``--host-timeout``).
DEFAULT_TIMEOUT = 5.0
#: The current limit (0 disables the watchdog); set with :func:`timeout`.
TIMEOUT = DEFAULT_TIMEOUT

_state = {"depth": 0}
#: the guard depth (read-only outside this module): > 0 inside a call :func:`call` guards
STATE = _state
_MAIN = threading.main_thread()  # signals are delivered (and handled) only here
# speed only (W1-W2 unchanged): the C-level calls behind signal.getsignal (which also
# tries an enum conversion that fails for a Python handler) and threading.current_thread
_GETSIGNAL = _signal.getsignal
_SETITIMER = signal.setitimer
_GET_IDENT = threading.get_ident


class HostHang(Exception):
    """A host call did not return within the watchdog's limit (internal; CONF-HANG)."""

    def __init__(self, call: str, seconds: float, alarm: BaseException | None = None) -> None:
        self.call = call
        self.seconds = seconds
        #: the interrupt, whose traceback shows where the host was when the alarm fired
        self.alarm = alarm
        super().__init__(
            f"the host's {call} call did not return within {seconds:g} s (watchdog; "
            "--host-timeout SECONDS to change)"
        )

    def site(self, host: Any) -> str | None:
        """Where in the host's own source it was running when stopped (W5), or None."""
        return crash_site(self.alarm, host) if self.alarm is not None else None


class _Alarm(BaseException):
    """Raised by the SIGALRM handler; turned into :class:`HostHang` by :func:`call`.

    A BaseException so a host's own ``except Exception`` cannot swallow it."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _state["depth"] > 0:
        raise _Alarm()


@contextmanager
def timeout(seconds: float) -> Iterator[None]:
    """Use ``seconds`` as the per-call limit inside the block (0: no watchdog)."""
    global TIMEOUT
    old = TIMEOUT
    TIMEOUT = float(seconds)
    try:
        yield
    finally:
        TIMEOUT = old


def describe_call(name: str, args: tuple[Any, ...], kw: dict[str, Any]) -> str:
    """``detach_slice(1, 2)``: a host call as a short readable string."""
    parts = [_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kw.items()]
    return f"{name}({', '.join(parts)})"


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def call(name: str, fn: Callable[..., Any], args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    """``fn(*args, **kw)`` under the watchdog (W1-W3); :class:`HostHang` when it hangs."""
    limit = TIMEOUT
    state = _state
    if limit <= 0 or state["depth"] > 0 or _GET_IDENT() != _MAIN.ident:
        return fn(*args, **kw)
    if _GETSIGNAL(_SIGALRM) is not _on_alarm:
        signal.signal(signal.SIGALRM, _on_alarm)
    state["depth"] = 1
    _SETITIMER(_ITIMER_REAL, limit)
    try:
        return fn(*args, **kw)
    except _Alarm as alarm:
        raise HostHang(describe_call(name, args, kw), limit, alarm) from None
    finally:
        state["depth"] = 0  # first: an alarm handled from here on raises nothing
        _SETITIMER(_ITIMER_REAL, 0)


_SIGALRM = int(signal.SIGALRM)
_ITIMER_REAL = signal.ITIMER_REAL


def _host_files(host: Any) -> list[set[str]]:
    """Source files to look for, best first (W5)."""
    cls = host if isinstance(host, type) else type(host)
    own: set[str] = set()
    outside: set[str] = set()
    inside: set[str] = set()
    for k in cls.__mro__:
        if k is object:
            continue
        f = getattr(sys.modules.get(k.__module__), "__file__", None)
        if not f:
            continue
        path = str(Path(f).resolve())
        if k is cls:
            own.add(path)
        elif k.__module__.split(".")[0] != "qaicmodel":
            outside.add(path)
        else:
            inside.add(path)
    return [own, outside, inside]


def crash_site(exc: BaseException, host: Any) -> str | None:
    """``/path/myhost.py:13 in detach_slice``: the innermost frame of the traceback in the
    host's own source (W5), or None when no frame is."""
    frames = traceback.extract_tb(_tb(exc))
    for files in _host_files(host):
        for fr in reversed(frames):
            if files and str(Path(fr.filename).resolve()) in files:
                return f"{fr.filename}:{fr.lineno} in {fr.name}"
    return None


def _tb(exc: BaseException) -> TracebackType | None:
    return exc.__traceback__


def probe(cls: type, ref: str, cfg: Any = None) -> None:
    """Construct ``cls`` once on a fresh device (``cfg``, default :class:`DeviceConfig`),
    under the watchdog: a constructor that raises or hangs is an ArgumentError naming the
    reason and the host's file and line (exit 2 before the run, W5)."""
    from qaicmodel.errors import ArgumentError
    from qaicmodel.scenario.runner import Runner

    def build() -> Any:
        return Runner(cfg, host_cls=cls)

    try:
        call(f"{cls.__qualname__}(device, ...)", build, (), {})
    except HostHang as e:
        raise ArgumentError(f"host {ref} cannot be constructed: {e}") from None
    except QaicModelError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's constructor failed
        raise unconstructible(cls, ref, e) from None


def unconstructible(cls: type, ref: str, e: Exception, on: str = "") -> QaicModelError:
    """W5's one-line error for a host constructor that raised ``e`` (``on``: the device
    it was given, when not the probe's): an ArgumentError, exit 2."""
    from qaicmodel.errors import ArgumentError

    site = crash_site(e, cls)
    return ArgumentError(
        f"host {ref} cannot be constructed{on}: {type(e).__name__}: {e}"
        + (f" (at {site})" if site else "")
    )


class HostCrash(Exception):
    """A guarded host's call raised something other than a QaicModelError (internal)."""

    def __init__(self, call: str, exc: BaseException, site: str | None) -> None:
        self.call, self.exc, self.site = call, exc, site
        super().__init__(
            f"the host's {call} call raised {type(exc).__name__}: {exc}"
            + (f" at {site}" if site else "")
        )


#: the host calls a guard wraps (the interface, plus the optional execute thread)
_GUARDED = frozenset((*HOST_METHODS, "execute_begin", "execute_result"))


class _Guarded:
    """A host whose every interface call runs under :func:`call`, and whose crashes
    become :class:`HostCrash` naming the call and the host's file and line (W5).
    Attribute reads and writes go to the host itself."""

    _cls: type

    def __init__(self, device: Any, **kw: Any) -> None:
        cls = type(self)._cls
        try:
            host = call(f"{cls.__qualname__}(device, ...)", cls, (device,), kw)
        except (HostHang, QaicModelError):
            raise
        except Exception as e:  # noqa: BLE001 - the user's constructor
            raise HostCrash(f"{cls.__qualname__}(device, ...)", e, crash_site(e, cls)) from e
        object.__setattr__(self, "_host", host)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(object.__getattribute__(self, "_host"), name)
        if name not in _GUARDED or not callable(attr):
            return attr
        host = object.__getattribute__(self, "_host")

        def guarded(*args: Any, **kw: Any) -> Any:
            try:
                return call(name, attr, args, kw)
            except (HostHang, QaicModelError):
                raise
            except Exception as e:  # noqa: BLE001 - the host under test crashed
                raise HostCrash(describe_call(name, args, kw), e, crash_site(e, host)) from e

        return guarded

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_host"), name, value)


def guard_host(cls: type) -> type:
    """``cls`` as a class whose instances are guarded hosts (``qaicmodel scenario
    --host``): hangs raise :class:`HostHang`, crashes :class:`HostCrash`."""
    return type(f"Guarded{cls.__name__}", (_Guarded,), {"_cls": cls})
