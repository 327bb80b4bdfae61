"""Updates of one chat are handled one after another, in the order they arrived; updates of
different chats run concurrently, at most ``max_running`` at a time.

python-telegram-bot starts a task per update as soon as it leaves the queue, in queue order,
and each task queues on its chat's lock (asyncio locks wake waiters first in, first out). A
chat's lock exists only while an update of that chat is waiting or running, so memory follows
the updates in flight, not the number of chats ever served.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Hashable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

DEFAULT_MAX_RUNNING = 64
# PTB's own bound counts updates waiting for their chat too; ours is the one that matters.
_PTB_BOUND = 1_000_000


def chat_of(update: object) -> Hashable | None:
    """The chat whose updates must stay in order (a user's, if the update has no chat)."""
    if not isinstance(update, Update):
        return None
    if update.effective_chat is not None:
        return update.effective_chat.id
    if update.effective_user is not None:
        return ("user", update.effective_user.id)
    return None


class _Turn:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class ChatOrderedProcessor(BaseUpdateProcessor):
    """Per-chat order with a global cap on updates handled at once.

    ``inner`` (for example a processor that times each update) is given every update in turn,
    once its chat's earlier updates are done and a slot is free.
    """

    def __init__(self, max_running: int = DEFAULT_MAX_RUNNING, *,
                 inner: BaseUpdateProcessor | None = None) -> None:
        super().__init__(_PTB_BOUND)
        if max_running < 1:
            raise ValueError("max_running must be at least 1")
        self.max_running = max_running
        self.inner = inner
        self._slots = asyncio.Semaphore(max_running)
        self._turns: dict[Hashable, _Turn] = {}

    @property
    def chats_in_flight(self) -> int:
        """Chats with an update waiting or running (what the per-chat locks cost)."""
        return len(self._turns)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = chat_of(update)
        if key is None:
            async with self._slots:
                await self.handle(update, coroutine)
            return
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = _Turn()
        turn.users += 1
        try:
            async with turn.lock, self._slots:
                await self.handle(update, coroutine)
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._turns[key]

    async def handle(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Handle one update whose turn has come."""
        await self.run(update, coroutine)

    async def run(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Run PTB's handlers for the update (through ``inner`` if there is one)."""
        if self.inner is not None:
            await self.inner.do_process_update(update, coroutine)
        else:
            await coroutine

    async def initialize(self) -> None:
        if self.inner is not None:
            await self.inner.initialize()

    async def shutdown(self) -> None:
        if self.inner is not None:
            await self.inner.shutdown()
