"""Parts of Telegram's JSON that no handler reads, dropped before python-telegram-bot parses it.

PTB turns every update and every answer into a tree of objects. The bot's own messages come
back twice with their formatting (a ``MessageEntity`` per bold or italic run) and their
keyboard (an object per button): in the answer to each send or edit, and inside each button
press (``callback_query.message``). Measured on the order screens: parsing a button press took
150–235 µs with them and about 100 without, an answer 115–140 µs and 75, and a press's JSON in
the inbox shrank from about 1.0–1.4 kB to 0.6–0.8 kB. No handler reads them: a screen is
always sent whole, from the store, never rebuilt from the message it replaces.
``tests/test_unread_fields.py`` fails if one starts to.

What the user wrote keeps its entities: a command is recognised by its ``bot_command`` entity.
"""

from __future__ import annotations

from typing import Any

# The fields of one of the bot's own messages that are dropped.
OWN_MESSAGE_EXTRAS = ("entities", "caption_entities", "reply_markup")


def _drop_extras(message: Any) -> None:
    if isinstance(message, dict):
        for field in OWN_MESSAGE_EXTRAS:
            message.pop(field, None)


def trim_update(update: dict[str, Any]) -> dict[str, Any]:
    """The update, in place, without the formatting and keyboard of the bot's message whose
    button was pressed."""
    query = update.get("callback_query")
    if isinstance(query, dict):
        _drop_extras(query.get("message"))
    return update


def trim_answer(result: Any) -> Any:
    """A Bot API answer, in place: a message the bot sent or edited, without its formatting
    and keyboard. Other answers are left as they are."""
    if isinstance(result, dict) and "message_id" in result and "chat" in result:
        _drop_extras(result)
    return result
