"""Emulated node pool: native node processes and QEMU Cortex-M4 boards wired to a broker."""

from tinyfl.fleet.nodes import Emulator, NodeProcess, NodeSpec, build_firmware, firmware_image
from tinyfl.wire.node_config import encode_node_config

__all__ = [
    "Emulator",
    "NodeProcess",
    "NodeSpec",
    "build_firmware",
    "encode_node_config",
    "firmware_image",
]
