"""The gate over real HTTP against the real aiohttp app and store: gate tokens, the scan (one
``ok`` per ticket, nonces, void and unknown barcodes), the barcode change feed under concurrent
writers, and what a used ticket may no longer do."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from aiohttp.test_utils import TestClient, TestServer
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from sqlalchemy import func, select

from bot.http.app import api_routes, create_api
from bot.http.gate_api import device_of
from bot.http.kernel import ApiServices
from bot.http.openapi import openapi_document
from bot.metrics import Metrics
from bot.settings import Settings
from conversations import callbacks as cb
from conversations import staff as staff_screens
from conversations.overview import overview_screen
from conversations.ticket_menu import menu_screen
from locales import translator
from storage import barcode_feed, services
from storage.db.store import Store, utcnow
from storage.errors import Refusal
from storage.models import AuditEntry, Barcode, GateScan, Ticket
from storage.services import exchange, resale, staff
from storage.services.importing.importer import import_document
from tests.conftest import ON_POSTGRES, sample_document

API_TOKEN = "shop-api-token"
GATE_TOKENS = ("north-gate-token", "south-gate-token")
BUYER = 1001
STAFF = 9001
SPEC = OpenAPI.from_dict(openapi_document(api_routes()))


class Answer:
    def __init__(self, status: int, headers, data: bytes) -> None:
        self.status, self.headers, self.data = status, headers, data
        self.json = json.loads(data) if data else None


class Gate:
    """Calls the API as a scanner would; every answer is checked against the OpenAPI document."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    async def call(self, method: str, path: str, *, body=None, raw: bytes | None = None,
                   token: str | None = GATE_TOKENS[0], check: bool = True) -> Answer:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.client.request(method, path, data=data, headers=headers) as response:
            answer = Answer(response.status, response.headers, await response.read())
        if check:
            request = MockRequest("http://127.0.0.1", method, path.split("?")[0],
                                  args=_query(path), headers=headers, data=data,
                                  content_type="application/json")
            SPEC.validate_response(request, MockResponse(
                answer.data, status_code=answer.status, headers=dict(answer.headers),
                content_type=answer.headers.get("Content-Type", "")))
        return answer

    async def scan(self, barcode: str, *, gate: str = "north-1", nonce: str | None = None,
                   token: str = GATE_TOKENS[0]) -> Answer:
        nonce = nonce or f"n-{random.getrandbits(64):x}"
        return await self.call("POST", "/api/scan", token=token,
                               body={"barcode": barcode, "gate": gate, "nonce": nonce})

    async def feed(self, event: str, since: str | None = None, limit: int = 1000) -> dict:
        query = f"?limit={limit}" + (f"&since={since}" if since is not None else "")
        answer = await self.call("GET", f"/api/events/{event}/barcodes{query}")
        assert answer.status == 200, answer.json
        return answer.json


def _query(path: str) -> dict:
    if "?" not in path:
        return {}
    return dict(part.split("=", 1) for part in path.split("?", 1)[1].split("&"))


async def open_gate(store: Store, gate_tokens=GATE_TOKENS) -> Gate:
    app = create_api(ApiServices(store=store, api_token=API_TOKEN, bot_username=lambda: "bot",
                                 metrics=Metrics(), gate_tokens=tuple(gate_tokens)))
    client = TestClient(TestServer(app))
    await client.start_server()
    return Gate(client)


@pytest.fixture
async def gate(store):
    opened = await open_gate(store)
    try:
        yield opened
    finally:
        await opened.client.close()


async def imported(store: Store, orders: int = 1, tickets: int = 3) -> list[int]:
    """Import orders the buyer may manage; their ticket ids."""
    await import_document(store, sample_document(orders=orders, tickets=tickets))
    for n in range(orders):
        token = await services.create_order_link(store, f"DF-{100000 + n}")
        await services.open_link(store, BUYER, token)
    async with store.read() as session:
        return list(await session.scalars(select(Ticket.id).order_by(Ticket.id)))


async def barcode_of(store: Store, ticket_id: int) -> str:
    async with store.read() as session:
        return await session.scalar(select(Ticket.barcode).where(Ticket.id == ticket_id))


async def count_scans(store: Store, **where) -> int:
    async with store.read() as session:
        query = select(func.count()).select_from(GateScan)
        for name, value in where.items():
            query = query.where(getattr(GateScan, name) == value)
        return await session.scalar(query)


# --- the scan ----------------------------------------------------------------------------------


async def test_fifty_concurrent_scans_of_one_barcode_let_exactly_one_person_in(store, gate):
    ticket_id = (await imported(store))[0]
    await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin")
    code = await barcode_of(store, ticket_id)
    answers = await asyncio.gather(*(gate.scan(code, gate=f"gate-{n % 5}") for n in range(50)))
    assert all(answer.status == 200 for answer in answers)
    results = [answer.json["result"] for answer in answers]
    assert results.count("ok") == 1
    assert results.count("already_scanned") == 49
    first = next(answer.json for answer in answers if answer.json["result"] == "ok")
    assert first["holder"] == "Camille Martin" and first["category"] == "Pass samedi"
    for answer in answers:
        assert answer.json["scanned_at"] == first["scanned_at"]
        assert answer.json["gate"] == first["gate"]
    assert await count_scans(store, result="ok") == 1
    assert await count_scans(store) == 50


async def test_a_repeated_nonce_gets_the_same_answer_and_scans_nothing_twice(store, gate):
    ticket_id = (await imported(store))[0]
    code = await barcode_of(store, ticket_id)
    first = await gate.scan(code, nonce="retry-1")
    assert first.json["result"] == "ok"
    again = await asyncio.gather(*(gate.scan(code, nonce="retry-1", gate="elsewhere")
                                   for _ in range(10)))
    assert {answer.data for answer in again} == {first.data}
    assert await count_scans(store, nonce="retry-1") == 1
    # The same nonce drawn by another scanner is another scan.
    other = await gate.scan(code, nonce="retry-1", token=GATE_TOKENS[1])
    assert other.json["result"] == "already_scanned"
    # A nonce sent again with another barcode is a scanner's bug: refused, nothing scanned.
    reused = await gate.scan("0000000000000000", nonce="retry-1")
    assert reused.status == 409 and reused.json["error"] == "nonce_reused"
    assert await count_scans(store) == 2


async def test_racing_requests_with_one_nonce_all_get_the_first_answer(store, gate):
    ticket_id = (await imported(store))[0]
    code = await barcode_of(store, ticket_id)
    answers = await asyncio.gather(*(gate.scan(code, nonce="same") for _ in range(20)))
    assert len({answer.data for answer in answers}) == 1
    assert answers[0].json["result"] == "ok"
    assert await count_scans(store) == 1


async def test_an_old_barcode_after_a_name_change_or_take_back_is_void(store, gate):
    ticket_id = (await imported(store))[0]
    await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin")
    claimed = await barcode_of(store, ticket_id)
    await services.rename_holder(store, BUYER, ticket_id, "Alex Dupont")
    renamed = await barcode_of(store, ticket_id)
    await services.take_back(store, BUYER, ticket_id)
    taken_back = await barcode_of(store, ticket_id)
    for old in (claimed, renamed):
        answer = await gate.scan(old)
        assert answer.json["result"] == "void"
        assert answer.json["holder"] is None and answer.json["voided_at"]
    assert (await gate.scan(taken_back)).json["result"] == "ok"


async def test_an_unknown_barcode_is_unknown_and_recorded(store, gate):
    await imported(store)
    answer = await gate.scan("1234567890123456")
    assert answer.json == {"result": "unknown", "barcode": "1234567890123456", "ticket": None,
                           "event": None, "category": None, "holder": None,
                           "scanned_at": None, "gate": None, "voided_at": None,
                           "conflict": False, "other_gate": None, "other_scanned_at": None}
    async with store.read() as session:
        entry = await session.scalar(select(AuditEntry).where(
            AuditEntry.action == "gate_unknown"))
    assert entry.details["barcode"] == "1234567890123456"


async def test_every_scan_is_in_the_history_under_its_device_never_its_token(store, gate):
    ticket_id = (await imported(store))[0]
    code = await barcode_of(store, ticket_id)
    await gate.scan(code, gate="north-1")
    await gate.scan(code, gate="south-2", token=GATE_TOKENS[1])
    history = await staff.ticket_history(store, STAFF, ref="T-DF-100000-1")
    scans = [line for line in history.entries if line.action.startswith("gate_")]
    assert [line.action for line in scans] == ["gate_ok", "gate_already_scanned"]
    assert [line.details["device"] for line in scans] == [device_of(t) for t in GATE_TOKENS]
    status = await staff.order_status(store, STAFF, "DF-100000")
    assert status.tickets[0].used_at is not None and status.tickets[1].used_at is None
    assert {"gate_ok", "gate_already_scanned"} <= {line.action
                                                    for line in status.recent_changes}
    for language, used in (("en", "Used: scanned in at the gate"),
                           ("fr", "Utilisé : scanné à l’entrée")):
        block = staff_screens.ticket_block(status.tickets[0], status.timezone,
                                           translator(language))
        assert used in block
    async with store.read() as session:
        stored = json.dumps([row.details for row in await session.scalars(select(AuditEntry))])
        devices = set(await session.scalars(select(GateScan.device)))
    assert devices == {device_of(t) for t in GATE_TOKENS}
    assert not any(token in stored for token in GATE_TOKENS)


# --- tokens ------------------------------------------------------------------------------------


async def test_gate_routes_take_gate_tokens_only_and_gate_tokens_open_nothing_else(store, gate):
    await imported(store)
    for method, path, body in (("POST", "/api/scan", {"barcode": "1", "gate": "g", "nonce": "n"}),
                               ("GET", "/api/events/fest-sat/barcodes", None)):
        for token in (API_TOKEN, None, "wrong", GATE_TOKENS[0] + "x"):
            answer = await gate.call(method, path, body=body, token=token)
            assert answer.status == 401, (path, token)
        assert (await gate.call(method, path, body=body, token=GATE_TOKENS[1])).status == 200
    for method, path in (("GET", "/api/orders/DF-100000"), ("POST", "/api/orders"),
                         ("POST", "/api/resale/1/sold")):
        for token in GATE_TOKENS:
            answer = await gate.call(method, path, body={}, token=token, check=False)
            assert answer.status == 401, (path, token)
    assert (await gate.call("GET", "/api/orders/DF-100000", token=API_TOKEN,
                            check=False)).status == 200
    assert await count_scans(store) == 1


async def test_without_gate_tokens_the_gate_routes_refuse_every_call(store):
    await imported(store)
    closed = await open_gate(store, gate_tokens=())
    try:
        for token in (API_TOKEN, "anything", None):
            answer = await closed.scan("1234", token=token)
            assert answer.status == 403 and answer.json["error"] == "gate_disabled"
            feed = await closed.call("GET", "/api/events/fest-sat/barcodes", token=token)
            assert feed.status == 403
    finally:
        await closed.client.close()
    assert await count_scans(store) == 0


async def test_a_withdrawn_gate_token_no_longer_opens_the_gate(store):
    await imported(store)
    only_south = await open_gate(store, gate_tokens=GATE_TOKENS[1:])
    try:
        assert (await only_south.scan("1", token=GATE_TOKENS[0])).status == 401
        assert (await only_south.scan("1", token=GATE_TOKENS[1])).status == 200
    finally:
        await only_south.client.close()


# --- malformed requests ------------------------------------------------------------------------


async def test_malformed_requests_get_json_errors_and_change_nothing(store, gate):
    await imported(store)
    for query, error in (("?since=abc", "bad_cursor"), ("?since=-1", "bad_cursor"),
                         ("?since=", "bad_cursor"),
                         ("?limit=0", "bad_limit"), ("?limit=10001", "bad_limit"),
                         ("?limit=ten", "bad_limit"), ("?limit=1.5", "bad_limit")):
        answer = await gate.call("GET", f"/api/events/fest-sat/barcodes{query}", check=False)
        assert (answer.status, answer.json["error"]) == (400, error), query
    # Shaped like a cursor, valid by the schema, never handed out: the documented 409.
    for since in ("s5.9", "s5.5832"):
        answer = await gate.call("GET", f"/api/events/fest-sat/barcodes?since={since}")
        assert (answer.status, answer.json["error"]) == (409, "bad_cursor"), since
    missing = await gate.call("GET", "/api/events/no-such-event/barcodes")
    assert missing.status == 404 and missing.json["error"] == "event_not_found"
    for body in ({}, {"barcode": "1", "gate": "g"}, {"barcode": "", "gate": "g", "nonce": "n"},
                 {"barcode": 1, "gate": "g", "nonce": "n"}, [], "scan",
                 {"barcode": "1", "gate": "g", "nonce": "n", "extra": True},
                 {"barcode": "1" * 257, "gate": "g", "nonce": "n"}):
        answer = await gate.call("POST", "/api/scan", body=body)
        assert answer.status == 422 and answer.json["error"] == "invalid_body", body
        assert answer.json["problems"]
    broken = await gate.call("POST", "/api/scan", raw=b"{not json")
    assert broken.status == 400 and broken.json["error"] == "malformed_json"
    assert await count_scans(store) == 0


# --- the feed ----------------------------------------------------------------------------------


async def all_barcodes(store: Store, event_id: str) -> tuple[set[str], set[str]]:
    """Every barcode ever issued for the event's tickets, and those still valid."""
    async with store.read() as session:
        rows = (await session.execute(
            select(Barcode.code, Barcode.voided_at).join(Ticket, Ticket.id == Barcode.ticket_id)
            .where(Ticket.event_id == event_id))).all()
    return {code for code, _ in rows}, {code for code, voided in rows if voided is None}


async def caught_up(gate: Gate, event_id: str) -> str:
    """The cursor of a scanner that read the event's whole feed."""
    page = {"cursor": None, "more": True}
    while page["more"]:
        page = await gate.feed(event_id, page["cursor"])
    return page["cursor"]


async def test_the_feed_starts_with_a_snapshot_and_pages_by_cursor(store, gate):
    ticket_ids = await imported(store, orders=4, tickets=3)
    await services.claim_for_myself(store, BUYER, ticket_ids[0], "Camille Martin")
    pages = []
    cursor = None
    while True:
        page = await gate.feed("fest-sat", cursor, limit=5)
        pages.append(page)
        cursor = page["cursor"]
        if not page["more"]:
            break
    assert [page["snapshot"] for page in pages] == [True, True, True]
    seen = [entry["barcode"] for page in pages for entry in page["valid"]]
    _, valid = await all_barcodes(store, "fest-sat")
    assert sorted(seen) == sorted(valid) and len(seen) == 12
    assert not any(page["voided"] for page in pages)
    claimed = next(entry for page in pages for entry in page["valid"]
                   if entry["ticket"] == "T-DF-100000-1")
    assert claimed["holder"] == "Camille Martin"
    # Then the changes since the snapshot: a new holder is one void and one new barcode.
    old = await barcode_of(store, ticket_ids[1])
    await services.claim_for_myself(store, BUYER, ticket_ids[1], "Alex Dupont")
    after = await gate.feed("fest-sat", cursor)
    assert after["voided"] == [old] and not after["snapshot"] and not after["more"]
    assert after["valid"] == [{"barcode": await barcode_of(store, ticket_ids[1]),
                               "ticket": "T-DF-100000-2", "category": "Pass samedi",
                               "holder": "Alex Dupont"}]
    assert (await gate.feed("fest-sat", after["cursor"]))["valid"] == []


async def test_concurrent_holder_changes_are_each_seen_once_by_a_polling_reader(store, gate):
    ticket_ids = await imported(store, orders=4, tickets=3)
    done = asyncio.Event()

    async def change_holders(ticket_id: int, rounds: int) -> None:
        for n in range(rounds):
            name = f"Holder {'ABCDEFGHIJKLMNOP'[ticket_id]}{'abcdef'[n]}"
            await services.claim_for_myself(store, BUYER, ticket_id, name)
            await services.take_back(store, BUYER, ticket_id)

    issued: list[str] = []
    voided: list[str] = []
    valid_by_snapshot: set[str] = set()

    async def poll_changes() -> str:
        cursor = "0"
        while True:
            # Whether the writers were done before this page was read: a page read while the
            # last of them committed may miss it, however "done" stands when it arrives.
            writers_done = done.is_set()
            page = await gate.feed("fest-sat", cursor, limit=7)
            issued.extend(entry["barcode"] for entry in page["valid"])
            voided.extend(page["voided"])
            cursor = page["cursor"]
            if writers_done and not page["more"]:
                return cursor
            await asyncio.sleep(0)

    async def follow_from_a_snapshot() -> None:
        cursor = None
        while True:
            writers_done = done.is_set()
            page = await gate.feed("fest-sat", cursor, limit=4)
            valid_by_snapshot.update(entry["barcode"] for entry in page["valid"])
            valid_by_snapshot.difference_update(page["voided"])
            cursor = page["cursor"]
            if writers_done and not page["more"] and not page["snapshot"]:
                return
            await asyncio.sleep(0)

    reader = asyncio.create_task(poll_changes())
    follower = asyncio.create_task(follow_from_a_snapshot())
    await asyncio.gather(*(change_holders(ticket_id, 4) for ticket_id in ticket_ids[:6]))
    done.set()
    await reader
    await follower
    ever, valid = await all_barcodes(store, "fest-sat")
    assert len(issued) == len(set(issued)) and set(issued) == ever
    assert len(voided) == len(set(voided)) and set(voided) == ever - valid
    assert set(issued) - set(voided) == valid
    assert valid_by_snapshot == valid
    assert len(ever) == 12 + 6 * 4 * 2


async def test_an_exchange_and_a_resale_reach_the_feeds_of_both_events(store, gate):
    ticket_ids = await imported(store)
    head_sun = await caught_up(gate, "fest-sun")
    head_sat = await caught_up(gate, "fest-sat")
    old = await barcode_of(store, ticket_ids[0])
    new_ticket = await exchange.exchange_ticket(store, BUYER, ticket_ids[0], "fest-sun")
    sold = await barcode_of(store, ticket_ids[1])
    listing = await resale.list_for_resale(store, BUYER, ticket_ids[1], resale.Decimal("50"))
    await resale.complete_sale(store, listing)
    sat = await gate.feed("fest-sat", head_sat)
    assert sat["voided"] == [old, sold] and sat["valid"] == []
    sun = await gate.feed("fest-sun", head_sun)
    assert [entry["barcode"] for entry in sun["valid"]] == [await barcode_of(store, new_ticket)]


# --- a used ticket -----------------------------------------------------------------------------


async def test_a_used_ticket_offers_nothing_and_every_change_is_refused(store, gate):
    ticket_ids = await imported(store)
    await services.claim_for_myself(store, BUYER, ticket_ids[0], "Camille Martin")
    listing = await resale.list_for_resale(store, BUYER, ticket_ids[2], resale.Decimal("50"))
    for ticket_id in ticket_ids:
        assert (await gate.scan(await barcode_of(store, ticket_id))).json["result"] == "ok"
    details = await services.ticket_details(store, BUYER, ticket_ids[0])
    assert details.ticket.used_at is not None and details.ticket.actions == ()
    attempts = (
        services.rename_holder(store, BUYER, ticket_ids[0], "Alex Dupont"),
        services.take_back(store, BUYER, ticket_ids[0]),
        resale.list_for_resale(store, BUYER, ticket_ids[0], resale.Decimal("50")),
        exchange.exchange_ticket(store, BUYER, ticket_ids[0], "fest-sun"),
        services.claim_for_myself(store, BUYER, ticket_ids[1], "Alex Dupont"),
        services.invite_friend(store, BUYER, ticket_ids[1], "alex@example.org"),
    )
    before = await all_barcodes(store, "fest-sat")
    for attempt in attempts:
        with pytest.raises(Refusal) as refused:
            await attempt
        assert refused.value.code == "ticket_used"
    assert await all_barcodes(store, "fest-sat") == before
    # The ticket on resale got in with the buyer: it is off the market, as it was before.
    listed = await services.ticket_details(store, BUYER, ticket_ids[2])
    assert listed.ticket.listing is None and listed.ticket.state == "to_assign"
    assert listed.ticket.actions == ()
    with pytest.raises(Refusal) as refused:
        await resale.complete_sale(store, listing)
    assert refused.value.code == "listing_not_live"
    assert await all_barcodes(store, "fest-sat") == before


async def test_a_gate_of_one_event_does_not_let_in_with_a_ticket_of_another(store, gate):
    ticket_id = (await imported(store))[0]
    code = await barcode_of(store, ticket_id)
    answer = await gate.call("POST", "/api/scan", body={
        "barcode": code, "gate": "sunday-1", "nonce": "x", "event": "fest-sun"})
    assert answer.json["result"] == "unknown" and answer.json["ticket"] is None
    details = await services.ticket_details(store, BUYER, ticket_id)
    assert details.ticket.used_at is None
    answer = await gate.call("POST", "/api/scan", body={
        "barcode": code, "gate": "saturday-1", "nonce": "y", "event": "fest-sat"})
    assert answer.json["result"] == "ok"


async def test_scanning_a_ticket_sent_to_a_friend_withdraws_the_invitation(store, gate):
    ticket_id = (await imported(store))[0]
    invitation = await services.invite_friend(store, BUYER, ticket_id, "alex@example.org")
    assert (await gate.scan(await barcode_of(store, ticket_id))).json["result"] == "ok"
    details = await services.ticket_details(store, BUYER, ticket_id)
    assert details.ticket.state == "to_assign" and details.ticket.invitation is None
    with pytest.raises(Refusal) as refused:
        await services.open_link(store, 2002, invitation.claim_token)
    assert refused.value.code == "link_revoked"


@pytest.mark.parametrize(("language", "marker", "reason"), [
    ("en", "used, scanned in at the gate", "can no longer be transferred"),
    ("fr", "utilisé, scanné à l’entrée", "ne peut plus être transféré"),
])
async def test_the_overview_and_menu_show_a_used_ticket_without_actions(store, gate, language,
                                                                        marker, reason):
    ticket_ids = await imported(store)
    await services.claim_for_myself(store, BUYER, ticket_ids[0], "Camille Martin")
    await gate.scan(await barcode_of(store, ticket_ids[0]))
    t = translator(language)
    order = (await services.ticket_details(store, BUYER, ticket_ids[0])).order
    overview = overview_screen(order, t)
    used_lines = [line for line in overview.text.splitlines() if marker in line]
    assert len(used_lines) == 1 and "Camille Martin" in used_lines[0]
    menu = menu_screen(await services.ticket_details(store, BUYER, ticket_ids[0]), t)
    assert reason in menu.text
    assert [button.callback_data for row in menu.rows for button in row] == [
        cb.encode(cb.OVERVIEW, order.id, 0)]
    unused = menu_screen(await services.ticket_details(store, BUYER, ticket_ids[1]), t)
    assert len([button for row in unused.rows for button in row]) > 1


def _upgrade(url: str, revision: str) -> None:
    from alembic import command

    from storage.db.store import _alembic_config
    command.upgrade(_alembic_config(url, {}), revision)


async def test_the_migration_starts_each_feed_with_the_barcodes_valid_today(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'before-the-gate.db'}"
    await asyncio.to_thread(_upgrade, url, "0002")
    old = Store(url, secret="test-secret")
    try:
        async with old.engine.begin() as connection:
            for statement in (
                "INSERT INTO events (id, name, starts_at, timezone, venue_name, venue_city, "
                "currency, personalisation_enabled, resale_enabled, exchange_enabled, "
                "exchange_targets) VALUES ('e1', 'E', '2027-07-17 12:00:00', 'Europe/Paris', "
                "'V', 'C', 'EUR', 1, 0, 0, '[]')",
                "INSERT INTO orders (id, number, buyer_name, buyer_email, language, created_at) "
                "VALUES (1, 'O-1', 'Camille Martin', 'c@example.org', 'fr', "
                "'2026-01-01 00:00:00')",
                *(f"INSERT INTO tickets (id, ref, order_id, event_id, category, price, state, "
                  f"holder_name, barcode, version, updated_at) VALUES ({n}, 'T-{n}', 1, 'e1', "
                  f"'Pass', 89, 'to_assign', NULL, '{n:016d}', 1, '2026-01-01 00:00:00')"
                  for n in (1, 2)),
                "INSERT INTO barcodes (code, ticket_id, issued_at, voided_at) VALUES "
                "('0000000000000001', 1, '2026-01-01 00:00:00', NULL), "
                "('0000000000000002', 2, '2026-01-01 00:00:00', NULL), "
                "('0000000000000009', 2, '2025-01-01 00:00:00', '2026-01-01 00:00:00')",
            ):
                await connection.exec_driver_sql(statement)
    finally:
        await old.close()
    await asyncio.to_thread(_upgrade, url, "head")
    store = Store(url, secret="test-secret")
    try:
        async with store.read_connection() as connection:
            page = await barcode_feed.read_page(connection, "e1", None)
        assert [entry.barcode for entry in page.valid] == ["0000000000000001",
                                                           "0000000000000002"]
        assert str(page.cursor) == "2" and not page.more
    finally:
        await store.close()


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite lets one writer in at a time anyway")
async def test_a_later_writer_waits_until_the_earlier_position_is_committed(store, gate):
    ticket_ids = await imported(store)
    cursor = await caught_up(gate, "fest-sat")
    first = await barcode_of(store, ticket_ids[0])
    async with store.write() as session:
        await barcode_feed.void(session, first, utcnow())
        # What the commit does first: the change takes its position, the head stays locked.
        await session.run_sync(barcode_feed._write_noted_changes)
        later = asyncio.create_task(
            services.claim_for_myself(store, BUYER, ticket_ids[1], "Alex Dupont"))
        await asyncio.sleep(0.5)
        assert not later.done()  # its barcodes wait for a position behind the first one's
        page = await gate.feed("fest-sat", cursor)
        assert page["valid"] == [] and page["voided"] == []
    await later
    page = await gate.feed("fest-sat", cursor)
    assert page["voided"][0] == first and len(page["voided"]) == 2  # in commit order
    assert [entry["holder"] for entry in page["valid"]] == ["Alex Dupont"]


def test_gate_tokens_are_read_comma_separated_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env file
    monkeypatch.setenv("TICKETBOT_GATE_TOKEN", " north-token, south-token,,")
    assert Settings().gate_token == ("north-token", "south-token")
    monkeypatch.delenv("TICKETBOT_GATE_TOKEN")
    assert Settings().gate_token == ()
