"""Who holds which samples: the backbone's source, the fleet and the held-out test set; and the
int8 input quantization every later step shares.

A model is pretrained on its SOURCE samples and frozen; the fleet's nodes train the head on
theirs; the TEST samples score every round. No sample and no group may be in two of them, or the
federated result would be judged on data the backbone or a node has seen. Two ways to draw the
line:

- by group (`source_groups`, `test_groups`): whole users, machines or sites; every other group
  is the fleet's. Each named group must exist, and no group may be named twice.
- by rows, for data without groups (`source_fraction`): the first round(f * n) rows of a
  permutation from `split_seed` are the source; the held-out set is then a separate test file.

`SplitRule` is stored in the model folder's metadata, so `tinyfl data partition` and the
coordinator recompute exactly the same split from the same data file.

Input quantization (`fit_input_quantization`, fitted on the source samples only): what a node
feeds the backbone, int8 codes q with real value (q - zero_point) * scale. Windows and 2-D inputs
get a symmetric range (zero point 0) at the 99.9th percentile of |value|, so rare spikes clip
instead of stretching the step for everything else; non-negative feature vectors get the
asymmetric range [min(0, lo), hi] of their values, so [0, 1] features map onto all 256 codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tinyfl.data.dataset import Dataset
from tinyfl.errors import DatasetError

__all__ = [
    "QUANT_PERCENTILE",
    "Split",
    "SplitRule",
    "fit_input_quantization",
    "quantize",
    "split_rows",
]

QUANT_PERCENTILE = 99.9
ROLES = ("source", "fleet", "test")

Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class SplitRule:
    source_groups: tuple[str, ...] = ()
    test_groups: tuple[str, ...] = ()
    source_fraction: float = 0.0
    split_seed: int = 0

    def __post_init__(self) -> None:
        if self.source_groups and self.source_fraction:
            raise DatasetError("give source groups or a source fraction, not both")
        if not self.source_groups and not 0 < self.source_fraction < 1:
            raise DatasetError("the backbone needs source data: name --source-groups, or give "
                               "--source-fraction between 0 and 1 for data without groups")
        both = set(self.source_groups) & set(self.test_groups)
        if both:
            raise DatasetError(f"group(s) {sorted(both)} named as both source and test")

    def to_json(self) -> dict[str, Any]:
        return {"source_groups": list(self.source_groups), "test_groups": list(self.test_groups),
                "source_fraction": self.source_fraction, "split_seed": self.split_seed}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SplitRule:
        return cls(tuple(str(g) for g in doc.get("source_groups", ())),
                   tuple(str(g) for g in doc.get("test_groups", ())),
                   float(doc.get("source_fraction", 0.0)), int(doc.get("split_seed", 0)))


@dataclass(frozen=True)
class Split:
    """Boolean row masks of one dataset, disjoint; `groups` lists each role's group ids."""

    source: Mask
    fleet: Mask
    test: Mask
    groups: dict[str, list[str]]

    def counts(self) -> dict[str, int]:
        return {role: int(getattr(self, role).sum()) for role in ROLES}


def split_rows(data: Dataset, rule: SplitRule) -> Split:
    """The source, fleet and test rows of `data` under `rule`; DatasetError naming the problem
    (an unknown group, a rule that needs groups the data lacks, an empty role)."""
    n = len(data)
    if rule.source_groups or rule.test_groups:
        if data.groups is None:
            raise DatasetError(f"{data.origin} has no group array, so --source-groups and "
                               "--test-groups cannot apply; use --source-fraction and --test-data")
        present = set(data.group_names())
        missing = [g for g in (*rule.source_groups, *rule.test_groups) if g not in present]
        if missing:
            raise DatasetError(f"{data.origin}: group(s) {missing} not in the data (it has "
                               f"{', '.join(data.group_names())})")
        source = np.isin(data.groups, rule.source_groups) if rule.source_groups else None
        test = np.isin(data.groups, rule.test_groups)
    else:
        source, test = None, np.zeros(n, bool)
    if source is None:
        order = np.random.default_rng(rule.split_seed).permutation(n)
        source = np.zeros(n, bool)
        source[order[: round(rule.source_fraction * n)]] = True
        source &= ~test
    fleet = ~source & ~test
    groups: dict[str, list[str]] = {}
    if data.groups is not None:
        for role, mask in (("source", source), ("fleet", fleet), ("test", test)):
            groups[role] = sorted(set(data.groups[mask].tolist()),
                                  key=lambda g: (0, int(g)) if g.lstrip("-").isdigit() else (1, g))
        if rule.source_fraction:  # rows, not groups, are split: a group may be in two roles
            groups = {"fleet": groups["fleet"], "test": groups["test"]}
    split = Split(source, fleet, test, groups)
    for role in ("source", "fleet"):
        if not split.counts()[role]:
            raise DatasetError(f"{data.origin}: the {role} split is empty under {rule}")
    return split


def fit_input_quantization(source: npt.NDArray[np.float32], kind: str) -> tuple[float, int]:
    """(scale, zero_point) of the int8 input codes, from the source samples only (module
    docstring); the scale is a float32 value, as the blob and the .tflite store it."""
    if source.size == 0:
        raise DatasetError("no source samples to fit the input quantization on")
    values = source.astype(np.float64)
    lo = float(values.min())
    if kind == "features" and lo >= 0.0:
        hi = float(values.max())
        scale = float(np.float32(max(hi, 1e-6) / 255.0))
        return scale, -128
    bound = float(np.percentile(np.abs(values), QUANT_PERCENTILE))
    return float(np.float32(max(bound, 1e-6) / 127.0)), 0


def quantize(x: npt.NDArray[np.floating], scale: float, zero_point: int) -> npt.NDArray[np.int8]:
    """int8 codes q = clip(round(x / scale) + zero_point); value = (q - zero_point) * scale."""
    q = np.round(np.asarray(x, np.float64) / np.float32(scale)) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)
