"""Chat news goes out a batch at a time: every item once, each chat's in the order it was
queued, none held up behind a full batch or a slow mail server. The real bot's Bot sends over
HTTP to the emulator; news rows are queued directly, as the services queue them."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import func, select
from telegram import Bot

from bot.background import NEWS_BATCH, NewsSender
from storage.db.store import Store, utcnow
from storage.models import ChatNotification

KIND = "invitation_accepted"  # "… claimed ticket <ref>. …"


async def queue_news(store: Store, chats: list[int], per_chat: int) -> None:
    now = utcnow()
    async with store.write(idempotent=True) as session:
        for number in range(per_chat):
            for chat in chats:
                session.add(ChatNotification(
                    telegram_id=chat, kind=KIND,
                    params={"order_id": 1, "ticket_ref": f"T-{chat}-{number}",
                            "holder": "Alex Durand", "email": "alex@example.org"},
                    created_at=now, next_attempt_at=now))


async def unsent(store: Store) -> int:
    async with store.read() as session:
        return await session.scalar(select(func.count()).select_from(ChatNotification)
                                    .where(ChatNotification.sent_at.is_(None)))


def refs_in(user) -> list[str]:
    return [word.rstrip(".") for message in user.messages for word in message.text.split()
            if word.startswith("T-")]


async def started_users(harness, ids: list[int]):
    users = [harness.user(user_id) for user_id in ids]
    for user in users:
        await user.start()  # a bot may only write to users who started it
    return users


async def test_news_goes_out_in_batches_each_chat_in_order(harness):
    users = await started_users(harness, [501, 502, 503])
    await queue_news(harness.store, [user.id for user in users], per_chat=20)  # 60 > a batch
    # Quickly (pacing is tested in test_outgoing.py): the bot's own worker, which wakes every
    # two seconds, would find the rest of the news otherwise.
    sender = NewsSender(harness.store, harness.application.bot, rate=1000, batch=NEWS_BATCH)

    assert await sender.send_due() == NEWS_BATCH
    assert sender.more_due
    assert await sender.send_due() == 60 - NEWS_BATCH
    assert not sender.more_due
    assert await sender.send_due() == 0

    for user in users:
        assert refs_in(user) == [f"T-{user.id}-{number}" for number in range(20)]
    assert await unsent(harness.store) == 0


async def test_two_senders_at_once_send_each_news_once(harness, store):
    from tests.test_mailer import second_store

    users = await started_users(harness, [511, 512, 513, 514])
    await queue_news(harness.store, [user.id for user in users], per_chat=10)
    other_store = await second_store(store)
    try:
        counts = await asyncio.gather(
            NewsSender(store, harness.application.bot).send_due(),
            NewsSender(other_store, harness.application.bot).send_due(),
        )
    finally:
        await other_store.close()
    assert sum(counts) == 40
    for user in users:
        assert sorted(refs_in(user)) == sorted(f"T-{user.id}-{n}" for n in range(10))
    async with store.read() as session:
        attempts = (await session.scalars(select(ChatNotification.attempts))).all()
    assert attempts == [1] * 40


async def test_news_to_a_user_who_blocked_the_bot_is_dropped_and_the_rest_goes_out(harness):
    kept, blocking = await started_users(harness, [521, 522])
    blocking.block()
    await queue_news(harness.store, [kept.id, blocking.id], per_chat=2)

    assert await NewsSender(harness.store, harness.application.bot).send_due() == 2
    assert refs_in(kept) == [f"T-{kept.id}-0", f"T-{kept.id}-1"]
    assert refs_in(blocking) == []
    assert await unsent(harness.store) == 0  # dropped for good, not retried


async def test_news_that_telegram_fails_is_retried_later_and_not_marked_sent(harness):
    (user,) = await started_users(harness, [531])
    await queue_news(harness.store, [user.id], per_chat=1)
    harness.emulator.fail_next("sendMessage", status=502)
    # A bare Bot: the application's own retries the call a few times first.
    async with Bot(harness.settings.token, base_url=harness.settings.telegram_api_url) as bot:
        assert await NewsSender(harness.store, bot).send_due() == 0
    async with harness.store.read() as session:
        news = (await session.scalars(select(ChatNotification))).one()
    assert news.sent_at is None
    assert news.next_attempt_at > utcnow() + dt.timedelta(seconds=5)  # backing off


async def test_a_mail_server_that_hangs_does_not_hold_up_news(harness):
    from tests.test_mailer import invite_friends

    (user,) = await started_users(harness, [541])
    worker = harness.application.bot_data["worker"]
    sending, released = asyncio.Event(), asyncio.Event()
    real_send = worker.mails.transport.send

    async def hanging_send(message):
        sending.set()
        await released.wait()
        await real_send(message)

    worker.mails.transport.send = hanging_send  # the mail server stops answering mid-mail
    try:
        await invite_friends(harness.store, 1)
        worker.wake()
        await asyncio.wait_for(sending.wait(), 5)
        await queue_news(harness.store, [user.id], per_chat=1)
        worker.wake()
        await user.wait_for_message(lambda m: f"T-{user.id}-0" in m.text, timeout=5)
    finally:
        released.set()
    await harness.next_mail()  # the mail goes out once the server answers again


async def test_news_held_back_by_flood_control_waits_as_long_as_telegram_asks(harness):
    (user,) = await started_users(harness, [532])
    await queue_news(harness.store, [user.id], per_chat=1)
    harness.emulator.fail_next("sendMessage", status=429, retry_after=60)
    async with Bot(harness.settings.token, base_url=harness.settings.telegram_api_url) as bot:
        assert await NewsSender(harness.store, bot).send_due() == 0
    async with harness.store.read() as session:
        news = (await session.scalars(select(ChatNotification))).one()
    assert news.sent_at is None
    # Telegram's 60 s, not the 10 s of the first back-off step for other failures.
    wait = news.next_attempt_at - utcnow()
    assert dt.timedelta(seconds=55) < wait <= dt.timedelta(seconds=60)
