"""The round engine: select, broadcast, collect, aggregate, evaluate, record, checkpoint.

Transport-agnostic and asyncio-driven: it takes any connected `Transport` (MQTT for real fleets,
the in-memory broker for fast tests) and never blocks the loop while waiting for nodes. One task
(the pump) reads every message and updates the registry and the open round; the round loop only
waits on "something changed" or a deadline. So a thousand updates arriving at once cost a decode
each and nothing else.

A round, in order:

1. Select K of the eligible online nodes (seeded, reproducible; `selection.py`); with central
   differential privacy, each eligible node with probability q instead (`privacy.py`).
2. Publish the retained GLOBAL: round id, selected ids, hyperparameters, and the global head as
   sent (float32, or 8-bit codes). The server then continues from `dequantized(broadcast)`, the
   exact values the nodes start from, so server and nodes agree bit for bit.
3. Collect UPDATEs until every selected node answered (or answered invalidly, or went offline
   with quorum reached), or the deadline. At the deadline: close with >= min_clients updates,
   else extend once by the same timeout, then skip the round (the head stays as it was).
   Updates of a past round are *late*; duplicates, unselected nodes and future rounds are
   *dropped*; a wrong model, a wrong shape, non-finite values or zero samples are *rejected*.
   All are counted, none is averaged in.
4. Aggregate with the strategy over the accepted updates sorted by node id (float sums depend on
   order; arrival order does not repeat, node ids do).
   With central differential privacy the strategy gets one update: the clipped deltas' noisy
   average (DP-FedAvg, `tinyfl.strategy.dp`), and the record gets the epsilon spent.
5. Evaluate on the task's test set, write the metrics line, then the checkpoint.

Round ids on the wire (`wire_round`) are distinct from logical rounds: they continue past the
last GLOBAL retained on the broker and the last one checkpointed, and follow the clock
(`round_ids.next_wire_round`), so nodes that served an earlier run (or the first attempt of a round
interrupted by a crash) serve the new one. See `selection.global_seed` for why this does not
change what the nodes compute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tinyfl.coordinator import round_ids, secure_round
from tinyfl.coordinator.checkpoint import CHECKPOINT_NAME, Checkpoint, save_checkpoint
from tinyfl.coordinator.config import EngineConfig
from tinyfl.coordinator.downlink import Downlink
from tinyfl.coordinator.intake import Intake, OpenRound
from tinyfl.coordinator.metrics import METRICS_NAME, MetricsLog, weighted_mean
from tinyfl.coordinator.privacy import CentralPrivacy, PrivacyState, check_dp_strategy, noise_key
from tinyfl.coordinator.progress import Progress
from tinyfl.coordinator.registry import Registry
from tinyfl.coordinator.selection import round_size, select_nodes
from tinyfl.coordinator.stragglers import Stragglers, candidates, record_round
from tinyfl.coordinator.task import Task, evaluate
from tinyfl.errors import CoordinatorError, TransportError, UsageError
from tinyfl.files import private_dir
from tinyfl.strategy import AggregationError, ClientResult, StateValue, Strategy, strategy_params
from tinyfl.transport.mqtt import Message, Transport, mqtt_publish_packet_size
from tinyfl.wire import Keyring, Topics, Unmask, encode

__all__ = ["CoordinatorError", "EngineConfig", "RoundEngine", "RunResult"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
SYNC_TIMEOUT = 10.0
# The coordinator subscribes at QoS 0 (nodes still publish at QoS 1, so their messages reach the
# broker reliably). Why: a broker throttles QoS 1 delivery per subscriber (mosquitto: 20 in
# flight, 1000 queued by default) and drops what does not fit, so a QoS 1 subscriber to a fleet
# of a thousand nodes loses retained statuses and updates. At QoS 0 the broker writes straight
# to the socket while the subscriber keeps up, and after a reconnect every retained HELLO and
# status arrives again. mosquitto's max_queued_messages (default 1000) also bounds QoS 0
# deliveries to a subscriber that falls behind (tests/integration/test_flood.py): the brokers
# TinyFL starts raise it (fleet/broker.py, provision/broker.py), and an update lost anyway is
# asked for again (a node re-sends when its round's GLOBAL comes back, docs/WIRE.md).
SUBSCRIBE_QOS = 0
RECHECK_INTERVAL = 1.0  # seconds: how often a waiting round looks for a broker reconnection



@dataclass
class RunResult:
    """A finished run: the final head and optimizer state, and every round's record (rounds
    of earlier sessions of a resumed run included)."""

    head: F32
    state: dict[str, StateValue]
    records: list[dict[str, Any]]
    run_dir: Path | None = None
    stopped: str | None = None  # why the run ended before its last round (the privacy budget)


class RoundEngine:
    """Runs rounds on a fleet over a connected transport (see the module docstring).

        engine = RoundEngine(transport, Topics.for_fleet("lab"), task, strategy, config,
                             run_dir=Path("runs/lab-1"))
        result = await engine.run()

    With `run_dir`, each round appends to `metrics.jsonl` and replaces `checkpoint.npz`;
    `resume_from` continues a run from its checkpoint (after the round it covers).
    """

    def __init__(
        self,
        transport: Transport,
        topics: Topics,
        task: Task,
        strategy: Strategy,
        config: EngineConfig,
        *,
        run_dir: Path | None = None,
        resume_from: Checkpoint | None = None,
        progress: Progress | None = None,
        round_id_clock: Callable[[], float] = time.time,
        keys: Keyring | None = None,
        dp_noise_key: bytes | None = None,
    ) -> None:
        self.transport = transport
        self.topics = topics
        self.task = task
        self.strategy = strategy
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None:
            private_dir(self.run_dir)
        self.progress = progress
        self._round_id_clock = round_id_clock
        self.keys = keys  # a provisioned fleet: GLOBALs signed, HELLOs and UPDATEs verified
        if config.secure_agg:
            secure_round.check_strategy(strategy.name)
        self.head: F32 = task.initial_head(config.initial_head)
        self.state: dict[str, StateValue] = strategy.init_state(self.head)
        self.round = 0  # rounds done (closed or skipped)
        self.stragglers: Stragglers = {}
        self.wire_round = 0  # last round id published, or seen retained on the broker
        self.records: list[dict[str, Any]] = []
        self.stopped: str | None = None
        self._round_started: float | None = None  # event-loop time of the last round's start
        # DP (coordinator/privacy.py); central: the noise key defaults to the run folder's
        self.privacy: CentralPrivacy | None = None
        self._dp_pending = False  # this round drew its sample: charge it when it ends
        if config.privacy is not None:
            check_dp_strategy(strategy)
            key = (dp_noise_key if dp_noise_key is not None
                   else None if config.privacy.mode == "distributed" else noise_key(self.run_dir))
            self.privacy = CentralPrivacy(config.privacy, key)
        if resume_from is not None:
            self._adopt(resume_from)
        self.downlink = Downlink(task, config, strategy.prox_mu, topics, keys)
        self.registry = Registry(
            model_hash=task.model_hash,
            embed_dim=task.embed_dim,
            n_classes=task.n_classes,
            uplink_bits=config.uplink_bits,
            global_payload=len(self.downlink.frame(1, 1, (), self.downlink.tensor(self.head, 1))),
            topics=topics,
            keys=keys,
        )
        self.intake = Intake(task.head_shape, topics=topics, keys=keys, declared=self._declared)
        self._changed = asyncio.Event()
        self._sync_token = os.urandom(8).hex().encode()
        self._synced = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._metrics = MetricsLog(self.run_dir / METRICS_NAME) if self.run_dir else None

    def _declared(self, node_id: str) -> int:
        info = self.registry.get(node_id)
        return info.n_samples if info is not None else 0

    # -- set-up --------------------------------------------------------------------------------

    def _adopt(self, ckpt: Checkpoint) -> None:
        if ckpt.model_hash != self.task.model_hash or ckpt.head.shape != self.task.head_shape:
            raise UsageError(
                f"the checkpoint is of model {ckpt.model_hash.hex()} with head "
                f"{ckpt.head.shape}, this run's task {self.task.name} is "
                f"{self.task.model_hash.hex()} with head {self.task.head_shape}"
            )
        self.head = ckpt.head.astype(np.float32)
        self.state = dict(ckpt.state)
        self.round = ckpt.round
        self.wire_round = ckpt.wire_round
        self.stragglers = dict(ckpt.stragglers)
        if self.privacy is not None:
            self.privacy.state = PrivacyState.from_dict(ckpt.privacy)
        if self.run_dir is not None:
            metrics = MetricsLog(self.run_dir / METRICS_NAME)
            self.records = metrics.truncate_after(ckpt.round)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(
            round=self.round,
            wire_round=self.wire_round,
            seed=self.config.seed,
            head=self.head,
            state=self.state,
            task=self.task.name,
            model_hash=self.task.model_hash,
            config={"engine": self.config.to_dict(), "strategy": strategy_params(self.strategy)},
            stragglers=dict(self.stragglers),
            privacy={} if self.privacy is None else self.privacy.state.to_dict(),
        )

    @property
    def sync_topic(self) -> str:
        """A topic only this coordinator uses, to learn when the broker has sent everything
        retained (see `_sync`)."""
        return f"{self.topics.prefix}/coordinator/sync"

    async def start(self) -> None:
        """Subscribe to the fleet and learn its retained state (nodes, last round id)."""
        if self._pump_task is not None:
            return
        self._pump_task = asyncio.get_running_loop().create_task(self._pump())
        for kind in ("hello", "status", "update"):
            await self.transport.subscribe(self.topics.all_nodes(kind), qos=SUBSCRIBE_QOS)
        await self.transport.subscribe(self.topics.global_, qos=SUBSCRIBE_QOS)
        await self._sync()

    async def _sync(self) -> None:
        """Round-trips a token through the broker. The broker sends retained messages while it
        handles a SUBSCRIBE, before it reads our next packet, so once the token is back every
        retained HELLO, status and GLOBAL has arrived, and the next round id is known."""
        await self.transport.subscribe(self.sync_topic, qos=SUBSCRIBE_QOS)
        await self.transport.publish(self.sync_topic, self._sync_token, qos=1)
        try:
            await asyncio.wait_for(self._synced.wait(), SYNC_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("the broker did not echo the sync message in %g s", SYNC_TIMEOUT)
        with contextlib.suppress(TransportError):
            await self.transport.unsubscribe(self.sync_topic)

    async def stop(self) -> None:
        task, self._pump_task = self._pump_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> RunResult:
        """All remaining rounds; returns the final head and the records."""
        await self.start()
        try:
            if self.round < self.config.rounds:
                await self.wait_for_nodes()
            while self.round < self.config.rounds:
                if self.privacy is not None:
                    self.stopped = self.privacy.stop_reason(self.round + 1)
                    if self.stopped is not None:
                        log.warning("stopping after round %d: %s", self.round, self.stopped)
                        break
                await self._pace()
                await self.run_round()
        finally:
            await self.stop()
            if self.progress:
                self.progress.clear()
        return RunResult(self.head, self.state, self.records, self.run_dir, self.stopped)

    async def _pace(self) -> None:
        """Waits until round_interval seconds have passed since the last round started."""
        loop = asyncio.get_running_loop()
        if self._round_started is not None:
            await asyncio.sleep(max(0.0, self._round_started + self.config.round_interval
                                    - loop.time()))
        self._round_started = loop.time()

    async def wait_for_nodes(self) -> None:
        """Until `nodes_to_wait_for` nodes are eligible or `wait_timeout` passed. Fewer than
        min_clients then is an error that says what was seen."""
        want = self.config.nodes_to_wait_for
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.wait_timeout
        while len(self.registry.eligible()) < want:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            if self.progress:
                self.progress.waiting(
                    len(self.registry.eligible()), len(self.registry.online()), want
                )
            await self._wait_change(remaining)
        eligible = len(self.registry.eligible())
        if eligible >= want:
            log.info("%d eligible nodes online; starting", eligible)
            return
        if eligible >= self.config.min_clients:
            log.warning(
                "only %d of the %d nodes waited for are eligible after %g s; starting anyway",
                eligible,
                want,
                self.config.wait_timeout,
            )
            return
        raise CoordinatorError(
            f"only {eligible} eligible node(s) after {self.config.wait_timeout:g} s, "
            f"need at least {self.config.min_clients} (--min-clients): {self.fleet_report()}"
        )

    def fleet_report(self, examples: int = 3) -> str:
        """The known nodes by state, for error messages (Registry.report)."""
        return self.registry.report(self.topics.prefix, examples)

    async def run_round(self) -> dict[str, Any]:
        """One round (the next one); returns its record, also appended to `records`."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        number = self.round + 1
        started = loop.time()
        cpu_started = time.process_time()
        eligible = self.registry.eligible()
        if len(eligible) < cfg.min_clients:
            await self._wait_for_eligible(loop.time() + cfg.round_timeout)
            eligible = self.registry.eligible()
        record: dict[str, Any] = {
            "round": number,
            "wire_round": None,
            "status": "skipped",
            "reason": None,
            "online": len(self.registry.online()),
            "eligible": len(eligible),
        }
        if len(eligible) < cfg.min_clients:
            record["reason"] = (
                f"only {len(eligible)} eligible node(s) online, quorum is {cfg.min_clients}"
            )
            self._skip(record, selected=(), started=started)
            return self._finish(record, started, cpu_started, head_changed=False)

        pool = candidates(eligible, self.stragglers, number, cfg.min_clients)
        record["benched"] = len(eligible) - len(pool)
        if self.privacy is not None:  # Poisson sampling, which the accountant assumes
            selected = self.privacy.select(pool, len(eligible), cfg.seed, number)
            self._dp_pending = True
            if len(selected) < cfg.min_clients:
                record["reason"] = (f"the sample (probability {cfg.dp_sampling:g} per node) "
                                    f"drew {len(selected)} node(s), quorum is {cfg.min_clients}")
                self._skip(record, selected, started)
                return self._finish(record, started, cpu_started, head_changed=False)
        else:
            selected = select_nodes(
                pool,
                round_size(len(pool), cfg.clients_per_round, cfg.fraction, cfg.min_clients),
                cfg.seed,
                number,
            )
        wire = self.next_wire_round()
        sent = self.downlink.tensor(self.head, number)
        reference = sent.dequantized()
        secagg = None
        if cfg.secure_agg:  # every selected node masks against the others: list them all
            try:
                secagg = secure_round.plan(
                    len(selected), cfg.uplink_bits, cfg.clip_norm, cfg.secure_agg_threshold,
                    None if self.privacy is None else self.privacy.noise_multiplier,
                    int(np.prod(self.task.head_shape)))
            except ValueError as exc:  # the nodes' noise does not fit this round's wire
                record["reason"] = f"--dp distributed: {exc}"
                self._skip(record, selected, started)
                return self._finish(record, started, cpu_started, head_changed=False)
            frame = self.downlink.frame(number, wire, selected, sent, secagg)
        else:
            frame = self.downlink.frame_for(number, wire, selected, sent,
                                            all_eligible=len(selected) == len(eligible),
                                            max_payload=self.registry.max_payload)
        self.wire_round = wire
        if self.run_dir is not None:  # the id is on disk before any node can have served it
            save_checkpoint(self.run_dir / CHECKPOINT_NAME, self.checkpoint())
        open_round = OpenRound(number, wire, frozenset(selected), secagg=secagg)
        self.intake.open = open_round
        record["wire_round"] = wire
        await self.transport.publish(self.topics.global_, frame, qos=1, retain=True)
        packet = mqtt_publish_packet_size(self.topics.global_, len(frame), 1)
        record["global_bytes"] = packet
        record["bytes_down"] = packet * len(self.registry.online())
        collect_started = loop.time()
        secure: tuple[F32 | None, str] = (None, "")
        try:
            await self._collect(open_round, frame)
            if secagg is not None and len(open_round.masked) >= cfg.min_clients:
                secure = await secure_round.secure_sum(
                    open_round, record, self._publish_unmask, self.config.round_timeout,
                    self._wait_change, self.task.head_shape)
        finally:
            self.intake.open = None
        record["collect_time_s"] = loop.time() - collect_started
        answered = sorted(open_round.answers)
        missed = open_round.pending | open_round.rejected  # no accepted update
        self.stragglers = record_round(self.stragglers, number, missed, answered,
                                       cfg.straggler_backoff)
        record.update(open_round.counts())
        if len(answered) < cfg.min_clients:
            record["reason"] = (
                f"{len(answered)} of {len(selected)} selected node(s) answered within the "
                f"deadline and its extension ({2 * cfg.round_timeout:g} s), quorum is "
                f"{cfg.min_clients}"
            )
            self._skip(record, selected, started)
            return self._finish(record, started, cpu_started, head_changed=False)

        if secagg is not None and secure[0] is None:
            record["reason"] = secure[1]
            self._skip(record, selected, started)
            return self._finish(record, started, cpu_started, head_changed=False)
        agg_started = loop.time()
        if secure[0] is not None:  # only the survivors' mean exists: one equal-weight result
            total = sum(open_round.answers[n].n_samples for n in answered)
            results = [ClientResult(secure[0], total)]
        else:
            results = [
                ClientResult(open_round.deltas[n], open_round.answers[n].n_samples)
                for n in answered
            ]
        if secagg is not None and secagg.noise_var:  # the nodes' noise is in the sum already
            record.update(secure_round.noise_info(secagg, len(open_round.masked)))
        elif self.privacy is not None:  # DP-FedAvg: one noisy average of the clipped deltas
            noisy = self.privacy.release(number, [r.delta for r in results])
            results = [ClientResult(noisy.mean, 1)]
            record.update(noisy.info())
        try:
            aggregate = self.strategy.aggregate(reference, results, self.state)
        except AggregationError as exc:
            record["reason"] = f"aggregation failed: {exc}"
            self._skip(record, selected, started)
            return self._finish(record, started, cpu_started, head_changed=False)
        record["aggregate_time_s"] = loop.time() - agg_started
        self.head = np.asarray(aggregate.head, dtype=np.float32)
        self.state = dict(aggregate.state)
        record["status"] = "closed"
        updates = [open_round.answers[n] for n in answered]
        record["samples"] = sum(u.n_samples for u in updates)
        record["train_loss"] = weighted_mean((u.loss, u.n_samples) for u in updates)
        record["local_accuracy"] = weighted_mean((u.accuracy, u.n_samples) for u in updates)
        record["strategy"] = dict(aggregate.info)
        return self._finish(record, started, cpu_started, head_changed=True)

    # -- pieces of a round ---------------------------------------------------------------------

    def next_wire_round(self) -> int:
        """The round id of the next GLOBAL (round_ids.next_wire_round)."""
        return round_ids.next_wire_round(self.wire_round, self._round_id_clock())

    async def _collect(self, rnd: OpenRound, frame: bytes) -> None:
        """Waits for the round's updates (see the module docstring, step 3)."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + cfg.round_timeout
        extended = False
        quorum = cfg.min_clients
        reconnects = self.transport.stats.reconnects
        while True:
            answered = len(rnd.answers)
            if not rnd.pending:
                return  # every selected node answered, validly or not
            # (`all` stops at the first pending node still online: O(1) per wake-up as a rule)
            if answered >= quorum and (
                extended or all(not self.registry.is_online(n) for n in rnd.pending)
            ):
                return
            if self.progress:
                self.progress.collecting(
                    rnd.number, answered, len(rnd.selected), loop.time() - start
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                if answered >= quorum or extended:
                    return
                extended = True
                deadline += cfg.round_timeout
                log.info(
                    "round %d: %d of %d updates by the deadline, quorum %d; waiting %g s more",
                    rnd.number,
                    answered,
                    len(rnd.selected),
                    quorum,
                    cfg.round_timeout,
                )
                continue
            await self._wait_change(min(remaining, RECHECK_INTERVAL))
            if self.transport.stats.reconnects != reconnects:
                reconnects = self.transport.stats.reconnects
                await self._republish(rnd, frame)

    async def _publish_unmask(self, request: Unmask) -> None:
        """UNMASK on the GLOBAL topic, signed with the fleet key, not retained (the round's
        GLOBAL stays for nodes that reconnect)."""
        key = None if self.keys is None else self.keys.fleet_key
        frame = encode(request, key=key, topic=self.topics.global_)
        await self.transport.publish(self.topics.global_, frame, qos=1, retain=False)

    async def _republish(self, rnd: OpenRound, frame: bytes) -> None:
        """After a reconnection the broker may have lost the retained GLOBAL (a restart without
        persistence), and nodes that reconnect would find no round: publish it again. Nodes
        that already served this round id ignore it."""
        log.info("reconnected to the broker: publishing round %d's GLOBAL again", rnd.number)
        try:
            await self.transport.publish(self.topics.global_, frame, qos=1, retain=True)
        except TransportError as exc:
            log.warning("could not publish round %d's GLOBAL again: %s", rnd.number, exc)

    async def _wait_for_eligible(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while len(self.registry.eligible()) < self.config.min_clients:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await self._wait_change(remaining)

    async def _wait_change(self, timeout: float) -> None:
        self._changed.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def _skip(self, record: dict[str, Any], selected: tuple[str, ...], started: float) -> None:
        record.setdefault("selected", len(selected))
        record.setdefault("answered", 0)
        record.setdefault("answered_ids", [])
        record.setdefault("missing", len(selected))
        log.warning("round %d skipped: %s", record["round"], record["reason"])

    def _finish(
        self, record: dict[str, Any], started: float, cpu_started: float, *, head_changed: bool
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        counters = self.intake.take_counters()
        record.update(counters.fields(sum(self.registry.refused.values())))
        record.setdefault("bytes_down", 0)
        record.setdefault("global_bytes", 0)
        eval_started = loop.time()
        evaluation = evaluate(self.head, self.task.test_x, self.task.test_y)
        record["eval_time_s"] = loop.time() - eval_started
        record.update(evaluation.fields(self.task.class_names))
        for key in ("train_loss", "local_accuracy", "samples", "aggregate_time_s",
                    "collect_time_s"):
            record.setdefault(key, None)
        record.setdefault("strategy", {})
        if self.privacy is not None:
            if self._dp_pending:
                self.privacy.charge()
                self._dp_pending = False
            record.update(self.privacy.record_fields())
        record["wall_time_s"] = loop.time() - started
        record["cpu_time_s"] = time.process_time() - cpu_started
        self.round = record["round"]
        if self._metrics is not None:
            self._metrics.append(record)
        if self.run_dir is not None:
            save_checkpoint(self.run_dir / CHECKPOINT_NAME, self.checkpoint())
        self.records.append(record)
        if self.progress:
            self.progress.round_done(record)
        return record

    # -- the pump: every message from the broker -------------------------------------------------

    async def _pump(self) -> None:
        async for message in self.transport.messages():
            try:
                self._dispatch(message)
            except Exception:  # a bug handling one message must not stop the run
                log.exception("failed to handle a message on %s", message.topic)

    def _dispatch(self, message: Message) -> None:
        topic, payload = message.topic, message.payload
        if topic == self.topics.global_:
            self._on_global(payload)
            return
        if topic == self.sync_topic:
            if payload == self._sync_token:
                self._synced.set()
            return
        parsed = self.topics.parse(topic)
        if parsed is None:
            return
        kind, node_id = parsed
        if kind == "update":
            # bytes as the node sent them: one QoS 1 PUBLISH (we may receive it at QoS 0)
            size = mqtt_publish_packet_size(topic, len(payload), 1)
            if self.intake.on_update(node_id, payload, size, self.wire_round):
                self._changed.set()
        elif kind == "hello":
            if self.registry.on_hello(node_id, payload):
                self._changed.set()
        elif self.registry.on_status(node_id, payload):
            self._changed.set()

    def _on_global(self, payload: bytes) -> None:
        """A GLOBAL on the broker (ours echoed, or retained from an earlier run): the next
        round id must be larger than any the nodes may have served (round_ids.retained_round)."""
        if self.intake.open:
            return
        key = None if self.keys is None else self.keys.fleet_key
        seen = round_ids.retained_round(payload, self.topics.global_, key, self.wire_round,
                                        self._round_id_clock())
        if seen is not None:
            self.wire_round = seen
