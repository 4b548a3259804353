"""A run's trained head on its backbone as one deployable .tflite (and C header).

What `tinyfl export` and `tinyfl demo` both call. The model is built by tinyfl.model.export
without TensorFlow. Before anything is written it is run with LiteRT's reference kernels on
deterministic sample inputs and compared with the host's numpy backbone + head (argmax identical,
probabilities within 1e-5); a disagreement fails with exit 8 and writes nothing. Without
ai-edge-litert the check is skipped and the summary says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyfl.coordinator.checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
)
from tinyfl.coordinator.run_folder import read_config
from tinyfl.errors import UsageError
from tinyfl.files import atomic_write_all
from tinyfl.model import export
from tinyfl.model.artifacts import ModelArtifacts, load_artifacts, model_dir
from tinyfl.model.firmware_blob import export_blob
from tinyfl.model.tflite import ModelError, read_model

__all__ = ["DEFAULT_SAMPLES", "Exported", "check_run", "export_run"]

DEFAULT_SAMPLES = 64
LITERT_MISSING = "ai-edge-litert is not installed (pip install 'tinyfl[model]')"


@dataclass(frozen=True)
class Exported:
    folder: Path
    artifacts: ModelArtifacts
    round: int
    size: int
    verdict: str  # what the LiteRT check found (or why it was skipped)


def check_run(ckpt: Checkpoint, art: ModelArtifacts, run_name: str) -> None:
    """CheckpointError (exit 7) when the run's head was not trained for this model: another
    model hash, or a head that is not (classes, embedding + 1)."""
    if ckpt.model_hash != art.model_hash:
        raise CheckpointError(f"{run_name} trained for model {ckpt.model_hash.hex()}, "
                              f"{art.folder} is model {art.model_hash.hex()}")
    want = (len(art.classes), art.embed_dim + 1)
    if tuple(ckpt.head.shape) != want:
        raise CheckpointError(f"{run_name}: the head is {list(ckpt.head.shape)}, {art.folder} "
                              f"needs {list(want)} ({len(art.classes)} classes, embedding "
                              f"{art.embed_dim} + bias)")


def _model_folder(run_dir: Path, model: str | None, ckpt: Checkpoint) -> Path:
    """--model, else the folder the run trained with (config.json's task, else the
    checkpoint's task name under models/)."""
    if model:
        return model_dir(model)
    config = read_config(run_dir) or {}
    spec = str(config.get("task", "") or ckpt.task)
    folder = model_dir(spec) if spec else None
    if folder is None or not (folder / "metadata.json").is_file():
        raise ModelError(f"{run_dir} trained {spec or 'an unknown model'!r}, which has no model "
                         "folder here; give it with --model")
    return folder


def export_run(run_dir: Path, out: Path, header: Path | None = None, model: str | None = None,
               samples: int = DEFAULT_SAMPLES) -> Exported:
    """Checks, builds, verifies and writes the deployable model of the run in `run_dir`."""
    if samples < 0:
        raise UsageError("--samples must be >= 0")
    if not run_dir.is_dir():
        raise CheckpointError(f"no run folder at {run_dir}")
    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise CheckpointError(f"{run_dir} has no {CHECKPOINT_NAME}: the run has not completed a "
                              "round yet, or this is not a folder written by tinyfl coordinate")
    ckpt = load_checkpoint(run_dir / CHECKPOINT_NAME)
    folder = _model_folder(run_dir, model, ckpt)
    art = load_artifacts(folder)
    try:
        backbone = (folder / "backbone.tflite").read_bytes()
    except OSError as exc:
        raise ModelError(f"{folder}: cannot read backbone.tflite ({exc})") from exc
    # The model hash names the firmware blob; the .tflite is the one the fleet ran only if the
    # blob is derived from it.
    if export_blob(read_model(backbone)) != (folder / "backbone.tfmb").read_bytes():
        raise ModelError(f"{folder}: backbone.tflite is not the backbone of backbone.tfmb "
                         f"(model {art.model_hash.hex()}); rebuild the folder")
    check_run(ckpt, art, str(run_dir))
    tflite = export.build_deploy_model(
        backbone, ckpt.head,
        description=(f"TinyFL deployable model: backbone {art.model_hash.hex()} ({art.name}) + "
                     f"head of {run_dir.name} round {ckpt.round} + softmax"
                     + (f"; input: the features of DSP stage {art.stage.describe()}"
                        if art.stage is not None else "")))
    if samples:
        codes = export.sample_inputs(art.input_shape, art.input_zero_point, samples)
        check = export.verify(tflite, art, ckpt.head, codes)
        if check is None:
            verdict = f"LiteRT check skipped: {LITERT_MISSING}"
        elif not check.ok:
            raise ModelError(
                f"the exported model disagrees with the host computation on {samples} "
                f"sample inputs: argmax identical {check.argmax_equal}/{check.n}, max |dp| "
                f"{check.max_abs_diff:.3g} (limit {export.PROB_TOLERANCE:g}); nothing written")
        else:
            verdict = (f"LiteRT (reference kernels) = host on {check.n} sample inputs: argmax "
                       f"identical {check.argmax_equal}/{check.n}, max |dp| "
                       f"{check.max_abs_diff:.2g}")
    else:
        verdict = "LiteRT check skipped (--samples 0)"
    files = {out: tflite}
    if header is not None:
        files[header] = export.c_header(tflite, art.model_hash, art.name, art.classes,
                                        stage=art.stage).encode()
    atomic_write_all(files, durable=True)
    return Exported(folder, art, ckpt.round, len(tflite), verdict)
