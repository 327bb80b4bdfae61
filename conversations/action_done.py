"""What the chat shows once a declared ticket action ran (presentation/actions.py), whatever it
asked for: the order with the action's done notice, and for an invitation its claim link as a
message of its own, ready to forward."""

from __future__ import annotations

from telegram import Update

from conversations.common import (
    Context,
    deep_link,
    e,
    load_ticket,
    say,
    user_translator,
    wake_background,
)
from conversations.overview import show_loaded_overview, show_overview
from conversations.presentation.actions import Outcome, TicketAction
from storage.reads.views import TicketDetails


async def show_done(update: Update, context: Context, action: TicketAction, ticket_id: int,
                    outcome: Outcome, *, before: TicketDetails | None = None) -> str:
    """The order after ``action`` on the ticket, with its done notice; ``before``: the ticket as
    read before the action, for one after which the ticket is no longer the user's to read (an
    exchange replaces it). Returns the answer to the confirming press, in the user's language."""
    wake_background(context)  # mails and news about the change wait for the worker
    details = before or await load_ticket(update, context, ticket_id)
    t = await user_translator(update, context, details.order.language)
    values = {"ref": details.ticket.ref, "currency": details.event.currency, **outcome.params}
    notice = f"{action.icon} " + t.fill(action.done, values, escape=e)
    if before is None:
        await show_loaded_overview(update, context, details.order, notice=notice)
    else:
        await show_overview(update, context, details.order.id, notice=notice)
    if outcome.claim_token is not None:
        forward = t.gettext("You can also forward this message to your friend in Telegram. "
                            "With this link they can claim the ticket for {event} in their own "
                            "name:\n{link}")
        await say(update, e(forward.format(event=t.words(details.event.name),
                                           link=deep_link(context, outcome.claim_token))))
    return t.gettext(action.toast)
