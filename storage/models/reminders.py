"""The tables behind reminders: which reminder went out, and who wants none.

``sent_reminders`` is how "exactly once" is kept: a reminder's row is inserted, under a unique
key (kind, subject id, occasion), in the very transaction that queues its chat message or
e-mail. A second worker (another process, or the same after a restart) that decides to send the
same reminder collides with that key and its transaction queues nothing.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UtcDateTime


class SentReminder(Base):
    """One reminder queued: ``kind`` (personalise, invitation, event_day), the id of what it is
    about (an order, an invitation, a ticket) and the ``occasion`` (``d7``, a date…)."""

    __tablename__ = "sent_reminders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int] = mapped_column(Integer)
    occasion: Mapped[str] = mapped_column(String(120))
    sent_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        UniqueConstraint("kind", "subject_id", "occasion", name="uq_sent_reminders_key"),
    )


class ReminderOptOut(Base):
    """A Telegram user who turned reminders off (under "more actions"); no row: reminders on."""

    __tablename__ = "reminder_opt_outs"

    telegram_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    since: Mapped[dt.datetime] = mapped_column(UtcDateTime())
