"""Wires every flow into python-telegram-bot: commands, buttons by callback prefix, typed text
by the chat's stored step; and turns refusals and failures into answers in the user's language.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from telegram import Update
from telegram.error import BadRequest, Forbidden
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from conversations import (
    asked_actions,
    confirmed_actions,
    expired_step,
    friend_claim,
    more_actions,
    overview,
    privacy,
    staff,
    start,
    ticket_menu,
    ticket_show,
)
from conversations import callbacks as cb
from conversations.common import (
    Context,
    Screen,
    answer,
    e,
    load_ticket,
    refusal_text,
    say,
    show,
    store_of,
    user_translator,
)
from storage import chat_state
from storage.errors import Refusal

log = logging.getLogger(__name__)

ButtonHandler = Callable[[Update, Context, cb.Callback], Awaitable[str | None]]
TextHandler = Callable[[Update, Context, object], Awaitable[None]]

BUTTONS: dict[str, ButtonHandler] = {
    cb.HOME: start.on_home_button,
    cb.OVERVIEW: overview.on_overview_button,
    cb.TICKET: ticket_menu.on_ticket_button,
    cb.ASSIGN: ticket_menu.on_assign_button,
    cb.CLAIM: friend_claim.on_claim_button,
    cb.ACCEPT: friend_claim.on_accept,
    cb.DECLINE: friend_claim.on_decline,
    cb.DECLINE_CONFIRM: friend_claim.on_decline_confirm,
    **asked_actions.BUTTONS,
    **confirmed_actions.BUTTONS,
    cb.MORE: more_actions.on_more,
    cb.LANGUAGE: more_actions.on_language,
    cb.SUPPORT: more_actions.on_support,
    cb.REMINDERS: more_actions.on_reminders,
    **staff.BUTTONS,
    cb.TICKET_SHOW: ticket_show.on_show_ticket,
    cb.TICKET_PDF: ticket_show.on_ticket_pdf,
    cb.TICKET_ICS: ticket_show.on_ticket_ics,
    cb.ORDER_PDF: ticket_show.on_order_pdf,
    cb.FORGET_CONFIRM: privacy.on_forget_confirm,
}

TEXT_STEPS: dict[str, TextHandler] = {
    **asked_actions.TEXT_STEPS,
    friend_claim.STEP_ACCEPT_NAME: friend_claim.on_accept_name_typed,
}

FRIEND_ACTIONS = {cb.CLAIM, cb.ACCEPT, cb.DECLINE, cb.DECLINE_CONFIRM}
# Refusals that mean "this screen is stale": after saying so, show where things stand now.
STALE = {"not_found", "ticket_changed", "invitation_not_pending",
         "listing_not_live"}
# Those after which the ticket's own menu is shown again.
TICKET_STALE = {"ticket_changed", "invitation_not_pending", "listing_not_live"}


async def on_button(update: Update, context: Context) -> None:
    """Every button press: decode, run the flow's handler, answer the press exactly once."""
    data = cb.decode(update.callback_query.data)
    if data is None:
        await on_unknown_button(update, context)
        return
    try:
        toast = await BUTTONS[data.action](update, context, data)
    except Refusal as refusal:
        await on_button_refused(update, context, data, refusal)
        return
    await answer(update, toast)


async def on_unknown_button(update: Update, context: Context) -> None:
    t = await user_translator(update, context)
    await answer(update, t.gettext("This button is no longer valid."), alert=True)
    await start.show_home(update, context)


async def on_button_refused(update: Update, context: Context, data: cb.Callback,
                            refusal: Refusal) -> None:
    """Say why, then show where things stand now if the pressed screen is stale."""
    menu = None
    if refusal.code in TICKET_STALE and data.action not in FRIEND_ACTIONS:
        # The ticket shown next is read first: the user's language comes with it.
        with contextlib.suppress(Refusal):
            menu = await load_ticket(update, context, data.id())
    t = await user_translator(update, context)
    await answer(update, refusal_text(refusal, t, html=False)[:200], alert=True)
    if refusal.code not in STALE and not refusal.code.startswith("link_"):
        return
    text = refusal_text(refusal, t)
    if data.action in FRIEND_ACTIONS:
        await show(update, Screen(text))
    elif refusal.code in TICKET_STALE:
        await ticket_menu.show_ticket_menu(update, context, data.id(), details=menu)
    else:
        await start.show_home(update, context, text)


async def on_text(update: Update, context: Context) -> None:
    """Typed text goes to the step the chat is in; outside any step, explain what to do."""
    step = await chat_state.get_step(store_of(context), update.effective_chat.id,
                                     with_expired=True)
    handler = TEXT_STEPS.get(step.step) if step else None
    # The language is asked for only once it is needed: a step's handler reads it with the
    # ticket it loads (one statement), and a refusal then finds it already known.
    if handler is not None and step.expired:
        try:
            await expired_step.show_where_you_were(update, context, step)
        except Refusal as refusal:
            await say(update, refusal_text(refusal, await user_translator(update, context)))
        return
    if handler is None:
        t = await user_translator(update, context)
        await say(update, e(t.gettext(
            "I did not expect a message here. Use the buttons, or /start to see your orders "
            "and /help for help.")))
        return
    try:
        await handler(update, context, step)
    except Refusal as refusal:
        await say(update, refusal_text(refusal, await user_translator(update, context)))


async def on_command_refused(update: Update, context: Context, refusal: Refusal) -> None:
    t = await user_translator(update, context)
    await say(update, refusal_text(refusal, t))


def refusals_answered(handler: Callable[[Update, Context], Awaitable[None]]):
    """Commands answer a refusal with its message instead of failing."""
    async def guarded(update: Update, context: Context) -> None:
        try:
            await handler(update, context)
        except Refusal as refusal:
            await on_command_refused(update, context, refusal)

    guarded.__name__ = handler.__name__
    return guarded


async def on_error(update: object, context: Context) -> None:
    """Log what failed without personal data, and apologise to the user."""
    error = context.error
    if isinstance(error, Forbidden):
        log.info("user blocked the bot; update dropped")
        return
    update_id = update.update_id if isinstance(update, Update) else None
    log.error("update %s failed: %s", update_id, type(error).__name__,
              exc_info=(type(error), error, error.__traceback__) if error else None)
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    try:
        t = await user_translator(update, context)
        apology = t.gettext("Sorry, something went wrong on our side. Please try again.")
        if update.callback_query is not None:
            await answer(update, apology, alert=True)
        else:
            await say(update, e(apology))
    except (BadRequest, Forbidden, Refusal):
        pass


def register(application: Application) -> None:
    """Add every handler; deep-link ``/start`` comes before the plain one."""
    start_with_link = filters.Regex(r"^/start(@\w+)?\s+\S+")
    application.add_handler(CommandHandler(
        "start", refusals_answered(start.on_start_with_link), filters=start_with_link))
    application.add_handler(CommandHandler("start", refusals_answered(start.on_start)))
    application.add_handler(CommandHandler("help", refusals_answered(start.on_help)))
    application.add_handler(CommandHandler("cancel", refusals_answered(start.on_cancel)))
    application.add_handler(CommandHandler("privacy", refusals_answered(privacy.on_privacy)))
    application.add_handler(CommandHandler("mydata", refusals_answered(privacy.on_my_data)))
    application.add_handler(CommandHandler("forgetme", refusals_answered(privacy.on_forget_me)))
    staff.register(application)
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, on_text))
    # Keep last among commands: only a command no handler above took is unknown.
    application.add_handler(MessageHandler(filters.COMMAND, start.on_unknown_command))
    application.add_error_handler(on_error)

