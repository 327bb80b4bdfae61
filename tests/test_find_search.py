"""Staff's ``/find`` compares by Unicode's rules on SQLite as on PostgreSQL ("ÉLODIE" finds
"Élodie", "strasse" finds "Straße"), through search columns kept up to date and a trigram index
that serves the substring search (storage/reads/search.py), never a scan of a whole table."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage import services
from storage.errors import Refusal
from storage.models import Order, Ticket
from storage.services import staff
from storage.services.importing.importer import import_document
from tests.conftest import sample_document
from tests.test_query_plans import full_scans, make_world, recording

STAFF, BUYER = 9001, 1001


async def numbers(store, text: str) -> list[str]:
    found = await staff.find_orders(store, STAFF, text)
    return [order.number for order in found.orders]


async def ticket_id(store, ref: str) -> int:
    async with store.read() as session:
        return await session.scalar(select(Ticket.id).where(Ticket.ref == ref))


@pytest.fixture
async def orders(store):
    document = sample_document(orders=3)
    document["orders"][1]["buyer"] = {"name": "Jürgen Straße", "email": "JS@Example.org",
                                      "language": "fr"}
    await import_document(store, document)
    link = await services.create_order_link(store, "DF-100000")
    await services.open_link(store, BUYER, link)
    return document


async def test_case_and_accents_fold_by_unicode_rules(store, orders):
    first = await ticket_id(store, "T-DF-100000-2")
    await services.claim_for_myself(store, BUYER, first, "Élodie Dupont")
    for typed in ("ÉLODIE", "elodie", "Elodie DUPONT", "élodie"):
        assert await numbers(store, typed) == ["DF-100000"], typed
    for typed in ("strasse", "STRASSE", "Straße", "jurgen", "JÜRGEN", "js@example"):
        assert await numbers(store, typed) == ["DF-100001"], typed


async def test_the_search_column_follows_the_holder(store, orders):
    ticket = await ticket_id(store, "T-DF-100000-1")
    await services.claim_for_myself(store, BUYER, ticket, "Élodie Dupont")
    assert await numbers(store, "dupont") == ["DF-100000"]
    await services.rename_holder(store, BUYER, ticket, "Zoé Martin")
    assert await numbers(store, "dupont") == []
    assert await numbers(store, "ZOE") == ["DF-100000"]
    await services.take_back(store, BUYER, ticket)
    assert await numbers(store, "zoe") == []
    await services.invite_friend(store, BUYER, ticket, "ÅSA@example.org")
    assert await numbers(store, "asa@exa") == ["DF-100000"]


async def test_imported_rows_are_searchable_and_wildcards_are_literal(store, orders):
    async with store.read() as session:
        keys = list(await session.scalars(select(Order.search_key).order_by(Order.id)))
    assert keys[1] == "df-100001\njurgen strasse\njs@example.org"
    assert await numbers(store, "T-DF-100002-3") == ["DF-100002"]
    assert await numbers(store, "50%_") == [] and await numbers(store, "*[?") == []
    # A match never spans two fields: the number ends, the name begins.
    assert await numbers(store, "100001 jurgen") == []


async def test_a_search_shorter_than_a_trigram_is_refused(store, orders):
    with pytest.raises(Refusal) as refused:
        await staff.find_orders(store, STAFF, " é ")
    assert refused.value.code == "staff_search_too_short"


async def test_find_is_served_by_the_search_index(store):
    await make_world(store)
    with recording(store) as statements:
        found = await staff.find_orders(store, STAFF, "camille1")
    assert found.orders
    assert any("search_" in statement or "LIKE" in statement for statement, _ in statements)
    assert not await full_scans(store, statements)
    if store.is_sqlite:  # FTS5 takes the GLOB pattern to its trigram index ("G")
        statement, parameters = next(s for s in statements if "search_tickets" in s[0])
        async with store.engine.connect() as connection:
            plan = [row[-1] for row in await connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters)]
        assert "SCAN search_tickets VIRTUAL TABLE INDEX 0:G0" in plan, plan
    else:
        async with store.engine.connect() as connection:
            await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = "\n".join(row[0] for row in await connection.exec_driver_sql(
                "EXPLAIN SELECT id FROM tickets WHERE search_key LIKE '%camille1%'"))
        assert "ix_tickets_search" in plan, plan
