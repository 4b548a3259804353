"""The node config record (docs/WIRE.md, "Node config record"): who a QEMU board or a native node
is, its MQTT credentials, its frame and fleet keys and its secure-aggregation seeds (so no
secret appears on a command line)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

from tinyfl.errors import UsageError
from tinyfl.wire.topics import check_node_id

MAGIC = b"TFNC"
VERSION = 4
KEY_LEN = 32
MAX_PREFIX = 96
MAX_CREDENTIAL = 64
MAX_PEERS = 32  # the firmware's TINYFL_MAX_PEERS default


def encode_node_config(node_id: str, topic_prefix: str, keep_alive_s: int = 0,
                       username: str | None = None, password: str | None = None,
                       keys: tuple[bytes, bytes] | None = None,
                       peer_seeds: Mapping[str, bytes] | None = None,
                       max_peers: int = MAX_PEERS) -> bytes:
    """Bytes of a config record; keep_alive_s = 0 lets the firmware choose (30 s). `keys` is
    (the node's frame key, the fleet key) on a provisioned fleet, None for CRC frames;
    `peer_seeds` the secure-aggregation seed shared with each other node (at most `max_peers`,
    the firmware's TINYFL_MAX_PEERS)."""
    check_node_id(node_id)
    prefix = topic_prefix.encode()
    if not 1 <= len(prefix) <= MAX_PREFIX:
        raise UsageError(f"topic prefix must be 1..{MAX_PREFIX} bytes, got {len(prefix)}")
    if not 0 <= keep_alive_s <= 0xFFFF:
        raise UsageError(f"keep-alive must be 0..65535 s, got {keep_alive_s}")
    user, secret = (username or "").encode(), (password or "").encode()
    if len(user) > MAX_CREDENTIAL or len(secret) > MAX_CREDENTIAL:
        raise UsageError(f"MQTT username and password must be at most {MAX_CREDENTIAL} bytes")
    if secret and not user:
        raise UsageError("an MQTT password needs a username")
    if keys is not None and any(len(k) != KEY_LEN for k in keys):
        raise UsageError(f"frame and fleet keys are {KEY_LEN} bytes each")
    peers = dict(peer_seeds or {})
    if len(peers) > max_peers:
        raise UsageError(f"{node_id} has {len(peers)} secure-aggregation peers; the firmware "
                         f"holds {max_peers} (TINYFL_MAX_PEERS)")
    for peer, seed in peers.items():
        check_node_id(peer)
        if peer == node_id or len(seed) != KEY_LEN:
            raise UsageError(f"peer {peer}: not the node itself, and a {KEY_LEN}-byte seed")
    ident = node_id.encode()
    body = (
        MAGIC
        + struct.pack("<B3x", VERSION)
        + struct.pack("<B", len(ident)) + ident
        + struct.pack("<B", len(prefix)) + prefix
        + struct.pack("<HH", keep_alive_s, 0)
        + struct.pack("<B", len(user)) + user
        + struct.pack("<B", len(secret)) + secret
        + (b"\x00" if keys is None else b"\x02" + keys[0] + keys[1])
        + struct.pack("<H", len(peers))
        + b"".join(struct.pack("<B", len(p)) + p.encode() + s for p, s in sorted(peers.items()))
    )
    return body + struct.pack("<I", zlib.crc32(body))
