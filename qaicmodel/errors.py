"""Every exception qaicmodel raises.

One module, one hierarchy (the style of Hypothesis' ``errors.py``).  The split
follows h11: *local* errors are things the caller did wrong (bad argument, bad
file, a host breaking a device rule); *remote* errors are things the other side
did wrong (a device answer no conforming device could give).

The CLI turns any :class:`QaicModelError` into exit status 2 and one line:
``qaicmodel: <kind>: <message>``.
"""

from __future__ import annotations

import errno as _errno

__all__ = [
    "QaicModelError",
    "ArgumentError",
    "DecodeError",
    "FormatError",
    "PolicyError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "IoctlError",
    "NotModelledError",
    "UmlError",
    "TransportError",
]


class QaicModelError(Exception):
    """Base class of every error raised by qaicmodel."""

    kind = "error"

    def one_line(self) -> str:
        """The single readable line the CLI prints."""
        text = " ".join(str(self).split())
        return f"{self.kind}: {text}"


class ArgumentError(QaicModelError, ValueError):
    """An argument to a public function is out of range or of the wrong type."""

    kind = "bad argument"


class DecodeError(QaicModelError, ValueError):
    """Bytes that do not decode as the wire record asked for.

    ``offset`` is the byte offset of the offending field (or ``None`` when the
    whole input is at fault, e.g. wrong length); ``rule`` names what was broken.
    """

    kind = "decode error"

    def __init__(self, message: str, *, offset: int | None = None, rule: str = "") -> None:
        self.offset = offset
        self.rule = rule
        where = f" at byte {offset}" if offset is not None else ""
        tag = f" [{rule}]" if rule else ""
        super().__init__(f"{message}{where}{tag}")


class FormatError(QaicModelError, ValueError):
    """A malformed user file (scenario, trace): ``where`` names step/line and field."""

    kind = "malformed input"

    def __init__(self, message: str, *, where: str = "") -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class PolicyError(QaicModelError, ValueError):
    """Unknown policy id or alternative."""

    kind = "bad policy"


class LocalProtocolError(QaicModelError):
    """The host (our side) broke a rule of the device interface.

    ``rule`` is a stable rule id such as ``HOST-WRITE-DEVICE-REG``.
    """

    kind = "host violation"

    def __init__(self, message: str, *, rule: str = "") -> None:
        self.rule = rule
        super().__init__(f"{rule}: {message}" if rule else message)


class RemoteProtocolError(QaicModelError):
    """The device (the other side) did something no conforming device does."""

    kind = "device violation"

    def __init__(self, message: str, *, rule: str = "") -> None:
        self.rule = rule
        super().__init__(f"{rule}: {message}" if rule else message)


class IoctlError(QaicModelError):
    """An ioctl failed with a Linux errno, exactly as the driver returns it.

    ``name`` is the errno's symbolic name (``"EINVAL"``); ``errno`` its number.
    """

    kind = "ioctl error"

    def __init__(self, name: str, message: str = "") -> None:
        if not hasattr(_errno, name) and name not in _EXTRA_ERRNOS:
            raise ArgumentError(f"unknown errno name {name!r}")
        self.name = name
        self.errno = getattr(_errno, name, _EXTRA_ERRNOS.get(name, 0))
        super().__init__(f"{name}: {message}" if message else name)


class NotModelledError(QaicModelError):
    """A feature the model does not (yet) cover."""

    kind = "not modelled"


class UmlError(QaicModelError):
    """Building, booting or running the User-Mode Linux guest failed.

    Covers a missing or broken kernel build, an unreachable source package, a
    guest that died, hung past its timeout or printed a kernel splat.
    """

    kind = "uml"


class TransportError(QaicModelError):
    """A malformed message on the vhost-user socket or in a virtqueue.

    ``where`` names the message or descriptor that was wrong.
    """

    kind = "vhost-user"

    def __init__(self, message: str, *, where: str = "") -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


# Linux errno numbers that Python's errno module may lack on some platforms.
_EXTRA_ERRNOS = {"ERESTARTSYS": 512}
