"""The staging table of an import: every valid order and ticket of a document, kept on disk
until the whole document has been checked.

Why a staging table: a document is checked completely before anything is written, and some
checks need the whole of it (an order number or a ticket reference used twice). Held in Python
sets, a million references would cost hundreds of megabytes; held here, in a private SQLite file
in a temporary directory (or in memory for a small document), they cost a few megabytes of page
cache, and SQLite's indexes answer the duplicate queries. The store itself is not touched until
the checks against it, which run in the import's one write transaction and mark here which
orders and tickets it already holds, so that writing is a second pass over these rows.

Only one thread uses a staging at a time (the import's worker thread, then the event loop's
helpers one after the other), hence ``check_same_thread=False``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BATCH = 1000  # rows per executemany while staging

_SCHEMA = """
CREATE TABLE staged_orders (
    idx INTEGER PRIMARY KEY,  -- the order's position in the document
    number TEXT NOT NULL, buyer_name TEXT NOT NULL, buyer_email TEXT NOT NULL,
    language TEXT NOT NULL,
    stored_id INTEGER  -- the store's id of this order, when it holds it already
);
CREATE TABLE staged_tickets (
    id INTEGER PRIMARY KEY,
    order_idx INTEGER NOT NULL, position INTEGER NOT NULL,
    ref TEXT NOT NULL, event TEXT NOT NULL,
    category TEXT NOT NULL,  -- JSON: a string or texts by language
    price TEXT NOT NULL,
    stored INTEGER NOT NULL DEFAULT 0  -- 1 when the store holds this ticket already
);
"""
_INDEXES = """
CREATE INDEX ix_staged_orders_number ON staged_orders (number);
CREATE INDEX ix_staged_tickets_ref ON staged_tickets (ref);
CREATE INDEX ix_staged_tickets_event ON staged_tickets (event);
CREATE INDEX ix_staged_tickets_order ON staged_tickets (order_idx, position);
"""


@dataclass(frozen=True)
class StagedTicket:
    id: int
    position: int
    ref: str
    event: str
    category: Any  # a string or a dict of texts by language
    price: str
    stored: bool


@dataclass(frozen=True)
class StagedOrder:
    idx: int
    number: str
    buyer_name: str
    buyer_email: str
    language: str
    stored_id: int | None
    tickets: tuple[StagedTicket, ...]


class Staging:
    """The valid orders of one document and their tickets."""

    def __init__(self, directory: Path | None) -> None:
        path = ":memory:" if directory is None else str(directory / "staging.db")
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # A scratch file: nothing to recover after a crash, so no journal and no fsync.
        self._db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                               "PRAGMA temp_store=FILE;" + _SCHEMA)
        self._db.execute("BEGIN")
        self._orders: list[tuple] = []
        self._tickets: list[tuple] = []
        self.order_count = self.ticket_count = 0

    def close(self) -> None:
        self._db.close()

    # --- filling ---------------------------------------------------------------------------

    def add_order(self, idx: int, number: str, buyer: tuple[str, str, str],
                  tickets: list[tuple[str, str, Any, str]]) -> None:
        """An order at position ``idx`` with its tickets (ref, event, category, price)."""
        self._orders.append((idx, number, *buyer))
        self._tickets.extend(
            (idx, position, ref, event, json.dumps(category, ensure_ascii=False), price)
            for position, (ref, event, category, price) in enumerate(tickets)
        )
        self.order_count += 1
        self.ticket_count += len(tickets)
        if len(self._orders) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        self._db.executemany("INSERT INTO staged_orders (idx, number, buyer_name, buyer_email, "
                             "language) VALUES (?, ?, ?, ?, ?)", self._orders)
        self._db.executemany("INSERT INTO staged_tickets (order_idx, position, ref, event, "
                             "category, price) VALUES (?, ?, ?, ?, ?, ?)", self._tickets)
        self._orders.clear()
        self._tickets.clear()

    def seal(self) -> None:
        """All entries are in: index them for the checks."""
        self._flush()
        self._db.execute("COMMIT")
        self._db.executescript(_INDEXES)

    # --- checking --------------------------------------------------------------------------

    def repeated_numbers(self) -> Iterator[tuple[int, str, int]]:
        """(order idx, number, idx of the first order with it) for each order whose number an
        earlier order of the document has."""
        yield from self._db.execute(
            "SELECT o.idx, o.number, f.first FROM staged_orders o JOIN "
            "(SELECT number, MIN(idx) AS first FROM staged_orders GROUP BY number "
            " HAVING COUNT(*) > 1) f ON f.number = o.number "
            "WHERE o.idx > f.first ORDER BY o.idx")

    def repeated_refs(self) -> Iterator[tuple[int, str, int, str, int, str, int]]:
        """(order idx, number, position, ref, first order idx, its number, first position) for
        each ticket whose reference an earlier ticket of the document has."""
        yield from self._db.execute(
            "WITH firsts AS (SELECT ref, MIN(id) AS first FROM staged_tickets GROUP BY ref "
            "                HAVING COUNT(*) > 1) "
            "SELECT t.order_idx, o.number, t.position, t.ref, "
            "       ft.order_idx, fo.number, ft.position "
            "FROM staged_tickets t JOIN firsts f ON f.ref = t.ref AND t.id > f.first "
            "JOIN staged_tickets ft ON ft.id = f.first "
            "JOIN staged_orders o ON o.idx = t.order_idx "
            "JOIN staged_orders fo ON fo.idx = ft.order_idx ORDER BY t.id")

    def event_ids(self) -> set[str]:
        """Every event the staged tickets name (a few, even for a million tickets)."""
        return {row[0] for row in self._db.execute("SELECT DISTINCT event FROM staged_tickets")}

    def tickets_of_events(self, events: set[str]) -> Iterator[tuple[int, str, int, str, str]]:
        """(order idx, number, position, ref, event) of the tickets naming one of ``events``."""
        for event in sorted(events):
            yield from self._db.execute(
                "SELECT t.order_idx, o.number, t.position, t.ref, t.event FROM staged_tickets t "
                "JOIN staged_orders o ON o.idx = t.order_idx WHERE t.event = ? ORDER BY t.id",
                (event,))

    def forget_store(self) -> None:
        """Clear the marks of a previous check against the store (before checking again)."""
        self._db.execute("UPDATE staged_orders SET stored_id = NULL WHERE stored_id IS NOT NULL")
        self._db.execute("UPDATE staged_tickets SET stored = 0 WHERE stored = 1")

    def mark_stored(self, orders: list[tuple[int, int]], tickets: list[int]) -> None:
        """Record that the store holds these orders ((idx, stored id)) and tickets (ids)."""
        self._db.executemany("UPDATE staged_orders SET stored_id = ? WHERE idx = ?",
                             [(stored_id, idx) for idx, stored_id in orders])
        self._db.executemany("UPDATE staged_tickets SET stored = 1 WHERE id = ?",
                             [(ticket_id,) for ticket_id in tickets])

    # --- reading back ----------------------------------------------------------------------

    def order_chunks(self, size: int) -> Iterator[list[StagedOrder]]:
        """The staged orders with their tickets, ``size`` orders at a time, in document order."""
        after = -1
        while True:
            orders = self._db.execute(
                "SELECT idx, number, buyer_name, buyer_email, language, stored_id "
                "FROM staged_orders WHERE idx > ? ORDER BY idx LIMIT ?", (after, size)).fetchall()
            if not orders:
                return
            tickets: dict[int, list[StagedTicket]] = {order[0]: [] for order in orders}
            for row in self._db.execute(
                "SELECT order_idx, id, position, ref, event, category, price, stored "
                "FROM staged_tickets WHERE order_idx BETWEEN ? AND ? "
                "ORDER BY order_idx, position", (orders[0][0], orders[-1][0])):
                tickets[row[0]].append(StagedTicket(row[1], row[2], row[3], row[4],
                                                    json.loads(row[5]), row[6], bool(row[7])))
            yield [StagedOrder(*order, tickets=tuple(tickets[order[0]])) for order in orders]
            after = orders[-1][0]

    def order_numbers(self) -> Iterator[str]:
        for (number,) in self._db.execute("SELECT number FROM staged_orders ORDER BY idx"):
            yield number
