"""Accounting for bench_soak.py: every UPDATE a native node says it sent, next to what the
coordinator's intake made of every UPDATE it received.

Two sources, matched per (node, wire round):
- the node logs: "round N: ... B up" when a node trains round N and publishes its update, and
  "round N: sending its update again" when the round's GLOBAL comes back after the broker
  acknowledged it (docs/WIRE.md). Each line starts with the node's milliseconds since boot; the
  bench knows when it started each process, so lines map onto the bench's monotonic clock.
  An update that was still unacknowledged when the connection dropped is re-sent on reconnect
  *without* a log line, so the coordinator may receive more copies than the logs show.
- receipts: one per UPDATE the intake classified (accepted, late, dropped:<reason>,
  rejected:<reason>), recorded by wrapping `Intake.on_update` in-process.

A pair with no receipt is lost; it is explained when the broker was killed around the send (an
acknowledged update dies with a broker before reaching the coordinator), when its node was
killed right after training (the bytes never left), or when it was sent after the last round
closed. Anything else is unexplained: a bug to report.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyfl.coordinator.intake import Counters, Intake
from tinyfl.errors import WireError
from tinyfl.wire import Update, decode

LINE = re.compile(r"^(\d+) (.*)$")
TRAINED = re.compile(r"^round (\d+): \d+ samples, .* B up$")
RESENT = re.compile(r"^round (\d+): sending its update again$")
READY = re.compile(r"^node \S+ ready:")
# Seconds of slack when matching a send to a fault: node clocks start a few ms after Popen, and
# a send is a socket write that may still be in the kernel when the process dies.
BROKER_SLACK = 1.0
NODE_KILL_WINDOW = 1.0


@dataclass(frozen=True)
class Send:
    t: float  # bench monotonic seconds
    node: str
    round_id: int
    kind: str  # "trained" | "resent"


@dataclass(frozen=True)
class Receipt:
    t: float
    node: str
    round_id: int | None  # None: the frame did not decode
    outcome: str  # accepted | late | dropped:<reason> | rejected:<reason>
    after_last_round: bool  # arrived after the final round's record was written


@dataclass(frozen=True)
class Window:
    """A fault's span on the bench clock: the broker dead, or one node killed or stopped."""

    kind: str  # broker | kill | stop
    target: str
    start: float
    end: float


# -- the two sources --------------------------------------------------------------------------


def parse_node_log(text: str, node: str, boots: Sequence[float]) -> tuple[list[Send], int]:
    """The node's sends, and how many boots its log shows. `boots` are the bench times each
    process of this node was started; segment i of the log (from its i-th "ready" line) is
    mapped through boots[i]."""
    sends: list[Send] = []
    segment = -1
    for raw in text.splitlines():
        m = LINE.match(raw)
        if m is None:
            continue
        ms, body = int(m.group(1)), m.group(2)
        if READY.match(body):
            segment += 1
            continue
        base = boots[min(max(segment, 0), len(boots) - 1)]
        for pattern, kind in ((TRAINED, "trained"), (RESENT, "resent")):
            hit = pattern.match(body)
            if hit:
                sends.append(Send(base + ms / 1000, node, int(hit.group(1)), kind))
    return sends, segment + 1


def record_receipts(intake: Intake, receipts: list[Receipt], clock: Callable[[], float],
                    finished: Callable[[], bool]) -> None:
    """Wraps `intake.on_update` so every classified UPDATE is appended to `receipts`. The
    outcome is read from which counter moved (nothing moved: accepted)."""
    original = intake.on_update

    def on_update(node_id: str, payload: bytes, packet_bytes: int, latest_wire: int) -> bool:
        before = _snapshot(intake.counters)
        changed = original(node_id, payload, packet_bytes, latest_wire)
        outcome = _outcome(before, _snapshot(intake.counters))
        receipts.append(Receipt(clock(), node_id, _round_of(payload), outcome, finished()))
        return changed

    intake.on_update = on_update  # type: ignore[method-assign]


Snapshot = tuple[int, Counter[str], Counter[str]]  # late, dropped and rejected reasons


def _snapshot(c: Counters) -> Snapshot:
    return c.late, Counter(c.dropped_reasons), Counter(c.rejected_reasons)


def _outcome(before: Snapshot, after: Snapshot) -> str:
    if after[0] > before[0]:
        return "late"
    for kind, moved in (("dropped", after[1] - before[1]), ("rejected", after[2] - before[2])):
        if moved:
            return f"{kind}:{next(iter(moved))}"
    return "accepted"


def _round_of(payload: bytes) -> int | None:
    try:
        msg = decode(payload)
    except WireError:
        return None
    return msg.round_id if isinstance(msg, Update) else None


# -- matching ---------------------------------------------------------------------------------


@dataclass
class Accounting:
    pairs: int = 0  # (node, round) pairs with at least one logged send
    logged_sends: Counter[str] = field(default_factory=Counter)  # trained / resent
    receipts: Counter[str] = field(default_factory=Counter)  # by outcome, all of them
    receipts_after_last_round: int = 0
    pair_status: Counter[str] = field(default_factory=Counter)
    extra_copies: int = 0  # receipts beyond the logged sends of their pair
    # logged copies that never arrived although their pair was received (another copy made it),
    # by explanation
    missing_copies: Counter[str] = field(default_factory=Counter)
    unlogged_pairs: list[str] = field(default_factory=list)  # received, never logged
    unexplained: list[dict[str, Any]] = field(default_factory=list)
    double_accepts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairs_sent": self.pairs,
            "logged_sends": dict(self.logged_sends),
            "receipts": dict(self.receipts),
            "receipts_after_last_round": self.receipts_after_last_round,
            "pair_status": dict(self.pair_status),
            "extra_copies_received": self.extra_copies,
            "missing_copies_of_received_pairs": dict(self.missing_copies),
            "received_but_never_logged": self.unlogged_pairs,
            "unexplained": self.unexplained,
            "accepted_twice": self.double_accepts,
        }


def account(sends: Iterable[Send], receipts: Iterable[Receipt], windows: Sequence[Window],
            run_end: float) -> Accounting:
    """Matches sends and receipts per (node, round) and explains every pair with no receipt."""
    by_pair: dict[tuple[str, int], list[Send]] = {}
    for s in sends:
        by_pair.setdefault((s.node, s.round_id), []).append(s)
    got: dict[tuple[str, int | None], list[Receipt]] = {}
    acc = Accounting(pairs=len(by_pair))
    for r in receipts:
        got.setdefault((r.node, r.round_id), []).append(r)
        acc.receipts[r.outcome] += 1
        acc.receipts_after_last_round += r.after_last_round
    for pair_sends in by_pair.values():
        acc.logged_sends.update(s.kind for s in pair_sends)
    for pair, pair_sends in sorted(by_pair.items()):
        seen = got.get(pair, [])
        acc.extra_copies += max(0, len(seen) - len(pair_sends))
        if seen and len(seen) < len(pair_sends):
            acc.missing_copies.update(_explain_copies(pair_sends, len(pair_sends) - len(seen),
                                                      windows, run_end))
        outcomes = [r.outcome for r in seen]
        if outcomes.count("accepted") > 1:
            acc.double_accepts.append(f"{pair[0]} round {pair[1]}")
        status = _pair_status(outcomes) or _explain(pair_sends, windows, run_end)
        acc.pair_status[status] += 1
        if status == "lost:unexplained":
            acc.unexplained.append(_evidence(pair_sends, windows))
    acc.unlogged_pairs = [f"{n} round {r}" for (n, r) in sorted(got, key=str)
                          if (n, r) not in by_pair]
    return acc


def _pair_status(outcomes: list[str]) -> str | None:
    """What the coordinator made of a pair: the best outcome among its copies."""
    for wanted in ("accepted", "late"):
        if wanted in outcomes:
            return wanted
    return outcomes[0] if outcomes else None


def _explain(sends: list[Send], windows: Sequence[Window], run_end: float) -> str:
    """Why no copy of a pair arrived: what happened around its last send."""
    return "lost:" + _why(max(sends, key=lambda s: s.t), windows, run_end)


def _explain_copies(sends: list[Send], missing: int, windows: Sequence[Window],
                    run_end: float) -> list[str]:
    """Why `missing` copies of a received pair did not arrive (which copies is unknowable, so
    the explainable sends are used first)."""
    reasons = sorted((_why(s, windows, run_end) for s in sends), key=lambda r: r == "unexplained")
    return reasons[:missing]


def _why(send: Send, windows: Sequence[Window], run_end: float) -> str:
    if send.t >= run_end:
        return "sent_after_last_round"
    for w in windows:
        if w.kind == "broker" and w.start - BROKER_SLACK <= send.t <= w.end + BROKER_SLACK:
            return "broker_killed"
        if (w.kind == "kill" and w.target == send.node
                and send.t - 0.05 <= w.start <= send.t + NODE_KILL_WINDOW):
            return "node_killed"
    return "unexplained"


def _evidence(sends: list[Send], windows: Sequence[Window]) -> dict[str, Any]:
    """A lost pair's sends and the faults within 10 s of them, for the report."""
    first, last = min(s.t for s in sends), max(s.t for s in sends)
    near = [w for w in windows if w.start <= last + 10 and w.end >= first - 10]
    return {
        "node": sends[0].node,
        "round_id": sends[0].round_id,
        "sends": [{"t": round(s.t, 3), "kind": s.kind} for s in sends],
        "faults_nearby": [{"kind": w.kind, "target": w.target, "start": round(w.start, 3),
                           "end": round(w.end, 3)} for w in near],
    }


def metrics_totals(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What metrics.jsonl says about updates, summed over the rounds."""
    dropped: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for r in records:
        dropped.update(r.get("dropped_reasons", {}))
        rejected.update(r.get("rejected_reasons", {}))
    return {
        "answered": sum(r["answered"] for r in records),
        "late": sum(r["late"] for r in records),
        "dropped": sum(r["dropped"] for r in records),
        "dropped_reasons": dict(dropped),
        "rejected": sum(r["rejected"] for r in records),
        "rejected_reasons": dict(rejected),
    }


def receipts_as_metrics(receipts: Iterable[Receipt]) -> dict[str, Any]:
    """The receipts the metrics lines cover (those before the last record), in their shape:
    the two must agree exactly."""
    counted = Counter(r.outcome for r in receipts if not r.after_last_round)
    dropped = {k.split(":", 1)[1]: v for k, v in counted.items() if k.startswith("dropped:")}
    rejected = {k.split(":", 1)[1]: v for k, v in counted.items() if k.startswith("rejected:")}
    return {
        "answered": counted["accepted"],
        "late": counted["late"],
        "dropped": sum(dropped.values()),
        "dropped_reasons": dropped,
        "rejected": sum(rejected.values()),
        "rejected_reasons": rejected,
    }


def read_sends(logs: dict[str, Path], boots: dict[str, list[float]]) -> tuple[list[Send],
                                                                             dict[str, int]]:
    """Every node's sends, and per node the boots its log shows (to check against the starts)."""
    sends: list[Send] = []
    seen: dict[str, int] = {}
    for node, path in sorted(logs.items()):
        text = path.read_text(errors="replace") if path.exists() else ""
        node_sends, seen[node] = parse_node_log(text, node, boots[node])
        sends += node_sends
    return sends, seen
