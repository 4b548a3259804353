"""The coordinator against a real mosquitto: simulated Python nodes speaking the real wire format,
the `tinyfl coordinate` process killed with SIGKILL and resumed, and real native firmware nodes
running the NSL-KDD backbone on `tinyfl data partition`'s blobs.

Fleets get unique names because the session broker keeps retained messages between tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from support.broker import MosquittoBroker
from support.links import Link
from support.mqtt_probe import MqttProbe
from support.nodes import start_node, wait_until
from tinyfl.coordinator import (
    CHECKPOINT_NAME,
    METRICS_NAME,
    EngineConfig,
    RoundEngine,
    Task,
    load_checkpoint,
    load_task,
    read_metrics,
)
from tinyfl.coordinator.simnode import SimNode, start_fleet
from tinyfl.data.dataset import load_dataset
from tinyfl.data.packaged import cached
from tinyfl.fleet import Emulator, build_firmware
from tinyfl.fleet.partition import build_partition
from tinyfl.model.artifacts import load_artifacts
from tinyfl.report import plan_node_data
from tinyfl.strategy import get_strategy
from tinyfl.transport.memory import MemoryBroker, MemoryTransport
from tinyfl.transport.mqtt import MqttTransport
from tinyfl.wire import BlobKind, Topics, Update, decode, encode

pytestmark = pytest.mark.broker

REPO = Path(__file__).resolve().parents[2]
SCENARIO_TIMEOUT = 60.0
_fleets = itertools.count()


def fleet_name(tag: str) -> str:
    return f"{tag}-{os.getpid()}-{next(_fleets)}"


@pytest.fixture(scope="module")
def task() -> Task:
    # the simulated nodes train on the fleet's rows
    return load_task("nsl-kdd", cached("nsl-kdd").data)


def run(scenario: Callable[[], Any], timeout: float = SCENARIO_TIMEOUT) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout))


async def sim_fleet(
    broker: MosquittoBroker, task: Task, fleet: str, n: int, **kw: Any
) -> list[SimNode]:
    return await start_fleet(
        task,
        n,
        topics=Topics.for_fleet(fleet),
        url=broker.url,
        make_transport=lambda: MqttTransport(backoff_initial=0.05, backoff_cap=0.5),
        samples=150,
        seed=3,
        alpha=0.5,
        **kw,
    )


async def stop_all(nodes: list[SimNode]) -> None:
    await asyncio.gather(*(n.stop() for n in nodes), return_exceptions=True)


async def coordinator(broker: MosquittoBroker) -> MqttTransport:
    transport = MqttTransport()
    await transport.connect(broker.url, client_id=f"coordinator-{next(_fleets)}")
    return transport


def test_rounds_complete_with_simulated_nodes(broker: MosquittoBroker, task: Task) -> None:
    async def scenario() -> None:
        fleet = fleet_name("rounds")
        nodes = await sim_fleet(broker, task, fleet, 6)
        transport = await coordinator(broker)
        config = EngineConfig(
            rounds=4,
            clients_per_round=4,
            min_clients=3,
            round_timeout=10,
            epochs=2,
            lr=0.5,
            uplink_bits=4,
            seed=1,
        )
        engine = RoundEngine(
            transport, Topics.for_fleet(fleet), task, get_strategy("fedavg"), config
        )
        try:
            result = await engine.run()
        finally:
            await transport.close()
            await stop_all(nodes)
        records = result.records
        assert [r["status"] for r in records] == ["closed"] * 4
        assert all(r["answered"] == 4 and r["selected"] == 4 for r in records)
        ids = [r["wire_round"] for r in records]
        assert ids == sorted(set(ids)) and ids[0] >= int(time.time()) - 60  # follow the clock
        assert records[-1]["test_accuracy"] > 0.6  # KDDTest+, 5 classes
        assert records[-1]["train_loss"] < records[0]["train_loss"]
        # every accepted 4-bit update travelled as one whole PUBLISH packet of known size
        served = sum(len(n.stats.served) for n in nodes)
        assert served == 16
        assert all(r["bytes_up"] == records[0]["bytes_up"] for r in records)  # same sizes
        assert records[0]["bytes_down"] == 6 * records[0]["global_bytes"]

    run(scenario)


def test_killing_a_third_of_the_nodes_mid_round_closes_the_round_at_quorum(
    broker: MosquittoBroker, task: Task
) -> None:
    async def scenario() -> None:
        fleet = fleet_name("kill")
        steady = await sim_fleet(broker, task, fleet, 4)
        doomed_round: asyncio.Event = asyncio.Event()
        doomed = await start_fleet(
            task,
            2,
            topics=Topics.for_fleet(fleet),
            url=broker.url,
            first_index=4,
            make_transport=MqttTransport,
            samples=150,
            seed=3,
            answer_delay=30.0,
            on_global=lambda wire: doomed_round.set(),
        )
        transport = await coordinator(broker)
        config = EngineConfig(
            rounds=2, clients_per_round=6, min_clients=4, round_timeout=20, lr=0.5, seed=2
        )
        engine = RoundEngine(
            transport, Topics.for_fleet(fleet), task, get_strategy("fedavg"), config
        )
        run_task = asyncio.ensure_future(engine.run())
        await doomed_round.wait()  # round 1 reached everyone; the doomed two sit on theirs
        started = time.monotonic()
        for node in doomed:
            await node.crash()  # TCP dropped without DISCONNECT: mosquitto sends the will
        try:
            result = await run_task
        finally:
            await transport.close()
            await stop_all(steady)
        elapsed = time.monotonic() - started
        first, second = result.records
        assert first["status"] == "closed"
        assert (first["selected"], first["answered"], first["missing"]) == (6, 4, 2)
        assert elapsed < 5.0, elapsed  # closed on the wills, long before the 20 s deadline
        assert second["selected"] == 4 and second["online"] == 4

    run(scenario)


def _coordinate_cmd(broker: MosquittoBroker, fleet: str, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tinyfl.cli.main",
        "coordinate",
        "--broker",
        broker.url,
        "--fleet",
        fleet,
        "--task",
        "nsl-kdd",
        "--rounds",
        "5",
        "--clients-per-round",
        "4",
        "--min-clients",
        "3",
        "--round-timeout",
        "20",
        "--epochs",
        "2",
        "--lr",
        "0.5",
        "--uplink-bits",
        "8",
        "--downlink-bits",
        "8",
        "--strategy",
        "fedadam:eta=0.05",
        "--seed",
        "17",
        "--wait-nodes",
        "5",
        "--wait-timeout",
        "20",
        "--out",
        str(out),
        *extra,
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "host"), env.get("PYTHONPATH", "")) if p
    )
    return env


async def _wait_proc(proc: asyncio.subprocess.Process, timeout: float) -> tuple[int, str]:
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, (stdout + stderr).decode(errors="replace")


def test_coordinator_killed_and_resumed_ends_with_the_weights_of_an_uninterrupted_run(
    broker: MosquittoBroker, task: Task, tmp_path: Path
) -> None:
    async def scenario() -> None:
        straight_fleet, crash_fleet = fleet_name("straight"), fleet_name("crash")
        reached_round_3 = asyncio.Event()
        crash_ids: set[int] = set()

        def seen(wire: int) -> None:  # round ids follow the clock: count distinct GLOBALs
            crash_ids.add(wire)
            if len(crash_ids) == 3:
                reached_round_3.set()

        nodes = await sim_fleet(broker, task, straight_fleet, 5, answer_delay=0.2)
        nodes += await sim_fleet(
            broker,
            task,
            crash_fleet,
            5,
            answer_delay=0.2,
            on_global=seen,
        )
        try:
            straight = tmp_path / "straight"
            proc = await asyncio.create_subprocess_exec(
                *_coordinate_cmd(broker, straight_fleet, straight),
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            code, output = await _wait_proc(proc, 40)
            assert code == 0, output

            crashed = tmp_path / "crashed"
            proc = await asyncio.create_subprocess_exec(
                *_coordinate_cmd(broker, crash_fleet, crashed),
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            await asyncio.wait_for(reached_round_3.wait(), 30)
            proc.send_signal(signal.SIGKILL)  # mid-round 3: GLOBAL out, no update back yet
            code, output = await _wait_proc(proc, 10)
            assert code == -signal.SIGKILL, output
            assert load_checkpoint(crashed / CHECKPOINT_NAME).round == 2
            proc = await asyncio.create_subprocess_exec(
                *_coordinate_cmd(broker, crash_fleet, crashed, "--resume"),
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            code, output = await _wait_proc(proc, 40)
            assert code == 0, output
        finally:
            await stop_all(nodes)
        assert "5 of 5 rounds closed" in output  # the summary covers the whole run
        a = load_checkpoint(straight / CHECKPOINT_NAME)
        b = load_checkpoint(crashed / CHECKPOINT_NAME)
        assert a.round == b.round == 5
        assert np.array_equal(a.head, b.head)  # bit for bit
        for key in a.state:  # FedAdam's moments too
            assert np.array_equal(np.asarray(a.state[key]), np.asarray(b.state[key])), key
        records = read_metrics(crashed / METRICS_NAME)
        assert [r["round"] for r in records] == [1, 2, 3, 4, 5]  # none lost, none repeated
        ids = [r["wire_round"] for r in records]
        assert ids == sorted(set(ids))
        assert ids[2] >= ids[1] + 2  # round 3 went out again under a new id
        straight_records = read_metrics(straight / METRICS_NAME)
        assert [r["test_accuracy"] for r in records] == [
            r["test_accuracy"] for r in straight_records
        ]

    run(scenario, timeout=120)


def test_a_broker_restart_mid_round_loses_nothing(
    fresh_broker: MosquittoBroker, task: Task
) -> None:
    """mosquitto without persistence forgets every retained message when it restarts: the
    coordinator publishes the round's GLOBAL again, the nodes announce themselves again, and
    the updates they held back arrive once everyone is reconnected."""

    async def scenario() -> None:
        fleet = fleet_name("restart")
        nodes = await sim_fleet(fresh_broker, task, fleet, 3, answer_delay=3.0)
        transport = MqttTransport(backoff_initial=0.05, backoff_cap=0.5)
        await transport.connect(fresh_broker.url, client_id="coordinator-restart")
        config = EngineConfig(rounds=1, min_clients=3, round_timeout=20, lr=0.5)
        engine = RoundEngine(
            transport, Topics.for_fleet(fleet), task, get_strategy("fedavg"), config
        )
        run_task = asyncio.ensure_future(engine.run())
        try:
            while not all(n.stats.served for n in nodes):
                await asyncio.sleep(0.05)
            await asyncio.to_thread(fresh_broker.restart)
            result = await asyncio.wait_for(run_task, 30)
            probe = MqttTransport()
            await probe.connect(fresh_broker.url, client_id="probe-restart")
            await probe.subscribe(f"tinyfl/{fleet}/#", qos=1)
            retained = set()
            with contextlib.suppress(asyncio.TimeoutError):
                while True:
                    retained.add((await probe.receive(timeout=1.0)).topic)
            await probe.close()
        finally:
            await transport.close()
            await stop_all(nodes)
        (record,) = result.records
        assert record["status"] == "closed" and record["answered"] == 3
        assert transport.stats.reconnects >= 1
        assert f"tinyfl/{fleet}/global" in retained  # published again after the restart
        assert {f"tinyfl/{fleet}/nodes/{n.node_id}/hello" for n in nodes} <= retained

    run(scenario)


def test_updates_the_broker_acknowledged_and_lost_are_sent_again(
    fresh_broker: MosquittoBroker, task: Task
) -> None:
    """The broker PUBACKs the nodes' updates and dies before the coordinator gets them: the
    nodes hold no unacknowledged update, so only the protocol's "asked again" brings them back
    (the coordinator republishes the round's GLOBAL after reconnecting, and a node sends its
    last UPDATE again whenever that round's GLOBAL arrives). No round is lost."""

    async def scenario() -> None:
        fleet = fleet_name("acked")
        link = Link(fresh_broker.host, fresh_broker.port)
        await link.start()
        nodes = await sim_fleet(fresh_broker, task, fleet, 3, answer_delay=0.5)
        transport = MqttTransport(backoff_initial=0.05, backoff_cap=0.5)
        await transport.connect(f"mqtt://127.0.0.1:{link.port}", client_id="coordinator-acked")
        config = EngineConfig(rounds=2, min_clients=3, round_timeout=20, lr=0.5)
        engine = RoundEngine(
            transport, Topics.for_fleet(fleet), task, get_strategy("fedavg"), config
        )
        run_task = asyncio.ensure_future(engine.run())
        try:
            while not all(n.stats.globals_seen for n in nodes):
                await asyncio.sleep(0.01)
            link.hold()  # what the broker sends the coordinator from now on never arrives
            while not all(n.stats.served for n in nodes):
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # the updates went out and the broker acknowledged them
            assert engine.intake.open is not None and not engine.intake.open.answers
            link.cut()
            await asyncio.to_thread(fresh_broker.restart)
            result = await asyncio.wait_for(run_task, 40)
        finally:
            await transport.close()
            await stop_all(nodes)
            await link.close()
        assert [r["status"] for r in result.records] == ["closed", "closed"]
        assert all(r["answered"] == 3 for r in result.records)
        assert sum(n.stats.resent for n in nodes) >= 3  # round 1's updates, sent again
        assert all(len(set(n.stats.served)) == len(n.stats.served) == 2 for n in nodes)

    run(scenario, timeout=90)


def test_sigterm_stops_the_command_cleanly_with_the_checkpoint_in_place(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    async def scenario() -> None:
        fleet = fleet_name("term")
        synthetic = load_task("synthetic:d=16,k=3")
        nodes = await sim_fleet(broker, synthetic, fleet, 3, answer_delay=0.2)
        out = tmp_path / "run"
        cmd = [
            sys.executable,
            "-m",
            "tinyfl.cli.main",
            "coordinate",
            "--broker",
            broker.url,
            "--fleet",
            fleet,
            "--task",
            "synthetic:d=16,k=3",
            "--rounds",
            "100",
            "--wait-nodes",
            "3",
            "--out",
            str(out),
        ]
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            deadline = time.monotonic() + 20
            while not read_metrics(out / METRICS_NAME) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            code, output = await _wait_proc(proc, 10)
        finally:
            await stop_all(nodes)
        assert code == 130, output
        assert "stopped; the run continues with --resume --out" in output
        done = load_checkpoint(out / CHECKPOINT_NAME).round
        assert 1 <= done < 100
        assert [r["round"] for r in read_metrics(out / METRICS_NAME)] == list(range(1, done + 1))

    run(scenario)


@pytest.mark.firmware
def test_two_native_firmware_nodes_complete_three_rounds(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    image = build_firmware(Emulator.NATIVE)
    # what `tinyfl data partition` writes: the records' feature codes, which each node runs
    # through its compiled NSL-KDD backbone before training the head on the embeddings
    plan = build_partition(load_dataset(cached("nsl-kdd").data), load_artifacts("nsl-kdd"),
                           clients=2, scheme="iid", seed=40, max_samples=300)
    fleet = fleet_name("firmware")
    prefix = f"tinyfl/{fleet}"
    blobs = [node.blob for node in plan.nodes]
    art = load_artifacts("nsl-kdd")
    assert all(b.kind == BlobKind.RAW_WINDOWS and b.model_hash == art.model_hash for b in blobs)
    nodes = [
        start_node(
            Emulator.NATIVE,
            image,
            tmp_path / "nodes",
            f"fw-{i}",
            blob,
            broker.host,
            broker.port,
            prefix,
        )
        for i, blob in enumerate(blobs)
    ]
    probe = MqttProbe(broker.host, broker.port)
    try:
        probe.wait_connected()
        probe.subscribe(f"{prefix}/#")
        out = tmp_path / "run"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tinyfl.cli.main",
                "coordinate",
                "--broker",
                broker.url,
                "--fleet",
                fleet,
                "--task",
                "nsl-kdd",
                "--rounds",
                "3",
                "--min-clients",
                "2",
                "--wait-nodes",
                "2",
                "--wait-timeout",
                "30",
                "--round-timeout",
                "30",
                "--epochs",
                "2",
                "--lr",
                "0.5",
                "--uplink-bits",
                "4",
                "--out",
                str(out),
            ],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        logs = "\n".join(n.log_text()[-2000:] for n in nodes)
        assert result.returncode == 0, result.stdout + result.stderr + logs
        records = read_metrics(out / METRICS_NAME)
        assert [r["status"] for r in records] == ["closed"] * 3
        assert all(r["answered"] == 2 and r["rejected"] == 0 for r in records)
        assert records[-1]["test_accuracy"] > 0.6
        for node in nodes:
            wait_until(
                lambda n=node: len(re.findall(r"round \d+: \d+ samples", n.log_text())) == 3,
                10,
                "the node's log of its third round",
            )
        # What the coordinator sent and what the nodes answered went over the broker: the
        # numpy reference node, given the same GLOBAL and blob, gives the same 4-bit codes.
        globals_ = [decode(m.payload) for m in probe.messages() if m.topic == f"{prefix}/global"]
        updates = [(m.topic, decode(m.payload)) for m in probe.messages()
                   if m.topic.endswith("/update")]
        assert len(updates) == 6
        first = min(globals_, key=lambda g: g.round_id)
        data = plan_node_data(plan, art)[0]  # the numpy backbone's embeddings, as the node's
        twin = SimNode(
            "fw-0",
            data.x,
            data.y,
            model_hash=art.model_hash,
            n_classes=5,
            topics=Topics(prefix),
            transport=MemoryTransport(MemoryBroker()),
        )
        mine = decode(twin.serve_global(encode(first)) or b"")
        theirs = next(
            u
            for topic, u in updates
            if isinstance(u, Update) and u.round_id == first.round_id
            and topic == f"{prefix}/nodes/fw-0/update"
        )
        assert isinstance(mine, Update) and isinstance(theirs, Update)
        assert theirs.delta.codes is not None and mine.delta.codes is not None
        # the mirror sums in float64 where the node sums in float32: a code sitting on a
        # rounding boundary may land one step over; anything more is a real difference
        diff = np.abs(theirs.delta.codes.astype(int) - mine.delta.codes.astype(int))
        assert diff.max() <= 1 and np.mean(diff == 0) >= 0.99, diff
        assert np.allclose(theirs.delta.scales, mine.delta.scales, rtol=1e-5)
        assert abs(theirs.loss - mine.loss) <= 2e-3 * mine.loss  # binary16 rounds at 2^-11
    finally:
        for node in nodes:
            node.stop()
        probe.close()


@pytest.mark.firmware
def test_a_hung_firmware_node_costs_one_deadline_not_one_per_round(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    """Three native nodes, one frozen with SIGSTOP after it said hello: round 1 waits for it
    until the deadline, then the straggler back-off benches it and the next rounds close as soon
    as the two live nodes have answered."""
    image = build_firmware(Emulator.NATIVE)
    plan = build_partition(load_dataset(cached("nsl-kdd").data), load_artifacts("nsl-kdd"),
                           clients=3, scheme="iid", seed=41, max_samples=100)
    fleet = fleet_name("hung")
    prefix = f"tinyfl/{fleet}"
    nodes = [start_node(Emulator.NATIVE, image, tmp_path / "nodes", f"hung-{i}", node.blob,
                        broker.host, broker.port, prefix)
             for i, node in enumerate(plan.nodes)]
    try:
        for node in nodes:
            wait_until(lambda n=node: " online" in n.log_text(), 30, "the node's hello")
        os.kill(nodes[2].pid, signal.SIGSTOP)  # alive for the broker (its TCP session stays)
        out = tmp_path / "run"
        result = subprocess.run(
            [sys.executable, "-m", "tinyfl.cli.main", "coordinate", "--broker", broker.url,
             "--fleet", fleet, "--task", "nsl-kdd", "--rounds", "4", "--min-clients", "2",
             "--wait-nodes", "3", "--round-timeout", "3", "--straggler-backoff", "2",
             "--out", str(out)],
            env=_env(), capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        os.kill(nodes[2].pid, signal.SIGCONT)
        for node in nodes:
            node.stop()
    records = read_metrics(out / METRICS_NAME)
    assert [r["status"] for r in records] == ["closed"] * 4
    assert [r["selected"] for r in records] == [3, 2, 2, 3]  # benched for rounds 2 and 3
    assert [r["benched"] for r in records] == [0, 1, 1, 0]
    waits = [r["collect_time_s"] for r in records]
    assert waits[0] >= 2.9 and waits[3] >= 2.9  # the deadline, when the frozen node is selected
    assert waits[1] < 2.0 and waits[2] < 2.0, waits  # no waiting for it while it is benched
