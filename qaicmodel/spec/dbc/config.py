"""The device a harness builds: family, channel count, MSI mode, host options, policies.

One value shared by the scenario files (scenario.md "Top level", parsed by
:func:`qaicmodel.scenario.format.parse_device`), ``conform`` and the trace checker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["DeviceConfig", "FAMILIES"]


@attrs.frozen
class DeviceConfig:
    """The ``device`` object (scenario.md "Top level"), defaults as documented."""

    family: str = "aic100"
    num_dbc: int = 16
    single_msi: bool = False
    datapath_polling: bool = False
    sg_max_segment: int | None = None
    policies: Mapping[str, str] = attrs.field(factory=dict, eq=False)
    #: the driver version the host follows ("6.12", "7.2", "upstream"; None = the newest,
    #: qaicmodel.spec.host.kernels); the runner sets it as ``device.kernel``
    kernel: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "num_dbc": self.num_dbc,
            "single_msi": self.single_msi,
            "datapath_polling": self.datapath_polling,
            "sg_max_segment": self.sg_max_segment,
            "policies": dict(self.policies),
            **({"kernel": self.kernel} if self.kernel is not None else {}),
        }


#: families whose DMA Bridge the model covers (control-path.md §2.2: 16 DBCs on each).
FAMILIES = ("aic100", "aic080")
