"""Telegram's side of the store: its users, where each chat stands in a flow, what comes in
(every update, every Mini App action, each applied once) and the news that goes out, at a pace
shared by every process.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Double, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UtcDateTime


class TelegramUser(Base):
    __tablename__ = "telegram_users"

    telegram_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chosen_language: Mapped[str | None] = mapped_column(String(8))
    telegram_language: Mapped[str | None] = mapped_column(String(16))
    failed_starts: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class ChatState(Base):
    """Where a chat stands in an input flow (waiting for a name, an e-mail…), with an expiry."""

    __tablename__ = "chat_states"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    step: Mapped[str] = mapped_column(String(32))
    ticket_id: Mapped[int | None] = mapped_column(Integer)
    invitation_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class UpdateInbox(Base):
    """Every Telegram update, written before it is confirmed to Telegram and marked done in the
    transaction of its effects, so a crash loses none and a redelivery applies none twice."""

    __tablename__ = "update_inbox"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    done_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_update_inbox_done_at", "done_at", "update_id"),
        Index("ix_update_inbox_chat_id", "chat_id", "update_id"),
    )


class WebAppAction(Base):
    """An action the Mini App sent (its client-made id), written in the transaction of its
    effects: a replayed or repeated request finds its id taken and changes nothing."""

    __tablename__ = "webapp_actions"

    action_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger)
    done_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_webapp_actions_done_at", "done_at"),)


class ChatNotification(Base):
    """News for a Telegram user (a friend claimed your ticket…), rendered in their language
    when sent, after the transaction that caused it has committed."""

    __tablename__ = "chat_notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_chat_notifications_due", "sent_at", "next_attempt_at"),)


class BroadcastBudget(Base):
    """The pace of messages the bot sends on its own, shared by every process on the store:
    ``next_slot`` is when (Unix time, seconds) the next notification may go out. Taking slots
    is one conditional UPDATE (``storage/broadcast_budget.py``)."""

    __tablename__ = "broadcast_budget"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_slot: Mapped[float] = mapped_column(Double)
