"""The host coordinator: rounds of quantized federated averaging over any transport.

    from tinyfl.coordinator import EngineConfig, RoundEngine, load_task
    from tinyfl.strategy import parse_strategy_spec
    from tinyfl.transport.mqtt import MqttTransport
    from tinyfl.wire import Topics

    transport = MqttTransport()
    await transport.connect("mqtt://127.0.0.1:1883", client_id="coordinator-lab")
    engine = RoundEngine(transport, Topics.for_fleet("lab"), load_task("nsl-kdd"),
                         parse_strategy_spec("fedavg"), EngineConfig(rounds=10, min_clients=2),
                         run_dir=Path("runs/lab"))
    result = await engine.run()          # result.head, result.records

Modules: `engine` (the round loop), `config` (what a run computes), `intake` (updates sorted
into accepted, late, dropped, rejected), `registry` (nodes from retained hello/status),
`selection` (seeded choices), `privacy` (central differential privacy: sampling, budget,
noise), `checkpoint` (atomic save/resume), `metrics` (metrics.jsonl), `progress` (terminal
output), `task` (what is trained and evaluated), `simnode` (simulated
nodes, training with `tinyfl.model.head` and quantizing with `tinyfl.quant`, the numpy mirrors
of the firmware).
"""

from tinyfl.coordinator.checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from tinyfl.coordinator.engine import CoordinatorError, EngineConfig, RoundEngine, RunResult
from tinyfl.coordinator.metrics import METRICS_NAME, MetricsLog, read_metrics
from tinyfl.coordinator.progress import Progress, summary_table
from tinyfl.coordinator.registry import NodeInfo, Registry
from tinyfl.coordinator.selection import global_seed, round_seed, round_size, select_nodes
from tinyfl.coordinator.task import Evaluation, Task, evaluate, load_task, synthetic_task

__all__ = [
    "CHECKPOINT_NAME",
    "METRICS_NAME",
    "Checkpoint",
    "CheckpointError",
    "CoordinatorError",
    "EngineConfig",
    "Evaluation",
    "MetricsLog",
    "NodeInfo",
    "Progress",
    "Registry",
    "RoundEngine",
    "RunResult",
    "Task",
    "evaluate",
    "global_seed",
    "load_checkpoint",
    "load_task",
    "read_metrics",
    "round_seed",
    "round_size",
    "save_checkpoint",
    "select_nodes",
    "summary_table",
    "synthetic_task",
]
