"""The fleet's data: a dataset file and a model folder in, one data blob per node and a manifest out.

Which samples: the model folder's split rule (tinyfl.data.splits) applied to the data file gives
the fleet's samples; the backbone's source samples and the held-out test samples never reach a
node. The data file must be the one the model was built from (same SHA-256), so the split is the
one the model folder records. How they are shared: a partition scheme (tinyfl.data.partition):
`by-group` (one group per node; the default when the data has groups), `iid` (the default
without groups), `dirichlet:ALPHA` (label skew), `quantity:ALPHA` (size skew), `gateways` (class 0
shared by every node plus one or two other classes each, as a network gateway sees normal
traffic plus the attacks aimed at its site).

Each blob holds raw samples (kind 2) as the model's int8 input codes, with the model's hash, so a
node embeds them with the backbone compiled into its firmware. Every blob is built and checked in
memory before the first byte is written; each file is written atomically and manifest.json last,
so a folder with a manifest holds a complete partition. The same arguments give identical bytes.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyfl.data import partition
from tinyfl.data.dataset import Dataset
from tinyfl.data.splits import quantize, split_rows
from tinyfl.errors import DatasetError, TinyFLError, UsageError
from tinyfl.files import atomic_write, private_dir
from tinyfl.fleet.nodes import blob_name
from tinyfl.model.artifacts import ModelArtifacts
from tinyfl.wire import BlobKind, DataBlob

__all__ = [
    "MANIFEST",
    "SCHEMES",
    "FleetData",
    "Node",
    "blob_name",
    "build_partition",
    "parse_scheme",
    "write_partition",
]

MANIFEST = "manifest.json"
MANIFEST_VERSION = 2
SCHEMES = ("by-group", "iid", "dirichlet:ALPHA", "quantity:ALPHA", "gateways", "auto")


@dataclass(frozen=True)
class Node:
    node_id: str
    blob: DataBlob
    groups: tuple[str, ...]  # the data groups this node's samples come from


@dataclass(frozen=True)
class FleetData:
    """A complete partition in memory: what `write_partition` puts on disk."""

    model_name: str
    model_hash: bytes
    data_file: str
    data_sha256: str
    scheme: str
    seed: int
    max_samples: int
    classes: tuple[str, ...]
    nodes: tuple[Node, ...]
    note: str = ""  # why `auto` picked the scheme it did, when that is not the obvious one


def auto_scheme(groups: int, clients: int) -> tuple[str, str]:
    """(scheme, note) for `--partition auto`: by-group when every node can have a group of its
    own, else iid (with a note saying why)."""
    if groups and clients <= groups:
        return "by-group", ""
    if not groups:
        return "iid", ""
    return "iid", (f"{clients} nodes but {groups} fleet groups: partition iid (give --partition "
                   "dirichlet:ALPHA for label skew)")


def parse_scheme(scheme: str | None, has_groups: bool) -> tuple[str, float | None]:
    """("by-group"|"iid"|"dirichlet"|"quantity"|"gateways", alpha or None), validated; None picks
    by-group for data with groups and iid without."""
    if scheme is None:
        scheme = "by-group" if has_groups else "iid"
    name, _, value = scheme.partition(":")
    if name in ("by-group", "by-user", "iid", "gateways") and not value:
        if name in ("by-group", "by-user") and not has_groups:
            raise UsageError("--partition by-group needs a data file with a group array")
        return ("by-group" if name == "by-user" else name), None
    if name in ("dirichlet", "quantity"):
        try:
            alpha = float(value)
        except ValueError:
            alpha = float("nan")
        if not alpha > 0 or alpha == float("inf"):
            raise UsageError(f"--partition {name}:ALPHA needs a positive number, got {value!r}")
        return name, alpha
    raise UsageError(f"unknown --partition {scheme!r}: expected one of {', '.join(SCHEMES)}")


def _parts(name: str, alpha: float | None, labels: np.ndarray[Any, Any],
           group_rank: np.ndarray[Any, Any] | None, clients: int,
           seed: int) -> partition.Partition:
    if name == "by-group":
        assert group_rank is not None
        groups = int(np.unique(group_rank).size)
        if clients > groups:
            raise UsageError(
                f"{clients} nodes but the fleet's data has only {groups} groups: by-group gives "
                f"each node at least one group, so use at most {groups} nodes, or a partition "
                "that splits samples instead of groups (--partition iid, dirichlet:0.5 or "
                "quantity:1)")
        return partition.by_group(group_rank, clients, seed)
    if name == "gateways":
        return partition.gateways(labels, clients, seed)
    if name == "iid":
        return partition.iid(labels.size, clients, seed)
    assert alpha is not None
    if name == "dirichlet":
        return partition.dirichlet(labels, clients, alpha, seed)
    return partition.quantity_skew(labels.size, clients, alpha, seed)


def build_partition(data: Dataset, model: ModelArtifacts, clients: int, scheme: str | None = None,
                    seed: int = 0, max_samples: int = 512) -> FleetData:
    """The fleet's samples of `data` under `model`'s split, shared over `clients` nodes as blobs
    of the model's input codes (nothing written)."""
    if clients < 1:
        raise UsageError(f"--clients/--nodes must be >= 1, got {clients}")
    if max_samples < 1:
        raise UsageError(f"--max-samples must be >= 1, got {max_samples}")
    if seed < 0:
        raise UsageError(f"--seed must be >= 0, got {seed}")
    if data.sha256 and data.sha256 != model.data_sha256:
        raise DatasetError(
            f"{data.origin} (SHA-256 {data.sha256[:16]}...) is not the data file {model.folder} "
            f"was built from ({model.metadata['data'].get('file')}, {model.data_sha256[:16]}...): "
            "its split into source, fleet and test samples would not hold; partition the same "
            "file or rebuild the model from this one")
    if data.classes != model.classes:
        raise DatasetError(f"{data.origin}: classes {list(data.classes)} are not the model's "
                           f"{list(model.classes)}")
    model.check_sample_size(int(np.prod(data.sample_shape)), "the data's samples")
    fleet = data.select(split_rows(data, model.split).fleet)
    note = ""
    if scheme == "auto":
        scheme, note = auto_scheme(len(fleet.group_names()), clients)
    name, alpha = parse_scheme(scheme, fleet.groups is not None)
    ranks = None
    if fleet.groups is not None:
        order = {g: i for i, g in enumerate(fleet.group_names())}  # numeric ids in numeric order
        ranks = np.array([order[g] for g in fleet.groups.tolist()], np.int64)
    labels = fleet.y.astype(np.uint8)
    try:
        parts = partition.cap(_parts(name, alpha, labels, ranks, clients, seed), max_samples,
                              (seed, 1), labels)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    codes = quantize(fleet.x, model.input_scale, model.input_zero_point).reshape(len(fleet), -1)
    width = max(2, len(str(clients)))
    nodes = []
    for i, idx in enumerate(parts, 1):
        blob = DataBlob(kind=BlobKind.RAW_WINDOWS, n_classes=len(model.classes),
                        scale=model.input_scale, zero_point=model.input_zero_point,
                        model_hash=model.model_hash, labels=labels[idx], samples=codes[idx])
        groups = () if fleet.groups is None else tuple(
            sorted(set(fleet.groups[idx].tolist()), key=list(order).index))
        nodes.append(Node(f"node{i:0{width}d}", blob, groups))
    text = name if alpha is None else f"{name}:{alpha:g}"
    return FleetData(model.name, model.model_hash, Path(data.origin).name, data.sha256, text,
                     seed, max_samples, model.classes, tuple(nodes), note)


def manifest(fleet: FleetData, blobs: dict[str, bytes]) -> dict[str, Any]:
    """What a fleet launcher or a reader needs to know about the partition, in JSON form."""
    first = fleet.nodes[0].blob
    return {
        "version": MANIFEST_VERSION,
        "model": {"name": fleet.model_name, "hash": fleet.model_hash.hex()},
        "data": {"file": fleet.data_file, "sha256": fleet.data_sha256},
        "seed": fleet.seed,
        "partition": fleet.scheme,
        "max_samples": fleet.max_samples,
        "kind": int(first.kind),
        "dim": first.dim,
        "classes": list(fleet.classes),
        "scale": first.scale,
        "zero_point": first.zero_point,
        "model_hash": fleet.model_hash.hex(),
        "nodes": [
            {
                "id": node.node_id,
                "file": blob_name(node.node_id),
                "samples": node.blob.n_samples,
                "label_histogram": np.bincount(node.blob.labels,
                                               minlength=len(fleet.classes)).tolist(),
                **({"groups": list(node.groups)} if node.groups else {}),
                "sha256": hashlib.sha256(blobs[node.node_id]).hexdigest(),
            }
            for node in fleet.nodes
        ],
    }


def _listed_files(manifest_path: Path) -> set[str]:
    """Blob file names a previous manifest in the directory lists (only plain names)."""
    try:
        doc = json.loads(manifest_path.read_text())
        names = {str(node["file"]) for node in doc["nodes"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    return {n for n in names if n == Path(n).name and n.endswith(".blob")}


def write_partition(fleet: FleetData, out: Path, progress: bool = False) -> dict[str, Any]:
    """Writes the blobs (each atomically), then manifest.json; returns the manifest."""
    blobs = {node.node_id: node.blob.to_bytes() for node in fleet.nodes}  # all checked first
    doc = manifest(fleet, blobs)
    text = json.dumps(doc, indent=2) + "\n"
    try:
        private_dir(out)
        old = out / MANIFEST
        stale = _listed_files(old) - {blob_name(node.node_id) for node in fleet.nodes}
        old.unlink(missing_ok=True)  # no stale manifest describing half-replaced blobs
        for name in sorted(stale):  # blobs of a previous, larger partition in the same DIR
            (out / name).unlink(missing_ok=True)
        for i, node in enumerate(fleet.nodes, 1):
            atomic_write(out / blob_name(node.node_id), blobs[node.node_id])
            if progress:
                print(f"\rwriting blobs {i}/{len(fleet.nodes)}", end="", file=sys.stderr)
        if progress:
            print(file=sys.stderr)
        atomic_write(old, text.encode())
    except OSError as exc:
        raise TinyFLError(f"cannot write the partition to {out}: {exc}") from exc
    return doc
