"""Barcodes: a new holder gets a new one and the old one is void at the gate (through the
barcode feed) and in the ticket messages already sent (through ticket delivery)."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from storage import barcode_feed, ticket_delivery
from storage.models import Ticket


def new_barcode() -> str:
    """A 16-digit barcode; uniqueness is guaranteed by the ``barcodes`` primary key."""
    return f"{secrets.randbelow(10**16):016d}"


async def void_barcode(session: AsyncSession, code: str, now: dt.datetime) -> None:
    await barcode_feed.void(session, code, now)
    await ticket_delivery.barcode_voided(session, code, now)


async def reissue_barcode(session: AsyncSession, ticket: Ticket, now: dt.datetime) -> str:
    """Void the ticket's barcode and issue a new one (a copy of the old ticket gets nobody in)."""
    code = new_barcode()
    await void_barcode(session, ticket.barcode, now)
    await barcode_feed.issue(session, ticket, code, now)
    return code
