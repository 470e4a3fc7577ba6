"""Hypothesis profiles and the test markers.

Profiles: ``ci`` (bounded), ``dev`` (default), ``fuzz`` (long).  Choose with
HYPOTHESIS_PROFILE=ci|dev|fuzz (default: ci when $CI is set, else dev).  Every
failing example prints the blob needed to replay it (``print_blob``: paste it into
``@reproduce_failure``); to replay a whole randomised run, pass the seed Hypothesis
printed to pytest: ``python3 -m pytest --hypothesis-seed=N``.

Markers (registered in setup.cfg): every test file has one purpose, given in
:data:`PURPOSE` -- ``unit``, ``properties``, ``machines``, ``cli``, ``contracts`` --
so ``python3 -m pytest -m machines`` runs the stateful machines alone and plain
``python3 -m pytest`` still runs everything.  tests/uml/ carries its own ``uml`` marker.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

_common: dict[str, Any] = dict(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", max_examples=30, stateful_step_count=30, **_common)
settings.register_profile("dev", max_examples=100, stateful_step_count=50, **_common)
settings.register_profile("fuzz", max_examples=20_000, stateful_step_count=200, **_common)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

#: test file -> its purpose (a marker); tests/test_habits.py checks every file is listed
PURPOSE: dict[str, str] = {
    # one module's rules, example-based
    "test_boot.py": "unit",
    "test_device.py": "unit",
    "test_host_ioctls.py": "unit",
    "test_kernel_fidelity.py": "unit",
    "test_manage.py": "unit",
    "test_control_faults.py": "unit",
    "test_control_scenario.py": "unit",
    "test_memory_synthetic.py": "unit",
    "test_nnc.py": "unit",
    "test_pcie.py": "unit",
    "test_policies.py": "unit",
    "test_qsm.py": "unit",
    "test_ras_timesync.py": "unit",
    "test_ssr.py": "unit",
    "test_check.py": "unit",
    "test_check_counters.py": "unit",
    "test_silent_policies.py": "unit",
    "test_guest_dma.py": "unit",
    # Hypothesis properties, fuzzing
    "test_arith_rings.py": "properties",
    "test_control_decoders_fuzz.py": "properties",
    "test_scenario_fuzz.py": "properties",
    "test_fuzz_campaign.py": "properties",
    "test_trace_parse.py": "properties",
    "test_uapi.py": "properties",
    "test_wire.py": "properties",
    "test_check_soundness.py": "properties",
    # stateful machines, co-simulation, conform
    "test_broken_hosts.py": "machines",
    "test_check_broken.py": "machines",
    "test_conform.py": "machines",
    "test_control_machine.py": "machines",
    "test_cosim_machine.py": "machines",
    "test_device_machine.py": "machines",
    "test_host_equiv.py": "machines",
    # the command line and the documents' promises
    "test_bench.py": "cli",
    "test_fuzz_cli.py": "cli",
    "test_check_bench.py": "cli",
    "test_check_stream.py": "cli",
    "test_cli_common.py": "cli",
    "test_describe_cli.py": "cli",
    "test_readme.py": "cli",
    "test_scenario.py": "cli",
    "test_conform_usability.py": "cli",
    "test_hunt.py": "cli",
    # cross-module contracts
    "test_ambiguity_registry.py": "contracts",
    "test_docs.py": "contracts",
    "test_habits.py": "contracts",
    "test_policies_typed.py": "contracts",
    "test_registry_hygiene.py": "contracts",
    "test_proofs.py": "contracts",
    "test_traceability.py": "contracts",
    "test_broken_bug_classes.py": "machines",
    "test_conform_control.py": "machines",
    "test_conform_differential.py": "machines",
    "test_host_synthetic.py": "unit",
    "test_wait_deactivate.py": "unit",
    "test_conform_speed.py": "unit",
}

_HERE = pathlib.Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = pathlib.Path(str(item.fspath))
        if path.parent == _HERE and path.name in PURPOSE:
            item.add_marker(getattr(pytest.mark, PURPOSE[path.name]))
