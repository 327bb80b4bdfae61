"""Tests of the Bot API emulator and the terminal chat, driving a bare PTB Application.

The bot under test is a tiny echo/button bot defined here, so these tests exercise only the
emulator's HTTP protocol, validation and user-side helpers (over real HTTP, long polling).
"""

from __future__ import annotations

import asyncio
import datetime as dtm

import httpx
import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.tools.emulator import BotApiEmulator, ChatMessage
from bot.tools.terminal_chat import run_terminal_chat

START_KEYBOARD = InlineKeyboardMarkup(
    [
        [
            InlineKeyboardButton("Claim for myself", callback_data="claim"),
            InlineKeyboardButton("Send to a friend", callback_data="friend"),
        ],
        [InlineKeyboardButton("Docs", url="https://example.org/docs")],
    ]
)


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    context.bot_data.setdefault("starts", []).append((update.message, list(context.args)))
    await update.message.reply_text(
        f"Welcome! args={' '.join(context.args)}", reply_markup=START_KEYBOARD
    )


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    context.bot_data.setdefault("callbacks", []).append(query)
    await query.answer(f"got {query.data}")
    # No reply_markup: Telegram removes the inline keyboard on such an edit.
    await query.edit_message_text(f"You chose {query.data}")


async def on_same(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    sent = await update.message.reply_text("Same", reply_markup=START_KEYBOARD)
    try:
        await sent.edit_text("Same", reply_markup=START_KEYBOARD)
    except BadRequest as error:
        await update.message.reply_text(f"error: {error}")


async def on_long(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    try:
        await update.message.reply_text("x" * 5000)
    except BadRequest:
        await update.message.reply_text("too long")


async def on_flash(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await context.bot.send_chat_action(update.effective_chat.id, "typing")
    flash = await update.message.reply_text("working...")
    await flash.delete()
    await update.message.reply_text("done")


async def on_silent(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    return None


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    user = update.effective_user
    await update.message.reply_text(f"{update.message.text} ({user.language_code})")


def build_bot(emu: BotApiEmulator) -> Application:
    app = Application.builder().token(emu.token).base_url(emu.base_url).build()
    app.add_handler(CommandHandler("start", on_start))
    app.add_handler(CommandHandler("same", on_same))
    app.add_handler(CommandHandler("long", on_long))
    app.add_handler(CommandHandler("flash", on_flash))
    app.add_handler(CommandHandler("silent", on_silent))
    app.add_handler(CallbackQueryHandler(on_button))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, on_text))
    return app


@pytest.fixture
async def emu():
    # A little more settle time than the default keeps multi-call reactions whole on busy CI.
    async with BotApiEmulator(settle=0.1) as emulator:
        yield emulator


@pytest.fixture
async def app(emu: BotApiEmulator):
    application = build_bot(emu)
    await application.initialize()
    await application.start()
    await application.updater.start_polling(poll_interval=0, timeout=1)
    yield application
    await application.updater.stop()
    await application.stop()
    await application.shutdown()


def _seconds(value: int | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else value


async def test_get_me_and_commands(app: Application, emu: BotApiEmulator) -> None:
    assert app.bot.username == emu.bot_username
    assert app.bot.id == emu.bot_id
    assert await app.bot.set_my_commands([("start", "Begin"), ("help", "Help")])
    commands = await app.bot.get_my_commands()
    assert [(c.command, c.description) for c in commands] == [("start", "Begin"), ("help", "Help")]
    assert emu.commands() == [
        {"command": "start", "description": "Begin"},
        {"command": "help", "description": "Help"},
    ]
    assert await app.bot.delete_my_commands()
    assert await app.bot.get_my_commands() == ()
    with pytest.raises(BadRequest):
        await app.bot.set_my_commands([("Bad Command", "x")])
    methods = {call.method for call in emu.calls}
    assert {"getMe", "deleteWebhook", "getUpdates"} <= methods


async def test_start_parameter_arrives_with_command_entity(
    app: Application, emu: BotApiEmulator
) -> None:
    alice = emu.user(1001, first_name="Alice", language_code="de")
    assert emu.user(1001) is alice

    reaction = await alice.start("abc")

    message, args = app.bot_data["starts"][0]
    assert message.text == "/start abc"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bot_command", 0, 6)]
    assert message.from_user.language_code == "de"
    assert message.chat.type == "private"
    assert args == ["abc"]
    assert [m.text for m in reaction.sent] == ["Welcome! args=abc"]
    welcome = reaction.sent[0]
    assert welcome.button_texts() == ["Claim for myself", "Send to a friend", "Docs"]
    assert welcome.button("Docs").url == "https://example.org/docs"
    assert alice.last.message_id == welcome.message_id
    assert alice.find("Welcome").message_id == welcome.message_id


async def test_press_button_edits_message_and_answers_query(
    app: Application, emu: BotApiEmulator
) -> None:
    alice = emu.user(1001)
    await alice.start()

    reaction = await alice.press("Claim")  # a unique substring is enough

    assert reaction.callback_answer is not None
    assert reaction.callback_answer.text == "got claim"
    assert not reaction.callback_answer.show_alert
    assert [m.text for m in reaction.edited] == ["You chose claim"]
    assert reaction.sent == []
    assert alice.last.text == "You chose claim"
    assert alice.last.edited
    assert alice.last.buttons == []  # the edit had no reply_markup
    query = app.bot_data["callbacks"][0]
    assert query.message.text == "Welcome! args="
    assert query.from_user.id == alice.id

    # The query has been answered, so a second answer is refused like Telegram does.
    with pytest.raises(BadRequest, match="Query is too old"):
        await app.bot.answer_callback_query(query.id)


async def test_press_errors_are_clear(app: Application, emu: BotApiEmulator) -> None:
    alice, bob = emu.user(1001), emu.user(1002)
    with pytest.raises(AssertionError, match="no bot message with an inline keyboard"):
        await alice.press("Claim")
    await alice.start()
    with pytest.raises(AssertionError, match="available buttons: 'Claim for myself'"):
        await alice.press("Refund")
    with pytest.raises(AssertionError, match="is ambiguous"):
        await alice.press("e")
    with pytest.raises(AssertionError, match="not a callback button"):
        await alice.press("Docs")
    with pytest.raises(AssertionError, match="cannot press buttons on a message of chat 1001"):
        await bob.press("Claim", message=alice.last)


async def test_edit_with_identical_content_is_not_modified(
    app: Application, emu: BotApiEmulator
) -> None:
    alice = emu.user(1001)
    reaction = await alice.send("/same")

    assert reaction.text.splitlines() == [
        "Same",
        "error: Message is not modified: specified new message content and reply markup are "
        "exactly the same as a current content and reply markup of the message",
    ]
    same = alice.find("Same")
    with pytest.raises(BadRequest, match="Message is not modified"):
        await app.bot.edit_message_reply_markup(
            alice.id, same.message_id, reply_markup=START_KEYBOARD
        )
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await app.bot.edit_message_text("new", chat_id=alice.id, message_id=999)


async def test_callback_data_limits(app: Application, emu: BotApiEmulator) -> None:
    alice = emu.user(1001)
    await alice.start()

    def keyboard(data: str) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup([[InlineKeyboardButton("b", callback_data=data)]])

    sent = await app.bot.send_message(alice.id, "ok", reply_markup=keyboard("x" * 64))
    # PTB strips "Bad Request: " and capitalize()s the rest: BUTTON_DATA_INVALID becomes this.
    assert sent.reply_markup.inline_keyboard[0][0].callback_data == "x" * 64
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await app.bot.send_message(alice.id, "no", reply_markup=keyboard("x" * 65))
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await app.bot.send_message(alice.id, "no", reply_markup=keyboard("é" * 33))  # 66 bytes
    bad_url = InlineKeyboardMarkup([[InlineKeyboardButton("b", url="javascript:alert(1)")]])
    with pytest.raises(BadRequest, match="Button_url_invalid"):
        await app.bot.send_message(alice.id, "no", reply_markup=bad_url)
    too_many = InlineKeyboardMarkup(
        [[InlineKeyboardButton(str(i), callback_data=str(i)) for i in range(8)]] * 13
    )
    with pytest.raises(BadRequest, match="Reply markup is too long"):
        await app.bot.send_message(alice.id, "no", reply_markup=too_many)
    assert [m.text for m in alice.messages] == ["Welcome! args=", "ok"]


async def test_html_parse_mode(app: Application, emu: BotApiEmulator) -> None:
    alice = emu.user(1001)
    await alice.start()
    source = '<b>Hi</b> &amp; <i>you</i> <a href="https://example.org/?a=1&b=2">link</a> &lt;3'

    sent = await app.bot.send_message(alice.id, source, parse_mode=ParseMode.HTML)

    assert sent.text == "Hi & you link <3"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [
        ("bold", 0, 2),
        ("italic", 5, 3),
        ("text_link", 9, 4),
    ]
    assert sent.entities[2].url == "https://example.org/?a=1&b=2"
    assert alice.last.text == "Hi & you link <3"
    assert alice.last.html == source
    for bad in ["<b>Hi", "<b>Hi</i>", "Hi<br>there", "1 < 2"]:
        with pytest.raises(BadRequest, match="Can't parse entities"):
            await app.bot.send_message(alice.id, bad, parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="Message text is empty"):
        await app.bot.send_message(alice.id, "<b> </b>", parse_mode=ParseMode.HTML)


async def test_message_length_limit(app: Application, emu: BotApiEmulator) -> None:
    alice = emu.user(1001)
    assert (await alice.send("/long")).text == "too long"

    assert (await app.bot.send_message(alice.id, "y" * 4096)).text == "y" * 4096
    with pytest.raises(BadRequest, match="Message is too long"):
        await app.bot.send_message(alice.id, "y" * 4097)
    # Telegram counts UTF-16 code units: 2049 emoji are 4098 units.
    with pytest.raises(BadRequest, match="Message is too long"):
        await app.bot.send_message(alice.id, "😀" * 2049)
    # Markup does not count, only the text left after parsing it.
    assert await app.bot.send_message(alice.id, "<b>" + "z" * 4096 + "</b>", parse_mode="HTML")


async def test_forged_callback_data_is_delivered(app: Application, emu: BotApiEmulator) -> None:
    alice = emu.user(1001)
    await alice.start()
    welcome = alice.last

    reaction = await alice.press_data("admin:delete_all", message=welcome)

    assert app.bot_data["callbacks"][-1].data == "admin:delete_all"
    assert app.bot_data["callbacks"][-1].message.message_id == welcome.message_id
    assert reaction.callback_answer.text == "got admin:delete_all"


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_fail_next_raises_retry_after_in_ptb(app: Application, emu: BotApiEmulator) -> None:
    alice = emu.user(1001)
    await alice.start()

    emu.fail_next("sendMessage", retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await app.bot.send_message(alice.id, "hi")
    assert _seconds(caught.value.retry_after) == 7
    assert (await app.bot.send_message(alice.id, "hi")).text == "hi"

    emu.fail_next("editMessageText", status=502, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await app.bot.edit_message_text("x", chat_id=alice.id, message_id=alice.last.message_id)
    failed = [c for c in emu.calls if c.method == "editMessageText"]
    assert [c.status for c in failed] == [502, 502]


async def test_echo_delete_and_reaction_contents(app: Application, emu: BotApiEmulator) -> None:
    alice = emu.user(1001, language_code="fr")
    reaction = await alice.send("  hello  ")
    assert reaction.text == "hello (fr)"

    reaction = await alice.send("/flash")
    assert [(m.text, m.deleted) for m in reaction.sent] == [("working...", True), ("done", False)]
    assert reaction.text == "done"
    assert len(reaction.deleted) == 1
    assert [m.text for m in alice.messages] == ["hello (fr)", "done"]
    kinds = [event.kind for event in alice.events]
    assert kinds == [
        "user_message",
        "bot_message",
        "user_message",
        "chat_action",
        "bot_message",
        "delete",
        "bot_message",
    ]


async def test_bot_cannot_write_first_and_silence_is_reported(
    app: Application, emu: BotApiEmulator
) -> None:
    stranger = emu.user(2002)
    with pytest.raises(Forbidden, match="bot can't initiate conversation with a user"):
        await app.bot.send_message(stranger.id, "hello?")
    with pytest.raises(BadRequest, match="Chat not found"):
        await app.bot.send_message(99999, "hello?")
    with pytest.raises(AssertionError, match="bot did not answer"):
        await stranger.send("/silent", timeout=0.3)
    stranger.block()
    with pytest.raises(Forbidden, match="blocked by the user"):
        await app.bot.send_message(stranger.id, "hello?")


async def test_wait_for_message_sees_pushed_news(app: Application, emu: BotApiEmulator) -> None:
    alice = emu.user(1001)
    await alice.start()
    marker = alice.mark()

    async def push() -> None:
        await asyncio.sleep(0.05)
        await app.bot.send_message(alice.id, "unrelated")
        await app.bot.send_message(alice.id, "Your friend claimed the ticket")

    task = asyncio.create_task(push())
    news = await alice.wait_for_message(lambda m: "claimed" in m.text, timeout=2)
    await task
    assert isinstance(news, ChatMessage)
    assert news.text == "Your friend claimed the ticket"
    first_new = await alice.wait_for_message(since=marker, timeout=0.1)
    assert first_new.text == "unrelated"
    with pytest.raises(AssertionError, match="no matching new message"):
        await alice.wait_for_message(timeout=0.1)


async def test_raw_http_protocol(emu: BotApiEmulator) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{emu.base_url}{emu.token}/getMe")
        assert response.json()["result"]["is_bot"] is True
        assert response.json()["result"]["username"] == emu.bot_username
        # Method names are case-insensitive; JSON bodies work as well as form data.
        response = await client.post(
            f"{emu.base_url}{emu.token}/GETUPDATES", json={"timeout": 0, "limit": 5}
        )
        assert response.json() == {"ok": True, "result": []}
        response = await client.post(f"{emu.base_url}{emu.token}/sendVoice")
        assert response.status_code == 404
        assert response.json() == {
            "ok": False,
            "error_code": 404,
            "description": "Not Found: method not found",
        }
        response = await client.post(f"{emu.base_url}999:WRONG/getMe")
        assert response.status_code == 401
        assert response.json()["description"] == "Unauthorized"
        response = await client.post(
            f"{emu.base_url}{emu.token}/sendMessage", data={"chat_id": "1", "text": ""}
        )
        assert response.json()["description"] == "Bad Request: chat not found"


async def test_wrong_token_is_invalid_token_in_ptb(emu: BotApiEmulator) -> None:
    app = Application.builder().token("42:WRONG").base_url(emu.base_url).build()
    try:
        with pytest.raises(InvalidToken):
            await app.initialize()
    finally:
        await app.bot.shutdown()  # initialize() failed half-way: close PTB's HTTP clients


async def test_update_offset_and_long_poll(emu: BotApiEmulator) -> None:
    alice = emu.user(1001)
    pending = asyncio.create_task(alice.send("hi", timeout=0.5))
    url = f"{emu.base_url}{emu.token}/getUpdates"
    async with httpx.AsyncClient() as client:
        first = (await client.post(url, data={"timeout": "1"})).json()["result"]
        assert [u["message"]["text"] for u in first] == ["hi"]
        # Without a higher offset the update is delivered again.
        again = (await client.post(url, data={"timeout": "0"})).json()["result"]
        assert again == first
        offset = str(first[-1]["update_id"] + 1)
        started = asyncio.get_running_loop().time()
        empty = (await client.post(url, data={"offset": offset, "timeout": "0.2"})).json()
        assert empty["result"] == []
        assert asyncio.get_running_loop().time() - started >= 0.15
    assert emu.pending_updates == 0
    with pytest.raises(AssertionError, match="bot did not answer"):
        await pending


async def test_terminal_chat_numbers_and_presses_buttons(
    app: Application, emu: BotApiEmulator
) -> None:
    alice = emu.user(1001, first_name="Alice")
    bob = emu.user(1002, first_name="Bob")
    await bob.start()
    inputs = iter(["/start T0KEN", "3", "1", ":users", "hello", ":as 2", ":help", ":bogus"])
    output: list[str] = []
    prompts: list[str] = []

    async def read_line(prompt: str) -> str | None:
        prompts.append(prompt)
        line = next(inputs, None)
        if line == ":users":  # news pushed while the person is typing
            await app.bot.send_message(alice.id, "Ticket 7 was claimed")
            await app.bot.send_message(bob.id, "Your friend sent you a ticket")
        return line

    await run_terminal_chat(emu, [alice, bob], read_line=read_line, write=output.append)

    text = "\n".join(output)
    assert "Welcome! args=T0KEN" in text
    assert "[1] Claim for myself  [2] Send to a friend" in text
    assert "[3] Docs (https://example.org/docs)" in text
    assert "(button 'Docs' opens https://example.org/docs)" in text
    assert "(toast) got claim" in text
    assert "Ticketbot (edited):\n  You chose claim" in text
    assert "1. Alice (id 1001)  <- current" in text
    assert "Ticketbot:\n  Ticket 7 was claimed\n(news for Bob: 1 unseen message - :as 2)" in text
    assert "hello (en)" in text
    assert "  Your friend sent you a ticket" in text  # shown on switching to Bob
    assert "--- now chatting as Bob ---" in text
    assert ":as <N>" in text
    assert "(unknown command :bogus; try :help)" in text
    assert prompts[0] == "Alice> " and prompts[-1] == "Bob> "
    assert alice.last.text == "hello (en)"
