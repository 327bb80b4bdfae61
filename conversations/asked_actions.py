"""Ticket actions that ask for something before they run — a typed name, a typed e-mail, a typed
price, a chosen target session — handled once per kind of input for every action declared asking
it (presentation/actions.py): its press shows the declared prompt, what is typed is read and
checked by its kind and shown back under the declared question, and the confirming press runs
the declared service and shows its done notice.

Where a chat stands (which action, on which ticket, with which value) is the step
``ask_<action>`` in the store, so any bot process takes the next message and a restart loses
nothing. A target is not typed: its button carries the option's index, and every press reads
the options again.
"""

from __future__ import annotations

import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

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
    is_offered,
    offered_name,
    ticket_words,
)
from conversations.presentation.sayings import exchange_option_label
from conversations.ticket_menu import show_ticket_menu, summary_lines
from locales import Translator
from storage import chat_state
from storage.db.store import Store
from storage.errors import N_, Refusal
from storage.keys import clean_email, clean_name
from storage.reads import availability
from storage.reads.views import ChatStep, ExchangeOption, TicketDetails
from storage.services import exchange, resale
from storage.services.resale import PriceBounds

STEP_PREFIX = "ask_"


def step_of(action: TicketAction) -> str:
    """The chat's step while ``action`` waits for what it asks."""
    return STEP_PREFIX + action.name


# --- the kinds of typed input ------------------------------------------------------------------


Reader = Callable[[Store, str, TicketDetails, Translator], Awaitable[Any]]


@dataclass(frozen=True)
class TypedKind:
    """How the chat reads one kind of typed value: ``read`` cleans and checks the text (or
    refuses it), ``shown`` writes the value into the question (plain text), ``hints`` follow the
    prompt, ``retype`` follows the question; a value is kept in the step as a string."""

    read: Reader
    shown: Callable[[Any, TicketDetails, Translator], str]
    retype: str
    hints: Callable[[TicketDetails, Translator], list[str]] = lambda details, t: []
    loaded: Callable[[str], Any] = str


async def _read_name(store: Store, text: str, details: TicketDetails, t: Translator) -> str:
    name = clean_name(text)
    await availability.refuse_taken_name(store, details.event.id, name,
                                         ticket_id=details.ticket.id)
    return name


async def _read_email(store: Store, text: str, details: TicketDetails, t: Translator) -> str:
    email = clean_email(text)
    await availability.refuse_taken_email(store, details.event.id, email)
    return email


def _bounds(details: TicketDetails) -> PriceBounds:
    return resale.price_bounds(details.event, details.ticket)  # no second read of the ticket


def bounds_text(bounds: PriceBounds, t: Translator) -> str:
    return t.gettext("The price must be between {min} and {max}.").format(
        min=t.money(bounds.minimum, bounds.currency), max=t.money(bounds.maximum, bounds.currency))


def parse_price(text: str, bounds: PriceBounds, t: Translator) -> Decimal:
    """The typed price, read in the user's locale and checked against the bounds."""
    try:
        price = t.parse_money(text, bounds.currency)
    except ValueError:
        raise Refusal("price_invalid", min=bounds.minimum, max=bounds.maximum,
                      currency=bounds.currency) from None
    return resale.check_price(price, bounds)


async def _read_price(store: Store, text: str, details: TicketDetails,
                      t: Translator) -> Decimal:
    return parse_price(text, _bounds(details), t)


KINDS: dict[Asks, TypedKind] = {
    Asks.NAME: TypedKind(_read_name, lambda name, details, t: name,
                         N_("Confirm, or type the name to print on the ticket.")),
    Asks.EMAIL: TypedKind(_read_email, lambda email, details, t: email,
                          N_("If the address is wrong, just type it again.")),
    Asks.PRICE: TypedKind(_read_price,
                          lambda price, details, t: t.money(price, details.event.currency),
                          N_("To ask another price, just type it."),
                          hints=lambda details, t: [bounds_text(_bounds(details), t)],
                          loaded=Decimal),
}
TYPED = {action.code: action for action in DECLARED if action.asks in KINDS}
BY_CONFIRM_CODE = {cb.confirm_code(action): action for action in TYPED.values()}
BY_STEP = {step_of(action): action for action in TYPED.values()}


def _question(action: TicketAction, details: TicketDetails, shown: str, t: Translator) -> str:
    """The action's question (HTML: it bolds the value), naming the value shown plainly."""
    words = {key: e(value) for key, value in ticket_words(details).items()}
    key = "session" if action.asks == Asks.TARGET else action.asks.value
    return t.gettext(action.question).format(**{**words, key: e(shown)})


def asked_screen(action: TicketAction, details: TicketDetails, value: Any,
                 t: Translator) -> Screen:
    """What ``action`` asks on this ticket: its prompt, or with a ``value`` its question."""
    _ = t.gettext
    kind = KINDS[action.asks]
    ticket_id = details.ticket.id
    lines = [*summary_lines(details, t), ""]
    rows = []
    if value is None:
        lines += [e(_(action.prompt)), *(e(hint) for hint in kind.hints(details, t))]
    else:
        lines += [_question(action, details, kind.shown(value, details, t), t),
                  e(_(kind.retype))]
        rows.append([button(_(action.yes), cb.encode(cb.confirm_code(action), ticket_id))])
    rows.append([button(_("« Back"), cb.encode(cb.TICKET, ticket_id))])
    return Screen("\n".join(lines), rows)


async def offered_ticket(update: Update, context: Context, action: TicketAction,
                         ticket_id: int) -> TicketDetails | None:
    """The ticket, if its menu still offers ``action``; else None, with the menu shown again
    from the same read (a stale button)."""
    details = await load_ticket(update, context, ticket_id)
    if is_offered(action, details):
        return details
    await show_ticket_menu(update, context, ticket_id, details=details)
    return None


async def on_ask(update: Update, context: Context, data: cb.Callback) -> str | None:
    """The action's press: its prompt, or the question about the value it offers."""
    action = TYPED[data.action]
    details = await offered_ticket(update, context, action, data.id())
    if details is None:
        return None
    store = store_of(context)
    value = await offered_name(action, store, details)
    await chat_state.set_step(store, update.effective_chat.id, step_of(action),
                              ticket_id=details.ticket.id,
                              payload={"given": value} if value is not None else None)
    t = await user_translator(update, context, details.order.language)
    await show(update, asked_screen(action, details, value, t))
    return None


async def on_typed(update: Update, context: Context, step: ChatStep) -> None:
    """Text typed while an action waits for it: read by its kind, then asked to confirm."""
    action = BY_STEP[step.step]
    store = store_of(context)
    details = await load_ticket(update, context, step.ticket_id)
    t = await user_translator(update, context, details.order.language)
    value = await KINDS[action.asks].read(store, update.effective_message.text or "", details, t)
    await chat_state.set_step(store, update.effective_chat.id, step.step,
                              ticket_id=step.ticket_id, payload={"given": str(value)})
    await show(update, asked_screen(action, details, value, t))


async def on_confirm(update: Update, context: Context, data: cb.Callback) -> str | None:
    """Yes: run the action's service with the value the chat's step holds."""
    action = BY_CONFIRM_CODE[data.action]
    store = store_of(context)
    step = await chat_state.get_step(store, update.effective_chat.id)
    if (step is None or step.step != step_of(action) or step.ticket_id != data.id()
            or step.payload.get("given") is None):
        await show_ticket_menu(update, context, data.id())
        return None
    given = KINDS[action.asks].loaded(step.payload["given"])
    chat_id = update.effective_chat.id
    # The service ends the chat's step with its change, in one transaction.
    outcome = await action.service(store, ActionInput(update.effective_user.id, data.id(),
                                                      given, chat_id=chat_id))
    return await show_done(update, context, action, data.id(), outcome)


# --- a chosen target ---------------------------------------------------------------------------


TARGETED = {action.code: action for action in DECLARED if action.asks == Asks.TARGET}
BY_CHOOSE_CODE = {cb.choose_code(action): action for action in TARGETED.values()}
TARGET_CONFIRMED = {cb.confirm_code(action): action for action in TARGETED.values()}


BUTTON_TEXT_MAX = 60  # longer button texts are cut by Telegram's apps on a phone


def _target_button(option: ExchangeOption, t: Translator) -> str:
    """A target's button: its label, shortened at a word if it is long (never inside a word);
    the message above lists every label in full."""
    return textwrap.shorten(exchange_option_label(option, t), BUTTON_TEXT_MAX, placeholder=" …")


async def on_targets(update: Update, context: Context, data: cb.Callback) -> str | None:
    """The targets the action may choose from, each with its button unless it is full."""
    action = TARGETED[data.action]
    details = await offered_ticket(update, context, action, data.id())
    if details is None:
        return None
    # The ticket's event, read with the ticket, names the targets: only they are read now.
    options = await exchange.exchange_options_of(store_of(context), details)
    t = await user_translator(update, context, details.order.language)
    _ = t.gettext
    lines = [*summary_lines(details, t), "", e(_(action.prompt))]
    lines += ["• " + e(exchange_option_label(option, t)) for option in options]
    rows = [[button(_target_button(option, t),
                    cb.encode(cb.choose_code(action), data.id(), index))]
            for index, option in enumerate(options) if option.places_left != 0]
    rows.append([button(_("« Back"), cb.encode(cb.TICKET, data.id()))])
    await show(update, Screen("\n".join(lines), rows))
    return None


async def _chosen(update: Update, context: Context,
                  data: cb.Callback) -> tuple[TicketDetails, ExchangeOption] | None:
    details = await load_ticket(update, context, data.id())
    options = await exchange.exchange_options_of(store_of(context), details)
    if not 0 <= data.id(1) < len(options):
        await show_ticket_menu(update, context, data.id(), details=details)
        return None
    return details, options[data.id(1)]


async def on_choose(update: Update, context: Context, data: cb.Callback) -> str | None:
    """A target chosen: the action's question about it, with what to know before."""
    action = BY_CHOOSE_CODE[data.action]
    chosen = await _chosen(update, context, data)
    if chosen is None:
        return None
    details, option = chosen
    t = await user_translator(update, context, details.order.language)
    _ = t.gettext
    question = _question(action, details, exchange_option_label(option, t), t)
    cautions = action.cautions(details) if action.cautions is not None else ()
    lines = [*summary_lines(details, t), "", question, *(e(_(note)) for note in cautions)]
    rows = [[button(_(action.yes), cb.encode(cb.confirm_code(action), data.id(), data.id(1)))],
            [button(_("« Back"), cb.encode(action.code, data.id()))]]
    await show(update, Screen("\n".join(lines), rows))
    return None


async def on_target_confirm(update: Update, context: Context, data: cb.Callback) -> str | None:
    """Yes: run the action's service on the chosen target, read again now."""
    action = TARGET_CONFIRMED[data.action]
    chosen = await _chosen(update, context, data)
    if chosen is None:
        return None
    details, option = chosen
    outcome = await action.service(store_of(context),
                                   ActionInput(update.effective_user.id, data.id(), option))
    return await show_done(update, context, action, data.id(), outcome, before=details)


BUTTONS = {**{code: on_ask for code in TYPED},
           **{code: on_confirm for code in BY_CONFIRM_CODE},
           **{code: on_targets for code in TARGETED},
           **{code: on_choose for code in BY_CHOOSE_CODE},
           **{code: on_target_confirm for code in TARGET_CONFIRMED}}
TEXT_STEPS = {step: on_typed for step in BY_STEP}
