"""Is a name or an e-mail address still free for an event? Asked when the user types it, so
that a taken one is refused at once rather than after they pressed "Confirm" or "Send".

This is only an early answer: between the question and the confirmation someone else may take
the name, and the unique constraints on ``tickets(event_id, name_key)`` and
``(event_id, email_key)`` still decide at write time (``services.change_ticket``).
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from storage.db.store import Store
from storage.errors import Refusal
from storage.keys import email_key, name_key
from storage.models import Ticket

_tickets = Ticket.__table__
# Each is served by the unique index of its constraint (event_id first).
_NAME_HOLDER = (select(_tickets.c.id)
                .where(_tickets.c.event_id == bindparam("event"),
                       _tickets.c.name_key == bindparam("key"))
                .limit(1))
_EMAIL_HOLDER = (select(_tickets.c.id)
                 .where(_tickets.c.event_id == bindparam("event"),
                        _tickets.c.email_key == bindparam("key"))
                 .limit(1))


async def is_name_free(store: Store, event_id: str, name: str, *,
                       ticket_id: int | None = None) -> bool:
    """Whether no other ticket of the event than ``ticket_id`` carries ``name`` (already clean):
    asked before a name is offered, so that only a name that can be used is."""
    holder = await _holder(store, _NAME_HOLDER, event_id, name_key(name))
    return holder is None or holder == ticket_id


async def refuse_taken_name(store: Store, event_id: str, name: str, *,
                            ticket_id: int | None = None) -> None:
    """Refuse ``name`` (already clean) if another ticket of the event carries it;
    ``ticket_id``: the ticket being renamed, whose own name does not count."""
    if not await is_name_free(store, event_id, name, ticket_id=ticket_id):
        raise Refusal("name_taken", name=name)


async def refuse_taken_email(store: Store, event_id: str, email: str, *,
                             ticket_id: int | None = None) -> None:
    """Refuse ``email`` (already clean) if another ticket of the event was sent to it."""
    holder = await _holder(store, _EMAIL_HOLDER, event_id, email_key(email))
    if holder is not None and holder != ticket_id:
        raise Refusal("email_taken", email=email)


async def _holder(store: Store, statement, event_id: str, key: str) -> int | None:
    async with store.read_connection() as connection:
        return (await connection.execute(statement, {"event": event_id, "key": key})).scalar()
