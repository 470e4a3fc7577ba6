"""The device, executable: the AIC100 as aic100.rst (seed 003) and the driver describe it.

Sub-packages: :mod:`~qaicmodel.spec.dbc` (the DMA Bridge device), :mod:`~qaicmodel.spec.control`
(the control plane), :mod:`~qaicmodel.spec.host` (the host side: interface, validators, shared
core, interrupt protocol, uapi, reference host).  At this level: ``policies`` (the ambiguity
registry, every declaration in one package) and
``scheduler`` (actors and the run loop).
"""
