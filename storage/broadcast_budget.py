"""One pace for the messages the bot sends on its own, across every process on the store.

Telegram allows about 30 messages per second to many users (1,000 with paid broadcasts). The
budget is a row: ``next_slot`` is the Unix time at which the next notification may go out.
Taking ``n`` slots is one conditional UPDATE that moves it on by ``n / rate`` from where it
stood (or from now, if it lies in the past), and returns where it ended; whoever runs it owns
the ``n`` times before that. Row locks (PostgreSQL) and the write lock (SQLite) make concurrent
takers line up, so processes share the rate instead of each having it. A 429 on a notification
pushes ``next_slot`` past Telegram's ``retry_after``: every process pauses its notifications.

A budget left unused is not saved up beyond ``burst`` seconds' worth of slots: after a quiet
spell, a few notifications go at once, then the pace holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Double, bindparam, case, update
from sqlalchemy.dialects import postgresql, sqlite

from storage.db.store import Store
from storage.models import BroadcastBudget

NOTIFICATIONS = "notifications"
DEFAULT_BURST = 0.2  # seconds of slots an idle budget keeps

_budget = BroadcastBudget.__table__
_floor = bindparam("floor", type_=Double())
_TAKE = (
    update(_budget)
    .where(_budget.c.name == bindparam("budget"))
    .values(next_slot=case((_budget.c.next_slot < _floor, _floor), else_=_budget.c.next_slot)
            + bindparam("span", type_=Double()))
    .returning(_budget.c.next_slot)
)
_PAUSE = (
    update(_budget)
    .where(_budget.c.name == bindparam("budget"),
           _budget.c.next_slot < bindparam("until", type_=Double()))
    .values(next_slot=bindparam("until", type_=Double()))
)


@dataclass(frozen=True)
class Slots:
    """``count`` send times, ``1 / rate`` apart from ``first`` (Unix time)."""

    first: float
    interval: float
    count: int

    def at(self, index: int) -> float:
        return self.first + index * self.interval


class Budget:
    """``rate`` messages per second, shared through the store's row named ``name``."""

    def __init__(self, store: Store, rate: float, *, name: str = NOTIFICATIONS,
                 burst: float = DEFAULT_BURST) -> None:
        if rate <= 0:
            raise ValueError("the rate must be positive")
        self.store = store
        self.rate = rate
        self.name = name
        self.burst = burst

    async def take(self, count: int, *, now: float | None = None) -> Slots:
        """Claim ``count`` consecutive send times."""
        now = time.time() if now is None else now
        span = count / self.rate
        params = {"budget": self.name, "floor": now - self.burst, "span": span}
        async with self.store.write_connection() as connection:
            end = (await connection.execute(_TAKE, params)).scalar()
            if end is None:  # the first use of this store: make the row, then take
                insert = sqlite.insert if self.store.is_sqlite else postgresql.insert
                await connection.execute(
                    insert(_budget).values(name=self.name, next_slot=now - self.burst)
                    .on_conflict_do_nothing(index_elements=["name"]))
                end = (await connection.execute(_TAKE, params)).scalar_one()
        return Slots(end - span, 1 / self.rate, count)

    async def pause(self, seconds: float, *, now: float | None = None) -> None:
        """Nothing goes out for ``seconds`` (Telegram's ``retry_after``), in any process."""
        now = time.time() if now is None else now
        async with self.store.write_connection() as connection:
            await connection.execute(_PAUSE, {"budget": self.name, "until": now + seconds})
