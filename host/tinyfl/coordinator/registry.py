"""Who is in the fleet, from what the nodes themselves retain on the broker.

A node publishes a retained HELLO (capabilities) and a retained `online` status, and the broker
publishes its last will `offline` when the node vanishes (docs/WIRE.md, "Topics"). Because both
are retained, a coordinator that starts (or restarts) later learns the whole fleet from its
subscriptions alone: the registry is state rebuilt from the broker, never stored in checkpoints.

A node is *eligible* for the run when it is online and its HELLO matches the run: same model
hash (a node with another model would train something else), same head shape, at least one
sample, the requested uplink width, and room for the GLOBAL frame in its receive buffer. Nodes
that are not eligible are kept with the reason, which the coordinator logs once per change.

On a provisioned fleet (a Keyring) only a HELLO that verifies under the node's frame key counts,
and only provisioned ids get a record at all: retained HELLOs and statuses of ids nobody
provisioned (fakes, or revoked nodes) are counted in `refused` and never become eligible, and
memory stays bounded by the fleet however many a stranger publishes.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from tinyfl.errors import WireError
from tinyfl.wire import (
    UPLINK_2BIT,
    UPLINK_4BIT,
    UPLINK_8BIT,
    UPLINK_FLOAT32,
    Hello,
    Keyring,
    Topics,
    open_frame,
)

__all__ = ["NodeInfo", "Registry", "uplink_flag"]

log = logging.getLogger(__name__)

_UPLINK_FLAGS = {8: UPLINK_8BIT, 4: UPLINK_4BIT, 2: UPLINK_2BIT, 32: UPLINK_FLOAT32}


def uplink_flag(bits: int) -> int:
    """HELLO's uplink capability bit for an uplink of `bits` bits."""
    return _UPLINK_FLAGS[bits]


@dataclass
class NodeInfo:
    """What the coordinator knows of one node. `hello` is None until its HELLO arrived;
    `online` is None until a status arrived (a HELLO alone does not prove the node is up: it is
    retained from whenever the node last connected)."""

    node_id: str
    hello: Hello | None = None
    online: bool | None = None

    @property
    def n_samples(self) -> int:
        return self.hello.n_samples if self.hello else 0


class Registry:
    """Node table for one run: feed it hello/status messages, ask it who can be selected.

    `global_payload` is the size of the round's GLOBAL frame without selected ids; a node whose
    `max_payload` is smaller could never receive it.
    """

    def __init__(
        self,
        *,
        model_hash: bytes,
        embed_dim: int,
        n_classes: int,
        uplink_bits: int,
        global_payload: int,
        topics: Topics | None = None,
        keys: Keyring | None = None,
    ) -> None:
        self.model_hash = model_hash
        self.embed_dim = embed_dim
        self.n_classes = n_classes
        self.uplink_bits = uplink_bits
        self.global_payload = global_payload
        if keys is not None and topics is None:
            raise ValueError("a registry with keys needs the topics frames are signed for")
        self.topics = topics
        self.keys = keys
        self.refused: Counter[str] = Counter()  # HELLOs and statuses ignored, by reason
        self._nodes: dict[str, NodeInfo] = {}
        self._logged: dict[str, str] = {}  # node -> last reason logged, to log changes only

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, node_id: str) -> NodeInfo | None:
        return self._nodes.get(node_id)

    @property
    def nodes(self) -> list[NodeInfo]:
        return [self._nodes[k] for k in sorted(self._nodes)]

    # -- feeding -------------------------------------------------------------------------------

    def _refuse(self, node_id: str, reason: str, detail: str = "") -> bool:
        """Counts an ignored message; the first of each reason is a warning, the rest debug
        (a flood of fakes must not flood the log)."""
        self.refused[reason] += 1
        level = logging.WARNING if self.refused[reason] == 1 else logging.DEBUG
        log.log(level, "ignored a message for node %s: %s%s", node_id, reason,
                f" ({detail})" if detail else "")
        return False

    def _provisioned(self, node_id: str) -> bool:
        return self.keys is None or self.keys.key_of(node_id) is not None

    def on_hello(self, node_id: str, payload: bytes) -> bool:
        """A (retained) HELLO. An empty payload clears it (the retained message was deleted).
        Returns True when the node's record changed. Invalid frames are logged and ignored."""
        if not self._provisioned(node_id):
            return self._refuse(node_id, "unprovisioned") if payload else False
        if not payload:
            info = self._nodes.get(node_id)
            if info is None or info.hello is None:
                return False
            info.hello = None
            self._note(info)
            return True
        key = None if self.keys is None else self.keys.key_of(node_id)
        topic = self.topics.hello(node_id) if self.topics is not None else ""
        try:
            msg = open_frame(payload, topic, key)
        except WireError as exc:
            return self._refuse(node_id, f"hello_{exc.reason}", str(exc))
        if not isinstance(msg, Hello):
            return self._refuse(node_id, "hello_not_a_hello")
        if msg.node_id != node_id:
            return self._refuse(node_id, "hello_id_mismatch", f"says {msg.node_id!r}")
        info = self._nodes.setdefault(node_id, NodeInfo(node_id))
        info.hello = msg
        self._note(info)
        return True

    def on_status(self, node_id: str, payload: bytes) -> bool:
        """`online` / `offline` (the last will). Returns True when the online state changed."""
        if not self._provisioned(node_id):
            return self._refuse(node_id, "unprovisioned") if payload else False
        if payload not in (b"online", b"offline", b""):
            return self._refuse(node_id, "bad_status", repr(payload[:32]))
        info = self._nodes.setdefault(node_id, NodeInfo(node_id))
        online = payload == b"online" if payload else None
        if info.online == online:
            return False
        info.online = online
        if online is False:
            log.info("node %s went offline", node_id)
        self._note(info)
        return True

    # -- asking --------------------------------------------------------------------------------

    def ineligible_reason(self, info: NodeInfo) -> str | None:
        """Why `info` cannot be selected now, or None if it can."""
        hello = info.hello
        if hello is None:
            return "no_hello"
        if hello.model_hash != self.model_hash:
            return "wrong_model"
        if (hello.embed_dim, hello.n_classes) != (self.embed_dim, self.n_classes):
            return "wrong_shape"
        if hello.n_samples == 0:
            return "no_samples"
        if not hello.uplink_bits & uplink_flag(self.uplink_bits):
            return "uplink_unsupported"
        if hello.max_payload < self.global_payload:
            return "payload_too_small"
        if info.online is not True:
            return "offline"
        return None

    def eligible(self) -> list[str]:
        """Ids of the nodes that can be selected right now, sorted."""
        return [n.node_id for n in self.nodes if self.ineligible_reason(n) is None]

    def online(self) -> list[str]:
        """Ids of the nodes whose last status is `online`, sorted (eligible or not)."""
        return [n.node_id for n in self.nodes if n.online]

    def report(self, prefix: str, examples: int = 3) -> str:
        """The known nodes by state, with a few ids each, for error messages: `sim-0 wrong_model`
        for small fleets, `980 offline (sim-0020, sim-0021, sim-0022, ...)` for large ones."""
        if not self._nodes:
            return f"no node has announced itself under {prefix}/nodes/"
        groups: dict[str, list[str]] = {}
        for info in self.nodes:
            groups.setdefault(self.ineligible_reason(info) or "eligible", []).append(info.node_id)
        parts = []
        for reason, ids in sorted(groups.items(), key=lambda item: -len(item[1])):
            if len(ids) == 1:
                parts.append(f"{ids[0]} {reason}")
                continue
            shown = ", ".join(ids[:examples]) + (", ..." if len(ids) > examples else "")
            parts.append(f"{len(ids)} {reason} ({shown})")
        return "; ".join(parts)

    def is_online(self, node_id: str) -> bool:
        info = self._nodes.get(node_id)
        return info is not None and info.online is True

    def max_payload(self, node_id: str) -> int:
        info = self._nodes.get(node_id)
        return info.hello.max_payload if info is not None and info.hello is not None else 0

    def _note(self, info: NodeInfo) -> None:
        """Logs a node that cannot take part, once per reason, naming what is wrong."""
        reason = self.ineligible_reason(info)
        if reason in (None, "offline", "no_hello"):
            self._logged.pop(info.node_id, None)
            return
        if self._logged.get(info.node_id) == reason:
            return
        self._logged[info.node_id] = reason
        hello = info.hello
        assert hello is not None
        detail = {
            "wrong_model": f"model hash {hello.model_hash.hex()}, this run trains "
            f"{self.model_hash.hex()}",
            "wrong_shape": f"head d={hello.embed_dim} k={hello.n_classes}, this run trains "
            f"d={self.embed_dim} k={self.n_classes}",
            "no_samples": "no samples",
            "uplink_unsupported": f"cannot send a {self.uplink_bits}-bit uplink "
            f"(capabilities 0x{hello.uplink_bits:02x})",
            "payload_too_small": f"takes payloads of {hello.max_payload} bytes, the GLOBAL "
            f"frame is {self.global_payload}",
        }[reason]
        log.warning("node %s will not be selected: %s", info.node_id, detail)
