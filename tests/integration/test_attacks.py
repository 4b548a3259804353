"""Attacks on a provisioned fleet (docs/SECURITY.md, "Attacks tried"), against the real
mosquitto and real native firmware nodes that sign their frames.

The broker is open on purpose (no accounts, no ACL): what the broker would refuse is tested in
test_provisioned_broker.py; here every forged, moved and replayed frame reaches the nodes and
the coordinator, and the frame keys alone must stop it. The attacked run must end with exactly
the model of a clean run with the same seed, and every forgery must be counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from support.broker import MosquittoBroker
from support.links import Link
from tinyfl.coordinator import EngineConfig, RoundEngine, Task, load_task, read_metrics
from tinyfl.coordinator.engine import RunResult
from tinyfl.coordinator.metrics import METRICS_NAME
from tinyfl.data.dataset import load_dataset
from tinyfl.data.packaged import cached
from tinyfl.fleet import Emulator, build_firmware
from tinyfl.fleet.nodes import NodeProcess, NodeSpec
from tinyfl.fleet.partition import build_partition
from tinyfl.model.artifacts import load_artifacts
from tinyfl.provision import FleetSecrets, new_fleet
from tinyfl.strategy import get_strategy
from tinyfl.transport.mqtt import MqttTransport
from tinyfl.wire import (
    Board,
    Global,
    Hello,
    Tensor,
    Topics,
    Update,
    decode,
    encode,
)

pytestmark = [pytest.mark.broker, pytest.mark.firmware]

NODE_IDS = ["fw-0", "fw-1", "fw-2"]
ROUNDS = 3
FAKE_NODES = 20
# s the nodes' link delays what the broker sends them: the attacker, on the broker directly,
# answers each GLOBAL before the honest nodes do (a forged invalid UPDATE arriving first used to
# get the honest node rejected)
NODE_LAG = 0.3
_runs = itertools.count()


@dataclass
class Fleet:
    """Native nodes of one run, each with its frame key and the fleet key."""

    topics: Topics
    secrets: FleetSecrets
    nodes: list[NodeProcess] = field(default_factory=list)

    def logs(self) -> str:
        return "\n".join(n.log_text() for n in self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="module")
def image() -> Path:
    return build_firmware(Emulator.NATIVE)


@pytest.fixture(scope="module")
def task() -> Task:
    return load_task("nsl-kdd", cached("nsl-kdd").data)


def start_fleet(broker: MosquittoBroker, image: Path, workdir: Path, port: int) -> Fleet:
    plan = build_partition(load_dataset(cached("nsl-kdd").data), load_artifacts("nsl-kdd"),
                           clients=len(NODE_IDS), scheme="iid", seed=41, max_samples=200)
    name = f"atk-{os.getpid()}-{next(_runs)}"
    fleet = Fleet(Topics.for_fleet(name), new_fleet(name, NODE_IDS))
    workdir.mkdir(parents=True, exist_ok=True)
    for node_id, part in zip(NODE_IDS, plan.nodes, strict=True):
        blob = workdir / f"{node_id}.blob"
        part.blob.write(blob)
        keys = (fleet.secrets.nodes[node_id].frame_key, fleet.secrets.fleet_key)
        spec = NodeSpec(node_id, blob, workdir, Emulator.NATIVE, keys=keys)
        node = NodeProcess(spec, image, "127.0.0.1", port, fleet.topics.prefix)
        node.start()
        fleet.nodes.append(node)
    return fleet


async def coordinate(broker: MosquittoBroker, fleet: Fleet, task: Task, run_dir: Path) -> RunResult:
    transport = MqttTransport()
    await transport.connect(broker.url, client_id=f"coordinator-{fleet.topics.prefix[7:]}")
    config = EngineConfig(rounds=ROUNDS, min_clients=3, wait_nodes=3, wait_timeout=20,
                          round_timeout=10, epochs=2, lr=0.5, seed=5)
    engine = RoundEngine(transport, fleet.topics, task, get_strategy("fedavg"), config,
                         run_dir=run_dir, keys=fleet.secrets.keyring())
    try:
        return await engine.run()
    finally:
        await transport.close()


class Attacker:
    """A client with no key on the open broker: forges, moves and replays frames."""

    def __init__(self, broker: MosquittoBroker, topics: Topics, task: Task) -> None:
        self.broker = broker
        self.topics = topics
        self.task = task
        self.transport = MqttTransport()
        self.captured: dict[str, tuple[int, bytes]] = {}  # node -> its first real UPDATE
        self.first_global: bytes | None = None
        self.rounds_attacked: list[int] = []

    def forged_update(self, round_id: int, *, wrong_key: bool) -> bytes:
        huge = Tensor.float32(np.full(self.task.head_shape, 1000.0, np.float32))
        update = Update(round_id, 0xFFFFFFFF, 0.1, 1.0, 1.0, huge)
        if not wrong_key:
            return encode(update)  # a CRC frame: what anyone without a key can make
        return encode(update, key=bytes(32), topic="guessed")  # a tag under a guessed key

    async def send(self, topic: str, payload: bytes) -> None:
        await self.transport.publish(topic, payload, qos=0)

    async def before_the_run(self) -> None:
        await self.transport.connect(self.broker.url, client_id=f"attacker-{os.getpid()}")
        for i in range(FAKE_NODES):
            node_id = f"ghost-{i:02d}"
            hello = Hello(node_id, 0x000100, self.task.model_hash, 10_000, 0, 4000,
                          self.task.embed_dim, self.task.n_classes, 0x0F, int(Board.NATIVE))
            key = None if i % 2 else os.urandom(32)  # CRC frames and tags under made-up keys
            frame = encode(hello, key=key, topic=self.topics.hello(node_id))
            await self.transport.publish(self.topics.hello(node_id), frame, retain=True)
            await self.transport.publish(self.topics.status(node_id), b"online", retain=True)
        # One retained GLOBAL near the end of the id space with a destructive learning rate:
        # nodes that took it would ignore every later round and train with lr 1000.
        head = Tensor.float32(np.zeros(self.task.head_shape, np.float32))
        forged = Global(0xFFFFFFFF, self.task.model_hash, self.task.embed_dim,
                        self.task.n_classes, 1, 16, 1000.0, 0.0, 0.0, 8, 1, 1, (), head)
        await self.transport.publish(self.topics.global_, encode(forged), retain=True)
        await self.transport.subscribe(self.topics.global_, qos=1)
        await self.transport.subscribe(self.topics.all_nodes("update"), qos=1)

    async def during_the_run(self) -> None:
        """On every real GLOBAL: forge an UPDATE for every node, move one node's real UPDATE
        to another's topic, and replay the first round's UPDATEs in later rounds."""
        async for message in self.transport.messages():
            if message.topic == self.topics.global_:
                msg = decode(message.payload)
                if not isinstance(msg, Global) or msg.round_id == 0xFFFFFFFF:
                    continue
                if self.first_global is None:
                    self.first_global = message.payload
                self.rounds_attacked.append(msg.round_id)
                for node_id in NODE_IDS:
                    topic = self.topics.update(node_id)
                    await self.send(topic, self.forged_update(msg.round_id, wrong_key=False))
                    await self.send(topic, self.forged_update(msg.round_id, wrong_key=True))
                    if len(self.rounds_attacked) > 1 and node_id in self.captured:
                        await self.send(topic, self.captured[node_id][1])
                continue
            parsed = self.topics.parse(message.topic)
            if parsed is None or message.payload in (c[1] for c in self.captured.values()):
                continue
            node_id = parsed[1]
            if node_id not in self.captured:
                self.captured[node_id] = (len(self.rounds_attacked), message.payload)
                # the same bytes on the next node's topic: the tag names the topic
                other = NODE_IDS[(NODE_IDS.index(node_id) + 1) % len(NODE_IDS)]
                await self.send(self.topics.update(other), message.payload)

    async def after_the_run(self) -> None:
        # A genuine GLOBAL, replayed: nodes already served its round id.
        if self.first_global is not None:
            await self.transport.publish(self.topics.global_, self.first_global, retain=True)
        await asyncio.sleep(0.5)
        await self.transport.close()


def run_fleet(broker: MosquittoBroker, image: Path, task: Task, workdir: Path,
              attack: bool) -> tuple[RunResult, Fleet, Attacker | None]:
    link = Link(broker.host, broker.port, lag=NODE_LAG)

    async def scenario() -> tuple[RunResult, Fleet, Attacker | None]:
        await link.start()
        fleet = start_fleet(broker, image, workdir / "nodes", link.port)
        attacker = Attacker(broker, fleet.topics, task) if attack else None
        watcher = None
        if attacker is not None:
            await attacker.before_the_run()
            watcher = asyncio.ensure_future(attacker.during_the_run())
        try:
            result = await coordinate(broker, fleet, task, workdir / "run")
            if watcher is not None and attacker is not None:
                await asyncio.sleep(NODE_LAG * 2)  # what the attacker still has in hand
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                await attacker.after_the_run()
                # the replayed GLOBAL reaches the nodes through their lagging link
                await asyncio.sleep(NODE_LAG * 3)
            return result, fleet, attacker
        except BaseException:
            fleet.stop()
            raise
        finally:
            await link.close()

    return asyncio.run(asyncio.wait_for(scenario(), 90))


def test_forged_moved_and_replayed_frames_change_nothing(
    broker: MosquittoBroker, image: Path, task: Task, tmp_path: Path
) -> None:
    clean, clean_fleet, _ = run_fleet(broker, image, task, tmp_path / "clean", attack=False)
    clean_fleet.stop()
    attacked, fleet, attacker = run_fleet(broker, image, task, tmp_path / "attacked", attack=True)
    try:
        assert attacker is not None and len(attacker.rounds_attacked) == ROUNDS
        records = read_metrics(tmp_path / "attacked" / "run" / METRICS_NAME)
        clean_records = read_metrics(tmp_path / "clean" / "run" / METRICS_NAME)
        # the model is the clean run's: nothing forged was averaged in, no honest node refused
        np.testing.assert_allclose(attacked.head, clean.head, rtol=1e-6, atol=1e-7)
        assert [r["test_accuracy"] for r in records] == [
            r["test_accuracy"] for r in clean_records]
        assert all(r["status"] == "closed" and r["answered"] == 3 for r in records)
        assert all(r["rejected"] == 0 for r in records), records
        assert all(sorted(r["answered_ids"]) == NODE_IDS for r in records)  # no ghost selected
        dropped: dict[str, int] = {}
        for r in records:
            for reason, n in r["dropped_reasons"].items():
                dropped[reason] = dropped.get(reason, 0) + n
        # every round: a CRC forgery and a guessed-key forgery per node
        assert dropped.get("bad_frame_unauthenticated", 0) >= 3 * ROUNDS
        # guessed keys, and the first real UPDATE of each node moved to another node's topic
        assert dropped.get("bad_frame_bad_tag", 0) >= 3 * ROUNDS + 1
        # the first round's UPDATEs replayed in later rounds: the node's own bytes, an old round
        assert sum(r["late"] for r in records[1:]) >= 2
        assert records[-1]["refused_announcements"] >= FAKE_NODES
        logs = fleet.logs()
        assert "ignored: unauthenticated" in logs  # the forged retained GLOBAL
        # each node trained each round once: the replayed GLOBAL was not served again
        for node in fleet.nodes:
            trained = [line for line in node.log_text().splitlines() if " B up" in line]
            assert len(trained) == ROUNDS, node.log_text()[-2000:]
            assert "lr 1000" not in node.log_text()
    finally:
        fleet.stop()
