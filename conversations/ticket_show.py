"""The ticket in the holder's chat: its QR picture with a caption, the PDF and calendar buttons,
"show my ticket again", and turning a message whose barcode was voided into a void ticket.

Telegram keeps what we upload; the ``file_id`` it answers is stored (``telegram_files``) and
the same picture or document is sent by it afterwards, never uploaded twice. Every press of a
ticket button re-checks in the store that the user holds that ticket now.

A voided ticket message is *edited* (``editMessageMedia``) into a crossed-out picture and a
caption saying it is void, not deleted: a bot may delete its messages in a private chat only
for 48 hours after sending them, and tickets are sent weeks before the event; the edit also
tells the holder why the code is gone instead of leaving a silent gap.
"""

from __future__ import annotations

import hashlib
import logging

from telegram import (
    Bot,
    InlineKeyboardButton,
    InputFile,
    InputMediaPhoto,
    Message,
    Update,
    WebAppInfo,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden

from conversations import callbacks as cb
from conversations.common import Context, Screen, button, e, store_of, user_translator
from conversations.presentation import ticket_files
from locales import Translator, translator, user_language
from storage import ticket_delivery
from storage.db.store import Store
from storage.ticket_delivery import SentMessage, TicketCard

log = logging.getLogger(__name__)

VOID_PICTURE_KEY = "void"


def holder_language(card: TicketCard) -> str:
    """The holder's language: their choice, their app's, else the order's."""
    return user_language(*card.languages)


def _card_lines(card: TicketCard, t: Translator) -> list[str]:
    """What every ticket message says first: the event, when, where, whose, which."""
    _ = t.gettext
    return [
        "🎟 <b>" + e(card.event_name) + "</b>",
        "🗓 " + e(t.datetime(card.starts_at, card.timezone)),
        "📍 " + e(ticket_files.venue_line(card)),
        e(_("{category} — in the name of {holder}").format(category=card.category,
                                                           holder=card.holder_name)),
        e(_("Reference: {ref}").format(ref=card.ref)),
        "",
    ]


def ticket_caption(card: TicketCard, t: Translator) -> str:
    card = card.in_language(t.language)
    return "\n".join([*_card_lines(card, t), e(t.gettext("Show this QR code at the entrance."))])


def live_ticket_caption(card: TicketCard, t: Translator) -> str:
    """A rotating event's ticket in chat: the card, and where its live code is."""
    card = card.in_language(t.language)
    return "\n".join([*_card_lines(card, t), e(t.gettext(
        "Your entry code is live: it changes every few seconds and appears only in the "
        "Mini App. At the entrance, open the live ticket with the button below; a "
        "screenshot or a forwarded message does not get in."))])


def live_ticket_url(webapp_url: str | None, ticket_id: int) -> str | None:
    """Where the Mini App opens straight on one held ticket's live code."""
    if not webapp_url:
        return None
    return f"{webapp_url.rstrip('/')}/app/?ticket={ticket_id}"


def live_ticket_buttons(card: TicketCard, t: Translator, webapp_url: str | None) -> Screen:
    rows = ticket_buttons(card, t).rows
    url = live_ticket_url(webapp_url, card.ticket_id)
    if url is not None:
        rows.insert(0, [InlineKeyboardButton(t.gettext("🎟 Open the live ticket"),
                                             web_app=WebAppInfo(url))])
    return Screen("", rows)


def ticket_buttons(card: TicketCard, t: Translator) -> Screen:
    _ = t.gettext
    return Screen("", [[button(_("📄 PDF ticket"), cb.encode(cb.TICKET_PDF, card.ticket_id)),
                        button(_("📅 Add to calendar"), cb.encode(cb.TICKET_ICS, card.ticket_id))]])


def void_caption(ref: str, t: Translator) -> str:
    return "❌ " + e(t.gettext(
        "Ticket {ref}: this code is no longer valid. The ticket changed hands or got a new "
        "code; a valid ticket is only the newest one the bot sent.").format(ref=ref))


# --- sending, with Telegram's file ids ---------------------------------------------------------


async def _with_file(store: Store, key: str, make, send, *, filename: str,
                     attach: bool = False):
    """``send(file)`` with Telegram's file_id when it has the file (``key``), else with the
    bytes ``make()`` returns, keeping the file_id Telegram answers. A file_id Telegram no longer
    knows (another bot token, a purge) is forgotten: the file is uploaded again. ``attach``:
    the upload is named by an ``attach://`` URI, as the Bot API requires inside InputMedia."""
    known = await ticket_delivery.file_id(store, key)
    if known is not None:
        try:
            return await send(known)
        except BadRequest as error:
            if "file identifier" not in str(error).lower():
                raise
            log.warning("Telegram forgot file %s; uploading it again", key)
    message = await send(InputFile(await make(), filename=filename, attach=attach))
    uploaded = _file_id_of(message)
    if uploaded is not None:
        await ticket_delivery.remember_file_id(store, key, uploaded)
    return message


def _file_id_of(message: Message | bool) -> str | None:
    if not isinstance(message, Message):
        return None
    if message.photo:
        return message.photo[-1].file_id
    return message.document.file_id if message.document else None


async def send_ticket(bot: Bot, store: Store, chat_id: int, card: TicketCard,
                      language: str, *, webapp_url: str | None = None,
                      **send_options: object) -> Message:
    """Send the ticket's QR picture to ``chat_id`` and record the message (with its barcode)
    so it can be voided later. If the barcode was voided while this was under way, the
    message is voided at once. ``send_options`` go to sendPhoto (paid broadcasts). A rotating
    event's ticket is a card without a code, with a button to its live code in the Mini App
    (at ``webapp_url``)."""
    t = translator(language)
    if card.rotating:
        message = await bot.send_message(
            chat_id, live_ticket_caption(card, t), parse_mode=ParseMode.HTML,
            reply_markup=live_ticket_buttons(card, t, webapp_url).markup, **send_options)
        return await _recorded(bot, store, message, chat_id, card, language)

    async def send(photo):
        return await bot.send_photo(chat_id, photo, caption=ticket_caption(card, t),
                                    parse_mode=ParseMode.HTML,
                                    reply_markup=ticket_buttons(card, t).markup,
                                    **send_options)

    message = await _with_file(store, f"qr:{card.file_key}",
                               lambda: ticket_files.qr_file(card.qr_text), send,
                               filename=f"ticket-{card.barcode}.png")
    return await _recorded(bot, store, message, chat_id, card, language)


async def _recorded(bot: Bot, store: Store, message: Message, chat_id: int, card: TicketCard,
                    language: str) -> Message:
    late = await ticket_delivery.record_message(
        store, chat_id=chat_id, message_id=message.message_id, ticket_id=card.ticket_id,
        barcode=card.barcode, language=language)
    if late is not None:
        await void_message(bot, store, late, card.ref)
    return message


async def void_message(bot: Bot, store: Store, sent: SentMessage, ref: str) -> None:
    """Turn a ticket message into a void one (crossed-out picture, no buttons) and mark it.
    A message the user deleted, or a chat that blocked the bot, shows nothing valid either."""
    t = translator(sent.language)

    async def edit(photo):
        media = InputMediaPhoto(photo, caption=void_caption(ref, t), parse_mode=ParseMode.HTML)
        return await bot.edit_message_media(media, chat_id=sent.chat_id,
                                            message_id=sent.message_id)

    try:
        try:
            await _with_file(store, VOID_PICTURE_KEY, ticket_files.void_file, edit,
                             filename="void.png", attach=True)
        except BadRequest as error:
            if "no media" not in str(error).lower():
                raise
            # A rotating event's ticket card is a text: it loses its buttons, says it is void.
            await bot.edit_message_text(void_caption(ref, t), chat_id=sent.chat_id,
                                        message_id=sent.message_id, parse_mode=ParseMode.HTML)
    except Forbidden:
        log.info("ticket message %s not voided: the user blocked the bot", sent.row_id)
    except BadRequest as error:
        text = str(error).lower()
        if "not found" not in text and "not modified" not in text:
            raise
    await ticket_delivery.mark_voided(store, sent.row_id)


async def _send_document(bot: Bot, store: Store, chat_id: int, key: str, make,
                         filename: str, caption: str) -> None:
    await _with_file(store, key, make,
                     lambda document: bot.send_document(chat_id, document, caption=caption),
                     filename=filename)


# --- buttons ------------------------------------------------------------------------------


async def _held(update: Update, context: Context, ticket_id: int) -> tuple[TicketCard, str]:
    card = await ticket_delivery.held_card(store_of(context), update.effective_user.id,
                                           ticket_id)
    t = await user_translator(update, context, card.languages[-1])
    return card, t.language


async def on_show_ticket(update: Update, context: Context, data: cb.Callback) -> str | None:
    """Show my ticket again: a new QR message (voided like the others when the code changes)."""
    card, language = await _held(update, context, data.id())
    await send_ticket(context.bot, store_of(context), update.effective_chat.id, card, language,
                      webapp_url=context.application.bot_data["settings"].webapp_url)
    return None


async def on_ticket_pdf(update: Update, context: Context, data: cb.Callback) -> str | None:
    card, language = await _held(update, context, data.id())
    t = translator(language)
    await _send_document(
        context.bot, store_of(context), update.effective_chat.id,
        f"pdf:{card.file_key}:{language}", lambda: ticket_files.pdf_file((card,), language),
        ticket_files.pdf_name(card),
        t.gettext("Your ticket {ref} as a PDF.").format(ref=card.ref))
    return None


async def on_ticket_ics(update: Update, context: Context, data: cb.Callback) -> str | None:
    card, language = await _held(update, context, data.id())
    t = translator(language)
    await _send_document(
        context.bot, store_of(context), update.effective_chat.id,
        f"ics:{card.barcode}:{language}", lambda: ticket_files.ics_file(card, language),
        ticket_files.ics_name(card),
        t.gettext("Open this file to add {event} to your calendar.").format(
            event=t.words(card.event_name)))
    return None


async def on_order_pdf(update: Update, context: Context, data: cb.Callback) -> str | None:
    """The PDF of all the tickets of an order that are in my own name."""
    cards = tuple(await ticket_delivery.held_cards_of_order(
        store_of(context), update.effective_user.id, data.id()))
    t = await user_translator(update, context, cards[0].languages[-1])
    digest = hashlib.sha256(",".join(c.file_key for c in cards).encode()).hexdigest()[:32]
    await _send_document(
        context.bot, store_of(context), update.effective_chat.id,
        f"pdo:{digest}:{t.language}", lambda: ticket_files.pdf_file(cards, t.language),
        f"tickets-{cards[0].order_number}.pdf".replace("/", "_"),
        t.gettext("Your tickets of order {number} as a PDF.").format(
            number=cards[0].order_number))
    return None
