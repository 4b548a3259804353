"""The secrets of a fleet, generated once by the dealer (docs/SECURITY.md, "Keys").

Every key comes from the OS's CSPRNG (`secrets.token_bytes`). Pairwise seeds are not stored per
pair: they are derived from the dealer secret, `HKDF-Expand(dealer, "tinyfl pair" | a | 0 | b,
32)` with the two node ids in sorted order, so the dealer can hand any node its seeds later
(a node added to the fleet) and nobody else can compute them. The coordinator never gets the
dealer secret or a seed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from tinyfl.crypto import KEY_BYTES, hkdf_expand
from tinyfl.errors import UsageError
from tinyfl.wire import Keyring, check_node_id
from tinyfl.wire.node_config import MAX_PEERS

__all__ = [
    "ADMIN_USER",
    "COORDINATOR_USER",
    "FleetSecrets",
    "NodeSecrets",
    "check_node_ids",
    "new_fleet",
    "new_password",
    "pair_seed",
]

COORDINATOR_USER = "coordinator"
# The operator's account for clearing retained node topics (docs/SECURITY.md, "Revoking a node")
ADMIN_USER = "admin"
PASSWORD_BYTES = 16  # 128-bit MQTT passwords, as URL-safe text


@dataclass(frozen=True, repr=False)
class NodeSecrets:
    """One node's credentials; repr shows no secret (a stray log line must not leak one)."""

    node_id: str
    password: str
    frame_key: bytes

    def __repr__(self) -> str:
        return f"NodeSecrets({self.node_id!r}, <secret>)"


@dataclass(frozen=True, repr=False)
class FleetSecrets:
    fleet: str
    coordinator_password: str
    fleet_key: bytes
    dealer_secret: bytes
    nodes: dict[str, NodeSecrets] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"FleetSecrets({self.fleet!r}, {len(self.nodes)} nodes, <secrets>)"

    def keyring(self) -> Keyring:
        """What the coordinator holds: the fleet key and every node's frame key."""
        return Keyring(self.fleet_key, {i: n.frame_key for i, n in self.nodes.items()})

    def device_seeds_of(self, node_id: str) -> dict[str, bytes] | None:
        """The seeds that go into a device's config record: all of them, or None when the fleet
        has more peers than a node holds (TINYFL_MAX_PEERS): it then serves no masked round."""
        return self.seeds_of(node_id) if len(self.nodes) - 1 <= MAX_PEERS else None

    def seeds_of(self, node_id: str) -> dict[str, bytes]:
        """{peer: pairwise seed} of one node: what its secure-aggregation masks come from."""
        return {peer: pair_seed(self.dealer_secret, node_id, peer)
                for peer in sorted(self.nodes) if peer != node_id}


def pair_seed(dealer_secret: bytes, a: str, b: str) -> bytes:
    """The seed nodes a and b share (the same for (a, b) and (b, a))."""
    if a == b:
        raise ValueError("a node has no pairwise seed with itself")
    first, second = sorted((a, b))
    info = b"tinyfl pair" + first.encode() + b"\0" + second.encode()
    return hkdf_expand(dealer_secret, info, KEY_BYTES)


def check_node_ids(ids: list[str]) -> list[str]:
    """Node ids as the firmware and the broker's ACL take them: unique, 1..32 of [A-Za-z0-9_-]
    (the wire's rule), and not a user name the fleet's broker already has for someone else."""
    for node_id in ids:
        check_node_id(node_id)
    for user, whose in ((COORDINATOR_USER, "the coordinator's"), (ADMIN_USER, "the operator's")):
        if user in ids:
            raise UsageError(f"{user!r} is {whose} user name, not a node id")
    if len(set(ids)) != len(ids):
        raise UsageError("node ids must be unique")
    if not ids:
        raise UsageError("no node ids")
    return ids


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def new_fleet(fleet: str, node_ids: list[str]) -> FleetSecrets:
    """Fresh secrets for a fleet of these nodes."""
    nodes = {i: NodeSecrets(i, new_password(), secrets.token_bytes(KEY_BYTES))
             for i in check_node_ids(node_ids)}
    return FleetSecrets(fleet, new_password(), secrets.token_bytes(KEY_BYTES),
                        secrets.token_bytes(KEY_BYTES), nodes)
