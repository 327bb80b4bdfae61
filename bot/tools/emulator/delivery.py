"""How updates reach the bot: ``getUpdates`` long polling, or, once ``setWebhook`` was called,
POSTs to the webhook (a few tries per update, never two of one chat at once, optionally spread
over several bot processes behind a "load balancer").

:class:`UpdateDelivery` is mixed into :class:`~bot.tools.emulator.server.BotApiEmulator` and
works on
its state (pending updates, the webhook, the activity event).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any
from urllib.parse import urlsplit

from aiohttp import ClientError, ClientSession, ClientTimeout

from bot.tools.emulator.errors import _ApiError, _bad_request
from bot.tools.emulator.records import ApiCall, _PendingUpdate, _Webhook

# Update types Telegram delivers when allowed_updates was never given (or given as []).
_DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
    "the webhook first"
)
_SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# Tries to deliver one update to a webhook before giving up on it (Telegram tries for longer).
WEBHOOK_ATTEMPTS = 4


class UpdateDelivery:
    """The Bot API methods and the task that hand updates to the bot."""

    async def _get_updates(self, params: dict[str, Any], call: ApiCall) -> list[dict]:
        if self._webhook is not None:
            raise _ApiError(409, _WEBHOOK_ACTIVE)
        offset = params.get("offset")
        limit = params.get("limit", 100)
        timeout = params.get("timeout", 0)
        if not isinstance(offset, int | type(None)) or not isinstance(limit, int):
            raise _bad_request("invalid offset or limit specified")
        try:
            timeout = max(float(timeout), 0.0)
        except (TypeError, ValueError):
            raise _bad_request("invalid timeout specified") from None
        limit = min(max(limit, 1), 100)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            # "If not specified, the previous setting will be used"; [] means the default.
            self._allowed_updates = set(allowed) or None
        if offset is not None and offset > 0:
            # Updates with update_id < offset are confirmed and forgotten.
            self._pending = [u for u in self._pending if u.update_id >= offset]
        elif offset is not None and offset < 0:
            self._pending = self._pending[offset:]
        # Only one long poll at a time: a newer request terminates an older one with 409.
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()
        deadline = time.monotonic() + timeout
        while True:
            if generation != self._poll_generation:
                raise _ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only "
                    "one bot instance is running",
                )
            self._pending = [u for u in self._pending if self._is_allowed(u.kind)]
            batch = self._pending[:limit]
            if batch or self._closing:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await self._wait_activity(remaining)
        fetch_seq = self._next_seq()
        fetched_at = time.monotonic()
        for update in batch:
            if update.fetched_seq is None:
                update.fetched_seq = fetch_seq
                if self.on_update_fetched is not None:
                    self.on_update_fetched(update.update_id, update.chat_id, fetched_at)
        return [u.payload for u in batch]

    def _is_allowed(self, kind: str) -> bool:
        if self._allowed_updates is None:
            return kind not in _DEFAULT_EXCLUDED_UPDATES
        return kind in self._allowed_updates

    def _delete_webhook(self, params: dict[str, Any], call: ApiCall) -> bool:
        if params.get("drop_pending_updates"):
            self._pending.clear()
        self._webhook = None  # the delivery task notices and ends
        return True

    def _get_webhook_info(self, params: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        pending = len(self._pending)
        info: dict[str, Any] = {
            "url": self._webhook.url if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": pending,
        }
        if self._webhook is not None and self._webhook.last_error_date is not None:
            info["last_error_date"] = self._webhook.last_error_date
            info["last_error_message"] = self._webhook.last_error_message
        return info

    def _set_webhook(self, params: dict[str, Any], call: ApiCall) -> bool:
        url = str(params.get("url") or "").strip()
        if not url:  # "Use an empty string to remove webhook integration"
            return self._delete_webhook(params, call)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # Telegram wants HTTPS; the emulator also takes http for servers on loopback.
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN_RE.match(str(secret)):
            raise _bad_request("secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._pending.clear()
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = set(allowed) or None
        connections = params.get("max_connections")
        self._webhook = _Webhook(url, str(secret) if secret is not None else None,
                                 connections if isinstance(connections, int) else 1)
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.create_task(self._deliver_by_webhook(),
                                                     name="emulator-webhook")
        return True

    async def _deliver_by_webhook(self) -> None:
        """While a webhook is set, POST the pending updates to it in order: one at a time, or
        several at once (``webhook_connections``), each chat's one after another."""
        tasks: set[asyncio.Task[None]] = set()
        busy_chats: set[int] = set()
        try:
            async with ClientSession(timeout=ClientTimeout(total=10)) as session:
                while self._webhook is not None and not self._closing:
                    self._pending = [u for u in self._pending if self._is_allowed(u.kind)]
                    hook = self._webhook
                    room = (self.webhook_connections or hook.max_connections) - len(tasks)
                    update = next((u for u in self._pending if u.chat_id not in busy_chats),
                                  None) if room > 0 else None
                    if update is None:
                        await self._wait_activity(1.0)
                        continue
                    busy_chats.add(update.chat_id)
                    task = asyncio.create_task(self._deliver_one(session, hook, update))
                    tasks.add(task)
                    task.add_done_callback(
                        lambda done, chat=update.chat_id: (
                            tasks.discard(done), busy_chats.discard(chat), self._notify()))
                if tasks:
                    await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for task in tasks:
                task.cancel()

    async def _deliver_one(self, session: ClientSession, hook: _Webhook,
                           update: _PendingUpdate) -> None:
        delivered = await self._post_update(session, hook, update)
        if delivered or self._webhook is hook:
            # Delivered, or refused every time: move on to the next update. (If the
            # webhook was removed meanwhile, the update waits for getUpdates.)
            with contextlib.suppress(ValueError):
                self._pending.remove(update)

    async def _post_update(
        self, session: ClientSession, hook: _Webhook, update: _PendingUpdate
    ) -> bool:
        headers = {}
        if hook.secret_token is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        if update.fetched_seq is None:
            # Marked before the POST: the bot may react before it answers the request.
            update.fetched_seq = self._next_seq()
            if self.on_update_fetched is not None:
                self.on_update_fetched(update.update_id, update.chat_id, time.monotonic())
        turn = next(self._target_turn)
        for attempt in range(WEBHOOK_ATTEMPTS):
            if self._webhook is not hook or self._closing:
                return False
            status: int | None = None
            targets = self.webhook_targets or [hook.url]
            url = targets[(turn + attempt) % len(targets)]  # a failed attempt: the next one
            try:
                async with session.post(url, json=update.payload, headers=headers) as answer:
                    status = answer.status
                    error = f"Wrong response from the webhook: {answer.status} {answer.reason}"
            except (ClientError, TimeoutError) as exc:
                error = f"Connection failed: {type(exc).__name__}"
            self.webhook_attempts.append((update.update_id, status))
            if status is not None and 200 <= status < 300:
                return True
            hook.last_error_date, hook.last_error_message = int(time.time()), error
            await asyncio.sleep(0.05 * 2**attempt)
        return False
