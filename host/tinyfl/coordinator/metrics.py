"""Per-round records: one JSON object per line in runs/<id>/metrics.jsonl.

JSON lines because a run is a stream: a line is complete once written (flushed and fsynced per
round), a crash loses at most the round in flight, and `jq`, pandas or a spreadsheet read it as
is. Fields (all rounds, skipped ones too):

    round, wire_round, status ("closed" | "skipped"), reason (why skipped, else null),
    selected, answered, answered_ids (the ids of the nodes counted in `answered`, sorted),
    answered_samples ({id: samples that node's counted update was trained on}),
    missing (selected without an accepted update), late (a past round's
    updates), dropped (duplicates, unselected nodes, future rounds), rejected (invalid updates),
    rejected_reasons ({reason: count}), online, eligible, benched (eligible nodes sitting out
    after missing a deadline: tinyfl.coordinator.stragglers),
    bytes_up (every UPDATE received since the previous round closed, as the whole QoS 1
    PUBLISH packet its node sent: fixed header, topic, packet id, payload), bytes_down (the
    GLOBAL PUBLISH packet times the nodes online to receive it), global_bytes (that packet once),
    wall_time_s, collect_time_s, aggregate_time_s, eval_time_s,
    train_loss (nodes' last-epoch loss, weighted by samples), local_accuracy (nodes' reported
    accuracy, weighted by samples), samples, test_accuracy, test_loss, f1 ({class: F1}),
    macro_f1, strategy (what the strategy reported, e.g. clipped updates).

With --dp central (tinyfl.coordinator.privacy), also: epsilon (spent after this round, at
dp_delta: node-level, covering every GLOBAL released so far), dp_delta, dp_rounds (rounds
charged so far), and for an aggregated round dp_noise_std (the Gaussian noise's standard
deviation on the average delta) and dp_clipped (updates the coordinator clipped again).
With --dp distributed the same epsilon fields, and for an aggregated round dp_node_var (each
node's discrete Gaussian sigma^2, code units) and dp_noise_std (the noise's standard deviation
on the released mean delta); train_loss and local_accuracy read 0 (the nodes blank them).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["METRICS_NAME", "MetricsLog", "read_metrics"]

METRICS_NAME = "metrics.jsonl"


def _clean(value: Any) -> Any:
    """JSON has no NaN: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class MetricsLog:
    """Appends round records to a JSON-lines file, durably (flush + fsync per line)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(_clean(record), sort_keys=False, allow_nan=False)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def truncate_after(self, round_no: int) -> list[dict[str, Any]]:
        """Keeps the records of rounds 1..round_no (what the checkpoint covers) and drops any
        later line, e.g. a round whose record was written before a crash kept its checkpoint
        from being saved. Returns the records kept. The rewrite is atomic (tmp + rename)."""
        records = [r for r in read_metrics(self.path) if int(r.get("round", 0)) <= round_no]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(record) + "\n" for record in records)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        return records


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every complete record of a metrics file (a torn last line is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    out: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def weighted_mean(pairs: Iterable[tuple[float, int]]) -> float:
    """sum(v * w) / sum(w), NaN for no weight."""
    total = 0.0
    weight = 0
    for value, w in pairs:
        total += value * w
        weight += w
    return total / weight if weight else math.nan
