"""Transports: the ways bytes and messages reach the broker.

`serial_bridge` pipes a serial-only board's own MQTT byte stream to a broker's TCP port (used by
`tinyfl bridge`); it never parses MQTT, so it works for any node firmware.
"""

from tinyfl.transport.serial_bridge import (
    BridgeConfig,
    BridgeStats,
    BrokerAddress,
    SerialBridge,
    parse_broker_url,
)

__all__ = ["BridgeConfig", "BridgeStats", "BrokerAddress", "SerialBridge", "parse_broker_url"]
