"""The operator's side of a node's label topic (docs/WIRE.md, "LABEL"): build a schedule of label
intervals, look at what the broker holds about the node, sign and publish one LABEL frame.

    schedule = parse_schedule("2@0+30,none@30+10")     # or single_interval(2, 30.0, 0.0)
    sent = asyncio.run(send_labels(address, topics, "node-03", schedule, keyring))

What the broker holds decides what is sent, before anything is published:
- the node's retained status must be `online`: a LABEL is not retained and a node connects with
  a clean session, so a schedule sent while it is away is lost, not queued (LabelError);
- its retained HELLO names its class count (a label outside it is refused here, as the node
  would) and whether it signs its frames (then the fleet's keys are needed: a CRC frame would be
  refused as `unauthenticated`);
- the retained GLOBAL's round id (verified under the fleet key when there is one) is the frame's
  round_id, so the node refuses a replay once a newer round has started.

`seq` is the sender's clock in Unix milliseconds, kept strictly increasing within a process
(LabelSequence): no state file, and two schedules sent in one millisecond still order.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from tinyfl.errors import TinyFLError, UsageError, WireError
from tinyfl.transport.address import BrokerAddress
from tinyfl.transport.mqtt import MqttTransport
from tinyfl.wire import (
    AUTH_TAG,
    MAX_INTERVALS,
    NO_LABEL,
    Global,
    Hello,
    Keyring,
    Label,
    LabelInterval,
    Topics,
    encode,
    open_frame,
)
from tinyfl.wire.topics import STATUS_ONLINE

__all__ = ["LabelError", "LabelSequence", "SentLabels", "parse_schedule", "send_labels",
           "single_interval"]

MAX_MS = 0xFFFFFFFF
RETAINED_WAIT = 2.0  # seconds at most for the broker's retained messages after subscribing
RETAINED_QUIET = 0.3  # ... and seconds of silence after which none is left to come
_ITEM = re.compile(r"^(none|-?\d+)@(\d+(?:\.\d+)?)\+(\d+(?:\.\d+)?)$")


class LabelError(TinyFLError):
    """The node cannot take this schedule now (offline, unknown, no key for it)."""

    exit_code = 2


def _ms(seconds: float, what: str) -> int:
    ms = round(seconds * 1000)
    if not 0 <= ms <= MAX_MS:
        raise UsageError(f"{what} must be 0..{MAX_MS / 1000:.0f} s, got {seconds}")
    return ms


def _label(text: str) -> int:
    value = NO_LABEL if text == "none" else int(text) if re.fullmatch(r"-?\d+", text) else None
    if value is None or not NO_LABEL <= value <= 0x7FFF:
        raise UsageError(f"label {text!r}: a class 0..32767, or 'none'")
    return value


def single_interval(label: str, duration_s: float, start_in_s: float) -> tuple[LabelInterval, ...]:
    """One interval: `label` (a class, or "none") from start_in_s for duration_s seconds."""
    duration = _ms(duration_s, "--for")
    if duration < 1:
        raise UsageError("--for must be at least 1 ms")
    return _checked((LabelInterval(_ms(start_in_s, "--start-in"), duration, _label(label)),))


def parse_schedule(text: str) -> tuple[LabelInterval, ...]:
    """`LABEL@START+DURATION,...` in seconds after receipt, e.g. "2@0+30,none@30+10"; empty text
    is the empty schedule (no label from now on)."""
    if not text.strip():
        return ()
    intervals = []
    for item in text.split(","):
        m = _ITEM.match(item.strip())
        if m is None:
            raise UsageError(f"schedule item {item!r}: write LABEL@START+DURATION (seconds), "
                             "LABEL a class or 'none'")
        start, duration = _ms(float(m[2]), "a start"), _ms(float(m[3]), "a duration")
        intervals.append(LabelInterval(start, duration, _label(m[1])))
    return _checked(tuple(intervals))


def _checked(intervals: tuple[LabelInterval, ...]) -> tuple[LabelInterval, ...]:
    """The wire's rules (docs/WIRE.md, "LABEL"), as a usage error before anything is sent."""
    if len(intervals) > MAX_INTERVALS:
        raise UsageError(f"{len(intervals)} intervals, a LABEL holds at most {MAX_INTERVALS}")
    end = 0
    for i, iv in enumerate(intervals):
        if iv.duration_ms < 1 or iv.end_ms > MAX_MS:
            raise UsageError(f"interval {i + 1}: at least 1 ms long, ending by {MAX_MS} ms")
        if iv.start_ms < end:
            raise UsageError(f"interval {i + 1} starts before the previous one ends")
        end = iv.end_ms
    return intervals


class LabelSequence:
    """Sequence numbers for LABEL frames: the clock's Unix milliseconds, strictly increasing."""

    def __init__(self, clock_ms: Callable[[], int] | None = None) -> None:
        self._clock = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._last = 0

    def next(self) -> int:
        self._last = max(self._clock(), self._last + 1)
        return self._last


_SEQUENCE = LabelSequence()


@dataclass(frozen=True)
class SentLabels:
    """What was published: to which topic, under which round id and seq, signed or not."""

    topic: str
    label: Label
    signed: bool
    frame_bytes: int


@dataclass
class _Retained:
    status: bytes | None = None
    hello: bytes | None = None
    global_: bytes | None = None


async def _retained(transport: MqttTransport, topics: Topics, node_id: str) -> _Retained:
    """The node's retained status and HELLO and the fleet's retained GLOBAL, whichever exist."""
    wanted = {topics.status(node_id): "status", topics.hello(node_id): "hello",
              topics.global_: "global_"}
    for topic in wanted:
        await transport.subscribe(topic, qos=1)
    found = _Retained()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RETAINED_WAIT
    while (left := deadline - loop.time()) > 0 and None in (found.status, found.hello,
                                                             found.global_):
        try:
            message = await transport.receive(timeout=min(left, RETAINED_QUIET))
        except (asyncio.TimeoutError, TimeoutError):
            break
        if message.retain and message.topic in wanted and message.payload:
            setattr(found, wanted[message.topic], message.payload)
    return found


def _node_hello(found: _Retained, topics: Topics, node_id: str, key: bytes | None) -> Hello:
    if found.hello is None or found.status is None:
        raise LabelError(f"unknown node {node_id}: no retained hello/status under "
                         f"{topics.prefix}/nodes/{node_id}/")
    if found.status != STATUS_ONLINE:
        raise LabelError(f"node {node_id} is {found.status.decode(errors='replace')}: a LABEL is "
                         "not retained, so a schedule sent now would be lost; send it once the "
                         "node is online")
    if key is None and len(found.hello) > 5 and found.hello[5] == AUTH_TAG:
        raise LabelError(f"node {node_id} signs its frames: give the fleet's keys (--keys "
                         "coordinator.json), else it refuses the LABEL as unauthenticated")
    try:
        hello = open_frame(found.hello, topics.hello(node_id), key)
    except WireError as exc:
        raise LabelError(f"node {node_id}'s retained hello does not verify ({exc.reason}): "
                         "not sending labels on the word of a frame that may be forged") from None
    if not isinstance(hello, Hello) or hello.node_id != node_id:
        raise LabelError(f"node {node_id}'s retained hello is not its HELLO")
    return hello


def _round_id(found: _Retained, topics: Topics, keys: Keyring | None) -> int:
    """The retained GLOBAL's round id, 0 without one (or with one that does not verify)."""
    if found.global_ is None:
        return 0
    try:
        msg = open_frame(found.global_, topics.global_, keys.fleet_key if keys else None)
    except WireError:
        return 0  # not the coordinator's: a forged round id must not shape what is sent
    return msg.round_id if isinstance(msg, Global) else 0


async def send_labels(address: BrokerAddress, topics: Topics, node_id: str,
                      intervals: tuple[LabelInterval, ...], keys: Keyring | None, *,
                      timeout: float = 10.0, sequence: LabelSequence = _SEQUENCE) -> SentLabels:
    """Checks the node (module docstring), then publishes one LABEL (QoS 1, not retained)
    signed with its frame key. LabelError or UsageError before anything is published."""
    key = None
    if keys is not None:
        key = keys.key_of(node_id)
        if key is None:
            raise LabelError(f"unknown node {node_id}: it has no frame key in the keyring "
                             "(never provisioned, or revoked)")
    transport = MqttTransport(connect_timeout=timeout, attempt_timeout=min(timeout, 5.0),
                              publish_timeout=timeout)
    await transport.connect(address, client_id=f"tinyfl-label-{secrets.token_hex(4)}")
    try:
        found = await _retained(transport, topics, node_id)
        hello = _node_hello(found, topics, node_id, key)
        for iv in intervals:
            if iv.label >= hello.n_classes:
                raise UsageError(f"label {iv.label}: node {node_id} has {hello.n_classes} "
                                 f"classes (0..{hello.n_classes - 1}, or 'none')")
        label = Label(_round_id(found, topics, keys), sequence.next(), intervals)
        topic = topics.label(node_id)
        frame = encode(label, key=key, topic=topic)
        await transport.publish(topic, frame, qos=1, retain=False)
        return SentLabels(topic, label, key is not None, len(frame))
    finally:
        await transport.close()
