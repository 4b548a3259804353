"""The coordinator's side of a secure-aggregation round (docs/PRIVACY.md): the round's
parameters, the unmasking step when selected nodes dropped out, and the mean of the survivors'
deltas from the exact integer sum of their codes. The masking math is tinyfl.strategy.secagg.

The coordinator never holds a single node's update: only masked values, and after unmasking
only their sum. Below `threshold` survivors it does not ask for anything and the round is
skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from tinyfl.coordinator.intake import OpenRound
from tinyfl.errors import TransportError
from tinyfl.quant import qmax
from tinyfl.strategy.secagg import mask_bits_for, masked_sum, signed_sum, unmask_correction
from tinyfl.wire import SecAgg, Unmask

__all__ = ["default_threshold", "plan", "secure_mean", "secure_sum", "unmask_request",
           "wait_for_reveals"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


def default_threshold(n_selected: int) -> int:
    """A strict majority of the selected nodes (at least 2): no minority sum is ever revealed."""
    return max(2, n_selected // 2 + 1)


def plan(n_selected: int, uplink_bits: int, clip_norm: float, threshold: int | None) -> SecAgg:
    """The round's secure-aggregation section: the smallest modulus that holds the sum of
    n_selected codes exactly, the threshold (capped at n_selected), and the common scale
    clip / qmax, so that every coordinate of a clipped update fits the codes."""
    q = qmax(uplink_bits)
    t = min(n_selected, threshold if threshold is not None else default_threshold(n_selected))
    scale = float(np.float32(clip_norm) / np.float32(q))
    return SecAgg(mask_bits_for(q, n_selected), t, scale)


def unmask_request(rnd: OpenRound) -> Unmask | None:
    """UNMASK for the selected nodes without a masked update, or None when all sent one."""
    dropped = tuple(sorted(rnd.selected - rnd.masked.keys()))
    if not dropped:
        return None
    return Unmask(rnd.wire, len(rnd.masked), dropped)


async def wait_for_reveals(rnd: OpenRound, timeout: float,
                           wait_change: Callable[[float], Awaitable[None]]) -> set[str]:
    """Waits until every survivor revealed (or `timeout`); returns the survivors still silent."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        missing = set(rnd.masked) - set(rnd.reveals)
        remaining = deadline - loop.time()
        if not missing or remaining <= 0:
            return missing
        await wait_change(remaining)


def secure_mean(rnd: OpenRound, shape: tuple[int, int]) -> F32:
    """The survivors' mean delta from their masked values and the corrections their revealed
    round seeds give."""
    secagg = rnd.secagg
    assert secagg is not None
    n = shape[0] * shape[1]
    bits = secagg.mask_bits
    corrections = [unmask_correction(survivor, peer, seed, n, bits)
                   for survivor, reveal in sorted(rnd.reveals.items())
                   for peer, seed in reveal.seeds]
    total = masked_sum([rnd.masked[s].reshape(-1) for s in sorted(rnd.masked)], corrections, bits)
    sums = signed_sum(total, bits).reshape(shape)
    mean: F32 = (sums.astype(np.float64) * secagg.scale / len(rnd.masked)).astype(np.float32)
    return mean


async def secure_sum(
    rnd: OpenRound,
    record: dict[str, Any],
    publish_unmask: Callable[[Unmask], Awaitable[None]],
    timeout: float,
    wait_change: Callable[[float], Awaitable[None]],
    shape: tuple[int, int],
) -> tuple[F32 | None, str]:
    """The survivors' mean delta of a secure-aggregation round, asking them for the masks of
    dropped nodes first; (None, why) when it cannot be had. Adds `secure_agg` to `record`."""
    assert rnd.secagg is not None
    info = {"mask_bits": rnd.secagg.mask_bits, "threshold": rnd.secagg.threshold,
            "survivors": len(rnd.masked), "dropped": 0}
    record["secure_agg"] = info
    if len(rnd.masked) < rnd.secagg.threshold:
        return None, (f"{len(rnd.masked)} masked update(s), below the threshold "
                      f"{rnd.secagg.threshold}: nothing unmasked")
    request = unmask_request(rnd)
    if request is not None:
        info["dropped"] = len(request.dropped)
        rnd.unmask = request
        try:
            await publish_unmask(request)
        except TransportError as exc:
            return None, f"could not ask for unmasking: {exc}"
        silent = await wait_for_reveals(rnd, timeout, wait_change)
        if silent:
            return None, (f"{len(silent)} survivor(s) did not reveal their masks of the "
                          f"{len(request.dropped)} dropped node(s): {sorted(silent)[:3]}")
    return secure_mean(rnd, shape), ""
