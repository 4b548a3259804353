"""Transports: the ways bytes and messages reach the broker.

* `MqttTransport` (`mqtt`): an asyncio MQTT 3.1.1 client on paho, with credentials and TLS;
* `MemoryTransport` / `MemoryBroker` (`memory`): the same behaviour inside one process, for tests;
* `SerialBridge` (`serial_bridge`): pipes a serial-only board's own MQTT byte stream to a broker
  (used by `tinyfl bridge`); it never parses MQTT, so it works for any node firmware.

What they share lives in `base` (the `Transport` interface, messages, topic rules, backoff),
`address` (broker URLs, credentials, TLS context) and `session` (connect and reconnect).
"""

from tinyfl.transport.address import (
    DEFAULT_MQTT_PORT,
    DEFAULT_MQTTS_PORT,
    PASSWORD_ENV,
    BrokerAddress,
    address_from_options,
    parse_broker_url,
    public_url,
    read_password_file,
)
from tinyfl.transport.base import (
    Backoff,
    Message,
    Transport,
    TransportStats,
    Will,
    mqtt_publish_packet_size,
    topic_matches,
)
from tinyfl.transport.memory import MemoryBroker, MemoryTransport
from tinyfl.transport.mqtt import MqttTransport
from tinyfl.transport.serial_bridge import BridgeConfig, BridgeStats, SerialBridge

__all__ = [
    "DEFAULT_MQTTS_PORT",
    "DEFAULT_MQTT_PORT",
    "PASSWORD_ENV",
    "Backoff",
    "BridgeConfig",
    "BridgeStats",
    "BrokerAddress",
    "MemoryBroker",
    "MemoryTransport",
    "Message",
    "MqttTransport",
    "SerialBridge",
    "Transport",
    "TransportStats",
    "Will",
    "address_from_options",
    "mqtt_publish_packet_size",
    "parse_broker_url",
    "public_url",
    "read_password_file",
    "topic_matches",
]
