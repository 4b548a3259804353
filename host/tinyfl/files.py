"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never a torn one."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_all"]


def atomic_write(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Writes `data` to a temporary name beside `path`, then renames it over `path` (atomic on
    POSIX). `durable` also fsyncs the file before and the folder after the rename, so the new
    file survives a power cut (checkpoints); without it the OS flushes in its own time."""
    atomic_write_all({Path(path): data}, durable=durable)


def atomic_write_all(files: Mapping[Path, bytes], *, durable: bool = False) -> None:
    """Every file to its temporary name first, then all renames: an error before the renames
    leaves nothing behind and changes no file."""
    tmps: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmps.append((tmp, path))
            with open(tmp, "wb") as f:
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
        for tmp, path in tmps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in tmps:
            tmp.unlink(missing_ok=True)
    if durable:
        for folder in {path.parent for _, path in tmps}:
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
