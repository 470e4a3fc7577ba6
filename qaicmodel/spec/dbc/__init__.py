"""The DMA Bridge (aic100.rst "DMA Bridge"): the device's data path.

``wire`` (FIFO element and semaphore encodings), ``regs`` (BAR2 register map),
``memory`` (host and device memory), ``intc`` (MSI masks and latches),
``channel`` (per-channel state, actions, completion codes), ``device`` (the
:class:`~qaicmodel.spec.dbc.device.Device` and its request-stage table),
``workload`` (NSP workload actors), ``config`` (the device a harness builds),
``describe`` (``qaicmodel decode request|response|sem``).
"""
