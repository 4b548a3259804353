"""report.html: one self-contained page per run (inline CSS, PNGs as base64 data URIs).

Self-contained so that the file can be mailed, attached to a CI job or opened from a USB stick
and still show everything; the only link is to the run's exported model file, which sits beside
it in the run folder. Every piece of text that comes from the run (fleet prefix, task, node ids,
skip reasons) is escaped: a fleet name is user input.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tinyfl.report.baselines import Baselines
from tinyfl.report.plots import ACCURACY_PNG, BYTES_PNG, PARTICIPATION_PNG, SAMPLES_PNG

__all__ = ["RunSummary", "render_html", "summarize"]

Record = Mapping[str, Any]

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 60em; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f6f6f6; }
td.key, th.key { text-align: left; }
.summary td:first-child { text-align: left; color: #555; }
.skipped { color: #a33; }
img { max-width: 100%; height: auto; display: block; margin: 1em 0; }
.note { color: #666; font-size: 0.9em; }
"""

FIGURES = (
    (ACCURACY_PNG, "Test accuracy per round"),
    (BYTES_PNG, "Bytes per round"),
    (PARTICIPATION_PNG, "Participation"),
    (SAMPLES_PNG, "Samples per node"),
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2%}"


def _points(points: float | None) -> str:
    return "n/a" if points is None else f"{points:+.2f} points"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclass(frozen=True)
class RunSummary:
    """The headline numbers of a run. `nodes_answered` is None for runs recorded before
    metrics carried `answered_ids`; `central`/`local_only` are None without baselines."""

    rounds: int
    closed: int
    final_accuracy: float | None
    final_macro_f1: float | None
    bytes_up: int
    bytes_down: int
    nodes_online: int
    nodes_answered: int | None
    central: float | None
    local_only: float | None

    @property
    def gap_to_central_points(self) -> float | None:
        """final - central, in percentage points (negative: below the central head)."""
        return _diff_points(self.final_accuracy, self.central)

    @property
    def gain_over_local_points(self) -> float | None:
        """final - mean local-only, in percentage points (positive: the fleet helped)."""
        return _diff_points(self.final_accuracy, self.local_only)


def _diff_points(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or not math.isfinite(value - reference):
        return None
    return (value - reference) * 100


def summarize(records: Sequence[Record], baselines: Baselines | None = None) -> RunSummary:
    """The summary of a run's records: the final round's test scores, totals, node counts."""
    last = records[-1] if records else {}
    with_ids = [r for r in records if isinstance(r.get("answered_ids"), list)]
    return RunSummary(
        rounds=len(records),
        closed=sum(1 for r in records if r.get("status") == "closed"),
        final_accuracy=_num(last.get("test_accuracy")),
        final_macro_f1=_num(last.get("macro_f1")),
        bytes_up=sum(int(_num(r.get("bytes_up")) or 0) for r in records),
        bytes_down=sum(int(_num(r.get("bytes_down")) or 0) for r in records),
        nodes_online=max((int(_num(r.get("online")) or 0) for r in records), default=0),
        nodes_answered=len({str(n) for r in with_ids for n in r["answered_ids"]})
        if with_ids
        else None,
        central=baselines.central.accuracy if baselines else None,
        local_only=baselines.local_only.mean_accuracy if baselines else None,
    )


def _rows(pairs: Sequence[tuple[str, str]]) -> str:
    return "\n".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in pairs)


def _summary_table(s: RunSummary, baselines: Baselines | None,
                   start: Mapping[str, Any] | None = None, privacy: str | None = None) -> str:
    pairs = []
    if start is not None:
        acc = start.get("test_accuracy")
        pairs.append((f"starting head ({start.get('head', 'zeros')}), round 0",
                      _pct(float(acc) if isinstance(acc, (int, float)) else None)))
    pairs += [
        ("final test accuracy", _pct(s.final_accuracy)),
        ("final macro F1", "n/a" if s.final_macro_f1 is None else f"{s.final_macro_f1:.3f}"),
        ("rounds (closed / recorded)", f"{s.closed} / {s.rounds}"),
        ("nodes online (most in a round)", str(s.nodes_online)),
    ]
    if s.nodes_answered is not None:
        pairs.append(("nodes that sent an accepted update", str(s.nodes_answered)))
    pairs += [
        ("bytes up (total)", f"{s.bytes_up:,}"),
        ("bytes down (total)", f"{s.bytes_down:,}"),
    ]
    if privacy is not None:
        pairs.append(("differential privacy (node level, central)", privacy))
    if baselines is not None:
        local = baselines.local_only
        central = baselines.central
        central_label = (
            f"central head (pooled data, {central.epochs} epochs, lr {central.lr:g}, "
            f"batch {central.batch_size})"
        )
        local_label = f"local-only mean ({len(local.per_node)} nodes, {local.epochs} epochs each)"
        pairs += [
            (central_label, _pct(s.central)),
            ("gap to central", _points(s.gap_to_central_points)),
            (local_label, _pct(s.local_only)),
            ("gain over local-only", _points(s.gain_over_local_points)),
        ]
        for curve in baselines.federated:
            up = sum(curve.bytes_up)
            pairs.append(
                (
                    f"{curve.label} (simulated), final / bytes up",
                    f"{_pct(curve.final_accuracy)} / {up:,}",
                )
            )
    return f'<table class="summary">\n{_rows(pairs)}\n</table>'


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += _flatten(value, f"{name}.")
        else:
            out.append((name, "-" if value is None else str(value)))
    return out


def _settings_table(config: Mapping[str, Any] | None) -> str:
    if not config:
        return '<p class="note">No config.json in the run folder.</p>'
    rows = "\n".join(
        f'<tr><td class="key">{_e(k)}</td><td class="key">{_e(v)}</td></tr>'
        for k, v in _flatten(config)
    )
    return f"<table>\n{rows}\n</table>"


ROUND_COLUMNS: tuple[tuple[str, str], ...] = (
    ("round", "round"),
    ("status", "status"),
    ("selected", "selected"),
    ("answered", "answered"),
    ("missing", "missing"),
    ("late", "late"),
    ("dropped", "dropped"),
    ("rejected", "rejected"),
    ("samples", "samples"),
    ("train_loss", "train loss"),
    ("test_accuracy", "test acc."),
    ("macro_f1", "macro F1"),
    ("bytes_up", "bytes up"),
    ("bytes_down", "bytes down"),
    ("wall_time_s", "time (s)"),
)


KEY_CLASS = ' class="key"'  # left-aligned cells (text, not numbers)


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "test_accuracy" and _num(value) is not None:
        return f"{float(value):.2%}"
    if isinstance(value, float):
        return (
            f"{value:.3f}" if key.endswith("_s") or "loss" in key or "f1" in key else f"{value:g}"
        )
    if isinstance(value, int) and not isinstance(value, bool) and key.startswith("bytes"):
        return f"{value:,}"
    return str(value)


def privacy_line(records: Sequence[Record]) -> str | None:
    """`(1.234, 1e-05)-DP after 20 charged rounds` from the last record of a private run (the
    epsilon that covers every GLOBAL released), None for a run without differential privacy."""
    last = next((r for r in reversed(records) if _num(r.get("epsilon")) is not None), None)
    if last is None:
        return None
    return (f"({float(last['epsilon']):.3f}, {last.get('dp_delta')})-DP after "
            f"{last.get('dp_rounds')} charged round(s)")


def _round_table(records: Sequence[Record]) -> str:
    if not records:
        return '<p class="note">No rounds recorded.</p>'
    columns = ROUND_COLUMNS + (
        (("epsilon", "epsilon"),) if any("epsilon" in r for r in records) else ()
    )
    head = "".join(
        f"<th{KEY_CLASS if k == 'status' else ''}>{_e(title)}</th>" for k, title in columns
    )
    lines = []
    for r in records:
        skipped = r.get("status") != "closed"
        cells = []
        for key, _ in columns:
            text = _e(_cell(key, r.get(key)))
            if key == "status" and skipped and r.get("reason"):
                text = f'<span title="{_e(r["reason"])}">{text}</span>'
            cells.append(f"<td{KEY_CLASS if key == 'status' else ''}>{text}</td>")
        cls = ' class="skipped"' if skipped else ""
        lines.append(f"<tr{cls}>{''.join(cells)}</tr>")
    reasons = [(r.get("round"), r.get("reason")) for r in records if r.get("reason")]
    notes = "".join(f"<li>round {_e(n)}: {_e(reason)}</li>" for n, reason in reasons)
    notes_html = f'<ul class="note">{notes}</ul>' if notes else ""
    return f"<table>\n<tr>{head}</tr>\n" + "\n".join(lines) + f"\n</table>\n{notes_html}"


def _image(name: str, title: str, png: bytes | None) -> str:
    if png is None:
        return f'<p class="note">{_e(name)} not available.</p>'
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(title)}">'


def render_html(
    *,
    title: str,
    config: Mapping[str, Any] | None,
    records: Sequence[Record],
    baselines: Baselines | None,
    images: Mapping[str, bytes],
    model_file: str | None = None,
    model_bytes: int | None = None,
) -> str:
    """The page as text. `images` maps the plot file names (plots.ACCURACY_PNG, ...) to PNG
    bytes; `model_file` is a path relative to the page (e.g. "model.tflite")."""
    summary = summarize(records, baselines)
    start = (config or {}).get("initial")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        "<h2>Summary</h2>",
        _summary_table(summary, baselines, start if isinstance(start, Mapping) else None,
                       privacy_line(records)),
    ]
    if baselines is not None:
        parts.append(
            '<p class="note">References are trained by the nodes\' own SGD (the numpy mirror '
            "of the firmware) on exactly the data each node holds, and scored on the same "
            "test set: the central head on all nodes' data pooled, local-only heads on each "
            "node's data alone, the simulated curves by the round engine with in-process "
            "nodes.</p>"
        )
    if model_file is not None:
        size = f" ({model_bytes:,} bytes)" if model_bytes is not None else ""
        parts.append(
            f'<p>Exported model: <a href="{_e(model_file)}">{_e(model_file)}</a>{_e(size)}</p>'
        )
    for name, caption in FIGURES:
        parts += [f"<h2>{_e(caption)}</h2>", _image(name, caption, images.get(name))]
    parts += [
        "<h2>Rounds</h2>",
        _round_table(records),
        "<h2>Settings</h2>",
        _settings_table(config),
    ]
    if baselines is not None:
        parts += [
            "<h3>References (baselines.json)</h3>",
            _settings_table({"task": baselines.task, "engine": baselines.settings}),
        ]
    parts += [
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)
