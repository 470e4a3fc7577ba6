"""The ambiguity registry: every point where the documents leave the device open.

Where aic100.rst (the seed ``003_*.txt``) does not decide a behaviour, the
model does not decide quietly: the point is a :class:`Policy` with a stable id,
the sentence it comes from, its alternatives, and a default.  The default is
what the Linux driver relies on where it relies on anything; the rationale
says so.  A device is built with a :class:`Policies` choice (defaults for the
rest) and never changes it.

Other modules register their own policies with :func:`register` at import
time (control plane, SSR, PCIe identity).  ``qaicmodel ambiguities`` lists the
registry.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from qaicmodel.errors import PolicyError

__all__ = ["Policy", "Policies", "REGISTRY", "register", "pairwise", "all_ids"]

SEED = "seed 003 (aic100.rst)"


@attrs.frozen
class Policy:
    """One open point of the documents."""

    id: str
    area: str
    source: str  # document and section
    quote: str  # the sentence(s) that leave the point open
    question: str
    alternatives: Mapping[str, str]  # alternative id -> what the device does
    default: str
    rationale: str

    def __attrs_post_init__(self) -> None:
        if self.default not in self.alternatives:
            raise PolicyError(f"policy {self.id}: default {self.default!r} is not an alternative")
        if len(self.alternatives) < 2:
            raise PolicyError(f"policy {self.id}: needs at least two alternatives")

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "area": self.area,
            "source": self.source,
            "quote": self.quote,
            "question": self.question,
            "alternatives": dict(self.alternatives),
            "default": self.default,
            "rationale": self.rationale,
        }


REGISTRY: dict[str, Policy] = {}


def register(policy: Policy) -> Policy:
    """Add ``policy`` to the registry (ids are unique and stable)."""
    old = REGISTRY.get(policy.id)
    if old is not None and old != policy:
        raise PolicyError(f"policy id {policy.id!r} registered twice with different contents")
    REGISTRY[policy.id] = policy
    return policy


def all_ids() -> list[str]:
    return sorted(REGISTRY)


def _as_dict(m: Mapping[str, str]) -> dict[str, str]:
    return dict(m)


@attrs.frozen
class Policies:
    """A choice of one alternative per policy; unnamed policies take their default."""

    chosen: Mapping[str, str] = attrs.field(factory=dict, converter=_as_dict)

    def __attrs_post_init__(self) -> None:
        for pid, alt in self.chosen.items():
            pol = REGISTRY.get(pid)
            if pol is None:
                raise PolicyError(f"unknown policy {pid!r} (see `qaicmodel ambiguities`)")
            if alt not in pol.alternatives:
                raise PolicyError(
                    f"policy {pid!r} has no alternative {alt!r}; "
                    f"choose one of {', '.join(pol.alternatives)}"
                )

    def __getitem__(self, pid: str) -> str:
        alt = self.chosen.get(pid)
        if alt is not None:
            return alt
        pol = REGISTRY.get(pid)
        if pol is None:
            raise PolicyError(f"unknown policy {pid!r}")
        return pol.default

    def is_(self, pid: str, alt: str) -> bool:
        """True when policy ``pid`` is set to ``alt`` (``alt`` must exist)."""
        pol = REGISTRY.get(pid)
        if pol is None or alt not in pol.alternatives:
            raise PolicyError(f"policy {pid!r} has no alternative {alt!r}")
        return self[pid] == alt

    def with_(self, **kw: str) -> Policies:
        d = dict(self.chosen)
        d.update({k.replace("_", "-"): v for k, v in kw.items()})
        return Policies(d)

    @classmethod
    def parse(cls, items: Iterable[str]) -> Policies:
        """From ``ID=ALT`` strings (the CLI's ``--policy``)."""
        d: dict[str, str] = {}
        for item in items:
            if "=" not in item:
                raise PolicyError(f"--policy wants ID=ALT, got {item!r}")
            k, v = item.split("=", 1)
            d[k.strip()] = v.strip()
        return cls(d)

    def label(self) -> str:
        diff = {k: v for k, v in self.chosen.items() if REGISTRY[k].default != v}
        return ",".join(f"{k}={v}" for k, v in sorted(diff.items())) or "defaults"


def pairwise(ids: Iterable[str] | None = None) -> list[Policies]:
    """A covering set: every pair of alternatives of every two policies appears in some row.

    Deterministic greedy construction (each new row picks, policy by policy,
    the alternative that covers most uncovered pairs; ties go to the default).
    The first row is all defaults.
    """
    pids = sorted(ids) if ids is not None else all_ids()
    alts = {p: list(REGISTRY[p].alternatives) for p in pids}
    uncovered: set[tuple[str, str, str, str]] = set()
    for a, b in itertools.combinations(pids, 2):
        for x in alts[a]:
            for y in alts[b]:
                uncovered.add((a, x, b, y))
    singles = {(p, x) for p in pids for x in alts[p]}
    rows: list[dict[str, str]] = [{p: REGISTRY[p].default for p in pids}]

    def cover(row: dict[str, str]) -> None:
        for a, b in itertools.combinations(pids, 2):
            uncovered.discard((a, row[a], b, row[b]))
        for p in pids:
            singles.discard((p, row[p]))

    cover(rows[0])
    while uncovered or singles:
        # seed the row with one uncovered pair (or single) so progress is guaranteed
        row: dict[str, str] = {}
        if uncovered:
            a, x, b, y = min(uncovered)
            row[a], row[b] = x, y
        else:
            p, x = min(singles)
            row[p] = x
        for p in pids:
            if p in row:
                continue
            best, best_n = REGISTRY[p].default, -1
            for x in alts[p]:
                n = sum(
                    1
                    for q, y in row.items()
                    if ((p, x, q, y) if p < q else (q, y, p, x)) in uncovered
                )
                if n > best_n or (n == best_n and x == REGISTRY[p].default):
                    best, best_n = x, n
            row[p] = best
        cover(row)
        rows.append(row)
    return [Policies(r) for r in rows]


def each_alternative(ids: Iterable[str] | None = None) -> Iterator[Policies]:
    """One device per (policy, non-default alternative), the rest at defaults."""
    for pid in sorted(ids) if ids is not None else all_ids():
        for alt in REGISTRY[pid].alternatives:
            if alt != REGISTRY[pid].default:
                yield Policies({pid: alt})


# ---------------------------------------------------------------------------
# DMA Bridge policies (seed 003, sections "DMA Bridge", "Request FIFO",
# "Response FIFO").  Quotes are verbatim from the seed.

_DB = "dma-bridge"

register(Policy(
    id="ring-full-rule",
    area=_DB,
    source=f"{SEED} DMA Bridge",
    quote="The values in each register are indexes in the FIFO.",
    question="Is one FIFO slot always kept free, so that head == tail means empty?",
    alternatives={
        "keep-one-free": "a ring of n slots holds at most n-1 elements; head == tail is empty",
        "all-slots": "the device counts elements, so n may be in flight and head == tail "
                     "after a full ring is 'full' to the device (the host cannot tell)",
    },
    default="keep-one-free",
    rationale="qaic_data.c fifo_space_avail keeps one slot free; the UMD's QDmaBridgeQueue "
              "has capacity len-1.",
))

register(Policy(
    id="sem-inc-amount",
    area=_DB,
    source=f"{SEED} Request FIFO, sem_cmd",
    quote="2 is increment. 3 is decrement. ... Bits(11:0) are the semaphore value to use in "
          "operations.",
    question="Does increment/decrement change the semaphore by 1 or by the value field?",
    alternatives={
        "by-one": "increment and decrement change the semaphore by 1; the value is unused",
        "by-value": "increment and decrement add/subtract the 12-bit value field",
    },
    default="by-one",
    rationale="The open compiler's NSP runtime uses os_hostsem_inc/dec as unit steps; the "
              "driver never sends INC/DEC itself.",
))

register(Policy(
    id="sem-overflow",
    area=_DB,
    source=f"{SEED} Request FIFO, sem_cmd",
    quote="Bits(11:0) are the semaphore value to use in operations.",
    question="What happens when an increment takes a semaphore past 4095 (12 bits)?",
    alternatives={
        "saturate": "the value stays at 4095",
        "wrap": "the value wraps modulo 4096",
    },
    default="saturate",
    rationale="The documents are silent; saturation keeps the value in range without "
              "making a waiting request pass spuriously. Nothing in the driver relies on it.",
))

register(Policy(
    id="sem-underflow",
    area=_DB,
    source=f"{SEED} Request FIFO, sem_cmd",
    quote="3 is decrement.",
    question="What happens when a decrement takes a semaphore below 0?",
    alternatives={
        "saturate": "the value stays at 0",
        "wrap": "the value wraps to 4095",
        "block": "the decrement waits until the value is greater than 0 (like P)",
    },
    default="saturate",
    rationale="Silent in every document; the driver never decrements.",
))

register(Policy(
    id="sem-p-decrements",
    area=_DB,
    source=f"{SEED} Request FIFO, sem_cmd",
    quote='6 is "P", wait until semaphore is greater than 0, then decrement by 1.',
    question="Does command 6 decrement after the wait (aic100.rst) or only wait (uapi "
             "comment QAIC_SEM_WAIT_GT_0 'greater than 0')?",
    alternatives={
        "decrement": "wait until > 0, then decrement by 1",
        "wait-only": "wait until > 0, the value is unchanged",
    },
    default="decrement",
    rationale="aic100.rst and the UMD's AICMetadata.h both say P decrements; only the uapi "
              "comment is shorter.",
))

register(Policy(
    id="sem-enable-bit",
    area=_DB,
    source=f"{SEED} Request FIFO, sem_cmd",
    quote="Bit(31) indicates this semaphore command is enabled.",
    question="What does a non-NOP command with the enable bit clear do (and NOP with it set)?",
    alternatives={
        "enable-gates": "a command runs only when bit 31 is set; NOP with bit 31 does nothing",
        "command-gates": "a command runs whenever bits 26:24 are non-zero, bit 31 ignored",
    },
    default="enable-gates",
    rationale="The driver sets bit 31 exactly when cmd != 0, so both readings agree on "
              "driver-built elements; 'enabled' reads most naturally as a gate.",
))

register(Policy(
    id="fence-without-enable",
    area=_DB,
    source=f"{SEED} Request FIFO, sem_cmd",
    quote="Bit(30) is the to-device DMA fence. Block this request until all to-device DMA "
          "transfers are complete.",
    question="Do the fence bits act when the semaphore command's enable bit is clear?",
    alternatives={
        "honoured": "fence bits act regardless of bit 31",
        "needs-enable": "fence bits act only in an enabled semaphore command",
    },
    default="honoured",
    rationale="qaic_data.c adds an automatic fence to sem_cmd0 of a multi-element slice "
              "without presync; when that slice has no sem0 command the word has the fence "
              "bit but not the enable bit, so the driver relies on 'honoured'.",
))

register(Policy(
    id="fence-scope",
    area=_DB,
    source=f"{SEED} Request FIFO, sem_cmd",
    quote="Block this request until all to-device DMA transfers are complete.",
    question="Which transfers does a fence wait for, and at which step does it act?",
    alternatives={
        "earlier-before-presync": "waits for every transfer of the same direction consumed "
                                  "earlier on this channel; acts before the presync step",
        "earlier-before-dma": "the same transfers, but acts after presync, before the DMA",
        "all-outstanding": "waits until no transfer of that direction is outstanding on "
                           "the channel at all (including ones consumed later)",
    },
    default="earlier-before-presync",
    rationale="The UMD's AICMetadata.h gives the hardware order: sync fence, pre-semaphores, "
              "transfer, post-semaphores, doorbells; 'all ... transfers' most plausibly "
              "means those queued before this request.",
))

register(Policy(
    id="presync-multiple",
    area=_DB,
    source=f"{SEED} Request FIFO, sem_cmd",
    quote="Only one presync is allowed per request.",
    question="What does the device do with a request that has more than one presync?",
    alternatives={
        "error": "no transfer, no semaphore op, no doorbell; a response with an error code "
                 "if a completion was requested",
        "all-gate": "every presync condition must hold before the transfer",
        "first-only": "only the first presync command gates; the others are ignored",
    },
    default="error",
    rationale="The driver never sends one (attach_slice returns -EINVAL); 'not allowed' "
              "reads as an error.",
))

register(Policy(
    id="processing-order",
    area=_DB,
    source=f"{SEED} Request FIFO; userspace.md §7 (AICMetadata.h)",
    quote="Overall, a request is processed in 4 steps",
    question="May requests of one channel overtake each other?",
    alternatives={
        "rule-permitted": "requests that share no semaphore index and carry no fence may "
                          "proceed in any order; requests sharing a semaphore keep FIFO order",
        "fifo": "one request at a time, in FIFO order",
    },
    default="rule-permitted",
    rationale="The UMD's metadata says requests using different semaphores and no fences may "
              "be processed in any order; the driver's fence comment relies on same-presync "
              "requests staying in order.",
))

register(Policy(
    id="response-order",
    area=_DB,
    source=f"{SEED} Response FIFO",
    quote="Once a request is fully processed, a response FIFO element is generated if "
          "specified in pcie_dma_cmd.",
    question="Are responses written in completion order or in request order?",
    alternatives={
        "completion-order": "a response is written when its request finishes",
        "request-order": "responses are written in the order the requests were consumed",
    },
    default="completion-order",
    rationale="The driver matches responses to BOs by req_id and never assumes an order.",
))

register(Policy(
    id="illegal-direction",
    area=_DB,
    source=f"{SEED} Request FIFO, pcie_dma_cmd",
    quote="Bits(1:0) indicate the type of transfer. No transfer(0), to device(1), from "
          "device(2). Value 3 is illegal.",
    question="What happens to a request whose transfer type is 3?",
    alternatives={
        "error-if-requested": "no transfer, nothing else; an error response only if the "
                              "completion bit is set",
        "error-always": "no transfer; an error response whether or not the completion bit "
                        "is set",
        "as-none": "treated as no transfer; the rest of the request runs normally",
    },
    default="error-if-requested",
    rationale="The driver only ever sends 1 or 2; a response without the completion bit "
              "would be unexpected by a host.",
))

register(Policy(
    id="doorbell-reserved-len",
    area=_DB,
    source=f"{SEED} Request FIFO, doorbell_attr",
    quote="0 is 32-bit, 1 is 16-bit, 2 is 8-bit, 3 is reserved.",
    question="What does the device do with doorbell length 3?",
    alternatives={
        "skip-error": "no doorbell write; the response (if any) carries an error code",
        "as-32": "the doorbell is written as 32 bits",
    },
    default="skip-error",
    rationale="The driver never encodes 3 (db_len must be 0/8/16/32).",
))

register(Policy(
    id="doorbell-misaligned",
    area=_DB,
    source=f"{SEED} Request FIFO, doorbell_attr",
    quote="The doorbell address must be naturally aligned to the specified length.",
    question="What happens when the doorbell address is not aligned?",
    alternatives={
        "skip-error": "no doorbell write; the response (if any) carries an error code",
        "align-down": "the address's low bits are ignored",
        "write-anyway": "the bytes are written at the unaligned address",
    },
    default="skip-error",
    rationale="The driver rejects misaligned db_addr with -EINVAL, so it never relies on "
              "any device behaviour here.",
))

register(Policy(
    id="linked-list",
    area=_DB,
    source=f"{SEED} Request FIFO, pcie_dma_cmd",
    quote="Bit(3) indicates if this request is a linked list transfer(0) or a bulk "
          "transfer(1).",
    question="How is a linked-list transfer (format undocumented) modelled?",
    alternatives={
        "error": "no transfer; an error response if requested",
        "as-bulk": "the addresses and length are used as for a bulk transfer",
    },
    default="error",
    rationale="The list format is not documented and the driver always sets bit 3.",
))

register(Policy(
    id="msi-while-masked",
    area=_DB,
    source=f"{SEED} Response FIFO; seed 001 (MSI in VMs)",
    quote="The DMA Bridge will generate a MSI to the host as a reaction to activity in the "
          "response FIFO of a DBC.",
    question="Is an MSI raised while the host has the vector masked latched or lost?",
    alternatives={
        "latched": "it is held pending and delivered when the host unmasks",
        "lost": "it is dropped",
    },
    default="latched",
    rationale="PCI MSI per-vector masking sets the pending bit and Linux replays a disabled "
              "edge interrupt on enable_irq; the driver's unmask-then-recheck also covers "
              "'lost'.",
))

register(Policy(
    id="force-msi",
    area=_DB,
    source=f"{SEED} Request FIFO, pcie_dma_cmd",
    quote="Bit(7) is the force msi flag ... and QSM configures the DMA Bridge to look at "
          "this bit.",
    question="Is the force-MSI bit honoured (QSM's configuration is not visible)?",
    alternatives={
        "honoured": "a completed request with bit 7 set raises the channel's MSI",
        "ignored": "QSM did not configure it; bit 7 has no effect",
    },
    default="honoured",
    rationale="The driver never sets it; honouring it is the more demanding case for hosts.",
))

register(Policy(
    id="msi-empty-transition",
    area=_DB,
    source=f"{SEED} Response FIFO",
    quote="it will only generate a MSI when the response FIFO transitions from empty to "
          "non-empty",
    question="Empty by whose view: RSP_HP as last written by the host, or elements the "
             "host has not yet read?",
    alternatives={
        "host-head": "empty means RSP_TP == RSP_HP (the host's last head write) when the "
                     "device writes a response",
        "every-response": "every response raises an MSI (no mitigation), the worst case "
                          "for hosts",
    },
    default="host-head",
    rationale="The device only knows RSP_HP; the driver's storm-mitigation notes describe "
              "one MSI per empty->non-empty edge.",
))

register(Policy(
    id="response-ring-full",
    area=_DB,
    source=f"{SEED} Response FIFO",
    quote="Once a request is fully processed, a response FIFO element is generated",
    question="What does the device do when the response FIFO is full?",
    alternatives={
        "stall": "the response (and so the request) waits until the host frees a slot",
        "drop": "the response is discarded",
    },
    default="stall",
    rationale="The driver never over-commits responses (ring sizes are equal) and drains on "
              "every MSI; stalling loses nothing.",
))

register(Policy(
    id="tail-out-of-range",
    area=_DB,
    source=f"{SEED} DMA Bridge",
    quote="Host increments this register to add new items to the FIFO.",
    question="What does the device do with a REQ_TP/RSP_HP write >= nelem?",
    alternatives={
        "ignore": "the write is recorded as a violation and has no effect",
        "modulo": "the value is taken modulo nelem",
    },
    default="ignore",
    rationale="The driver always writes values < nelem.",
))

register(Policy(
    id="dma-fault",
    area=_DB,
    source=f"{SEED} Request FIFO",
    quote="source address for a bulk transfer ... destination address for a bulk transfer.",
    question="What happens when a DMA touches host memory that is not mapped?",
    alternatives={
        "error": "no bytes move; the response (if any) carries an error code",
        "partial": "bytes up to the fault move; the response carries an error code",
    },
    default="error",
    rationale="Silent; the driver only uses mapped segments.",
))

register(Policy(
    id="doorbell-data-width",
    area=_DB,
    source=f"{SEED} Request FIFO, doorbell_data",
    quote="Only the bits corresponding to the doorbell length are valid.",
    question="What happens to doorbell_data bits above the doorbell length?",
    alternatives={
        "truncate": "they are ignored",
        "violation": "they are ignored, and the element is reported as breaking the rule",
    },
    default="truncate",
    rationale="The driver passes the user's db_data through unmasked for 8/16-bit doorbells.",
))

# Added while reading the seed line by line for the device model (device.py).

register(Policy(
    id="sem-reserved-cmd",
    area=_DB,
    source=f"{SEED} Request FIFO, sem_cmd",
    quote="7 is reserved.",
    question="What does the device do with an enabled semaphore command 7?",
    alternatives={
        "error": "no transfer, no semaphore op, no doorbell; an error response if a "
                 "completion was requested",
        "ignore": "the command is treated as NOP; the rest of the request runs normally",
    },
    default="error",
    rationale="The driver rejects cmd > 6 (invalid_sem, -EINVAL) so it never relies on "
              "either; treating a reserved encoding like the other malformed cases "
              "(multiple presyncs) keeps the device's error handling uniform.",
))

register(Policy(
    id="completion-code-values",
    area=_DB,
    source=f"{SEED} Response FIFO, completion_code",
    quote="status of this request. 0 is success. Non-zero is an error.",
    question="Which non-zero codes does the device write for which error?",
    alternatives={
        "distinct": "one model-defined code per error kind (device.CC_* constants)",
        "one": "every error is written as 1",
    },
    default="distinct",
    rationale="The values are undocumented; the driver only logs a non-zero status and "
              "still completes the BO, so no host may depend on the value.",
))

register(Policy(
    id="inactive-dbc-regs",
    area=_DB,
    source=f"{SEED} DMA Bridge",
    quote="Each DBC contains 4 registers in hardware",
    question="What does a host read of a register of a channel that is not active return?",
    alternatives={
        "zero": "0 (the registers are reset when the channel is released)",
        "all-ones": "0xFFFFFFFF, as an unclaimed PCIe read (the driver treats it as a "
                    "link error)",
    },
    default="zero",
    rationale="The document is silent; the driver never reads an unassigned channel "
              "(its IRQ handler returns early), so it relies on neither.",
))

register(Policy(
    id="presync-non-wait",
    area=_DB,
    source=f"{SEED} Request FIFO, sem_cmd",
    quote="1 is presync, which gates the DMA transfer.",
    question="What does a presync command that is not a condition (init, increment, "
             "decrement) do?",
    alternatives={
        "apply": "the operation is performed before the transfer",
        "ignore": "only conditions gate; a presync init/inc/dec does nothing",
    },
    default="apply",
    rationale="Bit 22 is described as choosing when 'the semaphore operation is done' "
              "(before or after the transfer); the open compiler only emits presync waits.",
))

register(Policy(
    id="head-index-meaning",
    area=_DB,
    source=f"{SEED} DMA Bridge",
    quote="Request FIFO head pointer (offset 0x0). Read only by the host. Indicates the "
          "latest item in the FIFO the device has consumed.",
    question="Does a head register hold the index of the next element to consume, or of the "
             "latest element consumed (one behind)?",
    alternatives={
        "next-slot": "REQ_HP/RSP_HP hold the next slot to consume; head == tail is empty",
        "last-consumed": "REQ_HP reads as the slot the device consumed last (one behind the "
                         "next slot), and an RSP_HP write names the last response the host "
                         "consumed, freeing it too",
    },
    default="next-slot",
    rationale="qaic_data.c (fifo_space_avail, the IRQ drain) treats head == tail as empty and "
              "writes RSP_HP as the next slot to read; the seed's 'latest item ... consumed' "
              "reads literally as the other alternative.",
))
