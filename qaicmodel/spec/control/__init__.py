"""The control plane: everything the driver does to the device besides the DBC data path.

``nnc`` (NNC wire protocol), ``crc``, ``parsed`` (strict decode helpers), ``qsm``
(the device's QSM), ``manage`` (the driver's MANAGE path), ``mhi``, ``boot``
(Sahara), ``ssr``, ``ras``, ``timesync``, ``pcie`` (identity), and ``plane``
(the :class:`~qaicmodel.spec.control.plane.ControlPlane` façade over them).
"""
