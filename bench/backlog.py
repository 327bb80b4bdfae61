"""Replies behind a backlog of notifications (issue #13): thousands of news queued for other
chats before the buyers arrive. Replies must keep their latency (they are not counted against
the notifications' budget), while the news go out at ``TICKETBOT_BROADCAST_RATE``.

The news are queued straight into the prepared store, for chats that started the bot in the
emulator; the buyers only claim tickets for themselves in this part (a buyer waiting for
"your friend claimed the ticket" would wait behind the backlog: news are first in, first out),
and so does the run without backlog it is compared with.
"""

from __future__ import annotations

from typing import Any

from bot.tools.emulator import BotApiEmulator
from storage.db.store import Store, utcnow
from storage.models import ChatNotification

BACKLOG_CHAT_BASE = 40_000_000
BACKLOG_CHATS = 100
DEFAULT_RATE = 25.0  # TICKETBOT_BROADCAST_RATE's default


def backlog_chats(emulator: BotApiEmulator, count: int = BACKLOG_CHATS) -> set[int]:
    """Chats that started the bot (a bot may only write to those)."""
    chats = set()
    for n in range(count):
        user = emulator.user(BACKLOG_CHAT_BASE + n, first_name="Subscriber", language_code="en")
        user._chat.started = True  # as if they had sent /start long ago
        chats.add(user.id)
    return chats


async def queue_backlog(url: str, chats: set[int], news: int) -> None:
    """``news`` notifications, spread over ``chats``, all due now."""
    store = Store(url, secret="bench-secret")
    now = utcnow()
    ordered = sorted(chats)
    try:
        async with store.write(idempotent=True) as session:
            session.add_all(
                ChatNotification(
                    telegram_id=ordered[n % len(ordered)], kind="invitation_accepted",
                    params={"order_id": 1, "ticket_ref": f"T-NEWS-{n}", "holder": "Alex Durand",
                            "email": "alex@example.org"},
                    created_at=now, next_attempt_at=now)
                for n in range(news))
    finally:
        await store.close()


def news_rate(emulator: BotApiEmulator, chats: set[int], started: float,
              ended: float) -> dict[str, Any]:
    """How many news reached the backlog's chats while the buyers ran, and at what rate."""
    sent = [call.time for call in emulator.calls
            if call.method == "sendMessage" and call.chat_id in chats and call.ok]
    during = [t for t in sent if started <= t <= ended]
    elapsed = ended - started
    return {"news_sent_total": len(sent), "news_sent_during": len(during),
            "news_per_s": len(during) / elapsed if elapsed else 0.0}
