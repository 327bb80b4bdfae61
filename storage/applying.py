"""Which incoming update the running task is applying, so that its effects commit exactly once.

While an update from the inbox is handled, ``applying`` holds it. The first write transaction of
that task that is not idempotent — the *deciding* one — also marks the inbox entry done, in the
same transaction as its effects; if the entry was done already (an earlier attempt committed
before a crash, or a second delivery is running elsewhere), the transaction is refused with
``AlreadyApplied`` and rolls back. Later writes of the same attempt go through unmarked.
Idempotent writes (remembering a user, a chat's input step) neither mark nor need the entry:
repeating them on a replay is harmless.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db.prepared import PreparedConnection, execute_in_session
from storage.models import UpdateInbox


class AlreadyApplied(Exception):
    """The update's deciding transaction committed before; this attempt must change nothing."""

    def __init__(self, update_id: int) -> None:
        super().__init__(f"update {update_id} was applied already")
        self.update_id = update_id


@dataclass
class Applying:
    """One attempt at handling one inbox entry."""

    update_id: int
    attempt: int = 1
    # Set once this attempt's deciding transaction has committed the done mark.
    marked_done: bool = False
    # Set by the error handling when the attempt failed for a reason worth retrying.
    failed_transiently: bool = False

    async def mark_done(self, session: AsyncSession) -> None:
        """Mark the entry done inside ``session``'s transaction, or refuse if it was done by an
        earlier attempt. Called for the deciding transaction only; ``Store.write`` sets
        ``marked_done`` once it committed, and later writes of this attempt skip the mark."""
        self._check_marked(
            await execute_in_session(session, _MARK_DONE, self._mark_parameters()))

    def mark_done_on(self, connection: PreparedConnection) -> None:
        """``mark_done`` within a bare connection's transaction (``Store.write_prepared``)."""
        self._check_marked(connection.execute(_MARK_DONE, self._mark_parameters()))

    def _mark_parameters(self) -> dict[str, object]:
        return {"entry": self.update_id, "now": dt.datetime.now(dt.UTC)}

    def _check_marked(self, result: Any) -> None:
        if result.rowcount != 1:
            raise AlreadyApplied(self.update_id)


_entries = UpdateInbox.__table__
# Prepared once; on the session's connection, so it commits with the update's effects.
_MARK_DONE = (
    update(_entries)
    .where(_entries.c.update_id == bindparam("entry"), _entries.c.done_at.is_(None))
    .values(done_at=bindparam("now"))
)

_applying: ContextVar[Applying | None] = ContextVar("ticketbot_applying", default=None)


def current() -> Applying | None:
    """The update the running task is applying, if any."""
    return _applying.get()


@contextlib.contextmanager
def applying(entry: Applying) -> Iterator[Applying]:
    """Handle ``entry`` within this block (and in tasks created inside it)."""
    token = _applying.set(entry)
    try:
        yield entry
    finally:
        _applying.reset(token)
