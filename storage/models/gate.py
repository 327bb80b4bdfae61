"""The gate: every scan and the answer it got, and each event's barcode feed (the barcodes issued
and voided, in order) that scanners follow.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UtcDateTime, Words, WordsValue, enum_column


class ScanResult(enum.StrEnum):
    OK = "ok"
    ALREADY_SCANNED = "already_scanned"
    VOID = "void"
    UNKNOWN = "unknown"
    # A code of a rotating ticket that is not live: an older time step, or its still barcode.
    STALE = "stale"


class EntryKey(Base):
    """A signing key of an event's entry codes (storage/entry_codes.py): the Ed25519 key that
    signs each rotating ticket's token, and the secret its time-step codes are derived from.
    Scanners get the public half and the step secret (``GET /api/events/{event}/entry``); a
    retired key still verifies codes already shown but signs nothing new."""

    __tablename__ = "entry_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"))
    private_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    step_secret: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    retired_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        # One key signs an event's new codes: two processes creating it at once, one wins.
        Index("uq_entry_keys_live", "event_id", unique=True,
              sqlite_where=text("retired_at IS NULL"),
              postgresql_where=text("retired_at IS NULL")),
    )


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
    result: Mapped[ScanResult] = mapped_column(enum_column(ScanResult, "scan_result"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Made by a scanner without network and uploaded later (``at`` is when it was made).
    offline: Mapped[bool] = mapped_column(Boolean, default=False)
    # Let in offline although another device had let the ticket in: a double entry.
    conflict: Mapped[bool] = mapped_column(Boolean, default=False)

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
