"""Every action on a ticket, declared once: its name (in ``ticket.actions`` and the Mini App's
route), the service it calls, what it asks for, and its words (menu label, the prompt for what
it asks, the confirmation question, the confirm button, the notice once done). The chat's
buttons, codec and dispatch and the Mini App's routes and page all read these declarations.

A new action is its service, the rule offering it (``ticket.actions``, computed in storage),
one declaration here, and its words in the catalogs.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from storage import services
from storage.db.store import Store
from storage.errors import N_, Refusal
from storage.keys import clean_name
from storage.models import TicketState
from storage.reads import availability
from storage.reads.views import ExchangeOption, TicketDetails
from storage.services import exchange, resale


class Asks(enum.StrEnum):
    """What an action needs from the user before it runs; each face asks for a kind once."""

    NOTHING = "nothing"
    CHOICE = "choice"  # one of the actions in ``offers`` (assign: claim or invite)
    NAME = "name"
    EMAIL = "email"
    PRICE = "price"
    TARGET = "target"  # a session to exchange for: an ExchangeOption


@dataclass(frozen=True)
class ActionInput:
    """Who acts on which ticket, with what was asked for (a name, an e-mail, a price, an
    ExchangeOption; None for nothing). ``chat_id``: the chat whose input step the service
    ends with its change, and to tell of the outcome later."""

    user_id: int
    ticket_id: int
    given: Any = None
    chat_id: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What an action did: the values its done notice names, and for an invitation its
    token (each face turns it into its own claim link)."""

    params: dict[str, Any] = field(default_factory=dict)
    claim_token: str | None = None


Service = Callable[[Store, ActionInput], Awaitable[Outcome]]


@dataclass(frozen=True)
class TicketAction:
    name: str
    asks: Asks
    service: Service | None  # None: the action only offers others (``offers``)
    code: str  # its callback prefix in chat; the codec derives the confirm/choose ones from it
    label: str | None = None  # its button: on the ticket's menu, or on the choice offering it
    prompt: str | None = None  # how what it asks for is asked
    # Asked before it runs; ``{email}``/``{holder}`` name the ticket's invitation and holder,
    # ``{name}``/``{price}``/``{session}`` the value given (the chat bolds it with <b>).
    question: str | None = None
    yes: str = N_("✅ Confirm")
    done: str = ""  # the notice once done: ``{ref}`` and the outcome's params
    icon: str = "✅"  # the chat's mark before the notice
    toast: str = N_("Done!")  # the chat's answer to the confirming press
    offers: tuple[str, ...] = ()
    # A name offered before anything is typed (the buyer's own for a claim): see offered_name.
    suggests: Callable[[TicketDetails], str | None] | None = None
    # What the user should know before confirming (plain msgids), given the ticket.
    cautions: Callable[[TicketDetails], tuple[str, ...]] | None = None


async def _claim(store: Store, asked: ActionInput) -> Outcome:
    name = await services.claim_for_myself(store, asked.user_id, asked.ticket_id, asked.given,
                                           chat_id=asked.chat_id)
    return Outcome({"name": name})


async def _invite(store: Store, asked: ActionInput) -> Outcome:
    result = await services.invite_friend(store, asked.user_id, asked.ticket_id, asked.given,
                                          chat_id=asked.chat_id)
    return Outcome({"email": result.email}, result.claim_token)


async def _resend(store: Store, asked: ActionInput) -> Outcome:
    result = await services.resend_invitation(store, asked.user_id, asked.ticket_id)
    return Outcome({"email": result.email}, result.claim_token)


async def _revoke(store: Store, asked: ActionInput) -> Outcome:
    return Outcome({"email": await services.revoke_invitation(store, asked.user_id,
                                                              asked.ticket_id)})


async def _rename(store: Store, asked: ActionInput) -> Outcome:
    name = await services.rename_holder(store, asked.user_id, asked.ticket_id, asked.given,
                                        chat_id=asked.chat_id)
    return Outcome({"name": name})


async def _take_back(store: Store, asked: ActionInput) -> Outcome:
    await services.take_back(store, asked.user_id, asked.ticket_id)
    return Outcome()


async def _sell(store: Store, asked: ActionInput) -> Outcome:
    await resale.list_for_resale(store, asked.user_id, asked.ticket_id, asked.given,
                                 chat_id=asked.chat_id)
    return Outcome({"price": asked.given})


async def _change_price(store: Store, asked: ActionInput) -> Outcome:
    await resale.change_price(store, asked.user_id, asked.ticket_id, asked.given,
                              chat_id=asked.chat_id)
    return Outcome({"price": asked.given})


async def _cancel_sale(store: Store, asked: ActionInput) -> Outcome:
    await resale.cancel_sale(store, asked.user_id, asked.ticket_id)
    return Outcome()


async def _exchange(store: Store, asked: ActionInput) -> Outcome:
    option: ExchangeOption = asked.given
    await exchange.exchange_ticket(store, asked.user_id, asked.ticket_id, option.event.id)
    return Outcome({"event": option.event.name})


def _own_name(details: TicketDetails) -> str | None:
    return details.order.buyer_name


def _exchange_cautions(details: TicketDetails) -> tuple[str, ...]:
    cleared = (N_("The name on this ticket will be cleared: you will assign the new ticket "
                  "again."),) if details.ticket.state == TicketState.COMPLETED else ()
    return (*cleared, N_("The current ticket and its barcode will no longer be valid."))


NAME_DONE = N_("Ticket {ref} is now in the name of {name}.")
SENT = N_("Ticket {ref} sent to {email}.")

DECLARED = (
    TicketAction("assign", Asks.CHOICE, None, "a", label=N_("👤 Assign the ticket"),
                 prompt=N_("Who will use this ticket?"), offers=("claim", "invite")),
    TicketAction("claim", Asks.NAME, _claim, "me", label=N_("🙋 Claim the ticket for myself"),
                 prompt=N_("Type the name to print on the ticket."),
                 question=N_("The ticket will be put in the name of <b>{name}</b>."),
                 done=NAME_DONE, suggests=_own_name),
    TicketAction("invite", Asks.EMAIL, _invite, "fr", label=N_("📧 Send to a friend"),
                 prompt=N_("Type your friend's e-mail address. They will receive a link to "
                           "claim the ticket in their own name."),
                 question=N_("Send this ticket to <b>{email}</b>?"), yes=N_("📧 Send"),
                 done=SENT, icon="✉️", toast=N_("Sent!")),
    TicketAction("resend", Asks.NOTHING, _resend, "rs", label=N_("✉️ Resend the invitation"),
                 done=SENT, icon="✉️", toast=N_("Sent again!")),
    TicketAction("revoke", Asks.NOTHING, _revoke, "rv", label=N_("↩️ Revoke the invitation"),
                 question=N_("Withdraw the invitation sent to {email}? Their link will stop "
                             "working and the ticket comes back to you."),
                 yes=N_("↩️ Yes, revoke it"), done=N_("The invitation to {email} was withdrawn."),
                 icon="↩️", toast=N_("Revoked.")),
    TicketAction("rename", Asks.NAME, _rename, "nm", label=N_("✏️ Correct the name"),
                 prompt=N_("Type the name to print on the ticket."),
                 question=N_("Put the ticket in the name of <b>{name}</b>?"),
                 done=NAME_DONE, icon="✏️"),
    TicketAction("take_back", Asks.NOTHING, _take_back, "tb",
                 label=N_("↩️ Take the ticket back"),
                 question=N_("Take this ticket back from {holder}? Their ticket will no longer "
                             "be valid, and you can assign it again."),
                 yes=N_("↩️ Yes, take it back"),
                 done=N_("Ticket {ref} is back in your tickets to assign."), icon="↩️"),
    TicketAction("sell", Asks.PRICE, _sell, "sl", label=N_("💶 Sell this ticket"),
                 prompt=N_("Type the price you ask for this ticket."),
                 question=N_("Offer this ticket for resale at <b>{price}</b>?"),
                 done=N_("Ticket {ref} is on resale at {price}."), icon="💶"),
    TicketAction("exchange", Asks.TARGET, _exchange, "ex", label=N_("🔁 Exchange"),
                 prompt=N_("Exchange this ticket for:"),
                 question=N_("Exchange it for {session}?"), yes=N_("🔁 Yes, exchange it"),
                 done=N_("Ticket {ref} was exchanged for {event}."), icon="🔁",
                 cautions=_exchange_cautions),
    TicketAction("change_price", Asks.PRICE, _change_price, "cp",
                 label=N_("💶 Change the price"),
                 prompt=N_("Type the price you ask for this ticket."),
                 question=N_("Change the resale price to <b>{price}</b>?"),
                 done=N_("The resale price of ticket {ref} is now {price}."), icon="💶"),
    TicketAction("cancel_sale", Asks.NOTHING, _cancel_sale, "cs", label=N_("✖ Cancel the sale"),
                 question=N_("Take this ticket off the resale market? It comes back to your "
                             "order as it was."),
                 yes=N_("✖ Yes, cancel the sale"),
                 done=N_("Ticket {ref} is no longer on resale."), icon="↩️"),
)
ACTIONS = {action.name: action for action in DECLARED}


def is_offered(action: TicketAction, details: TicketDetails) -> bool:
    """Whether the ticket's menu offers ``action``, itself or through a choice offering it."""
    offered = details.ticket.actions
    return action.name in offered or any(action.name in ACTIONS[name].offers for name in offered)


async def offered_name(action: TicketAction, store: Store, details: TicketDetails) -> str | None:
    """The name ``action`` offers on this ticket before anything is typed, if it can be used: a
    clean name no other ticket of the event carries (the buyer's own name is taken once her
    first ticket is in it). None: the name is asked for."""
    if action.suggests is None:
        return None
    try:
        name = clean_name(action.suggests(details) or "")
    except Refusal:
        return None
    free = await availability.is_name_free(store, details.event.id, name,
                                           ticket_id=details.ticket.id)
    return name if free else None


async def offered_names(store: Store, details: TicketDetails) -> dict[str, str]:
    """The names the ticket's actions offer now (``offered_name``), by action."""
    names = {}
    for action in DECLARED:
        if action.suggests is not None and is_offered(action, details):
            name = await offered_name(action, store, details)
            if name is not None:
                names[action.name] = name
    return names


def ticket_words(details: TicketDetails) -> dict[str, str]:
    """What a question about the ticket itself may name: its invitation's e-mail, its holder."""
    ticket = details.ticket
    return {"email": ticket.invitation.email if ticket.invitation is not None else "",
            "holder": ticket.holder_name or "", "ref": ticket.ref}
