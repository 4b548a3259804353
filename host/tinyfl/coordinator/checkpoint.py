"""Checkpoints: everything needed to continue a run after a crash, written atomically.

One file, `checkpoint.npz` (numpy's zip of arrays, loaded with `allow_pickle=False`, so reading
a checkpoint never executes code): the global head, the strategy's optimizer state, and a JSON
record of the round, the wire round id, the seed, the task and the whole run configuration.

RNG state: every random choice of round r (node selection, the nodes' shuffles and rounding, the
downlink's dithering) is drawn from generators seeded with (seed, r), never from a generator
carried across rounds. The seed and the round id are therefore the whole RNG state, and a
resumed run draws exactly what an uninterrupted run would have drawn. Central differential
privacy's noise is drawn from (the run's secret noise key, r): the key lives in its own file,
`dp_noise.key` (coordinator/privacy.py), never in the checkpoint, and `privacy` holds the rounds
charged and the fixed denominator.

Atomicity: the file is written to a temporary name in the same folder, flushed and fsynced, then
renamed over the old one with `os.replace` (atomic on POSIX), and the folder is fsynced so the
rename itself survives a power cut. A crash at any moment leaves either the old checkpoint or the
new one, never a torn file.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinyfl.errors import CheckpointError
from tinyfl.files import atomic_write
from tinyfl.strategy import StateValue

__all__ = [
    "CHECKPOINT_NAME",
    "Checkpoint",
    "CheckpointError",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_NAME = "checkpoint.npz"
FORMAT_VERSION = 1
_STATE_PREFIX = "state/"



@dataclass(frozen=True, eq=False)
class Checkpoint:
    """The run after `round` rounds (skipped ones included).

    `wire_round` is the last round id published on the wire; the next GLOBAL must carry a larger
    one, because nodes ignore round ids they have already served (docs/WIRE.md).
    """

    round: int
    wire_round: int
    seed: int
    head: npt.NDArray[np.float32]
    state: dict[str, StateValue]
    task: str
    model_hash: bytes
    config: dict[str, Any] = field(default_factory=dict)
    # straggler back-off (coordinator.stragglers): node -> (misses in a row, benched through
    # round), part of the state a resumed run needs to select as an uninterrupted one would
    stragglers: dict[str, tuple[int, int]] = field(default_factory=dict)
    # central differential privacy (coordinator.privacy.PrivacyState): rounds charged and the
    # fixed denominator; empty when the run adds no noise
    privacy: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: Path, ckpt: Checkpoint) -> None:
    """Writes `ckpt` to `path` atomically (see the module docstring)."""
    scalars: dict[str, Any] = {}
    meta = {
        "format": FORMAT_VERSION,
        "round": ckpt.round,
        "wire_round": ckpt.wire_round,
        "seed": ckpt.seed,
        "task": ckpt.task,
        "model_hash": ckpt.model_hash.hex(),
        "config": ckpt.config,
        "stragglers": {node: list(v) for node, v in sorted(ckpt.stragglers.items())},
        "state_scalars": scalars,
        "privacy": ckpt.privacy,
        "rng": "per-round generators seeded from (seed, round); no carried state",
    }
    arrays: dict[str, npt.NDArray[Any]] = {"head": np.asarray(ckpt.head, dtype=np.float32)}
    for key, value in ckpt.state.items():
        if isinstance(value, np.ndarray):
            arrays[_STATE_PREFIX + key] = value
        else:
            scalars[key] = value.item() if isinstance(value, np.generic) else value
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds oddly
    atomic_write(path, buffer.getvalue(), durable=True)


def load_checkpoint(path: Path) -> Checkpoint:
    """Reads a checkpoint written by `save_checkpoint`; CheckpointError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: nothing to resume")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        meta = json.loads(bytes(arrays.pop("meta")).decode())
        if meta.get("format") != FORMAT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format {meta.get('format')} is unknown")
        head = arrays.pop("head")
        state: dict[str, StateValue] = {}
        for name, value in arrays.items():
            if name.startswith(_STATE_PREFIX):
                state[name[len(_STATE_PREFIX) :]] = value
        scalars: Mapping[str, Any] = meta.get("state_scalars", {})
        for key, value in scalars.items():
            state[key] = value
        ckpt = Checkpoint(
            round=int(meta["round"]),
            wire_round=int(meta["wire_round"]),
            seed=int(meta["seed"]),
            head=np.asarray(head, dtype=np.float32),
            state=state,
            task=str(meta["task"]),
            model_hash=bytes.fromhex(meta["model_hash"]),
            config=dict(meta.get("config", {})),
            stragglers={str(n): (int(v[0]), int(v[1]))
                        for n, v in dict(meta.get("stragglers", {})).items()},
            privacy=dict(meta.get("privacy", {})),
        )
    except CheckpointError:
        raise
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        zipfile.BadZipFile,
        json.JSONDecodeError,
    ) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from exc
    if ckpt.head.ndim != 2 or not np.isfinite(ckpt.head).all():
        raise CheckpointError(f"{path}: the global head is not a finite matrix")
    if ckpt.round < 0 or ckpt.wire_round < 0:
        raise CheckpointError(f"{path}: round {ckpt.round} / wire round {ckpt.wire_round} invalid")
    return ckpt
