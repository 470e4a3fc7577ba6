"""The host side: the Linux ``accel/qaic`` data path as objects that drive the device.

``protocol`` (the documented host interface :class:`Host`, :func:`load_host`),
``validate`` (the driver's argument checks in its order), ``records`` (BOs, slices,
clients, channels), ``core`` (:class:`HostCore`, the code both hosts share; its execute/wait ioctls in
``execpath``), ``irqside``
(its interrupt side), ``irqproto`` (the interrupt protocol as dual-typed transitions,
proved in ``proofs/``), ``uapi`` (``qaic_accel.h`` structs and ioctl numbers) and
``reference`` (:class:`SpecHost`, the reference host).  The fast host is
:class:`qaicmodel.impl.host.ImplHost`.

``Host``, ``HostCore``, ``SpecHost`` and ``load_host`` are importable from here, so
``--host qaicmodel.spec.host:SpecHost`` names the reference host.
"""

from qaicmodel.spec.host.core import HostCore
from qaicmodel.spec.host.protocol import Host, HostAction, load_host
from qaicmodel.spec.host.reference import SpecHost

__all__ = ["Host", "HostAction", "HostCore", "SpecHost", "load_host"]
