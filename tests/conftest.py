"""Hypothesis profiles: ``ci`` (bounded), ``dev`` (default), ``fuzz`` (long).

Choose with HYPOTHESIS_PROFILE=ci|dev|fuzz (default: ci when $CI is set, else dev).  Every failing example prints the
seed/blob needed to replay it (``print_blob``); set HYPOTHESIS_SEED=N to replay
a whole randomised run.
"""

import os

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=30, stateful_step_count=30, **_common)
settings.register_profile("dev", max_examples=100, stateful_step_count=50, **_common)
settings.register_profile("fuzz", max_examples=20_000, stateful_step_count=200, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))
