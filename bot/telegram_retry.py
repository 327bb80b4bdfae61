"""Calls to Telegram that survive short outages.

PTB's ``AIORateLimiter`` keeps us under Telegram's flood limits and, when told to wait (429 with
``retry_after``), waits and tries again. It gives up at once on a 5xx answer or a network
error, which Telegram's own documentation calls temporary; ``PatientRateLimiter`` tries those a
few more times with a growing pause. A retried call may have reached Telegram the first time,
so a message can arrive twice: chat messages are delivered at least once, never exactly once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.ext import AIORateLimiter
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger(__name__)


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


class PatientRateLimiter(AIORateLimiter):
    """AIORateLimiter that also retries temporary failures (5xx, network) a few times."""

    def __init__(self, *, network_retries: int = 3, first_pause: float = 0.5,
                 **limits: Any) -> None:
        super().__init__(**limits)
        self.network_retries = network_retries
        self.first_pause = first_pause

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        pause = self.first_pause
        for retry in range(self.network_retries + 1):
            try:
                return await super().process_request(callback, args, kwargs, endpoint, data,
                                                     rate_limit_args)
            except NetworkError as error:
                if retry == self.network_retries or not is_temporary_telegram_error(error):
                    raise
                # The class name only: messages of network errors can quote URLs (with the token).
                log.info("%s failed (%s); retry %d in %.1f s", endpoint, type(error).__name__,
                         retry + 1, pause)
                await asyncio.sleep(pause)
                pause *= 2
        raise AssertionError("unreachable")
