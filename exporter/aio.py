"""Stopping tasks for good.

On Python 3.10 and 3.11, ``asyncio.wait_for`` swallows a cancellation that arrives just as the
awaited thing completes, and the loop around it goes on. A task that must end is therefore
cancelled again until it has.
"""

from __future__ import annotations

import asyncio
from typing import Iterable


async def cancel_and_wait(tasks: Iterable[asyncio.Task], each: float = 0.5) -> None:
    """Cancel the tasks and wait until every one has ended, cancelling again what goes on."""
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    while pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=each)
    for t in tasks:  # an exception a task ended with has been seen (logged where it happened)
        if not t.cancelled():
            t.exception()
