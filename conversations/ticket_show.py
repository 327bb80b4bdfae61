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

from telegram import Bot, InputFile, InputMediaPhoto, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden

from conversations import callbacks as cb
from conversations import ticket_files
from conversations.common import Context, Screen, button, e, store_of, user_translator
from locales import Translator, pick_language, translator
from storage import ticket_delivery
from storage.database import Store
from storage.ticket_delivery import SentMessage, TicketCard

log = logging.getLogger(__name__)

VOID_PICTURE_KEY = "void"


def holder_language(card: TicketCard) -> str:
    """The holder's language: their choice, their app's, else the order's."""
    return pick_language(*card.languages)


def ticket_caption(card: TicketCard, t: Translator) -> str:
    _ = t.gettext
    return "\n".join([
        "🎟 <b>" + e(card.event_name) + "</b>",
        "🗓 " + e(t.datetime(card.starts_at, card.timezone)),
        "📍 " + e(ticket_files.venue_line(card)),
        e(_("{category} — in the name of {holder}").format(category=card.category,
                                                           holder=card.holder_name)),
        e(_("Reference: {ref}").format(ref=card.ref)),
        "",
        e(_("Show this QR code at the entrance.")),
    ])


def ticket_buttons(card: TicketCard, t: Translator) -> Screen:
    _ = t.gettext
    return Screen("", [[button(_("📄 PDF ticket"), cb.encode(cb.TICKET_PDF, card.ticket_id)),
                        button(_("📅 Add to calendar"), cb.encode(cb.TICKET_ICS, card.ticket_id))]])


def void_caption(ref: str, t: Translator) -> str:
    return "❌ " + e(t.gettext(
        "Ticket {ref}: this code is no longer valid. The ticket changed hands or got a new "
        "code; a valid ticket is only the newest one the bot sent.").format(ref=ref))


# --- sending, with Telegram's file ids ---------------------------------------------------------


async def _photo(store: Store, key: str, make, *, attach: bool = False) -> str | InputFile:
    """The photo to send: Telegram's file_id if it has it, else the bytes to upload (inside an
    InputMedia, ``attach``: named by an ``attach://`` URI, as the Bot API requires there)."""
    known = await ticket_delivery.file_id(store, key)
    if known is not None:
        return known
    return InputFile(await make(), filename=f"{key.replace(':', '-')[:40]}.png", attach=attach)


async def _remember_photo(store: Store, key: str, message: Message | bool) -> None:
    if isinstance(message, Message) and message.photo:
        await ticket_delivery.remember_file_id(store, key, message.photo[-1].file_id)


async def send_ticket(bot: Bot, store: Store, chat_id: int, card: TicketCard,
                      language: str) -> Message:
    """Send the ticket's QR picture to ``chat_id`` and record the message (with its barcode)
    so it can be voided later. If the barcode was voided while this was under way, the
    message is voided at once."""
    t = translator(language)
    key = f"qr:{card.barcode}"
    photo = await _photo(store, key, lambda: ticket_files.qr_file(card.barcode))
    message = await bot.send_photo(chat_id, photo, caption=ticket_caption(card, t),
                                   parse_mode=ParseMode.HTML,
                                   reply_markup=ticket_buttons(card, t).markup)
    if isinstance(photo, InputFile):
        await _remember_photo(store, key, message)
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
    photo = await _photo(store, VOID_PICTURE_KEY, ticket_files.void_file, attach=True)
    media = InputMediaPhoto(photo, caption=void_caption(ref, t), parse_mode=ParseMode.HTML)
    try:
        edited = await bot.edit_message_media(media, chat_id=sent.chat_id,
                                              message_id=sent.message_id)
    except Forbidden:
        log.info("ticket message %s not voided: the user blocked the bot", sent.row_id)
    except BadRequest as error:
        text = str(error).lower()
        if "not found" not in text and "not modified" not in text:
            raise
    else:
        if isinstance(photo, InputFile):
            await _remember_photo(store, VOID_PICTURE_KEY, edited)
    await ticket_delivery.mark_voided(store, sent.row_id)


async def _send_document(bot: Bot, store: Store, chat_id: int, key: str, make,
                         filename: str, caption: str) -> None:
    known = await ticket_delivery.file_id(store, key)
    document = known if known is not None else InputFile(await make(), filename=filename)
    message = await bot.send_document(chat_id, document, caption=caption)
    if known is None and message.document is not None:
        await ticket_delivery.remember_file_id(store, key, message.document.file_id)


# --- buttons ------------------------------------------------------------------------------


async def _held(update: Update, context: Context, ticket_id: int) -> tuple[TicketCard, str]:
    card = await ticket_delivery.held_card(store_of(context), update.effective_user.id,
                                           ticket_id)
    t = await user_translator(update, context, card.languages[-1])
    return card, t.language


async def on_show_ticket(update: Update, context: Context, data: cb.Callback) -> str | None:
    """Show my ticket again: a new QR message (voided like the others when the code changes)."""
    card, language = await _held(update, context, data.id())
    await send_ticket(context.bot, store_of(context), update.effective_chat.id, card, language)
    return None


async def on_ticket_pdf(update: Update, context: Context, data: cb.Callback) -> str | None:
    card, language = await _held(update, context, data.id())
    t = translator(language)
    await _send_document(
        context.bot, store_of(context), update.effective_chat.id,
        f"pdf:{card.barcode}:{language}", lambda: ticket_files.pdf_file((card,), language),
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
            event=card.event_name))
    return None


async def on_order_pdf(update: Update, context: Context, data: cb.Callback) -> str | None:
    """The PDF of all the tickets of an order that are in my own name."""
    cards = tuple(await ticket_delivery.held_cards_of_order(
        store_of(context), update.effective_user.id, data.id()))
    t = await user_translator(update, context, cards[0].languages[-1])
    digest = hashlib.sha256(",".join(c.barcode for c in cards).encode()).hexdigest()[:32]
    await _send_document(
        context.bot, store_of(context), update.effective_chat.id,
        f"pdo:{digest}:{t.language}", lambda: ticket_files.pdf_file(cards, t.language),
        f"tickets-{cards[0].order_number}.pdf".replace("/", "_"),
        t.gettext("Your tickets of order {number} as a PDF.").format(
            number=cards[0].order_number))
    return None
