#!/usr/bin/env python3
"""Poisoning by provisioned nodes on HAR: final test accuracy of each aggregator under each attack,
against the clean FedAvg run. Writes bench/results/poisoning.json and bench/poisoning.md.

20% of the simulated nodes tamper with their trained delta before quantizing it (attacks in
`tinyfl.coordinator.attacks`: x100, sign flip, sign flip x10); their frames are valid, so the
intake accepts them and only aggregation defends. The real round engine on the in-memory broker,
simulated nodes on the HAR fleet's rows (the int8 backbone's embeddings, bit-exact with the
nodes'), each configuration repeated over a few seeds (partition and GLOBAL seed).

    python bench/bench_poisoning.py [--nodes 20] [--rounds 30] [--seeds 3]
"""

from __future__ import annotations

import argparse
import asyncio
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
from tinyfl.coordinator.attacks import ATTACKS, FleetSpec, malicious_ids, run_poisoned
from tinyfl.coordinator.config import EngineConfig
from tinyfl.coordinator.task import Task, load_task
from tinyfl.data.packaged import cached
from tinyfl.strategy import parse_strategy_spec

STRATEGIES = ("fedavg", "median", "trimmed-mean:beta=0.2", "norm-bounded")
CLEAN = "clean"
PARTITIONS: tuple[tuple[str, float | None], ...] = (("iid", None), ("dirichlet:0.5", 0.5))
FRACTION = 0.2
SAMPLES = 300
TOLERANCE = 2.0  # points from the clean FedAvg run that count as "defended"


async def one_run(task: Task, fleet: FleetSpec, config: EngineConfig, spec: str,
                  attack: str) -> dict[str, Any]:
    bad = malicious_ids(fleet.n_nodes, FRACTION)
    tampers = {} if attack == CLEAN else dict.fromkeys(bad, ATTACKS[attack])
    records = await run_poisoned(task, fleet, config, parse_strategy_spec(spec), tampers)
    acc = [float(r["test_accuracy"]) for r in records]
    return {
        "strategy": spec, "attack": attack, "final_accuracy": acc[-1], "lowest_accuracy": min(acc),
        "final_test_loss": float(records[-1]["test_loss"]), "accuracy": acc,
        "rejected": sum(int(r["rejected"]) for r in records),
    }


def matrix(task: Task, nodes: int, rounds: int, seeds: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for partition, alpha in PARTITIONS:
        for seed in range(seeds):
            fleet = FleetSpec(n_nodes=nodes, samples=SAMPLES, seed=seed, alpha=alpha)
            config = EngineConfig(rounds=rounds, epochs=DEMO_EPOCHS, lr=DEMO_LR, batch_size=16,
                                  seed=seed)
            t0 = time.monotonic()
            for spec in STRATEGIES:
                for attack in (CLEAN, *ATTACKS):
                    row = asyncio.run(one_run(task, fleet, config, spec, attack))
                    rows.append({"partition": partition, "seed": seed, **row})
            print(f"{partition} seed {seed}: {time.monotonic() - t0:.1f} s", flush=True)
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (partition, strategy, attack): accuracies averaged over seeds, and the gap to the
    clean FedAvg run of the same seed (mean and worst)."""
    clean = {(r["partition"], r["seed"]): r["final_accuracy"] for r in rows
             if r["strategy"] == "fedavg" and r["attack"] == CLEAN}
    out = []
    for partition, _ in PARTITIONS:
        for spec in STRATEGIES:
            for attack in (CLEAN, *ATTACKS):
                cell = [r for r in rows if (r["partition"], r["strategy"], r["attack"])
                        == (partition, spec, attack)]
                gaps = [100 * (r["final_accuracy"] - clean[partition, r["seed"]]) for r in cell]
                out.append({
                    "partition": partition, "strategy": spec, "attack": attack,
                    "final_accuracy": statistics.mean(r["final_accuracy"] for r in cell),
                    "lowest_accuracy": statistics.mean(r["lowest_accuracy"] for r in cell),
                    "final_test_loss": statistics.mean(r["final_test_loss"] for r in cell),
                    "gap_mean": statistics.mean(gaps), "gap_worst": min(gaps),
                    "within_tolerance": all(abs(g) <= TOLERANCE for g in gaps),
                })
    return out


def markdown(summary: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    s = settings
    lines = [
        "# Poisoning by provisioned nodes on HAR",
        "",
        (f"Recorded {date.today().isoformat()} by `python bench/bench_poisoning.py` on "
         f"{platform.machine()}, {os.cpu_count()} cores; raw numbers (every seed's curve) in "
         "`results/poisoning.json`."),
        "",
        (f"{s['nodes']} simulated nodes of {s['samples_per_node']} HAR fleet rows each, "
         f"{s['malicious']} of them malicious ({100 * s['fraction']:.0f}%: "
         f"{', '.join(s['malicious_ids'])}), {s['rounds']} rounds, every node every round, "
         f"{s['epochs']} local epochs at lr {s['lr']}, batch {s['batch_size']}, "
         f"{s['uplink_bits']}-bit uplink, zero initial head; seeds {s['seeds']} (partition and "
         "GLOBAL seed), test set: the 2996 held-out users' windows. The malicious nodes train "
         "honestly, then send their delta times 100 (`scale-x100`), negated (`sign-flip`) or "
         "negated times 10 (`sign-flip-x10`), skipping clip_norm; their frames are valid (updates "
         f"rejected over all runs: {s['rejected_total']}), so only aggregation defends."),
        "",
        ("Aggregators: coordinate-wise median and trimmed mean (beta 0.2: 20% dropped per side) "
         "of Yin et al., \"Byzantine-Robust Distributed Learning\", ICML 2018; norm bounding "
         "(each update clipped to the round's median update norm, then FedAvg) of Sun et al., "
         "\"Can You Really Backdoor Federated Learning?\", arXiv:1911.07963."),
        "",
        (f"Final acc: last round's test accuracy, mean over seeds. Gap: to the clean FedAvg run "
         f"of the same seed, in points (mean; worst seed). Defended: within {TOLERANCE:g} points "
         "on every seed. Lowest: the worst round's accuracy during the run (mean over seeds)."),
        "",
    ]
    for partition, _ in PARTITIONS:
        rows = [r for r in summary if r["partition"] == partition]
        base = next(r for r in rows if r["strategy"] == "fedavg" and r["attack"] == CLEAN)
        lines += [
            f"## {partition} (clean FedAvg: {100 * base['final_accuracy']:.2f}%)", "",
            ("| aggregator | attack | final acc % | gap mean (pts) | gap worst (pts) | defended "
             "| lowest acc % | final test loss |"),
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['strategy']} | {r['attack']} | {100 * r['final_accuracy']:.2f} | "
                f"{r['gap_mean']:+.2f} | {r['gap_worst']:+.2f} | "
                f"{'yes' if r['within_tolerance'] else 'NO'} | "
                f"{100 * r['lowest_accuracy']:.2f} | {r['final_test_loss']:.3f} |")
        lines.append("")
    return "\n".join(lines + findings(summary))


def findings(summary: list[dict[str, Any]]) -> list[str]:
    """What the tables say, with their numbers."""

    def cell(partition: str, spec: str, attack: str) -> dict[str, Any]:
        return next(r for r in summary if (r["partition"], r["strategy"], r["attack"])
                    == (partition, spec, attack))

    robust = STRATEGIES[1:]
    iid_worst = min(cell("iid", s, a)["gap_worst"] for s in robust for a in ATTACKS)
    x100 = cell("iid", "fedavg", "scale-x100")
    flip = cell("iid", "fedavg", "sign-flip")
    clean = cell("iid", "fedavg", CLEAN)
    skew = PARTITIONS[1][0]
    skew_flip = [cell(skew, s, "sign-flip")["gap_mean"] for s in robust]
    skew_x100 = min(cell(skew, s, "scale-x100")["gap_worst"] for s in robust)
    skew_fedavg = cell(skew, "fedavg", "sign-flip")["gap_mean"]
    return [
        "## Reading", "",
        (f"- IID: median, trimmed mean and norm bounding stay within {TOLERANCE:g} points of clean "
         f"FedAvg under every attack on every seed (worst {iid_worst:+.2f})."),
        (f"- FedAvg under x100 collapses (its worst round at {100 * x100['lowest_accuracy']:.1f}% "
         "on average) and ends "
         f"{-x100['gap_mean']:.1f} points down (worst seed {-x100['gap_worst']:.1f}), with a test "
         f"loss of {x100['final_test_loss']:.1f} (clean: {clean['final_test_loss']:.2f}): the "
         "logits are blown up, and on this linear head the honest majority pulls the accuracy "
         "back only slowly (still down at the last round). The x10 flip reverses "
         "FedAvg outright."),
        (f"- A plain sign flip barely hurts FedAvg on IID data ({flip['gap_mean']:+.2f} points): "
         f"with a fraction f of flippers the average is (1 - 2f) = {100 * (1 - 2 * FRACTION):.0f}% "
         "of the honest step, so FedAvg learns the same head more slowly."),
        (f"- Label skew ({skew}): x100 is still defended (worst {skew_x100:+.2f}), the flips "
         "are not: the robust aggregators lose "
         f"{-max(skew_flip):.1f}..{-min(skew_flip):.1f} points on average (FedAvg "
         f"{-skew_fedavg:.1f}). A flipped update has an honest norm (norm bounding cannot see "
         "it) and, when label skew makes honest updates disagree, its coordinates sit inside "
         "their spread (median and trimmed mean keep them). Defending flips under skew needs more than these "
         "aggregators (e.g. direction-aware ones), not measured here."),
        "",
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    task = load_task("har", cached("har").data)
    t0 = time.monotonic()
    rows = matrix(task, args.nodes, args.rounds, args.seeds)
    bad = sorted(malicious_ids(args.nodes, FRACTION))
    settings = {
        "task": task.name, "nodes": args.nodes, "malicious": len(bad), "malicious_ids": bad,
        "fraction": FRACTION, "samples_per_node": SAMPLES, "rounds": args.rounds,
        "epochs": DEMO_EPOCHS, "lr": DEMO_LR, "batch_size": 16,
        "uplink_bits": EngineConfig().uplink_bits, "seeds": list(range(args.seeds)),
        "partitions": [p for p, _ in PARTITIONS], "attacks": list(ATTACKS),
        "strategies": list(STRATEGIES), "rejected_total": sum(r["rejected"] for r in rows),
        "wall_time_s": round(time.monotonic() - t0, 1),
    }
    summary = summarize(rows)
    (ROOT / "bench/results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench/results/poisoning.json").write_text(
        json.dumps({"settings": settings, "summary": summary, "runs": rows}, indent=2) + "\n")
    text = markdown(summary, settings)
    (ROOT / "bench/poisoning.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
