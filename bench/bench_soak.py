#!/usr/bin/env python3
"""Soak: many rounds of a native firmware fleet while a seeded fault injector kills and restarts
nodes and the broker; then a clean run with the same seed. Writes bench/results/soak.json and
bench/soak.md.

Set-up: a private mosquitto on a fixed loopback port (`persistence false`, so a restart loses
every retained message: the coordinator republishes the GLOBAL after reconnecting, nodes
re-announce and send their last UPDATE again when its round's GLOBAL comes back), N native
nodes (the prebuilt `.pio/build/native/program`; this bench never builds firmware) on an iid
NSL-KDD partition, signed frames from a provisioned keyring, and the round engine in-process
with a run folder, so metrics.jsonl is written.

Faults (random.Random(seed), drawn per round before the run starts, so every run with a seed
injects the same plan): per round, with probability 1/--node-fault-every, a node is SIGKILLed and
restarted after a pause or SIGSTOPped briefly; with probability 1/--broker-fault-every the broker
is SIGKILLed and restarted on the same port after a pause. A fault fires a random delay into
its round. Accounting: see soak_ledger.py.

    python bench/bench_soak.py [--rounds 200] [--nodes 16] [--seed 7] [--name soak]
    # the harsher variant recorded in soak-harsh.md:
    python bench/bench_soak.py --seed 11 --node-fault-every 1.5 --broker-fault-every 8 \
        --name soak-harsh
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import random
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT / "bench"))

from soak_ledger import (
    Receipt,
    Window,
    account,
    metrics_totals,
    read_sends,
    receipts_as_metrics,
    record_receipts,
)
from soak_report import markdown

from tinyfl.coordinator import METRICS_NAME, EngineConfig, RoundEngine, load_task, read_metrics
from tinyfl.data.dataset import load_dataset
from tinyfl.data.packaged import cached
from tinyfl.fleet import Emulator, NodeProcess, NodeSpec
from tinyfl.fleet.broker import MosquittoBroker
from tinyfl.fleet.partition import build_partition
from tinyfl.model.artifacts import load_artifacts
from tinyfl.provision import new_fleet
from tinyfl.strategy import get_strategy
from tinyfl.transport.mqtt import MqttTransport
from tinyfl.wire import Keyring, Topics

IMAGE = ROOT / ".pio/build/native/program"
TASK = "nsl-kdd"  # rounds are a few hundred ms on 2 cores; HAR's blobs take longer to embed
GRACE_S = 1.5  # after the last round: lets in-flight updates land in the node logs


@dataclass(frozen=True)
class Settings:
    rounds: int = 200
    nodes: int = 16
    seed: int = 7
    epochs: int = 2
    lr: float = 0.5
    uplink_bits: int = 8
    max_samples: int = 512
    min_clients: int = 8  # quorum: half the fleet (parse_args scales it with --nodes)
    round_timeout: float = 5.0
    node_fault_every: float = 3.0  # rounds, on average
    broker_fault_every: float = 25.0
    node_pause: tuple[float, float] = (0.5, 5.0)  # s a killed node stays dead
    stop_pause: tuple[float, float] = (0.3, 3.0)  # s a stopped node stays stopped
    broker_pause: tuple[float, float] = (0.2, 2.0)  # s the broker stays dead
    max_delay: float = 0.2  # s into its round a fault fires, at most (rounds take ~0.1 s)


@dataclass(frozen=True)
class Fault:
    round: int  # fires while this round runs
    delay: float
    kind: str  # kill | stop | broker
    target: str  # node id, or "broker"
    pause: float


def fault_plan(s: Settings, ids: list[str]) -> list[Fault]:
    """The faults of a run, all drawn up front from the seed (timing of the run cannot change
    which faults come, only what they hit)."""
    rng = random.Random(s.seed)
    plan = []
    for rnd in range(1, s.rounds + 1):
        if rng.random() < 1 / s.node_fault_every:
            kind = rng.choice(("kill", "stop"))
            pause = rng.uniform(*(s.node_pause if kind == "kill" else s.stop_pause))
            plan.append(Fault(rnd, rng.uniform(0, s.max_delay), kind, rng.choice(ids), pause))
        if rng.random() < 1 / s.broker_fault_every:
            plan.append(Fault(rnd, rng.uniform(0, s.max_delay), "broker", "broker",
                              rng.uniform(*s.broker_pause)))
    return plan


class KillableBroker(MosquittoBroker):
    """mosquitto that can die like a crashed host: SIGKILL, no goodbye to any client."""

    def kill(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)


@dataclass
class Fleet:
    broker: KillableBroker
    nodes: dict[str, NodeProcess]
    boots: dict[str, list[float]] = field(default_factory=dict)  # monotonic start times
    stopped: set[str] = field(default_factory=set)

    def start_node(self, node_id: str) -> None:
        self.boots.setdefault(node_id, []).append(time.monotonic())
        self.nodes[node_id].start()

    def all_ready(self) -> bool:
        """Every process started has logged its "ready" line (its sends can be mapped)."""
        return all(n.log_text().count(" ready: ") == len(self.boots[i])
                   for i, n in self.nodes.items())

    def close(self) -> None:
        for node_id in list(self.stopped):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.nodes[node_id].pid, signal.SIGCONT)
        for node in self.nodes.values():
            node.stop()
        self.broker.stop()


class Injector:
    """Runs a fault plan against a fleet while the engine runs; records every fault's span."""

    def __init__(self, fleet: Fleet, plan: list[Fault], engine: RoundEngine) -> None:
        self.fleet = fleet
        self.plan = plan
        self.engine = engine
        self.windows: list[Window] = []
        self.counts: dict[str, int] = {"node_kills": 0, "node_stops": 0, "broker_kills": 0,
                                       "skipped_target_busy": 0, "not_reached": 0}
        self.busy: set[str] = set()
        self.log: list[dict[str, Any]] = []  # faults fired, with the round they hit
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Fires each fault `delay` s after its round started (as seen by polling every 10 ms),
        or at once when the engine has already moved past its round: rounds can be shorter
        than a fault's delay, and a fault waiting on another must not fall ever further
        behind."""
        pending = sorted(self.plan, key=lambda f: (f.round, f.delay))
        seen: dict[int, float] = {}  # round -> when the injector saw it running
        while pending:
            current = self.engine.round + 1
            if current > self.engine.config.rounds:
                return
            now = time.monotonic()
            seen.setdefault(current, now)
            while pending and pending[0].round <= current and (
                    seen.get(pending[0].round, 0.0) + pending[0].delay <= now):
                self._fire(pending.pop(0))
            await asyncio.sleep(0.01)

    def _fire(self, fault: Fault) -> None:
        if fault.target in self.busy:
            self.counts["skipped_target_busy"] += 1
            return
        self.busy.add(fault.target)
        self.log.append({"planned_round": fault.round, "fired_in_round": self.engine.round + 1,
                         "kind": fault.kind, "target": fault.target,
                         "pause_s": round(fault.pause, 3)})
        task = asyncio.create_task(self._inject(fault))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def finish(self) -> None:
        """Counts the faults the run ended before (the injector is cancelled with the run)."""
        handled = len(self.log) + self.counts["skipped_target_busy"]
        self.counts["not_reached"] = len(self.plan) - handled

    async def drain(self) -> None:
        """Lets faults in progress finish (a dead node restarted, a stopped one resumed)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _inject(self, f: Fault) -> None:
        start = time.monotonic()
        try:
            if f.kind == "broker":
                await self._broker_down(f.pause)
            elif f.kind == "kill":
                await self._node_down(f.target, f.pause)
            else:
                await self._node_stopped(f.target, f.pause)
        finally:
            self.windows.append(Window(f.kind, f.target, start, time.monotonic()))
            self.busy.discard(f.target)

    async def _broker_down(self, pause: float) -> None:
        self.fleet.broker.kill()
        self.counts["broker_kills"] += 1
        await asyncio.sleep(pause)
        await asyncio.to_thread(self.fleet.broker.start)

    async def _node_down(self, node_id: str, pause: float) -> None:
        self.fleet.nodes[node_id].kill()
        self.counts["node_kills"] += 1
        await asyncio.sleep(pause)
        self.fleet.start_node(node_id)

    async def _node_stopped(self, node_id: str, pause: float) -> None:
        pid = self.fleet.nodes[node_id].pid
        os.kill(pid, signal.SIGSTOP)
        self.fleet.stopped.add(node_id)
        self.counts["node_stops"] += 1
        try:
            await asyncio.sleep(pause)
        finally:
            os.kill(pid, signal.SIGCONT)
            self.fleet.stopped.discard(node_id)


def start_fleet(s: Settings, workdir: Path, fleet_name: str) -> tuple[Fleet, Keyring]:
    """Broker, keys and nodes, each node with its blob and signed-frame config record."""
    art = load_artifacts(TASK)
    plan = build_partition(load_dataset(cached(TASK).data), art, clients=s.nodes,
                           scheme="iid", seed=s.seed, max_samples=s.max_samples)
    ids = [n.node_id for n in plan.nodes]
    secrets = new_fleet(fleet_name, ids)
    broker = KillableBroker(workdir / "broker")
    broker.start()
    prefix = Topics.for_fleet(fleet_name).prefix
    nodes = {}
    for node in plan.nodes:
        blob = workdir / "nodes" / f"{node.node_id}.blob"
        blob.parent.mkdir(parents=True, exist_ok=True)
        node.blob.write(blob)
        spec = NodeSpec(node.node_id, blob, workdir / "nodes", Emulator.NATIVE,
                        keys=(secrets.nodes[node.node_id].frame_key, secrets.fleet_key))
        nodes[node.node_id] = NodeProcess(spec, IMAGE, broker.host, broker.port, prefix)
    fleet = Fleet(broker, nodes)
    for node_id in ids:
        fleet.start_node(node_id)
    return fleet, secrets.keyring()


async def coordinate(s: Settings, fleet: Fleet, keys: Keyring, fleet_name: str, run_dir: Path,
                     faults: list[Fault]) -> dict[str, Any]:
    """One run: the engine to the last round, the injector alongside; returns the raw facts."""
    transport = MqttTransport(backoff_initial=0.05, backoff_cap=0.5)
    await transport.connect(fleet.broker.url, client_id=f"coordinator-{fleet_name}")
    config = EngineConfig(rounds=s.rounds, min_clients=s.min_clients,
                          round_timeout=s.round_timeout, epochs=s.epochs, lr=s.lr,
                          uplink_bits=s.uplink_bits, seed=s.seed, wait_nodes=s.nodes,
                          wait_timeout=120)
    engine = RoundEngine(transport, Topics.for_fleet(fleet_name), load_task(TASK),
                         get_strategy("fedavg"), config, run_dir=run_dir, keys=keys)
    receipts: list[Receipt] = []
    record_receipts(engine.intake, receipts, time.monotonic, lambda: engine.round >= s.rounds)
    injector = Injector(fleet, faults, engine)
    started = time.monotonic()
    inject = asyncio.create_task(injector.run())
    try:
        await engine.run()
    finally:
        run_end = time.monotonic()
        inject.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await inject
        await injector.drain()
        injector.finish()
        # A node restarted near the end is still booting: wait for it, so it is not stopped
        # halfway through and its log stays whole.
        deadline = time.monotonic() + 30
        while not fleet.all_ready() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(GRACE_S)
        await transport.close()
    return {"receipts": receipts, "windows": injector.windows, "counts": injector.counts,
            "fault_log": injector.log,
            "wall_s": run_end - started, "run_end": run_end,
            "reconnects": transport.stats.reconnects}


def one_run(s: Settings, label: str, workdir: Path, inject: bool) -> dict[str, Any]:
    """A whole run (fleet up, rounds, fleet down) and its figures."""
    fleet_name = f"soak-{label}"
    fleet, keys = start_fleet(s, workdir, fleet_name)
    plan = fault_plan(s, sorted(fleet.nodes)) if inject else []
    run_dir = workdir / "run"
    try:
        raw = asyncio.run(coordinate(s, fleet, keys, fleet_name, run_dir, plan))
    finally:
        fleet.close()
    records = read_metrics(run_dir / METRICS_NAME)
    logs = {i: n.log_path for i, n in fleet.nodes.items()}
    sends, boots_seen = read_sends(logs, fleet.boots)
    acc = account(sends, raw["receipts"], raw["windows"], raw["run_end"])
    return summarize(label, s, plan, raw, records, acc.as_dict(), fleet, boots_seen)


def summarize(label: str, s: Settings, plan: list[Fault], raw: dict[str, Any],
              records: list[dict[str, Any]], acc: dict[str, Any], fleet: Fleet,
              boots_seen: dict[str, int]) -> dict[str, Any]:
    skipped = [r for r in records if r["status"] != "closed"]
    counted = metrics_totals(records)
    from_receipts = receipts_as_metrics(raw["receipts"])
    final = records[-1] if records else {}
    return {
        "label": label,
        "rounds_recorded": len(records),
        "rounds_closed": len(records) - len(skipped),
        "rounds_skipped": len(skipped),
        "skipped": [{"round": r["round"], "reason": r["reason"]} for r in skipped],
        "final_test_accuracy": final.get("test_accuracy"),
        "final_macro_f1": final.get("macro_f1"),
        "rounds_at_deadline": sum((r["collect_time_s"] or 0) >= s.round_timeout
                                  for r in records),
        "slowest_round_s": round(max((r["wall_time_s"] for r in records), default=0), 2),
        "wall_s": round(raw["wall_s"], 1),
        "mean_round_s": round(raw["wall_s"] / max(1, len(records)), 3),
        "coordinator_reconnects": raw["reconnects"],
        "faults_planned": len(plan),
        "faults": raw["counts"],
        "mean_answered": round(counted["answered"] / max(1, len(records)), 2),
        "metrics_totals": counted,
        "receipts_before_last_record": from_receipts,
        "metrics_match_receipts": counted == from_receipts,
        "accounting": acc,
        "node_boots": {"started": sum(len(b) for b in fleet.boots.values()),
                       "seen_in_logs": sum(boots_seen.values()),
                       # a process started but never "ready": when, relative to the run's end
                       "missing": {n: {"started": len(b), "seen": boots_seen[n],
                                       "last_start_vs_run_end_s": round(b[-1] - raw["run_end"], 2)}
                                   for n, b in fleet.boots.items() if len(b) != boots_seen[n]}},
        "broker_log_lines": len(fleet.broker.log_text().splitlines()),
        "fault_log": raw["fault_log"],
    }


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{platform.machine()}, {os.cpu_count()} cores{f' ({model})' if model else ''}, "
            f"Python {platform.python_version()}")


def parse_args() -> tuple[Settings, str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = Settings()
    parser.add_argument("--rounds", type=int, default=d.rounds)
    parser.add_argument("--nodes", type=int, default=d.nodes)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--min-clients", type=int, default=None,
                        help="updates needed to close a round (default: half the nodes)")
    parser.add_argument("--round-timeout", type=float, default=d.round_timeout)
    parser.add_argument("--node-fault-every", type=float, default=d.node_fault_every,
                        help="mean rounds between node faults")
    parser.add_argument("--broker-fault-every", type=float, default=d.broker_fault_every,
                        help="mean rounds between broker kills")
    parser.add_argument("--name", default="soak",
                        help="writes bench/results/NAME.json and bench/NAME.md (default soak)")
    a = parser.parse_args()
    quorum = a.min_clients if a.min_clients is not None else max(1, a.nodes // 2)
    return Settings(rounds=a.rounds, nodes=a.nodes, seed=a.seed, min_clients=quorum,
                    round_timeout=a.round_timeout, node_fault_every=a.node_fault_every,
                    broker_fault_every=a.broker_fault_every), a.name


def main() -> int:
    s, name = parse_args()
    if not IMAGE.is_file():
        sys.exit(f"{IMAGE} missing: build the native firmware first (`pio run -e native`)")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    t0 = time.monotonic()
    runs = {}
    for label, inject in (("faults", True), ("clean", False)):
        with tempfile.TemporaryDirectory(prefix=f"tinyfl-soak-{label}-") as tmp:
            runs[label] = one_run(s, label, Path(tmp), inject)
        print(f"{label}: {json.dumps({k: runs[label][k] for k in ('rounds_closed', 'rounds_skipped', 'final_test_accuracy', 'wall_s')})}", flush=True)
    gap = abs(runs["faults"]["final_test_accuracy"] - runs["clean"]["final_test_accuracy"])
    result = {
        "name": name,
        "date": date.today().isoformat(),
        "machine": machine(),
        "task": TASK,
        "settings": asdict(s),
        "runs": runs,
        "accuracy_gap_points": round(100 * gap, 3),
        "within_1_point": gap <= 0.01,
        "total_wall_s": round(time.monotonic() - t0, 1),
    }
    (ROOT / "bench/results").mkdir(parents=True, exist_ok=True)
    (ROOT / f"bench/results/{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (ROOT / f"bench/{name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
