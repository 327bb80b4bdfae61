"""The emulator's server: an aiohttp app answering ``POST /bot<token>/<method>``, its state
(chats, pending updates, calls), its lifecycle and the controls tests use (users, forced
failures). The methods themselves come from the mixins of :mod:`bot.tools.emulator.methods`,
:mod:`bot.tools.emulator.delivery` and :mod:`bot.tools.emulator.media`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.tools.emulator.delivery import UpdateDelivery
from bot.tools.emulator.errors import _ApiError, _bad_request, _default_description
from bot.tools.emulator.media import MediaMethods, MediaStore, media_json, read_upload
from bot.tools.emulator.methods import ChatMethods
from bot.tools.emulator.records import (
    ApiCall,
    Button,
    ChatEvent,
    ChatMessage,
    _Chat,
    _PendingUpdate,
    _Query,
    _StoredMessage,
    _Webhook,
)
from bot.tools.emulator.users import EmulatedUser

# Fields whose form-encoded value PTB JSON-encodes (objects and arrays).
_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "commands",
        "menu_button",
        "scope",
        "allowed_updates",
        "link_preview_options",
        "reply_parameters",
        "suggested_post_parameters",
        "media",  # editMessageMedia's InputMedia
    }
)
_INT_FIELDS = frozenset(
    {
        "message_id",
        "offset",
        "limit",
        "timeout",
        "cache_time",
        "message_thread_id",
        "reply_to_message_id",
        "direct_messages_topic_id",
    }
)
_BOOL_FIELDS = frozenset(
    {
        "show_alert",
        "disable_notification",
        "protect_content",
        "drop_pending_updates",
        "allow_sending_without_reply",
        "disable_web_page_preview",
        "allow_paid_broadcast",
    }
)


class BotApiEmulator(UpdateDelivery, ChatMethods, MediaMethods):
    """An aiohttp server that behaves like api.telegram.org for one bot."""

    def __init__(
        self,
        *,
        token: str = "123456:TEST-TOKEN",
        bot_username: str = "ticketbot_test_bot",
        bot_id: int = 123456,
        host: str = "127.0.0.1",
        port: int = 0,
        settle: float = 0.05,
        bot_first_name: str = "Ticketbot",
    ):
        self.token = token
        self.bot_username = bot_username
        self.bot_id = bot_id
        self.bot_first_name = bot_first_name
        self.host = host
        self.port = port
        self.settle = settle
        self.calls: list[ApiCall] = []
        self._users: dict[int, EmulatedUser] = {}
        self._chats: dict[int, _Chat] = {}
        self._pending: list[_PendingUpdate] = []
        self._update_ids = itertools.count(1)
        self._seq_counter = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._queries: dict[str, _Query] = {}
        self._failures: dict[str, list[tuple[int, int | None, str | None]]] = {}
        self._allowed_updates: set[str] | None = None
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._poll_generation = 0
        self._webhook: _Webhook | None = None
        self.default_menu_button: dict[str, Any] = {"type": "default"}
        self._webhook_task: asyncio.Task[None] | None = None
        # Every webhook delivery attempt: (update_id, HTTP status, or None if no answer).
        self.webhook_attempts: list[tuple[int, int | None]] = []
        # A load balancer in front of several bot processes: when set, webhook deliveries go
        # to these URLs in turn (a failed attempt tries the next) instead of the registered
        # URL, and up to ``webhook_connections`` at once (else setWebhook's max_connections,
        # else one at a time), never two of one chat at once, as Telegram does.
        self.webhook_targets: list[str] | None = None
        self.webhook_connections: int | None = None
        self._target_turn = itertools.count()
        # Observers for load generators (bench/): called with (update_id, chat_id, monotonic
        # time) when an update is first handed out, and with each API call once answered.
        self.on_update_fetched: Callable[[int, int, float], None] | None = None
        self.on_call_answered: Callable[[ApiCall], None] | None = None
        self._activity = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self.media = MediaStore()
        self._methods: dict[str, tuple[str, Callable[[dict[str, Any], ApiCall], Any]]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "sendChatAction": self._send_chat_action,
                "setChatMenuButton": self._set_chat_menu_button,
                "getChatMenuButton": self._get_chat_menu_button,
                "close": self._true,
                "logOut": self._true,
                **self._media_methods(),  # sendPhoto, sendDocument, editMessageMedia …
            }.items()
        }

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind (port 0 picks a free port) and start serving."""
        if self._runner is not None:
            return
        self._closing = False
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: when PTB abandons a long poll (updater.stop), the waiting
        # getUpdates handler is cancelled instead of lingering until its timeout.
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Answer pending long polls and shut the server down."""
        if self._runner is None:
            return
        self._closing = True
        self._notify()
        if self._webhook_task is not None:
            task, self._webhook_task = self._webhook_task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> BotApiEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """The value for ``ApplicationBuilder.base_url`` (PTB appends the token)."""
        if self._runner is None:
            raise RuntimeError("BotApiEmulator is not started")
        return f"http://{self.host}:{self.port}/bot"

    # ----------------------------------------------------------------- test controls

    def user(
        self,
        user_id: int,
        *,
        first_name: str = "Test",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
    ) -> EmulatedUser:
        """The emulated user `user_id` (created on first use, the same object afterwards)."""
        if user_id not in self._users:
            if user_id <= 0 or user_id == self.bot_id:
                raise ValueError(f"invalid user id {user_id}")
            self._chats[user_id] = _Chat(user_id)
            self._users[user_id] = EmulatedUser(
                self,
                self._chats[user_id],
                user_id,
                first_name=first_name,
                last_name=last_name,
                username=username,
                language_code=language_code,
            )
        return self._users[user_id]

    @property
    def users(self) -> list[EmulatedUser]:
        """All users created so far."""
        return list(self._users.values())

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int | None = 1,
        times: int = 1,
        description: str | None = None,
    ) -> None:
        """Make the next `times` calls of `method` fail with HTTP `status`.

        ``retry_after`` is only sent with status 429 (Telegram's flood control), since PTB
        turns any retry_after into RetryAfter regardless of the status code.
        """
        key = method.lower()
        if key not in self._methods:
            raise ValueError(f"unknown Bot API method {method!r}")
        self._failures.setdefault(key, []).extend([(status, retry_after, description)] * times)

    def commands(self, language_code: str = "", scope: dict | None = None) -> list[dict]:
        """The commands set with setMyCommands for a scope/language (default scope)."""
        return list(self._commands.get(self._commands_key(scope, language_code), []))

    @property
    def pending_updates(self) -> int:
        """Updates not yet confirmed by the bot."""
        return len(self._pending)

    # ----------------------------------------------------------------- internals: plumbing

    def _next_seq(self) -> int:
        return next(self._seq_counter)

    def _notify(self) -> None:
        # Wake every waiter; they re-check their own condition.
        self._activity.set()
        self._activity = asyncio.Event()

    async def _wait_activity(self, seconds: float) -> None:
        if seconds <= 0:
            return
        event = self._activity
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    def _bot_user_json(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def _message_json(self, message: _StoredMessage, *, nested: bool = True) -> dict[str, Any]:
        user = self._users[message.chat_id]
        data: dict[str, Any] = {
            "message_id": message.message_id,
            "from": self._bot_user_json() if message.from_bot else user._user_json(),
            "chat": user._chat_json(),
            "date": message.date,
        }
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        if nested and message.reply_to is not None:
            replied = self._chats[message.chat_id].messages.get(message.reply_to)
            if replied is not None and not replied.deleted:
                data["reply_to_message"] = self._message_json(replied, nested=False)
        if message.media is not None:
            data.update(media_json(message))
        else:
            data["text"] = message.text
            if message.entities:
                data["entities"] = message.entities
        if message.inline_keyboard:
            data["reply_markup"] = {"inline_keyboard": message.inline_keyboard}
        return data

    def _snapshot(self, message: _StoredMessage) -> ChatMessage:
        buttons = [
            [
                Button(
                    text=b["text"], callback_data=b.get("callback_data"), url=b.get("url"), raw=b
                )
                for b in row
            ]
            for row in message.inline_keyboard or []
        ]
        return ChatMessage(
            message_id=message.message_id,
            chat_id=message.chat_id,
            text=message.text,
            html=message.html,
            buttons=buttons,
            edited=message.edit_date is not None,
            date=message.date,
            from_bot=message.from_bot,
            deleted=message.deleted,
            entities=[dict(e) for e in message.entities],
            parse_mode=message.parse_mode,
            reply_markup={"inline_keyboard": message.inline_keyboard}
            if message.inline_keyboard
            else None,
            media=dict(message.media) if message.media else None,
        )

    def _record(self, chat: _Chat, kind: str, **kwargs: Any) -> None:
        chat.events.append(ChatEvent(self._next_seq(), time.monotonic(), kind, **kwargs))

    def _enqueue(self, chat: _Chat, kind: str, payload: dict[str, Any]) -> _PendingUpdate:
        update_id = next(self._update_ids)
        update = _PendingUpdate(update_id, kind, {"update_id": update_id, kind: payload}, chat.id)
        self._pending.append(update)
        self._notify()
        return update

    # ----------------------------------------------------------------- internals: HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        match = re.fullmatch(r"/bot([^/]*)/([^/]+)/?", request.path)
        if match is None:
            return self._error_response(_ApiError(404, "Not Found"))
        token, method = match.groups()
        if token != self.token:
            return self._error_response(_ApiError(401, "Unauthorized"))
        canonical, handler = self._methods.get(method.lower(), (method, None))
        call = ApiCall(canonical, {}, time.monotonic(), self._next_seq())
        self.calls.append(call)
        try:
            call.params = await self._read_params(request)
            call.chat_id = self._chat_of_call(canonical, call.params)
            if call.chat_id is not None:
                chat = self._chats[call.chat_id]
                chat.calls.append(call)
                chat.last_call_time = call.time
            if handler is None:
                raise _ApiError(404, "Not Found: method not found")
            self._maybe_fail(canonical)
            result = handler(call.params, call)
            if asyncio.iscoroutine(result):
                result = await result
        except asyncio.CancelledError:
            # The client hung up (PTB cancels its long poll when the updater stops).
            call.status, call.description = 499, "client closed the request"
            raise
        except _ApiError as error:
            call.status, call.description = error.status, error.description
            if call.chat_id is not None:
                chat = self._chats[call.chat_id]
                self._record(chat, "error", text=f"{canonical}: {error.description}")
            self._call_answered(call)
            return self._error_response(error)
        call.status, call.result = 200, result
        self._call_answered(call)
        return web.json_response({"ok": True, "result": result})

    def _call_answered(self, call: ApiCall) -> None:
        if self.on_call_answered is not None:
            self.on_call_answered(call)
        self._notify()

    @staticmethod
    def _error_response(error: _ApiError) -> web.Response:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": error.status,
            "description": error.description,
        }
        if error.parameters:
            body["parameters"] = error.parameters
        return web.json_response(body, status=error.status)

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        """Merge query string and body; decode what PTB sends form-encoded as JSON text."""
        raw: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise _bad_request("JSON object expected")
            raw.update(body)
        elif request.can_read_body:
            form = await request.post()
            # Uploaded files (multipart) are kept for the media methods.
            raw.update({k: v if isinstance(v, str) else read_upload(v)
                        for k, v in form.items()})
        params: dict[str, Any] = {}
        for key, value in raw.items():
            if isinstance(value, str):
                if key in _JSON_FIELDS:
                    with contextlib.suppress(ValueError):
                        value = json.loads(value)
                elif key in _INT_FIELDS or key == "chat_id":
                    with contextlib.suppress(ValueError):
                        value = int(value)
                elif key in _BOOL_FIELDS:
                    value = value.lower() in ("true", "1")
            params[key] = value
        return params

    def _chat_of_call(self, method: str, params: dict[str, Any]) -> int | None:
        chat_id = params.get("chat_id")
        if method == "answerCallbackQuery":
            query = self._queries.get(str(params.get("callback_query_id")))
            chat_id = query.chat_id if query else None
        if isinstance(chat_id, int) and chat_id in self._chats:
            return chat_id
        return None

    def _maybe_fail(self, method: str) -> None:
        queue = self._failures.get(method.lower())
        if not queue:
            return
        status, retry_after, description = queue.pop(0)
        parameters = None
        if status == 429 and retry_after is not None:
            description = description or f"Too Many Requests: retry after {retry_after}"
            parameters = {"retry_after": retry_after}
        raise _ApiError(status, description or _default_description(status), parameters)
