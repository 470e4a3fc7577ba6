"""Host-driver policies: where driver versions differ observably.

Reader: ``qaicmodel/spec/host/core.py`` (and the fast host through it).
"""

from __future__ import annotations

from qaicmodel.spec.policies._base import Alt, Policy, register

__all__ = [
    "HostAttachHdrSize",
    "HOST_ATTACH_HDR_SIZE",
]


class HostAttachHdrSize(Alt):
    """Alternatives of ``host-attach-hdr-size``."""

    IGNORED = "ignored"
    CHECKED = "checked"


HOST_ATTACH_HDR_SIZE = register(
    Policy(
        kind=HostAttachHdrSize,
        id="host-attach-hdr-size",
        area="host-driver",
        source="control-path.md §3.3 qaic_attach_slice_hdr; drivers/accel/qaic/qaic_data.c "
        "qaic_attach_slice_bo_ioctl (6.12, 7.2)",
        quote="0 count u32; 4 dbc_id u32; 8 handle u32; 12 dir u32; 16 size u64",
        question="Does ATTACH_SLICE_BO use hdr.size (older kernels) or the BO's own size (current)?",
        alternatives={
            "ignored": "current upstream: hdr.size is not read; slices are checked against the "
            "BO's size, after the handle lookup (-ENOENT before slice -EINVAL)",
            "checked": "older kernels (torvalds/linux 98b4eabe): hdr.size == 0 -> -EINVAL up "
            "front; slices checked against hdr.size before the handle lookup; "
            "-EINVAL when hdr.size exceeds the BO",
        },
        default="ignored",
        rationale="The newest driver is the reference; the older order is kept so traces from "
        "older kernels can be checked.",
        category="kernel-version",
        decision="Kernel-version behaviour, not a device ambiguity: a host driver property. "
        "Neither 6.12 nor 7.2 reads hdr.size in qaic_attach_slice_bo_ioctl; 'checked' is the "
        "driver before 6.12. The quote is the struct layout (the uapi header's comment is "
        "kernel text and is not copied here).",
    )
)
