"""The baseline: a bare python-telegram-bot bot doing the least a bot can do per update.

A message gets one ``sendMessage`` with an inline keyboard; a button press gets
``answerCallbackQuery`` and one ``editMessageText`` with a keyboard. Texts and keyboards are
about the size of Ticketbot's overview, in HTML like ours, so that the bytes on the wire are
comparable and only our handlers, store and rendering make the difference.

Run by the benchmark as ``python -m bench.baseline_bot --api-url URL --token TOKEN``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bench.serving import common_arguments, serve
from bot.aiohttp_request import AiohttpRequest

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_screens = itertools.count(1)


def screen() -> tuple[str, InlineKeyboardMarkup]:
    """A screen shaped like an order overview; numbered, so that no edit repeats the text."""
    number = next(_screens)
    text = "\n".join([
        f"<b>My order BENCH-{number}</b>",
        "",
        "<b>Dreamfest 2027 — Saturday</b>",
        "🗓 Sat, Jul 17, 2027, 2:00 PM",
        "📍 Parc des Expositions, Nantes",
        "Options: personalisation, exchange and resale",
        "",
        "<b>To assign (3)</b>",
        *(f"• Pass samedi · T-BENCH-{number}-{k}" for k in (1, 2, 3)),
        "",
        "Choose a ticket to manage it.",
    ])
    rows = [[InlineKeyboardButton(f"🎫 Pass samedi · T-BENCH-{number}-{k}",
                                  callback_data=f"t:{number}{k}")] for k in (1, 2, 3)]
    rows.append([InlineKeyboardButton("🔄 Refresh", callback_data=f"o:{number}:0"),
                 InlineKeyboardButton("⋯ More actions", callback_data=f"m:{number}")])
    return text, InlineKeyboardMarkup(rows)


async def on_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    text, markup = screen()
    await update.effective_chat.send_message(text, parse_mode=ParseMode.HTML,
                                             reply_markup=markup, link_preview_options=NO_PREVIEW)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    text, markup = screen()
    await update.callback_query.answer()
    await update.callback_query.edit_message_text(text, parse_mode=ParseMode.HTML,
                                                  reply_markup=markup,
                                                  link_preview_options=NO_PREVIEW)


def build(args: argparse.Namespace) -> Application:
    builder = Application.builder().token(args.token).base_url(args.api_url)
    if args.transport == "aiohttp":
        # Ticketbot's transport (bot/aiohttp_request.py) instead of PTB's default httpx.
        builder = builder.request(AiohttpRequest(256)).get_updates_request(AiohttpRequest(1))
    if args.concurrency > 1:
        builder = builder.concurrent_updates(args.concurrency)
    application = builder.build()
    application.add_handler(MessageHandler(filters.ALL, on_message))
    application.add_handler(CallbackQueryHandler(on_button))
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    common_arguments(parser)
    parser.add_argument("--concurrency", type=int, default=1,
                        help="updates handled at once (PTB's default is 1, one at a time)")
    parser.add_argument("--transport", choices=("httpx", "aiohttp"), default="httpx",
                        help="PTB's default httpx, or the aiohttp transport Ticketbot uses")
    args = parser.parse_args()
    asyncio.run(serve(build(args), args))


if __name__ == "__main__":
    main()
