"""Every UPDATE that reaches the coordinator, sorted into accepted, late, dropped or rejected.

Kept apart from the round loop because it is the one place where bytes from outside meet the
aggregation: an update is averaged in only if it comes from its node (on a provisioned fleet:
a provisioned id and a tag that verifies under that node's key, checked before anything else),
decodes, answers the open round, comes from a selected node for the first time, has this run's
head shape, reports samples, and dequantizes to finite values. Everything else is counted by
reason (for metrics.jsonl) and never touches the head.

Two kinds of refusal: *dropped* says nothing about the node (a frame anyone could have sent:
unprovisioned id, bad tag, missing tag, a malformed frame on a fleet without keys... and late,
duplicate, unselected answers), *rejected* is the node's own invalid answer, which marks it
for the round. Only a frame that verifies under the node's key (or, without keys, any frame
that decodes) can reject a node, so a stranger cannot get an honest node refused. A replayed
UPDATE is the node's own bytes: it counts as late (an earlier round) or duplicate (this one).

The sample count an update claims is capped by the count the node's HELLO declared, so a node
cannot buy weight in FedAvg by claiming more samples than it announced.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tinyfl.errors import WireError
from tinyfl.wire import (
    Keyring,
    Masked,
    Reveal,
    SecAgg,
    Topics,
    Unmask,
    Update,
    decode,
    verify_frame,
)

__all__ = ["Counters", "Intake", "OpenRound"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
U32 = npt.NDArray[np.uint32]


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
    # a secure-aggregation round: its parameters, the masked updates, and once the coordinator
    # asked for them (UNMASK) the survivors' revealed round seeds
    secagg: SecAgg | None = None
    masked: dict[str, U32] = field(default_factory=dict)
    unmask: Unmask | None = None
    reveals: dict[str, Reveal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pending = set(self.selected)

    def responded(self, node_id: str) -> bool:
        return node_id in self.answers or node_id in self.rejected

    def counts(self) -> dict[str, object]:
        """What a round record shows of who answered (metrics.py)."""
        return {
            "selected": len(self.selected),
            "answered": len(self.answers),
            # who, sorted: per-node participation, which the counts alone cannot show
            "answered_ids": sorted(self.answers),
            # the samples each counted node trained on: a node on a live sensor holds more and
            # more (the report plots them)
            "answered_samples": {n: self.answers[n].n_samples for n in sorted(self.answers)},
            "missing": len(self.pending),
        }


@dataclass
class Counters:
    """What did not count, by kind and reason, plus the uplink bytes, since the last report."""

    late: int = 0
    dropped: int = 0
    rejected: int = 0
    capped: int = 0  # updates whose sample count was capped to the node's declared count
    bytes_up: int = 0
    dropped_reasons: Counter[str] = field(default_factory=Counter)
    rejected_reasons: Counter[str] = field(default_factory=Counter)

    def fields(self, refused_announcements: int) -> dict[str, object]:
        """What a round record shows of them, with the registry's refused announcements."""
        return {"late": self.late, "dropped": self.dropped,
                "dropped_reasons": dict(self.dropped_reasons), "rejected": self.rejected,
                "rejected_reasons": dict(self.rejected_reasons), "capped": self.capped,
                "refused_announcements": refused_announcements, "bytes_up": self.bytes_up}


class Intake:
    """Classifies updates for one run (head shape fixed). `declared(node_id)` is the sample
    count the node's HELLO announced (the cap on what its updates may claim)."""

    def __init__(
        self,
        head_shape: tuple[int, int],
        *,
        topics: Topics | None = None,
        keys: Keyring | None = None,
        declared: Callable[[str], int] | None = None,
    ) -> None:
        if keys is not None and topics is None:
            raise ValueError("an intake with keys needs the topics frames are signed for")
        self.head_shape = head_shape
        self.topics = topics
        self.keys = keys
        self.declared = declared
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
        key = None
        if self.keys is not None:
            key = self.keys.key_of(node_id)
            if key is None:
                self._drop("unprovisioned")
                return False
        topic = self.topics.update(node_id) if self.topics is not None else ""
        try:
            verify_frame(payload, topic, key)
        except WireError as exc:
            self._drop(f"bad_frame_{exc.reason}")
            return False
        try:
            msg = decode(payload)
        except WireError as exc:
            return self._invalid(node_id, f"bad_frame_{exc.reason}", authenticated=key is not None)
        if isinstance(msg, Reveal):
            return self._on_reveal(node_id, msg)
        if not isinstance(msg, Update):
            return self._invalid(node_id, "not_an_update", authenticated=key is not None)
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
        if rnd.unmask is not None:
            self._drop("after_unmask")  # the survivors are fixed once the coordinator asked
            return False
        reason = self._take(rnd, node_id, msg)
        if reason:
            rnd.rejected.add(node_id)
            self._reject(node_id, reason)
        else:
            rnd.answers[node_id] = self._capped(node_id, msg)
        rnd.pending.discard(node_id)
        return True

    def _take(self, rnd: OpenRound, node_id: str, msg: Update) -> str:
        """Checks an answer against its round and keeps what the aggregation needs: the masked
        values in a secure-aggregation round, else the dequantized delta. Returns why it cannot
        be used ("" when it was kept)."""
        if rnd.secagg is not None:
            reason = self.check_masked(msg, rnd.secagg)
            if not reason:
                assert isinstance(msg.delta, Masked)
                rnd.masked[node_id] = msg.delta.values
            return reason
        delta, reason = self.check(msg)
        if delta is not None:
            rnd.deltas[node_id] = delta
        return reason

    def check_masked(self, msg: Update, secagg: SecAgg) -> str:
        """Why a secure-aggregation answer cannot be summed ("" when it can)."""
        if not isinstance(msg.delta, Masked):
            return "not_masked"
        if msg.delta.bits != secagg.mask_bits:
            return "wrong_mask_bits"
        if msg.delta.shape != self.head_shape:
            return "wrong_shape"
        if msg.n_samples == 0:
            return "no_samples"
        return ""

    def _on_reveal(self, node_id: str, msg: Reveal) -> bool:
        """A survivor's round seeds for the peers the open round's UNMASK named: kept once,
        and only when they are exactly the ones asked for."""
        rnd = self.open
        if rnd is None or rnd.unmask is None or msg.round_id != rnd.wire:
            self._drop("stray_reveal")
            return False
        if node_id not in rnd.masked or node_id in rnd.reveals:
            self._drop("unexpected_reveal")
            return False
        if sorted(peer for peer, _ in msg.seeds) != sorted(rnd.unmask.dropped):
            self._reject(node_id, "reveal_mismatch")
            return False
        rnd.reveals[node_id] = msg
        return True

    def _invalid(self, node_id: str, reason: str, *, authenticated: bool) -> bool:
        """A frame that passed its check but not the decoder: the node's own fault when the
        frame is authenticated (the node is rejected for an open round that selected it), a
        stranger's possibly when not (counted, nobody marked)."""
        rnd = self.open
        if authenticated and rnd is not None and node_id in rnd.selected:
            if rnd.responded(node_id):
                self._drop("duplicate")
                return False
            rnd.rejected.add(node_id)
            rnd.pending.discard(node_id)
            self._reject(node_id, reason)
            return True
        self._reject(node_id, reason)
        return False

    def _capped(self, node_id: str, msg: Update) -> Update:
        """The update with its sample count capped by the node's declared count."""
        if self.declared is None:
            return msg
        limit = self.declared(node_id)
        if msg.n_samples <= limit:
            return msg
        self.counters.capped += 1
        log.warning("%s claims %d samples, its HELLO declared %d: weighing it as %d",
                    node_id, msg.n_samples, limit, limit)
        return dataclasses.replace(msg, n_samples=limit)

    def check(self, msg: Update) -> tuple[F32 | None, str]:
        """The update's dequantized delta, or None and why it cannot be averaged in. Codes
        times a huge (finite) scale can overflow to Inf, hence the check after dequantizing."""
        if isinstance(msg.delta, Masked):
            return None, "unexpected_mask"
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
