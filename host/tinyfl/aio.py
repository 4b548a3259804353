"""Small asyncio helpers shared by the commands."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Future[Any], poll: float = 0.1) -> None:
    """Cancels `task` and waits until it has finished, cancelling again while it runs on.

    One cancel() is not always enough: before Python 3.12, `asyncio.wait_for` returns the
    result instead of raising CancelledError when its inner future completed in the same loop
    iteration as the cancellation, so a busy round loop can swallow a cancel and carry on (seen
    with rounds of a few milliseconds). The task's own exception, if any, is left in it."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=poll)
