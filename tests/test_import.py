"""Importing order documents: what a good file creates, that a second import changes nothing,
and that every kind of bad file is refused with a message naming the entry, writing nothing."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

import storage
from storage.models import AuditEntry, Barcode, Event, Order, Ticket, TicketState
from storage.services.importing.importer import ImportRejected, import_document, import_file
from tests.conftest import sample_document

SAMPLE_FILE = Path(storage.__file__).parent / "sample_orders.json"
TABLES = (Event, Order, Ticket, Barcode, AuditEntry)


def document(orders: int = 2, tickets: int = 3, **kwargs) -> dict:
    """A sample document of its own, which a test may change freely."""
    return copy.deepcopy(sample_document(orders, tickets, **kwargs))


async def counts(store) -> dict[str, int]:
    async with store.read() as session:
        return {
            model.__tablename__: await session.scalar(select(func.count()).select_from(model))
            for model in TABLES
        }


async def tickets_by_ref(store) -> dict[str, tuple]:
    async with store.read() as session:
        rows = await session.execute(
            select(Ticket.ref, Ticket.id, Ticket.barcode, Ticket.state, Ticket.order_id)
        )
        return {ref: rest for ref, *rest in rows}


async def assert_refused(store, bad, *expected: str, **kwargs) -> ImportRejected:
    """Import ``bad``; it must be refused with each expected text in its problems, and the
    store must be left exactly as it was."""
    before = await counts(store)
    with pytest.raises(ImportRejected) as refused:
        await import_document(store, bad, **kwargs)
    problems = refused.value.problems
    for text in expected:
        assert any(text in problem for problem in problems), (text, problems)
    assert await counts(store) == before
    return refused.value


# --- good documents -----------------------------------------------------------------------------


async def test_valid_import_creates_events_orders_tickets_and_barcodes(store):
    report = await import_document(store, document(orders=2, tickets=3))

    assert await counts(store) == {
        "events": 2,
        "orders": 2,
        "tickets": 6,
        "barcodes": 6,
        "audit_entries": 4,
    }
    assert (report.events_created, report.orders_created, report.tickets_created) == (2, 2, 6)
    assert report.order_numbers == ("DF-100000", "DF-100001")
    async with store.read() as session:
        saturday = await session.get(Event, "fest-sat")
        order = await session.scalar(select(Order).where(Order.number == "DF-100001"))
        tickets = (await session.scalars(select(Ticket).where(Ticket.order_id == order.id))).all()
        barcodes = {b.code: b for b in (await session.scalars(select(Barcode))).all()}
        imported = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "order_imported", AuditEntry.order_id == order.id)
        )
    assert saturday.starts_at == dt.datetime(2027, 7, 17, 12, 0, tzinfo=dt.UTC)
    assert saturday.resale_min_price == Decimal("10.00") and saturday.resale_max_price is None
    assert saturday.exchange_targets == ["fest-sun"]
    assert (order.buyer_email, order.language) == ("camille1@example.org", "fr")
    assert [t.ref for t in tickets] == ["T-DF-100001-1", "T-DF-100001-2", "T-DF-100001-3"]
    for ticket in tickets:
        assert ticket.state == TicketState.TO_ASSIGN and ticket.price == Decimal("89.00")
        assert barcodes[ticket.barcode].ticket_id == ticket.id
        assert barcodes[ticket.barcode].voided_at is None
    assert imported == 1


async def test_second_import_of_same_document_changes_nothing(store):
    await import_document(store, document())
    before, tickets_before = await counts(store), await tickets_by_ref(store)

    report = await import_document(store, json.dumps(document()))

    assert (report.events_created, report.events_updated) == (0, 0)
    assert (report.orders_created, report.tickets_created) == (0, 0)
    assert report.order_numbers == ("DF-100000", "DF-100001")
    assert await counts(store) == before
    assert await tickets_by_ref(store) == tickets_before


async def test_bundled_sample_file_imports(store):
    report = await import_file(store, SAMPLE_FILE)

    assert await counts(store) == {
        "events": 3,
        "orders": 6,
        "tickets": 25,
        "barcodes": 25,
        "audit_entries": 9,
    }
    assert report.order_numbers[0] == "DF-100234"
    async with store.read() as session:
        events = {e.id: e for e in (await session.scalars(select(Event))).all()}
        sizes = (
            await session.execute(
                select(
                    Order.number, func.count(Ticket.id), func.count(func.distinct(Ticket.event_id))
                )
                .join(Ticket, Ticket.order_id == Order.id)
                .group_by(Order.number)
            )
        ).all()
        languages = set((await session.scalars(select(Order.language))).all())
    assert {zone.timezone for zone in events.values()} == {"Europe/Paris", "Europe/Dublin"}
    assert events["dreamfest-2027-sat"].exchange_targets == ["dreamfest-2027-sun"]
    assert events["dreamfest-2027-sun"].exchange_capacity == 50
    assert not events["harbour-lights-2027"].resale_enabled
    assert not events["harbour-lights-2027"].exchange_enabled
    assert max(count for _, count, _ in sizes) == 12
    assert any(days == 2 for _, _, days in sizes)
    assert languages == {"fr", "en"}


async def test_existing_order_gains_new_ticket_and_old_tickets_keep_barcodes(store):
    await import_document(store, document(orders=1, tickets=2))
    before = await tickets_by_ref(store)
    grown = document(orders=1, tickets=3)

    report = await import_document(store, grown)

    after = await tickets_by_ref(store)
    assert (report.orders_created, report.tickets_created) == (0, 1)
    assert {ref: after[ref] for ref in before} == before
    assert after["T-DF-100000-3"][3] == before["T-DF-100000-1"][3]  # the same order
    assert await counts(store) == {
        "events": 2,
        "orders": 1,
        "tickets": 3,
        "barcodes": 3,
        "audit_entries": 4,
    }


async def test_changed_event_is_updated_and_counted_only_when_it_changes(store):
    await import_document(store, document())
    changed = document()
    changed["events"][0]["name"] = "Dreamfest 2027 — Saturday (new line-up)"
    changed["events"][0]["resale"]["max_price"] = "89.00"

    first = await import_document(store, changed)
    second = await import_document(store, changed)

    assert (first.events_created, first.events_updated) == (0, 1)
    assert second.events_updated == 0
    async with store.read() as session:
        saturday = await session.get(Event, "fest-sat")
    assert saturday.name.endswith("(new line-up)")
    assert saturday.resale_max_price == Decimal("89.00")


async def test_orders_may_name_events_already_in_the_store(store):
    await import_document(store, document(orders=1))
    later = document(orders=1, prefix="LT")
    del later["events"]

    report = await import_document(store, later)

    assert (report.orders_created, report.tickets_created) == (1, 3)


# --- bad documents: each refused with its entry named, nothing written ---------------------------


def _set(path: str, value):
    """A change to a document: set the value at a dotted path ("orders.0.tickets.1.price")."""

    def change(doc: dict) -> None:
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return change


def _duplicate_ref(doc: dict) -> None:
    doc["orders"][1]["tickets"][1]["ref"] = doc["orders"][0]["tickets"][2]["ref"]


def _duplicate_event(doc: dict) -> None:
    doc["events"].append(copy.deepcopy(doc["events"][0]))


BAD_DOCUMENTS = {
    "unknown event": (
        _set("orders.0.tickets.1.event", "fest-mon"),
        'orders[0] (DF-100000).tickets[1] (T-DF-100000-2).event: unknown event "fest-mon"',
    ),
    "duplicate ticket ref": (
        _duplicate_ref,
        'orders[1] (DF-100001).tickets[1] (T-DF-100000-3).ref: "T-DF-100000-3" is already used '
        "by orders[0] (DF-100000).tickets[2] (T-DF-100000-3)",
    ),
    "duplicate order number": (
        _set("orders.1.number", "DF-100000"),
        'orders[1] (DF-100000).number: "DF-100000" is already used by orders[0] (DF-100000)',
    ),
    "duplicate event id": (
        _duplicate_event,
        'events[2] (fest-sat).id: "fest-sat" is already used by events[0] (fest-sat)',
    ),
    "negative price": (
        _set("orders.1.tickets.0.price", "-5.00"),
        "orders[1] (DF-100001).tickets[0] (T-DF-100001-1).price: must not be negative",
    ),
    "price as JSON number": (
        _set("orders.0.tickets.2.price", 89.5),
        "orders[0] (DF-100000).tickets[2] (T-DF-100000-3).price: must be a decimal string like "
        '"45.00", not the JSON number 89.5',
    ),
    "three decimals": (
        _set("orders.0.tickets.0.price", "89.001"),
        "orders[0] (DF-100000).tickets[0] (T-DF-100000-1).price: must have at most 2 decimals",
    ),
    "bad currency": (
        _set("events.1.currency", "EURO"),
        'events[1] (fest-sun).currency: unknown currency "EURO"',
    ),
    "bad time zone": (
        _set("events.0.timezone", "Europe/Pariss"),
        'events[0] (fest-sat).timezone: unknown time zone "Europe/Pariss"',
    ),
    "naive datetime": (
        _set("events.0.starts_at", "2027-07-17T14:00:00"),
        "events[0] (fest-sat).starts_at: has no UTC offset",
    ),
    "naive deadline": (
        _set("events.0.personalisation.deadline", "2027-07-10 23:59"),
        "events[0] (fest-sat).personalisation.deadline: has no UTC offset",
    ),
    "bad e-mail": (
        _set("orders.1.buyer.email", "camille@@example"),
        'orders[1] (DF-100001).buyer.email: is not a valid e-mail address (got "camille@@example")',
    ),
    "unknown key": (
        _set("events.0.venue.citty", "Nantes"),
        "events[0] (fest-sat).venue.citty: not a known key",
    ),
    "exchange target missing": (
        _set("events.0.exchange.targets", ["fest-sun", "fest-mon"]),
        'events[0] (fest-sat).exchange.targets[1]: unknown event "fest-mon"',
    ),
    "min above max": (
        _set("events.0.resale.max_price", "5.00"),
        "events[0] (fest-sat).resale: min_price 10.00 is above max_price 5.00",
    ),
    "unknown language": (
        _set("orders.0.buyer.language", "de"),
        "orders[0] (DF-100000).buyer.language: must be 'en', 'fr' or 'nl'",
    ),
    "string as flag": (
        _set("events.0.resale.enabled", "yes"),
        'events[0] (fest-sat).resale.enabled: must be true or false (got "yes")',
    ),
    "order without tickets": (
        _set("orders.0.tickets", []),
        "orders[0] (DF-100000).tickets: must list at least 1 entry",
    ),
    "missing name": (
        _set("events.1.name", "   "),
        "events[1] (fest-sun).name: must not be empty",
    ),
    "space in order number": (
        _set("orders.0.number", "DF 100000"),
        "orders[0] (DF 100000).number: must be 1 to 64 visible ASCII characters",
    ),
}


@pytest.mark.parametrize("change, message", BAD_DOCUMENTS.values(), ids=BAD_DOCUMENTS.keys())
async def test_bad_document_is_refused_naming_the_entry(store, change, message):
    bad = document()
    change(bad)

    await assert_refused(store, bad, message)


async def test_bad_document_is_refused_even_after_a_good_one(store):
    await import_document(store, document(orders=1))
    bad = document(orders=3)
    bad["orders"][2]["tickets"][0]["price"] = "free"

    await assert_refused(store, bad, "orders[2] (DF-100002).tickets[0] (T-DF-100002-1).price")


async def test_all_problems_are_reported_together_up_to_a_limit(store):
    bad = document(orders=30, tickets=2)
    for order in bad["orders"]:
        for ticket in order["tickets"]:
            ticket["price"] = "lots"

    refused = await assert_refused(store, bad)

    assert len(refused.problems) == 50 and refused.omitted == 10
    assert str(refused).endswith("… and 10 more problems")


async def test_malformed_json_is_refused_with_line_and_column(store):
    text = '{\n  "events": [],\n  "orders": [\n    {"number": "DF-1",, }\n  ]\n}'

    await assert_refused(store, text, "not valid JSON", "at line 4, column 23")


async def test_document_that_is_not_an_object_is_refused(store):
    await assert_refused(store, b"[1, 2, 3]", "must be a JSON object")


async def test_unknown_top_level_key_is_refused(store):
    bad = document()
    bad["order"] = bad.pop("orders")

    await assert_refused(store, bad, 'order: not a known key (a document has only "events"')


async def test_a_file_is_never_refused_for_its_size_but_a_document_in_memory_is(store, tmp_path):
    huge = tmp_path / "huge.json"
    with huge.open("wb") as file:
        file.truncate(60_000_000)  # sparse: only what the parser reads before refusing is read

    with pytest.raises(ImportRejected) as refused:
        await import_file(store, huge)
    assert str(refused.value) == "not valid JSON: invalid char in json text at line 1, column 1"
    await assert_refused(store, json.dumps(document()), "more than the limit of 100",
                         max_bytes=100)


async def test_missing_file_is_refused(store, tmp_path):
    with pytest.raises(ImportRejected) as refused:
        await import_file(store, tmp_path / "nowhere.json")
    assert "cannot read the file" in str(refused.value)


async def test_ticket_ref_of_another_order_in_the_store_is_a_conflict(store):
    await import_document(store, document(orders=1))
    other = document(orders=1, prefix="XX")
    other["orders"][0]["tickets"][1]["ref"] = "T-DF-100000-2"

    await assert_refused(
        store,
        other,
        "orders[0] (XX-100000).tickets[1] (T-DF-100000-2).ref: already belongs to order "
        "DF-100000 in the store",
    )


async def test_stored_ticket_cannot_change_its_price_or_category(store):
    await import_document(store, document(orders=1))
    changed = document(orders=1)
    changed["orders"][0]["tickets"][0]["price"] = "99.00"
    changed["orders"][0]["tickets"][2]["category"] = "Pass VIP"

    await assert_refused(
        store,
        changed,
        "orders[0] (DF-100000).tickets[0] (T-DF-100000-1).price: the store has this ticket with "
        'price "89.00", not "99.00"',
        "orders[0] (DF-100000).tickets[2] (T-DF-100000-3).category: the store has this ticket",
    )
