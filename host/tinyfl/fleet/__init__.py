"""Emulated node pool: native node processes and QEMU Cortex-M4 boards wired to a broker."""

from tinyfl.fleet.config_record import encode_node_config
from tinyfl.fleet.nodes import Emulator, NodeProcess, NodeSpec, build_firmware, firmware_image

__all__ = [
    "Emulator",
    "NodeProcess",
    "NodeSpec",
    "build_firmware",
    "encode_node_config",
    "firmware_image",
]
