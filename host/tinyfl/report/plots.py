"""The run report's figures, as PNG bytes: accuracy, bytes and participation per round.

Inputs are a run's round records (`tinyfl.coordinator.metrics.read_metrics`) and, optionally, its
`Baselines`. Drawn with matplotlib's object API on the Agg canvas, never pyplot: no global
backend switch and no figure registry in a library that a CLI or a notebook imports. Output is
deterministic for the same inputs (fixed size and dpi, matplotlib's default style whatever the
user's matplotlibrc says, no Software/date metadata), so a regenerated report is byte-identical.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.style
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from tinyfl.report.baselines import Baselines

__all__ = [
    "ACCURACY_PNG",
    "BYTES_PNG",
    "PARTICIPATION_PNG",
    "SAMPLES_PNG",
    "accuracy_png",
    "bytes_png",
    "participation_png",
    "render_plots",
    "samples_png",
]

ACCURACY_PNG = "accuracy.png"
BYTES_PNG = "bytes.png"
PARTICIPATION_PNG = "participation.png"
SAMPLES_PNG = "samples.png"
FIGSIZE = (8.0, 4.5)  # inches
DPI = 100
MAX_NODE_LABELS = 40  # more node rows than this and their ids would overlap: ticks only
Record = Mapping[str, Any]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No "Software" (matplotlib's version) and no creation time: same input, same bytes.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _figure() -> Figure:
    return Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")


def _number(value: Any) -> float:
    """A record field as a float; NaN for null or missing (JSON has no NaN)."""
    return (
        float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else math.nan
    )


def _rounds(records: Sequence[Record]) -> list[int]:
    return [int(r.get("round", i + 1)) for i, r in enumerate(records)]


def _legend(ax: Any, handles: Sequence[Any] | None = None) -> None:
    """Below the axes, where it cannot hide a curve or a bar."""
    kwargs: dict[str, Any] = {} if handles is None else {"handles": list(handles)}
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.15),
        ncol=3,
        fontsize="small",
        frameon=False,
        **kwargs,
    )


def _no_data(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _accuracy_range(acc: Any, baselines: Baselines | None) -> tuple[float, float]:
    """Y range in percent: from a little below the lowest value shown (run, curves, references)
    to 100, so that points apart at the top of the scale stay visibly apart."""
    values = [float(v) for v in acc if np.isfinite(v)]
    if baselines is not None:
        values += [100 * baselines.central.accuracy, 100 * baselines.local_only.mean_accuracy]
        values += [100 * a for c in baselines.federated for a in c.accuracy]
    low = min(values, default=0.0)
    return (max(0.0, 5.0 * math.floor((low - 2) / 5)), 100.0)


def accuracy_png(records: Sequence[Record], baselines: Baselines | None = None,
                 initial: float | None = None) -> bytes:
    """Test accuracy per round (skipped rounds as hollow markers: the head did not change), from
    the starting head's accuracy at round 0 when `initial` is given, with the central and mean
    local-only references as horizontal lines and the simulated federated curves of
    `baselines` dashed."""
    with matplotlib.style.context("default"):
        fig = _figure()
        ax = fig.add_subplot()
        rounds = _rounds(records)
        acc = np.array([_number(r.get("test_accuracy")) for r in records]) * 100
        if initial is not None:
            rounds = [0, *rounds]
            acc = np.concatenate([[initial * 100], acc])
            ax.plot([0], [initial * 100], "s", color="C0", label=f"starting head {initial:.1%}")
        offset = 1 if initial is not None else 0
        if records:
            ax.plot(rounds, acc, marker="o", color="C0", label="this run (test accuracy)",
                    markevery=list(range(offset, len(rounds))))
            skipped = [i + offset for i, r in enumerate(records) if r.get("status") != "closed"]
            if skipped:
                ax.plot(
                    [rounds[i] for i in skipped],
                    acc[skipped],
                    "o",
                    color="white",
                    markeredgecolor="C0",
                    label="skipped round",
                )
        if baselines is not None:
            for i, curve in enumerate(baselines.federated):
                xs = list(range(1, len(curve.accuracy) + 1))
                ax.plot(
                    xs,
                    np.array(curve.accuracy) * 100,
                    linestyle="--",
                    color=f"C{i + 3}",
                    label=f"{curve.label} (simulated)",
                )
            ax.axhline(
                baselines.central.accuracy * 100,
                color="C2",
                linestyle=":",
                label=f"central head {baselines.central.accuracy:.1%}",
            )
            ax.axhline(
                baselines.local_only.mean_accuracy * 100,
                color="C1",
                linestyle=":",
                label=f"local-only mean {baselines.local_only.mean_accuracy:.1%}",
            )
        if not records and baselines is None:
            _no_data(ax, "no rounds recorded")
        else:
            ax.set_xlabel("round")
            ax.set_ylabel("test accuracy (%)")
            ax.set_ylim(*_accuracy_range(acc, baselines))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, alpha=0.3)
            handles = ax.get_legend_handles_labels()[0]
            handles += _epsilon_line(ax, records)
            _legend(ax, handles)
        ax.set_title("Global head on the test set")
        return _png(fig)


def _epsilon_line(ax: Any, records: Sequence[Record]) -> list[Any]:
    """A differentially private run's epsilon after each round, on a right-hand axis; its line
    for the legend ([] for a run without differential privacy)."""
    eps = [(int(r.get("round", i + 1)), _number(r.get("epsilon"))) for i, r in enumerate(records)
           if "epsilon" in r]
    if not eps:
        return []
    right = ax.twinx()
    delta = next((r.get("dp_delta") for r in records if "dp_delta" in r), None)
    (line,) = right.plot([x for x, _ in eps], [e for _, e in eps], color="C7", linestyle="-.",
                         label=f"epsilon spent (delta {delta})")
    right.set_ylabel("epsilon (node level)")
    right.set_ylim(bottom=0)
    return [line]


def bytes_png(records: Sequence[Record], baselines: Baselines | None = None) -> bytes:
    """Uplink (every UPDATE packet received) and downlink (the GLOBAL packet times the nodes
    online) bytes per round, as recorded in metrics.jsonl; the simulated runs' uplink bytes of
    `baselines` dashed (e.g. what float32 updates would have cost)."""
    with matplotlib.style.context("default"):
        fig = _figure()
        ax = fig.add_subplot()
        if not records:
            _no_data(ax, "no rounds recorded")
        else:
            rounds = np.array(_rounds(records), dtype=float)
            up = [_number(r.get("bytes_up")) for r in records]
            down = [_number(r.get("bytes_down")) for r in records]
            width = 0.4
            ax.bar(rounds - width / 2, up, width, color="C0", label="uplink (updates)")
            ax.bar(rounds + width / 2, down, width, color="C1", label="downlink (global head)")
            ax.set_xlabel("round")
            ax.set_ylabel("bytes (MQTT PUBLISH packets)")
            ax.grid(True, axis="y", alpha=0.3)
            if baselines is not None:
                for i, curve in enumerate(baselines.federated):
                    xs = np.arange(1, len(curve.bytes_up) + 1)
                    ax.step(
                        xs,
                        curve.bytes_up,
                        where="mid",
                        linestyle="--",
                        color=f"C{i + 3}",
                        label=f"uplink, {curve.label} (simulated)",
                    )
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            _legend(ax)
        ax.set_title("Bytes on the wire per round")
        return _png(fig)


def participation_png(records: Sequence[Record], node_ids: Sequence[str] = ()) -> bytes:
    """One row per node, one column per round: filled where the node's update was accepted
    (`answered_ids`), lighter where it was but the round was skipped (not averaged in).
    `node_ids` adds nodes that never answered (e.g. the fleet from the baselines) as empty rows.
    Runs recorded before `answered_ids` existed get a note instead."""
    with matplotlib.style.context("default"):
        fig = _figure()
        ax = fig.add_subplot()
        have_ids = [r for r in records if isinstance(r.get("answered_ids"), list)]
        ax.set_title("Accepted updates per node and round")
        if not have_ids:
            _no_data(ax, "no per-node data in metrics.jsonl (no answered_ids)")
            return _png(fig)
        nodes = sorted({str(n) for r in have_ids for n in r["answered_ids"]} | set(node_ids))
        row = {n: i for i, n in enumerate(nodes)}
        rounds = _rounds(records)
        grid = np.zeros((max(len(nodes), 1), len(records)), dtype=np.int8)
        for j, r in enumerate(records):
            value = 2 if r.get("status") == "closed" else 1
            for n in r.get("answered_ids") or ():
                grid[row[str(n)], j] = value
        cmap = ListedColormap(["#f0f0f0", "#9ecae1", "#08519c"])
        ax.imshow(
            grid,
            aspect="auto",
            interpolation="nearest",
            cmap=cmap,
            vmin=0,
            vmax=2,
            extent=(rounds[0] - 0.5, rounds[-1] + 0.5, len(nodes) - 0.5, -0.5),
        )
        ax.set_xlabel("round")
        ax.set_ylabel("node")
        if len(nodes) <= MAX_NODE_LABELS:
            ax.set_yticks(range(len(nodes)), nodes, fontsize="small")
        else:
            ax.set_ylabel(f"node ({len(nodes)}, in id order)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _legend(
            ax,
            handles=[
                Patch(color="#08519c", label="averaged in"),
                Patch(color="#9ecae1", label="accepted, round skipped"),
                Patch(color="#f0f0f0", label="no accepted update"),
            ],
        )
        return _png(fig)


def samples_png(records: Sequence[Record]) -> bytes:
    """The samples each node's counted update was trained on, round by round
    (`answered_samples`): flat for nodes loaded at boot, rising for nodes on a live sensor."""
    with matplotlib.style.context("default"):
        fig = _figure()
        ax = fig.add_subplot()
        ax.set_title("Samples each node trained on")
        per_round = [r.get("answered_samples") for r in records]
        if not any(isinstance(p, dict) and p for p in per_round):
            _no_data(ax, "no per-node samples in metrics.jsonl (no answered_samples)")
            return _png(fig)
        nodes = sorted({str(n) for p in per_round if isinstance(p, dict) for n in p})
        rounds = _rounds(records)
        for node in nodes:
            ys = [float(p[node]) if isinstance(p, dict) and node in p else np.nan
                  for p in per_round]
            ax.plot(rounds, ys, marker=".", linewidth=1,
                    label=node if len(nodes) <= MAX_NODE_LABELS else None)
        ax.set_xlabel("round")
        ax.set_ylabel("samples")
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(nodes) <= MAX_NODE_LABELS:
            _legend(ax)
        return _png(fig)


def render_plots(records: Sequence[Record], baselines: Baselines | None = None,
                 initial: float | None = None) -> dict[str, bytes]:
    """Every figure of the report: file name -> PNG bytes."""
    node_ids = tuple(baselines.nodes) if baselines is not None else ()
    return {
        ACCURACY_PNG: accuracy_png(records, baselines, initial),
        BYTES_PNG: bytes_png(records, baselines),
        PARTICIPATION_PNG: participation_png(records, node_ids),
        SAMPLES_PNG: samples_png(records),
    }
