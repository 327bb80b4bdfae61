"""Ticket actions that ask for nothing but a yes (revoke an invitation, take a ticket back,
cancel a sale — any action declared with ``Asks.NOTHING`` and a question): the question under
the ticket's summary, then the declared service and its done notice over the order.

Nothing is stored between the two presses: the confirming press reloads the ticket and its
service re-checks that the action is still possible.
"""

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
from conversations.presentation.actions import DECLARED, ActionInput, Asks, ticket_words
from conversations.ticket_menu import show_ticket_menu, summary_lines

CONFIRMED = {action.code: action for action in DECLARED
             if action.asks == Asks.NOTHING and action.question}
BY_CONFIRM_CODE = {cb.confirm_code(action): action for action in CONFIRMED.values()}


async def on_ask(update: Update, context: Context, data: cb.Callback) -> str | None:
    """The action's question about this ticket, with its yes and a way back."""
    action = CONFIRMED[data.action]
    details = await load_ticket(update, context, data.id())
    if action.name not in details.ticket.actions:
        await show_ticket_menu(update, context, data.id())
        return None
    t = await user_translator(update, context, details.order.language)
    _ = t.gettext
    question = _(action.question).format(**ticket_words(details))
    rows = [[button(_(action.yes), cb.encode(cb.confirm_code(action), data.id()))],
            [button(_("« Back"), cb.encode(cb.TICKET, data.id()))]]
    await show(update, Screen("\n".join([*summary_lines(details, t), "", e(question)]), rows))
    return None


async def on_confirm(update: Update, context: Context, data: cb.Callback) -> str | None:
    """Yes: run the action's service, then show the order with what was done."""
    action = BY_CONFIRM_CODE[data.action]
    outcome = await action.service(store_of(context),
                                   ActionInput(update.effective_user.id, data.id()))
    t = await show_order_after_change(update, context, data.id(), action.icon, action.done,
                                      **outcome.params)
    wake_background(context)  # messages that showed the ticket may go void, news may follow
    return t.gettext(action.toast)


BUTTONS = {**{code: on_ask for code in CONFIRMED},
           **{code: on_confirm for code in BY_CONFIRM_CODE}}
