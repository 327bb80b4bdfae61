"""Where each chat stands in an input flow, kept in the store so any process can serve it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db.prepared import PreparedConnection, execute_in_session
from storage.db.store import Store, utcnow
from storage.db.upsert import upsert_statement
from storage.models import ChatState
from storage.reads.views import ChatStep

STEP_LIFETIME = dt.timedelta(hours=1)


async def set_step(
    store: Store, chat_id: int, step: str, *, ticket_id: int | None = None,
    invitation_id: int | None = None, payload: dict[str, Any] | None = None,
    message_id: int | None = None,
) -> ChatStep:
    """Put the chat in ``step`` (replacing any other), valid for an hour."""
    values = {
        "chat_id": chat_id, "step": step, "ticket_id": ticket_id,
        "invitation_id": invitation_id, "payload": payload or {}, "message_id": message_id,
        "expires_at": utcnow() + STEP_LIFETIME,
    }
    # Idempotent: a replayed update puts the chat in the same step again.
    statement = upsert_statement(store.dialect, ChatState, index=["chat_id"],
                                 update=[k for k in values if k != "chat_id"])
    await store.idempotent_write(lambda connection: connection.execute(statement, values))
    return ChatStep(step, ticket_id, invitation_id, payload or {}, message_id)


_states = ChatState.__table__
# Prepared once (every typed message and confirmation reads the step).
_READ_STEP = select(_states.c.step, _states.c.ticket_id, _states.c.invitation_id,
                    _states.c.payload, _states.c.message_id, _states.c.expires_at
                    ).where(_states.c.chat_id == bindparam("chat"))
_END_STEP = delete(_states).where(_states.c.chat_id == bindparam("chat"))


async def get_step(store: Store, chat_id: int, *, with_expired: bool = False) -> ChatStep | None:
    """The chat's current step, or None when there is none or it has expired; ``with_expired``
    also returns an expired one (marked ``expired``), so typed text can say where it was."""
    rows = await store.read_rows(_READ_STEP, {"chat": chat_id})
    state = rows[0] if rows else None
    if state is None:
        return None
    expired = state.expires_at <= utcnow()
    if expired and not with_expired:
        return None
    return ChatStep(state.step, state.ticket_id, state.invitation_id, dict(state.payload or {}),
                    state.message_id, expired=expired)


async def clear_step(store: Store, chat_id: int) -> None:
    await store.idempotent_write(lambda connection: end_step_on(connection, chat_id))


def end_step_on(connection: PreparedConnection, chat_id: int) -> None:
    """``end_step`` on a bare connection's transaction (``Store.idempotent_write``)."""
    connection.execute(_END_STEP, {"chat": chat_id})


async def end_step(session: AsyncSession, chat_id: int) -> None:
    """Take the chat out of its step within ``session``'s transaction: a service that completes
    the step (the claim confirmed, the invitation sent) ends it with its own change."""
    await execute_in_session(session, _END_STEP, {"chat": chat_id})
