"""The operator's label schedules (docs/WIRE.md, "LABEL"; tinyfl.coordinator.labels): what the
codec refuses, what the tag binds, how `tinyfl label` turns its options into intervals and
sequence numbers. The golden LABEL vectors are checked with every other frame in test_wire.py;
the node's side in firmware/test/test_label and tests/integration/test_label_topic.py.
"""

from __future__ import annotations

import zlib

import pytest

from tinyfl.coordinator.labels import LabelSequence, parse_schedule, single_interval
from tinyfl.errors import UsageError, WireError
from tinyfl.wire import (
    MAX_INTERVALS,
    NO_LABEL,
    Label,
    LabelInterval,
    Topics,
    decode,
    encode,
    open_frame,
)

KEY = bytes(range(32))
TOPICS = Topics("tinyfl/lab")
TOPIC = TOPICS.label("node-01")


def schedule(*intervals: tuple[int, int, int], seq: int = 1733140000000) -> Label:
    return Label(1733139000, seq, tuple(LabelInterval(*iv) for iv in intervals))


def test_label_topic_is_the_nodes_own() -> None:
    assert TOPIC == "tinyfl/lab/nodes/node-01/label"
    assert TOPICS.parse(TOPIC) is None  # not a topic the coordinator listens to
    with pytest.raises(UsageError):
        TOPICS.label("node/01")


def test_signed_label_round_trips_and_binds_topic_key_and_bytes() -> None:
    msg = schedule((0, 5000, 2), (5000, 1000, NO_LABEL))
    frame = encode(msg, key=KEY, topic=TOPIC)
    assert open_frame(frame, TOPIC, KEY) == msg
    for topic in (TOPICS.label("node-02"), TOPICS.update("node-01")):  # another node, another kind
        with pytest.raises(WireError, match="bad_tag"):
            open_frame(frame, topic, KEY)
    with pytest.raises(WireError, match="bad_tag"):
        open_frame(frame, TOPIC, bytes(32))
    for i in range(6, len(frame)):  # the body and the tag: any change fails the tag
        tampered = bytearray(frame)
        tampered[i] ^= 0x01
        with pytest.raises(WireError, match="bad_tag"):
            open_frame(bytes(tampered), TOPIC, KEY)
    with pytest.raises(WireError, match="unauthenticated"):  # a CRC frame on a keyed fleet
        open_frame(encode(msg), TOPIC, KEY)


@pytest.mark.parametrize(("msg", "why"), [
    (schedule(*[(i * 10, 10, 1) for i in range(MAX_INTERVALS + 1)]), "at most 8"),
    (schedule(seq=0), "seq"),
    (schedule((0, 0, 1)), "duration"),
    (schedule((0xFFFFFFFF, 1, 1)), "duration"),
    (schedule((0, 100, 1), (99, 10, 2)), "before the previous"),
    (schedule((0, 100, -2)), "label -2"),
    (schedule((0, 100, 40000)), "label 40000"),
])
def test_encoder_refuses_what_no_node_would_take(msg: Label, why: str) -> None:
    with pytest.raises(WireError, match=why) as err:
        encode(msg, key=KEY, topic=TOPIC)
    assert err.value.reason == "bad_value"


def test_a_label_frame_cannot_be_masked() -> None:
    frame = bytearray(encode(schedule((0, 10, 1))))
    frame[4] = 0x01  # MASKED: the CRC no longer matches, so rebuild it
    body = bytes(frame[:-4])
    with pytest.raises(WireError, match="MASKED"):
        decode(body + zlib.crc32(body).to_bytes(4, "little"))


def test_sequence_numbers_strictly_increase_even_when_the_clock_does_not() -> None:
    clock = iter([1000, 1000, 999, 5000, 5000])
    seq = LabelSequence(lambda: next(clock))
    got = [seq.next() for _ in range(5)]
    assert got == [1000, 1001, 1002, 5000, 5001]  # a node refuses a seq not above its last
    assert LabelSequence().next() > 1_700_000_000_000  # Unix milliseconds by default


def test_schedule_text_becomes_intervals_in_milliseconds() -> None:
    assert parse_schedule("2@0+30, none@30+2.5,0@40+60") == (
        LabelInterval(0, 30000, 2), LabelInterval(30000, 2500, NO_LABEL),
        LabelInterval(40000, 60000, 0))
    assert parse_schedule("") == ()  # --clear: no label from now on
    assert single_interval("3", 10.0, 1.5) == (LabelInterval(1500, 10000, 3),)
    assert single_interval("none", 1.0, 0.0) == (LabelInterval(0, 1000, NO_LABEL),)


@pytest.mark.parametrize(("text", "why"), [
    ("2@0", "LABEL@START\\+DURATION"),
    ("x@0+1", "LABEL@START\\+DURATION"),
    ("2@0+1,3@0.5+1", "starts before"),
    ("2@0+0", "at least 1 ms"),
    ("-2@0+1", "label '-2'"),
    ("32768@0+1", "label '32768'"),
    ("2@5000000+1", "0..4294967 s"),
    (",".join(f"1@{i}+1" for i in range(9)), "at most 8"),
])
def test_bad_schedules_are_usage_errors(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        parse_schedule(text)


def test_single_interval_checks_its_options() -> None:
    with pytest.raises(UsageError, match="--for"):
        single_interval("1", 0.0, 0.0)
    with pytest.raises(UsageError, match="--start-in"):
        single_interval("1", 1.0, -1.0)
    with pytest.raises(UsageError, match="label 'seven'"):
        single_interval("seven", 1.0, 0.0)
