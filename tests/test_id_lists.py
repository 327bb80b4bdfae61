"""A list of ids bound as one parameter (``storage/db/id_lists.py``): the same rows as ``IN``
with one placeholder per id, and one SQL text whatever the list's length, so the database
prepares the statement once (on the store under test: SQLite or PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, insert, select, update
from sqlalchemy.exc import StatementError

from storage.db.id_lists import among_ids
from storage.db.store import utcnow
from storage.models import UpdateInbox

_entries = UpdateInbox.__table__
_TOUCH = (update(_entries).where(among_ids(_entries.c.update_id, "ids"))
          .values(attempts=_entries.c.attempts + 1).returning(_entries.c.update_id))


async def _fill(store, count: int) -> None:
    async with store.write() as session:
        await session.execute(insert(UpdateInbox), [
            {"update_id": n, "chat_id": n % 7, "payload": {}, "received_at": utcnow(),
             "attempts": 0} for n in range(1, count + 1)])


async def _touch(store, ids) -> list[int]:
    async with store.write() as session:
        return sorted((await session.execute(_TOUCH, {"ids": ids})).scalars())


async def test_the_listed_rows_and_only_they_are_matched(store):
    await _fill(store, 50)
    assert await _touch(store, [3, 17, 17, 49, 999]) == [3, 17, 49]  # 999: no such row
    assert await _touch(store, []) == []
    async with store.read() as session:
        touched = dict((await session.execute(
            select(_entries.c.update_id, _entries.c.attempts).where(_entries.c.attempts > 0)
        )).all())
    assert touched == {3: 1, 17: 1, 49: 1}


async def test_one_sql_text_whatever_the_list_s_length(store):
    await _fill(store, 40)
    sent: list[str] = []

    def record(conn, cursor, statement, *args):
        if "update_inbox" in statement:
            sent.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    try:
        for length in range(1, 30):
            assert await _touch(store, list(range(1, length + 1))) == list(range(1, length + 1))
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", record)
    assert len(sent) == 29 and len(set(sent)) == 1


async def test_an_id_that_is_not_an_integer_is_refused_not_matched_as_text(store):
    await _fill(store, 5)
    with pytest.raises((StatementError, ValueError, TypeError)):
        await _touch(store, ["2 OR 1=1"])
    assert await _touch(store, [2]) == [2]  # and nothing was touched by the refused one
    async with store.read() as session:
        assert await session.scalar(
            select(_entries.c.attempts).where(_entries.c.update_id == 2)) == 1
