"""Support staff commands end to end through the emulator: /status, /find, /history, /resend,
for staff and for everyone else (who must learn nothing), and the audit of staff actions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import event, select

from storage import services
from storage.db.store import utcnow
from storage.models import ActorKind, AuditEntry, Invitation, Order, Ticket
from storage.services import resale
from tests.conftest import sample_document
from tests.harness import close_harness, open_harness

STAFF, BUYER, STRANGER = 9001, 1001, 3003
UNKNOWN = "I don't know that command. /help lists what I can do."


@pytest.fixture
async def harness(store):
    """The bot with one staff member configured."""
    opened = await open_harness(store, staff_ids=frozenset({STAFF}))
    try:
        yield opened
    finally:
        await close_harness(opened)


@pytest.fixture
def support(harness):
    return harness.user(STAFF, "Sam", "Support", language_code="en")


async def ticket_ids(store, number: str = "DF-100000") -> dict[str, int]:
    async with store.read() as session:
        rows = await session.execute(
            select(Ticket.ref, Ticket.id)
            .join(Order, Order.id == Ticket.order_id)
            .where(Order.number == number)
        )
        return dict(rows.all())


async def open_order(harness, *, tickets: int = 3, orders: int = 1):
    """Import orders and let the buyer open the first one."""
    await harness.import_orders(sample_document(orders=orders, tickets=tickets, language="en"))
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="en")
    await buyer.start(await harness.order_link("DF-100000"))
    return await ticket_ids(harness.store)


async def audit_of(store, action: str) -> list[AuditEntry]:
    async with store.read() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def all_pages_fit(message) -> bool:
    return len(message.text) <= 4096 and sum(len(row) for row in message.buttons) <= 100


async def test_status_shows_the_whole_order(harness, support):
    ids = await open_order(harness)
    store = harness.store
    await services.claim_for_myself(store, BUYER, ids["T-DF-100000-1"], "Camille Martin")
    await services.invite_friend(store, BUYER, ids["T-DF-100000-2"], "alex@example.org")
    listing = await resale.list_for_resale(store, BUYER, ids["T-DF-100000-3"], Decimal("50.00"))

    shown = (await support.send("/status DF-100000")).text
    assert "Order DF-100000" in shown
    assert "Camille Martin (camille0@example.org)" in shown
    for ref in ids:
        assert ref in shown
    assert "Status: completed" in shown and "In the name of: Camille Martin" in shown
    assert f"Holder's Telegram id: {BUYER}" in shown
    assert "Status: pending" in shown and "Invitation to alex@example.org: sent" in shown
    assert "Status: on resale" in shown
    assert "On resale at €50.00 since" in shown and f"(listing {listing})" in shown
    assert "Times are in Europe/Paris." in shown
    assert "Recent changes" in shown
    assert f"offered for resale · T-DF-100000-3 · 50.00 — buyer {BUYER}" in shown
    assert f"sent to a friend · T-DF-100000-2 · alex@example.org — buyer {BUYER}" in shown
    assert "order imported — system" in shown
    [viewed] = await audit_of(store, "staff_viewed")
    assert (viewed.actor_kind, viewed.actor_telegram_id) == (ActorKind.STAFF, STAFF)


async def test_status_of_an_unknown_order_and_without_an_argument(harness, support):
    await open_order(harness)
    assert (await support.send("/status DF-999")).text == "There is no order DF-999."
    assert (await support.send("/status")).text == "Usage: /status ORDER_NUMBER"
    assert await audit_of(harness.store, "staff_viewed") == []


@pytest.mark.parametrize(
    "command",
    [
        "/status DF-100000",
        "/find camille",
        "/history T-DF-100000-1",
        "/resend DF-100000",
        "/stats fest-sat",
        "/export fest-sat",
        "/status",
        "/frobnicate",
    ],
)
async def test_anyone_else_gets_the_unknown_command_answer(harness, command):
    ids = await open_order(harness)
    await services.invite_friend(harness.store, BUYER, ids["T-DF-100000-1"], "alex@example.org")
    for user in (harness.user(STRANGER, "Eve"), harness.user(BUYER)):
        answer = await user.send(command)
        assert answer.text == UNKNOWN
        assert answer.last.buttons == []
    async with harness.store.read() as session:
        staff_entries = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.actor_kind == ActorKind.STAFF)
            )
        )
        invitation = await session.scalar(select(Invitation))
    assert staff_entries == []
    assert invitation.last_sent_at == invitation.created_at  # nothing was sent again


async def test_staff_page_buttons_pressed_by_others_show_nothing(harness, support):
    ids = await open_order(harness)
    async with harness.store.read() as session:
        order_id = await session.scalar(select(Order.id))
    stranger = harness.user(STRANGER, "Eve", language_code="en")
    await stranger.start()
    for data in (f"ss:{order_id}:0", f"ss:{order_id}:1", f"sh:{ids['T-DF-100000-1']}:0"):
        reaction = await stranger.press_data(data, message=stranger.last)
        assert "DF-100000" not in reaction.text and "Camille" not in reaction.text
        assert "T-DF-100000" not in reaction.text
    assert await audit_of(harness.store, "staff_viewed") == []


async def test_a_long_status_is_paginated(harness, support):
    ids = await open_order(harness, tickets=120)
    first = (await support.send("/status DF-100000")).last
    pages, page = [first], first
    while "Next ▶" in page.button_texts():
        page = (await support.press("Next ▶")).last
        pages.append(page)
        assert len(pages) < 40
    assert len(pages) > 1
    assert all(all_pages_fit(page) for page in pages)
    assert all("Order DF-100000" in page.text for page in pages)
    assert f"Page {len(pages)} of {len(pages)}" in pages[-1].text
    seen = [ref for page in pages for ref in ids if f"{ref} ·" in page.text]
    assert sorted(seen) == sorted(ids)  # every ticket on exactly one page
    assert "Recent changes" in pages[-1].text
    back = (await support.press("◀ Previous")).last
    assert back.text == pages[-2].text


async def test_find_by_email_name_reference_or_number(harness, support):
    ids = await open_order(harness, orders=3)
    await services.claim_for_myself(harness.store, BUYER, ids["T-DF-100000-2"], "Élodie Dupont")

    by_email = (await support.send("/find CAMILLE1@example")).text
    assert "1 order matches “CAMILLE1@example”:" in by_email
    assert "DF-100001 — Camille Martin (camille1@example.org), 3 tickets" in by_email
    assert "DF-100000" not in by_email
    assert "3 orders match" in (await support.send("/find martin")).text
    assert "DF-100002 —" in (await support.send("/find T-DF-100002-3")).text
    assert "DF-100001 —" in (await support.send("/find df-100001")).text
    holder = (await support.send("/find elodie dupont")).text  # accents ignored
    assert "1 order matches" in holder and "DF-100000 —" in holder
    assert (await support.send("/find 50%_")).text == "No order matches “50%_”."

    status = await support.press("📋 DF-100000")
    assert "Order DF-100000" in status.text and "Élodie Dupont" in status.text
    [searched, *_] = await audit_of(harness.store, "staff_searched")
    assert (searched.actor_telegram_id, searched.details["query"]) == (STAFF, "CAMILLE1@example")


async def test_find_says_when_more_orders_match_than_shown(harness, support):
    await open_order(harness, orders=23, tickets=1)
    found = (await support.send("/find camille")).last
    assert "20 orders match" in found.text
    assert "Only the first 20 are shown" in found.text
    assert len(found.buttons) == 20 and all_pages_fit(found)


async def test_history_lists_every_change_of_a_ticket(harness, support):
    ids = await open_order(harness)
    ticket_id = ids["T-DF-100000-1"]
    await services.invite_friend(harness.store, BUYER, ticket_id, "alex@example.org")
    await services.revoke_invitation(harness.store, BUYER, ticket_id)
    await services.claim_for_myself(harness.store, BUYER, ticket_id, "Camille Martin")

    shown = (await support.send("/history T-DF-100000-1")).text
    assert "History of ticket T-DF-100000-1, order DF-100000" in shown
    invited = shown.index(f"sent to a friend · alex@example.org — buyer {BUYER}")
    revoked = shown.index(f"invitation withdrawn — buyer {BUYER}")
    claimed = shown.index(f"claimed by the buyer · Camille Martin — buyer {BUYER}")
    assert invited < revoked < claimed
    assert "T-DF-100000-2" not in shown
    [viewed] = await audit_of(harness.store, "staff_viewed_history")
    assert (viewed.actor_telegram_id, viewed.ticket_id) == (STAFF, ticket_id)
    assert (await support.send("/history T-NOPE")).text == "There is no ticket T-NOPE."


async def test_a_long_history_is_paginated(harness, support):
    ids = await open_order(harness)
    now = utcnow()
    async with harness.store.write() as session:
        session.add_all(
            AuditEntry(
                at=now + dt.timedelta(seconds=n),
                actor_kind=ActorKind.BUYER,
                actor_telegram_id=BUYER,
                action="holder_renamed",
                ticket_id=ids["T-DF-100000-1"],
                details={"old": f"Name {n}", "new": f"Name {n + 1}"},
            )
            for n in range(150)
        )
    page = (await support.send("/history T-DF-100000-1")).last
    seen = []
    for _ in range(40):
        assert all_pages_fit(page)
        seen += [n for n in range(150) if f"Name {n} → Name {n + 1} —" in page.text]
        if "Next ▶" not in page.button_texts():
            break
        page = (await support.press("Next ▶")).last
    assert seen == list(range(150))  # oldest first, each entry once


async def test_resend_sends_the_pending_invitations_again(harness, support):
    ids = await open_order(harness)
    store = harness.store
    await services.invite_friend(store, BUYER, ids["T-DF-100000-1"], "alex@example.org")
    await services.invite_friend(store, BUYER, ids["T-DF-100000-2"], "sam@example.org")
    first = {(await harness.next_mail())["To"] for _ in range(2)}
    assert first == {"alex@example.org", "sam@example.org"}
    async with store.write() as session:  # the links are about to expire
        await session.execute(
            Invitation.__table__.update().values(expires_at=utcnow() + dt.timedelta(hours=1))
        )

    answer = await support.send("/resend DF-100000")
    assert answer.text == (
        "2 invitations of order DF-100000 sent again: alex@example.org, sam@example.org"
    )
    again = {(await harness.next_mail())["To"] for _ in range(2)}
    assert again == {"alex@example.org", "sam@example.org"}
    async with store.read() as session:
        invitations = list(await session.scalars(select(Invitation)))
    assert all(i.expires_at > utcnow() + dt.timedelta(days=13) for i in invitations)
    resent = await audit_of(store, "invitation_resent")
    assert {(e.actor_kind, e.actor_telegram_id) for e in resent} == {(ActorKind.STAFF, STAFF)}
    assert len(resent) == 2


async def test_resend_without_pending_invitations_says_so(harness, support):
    await open_order(harness)
    answer = await support.send("/resend DF-100000")
    assert answer.text == "Order DF-100000 has no pending invitation to send again."
    assert (await support.send("/resend DF-404")).text == "There is no order DF-404."
    assert harness.mail.messages == []


async def test_unknown_commands_get_a_short_answer(harness):
    user = harness.user(STRANGER, "Eve", language_code="en")
    assert (await user.send("/frobnicate now")).text == UNKNOWN


async def test_staff_statements_run_on_the_stores_thread_and_a_buyers_on_the_loop(
        harness, support):
    """A report may read a whole event: on SQLite its statements keep aiosqlite's thread, while
    a buyer's reply runs its statements on the loop (storage/db/sqlite_driver.py)."""
    from storage.db import sqlite_driver

    await open_order(harness, tickets=120)
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="en")
    on_loop: list[bool] = []

    def note(_connection, _cursor, statement: str, *_args) -> None:
        if "update_inbox" not in statement:  # the inbox's claims and marks, not the handler's
            on_loop.append(sqlite_driver.on_loop())

    engine = harness.store.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        await support.send("/status DF-100000")
        await support.press("Next ▶")
        staff_statements, on_loop[:] = list(on_loop), []
        await buyer.press("T-DF-100000-1")
        buyer_statements = list(on_loop)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert staff_statements and not any(staff_statements)
    assert buyer_statements and all(buyer_statements)
