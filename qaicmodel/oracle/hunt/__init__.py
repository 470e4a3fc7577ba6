"""``qaicmodel hunt``: where two readings of the document lead a host to different outcomes.

For every policy of the ambiguity registry (and, with ``--pairs``, every pair) the hunt
searches for the shortest uapi-level scenario whose host-visible outcome -- an errno,
the bytes read back, a WAIT_BO timeout, a host rule broken, a stranded completion, a
crash -- differs between alternatives; shrinks it; writes it as a replayable scenario
file with every side's outcome recorded (the ``witness`` extension,
docs/formats-extensions.md); and says whether the host under test behaves correctly
under every alternative.  A host that is correct under only one reading depends on it:
that is the finding.

Pieces: :mod:`.side` (running the same steps on several policy choices; what is
host-visible, V1-V4), :mod:`.generate` (the episodes: conform's generator plus control
moves, G1-G3), :mod:`.search` (targets, search, shrinking, the host's correctness,
S1-S4), :mod:`.witness` (the files and ``--replay``, W1-W3), :mod:`.run` (a whole
hunt and its report, R1-R4), :mod:`.cli` (the command).  Conform's episode generator
(:mod:`qaicmodel.oracle.explore`) and checks (:func:`qaicmodel.oracle.shrink.replay`)
are used read-only, through their public names.
"""

from __future__ import annotations

__all__: list[str] = []
