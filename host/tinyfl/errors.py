"""One exception tree for the host package; each class maps to a CLI exit code."""

from __future__ import annotations


class TinyFLError(Exception):
    """Base of every error TinyFL raises on purpose."""

    exit_code = 1


class UsageError(TinyFLError):
    """Bad command-line arguments or configuration."""

    exit_code = 2


class WireError(TinyFLError):
    """Bytes from outside that are not a valid frame (see docs/WIRE.md).

    `reason` is the same short name the firmware logs (e.g. "bad_crc"), so a node's log line and a
    host exception about the same bytes read alike.
    """

    exit_code = 3

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class TransportError(TinyFLError):
    """A broker, serial port or socket failed or could not be reached."""

    exit_code = 4


class DatasetError(TinyFLError):
    """A dataset is missing, unreadable or invalid (names the file and the row or array at fault),
    or cannot be downloaded or fails its checksum."""

    exit_code = 5
