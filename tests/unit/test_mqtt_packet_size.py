"""`mqtt_publish_packet_size` against PUBLISH packets built byte by byte from MQTT 3.1.1
(sections 2.2.3 and 3.3) and against the bytes paho itself would put on the wire."""

from __future__ import annotations

import socket
import struct

import paho.mqtt.client as paho
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from tinyfl.errors import UsageError
from tinyfl.transport.mqtt import mqtt_publish_packet_size, mqtt_remaining_length_size


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(topic: str, payload: bytes, qos: int, packet_id: int = 1) -> bytes:
    """PUBLISH: 0x30 | qos << 1, remaining length, u16 topic length + topic, [u16 id], payload."""
    raw_topic = topic.encode("utf-8")
    body = struct.pack(">H", len(raw_topic)) + raw_topic
    if qos:
        body += struct.pack(">H", packet_id)
    body += payload
    return bytes([0x30 | qos << 1]) + remaining_length(len(body)) + body


def read_packet(buffer: bytes, offset: int) -> bytes | None:
    """The complete packet at `offset` as its own header declares it, or None if incomplete."""
    length, shift, index = 0, 0, offset + 1
    while True:
        if index >= len(buffer):
            return None
        digit = buffer[index]
        length |= (digit & 0x7F) << shift
        shift += 7
        index += 1
        if not digit & 0x80:
            break
    end = index + length
    return buffer[offset:end] if end <= len(buffer) else None


def paho_publish_bytes(topic: str, payload: bytes, qos: int) -> bytes:
    """The PUBLISH packet paho 2.x writes to a real socket: paho connects to a local listener
    that never answers, publishes, and the listener cuts the packet after paho's CONNECT."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="size", protocol=paho.MQTTv311)
        client.connect("127.0.0.1", server.getsockname()[1], keepalive=60)
        conn, _ = server.accept()
        try:
            conn.settimeout(5.0)
            client.publish(topic, payload, qos=qos)
            received = b""
            while True:
                client.loop_write()  # paho has no thread here: push what the socket took
                received += conn.recv(1 << 20)
                connect = read_packet(received, 0)
                assert connect is None or connect[0] == 0x10
                published = read_packet(received, len(connect)) if connect else None
                if published is not None:
                    return published
        finally:
            conn.close()
            client.disconnect()


def test_hand_computed_update_packet() -> None:
    # topic "tinyfl/demo/nodes/n1/update" = 27 bytes; qos 1; payload 100 bytes
    # remaining = 2 (topic length) + 27 + 2 (packet id) + 100 = 131 -> varint 0x83 0x01 (2 bytes)
    # total = 1 + 2 + 131 = 134
    assert mqtt_publish_packet_size("tinyfl/demo/nodes/n1/update", 100, 1) == 134
    assert len(publish_packet("tinyfl/demo/nodes/n1/update", bytes(100), 1)) == 134


def test_qos0_has_no_packet_id() -> None:
    # "a/b": 1 + 1 + (2 + 3 + 5) = 12
    assert mqtt_publish_packet_size("a/b", 5, 0) == 12
    assert mqtt_publish_packet_size("a/b", 5, 1) == 14
    assert mqtt_publish_packet_size("a/b", 5, 2) == 14


def test_topic_counts_utf8_bytes_not_characters() -> None:
    topic = "tinyfl/ü/€"  # 7 + 2 + 1 + 3 = 13 bytes
    assert mqtt_publish_packet_size(topic, 0, 0) == 1 + 1 + 2 + 13
    assert mqtt_publish_packet_size(topic, 0, 0) == len(publish_packet(topic, b"", 0))


@pytest.mark.parametrize(
    ("remaining", "size"),
    [
        (0, 1),
        (127, 1),
        (128, 2),
        (16_383, 2),
        (16_384, 3),
        (2_097_151, 3),
        (2_097_152, 4),
        (268_435_455, 4),
    ],
)
def test_remaining_length_boundaries(remaining: int, size: int) -> None:
    assert mqtt_remaining_length_size(remaining) == size
    assert len(remaining_length(remaining)) == size


@pytest.mark.parametrize("remaining", [127, 128, 16_383, 16_384])
@pytest.mark.parametrize("qos", [0, 1])
def test_sizes_across_varint_boundaries(remaining: int, qos: int) -> None:
    topic = "t/x"
    payload_len = remaining - 2 - len(topic) - (2 if qos else 0)
    expected = len(publish_packet(topic, bytes(payload_len), qos))
    assert mqtt_publish_packet_size(topic, payload_len, qos) == expected


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("payload_len", [0, 1, 120, 125, 126, 400, 16_380, 70_000])
def test_matches_paho_wire_bytes(qos: int, payload_len: int) -> None:
    topic = "tinyfl/fleet/nodes/node-07/update"
    wire = paho_publish_bytes(topic, bytes(payload_len), qos)
    assert wire == publish_packet(topic, bytes(payload_len), qos, packet_id=1)
    assert mqtt_publish_packet_size(topic, payload_len, qos) == len(wire)


topics = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="+#\0"),
    min_size=1,
    max_size=80,
)


@settings(max_examples=80, deadline=None)
@given(topic=topics, payload_len=st.integers(0, 300_000), qos=st.sampled_from([0, 1, 2]))
def test_property_equals_built_packet(topic: str, payload_len: int, qos: int) -> None:
    assert mqtt_publish_packet_size(topic, payload_len, qos) == len(
        publish_packet(topic, bytes(payload_len), qos)
    )


@pytest.mark.parametrize(
    ("topic", "payload_len", "qos"),
    [
        ("a", 0, 3),
        ("a", 0, -1),
        ("a", -1, 0),
        ("a" * 65_536, 0, 0),
        ("a", 268_435_455, 0),  # remaining length would exceed 268,435,455
    ],
)
def test_impossible_packets_are_usage_errors(topic: str, payload_len: int, qos: int) -> None:
    with pytest.raises(UsageError):
        mqtt_publish_packet_size(topic, payload_len, qos)


def test_largest_possible_packet() -> None:
    # topic "a", qos 0: remaining = 3 + payload; the maximum remaining length is 268,435,455
    assert mqtt_publish_packet_size("a", 268_435_452, 0) == 1 + 4 + 268_435_455
