"""Resale in chat: offer a ticket at a price (typed in the user's locale, checked against the
event's bounds), confirm, then change the price or cancel the sale from the ticket's menu."""

from __future__ import annotations

from decimal import Decimal

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
)
from conversations.overview import show_order_after_change
from conversations.ticket_menu import show_ticket_menu, summary_lines
from locales import Translator
from storage import chat_state
from storage.errors import N_, Refusal
from storage.reads.views import ChatStep, TicketDetails
from storage.services import resale
from storage.services.resale import PriceBounds

STEP_PRICE = "resale_price"
STEP_CONFIRM = "resale_confirm"
MODE_LIST, MODE_CHANGE = "list", "change"
CONFIRM_ACTION = {MODE_LIST: cb.SELL_CONFIRM, MODE_CHANGE: cb.CHANGE_PRICE_CONFIRM}


def bounds_text(bounds: PriceBounds, t: Translator) -> str:
    return t.gettext("The price must be between {min} and {max}.").format(
        min=t.money(bounds.minimum, bounds.currency), max=t.money(bounds.maximum, bounds.currency))


async def _ask_price(update: Update, context: Context, ticket_id: int, mode: str,
                     action: str) -> str | None:
    store = store_of(context)
    details = await load_ticket(update, context, ticket_id)
    if action not in details.ticket.actions:
        await show_ticket_menu(update, context, ticket_id)
        return None
    bounds = resale.price_bounds(details.event, details.ticket)  # no second read of the ticket
    t = await user_translator(update, context, details.order.language)
    await chat_state.set_step(store, update.effective_chat.id, STEP_PRICE, ticket_id=ticket_id,
                              payload={"mode": mode})
    lines = [*summary_lines(details, t), "",
             e(t.gettext("Type the price you ask for this ticket.")), e(bounds_text(bounds, t))]
    rows = [[button(t.gettext("« Back"), cb.encode(cb.TICKET, ticket_id))]]
    await show(update, Screen("\n".join(lines), rows))
    return None


async def on_sell(update: Update, context: Context, data: cb.Callback) -> str | None:
    return await _ask_price(update, context, data.id(), MODE_LIST, "sell")


async def on_change_price(update: Update, context: Context, data: cb.Callback) -> str | None:
    return await _ask_price(update, context, data.id(), MODE_CHANGE, "change_price")


def parse_price(text: str, bounds: PriceBounds, t: Translator) -> Decimal:
    """The typed price, read in the user's locale and checked against the bounds."""
    try:
        price = t.parse_decimal(text)
    except ValueError:
        raise Refusal("price_invalid", min=bounds.minimum, max=bounds.maximum,
                      currency=bounds.currency) from None
    return resale.check_price(price, bounds)


async def on_price_typed(update: Update, context: Context, step: ChatStep) -> None:
    store = store_of(context)
    details = await load_ticket(update, context, step.ticket_id)
    t = await user_translator(update, context, details.order.language)
    bounds = resale.price_bounds(details.event, details.ticket)
    price = parse_price(update.effective_message.text or "", bounds, t)
    mode = step.payload.get("mode", MODE_LIST)
    await chat_state.set_step(store, update.effective_chat.id, STEP_CONFIRM,
                              ticket_id=step.ticket_id, payload={"mode": mode, "price": str(price)})
    await show(update, confirm_screen(details, price, bounds, mode, t))


def confirm_screen(details: TicketDetails, price: Decimal, bounds: PriceBounds, mode: str,
                   t: Translator) -> Screen:
    _ = t.gettext
    shown = t.money(price, bounds.currency)
    question = (_("Offer this ticket for resale at <b>{price}</b>?") if mode == MODE_LIST
                else _("Change the resale price to <b>{price}</b>?")).format(price=e(shown))
    lines = [*summary_lines(details, t), "", question,
             e(_("To ask another price, just type it."))]
    rows = [[button(_("✅ Confirm"), cb.encode(CONFIRM_ACTION[mode], details.ticket.id))],
            [button(_("« Back"), cb.encode(cb.TICKET, details.ticket.id))]]
    return Screen("\n".join(lines), rows)


async def _confirmed_price(update: Update, context: Context, ticket_id: int,
                           mode: str) -> Decimal | None:
    step = await chat_state.get_step(store_of(context), update.effective_chat.id)
    if (step is None or step.step != STEP_CONFIRM or step.ticket_id != ticket_id
            or step.payload.get("mode") != mode):
        await show_ticket_menu(update, context, ticket_id)
        return None
    return Decimal(step.payload["price"])


async def on_sell_confirm(update: Update, context: Context, data: cb.Callback) -> str | None:
    price = await _confirmed_price(update, context, data.id(), MODE_LIST)
    if price is None:
        return None
    store = store_of(context)
    await resale.list_for_resale(store, update.effective_user.id, data.id(), price)
    return await _done(update, context, data.id(),
                       N_("Ticket {ref} is on resale at {price}."), price)


async def on_change_price_confirm(update: Update, context: Context,
                                  data: cb.Callback) -> str | None:
    price = await _confirmed_price(update, context, data.id(), MODE_CHANGE)
    if price is None:
        return None
    await resale.change_price(store_of(context), update.effective_user.id, data.id(), price)
    return await _done(update, context, data.id(),
                       N_("The resale price of ticket {ref} is now {price}."), price)


async def _done(update: Update, context: Context, ticket_id: int, template: str,
                price: Decimal) -> str:
    await chat_state.clear_step(store_of(context), update.effective_chat.id)
    t = await show_order_after_change(update, context, ticket_id, "💶", template, price=price)
    return t.gettext("Done!")
