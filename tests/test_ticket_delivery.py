"""The store's side of the ticket in hand: a voided barcode always reaches the messages that
showed it, even when a message is recorded at the very moment its barcode is voided; who may
see which ticket; and the file ids kept for Telegram."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from storage import services, ticket_delivery
from storage.errors import Refusal
from storage.models import Ticket
from storage.services import resale
from tests.conftest import sample_document

BUYER, STRANGER = 1001, 3003


async def opened_order(store, tickets: int = 3) -> list[int]:
    from storage.services.importing.importer import import_document

    await import_document(store, sample_document(tickets=tickets))
    token = await services.create_order_link(store, "DF-100000")
    await services.open_link(store, BUYER, token)
    async with store.read() as session:
        return list(await session.scalars(select(Ticket.id).order_by(Ticket.id)))


async def barcode_of(store, ticket_id: int) -> str:
    async with store.read() as session:
        return await session.scalar(select(Ticket.barcode).where(Ticket.id == ticket_id))


async def due_works(store) -> dict[str, object]:
    """Every due change as the worker would see it, by the barcode it voided; done after."""
    from storage.models.tickets import TicketChange

    works = {}
    for lease in await ticket_delivery.claim_due_changes(store):
        work = await ticket_delivery.change_work(store, lease)
        async with store.read() as session:
            code = await session.scalar(select(TicketChange.old_barcode)
                                        .where(TicketChange.id == lease.id))
        works[code] = work
        await ticket_delivery.finish_change(store, lease, mail=None, recipient=None,
                                            language="en")
    return works


async def test_a_claim_queues_a_change_that_delivers_the_ticket_to_its_holder(store):
    first, *_ = await opened_order(store)
    await services.claim_for_myself(store, BUYER, first, "Zoé Lefèvre")
    (work,) = [w for w in [await ticket_delivery.change_work(store, c)
                           for c in await ticket_delivery.claim_due_changes(store)] if w]
    assert work.to_void == () and not work.delivered_already
    assert work.deliver.holder_telegram_id == BUYER and work.deliver.holder_name == "Zoé Lefèvre"
    assert work.deliver.barcode == await barcode_of(store, first)


async def test_a_message_recorded_after_its_barcode_was_voided_is_voided_at_once(store):
    first, *_ = await opened_order(store)
    await services.claim_for_myself(store, BUYER, first, "Camille Martin")
    code = await barcode_of(store, first)
    recorded = await ticket_delivery.record_message(store, chat_id=BUYER, message_id=10,
                                                    ticket_id=first, barcode=code, language="en")
    assert recorded is None
    await services.take_back(store, BUYER, first)
    work = (await due_works(store))[code]
    assert [sent.message_id for sent in work.to_void] == [10]
    late = await ticket_delivery.record_message(store, chat_id=BUYER, message_id=11,
                                                ticket_id=first, barcode=code, language="en")
    assert late is not None and late.message_id == 11


async def test_recording_while_the_barcode_is_voided_never_loses_the_message(store):
    tickets = await opened_order(store, tickets=8)
    for number, ticket_id in enumerate(tickets):
        await services.claim_for_myself(store, BUYER, ticket_id, f"Holder Number{chr(65 + number)}")
    codes = {ticket_id: await barcode_of(store, ticket_id) for ticket_id in tickets}
    await due_works(store)  # the claims' own changes: done

    async def record(ticket_id: int):
        return await ticket_delivery.record_message(
            store, chat_id=BUYER, message_id=100 + ticket_id, ticket_id=ticket_id,
            barcode=codes[ticket_id], language="en")

    outcomes = await asyncio.gather(*(step for ticket_id in tickets for step in (
        record(ticket_id), services.take_back(store, BUYER, ticket_id))))
    late = {sent.message_id for sent in outcomes[0::2] if sent is not None}
    works = await due_works(store)
    for ticket_id in tickets:
        work = works[codes[ticket_id]]
        voided_by_change = {sent.message_id for sent in work.to_void}
        # Never lost: the change lists every message it saw committed, and a recording that
        # came after the void says so itself (its caller voids the message at once; a change
        # read later may list it too, and editing it twice changes nothing).
        assert 100 + ticket_id in voided_by_change | late


async def test_only_the_holder_may_see_a_ticket(store):
    first, second, _ = await opened_order(store)
    await services.claim_for_myself(store, BUYER, first, "Camille Martin")
    card = await ticket_delivery.held_card(store, BUYER, first)
    assert card.ref == "T-DF-100000-1" and card.languages[-1] == "fr"
    for user, ticket_id in ((STRANGER, first), (BUYER, second)):
        with pytest.raises(Refusal) as refused:
            await ticket_delivery.held_card(store, user, ticket_id)
        assert refused.value.code == "ticket_not_held"
    assert [c.ticket_id for c in await ticket_delivery.held_cards_of_order(store, BUYER, 1)] == [
        first]
    with pytest.raises(Refusal):
        await ticket_delivery.held_cards_of_order(store, STRANGER, 1)


async def test_a_ticket_sold_on_resale_voids_its_messages_and_delivers_nothing(store):
    first, *_ = await opened_order(store)
    await services.claim_for_myself(store, BUYER, first, "Camille Martin")
    code = await barcode_of(store, first)
    await ticket_delivery.record_message(store, chat_id=BUYER, message_id=5, ticket_id=first,
                                         barcode=code, language="fr")
    await due_works(store)
    listing = await resale.list_for_resale(store, BUYER, first, Decimal(50))
    await resale.complete_sale(store, listing)
    work = (await due_works(store))[code]
    assert [sent.message_id for sent in work.to_void] == [5] and work.deliver is None


async def test_file_ids_are_kept_and_replaced(store):
    assert await ticket_delivery.file_id(store, "qr:1") is None
    await ticket_delivery.remember_file_id(store, "qr:1", "AAA")
    await ticket_delivery.remember_file_id(store, "qr:1", "BBB")
    assert await ticket_delivery.file_id(store, "qr:1") == "BBB"


async def test_changes_done_long_ago_are_forgotten(store):
    first, *_ = await opened_order(store)
    await services.claim_for_myself(store, BUYER, first, "Camille Martin")
    await due_works(store)
    assert await ticket_delivery.forget_done_changes(store) == 0
    forgotten = await ticket_delivery.forget_done_changes(
        store, older_than=-dt.timedelta(seconds=1))
    assert forgotten == 1
    assert await ticket_delivery.pending_changes(store) == 0
