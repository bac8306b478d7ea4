"""Stopping tasks for good.

On Python 3.10 and 3.11, ``asyncio.wait_for`` swallows a cancellation that arrives just as the
awaited thing completes, and the loop around it goes on. A task that must end is therefore
cancelled again until it has.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Iterable

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task], each: float = 0.5, attempts: int = 10) -> None:
    """Cancel the tasks and wait until every one has ended, cancelling again what goes on; a task
    still running after ``attempts`` is named in the log and left (shutdown must not hang)."""
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    for _ in range(attempts):
        if not pending:
            break
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=each)
    for t in pending:
        log.error("task %s does not stop", t.get_name())
    for t in tasks:  # an exception a task ended with has been seen (logged where it happened)
        if t.done() and not t.cancelled():
            t.exception()
