"""Reference accuracies a federated run is judged against, computed the way the nodes compute.

Three references, all trained with the firmware's numpy mirror of local training
(`tinyfl.model.head.train_local`, the code simulated nodes and `fit_head` use) on exactly the
data each node holds, and all scored with `tinyfl.coordinator.task.evaluate` on the task's test
set (the coordinator's own per-round score):

- central (`central_head`): every node's data pooled on one machine, a head trained from zeros
  with `tinyfl model build`'s stable head-fit procedure. What federated learning would reach if
  privacy did not matter: the upper reference.
- local-only (`local_only`): each node alone, a head from zeros on its own data with the
  budget it would spend in the federated run. What a node gets without the fleet: the lower
  reference; the federated run should beat its mean.
- simulated federated (`simulated_federated`): the real `RoundEngine` on the in-memory broker with
  simulated nodes holding the same data, at any uplink width (float32 is the "no quantization"
  reference) and with FedAvg or FedProx.

Node data (`NodeData`) comes from a fleet partition (`plan_node_data`: the exact blobs an
emulated fleet gets, replayed through the bit-exact int8 backbone) or from a task's
training rows and index arrays (`task_node_data`). Like the node's embedding cache, each node
keeps at most its newest `capacity` samples.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tinyfl.coordinator.checkpoint import CHECKPOINT_NAME
from tinyfl.coordinator.config import EngineConfig
from tinyfl.coordinator.engine import RoundEngine
from tinyfl.coordinator.metrics import METRICS_NAME
from tinyfl.coordinator.run_folder import RunPlan, write_config
from tinyfl.coordinator.simnode import SimNode
from tinyfl.coordinator.task import Task, evaluate
from tinyfl.errors import UsageError
from tinyfl.model.evaluate import HEAD_BATCH, HEAD_EPOCHS, HEAD_LR
from tinyfl.model.head import train_local
from tinyfl.rng import round_rng
from tinyfl.strategy import Strategy, parse_strategy_spec, strategy_params
from tinyfl.strategy.dp import DEFAULT_DELTA
from tinyfl.transport.memory import MemoryBroker, MemoryTransport
from tinyfl.wire import BlobKind, Topics

if TYPE_CHECKING:
    from tinyfl.fleet.partition import FleetData
    from tinyfl.model.artifacts import ModelArtifacts

__all__ = [
    "BASELINES_NAME",
    "NODE_CACHE_CAPACITY",
    "Baseline",
    "Baselines",
    "FederatedCurve",
    "LocalOnly",
    "NodeData",
    "central_epochs",
    "central_head",
    "compute_baselines",
    "curve_label",
    "load_baselines",
    "local_only",
    "plan_node_data",
    "save_baselines",
    "simulated_federated",
    "simulated_federated_async",
    "task_node_data",
]

BASELINES_NAME = "baselines.json"
BASELINES_VERSION = 1
# The firmware's TINYFL_CACHE_CAPACITY default (firmware/lib/tinyfl/include/tinyfl/config.h):
# a node replays its blob oldest first into a ring buffer of this many embeddings.
NODE_CACHE_CAPACITY = 512
SIM_TIMEOUT = 60.0  # seconds a simulated round may wait; nodes answer at once, so only a bug waits

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True, eq=False)
class NodeData:
    """One node's training data as its head trainer sees it: x (n, d) float32, y (n,) uint8."""

    node_id: str
    x: F32 = field(repr=False)
    y: U8 = field(repr=False)

    def __post_init__(self) -> None:
        x = np.ascontiguousarray(self.x, dtype=np.float32)
        y = np.ascontiguousarray(self.y, dtype=np.uint8)
        if x.ndim != 2 or y.shape != (x.shape[0],):
            raise ValueError(f"node {self.node_id}: x must be (n, d) with n labels")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    @property
    def n_samples(self) -> int:
        return int(self.y.size)


def _newest(n: int, capacity: int) -> slice:
    if capacity < 1:
        raise UsageError(f"the node cache capacity must be >= 1, got {capacity}")
    return slice(max(0, n - capacity), n)


def plan_node_data(
    plan: FleetData, artifacts: ModelArtifacts | None = None, capacity: int = NODE_CACHE_CAPACITY
) -> list[NodeData]:
    """What each node of a fleet partition (`tinyfl.fleet.partition.build_partition`) trains on.

    Raw samples (kind 2: the model's int8 input codes) go through `artifacts`' int8
    backbone, bit-exact with the node's, and are dequantized as the node's embedding cache does;
    feature vectors (kind 1, already embeddings) are dequantized directly. Of a blob with more
    than `capacity` samples the node keeps the newest (the last ones: blobs are replayed oldest
    first), and so does this.
    """
    out = []
    for node in plan.nodes:
        blob = node.blob
        keep = _newest(blob.n_samples, capacity)
        if blob.kind == BlobKind.RAW_WINDOWS:
            if artifacts is None:
                raise UsageError(f"{plan.model_name} blobs hold raw samples: the backbone is "
                                 "needed")
            if blob.model_hash != artifacts.model_hash:
                raise UsageError(
                    f"node {node.node_id}'s blob is for model {blob.model_hash.hex()}, the "
                    f"backbone in {artifacts.folder} is {artifacts.model_hash.hex()}"
                )
            x = artifacts.dequantize(artifacts.embed(blob.samples[keep]))
        else:
            x = blob.values()[keep]
        out.append(NodeData(node.node_id, x, blob.labels[keep]))
    return out


def task_node_data(
    task: Task,
    parts: Sequence[npt.NDArray[np.integer]],
    node_ids: Sequence[str] | None = None,
    capacity: int = NODE_CACHE_CAPACITY,
) -> list[NodeData]:
    """Node data from a task's training rows and one index array per node (a partitioner's
    output, `tinyfl.data.partition`), in that order; ids default to node01, node02, ...
    (as `tinyfl data partition` names them). The newest `capacity` rows of each are kept."""
    if task.train_x is None or task.train_y is None:
        raise UsageError(
            f"task {task.name} has no training data (load_task(..., with_train=True))"
        )
    if node_ids is None:
        width = max(2, len(str(len(parts))))
        node_ids = [f"node{i:0{width}d}" for i in range(1, len(parts) + 1)]
    if len(node_ids) != len(parts):
        raise UsageError(f"{len(node_ids)} node ids for {len(parts)} index arrays")
    out = []
    for node_id, idx in zip(node_ids, parts):
        rows = np.asarray(idx, dtype=np.int64)
        rows = rows[_newest(rows.size, capacity)]
        out.append(NodeData(node_id, task.train_x[rows], task.train_y[rows]))
    return out


# -- the references ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """A head trained from zeros, scored on the task's test set."""

    accuracy: float
    loss: float
    macro_f1: float
    epochs: int
    samples: int
    lr: float
    batch_size: int


@dataclass(frozen=True)
class LocalOnly:
    """Each node's own head on the test set: the mean and every node's accuracy."""

    mean_accuracy: float
    per_node: dict[str, float]
    epochs: int


@dataclass(frozen=True)
class FederatedCurve:
    """A simulated federated run: test accuracy, uplink and downlink bytes, round by round."""

    label: str
    strategy: dict[str, Any]
    uplink_bits: int
    accuracy: tuple[float, ...]
    bytes_up: tuple[int, ...]
    bytes_down: tuple[int, ...]

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[-1] if self.accuracy else math.nan


def _check_nodes(nodes: Sequence[NodeData], task: Task) -> None:
    if not nodes:
        raise UsageError("no nodes to compute references for")
    for node in nodes:
        if node.x.shape[1] != task.embed_dim:
            raise UsageError(
                f"node {node.node_id} has {node.x.shape[1]}-value embeddings, task {task.name} "
                f"{task.embed_dim}"
            )
        if node.n_samples and int(node.y.max()) >= task.n_classes:
            raise UsageError(f"node {node.node_id} has labels beyond the task's {task.n_classes}")


def central_epochs(config: EngineConfig) -> int:
    """Passes over the pooled data for the central head: rounds x epochs (every pass a node
    makes, so the reference never has a smaller budget than the fleet) and at least
    `HEAD_EPOCHS`, so a short run is not compared with an undertrained reference."""
    return max(config.rounds * config.epochs, HEAD_EPOCHS)


def central_head(
    task: Task,
    nodes: Sequence[NodeData],
    config: EngineConfig,
    *,
    epochs: int | None = None,
    lr: float = HEAD_LR,
    batch_size: int = HEAD_BATCH,
) -> Baseline:
    """Every node's data pooled, one head from zeros by the node's SGD, scored on the test set.

    The procedure is `tinyfl model build`'s head fit (`tinyfl.model.evaluate`: lr 0.05, batch
    32), for `central_epochs(config)` passes unless `epochs` is given, and not the run's own lr
    and batch size: those are tuned for short local rounds, and the last iterate of a long
    constant-rate SGD run with them wanders by several points from epoch to epoch (HAR, lr 0.1,
    batch 16: 86.6% to 91.0% between seeds), which is no reference. The shuffles follow the
    run's seed."""
    _check_nodes(nodes, task)
    epochs = central_epochs(config) if epochs is None else epochs
    x = np.concatenate([n.x for n in nodes])
    y = np.concatenate([n.y for n in nodes])
    w0 = task.initial_head()
    result = train_local(
        w0,
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        prox_mu=0.0,
        clip_norm=0.0,
        rng=round_rng(config.seed, "central", 0),
    )
    score = evaluate(w0 + result.delta, task.test_x, task.test_y)
    return Baseline(
        score.accuracy, score.loss, score.macro_f1, epochs, int(y.size), float(lr), batch_size
    )


def local_only(task: Task, nodes: Sequence[NodeData], config: EngineConfig) -> LocalOnly:
    """Each node trains alone from zeros for rounds x epochs passes over its own data (its
    budget if it were selected every round; no server, so no clipping and no FedProx term),
    with the run's lr and batch size; every head is scored on the test set."""
    _check_nodes(nodes, task)
    epochs = config.rounds * config.epochs
    per_node: dict[str, float] = {}
    for node in nodes:
        w0 = task.initial_head()
        if node.n_samples == 0:  # a node without data keeps the zero head
            per_node[node.node_id] = evaluate(w0, task.test_x, task.test_y).accuracy
            continue
        result = train_local(
            w0,
            node.x,
            node.y,
            epochs=epochs,
            batch_size=config.batch_size,
            lr=config.lr,
            prox_mu=0.0,
            clip_norm=0.0,
            rng=round_rng(config.seed, node.node_id, 0),
        )
        per_node[node.node_id] = evaluate(w0 + result.delta, task.test_x, task.test_y).accuracy
    return LocalOnly(float(np.mean(list(per_node.values()))), per_node, epochs)


def curve_label(strategy: str, bits: int) -> str:
    """ "fedavg float32", "fedprox 8-bit": how a curve is named in baselines.json and plots."""
    return f"{strategy} {'float32' if bits == 32 else f'{bits}-bit'}"


def simulated_federated(
    task: Task,
    nodes: Sequence[NodeData],
    config: EngineConfig,
    *,
    bits: int | None = None,
    strategy: str = "fedavg",
    rounds: int | None = None,
    run_dir: Path | None = None,
) -> FederatedCurve:
    """The federated run, simulated: the real `RoundEngine` on the in-memory broker with one
    `SimNode` per entry of `nodes` (same ids, same data), under `config` with the uplink width
    `bits` (32 = float32, 8, 4 or 2; default config's) and `rounds` (default config's).
    `strategy` is a spec as `--strategy` takes it: fedavg, fedprox or fedprox:mu=0.1, ...

    Every node is waited for before round 1. With `run_dir` the engine writes metrics.jsonl and
    checkpoints there, and config.json as `tinyfl coordinate` does, so the folder is a run
    folder `tinyfl report` reads. Runs its own event loop; inside one, await
    `simulated_federated_async` instead."""
    return asyncio.run(
        simulated_federated_async(
            task, nodes, config, bits=bits, strategy=strategy, rounds=rounds, run_dir=run_dir
        )
    )


async def simulated_federated_async(
    task: Task,
    nodes: Sequence[NodeData],
    config: EngineConfig,
    *,
    bits: int | None = None,
    strategy: str = "fedavg",
    rounds: int | None = None,
    run_dir: Path | None = None,
) -> FederatedCurve:
    """`simulated_federated` on the running event loop."""
    _check_nodes(nodes, task)
    changes: dict[str, Any] = {
        "wait_nodes": len(nodes),
        "wait_timeout": SIM_TIMEOUT,
        "round_timeout": SIM_TIMEOUT,
        # a reference is the plain algorithm: secure aggregation changes who sees what, and
        # (with its common scale) the rounding, not what is averaged; without DP noise, so the
        # curve shows what privacy costs
        "secure_agg": False,
        "dp": "off",
        "dp_noise_multiplier": None,
        "dp_epsilon": None,
        "dp_delta": DEFAULT_DELTA,
    }
    if bits is not None:
        changes["uplink_bits"] = bits
    if rounds is not None:
        changes["rounds"] = rounds
    try:
        run_config = replace(config, **changes)
    except UsageError as exc:
        raise UsageError(f"simulated federated run: {exc}") from None
    chosen = parse_strategy_spec(strategy)
    if run_dir is not None:
        if (Path(run_dir) / METRICS_NAME).exists() or (Path(run_dir) / CHECKPOINT_NAME).exists():
            raise UsageError(f"{run_dir} already holds a run; pick an empty folder")
        _write_run_config(run_dir, task, chosen, run_config)
    records = await _simulate(task, nodes, run_config, chosen, run_dir)
    return FederatedCurve(
        label=curve_label(chosen.name, run_config.uplink_bits),
        strategy=strategy_params(chosen),
        uplink_bits=run_config.uplink_bits,
        accuracy=tuple(float(r["test_accuracy"]) for r in records),
        bytes_up=tuple(int(r["bytes_up"]) for r in records),
        bytes_down=tuple(int(r["bytes_down"]) for r in records),
    )


def _write_run_config(run_dir: Path, task: Task, strategy: Strategy, config: EngineConfig) -> None:
    """config.json by the run folder's own writer, so the schema is one."""
    write_config(
        RunPlan(
            "memory://simulated",
            Topics("tinyfl/simulated"),
            task,
            task.name,
            strategy,
            config,
            Path(run_dir),
            None,
        )
    )


async def _simulate(
    task: Task,
    nodes: Sequence[NodeData],
    config: EngineConfig,
    strategy: Strategy,
    run_dir: Path | None,
) -> list[dict[str, Any]]:
    broker = MemoryBroker("simulated")
    topics = Topics("tinyfl/simulated")
    sims = [
        SimNode(
            node.node_id,
            node.x,
            node.y,
            model_hash=task.model_hash,
            n_classes=task.n_classes,
            topics=topics,
            transport=MemoryTransport(broker),
        )
        for node in nodes
    ]
    transport = MemoryTransport(broker)
    await asyncio.gather(*(sim.start() for sim in sims))
    await transport.connect(client_id="coordinator")
    # round ids from 1 on: the broker is fresh, and no id from the clock needs to be skipped
    engine = RoundEngine(
        transport, topics, task, strategy, config, run_dir=run_dir, round_id_clock=lambda: 0.0
    )
    try:
        result = await engine.run()
    finally:
        await transport.close()
        await asyncio.gather(*(sim.stop() for sim in sims), return_exceptions=True)
    return result.records


# -- the record ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Baselines:
    """Every reference of one run, as stored in the run folder's baselines.json."""

    task: str
    settings: dict[str, Any]
    nodes: dict[str, int]  # node id -> samples it trains on
    central: Baseline
    local_only: LocalOnly
    federated: tuple[FederatedCurve, ...] = ()

    def curve(self, label: str) -> FederatedCurve | None:
        return next((c for c in self.federated if c.label == label), None)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["version"] = BASELINES_VERSION
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Baselines:
        """Raises ValueError, KeyError or TypeError for a document that is not a record."""
        if doc.get("version") != BASELINES_VERSION:
            raise ValueError(f"version {doc.get('version')!r}, expected {BASELINES_VERSION}")
        curves = tuple(
            FederatedCurve(
                label=str(c["label"]),
                strategy=dict(c["strategy"]),
                uplink_bits=int(c["uplink_bits"]),
                accuracy=tuple(float(v) for v in c["accuracy"]),
                bytes_up=tuple(int(v) for v in c["bytes_up"]),
                bytes_down=tuple(int(v) for v in c["bytes_down"]),
            )
            for c in doc.get("federated", ())
        )
        local, central = doc["local_only"], doc["central"]
        return cls(
            task=str(doc["task"]),
            settings=dict(doc["settings"]),
            nodes={str(k): int(v) for k, v in dict(doc["nodes"]).items()},
            central=Baseline(
                accuracy=float(central["accuracy"]),
                loss=float(central["loss"]),
                macro_f1=float(central["macro_f1"]),
                epochs=int(central["epochs"]),
                samples=int(central["samples"]),
                lr=float(central["lr"]),
                batch_size=int(central["batch_size"]),
            ),
            local_only=LocalOnly(
                float(local["mean_accuracy"]),
                {str(k): float(v) for k, v in dict(local["per_node"]).items()},
                int(local["epochs"]),
            ),
            federated=curves,
        )


def save_baselines(path: Path, baselines: Baselines) -> None:
    """Writes baselines.json atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(
            json.dumps(baselines.to_json(), indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_baselines(path: Path) -> Baselines:
    """Reads baselines.json; UsageError naming the file when it is not one."""
    try:
        return Baselines.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path} is not a baselines file: {exc}") from None


def compute_baselines(
    task: Task,
    nodes: Sequence[NodeData],
    config: EngineConfig,
    *,
    bits: Sequence[int] = (32,),
    strategy: str = "fedavg",
) -> Baselines:
    """Central and local-only references plus one simulated federated run per uplink width in
    `bits` (float32 alone by default: the "no quantization" curve a report shows)."""
    return Baselines(
        task=task.name,
        settings=config.to_dict(),
        nodes={n.node_id: n.n_samples for n in nodes},
        central=central_head(task, nodes, config),
        local_only=local_only(task, nodes, config),
        federated=tuple(
            simulated_federated(task, nodes, config, bits=b, strategy=strategy) for b in bits
        ),
    )
