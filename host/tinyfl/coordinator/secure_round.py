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
import math
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from tinyfl.coordinator.intake import OpenRound
from tinyfl.errors import TransportError, UsageError
from tinyfl.quant import qmax
from tinyfl.strategy.ddp import node_noise_var, noisy_mask_bits
from tinyfl.strategy.secagg import mask_bits_for, masked_sum, signed_sum, unmask_correction
from tinyfl.wire import SecAgg, Unmask
from tinyfl.wire.masked import MAX_MASK_BITS

__all__ = ["SECURE_AGG_STRATEGIES", "check_strategy", "default_threshold", "noise_info", "plan", "secure_mean", "secure_sum",
           "unmask_request", "wait_for_reveals"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
# strategies that need only the (weighted) mean of the updates: what secure aggregation gives
SECURE_AGG_STRATEGIES = ("fedavg", "fedprox", "fedavgm", "fedadam")


def check_strategy(name: str) -> None:
    """UsageError unless strategy `name` works from the mean of the updates alone."""
    if name not in SECURE_AGG_STRATEGIES:
        raise UsageError(
            f"--secure-agg gives the coordinator only the sum of the updates; "
            f"{name} needs each one (use one of {', '.join(SECURE_AGG_STRATEGIES)})")


def default_threshold(n_selected: int) -> int:
    """A strict majority of the selected nodes (at least 2): no minority sum is ever revealed."""
    return max(2, n_selected // 2 + 1)


def plan(n_selected: int, uplink_bits: int, clip_norm: float, threshold: int | None,
         noise_multiplier: float | None = None, dim: int = 0) -> SecAgg:
    """The round's secure-aggregation section: the smallest modulus that holds the sum of
    n_selected codes exactly, the threshold (capped at n_selected), and the common scale
    clip / qmax, so that every coordinate of a clipped update fits the codes.

    With a noise multiplier (--dp distributed) also each node's noise sigma^2, calibrated so
    that the other t - 1 survivors' shares reach z times the sensitivity of dim codes, and a
    modulus that holds the noisy sum (tinyfl.strategy.ddp); ValueError when the noise does not
    fit the wire (sigma^2 above 2^24, or more than 32 bits)."""
    q = qmax(uplink_bits)
    t = min(n_selected, threshold if threshold is not None else default_threshold(n_selected))
    scale = float(np.float32(clip_norm) / np.float32(q))
    if noise_multiplier is None:
        return SecAgg(mask_bits_for(q, n_selected), t, scale)
    var = node_noise_var(noise_multiplier, q, dim, t)
    bits = noisy_mask_bits(q, n_selected, var, dim)
    if bits > MAX_MASK_BITS:
        raise ValueError(f"the noisy sum of {n_selected} nodes needs {bits} bits, more than "
                         f"{MAX_MASK_BITS}")
    return SecAgg(bits, t, scale, var)


def noise_info(secagg: SecAgg, survivors: int) -> dict[str, float]:
    """What a round record shows of --dp distributed: each node's sigma^2 (code units), and the
    std of the noise on the released mean delta, sqrt(survivors sigma^2) scale / survivors."""
    std = math.sqrt(survivors * secagg.noise_var) * secagg.scale / max(1, survivors)
    return {"dp_node_var": float(secagg.noise_var), "dp_noise_std": std}


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
