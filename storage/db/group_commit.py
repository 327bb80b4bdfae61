"""Group commit: many small bookkeeping writes share one transaction.

Every handled update claims its inbox entry before its handlers run and, when they decided
nothing, marks it done after; alone, each of those is a transaction of one short statement, and
on SQLite every write transaction queues on the one database lock. Here a caller adds its item
and waits: while a batch is being written, the items that arrive meanwhile gather, and go
together in the next transaction. An idle store sees no delay (a lone item is written at once);
a busy one writes one transaction for many updates. Each caller still returns only once its
item is committed, or gets the batch's error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")

# Bounds the statement's size (one bound parameter per item) and one transaction's lock time.
MAX_BATCH = 400


class GroupCommit(Generic[Item]):
    """Runs ``write(items) -> results`` (one result per item, in order) over batches."""

    def __init__(self, write: Callable[[Sequence[Item]], Awaitable[Sequence[Any]]], *,
                 max_batch: int = MAX_BATCH) -> None:
        self._write = write
        self._max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def submit(self, item: Item) -> Any:
        """Write ``item`` with whatever else is waiting; returns its result once committed."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            # A task of its own, so that a caller cancelled while waiting does not cut short
            # a batch that other callers wait for.
            self._writer = asyncio.create_task(self._write_all(), name="ticketbot-group-commit")
        return await future

    async def _write_all(self) -> None:
        while self._pending:
            batch = self._pending[:self._max_batch]
            del self._pending[:self._max_batch]
            try:
                results = await self._write([item for item, _ in batch])
            except Exception as error:  # every waiter of the batch learns why
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
