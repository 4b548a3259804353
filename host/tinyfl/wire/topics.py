"""MQTT topics of a fleet (docs/WIRE.md, "Topics").

    <prefix>/nodes/<id>/hello    node -> coordinator, retained HELLO frame
    <prefix>/nodes/<id>/status   node (and broker, as last will), retained "online" / "offline"
    <prefix>/global              coordinator -> nodes, retained GLOBAL frame
    <prefix>/nodes/<id>/update   node -> coordinator, UPDATE frame
    <prefix>/nodes/<id>/label    operator -> node, LABEL frame (not retained)

The prefix defaults to `tinyfl/<fleet>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tinyfl.errors import UsageError
from tinyfl.wire.frames import is_valid_node_id

__all__ = ["NodeTopic", "Topics", "check_node_id", "default_prefix"]

MAX_PREFIX = 96  # bytes; the node's config record holds at most this much
STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"

NodeTopic = Literal["hello", "status", "update"]
_NODE_TOPICS: tuple[NodeTopic, ...] = ("hello", "status", "update")


def check_node_id(node_id: str) -> str:
    """Returns `node_id` if it is 1..32 of [A-Za-z0-9_-]; raises UsageError otherwise."""
    if not is_valid_node_id(node_id):
        raise UsageError(f"node id {node_id!r} must be 1..32 characters of [A-Za-z0-9_-]")
    return node_id


def check_prefix(prefix: str) -> str:
    """Returns `prefix` if it can start a fleet's topics: 1..96 bytes of levels separated by '/',
    none empty, without MQTT wildcards ('+', '#') or NUL. Raises UsageError otherwise."""
    raw = prefix.encode("utf-8")
    if not 1 <= len(raw) <= MAX_PREFIX:
        raise UsageError(f"topic prefix {prefix!r} must be 1..{MAX_PREFIX} bytes")
    if any(c in prefix for c in "+#\0") or any(level == "" for level in prefix.split("/")):
        raise UsageError(
            f"topic prefix {prefix!r}: no wildcards, no NUL, no empty level (leading, trailing or double '/')"
        )
    return prefix


def default_prefix(fleet: str) -> str:
    """`tinyfl/<fleet>`; a fleet name is 1..32 characters of [A-Za-z0-9_-]."""
    if not is_valid_node_id(fleet):
        raise UsageError(f"fleet name {fleet!r} must be 1..32 characters of [A-Za-z0-9_-]")
    return f"tinyfl/{fleet}"


@dataclass(frozen=True)
class Topics:
    """The topics under one prefix: `Topics("tinyfl/demo").update("node-01")`."""

    prefix: str

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    @classmethod
    def for_fleet(cls, fleet: str) -> Topics:
        return cls(default_prefix(fleet))

    @property
    def global_(self) -> str:
        return f"{self.prefix}/global"

    def hello(self, node_id: str) -> str:
        return f"{self.prefix}/nodes/{check_node_id(node_id)}/hello"

    def status(self, node_id: str) -> str:
        return f"{self.prefix}/nodes/{check_node_id(node_id)}/status"

    def update(self, node_id: str) -> str:
        return f"{self.prefix}/nodes/{check_node_id(node_id)}/update"

    def label(self, node_id: str) -> str:
        """The node's label topic: an operator's LABEL frames (docs/WIRE.md, "LABEL"). Not a
        NodeTopic: nodes never publish there, and the coordinator does not listen."""
        return f"{self.prefix}/nodes/{check_node_id(node_id)}/label"

    def all_nodes(self, kind: NodeTopic) -> str:
        """Subscription filter for one kind of node topic of every node, e.g. `.../nodes/+/update`."""
        if kind not in _NODE_TOPICS:
            raise UsageError(f"unknown node topic {kind!r}")
        return f"{self.prefix}/nodes/+/{kind}"

    def parse(self, topic: str) -> tuple[NodeTopic, str] | None:
        """(kind, node_id) for a node topic under this prefix with a valid id, else None."""
        head = f"{self.prefix}/nodes/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) != 2 or not is_valid_node_id(parts[0]):
            return None
        for kind in _NODE_TOPICS:
            if parts[1] == kind:
                return kind, parts[0]
        return None
