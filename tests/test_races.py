"""Races settled by the database: many people doing the one thing only one of them may do, at
the same moment, through the service layer. Exactly one wins; every other gets a clear refusal
and changes nothing; the store's invariants hold afterwards."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy import func, select

from storage import services
from storage.errors import Refusal
from storage.models import (
    AuditEntry,
    Event,
    Invitation,
    ListingState,
    OutboxMail,
    ResaleListing,
    Ticket,
    TicketState,
)
from storage.services import exchange, resale
from tests.factories import make_event, make_order
from tests.invariants import check_invariants

BUYER = 1001
RACERS = 50


async def outcome(action):
    """The action's result, or the code of its refusal."""
    try:
        return await action
    except Refusal as refusal:
        return refusal


def refusal_codes(results) -> set[str]:
    return {r.code for r in results if isinstance(r, Refusal)}


async def count(store, model, *where) -> int:
    async with store.read() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def test_fifty_friends_accepting_one_invitation_at_once_have_one_winner(store):
    await make_event(store)
    _, (ticket_id, *_) = await make_order(store, managers=(BUYER,))
    invite = await services.invite_friend(store, BUYER, ticket_id, "alex@example.org")
    friends = [5000 + n for n in range(RACERS)]
    for friend in friends:
        await services.open_link(store, friend, invite.claim_token)
    names = [f"Friend {chr(65 + n // 26)}{chr(97 + n % 26)}" for n in range(RACERS)]
    results = await asyncio.gather(*(
        outcome(services.accept_invitation(store, friend, invite.invitation_id, name))
        for friend, name in zip(friends, names, strict=True)))
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1
    assert refusal_codes(results) == {"link_used"}
    assert await count(store, AuditEntry, AuditEntry.action == "invitation_accepted") == 1
    async with store.read() as session:
        ticket = await session.get(Ticket, ticket_id)
    assert ticket.state == TicketState.COMPLETED and ticket.holder_name == winners[0]
    await check_invariants(store)


async def test_fifty_buyers_inviting_one_address_at_once_have_one_winner(store):
    await make_event(store)
    orders = [await make_order(store, tickets=1, managers=(BUYER + n,)) for n in range(RACERS)]
    results = await asyncio.gather(*(
        outcome(services.invite_friend(store, BUYER + n, tickets[0], "Alex@Example.org"))
        for n, (_, tickets) in enumerate(orders)))
    assert len([r for r in results if not isinstance(r, Refusal)]) == 1
    assert refusal_codes(results) == {"email_taken"}
    assert await count(store, Invitation) == 1
    assert await count(store, OutboxMail) == 1
    assert await count(store, Ticket, Ticket.state == TicketState.PENDING) == 1
    await check_invariants(store)


async def test_concurrent_listings_of_one_ticket_make_one_listing(store):
    await make_event(store)
    managers = tuple(BUYER + n for n in range(RACERS))
    _, (ticket_id, *_) = await make_order(store, managers=managers)
    results = await asyncio.gather(*(
        outcome(resale.list_for_resale(store, manager, ticket_id, Decimal("50.00")))
        for manager in managers))
    assert len([r for r in results if not isinstance(r, Refusal)]) == 1
    assert refusal_codes(results) <= {"ticket_changed", "not_listable"}
    assert await count(store, ResaleListing, ResaleListing.state == ListingState.LISTED) == 1
    await check_invariants(store)


async def test_buyers_racing_for_the_last_exchange_place_have_one_winner(store):
    await make_event(store, "fest-sun", exchange_capacity=1)
    await make_event(store, "fest-sat", exchange_enabled=True, exchange_targets=["fest-sun"])
    orders = [await make_order(store, tickets=1, managers=(BUYER + n,)) for n in range(RACERS)]
    results = await asyncio.gather(*(
        outcome(exchange.exchange_ticket(store, BUYER + n, tickets[0], "fest-sun"))
        for n, (_, tickets) in enumerate(orders)))
    assert len([r for r in results if not isinstance(r, Refusal)]) == 1
    assert refusal_codes(results) == {"exchange_sold_out"}
    async with store.read() as session:
        assert (await session.get(Event, "fest-sun")).exchange_capacity == 0
    assert await count(store, Ticket, Ticket.state == TicketState.EXCHANGED) == 1
    assert await count(store, Ticket, Ticket.event_id == "fest-sun") == 1
    await check_invariants(store)


async def test_claims_of_one_name_on_many_orders_have_one_winner(store):
    await make_event(store)
    orders = [await make_order(store, tickets=1, managers=(BUYER + n,)) for n in range(RACERS)]
    results = await asyncio.gather(*(
        outcome(services.claim_for_myself(store, BUYER + n, tickets[0], "  élodie DUPONT "))
        for n, (_, tickets) in enumerate(orders)))
    assert results.count("élodie DUPONT") == 1
    assert refusal_codes(results) == {"name_taken"}
    await check_invariants(store)
