"""The e-mails to send: an outbox written with their cause, sent after it commits."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UtcDateTime


class OutboxMail(Base):
    """An e-mail written in the same transaction as its cause and sent later by the mailer.

    It holds what to say (``kind`` and ``params``), not the rendered text: the text carries a
    claim link, and links are never stored in plain text; the mailer renders it when sending.
    ``message_id`` is fixed at creation so a retried send is recognisably the same mail.
    """

    __tablename__ = "outbox_mails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    recipient: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (Index("ix_outbox_mails_due", "sent_at", "next_attempt_at"),)
