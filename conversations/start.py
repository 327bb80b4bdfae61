"""Opening the bot: a deep link from the confirmation e-mail (buyer) or from a friend (claim),
or plain ``/start`` listing what this account manages and holds; plus ``/help`` and ``/cancel``.
"""

from __future__ import annotations

from babel.lists import format_list
from telegram import Update

from conversations import callbacks as cb
from conversations import mini_app
from conversations.common import (
    Context,
    Screen,
    button,
    e,
    is_staff,
    load_ticket,
    say,
    show,
    store_of,
    user_translator,
)
from conversations.friend_claim import show_claim
from conversations.overview import show_loaded_overview, show_overview
from locales import Translator
from storage import chat_state, services
from storage.errors import Refusal
from storage.reads.views import Home


async def on_start_with_link(update: Update, context: Context) -> None:
    """``/start <parameter>``: the buyer's order link or a friend's claim link."""
    user = update.effective_user
    opened = await services.open_link(store_of(context), user.id, context.args[0],
                                      language_code=user.language_code,
                                      chat_id=update.effective_chat.id)
    context.chosen_language = opened.viewer_language
    if opened.claim is not None:
        await show_claim(update, context, opened.claim)
    else:
        assert opened.order_id is not None
        await show_overview(update, context, opened.order_id)


async def on_start(update: Update, context: Context) -> None:
    """Plain ``/start``: the orders this account manages and the tickets it holds."""
    user = update.effective_user
    known = await services.record_user(store_of(context), user.id, user.language_code,
                                       chat_id=update.effective_chat.id)
    context.chosen_language = known.chosen_language
    await show_home(update, context)


async def show_home(update: Update, context: Context, notice: str | None = None) -> None:
    home = await services.home(store_of(context), update.effective_user.id)
    t = await user_translator(update, context)
    await show(update, home_screen(home, t, notice))
    if home.orders or home.held:
        await mini_app.offer_menu_button(update, context, t)


def home_screen(home: Home, t: Translator, notice: str | None = None) -> Screen:
    _ = t.gettext
    lines = [notice, ""] if notice else []
    rows = []
    if home.orders:
        lines.append("<b>" + e(_("Your orders")) + "</b>")
        for order in home.orders:
            tickets = t.ngettext("{count} ticket", "{count} tickets", order.ticket_count).format(
                count=order.ticket_count)
            events = format_list([t.words(event.name) for event in order.events], locale=t.locale)
            lines.append("• " + e(_("{number} — {events} ({tickets})").format(
                number=order.number, events=events, tickets=tickets)))
            rows.append([button(_("🎟 Order {number}").format(number=order.number),
                                cb.encode(cb.OVERVIEW, order.id, 0))])
    if home.held:
        lines += ["", "<b>" + e(_("Tickets in your name")) + "</b>"]
        for held in home.held:
            lines.append("• " + e(_("{event}, {date} — {category}, in the name of {holder}").format(
                event=t.words(held.event.name),
                date=t.datetime(held.event.starts_at, held.event.timezone),
                category=t.words(held.category), holder=held.holder_name)))
            rows.append([button(_("🎫 Show ticket {ref}").format(ref=held.ref),
                                cb.encode(cb.TICKET_SHOW, held.id))])
    if not home.orders and not home.held:
        lines.append(e(_(
            "Welcome! To manage your order, open the “Manage my order in Telegram” link from "
            "your order confirmation e-mail. If a friend sent you a ticket, open the link "
            "from their e-mail or message.")))
    return Screen("\n".join(lines), rows)


async def on_home_button(update: Update, context: Context, data: cb.Callback) -> str | None:
    await show_home(update, context)
    return None


async def on_help(update: Update, context: Context) -> None:
    t = await user_translator(update, context)
    text = t.gettext(
        "I help you manage the tickets of your order.\n\n"
        "• Open the link in your order confirmation e-mail to see your order.\n"
        "• Choose a ticket to assign it: claim it for yourself, or send it to a friend by "
        "e-mail; they claim it in their own name.\n"
        "• /start shows your orders and the tickets in your name.\n"
        "• /cancel stops what you were typing."
    )
    if is_staff(update, context):
        text += "\n\n" + t.gettext(
            "Support staff commands:\n"
            "• /status ORDER_NUMBER shows an order, its tickets and their recent changes.\n"
            "• /find TEXT finds orders and tickets by number, reference, name or e-mail.\n"
            "• /history TICKET_REF shows everything that happened to a ticket.\n"
            "• /resend ORDER_NUMBER sends an order's pending invitations again.\n"
            "• /stats shows an event's figures as a chart.\n"
            "• /export sends an event's tickets as a CSV file."
        )
    await say(update, e(text))


async def on_unknown_command(update: Update, context: Context) -> None:
    """A command we do not know, and a staff command from anyone not on the staff: the same
    answer, so that it reveals nothing about who is staff or what exists."""
    t = await user_translator(update, context)
    await say(update, e(t.gettext("I don't know that command. /help lists what I can do.")))


async def on_cancel(update: Update, context: Context) -> None:
    store = store_of(context)
    step = await chat_state.get_step(store, update.effective_chat.id)
    await chat_state.clear_step(store, update.effective_chat.id)
    # The step's order first: the user's language comes with it, and it is the screen shown.
    order = None
    if step and step.ticket_id is not None:
        try:
            order = (await load_ticket(update, context, step.ticket_id)).order
        except Refusal:
            order = None
    t = await user_translator(update, context)
    notice = e(t.gettext("Cancelled.") if step else t.gettext("There was nothing to cancel."))
    if order is not None:
        await show_loaded_overview(update, context, order, notice=notice)
    else:
        await show_home(update, context, notice)
