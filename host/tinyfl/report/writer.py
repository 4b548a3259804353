"""`write_report`: a run folder in, its PNGs and report.html out (what `tinyfl report` runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyfl.coordinator.metrics import METRICS_NAME, read_metrics
from tinyfl.coordinator.run_folder import CONFIG_NAME, read_config
from tinyfl.errors import UsageError
from tinyfl.files import atomic_write
from tinyfl.report.baselines import BASELINES_NAME, Baselines, load_baselines, save_baselines
from tinyfl.report.html import render_html
from tinyfl.report.plots import render_plots

__all__ = ["CONFIG_NAME", "MODEL_NAME", "REPORT_NAME", "read_run_config", "write_report"]

REPORT_NAME = "report.html"
MODEL_NAME = "model.tflite"  # the exported model, when the run has one
read_run_config = read_config  # config.json as the run folder's owner reads it


def _title(run_dir: Path, config: dict[str, Any] | None) -> str:
    title = f"TinyFL run {run_dir.resolve().name}"
    if config:
        task, prefix = config.get("task"), config.get("prefix")
        if task:
            title += f": {task}"
        if prefix:
            title += f" on {prefix}"
    return title


def write_report(run_dir: Path, baselines: Baselines | None = None) -> Path:
    """Writes accuracy.png, bytes.png, participation.png, samples.png and report.html into `run_dir` (each
    atomically) from its metrics.jsonl and config.json; returns the report's path.

    `baselines` given: drawn and also saved as baselines.json, so `tinyfl report` can redraw
    the same page later. None: baselines.json is read if the folder has one. UsageError when
    the folder holds no run (no metrics.jsonl).
    """
    run_dir = Path(run_dir)
    metrics = run_dir / METRICS_NAME
    if not metrics.is_file():
        raise UsageError(
            f"{run_dir} holds no run: no {METRICS_NAME} (written by tinyfl coordinate)"
        )
    records = read_metrics(metrics)
    config = read_run_config(run_dir)
    if baselines is not None:
        save_baselines(run_dir / BASELINES_NAME, baselines)
    elif (run_dir / BASELINES_NAME).is_file():
        baselines = load_baselines(run_dir / BASELINES_NAME)
    start = (config or {}).get("initial", {})
    initial = start.get("test_accuracy") if isinstance(start, dict) else None
    images = render_plots(records, baselines,
                          float(initial) if isinstance(initial, (int, float)) else None)
    model = run_dir / MODEL_NAME
    page = render_html(
        title=_title(run_dir, config),
        config=config,
        records=records,
        baselines=baselines,
        images=images,
        model_file=MODEL_NAME if model.is_file() else None,
        model_bytes=model.stat().st_size if model.is_file() else None,
    )
    for name, png in images.items():
        atomic_write(run_dir / name, png)
    out = run_dir / REPORT_NAME
    atomic_write(out, page.encode("utf-8"))
    return out
