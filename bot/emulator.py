"""A local Telegram Bot API emulator for tests and the terminal demo.

:class:`BotApiEmulator` is a small aiohttp server speaking the HTTP Bot API
(``POST /bot<token>/<method>``) closely enough that an unmodified python-telegram-bot
``Application`` can run against it with long polling, or with a webhook: after ``setWebhook``
it POSTs each update to the URL with the ``X-Telegram-Bot-Api-Secret-Token`` header (a few
tries per update) and ``getUpdates`` answers 409.  It keeps the state of private chats,
validates requests with Telegram's own error texts and lets tests act as users through
:class:`EmulatedUser` (typing text, pressing inline buttons, forging callback data).

Typical use::

    async with BotApiEmulator() as emu:
        app = Application.builder().token(emu.token).base_url(emu.base_url).build()
        ...  # initialize, start, updater.start_polling(poll_interval=0, timeout=1)
        alice = emu.user(1001, first_name="Alice")
        reaction = await alice.start("TOKEN")
        assert "Welcome" in reaction.text
        await alice.press("Claim for myself")

Only what a private-chat text bot needs is emulated: text messages, inline keyboards,
callback queries, commands and chat actions.  Other Bot API methods answer 404 like an
unknown method would.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from bot import emulator_media

__all__ = [
    "ApiCall",
    "BotApiEmulator",
    "Button",
    "CallbackAnswer",
    "ChatEvent",
    "ChatMessage",
    "EmulatedUser",
    "Reaction",
]

MAX_TEXT_LENGTH = 4096  # UTF-16 code units, counted after entity parsing
MAX_CALLBACK_DATA_BYTES = 64
MAX_INLINE_BUTTONS = 100
MAX_CALLBACK_ANSWER_LENGTH = 200

# Methods whose effect in a chat counts as "the bot reacted" when settling a user action.
_REACTING_METHODS = frozenset(
    {"sendMessage", "editMessageText", "editMessageReplyMarkup", "deleteMessage",
     "answerCallbackQuery", *emulator_media.REACTING_METHODS}
)  # fmt: skip

# Inline keyboard button fields that give a button its action; Telegram wants exactly one.
_BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)

# Update types Telegram delivers when allowed_updates was never given (or given as []).
_DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

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

_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
_QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
    "the webhook first"
)
_SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# Tries to deliver one update to a webhook before giving up on it (Telegram tries for longer).
WEBHOOK_ATTEMPTS = 4
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
# A bot command is "/" + up to 32 word characters, optionally "@botusername", and must start
# the text or follow whitespace (Telegram marks such commands anywhere in a message).
_BOT_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@])")


def _utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's offsets and length limits."""
    return len(text.encode("utf-16-le")) // 2


class _ApiError(Exception):
    """An error answer of the Bot API (HTTP status == error_code)."""

    def __init__(self, status: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def _bad_request(text: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {text}")


# --------------------------------------------------------------------------- HTML parse mode


class _EntityParseError(Exception):
    pass


# Telegram understands only these four named entities plus numeric ones; any other "&" is
# kept literally (so "&nbsp;" stays "&nbsp;", unlike in a browser).
_TELEGRAM_ENTITY_RE = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]+|#[xX][0-9a-fA-F]+);")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
}
_SUPPORTED_TAGS = frozenset(_SIMPLE_TAGS) | {"a", "span", "blockquote", "tg-emoji"}


class _TelegramHtml(HTMLParser):
    """Parses Bot API HTML into plain text plus MessageEntity dicts (UTF-16 offsets)."""

    def __init__(self, source: str):
        super().__init__(convert_charrefs=False)
        self._source = source
        # Escape every "&" Telegram would not decode, remembering where the 4 extra characters
        # went so that error offsets still refer to the original text.
        parts: list[str] = []
        self._inserted: list[int] = []
        last = 0
        length = 0
        for match in re.finditer("&", source):
            if _TELEGRAM_ENTITY_RE.match(source, match.start()):
                continue
            chunk = source[last : match.end()]
            parts.append(chunk)
            length += len(chunk)
            self._inserted.append(length)
            parts.append("amp;")
            length += 4
            last = match.end()
        parts.append(source[last:])
        self._processed = "".join(parts)
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", self._processed)]
        self._text: list[str] = []
        self._pos = 0  # UTF-16 offset of the end of the plain text so far
        self._stack: list[tuple[str, int, dict[str, str | None]]] = []
        self.entities: list[dict[str, Any]] = []

    def run(self) -> str:
        self.feed(self._processed)
        self.close()
        if self._stack:
            raise _EntityParseError(
                f'Can\'t find end tag corresponding to start tag "{self._stack[-1][0]}"'
            )
        return "".join(self._text)

    def _byte_offset(self, extra_chars: int = 0) -> int:
        line, col = self.getpos()
        index = self._line_starts[line - 1] + col + extra_chars
        index -= 4 * bisect.bisect_right(self._inserted, index)
        return len(self._source[:index].encode())

    def _append(self, text: str) -> None:
        self._text.append(text)
        self._pos += _utf16_len(text)

    def handle_data(self, data: str) -> None:
        if "<" in data:
            # html.parser passes a stray "<" on as text; Telegram rejects it.
            index = data.index("<")
            offset = self._byte_offset(index)
            if re.match(r"</?[A-Za-z]", data[index:]):
                raise _EntityParseError(f"Unclosed start tag at byte offset {offset}")
            raise _EntityParseError(f'Unsupported start tag "" at byte offset {offset}')
        self._append(data)

    def handle_entityref(self, name: str) -> None:
        self._append(_NAMED_ENTITIES[name])

    def handle_charref(self, name: str) -> None:
        code = int(name[1:], 16) if name[:1] in "xX" else int(name)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF or code == 0:
            code = 0xFFFD
        self._append(chr(code))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        offset = self._byte_offset()
        if tag not in _SUPPORTED_TAGS:
            raise _EntityParseError(f'Unsupported start tag "{tag}" at byte offset {offset}')
        attributes = dict(attrs)
        if tag == "span" and attributes.get("class") != "tg-spoiler":
            raise _EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {offset}'
            )
        if tag == "tg-emoji" and not attributes.get("emoji-id"):
            raise _EntityParseError(
                f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {offset}'
            )
        self._stack.append((tag, self._pos, attributes))

    def handle_endtag(self, tag: str) -> None:
        offset = self._byte_offset()
        if not self._stack:
            raise _EntityParseError(f"Unexpected end tag at byte offset {offset}")
        open_tag, start, attributes = self._stack.pop()
        if open_tag != tag:
            raise _EntityParseError(
                f'Unmatched end tag at byte offset {offset}, expected "</{open_tag}>", '
                f'found "</{tag}>"'
            )
        self._add_entity(tag, start, attributes)

    def _add_entity(self, tag: str, start: int, attributes: dict[str, str | None]) -> None:
        length = self._pos - start
        if tag == "code" and self._stack and self._stack[-1][0] == "pre":
            # <pre><code class="language-x"> yields one pre entity with a language.
            css = attributes.get("class") or ""
            if css.startswith("language-") and self._stack[-1][1] == start:
                self._stack[-1][2]["__language"] = css[len("language-") :]
                return
        entity: dict[str, Any]
        if tag in _SIMPLE_TAGS:
            entity = {"type": _SIMPLE_TAGS[tag]}
            if tag == "pre" and attributes.get("__language"):
                entity["language"] = attributes["__language"]
        elif tag == "span":
            entity = {"type": "spoiler"}
        elif tag == "blockquote":
            expandable = "expandable" in attributes
            entity = {"type": "expandable_blockquote" if expandable else "blockquote"}
        elif tag == "tg-emoji":
            entity = {"type": "custom_emoji", "custom_emoji_id": attributes["emoji-id"]}
        else:  # "a"
            href = attributes.get("href")
            if not href:
                return  # Telegram silently drops links without a target
            entity = {"type": "text_link", "url": href}
        if length > 0:
            entity = {"offset": start, "length": length, **entity}
            self.entities.append(entity)

    def handle_comment(self, data: str) -> None:
        raise _EntityParseError(f'Unsupported start tag "!--" at byte offset {self._byte_offset()}')

    def handle_decl(self, decl: str) -> None:
        raise _EntityParseError(f'Unsupported start tag "!" at byte offset {self._byte_offset()}')

    def handle_pi(self, data: str) -> None:
        raise _EntityParseError(f'Unsupported start tag "?" at byte offset {self._byte_offset()}')

    def unknown_decl(self, data: str) -> None:
        self.handle_decl(data)


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Bot API HTML into ``(plain_text, entities)``; raises a 400 :class:`_ApiError`."""
    parser = _TelegramHtml(source)
    try:
        text = parser.run()
    except _EntityParseError as exc:
        raise _bad_request(f"can't parse entities: {exc}") from None
    return text, sorted(parser.entities, key=lambda e: (e["offset"], -e["length"]))


def _strip_text(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram trims leading/trailing whitespace of message texts and shifts entities."""
    stripped_left = text.lstrip()
    shift = _utf16_len(text) - _utf16_len(stripped_left)
    result = stripped_left.rstrip()
    limit = _utf16_len(result)
    out = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, limit)
        if end > start:
            out.append({**entity, "offset": start, "length": end - start})
    return result, out


# --------------------------------------------------------------------------- public records


@dataclass
class ApiCall:
    """One HTTP request the bot made (filled in with the answer once handled)."""

    method: str
    params: dict[str, Any]
    time: float  # time.monotonic() when the request arrived
    seq: int
    chat_id: int | None = None
    status: int | None = None  # HTTP status; None while running, 499 if the client hung up
    result: Any = None
    description: str | None = None  # error description for failed calls

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class Button:
    """An inline keyboard button as the user sees it."""

    text: str
    callback_data: str | None = None
    url: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class ChatMessage:
    """A snapshot of a message in a private chat."""

    message_id: int
    chat_id: int
    text: str
    html: str | None  # the raw HTML when sent with parse_mode HTML
    buttons: list[list[Button]]
    edited: bool
    date: int
    from_bot: bool = True
    deleted: bool = False
    entities: list[dict[str, Any]] = field(default_factory=list, repr=False)
    parse_mode: str | None = field(default=None, repr=False)
    reply_markup: dict[str, Any] | None = field(default=None, repr=False)
    # A photo or document message: type, file_id, file_unique_id… (its caption is ``text``).
    media: dict[str, Any] | None = None

    def button_texts(self) -> list[str]:
        """All button texts, row by row."""
        return [button.text for row in self.buttons for button in row]

    def button(self, text: str) -> Button:
        """The button whose text equals `text` or, failing that, uniquely contains it."""
        return _find_button(self, text)

    def __str__(self) -> str:
        return self.text


@dataclass
class ChatEvent:
    """One entry of a chat's record: what the user or the bot did."""

    seq: int
    time: float
    kind: str  # user_message, callback_query, bot_message, edit, delete, callback_answer, ...
    message_id: int | None = None
    text: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class CallbackAnswer:
    """The bot's answerCallbackQuery for a pressed button."""

    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int | None = None


@dataclass
class Reaction:
    """What the bot did in one chat in answer to one user update."""

    sent: list[ChatMessage]  # new messages, as they stand now (deleted ones flagged)
    edited: list[ChatMessage]  # older messages edited during the reaction
    callback_answer: CallbackAnswer | None = None
    deleted: list[int] = field(default_factory=list)  # ids of messages the bot deleted
    calls: list[ApiCall] = field(default_factory=list, repr=False)  # all calls for the chat
    errors: list[ApiCall] = field(default_factory=list)  # those calls that failed

    @property
    def text(self) -> str:
        """Texts of the sent and edited (not deleted) messages, joined with newlines."""
        return "\n".join(m.text for m in [*self.sent, *self.edited] if not m.deleted)

    @property
    def last(self) -> ChatMessage:
        """The newest message sent or edited in this reaction."""
        messages = [m for m in [*self.sent, *self.edited] if not m.deleted]
        if not messages:
            raise AssertionError(f"the bot sent or edited no message (calls: {self.calls})")
        return max(messages, key=lambda m: m.message_id)


def _find_button(message: ChatMessage, label: str) -> Button:
    buttons = [button for row in message.buttons for button in row]
    exact = [b for b in buttons if b.text == label]
    if len(exact) == 1:
        return exact[0]
    partial = exact or [b for b in buttons if label in b.text]
    if len(partial) == 1:
        return partial[0]
    available = ", ".join(repr(b.text) for b in buttons) or "none"
    problem = "is ambiguous" if partial else "matches no button"
    raise AssertionError(
        f"button {label!r} {problem} on message {message.message_id} "
        f"({message.text[:60]!r}); available buttons: {available}"
    )


# --------------------------------------------------------------------------- internal state


@dataclass
class _StoredMessage:
    message_id: int
    chat_id: int
    from_bot: bool
    date: int
    text: str
    seq: int
    entities: list[dict[str, Any]] = field(default_factory=list)
    html: str | None = None
    parse_mode: str | None = None
    inline_keyboard: list[list[dict[str, Any]]] | None = None
    reply_to: int | None = None
    edit_date: int | None = None
    deleted: bool = False
    version: int = 0
    media: dict[str, Any] | None = None  # see bot/emulator_media.py


@dataclass
class _PendingUpdate:
    update_id: int
    kind: str
    payload: dict[str, Any]
    chat_id: int
    fetched_seq: int | None = None


@dataclass
class _Query:
    chat_id: int
    message_id: int
    data: str
    answered: bool = False


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int = 1
    last_error_date: int | None = None
    last_error_message: str | None = None


class _Chat:
    """Everything the emulator knows about one private chat."""

    def __init__(self, user_id: int):
        self.id = user_id
        self.started = False  # the user has written to the bot at least once
        self.next_message_id = 1  # message ids in a private chat are shared by both sides
        self.messages: dict[int, _StoredMessage] = {}
        self.calls: list[ApiCall] = []
        self.events: list[ChatEvent] = []
        self.last_call_time = 0.0
        self.reply_keyboard: list[list[str]] | None = None
        self.menu_button: dict[str, Any] | None = None  # None: the bot's default


# --------------------------------------------------------------------------- the emulator


class BotApiEmulator:
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
            }.items()
        }
        emulator_media.install(self)  # sendPhoto, sendDocument, editMessageMedia …

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
            data.update(emulator_media.media_json(message))
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
            raw.update({k: v if isinstance(v, str) else emulator_media.read_upload(v)
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

    # ----------------------------------------------------------------- internals: params

    @staticmethod
    def _int_param(params: dict[str, Any], name: str, missing: str) -> int:
        value = params.get(name)
        if value is None or value == "":
            raise _bad_request(missing)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise _bad_request(f"invalid {name} specified")
        try:
            return int(value)
        except ValueError:
            raise _bad_request(f"invalid {name} specified") from None

    def _private_chat(self, params: dict[str, Any], *, sending: bool = False) -> _Chat:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        if not isinstance(chat_id, int) or chat_id not in self._chats:
            raise _bad_request("chat not found")
        chat = self._chats[chat_id]
        if sending:
            if self._users[chat_id].blocked:
                raise _ApiError(403, "Forbidden: bot was blocked by the user")
            if not chat.started:
                raise _ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        return chat

    @staticmethod
    def _text_param(params: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str | None, str]:
        """Validate text/parse_mode/entities: (plain text, entities, html, parse mode)."""
        raw = params.get("text")
        raw = "" if raw is None else str(raw)
        parse_mode = str(params.get("parse_mode") or "")
        html: str | None = None
        if parse_mode.lower() == "html":
            html = raw
            text, entities = parse_html(raw)
        elif parse_mode.lower() in ("", "markdown", "markdownv2"):
            # Markdown is accepted but not interpreted by this emulator.
            text = raw
            entities = _explicit_entities(params.get("entities")) if not parse_mode else []
        else:
            raise _bad_request(f"unsupported parse_mode {parse_mode!r}")
        text, entities = _strip_text(text, entities)
        if not text:
            raise _bad_request("message text is empty")
        if _utf16_len(text) > MAX_TEXT_LENGTH:
            raise _bad_request("message is too long")
        return text, entities, html, parse_mode or None

    # ----------------------------------------------------------------- Bot API methods

    def _true(self, params: dict[str, Any], call: ApiCall) -> bool:
        return True

    def _get_me(self, params: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        return {
            **self._bot_user_json(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

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

    @staticmethod
    def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
        if isinstance(scope, dict):
            scope_key = json.dumps(scope, sort_keys=True)
        else:
            scope_key = json.dumps({"type": "default"})
        return scope_key, str(language_code or "")

    def _set_my_commands(self, params: dict[str, Any], call: ApiCall) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad_request("too many commands specified")
        cleaned = []
        for command in commands:
            if not isinstance(command, dict):
                raise _bad_request("can't parse BotCommand")
            name = str(command.get("command", "")).lstrip("/")
            description = str(command.get("description", "")).strip()
            if not _COMMAND_RE.match(name):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise _bad_request("command description must be non-empty")
            cleaned.append({"command": name, "description": description})
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        if cleaned:
            self._commands[key] = cleaned
        else:
            self._commands.pop(key, None)
        return True

    def _get_my_commands(self, params: dict[str, Any], call: ApiCall) -> list[dict]:
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        return list(self._commands.get(key, []))

    def _delete_my_commands(self, params: dict[str, Any], call: ApiCall) -> bool:
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        self._commands.pop(key, None)
        return True

    def _send_message(self, params: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        chat = self._private_chat(params, sending=True)
        text, entities, html, parse_mode = self._text_param(params)
        markup = _parse_reply_markup(params.get("reply_markup"))
        reply_to = self._reply_target(chat, params)
        message = _StoredMessage(
            message_id=chat.next_message_id,
            chat_id=chat.id,
            from_bot=True,
            date=int(time.time()),
            text=text,
            seq=self._next_seq(),
            entities=entities,
            html=html,
            parse_mode=parse_mode,
            inline_keyboard=markup.get("inline_keyboard") if markup else None,
            reply_to=reply_to,
        )
        if markup and "keyboard" in markup:
            chat.reply_keyboard = [[b["text"] for b in row] for row in markup["keyboard"]]
        elif markup and markup.get("remove_keyboard"):
            chat.reply_keyboard = None
        chat.next_message_id += 1
        chat.messages[message.message_id] = message
        self._record(chat, "bot_message", message_id=message.message_id, text=text)
        return self._message_json(message)

    def _reply_target(self, chat: _Chat, params: dict[str, Any]) -> int | None:
        reply = params.get("reply_parameters")
        allow_missing = bool(params.get("allow_sending_without_reply"))
        target = params.get("reply_to_message_id")
        if isinstance(reply, dict):
            target = reply.get("message_id")
            allow_missing = bool(reply.get("allow_sending_without_reply", allow_missing))
        if target is None:
            return None
        message = chat.messages.get(target) if isinstance(target, int) else None
        if message is None or message.deleted:
            if allow_missing:
                return None
            raise _bad_request("message to be replied not found")
        return message.message_id

    def _message_to_edit(self, params: dict[str, Any]) -> _StoredMessage:
        if params.get("inline_message_id"):
            # Inline mode is not emulated, so no inline message can exist.
            raise _bad_request("message to edit not found")
        chat = self._private_chat(params)
        message_id = self._int_param(params, "message_id", "message identifier is not specified")
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise _bad_request("message to edit not found")
        if not message.from_bot:
            raise _bad_request("message can't be edited")
        return message

    def _apply_edit(self, message: _StoredMessage, kind: str) -> dict[str, Any]:
        message.edit_date = int(time.time())
        message.version += 1
        chat = self._chats[message.chat_id]
        self._record(chat, kind, message_id=message.message_id, text=message.text)
        return self._message_json(message)

    def _edit_message_text(self, params: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        message = self._message_to_edit(params)
        if message.media is not None:
            raise _bad_request("there is no text in the message to edit")
        text, entities, html, parse_mode = self._text_param(params)
        keyboard = _inline_keyboard_param(params.get("reply_markup"))
        # Quirk: an edit without reply_markup removes the message's inline keyboard.
        if (text, entities, keyboard) == (message.text, message.entities, message.inline_keyboard):
            raise _bad_request(_NOT_MODIFIED[len("Bad Request: ") :])
        message.text, message.entities, message.inline_keyboard = text, entities, keyboard
        message.html, message.parse_mode = html, parse_mode
        return self._apply_edit(message, "edit")

    def _edit_message_reply_markup(self, params: dict[str, Any], call: ApiCall) -> dict:
        message = self._message_to_edit(params)
        keyboard = _inline_keyboard_param(params.get("reply_markup"))
        if keyboard == message.inline_keyboard:
            raise _bad_request(_NOT_MODIFIED[len("Bad Request: ") :])
        message.inline_keyboard = keyboard
        return self._apply_edit(message, "edit_markup")

    def _delete_message(self, params: dict[str, Any], call: ApiCall) -> bool:
        chat = self._private_chat(params)
        message_id = self._int_param(params, "message_id", "message identifier is not specified")
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise _bad_request("message to delete not found")
        message.deleted = True
        message.version += 1
        self._record(chat, "delete", message_id=message_id, text=message.text)
        return True

    def _answer_callback_query(self, params: dict[str, Any], call: ApiCall) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        query = self._queries.get(query_id)
        if query is None or query.answered:
            raise _bad_request(_QUERY_INVALID[len("Bad Request: ") :])
        text = params.get("text")
        if text is not None and len(str(text)) > MAX_CALLBACK_ANSWER_LENGTH:
            raise _bad_request("MESSAGE_TOO_LONG")
        url = params.get("url")
        if url is not None and not _valid_button_url(str(url)):
            raise _bad_request("URL_INVALID")
        query.answered = True
        answer = CallbackAnswer(
            text=str(text) if text else None,
            show_alert=bool(params.get("show_alert")),
            url=str(url) if url else None,
            cache_time=params.get("cache_time"),
        )
        self._record(
            self._chats[query.chat_id],
            "callback_answer",
            message_id=query.message_id,
            text=answer.text,
            data={"answer": answer, "query_id": query_id},
        )
        return True

    def _set_chat_menu_button(self, params: dict[str, Any], call: ApiCall) -> bool:
        """A chat's menu button (only private chats here); without chat_id, the default."""
        button = params.get("menu_button") or {"type": "default"}
        kind = button.get("type") if isinstance(button, dict) else None
        if kind == "web_app":
            if not isinstance(button.get("text"), str) or not button["text"].strip():
                raise _bad_request("can't parse menu button: text must be non-empty")
            button = {"type": "web_app", "text": button["text"],
                      "web_app": _web_app_info(button.get("web_app"), "menu button")}
        elif kind in ("commands", "default"):
            button = {"type": kind}
        else:
            raise _bad_request("can't parse menu button: unsupported type")
        if params.get("chat_id") in (None, ""):
            self.default_menu_button = button
        else:
            self._private_chat(params).menu_button = button
        return True

    def _get_chat_menu_button(self, params: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        if params.get("chat_id") in (None, ""):
            return self.default_menu_button
        return self._private_chat(params).menu_button or self.default_menu_button

    def _send_chat_action(self, params: dict[str, Any], call: ApiCall) -> bool:
        chat = self._private_chat(params, sending=True)
        action = params.get("action")
        if not action:
            raise _bad_request("action is empty")
        if action not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        self._record(chat, "chat_action", data={"action": action})
        return True


def _default_description(status: int) -> str:
    return {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden: bot was blocked by the user",
        404: "Not Found",
        409: "Conflict",
        429: "Too Many Requests",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }.get(status, f"Error {status}")


def _explicit_entities(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad_request("can't parse entities JSON object")
    entities = []
    for entity in value:
        if not (
            isinstance(entity, dict)
            and isinstance(entity.get("type"), str)
            and isinstance(entity.get("offset"), int)
            and isinstance(entity.get("length"), int)
        ):
            raise _bad_request("can't parse MessageEntity")
        if entity["length"] > 0 and entity["offset"] >= 0:
            entities.append(dict(entity))
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def _web_app_info(value: Any, where: str) -> dict[str, Any]:
    """A WebAppInfo as Telegram takes it: an object whose url is HTTPS."""
    url = value.get("url") if isinstance(value, dict) else None
    if not isinstance(url, str) or not url:
        raise _bad_request(f"can't parse {where}: Web App URL must be non-empty")
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise _bad_request(f"{where} Web App URL '{url}' is invalid: Only HTTPS links are allowed")
    return {"url": url}


def _valid_button_url(url: str) -> bool:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return bool(parts.hostname)
    return scheme == "tg" and len(url) > len("tg://")


def _parse_reply_markup(value: Any) -> dict[str, Any] | None:
    """Validate a reply_markup the way the Bot API does; inline keyboards are normalised."""
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in value:
        keyboard = _validate_inline_keyboard(value["inline_keyboard"])
        return {"inline_keyboard": keyboard} if keyboard else {}
    if "keyboard" in value:
        rows = value["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad_request('field "keyboard" of the ReplyKeyboardMarkup must be an Array')
        normalised = [[b if isinstance(b, dict) else {"text": str(b)} for b in row] for row in rows]
        if any(not str(b.get("text", "")) for row in normalised for b in row):
            raise _bad_request("keyboard button text is empty")
        return {"keyboard": normalised}
    if value.get("remove_keyboard") or value.get("force_reply"):
        return dict(value)
    raise _bad_request("can't parse reply keyboard markup JSON object")


def _inline_keyboard_param(value: Any) -> list[list[dict[str, Any]]] | None:
    """The inline keyboard of an edit request (edits accept only inline keyboards)."""
    markup = _parse_reply_markup(value)
    if markup and "inline_keyboard" not in markup:
        raise _bad_request("inline keyboard expected")
    return markup.get("inline_keyboard") if markup else None


def _validate_inline_keyboard(rows: Any) -> list[list[dict[str, Any]]]:
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
    if sum(len(row) for row in rows) > MAX_INLINE_BUTTONS:
        raise _bad_request("reply markup is too long")
    keyboard = []
    for row in rows:
        buttons = []
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise _bad_request("can't parse inline keyboard button: Text must be a String")
            if not button["text"].strip():
                raise _bad_request("BUTTON_TEXT_INVALID")
            actions = [name for name in _BUTTON_ACTIONS if button.get(name) is not None]
            if not actions:
                raise _bad_request("text buttons are unallowed in the inline keyboard")
            if len(actions) > 1:
                raise _bad_request(
                    "can't parse inline keyboard button: exactly one of the optional fields "
                    "must be used"
                )
            data = button.get("callback_data")
            if data is not None and (
                not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES
            ):
                raise _bad_request("BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and (not isinstance(url, str) or not _valid_button_url(url)):
                raise _bad_request("BUTTON_URL_INVALID")
            if button.get("web_app") is not None:
                _web_app_info(button["web_app"], "inline keyboard button")
            buttons.append(dict(button))
        if buttons:
            keyboard.append(buttons)
    return keyboard


# --------------------------------------------------------------------------- the user side


class EmulatedUser:
    """A Telegram user chatting privately with the bot (the client side of tests)."""

    def __init__(
        self,
        emulator: BotApiEmulator,
        chat: _Chat,
        user_id: int,
        *,
        first_name: str,
        last_name: str | None,
        username: str | None,
        language_code: str | None,
    ):
        self._emu = emulator
        self._chat = chat
        self.id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code
        self.blocked = False

    def __repr__(self) -> str:
        return f"EmulatedUser(id={self.id}, first_name={self.first_name!r})"

    @property
    def display_name(self) -> str:
        return " ".join(filter(None, [self.first_name, self.last_name]))

    def _user_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data

    def _chat_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        return data

    # ----------------------------------------------------------------- reading the chat

    @property
    def messages(self) -> list[ChatMessage]:
        """The bot's messages as they stand now (edits applied, deletes removed), oldest first."""
        return [
            self._emu._snapshot(m)
            for m in self._chat.messages.values()
            if m.from_bot and not m.deleted
        ]

    @property
    def history(self) -> list[ChatMessage]:
        """All messages of the chat, both sides, including deleted ones (flagged)."""
        return [self._emu._snapshot(m) for m in self._chat.messages.values()]

    @property
    def events(self) -> list[ChatEvent]:
        """The chat's full record: user actions, bot messages, edits, answers, errors."""
        return list(self._chat.events)

    @property
    def calls(self) -> list[ApiCall]:
        """Every API call the bot made for this chat."""
        return list(self._chat.calls)

    @property
    def menu_button(self) -> dict[str, Any] | None:
        """The menu button the bot set for this chat, if any."""
        return self._chat.menu_button

    @property
    def reply_keyboard(self) -> list[list[str]] | None:
        """The custom reply keyboard currently shown to the user, if any."""
        return self._chat.reply_keyboard

    @property
    def last(self) -> ChatMessage:
        """The newest bot message."""
        messages = self.messages
        if not messages:
            raise AssertionError(f"the bot has sent no message to user {self.id}")
        return messages[-1]

    def find(self, substring: str) -> ChatMessage:
        """The newest bot message containing `substring`."""
        for message in reversed(self.messages):
            if substring in message.text:
                return message
        texts = "\n---\n".join(m.text for m in self.messages[-10:]) or "(none)"
        raise AssertionError(f"no bot message contains {substring!r}; recent messages:\n{texts}")

    def transcript(self, last: int = 20) -> str:
        """A readable log of the last `last` chat events (for failure messages)."""
        lines = []
        for event in self._chat.events[-last:]:
            detail = event.text if event.text is not None else event.data
            lines.append(f"{event.kind}#{event.message_id or ''}: {detail!r}")
        return "\n".join(lines)

    def mark(self) -> int:
        """A marker for :meth:`wait_for_message` (only messages after it count)."""
        return self._emu._next_seq()

    # ----------------------------------------------------------------- acting

    def block(self) -> None:
        """Block the bot: its sendMessage calls to this user fail with 403."""
        self.blocked = True

    def unblock(self) -> None:
        """Unblock the bot again."""
        self.blocked = False

    async def send(self, text: str, *, timeout: float = 5.0) -> Reaction:  # noqa: ASYNC109
        """Type `text` and wait for the bot's reaction."""
        update = self._post_text(text)
        return await self._await_reaction(update, timeout, f"message {text!r}")

    async def start(self, parameter: str | None = None, **kw: Any) -> Reaction:
        """Send ``/start`` or ``/start <parameter>`` (what a t.me deep link does)."""
        return await self.send("/start" if parameter is None else f"/start {parameter}", **kw)

    async def press(
        self,
        button: str | Button,
        *,
        message: ChatMessage | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Reaction:
        """Press an inline button (by text, exact or unique substring) and wait for the bot.

        The button is looked up on the message as it is *now* (a user only sees the
        current keyboard); by default on the newest text message that has one.
        """
        stored = self._keyboard_message(message)
        current = self._emu._snapshot(stored)
        if isinstance(button, Button):
            found = [b for row in current.buttons for b in row if b == button]
            if not found:
                raise AssertionError(
                    f"button {button.text!r} is not on message {stored.message_id} any more; "
                    f"available: {current.button_texts()}"
                )
            chosen = found[0]
        else:
            chosen = _find_button(current, button)
        if chosen.callback_data is None:
            target = chosen.url or next(iter(set(chosen.raw) - {"text"}), "?")
            raise AssertionError(
                f"button {chosen.text!r} is not a callback button ({target}); "
                "pressing it sends nothing to the bot"
            )
        return await self._press_data(stored, chosen.callback_data, timeout)

    async def press_data(
        self,
        callback_data: str,
        *,
        message: ChatMessage | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Reaction:
        """Send arbitrary (possibly forged) callback data as if from a button on `message`."""
        stored = self._keyboard_message(message, require_keyboard=False)
        return await self._press_data(stored, callback_data, timeout)

    def post_text(self, text: str) -> int:
        """Type `text` without waiting for the bot; returns the update's id. For load
        generators, which follow the bot through ``BotApiEmulator.on_call_answered``."""
        return self._post_text(text).update_id

    def post_press_data(self, callback_data: str, *, message: ChatMessage | None = None) -> int:
        """Send `callback_data` as if from a button on `message` (default: the newest bot
        message with a keyboard) without waiting; returns the update's id."""
        stored = self._keyboard_message(message, require_keyboard=False)
        return self._post_press(stored, callback_data)[0].update_id

    async def wait_for_message(
        self,
        predicate: Callable[[ChatMessage], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        since: int | None = None,
    ) -> ChatMessage:
        """Wait for a new bot message matching `predicate` and return it.

        "New" means sent after this call, or after ``since`` (a :meth:`mark`).  Take a mark
        before an action whose side effects you then wait for in *another* chat: they may
        already have arrived while the action settled.
        """
        marker = self.mark() if since is None else since
        deadline = time.monotonic() + timeout
        while True:
            for stored in self._chat.messages.values():
                if stored.from_bot and not stored.deleted and stored.seq > marker:
                    snapshot = self._emu._snapshot(stored)
                    if predicate is None or predicate(snapshot):
                        return snapshot
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                news = [
                    m.text for m in self._chat.messages.values() if m.from_bot and m.seq > marker
                ]
                raise AssertionError(
                    f"no matching new message for user {self.id} within {timeout}s; "
                    f"new messages: {news!r}"
                )
            await self._emu._wait_activity(remaining)

    # ----------------------------------------------------------------- internals

    def _post_text(self, text: str) -> _PendingUpdate:
        emu, chat = self._emu, self._chat
        # Telegram clients trim what the user typed and refuse to send nothing.
        text = text.strip()
        if not text:
            raise AssertionError("a Telegram client cannot send an empty message")
        if _utf16_len(text) > MAX_TEXT_LENGTH:
            raise AssertionError("a Telegram client splits texts over 4096 characters")
        self.blocked = False  # writing to a blocked bot means restarting it
        chat.started = True
        entities = [
            {
                "offset": _utf16_len(text[: m.start()]),
                "length": _utf16_len(m.group()),
                "type": "bot_command",
            }
            for m in _BOT_COMMAND_RE.finditer(text)
        ]
        message = _StoredMessage(
            message_id=chat.next_message_id,
            chat_id=chat.id,
            from_bot=False,
            date=int(time.time()),
            text=text,
            seq=emu._next_seq(),
            entities=entities,
        )
        chat.next_message_id += 1
        chat.messages[message.message_id] = message
        emu._record(chat, "user_message", message_id=message.message_id, text=text)
        return emu._enqueue(chat, "message", emu._message_json(message))

    def _keyboard_message(
        self, message: ChatMessage | None, *, require_keyboard: bool = True
    ) -> _StoredMessage:
        if message is not None:
            if message.chat_id != self.id:
                raise AssertionError(
                    f"user {self.id} cannot press buttons on a message of chat {message.chat_id}"
                )
            stored = self._chat.messages.get(message.message_id)
            if stored is None or stored.deleted:
                raise AssertionError(f"message {message.message_id} was deleted")
            if not stored.from_bot:
                raise AssertionError(f"message {message.message_id} is the user's own message")
            return stored
        bot_messages = [m for m in self._chat.messages.values() if m.from_bot and not m.deleted]
        # Screens are text messages; a ticket picture the background sent meanwhile would race
        # with them, so its buttons are pressed by passing it (or when no screen has any).
        with_keyboard = [m for m in bot_messages if m.inline_keyboard and m.media is None] or [
            m for m in bot_messages if m.inline_keyboard]
        if with_keyboard:
            return with_keyboard[-1]
        if bot_messages and not require_keyboard:
            return bot_messages[-1]
        raise AssertionError(
            f"no bot message with an inline keyboard in the chat of user {self.id}; "
            f"recent chat:\n{self.transcript(8)}"
        )

    async def _press_data(self, stored: _StoredMessage, data: str, limit: float) -> Reaction:
        update, query_id = self._post_press(stored, data)
        return await self._await_reaction(update, limit, f"button data {data!r}", query_id)

    def _post_press(self, stored: _StoredMessage, data: str) -> tuple[_PendingUpdate, str]:
        emu, chat = self._emu, self._chat
        self.blocked = False
        query_id = f"{self.id % 10**6:06d}{next(emu._query_ids):013d}"
        emu._queries[query_id] = _Query(chat.id, stored.message_id, data)
        emu._record(
            chat,
            "callback_query",
            message_id=stored.message_id,
            text=data,
            data={"query_id": query_id},
        )
        payload = {
            "id": query_id,
            "from": self._user_json(),
            "message": emu._message_json(stored),
            # A stable opaque identifier of the chat, as Telegram sends it.
            "chat_instance": str((chat.id * 2654435761 + emu.bot_id) % 10**19),
            "data": data,
        }
        return emu._enqueue(chat, "callback_query", payload), query_id

    async def _await_reaction(
        self, update: _PendingUpdate, limit: float, what: str, query_id: str | None = None
    ) -> Reaction:
        """Wait until the bot reacted in this chat and then stayed quiet for `settle` s."""
        emu, chat = self._emu, self._chat
        deadline = time.monotonic() + limit
        while not self._reacted(update):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                state = (
                    "the update was never fetched - is the bot polling?"
                    if update.fetched_seq is None
                    else "the update was fetched but the bot made no call for this chat"
                )
                raise AssertionError(
                    f"bot did not answer {what} from user {self.id} within {limit}s "
                    f"({state}); recent chat:\n{self.transcript(8)}"
                )
            await emu._wait_activity(remaining)
        quiet_deadline = time.monotonic() + limit
        while True:
            now = time.monotonic()
            quiet_at = chat.last_call_time + emu.settle
            if now >= quiet_at or now >= quiet_deadline:
                break
            await emu._wait_activity(min(quiet_at, quiet_deadline) - now)
        assert update.fetched_seq is not None
        return self._reaction(update.fetched_seq, query_id)

    def _reacted(self, update: _PendingUpdate) -> bool:
        if update.fetched_seq is None:
            return False
        for call in reversed(self._chat.calls):
            if call.seq <= update.fetched_seq:
                return False
            if call.method in _REACTING_METHODS and call.status is not None:
                return True
        return False

    def _reaction(self, after_seq: int, query_id: str | None) -> Reaction:
        emu, chat = self._emu, self._chat
        calls = [c for c in chat.calls if c.seq > after_seq]
        sent: list[int] = []
        edited: list[int] = []
        deleted: list[int] = []
        answer = None
        for call in calls:
            if not call.ok:
                continue
            if call.method in ("sendMessage", "sendPhoto", "sendDocument"):
                sent.append(call.result["message_id"])
            elif call.method in ("editMessageText", "editMessageReplyMarkup",
                                 "editMessageMedia", "editMessageCaption"):
                message_id = call.result["message_id"]
                if message_id not in sent and message_id not in edited:
                    edited.append(message_id)
            elif call.method == "deleteMessage":
                deleted.append(int(call.params["message_id"]))
            elif call.method == "answerCallbackQuery" and (
                query_id is None or str(call.params.get("callback_query_id")) == query_id
            ):
                answer = CallbackAnswer(
                    text=call.params.get("text") or None,
                    show_alert=bool(call.params.get("show_alert")),
                    url=call.params.get("url") or None,
                    cache_time=call.params.get("cache_time"),
                )
        return Reaction(
            sent=[emu._snapshot(chat.messages[i]) for i in sent],
            edited=[emu._snapshot(chat.messages[i]) for i in edited],
            callback_answer=answer,
            deleted=deleted,
            calls=calls,
            errors=[c for c in calls if not c.ok],
        )
