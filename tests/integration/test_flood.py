"""A flood against a running `tinyfl coordinate`: 10,000 junk messages and 5 MB payloads on
every topic a stranger on an open broker can reach (each node's update, hello and status, an
unknown node's, and the fleet's GLOBAL), while simulated nodes train.

The coordinator runs as its own process so that its memory is its own: VmRSS is read from
/proc/<pid>/status once rounds are going and again after the flood. What must hold: it stays
up (and stops cleanly on SIGTERM), every round closes with every honest update accepted, even
with junk sent on a selected node's update topic while its round is open; the junk is counted
(as rejected or dropped: the reasons are the wire format's business), the 5 MB payloads are
dropped at the transport's incoming bound, and the resident memory grows by a bounded amount.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support.broker import MosquittoBroker
from tinyfl.coordinator import METRICS_NAME, load_task, read_metrics
from tinyfl.coordinator.simnode import SimNode, make_node_id, start_fleet
from tinyfl.transport.mqtt import MAX_INCOMING_PAYLOAD, MqttTransport
from tinyfl.wire import Topics

pytestmark = pytest.mark.broker

REPO = Path(__file__).resolve().parents[2]
TASK = "synthetic:d=16,k=3"
NODES = 4
JUNK = 10_000
BIG = 5_000_000  # above the coordinator's 1 MiB bound; mosquitto's default limit is 256 MB
VICTIM_JUNK = 5  # junk frames on the victim's update topic each time its round opens
# Resident memory the coordinator may gain from the flood, at its peak and after it. paho reads
# a 5 MB packet into one buffer while recv() holds a second and the payload slice a third:
# ~15 MB at a time, which malloc may keep for reuse rather than return. The rest of the junk is
# 10,000 messages of at most 256 bytes (2.5 MB in all). Keeping the big payloads (16 x 5 MB =
# 80 MB), or holding more than a few of them at once, would exceed the bound.
RSS_GROWTH_BOUND_KIB = 40 * 1024
assert BIG > MAX_INCOMING_PAYLOAD


def vm_kib(pid: int, field: str) -> int:
    """VmRSS, VmHWM, ... of a live process, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB$", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))


def coordinate_cmd(broker: MosquittoBroker, fleet: str, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "tinyfl.cli.main", "coordinate",
        "--broker", broker.url, "--fleet", fleet, "--task", TASK,
        "--rounds", "500",  # more than fit in the test: it ends with SIGTERM
        "--clients-per-round", str(NODES), "--min-clients", "3",
        "--round-timeout", "15", "--wait-nodes", str(NODES), "--wait-timeout", "20",
        "--lr", "0.5", "--seed", "5", "--out", str(out),
    ]  # fmt: skip


def env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "host"), env.get("PYTHONPATH", "")) if p
    )
    return env


def reachable_topics(topics: Topics, node_ids: list[str]) -> list[str]:
    """What an anonymous client may publish to on an open broker, of what the coordinator
    reads: every node's topics (an unknown node's too) and the GLOBAL."""
    kinds = ("update", "hello", "status")
    per_node = [getattr(topics, kind)(n) for n in [*node_ids, "stranger"] for kind in kinds]
    return [*per_node, topics.global_]


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def test_a_flood_of_junk_and_5_mb_payloads_loses_no_round(
    deep_queue_broker: MosquittoBroker, tmp_path: Path
) -> None:
    broker = deep_queue_broker
    task = load_task(TASK)
    fleet = f"flood-{os.getpid()}"
    topics = Topics.for_fleet(fleet)
    out = tmp_path / "run"
    log_path = tmp_path / "coordinator.log"
    rng = random.Random(1234)
    flooder = MqttTransport()
    victim = make_node_id(0)
    victim_junk: list[asyncio.Task[None]] = []
    figures: dict[str, int] = {}

    def junk() -> bytes:
        return rng.randbytes(rng.randint(1, 256))

    def junk_on_the_victims_topic(wire: int) -> None:
        """The victim's round is open (its GLOBAL just arrived; it answers 0.5 s later)."""
        for _ in range(VICTIM_JUNK):
            victim_junk.append(asyncio.ensure_future(
                flooder.publish(topics.update(victim), junk(), qos=1)
            ))

    async def scenario() -> tuple[list[SimNode], int, str]:
        async def fleet_of(n: int, first: int, **options: object) -> list[SimNode]:
            return await start_fleet(task, n, topics=topics, url=broker.url, samples=100,
                                     seed=first, first_index=first, answer_delay=0.5,
                                     make_transport=MqttTransport, **options)

        nodes = await fleet_of(1, 0, on_global=junk_on_the_victims_topic)
        nodes += await fleet_of(NODES - 1, 1)
        await flooder.connect(broker.url, client_id=f"stranger-{fleet}")
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *coordinate_cmd(broker, fleet, out), env=env(),
                stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            await until(lambda: len(read_metrics(out / METRICS_NAME)) >= 2, 30, "two rounds")
            figures["rss_before"] = vm_kib(proc.pid, "VmRSS")
            figures["peak_before"] = vm_kib(proc.pid, "VmHWM")
            started = time.monotonic()
            targets = reachable_topics(topics, [n.node_id for n in nodes])
            for i in range(JUNK):
                await flooder.publish(targets[i % len(targets)], junk(), qos=0)
                if i % 625 == 0:  # 16 big ones, spread over the flood, on every topic
                    big = targets[(i // 625) % len(targets)]
                    await flooder.publish(big, bytes([i % 251]) * BIG, qos=1)
                if i % 100 == 0:
                    await asyncio.sleep(0)  # QoS 0 never yields: let the nodes work
            await flooder.publish(targets[0], b"end of the flood", qos=1)  # after all the rest
            figures["flood_ms"] = int((time.monotonic() - started) * 1000)
            # small junk on update topics (the stranger's too): each one reaches the intake
            expected = sum(1 for i in range(JUNK) if targets[i % len(targets)].endswith("/update"))
            figures["update_junk"] = expected

            def counted() -> int:
                return sum(r["rejected"] + r["dropped"] for r in read_metrics(out / METRICS_NAME))

            # the coordinator has read it all once its rounds have counted it
            await until(lambda: counted() >= expected, 60, f"{expected} junk updates counted")
            done = len(read_metrics(out / METRICS_NAME))
            await until(lambda: len(read_metrics(out / METRICS_NAME)) >= done + 2, 30,
                        "two more rounds after the flood")
            assert proc.returncode is None, "the coordinator died"
            figures["rss_after"] = vm_kib(proc.pid, "VmRSS")
            figures["rss_peak"] = vm_kib(proc.pid, "VmHWM")
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 15)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await asyncio.gather(*victim_junk, return_exceptions=True)
            await flooder.close()
            await asyncio.gather(*(n.stop() for n in nodes), return_exceptions=True)
        return nodes, code, log_path.read_text(errors="replace")

    nodes, code, output = asyncio.run(asyncio.wait_for(scenario(), 150))
    tail = output[-3000:]
    records = read_metrics(out / METRICS_NAME)
    print(f"\nflood: {figures}; {len(records)} rounds")

    assert code == 130, tail  # up all along, stopped by SIGTERM like Ctrl-C
    assert "stopped; the run continues with --resume --out" in output, tail
    # no round lost: consecutive, all closed, every honest update accepted (the victim's too,
    # after junk on its own update topic in every round)
    assert [r["round"] for r in records] == list(range(1, len(records) + 1))
    for r in records:
        assert r["status"] == "closed", r
        assert r["answered"] == r["selected"] == NODES, r
        assert victim in r["answered_ids"], r
        # its junk counted (dropped: bytes that are not a frame could come from anyone), its
        # node not blamed
        bad_frames = sum(n for why, n in r["dropped_reasons"].items() if why.startswith("bad_frame"))
        assert bad_frames >= VICTIM_JUNK, r
        assert r["rejected"] == 0, r
    junk_counted = sum(r["rejected"] + r["dropped"] for r in records)
    assert junk_counted >= figures["update_junk"] + VICTIM_JUNK * len(records)
    # the 5 MB payloads: dropped by the coordinator's transport, each one logged, none queued
    drops = re.findall(r"dropped a (\d+)-byte message on (\S+): over the", output)
    assert len(drops) == 16 and {int(size) for size, _ in drops} == {BIG}, drops
    assert {topic for _, topic in drops} == set(reachable_topics(topics, [n.node_id for n in nodes]))
    # ...and by the nodes' transports: the one on the GLOBAL reached them all
    assert all(n.transport.stats.messages_dropped_oversize == 1 for n in nodes)
    # resident memory: what stays after the flood, and the peak while it lasted
    assert figures["rss_after"] - figures["rss_before"] < RSS_GROWTH_BOUND_KIB, figures
    assert figures["rss_peak"] - figures["rss_before"] < RSS_GROWTH_BOUND_KIB, figures
