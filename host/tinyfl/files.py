"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never a torn one."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_all", "private_dir", "replace_folder"]


def atomic_write(path: Path, data: bytes, *, durable: bool = False, mode: int | None = None
                 ) -> None:
    """Writes `data` to a temporary name beside `path`, then renames it over `path` (atomic on
    POSIX). `durable` also fsyncs the file before and the folder after the rename, so the new
    file survives a power cut (checkpoints); without it the OS flushes in its own time. `mode`
    (e.g. 0o600 for secrets) is set before a byte is written, so no reader ever sees the file
    with looser permissions."""
    atomic_write_all({Path(path): data}, durable=durable, mode=mode)


def atomic_write_all(files: Mapping[Path, bytes], *, durable: bool = False,
                     mode: int | None = None) -> None:
    """Every file to its temporary name first, then all renames: an error before the renames
    leaves nothing behind and changes no file."""
    tmps: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmps.append((tmp, path))
            # created with its final mode (a reader that opened it looser could read it later)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
            with os.fdopen(fd, "wb") as f:
                if mode is not None:
                    os.fchmod(f.fileno(), mode)  # an existing tmp keeps its mode: set it
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


def replace_folder(out: Path, files: Mapping[str, bytes]) -> None:
    """Writes `files` (name -> bytes) into a temporary sibling folder, then swaps it in for `out`
    with renames: a reader sees the old folder or the complete new one, and a failure leaves the
    old one as it was."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def private_dir(path: Path) -> Path:
    """`path` as a folder only its owner can enter (0700), created with its parents if missing.
    Run folders hold a fleet's data blobs, metrics and secrets: nobody else needs to read them."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
