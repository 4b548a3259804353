"""Retained node topics on a fleet's broker: find them and delete them (docs/SECURITY.md,
"Revoking a node").

A node's `hello` and `status` are retained, so the broker hands them to every new subscriber
until someone replaces them; a revoked node (or a stranger on an open broker) would otherwise
keep showing up in `fleet status` and in the coordinator's registry. An empty retained PUBLISH
deletes a retained message (MQTT 3.1.1, 3.3.1.3). This runs as the operator's admin account,
which the ACL allows exactly these two topics of every node.

Brokers answer a PUBLISH the ACL denies with a PUBACK all the same (mosquitto 2.0), so a clear is
only reported once a fresh subscription no longer receives the message.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from tinyfl.transport.address import BrokerAddress
from tinyfl.transport.mqtt import MqttTransport

__all__ = ["KINDS", "ClearReport", "clear_retained", "find_retained", "node_topic"]

KINDS = ("hello", "status")  # the retained topics of a node (`update` is never retained)
QUIET = 0.5  # seconds without a message after which the retained burst is taken as complete
RETRY_DELAY = 0.5  # before the second pass (see clear_retained)
COLLECT_LIMIT = 30.0  # seconds at most for one subscription's retained burst


@dataclass
class ClearReport:
    """What a clear did: {node id: kinds whose retained message is now gone}, and the topics a
    fresh subscriber still receives (the broker refused the delete, or a client wrote again)."""

    cleared: dict[str, list[str]] = field(default_factory=dict)
    remaining: list[str] = field(default_factory=list)


def node_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """(node id, kind) of `<prefix>/nodes/<id>/<kind>` for a retained kind, else None. Any id is
    taken, even one the wire refuses (too long, odd characters): a fake node's topic must be
    found and cleared too."""
    head = f"{prefix}/nodes/"
    if not topic.startswith(head):
        return None
    node_id, _, kind = topic[len(head):].partition("/")
    return (node_id, kind) if node_id and kind in KINDS else None


async def _connect(address: BrokerAddress, timeout: float) -> MqttTransport:
    transport = MqttTransport(connect_timeout=timeout, attempt_timeout=min(timeout, 5.0),
                              publish_timeout=timeout)
    # random suffix: two operators' runs (or a run and a leftover session) must not kick each
    # other off the broker by sharing a client id
    await transport.connect(address, client_id=f"tinyfl-admin-{secrets.token_hex(4)}")
    return transport


async def _collect(transport: MqttTransport, prefix: str, quiet: float) -> dict[str, set[str]]:
    """{node id: kinds} of every non-empty retained hello/status under `prefix`, from a fresh
    subscription (retained messages arrive right after it; `quiet` seconds of silence end it)."""
    filters = [f"{prefix}/nodes/+/{kind}" for kind in KINDS]
    for topic_filter in filters:
        await transport.subscribe(topic_filter, qos=1)
    found: dict[str, set[str]] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + COLLECT_LIMIT  # live traffic must not keep the window open forever
    while (left := deadline - loop.time()) > 0:
        try:
            message = await transport.receive(timeout=min(quiet, left))
        except (asyncio.TimeoutError, TimeoutError):
            break
        parsed = node_topic(prefix, message.topic)
        # live traffic (retain false) and our own deletes (empty) are not what is stored
        if parsed is not None and message.retain and message.payload:
            found.setdefault(parsed[0], set()).add(parsed[1])
    for topic_filter in filters:
        await transport.unsubscribe(topic_filter)
    return found


async def find_retained_async(address: BrokerAddress, prefix: str, *, timeout: float = 5.0,
                              quiet: float = QUIET) -> dict[str, set[str]]:
    transport = await _connect(address, timeout)
    try:
        return await _collect(transport, prefix, quiet)
    finally:
        await transport.close()


async def clear_retained_async(address: BrokerAddress, prefix: str, node_ids: Iterable[str], *,
                               timeout: float = 5.0, quiet: float = QUIET) -> ClearReport:
    wanted = set(node_ids)
    transport = await _connect(address, timeout)
    try:
        before = {i: k for i, k in (await _collect(transport, prefix, quiet)).items()
                  if i in wanted}
        left = before
        # Two passes: a node that was connected when the broker reloaded its password file is
        # disconnected then, and its last will ("offline", retained) may land just after the
        # first delete.
        for attempt in range(2):
            if not left:
                break
            if attempt:
                await asyncio.sleep(RETRY_DELAY)
            for node_id in sorted(left):
                for kind in KINDS:
                    await transport.publish(f"{prefix}/nodes/{node_id}/{kind}", b"", qos=1,
                                            retain=True)
            left = {i: k for i, k in (await _collect(transport, prefix, quiet)).items()
                    if i in wanted}
    finally:
        await transport.close()
    report = ClearReport()
    for node_id, kinds in sorted(before.items()):
        gone = sorted(kinds - left.get(node_id, set()))
        if gone:
            report.cleared[node_id] = gone
    report.remaining = sorted(f"{prefix}/nodes/{i}/{k}" for i, kinds in left.items()
                              for k in kinds)
    return report


def find_retained(address: BrokerAddress, prefix: str, *, timeout: float = 5.0,
                  quiet: float = QUIET) -> dict[str, set[str]]:
    """{node id: kinds} of every retained hello/status under `prefix`; TransportError when the
    broker cannot be reached or refuses the account."""
    return asyncio.run(find_retained_async(address, prefix, timeout=timeout, quiet=quiet))


def clear_retained(address: BrokerAddress, prefix: str, node_ids: Collection[str], *,
                   timeout: float = 5.0, quiet: float = QUIET) -> ClearReport:
    """Deletes the retained hello and status of `node_ids` and checks they are gone."""
    return asyncio.run(clear_retained_async(address, prefix, node_ids, timeout=timeout,
                                            quiet=quiet))
