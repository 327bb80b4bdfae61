"""What every flow needs: the store and translator of an update, showing a screen, refusals.

A screen is text (HTML) plus an inline keyboard. Button presses edit the message they are on;
typed input gets a new message. Refusals from the store are shown in the user's language.
"""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from locales import Translator, translator, user_language
from storage import services
from storage.db.store import Store
from storage.errors import Refusal
from storage.reads.views import ClaimView, OrderView, TicketDetails

log = logging.getLogger(__name__)
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

Context = ContextTypes.DEFAULT_TYPE

# Whether the message a send or an edit returns is read. ``show`` and ``say`` read nothing of
# it: the bot (``bot.inbox.DurableBot``) then answers ``True`` instead of the message that
# python-telegram-bot would build and they would throw away (about 5 % of the event loop's
# time under load). Telegram's errors are raised as before.
_sent_message_ignored: ContextVar[bool] = ContextVar("ticketbot_sent_message_ignored",
                                                     default=False)


def sent_message_ignored() -> bool:
    return _sent_message_ignored.get()


@contextlib.contextmanager
def ignoring_sent_message() -> Iterator[None]:
    """Sends and edits in this block answer ``True``, not the message sent or edited."""
    token = _sent_message_ignored.set(True)
    try:
        yield
    finally:
        _sent_message_ignored.reset(token)


@dataclass
class Screen:
    """One message's worth of text and buttons."""

    text: str
    rows: list[list[InlineKeyboardButton]] = field(default_factory=list)

    @property
    def markup(self) -> InlineKeyboardMarkup | None:
        return InlineKeyboardMarkup(self.rows) if self.rows else None


def is_staff(update: Update, context: Context) -> bool:
    """Whether the update's user is on the support staff (the settings' ``staff_ids``)."""
    settings = context.application.bot_data.get("settings")
    user = update.effective_user
    return settings is not None and user is not None and user.id in settings.staff_ids


def store_of(context: Context) -> Store:
    return context.application.bot_data["store"]


def bot_username(context: Context) -> str:
    return context.application.bot_data.get("bot_username") or context.bot.username


def wake_background(context: Context) -> None:
    """Tell the background worker that mails or news are waiting (sent after our commit)."""
    worker = context.application.bot_data.get("worker")
    if worker is not None:
        worker.wake()


async def user_translator(update: Update, context: Context,
                          order_language: str | None = None) -> Translator:
    """The user's language: their choice, else their Telegram app's, else the order's."""
    user = update.effective_user
    if user is None:
        return translator(order_language)
    # One update asks several times; the answer cannot change within it, so ask the store once.
    if not hasattr(context, "chosen_language"):
        view = await services.load_user(store_of(context), user.id)
        context.chosen_language = view.chosen_language if view else None
    return translator(user_language(context.chosen_language, user.language_code,
                                    order_language))


async def load_order(update: Update, context: Context, order_id: int) -> OrderView:
    """The order as this user may see it; the user's chosen language comes with it."""
    order = await services.order_overview(store_of(context), update.effective_user.id, order_id)
    context.chosen_language = order.viewer_language
    return order


async def load_ticket(update: Update, context: Context, ticket_id: int) -> TicketDetails:
    """A ticket this user may manage, with its order; the user's chosen language comes too."""
    details = await services.ticket_details(store_of(context), update.effective_user.id,
                                            ticket_id)
    context.chosen_language = details.order.viewer_language
    return details


async def load_claim(update: Update, context: Context, invitation_id: int) -> ClaimView:
    """The ticket a friend was sent, if they opened its link; their chosen language comes too."""
    claim = await services.claim_view(store_of(context), update.effective_user.id,
                                      invitation_id)
    context.chosen_language = claim.viewer_language
    return claim


def e(value: Any) -> str:
    """Escape a value for Telegram's HTML parse mode."""
    return html.escape(str(value), quote=False)


def button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=data)


def deep_link(context: Context, token: str) -> str:
    return f"https://t.me/{bot_username(context)}?start={token}"


def refusal_text(refusal: Refusal, t: Translator, *, html: bool = True) -> str:
    """The refusal's message in the user's language, dates and money formatted by Babel: for an
    HTML message (the values it quotes escaped), or with ``html=False`` as plain text (a press's
    answer, which Telegram shows as it is)."""
    return t.fill(refusal.message, refusal.params, escape=e if html else str)


async def say(update: Update, html: str) -> None:
    """Send ``html`` as a new message in the update's chat."""
    with ignoring_sent_message():
        await update.effective_chat.send_message(html, parse_mode=ParseMode.HTML,
                                                 link_preview_options=NO_PREVIEW)


async def show(update: Update, screen: Screen) -> None:
    """Edit the pressed message into ``screen``, or send it as a new message after typing."""
    query = update.callback_query
    with ignoring_sent_message():
        if query is None or query.message is None:
            chat = update.effective_chat
            assert chat is not None
            await chat.send_message(screen.text, parse_mode=ParseMode.HTML,
                                    reply_markup=screen.markup, link_preview_options=NO_PREVIEW)
            return
        try:
            await query.edit_message_text(screen.text, parse_mode=ParseMode.HTML,
                                          reply_markup=screen.markup,
                                          link_preview_options=NO_PREVIEW)
        except BadRequest as error:
            # Pressing "refresh" on an unchanged screen is not an error.
            if "message is not modified" not in str(error).lower():
                raise


async def answer(update: Update, text: str | None = None, *, alert: bool = False) -> None:
    """Answer a button press (Telegram shows a spinner until we do)."""
    if update.callback_query is not None:
        try:
            await update.callback_query.answer(text, show_alert=alert)
        except BadRequest as error:
            # A press replayed after a restart was answered before, or has waited too long
            # (Telegram takes answers for about 15 s): the screen itself is still updated.
            if "query is too old" not in str(error).lower():
                raise


async def command_argument(update: Update, context: Context, usage: str) -> str | None:
    """The command's argument, or None after showing how to use the command."""
    text = " ".join(context.args or [])
    if text:
        return text
    t = await user_translator(update, context)
    await say(update, e(t.gettext(usage)))
    return None
