"""`tinyfl data partition`: real data in, one data blob per node and a manifest out.

HAR (default task): the fleet users' label-pure windows (see `tinyfl.data.har`) as kind-2 blobs
(RAW_WINDOWS, dim 768 = 128 samples x 6 axes, time-major, channels last), int8 with one scale
for all axes fitted on the source users only (`har.fit_quantization`: 99.9th percentile of
|value| / 127, zero point 0). Test and source users never reach a node.

NSL-KDD: the fleet's KDDTrain+_20Percent records as kind-2 blobs (RAW_WINDOWS, dim 64): each
sample is the record's 64 encoded features in [0, 1] quantized with scale 1/255 and zero point
-128 (`nslkdd.quantize_features`), which is exactly the input tensor of the MLP backbone in
models/nsl-kdd, so the node embeds every record and trains its head on the embeddings, as for
HAR. The backbone's source rows (`nslkdd.source_mask`) never reach a node.

Both tasks' blobs carry the hash of the backbone in models/<task> (checked to expect the codes'
quantization); `--model-hash` puts another hash in instead, unchecked.

Every blob is built and checked in memory before the first byte is written; each file is
written to a temporary name and renamed, and manifest.json is written last, so a directory
with a manifest holds a complete partition. The same arguments give identical bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinyfl.cli import Subparsers
from tinyfl.data import har, nslkdd, partition
from tinyfl.errors import TinyFLError, UsageError
from tinyfl.files import atomic_write
from tinyfl.wire import BlobKind, DataBlob

SUMMARY = "prepare datasets for a fleet: per-node data blobs"

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "data", help=SUMMARY, description="Datasets for the fleet (subcommand: partition)."
    )
    commands = parser.add_subparsers(title="subcommands", metavar="<subcommand>", dest="data_cmd")
    part = commands.add_parser(
        "partition",
        help="split a dataset into per-node data blobs and a manifest",
        description=(
            "Split a task's training data over N nodes and write DIR/<node>.blob (the data blob "
            "the firmware reads, docs/WIRE.md) and DIR/manifest.json. HAR uses the fleet users "
            "only (held-out test and backbone source users never reach a node); NSL-KDD leaves "
            "out the backbone's source rows. The same "
            "arguments always give the same bytes."
        ),
    )
    part.add_argument("--task", required=True, choices=("har", "nsl-kdd"), help="dataset")
    part.add_argument("--clients", required=True, type=int, metavar="N", help="number of nodes")
    part.add_argument(
        "--partition",
        metavar="SCHEME",
        help=(
            "by-user (HAR default: one user per node), gateways (NSL-KDD default: normal "
            "traffic plus one or two attack families per node), iid, dirichlet:ALPHA (label "
            "skew), quantity:ALPHA (size skew)"
        ),
    )
    part.add_argument("--seed", type=int, default=0, help="partition seed (default: %(default)s)")
    part.add_argument(
        "--max-samples",
        type=int,
        default=512,
        metavar="K",
        help="at most K samples per node, drawn with the seed (default: %(default)s)",
    )
    part.add_argument(
        "--all-activities",
        action="store_true",
        help="HAR: all 12 labels (with postural transitions) instead of the 6 basic activities",
    )
    part.add_argument(
        "--model-hash",
        metavar="HEX",
        help=(
            "8-byte model hash (16 hex digits) the blobs carry; default: the hash of the "
            "backbone in models/<task> (HAR's 12-activity data, which has no built backbone: "
            "the identity of its window definition)"
        ),
    )
    part.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    # -v/-q after the subcommand too (main adds them before it); SUPPRESS keeps unset flags
    # from overwriting ones given earlier.
    verbosity = part.add_mutually_exclusive_group()
    for flag, text in (("--verbose", "log debug details"), ("--quiet", "log warnings only")):
        verbosity.add_argument(
            flag[1:3], flag, action="store_true", default=argparse.SUPPRESS, help=text
        )
    return parser


def run(args: argparse.Namespace) -> int:
    if getattr(args, "data_cmd", None) != "partition":
        raise UsageError("usage: tinyfl data partition --task har|nsl-kdd --clients N --out DIR")
    plan = build_partition(
        task=args.task,
        clients=args.clients,
        scheme=args.partition,
        seed=args.seed,
        max_samples=args.max_samples,
        all_activities=args.all_activities,
        model_hash=parse_model_hash(args.model_hash),
    )
    write_partition(plan, args.out, progress=sys.stderr.isatty())
    total = sum(node.blob.n_samples for node in plan.nodes)
    print(
        f"{args.task}: {len(plan.nodes)} nodes, {total} samples ({plan.scheme}, seed {plan.seed}) "
        f"-> {args.out / MANIFEST}"
    )
    return 0


@dataclass(frozen=True)
class Node:
    node_id: str
    blob: DataBlob


@dataclass(frozen=True)
class Plan:
    """A complete partition in memory: what `write_partition` puts on disk."""

    task: str
    scheme: str
    seed: int
    max_samples: int
    classes: tuple[str, ...]
    nodes: tuple[Node, ...]
    extra: dict[str, Any]


def parse_model_hash(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 8:
        raise UsageError(f"--model-hash must be 16 hex digits, got {text!r}")
    return value


def parse_scheme(task: str, scheme: str | None) -> tuple[str, float | None]:
    """("by-user"|"gateways"|"iid"|"dirichlet"|"quantity", alpha or None), validated."""
    if scheme is None:
        scheme = "by-user" if task == "har" else "gateways"
    name, _, value = scheme.partition(":")
    natural = {"har": "by-user", "nsl-kdd": "gateways"}[task]
    if name in ("by-user", "gateways", "iid") and not value:
        if name in ("by-user", "gateways") and name != natural:
            raise UsageError(f"--partition {name} is not available for {task} (use {natural})")
        return name, None
    if name in ("dirichlet", "quantity"):
        try:
            alpha = float(value)
        except ValueError:
            alpha = float("nan")
        if not alpha > 0 or alpha == float("inf"):
            raise UsageError(f"--partition {name}:ALPHA needs a positive number, got {value!r}")
        return name, alpha
    raise UsageError(
        f"unknown --partition {scheme!r}: expected {natural}, iid, dirichlet:ALPHA or "
        "quantity:ALPHA"
    )


def build_partition(
    task: str,
    clients: int,
    scheme: str | None,
    seed: int,
    max_samples: int,
    all_activities: bool = False,
    model_hash: bytes | None = None,
) -> Plan:
    """Loads the task's data, partitions it and builds every node's blob (nothing written)."""
    name, alpha = parse_scheme(task, scheme)
    if clients < 1:
        raise UsageError(f"--clients must be >= 1, got {clients}")
    if max_samples < 1:
        raise UsageError(f"--max-samples must be >= 1, got {max_samples}")
    if seed < 0:
        raise UsageError(f"--seed must be >= 0, got {seed}")
    extra: dict[str, Any]
    if task == "har":
        windows = har.load(all_activities=all_activities)
        scale, zero_point = har.fit_quantization(windows.split("source").x)
        fleet = windows.split("fleet")
        labels = fleet.y
        codes = har.quantize(fleet.x, scale, zero_point).reshape(len(fleet), -1)
        kind, classes = BlobKind.RAW_WINDOWS, fleet.classes
        data_hash = (model_hash if model_hash is not None
                     else har_model_hash(all_activities, scale, zero_point))
        groups: npt.NDArray[Any] | None = fleet.user
        extra = {
            "dataset_sha256": har.SHA256,
            "window": har.WINDOW,
            "step": har.STEP,
            "channels": list(har.CHANNELS),
            "layout": "samples x channels (time-major), row-major",
            "users": {"fleet": list(har.FLEET_USERS), "source": list(har.SOURCE_USERS),
                      "test": list(har.TEST_USERS)},
        }
    else:
        train = nslkdd.load(nslkdd.TRAIN_FILE)
        spec = nslkdd.fit(train)  # the whole file's statistics, as the backbone build uses
        # the backbone's pretraining rows never reach a node (as HAR's source users)
        fleet_rows = ~nslkdd.source_mask(train.labels.size)
        labels = train.labels[fleet_rows]
        codes = nslkdd.quantize_features(nslkdd.encode(train, spec)[fleet_rows])
        scale, zero_point = nslkdd.FEATURE_SCALE, nslkdd.FEATURE_ZERO_POINT
        # the feature codes are the backbone's input tensor: the node embeds them (kind 2)
        kind, classes = BlobKind.RAW_WINDOWS, nslkdd.CLASSES
        data_hash = (model_hash if model_hash is not None else backbone_model_hash(
            "nsl-kdd", codes.shape[1], scale, zero_point, "the feature codes"))
        groups = None
        extra = {
            "dataset_sha256": nslkdd.SHA256[nslkdd.TRAIN_FILE],
            "file": nslkdd.TRAIN_FILE,
            "layout": "the 64 encoded features of tinyfl.data.nslkdd (the backbone's input)",
            "rows": {
                "fleet": int(labels.size),
                "source_excluded": int(train.labels.size - labels.size),
                "source_share": nslkdd.SOURCE_SHARE,
                "split_seed": nslkdd.SPLIT_SEED,
            },
        }

    try:
        if name == "by-user":
            assert groups is not None
            parts = partition.by_group(groups, clients, seed)
        elif name == "gateways":
            parts = partition.gateways(labels, clients, seed)
        elif name == "iid":
            parts = partition.iid(labels.size, clients, seed)
        elif name == "dirichlet":
            assert alpha is not None
            parts = partition.dirichlet(labels, clients, alpha, seed)
        else:
            assert alpha is not None
            parts = partition.quantity_skew(labels.size, clients, alpha, seed)
        parts = partition.cap(parts, max_samples, (seed, 1), labels)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc

    width = max(2, len(str(clients)))
    nodes = []
    for i, idx in enumerate(parts, 1):
        node_id = f"node{i:0{width}d}"
        if groups is not None:
            extra.setdefault("node_users", {})[node_id] = sorted(
                int(u) for u in np.unique(groups[idx])
            )
        blob = DataBlob(
            kind=kind,
            n_classes=len(classes),
            scale=scale,
            zero_point=zero_point,
            model_hash=data_hash,
            labels=labels[idx],
            samples=codes[idx],
        )
        nodes.append(Node(node_id, blob))
    scheme_text = name if alpha is None else f"{name}:{alpha:g}"
    return Plan(task, scheme_text, seed, max_samples, tuple(classes), tuple(nodes), extra)


def har_model_hash(all_activities: bool, scale: float, zero_point: int) -> bytes:
    """The hash of the backbone the windows feed (models/har), which nodes report in HELLO and
    use to pick the compiled model; the 12-activity data has no built model and carries the
    identity of its window definition instead. ModelError when models/har expects other codes."""
    if all_activities:
        return har.data_hash(all_activities, scale, zero_point)
    return backbone_model_hash("har", har.WINDOW * len(har.CHANNELS), scale, zero_point,
                               "the windows")


def backbone_model_hash(folder: str, dim: int, scale: float, zero_point: int, what: str) -> bytes:
    """The model hash of the backbone in `folder` (models/<task> for a task name), after checking
    that its input tensor is what the blobs hold: `dim` int8 values with this scale (compared as
    float32, the precision both the blob and the .tflite store) and zero point. A node refuses a
    blob whose quantization is not its model's, so the mismatch is a ModelError here, not a fleet
    of nodes failing at boot."""
    from tinyfl.model.artifacts import load_artifacts

    art = load_artifacts(folder)
    art.check_input(dim, scale, zero_point, what)
    return art.model_hash


def manifest(plan: Plan, blobs: dict[str, bytes]) -> dict[str, Any]:
    """What a fleet launcher or a reader needs to know about the partition, in JSON form."""
    first = plan.nodes[0].blob
    node_users = plan.extra.get("node_users", {})
    return {
        "version": MANIFEST_VERSION,
        "task": plan.task,
        "seed": plan.seed,
        "partition": plan.scheme,
        "max_samples": plan.max_samples,
        "kind": int(first.kind),
        "dim": first.dim,
        "classes": list(plan.classes),
        "scale": first.scale,
        "zero_point": first.zero_point,
        "model_hash": first.model_hash.hex(),
        **{k: v for k, v in plan.extra.items() if k != "node_users"},
        "nodes": [
            {
                "id": node.node_id,
                "file": f"{node.node_id}.blob",
                "samples": node.blob.n_samples,
                "label_histogram": np.bincount(
                    node.blob.labels, minlength=len(plan.classes)
                ).tolist(),
                **({"users": node_users[node.node_id]} if node.node_id in node_users else {}),
                "sha256": hashlib.sha256(blobs[node.node_id]).hexdigest(),
            }
            for node in plan.nodes
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


def write_partition(plan: Plan, out: Path, progress: bool = False) -> dict[str, Any]:
    """Writes the blobs (each atomically), then manifest.json; returns the manifest."""
    blobs = {node.node_id: node.blob.to_bytes() for node in plan.nodes}  # all checked first
    doc = manifest(plan, blobs)
    text = json.dumps(doc, indent=2) + "\n"
    try:
        out.mkdir(parents=True, exist_ok=True)
        old = out / MANIFEST
        stale = _listed_files(old) - {f"{node.node_id}.blob" for node in plan.nodes}
        old.unlink(missing_ok=True)  # no stale manifest describing half-replaced blobs
        for name in sorted(stale):  # blobs of a previous, larger partition in the same DIR
            (out / name).unlink(missing_ok=True)
        for i, node in enumerate(plan.nodes, 1):
            atomic_write(out / f"{node.node_id}.blob", blobs[node.node_id])
            if progress:
                print(f"\rwriting blobs {i}/{len(plan.nodes)}", end="", file=sys.stderr)
        if progress:
            print(file=sys.stderr)
        atomic_write(old, text.encode())
    except OSError as exc:
        raise TinyFLError(f"cannot write the partition to {out}: {exc}") from exc
    return doc
