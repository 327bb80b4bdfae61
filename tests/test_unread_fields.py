"""The formatting and keyboard of the bot's own messages are dropped before parsing
(``bot/unread_fields.py``): from button presses as the inbox keeps them, and from the answers to
sends and edits. What the user wrote keeps its entities, and no handler reads what is dropped."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import select
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot.unread_fields import OWN_MESSAGE_EXTRAS, trim_answer, trim_update
from conversations.common import ignoring_sent_message
from storage.models import UpdateInbox
from tests.conftest import sample_document

BUYER = 3101
ROOT = Path(__file__).resolve().parent.parent


def sent_updates(harness) -> dict[int, dict]:
    """Every update as the emulator sent it, by id."""
    return {raw["update_id"]: raw for call in harness.emulator.calls
            if call.method.lower() == "getupdates" and call.ok for raw in call.result}


async def test_a_button_press_is_kept_without_the_formatting_and_keyboard_of_its_message(harness):
    await harness.import_orders(sample_document(tickets=2, language="en"))
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="en")
    await buyer.start(await harness.order_link("DF-100000"))
    await buyer.press("T-DF-100000-1")

    async with harness.store.read() as session:
        kept = dict((await session.execute(
            select(UpdateInbox.update_id, UpdateInbox.payload)
            .where(UpdateInbox.chat_id == BUYER))).all())
    sent = sent_updates(harness)
    presses = [update_id for update_id, payload in kept.items() if "callback_query" in payload]
    assert len(presses) == 1
    (press,) = presses
    as_sent = sent[press]["callback_query"]["message"]
    assert as_sent["entities"] and as_sent["reply_markup"], "the emulator sends them, as Telegram"
    as_kept = kept[press]["callback_query"]["message"]
    assert not set(OWN_MESSAGE_EXTRAS) & set(as_kept)
    assert as_kept["message_id"] == as_sent["message_id"] and as_kept["text"] == as_sent["text"]
    # The user's own /start keeps its bot_command entity.
    (start,) = [payload for payload in kept.values() if "message" in payload]
    assert start["message"]["entities"][0]["type"] == "bot_command"


async def test_a_sent_message_is_answered_without_its_formatting_and_keyboard(harness):
    buyer = harness.user(BUYER, "Camille")
    await buyer.send("/help")
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Open", callback_data="x")]])
    message = await harness.application.bot.send_message(
        BUYER, "<b>Bold</b> and plain", parse_mode=ParseMode.HTML, reply_markup=markup)
    (call,) = [c for c in harness.emulator.calls if c.method == "sendMessage"
               and c.ok and c.result["message_id"] == message.message_id]
    assert call.result["entities"] and call.result["reply_markup"]
    assert message.text == "Bold and plain" and message.chat.id == BUYER
    assert message.entities == () and message.reply_markup is None


async def test_a_send_or_edit_whose_message_is_ignored_answers_true(harness):
    buyer = harness.user(BUYER, "Camille")
    await buyer.send("/help")
    bot = harness.application.bot
    with ignoring_sent_message():
        assert await bot.send_message(BUYER, "<b>Sent</b>", parse_mode=ParseMode.HTML) is True
        (sent,) = [c for c in harness.emulator.calls if c.method == "sendMessage"
                   and c.ok and c.result["text"] == "Sent"]
        assert await bot.edit_message_text("Edited", chat_id=BUYER,
                                           message_id=sent.result["message_id"]) is True
        with pytest.raises(BadRequest):  # Telegram's refusals still arrive
            await bot.edit_message_text("Edited", chat_id=BUYER, message_id=999_999)
    assert buyer.last.text == "Edited" and buyer.last.edited
    message = await bot.send_message(BUYER, "Read")
    assert isinstance(message, Message) and message.text == "Read"


async def test_a_screen_shown_on_a_button_press_is_not_parsed_back(harness, monkeypatch):
    await harness.import_orders(sample_document(tickets=2, language="en"))
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="en")
    await buyer.start(await harness.order_link("DF-100000"))
    parsed: list[dict] = []
    parse = Message.de_json.__func__

    def recording(cls, data, bot=None):
        parsed.append(data)
        return parse(cls, data, bot)

    monkeypatch.setattr(Message, "de_json", classmethod(recording))
    await buyer.press("T-DF-100000-1")
    (edit,) = [c for c in harness.emulator.calls if c.method == "editMessageText" and c.ok]
    assert "T-DF-100000-1" in edit.result["text"]
    assert parsed, "the press itself is parsed"
    assert all(data.get("text") != edit.result["text"] for data in parsed)


def test_trimming_leaves_other_answers_and_the_users_messages_alone():
    user_message = {"message_id": 1, "chat": {"id": 1, "type": "private"}, "date": 1,
                    "text": "/start", "entities": [{"type": "bot_command", "offset": 0,
                                                    "length": 6}]}
    update = {"update_id": 5, "message": dict(user_message)}
    assert trim_update(update) == {"update_id": 5, "message": user_message}
    assert trim_answer(True) is True
    me = {"id": 1, "is_bot": True, "first_name": "Ticketbot"}
    assert trim_answer(dict(me)) == me
    assert "entities" not in trim_answer(dict(user_message))


# Attributes of a parsed message that come from the dropped fields.
_DROPPED_ATTRIBUTES = {
    "entities", "caption_entities", "reply_markup", "parse_entities", "parse_caption_entities",
    "text_html", "text_html_urled", "text_markdown", "text_markdown_v2", "caption_html",
    "caption_markdown", "caption_markdown_v2",
}


def attribute_reads(source: str, name: str) -> list[str]:
    """``x.entities``-like reads in a module's source (keyword arguments like
    ``reply_markup=`` are writes, not reads)."""
    return [f"{name}:{node.lineno} .{node.attr}"
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and node.attr in _DROPPED_ATTRIBUTES
            and isinstance(node.ctx, ast.Load)]


def test_no_handler_reads_what_is_dropped():
    emulator = ROOT / "bot" / "tools" / "emulator"  # Telegram's side: it keeps them all
    modules = [path for folder in ("bot", "conversations") for path in (ROOT / folder).rglob("*.py")
               if emulator not in path.parents]
    assert len(modules) > 50
    reads = [read for path in modules
             for read in attribute_reads(path.read_text(encoding="utf-8"),
                                         str(path.relative_to(ROOT)))]
    assert not reads, "a handler reads what bot/unread_fields.py drops:\n" + "\n".join(reads)


def test_an_attribute_read_is_recognised():
    source = "def f(query):\n    send(reply_markup=None)\n    return query.message.text_html\n"
    assert attribute_reads(source, "m.py") == ["m.py:3 .text_html"]
