"""The emulator's pictures and documents, driven by python-telegram-bot's own Bot over HTTP:
uploads and file ids as Telegram hands them out, captions, media edits, and the errors Telegram
answers."""

from __future__ import annotations

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, InputMediaPhoto
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden

from bot.tools.emulator import BotApiEmulator

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x02\x44\x00\x00\x02\x44"
       b"\x08\x00\x00\x00\x00rest-of-a-picture")
OTHER_PNG = PNG.replace(b"rest", b"else")
KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("PDF", callback_data="pdf:1")]])


@pytest.fixture
async def setup():
    async with BotApiEmulator() as emulator:
        bot = Bot(emulator.token, base_url=emulator.base_url)
        async with bot:
            user = emulator.user(501, first_name="Zoé")
            user.post_text("/start")  # the user opened the chat: the bot may write to it
            yield emulator, bot, user


async def test_an_uploaded_photo_gets_a_file_id_and_can_be_sent_again_by_it(setup):
    emulator, bot, user = setup
    first = await bot.send_photo(user.id, InputFile(PNG, filename="qr.png"),
                                 caption="<b>Ticket</b> Zoé", parse_mode=ParseMode.HTML,
                                 reply_markup=KEYBOARD)
    largest = first.photo[-1]
    assert (largest.width, largest.height) == (580, 580)
    assert first.caption == "Ticket Zoé" and first.caption_entities[0].type == "bold"
    assert emulator.media.content(largest.file_id) == PNG

    again = await bot.send_photo(user.id, largest.file_id, caption="again")
    assert again.photo[-1].file_id == largest.file_id
    assert emulator.media.uploads == 1
    reupload = await bot.send_photo(user.id, InputFile(PNG, filename="qr.png"))
    assert reupload.photo[-1].file_id != largest.file_id
    assert reupload.photo[-1].file_unique_id == largest.file_unique_id

    (shown, *_) = user.messages
    assert shown.text == "Ticket Zoé" and shown.button_texts() == ["PDF"]
    assert shown.media["type"] == "photo"
    file = await bot.get_file(largest.file_id)
    assert file.file_size == len(PNG)


async def test_documents_keep_their_name_and_type(setup):
    emulator, bot, user = setup
    sent = await bot.send_document(user.id, InputFile(b"%PDF-1.4 ...", filename="ticket.pdf"),
                                   caption="Your ticket")
    assert sent.document.file_name == "ticket.pdf"
    assert sent.document.mime_type == "application/pdf"
    assert emulator.media.content(sent.document.file_id) == b"%PDF-1.4 ..."
    by_id = await bot.send_document(user.id, sent.document.file_id)
    assert by_id.document.file_id == sent.document.file_id


async def test_an_unknown_file_id_is_refused_as_telegram_does(setup):
    _emulator, bot, user = setup
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
        await bot.send_photo(user.id, "AgACAgIAAxkBAAIBOGNOPE")
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
        await bot.get_file("nope")


async def test_editing_the_media_replaces_picture_and_caption_and_drops_the_keyboard(setup):
    emulator, bot, user = setup
    sent = await bot.send_photo(user.id, InputFile(PNG, filename="qr.png"), caption="valid",
                                reply_markup=KEYBOARD)
    edited = await bot.edit_message_media(
        InputMediaPhoto(OTHER_PNG, caption="<i>void</i>", parse_mode=ParseMode.HTML),
        chat_id=user.id, message_id=sent.message_id)
    assert edited.caption == "void" and edited.reply_markup is None
    assert emulator.media.content(edited.photo[-1].file_id) == OTHER_PNG
    (message,) = user.messages
    assert message.edited and message.buttons == [] and message.text == "void"

    with pytest.raises(BadRequest, match=r"(?i)not modified"):
        await bot.edit_message_media(InputMediaPhoto(edited.photo[-1].file_id, caption="void"),
                                     chat_id=user.id, message_id=sent.message_id)
    captioned = await bot.edit_message_caption(chat_id=user.id, message_id=sent.message_id,
                                               caption="void, really")
    assert captioned.caption == "void, really"
    with pytest.raises(BadRequest, match=r"(?i)no text in the message"):
        await bot.edit_message_text("text", chat_id=user.id, message_id=sent.message_id)
    assert await bot.delete_message(user.id, sent.message_id)
    assert user.messages == []


async def test_a_text_message_has_no_media_to_edit_and_blocked_users_get_nothing(setup):
    _emulator, bot, user = setup
    text = await bot.send_message(user.id, "hello")
    with pytest.raises(BadRequest, match=r"(?i)no media in the message"):
        await bot.edit_message_media(InputMediaPhoto(PNG), chat_id=user.id,
                                     message_id=text.message_id)
    user.block()
    with pytest.raises(Forbidden):
        await bot.send_photo(user.id, InputFile(PNG, filename="qr.png"))
