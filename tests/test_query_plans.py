"""The hot queries use indexes, so their cost does not grow with the number of orders.

Each case runs a real service while recording the SQL it sends (SQLAlchemy's
``before_cursor_execute``), then asks the database how it would run every recorded SELECT,
UPDATE and DELETE: ``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN`` on PostgreSQL with sequential
scans and merge and hash joins priced out (``enable_seqscan = off``…), so that on a test-sized
table the planner still shows whether an index *could* serve the query. A full scan of a table
that grows with the orders fails the case, naming the statement. So does a statement that
compares a partial index's column with a bound parameter (``resale_listings.state = ?``):
SQLite then prepares it again on every run, and PostgreSQL's generic plan cannot use the index.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, insert, select

from bot.background import NewsSender
from bot.mail.sender import OutboxSender
from storage import barcode_feed, chat_state, services
from storage.db.store import Store, utcnow
from storage.inbox import Inbox, Incoming
from storage.models import (
    Base,
    ChatNotification,
    ChatState,
    ClaimGrant,
    Invitation,
    LinkToken,
    OrderAccess,
    OutboxMail,
    ResaleListing,
    TelegramUser,
    Ticket,
    UpdateInbox,
    WebhookDelivery,
    WebhookMessage,
)
from storage.reads.order_report import order_report
from storage.services import gate, privacy, resale
from storage.services.importing.importer import import_document
from tests.conftest import sample_document

BUYER, OTHER_BUYER, FRIEND = 1001, 1002, 2002
ORDERS = 300  # and as many rows of history in every other growing table

# Tables that grow with orders, users or traffic (events and settings stay small).
GROWING_TABLES = frozenset({
    "orders", "tickets", "barcodes", "invitations", "link_tokens", "order_access",
    "telegram_users", "chat_states", "claim_grants", "outbox_mails", "chat_notifications",
    "audit_entries", "update_inbox", "resale_listings", "barcode_feed", "gate_scans",
    "webhook_messages", "webhook_deliveries",
})
_EXPLAINED = re.compile(r"^\s*(SELECT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
_ALIAS = re.compile(r"\b(\w+) AS (\w+)\b", re.IGNORECASE)


@dataclass
class World:
    order_id: int
    ticket_ids: list[int]
    pending_ticket_id: int
    invitation_id: int
    claim_token: str
    other_order_token: str


async def fill_history(store: Store, rows: int = ORDERS) -> None:
    """Rows in every growing table, as past traffic leaves them (finished invitations, sent
    mails and news, handled updates…): on near-empty tables PostgreSQL rightly prefers
    reading a table whole, which would say nothing about the indexes."""
    now = utcnow()
    earlier = now - dt.timedelta(days=3)
    async with store.write() as session:
        ticket_ids = list(await session.scalars(select(Ticket.id).order_by(Ticket.id)))
        users = [50_000 + n for n in range(rows)]
        await session.execute(insert(TelegramUser), [
            {"telegram_id": user, "failed_starts": 0, "created_at": earlier} for user in users])
        await session.execute(insert(OrderAccess), [
            {"telegram_id": user, "order_id": n + 1, "granted_at": earlier}
            for n, user in enumerate(users)])
        invitations = [
            {"ticket_id": ticket_ids[n % len(ticket_ids)], "email": f"old{n}@example.org",
             "state": ("accepted", "declined", "revoked", "expired")[n % 4],
             "invited_by_telegram_id": users[n], "inviter_name": "Camille Martin",
             "language": "fr", "created_at": earlier, "expires_at": earlier,
             "last_sent_at": earlier, "finished_at": earlier}
            for n in range(rows)]
        result = await session.execute(insert(Invitation).returning(Invitation.id), invitations)
        invitation_ids = list(result.scalars())
        await session.execute(insert(ClaimGrant), [
            {"invitation_id": invitation_id, "telegram_id": users[n], "granted_at": earlier}
            for n, invitation_id in enumerate(invitation_ids)])
        await session.execute(insert(LinkToken), [
            {"token_hash": f"{n:064x}", "kind": "claim", "order_id": 1 + n % rows,
             "invitation_id": invitation_ids[n], "created_at": earlier, "expires_at": earlier,
             "used_at": earlier} for n in range(rows)])
        await session.execute(insert(ChatState), [
            {"chat_id": user, "step": "invite_email", "payload": {}, "expires_at": earlier}
            for user in users])
        await session.execute(insert(OutboxMail), [
            {"message_id": f"<old{n}@example.org>", "recipient": f"old{n}@example.org",
             "language": "fr", "kind": "invitation", "params": {}, "created_at": earlier,
             "next_attempt_at": earlier, "attempts": 1, "sent_at": earlier}
            for n in range(rows)])
        await session.execute(insert(ChatNotification), [
            {"telegram_id": user, "kind": "claimed", "params": {}, "created_at": earlier,
             "next_attempt_at": earlier, "attempts": 1, "sent_at": earlier} for user in users])
        result = await session.execute(insert(WebhookMessage).returning(WebhookMessage.id), [
            {"webhook_id": f"msg_{n:032x}", "type": "ticket.assigned", "order_id": 1 + n % rows,
             "body": "{}", "created_at": earlier} for n in range(rows)])
        await session.execute(insert(WebhookDelivery), [
            {"message_id": message_id, "endpoint": "https://shop.example/hooks",
             "order_id": 1 + n % rows, "state": "delivered", "attempts": 1,
             "next_attempt_at": earlier, "finished_at": earlier, "last_status": 200}
            for n, message_id in enumerate(result.scalars())])
        # Past sales and withdrawn offers, and a few live ones, of tickets of other orders.
        await session.execute(insert(ResaleListing), [
            {"ticket_id": ticket_ids[-1 - n], "order_id": 1 + (len(ticket_ids) - 1 - n) // 3,
             "price": "50.00", "currency": "EUR",
             "state": "listed" if n % 10 == 0 else ("sold", "cancelled")[n % 2],
             "previous_state": "to_assign", "created_at": earlier, "updated_at": earlier,
             "finished_at": None if n % 10 == 0 else earlier} for n in range(rows)])
        await session.execute(insert(UpdateInbox), [
            {"update_id": n + 1, "chat_id": users[n], "payload": {}, "received_at": earlier,
             "attempts": 1, "done_at": earlier} for n in range(rows)])


async def make_world(store: Store) -> World:
    """Orders with a history; the buyer opened one and sent its second ticket to a friend."""
    await import_document(store, sample_document(orders=ORDERS, tickets=3))
    await fill_history(store)
    tokens = await services.create_order_links(store, ["DF-100000", "DF-100001"])
    await services.record_user(store, BUYER, "en")
    opened = await services.open_link(store, BUYER, tokens["DF-100000"])
    assert opened.order_id is not None
    order = await services.order_overview(store, BUYER, opened.order_id)
    ticket_ids = [ticket.id for ticket in order.tickets]
    invited = await services.invite_friend(store, BUYER, ticket_ids[1], "alex@example.org")
    await services.record_user(store, FRIEND, "fr")
    if not store.is_sqlite:
        async with store.engine.begin() as connection:
            await connection.exec_driver_sql("ANALYZE")
    return World(opened.order_id, ticket_ids, ticket_ids[1], invited.invitation_id,
                 invited.claim_token, tokens["DF-100001"])


class _Transport:
    async def send(self, message: Any) -> None:
        pass

    async def close(self) -> None:
        pass


class _Bot:
    async def send_message(self, *args: Any, **kwargs: Any) -> None:
        pass


async def friend_claims(store: Store, world: World) -> None:
    opened = await services.open_link(store, FRIEND, world.claim_token)
    assert opened.claim is not None
    await services.claim_view(store, FRIEND, world.invitation_id)
    await services.accept_invitation(store, FRIEND, world.invitation_id, "Alex Durand")


async def chat_steps(store: Store, world: World) -> None:
    await chat_state.set_step(store, BUYER, "invite_email", ticket_id=world.ticket_ids[0])
    assert await chat_state.get_step(store, BUYER) is not None
    await chat_state.clear_step(store, BUYER)
    assert await chat_state.get_step(store, BUYER, with_expired=True) is None


async def telegram_user(store: Store, world: World) -> None:
    await services.record_user(store, BUYER, "fr")
    assert await services.load_user(store, BUYER) is not None


async def pending_invitation(store: Store, world: World) -> None:
    await services.resend_invitation(store, BUYER, world.pending_ticket_id)
    await services.revoke_invitation(store, BUYER, world.pending_ticket_id)


async def due_mails(store: Store, world: World) -> None:
    sender = OutboxSender(store, _Transport(), bot_username="ticketbot_test_bot",
                          sender="tickets@dreamfest.example")
    assert await sender.send_due() == 1


async def due_news(store: Store, world: World) -> list[tuple[str, Any]]:
    """The statements of sending the buyer's news of a claim (the claim is not recorded)."""
    await friend_claims(store, world)
    with recording(store) as statements:
        assert await NewsSender(store, _Bot()).send_due() >= 1  # type: ignore[arg-type]
    return statements


async def update_inbox(store: Store, world: World) -> None:
    inbox = Inbox(store)
    await inbox.record([Incoming(7001, BUYER, {"update_id": 7001}),
                        Incoming(7002, BUYER, {"update_id": 7002})])
    assert await inbox.claim(7002) is None  # waits for the earlier one of its chat
    assert await inbox.claim(7001) is not None
    await inbox.finish(7001)
    await inbox.due(fresh_too=True)


async def gate_scans(store: Store, world: World) -> None:
    async with store.read() as session:
        code = await session.scalar(select(Ticket.barcode)
                                    .where(Ticket.id == world.ticket_ids[2]))
    for nonce in ("a", "b", "a"):
        await gate.scan_barcode(store, code, "north", nonce, "gate-0")
    await services.claim_for_myself(store, BUYER, world.ticket_ids[0], "Camille Martin")
    await gate.scan_barcode(store, "0000000000000000", "north", "c", "gate-0")


async def resale_round(store: Store, world: World) -> None:
    ticket_id = world.ticket_ids[2]
    await resale.list_for_resale(store, BUYER, ticket_id, Decimal("45.00"))
    await services.order_overview(store, BUYER, world.order_id)
    await services.ticket_details(store, BUYER, ticket_id)
    await resale.change_price(store, BUYER, ticket_id, Decimal("50.00"))
    await resale.cancel_sale(store, BUYER, ticket_id)


async def barcode_feed_pages(store: Store, world: World) -> None:
    async with store.read_connection() as connection:
        page = await barcode_feed.read_page(connection, "fest-sat", None, 50)
        page = await barcode_feed.read_page(connection, "fest-sat", page.cursor, 50)
        await barcode_feed.read_page(connection, "fest-sat", barcode_feed.Cursor(400), 50)


Case = Callable[[Store, World], Awaitable[Any]]
CASES: dict[str, Case] = {
    "buyer opens the order link (link token by hash)":
        lambda store, w: services.open_link(store, OTHER_BUYER, w.other_order_token),
    "order overview (order by access for a user)":
        lambda store, w: services.order_overview(store, BUYER, w.order_id),
    "ticket menu (ticket by id with access check)":
        lambda store, w: services.ticket_details(store, BUYER, w.ticket_ids[0]),
    "home (orders and tickets of a user)": lambda store, w: services.home(store, BUYER),
    "claim for myself":
        lambda store, w: services.claim_for_myself(store, BUYER, w.ticket_ids[0],
                                                   "Camille Martin"),
    "send to a friend":
        lambda store, w: services.invite_friend(store, BUYER, w.ticket_ids[2],
                                                "sam@example.org"),
    "chat state by chat id": chat_steps,
    "telegram user by id": telegram_user,
    "pending invitation of a ticket (resend, revoke)": pending_invitation,
    "friend opens the claim link and accepts": friend_claims,
    "due outbox mails": due_mails,
    "expiring invitations": lambda store, w: services.expire_invitations(store),
    "update inbox (record, claim in chat order, due)": update_inbox,
    "order report by number (HTTP API)": lambda store, w: order_report(store, "DF-100000"),
    "gate scans (first, again, void, unknown)": gate_scans,
    "barcode feed pages (snapshot, then changes)": barcode_feed_pages,
    "resale (list, read the order, change the price, cancel)": resale_round,
    "old messages forgotten (mails, news, webhooks)":
        lambda store, w: privacy.forget_old_messages(store),
}


class Recorded(list):
    """The statements (with their parameters) sent, and those of them that SQLAlchemy had to
    render again at that run: an expanding parameter (``IN`` a bound list) is written out at
    every execution, and each length of the list makes a new statement for the database."""

    rendered_each_run: list[str]


# What buyers' and friends' updates run, many times a second in a rush: each statement is
# compiled once and prepared once. (Staff reports, privacy and pruning may bind lists.)
PER_UPDATE = frozenset({
    "buyer opens the order link (link token by hash)",
    "order overview (order by access for a user)",
    "ticket menu (ticket by id with access check)",
    "home (orders and tickets of a user)",
    "claim for myself",
    "send to a friend",
    "chat state by chat id",
    "telegram user by id",
    "pending invitation of a ticket (resend, revoke)",
    "friend opens the claim link and accepts",
    "update inbox (record, claim in chat order, due)",
    "resale (list, read the order, change the price, cancel)",
})


@contextlib.contextmanager
def recording(store: Store) -> Iterator[Recorded]:
    """The statements (with their parameters) the store sends while the block runs."""
    statements = Recorded()
    statements.rendered_each_run = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        if not executemany and _EXPLAINED.match(statement):
            statements.append((statement, parameters))
        compiled = getattr(context, "compiled", None)
        if compiled is not None and compiled.post_compile_params:
            statements.rendered_each_run.append(" ".join(statement.split())[:300])

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", record)


def _tables_by_alias(statement: str) -> dict[str, str]:
    aliases = {table: table for table in GROWING_TABLES}
    for table, alias in _ALIAS.findall(statement):
        if table.lower() in GROWING_TABLES:
            aliases[alias] = table.lower()
    return aliases


def sqlite_full_scans(statement: str, plan: list[str]) -> list[str]:
    """Tables the plan reads whole: ``SCAN t`` (with or without an index: a full index scan
    still grows with the table) and automatic indexes SQLite would build on the fly."""
    tables = _tables_by_alias(statement)
    found = []
    for detail in plan:
        match = re.match(r"(?:SCAN|SEARCH) (\w+)", detail)
        if match is None or match.group(1) not in tables:
            continue
        if detail.startswith("SCAN") or "AUTOMATIC" in detail:
            found.append(f"{tables[match.group(1)]}: {detail}")
    return found


def postgres_full_scans(node: dict[str, Any]) -> list[str]:
    """Sequential scans, and index scans without an index condition, of growing tables."""
    found = []
    relation = node.get("Relation Name")
    kind = node.get("Node Type", "")
    if relation in GROWING_TABLES:
        if kind == "Seq Scan":
            found.append(f"{relation}: Seq Scan")
        elif "Index" in kind and "Index Cond" not in node:
            found.append(f"{relation}: {kind} on {node.get('Index Name')} without a condition")
    for child in node.get("Plans", []):
        found += postgres_full_scans(child)
    return found


async def full_scans(store: Store, statements: list[tuple[str, Any]]) -> list[str]:
    problems = []
    seen: set[str] = set()
    async with store.engine.connect() as connection:
        if not store.is_sqlite:
            # On test-sized tables whole scans are cheapest; price them out, joins included
            # (a merge or hash join reads its inner table whole), to see what an index can do.
            for setting in ("enable_seqscan", "enable_mergejoin", "enable_hashjoin",
                            "enable_material"):
                await connection.exec_driver_sql(f"SET LOCAL {setting} = off")
        for statement, parameters in statements:
            if statement in seen:
                continue
            seen.add(statement)
            if store.is_sqlite:
                rows = await connection.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statement, parameters)
                scans = sqlite_full_scans(statement, [row[-1] for row in rows])
            else:
                plan = (await connection.exec_driver_sql(
                    "EXPLAIN (FORMAT JSON) " + statement, parameters)).scalar_one()
                plan = json.loads(plan) if isinstance(plan, str) else plan
                scans = postgres_full_scans(plan[0]["Plan"])
            problems += [f"{scan}\n    in: {' '.join(statement.split())[:400]}"
                         for scan in scans]
        await connection.rollback()
    return problems


@pytest.mark.parametrize("case", list(CASES))
async def test_hot_query_uses_an_index(store, case):
    world = await make_world(store)
    with recording(store) as statements:
        await CASES[case](store, world)
    assert statements, "the case ran no query: it tests nothing"
    problems = await full_scans(store, statements)
    assert not problems, f"{case}: full scans of growing tables:\n" + "\n".join(problems)
    bound = [f"{column}\n    in: {' '.join(statement.split())[:400]}"
             for statement, _parameters in statements
             for column in bound_partial_index_columns(statement)]
    assert not bound, f"{case}: partial index columns compared with parameters:\n" + (
        "\n".join(bound))
    if case in PER_UPDATE:
        assert not statements.rendered_each_run, (
            f"{case}: statements rendered again at each run:\n"
            + "\n".join(statements.rendered_each_run))


async def test_due_news_uses_an_index(store):
    world = await make_world(store)
    statements = await due_news(store, world)
    assert statements
    problems = await full_scans(store, statements)
    assert not problems, "due news: full scans of growing tables:\n" + "\n".join(problems)


def test_a_full_scan_is_recognised():
    """The detector itself: a plan that reads the whole tickets table is caught."""
    statement = "SELECT tickets.id FROM tickets WHERE tickets.category = ?"
    assert sqlite_full_scans(statement, ["SCAN tickets"]) == ["tickets: SCAN tickets"]
    assert sqlite_full_scans(statement, ["SEARCH tickets USING INDEX ix (order_id=?)"]) == []
    aliased = "SELECT 1 FROM update_inbox AS update_inbox_1 WHERE update_inbox_1.x = ?"
    assert sqlite_full_scans(aliased, ["SCAN update_inbox_1"]) == [
        "update_inbox: SCAN update_inbox_1"]
    assert postgres_full_scans({"Node Type": "Seq Scan", "Relation Name": "orders"}) == [
        "orders: Seq Scan"]
    assert postgres_full_scans({"Node Type": "Index Scan", "Relation Name": "orders",
                                "Index Cond": "(id = 1)"}) == []


def partial_index_equalities() -> list[tuple[str, str, str]]:
    """``(table, column, value)`` of each partial index whose predicate is ``column = 'value'``."""
    found = []
    for table in Base.metadata.sorted_tables:
        for index in table.indexes:
            predicate = index.dialect_options["sqlite"]["where"]
            matched = re.fullmatch(r"(\w+) = '(\w+)'", "" if predicate is None else str(predicate))
            if matched:
                found.append((table.name, matched.group(1), matched.group(2)))
    return found


def bound_partial_index_columns(statement: str) -> list[str]:
    """Where a statement compares a partial index's column with a bound parameter (``?``,
    ``$1``, ``%(name)s``): SQLite then plans it again on every run to learn whether the
    index applies, and PostgreSQL's generic plan cannot use the index."""
    found = []
    for table, column, _value in partial_index_equalities():
        names = {table} | {alias for name, alias in _ALIAS.findall(statement)
                           if name.lower() == table}
        for name in names:
            if re.search(rf"\b{name}\.{column}\s*=\s*(\?|\$\d+|%\(\w+\)s)", statement):
                found.append(f"{name}.{column}")
    return found


async def test_the_order_read_names_the_live_listing_state_in_its_sql(store):
    world = await make_world(store)
    with recording(store) as statements:
        await resale_round(store, world)
    assert any("resale_listings.state = 'listed'" in statement for statement, _ in statements)


def test_a_bound_partial_index_column_is_recognised():
    assert ("resale_listings", "state", "listed") in partial_index_equalities()
    assert ("gate_scans", "result", "ok") in partial_index_equalities()
    bound = ("SELECT 1 FROM tickets LEFT OUTER JOIN resale_listings ON "
             "resale_listings.ticket_id = tickets.id AND resale_listings.state = ?")
    assert bound_partial_index_columns(bound) == ["resale_listings.state"]
    aliased = "SELECT 1 FROM resale_listings AS live WHERE live.state = $1"
    assert bound_partial_index_columns(aliased) == ["live.state"]
    written = bound.replace("= ?", "= 'listed'")
    assert bound_partial_index_columns(written) == []
    assert bound_partial_index_columns("SELECT 1 FROM tickets WHERE tickets.state = ?") == []
