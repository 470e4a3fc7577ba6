"""The virtual AIC100: the device model behind User-Mode Linux's virtual PCI.

The real, unmodified ``accel/qaic`` + MHI driver in a UML guest talks to a
PCI function that UML's ``virt-pci`` forwards over a vhost-user socket
(``include/uapi/linux/virtio_pcidev.h``).  This package is the other end of
that socket: the same :class:`~qaicmodel.spec.device.Device`, QSM and control
plane objects the stateful tests use (imported only through ``_model``),
behind PCI config space, the MHI register block (BAR0), the DMA Bridge (BAR2)
and MSIs, with DMA straight into the guest's memory.

Module map (one concept, one module):

=================  ==========================================================
``kbuild``         ``qaicmodel uml build``: Debian source package, config
                   fragment, build, cache under ``$QAICMODEL_CACHE``
``vhost``          the vhost-user slave side: framing, SCM_RIGHTS, features,
                   memory table, vring set-up
``virtq``          split virtqueues in guest memory (pop / push / signal)
``guestmem``       the guest's memory as the device sees it (DMA by
                   guest-physical address; implements the ``HostMemory``
                   interface the Device uses)
``virtpci``        virtio_pcidev messages: config/MMIO ops to the board,
                   MSIs out on virtqueue 1
``config``         PCI config space of the AIC100 (ids, BARs, MSI capability)
``backend``        the single-threaded event loop: socket, kicks, and the
                   seeded scheduler that picks the board's actions between
                   guest messages
``board``          the AIC100 as one PCI function: BAR0 MHI, BAR2 DBCs,
                   BAR4, channel services
``mhi_*``          MHI device side at register level (registers, context
                   arrays, rings, state machine, BHI)
``sahara_dev``     the device side of Sahara (SBL pulling the runtime images)
``services``       the firmware's channel services (loopback, QAIC_CONTROL to
                   the QSM, SSR, RAS, timesync, boot log)
``firmware``       the synthetic images (``sbl.bin``, the Sahara table)
``runner``         ``qaicmodel uml run``: init script, guest process,
                   console, timeouts, cleanup
``splat``          kernel splat lines in the guest console
``bench``          ``qaicmodel bench --uml``
``testboard``      a stand-in board for testing the transport alone
``_model``         the one import point for model internals
=================  ==========================================================

The board's open points (start EE, BHI image check, Sahara images, SYS_ERR
reporting, ...) are policies of the registry: ``qaicmodel/spec/policies/board.py``.

The board contract the backend drives (no threads, no clocks: the backend's
seeded scheduler is the only source of device progress)::

    board.bars                          {bar index: size}
    board.attach(mem, msi)              mem: GuestMemory; msi(vector) sends one
    board.bar_read(bar, off, size)      -> int   (size 1, 2, 4 or 8)
    board.bar_write(bar, off, size, value)
    board.bar_memset(bar, off, size, byte)
    board.actions()                     -> list of actions enabled now
    board.step(action)                  take one
    board.violations                    rule ids the guest broke, with where
"""
