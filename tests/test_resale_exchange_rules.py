"""The rules of resale, exchange, name correction and take-back, against a real store."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from storage import services
from storage.db.store import utcnow
from storage.errors import Refusal
from storage.models import (
    Barcode,
    ChatNotification,
    Event,
    ListingState,
    ResaleListing,
    Ticket,
    TicketState,
)
from storage.services import exchange, resale
from tests.factories import make_event, make_order

BUYER = 1001


@pytest.fixture
async def order(store):
    await make_event(store, "fest-sun", name="Dreamfest 2027 — Sunday", exchange_capacity=1,
                     starts_at=dt.datetime(2027, 7, 18, 12, tzinfo=dt.UTC))
    await make_event(store, exchange_enabled=True, exchange_targets=["fest-sun"],
                     resale_min_price=Decimal("10.00"))
    return await make_order(store, managers=(BUYER,))


async def ticket_row(store, ticket_id: int) -> Ticket:
    async with store.read() as session:
        return await session.get(Ticket, ticket_id)


async def refused(code: str, call) -> None:
    with pytest.raises(Refusal) as refusal:
        await call
    assert refusal.value.code == code


async def test_listing_within_bounds_and_price_change(store, order):
    _, (ticket_id, *_) = order
    listing_id = await resale.list_for_resale(store, BUYER, ticket_id, Decimal("45.50"))
    assert (await ticket_row(store, ticket_id)).state == TicketState.ON_RESALE
    await resale.change_price(store, BUYER, ticket_id, Decimal("89.00"))
    async with store.read() as session:
        listing = await session.get(ResaleListing, listing_id)
    assert listing.price == Decimal("89.00")
    details = await services.ticket_details(store, BUYER, ticket_id)
    assert details.ticket.actions == ("change_price", "cancel_sale")


@pytest.mark.parametrize("price, code", [
    (Decimal("89.01"), "price_out_of_bounds"),  # above face value
    (Decimal("9.99"), "price_out_of_bounds"),  # below the event's minimum
    (Decimal("-1"), "price_invalid"),
    (Decimal("45.555"), "price_too_precise"),
])
async def test_prices_outside_the_rules_change_nothing(store, order, price, code):
    _, (ticket_id, *_) = order
    await refused(code, resale.list_for_resale(store, BUYER, ticket_id, price))
    assert (await ticket_row(store, ticket_id)).state == TicketState.TO_ASSIGN
    async with store.read() as session:
        assert await session.scalar(select(func.count()).select_from(ResaleListing)) == 0


async def test_cancel_sale_restores_the_ticket_as_it_was(store, order):
    _, (ticket_id, *_) = order
    await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin")
    await resale.list_for_resale(store, BUYER, ticket_id, Decimal("50"))
    await resale.cancel_sale(store, BUYER, ticket_id)
    ticket = await ticket_row(store, ticket_id)
    assert ticket.state == TicketState.COMPLETED and ticket.holder_name == "Camille Martin"
    await refused("listing_not_live", resale.cancel_sale(store, BUYER, ticket_id))


async def test_pending_ticket_cannot_be_listed_and_listed_cannot_be_assigned(store, order):
    _, (first, second, _) = order
    await services.invite_friend(store, BUYER, first, "alex@example.org")
    await refused("resale_pending_invitation",
                  resale.list_for_resale(store, BUYER, first, Decimal("50")))
    await resale.list_for_resale(store, BUYER, second, Decimal("50"))
    await refused("not_assignable", services.claim_for_myself(store, BUYER, second, "Eve Dupont"))
    await refused("not_assignable", services.invite_friend(store, BUYER, second, "x@example.org"))


async def test_resale_disabled_and_deadline_passed(store, order):
    _, (ticket_id, *_) = order
    async with store.write() as session:
        await session.execute(update(Event).where(Event.id == "fest-sat")
                              .values(resale_deadline=utcnow() - dt.timedelta(days=1)))
    await refused("resale_closed", resale.list_for_resale(store, BUYER, ticket_id, Decimal(50)))
    async with store.write() as session:
        await session.execute(update(Event).where(Event.id == "fest-sat")
                              .values(resale_enabled=False))
    await refused("resale_off", resale.list_for_resale(store, BUYER, ticket_id, Decimal(50)))


async def test_completed_sale_voids_the_ticket_and_tells_the_buyer(store, order):
    _, (ticket_id, *_) = order
    barcode = (await ticket_row(store, ticket_id)).barcode
    listing_id = await resale.list_for_resale(store, BUYER, ticket_id, Decimal("60"))
    sale = await resale.complete_sale(store, listing_id)
    assert sale.price == Decimal("60.00")
    ticket = await ticket_row(store, ticket_id)
    assert ticket.state == TicketState.SOLD
    async with store.read() as session:
        assert (await session.get(Barcode, barcode)).voided_at is not None
        news = await session.scalar(select(ChatNotification))
        listing = await session.get(ResaleListing, listing_id)
    assert news.kind == "resale_sold" and news.telegram_id == BUYER
    assert listing.state == ListingState.SOLD
    await refused("listing_not_live", resale.complete_sale(store, listing_id))
    await refused("listing_not_found", resale.complete_sale(store, 999))


async def test_bounds_are_checked_again_when_the_sale_completes(store, order):
    _, (ticket_id, *_) = order
    listing_id = await resale.list_for_resale(store, BUYER, ticket_id, Decimal("60"))
    await refused("price_out_of_bounds",
                  resale.complete_sale(store, listing_id, price=Decimal("120")))
    assert (await ticket_row(store, ticket_id)).state == TicketState.ON_RESALE


async def test_two_concurrent_listings_of_one_ticket_have_one_winner(store, order):
    _, (ticket_id, *_) = order

    async def attempt(price: str):
        try:
            return await resale.list_for_resale(store, BUYER, ticket_id, Decimal(price))
        except Refusal as refusal:
            return refusal.code

    results = await asyncio.gather(attempt("50"), attempt("55"))
    assert sum(isinstance(r, int) for r in results) == 1
    assert next(r for r in results if isinstance(r, str)) in {"ticket_changed", "not_listable"}


async def test_exchange_swaps_the_ticket_and_clears_the_name(store, order):
    order_id, (ticket_id, *_) = order
    await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin")
    options = await exchange.exchange_options(store, BUYER, ticket_id)
    assert [(o.event.id, o.places_left) for o in options] == [("fest-sun", 1)]
    new_id = await exchange.exchange_ticket(store, BUYER, ticket_id, "fest-sun")
    old, new = await ticket_row(store, ticket_id), await ticket_row(store, new_id)
    assert old.state == TicketState.EXCHANGED and old.holder_name is None
    assert new.state == TicketState.TO_ASSIGN and new.event_id == "fest-sun"
    assert new.order_id == order_id and new.barcode != old.barcode
    async with store.read() as session:
        assert (await session.get(Event, "fest-sun")).exchange_capacity == 0
        assert (await session.get(Barcode, old.barcode)).voided_at is not None
    # The Saturday name is free again: the old ticket no longer holds it.
    await services.claim_for_myself(store, BUYER, order[1][1], "Camille Martin")


async def test_exchange_refuses_unknown_targets_and_sold_out_sessions(store, order):
    _, (first, second, _) = order
    await refused("exchange_target_invalid", exchange.exchange_ticket(store, BUYER, first, "x"))
    await exchange.exchange_ticket(store, BUYER, first, "fest-sun")
    await refused("exchange_sold_out", exchange.exchange_ticket(store, BUYER, second, "fest-sun"))


async def test_last_exchange_place_raced_by_two_buyers(store, order):
    _, (first, *_) = order
    other_buyer = 1002
    _, (other, *_) = await make_order(store, managers=(other_buyer,))

    async def attempt(user: int, ticket_id: int):
        try:
            return await exchange.exchange_ticket(store, user, ticket_id, "fest-sun")
        except Refusal as refusal:
            return refusal.code

    results = await asyncio.gather(attempt(BUYER, first), attempt(other_buyer, other))
    assert sum(isinstance(r, int) for r in results) == 1
    assert "exchange_sold_out" in results


async def test_rename_applies_the_uniqueness_rule_and_changes_the_barcode(store, order):
    _, (first, second, _) = order
    await services.claim_for_myself(store, BUYER, first, "Camille Martin")
    await services.claim_for_myself(store, BUYER, second, "Alex Durand")
    before = (await ticket_row(store, first)).barcode
    await refused("name_taken", services.rename_holder(store, BUYER, first, "alex  DURAND"))
    assert await services.rename_holder(store, BUYER, first, "Camille Martin-Roy")
    after = await ticket_row(store, first)
    assert after.holder_name == "Camille Martin-Roy" and after.barcode != before


async def test_take_back_returns_the_ticket_with_a_new_barcode(store, order):
    _, (first, *_) = order
    await services.claim_for_myself(store, BUYER, first, "Camille Martin")
    before = (await ticket_row(store, first)).barcode
    await services.take_back(store, BUYER, first)
    ticket = await ticket_row(store, first)
    assert ticket.state == TicketState.TO_ASSIGN and ticket.holder_name is None
    assert ticket.barcode != before
    await refused("not_completed", services.take_back(store, BUYER, first))


async def test_personalisation_deadline_closes_assignment_changes(store, order):
    _, (first, *_) = order
    async with store.write() as session:
        await session.execute(update(Event).where(Event.id == "fest-sat").values(
            personalisation_deadline=utcnow() - dt.timedelta(hours=1)))
    await refused("personalisation_closed",
                  services.claim_for_myself(store, BUYER, first, "Camille Martin"))
    details = await services.ticket_details(store, BUYER, first)
    assert "assign" not in details.ticket.actions and "sell" in details.ticket.actions


@pytest.mark.parametrize("state, expected", [
    ("to_assign", ("assign", "sell", "exchange")),
    ("pending", ("resend", "revoke")),
    ("completed", ("rename", "take_back", "sell", "exchange")),
    ("on_resale", ("change_price", "cancel_sale")),
])
async def test_every_state_offers_exactly_its_actions(store, order, state, expected):
    _, (ticket_id, *_) = order
    if state == "pending":
        await services.invite_friend(store, BUYER, ticket_id, "alex@example.org")
    elif state == "completed":
        await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin")
    elif state == "on_resale":
        await resale.list_for_resale(store, BUYER, ticket_id, Decimal("50"))
    details = await services.ticket_details(store, BUYER, ticket_id)
    assert details.ticket.actions == expected
