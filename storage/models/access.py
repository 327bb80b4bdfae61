"""Who may act on an order or a ticket: the deep links (kept as keyed hashes), the Telegram
users an order link let in, and the invitations of a ticket to a friend with who opened them.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, UtcDateTime, enum_column
from storage.models.orders import Ticket


class InvitationState(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REVOKED = "revoked"
    EXPIRED = "expired"


class LinkKind(enum.StrEnum):
    ORDER = "order"
    CLAIM = "claim"


class Invitation(Base):
    """A ticket sent to a friend's e-mail; pending until claimed, declined, revoked or expired."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    email: Mapped[str] = mapped_column(String(254))
    state: Mapped[InvitationState] = mapped_column(
        enum_column(InvitationState, "invitation_state"), default=InvitationState.PENDING
    )
    invited_by_telegram_id: Mapped[int | None] = mapped_column(BigInteger)
    inviter_name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    last_sent_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    claimed_by_telegram_id: Mapped[int | None] = mapped_column(BigInteger)

    ticket: Mapped[Ticket] = relationship(lazy="raise")

    __table_args__ = (
        Index("ix_invitations_ticket_id", "ticket_id"),
        Index("ix_invitations_state_expires_at", "state", "expires_at"),
    )


class LinkToken(Base):
    """A deep-link parameter, kept only as its keyed hash."""

    __tablename__ = "link_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[LinkKind] = mapped_column(enum_column(LinkKind, "link_kind"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    invitation_id: Mapped[int | None] = mapped_column(ForeignKey("invitations.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_link_tokens_order_id", "order_id"),
        Index("ix_link_tokens_invitation_id", "invitation_id"),
    )


class ClaimGrant(Base):
    """A Telegram user who opened a claim link; only they may accept or decline it."""

    __tablename__ = "claim_grants"

    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"), primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    granted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class OrderAccess(Base):
    """Which Telegram users may manage which orders (granted by opening the buyer link)."""

    __tablename__ = "order_access"

    telegram_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    granted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_order_access_order_id", "order_id"),)
