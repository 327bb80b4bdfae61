"""Changing a completed ticket: correct the name on it (the uniqueness rule applies again) or
take it back to *to assign*. Either way its barcode changes."""

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
from conversations.overview import show_order_after_change
from conversations.ticket_menu import show_ticket_menu, summary_lines
from locales import Translator
from storage import chat_state, services
from storage.errors import N_
from storage.keys import clean_name
from storage.reads import availability
from storage.reads.views import ChatStep, TicketDetails

STEP_RENAME = "rename"


def rename_screen(details: TicketDetails, name: str | None, t: Translator) -> Screen:
    _ = t.gettext
    lines = [*summary_lines(details, t), ""]
    rows = []
    if name:
        lines.append(_("Put the ticket in the name of <b>{name}</b>?").format(name=e(name)))
        lines.append(e(_("To use another name, just type it.")))
        rows.append([button(_("✅ Confirm"), cb.encode(cb.RENAME_CONFIRM, details.ticket.id))])
    else:
        lines.append(e(_("Type the name to print on the ticket.")))
    rows.append([button(_("« Back"), cb.encode(cb.TICKET, details.ticket.id))])
    return Screen("\n".join(lines), rows)


async def on_rename(update: Update, context: Context, data: cb.Callback) -> str | None:
    store = store_of(context)
    details = await load_ticket(update, context, data.id())
    if "rename" not in details.ticket.actions:
        await show_ticket_menu(update, context, data.id())
        return None
    await chat_state.set_step(store, update.effective_chat.id, STEP_RENAME, ticket_id=data.id())
    t = await user_translator(update, context, details.order.language)
    await show(update, rename_screen(details, None, t))
    return None


async def on_rename_typed(update: Update, context: Context, step: ChatStep) -> None:
    name = clean_name(update.effective_message.text or "")
    store = store_of(context)
    details = await load_ticket(update, context, step.ticket_id)
    await availability.refuse_taken_name(store, details.event.id, name,
                                         ticket_id=details.ticket.id)
    await chat_state.set_step(store, update.effective_chat.id, STEP_RENAME,
                              ticket_id=step.ticket_id, payload={"name": name})
    t = await user_translator(update, context, details.order.language)
    await show(update, rename_screen(details, name, t))


async def on_rename_confirm(update: Update, context: Context, data: cb.Callback) -> str | None:
    store = store_of(context)
    step = await chat_state.get_step(store, update.effective_chat.id)
    if (step is None or step.step != STEP_RENAME or step.ticket_id != data.id()
            or not step.payload.get("name")):
        await show_ticket_menu(update, context, data.id())
        return None
    holder = await services.rename_holder(store, update.effective_user.id, data.id(),
                                          step.payload["name"])
    await chat_state.clear_step(store, update.effective_chat.id)
    t = await show_order_after_change(update, context, data.id(), "✏️",
                                      N_("Ticket {ref} is now in the name of {name}."),
                                      name=holder)
    wake_background(context)  # the old ticket messages go void, the new one follows
    return t.gettext("Done!")
