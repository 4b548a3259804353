"""Every UPDATE that reaches the coordinator, sorted into accepted, late, dropped or rejected.

Kept apart from the round loop because it is the one place where bytes from outside meet the
aggregation: an update is averaged in only if it decodes, names the node that published it,
answers the open round, comes from a selected node for the first time, carries this run's
model hash and head shape, reports samples, and dequantizes to finite values. Everything else
is counted by reason (for metrics.jsonl) and never touches the head.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tinyfl.errors import WireError
from tinyfl.wire import Update, decode

__all__ = ["Counters", "Intake", "OpenRound"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


@dataclass
class OpenRound:
    """The round being collected: its number, its id on the wire, who was selected, and what
    came back. `rejected` holds selected nodes whose (only) answer was invalid."""

    number: int
    wire: int
    selected: frozenset[str]
    answers: dict[str, Update] = field(default_factory=dict)
    deltas: dict[str, F32] = field(default_factory=dict)
    rejected: set[str] = field(default_factory=set)
    pending: set[str] = field(init=False)  # selected nodes that have not answered at all

    def __post_init__(self) -> None:
        self.pending = set(self.selected)

    def responded(self, node_id: str) -> bool:
        return node_id in self.answers or node_id in self.rejected


@dataclass
class Counters:
    """What did not count, by kind and reason, plus the uplink bytes, since the last report."""

    late: int = 0
    dropped: int = 0
    rejected: int = 0
    bytes_up: int = 0
    dropped_reasons: Counter[str] = field(default_factory=Counter)
    rejected_reasons: Counter[str] = field(default_factory=Counter)


class Intake:
    """Classifies updates for one run (model hash and head shape fixed)."""

    def __init__(self, model_hash: bytes, head_shape: tuple[int, int]) -> None:
        self.model_hash = model_hash
        self.head_shape = head_shape
        self.open: OpenRound | None = None
        self.counters = Counters()

    def take_counters(self) -> Counters:
        """The counts since the previous call, and a fresh start."""
        counters, self.counters = self.counters, Counters()
        return counters

    def on_update(self, node_id: str, payload: bytes, packet_bytes: int, latest_wire: int) -> bool:
        """One message from `<prefix>/nodes/<node_id>/update`. `latest_wire` is the newest round
        id published; anything older (or the closed round's) is late. Returns True when the
        open round changed (an answer, valid or not, from a selected node)."""
        counters = self.counters
        counters.bytes_up += packet_bytes
        try:
            msg = decode(payload)
        except WireError as exc:
            self._reject(node_id, f"bad_frame_{exc.reason}")
            return False
        if not isinstance(msg, Update):
            self._reject(node_id, "not_an_update")
            return False
        if msg.node_id != node_id:
            self._reject(node_id, "id_mismatch")
            return False
        rnd = self.open
        if rnd is None or msg.round_id != rnd.wire:
            if msg.round_id <= latest_wire:
                counters.late += 1
                log.debug("late update of %s for round id %d", node_id, msg.round_id)
            else:
                self._drop("future_round")
            return False
        if node_id not in rnd.selected:
            self._drop("unselected")
            return False
        if rnd.responded(node_id):
            self._drop("duplicate")
            return False
        delta, reason = self.check(msg)
        if delta is None:
            rnd.rejected.add(node_id)
            self._reject(node_id, reason)
        else:
            rnd.answers[node_id] = msg
            rnd.deltas[node_id] = delta
        rnd.pending.discard(node_id)
        return True

    def check(self, msg: Update) -> tuple[F32 | None, str]:
        """The update's dequantized delta, or None and why it cannot be averaged in. Codes
        times a huge (finite) scale can overflow to Inf, hence the check after dequantizing."""
        if msg.model_hash != self.model_hash:
            return None, "wrong_model"
        if msg.delta.shape != self.head_shape:
            return None, "wrong_shape"
        if msg.n_samples == 0:
            return None, "no_samples"
        with np.errstate(over="ignore", invalid="ignore"):
            delta = msg.delta.dequantized()
        if not np.isfinite(delta).all():
            return None, "non_finite"
        return delta, ""

    def _drop(self, reason: str) -> None:
        self.counters.dropped += 1
        self.counters.dropped_reasons[reason] += 1

    def _reject(self, node_id: str, reason: str) -> None:
        self.counters.rejected += 1
        self.counters.rejected_reasons[reason] += 1
        log.warning("rejected an update of %s: %s", node_id, reason)
