"""Two kinds of outgoing traffic (SPEC "Outgoing messages and Telegram's limits"): replies go
out at once and a 429 holds only its own chat; notifications are paced by one budget in the
store, shared by every process, and a 429 on one pauses notifications, not replies."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from pydantic import ValidationError

from bot.background import NewsSender
from bot.settings import Settings
from storage.broadcast_budget import Budget
from tests.test_buyer_flow import eventually
from tests.test_news import queue_news, started_users, unsent


def news_calls(harness, chats: set[int]) -> list:
    return [call for call in harness.emulator.calls
            if call.method == "sendMessage" and call.chat_id in chats and call.ok]


async def test_slots_taken_by_two_processes_at_once_never_overlap(store):
    from tests.test_mailer import second_store

    other = await second_store(store)
    try:
        budgets = [Budget(store, 100.0), Budget(other, 100.0)]
        now = time.time() + 1.0  # no idle burst: every slot comes from the pace
        taken = await asyncio.gather(*(budgets[n % 2].take(5, now=now) for n in range(20)))
    finally:
        await other.close()
    spans = sorted((slots.first, slots.at(slots.count)) for slots in taken)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start == pytest.approx(end)  # back to back: no slot handed out twice
    # 100 slots at 100 per second, after the burst an idle budget keeps.
    assert spans[-1][1] - spans[0][0] == pytest.approx(1.0)


async def test_a_pause_holds_back_the_next_slots_of_every_process(store):
    budget = Budget(store, 25.0)
    now = time.time()
    first = await budget.take(1, now=now)
    assert first.first <= now
    await budget.pause(30, now=now)
    after = await Budget(store, 25.0).take(1, now=now)
    assert after.first == pytest.approx(now + 30)


async def test_notifications_go_out_at_the_configured_rate_and_replies_do_not_wait(harness):
    users = await started_users(harness, [701, 702, 703])
    chats = {user.id for user in users}
    await queue_news(harness.store, sorted(chats), per_chat=25)  # 75: three seconds' worth
    replies = len(news_calls(harness, chats))  # to their /start
    worker = harness.application.bot_data["worker"]
    started = time.monotonic()
    worker.wake()
    await asyncio.sleep(1.0)
    replier = harness.user(704)
    asked = time.monotonic()
    await replier.start(timeout=2)
    answered = time.monotonic() - asked
    sent_after_a_while = len(news_calls(harness, chats)) - replies
    elapsed = time.monotonic() - started
    assert answered < 0.5  # not behind the 70-odd news still waiting for their turn
    assert sent_after_a_while <= 25 * elapsed + 6  # the pace, and an idle budget's burst
    assert sent_after_a_while >= 25 * (elapsed - 0.6)


async def test_a_429_on_a_notification_pauses_notifications_not_replies(harness):
    users = await started_users(harness, [711, 712])
    chats = {user.id for user in users}
    await queue_news(harness.store, sorted(chats), per_chat=3)
    harness.emulator.fail_next("sendMessage", status=429, retry_after=30)
    sender = NewsSender(harness.store, harness.application.bot)
    # The first met the 429; the rest waited with it (but one already on its way).
    assert await sender.send_due() <= 1
    assert await unsent(harness.store) >= 5
    # Replies go on at once.
    replier = harness.user(713)
    asked = time.monotonic()
    await replier.start(timeout=2)
    assert time.monotonic() - asked < 0.5
    # Another process's notifications wait too: the budget is paused in the store.
    slots = await Budget(harness.store, 25.0).take(1)
    assert slots.first >= time.time() + 25


async def test_a_429_holds_only_the_chat_telegram_named(harness):
    held, other = harness.user(721), harness.user(722)
    harness.emulator.fail_next("sendMessage", status=429, retry_after=2)
    asked = time.monotonic()
    held_task = asyncio.create_task(held.start(timeout=10))

    async def refused() -> bool:
        return any(call.status == 429 for call in held.calls)
    await eventually(refused)
    other_asked = time.monotonic()
    await other.start(timeout=2)
    assert time.monotonic() - other_asked < 0.5
    await held_task

    def answers() -> list:
        return [call for call in held.calls if call.method == "sendMessage" and call.ok]
    while not answers():
        assert time.monotonic() - asked < 10
        await asyncio.sleep(0.02)
    assert 2.0 <= answers()[0].time - asked < 3.0  # as long as Telegram asked


async def test_paid_broadcasts_ask_telegram_for_the_higher_rate(harness):
    (user,) = await started_users(harness, [731])
    replies = len(news_calls(harness, {user.id}))
    await queue_news(harness.store, [user.id], per_chat=2)
    sender = NewsSender(harness.store, harness.application.bot, rate=500, paid_broadcast=True)
    assert await sender.send_due() == 2
    (first, second) = news_calls(harness, {user.id})[replies:]
    assert first.params.get("allow_paid_broadcast") is True
    assert second.params.get("allow_paid_broadcast") is True


def test_the_broadcast_rate_stays_within_telegram_limits():
    assert Settings(_env_file=None).broadcast_rate == 25
    with pytest.raises(ValidationError, match="PAID_BROADCAST"):
        Settings(_env_file=None, broadcast_rate=100)
    assert Settings(_env_file=None, broadcast_rate=1000, paid_broadcast=True).broadcast_rate == 1000
    with pytest.raises(ValidationError):
        Settings(_env_file=None, broadcast_rate=1001, paid_broadcast=True)
    with pytest.raises(ValidationError):
        Settings(_env_file=None, broadcast_rate=0)
