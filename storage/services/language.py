"""The language a user sees the bot in: the one they chose (which wins over their app's), and
the one an invitation e-mail is written in."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from locales import user_language
from storage.db.prepared import execute_in_session
from storage.db.store import Store, utcnow
from storage.db.upsert import upsert
from storage.errors import Refusal
from storage.models import (
    Order,
    TelegramUser,
)
from storage.reads import loading as reading
from storage.services.users import _READ_USER


async def choose_language(store: Store, telegram_id: int, language: str, *,
                          order_id: int | None = None) -> None:
    """Remember the language this Telegram user chose; it wins over their app's language.
    Chosen from an order's screen (``order_id``), only by someone who may manage that order:
    a forged button changes nothing."""
    now = utcnow()
    async with store.write() as session:
        if order_id is not None and not await reading.may_manage(session, telegram_id,
                                                                 order_id):
            raise Refusal("not_found")
        await upsert(session, TelegramUser,
                     {"telegram_id": telegram_id, "chosen_language": language,
                      "failed_starts": 0, "created_at": now},
                     index=["telegram_id"], update=["chosen_language"])


async def _language_of(session: AsyncSession, telegram_id: int, order: Order) -> str:
    """The language the user sees the bot in (the one rule of ``locales``)."""
    user = (await execute_in_session(session, _READ_USER, {"user": telegram_id})).first()
    return user_language(user and user.chosen_language, user and user.telegram_language,
                         order.language)
