"""What the emulator records: the public snapshots tests read (calls, messages, buttons,
chat events, callback answers, a reaction) and the internal state of chats, messages, pending
updates, callback queries and the webhook."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    media: dict[str, Any] | None = None  # see media.py


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
