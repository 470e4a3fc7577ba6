"""The control plane: everything the driver does to the device besides the DBC data path.

``nnc`` (NNC wire protocol; transaction layouts in ``nnc_trans``), ``crc``, ``parsed``
(strict decode helpers), ``qsm`` (the device's QSM; ``qsm_records``), ``manage`` (the
driver's MANAGE path; ``manage_uapi``, ``manage_codec``), ``protocol`` (the control-host
interface), ``faults`` (device-side control faults; ``fault_transforms``), ``verdicts``
(the plane's consistency checks), ``mhi``, ``boot`` (Sahara), ``ssr`` (``ssr_device``),
``ras``, ``timesync``, ``pcie`` (identity), and ``plane`` (the
:class:`~qaicmodel.spec.control.plane.ControlPlane` façade over them).
"""
