"""Typed text that arrives after its input step expired (steps live an hour in ``chat_states``):
the user is told the step expired and is shown where they were — the ticket's menu, or the
ticket a friend sent them — instead of being told no message was expected."""

from __future__ import annotations

from telegram import Update

from conversations import friend_claim
from conversations.common import (
    Context,
    Screen,
    e,
    load_claim,
    load_ticket,
    say,
    show,
    store_of,
    user_translator,
)
from conversations.ticket_menu import menu_screen
from storage import chat_state
from storage.reads.views import ChatStep


async def show_where_you_were(update: Update, context: Context, step: ChatStep) -> None:
    """End the expired step, say so, and show the screen the step belonged to."""
    store = store_of(context)
    await chat_state.clear_step(store, update.effective_chat.id)
    # The ticket first: the user's language comes with it (one statement for both).
    details = (await load_ticket(update, context, step.ticket_id)
               if step.ticket_id is not None else None)
    t = await user_translator(update, context)
    notice = "⌛ " + e(t.gettext("That step expired, so I did not use your message. Here is "
                                "where you were; start the step again from here."))
    if details is not None:
        t = await user_translator(update, context, details.order.language)
        screen = menu_screen(details, t)
        await show(update, Screen(notice + "\n\n" + screen.text, screen.rows))
    elif step.invitation_id is not None:
        claim = await load_claim(update, context, step.invitation_id)
        await say(update, notice)
        await friend_claim.show_claim(update, context, claim)
    else:
        await say(update, notice)
