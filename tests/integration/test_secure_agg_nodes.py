"""Secure aggregation end to end on real firmware nodes (native processes and QEMU boards) over
the real mosquitto: every round the nodes send masked codes; in round 2 one node hangs
(SIGSTOP) after the round starts, the coordinator asks the survivors for that node's masks, and
the round still closes with the exact sum of the survivors (the sum's exactness is proven bit
for bit in tests/unit/test_secure_agg.py and the masks in firmware test_secagg). The QEMU fleet
runs with --dp distributed: the boards add their discrete Gaussian noise under the masks (the
noise itself is pinned by firmware test_secagg and test_node), the coordinator records epsilon
per round, and a dropout still closes the round."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from pathlib import Path

import pytest

from support.broker import MosquittoBroker
from tinyfl.coordinator import EngineConfig, RoundEngine, Task, load_task
from tinyfl.data.dataset import load_dataset
from tinyfl.data.packaged import cached
from tinyfl.fleet import Emulator, build_firmware
from tinyfl.fleet.nodes import NodeProcess, NodeSpec
from tinyfl.fleet.partition import build_partition
from tinyfl.model.artifacts import load_artifacts
from tinyfl.provision import new_fleet
from tinyfl.strategy import get_strategy
from tinyfl.transport.mqtt import MqttTransport
from tinyfl.wire import Topics

pytestmark = [pytest.mark.broker, pytest.mark.firmware]

_runs = itertools.count()


@pytest.fixture(scope="module")
def task() -> Task:
    return load_task("nsl-kdd", cached("nsl-kdd").data)


@pytest.mark.parametrize(("emulator", "dp"), [(Emulator.NATIVE, "off"),
                                              (Emulator.QEMU, "distributed")])
def test_masked_rounds_close_and_a_hung_node_is_unmasked_by_the_survivors(
    emulator: Emulator, dp: str, broker: MosquittoBroker, task: Task, tmp_path: Path
) -> None:
    image = build_firmware(emulator)
    ids = ["sa-0", "sa-1", "sa-2", "sa-3"]
    plan = build_partition(load_dataset(cached("nsl-kdd").data), load_artifacts("nsl-kdd"),
                           clients=len(ids), scheme="iid", seed=5, max_samples=150)
    name = f"sa-{os.getpid()}-{next(_runs)}"
    fleet = new_fleet(name, ids)
    topics = Topics.for_fleet(name)
    nodes: list[NodeProcess] = []
    for node_id, part in zip(ids, plan.nodes, strict=True):
        blob = tmp_path / f"{node_id}.blob"
        part.blob.write(blob)
        spec = NodeSpec(node_id, blob, tmp_path, emulator,
                        keys=(fleet.nodes[node_id].frame_key, fleet.fleet_key),
                        peer_seeds=fleet.seeds_of(node_id))
        node = NodeProcess(spec, image, broker.host, broker.port, topics.prefix)
        node.start()
        nodes.append(node)
    hung = nodes[2]

    async def scenario() -> list[dict[str, object]]:
        transport = MqttTransport()
        await transport.connect(broker.url, client_id=f"coordinator-{name}")
        config = EngineConfig(rounds=3, min_clients=2, wait_nodes=4, wait_timeout=60,
                              round_timeout=4.0, epochs=2, lr=0.5, clip_norm=2.0,
                              secure_agg=True, straggler_backoff=0, dp=dp,
                              dp_noise_multiplier=None if dp == "off" else 0.05)
        engine = RoundEngine(transport, topics, task, get_strategy("fedavg"), config,
                             keys=fleet.keyring())
        try:
            await engine.start()
            await engine.wait_for_nodes()
            await engine.run_round()
            os.kill(hung.pid, signal.SIGSTOP)  # online, selected, silent: dropped after the start
            try:
                await engine.run_round()
            finally:
                os.kill(hung.pid, signal.SIGCONT)
            await engine.run_round()
            return engine.records
        finally:
            await engine.stop()
            await transport.close()

    try:
        records = asyncio.run(asyncio.wait_for(scenario(), 240))
    finally:
        logs = {n.spec.node_id: n.log_text() for n in nodes}
        for node in nodes:
            node.stop()
    diag = "\n".join(f"--- {k}\n{v[-1500:]}" for k, v in logs.items())
    assert [r["status"] for r in records] == ["closed"] * 3, (records, diag)
    first, second, third = records
    assert first["answered"] == 4 and first["secure_agg"]["dropped"] == 0  # type: ignore[index]
    assert second["answered"] == 3 and second["secure_agg"]["dropped"] == 1, diag  # type: ignore[index]
    assert third["answered"] >= 3
    survivors = [i for i in ids if i != hung.spec.node_id]
    # each survivor revealed its round seed with the hung node, and only once
    assert all(logs[i].count("revealed the round's masks") == 1 for i in survivors), diag
    assert "revealed the round's masks" not in logs[hung.spec.node_id]
    assert float(third["test_accuracy"]) > 0.6  # type: ignore[arg-type]
    if dp == "distributed":
        # every round was charged and noised by the nodes; epsilon grows with the rounds
        assert [r["dp_rounds"] for r in records] == [1, 2, 3]
        assert 0 < first["epsilon"] < second["epsilon"] < third["epsilon"]  # type: ignore[operator]
        assert all(float(r["dp_node_var"]) >= 8 for r in records)  # type: ignore[arg-type]
        assert all(r["train_loss"] == 0 for r in records)  # statistics blanked by the boards
