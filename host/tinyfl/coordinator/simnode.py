"""Simulated nodes: in-process Python nodes that speak the real wire format over a transport.

A `SimNode` behaves like the firmware's node state machine (docs/WIRE.md): it connects with a
last will of `offline` on its status topic, publishes `online` and its HELLO (both retained),
subscribes to the retained GLOBAL, and serves each newer round it is selected for: checks the
model hash, the head's shape and values, trains the head by minibatch SGD from the dequantized
global head, quantizes the delta with the round's generator, and publishes the UPDATE. It
ignores what a node would reject and keeps serving. Given keys (a provisioned fleet) it signs
its HELLO and UPDATE with its frame key and serves only GLOBALs that verify under the fleet key;
like the firmware it sends the last round's UPDATE again whenever that round's GLOBAL comes back,
and ignores a round id more than ROUND_ID_MARGIN ahead of the last one it served.

Deterministic: a node's data is fixed by (seed, node index), and its randomness by the GLOBAL's
seed, its id and the round id, exactly as on the firmware; so two runs with the same seed give
the same updates. Training and quantization are the firmware's numpy mirrors
(`tinyfl.model.head`, `tinyfl.quant`, `tinyfl.rng`): same shuffles, same draws, same codes. Used by the coordinator's tests and benchmark, and runnable on its own:

    python -m tinyfl.coordinator.simnode --broker mqtt://127.0.0.1:1883 --fleet lab \\
        --task synthetic --nodes 20 --samples 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tinyfl.coordinator.config import ROUND_ID_MARGIN
from tinyfl.coordinator.registry import uplink_flag
from tinyfl.coordinator.task import Task, load_task
from tinyfl.errors import TinyFLError, UsageError, WireError
from tinyfl.model.head import train_local
from tinyfl.quant import quantize, quantize_with_scale
from tinyfl.rng import round_rng
from tinyfl.strategy.ddp import node_noise, noise_key
from tinyfl.strategy.secagg import add_masks, round_seed
from tinyfl.transport.address import public_url
from tinyfl.transport.mqtt import MqttTransport, Transport, Will
from tinyfl.wire import (
    Board,
    Global,
    Hello,
    Keyring,
    Masked,
    Reveal,
    Tensor,
    Topics,
    Unmask,
    Update,
    encode,
    open_frame,
)

__all__ = ["SimNode", "SimNodeStats", "make_node_id", "partition", "start_fleet"]

log = logging.getLogger(__name__)

ALL_UPLINKS = 0x0F
SIM_FW_VERSION = 0x000100  # 0.1.0
RX_BUFFER = 2048  # the firmware's default MQTT receive buffer (TINYFL_MQTT_RX_BUFFER)
RECONNECT_POLL = 1.0  # seconds between looks at the reconnect counter (like a keep-alive)

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


def make_node_id(index: int) -> str:
    return f"sim-{index:04d}"


@dataclass
class SimNodeStats:
    """What a simulated node did: rounds served, rounds it ignored and why, and the time spent
    on node work (decode, train, quantize, encode) per wire round id."""

    served: list[int] = field(default_factory=list)
    resent: int = 0  # UPDATEs sent again because their round's GLOBAL came back
    ignored: Counter[str] = field(default_factory=Counter)
    compute_s: dict[int, float] = field(default_factory=dict)
    globals_seen: list[int] = field(default_factory=list)


class SimNode:
    """One simulated node on its own transport (see the module docstring).

    `answer_delay` holds each UPDATE back that many seconds after training (a slow radio or
    MCU); `on_global(round_id)` is called for every GLOBAL that arrives (tests use it to act
    mid-round). `max_payload` defaults to what a firmware node with a 2 KiB receive buffer
    reports. `tamper`, if given, rewrites each trained (and clipped) delta before quantization:
    a provisioned but malicious node, whose frames stay valid (`tinyfl.coordinator.attacks`).
    """

    def __init__(
        self,
        node_id: str,
        x: F32,
        y: U8,
        *,
        model_hash: bytes,
        n_classes: int,
        topics: Topics,
        transport: Transport,
        uplink_bits: int = ALL_UPLINKS,
        max_payload: int | None = None,
        answer_delay: float = 0.0,
        on_global: Callable[[int], None] | None = None,
        frame_key: bytes | None = None,
        fleet_key: bytes | None = None,
        peer_seeds: Mapping[str, bytes] | None = None,
        tamper: Callable[[F32], F32] | None = None,
    ) -> None:
        if (frame_key is None) != (fleet_key is None):
            raise ValueError("a simulated node has both keys or none")
        self.node_id = node_id
        self.frame_key = frame_key
        self.fleet_key = fleet_key
        self.peer_seeds = dict(peer_seeds or {})  # s_uv per peer v, for secure aggregation
        # --dp distributed: the noise key from every pair seed, which the coordinator never holds
        self.noise_key = noise_key(self.peer_seeds.values())
        # the last secure-aggregation round served: (round id, selected ids, threshold), until
        # its UNMASK was answered (once)
        self._masked_round: tuple[int, frozenset[str], int] | None = None
        self.x = np.asarray(x, dtype=np.float32)
        self.y = np.asarray(y, dtype=np.uint8)
        self.model_hash = model_hash
        self.n_classes = n_classes
        self.topics = topics
        self.transport = transport
        self.uplink_bits = uplink_bits
        # As the firmware computes it (mqtt::max_incoming_payload): the receive buffer holds
        # the topic length, topic, packet id and payload of one PUBLISH.
        overhead = 2 + len(topics.global_.encode()) + 2
        self.max_payload = RX_BUFFER - overhead if max_payload is None else max_payload
        self.answer_delay = answer_delay
        self.on_global = on_global
        self.tamper = tamper
        self.stats = SimNodeStats()
        self.last_round = 0
        self._last_update: tuple[int, bytes] | None = None  # (round id, UPDATE frame)
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def embed_dim(self) -> int:
        return int(self.x.shape[1])

    def hello(self) -> Hello:
        return Hello(
            node_id=self.node_id,
            fw_version=SIM_FW_VERSION,
            model_hash=self.model_hash,
            n_samples=len(self.y),
            free_ram=0,
            max_payload=self.max_payload,
            embed_dim=self.embed_dim,
            n_classes=self.n_classes,
            uplink_bits=self.uplink_bits,
            board=Board.NATIVE,
        )

    async def start(self, url: str | None = None) -> None:
        """Connect, announce (status then HELLO, retained) and start serving rounds."""
        status = self.topics.status(self.node_id)
        await self.transport.connect(
            url,
            # The firmware uses tinyfl-<id>; the prefix is added so that simulated fleets
            # with the same node ids can share a broker without taking over each other.
            client_id=f"tinyfl-{self.topics.prefix.replace('/', '-')}-{self.node_id}",
            will=Will(status, b"offline", qos=1, retain=True),
        )
        await self._announce()
        await self.transport.subscribe(self.topics.global_, qos=1)
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._serve())
        self._watch = loop.create_task(self._announce_after_reconnects())

    async def _announce(self) -> None:
        """`online` and the HELLO, both retained: what the firmware sends on every connect."""
        status = self.topics.status(self.node_id)
        await self.transport.publish(status, b"online", qos=1, retain=True)
        topic = self.topics.hello(self.node_id)
        frame = encode(self.hello(), key=self.frame_key, topic=topic)
        await self.transport.publish(topic, frame, qos=1, retain=True)

    async def _announce_after_reconnects(self) -> None:
        """A broker restarted without persistence forgot the retained HELLO and status; the
        firmware announces itself on every connection, and so does the simulated node."""
        seen = self.transport.stats.reconnects
        while True:
            await asyncio.sleep(RECONNECT_POLL)
            if self.transport.stats.reconnects != seen:
                seen = self.transport.stats.reconnects
                with contextlib.suppress(TinyFLError):
                    await self._announce()

    async def stop(self) -> None:
        """A clean shutdown: announces `offline` itself, then disconnects."""
        with contextlib.suppress(TinyFLError):
            await self.transport.publish(
                self.topics.status(self.node_id), b"offline", qos=1, retain=True, timeout=2.0
            )
        await self._end(crash=False)

    async def crash(self) -> None:
        """Vanishes like a node losing power: the broker publishes its will (`offline`)."""
        await self._end(crash=True)

    async def _end(self, *, crash: bool) -> None:
        for task in [self._task, self._watch, *self._pending]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._watch = None
        self._pending.clear()
        await (self.transport.abort() if crash else self.transport.close())

    async def _serve(self) -> None:
        async for message in self.transport.messages():
            if message.topic != self.topics.global_:
                continue
            started = time.perf_counter()
            frame = self.serve_global(message.payload)
            if frame is None:
                continue
            wire = self.last_round
            self.stats.compute_s[wire] = self.stats.compute_s.get(wire, 0.0) + (
                time.perf_counter() - started
            )
            if self.answer_delay > 0:
                task = asyncio.get_running_loop().create_task(self._publish_later(frame))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            else:
                await self._publish(frame)

    async def _publish_later(self, frame: bytes) -> None:
        await asyncio.sleep(self.answer_delay)
        await self._publish(frame)

    async def _publish(self, frame: bytes) -> None:
        try:
            await self.transport.publish(self.topics.update(self.node_id), frame, qos=1)
        except TinyFLError as exc:  # the transport is closing; a real node would retry later
            log.debug("%s could not publish its update: %s", self.node_id, exc)

    def serve_global(self, payload: bytes) -> bytes | None:
        """The firmware's `serve_round`: the UPDATE frame to publish, or None (reason counted
        in `stats.ignored`) when the node would not serve this GLOBAL."""
        try:
            msg = open_frame(payload, self.topics.global_, self.fleet_key)
        except WireError as exc:
            self.stats.ignored[exc.reason] += 1
            return None
        if isinstance(msg, Unmask):
            return self._reveal(msg)
        if not isinstance(msg, Global):
            self.stats.ignored["bad_type"] += 1
            return None
        self.stats.globals_seen.append(msg.round_id)
        if self.on_global is not None:
            self.on_global(msg.round_id)
        if self._last_update is not None and msg.round_id == self._last_update[0]:
            self.stats.resent += 1  # asked again: a broker may have died with the first copy
            return self._last_update[1]
        reason = self._refusal(msg)
        if reason is not None:
            self.stats.ignored[reason] += 1
            return None
        self.last_round = msg.round_id
        w0 = msg.head.dequantized()
        rng = round_rng(msg.seed, self.node_id, msg.round_id)
        result = train_local(
            w0,
            self.x,
            self.y,
            epochs=msg.epochs,
            batch_size=msg.batch_size,
            lr=msg.lr,
            prox_mu=msg.prox_mu,
            clip_norm=msg.clip_norm,
            rng=rng,
        )
        sent = result.delta if self.tamper is None else self.tamper(result.delta)
        delta: Tensor | Masked
        if msg.secagg is not None:
            codes = quantize_with_scale(sent, msg.uplink_bits, msg.secagg.scale, rng)
            if msg.secagg.noise_var:  # this node's share of the noise, under the masks
                codes = codes + node_noise(self.noise_key, msg.round_id, codes.size,
                                           msg.secagg.noise_var).reshape(codes.shape)
            values = add_masks(codes, self.node_id, self.peer_seeds, msg.selected, msg.round_id,
                               msg.secagg.mask_bits)
            delta = Masked(msg.secagg.mask_bits, values)
            self._masked_round = (msg.round_id, frozenset(msg.selected), msg.secagg.threshold)
        elif msg.uplink_bits == 32:
            delta = Tensor.float32(sent)
        else:
            codes, scales = quantize(sent, msg.uplink_bits, msg.uplink_scale_mode, rng)
            delta = Tensor.quantized(
                codes, scales, msg.uplink_bits, per_row=msg.uplink_scale_mode == 1
            )
        self.stats.served.append(msg.round_id)
        # under distributed DP the statistics would be data in the clear: 0, as on the firmware
        noised = msg.secagg is not None and msg.secagg.noise_var > 0
        update = Update(
            round_id=msg.round_id,
            n_samples=result.n_samples,
            loss=0.0 if noised else result.epoch_loss[-1],
            accuracy=0.0 if noised else result.accuracy,
            update_norm=0.0 if noised else result.update_norm,
            delta=delta,
        )
        frame = encode(update, key=self.frame_key, topic=self.topics.update(self.node_id))
        self._last_update = (msg.round_id, frame)
        return frame

    def _reveal(self, msg: Unmask) -> bytes | None:
        """The firmware's answer to UNMASK: the round seeds shared with the dropped peers, once
        per round, only for its own masked round, and only when at least `threshold` nodes
        survived and the named peers were selected (docs/PRIVACY.md)."""
        served = self._masked_round
        if served is None or served[0] != msg.round_id:
            self.stats.ignored["unmask_other_round"] += 1
            return None
        _, selected, threshold = served
        dropped = set(msg.dropped)
        if (msg.n_survivors < threshold or msg.n_survivors + len(dropped) != len(selected)
                or len(dropped) != len(msg.dropped) or not dropped <= selected - {self.node_id}):
            self.stats.ignored["unmask_refused"] += 1
            return None
        self._masked_round = None  # one answer per round
        seeds = tuple((peer, round_seed(self.peer_seeds[peer], msg.round_id))
                      for peer in msg.dropped)
        return encode(Reveal(msg.round_id, seeds), key=self.frame_key,
                      topic=self.topics.update(self.node_id))

    def _refusal(self, msg: Global) -> str | None:
        if msg.round_id <= self.last_round:
            return "stale_round"
        if self.last_round and msg.round_id - self.last_round > ROUND_ID_MARGIN:
            return "round_ahead"
        if not msg.selects(self.node_id):
            self.last_round = msg.round_id  # not ours: nothing to do until the next round
            return "not_selected"
        if msg.model_hash != self.model_hash:
            return "wrong_model"
        if (msg.embed_dim, msg.n_classes) != (self.embed_dim, self.n_classes):
            return "wrong_shape"
        if not np.isfinite(msg.head.dequantized()).all():
            return "non_finite"
        if len(self.y) == 0:
            return "no_data"
        if not self.uplink_bits & uplink_flag(msg.uplink_bits):
            return "unsupported"
        if msg.secagg is not None and not set(msg.selected) - {self.node_id} <= set(
                self.peer_seeds):
            return "no_key"  # no seed shared with a peer: the firmware's status name
        return None


def partition(
    x: F32, y: U8, n_nodes: int, samples: int, seed: int, alpha: float | None = None
) -> list[tuple[F32, U8]]:
    """`samples` rows for each of `n_nodes` nodes, fixed by (seed, node index).

    alpha None: uniform draws (IID). alpha > 0: each node's class mix comes from a symmetric
    Dirichlet(alpha) (smaller = more skewed, the usual label-skew non-IID benchmark). Draws are
    without replacement within a node; nodes may share rows when the fleet outnumbers the data.
    """
    n, k = len(y), int(y.max()) + 1 if len(y) else 0
    if samples > n:
        raise UsageError(f"{samples} samples per node, but the task has {n} training rows")
    class_freq = np.bincount(y, minlength=k).astype(np.float64)
    out = []
    for i in range(n_nodes):
        rng = np.random.default_rng([seed, 7, i])
        if alpha is None:
            idx = rng.choice(n, size=samples, replace=False)
        else:
            mix = rng.dirichlet(np.full(k, alpha))
            p = mix[y] / np.maximum(class_freq[y], 1)
            idx = rng.choice(n, size=samples, replace=False, p=p / p.sum())
        out.append((x[idx], y[idx]))
    return out


async def start_fleet(
    task: Task,
    n_nodes: int,
    *,
    topics: Topics,
    make_transport: Callable[[], Transport],
    url: str | None = None,
    samples: int = 100,
    seed: int = 0,
    alpha: float | None = None,
    first_index: int = 0,
    concurrency: int = 50,
    keys: Keyring | None = None,
    pair_seeds: Callable[[str], Mapping[str, bytes]] | None = None,
    **node_options: object,
) -> list[SimNode]:
    """Starts `n_nodes` simulated nodes on the task's training data (ids sim-0000, ...),
    `concurrency` connections at a time. With `keys` (the coordinator's keyring, which holds
    every node's key: fine for a simulation) each node signs with its own frame key."""
    if task.train_x is None or task.train_y is None:
        raise UsageError(f"task {task.name} has no training data to simulate nodes with")
    parts = partition(task.train_x, task.train_y, n_nodes, samples, seed, alpha)
    nodes = [
        SimNode(
            make_node_id(first_index + i),
            px,
            py,
            model_hash=task.model_hash,
            n_classes=task.n_classes,
            topics=topics,
            transport=make_transport(),
            frame_key=None if keys is None else keys.key_of(make_node_id(first_index + i)),
            fleet_key=None if keys is None else keys.fleet_key,
            peer_seeds=None if pair_seeds is None else pair_seeds(make_node_id(first_index + i)),
            **node_options,  # type: ignore[arg-type]
        )
        for i, (px, py) in enumerate(parts)
    ]
    gate = asyncio.Semaphore(concurrency)

    async def start(node: SimNode) -> None:
        async with gate:
            await node.start(url)

    await asyncio.gather(*(start(node) for node in nodes))
    return nodes


# -- a simulated fleet as a process ----------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m tinyfl.coordinator.simnode",
        description="Run simulated TinyFL nodes against a broker until SIGTERM or Ctrl-C.",
    )
    ap.add_argument("--broker", required=True, help="mqtt://HOST:PORT")
    ap.add_argument("--fleet", required=True)
    ap.add_argument("--task", default="synthetic",
                    help="synthetic[:d=,k=,seed=] or a model folder (with --data)")
    ap.add_argument("--data", type=Path, default=None,
                    help="the dataset a model folder was built from: the nodes' samples")
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--first-index", type=int, default=0, help="index of the first node id")
    ap.add_argument("--samples", type=int, default=100, help="samples per node")
    ap.add_argument("--seed", type=int, default=0, help="data partition seed")
    ap.add_argument("--alpha", type=float, default=None, help="Dirichlet label skew (default IID)")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before each update")
    ap.add_argument("--stats", type=Path, default=None, help="write node stats JSON here at exit")
    ap.add_argument("--ready-file", type=Path, default=None, help="touch when every node is up")
    return ap.parse_args(argv)


async def _run_fleet(args: argparse.Namespace) -> None:
    task = load_task(args.task, args.data)  # the nodes' data: the fleet's embeddings
    topics = Topics.for_fleet(args.fleet)
    nodes = await start_fleet(
        task,
        args.nodes,
        topics=topics,
        make_transport=lambda: MqttTransport(connect_timeout=30.0),
        url=args.broker,
        samples=args.samples,
        seed=args.seed,
        alpha=args.alpha,
        first_index=args.first_index,
        answer_delay=args.delay,
    )
    where = public_url(args.broker)  # never the password a URL may carry
    print(f"{len(nodes)} simulated nodes up on {where} ({topics.prefix})", flush=True)
    if args.ready_file is not None:
        args.ready_file.write_text(str(len(nodes)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if args.stats is not None:
        compute: dict[int, float] = {}
        served: dict[int, int] = {}
        for node in nodes:
            for wire, seconds in node.stats.compute_s.items():
                compute[wire] = compute.get(wire, 0.0) + seconds
            for wire in node.stats.served:
                served[wire] = served.get(wire, 0) + 1
        args.stats.write_text(json.dumps({"compute_s": compute, "served": served}, sort_keys=True))
    await asyncio.gather(*(node.stop() for node in nodes), return_exceptions=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        asyncio.run(_run_fleet(args))
    except TinyFLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
