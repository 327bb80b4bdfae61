"""More actions (the overview's "…"): switch language, the events' FAQ, contact support,
refresh, and the other orders this account may manage."""

from __future__ import annotations

from telegram import InlineKeyboardButton, Update

from conversations import callbacks as cb
from conversations.common import (
    Context,
    Screen,
    button,
    e,
    load_order,
    show,
    store_of,
    user_translator,
)
from conversations.overview import show_overview
from locales import LANGUAGE_NAMES, LANGUAGES, Translator
from storage import services
from storage.views import OrderView


def more_screen(order: OrderView, t: Translator) -> Screen:
    _ = t.gettext
    lines = ["<b>" + e(_("More actions — order {number}").format(number=order.number)) + "</b>",
             e(_("Language: {language}").format(language=LANGUAGE_NAMES[t.language]))]
    rows = [[button(("✓ " if code == t.language else "") + LANGUAGE_NAMES[code],
                    cb.encode(cb.LANGUAGE, order.id, index))
             for index, code in enumerate(LANGUAGES)]]
    for event in order.events.values():
        if event.faq_url:
            label = _("❓ FAQ: {event}").format(event=t.words(event.name))[:60]
            rows.append([InlineKeyboardButton(label, url=event.faq_url)])
    rows += [
        [button(_("💬 Contact support"), cb.encode(cb.SUPPORT, order.id))],
        [button(_("🔄 Refresh"), cb.encode(cb.OVERVIEW, order.id, 0)),
         button(_("🏠 My orders"), cb.encode(cb.HOME))],
        [button(_("« Back to my order"), cb.encode(cb.OVERVIEW, order.id, 0))],
    ]
    return Screen("\n".join(lines), rows)


async def on_more(update: Update, context: Context, data: cb.Callback) -> str | None:
    order = await load_order(update, context, data.id())
    t = await user_translator(update, context, order.language)
    await show(update, more_screen(order, t))
    return None


async def on_language(update: Update, context: Context, data: cb.Callback) -> str | None:
    """Remember the chosen language for this Telegram user and show the order in it at once."""
    if not 0 <= data.id(1) < len(LANGUAGES):
        return None
    language = LANGUAGES[data.id(1)]
    await services.choose_language(store_of(context), update.effective_user.id, language,
                                   order_id=data.id())
    context.chosen_language = language
    t = await user_translator(update, context)
    notice = e(t.gettext("I will speak {language} with you from now on.").format(
        language=LANGUAGE_NAMES[language]))
    await show_overview(update, context, data.id(), notice=notice)
    return None


async def on_support(update: Update, context: Context, data: cb.Callback) -> str | None:
    order = await load_order(update, context, data.id())
    t = await user_translator(update, context, order.language)
    _ = t.gettext
    contact = context.application.bot_data["settings"].support_contact
    if contact:
        text = _("Our support team can help you: {contact}. Please mention your order number "
                 "{number}.").format(contact=contact, number=order.number)
    else:
        text = _("Reply to your order confirmation e-mail to reach our support team. Please "
                 "mention your order number {number}.").format(number=order.number)
    rows = [[button(_("« Back"), cb.encode(cb.MORE, order.id))]]
    await show(update, Screen(e(text), rows))
    return None
