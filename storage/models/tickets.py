"""The tables behind "the ticket in hand": what changed, what was sent, what Telegram keeps.

``ticket_changes`` is an outbox: a row is written in the transaction that voids a barcode, and
the background worker later voids the chat messages that showed it and sends the ticket to its
holder (if it has one now). ``ticket_messages`` records every ticket message the bot sent, with
the barcode it showed, so that those messages can be voided when the barcode is. ``telegram_files``
keeps the ``file_id`` Telegram returns for an uploaded picture or document, so the same bytes are
never uploaded twice.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UtcDateTime


class TicketChange(Base):
    """A barcode was voided: its messages must stop showing it, and the ticket's holder (if
    any) must get the current one. Written with the change, done once by the worker."""

    __tablename__ = "ticket_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    old_barcode: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    done_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_ticket_changes_due", "done_at", "next_attempt_at"),)


class TicketMessage(Base):
    """A ticket message (QR picture) the bot sent, and the barcode it shows."""

    __tablename__ = "ticket_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    barcode: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    sent_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    voided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        UniqueConstraint("chat_id", "message_id", name="uq_ticket_messages_chat_message"),
        Index("ix_ticket_messages_barcode", "barcode"),
        Index("ix_ticket_messages_ticket_id", "ticket_id"),
    )


class TelegramFile(Base):
    """A file Telegram already holds (``file_id``), by what it shows (``qr:<barcode>`` …)."""

    __tablename__ = "telegram_files"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    file_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
