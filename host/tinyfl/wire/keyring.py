"""The keys a coordinator holds (docs/SECURITY.md, "Keys"): the fleet key it signs every GLOBAL
with, and each provisioned node's frame key its HELLOs and UPDATEs must verify under. A fleet
without keys has no Keyring (None): frames carry a CRC and anyone may speak."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tinyfl.wire.topics import check_node_id

__all__ = ["KEY_LEN", "Keyring"]

KEY_LEN = 32


@dataclass(frozen=True, repr=False)
class Keyring:
    """Immutable; repr and str show no key (a stray log line must not leak one)."""

    fleet_key: bytes
    node_keys: Mapping[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.fleet_key) != KEY_LEN:
            raise ValueError(f"the fleet key is {KEY_LEN} bytes, got {len(self.fleet_key)}")
        for node_id, key in self.node_keys.items():
            check_node_id(node_id)
            if len(key) != KEY_LEN:
                raise ValueError(f"the frame key of {node_id} is {KEY_LEN} bytes, got {len(key)}")
        object.__setattr__(self, "node_keys", MappingProxyType(dict(self.node_keys)))

    def key_of(self, node_id: str) -> bytes | None:
        """The node's frame key, or None for an id that was never provisioned (or revoked)."""
        return self.node_keys.get(node_id)

    def __repr__(self) -> str:
        return f"Keyring({len(self.node_keys)} nodes, <keys>)"

    __str__ = __repr__
