"""The ticket an exchange creates carries the target session's category label
(storage/services/exchange.py says how it is chosen), not the label of the ticket it replaces."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import update

from storage.models import Ticket
from storage.services import exchange
from tests.factories import make_event, make_order

BUYER = 1001


@pytest.fixture
async def saturday(store):
    await make_event(store, "fest-sun", name="Dreamfest 2027 — Sunday",
                     starts_at=dt.datetime(2027, 7, 18, 12, tzinfo=dt.UTC))
    await make_event(store, exchange_enabled=True, exchange_targets=["fest-sun"])
    return await make_order(store, managers=(BUYER,))  # three "Pass samedi" at 89.00


async def sunday_tickets(store, *categories: tuple[str, str]) -> None:
    """Tickets of the target session, of the given (category, price)."""
    _, ids = await make_order(store, event_id="fest-sun", tickets=len(categories))
    async with store.write() as session:
        for ticket_id, (category, price) in zip(ids, categories, strict=True):
            await session.execute(update(Ticket).where(Ticket.id == ticket_id)
                                  .values(category=category, price=Decimal(price)))


async def exchanged_category(store, ticket_id: int) -> str:
    new_id = await exchange.exchange_ticket(store, BUYER, ticket_id, "fest-sun")
    async with store.read() as session:
        return (await session.get(Ticket, new_id)).category


async def test_the_same_pass_on_the_target_day_gives_its_label(store, saturday):
    await sunday_tickets(store, ("VIP dimanche", "150.00"), ("Pass dimanche", "89.00"))
    assert await exchanged_category(store, saturday[1][0]) == "Pass dimanche"


async def test_a_category_of_the_same_name_on_the_target_is_kept(store, saturday):
    await sunday_tickets(store, ("Pass dimanche", "89.00"), ("Pass samedi", "60.00"))
    assert await exchanged_category(store, saturday[1][0]) == "Pass samedi"


async def test_no_match_takes_the_targets_first_category(store, saturday):
    await sunday_tickets(store, ("Pass dimanche", "59.00"), ("VIP dimanche", "150.00"))
    assert await exchanged_category(store, saturday[1][0]) == "Pass dimanche"


async def test_a_target_without_tickets_keeps_the_old_label(store, saturday):
    assert await exchanged_category(store, saturday[1][0]) == "Pass samedi"
