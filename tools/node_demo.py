#!/usr/bin/env python3
"""End-to-end run of real node firmware: a private mosquitto, QEMU Cortex-M4 boards and native
nodes on NSL-KDD feature vectors, and a few rounds of quantized FedAvg served from the host.

This is what `make demo` runs until `tinyfl demo` (emulated fleet on the HAR task, with a report)
takes over. The rounds are run by the coordinator's round engine, as `tinyfl coordinate` runs
them. Each node holds a different slice of the NSL-KDD training records (label-skewed: every node
sees normal traffic plus its own mix of attack classes); the global head is evaluated on the
held-out KDDTest+ records after every round. Writes runs/<id>/ (metrics.jsonl, checkpoint, logs).

    python tools/node_demo.py [--qemu 2] [--native 2] [--rounds 6] [--bits 8]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

from tinyfl.coordinator import (
    EngineConfig,
    Progress,
    RoundEngine,
    RunResult,
    load_task,
    summary_table,
)
from tinyfl.data import nslkdd
from tinyfl.fleet import Emulator, NodeProcess, NodeSpec, build_firmware
from tinyfl.fleet.broker import MosquittoBroker
from tinyfl.strategy import get_strategy
from tinyfl.transport.mqtt import MqttTransport
from tinyfl.wire import BlobKind, DataBlob, Topics


def node_blobs(n_nodes: int, per_node: int, seed: int) -> list[DataBlob]:
    """Label-skewed partitions of the training records."""
    train = nslkdd.load(nslkdd.TRAIN_FILE)
    spec = nslkdd.fit(train)
    x, y = nslkdd.encode(train, spec), train.labels
    rng = np.random.default_rng(seed)
    blobs = []
    for i in range(n_nodes):
        # Normal traffic plus a Dirichlet mix over the attack classes: no two nodes alike.
        mix = np.concatenate([[1.0], rng.dirichlet(np.full(4, 0.5)) * 1.5])
        p = mix[y] / np.bincount(y, minlength=5)[y]
        idx = rng.choice(len(y), size=per_node, replace=False, p=p / p.sum())
        blobs.append(DataBlob(BlobKind.FEATURES, len(nslkdd.CLASSES), nslkdd.FEATURE_SCALE,
                              nslkdd.FEATURE_ZERO_POINT, spec.model_hash(), y[idx],
                              nslkdd.quantize_features(x[idx])))
    return blobs


async def coordinate(url: str, topics: Topics, n_nodes: int, args: argparse.Namespace,
                     run: Path) -> RunResult:
    """The same round engine `tinyfl coordinate` runs, over a real MQTT connection."""
    task = load_task("nsl-kdd")
    config = EngineConfig(rounds=args.rounds, min_clients=n_nodes, epochs=3, batch_size=16, lr=0.5,
                          uplink_bits=args.bits, seed=args.seed, wait_nodes=n_nodes,
                          wait_timeout=90.0, round_timeout=30.0)
    transport = MqttTransport()
    await transport.connect(url, client_id="tinyfl-node-demo")
    try:
        engine = RoundEngine(transport, topics, task, get_strategy("fedavg"), config, run_dir=run,
                             progress=Progress(sys.stdout, live=sys.stdout.isatty(), rounds=args.rounds))
        result = await engine.run()
    finally:
        await transport.close()
    print(summary_table(result.records, task.class_names))
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu", type=int, default=2, help="QEMU Cortex-M4 nodes (default 2)")
    ap.add_argument("--native", type=int, default=2, help="native nodes (default 2)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--bits", type=int, default=8, choices=(8, 4, 2, 32), help="uplink bits")
    ap.add_argument("--samples", type=int, default=500, help="samples per node (<= 512)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    run = Path("runs") / time.strftime("node-demo-%Y%m%d-%H%M%S")
    run.mkdir(parents=True, exist_ok=True)
    emulators = [Emulator.QEMU] * args.qemu + [Emulator.NATIVE] * args.native
    print(f"building firmware for {sorted({e.value for e in emulators})} ...", flush=True)
    images = {e: build_firmware(e) for e in set(emulators)}
    blobs = node_blobs(len(emulators), args.samples, args.seed)
    topics = Topics("tinyfl/demo")
    broker = MosquittoBroker(run / "mosquitto")
    broker.start()
    nodes: list[NodeProcess] = []
    try:
        for i, (emulator, blob) in enumerate(zip(emulators, blobs)):
            node_id = f"{emulator.value}-{i:02d}"
            blob_path = run / f"{node_id}.blob"
            blob.write(blob_path)
            node = NodeProcess(NodeSpec(node_id, blob_path, run, emulator), images[emulator],
                               broker.host, broker.port, topics.prefix)
            node.start()
            nodes.append(node)
        print(f"started {len(nodes)} nodes ({args.qemu} QEMU Cortex-M4, {args.native} native)")
        asyncio.run(coordinate(broker.url, topics, len(nodes), args, run))
        print(f"run folder: {run} (metrics.jsonl, checkpoint, node logs)")
        return 0
    finally:
        for node in nodes:
            node.stop()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
