#!/usr/bin/env python3
"""End-to-end run of real node firmware: a private mosquitto, QEMU Cortex-M4 boards and native
nodes on NSL-KDD feature vectors, and a few rounds of quantized FedAvg served from the host.

This is the node-firmware demo that `make demo` runs until the coordinator (`tinyfl coordinate`)
and `tinyfl demo` take over. Each node holds a different slice of the NSL-KDD training records
(label-skewed: every node sees normal traffic plus its own mix of attack classes); the global head
is evaluated on the held-out KDDTest+ records after every round. Writes runs/<id>/metrics.jsonl.

    python tools/node_demo.py [--qemu 2] [--native 2] [--rounds 6] [--bits 8]
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

from tinyfl.data import nslkdd
from tinyfl.fleet import Emulator, NodeProcess, NodeSpec, build_firmware
from tinyfl.fleet.broker import MosquittoBroker
from tinyfl.strategy import ClientResult, get_strategy
from tinyfl.wire import (
    BlobKind,
    DataBlob,
    Global,
    Tensor,
    Topics,
    Update,
    WireError,
    decode,
    encode,
)

SCALE, ZERO_POINT = 1.0 / 255.0, -128  # features in [0, 1] as int8


def node_blobs(n_nodes: int, per_node: int, seed: int) -> tuple[list[DataBlob], np.ndarray, np.ndarray, bytes]:
    """Label-skewed partitions of the training records, and the encoded test set."""
    train, test = nslkdd.load(nslkdd.TRAIN_FILE), nslkdd.load(nslkdd.TEST_FILE)
    spec = nslkdd.fit(train)
    x, y = nslkdd.encode(train, spec), train.labels
    rng = np.random.default_rng(seed)
    blobs = []
    for i in range(n_nodes):
        # Normal traffic plus a Dirichlet mix over the attack classes: no two nodes alike.
        mix = np.concatenate([[1.0], rng.dirichlet(np.full(4, 0.5)) * 1.5])
        p = mix[y] / np.bincount(y, minlength=5)[y]
        idx = rng.choice(len(y), size=per_node, replace=False, p=p / p.sum())
        codes = np.clip(np.round(x[idx] / SCALE) + ZERO_POINT, -128, 127).astype(np.int8)
        blobs.append(DataBlob(BlobKind.FEATURES, 5, SCALE, ZERO_POINT, spec.model_hash(), y[idx], codes))
    return blobs, nslkdd.encode(test, spec), test.labels, spec.model_hash()


def accuracy(head: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    logits = x @ head[:, :-1].T + head[:, -1]
    return float(np.mean(np.argmax(logits, axis=1) == y))


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
    blobs, x_test, y_test, model_hash = node_blobs(len(emulators), args.samples, args.seed)
    topics = Topics("tinyfl/demo")

    broker = MosquittoBroker(run / "mosquitto")
    broker.start()
    inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="node-demo")
    client.on_message = lambda c, u, m: inbox.put((m.topic, m.payload))
    client.connect(broker.host, broker.port)
    client.subscribe(topics.all_nodes("update"), qos=1)
    client.subscribe(topics.all_nodes("hello"), qos=1)
    client.loop_start()
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
        hellos = set()
        deadline = time.monotonic() + 60
        while len(hellos) < len(nodes) and time.monotonic() < deadline:
            try:
                topic, payload = inbox.get(timeout=1)
            except queue.Empty:
                continue
            if topic.endswith("/hello"):
                hellos.add(topic.split("/")[-2])
        print(f"{len(hellos)}/{len(nodes)} nodes online: {', '.join(sorted(hellos))}")

        head = np.zeros((5, 65), np.float32)
        strategy = get_strategy("fedavg")
        state = strategy.init_state(head)
        print(f"round  acc(KDDTest+)  answered  bytes-up  mean-local-acc   (start {accuracy(head, x_test, y_test):.3f})")
        with (run / "metrics.jsonl").open("w") as metrics:
            for r in range(1, args.rounds + 1):
                frame = encode(Global(r, model_hash, 64, 5, 3, 16, 0.5, 0.0, 0.0, args.bits, 1,
                                      args.seed, (), Tensor.float32(head)))
                client.publish(topics.global_, frame, qos=1, retain=True)
                updates: list[Update] = []
                bytes_up = 0
                deadline = time.monotonic() + 30
                while len(updates) < len(hellos) and time.monotonic() < deadline:
                    try:
                        topic, payload = inbox.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    try:
                        msg = decode(payload)
                    except WireError as exc:
                        print(f"  dropped a bad frame on {topic}: {exc}")
                        continue
                    if isinstance(msg, Update) and msg.round_id == r:
                        updates.append(msg)
                        bytes_up += len(payload)
                if updates:
                    agg = strategy.aggregate(head, [ClientResult(u.delta.dequantized(), u.n_samples)
                                                    for u in updates], state)
                    head, state = np.asarray(agg.head, np.float32), agg.state
                acc = accuracy(head, x_test, y_test)
                local = float(np.mean([u.accuracy for u in updates])) if updates else float("nan")
                print(f"{r:5d}  {acc:13.3f}  {len(updates):3d}/{len(hellos):<3d}  {bytes_up:8d}  {local:14.3f}")
                metrics.write(json.dumps({"round": r, "test_accuracy": acc, "answered": len(updates),
                                          "bytes_up": bytes_up, "local_accuracy": local}) + "\n")
        print(f"run folder: {run} (metrics.jsonl, node logs)")
        return 0
    finally:
        for node in nodes:
            node.stop()
        client.loop_stop()
        client.disconnect()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
