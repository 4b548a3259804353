"""Model poisoning by provisioned nodes, for simulations: what robust aggregation must withstand.

A node that holds valid credentials and runs modified firmware still sends well-formed UPDATE
frames (signed with its own key, where frames are signed) for the right round, model and shape;
the intake (`intake.py`) accepts them, so only aggregation stands between its update and the
global head. An attack here is a pure function of the delta the honest node would have sent
(after training and after the node's own clip_norm, which a malicious node simply skips),
applied before quantization, so the frame is exactly as valid as an honest one. The reported
update_norm stays the honest one: a liar would not report its boost, and the coordinator never
trusts that field anyway.

* scale-x100: the delta times 100, the "boosting" of Bhagoji et al. (ICML 2019) and Sun et al.
  (arXiv:1911.07963); two such nodes of ten outweigh the other eight in an average.
* sign-flip: the negated delta, pulling the head up the loss instead of down. Against a plain
  average a fraction f of flippers only shrinks the step to (1 - 2f) of the honest one, so
  FedAvg still learns, more slowly (bench/poisoning.md measures how little it costs at 20%).
* sign-flip-x10: the negated delta times 10, which reverses the average once f > 1/11 (10 f >
  1 - f), the boosted sign flip of the Byzantine-robustness literature.

`run_poisoned` runs the real `RoundEngine` on the in-memory broker with simulated nodes, some of
them tampering: tests/integration/test_poisoning.py and bench/bench_poisoning.py use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from tinyfl.coordinator.config import EngineConfig
from tinyfl.coordinator.engine import RoundEngine
from tinyfl.coordinator.simnode import SimNode, make_node_id, partition
from tinyfl.coordinator.task import Task
from tinyfl.errors import UsageError
from tinyfl.strategy import Strategy
from tinyfl.transport.memory import MemoryBroker, MemoryTransport
from tinyfl.wire import Topics

__all__ = [
    "ATTACKS",
    "FleetSpec",
    "Tamper",
    "get_attack",
    "malicious_ids",
    "run_poisoned",
    "scale",
]

F32 = npt.NDArray[np.float32]
Tamper = Callable[[F32], F32]

SIM_TIMEOUT = 60.0  # simulated nodes answer at once; only a bug makes a round wait this long


def scale(factor: float) -> Tamper:
    """The attack that multiplies every delta by `factor` (-1: the sign flip)."""

    def tamper(delta: F32) -> F32:
        return (delta * np.float32(factor)).astype(np.float32)

    return tamper


ATTACKS: dict[str, Tamper] = {
    "scale-x100": scale(100.0),
    "sign-flip": scale(-1.0),
    "sign-flip-x10": scale(-10.0),
}


def get_attack(name: str) -> Tamper:
    try:
        return ATTACKS[name]
    except KeyError:
        raise UsageError(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}") from None


def malicious_ids(n_nodes: int, fraction: float) -> frozenset[str]:
    """The ids of round(fraction * n_nodes) nodes, spread evenly over the fleet (sim-0000 is
    always one when any is): which nodes are malicious must not line up with how the partition
    draws data, and spreading them keeps that independent of n_nodes."""
    k = round(fraction * n_nodes)
    if not 0 <= k <= n_nodes:
        raise UsageError(f"malicious fraction {fraction} of {n_nodes} nodes")
    return frozenset(make_node_id(int(i * n_nodes / k)) for i in range(k)) if k else frozenset()


@dataclass(frozen=True)
class FleetSpec:
    """A simulated fleet on a task's training rows: `n_nodes` nodes of `samples` rows each,
    drawn by `simnode.partition` (seed, and alpha for Dirichlet label skew; None = IID)."""

    n_nodes: int = 10
    samples: int = 200
    seed: int = 0
    alpha: float | None = None


async def run_poisoned(
    task: Task,
    fleet: FleetSpec,
    config: EngineConfig,
    strategy: Strategy,
    tampers: Mapping[str, Tamper],
) -> list[dict[str, Any]]:
    """One federated run on the in-memory broker: `fleet`'s simulated nodes, those named in
    `tampers` applying their attack, and the real round engine aggregating with `strategy`.
    Every node is waited for before round 1; returns the engine's per-round records."""
    if task.train_x is None or task.train_y is None:
        raise UsageError(f"task {task.name} has no training data to simulate nodes with")
    parts = partition(
        task.train_x, task.train_y, fleet.n_nodes, fleet.samples, fleet.seed, fleet.alpha
    )
    broker = MemoryBroker("poisoning")
    topics = Topics("tinyfl/poisoning")
    sims = [
        SimNode(
            make_node_id(i),
            x,
            y,
            model_hash=task.model_hash,
            n_classes=task.n_classes,
            topics=topics,
            transport=MemoryTransport(broker),
            tamper=tampers.get(make_node_id(i)),
        )
        for i, (x, y) in enumerate(parts)
    ]
    unknown = set(tampers) - {s.node_id for s in sims}
    if unknown:
        raise UsageError(f"tampering nodes not in the fleet: {sorted(unknown)}")
    transport = MemoryTransport(broker)
    await asyncio.gather(*(sim.start() for sim in sims))
    await transport.connect(client_id="coordinator")
    run_config = _simulated(config, fleet.n_nodes)
    # round ids from 1 on: the broker is fresh, no id from the clock needs skipping
    engine = RoundEngine(
        transport, topics, task, strategy, run_config, round_id_clock=lambda: 0.0
    )
    try:
        result = await engine.run()
    finally:
        await transport.close()
        await asyncio.gather(*(sim.stop() for sim in sims), return_exceptions=True)
    return result.records


def _simulated(config: EngineConfig, n_nodes: int) -> EngineConfig:
    return replace(
        config, wait_nodes=n_nodes, wait_timeout=SIM_TIMEOUT, round_timeout=SIM_TIMEOUT
    )
