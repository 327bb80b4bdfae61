"""Hostile input that is not random: guessing links by brute force, and order documents built to
break the importer (nested without end, numbers of thousands of digits, huge values)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select, update

from storage import services
from storage.db.store import utcnow
from storage.models import AuditEntry, Event, Order, OrderAccess, TelegramUser, Ticket
from storage.services.importing.importer import ImportRejected, import_document
from tests.conftest import sample_document

GUESSER = 6666
TOO_MANY = "Too many invalid links"


async def test_guessing_links_is_slowed_down_and_a_restart_does_not_reset_it(harness):
    await harness.import_orders(sample_document(language="en"))
    good = await harness.order_link("DF-100000")
    guesser = harness.user(GUESSER, "Eve", language_code="en")
    for attempt in range(services.MAX_FAILED_STARTS):
        guess = f"{attempt:02d}" + good[2:]  # wrong, but shaped like a real link
        assert "not valid" in (await guesser.start(guess)).text
    # Now even the right link waits: the guesser cannot tell a hit from the cool-down.
    assert TOO_MANY in (await guesser.start(good)).text
    await harness.restart_bot()
    assert TOO_MANY in (await guesser.start(good)).text
    async with harness.store.read() as session:
        user = await session.get(TelegramUser, GUESSER)
        granted = await session.scalar(select(func.count()).select_from(OrderAccess)
                                       .where(OrderAccess.telegram_id == GUESSER))
    assert user.blocked_until > utcnow() + dt.timedelta(minutes=4) and granted == 0

    async with harness.store.write() as session:  # the cool-down is over
        await session.execute(update(TelegramUser).where(TelegramUser.telegram_id == GUESSER)
                              .values(blocked_until=utcnow() - dt.timedelta(seconds=1)))
    assert "DF-100000" in (await guesser.start(good)).text


async def test_the_cool_down_holds_for_every_bot_process_on_the_store(harness, store):
    """A second process sees the same stored count: here, the service on the same store."""
    for _ in range(services.MAX_FAILED_STARTS):
        with pytest.raises(services.Refusal):
            await services.open_link(store, GUESSER, "x" * 32)
    assert TOO_MANY in (await harness.user(GUESSER, "Eve").start("y" * 32)).text


# --- order documents -------------------------------------------------------------------------


async def nothing_written(store) -> bool:
    async with store.read() as session:
        return not any([
            await session.scalar(select(func.count()).select_from(model))
            for model in (Event, Order, Ticket, AuditEntry)])


@pytest.mark.parametrize(("document", "problem"), [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"events": [], "orders": [{"number": "A-1", "buyer": '
     + '{"a": ' * 5_000 + "1" + "}" * 5_000 + "}]}", "nested too deeply"),
    ('{"events": [{"id": "e", "capacity": ' + "9" * 5_000 + "}], \"orders\": []}",
     "a number is too large"),
], ids=["nested arrays", "nested objects", "huge number"])
async def test_a_document_built_to_break_the_parser_is_refused(store, document, problem):
    with pytest.raises(ImportRejected) as refused:
        await import_document(store, document)
    assert any(problem in line for line in refused.value.problems)
    assert await nothing_written(store)


async def test_huge_values_are_refused_with_a_short_message_naming_the_entry(store):
    document = sample_document()
    document["events"][0]["name"] = "Dreamfest " * 200_000  # two megabytes
    document["orders"][0]["buyer"]["email"] = "x" * 100_000 + "@example.org"
    document["orders"][0]["tickets"][0]["price"] = "9" * 3_000 + ".00"
    with pytest.raises(ImportRejected) as refused:
        await import_document(store, json.dumps(document))
    problems = refused.value.problems
    assert any(p.startswith("events[0] (fest-sat).name") for p in problems)
    assert any(p.startswith("orders[0] (DF-100000).buyer.email") for p in problems)
    assert any(p.startswith("orders[0] (DF-100000).tickets[0] (T-DF-100000-1).price")
               for p in problems)
    assert all(len(p) < 400 for p in problems)
    assert await nothing_written(store)


async def test_a_document_over_the_size_limit_is_refused_before_parsing(store):
    with pytest.raises(ImportRejected) as refused:
        await import_document(store, b"{" + b" " * 2_000 + b"}", max_bytes=1_000)
    assert "more than the limit" in refused.value.problems[0]
    assert await nothing_written(store)
