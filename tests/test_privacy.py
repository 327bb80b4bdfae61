"""A person's data (issue 22): /privacy says what is kept, /mydata holds all of a person's data
and nobody else's, /forgetme erases them everywhere — on SQLite down to the bytes of the file
and its WAL, on either database in every text column — while other people's data stay and the
bot still serves them; an event's retention shreds it once, resumes after a crash, and leaves
events not yet due alone."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import JSON, String, Text, cast, func, select, update
from sqlalchemy import Text as TextType

from conversations.menu import COMMANDS
from storage import services, webhook_outbox
from storage.db.store import utcnow
from storage.keys import name_key
from storage.models import (
    AuditEntry,
    Base,
    Event,
    Order,
    Ticket,
    TicketState,
    WebhookDelivery,
    WebhookMessage,
)
from storage.services import privacy
from storage.services.importing.importer import import_document
from storage.webhook_messages import TicketAssignedData
from tests.conftest import ON_POSTGRES, sample_document
from tests.harness import close_harness, open_harness

PERSON, OTHER, FRIEND_ID = 1001, 2002, 3003
NAME, EMAIL = "Wilhelmina Oosterhuis", "wilhelmina.oosterhuis@example.org"
OTHER_NAME, OTHER_EMAIL = "Bartholomew Kingsley", "bartholomew.kingsley@example.org"
FRIEND_EMAIL = "quentin.friend@example.org"
SUPPORT = "privacy@dreamfest.example"


@pytest.fixture
async def harness(store):
    opened = await open_harness(store, support_contact=SUPPORT)
    try:
        yield opened
    finally:
        await close_harness(opened)


def two_buyers_document() -> dict:
    document = sample_document(orders=2, tickets=3, language="en")
    first, second = document["orders"]
    first["buyer"].update(name=NAME, email=EMAIL)
    second["buyer"].update(name=OTHER_NAME, email=OTHER_EMAIL)
    return document


async def ticket_ids(store, order_number: str) -> list[int]:
    async with store.read() as session:
        return list(await session.scalars(
            select(Ticket.id).join(Ticket.order).where(Ticket.order.has(number=order_number))
            .order_by(Ticket.id)))


async def two_buyers(harness) -> dict[str, list[int]]:
    """Wilhelmina (the person) holds a ticket of her order and sent one to a friend; Bartholomew
    (someone else) holds one of his."""
    await harness.import_orders(two_buyers_document())
    person = harness.user(PERSON, "Wilhelmina", "Oosterhuis", language_code="en")
    other = harness.user(OTHER, "Bartholomew", language_code="en")
    await person.start(await harness.order_link("DF-100000"))
    await other.start(await harness.order_link("DF-100001"))
    mine, theirs = await ticket_ids(harness.store, "DF-100000"), await ticket_ids(
        harness.store, "DF-100001")
    await services.claim_for_myself(harness.store, PERSON, mine[0], NAME)
    await services.invite_friend(harness.store, PERSON, mine[1], FRIEND_EMAIL)
    await services.claim_for_myself(harness.store, OTHER, theirs[0], OTHER_NAME)
    return {"mine": mine, "theirs": theirs}


async def text_columns_holding(store, needle: str) -> list[str]:
    """Every table.column whose text (JSON as text included) contains ``needle``."""
    found = []
    async with store.read() as session:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, String | Text | JSON):
                    continue
                as_text = cast(column, TextType)
                hits = await session.scalar(select(func.count()).select_from(table).where(
                    func.lower(as_text).contains(needle.lower())))
                if hits:
                    found.append(f"{table.name}.{column.name}")
    return found


def sqlite_bytes(store_or_path) -> bytes:
    """The database file's bytes and its WAL's."""
    path = (store_or_path if isinstance(store_or_path, Path)
            else Path(store_or_path.url.split("///", 1)[1]))
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


# --- /privacy and the menu ---------------------------------------------------------------------


async def test_privacy_says_what_is_kept_and_whom_to_ask_in_the_users_language(harness):
    english = await harness.user(PERSON, language_code="en").send("/privacy")
    assert "What we keep" in english.text and SUPPORT in english.text
    assert "30 days after the event" in english.text and "/forgetme" in english.text
    french = await harness.user(OTHER, language_code="fr").send("/privacy")
    assert "Ce que nous gardons" in french.text and SUPPORT in french.text
    dutch = await harness.user(FRIEND_ID, language_code="nl").send("/privacy")
    assert "Wat we bewaren" in dutch.text


async def test_the_command_menu_offers_the_privacy_commands_in_each_language(harness):
    bot = harness.application.bot
    for language, word in (("en", "Erase your data"), ("fr", "Effacer vos données"),
                           ("nl", "Je gegevens wissen")):
        menu = {c.command: c.description for c in await bot.get_my_commands(
            language_code=language)}
        assert set(menu) == {command for command, _ in COMMANDS}
        assert menu["forgetme"] == word


# --- /mydata -------------------------------------------------------------------------------------


def leaves(document) -> list:
    """Every number and string in a JSON document (keys included)."""
    if isinstance(document, dict):
        return [*document, *(leaf for value in document.values() for leaf in leaves(value))]
    if isinstance(document, list):
        return [leaf for value in document for leaf in leaves(value)]
    return [document]


async def test_mydata_holds_all_of_a_persons_data_and_nobody_elses(harness):
    ids = await two_buyers(harness)
    reaction = await harness.user(PERSON, language_code="en").send("/mydata", timeout=15)
    sent = reaction.last
    assert sent.media["type"] == "document"
    document = json.loads(harness.emulator.media.content(sent.media["file_id"]))
    text = json.dumps(document, ensure_ascii=False)
    assert document["user"]["telegram_id"] == PERSON
    (order,) = document["orders"]
    assert (order["number"], order["buyer_name"], order["buyer_email"]) == (
        "DF-100000", NAME, EMAIL)
    assert len(order["tickets"]) == 3
    (held,) = document["tickets"]
    assert held["holder_name"] == NAME and held["ref"] == "T-DF-100000-1"
    assert [i["email"] for i in document["invitations_sent"]] == [FRIEND_EMAIL]
    assert {"claimed_for_self", "invited"} <= {entry["action"] for entry in document["history"]}
    assert OTHER_NAME not in text and OTHER_EMAIL not in text
    # The other account's id as a value, not as four digits that a random barcode or a time
    # may happen to hold.
    assert OTHER not in leaves(document) and str(OTHER) not in leaves(document)
    async with harness.store.read() as session:
        audited = await session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "personal_data_exported",
            AuditEntry.actor_telegram_id == PERSON))
    assert audited == 1 and ids


# --- /forgetme -----------------------------------------------------------------------------------


async def test_forgetme_asks_first_and_keeping_changes_nothing(harness):
    await two_buyers(harness)
    person = harness.user(PERSON, language_code="en")
    asked = await person.send("/forgetme")
    assert "cannot be undone" in asked.text and "goes back to its buyer" in asked.text
    await person.press("No, keep my data")
    assert await text_columns_holding(harness.store, NAME)


async def test_forgetme_erases_the_person_everywhere_and_keeps_what_the_shop_needs(harness):
    ids = await two_buyers(harness)
    person = harness.user(PERSON, language_code="en")
    await person.send("/mydata", timeout=15)
    assert await text_columns_holding(harness.store, EMAIL)  # what the test looks for is there
    if not ON_POSTGRES:
        assert NAME.encode() in sqlite_bytes(harness.store)
    await person.send("/forgetme")
    done = await person.press("Yes, forget me", timeout=15)
    assert "no longer knows you" in done.text and "1 ticket went back" in done.text
    for needle in (NAME, EMAIL, "wilhelmina", "oosterhuis"):
        assert await text_columns_holding(harness.store, needle) == [], needle
    if not ON_POSTGRES:
        on_disk = sqlite_bytes(harness.store)
        for needle in (NAME, EMAIL, "wilhelmina oosterhuis", "Wilhelmina"):
            assert needle.encode() not in on_disk, needle
        assert OTHER_NAME.encode() in on_disk
    async with harness.store.read() as session:
        mine = {t.id: t for t in await session.scalars(
            select(Ticket).where(Ticket.id.in_(ids["mine"])))}
        theirs = await session.get(Ticket, ids["theirs"][0])
    # Her ticket for the coming event went back to her order's "to assign"; the order stays.
    assert mine[ids["mine"][0]].state == TicketState.TO_ASSIGN
    assert {t.price for t in mine.values()} == {mine[ids["mine"][0]].price}
    assert theirs.holder_name == OTHER_NAME
    assert await text_columns_holding(harness.store, OTHER_EMAIL)
    other = harness.user(OTHER, language_code="en")
    assert "DF-100001" in (await other.send("/start")).text


async def test_forgetme_blanks_a_used_ticket_of_a_past_event_and_flags_its_history(harness):
    ids = await two_buyers(harness)
    async with harness.store.write() as session:
        await session.execute(update(Ticket).where(Ticket.id == ids["mine"][0]).values(
            used_at=dt.datetime(2027, 7, 17, 12, 30, tzinfo=dt.UTC)))
    await privacy.forget_person(harness.store, PERSON)
    async with harness.store.read() as session:
        ticket = await session.get(Ticket, ids["mine"][0])
        flagged = await session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.ticket_id == ticket.id, AuditEntry.erased_at.is_not(None)))
    assert ticket.state == TicketState.COMPLETED and ticket.used_at is not None
    assert ticket.holder_name == privacy.ERASED and ticket.holder_telegram_id is None
    assert flagged >= 1


# --- retention -----------------------------------------------------------------------------------


async def set_event_days(store, event_id: str, starts: dt.datetime, days: int) -> None:
    async with store.write() as session:
        await session.execute(update(Event).where(Event.id == event_id).values(
            starts_at=starts, retention_days=days))


async def retention_case(store) -> dict[str, list[int]]:
    """Saturday's event is over and its retention too; Sunday's is still kept. On a store with
    no bot running: its worker would shred on its own (see the worker's test)."""
    document = two_buyers_document()
    document["orders"][1]["tickets"] = [
        {**ticket, "event": "fest-sun"} for ticket in document["orders"][1]["tickets"]]
    await import_document(store, document)
    ids = {"mine": await ticket_ids(store, "DF-100000"),
           "theirs": await ticket_ids(store, "DF-100001")}
    async with store.write() as session:  # her ticket in her name, as a claim leaves it
        await session.execute(update(Ticket).where(Ticket.id == ids["mine"][0]).values(
            state=TicketState.COMPLETED, holder_name=NAME, name_key=name_key(NAME),
            holder_email=EMAIL, email_key=EMAIL))
    now = dt.datetime.now(dt.UTC)
    await set_event_days(store, "fest-sat", now - dt.timedelta(days=40), 30)
    await set_event_days(store, "fest-sun", now - dt.timedelta(days=10), 30)
    return ids


class Killed(Exception):
    """The process dying in the middle of a shred."""


async def test_retention_shreds_a_due_event_once_and_leaves_the_others(store):
    await retention_case(store)
    if not ON_POSTGRES:
        assert EMAIL.encode() in sqlite_bytes(store)
    assert await privacy.shred_due_events(store) == ["fest-sat"]
    assert await privacy.shred_due_events(store) == []
    await store.truncate_wal()
    for needle in (NAME, EMAIL):
        assert await text_columns_holding(store, needle) == [], needle
    if not ON_POSTGRES:
        on_disk = sqlite_bytes(store)
        assert NAME.encode() not in on_disk and EMAIL.encode() not in on_disk
        assert OTHER_NAME.encode() in on_disk
    assert await text_columns_holding(store, OTHER_EMAIL)
    async with store.read() as session:
        audits = await session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "event_shredded"))
        saturday = await session.get(Event, "fest-sat")
        sunday = await session.get(Event, "fest-sun")
    assert audits == 1 and saturday.shredded_at is not None and sunday.shredded_at is None


async def test_retention_resumes_after_a_crash_and_finishes_once(store, monkeypatch):
    ids = await retention_case(store)
    monkeypatch.setattr(privacy, "SHRED_CHUNK", 1)
    real = privacy._shred_tickets
    calls = 0

    async def crashing(session, ids, now):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Killed
        return await real(session, ids, now)

    monkeypatch.setattr(privacy, "_shred_tickets", crashing)
    with pytest.raises(Killed):
        await privacy.shred_due_events(store)
    async with store.read() as session:
        assert (await session.get(Event, "fest-sat")).shredded_at is None
        # Half done: the first chunk (her ticket) is blank, her order still names her.
        first = await session.get(Ticket, ids["mine"][0])
    assert first.holder_name == privacy.ERASED
    assert await text_columns_holding(store, EMAIL) == ["orders.buyer_email", "orders.search_key"]
    monkeypatch.setattr(privacy, "_shred_tickets", real)
    assert await privacy.shred_due_events(store) == ["fest-sat"]
    assert await text_columns_holding(store, EMAIL) == []
    async with store.read() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "event_shredded")) == 1


async def test_the_worker_shreds_due_events_on_its_own(store):
    await retention_case(store)
    harness = await open_harness(store)  # its worker looks at once, then every 10 minutes
    try:
        async with asyncio.timeout(10):
            while True:
                async with store.read() as session:
                    saturday = await session.get(Event, "fest-sat")
                    sunday = await session.get(Event, "fest-sun")
                if saturday.shredded_at is not None:
                    break
                await asyncio.sleep(0.05)
        assert sunday.shredded_at is None
        assert await text_columns_holding(store, EMAIL) == []
        worker = harness.application.bot_data["worker"]
        assert await worker.retention_due() == []  # not before RETENTION_EVERY again
    finally:
        await close_harness(harness)


@pytest.mark.skipif(ON_POSTGRES, reason="a command line cannot name a test schema")
def test_shred_command_says_what_it_would_remove_then_removes_it(tmp_path, monkeypatch, capsys):
    import asyncio

    from bot.cli import main as ticketbot
    from storage.db.store import open_store
    from storage.services.importing.importer import import_document

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("TICKETBOT_DATABASE_URL", url)
    monkeypatch.setenv("TICKETBOT_SECRET", "s")

    async def load() -> None:
        store = await open_store(url, secret="s")
        await import_document(store, two_buyers_document())
        await store.close()

    asyncio.run(load())
    assert ticketbot(["shred", "fest-sat", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 orders" in out and "Dry run: nothing removed." in out
    assert NAME.encode() in sqlite_bytes(tmp_path / "cli.db")
    assert ticketbot(["shred", "fest-sat"]) == 0
    assert "removed the personal data" in capsys.readouterr().out
    on_disk = sqlite_bytes(tmp_path / "cli.db")
    assert NAME.encode() not in on_disk and EMAIL.encode() not in on_disk
    assert ticketbot(["shred", "nope"]) == 1


def test_run_warns_when_the_link_secret_lives_in_the_store(monkeypatch, caplog):
    from bot.cli import main as ticketbot

    monkeypatch.delenv("TICKETBOT_SECRET", raising=False)
    monkeypatch.delenv("TICKETBOT_TOKEN", raising=False)
    assert ticketbot(["run"]) == 2  # no token: it stops there, after the warning
    assert any("TICKETBOT_SECRET is not set" in r.getMessage() for r in caplog.records)
    caplog.clear()
    monkeypatch.setenv("TICKETBOT_SECRET", "configured")
    assert ticketbot(["run"]) == 2
    assert not any("TICKETBOT_SECRET" in r.getMessage() for r in caplog.records)


# --- webhook messages ----------------------------------------------------------------------------

# Nothing listens there: the messages stay queued, as for a shop that is down.
UNREACHABLE = ("http://127.0.0.1:9/ticketbot", "http://127.0.0.1:9/market")


async def queue_assigned(store, ticket_id: int, holder: str | None) -> int:
    """A ``ticket.assigned`` message naming ``holder``, queued for every endpoint."""
    async with store.write(idempotent=True) as session:
        ticket = await session.get(Ticket, ticket_id)
        number = await session.scalar(select(Order.number).where(Order.id == ticket.order_id))
        await webhook_outbox.queue_webhook(session, "ticket.assigned", ticket.order_id,
                                           TicketAssignedData(
                                               ticket=ticket.ref, order=number,
                                               event=ticket.event_id, holder=holder,
                                               barcode="1" * 16, voided_barcode=ticket.barcode),
                                           utcnow())
        return await session.scalar(select(func.max(WebhookMessage.id)))


async def test_forgetme_drops_the_webhook_messages_naming_the_person(harness):
    harness.store.webhook_endpoints = UNREACHABLE
    await two_buyers(harness)
    assert "webhook_messages.body" in await text_columns_holding(harness.store, NAME)
    person = harness.user(PERSON, language_code="en")
    await person.send("/forgetme")
    await person.press("Yes, forget me", timeout=15)
    for needle in (NAME, "wilhelmina", "oosterhuis"):
        assert await text_columns_holding(harness.store, needle) == [], needle
    if not ON_POSTGRES:
        await harness.store.truncate_wal()
        assert NAME.encode() not in sqlite_bytes(harness.store)
    assert "webhook_messages.body" in await text_columns_holding(harness.store, OTHER_NAME)


async def test_retention_drops_the_webhook_messages_of_the_shredded_event(store):
    ids = await retention_case(store)
    store.webhook_endpoints = UNREACHABLE
    await queue_assigned(store, ids["mine"][0], NAME)
    await queue_assigned(store, ids["theirs"][0], OTHER_NAME)
    assert await privacy.shred_due_events(store) == ["fest-sat"]
    assert await text_columns_holding(store, NAME) == []
    assert "webhook_messages.body" in await text_columns_holding(store, OTHER_NAME)
    async with store.read() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 2


async def test_webhook_messages_are_forgotten_a_week_after_their_last_delivery(store):
    await import_document(store, sample_document(tickets=2, language="en"))
    store.webhook_endpoints = UNREACHABLE
    tickets = await ticket_ids(store, "DF-100000")
    done = await queue_assigned(store, tickets[0], NAME)
    half_done = await queue_assigned(store, tickets[1], OTHER_NAME)
    recent = await queue_assigned(store, tickets[1], "Recently Delivered")
    now = utcnow()
    long_ago, lately = now - dt.timedelta(days=8), now - dt.timedelta(days=2)
    async with store.write(idempotent=True) as session:
        await session.execute(update(WebhookDelivery).where(
            WebhookDelivery.message_id == done).values(finished_at=long_ago, state="delivered"))
        await session.execute(update(WebhookDelivery).where(
            WebhookDelivery.message_id == half_done,
            WebhookDelivery.endpoint == UNREACHABLE[0]).values(finished_at=long_ago,
                                                              state="delivered"))
        await session.execute(update(WebhookDelivery).where(
            WebhookDelivery.message_id == recent).values(finished_at=lately, state="failed"))
    assert await privacy.forget_old_messages(store, now) == 1
    async with store.read() as session:
        kept = set(await session.scalars(select(WebhookMessage.id)))
        deliveries = set(await session.scalars(select(WebhookDelivery.message_id)))
    assert kept == deliveries == {half_done, recent}
    assert await text_columns_holding(store, NAME) == []
    assert await privacy.forget_old_messages(store, now) == 0
