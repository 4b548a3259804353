"""One exception tree for the host package; each class maps to a CLI exit code.

    0 success                  4 TransportError (broker, serial port, TLS)
    1 TinyFLError (other)      5 DatasetError (a dataset file, its rows or its download)
    2 UsageError (arguments)   6 FirmwareError (the node firmware build)
    3 WireError (bad frame)    7 CheckpointError, CoordinatorError (a run cannot go on)
                               8 ModelError, BuildError (a model file, or a model that does not
                                 fit the node)
  130 interrupted (Ctrl-C, SIGTERM)

The classes are defined here, so the table is one; modules that raise them re-export them
(`tinyfl.model.tflite.ModelError` is this ModelError).
"""

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


class FirmwareError(TinyFLError):
    """The node firmware is missing or failed to build."""

    exit_code = 6


class CheckpointError(TinyFLError):
    """A checkpoint is missing, unreadable, or belongs to a different run."""

    exit_code = 7


class CoordinatorError(TinyFLError):
    """The run cannot go on: too few nodes to start, or a broker that never answered."""

    exit_code = 7


class ModelError(TinyFLError):
    """A model file (.tflite or firmware model blob) that is corrupt, truncated or uses something
    TinyFL does not implement (an unsupported op is named in the message)."""

    exit_code = 8


class BuildError(TinyFLError):
    """The model cannot be built or does not fit the node."""

    exit_code = 8
