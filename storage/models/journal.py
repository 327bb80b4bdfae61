"""What the store writes down for itself: the audit history of every change and staff lookup,
and its own settings (such as the generated link secret).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UtcDateTime, enum_column


class ActorKind(enum.StrEnum):
    BUYER = "buyer"
    FRIEND = "friend"
    STAFF = "staff"
    SYSTEM = "system"


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    actor_kind: Mapped[ActorKind] = mapped_column(enum_column(ActorKind, "actor_kind"))
    actor_telegram_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Set when the person it was about was forgotten: its texts are blanked (docs/privacy.md).
    erased_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_audit_entries_order_id", "order_id", "id"),
        Index("ix_audit_entries_ticket_id", "ticket_id", "id"),
    )


class Setting(Base):
    """Small key/value facts the store keeps for itself, such as the generated link secret."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
