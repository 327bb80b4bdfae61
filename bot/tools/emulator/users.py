"""The user side: :class:`EmulatedUser` types texts, presses inline buttons (or forges callback
data) and waits until the bot has reacted and gone quiet, then reports what it did."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from bot.tools.emulator import media
from bot.tools.emulator.errors import _utf16_len
from bot.tools.emulator.records import (
    ApiCall,
    Button,
    CallbackAnswer,
    ChatEvent,
    ChatMessage,
    Reaction,
    _Chat,
    _find_button,
    _PendingUpdate,
    _Query,
    _StoredMessage,
)
from bot.tools.emulator.validation import MAX_TEXT_LENGTH

# Methods whose effect in a chat counts as "the bot reacted" when settling a user action.
_REACTING_METHODS = frozenset(
    {"sendMessage", "editMessageText", "editMessageReplyMarkup", "deleteMessage",
     "answerCallbackQuery", *media.REACTING_METHODS}
)  # fmt: skip

# A bot command is "/" + up to 32 word characters, optionally "@botusername", and must start
# the text or follow whitespace (Telegram marks such commands anywhere in a message).
_BOT_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@])")


class ChatHost(Protocol):
    """What a user needs of the emulator's server (:class:`BotApiEmulator` is one): written
    here so that the user side depends on this contract, not on the server that creates users."""

    bot_id: int
    settle: float
    _queries: dict[str, _Query]
    _query_ids: Iterator[int]

    def _next_seq(self) -> int: ...
    def _snapshot(self, message: _StoredMessage) -> ChatMessage: ...
    def _message_json(self, message: _StoredMessage) -> dict[str, Any]: ...
    def _record(self, chat: _Chat, kind: str, **kwargs: Any) -> None: ...
    def _enqueue(self, chat: _Chat, kind: str, payload: dict[str, Any]) -> _PendingUpdate: ...
    async def _wait_activity(self, seconds: float) -> None: ...


class EmulatedUser:
    """A Telegram user chatting privately with the bot (the client side of tests)."""

    def __init__(
        self,
        emulator: ChatHost,
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
        while not self._reacted(update, query_id):
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

    def _reacted(self, update: _PendingUpdate, query_id: str | None = None) -> bool:
        """Whether the bot has reacted to ``update``. A press counts as handled once its query
        is answered (the bot answers each press once, after its work): a call that another
        task makes in the same chat meanwhile (a ticket photo sent by the background worker)
        must not end the wait before the press's own edit. A message counts at the first
        call in its chat, and so does a press whose reaction failed at Telegram."""
        if update.fetched_seq is None:
            return False
        for call in reversed(self._chat.calls):
            if call.seq <= update.fetched_seq:
                return False
            if call.status is None:
                continue
            # A failed call ends the wait too: the bot may give the press up unanswered.
            if call.method in _REACTING_METHODS and (query_id is None or not call.ok):
                return True
            if (call.method == "answerCallbackQuery"
                    and str(call.params.get("callback_query_id")) == query_id):
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
