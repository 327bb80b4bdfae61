"""More actions (the overview's "…"): switch language, reminders on or off, the events' FAQ,
contact support, refresh, and the other orders this account may manage. The reminder setting
is the user's, stored (``storage/services/reminders.py``), not the order's."""

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
from storage.reads.views import OrderView
from storage.services import reminders


def more_screen(order: OrderView, t: Translator, *, reminders_on: bool = True) -> Screen:
    _ = t.gettext
    lines = ["<b>" + e(_("More actions — order {number}").format(number=order.number)) + "</b>",
             e(_("Language: {language}").format(language=t.language_name(t.language))),
             e(_("Reminders: on") if reminders_on else _("Reminders: off"))]
    rows = [[button(("✓ " if code == t.language else "") + LANGUAGE_NAMES[code],
                    cb.encode(cb.LANGUAGE, order.id, index))
             for index, code in enumerate(LANGUAGES)]]
    rows.append([button(_("🔕 Turn reminders off"), cb.encode(cb.REMINDERS, order.id, 0))
                 if reminders_on else
                 button(_("🔔 Turn reminders on"), cb.encode(cb.REMINDERS, order.id, 1))])
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
    on = await reminders.reminders_on(store_of(context), update.effective_user.id)
    await show(update, more_screen(order, t, reminders_on=on))
    return None


async def on_reminders(update: Update, context: Context, data: cb.Callback) -> str | None:
    """Turn this user's reminders on (1) or off (0), then show the screen as it now is."""
    order = await load_order(update, context, data.id())  # the user may manage it
    if data.id(1) not in (0, 1):
        return None
    await reminders.set_reminders(store_of(context), update.effective_user.id, data.id(1) == 1)
    t = await user_translator(update, context, order.language)
    await show(update, more_screen(order, t, reminders_on=data.id(1) == 1))
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
        language=t.language_name(language)))
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
