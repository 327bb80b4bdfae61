"""Each Mini App action changes state once, however often its request arrives.

What is promised: the page draws a random id for every action a person confirms and sends it
with the request. The *deciding* write transaction of that request (the first one that is not
idempotent bookkeeping — the same notion as for Telegram updates, ``storage.applying``) also
inserts the id into ``webapp_actions``, in the same transaction as its effects. A second request
with the same id — a network retry, a double tap, a replay of a captured request — finds the id
taken, is refused with ``ActionReplayed`` and rolls back: it changes nothing. Two copies racing
are settled by the primary key: the loser's insert waits for the winner and then does nothing.

Where the promise ends: an action whose services refused (a taken name) committed nothing, so
its id stays free and the same action may be sent again. Ids are forgotten once the ``initData``
they came with is stale anyway (``forget_before``): a replay after that is refused earlier, at
authentication.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import bindparam, delete
from sqlalchemy.ext.asyncio import AsyncSession

from storage import applying
from storage.db.prepared import execute_in_session
from storage.db.upsert import insert_ignore
from storage.models import WebAppAction

ACTION_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")

_actions = WebAppAction.__table__
_FORGET = delete(_actions).where(_actions.c.done_at < bindparam("before"))


class ActionReplayed(Exception):
    """This action id was applied before; this request must change nothing."""


@dataclass
class ActionOnce:
    """One Mini App action, in the shape ``Store.write`` expects of what it is applying: the
    deciding transaction calls ``mark_done`` and then sets ``marked_done``."""

    action_id: str
    telegram_id: int
    forget_before: dt.datetime
    marked_done: bool = False

    async def mark_done(self, session: AsyncSession) -> None:
        now = dt.datetime.now(dt.UTC)
        if not await insert_ignore(session, WebAppAction, {
            "action_id": self.action_id, "telegram_id": self.telegram_id, "done_at": now,
        }):
            raise ActionReplayed(self.action_id)
        # Ids older than any initData still accepted cannot be replayed past authentication.
        await execute_in_session(session, _FORGET, {"before": self.forget_before})


@contextlib.asynccontextmanager
async def once(action_id: str, telegram_id: int, *,
               keep: dt.timedelta) -> AsyncIterator[ActionOnce]:
    """Apply the services called inside this block as the action ``action_id``; ``keep``: how
    long its id must be remembered (at least as long as initData stays fresh)."""
    if not ACTION_ID.fullmatch(action_id):
        raise ValueError("not an action id")
    entry = ActionOnce(action_id, telegram_id, dt.datetime.now(dt.UTC) - keep)
    # Store.write reads what is being applied from this context variable; an ActionOnce
    # answers it as an inbox entry does.
    with applying.applying(entry):  # type: ignore[arg-type]
        yield entry
