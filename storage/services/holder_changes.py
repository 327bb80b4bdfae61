"""Changes to a completed ticket's holder: correct the name, or take the ticket back. Either
way the barcode changes, since the old one may be in someone else's hands."""

from __future__ import annotations

from storage.db.store import Store, utcnow
from storage.errors import Refusal
from storage.keys import clean_name, name_key
from storage.models import (
    ActorKind,
    TicketState,
)
from storage.reads import loading as reading
from storage.services.barcodes import reissue_barcode
from storage.services.journal import audit
from storage.services.ticket_changes import _end_step, change_ticket, managed_ticket
from storage.webhook_outbox import announce_assigned


async def rename_holder(store: Store, telegram_id: int, ticket_id: int, name: str, *,
                        chat_id: int | None = None) -> str:
    """Correct the name on a completed ticket (the uniqueness rule applies again); a new name
    is a new holder, so the barcode changes. Returns the clean name. ``chat_id``: the chat whose
    input step this completes, ended in the same transaction."""
    holder = clean_name(name)
    now = utcnow()
    async with store.write() as session:
        await _end_step(session, chat_id)
        ticket, event, order = await managed_ticket(session, telegram_id, ticket_id)
        if not reading.personalisation_open(event, now):
            raise Refusal("name_change_closed")
        if ticket.state != TicketState.COMPLETED:
            raise Refusal("not_completed")
        if ticket.name_key == name_key(holder) and ticket.holder_name == holder:
            raise Refusal("same_name")
        barcode = await reissue_barcode(session, ticket, now)
        # The Telegram account holding it stays only if it is the one renaming it.
        keeper = telegram_id if ticket.holder_telegram_id == telegram_id else None
        await change_ticket(session, ticket, TicketState.COMPLETED, now, holder_name=holder,
                            name_key=name_key(holder), holder_telegram_id=keeper,
                            barcode=barcode)
        await audit(session, ActorKind.BUYER, telegram_id, "holder_renamed", order_id=order.id,
                    ticket_id=ticket.id, now=now, old=ticket.holder_name, new=holder)
        await announce_assigned(session, ticket, holder=holder, barcode=barcode, now=now)
    return holder


async def take_back(store: Store, telegram_id: int, ticket_id: int) -> None:
    """Take a completed ticket back: it returns to *to assign* with a new barcode."""
    now = utcnow()
    async with store.write() as session:
        ticket, event, order = await managed_ticket(session, telegram_id, ticket_id)
        if not reading.personalisation_open(event, now):
            raise Refusal("name_change_closed")
        if ticket.state != TicketState.COMPLETED:
            raise Refusal("not_completed")
        barcode = await reissue_barcode(session, ticket, now)
        await change_ticket(session, ticket, TicketState.COMPLETED, now,
                            state=TicketState.TO_ASSIGN, holder_name=None, name_key=None,
                            holder_email=None, email_key=None, holder_telegram_id=None,
                            barcode=barcode)
        await audit(session, ActorKind.BUYER, telegram_id, "taken_back", order_id=order.id,
                    ticket_id=ticket.id, now=now, old=ticket.holder_name)
        await announce_assigned(session, ticket, holder=None, barcode=barcode, now=now)
