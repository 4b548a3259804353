"""The node data blob (docs/WIRE.md, "Data blob"): a node's labelled int8 samples.

What an emulated node holds as its sensor history: loaded into memory on `qemu_cortex_m4`, read
from a file on `native`. `DataBlob.to_bytes()` / `DataBlob.from_bytes()` mirror the firmware's
`parse_blob()` check for check; errors raise `WireError` with the firmware's reason.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tinyfl.errors import WireError

__all__ = ["BlobKind", "DataBlob"]

BLOB_MAGIC = b"TFDB"
BLOB_VERSION = 1
BLOB_HEADER_SIZE = 32
_HEADER = struct.Struct("<4sBBHIHHfi8s")


class BlobKind(IntEnum):
    FEATURES = 1  # int8 feature vectors, already embeddings
    RAW_WINDOWS = 2  # int8 raw sensor windows, need a backbone


@dataclass(frozen=True, eq=False)
class DataBlob:
    """Samples (n, dim) int8 with labels (n,) uint8; value = (q - zero_point) * scale."""

    kind: int
    n_classes: int
    scale: float
    zero_point: int
    model_hash: bytes
    labels: npt.NDArray[np.uint8]
    samples: npt.NDArray[np.int8]

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        samples = np.asarray(self.samples)
        if samples.ndim != 2 or labels.ndim != 1 or labels.shape[0] != samples.shape[0]:
            raise ValueError("samples must be (n, dim) and labels (n,)")
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise ValueError("labels must fit in uint8")
        if samples.size and (samples.min() < -128 or samples.max() > 127):
            raise ValueError("samples must fit in int8")
        object.__setattr__(self, "labels", np.ascontiguousarray(labels, dtype=np.uint8))
        object.__setattr__(self, "samples", np.ascontiguousarray(samples, dtype=np.int8))

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def dim(self) -> int:
        return int(self.samples.shape[1])

    def values(self) -> npt.NDArray[np.float32]:
        """The samples as float32: (q - zero_point) * scale."""
        zp = np.float32(self.zero_point)
        return ((self.samples.astype(np.float32) - zp) * np.float32(self.scale)).astype(np.float32)

    def to_bytes(self) -> bytes:
        """The blob's bytes, checked by parsing them back (invalid fields raise WireError)."""
        n = self.n_samples
        if len(self.model_hash) != 8:
            raise WireError("bad_value", "model_hash must be 8 bytes")
        try:
            header = _HEADER.pack(
                BLOB_MAGIC,
                BLOB_VERSION,
                self.kind,
                0,
                n,
                self.dim,
                self.n_classes,
                self.scale,
                self.zero_point,
                self.model_hash,
            )
        except OverflowError as exc:
            raise WireError("non_finite", f"scale: {exc}") from None
        except struct.error as exc:
            raise WireError("bad_value", str(exc)) from None
        pad = bytes((-n) % 4)
        covered = header + self.labels.tobytes() + pad + self.samples.tobytes()
        data = covered + struct.pack("<I", zlib.crc32(covered))
        DataBlob.from_bytes(data)
        return data

    @classmethod
    def from_bytes(
        cls, data: bytes | bytearray | memoryview, *, allow_trailing: bool = False
    ) -> DataBlob:
        """Parses a blob. Bytes after it are `bad_length` unless `allow_trailing` (as on a board,
        whose parser is given the whole memory region the blob was loaded into)."""
        raw = bytes(data)
        if len(raw) < BLOB_HEADER_SIZE:
            raise WireError("truncated", f"{len(raw)} bytes, a blob header is {BLOB_HEADER_SIZE}")
        magic, version, kind, reserved, n, dim, n_classes, scale, zero_point, model_hash = (
            _HEADER.unpack_from(raw)
        )
        if magic != BLOB_MAGIC:
            raise WireError("bad_magic", f"starts with {magic!r}")
        if version != BLOB_VERSION:
            raise WireError("bad_version", f"blob version {version}")
        if kind not in (BlobKind.FEATURES, BlobKind.RAW_WINDOWS):
            raise WireError("bad_value", f"blob kind {kind}")
        if reserved:
            raise WireError("bad_value", "reserved field is not 0")
        pad = (-n) % 4
        total = BLOB_HEADER_SIZE + n + pad + n * dim + 4
        if len(raw) < total:
            raise WireError("truncated", f"{len(raw)} bytes, the blob says {total}")
        if len(raw) > total and not allow_trailing:
            raise WireError("bad_length", f"{len(raw)} bytes, the blob says {total}")
        if zlib.crc32(raw[: total - 4]) != int.from_bytes(raw[total - 4 : total], "little"):
            raise WireError("bad_crc")
        if dim == 0 or n_classes == 0:
            raise WireError("bad_value", "dim and n_classes must be >= 1")
        if not math.isfinite(scale):
            raise WireError("non_finite", f"scale is {scale}")
        if scale <= 0 or not -128 <= zero_point <= 127:
            raise WireError(
                "bad_value", f"scale {scale} must be > 0, zero_point {zero_point} in [-128, 127]"
            )
        start = BLOB_HEADER_SIZE
        labels = np.frombuffer(raw, dtype=np.uint8, count=n, offset=start).copy()
        if labels.size and int(labels.max()) >= n_classes:
            raise WireError("bad_value", f"a label is >= n_classes ({n_classes})")
        if any(raw[start + n : start + n + pad]):
            raise WireError("bad_value", "label padding is not zero")
        samples = np.frombuffer(raw, dtype=np.int8, count=n * dim, offset=start + n + pad)
        return cls(
            kind,
            n_classes,
            float(scale),
            zero_point,
            model_hash,
            labels,
            samples.reshape(n, dim).copy(),
        )

    def write(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def read(cls, path: str | Path) -> DataBlob:
        return cls.from_bytes(Path(path).read_bytes())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DataBlob):
            return NotImplemented
        return (
            (self.kind, self.n_classes, self.zero_point, self.model_hash)
            == (other.kind, other.n_classes, other.zero_point, other.model_hash)
            and np.float32(self.scale) == np.float32(other.scale)
            and np.array_equal(self.labels, other.labels)
            and np.array_equal(self.samples, other.samples)
        )

    __hash__ = None  # type: ignore[assignment]
