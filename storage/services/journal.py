"""What happened, for the record and for the people concerned: the audit log entry of each
use case and the chat news for everyone who manages an order. Both are rows written in the use
case's own transaction; the news go out after it commits."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db.prepared import execute_in_session
from storage.models import (
    ActorKind,
    AuditEntry,
    ChatNotification,
    OrderAccess,
)

# The statements of the busiest use cases are built once, with bound parameters, and run on
# the session's connection: building a statement and working out its cache key each time cost
# more CPU than running it, and an entity added to the session costs a unit-of-work flush.
_INSERT_AUDIT = insert(AuditEntry.__table__)
_MANAGERS = select(OrderAccess.telegram_id).where(OrderAccess.order_id == bindparam("order"))
_INSERT_NEWS = insert(ChatNotification.__table__)


def audit_entry(
    actor: ActorKind,
    actor_id: int | None,
    action: str,
    *,
    order_id: int | None = None,
    ticket_id: int | None = None,
    now: dt.datetime,
    **details: Any,
) -> tuple[Any, dict[str, Any]]:
    """The statement and parameters writing an audit log entry: run in the use case's
    transaction, by ``audit`` or on a bare connection (``Store.write_prepared``)."""
    return _INSERT_AUDIT, {"at": now, "actor_kind": actor, "actor_telegram_id": actor_id,
                           "action": action, "order_id": order_id, "ticket_id": ticket_id,
                           "details": details}


async def audit(session: AsyncSession, *entry: Any, **fields: Any) -> None:
    """Write the audit log entry ``audit_entry(*entry, **fields)`` within ``session``'s
    transaction."""
    await execute_in_session(session, *audit_entry(*entry, **fields))


async def notify_order_managers(
    session: AsyncSession, order_id: int, kind: str, now: dt.datetime, *,
    skip: int | None = None, **params: Any,
) -> None:
    """Queue chat news for everyone who manages the order (but the one who caused it)."""
    managers = [row[0] for row in
                (await execute_in_session(session, _MANAGERS, {"order": order_id})).all()]
    news = [{"telegram_id": telegram_id, "kind": kind, "params": {"order_id": order_id, **params},
             "created_at": now, "next_attempt_at": now, "attempts": 0, "sent_at": None}
            for telegram_id in managers if telegram_id != skip]
    if news:
        await execute_in_session(session, _INSERT_NEWS, news)
