"""Round ids on the wire (docs/WIRE.md, "Round ids"): the id of the next GLOBAL, and what a
GLOBAL retained on the broker says about the ids the nodes may have served already."""

from __future__ import annotations

import logging

from tinyfl.coordinator.config import MAX_U32, ROUND_ID_MARGIN
from tinyfl.errors import CoordinatorError, WireError
from tinyfl.wire import Global, open_frame

__all__ = ["next_wire_round", "retained_round"]

log = logging.getLogger(__name__)


def next_wire_round(last: int, now: float) -> int:
    """The round id of the next GLOBAL: above `last` (every id this run published or saw
    retained on the broker), and never below the current Unix time `now` in seconds.

    Why the clock: a node serves only ids above the last one it served, and it remembers
    that across broker restarts and coordinator runs, while a broker without persistence
    forgets the retained GLOBAL. Ids that follow the clock keep a fresh run (or a resumed
    one whose broker was restarted) above whatever the nodes saw, as long as earlier runs
    did not average more than one round per second. The retained id and the checkpoint
    cover that case and a clock that is behind.
    """
    wire = max(last + 1, int(now))
    if wire > MAX_U32:
        raise CoordinatorError("round ids are exhausted (they are 32-bit)")
    return wire


def retained_round(payload: bytes, topic: str, key: bytes | None, last: int,
                   now: float) -> int | None:
    """The round id of a GLOBAL seen on the broker when the next id must go past it, else
    None. Only a GLOBAL that verifies under the fleet key counts, and not one whose id runs
    more than ROUND_ID_MARGIN ahead of the clock: nodes ignore such an id too, so continuing
    after it would only exhaust the ids."""
    if not payload:
        return None
    try:
        msg = open_frame(payload, topic, key)
    except WireError as exc:
        log.warning("ignoring a retained GLOBAL that is not this fleet's: %s", exc)
        return None
    if not isinstance(msg, Global) or msg.round_id <= last:
        return None
    ahead = msg.round_id - int(now)
    if ahead > ROUND_ID_MARGIN:
        log.warning("ignoring a retained GLOBAL with round id %d: %d s ahead of this clock, "
                    "more than the %d s nodes accept; publishing over it", msg.round_id,
                    ahead, ROUND_ID_MARGIN)
        return None
    log.info("the broker retains round id %d; continuing after it", msg.round_id)
    return msg.round_id
