"""The driver's argument checks, in its order, with its errnos (one piece of code).

Validation order implemented (current upstream qaic_data.c; first failing check wins)
-----------------------------------------------------------------------------------
CREATE_BO: pad != 0 EINVAL; PAGE_ALIGN(size) == 0 EINVAL (size 0, or wraps near
  2**64); not online ENODEV; (model limit ENOMEM).  Handles: lowest free >= 1 per file.
MMAP_BO: not online ENODEV; unknown handle ENOENT.  (pad is not checked.)
ATTACH_SLICE_BO: count == 0 EINVAL; [old kernels: hdr.size == 0 EINVAL]; dir not
  1/2 EINVAL; data NULL EINVAL; not online ENODEV; dbc_id >= num_dbc EINVAL; user
  buffer short EFAULT; unknown handle ENOENT then per entry db_len not 32/16/8/0 or a
  bad sem (val > 0xFFF, index > 31, presync > 1, pad, flags outside 0x3, cmd > 6)
  EINVAL, offset + size overflowing u64 or past the BO EINVAL [old kernels: these
  against hdr.size *before* the lookup]; BO already sliced EINVAL; dbc not owned
  EINVAL; dbc in SSR EPIPE; [old kernels: hdr.size > BO EINVAL]; per entry: no DMA
  segment covers [offset, offset + max(size, PAGE_SIZE)) EINVAL, misaligned
  doorbell EINVAL, more than one presync EINVAL; total elements > nelem ENOSPC.
EXECUTE_BO / PARTIAL_EXECUTE_BO: count == 0 EINVAL; not online ENODEV; dbc_id >=
  num_dbc EINVAL; dbc not owned EPERM; dbc in SSR EPIPE; req_lock; REQ_HP/REQ_TP
  read all-ones ENODEV; per BO in order: unknown handle ENOENT, not sliced EINVAL,
  partial resize > BO size EINVAL, already queued EINVAL, a req_id is consumed, per
  slice no room EAGAIN (and every BO this call queued is unqueued; nothing is
  published).  The entry's ``dir`` is never checked, nor whether the BO was sliced
  for this dbc.
WAIT_BO: pad != 0 EINVAL; not online ENODEV; dbc_id >= num_dbc EINVAL; dbc not owned
  EPERM; dbc in SSR EPIPE; unknown handle ENOENT; then done or (caller) ETIMEDOUT.
PERF_STATS_BO: not online ENODEV; dbc_id >= num_dbc EINVAL; per entry unknown
  handle ENOENT, not sliced EINVAL, sliced on another dbc EINVAL.  No ownership check.
DETACH_SLICE_BO: pad != 0 EINVAL; not online ENODEV; unknown handle ENOENT; not
  sliced EINVAL; dbc not owned EINVAL; queued EBUSY.

Kernel sources read: torvalds/linux qaic_data.c at 98b4eabe (older: no req_lock, no
overflow check, hdr.size used, no SSR) and a current-upstream copy (req_lock, SSR
``ssr_dbc``, ``check_add_overflow``, hdr.size "Deprecated. This value is ignored",
perf_stats sliced/dbc checks); the v6.8 "Support for 0 resize slice execution in BO"
and v6.18 "Synchronize access to DBC request queue head & tail pointer" patches.
"""

from __future__ import annotations

import functools
from typing import Any

from qaicmodel import arith
from qaicmodel.arith import U32, U64
from qaicmodel.errors import ArgumentError, IoctlError
from qaicmodel.spec.host import uapi

__all__ = [
    "WAIT_DEFAULT_TIMEOUT_MS",
    "MAX_BO_SIZE",
    "U32_MAX",
    "check_uint",
    "check_create_bo",
    "check_sem",
    "check_slice_entry",
    "check_slice_encodable",
    "encode_db_len",
]


#: qaic_data.c wait_exec_default_timeout_ms
WAIT_DEFAULT_TIMEOUT_MS = 5000
#: BOs up to this size get real (numpy) backing, larger ones synthetic (sparse) backing
#: (spec/dbc/memory.py bo_backing).  A modelling limit, not a driver fact: 7.2 create_sgt
#: has no cap; it fails with -ENOMEM when alloc_pages fails or its int nr_pages wraps
MAX_BO_SIZE = 256 << 20
U32_MAX = 0xFFFFFFFF


def check_uint(name: str, v: Any, bits: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < (1 << bits):
        raise ArgumentError(f"{name}={v!r} is not a __u{bits}")
    return v


def check_create_bo(size: int, pad: int) -> int:
    """qaic_create_bo_ioctl: pad != 0 -> EINVAL; PAGE_ALIGN(size) == 0 -> EINVAL.

    Returns the page-aligned size (PAGE_ALIGN wraps to 0 near 2**64, so those
    sizes are -EINVAL too).
    """
    check_uint("size", size, 64)
    check_uint("pad", pad, 32)
    if pad:
        raise IoctlError("EINVAL", "create_bo: pad must be 0")
    aligned = arith.page_align(size, U64)
    if aligned == 0:
        raise IoctlError("EINVAL", f"create_bo: size {size} page-aligns to 0")
    return int(aligned)


@functools.lru_cache(maxsize=4096)
def check_sem(sem: uapi.Sem) -> bool:
    """qaic_data.c invalid_sem, inverted: True when the semaphore is acceptable.
    (Cached: a pure function of the frozen, hashable Sem.)"""
    return bool(arith.sem_valid(sem.val, sem.index, sem.presync, sem.cmd, sem.flags, sem.pad, U32))


def check_slice_entry(ent: uapi.SliceEntry, total_size: int, i: int) -> None:
    """qaic_validate_req for one entry: db_len in {32, 16, 8, 0} and four valid
    semaphores, then offset + size without u64 overflow and <= total_size
    (CVE-2025-22001 fix).  All failures are -EINVAL."""
    if ent.db_len not in (32, 16, 8, 0):
        raise IoctlError(
            "EINVAL", f"attach_slice: entry {i}: db_len {ent.db_len} is not 32, 16, 8 or 0"
        )
    for k, s in enumerate(ent.sems):
        if not check_sem(s):
            raise IoctlError("EINVAL", f"attach_slice: entry {i}: sem{k} {s} is invalid")
    if not arith.slice_in_bounds(ent.offset, ent.size, total_size, U64):
        raise IoctlError(
            "EINVAL",
            f"attach_slice: entry {i}: offset {ent.offset} + size "
            f"{ent.size} overflows or passes the size {total_size}",
        )


def check_slice_encodable(ent: uapi.SliceEntry, i: int) -> None:
    """qaic_data.c encode_reqs checks (after the segment lookup): the doorbell address is
    aligned to db_len/8; at most one presync semaphore.  -EINVAL."""
    if ent.db_len and ent.db_addr % (ent.db_len // 8):
        raise IoctlError(
            "EINVAL",
            f"attach_slice: entry {i}: db_addr 0x{ent.db_addr:x} is "
            f"not aligned to {ent.db_len // 8} bytes",
        )
    if sum(s.presync for s in ent.sems) > 1:
        raise IoctlError("EINVAL", f"attach_slice: entry {i}: more than one presync semaphore")


def encode_db_len(db_len: int) -> int:
    """doorbell_attr for a uapi db_len (encode_reqs): 32 -> 0x80, 16 -> 0x81, 8 -> 0x82, 0 -> 0."""
    return {32: 0x80, 16: 0x81, 8: 0x82, 0: 0}[db_len]
