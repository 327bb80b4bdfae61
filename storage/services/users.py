"""Telegram users: remembered on each /start with their app's language, read back for the
language of a screen, and made to wait a while after too many wrong links."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import chat_state
from storage.db.prepared import PreparedConnection
from storage.db.store import Store, utcnow
from storage.db.upsert import upsert, upsert_statement
from storage.models import TelegramUser
from storage.reads.views import UserView

MAX_FAILED_STARTS = 5
START_COOLDOWN = dt.timedelta(minutes=5)

_users = TelegramUser.__table__
_READ_USER = select(_users.c.chosen_language, _users.c.telegram_language).where(
    _users.c.telegram_id == bindparam("user"))


async def record_user(store: Store, telegram_id: int, language_code: str | None, *,
                      chat_id: int | None = None) -> UserView:
    """Remember a Telegram user (and the language their app reports); with ``chat_id``, that
    chat also leaves any input step first (a /start starts over). Each is harmless alone."""
    # Idempotent: repeating it on a replayed update changes nothing more.
    now = utcnow()
    user = await store.idempotent_write(lambda connection: _remember_on(
        connection, store.dialect, telegram_id, language_code, now, chat_id=chat_id))
    return UserView(telegram_id, user.chosen_language, user.telegram_language)


def _remember_on(connection: PreparedConnection, dialect: str, telegram_id: int,
                 language_code: str | None, now: dt.datetime, *, chat_id: int | None) -> Row:
    """``record_user``'s writes within a bare connection's transaction; the user's row as it
    is afterwards (chosen and app language, cool-down)."""
    if chat_id is not None:
        chat_state.end_step_on(connection, chat_id)
    return connection.execute(upsert_statement(dialect, TelegramUser, **_REMEMBER),
                              _user_values(telegram_id, language_code, now)).one()


def _user_values(telegram_id: int, language_code: str | None,
                 now: dt.datetime) -> dict[str, object]:
    return {"telegram_id": telegram_id, "telegram_language": language_code,
            "failed_starts": 0, "created_at": now}


# Insert the user or update their app's language, and read back what the answer needs (chosen
# and app language, cool-down) in the same statement.
_REMEMBER: dict[str, Any] = {
    "index": ("telegram_id",), "update": ("telegram_language",),
    "returning": ("chosen_language", "telegram_language", "blocked_until")}


async def load_user(store: Store, telegram_id: int) -> UserView | None:
    rows = await store.read_rows(_READ_USER, {"user": telegram_id})
    return UserView(telegram_id, *rows[0]) if rows else None


async def _count_failed_start(session: AsyncSession, telegram_id: int, now: dt.datetime) -> None:
    await upsert(session, TelegramUser,
                 {"telegram_id": telegram_id, "failed_starts": 0, "created_at": now},
                 index=["telegram_id"], update=[])
    await session.execute(
        update(TelegramUser).where(TelegramUser.telegram_id == telegram_id)
        .values(failed_starts=TelegramUser.failed_starts + 1)
    )
    failures = await session.scalar(
        select(TelegramUser.failed_starts).where(TelegramUser.telegram_id == telegram_id)
    )
    if failures is not None and failures >= MAX_FAILED_STARTS:
        await session.execute(
            update(TelegramUser).where(TelegramUser.telegram_id == telegram_id)
            .values(failed_starts=0, blocked_until=now + START_COOLDOWN)
        )
