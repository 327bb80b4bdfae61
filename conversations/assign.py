"""Assigning a ticket: claim it for myself (confirm or correct the name) or send it to a friend
(type their e-mail, confirm, send); and resend or revoke a pending invitation.

The step a chat is in (waiting for a name, an e-mail) lives in the store, so any bot process can
take the next message and a restart loses nothing.
"""

from __future__ import annotations

from telegram import Update

from conversations import callbacks as cb
from conversations.common import (
    Context,
    Screen,
    button,
    deep_link,
    e,
    load_ticket,
    say,
    show,
    store_of,
    user_translator,
    wake_background,
)
from conversations.overview import show_loaded_overview, show_order_after_change
from conversations.ticket_menu import show_ticket_menu, summary_lines
from locales import Translator
from storage import chat_state, services
from storage.errors import N_
from storage.keys import clean_email, clean_name
from storage.reads import availability
from storage.reads.views import ChatStep, InviteResult, TicketDetails

STEP_CLAIM_NAME = "claim_name"
STEP_INVITE_EMAIL = "invite_email"
STEP_INVITE_CONFIRM = "invite_confirm"
STEPS = (STEP_CLAIM_NAME, STEP_INVITE_EMAIL, STEP_INVITE_CONFIRM)


async def _assignable(update: Update, context: Context, ticket_id: int) -> TicketDetails | None:
    """The ticket if it can still be assigned, else its menu is shown and None returned."""
    details = await load_ticket(update, context, ticket_id)
    if "assign" in details.ticket.actions:
        return details
    await show_ticket_menu(update, context, ticket_id)
    return None


# --- claim for myself ------------------------------------------------------------------------


def claim_name_screen(details: TicketDetails, name: str, t: Translator) -> Screen:
    _ = t.gettext
    lines = [*summary_lines(details, t), "",
             _("The ticket will be put in the name of <b>{name}</b>.").format(name=e(name)),
             e(_("Confirm, or type the name to print on the ticket."))]
    rows = [[button(_("✅ Confirm"), cb.encode(cb.CLAIM_SELF_CONFIRM, details.ticket.id))],
            [button(_("« Back"), cb.encode(cb.TICKET, details.ticket.id))]]
    return Screen("\n".join(lines), rows)


async def on_claim_self(update: Update, context: Context, data: cb.Callback) -> str | None:
    details = await _assignable(update, context, data.id())
    if details is None:
        return None
    t = await user_translator(update, context, details.order.language)
    name = details.order.buyer_name
    await chat_state.set_step(store_of(context), update.effective_chat.id, STEP_CLAIM_NAME,
                              ticket_id=details.ticket.id, payload={"name": name})
    await show(update, claim_name_screen(details, name, t))


async def on_claim_self_confirm(update: Update, context: Context, data: cb.Callback) -> str | None:
    store = store_of(context)
    step = await chat_state.get_step(store, update.effective_chat.id)
    if step is None or step.step != STEP_CLAIM_NAME or step.ticket_id != data.id():
        await show_ticket_menu(update, context, data.id())
        return None
    holder = await services.claim_for_myself(store, update.effective_user.id, data.id(),
                                             step.payload["name"],
                                             chat_id=update.effective_chat.id)
    t = await show_order_after_change(update, context, data.id(), "✅",
                                      N_("Ticket {ref} is now in the name of {name}."),
                                      name=holder)
    wake_background(context)  # the ticket itself follows in its own message
    return t.gettext("Done!")


async def on_claim_name_typed(update: Update, context: Context, step: ChatStep) -> None:
    name = clean_name(update.effective_message.text or "")
    store = store_of(context)
    details = await load_ticket(update, context, step.ticket_id)
    await availability.refuse_taken_name(store, details.event.id, name)
    await chat_state.set_step(store, update.effective_chat.id, STEP_CLAIM_NAME,
                              ticket_id=step.ticket_id, payload={"name": name})
    t = await user_translator(update, context, details.order.language)
    await show(update, claim_name_screen(details, name, t))


# --- send to a friend ------------------------------------------------------------------------


async def on_invite(update: Update, context: Context, data: cb.Callback) -> str | None:
    details = await _assignable(update, context, data.id())
    if details is None:
        return None
    t = await user_translator(update, context, details.order.language)
    _ = t.gettext
    await chat_state.set_step(store_of(context), update.effective_chat.id, STEP_INVITE_EMAIL,
                              ticket_id=details.ticket.id)
    lines = [*summary_lines(details, t), "",
             e(_("Type your friend's e-mail address. They will receive a link to claim the "
                 "ticket in their own name."))]
    rows = [[button(_("« Back"), cb.encode(cb.TICKET, details.ticket.id))]]
    await show(update, Screen("\n".join(lines), rows))


async def on_invite_email_typed(update: Update, context: Context, step: ChatStep) -> None:
    email = clean_email(update.effective_message.text or "")
    store = store_of(context)
    details = await load_ticket(update, context, step.ticket_id)
    await availability.refuse_taken_email(store, details.event.id, email)
    await chat_state.set_step(store, update.effective_chat.id, STEP_INVITE_CONFIRM,
                              ticket_id=step.ticket_id, payload={"email": email})
    t = await user_translator(update, context, details.order.language)
    _ = t.gettext
    lines = [*summary_lines(details, t), "",
             _("Send this ticket to <b>{email}</b>?").format(email=e(email)),
             e(_("If the address is wrong, just type it again."))]
    rows = [[button(_("📧 Send"), cb.encode(cb.INVITE_CONFIRM, details.ticket.id))],
            [button(_("« Back"), cb.encode(cb.TICKET, details.ticket.id))]]
    await show(update, Screen("\n".join(lines), rows))


async def on_invite_confirm(update: Update, context: Context, data: cb.Callback) -> str | None:
    store = store_of(context)
    step = await chat_state.get_step(store, update.effective_chat.id)
    if step is None or step.step != STEP_INVITE_CONFIRM or step.ticket_id != data.id():
        await show_ticket_menu(update, context, data.id())
        return None
    result = await services.invite_friend(store, update.effective_user.id, data.id(),
                                          step.payload["email"], chat_id=update.effective_chat.id)
    wake_background(context)
    t = await _after_sending(update, context, data.id(), result)
    return t.gettext("Sent!")


async def _after_sending(update: Update, context: Context, ticket_id: int,
                         result: InviteResult) -> Translator:
    """Show the order with a notice, then the link as its own message, ready to forward.
    Returns the translator."""
    details = await load_ticket(update, context, ticket_id)
    t = await user_translator(update, context)
    _ = t.gettext
    notice = "✉️ " + _("Ticket {ref} sent to {email}.").format(ref=e(details.ticket.ref),
                                                              email=e(result.email))
    await show_loaded_overview(update, context, details.order, notice=notice)
    link = deep_link(context, result.claim_token)
    forward = _("You can also forward this message to your friend in Telegram. "
                "With this link they can claim the ticket for {event} in their own name:\n{link}")
    await say(update, e(forward.format(event=t.words(details.event.name), link=link)))
    return t


async def on_resend(update: Update, context: Context, data: cb.Callback) -> str | None:
    result = await services.resend_invitation(store_of(context), update.effective_user.id,
                                              data.id())
    wake_background(context)
    t = await _after_sending(update, context, data.id(), result)
    return t.gettext("Sent again!")
