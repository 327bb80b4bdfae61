"""The order store's tables, as typed SQLAlchemy 2 models.

Every rule that must hold under concurrency is also a constraint here: one holder name and one
e-mail address per event (on normalised keys), one current barcode per ticket, barcodes never
reused, one state per ticket. Relationships are ``lazy="raise"`` so hidden I/O fails loudly.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from locales import DEFAULT_LANGUAGE
from storage.reads import search

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# Prices are decimals with two places in the event's currency, read back as Decimal.
Money = Numeric(12, 2, asdecimal=True)

# Words shown to people (an event's name, its venue's, a ticket's category) as the import gave
# them: one plain string, or texts by language ({"fr": "…", "en": "…"}); the reader picks the
# viewer's (``locales.Translator.words``). JSONB on PostgreSQL, which compares values (json
# does not), so such columns may still appear in DISTINCT, GROUP BY or ``=``.
Words = JSON().with_variant(JSONB(), "postgresql")
# What a Words column holds once read.
WordsValue = str | dict[str, str]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TicketState(enum.StrEnum):
    TO_ASSIGN = "to_assign"
    PENDING = "pending"
    COMPLETED = "completed"
    ON_RESALE = "on_resale"
    SOLD = "sold"
    EXCHANGED = "exchanged"


# Tickets that left the order (resold, or exchanged for a new one): no longer shown or counted.
GONE_STATES = (TicketState.SOLD, TicketState.EXCHANGED)


class InvitationState(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REVOKED = "revoked"
    EXPIRED = "expired"


class LinkKind(enum.StrEnum):
    ORDER = "order"
    CLAIM = "claim"


class ListingState(enum.StrEnum):
    LISTED = "listed"
    CANCELLED = "cancelled"
    SOLD = "sold"


class ActorKind(enum.StrEnum):
    BUYER = "buyer"
    FRIEND = "friend"
    STAFF = "staff"
    SYSTEM = "system"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings with a CHECK constraint: portable, and readable in psql.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


class Event(Base):
    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[WordsValue] = mapped_column(Words)
    starts_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    timezone: Mapped[str] = mapped_column(String(64))
    venue_name: Mapped[WordsValue] = mapped_column(Words)
    venue_city: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3))
    faq_url: Mapped[str | None] = mapped_column(String(500))
    personalisation_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    personalisation_deadline: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    resale_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    resale_min_price: Mapped[Decimal | None] = mapped_column(Money)
    # None means "at most the ticket's face value".
    resale_max_price: Mapped[Decimal | None] = mapped_column(Money)
    resale_deadline: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    exchange_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    exchange_targets: Mapped[list[str]] = mapped_column(JSON, default=list)
    exchange_capacity: Mapped[int | None] = mapped_column(Integer)
    # The import's ``reminders`` block (storage/services/reminders.py); None: the defaults.
    reminders: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        CheckConstraint("exchange_capacity IS NULL OR exchange_capacity >= 0", name="capacity"),
    )


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    buyer_name: Mapped[str] = mapped_column(String(200))
    buyer_email: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(8), default=DEFAULT_LANGUAGE)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    # What staff's /find looks in, folded (storage/reads/search.py); filled on insert.
    search_key: Mapped[str] = mapped_column(String(search.SEARCH_COLUMN_LENGTH),
                                            default=search.order_search_default)

    tickets: Mapped[list[Ticket]] = relationship(
        back_populates="order", lazy="raise", order_by="Ticket.id"
    )


class Ticket(Base):
    """One admission. Its state and holder change only through conditional updates."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"))
    category: Mapped[WordsValue] = mapped_column(Words)
    price: Mapped[Decimal] = mapped_column(Money)
    state: Mapped[TicketState] = mapped_column(
        _enum(TicketState, "ticket_state"), default=TicketState.TO_ASSIGN
    )
    holder_name: Mapped[str | None] = mapped_column(String(200))
    holder_email: Mapped[str | None] = mapped_column(String(254))
    holder_telegram_id: Mapped[int | None] = mapped_column(BigInteger)
    # Normalised keys behind the per-event uniqueness rule; NULL while unused (NULLs never
    # collide in a unique constraint, on SQLite and PostgreSQL alike).
    name_key: Mapped[str | None] = mapped_column(String(200))
    email_key: Mapped[str | None] = mapped_column(String(254))
    barcode: Mapped[str] = mapped_column(String(32), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    # When the ticket was first scanned in at the gate (storage/services/gate.py): a used ticket
    # changes no more (storage/services/ticket_changes.py, change_ticket).
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # What staff's /find looks in, folded (storage/reads/search.py): the reference and the holder's
    # name and e-mail; filled on insert and by services.change_ticket.
    search_key: Mapped[str] = mapped_column(String(search.SEARCH_COLUMN_LENGTH),
                                            default=search.ticket_search_default)

    order: Mapped[Order] = relationship(back_populates="tickets", lazy="raise")
    event: Mapped[Event] = relationship(lazy="raise")

    __table_args__ = (
        UniqueConstraint("event_id", "name_key", name="uq_tickets_event_name"),
        UniqueConstraint("event_id", "email_key", name="uq_tickets_event_email"),
        Index("ix_tickets_order_id", "order_id"),
        Index("ix_tickets_holder_telegram_id", "holder_telegram_id"),
        CheckConstraint(
            "(state IN ('to_assign', 'sold', 'exchanged') AND name_key IS NULL "
            "AND email_key IS NULL) OR state IN ('pending', 'completed', 'on_resale')",
            name="keys_follow_state",
        ),
        CheckConstraint(
            "state != 'completed' OR (holder_name IS NOT NULL AND name_key IS NOT NULL)",
            name="completed_has_holder",
        ),
    )


class Barcode(Base):
    """Every barcode ever issued; a void one stays here so it is never issued again."""

    __tablename__ = "barcodes"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    issued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    voided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_barcodes_ticket_id", "ticket_id"),)


class Invitation(Base):
    """A ticket sent to a friend's e-mail; pending until claimed, declined, revoked or expired."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    email: Mapped[str] = mapped_column(String(254))
    state: Mapped[InvitationState] = mapped_column(
        _enum(InvitationState, "invitation_state"), default=InvitationState.PENDING
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
    kind: Mapped[LinkKind] = mapped_column(_enum(LinkKind, "link_kind"))
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


class ResaleListing(Base):
    """A ticket offered on the resale market. At most one listing per ticket is live, which a
    partial unique index guarantees on SQLite and PostgreSQL alike."""

    __tablename__ = "resale_listings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[ListingState] = mapped_column(
        _enum(ListingState, "listing_state"), default=ListingState.LISTED
    )
    # The ticket's state before listing, restored when the sale is cancelled.
    previous_state: Mapped[TicketState] = mapped_column(_enum(TicketState, "listed_from"))
    listed_by_telegram_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    sold_price: Mapped[Decimal | None] = mapped_column(Money)

    __table_args__ = (
        Index(
            "uq_resale_listings_live_ticket",
            "ticket_id",
            unique=True,
            sqlite_where=text("state = 'listed'"),
            postgresql_where=text("state = 'listed'"),
        ),
        Index("ix_resale_listings_order_id", "order_id"),
        CheckConstraint("price >= 0", name="price_not_negative"),
    )


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


class ClaimGrant(Base):
    """A Telegram user who opened a claim link; only they may accept or decline it."""

    __tablename__ = "claim_grants"

    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"), primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    granted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class TelegramUser(Base):
    __tablename__ = "telegram_users"

    telegram_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chosen_language: Mapped[str | None] = mapped_column(String(8))
    telegram_language: Mapped[str | None] = mapped_column(String(16))
    failed_starts: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class OrderAccess(Base):
    """Which Telegram users may manage which orders (granted by opening the buyer link)."""

    __tablename__ = "order_access"

    telegram_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    granted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_order_access_order_id", "order_id"),)


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


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    actor_kind: Mapped[ActorKind] = mapped_column(_enum(ActorKind, "actor_kind"))
    actor_telegram_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        Index("ix_audit_entries_order_id", "order_id", "id"),
        Index("ix_audit_entries_ticket_id", "ticket_id", "id"),
    )


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


class ScanResult(enum.StrEnum):
    OK = "ok"
    ALREADY_SCANNED = "already_scanned"
    VOID = "void"
    UNKNOWN = "unknown"


class BarcodeFeedHead(Base):
    """The last position of an event's barcode feed. Writers advance it just before they
    commit, which queues them on this row: positions become visible in order (see
    storage/barcode_feed.py)."""

    __tablename__ = "barcode_feed_heads"

    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)


class BarcodeFeedEntry(Base):
    """One barcode change of an event, at its position in the event's feed: a barcode issued
    (with what the gate shows) or voided. Written in the transaction of the change."""

    __tablename__ = "barcode_feed"

    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    barcode: Mapped[str] = mapped_column(String(32))
    voided: Mapped[bool] = mapped_column(Boolean)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    ticket_ref: Mapped[str] = mapped_column(String(64))
    category: Mapped[WordsValue] = mapped_column(Words)  # as the ticket's: maybe per language
    holder_name: Mapped[str | None] = mapped_column(String(200))


class GateScan(Base):
    """One scan at the gate and the answer it got, kept under the scanner's nonce so that a
    retried request gets the same answer. At most one ``ok`` per ticket (partial unique index)."""

    __tablename__ = "gate_scans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Which gate token made the scan: a digest of it, never the token.
    device: Mapped[str] = mapped_column(String(32))
    nonce: Mapped[str] = mapped_column(String(100))
    barcode: Mapped[str] = mapped_column(String(64))
    gate: Mapped[str] = mapped_column(String(100))
    result: Mapped[ScanResult] = mapped_column(_enum(ScanResult, "scan_result"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        UniqueConstraint("device", "nonce", name="uq_gate_scans_device_nonce"),
        Index(
            "uq_gate_scans_ticket_entry",
            "ticket_id",
            unique=True,
            sqlite_where=text("result = 'ok'"),
            postgresql_where=text("result = 'ok'"),
        ),
    )


class Setting(Base):
    """Small key/value facts the store keeps for itself, such as the generated link secret."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class WebAppAction(Base):
    """An action the Mini App sent (its client-made id), written in the transaction of its
    effects: a replayed or repeated request finds its id taken and changes nothing."""

    __tablename__ = "webapp_actions"

    action_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger)
    done_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_webapp_actions_done_at", "done_at"),)


class BroadcastBudget(Base):
    """The pace of messages the bot sends on its own, shared by every process on the store:
    ``next_slot`` is when (Unix time, seconds) the next notification may go out. Taking slots
    is one conditional UPDATE (``storage/broadcast_budget.py``)."""

    __tablename__ = "broadcast_budget"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_slot: Mapped[float] = mapped_column(Double)


for _table in (Order.__table__, Ticket.__table__):
    search.attach(_table)

# The ticket-in-hand tables live in a module of their own; imported here so that they belong to
# ``Base.metadata`` wherever the models are loaded (create_all, Alembic, the migration test).
from storage.models import reminders, tickets  # noqa: E402, F401
