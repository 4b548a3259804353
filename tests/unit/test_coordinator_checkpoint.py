"""Checkpoints and resume: round trip, atomic replacement, clear errors, metrics kept in step
with the checkpoint, and a resumed run (also one interrupted mid-round) ending bit for bit where
an uninterrupted run with the same seed ends."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinyfl.coordinator import (
    CHECKPOINT_NAME,
    METRICS_NAME,
    Checkpoint,
    CheckpointError,
    EngineConfig,
    MetricsLog,
    RoundEngine,
    load_checkpoint,
    read_metrics,
    save_checkpoint,
    synthetic_task,
)
from tinyfl.coordinator.simnode import SimNode, start_fleet
from tinyfl.strategy import ClientResult, get_strategy
from tinyfl.transport.memory import MemoryBroker, MemoryTransport
from tinyfl.wire import Topics

TASK = synthetic_task(8, 3, seed=2, n_train=800, n_test=200)
TOPICS = Topics("tinyfl/ckpt")


def fedadam_checkpoint() -> tuple[Checkpoint, Any]:
    strategy = get_strategy("fedadam", eta=0.05)
    head = np.random.default_rng(0).normal(size=TASK.head_shape).astype(np.float32)
    state = strategy.init_state(head)
    deltas = [np.full(TASK.head_shape, v, np.float32) for v in (0.1, -0.3)]
    agg = strategy.aggregate(head, [ClientResult(d, 5) for d in deltas], state)
    ckpt = Checkpoint(
        round=3,
        wire_round=7,
        seed=11,
        head=agg.head,
        state=agg.state,
        task=TASK.name,
        model_hash=TASK.model_hash,
        config={"engine": {"lr": 0.1}, "strategy": {"name": "fedadam", "eta": 0.05}},
        stragglers={"n7": (2, 6)},
    )
    return ckpt, strategy


def test_a_checkpoint_round_trips_head_optimizer_state_and_config(tmp_path: Path) -> None:
    ckpt, strategy = fedadam_checkpoint()
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, ckpt)
    back = load_checkpoint(path)
    assert (back.round, back.wire_round, back.seed) == (3, 7, 11)
    assert back.task == TASK.name and back.model_hash == TASK.model_hash
    assert back.config == ckpt.config
    assert back.stragglers == {"n7": (2, 6)}  # the back-off a resumed run selects with
    assert back.head.dtype == np.float32 and np.array_equal(back.head, ckpt.head)
    assert set(back.state) == {"m", "v", "t"} and int(back.state["t"]) == 1
    # the optimizer continues identically from the loaded state
    updates = [ClientResult(np.full(TASK.head_shape, 0.2, np.float32), 3)]
    expected = strategy.aggregate(ckpt.head, updates, ckpt.state)
    got = strategy.aggregate(back.head, updates, back.state)
    assert np.array_equal(expected.head, got.head)


def test_a_failed_write_leaves_the_previous_checkpoint_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt, _ = fedadam_checkpoint()
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, ckpt)
    before = path.read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    newer = Checkpoint(4, 8, 11, ckpt.head + 1, {}, TASK.name, TASK.model_hash)
    with pytest.raises(OSError, match="power cut"):
        save_checkpoint(path, newer)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path).round == 3
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]  # no temporary left


def test_missing_or_damaged_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nothing to resume"):
        load_checkpoint(tmp_path / CHECKPOINT_NAME)
    ckpt, _ = fedadam_checkpoint()
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, ckpt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)
    assert CheckpointError("x").exit_code == 7


def test_metrics_are_cut_back_to_the_checkpointed_round(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / METRICS_NAME)
    for r in (1, 2, 3):
        log.append({"round": r, "test_accuracy": float("nan") if r == 2 else 0.5})
    with open(tmp_path / METRICS_NAME, "a") as f:
        f.write('{"round": 4, "torn')  # a crash in the middle of a line
    kept = log.truncate_after(2)
    assert [r["round"] for r in kept] == [1, 2]
    assert kept[1]["test_accuracy"] is None  # NaN is written as null
    assert [r["round"] for r in read_metrics(tmp_path / METRICS_NAME)] == [1, 2]
    assert json.loads((tmp_path / METRICS_NAME).read_text().splitlines()[0])["round"] == 1


# -- resume ----------------------------------------------------------------------------------


CONFIG = EngineConfig(
    rounds=5,
    clients_per_round=3,
    min_clients=2,
    round_timeout=5.0,
    epochs=2,
    batch_size=8,
    lr=0.3,
    uplink_bits=4,
    downlink_bits=8,
    seed=99,
    wait_timeout=5.0,
)


async def _nodes(broker: MemoryBroker, **kw: Any) -> list[SimNode]:
    return await start_fleet(
        TASK,
        5,
        topics=TOPICS,
        make_transport=lambda: MemoryTransport(broker),
        samples=40,
        seed=4,
        alpha=0.5,
        **kw,
    )


def _engine(
    broker: MemoryBroker, run_dir: Path, rounds: int, resume: bool = False
) -> tuple[RoundEngine, MemoryTransport]:
    transport = MemoryTransport(broker)
    ckpt = load_checkpoint(run_dir / CHECKPOINT_NAME) if resume else None
    config = EngineConfig(**{**CONFIG.to_dict(), "rounds": rounds})
    strategy = get_strategy("fedavgm", momentum=0.5)
    engine = RoundEngine(
        transport,
        TOPICS,
        TASK,
        strategy,
        config,
        run_dir=run_dir,
        resume_from=ckpt,
        round_id_clock=lambda: 0.0,  # small round ids, to check them one by one
    )
    return engine, transport


async def _uninterrupted(run_dir: Path) -> np.ndarray:
    broker = MemoryBroker()
    await _nodes(broker)
    engine, transport = _engine(broker, run_dir, CONFIG.rounds)
    await transport.connect(client_id="coordinator")
    result = await engine.run()
    assert [r["status"] for r in result.records] == ["closed"] * CONFIG.rounds
    return result.head


def test_resume_between_rounds_ends_exactly_where_an_uninterrupted_run_ends(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        expected = await _uninterrupted(tmp_path / "straight")
        broker = MemoryBroker()
        await _nodes(broker)
        run_dir = tmp_path / "resumed"
        run_dir.mkdir()
        first, t1 = _engine(broker, run_dir, rounds=2)
        await t1.connect(client_id="coordinator-1")
        await first.run()
        await t1.close()
        second, t2 = _engine(broker, run_dir, CONFIG.rounds, resume=True)
        assert second.round == 2
        await t2.connect(client_id="coordinator-2")
        result = await second.run()
        assert np.array_equal(result.head, expected)
        records = read_metrics(run_dir / METRICS_NAME)
        assert [r["round"] for r in records] == [1, 2, 3, 4, 5]
        straight = read_metrics(tmp_path / "straight" / METRICS_NAME)
        assert [r["test_accuracy"] for r in records] == [r["test_accuracy"] for r in straight]

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_resume_after_a_crash_mid_round_serves_that_round_again_under_a_new_round_id(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        expected = await _uninterrupted(tmp_path / "straight")
        broker = MemoryBroker()
        run_dir = tmp_path / "crashed"
        run_dir.mkdir()
        crashed = asyncio.Event()
        # round 3 (wire id 3) reaches the nodes, but the coordinator dies before it closes:
        # the nodes hold their answers back long enough for the crash to come first.
        nodes = await _nodes(broker, answer_delay=0.05)
        for node in nodes:
            node.on_global = lambda wire: crashed.set() if wire == 3 else None
        first, t1 = _engine(broker, run_dir, CONFIG.rounds)
        await t1.connect(client_id="coordinator-1")
        run = asyncio.ensure_future(first.run())
        await crashed.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        await t1.abort()
        assert load_checkpoint(run_dir / CHECKPOINT_NAME).round == 2
        await asyncio.sleep(0.2)  # the nodes' round-3 answers go nowhere
        second, t2 = _engine(broker, run_dir, CONFIG.rounds, resume=True)
        await t2.connect(client_id="coordinator-2")
        result = await second.run()
        assert np.array_equal(result.head, expected)
        records = read_metrics(run_dir / METRICS_NAME)
        assert [r["round"] for r in records] == [1, 2, 3, 4, 5]
        assert [r["wire_round"] for r in records] == [1, 2, 4, 5, 6]  # 3 was interrupted
        # the same nodes trained logical round 3 twice: as wire round 3, then 4
        first_try = {n.node_id for n in nodes if 3 in n.stats.served}
        assert len(first_try) == 3
        assert first_try == {n.node_id for n in nodes if 4 in n.stats.served}

    asyncio.run(asyncio.wait_for(scenario(), 30))
