"""tests/uml: the board (no kernel) and the real driver in UML (marker ``uml``).

Every test here runs under an alarm (``UML_TEST_TIMEOUT`` seconds, default 120):
a hang is a failure, not a stuck CI job.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "uml: boots the real qaic driver in User-Mode Linux (needs `qaicmodel uml build`)",
    )


class _Timeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _bounded() -> Iterator[None]:
    limit = int(os.environ.get("UML_TEST_TIMEOUT", "120"))

    def expire(signum: int, frame: object) -> None:
        raise _Timeout(f"test exceeded {limit} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
