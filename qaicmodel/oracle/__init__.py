"""Oracles: does a host do what the device allows?

``cosim`` (co-simulation: worlds, pairs, random runs), ``machine`` (the co-simulation
as a Hypothesis stateful machine), ``broken`` (deliberately broken hosts the oracles
must catch), ``conform`` (``qaicmodel conform``) with its pieces ``pair`` (one step on
the host under test and the reference host), ``explore`` (the episode generator) and
``shrink`` (episodes, replay, shrinking, reproducer files), ``check`` (``qaicmodel check``,
the trace checker, with its recorder of co-simulation traces and ``bench --check``) and
``trace`` (the trace readers: JSON Lines and mmiotrace).
"""
