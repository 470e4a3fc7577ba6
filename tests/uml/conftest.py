"""tests/uml: the board (no kernel) and the real driver in UML (marker ``uml``).

Every test here runs under an alarm (``UML_TEST_TIMEOUT`` seconds, default 120):
a hang is a failure, not a stuck CI job.

The tests that boot the real driver against the board (``test_guest_boot.py``,
``test_guest_datapath.py``) depend on the guest's real-time interleaving, and UML's own
transport has a race (docs/findings.md F7); measured here, a few of them fail about one
run in ten. Each of those gets one rerun (pytest-rerunfailures; the summary counts it as
``rerun``), never more: a test that fails twice in a row fails.
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


#: files whose tests boot the real driver and so get one rerun (see the module docstring)
RERUN_ONCE = {"test_guest_boot.py", "test_guest_datapath.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in RERUN_ONCE:
            item.add_marker(pytest.mark.flaky(reruns=1))


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
