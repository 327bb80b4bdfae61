"""Calls to Telegram: replies go out at once, wait only where Telegram asked, and survive short
outages.

Telegram's limits (its Bots FAQ): about one message per second in a chat, with short bursts
allowed, and about 30 per second for bulk notifications to many users; when a limit is hit it
answers 429 with ``retry_after``, and that is the signal to wait. So a *reply* (anything sent
or edited while handling a user's own update, in that user's chat) is never held by a global
budget nor delayed up front: ``ChatFloodControl`` lets every call through at once, and after a
429 only that chat waits exactly ``retry_after`` (its later calls too), never the whole bot.
PTB's ``AIORateLimiter`` capped all calls at 30 per second, which capped the bot at about 30
updates per second whatever the machine.

*Notifications* (news the bot sends on its own, ``bot/background.py``) are paced by a budget
shared by every process on the store (``storage/broadcast_budget.py``); they are sent inside
``notifying()``, and their 429s are not waited out here but raised, so that the news sender
pauses notifications, not replies.

5xx answers and network errors, which Telegram calls temporary, are tried a few more times with
a growing pause. A retried call may have reached Telegram the first time, so a message can
arrive twice: chat messages are delivered at least once, never exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import logging
import time
import warnings
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger(__name__)

_notifying: contextvars.ContextVar[bool] = contextvars.ContextVar("notifying", default=False)


@contextlib.contextmanager
def notifying() -> Iterator[None]:
    """Calls made inside are notifications: paced by their sender, their 429s raised."""
    token = _notifying.set(True)
    try:
        yield
    finally:
        _notifying.reset(token)


def is_temporary_telegram_error(error: BaseException) -> bool:
    """5xx, timeouts and network failures, not a refusal of the request itself (4xx)."""
    return isinstance(error, NetworkError) and not isinstance(error, BadRequest)


def flood_wait(error: RetryAfter) -> dt.timedelta:
    """How long Telegram's flood control asked us to wait. PTB 22 gives it in seconds, with a
    deprecation warning, and as a timedelta when PTB_TIMEDELTA is set; the next major version
    always as a timedelta."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        wait = error.retry_after
    return wait if isinstance(wait, dt.timedelta) else dt.timedelta(seconds=wait)


class ChatFloodControl(BaseRateLimiter):
    """React, never throttle: a call waits only while its chat is held by a 429 Telegram
    answered for it, then goes; ``max_retries`` 429s in a row are given up (raised)."""

    def __init__(self, *, max_retries: int = 3, network_retries: int = 3,
                 first_pause: float = 0.5) -> None:
        self.max_retries = max_retries
        self.network_retries = network_retries
        self.first_pause = first_pause
        # chat id -> monotonic time until which Telegram told us to leave that chat alone.
        # Holds only chats with a 429 in the last retry_after seconds.
        self._held: dict[Any, float] = {}

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        self._held.clear()

    def held_for(self, chat_id: Any) -> float:
        """Seconds this chat must still wait (0: none)."""
        until = self._held.get(chat_id)
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            self._held.pop(chat_id, None)
            return 0.0
        return left

    def hold(self, chat_id: Any, seconds: float) -> None:
        until = time.monotonic() + seconds
        if until > self._held.get(chat_id, 0.0):
            self._held[chat_id] = until

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: Any,
    ) -> Any:
        chat_id = data.get("chat_id")
        if _notifying.get():
            # Paced by the news sender, whose budget pauses on a 429: raise it there.
            return await self._call(callback, args, kwargs, endpoint)
        for retry in range(self.max_retries + 1):
            if chat_id is not None:
                wait = self.held_for(chat_id)
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                return await self._call(callback, args, kwargs, endpoint)
            except RetryAfter as error:
                if retry == self.max_retries:
                    raise
                seconds = flood_wait(error).total_seconds()
                log.info("%s: flood control; %s waits %.0f s", endpoint,
                         "the bot" if chat_id is None else "this chat", seconds)
                if chat_id is None:
                    await asyncio.sleep(seconds)
                else:
                    self.hold(chat_id, seconds)
        raise AssertionError("unreachable")

    async def _call(self, callback: Callable[..., Coroutine[Any, Any, Any]], args: Any,
                    kwargs: dict[str, Any], endpoint: str) -> Any:
        pause = self.first_pause
        for retry in range(self.network_retries + 1):
            try:
                return await callback(*args, **kwargs)
            except RetryAfter:
                raise
            except NetworkError as error:
                if retry == self.network_retries or not is_temporary_telegram_error(error):
                    raise
                # The class name only: messages of network errors can quote URLs (with the token).
                log.info("%s failed (%s); retry %d in %.1f s", endpoint, type(error).__name__,
                         retry + 1, pause)
                await asyncio.sleep(pause)
                pause *= 2
        raise AssertionError("unreachable")
