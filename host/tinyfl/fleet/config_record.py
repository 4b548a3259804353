"""The node config record (docs/WIRE.md, "Node config record") that tells a QEMU board who it is."""

from __future__ import annotations

import struct
import zlib

from tinyfl.errors import UsageError
from tinyfl.wire import check_node_id

MAGIC = b"TFNC"
VERSION = 1
MAX_PREFIX = 96


def encode_node_config(node_id: str, topic_prefix: str, keep_alive_s: int = 0) -> bytes:
    """Bytes of a config record; keep_alive_s = 0 lets the firmware choose (30 s)."""
    check_node_id(node_id)
    prefix = topic_prefix.encode()
    if not 1 <= len(prefix) <= MAX_PREFIX:
        raise UsageError(f"topic prefix must be 1..{MAX_PREFIX} bytes, got {len(prefix)}")
    if not 0 <= keep_alive_s <= 0xFFFF:
        raise UsageError(f"keep-alive must be 0..65535 s, got {keep_alive_s}")
    ident = node_id.encode()
    body = (
        MAGIC
        + struct.pack("<B3x", VERSION)
        + struct.pack("<B", len(ident)) + ident
        + struct.pack("<B", len(prefix)) + prefix
        + struct.pack("<HH", keep_alive_s, 0)
    )
    return body + struct.pack("<I", zlib.crc32(body))
