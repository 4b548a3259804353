"""Round bookkeeping of the coordinator, on the in-memory broker: quorum, deadline and extension,
late/duplicate/unselected updates, invalid updates, nodes going offline, round ids, downlink
quantization and reproducible selection.

Nodes here are hand-driven (`FakeNode`): each test decides exactly what every node sends and
when, so every count in the round record is known in advance.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from tinyfl.coordinator import (
    CoordinatorError,
    EngineConfig,
    RoundEngine,
    synthetic_task,
)
from tinyfl.errors import UsageError
from tinyfl.strategy import get_strategy
from tinyfl.transport.memory import MemoryBroker, MemoryTransport
from tinyfl.transport.mqtt import Will
from tinyfl.wire import Global, Hello, Tensor, Topics, Update, decode, encode

TASK = synthetic_task(8, 3, seed=1, n_train=600, n_test=200)
TOPICS = Topics("tinyfl/unit")
SHAPE = TASK.head_shape
TEST_TIMEOUT = 20.0


class FakeNode:
    """A node driven by the test: announces itself like a real one, then sends only what the
    test tells it to."""

    def __init__(
        self,
        broker: MemoryBroker,
        node_id: str,
        *,
        model_hash: bytes = TASK.model_hash,
        n_samples: int = 10,
        uplink_bits: int = 0x0F,
        max_payload: int = 4096,
    ) -> None:
        self.node_id = node_id
        self.transport = MemoryTransport(broker)
        self.hello = Hello(
            node_id,
            0x000100,
            model_hash,
            n_samples,
            0,
            max_payload,
            SHAPE[1] - 1,
            SHAPE[0],
            uplink_bits,
            0,
        )
        self.globals: asyncio.Queue[Global] = asyncio.Queue()
        self.last_seen = 0
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> FakeNode:
        status = TOPICS.status(self.node_id)
        await self.transport.connect(
            client_id=f"fake-{self.node_id}", will=Will(status, b"offline")
        )
        await self.transport.publish(status, b"online", retain=True)
        await self.transport.publish(TOPICS.hello(self.node_id), encode(self.hello), retain=True)
        await self.transport.subscribe(TOPICS.global_)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _read(self) -> None:
        async for message in self.transport.messages():
            msg = decode(message.payload)
            assert isinstance(msg, Global)
            await self.globals.put(msg)

    async def next_global(self, timeout: float = 5.0) -> Global:
        """The next GLOBAL newer than any this node saw (a retained older one is skipped)."""
        while True:
            msg = await asyncio.wait_for(self.globals.get(), timeout)
            if msg.round_id > self.last_seen:
                self.last_seen = msg.round_id
                return msg

    def update(
        self,
        g: Global,
        delta: np.ndarray | Tensor | None = None,
        *,
        round_id: int | None = None,
        n_samples: int | None = None,
        loss: float = 0.5,
    ) -> Update:
        if delta is None:
            delta = np.zeros(SHAPE, np.float32)
        tensor = delta if isinstance(delta, Tensor) else Tensor.float32(delta)
        with np.errstate(over="ignore", invalid="ignore"):
            norm = float(np.linalg.norm(tensor.dequantized()))
        return Update(
            round_id=g.round_id if round_id is None else round_id,
            n_samples=self.hello.n_samples if n_samples is None else n_samples,
            loss=loss,
            accuracy=0.5,
            update_norm=norm if np.isfinite(norm) else 0.0,
            delta=tensor,
        )

    async def send(self, update: Update | bytes) -> None:
        payload = update if isinstance(update, bytes) else encode(update)
        await self.transport.publish(TOPICS.update(self.node_id), payload)

    async def crash(self) -> None:
        await self.transport.abort()


def engine_for(broker: MemoryBroker, **config: Any) -> tuple[RoundEngine, MemoryTransport]:
    transport = MemoryTransport(broker)
    defaults: dict[str, Any] = {"rounds": 1, "round_timeout": 2.0, "wait_timeout": 2.0}
    defaults.update(config)
    strategy = get_strategy("fedavg")
    engine = RoundEngine(
        transport, TOPICS, TASK, strategy, EngineConfig(**defaults), round_id_clock=lambda: 0.0
    )
    return engine, transport


async def start_engine(engine: RoundEngine, transport: MemoryTransport) -> asyncio.Task[Any]:
    await transport.connect(client_id="coordinator")
    return asyncio.get_running_loop().create_task(engine.run())


def run(scenario: Callable[[MemoryBroker], Awaitable[None]]) -> None:
    async def main() -> None:
        await asyncio.wait_for(scenario(MemoryBroker()), TEST_TIMEOUT)

    asyncio.run(main())


async def fleet(broker: MemoryBroker, n: int, **kw: Any) -> list[FakeNode]:
    return [await FakeNode(broker, f"n{i}", **kw).start() for i in range(n)]


def delta(value: float) -> np.ndarray:
    return np.full(SHAPE, value, np.float32)


# ---------------------------------------------------------------------------------------------


def test_round_closes_when_every_selected_node_answered_and_averages_by_samples() -> None:
    async def scenario(broker: MemoryBroker) -> None:
        nodes = [
            await FakeNode(broker, f"n{i}", n_samples=s).start() for i, s in enumerate((10, 30))
        ]
        engine, transport = engine_for(broker, round_timeout=10.0, min_clients=2)
        task = await start_engine(engine, transport)
        g = await nodes[0].next_global()
        assert g.selected == () and g.round_id == 1  # every eligible node: no list needed
        assert np.array_equal(g.head.dequantized(), np.zeros(SHAPE, np.float32))
        started = time.monotonic()
        await nodes[0].send(nodes[0].update(g, delta(1.0)))
        await nodes[1].send(nodes[1].update(g, delta(-1.0)))
        result = await task
        assert time.monotonic() - started < 1.0  # closed on the last answer, not the deadline
        (record,) = result.records
        assert record["status"] == "closed"
        assert (record["selected"], record["answered"], record["missing"]) == (2, 2, 0)
        assert (record["late"], record["dropped"], record["rejected"]) == (0, 0, 0)
        # FedAvg by samples: (10 * 1 + 30 * -1) / 40 = -0.5
        assert np.array_equal(result.head, delta(-0.5))
        assert record["train_loss"] == pytest.approx(0.5)
        assert record["samples"] == 40
        assert record["bytes_up"] > 2 * 4 * SHAPE[0] * SHAPE[1]  # two float32 deltas and more
        assert record["bytes_down"] == 2 * record["global_bytes"]

    run(scenario)


def test_quorum_closes_the_round_at_the_deadline_without_extension() -> None:
    async def scenario(broker: MemoryBroker) -> None:
        nodes = await fleet(broker, 3)
        engine, transport = engine_for(broker, round_timeout=0.3, min_clients=2)
        task = await start_engine(engine, transport)
        g = await nodes[0].next_global()
        started = time.monotonic()
        await nodes[0].send(nodes[0].update(g, delta(1.0)))
        await nodes[1].send(nodes[1].update(g, delta(3.0)))
        result = await task  # n2 stays online and silent
        elapsed = time.monotonic() - started
        (record,) = result.records
        assert record["status"] == "closed"
        assert (record["answered"], record["missing"]) == (2, 1)
        assert 0.25 <= elapsed < 0.55, elapsed  # the deadline, not deadline + extension
        assert np.array_equal(result.head, delta(2.0))

    run(scenario)


def test_below_quorum_extends_once_then_skips_and_the_next_round_goes_on() -> None:
    async def scenario(broker: MemoryBroker) -> None:
        nodes = await fleet(broker, 3)
        engine, transport = engine_for(broker, rounds=2, round_timeout=0.2, min_clients=2)
        task = await start_engine(engine, transport)
        g1 = await nodes[0].next_global()
        started = time.monotonic()
        await nodes[0].send(nodes[0].update(g1, delta(1.0)))
        g2 = await nodes[0].next_global(timeout=2.0)  # round 2 begins after the skip
        skipped_after = time.monotonic() - started
        assert 0.35 <= skipped_after < 0.8, skipped_after  # deadline + one extension
        assert g2.round_id == g1.round_id + 1
        assert np.array_equal(g2.head.dequantized(), np.zeros(SHAPE, np.float32))  # unchanged
        for node in nodes:
            await node.send(node.update(g2, delta(2.0)))
        result = await task
        first, second = result.records
        assert first["status"] == "skipped"
        assert (first["answered"], first["missing"]) == (1, 2)
        assert "quorum is 2" in first["reason"] and "1 of 3" in first["reason"]
        assert first["train_loss"] is None
        assert second["status"] == "closed" and second["answered"] == 3
        # the update sent in round 1 was never averaged in
        assert np.array_equal(result.head, delta(2.0))

    run(scenario)


def test_an_update_arriving_during_the_extension_rescues_the_round() -> None:
    async def scenario(broker: MemoryBroker) -> None:
        nodes = await fleet(broker, 3)
        engine, transport = engine_for(broker, round_timeout=0.25, min_clients=2)
        task = await start_engine(engine, transport)
        g = await nodes[0].next_global()
        started = time.monotonic()
        await nodes[0].send(nodes[0].update(g, delta(1.0)))
        await asyncio.sleep(0.35)  # past the deadline, inside the extension
        await nodes[1].send(nodes[1].update(g, delta(1.0)))
        result = await task
        elapsed = time.monotonic() - started
        (record,) = result.records
        assert record["status"] == "closed" and record["answered"] == 2
        assert 0.35 <= elapsed < 0.45, elapsed  # closed at quorum, not at the extended deadline

    run(scenario)


def test_late_duplicate_and_unselected_updates_are_dropped_and_counted() -> None:
    async def scenario(broker: MemoryBroker) -> None:
        nodes = await fleet(broker, 3)
        by_id = {n.node_id: n for n in nodes}
        engine, transport = engine_for(
            broker, rounds=2, clients_per_round=2, min_clients=2, round_timeout=0.5
        )
        task = await start_engine(engine, transport)
        g1 = await nodes[0].next_global()
        assert len(g1.selected) == 2
        for node_id in g1.selected:
            await by_id[node_id].send(by_id[node_id].update(g1, delta(1.0)))
        g2 = await nodes[0].next_global()
        chosen = [by_id[i] for i in g2.selected]
        outsider = next(n for n in nodes if n.node_id not in g2.selected)
        await chosen[0].send(chosen[0].update(g1, delta(100.0)))  # late: round 1 again
        await chosen[0].send(chosen[0].update(g2, delta(2.0)))
        await chosen[0].send(chosen[0].update(g2, delta(50.0)))  # duplicate
        await outsider.send(outsider.update(g2, delta(70.0)))  # not selected
        await chosen[1].send(chosen[1].update(g2, delta(4.0)))
        result = await task
        second = result.records[1]
        assert second["status"] == "closed" and second["answered"] == 2
        assert second["late"] == 1
        assert second["dropped"] == 2
        assert second["dropped_reasons"] == {"duplicate": 1, "unselected": 1}
        assert np.array_equal(result.head, delta(1.0 + 3.0))  # round 1 mean 1, round 2 mean 3

    run(scenario)


def test_wrong_model_nodes_are_never_selected_and_their_updates_are_dropped() -> None:
    async def scenario(broker: MemoryBroker) -> None:
        good = await fleet(broker, 3)
        stranger = await FakeNode(broker, "stranger", model_hash=b"\x01" * 8).start()
        engine, transport = engine_for(broker, clients_per_round=3, min_clients=2)
        task = await start_engine(engine, transport)
        g = await good[0].next_global()
        assert engine.registry.ineligible_reason(engine.registry.get("stranger")) == "wrong_model"  # type: ignore[arg-type]
        assert engine.records == [] and "stranger" not in g.selected
        await stranger.send(stranger.update(g, delta(9.0)))  # answers anyway
        for node in good:
            await node.send(node.update(g, delta(1.0)))
        result = await task
        (record,) = result.records
        assert record["answered"] == 3 and record["rejected"] == 0
        assert record["dropped_reasons"] == {"unselected": 1}
        assert np.array_equal(result.head, delta(1.0))

    run(scenario)


def test_wrong_shape_and_zero_sample_updates_are_rejected_and_garbage_dropped() -> None:
    async def scenario(broker: MemoryBroker) -> None:
        nodes = await fleet(broker, 5)
        engine, transport = engine_for(broker, min_clients=1, round_timeout=0.5)
        task = await start_engine(engine, transport)
        g = await nodes[0].next_global()
        started = time.monotonic()
        await nodes[0].send(nodes[0].update(g, np.zeros((SHAPE[0], SHAPE[1] + 1), np.float32)))
        # binary16 scales top out at 65504: a scale of 3e38 saturates, nothing can overflow
        codes = np.ones(SHAPE, np.int8)
        huge = Tensor.quantized(codes * 127, np.float32(3.0e38), 8)
        assert np.isfinite(huge.dequantized()).all() and huge.scales[0] == 65504.0
        await nodes[2].send(nodes[2].update(g, delta(1.0), n_samples=0))
        await nodes[3].send(b"garbage")
        await nodes[4].send(nodes[4].update(g, delta(5.0)))
        result = await task
        (record,) = result.records
        assert record["answered"] == 1 and record["rejected"] == 2
        assert record["rejected_reasons"] == {"wrong_shape": 1, "no_samples": 1}
        # bytes that are not a frame could come from anyone: dropped, nobody marked
        assert record["dropped_reasons"] == {"bad_frame_bad_magic": 1}
        # n0 and n2 answered invalidly and are done; bytes that are not an UPDATE from n3 are
        # no answer, so the round waited for n1 and n3 until the deadline, then closed at quorum.
        assert record["missing"] == 2
        assert time.monotonic() - started >= 0.45
        assert np.array_equal(result.head, delta(5.0))

    run(scenario)


def test_a_node_going_offline_mid_round_lets_the_round_close_early() -> None:
    async def scenario(broker: MemoryBroker) -> None:
        nodes = await fleet(broker, 3)
        engine, transport = engine_for(broker, min_clients=2, round_timeout=10.0)
        task = await start_engine(engine, transport)
        g = await nodes[0].next_global()
        started = time.monotonic()
        await nodes[0].send(nodes[0].update(g, delta(1.0)))
        await nodes[1].send(nodes[1].update(g, delta(1.0)))
        await asyncio.sleep(0.1)
        assert not task.done()  # n2 is still online: the round waits for it
        await nodes[2].crash()  # the broker publishes its will: offline
        result = await task
        assert time.monotonic() - started < 1.0
        (record,) = result.records
        assert record["status"] == "closed"
        assert (record["answered"], record["missing"]) == (2, 1)
        assert not engine.registry.is_online("n2")

    run(scenario)


def test_offline_nodes_are_not_selected_in_the_next_round() -> None:
    async def scenario(broker: MemoryBroker) -> None:
        nodes = await fleet(broker, 4)
        engine, transport = engine_for(broker, rounds=2, clients_per_round=4, min_clients=2)
        task = await start_engine(engine, transport)
        g1 = await nodes[0].next_global()
        await nodes[3].crash()
        for node in nodes[:3]:
            await node.send(node.update(g1, delta(1.0)))
        g2 = await nodes[0].next_global()
        assert g2.selected == ()  # the 3 online nodes are every eligible node
        for node in nodes[:3]:
            await node.send(node.update(g2, delta(1.0)))
        result = await task
        assert [r["selected"] for r in result.records] == [4, 3]
        assert result.records[1]["online"] == 3

    run(scenario)


def test_a_selection_too_long_for_a_node_buffer_is_broadcast_and_outsiders_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(broker: MemoryBroker) -> None:
        engine, transport = engine_for(broker, clients_per_round=2, min_clients=2)
        tight = engine.registry.global_payload + 3  # the frame fits, two more ids do not
        nodes = await fleet(broker, 3, max_payload=tight)
        task = await start_engine(engine, transport)
        g = await nodes[0].next_global()
        assert g.selected == () and len(encode(g)) <= tight  # "every node", so it fits
        for node in nodes:  # all three train; only the two selected count
            await node.send(node.update(g, delta(1.0)))
        result = await task
        (record,) = result.records
        assert (record["selected"], record["answered"]) == (2, 2)
        assert record["dropped_reasons"] == {"unselected": 1}
        assert any("broadcasting to every node" in r.getMessage() for r in caplog.records)

    run(scenario)


def test_too_few_eligible_nodes_is_an_error_that_names_what_was_seen() -> None:
    async def scenario(broker: MemoryBroker) -> None:
        await FakeNode(broker, "stranger", model_hash=b"\x01" * 8).start()
        await FakeNode(broker, "mute", uplink_bits=0x08).start()  # float32 uplink only
        engine, transport = engine_for(broker, min_clients=1, wait_timeout=0.2)
        task = await start_engine(engine, transport)
        with pytest.raises(CoordinatorError) as info:
            await task
        message = str(info.value)
        assert "only 0 eligible" in message
        assert "stranger wrong_model" in message and "mute uplink_unsupported" in message

    run(scenario)


def test_round_ids_continue_after_the_global_retained_on_the_broker() -> None:
    async def scenario(broker: MemoryBroker) -> None:
        nodes = await fleet(broker, 1)
        old = MemoryTransport(broker)
        await old.connect(client_id="previous-run")
        retained = Global(
            41,
            TASK.model_hash,
            SHAPE[1] - 1,
            SHAPE[0],
            1,
            1,
            0.1,
            0.0,
            0.0,
            8,
            1,
            0,
            (),
            Tensor.float32(np.zeros(SHAPE, np.float32)),
        )
        await old.publish(TOPICS.global_, encode(retained), retain=True)
        await old.close()
        nodes[0].last_seen = 41
        engine, transport = engine_for(broker)
        task = await start_engine(engine, transport)
        g = await nodes[0].next_global()
        assert g.round_id == 42
        await nodes[0].send(nodes[0].update(retained, delta(3.0)))  # a straggler of round 41
        await nodes[0].send(nodes[0].update(g, delta(1.0)))
        result = await task
        assert result.records[0]["wire_round"] == 42
        assert result.records[0]["late"] == 1

    run(scenario)


def test_round_ids_never_fall_below_the_clock() -> None:
    """Nodes remember the last round id they served even when the broker forgets its retained
    GLOBAL; ids that follow the clock stay above what an earlier run sent."""

    async def scenario(broker: MemoryBroker) -> None:
        nodes = await fleet(broker, 1)
        transport = MemoryTransport(broker)
        config = EngineConfig(rounds=2, round_timeout=2.0, wait_timeout=2.0)
        now = [1_764_000_000.0]
        engine = RoundEngine(
            transport, TOPICS, TASK, get_strategy("fedavg"), config, round_id_clock=lambda: now[0]
        )
        task = await start_engine(engine, transport)
        g1 = await nodes[0].next_global()
        assert g1.round_id == 1_764_000_000
        await nodes[0].send(nodes[0].update(g1))
        g2 = await nodes[0].next_global()
        assert g2.round_id == 1_764_000_001  # faster than the clock: one more than the last
        await nodes[0].send(nodes[0].update(g2))
        result = await task
        assert [r["wire_round"] for r in result.records] == [g1.round_id, g2.round_id]

    run(scenario)


def test_with_an_8bit_downlink_the_server_continues_from_exactly_what_nodes_received() -> None:
    async def scenario(broker: MemoryBroker) -> None:
        nodes = await fleet(broker, 1)
        engine, transport = engine_for(broker, rounds=2, downlink_bits=8)
        task = await start_engine(engine, transport)
        g1 = await nodes[0].next_global()
        assert g1.head.bits == 8
        rng = np.random.default_rng(3)
        first = rng.normal(0, 1, SHAPE).astype(np.float32)
        await nodes[0].send(nodes[0].update(g1, first))
        g2 = await nodes[0].next_global()
        received = g2.head.dequantized()
        assert g2.head.bits == 8 and g2.head.scale_mode == 1
        assert not np.array_equal(received, first)  # 8 bits lose something...
        assert np.abs(received - first).max() <= np.abs(first).max() / 127 + 1e-6  # ...this much
        await nodes[0].send(nodes[0].update(g2, np.zeros(SHAPE, np.float32)))
        result = await task
        assert np.array_equal(result.head, received)  # bit for bit what the node started from

    run(scenario)


async def _selections(seed: int, rounds: int) -> list[tuple[str, ...]]:
    broker = MemoryBroker()
    nodes = await fleet(broker, 6)
    engine, transport = engine_for(
        broker, rounds=rounds, clients_per_round=3, min_clients=1, seed=seed
    )
    task = await start_engine(engine, transport)
    by_id = {n.node_id: n for n in nodes}
    chosen = []
    for _ in range(rounds):
        g = await nodes[0].next_global()
        for node in nodes[1:]:
            node.last_seen = g.round_id
        chosen.append(g.selected)
        for node_id in g.selected:
            await by_id[node_id].send(by_id[node_id].update(g))
    await task
    return chosen


def test_selection_is_reproducible_from_the_seed() -> None:
    async def scenario(broker: MemoryBroker) -> None:
        a = await _selections(seed=5, rounds=4)
        b = await _selections(seed=5, rounds=4)
        c = await _selections(seed=6, rounds=4)
        assert a == b
        assert a != c
        assert len(set(a)) > 1  # rounds differ among themselves
        assert all(len(s) == 3 for s in a)

    run(scenario)


def test_a_node_that_misses_a_deadline_sits_out_the_next_rounds_then_comes_back() -> None:
    """Straggler back-off: a hung node costs one deadline, not one per round."""

    async def scenario(broker: MemoryBroker) -> None:
        nodes = await fleet(broker, 3)
        engine, transport = engine_for(broker, rounds=4, round_timeout=0.3, min_clients=2,
                                       straggler_backoff=1)
        task = await start_engine(engine, transport)
        selections = []
        for _ in range(4):
            g = await nodes[0].next_global()
            selections.append(g.selected)
            for node in nodes[:2]:  # n2 never answers
                await node.send(node.update(g, delta(1.0)))
        result = await task
        # round 1: all three selected ("every node"), n2 misses -> sits out round 2; round 3:
        # back, misses again -> sits out 2 rounds (round 4, and 5 if there were one)
        assert [r["selected"] for r in result.records] == [3, 2, 3, 2]
        assert [r["benched"] for r in result.records] == [0, 1, 0, 1]
        assert [r["status"] for r in result.records] == ["closed"] * 4
        assert "n2" not in selections[1] and "n2" not in selections[3]
        assert engine.stragglers == {"n2": (2, 5)}
        assert engine.checkpoint().stragglers == {"n2": (2, 5)}  # resumes select the same

    run(scenario)


def test_benched_nodes_are_selected_when_the_quorum_needs_them() -> None:
    from tinyfl.coordinator.stragglers import candidates, record_round

    state = record_round({}, 1, ["a", "b"], ["c"], backoff=2)
    assert state == {"a": (1, 3), "b": (1, 3)}
    assert candidates(["a", "b", "c"], state, 2, quorum=1) == ["c"]
    assert candidates(["a", "b", "c"], state, 2, quorum=2) == ["a", "b", "c"]
    assert candidates(["a", "b", "c"], state, 4, quorum=3) == ["a", "b", "c"]
    state = record_round(state, 4, ["a"], ["b"], backoff=2)
    assert state == {"a": (2, 8)}  # 2 x 2 rounds after the second miss in a row
    assert record_round({"a": (9, 10)}, 11, ["a"], [], backoff=8)["a"] == (10, 27)  # capped
    assert record_round({"a": (1, 3)}, 2, ["a"], [], backoff=0) == {"a": (1, 3)}  # off


def test_a_round_interval_paces_round_starts_however_fast_nodes_answer() -> None:
    async def scenario(broker: MemoryBroker) -> None:
        (node,) = await fleet(broker, 1)
        engine, transport = engine_for(broker, rounds=3, round_interval=0.4)
        task = await start_engine(engine, transport)
        starts = []
        for _ in range(3):
            g = await node.next_global()
            starts.append(time.monotonic())
            await node.send(node.update(g, delta(1.0)))
        result = await task
        assert [r["status"] for r in result.records] == ["closed"] * 3
        gaps = np.diff(starts)
        assert (gaps >= 0.35).all() and (gaps < 1.5).all(), gaps  # answers take milliseconds

    run(scenario)
    with pytest.raises(UsageError, match="--round-interval must be >= 0"):
        EngineConfig(round_interval=-1.0)
