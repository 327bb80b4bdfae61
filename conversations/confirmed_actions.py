"""Ticket actions that ask for nothing (any action declared with ``Asks.NOTHING``): with a
question (revoke an invitation, take a ticket back, cancel a sale), the question under the
ticket's summary, then on yes the declared service and its done notice over the order; without
one (resend an invitation), the service runs when its button is pressed.

Nothing is stored between the two presses: the confirming press reloads the ticket and its
service re-checks that the action is still possible.
"""

from __future__ import annotations

from telegram import Update

from conversations import callbacks as cb
from conversations.action_done import show_done
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
from conversations.presentation.actions import (
    DECLARED,
    ActionInput,
    Asks,
    TicketAction,
    ticket_words,
)
from conversations.ticket_menu import show_ticket_menu, summary_lines

CONFIRMED = {action.code: action for action in DECLARED
             if action.asks == Asks.NOTHING and action.question}
BY_CONFIRM_CODE = {cb.confirm_code(action): action for action in CONFIRMED.values()}
RUN_ON_PRESS = {action.code: action for action in DECLARED
                if action.asks == Asks.NOTHING and not action.question and action.service}


async def on_ask(update: Update, context: Context, data: cb.Callback) -> str | None:
    """The action's question about this ticket, with its yes and a way back."""
    action = CONFIRMED[data.action]
    details = await load_ticket(update, context, data.id())
    if action.name not in details.ticket.actions:
        await show_ticket_menu(update, context, data.id(), details=details)
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
    return await _run(update, context, BY_CONFIRM_CODE[data.action], data.id())


async def on_press(update: Update, context: Context, data: cb.Callback) -> str | None:
    """An action asking nothing, not even a yes: run it now."""
    return await _run(update, context, RUN_ON_PRESS[data.action], data.id())


async def _run(update: Update, context: Context, action: TicketAction, ticket_id: int) -> str:
    outcome = await action.service(store_of(context),
                                   ActionInput(update.effective_user.id, ticket_id))
    return await show_done(update, context, action, ticket_id, outcome)


BUTTONS = {**{code: on_ask for code in CONFIRMED},
           **{code: on_confirm for code in BY_CONFIRM_CODE},
           **{code: on_press for code in RUN_ON_PRESS}}
