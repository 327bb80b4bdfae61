"""Exchange in chat: choose one of the sessions the event lists as exchange targets (with its
date and places left), read that personalisation will be cleared, confirm the swap."""

from __future__ import annotations

from telegram import Update

from conversations import callbacks as cb
from conversations.common import (
    Context,
    Screen,
    button,
    e,
    load_ticket,
    show,
    store_of,
    user_translator,
    wake_background,
)
from conversations.overview import show_overview
from conversations.presentation.sayings import exchange_option_label
from conversations.ticket_menu import show_ticket_menu, summary_lines
from storage.models import TicketState
from storage.reads.views import ExchangeOption, TicketDetails
from storage.services import exchange


async def on_exchange(update: Update, context: Context, data: cb.Callback) -> str | None:
    store = store_of(context)
    details = await load_ticket(update, context, data.id())
    if "exchange" not in details.ticket.actions:
        await show_ticket_menu(update, context, data.id())
        return None
    # The ticket's event, read with the ticket, names the targets: only they are read now.
    options = await exchange.exchange_options_of(store, details)
    t = await user_translator(update, context, details.order.language)
    _ = t.gettext
    lines = [*summary_lines(details, t), "", e(_("Exchange this ticket for:"))]
    lines += ["• " + e(exchange_option_label(option, t)) for option in options]
    rows = [[button(exchange_option_label(option, t)[:60],
                    cb.encode(cb.EXCHANGE_CHOOSE, data.id(), index))]
            for index, option in enumerate(options) if option.places_left != 0]
    rows.append([button(_("« Back"), cb.encode(cb.TICKET, data.id()))])
    await show(update, Screen("\n".join(lines), rows))
    return None


async def _chosen(update: Update, context: Context,
                  data: cb.Callback) -> tuple[TicketDetails, ExchangeOption] | None:
    store = store_of(context)
    details = await load_ticket(update, context, data.id())
    options = await exchange.exchange_options_of(store, details)
    if not 0 <= data.id(1) < len(options):
        await show_ticket_menu(update, context, data.id())
        return None
    return details, options[data.id(1)]


async def on_exchange_choose(update: Update, context: Context, data: cb.Callback) -> str | None:
    chosen = await _chosen(update, context, data)
    if chosen is None:
        return None
    details, option = chosen
    t = await user_translator(update, context, details.order.language)
    _ = t.gettext
    lines = [*summary_lines(details, t), "",
             e(_("Exchange it for {session}?").format(session=exchange_option_label(option, t)))]
    if details.ticket.state == TicketState.COMPLETED:
        lines.append(e(_("The name on this ticket will be cleared: you will assign the new "
                         "ticket again.")))
    lines.append(e(_("The current ticket and its barcode will no longer be valid.")))
    rows = [[button(_("🔁 Yes, exchange it"),
                    cb.encode(cb.EXCHANGE_CONFIRM, data.id(), data.id(1)))],
            [button(_("« Back"), cb.encode(cb.EXCHANGE, data.id()))]]
    await show(update, Screen("\n".join(lines), rows))
    return None


async def on_exchange_confirm(update: Update, context: Context, data: cb.Callback) -> str | None:
    chosen = await _chosen(update, context, data)
    if chosen is None:
        return None
    details, option = chosen
    store = store_of(context)
    await exchange.exchange_ticket(store, update.effective_user.id, data.id(), option.event.id)
    wake_background(context)  # the old ticket's messages go void
    t = await user_translator(update, context, details.order.language)
    notice = "🔁 " + e(t.gettext("Ticket {ref} was exchanged for {event}.").format(
        ref=details.ticket.ref, event=t.words(option.event.name)))
    await show_overview(update, context, details.order.id, notice=notice)
    return t.gettext("Done!")
