#!/usr/bin/env python3
"""Central differential privacy on HAR: test accuracy against epsilon (delta 1e-5) with 100 and
1000 simulated nodes, 8-bit uplink. Writes bench/results/privacy.json and bench/privacy.md.

The real round engine on the in-memory broker with simulated nodes (the firmware's numpy
mirrors of training and quantization), DP-FedAvg as `tinyfl coordinate --dp central` runs it:
nodes clip their delta to C, the coordinator clips again, averages with a fixed denominator and
adds Gaussian noise of std z C / m; z is calibrated by dp-accounting so that the planned rounds
spend exactly the budget. One fleet per size is started once and serves every configuration
(each run is a fresh coordinator continuing the round ids), so a 1000-node row costs its rounds,
not a thousand connections each time.

    python bench/bench_privacy.py [--skip-1000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "host"))

from tinyfl.cli.demo import DEMO_EPOCHS, DEMO_LR
from tinyfl.coordinator.config import EngineConfig
from tinyfl.coordinator.engine import RoundEngine
from tinyfl.coordinator.simnode import start_fleet
from tinyfl.coordinator.task import Task, load_task
from tinyfl.data.packaged import cached
from tinyfl.strategy import get_strategy
from tinyfl.strategy.dp import noise_multiplier_for, noise_std
from tinyfl.transport.memory import MemoryBroker, MemoryTransport
from tinyfl.wire import Topics

EPSILONS: tuple[float | None, ...] = (1.0, 2.0, 4.0, 8.0, None)  # None: no DP
DELTA = 1e-5
CLIP = 0.2  # about the median update norm after the first rounds (measured: 0.13..0.25)
SAMPLES = 64  # rows per node: 100 nodes hold about the 6423 fleet rows once
# (nodes, sampling rate q, rounds, seeds): why these in privacy.md ("Settings"); the 1000-node
# fleet gets fewer seeds because each of its runs takes about 30 s (its GLOBAL, listing ~100
# selected ids, outgrows a node's buffer, so every node trains and unselected answers are dropped)
FLEETS: tuple[tuple[int, float, int, int], ...] = ((100, 1.0, 10, 5), (1000, 0.1, 10, 2))
TIMEOUT = 120.0


def bench_key(nodes: int, seed: int, epsilon: float | None) -> bytes:
    """A fixed noise key per configuration, so the bench repeats exactly. A real run draws its
    key at random and keeps it secret (coordinator/privacy.py)."""
    return hashlib.sha256(f"bench-privacy/{nodes}/{seed}/{epsilon}".encode()).digest()


def config_for(q: float, rounds: int, seed: int, epsilon: float | None) -> EngineConfig:
    dp: dict[str, Any] = {} if epsilon is None else {
        "dp": "central", "dp_epsilon": epsilon, "dp_delta": DELTA}
    return EngineConfig(
        rounds=rounds, fraction=None if q >= 1 else q, min_clients=1, clip_norm=CLIP,
        epochs=DEMO_EPOCHS, lr=DEMO_LR, batch_size=16, seed=seed, wait_timeout=TIMEOUT,
        round_timeout=TIMEOUT, **dp)


async def fleet_rows(task: Task, nodes: int, q: float, rounds: int,
                     seeds: int) -> list[dict[str, Any]]:
    broker = MemoryBroker(f"privacy-{nodes}")
    topics = Topics("tinyfl/privacy")
    t0 = time.monotonic()
    sims = await start_fleet(task, nodes, topics=topics,
                             make_transport=lambda: MemoryTransport(broker), samples=SAMPLES,
                             seed=0)
    print(f"{nodes} nodes up in {time.monotonic() - t0:.1f} s", flush=True)
    rows = []
    try:
        for seed in range(seeds):
            for epsilon in EPSILONS:
                config = config_for(q, rounds, seed, epsilon)
                transport = MemoryTransport(broker)
                await transport.connect(client_id=f"coordinator-{seed}-{epsilon}")
                engine = RoundEngine(
                    transport, topics, task, get_strategy("fedavg"),
                    EngineConfig(**{**config.to_dict(), "wait_nodes": nodes}),
                    round_id_clock=lambda: 0.0, dp_noise_key=bench_key(nodes, seed, epsilon))
                started = time.monotonic()
                try:
                    result = await engine.run()
                finally:
                    await transport.close()
                acc = [float(r["test_accuracy"]) for r in result.records]
                z = config.dp_noise_multiplier
                row = {
                    "nodes": nodes, "sampling": q, "rounds": rounds, "seed": seed,
                    "epsilon_budget": epsilon, "noise_multiplier": z,
                    "epsilon_spent": result.records[-1].get("epsilon"),
                    "noise_std": None if z is None else noise_std(z, CLIP, q * nodes),
                    "final_accuracy": acc[-1], "accuracy": acc,
                    "answered_mean": statistics.mean(r["answered"] for r in result.records),
                    "closed": sum(r["status"] == "closed" for r in result.records),
                    "wall_time_s": round(time.monotonic() - started, 1),
                }
                rows.append(row)
                print(f"{nodes} nodes seed {seed} epsilon {epsilon}: z {z}, final "
                      f"{acc[-1]:.4f} ({row['wall_time_s']} s)", flush=True)
    finally:
        await asyncio.gather(*(s.stop() for s in sims), return_exceptions=True)
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for nodes, q, rounds, _ in FLEETS:
        for epsilon in EPSILONS:
            cell = [r for r in rows if r["nodes"] == nodes and r["epsilon_budget"] == epsilon]
            if not cell:
                continue
            finals = [r["final_accuracy"] for r in cell]
            out.append({
                "nodes": nodes, "sampling": q, "rounds": rounds, "epsilon_budget": epsilon,
                "noise_multiplier": cell[0]["noise_multiplier"],
                "noise_std": cell[0]["noise_std"],
                "epsilon_spent": cell[0]["epsilon_spent"],
                "final_accuracy": statistics.mean(finals),
                "final_accuracy_min": min(finals), "final_accuracy_max": max(finals),
                "seeds": len(cell),
            })
    return out


def _eps(value: float | None) -> str:
    return "no DP" if value is None else f"{value:g}"


def noise_ratio(nodes: int, q: float, rounds: int, epsilon: float, weights: int) -> float:
    """The calibrated noise's expected L2 norm on the average, in units of C: z sqrt(W) / (q N)
    for W head weights; the signal (the mean clipped delta) is at most C long."""
    z = noise_multiplier_for(epsilon, DELTA, rounds, q)
    return z * weights ** 0.5 / (q * nodes)


def markdown(summary: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    s = settings
    w = s["head_weights"]
    ratios = ", ".join(f"q = {q:g}: {noise_ratio(100, q, 10, 2.0, w):.2f}" for q in (0.1, 0.3, 1.0))
    big = noise_ratio(1000, 0.1, 10, 2.0, w)
    lines = [
        "# Central differential privacy on HAR",
        "",
        (f"Recorded {date.today().isoformat()} by `python bench/bench_privacy.py` on "
         f"{platform.machine()}, {os.cpu_count()} cores, in {s['wall_time_s']:.0f} s; every "
         "seed's curve in `results/privacy.json`."),
        "",
        "## Utility",
        "",
        ("Final test accuracy (mean over the seeds, [min, max]) of the HAR head after "
         f"the planned rounds, node-level (epsilon, {DELTA:g})-DP, `--dp central` "
         "(DP-FedAvg), 8-bit uplink. The noise std is on the average delta (z C / m); "
         "`no DP`: the same clipping, rounds and fraction without noise (and without DP the "
         "engine's fixed-size selection of ceil(q N) nodes instead of the Poisson sample)."),
        "",
        "| nodes | q | rounds | epsilon | z | noise std | final acc % | [min, max] | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        z = "-" if r["noise_multiplier"] is None else f"{r['noise_multiplier']:.3f}"
        std = "-" if r["noise_std"] is None else f"{r['noise_std']:.4f}"
        lines.append(
            f"| {r['nodes']} | {r['sampling']:g} | {r['rounds']} | {_eps(r['epsilon_budget'])} "
            f"| {z} | {std} | {100 * r['final_accuracy']:.2f} | "
            f"[{100 * r['final_accuracy_min']:.2f}, {100 * r['final_accuracy_max']:.2f}] | "
            f"{r['seeds']} |")
    lines += [
        "| 32 (emulated) | | | | | | to be measured | | |",
        "",
        ("The 32 emulated nodes row (QEMU boards through `tinyfl demo --dp ...`) is left to the "
         "engineer doing secure aggregation and the node-side (distributed) noise, who runs the "
         "emulated fleet; the distributed mode itself comes with secure aggregation and is not "
         "in this table."),
        "",
        "## Settings",
        "",
        (f"Simulated nodes of {SAMPLES} HAR fleet rows each (IID draws; the 1000-node fleet "
         f"shares rows, about {1000 * SAMPLES // 6423} nodes per row), {DEMO_EPOCHS} local "
         f"epochs at lr {DEMO_LR}, batch 16, clip norm C = {CLIP} on the node and again on the "
         "coordinator, FedAvg with equal weights and the fixed denominator m = q N, zero initial "
         "head; seeds 0, 1, ... (selection, the nodes' shuffles and rounding, the noise)."),
        "",
        ("Why these rounds and sampling rates. Under DP-FedAvg the noise on the average is "
         "z C / (q N), and in the regime where sampling amplifies privacy z grows about like "
         "q sqrt(T) at a fixed epsilon: the noise then depends on the rounds T and the fleet "
         "size N, hardly on q, and every extra round costs budget. So: few rounds with more "
         "local work (10 rounds, 2 epochs; the head converges in about 10 rounds without DP), "
         "and q as large as the fleet's compute allows where amplification is weak. With 100 "
         "nodes and 10 rounds, every node every round (q = 1) gives less noise than sampling: "
         f"the calibrated noise's norm on the {w} head weights at epsilon 2, in units of C, "
         f"is {ratios}. With 1000 nodes q = 0.1 (about 100 nodes a round, the cost of the "
         f"100-node fleet) already brings it to {big:.2f}."),
        "",
        ("C = 0.2 is about the median update norm from round 2 on (0.13..0.25 measured with "
         "norm bounding; the first round's deltas, from a zero head, are about 0.7): smaller C "
         "means less noise and more clipping bias, and this linear head tolerates the bias."),
        "",
    ]
    return "\n".join(lines + reading(summary))


def reading(summary: list[dict[str, Any]]) -> list[str]:
    def final(nodes: int, epsilon: float | None) -> float:
        return next(r["final_accuracy"] for r in summary
                    if r["nodes"] == nodes and r["epsilon_budget"] == epsilon)

    out = ["## Reading", ""]
    for nodes, _, _, _ in FLEETS:
        if not any(r["nodes"] == nodes for r in summary):
            continue
        gap = 100 * (final(nodes, 1.0) - final(nodes, None))
        out.append(f"- {nodes} nodes: epsilon 1 ends {gap:+.2f} points from no DP "
                   f"({100 * final(nodes, 1.0):.2f}% against {100 * final(nodes, None):.2f}%).")
    out += [
        ("- The HAR head is a linear layer of 390 weights on a fixed backbone: its noisy "
         "average stays informative at these noise levels, so the cost of node-level DP is "
         "small here. A larger trainable model spreads the same noise std over more weights "
         "(the noise norm grows with the square root of their number) and would pay more."),
        ("- Differences of a point or less between epsilons are within the seed-to-seed spread "
         "(the [min, max] column)."),
        "",
    ]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-1000", action="store_true", help="only the 100-node fleet")
    args = ap.parse_args()
    task = load_task("har", cached("har").data)
    t0 = time.monotonic()
    rows: list[dict[str, Any]] = []
    for nodes, q, rounds, seeds in FLEETS:
        if nodes == 1000 and args.skip_1000:
            continue
        rows += asyncio.run(fleet_rows(task, nodes, q, rounds, seeds))
    summary = summarize(rows)
    settings = {
        "task": task.name, "delta": DELTA, "clip_norm": CLIP, "samples_per_node": SAMPLES,
        "fleets": [{"nodes": n, "sampling": q, "rounds": t, "seeds": k}
                   for n, q, t, k in FLEETS],
        "epsilons": ["inf" if e is None else e for e in EPSILONS], "epochs": DEMO_EPOCHS,
        "lr": DEMO_LR, "batch_size": 16, "uplink_bits": 8, "strategy": "fedavg",
        "accountant": "dp-accounting 0.6.0 RdpAccountant, PoissonSampledDpEvent(q, "
        "GaussianDpEvent(z)) per round",
        "wall_time_s": round(time.monotonic() - t0, 1),
        "head_weights": int(task.head_shape[0] * task.head_shape[1]),
    }
    (ROOT / "bench/results").mkdir(parents=True, exist_ok=True)
    doc = {"settings": settings, "summary": summary, "runs": rows}
    (ROOT / "bench/results/privacy.json").write_text(
        json.dumps(doc, indent=2, default=lambda v: None) + "\n")
    text = markdown(summary, settings)
    (ROOT / "bench/privacy.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
