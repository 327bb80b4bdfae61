"""Outages of what the bot depends on, through the whole bot: the SMTP server down for a while,
Telegram answering 429 and 5xx, its long poll failing, and (on PostgreSQL) the database
dropping every connection in the middle of a transaction. Actions still take effect, once;
mails and news go out once when the service is back; the log gets a few warning lines and no
error or traceback."""

from __future__ import annotations

import logging
import os

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select, update
from sqlalchemy.util import await_only

from bot.background import NEWS_LEASE
from storage import services
from storage.db.store import utcnow
from storage.models import (
    AuditEntry,
    ChatNotification,
    OutboxMail,
    Ticket,
    TicketState,
    UpdateInbox,
)
from storage.services import assigning
from tests.conftest import (
    ON_POSTGRES,
    TEST_DATABASE_URL,
    ensure_postgres_schema,
    fresh_store,
    postgres_schema,
    sample_document,
)
from tests.test_buyer_flow import LINK, eventually, open_order, send_to_friend

APPLICATION_NAME = f"ticketbot-outage-test-{os.getpid()}"


def quiet_log(caplog, *, most_warnings: int) -> None:
    """No error, no traceback, and only a few warnings."""
    records = [r for r in caplog.records if not r.name.startswith("mail.log")]
    errors = [r.getMessage() for r in records if r.levelno >= logging.ERROR]
    assert not errors, errors
    assert not [r for r in records if r.exc_info], "a traceback was logged"
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) <= most_warnings, warnings
    logged = "\n".join(r.getMessage() for r in records)
    for personal in ("alex@example.org", "sam@example.org", "Camille", "Alex Durand"):
        assert personal not in logged


def shorten_telegram_retries(harness) -> None:
    """The rate limiter's pauses between retries of a failed call, made short for the test."""
    harness.application.bot.rate_limiter.first_pause = 0.02


async def completed_tickets(store) -> int:
    async with store.read() as session:
        return await session.scalar(select(func.count()).select_from(Ticket)
                                    .where(Ticket.state == TicketState.COMPLETED))


async def to_the_claim_confirmation(buyer, ref: str = "T-DF-100000-1") -> None:
    await buyer.press(ref)
    await buyer.press("Assign the ticket")
    await buyer.press("Claim the ticket for myself")


async def audits(store, action: str) -> int:
    async with store.read() as session:
        return await session.scalar(select(func.count()).select_from(AuditEntry)
                                    .where(AuditEntry.action == action))


# --- SMTP ------------------------------------------------------------------------------------


async def test_invitations_wait_out_an_smtp_outage_and_go_out_once(harness, caplog):
    caplog.set_level(logging.INFO)
    buyer, _ = await open_order(harness, language="en", user_language="en")
    harness.smtp.stop()
    friends = {"T-DF-100000-1": "alex@example.org", "T-DF-100000-2": "sam@example.org"}
    for ref, email in friends.items():
        await send_to_friend(buyer, ref, email)
        sent = await buyer.press("Send")
        assert email in sent.text and LINK.search(sent.text)
    assert "Pending (2)" in buyer.find("Pending").text
    await harness.run_background()  # the server is down: both fail, nothing is lost

    async with harness.store.read() as session:
        rows = list(await session.scalars(select(OutboxMail)))
    assert len(rows) == 2 and all(r.sent_at is None and r.last_error for r in rows)
    assert harness.mail.messages == []

    # The server comes back (aiosmtpd's controller cannot be restarted: a new one, same port).
    harness.smtp = Controller(harness.mail, hostname="127.0.0.1", port=harness.smtp.port)
    harness.smtp.start()
    async with harness.store.write() as session:  # the retry is due (as if time had passed)
        await session.execute(update(OutboxMail).values(next_attempt_at=utcnow()))
    arrived = [await harness.next_mail(), await harness.next_mail()]
    with pytest.raises(TimeoutError):
        await harness.next_mail(within=0.5)  # each once: no copy follows
    async with harness.store.read() as session:
        rows = list(await session.scalars(select(OutboxMail)))
    assert all(r.sent_at is not None for r in rows)
    # The Message-ID fixed when the invitation was made is the one that arrived.
    assert {(m["To"], m["Message-ID"]) for m in arrived} == {
        (r.recipient, r.message_id) for r in rows}
    assert {r.recipient for r in rows} == set(friends.values())
    quiet_log(caplog, most_warnings=4)


async def test_a_mail_sent_but_not_marked_is_not_sent_again_by_the_same_sender(harness,
                                                                                 monkeypatch):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await harness.stop_bot()
    await harness.start_bot()
    sender = harness.application.bot_data["worker"].mails
    marks = []

    async def store_fails_once(mail_id, *, note=None):
        marks.append(mail_id)
        if len(marks) == 1:
            raise ConnectionError("the store went away")
        async with harness.store.write() as session:
            await session.execute(update(OutboxMail).where(OutboxMail.id == mail_id)
                                  .values(sent_at=utcnow()))

    monkeypatch.setattr(sender, "_mark_sent", store_fails_once)
    await send_to_friend(buyer, "T-DF-100000-1", "alex@example.org")
    await buyer.press("Send")
    first = await harness.next_mail()
    await harness.run_background()
    await harness.run_background()
    assert harness.mail.messages == []  # accepted once; the mark is retried, not the mail
    async with harness.store.read() as session:
        mail = await session.scalar(select(OutboxMail))
    assert mail.sent_at is not None and first["Message-ID"] == mail.message_id


# --- Telegram --------------------------------------------------------------------------------


def screen(user):
    """The newest text message: the screen, whatever ticket picture came after it."""
    return [message for message in user.messages if message.media is None][-1]


async def test_a_press_survives_flood_limits_and_server_errors(harness, caplog):
    caplog.set_level(logging.INFO)
    buyer, _ = await open_order(harness, language="en", user_language="en")
    shorten_telegram_retries(harness)
    await to_the_claim_confirmation(buyer)
    harness.emulator.fail_next("editMessageText", status=502, times=2)
    harness.emulator.fail_next("answerCallbackQuery", status=429, retry_after=1)
    answers = len([e for e in buyer.events if e.kind == "callback_answer"])
    await buyer.press("Confirm", timeout=10)

    async def answered():
        # The screen, not the newest message: the ticket's picture may arrive meanwhile.
        return "Completed (1)" in screen(buyer).text and answers < len(
            [e for e in buyer.events if e.kind == "callback_answer"])
    await eventually(answered, within=10)
    assert await completed_tickets(harness.store) == 1
    assert await audits(harness.store, "claimed_for_self") == 1
    quiet_log(caplog, most_warnings=0)


async def test_a_press_interrupted_by_a_longer_outage_is_retried_from_the_inbox(harness,
                                                                                caplog):
    caplog.set_level(logging.INFO)
    buyer, _ = await open_order(harness, language="en", user_language="en")
    shorten_telegram_retries(harness)
    # More failures than one call's retries: the handler gives up and the inbox retries it.
    harness.emulator.fail_next("editMessageText", status=500, times=5)
    await buyer.press("T-DF-100000-1", timeout=10)

    async def menu_shown():
        return any("Assign the ticket" in text for text in buyer.last.button_texts())
    await eventually(menu_shown, within=10)
    assert any("will be retried" in r.getMessage() for r in caplog.records)
    quiet_log(caplog, most_warnings=2)


async def test_an_action_whose_answer_cannot_be_delivered_still_takes_effect_once(harness,
                                                                                   caplog):
    caplog.set_level(logging.INFO)
    buyer, _ = await open_order(harness, language="en", user_language="en")
    shorten_telegram_retries(harness)
    await to_the_claim_confirmation(buyer)
    harness.emulator.fail_next("editMessageText", status=500, times=20)
    await buyer.press("Confirm", timeout=10)

    async def given_up():
        return any("its answer failed" in r.getMessage() for r in caplog.records)
    await eventually(given_up, within=10)
    async with harness.store.read() as session:
        assert not await session.scalar(select(func.count()).select_from(UpdateInbox)
                                        .where(UpdateInbox.done_at.is_(None)))
    assert await completed_tickets(harness.store) == 1
    assert await audits(harness.store, "claimed_for_self") == 1
    quiet_log(caplog, most_warnings=1)


async def test_polling_waits_out_telegram_failing_and_loses_nothing(harness, caplog):
    caplog.set_level(logging.INFO)
    await harness.import_orders(sample_document())
    token = await harness.order_link("DF-100000")
    harness.emulator.fail_next("getUpdates", status=502, times=2)
    buyer = harness.user(1001, "Camille", language_code="en")
    reaction = await buyer.start(token, timeout=10)
    assert "DF-100000" in reaction.text
    quiet_log(caplog, most_warnings=1)


async def test_news_waits_out_telegram_failing_and_arrives_once(harness, caplog):
    caplog.set_level(logging.INFO)
    buyer, _ = await open_order(harness, language="en", user_language="en")
    shorten_telegram_retries(harness)
    await send_to_friend(buyer, "T-DF-100000-1", "alex@example.org")
    token = LINK.search((await buyer.press("Send")).text).group(1)
    friend = harness.user(2002, "Alex", "Durand", language_code="en")
    await friend.start(token)
    harness.emulator.fail_next("sendMessage", status=500, times=4)  # all tries of one round
    mark = buyer.mark()
    await friend.press("Accept the ticket")

    async def retry_planned():
        # A retry is planned 20 s ahead; a round still sending holds its lease of 2 minutes,
        # and making the news due then would let a second round send it beside the first.
        async with harness.store.read() as session:
            news = await session.scalar(select(ChatNotification))
        now = utcnow()
        return (news is not None and news.attempts >= 1
                and now < news.next_attempt_at < now + NEWS_LEASE / 2)
    await eventually(retry_planned)
    async with harness.store.write() as session:  # its retry is due (as if time had passed)
        await session.execute(update(ChatNotification).values(next_attempt_at=utcnow()))
    await harness.run_background()
    await buyer.wait_for_message(lambda m: "Alex Durand" in m.text, since=mark)
    await harness.run_background()
    assert len([m for m in buyer.messages if "Alex Durand" in m.text]) == 1
    quiet_log(caplog, most_warnings=1)


# --- the database (PostgreSQL) ---------------------------------------------------------------


@pytest.fixture
async def named_harness():
    """The harness on PostgreSQL connections that carry a name of their own, so that the test
    drops only them and not those of other processes sharing the server."""
    if not ON_POSTGRES:
        pytest.skip("dropping the database's connections is a PostgreSQL test")
    from tests.harness import close_harness, open_harness

    schema = await ensure_postgres_schema(TEST_DATABASE_URL)
    settings = {**schema["connect_args"]["server_settings"], "application_name": APPLICATION_NAME}
    store = await fresh_store(TEST_DATABASE_URL, connect_args={"server_settings": settings})
    try:
        opened = await open_harness(store)
        try:
            yield opened
        finally:
            await close_harness(opened)
    finally:
        await store.close()


async def drop_our_connections() -> int:
    connection = await asyncpg.connect(TEST_DATABASE_URL.replace("+asyncpg", ""))
    try:
        return len(await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = $1", APPLICATION_NAME))
    finally:
        await connection.close()


async def test_dropped_database_connections_are_replaced_and_the_update_replayed(
        named_harness, caplog, monkeypatch):
    harness = named_harness
    caplog.set_level(logging.INFO)
    buyer, _ = await open_order(harness, language="en", user_language="en")
    assert postgres_schema()  # the harness runs on this process's schema
    assert await drop_our_connections() >= 1  # idle pooled connections: replaced on checkout
    await to_the_claim_confirmation(buyer)

    reissue = services.reissue_barcode
    dropped = []

    async def drop_mid_transaction(session, ticket, now):
        if not dropped:
            # The claim's transaction runs whole in SQLAlchemy's greenlet (Store.write_whole),
            # where only statements are awaited: the outage is waited for as they are.
            dropped.append(await_only(drop_our_connections()))
        return await reissue(session, ticket, now)

    monkeypatch.setattr(assigning, "reissue_barcode", drop_mid_transaction)
    await buyer.press("Confirm", timeout=10)

    async def done():
        return "Completed (1)" in screen(buyer).text
    await eventually(done, within=15)
    assert dropped and dropped[0] >= 1
    assert await completed_tickets(harness.store) == 1
    assert await audits(harness.store, "claimed_for_self") == 1
    assert any("will be retried" in r.getMessage() for r in caplog.records)
    quiet_log(caplog, most_warnings=3)
    async with harness.store.read() as session:
        attempts = await session.scalar(select(func.max(UpdateInbox.attempts)))
    assert attempts == 2  # the interrupted attempt, then its replay
    await drop_our_connections()
    assert "DF-100000" in (await buyer.start()).text  # the pool reconnects again
