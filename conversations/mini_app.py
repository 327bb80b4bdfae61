"""The ways into the Mini App from the chat: an "Open My order" button on the overview and the
chat's menu button, for users who have an order or a ticket. Both only exist when
``TICKETBOT_WEBAPP_URL`` is set (Telegram opens Mini Apps over HTTPS only); without it the chat
is as it always was.
"""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, MenuButtonWebApp, Update, WebAppInfo
from telegram.error import TelegramError

from conversations.common import Context
from locales import Translator

log = logging.getLogger(__name__)

# Chats whose menu button this process has set: the call is idempotent, so a restart or a
# second process setting it once more costs one call and changes nothing.
_MENU_SET = "mini_app_menu_chats"


def mini_app_url(context: Context, order_id: int | None = None) -> str | None:
    """Where the Mini App opens (for one order), or None when it is not configured."""
    base = context.application.bot_data["settings"].webapp_url
    if not base:
        return None
    url = base.rstrip("/") + "/app/"
    return f"{url}?order={order_id}" if order_id is not None else url


def open_button(context: Context, order_id: int, t: Translator) -> InlineKeyboardButton | None:
    url = mini_app_url(context, order_id)
    if url is None:
        return None
    return InlineKeyboardButton(t.gettext("📱 Open My order"), web_app=WebAppInfo(url))


async def offer_menu_button(update: Update, context: Context, t: Translator) -> None:
    """Put the Mini App in this chat's menu button, once per chat and process. A failure is
    logged and forgotten: the chat's own answer matters more."""
    url = mini_app_url(context)
    chat = update.effective_chat
    if url is None or chat is None:
        return
    done: set[int] = context.application.bot_data.setdefault(_MENU_SET, set())
    if chat.id in done:
        return
    try:
        await context.bot.set_chat_menu_button(
            chat_id=chat.id,
            menu_button=MenuButtonWebApp(t.gettext("My order"), WebAppInfo(url)))
    except TelegramError as error:
        log.warning("could not set the Mini App menu button: %s", error)
        return
    done.add(chat.id)
