"""Secure aggregation (docs/PRIVACY.md): the masks cancel exactly, one masked update looks
uniform, dropped nodes' masks are recovered from the survivors' round seeds, and the round
engine with simulated nodes (in-memory broker, signed frames) aggregates exactly the survivors'
codes, whoever drops out after masking."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tinyfl.coordinator import EngineConfig, RoundEngine, load_task
from tinyfl.coordinator.simnode import SimNode, make_node_id, partition
from tinyfl.errors import UsageError
from tinyfl.provision.keys import new_fleet, pair_seed
from tinyfl.strategy import get_strategy
from tinyfl.strategy.ddp import node_noise, node_noise_var, noisy_mask_bits
from tinyfl.strategy.secagg import (
    add_masks,
    mask_bits_for,
    mask_vector,
    masked_sum,
    round_seed,
    signed_sum,
    to_modular,
    unmask_correction,
)
from tinyfl.transport.memory import MemoryBroker, MemoryTransport
from tinyfl.wire import Masked, Topics, Update, decode

DEALER = bytes(range(32))
IDS = [f"n{i}" for i in range(6)]
SHAPE = (6, 65)


def seeds_of(node: str, ids: list[str]) -> dict[str, bytes]:
    return {peer: pair_seed(DEALER, node, peer) for peer in ids if peer != node}


def codes_of(rng: np.random.Generator, n: int, qmax: int = 127) -> list[np.ndarray]:
    return [rng.integers(-qmax, qmax + 1, SHAPE) for _ in range(n)]


def test_mask_bits_hold_the_sum_exactly() -> None:
    assert mask_bits_for(127, 2) == 9
    assert mask_bits_for(127, 100) == 15
    assert mask_bits_for(7, 1000) == 14
    for n in (2, 5, 100):
        bits = mask_bits_for(127, n)
        assert 2 ** bits > 2 * n * 127 and (bits == 9 or 2 ** (bits - 1) <= 2 * n * 127)


@pytest.mark.parametrize("dropped", [0, 1, 2, 3])  # n - t = 6 - 3 = 3 with a majority threshold
def test_the_survivors_sum_is_exact_after_dropouts(dropped: int) -> None:
    rng = np.random.default_rng(dropped)
    codes = codes_of(rng, len(IDS))
    bits, round_id = mask_bits_for(127, len(IDS)), 4242
    masked = {u: add_masks(c, u, seeds_of(u, IDS), IDS, round_id, bits)
              for u, c in zip(IDS, codes, strict=True)}
    gone = IDS[1 : 1 + dropped]  # vanish after masking: their updates never arrive
    survivors = [u for u in IDS if u not in gone]
    corrections = [unmask_correction(s, d, round_seed(pair_seed(DEALER, s, d), round_id),
                                     codes[0].size, bits)
                   for s in survivors for d in gone]
    total = masked_sum([masked[s].reshape(-1) for s in survivors], corrections, bits)
    expect = np.sum([c for u, c in zip(IDS, codes, strict=True) if u in survivors], axis=0)
    np.testing.assert_array_equal(signed_sum(total, bits).reshape(SHAPE), expect)
    if dropped:  # without the corrections the sum is garbage
        wrong = signed_sum(masked_sum([masked[s].reshape(-1) for s in survivors], [], bits), bits)
        assert not np.array_equal(wrong.reshape(SHAPE), expect)


def test_one_masked_update_looks_uniform_and_unmasked_codes_do_not() -> None:
    """Chi-square of 16 equal bins of [0, 2^b): a masked update against the unmasked codes
    (which sit near 0 and near 2^b, two's complement): the test fails if masking were skipped."""
    rng = np.random.default_rng(7)
    big = (64, 64)  # 4096 values: enough for a sharp test
    bits = 15
    codes = rng.integers(-127, 128, big)
    ids = IDS[:4]
    masked = add_masks(codes, ids[0], seeds_of(ids[0], ids), ids, 99, bits)

    def chi2(values: np.ndarray) -> float:
        counts = np.bincount((values.reshape(-1).astype(np.int64) >> (bits - 4)), minlength=16)
        expect = values.size / 16
        return float(((counts - expect) ** 2 / expect).sum())

    # 15 degrees of freedom: P(chi2 > 37.7) = 0.001
    assert chi2(masked) < 37.7
    assert chi2(to_modular(codes, bits)) > 1000


def test_masks_are_fresh_per_round_and_per_pair() -> None:
    s = pair_seed(DEALER, "n0", "n1")
    assert round_seed(s, 1) != round_seed(s, 2)
    assert round_seed(s, 1) != round_seed(pair_seed(DEALER, "n0", "n2"), 1)
    a, b = mask_vector(round_seed(s, 1), 100, 16), mask_vector(round_seed(s, 2), 100, 16)
    assert not np.array_equal(a, b) and a.max() < 2**16
    # a revealed round seed gives that round's mask and nothing of the next one
    assert np.array_equal(mask_vector(round_seed(s, 1), 100, 16), a)


# -- the round engine with simulated nodes ---------------------------------------------------


def run_fleet(n: int, drop: Callable[[str], bool], threshold: int | None = None,
              rounds: int = 2, **dp: Any) -> tuple[list[dict[str, Any]], dict[int, dict[str, Update]],
                                        list[SimNode], np.ndarray, np.ndarray]:
    """A secure-aggregation run; `drop(id)` nodes vanish after masking round 1 (they answer
    round 1's GLOBAL never). Returns records, every UPDATE published (by round id and node),
    the nodes, and the heads before and after round 1."""
    task = load_task("synthetic:d=16,k=3,seed=1")
    assert task.train_x is not None and task.train_y is not None
    ids = [make_node_id(i) for i in range(n)]
    fleet = new_fleet("sa", ids)
    keys = fleet.keyring()
    parts = partition(task.train_x, task.train_y, n, 60, 3)
    broker = MemoryBroker("secagg")
    topics = Topics("tinyfl/secagg")
    nodes = [SimNode(i, x, y, model_hash=task.model_hash, n_classes=task.n_classes,
                     topics=topics, transport=MemoryTransport(broker),
                     frame_key=fleet.nodes[i].frame_key, fleet_key=fleet.fleet_key,
                     peer_seeds=fleet.seeds_of(i),
                     answer_delay=3600.0 if drop(i) else 0.0)
             for i, (x, y) in zip(ids, parts, strict=True)]
    seen: dict[int, dict[str, Update]] = {}
    heads: list[np.ndarray] = []

    async def scenario() -> list[dict[str, Any]]:
        spy = MemoryTransport(broker)
        await spy.connect(client_id="spy")
        await spy.subscribe(topics.all_nodes("update"))
        await asyncio.gather(*(node.start() for node in nodes))
        transport = MemoryTransport(broker)
        await transport.connect(client_id="coordinator")
        config = EngineConfig(rounds=rounds, min_clients=2, wait_nodes=n, round_timeout=1.0,
                              epochs=2, lr=0.5, clip_norm=1.0, secure_agg=True,
                              secure_agg_threshold=threshold, **dp)
        engine = RoundEngine(transport, topics, task, get_strategy("fedavg"), config,
                             keys=keys, round_id_clock=lambda: 0.0)
        heads.append(engine.head.copy())

        async def listen() -> None:
            async for message in spy.messages():
                msg = decode(message.payload)
                parsed = topics.parse(message.topic)
                if isinstance(msg, Update) and parsed is not None:
                    seen.setdefault(msg.round_id, {})[parsed[1]] = msg

        listener = asyncio.ensure_future(listen())
        try:
            await engine.start()
            await engine.wait_for_nodes()
            await engine.run_round()
            heads.append(engine.head.copy())
            while engine.round < rounds:
                await engine.run_round()
            await engine.stop()
            return engine.records
        finally:
            listener.cancel()
            await spy.close()
            await transport.close()
            await asyncio.gather(*(node.crash() for node in nodes), return_exceptions=True)

    records = asyncio.run(asyncio.wait_for(scenario(), 60))
    return records, seen, nodes, heads[0], heads[1]


def unmasked_codes(update: Update, node: str, ids: list[str], dealer_seeds: dict[str, bytes],
                   round_id: int) -> np.ndarray:
    """The codes inside a masked update, recovered with every seed (what no party can do)."""
    assert isinstance(update.delta, Masked)
    bits = update.delta.bits
    zero = add_masks(np.zeros(update.delta.shape, np.int64), node, dealer_seeds, ids, round_id,
                     bits)
    diff = (update.delta.values.astype(np.int64) - zero.astype(np.int64)) & ((1 << bits) - 1)
    return signed_sum(diff, bits)


@pytest.mark.parametrize("n_dropped", [0, 1, 2])
def test_engine_aggregates_exactly_the_survivors_codes(n_dropped: int) -> None:
    n = 5
    gone = {make_node_id(i) for i in range(1, 1 + n_dropped)}
    records, seen, nodes, before, after = run_fleet(n, lambda i: i in gone)
    first = records[0]
    assert first["status"] == "closed", first
    assert first["answered"] == n - n_dropped
    assert first["secure_agg"]["dropped"] == n_dropped
    round_id = first["wire_round"]
    survivors = sorted(seen[round_id])
    assert set(survivors) == {node.node_id for node in nodes} - gone
    ids = [node.node_id for node in nodes]
    # the test knows every seed (the dealer's view): strip the masks and sum the codes
    by_id = {node.node_id: node for node in nodes}
    codes = [unmasked_codes(seen[round_id][s], s, ids, by_id[s].peer_seeds, round_id)
             for s in survivors]
    assert all(np.abs(c).max() <= 127 for c in codes)  # real 8-bit codes came out
    mask_bits = first["secure_agg"]["mask_bits"]
    scale = float(np.float32(1.0) / np.float32(127))
    mean = (np.sum(codes, axis=0).astype(np.float64) * scale / len(survivors)).astype(np.float32)
    np.testing.assert_array_equal(after, (before + mean).astype(np.float32))
    assert mask_bits == mask_bits_for(127, n)
    if n_dropped:
        assert sum(node.stats.ignored["unmask_other_round"] for node in nodes) == 0


@pytest.mark.parametrize("n_dropped", [0, 1])
def test_distributed_dp_sum_is_the_survivors_codes_plus_exactly_their_noise(n_dropped: int) -> None:
    n = 5
    gone = {make_node_id(1)} if n_dropped else set()
    records, seen, nodes, before, after = run_fleet(n, lambda i: i in gone, rounds=1,
                                                    dp="distributed", dp_noise_multiplier=0.5)
    first = records[0]
    assert first["status"] == "closed", first
    assert first["dp_rounds"] == 1 and first["epsilon"] > 0
    round_id = first["wire_round"]
    survivors = sorted(seen[round_id])
    assert len(survivors) == n - n_dropped
    var = int(first["dp_node_var"])
    dim = 3 * 17
    t = n // 2 + 1  # the default threshold
    assert var == node_noise_var(0.5, 127, dim, t)  # the shares of t - 1 others reach z L2
    assert first["secure_agg"]["mask_bits"] == noisy_mask_bits(127, n, var, dim)
    ids = [node.node_id for node in nodes]
    by_id = {node.node_id: node for node in nodes}
    noisy = [unmasked_codes(seen[round_id][s], s, ids, by_id[s].peer_seeds, round_id)
             for s in survivors]
    # the test recomputes each survivor's noise from its key (which the coordinator lacks)
    noise = [node_noise(by_id[s].noise_key, round_id, dim, var).reshape(3, 17) for s in survivors]
    codes = [y - e for y, e in zip(noisy, noise, strict=True)]
    assert all(np.abs(c).max() <= 127 for c in codes)  # the codes were real 8-bit codes
    assert all(np.abs(e).max() > 0 for e in noise)
    # the statistics a node sends in the clear are blanked: they are outside the guarantee
    assert all(seen[round_id][s].loss == seen[round_id][s].update_norm == 0 for s in survivors)
    scale = float(np.float32(1.0) / np.float32(127))
    total = np.sum(codes, axis=0) + np.sum(noise, axis=0)  # what the coordinator unmasked
    mean = (total.astype(np.float64) * scale / len(survivors)).astype(np.float32)
    np.testing.assert_array_equal(after, (before + mean).astype(np.float32))
    assert first["dp_noise_std"] == pytest.approx(np.sqrt(len(survivors) * var) * scale
                                                  / len(survivors))


def test_below_the_threshold_the_round_is_skipped_without_unmasking() -> None:
    n = 5
    gone = {make_node_id(i) for i in range(3)}  # 2 survivors, threshold 3
    records, _, nodes, before, after = run_fleet(n, lambda i: i in gone, threshold=3, rounds=1)
    assert records[0]["status"] == "skipped" and "below the threshold" in records[0]["reason"]
    np.testing.assert_array_equal(before, after)
    # nobody was asked: no survivor revealed a round seed
    assert all(node._masked_round is not None for node in nodes if node.node_id not in gone)


def test_secure_agg_refuses_what_cannot_work() -> None:
    with pytest.raises(UsageError, match="clip-norm"):
        EngineConfig(secure_agg=True, min_clients=2)
    with pytest.raises(UsageError, match="uplink-bits"):
        EngineConfig(secure_agg=True, clip_norm=1.0, uplink_bits=32, min_clients=2)
    with pytest.raises(UsageError, match="not both"):
        EngineConfig(secure_agg=True, clip_norm=1.0, min_clients=2, dp="central",
                     dp_noise_multiplier=1.0)
    with pytest.raises(UsageError, match="add --secure-agg"):
        EngineConfig(clip_norm=1.0, min_clients=2, dp="distributed", dp_noise_multiplier=1.0)
    with pytest.raises(UsageError, match="--clients-per-round"):
        EngineConfig(secure_agg=True, clip_norm=1.0, min_clients=2, dp="distributed",
                     dp_noise_multiplier=1.0, clients_per_round=3)
    task = load_task("synthetic:d=4,k=2")
    config = EngineConfig(secure_agg=True, clip_norm=1.0, min_clients=2)
    with pytest.raises(UsageError, match="only the sum"):
        RoundEngine(MemoryTransport(MemoryBroker("x")), Topics("tinyfl/x"), task,
                    get_strategy("median"), config)


def test_a_seed_is_never_the_same_for_two_fleets() -> None:
    a, b = secrets.token_bytes(32), secrets.token_bytes(32)
    assert pair_seed(a, "x", "y") != pair_seed(b, "x", "y")
