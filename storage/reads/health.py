"""What the health check and the metrics read from the store: whether it answers, and how many
e-mails of the outbox are queued, sent or failing."""

from __future__ import annotations

import logging

from sqlalchemy import case, func, select, text

from storage.db.store import Store
from storage.models import OutboxMail

log = logging.getLogger(__name__)

MAIL_STATES = ("queued", "sent", "failed", "dropped")


async def database_reachable(store: Store) -> bool:
    """True if the database answers a ``SELECT 1``."""
    try:
        async with store.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure means "not reachable", whatever the driver says
        log.warning("database not reachable: %s", type(error).__name__)
        return False
    return True


async def outbox_counts(store: Store) -> dict[str, int]:
    """E-mails by state: ``queued`` (not sent yet), ``failed`` (not sent, the last attempt
    failed; it is retried), ``sent``, and ``dropped`` (obsolete, deliberately not sent)."""
    state = case(
        (OutboxMail.sent_at.is_(None) & OutboxMail.last_error.is_(None), "queued"),
        (OutboxMail.sent_at.is_(None), "failed"),
        (OutboxMail.last_error.is_(None), "sent"),
        else_="dropped",
    )
    async with store.read() as session:
        rows = (await session.execute(select(state, func.count()).group_by(state))).all()
    counts = dict.fromkeys(MAIL_STATES, 0)
    counts.update({name: count for name, count in rows})
    return counts
