"""The leased queue every outbox uses (storage/leased_queue.py): claims never overlap, a lease
that runs out makes its row due again, and only the lease holder may reschedule a row."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import insert, select

from storage.db.store import utcnow
from storage.leased_queue import MAILS, NEWS
from storage.models import ChatNotification, OutboxMail

LEASE = dt.timedelta(minutes=2)


async def queue_news(store, count: int) -> None:
    now = utcnow()
    async with store.write() as session:
        await session.execute(insert(ChatNotification), [
            {"telegram_id": 1000 + n, "kind": "claimed", "params": {}, "created_at": now,
             "next_attempt_at": now, "attempts": 0, "sent_at": None} for n in range(count)])


async def queue_mail(store) -> None:
    now = utcnow()
    async with store.write() as session:
        await session.execute(insert(OutboxMail), [{
            "message_id": "<one@ticketbot.local>", "recipient": "sam@example.org",
            "language": "en", "kind": "invitation", "params": {}, "created_at": now,
            "next_attempt_at": now, "attempts": 0}])


async def test_concurrent_claims_never_take_the_same_row(store):
    await queue_news(store, 30)
    first, second = await asyncio.gather(NEWS.claim(store, limit=20, lease=LEASE),
                                         NEWS.claim(store, limit=20, lease=LEASE))
    taken = [lease.id for lease in first + second]
    assert len(taken) == len(set(taken)) == 30
    assert await NEWS.claim(store, limit=20, lease=LEASE) == []


async def test_rows_are_claimed_oldest_first_and_counted_as_attempts(store):
    await queue_news(store, 3)
    leases = await NEWS.claim(store, limit=2, lease=LEASE)
    assert [lease.id for lease in leases] == [1, 2]
    assert all(lease.attempts == 1 for lease in leases)


async def test_a_lease_that_ran_out_is_due_again_and_the_old_holder_loses_it(store):
    await queue_mail(store)
    (old,) = await MAILS.claim(store, limit=1, lease=LEASE)
    (new,) = await MAILS.claim(store, limit=1, lease=LEASE, now=old.until)
    assert new.id == old.id and new.attempts == 2
    assert not await MAILS.retry_later(store, old, dt.timedelta(seconds=10), last_error="late")
    assert await MAILS.retry_later(store, new, dt.timedelta(seconds=10), last_error="refused")
    async with store.read() as session:
        mail = await session.scalar(select(OutboxMail))
    assert mail.last_error == "refused" and mail.sent_at is None


async def test_a_finished_row_is_never_claimed_again(store):
    await queue_mail(store)
    (lease,) = await MAILS.claim(store, limit=1, lease=LEASE)
    await MAILS.finish(store, [lease.id])
    assert await MAILS.claim(store, limit=1, lease=LEASE, now=utcnow() + 2 * LEASE) == []
    assert await MAILS.unfinished(store) == 0


async def test_news_are_given_up_after_their_last_attempt(store):
    await queue_news(store, 1)
    for attempt in range(1, 9):
        (lease,) = await NEWS.claim(store, limit=1, lease=LEASE,
                                    now=utcnow() + attempt * dt.timedelta(hours=2))
        await NEWS.retry_later(store, lease, dt.timedelta(seconds=1))
    assert lease.attempts == 8 and await NEWS.unfinished(store) == 0


async def test_a_row_put_back_does_not_count_as_an_attempt(store):
    await queue_news(store, 1)
    (lease,) = await NEWS.claim(store, limit=1, lease=LEASE)
    assert await NEWS.put_back(store, lease, dt.timedelta(seconds=0))
    (again,) = await NEWS.claim(store, limit=1, lease=LEASE, now=utcnow() + dt.timedelta(1))
    assert again.attempts == 1
