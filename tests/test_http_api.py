"""The HTTP API through aiohttp's test client on the real store: authentication, every route's
answers and refusals, and every real request and response checked against the OpenAPI
document the API serves."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest
from aiohttp.test_utils import TestClient, TestServer
from openapi_core import OpenAPI
from openapi_core.exceptions import OpenAPIError
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.response.exceptions import InvalidData
from openapi_spec_validator import validate as validate_spec
from sqlalchemy import func, select

from bot.http.app import api_routes, create_api, webhook_route
from bot.http.kernel import MAX_BODY_BYTES, ApiServices
from bot.http.openapi import openapi_document
from bot.metrics import Metrics
from storage import services
from storage.db.store import Store
from storage.models import AuditEntry, Barcode, Order, Ticket, TicketState
from storage.services import resale
from tests.conftest import sample_document
from tests.test_import import SAMPLE_FILE

TOKEN = "s3cret-api-token"
BOT = "ticketbot_test_bot"
BUYER = 1001
LINK = re.compile(rf"^https://t\.me/{BOT}\?start=([A-Za-z0-9_-]{{32}})$")
SPEC = OpenAPI.from_dict(
    openapi_document([*api_routes(), webhook_route("/telegram/webhook", None)])
)


def schema_allows(method: str, path: str, body) -> bool:
    """Whether the published document allows this request with this JSON body."""
    request = MockRequest(
        "http://127.0.0.1",
        method,
        path,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        data=json.dumps(body).encode(),
        content_type="application/json",
    )
    try:
        SPEC.validate_request(request)
    except OpenAPIError:
        return False
    return True


class Answer:
    """A response read in full, with its JSON body when it has one."""

    def __init__(self, status: int, headers, data: bytes) -> None:
        self.status = status
        self.headers = headers
        self.data = data
        self.json = (
            json.loads(data)
            if headers.get("Content-Type", "").startswith("application/json")
            else None
        )


def conform(
    method: str,
    path: str,
    answer: Answer,
    *,
    body: bytes | None,
    headers: dict[str, str],
    request_is_valid: bool,
) -> None:
    """Fail unless the response (and, for a valid request, the request) matches the document."""
    path, _, query = path.partition("?")
    request = MockRequest(
        "http://127.0.0.1",
        method,
        path,
        args=dict(parse_qsl(query)),
        headers=headers,
        data=body,
        content_type=headers.get("Content-Type", "application/json"),
    )
    if request_is_valid:
        SPEC.validate_request(request)
    response = MockResponse(
        answer.data,
        status_code=answer.status,
        headers=dict(answer.headers),
        content_type=answer.headers.get("Content-Type", ""),
    )
    SPEC.validate_response(request, response)


class Api:
    """Calls the API as the shop would, checking each exchange against the OpenAPI document."""

    def __init__(self, client: TestClient, store: Store, metrics: Metrics) -> None:
        self.client = client
        self.store = store
        self.metrics = metrics

    async def call(
        self,
        method: str,
        path: str,
        *,
        document=None,
        raw: bytes | None = None,
        token: str | None = TOKEN,
        content_type: str = "application/json",
        valid: bool = True,
        documented: bool = True,
    ) -> Answer:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        body = (
            raw
            if raw is not None
            else (json.dumps(document).encode() if document is not None else None)
        )
        if body is not None:
            headers["Content-Type"] = content_type
        async with self.client.request(method, path, data=body, headers=headers) as response:
            answer = Answer(response.status, response.headers, await response.read())
        if documented:
            conform(
                method,
                path,
                answer,
                body=body,
                headers=headers,
                request_is_valid=valid and token == TOKEN,
            )
        return answer


async def open_api(store: Store, *, token: str | None = TOKEN, running: bool = True):
    metrics = Metrics()
    app = create_api(
        ApiServices(
            store=store,
            api_token=token,
            bot_username=lambda: BOT,
            metrics=metrics,
            bot_running=lambda: running,
        )
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    return Api(client, store, metrics)


@pytest.fixture
async def api(store):
    opened = await open_api(store)
    try:
        yield opened
    finally:
        await opened.client.close()


async def count(store: Store, model) -> int:
    async with store.read() as session:
        return await session.scalar(select(func.count()).select_from(model))


# --- authentication --------------------------------------------------------------------------


async def test_without_a_configured_token_every_api_call_is_refused(store):
    api = await open_api(store, token=None)
    try:
        for method, path in (
            ("POST", "/api/orders"),
            ("GET", "/api/orders/DF-100000"),
            ("POST", "/api/resale/1/sold"),
        ):
            for token in (None, "", "anything"):
                answer = await api.call(method, path, token=token, document={})
                assert answer.status == 403 and answer.json["error"] == "api_disabled"
        assert (await api.call("GET", "/healthz", token=None)).status == 200
        assert (await api.call("GET", "/metrics", token=None)).status == 200
        assert (await api.call("GET", "/api/openapi.json", token=None)).status == 200
    finally:
        await api.client.close()
    assert await count(store, Order) == 0


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        "Bearer ünïcode",
    ],
)
async def test_a_missing_or_wrong_token_is_unauthorized(api, header):
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Authorization"] = header
    async with api.client.post(
        "/api/orders", data=json.dumps(sample_document()).encode(), headers=headers
    ) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await response.json())["error"] == "unauthorized"
    assert await count(api.store, Order) == 0


async def test_the_right_token_is_accepted_with_any_case_of_the_scheme(api):
    async with api.client.get(
        "/api/orders/nope", headers={"Authorization": f"bearer {TOKEN}"}
    ) as response:
        assert response.status == 404


# --- POST /api/orders ------------------------------------------------------------------------


async def test_posting_orders_imports_them_and_answers_deep_links(api):
    answer = await api.call("POST", "/api/orders", document=sample_document(orders=2))
    assert answer.status == 201
    assert answer.json["created"] == {"events": 2, "events_updated": 0, "orders": 2, "tickets": 6}
    numbers = [order["number"] for order in answer.json["orders"]]
    assert numbers == ["DF-100000", "DF-100001"]
    token = LINK.match(answer.json["orders"][1]["link"]).group(1)
    opened = await services.open_link(api.store, BUYER, token)
    async with api.store.read() as session:
        assert await session.get(Order, opened.order_id) is not None
        number = await session.scalar(select(Order.number).where(Order.id == opened.order_id))
    assert number == "DF-100001"


async def test_posting_the_same_document_again_changes_nothing_but_gives_fresh_links(api):
    document = sample_document()
    first = await api.call("POST", "/api/orders", document=document)
    tickets, orders = await count(api.store, Ticket), await count(api.store, Order)
    again = await api.call("POST", "/api/orders", document=document)
    assert again.status == 200
    assert again.json["created"] == {"events": 0, "events_updated": 0, "orders": 0, "tickets": 0}
    assert (await count(api.store, Ticket), await count(api.store, Order)) == (tickets, orders)
    old, new = (LINK.match(a.json["orders"][0]["link"]).group(1) for a in (first, again))
    assert old != new
    for token in (old, new):  # the earlier link keeps working
        assert (await services.open_link(api.store, BUYER, token)).order_id is not None


async def test_an_invalid_document_is_refused_naming_each_problem_and_writing_nothing(api):
    document = sample_document(orders=2)
    document["orders"][0]["tickets"][0]["price"] = 89
    document["orders"][1]["buyer"]["email"] = "not-an-address"
    answer = await api.call("POST", "/api/orders", document=document, valid=False)
    assert answer.status == 422 and answer.json["error"] == "invalid_document"
    problems = answer.json["problems"]
    assert any(
        p.startswith("orders[0] (DF-100000).tickets[0] (T-DF-100000-1).price:") for p in problems
    )
    assert any(p.startswith("orders[1] (DF-100001).buyer.email:") for p in problems)
    assert await count(api.store, Order) == 0 and await count(api.store, AuditEntry) == 0


async def test_a_document_the_schema_refuses_is_refused_and_one_it_allows_is_not(api):
    """The schema's and the server's verdicts agree (issue 15: entries without their fields)."""
    empty_entry = {"events": [], "orders": [{}]}
    assert not schema_allows("POST", "/api/orders", empty_entry)
    answer = await api.call("POST", "/api/orders", document=empty_entry, valid=False)
    assert answer.status == 422 and answer.json["error"] == "invalid_document"
    sample = json.loads(SAMPLE_FILE.read_text())
    assert schema_allows("POST", "/api/orders", sample)
    assert (await api.call("POST", "/api/orders", document=sample)).status == 201


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["orders"][0]["tickets"][0].update(event="no-such-event"), "unknown event"),
        (lambda d: d["orders"].append(copy.deepcopy(d["orders"][0])), "is already used by"),
        (
            lambda d: d["events"][0]["resale"].update(min_price="95.00", max_price="90.00"),
            "min_price 95.00 is above max_price 90.00",
        ),
        (
            lambda d: d["events"][0]["exchange"].update(targets=["fest-sat"]),
            "lists itself as an exchange target",
        ),
    ],
)
async def test_a_document_the_schema_allows_but_the_rules_refuse_is_a_conflict(
    api, change, problem
):
    document = sample_document()
    change(document)
    assert schema_allows("POST", "/api/orders", document)
    answer = await api.call("POST", "/api/orders", document=document)
    assert answer.status == 409 and answer.json["error"] == "conflicting_document"
    assert any(problem in p for p in answer.json["problems"]), answer.json
    assert await count(api.store, Order) == 0


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["events"][0]["exchange"].update(targets=[]),
        lambda d: d["events"][0]["exchange"].update(targets=["fest-sun", "fest-sun"]),
        lambda d: d["events"][0].update(starts_at="2027-07-17 14:00:00+02:00"),
        lambda d: d["events"][0].update(currency="XYZ"),
        lambda d: d["events"][0].update(timezone="Mars/Olympus"),
        lambda d: d["orders"][0]["buyer"].update(name=" \u3000 "),
        lambda d: d["orders"][0]["buyer"].update(name="Camille\x07"),
        lambda d: d["orders"][0]["buyer"].update(email="camille@example.test"),
        lambda d: d["orders"][0]["tickets"][0].update(ref="T 1"),
        lambda d: d["orders"][0]["tickets"][0].update(price="-1.00"),
        lambda d: d["events"][1].update(capacity=5.5),
        lambda d: d["events"][1].update(capacity="5"),
    ],
)
async def test_what_the_schema_refuses_in_an_entry_the_server_refuses(api, change):
    document = sample_document()
    change(document)
    assert not schema_allows("POST", "/api/orders", document)
    answer = await api.call("POST", "/api/orders", document=document, valid=False)
    assert answer.status == 422 and answer.json["error"] == "invalid_document"


async def test_spaces_around_a_name_are_allowed_by_the_schema_and_dropped(api):
    document = sample_document()
    document["orders"][0]["buyer"]["name"] = "\t Camille Martin\u3000"
    assert schema_allows("POST", "/api/orders", document)
    assert (await api.call("POST", "/api/orders", document=document)).status == 201
    order = (await api.call("GET", "/api/orders/DF-100000")).json
    assert order["buyer"]["name"] == "Camille Martin"


async def test_a_lone_surrogate_is_no_text_and_is_refused(api):
    """I-JSON (RFC 7493): strings are Unicode text; "\\ud800" alone is none, whatever a
    schema validator that sees code points says."""
    document = sample_document()
    document["orders"][0]["buyer"]["name"] = "Camille \ud800"
    answer = await api.call("POST", "/api/orders", document=document, valid=False)
    # Refused as the text it is, the way `ticketbot import` refuses it (issue 22).
    assert answer.status == 400 and answer.json["error"] == "malformed_json"
    assert "lone surrogate" in answer.json["problems"][0]


async def test_a_capacity_written_as_5_0_is_the_whole_number_5(api):
    """JSON Schema's "integer" takes 5.0, so the server does too."""
    document = sample_document()
    document["events"][1]["capacity"] = 5.0
    assert schema_allows("POST", "/api/orders", document)
    assert (await api.call("POST", "/api/orders", document=document)).status == 201


@pytest.mark.parametrize("document", [[], "orders", 42, None])
async def test_a_document_that_is_not_an_object_is_refused(api, document):
    answer = await api.call("POST", "/api/orders", raw=json.dumps(document).encode(), valid=False)
    assert answer.status == 422 and "must be a JSON object" in answer.json["problems"][0]


@pytest.mark.parametrize("raw", [b'{"events": [', b"", b"   ", b"\xff\xfe{}", b"{'a': 1}"])
async def test_malformed_json_is_a_bad_request(api, raw):
    answer = await api.call("POST", "/api/orders", raw=raw, valid=False)
    assert answer.status == 400 and answer.json["error"] == "malformed_json"
    assert await count(api.store, Order) == 0


async def test_a_body_that_is_not_declared_as_json_is_refused(api):
    answer = await api.call(
        "POST",
        "/api/orders",
        raw=json.dumps(sample_document()).encode(),
        content_type="text/plain",
        valid=False,
    )
    assert answer.status == 415
    assert await count(api.store, Order) == 0


async def test_a_body_over_the_size_limit_is_refused(api):
    filler = {"events": [], "orders": [], "padding": "x" * MAX_BODY_BYTES}
    answer = await api.call("POST", "/api/orders", document=filler, valid=False)
    assert answer.status == 413 and answer.json["error"] == "too_large"

    async def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(6):
            yield b" " * (1024 * 1024)

    async with api.client.post(
        "/api/orders",
        data=chunks(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    ) as response:
        assert response.status == 413
    assert await count(api.store, Order) == 0


# --- GET /api/orders/{number} ----------------------------------------------------------------


async def ticket_id(store: Store, ref: str) -> int:
    async with store.read() as session:
        return await session.scalar(select(Ticket.id).where(Ticket.ref == ref))


async def test_an_order_is_reported_with_holders_and_current_barcodes(api):
    posted = await api.call("POST", "/api/orders", document=sample_document())
    token = LINK.match(posted.json["orders"][0]["link"]).group(1)
    await services.open_link(api.store, BUYER, token)
    first = await ticket_id(api.store, "T-DF-100000-1")
    await services.claim_for_myself(api.store, BUYER, first, "Camille Martin")
    await services.invite_friend(
        api.store, BUYER, await ticket_id(api.store, "T-DF-100000-2"), "alex@example.org"
    )

    answer = await api.call("GET", "/api/orders/DF-100000")
    assert answer.status == 200
    assert answer.json["buyer"] == {
        "name": "Camille Martin",
        "email": "camille0@example.org",
        "language": "fr",
    }
    claimed, invited, free = answer.json["tickets"]
    async with api.store.read() as session:
        barcode = await session.scalar(select(Ticket.barcode).where(Ticket.id == first))
    assert claimed == {
        "ref": "T-DF-100000-1",
        "event": "fest-sat",
        "event_name": "Dreamfest 2027 — Saturday",
        "category": "Pass samedi",
        "price": "89.00",
        "state": "completed",
        "barcode": barcode,
        "holder": {"name": "Camille Martin", "email": "camille0@example.org"},
        "listing": None,
    }
    assert (invited["state"], invited["holder"]) == ("pending", None)
    assert free["state"] == "to_assign" and re.fullmatch(r"\d{16}", free["barcode"])


async def test_an_unknown_order_is_not_found(api):
    answer = await api.call("GET", "/api/orders/DF-404")
    assert answer.status == 404 and answer.json["error"] == "order_not_found"


async def test_an_order_number_with_a_slash_is_addressable_percent_encoded(api):
    document = sample_document(prefix="DF/A")
    assert (await api.call("POST", "/api/orders", document=document)).status == 201
    answer = await api.call("GET", "/api/orders/DF%2FA-100000")
    assert answer.status == 200 and answer.json["number"] == "DF/A-100000"


# --- POST /api/resale/{listing}/sold ---------------------------------------------------------


async def listed_ticket(api: Api, price: str = "60.00") -> int:
    posted = await api.call("POST", "/api/orders", document=sample_document())
    await services.open_link(
        api.store, BUYER, LINK.match(posted.json["orders"][0]["link"]).group(1)
    )
    return await resale.list_for_resale(
        api.store, BUYER, await ticket_id(api.store, "T-DF-100000-1"), Decimal(price)
    )


async def test_a_ticket_on_resale_shows_its_listing_in_the_order(api):
    listing = await listed_ticket(api, "55.50")
    order = (await api.call("GET", "/api/orders/DF-100000")).json
    on_resale, *others = order["tickets"]
    assert on_resale["state"] == "on_resale"
    assert {key: on_resale["listing"][key] for key in ("id", "price", "currency")} == {
        "id": listing, "price": "55.50", "currency": "EUR"}
    assert all(ticket["listing"] is None for ticket in others)
    # The id the order gives is the one a sale is reported with.
    sold = await api.call("POST", f"/api/resale/{on_resale['listing']['id']}/sold")
    assert sold.status == 200
    order = (await api.call("GET", "/api/orders/DF-100000")).json
    assert order["tickets"][0]["listing"] is None and order["tickets"][0]["state"] == "sold"


async def test_an_events_live_listings_are_paged_by_id(api):
    await listed_ticket(api, "50.00")
    ids = [await resale.list_for_resale(api.store, BUYER, await ticket_id(api.store, ref),
                                        Decimal("40.00"))
           for ref in ("T-DF-100000-2", "T-DF-100000-3")]
    await resale.cancel_sale(api.store, BUYER, await ticket_id(api.store, "T-DF-100000-2"))
    first = (await api.call("GET", "/api/events/fest-sat/listings?limit=1")).json
    assert first["next"] == first["listings"][0]["id"] and len(first["listings"]) == 1
    assert first["listings"][0] | {"listed_at": None} == {
        "id": first["next"], "ticket": "T-DF-100000-1", "order": "DF-100000",
        "event": "fest-sat", "price": "50.00", "currency": "EUR", "listed_at": None}
    rest = (await api.call("GET", f"/api/events/fest-sat/listings?after={first['next']}")).json
    assert [live["id"] for live in rest["listings"]] == [ids[1]] and rest["next"] is None


async def test_listings_of_an_unknown_event_or_with_a_bad_page_are_refused(api):
    missing = await api.call("GET", "/api/events/no-such/listings")
    assert missing.status == 404 and missing.json["error"] == "event_not_found"
    for query in ("?after=-1", "?after=x", "?limit=0", "?limit=501", "?after=99999999999"):
        answer = await api.call("GET", f"/api/events/fest-sat/listings{query}", valid=False)
        assert answer.status == 400 and answer.json["error"] == "invalid_parameter", query


async def test_a_reported_sale_completes_the_listing(api):
    listing = await listed_ticket(api)
    answer = await api.call("POST", f"/api/resale/{listing}/sold", document={"price": "55.50"})
    assert answer.status == 200
    assert answer.json == {
        "listing": listing,
        "ticket": "T-DF-100000-1",
        "price": "55.50",
        "currency": "EUR",
        "status": "sold",
    }
    order = (await api.call("GET", "/api/orders/DF-100000")).json
    assert order["tickets"][0]["state"] == "sold" and order["tickets"][0]["barcode"] is None
    async with api.store.read() as session:
        void = await session.scalar(
            select(func.count()).select_from(Barcode).where(Barcode.voided_at.is_not(None))
        )
    assert void == 1
    again = await api.call("POST", f"/api/resale/{listing}/sold")
    assert again.status == 409 and again.json["error"] == "listing_not_live"


async def test_a_sale_without_a_body_is_at_the_listed_price(api):
    listing = await listed_ticket(api, "45.00")
    answer = await api.call("POST", f"/api/resale/{listing}/sold")
    assert answer.status == 200 and answer.json["price"] == "45.00"


async def test_an_unknown_listing_is_not_found(api):
    for path, valid in (("/api/resale/999/sold", True), ("/api/resale/99999999999999/sold", False)):
        answer = await api.call("POST", path, valid=valid)
        assert answer.status == 404 and answer.json["error"] == "listing_not_found"
    answer = await api.call("POST", "/api/resale/abc/sold", valid=False)
    assert answer.status == 404 and answer.json["error"] == "not_found"


@pytest.mark.parametrize(
    ("body", "status", "problem"),
    [
        ({"price": "120.00"}, 409, "price: The price must be between €10.00 and €89.00."),
        ({"price": "5.00"}, 409, "price: The price must be between €10.00 and €89.00."),
        ({"price": "50.001"}, 422, "price: must have at most 2 decimals"),
        ({"price": "66891235064.156"}, 422, "price: must have at most 2 decimals"),
        ({"price": "66891235064.15"}, 422, "price: must be at most 9999999999.99"),
        ({"price": 50}, 422, 'price: must be a decimal string like "45.00", not the JSON number'),
        ({"price": "fifty"}, 422, 'price: must be a decimal string like "45.00" (got "fifty")'),
        ({"amount": "50.00"}, 422, "amount: not a known key"),
        (["50.00"], 422, "the body must be a JSON object"),
        (None, 422, "the body must be a JSON object"),
    ],
)
async def test_an_invalid_sale_price_is_refused_and_changes_nothing(api, body, status, problem):
    """422 exactly when the published schema refuses the body; 409 when the event's bounds do."""
    listing = await listed_ticket(api)
    answer = await api.call(
        "POST", f"/api/resale/{listing}/sold", raw=json.dumps(body).encode(), valid=status == 409
    )
    assert answer.status == status
    assert any(p.startswith(problem) for p in answer.json["problems"]), answer.json
    assert schema_allows("POST", f"/api/resale/{listing}/sold", body) == (status != 422)
    order = (await api.call("GET", "/api/orders/DF-100000")).json
    assert order["tickets"][0]["state"] == "on_resale"


async def test_a_sale_body_that_is_not_json_is_a_bad_request(api):
    listing = await listed_ticket(api)
    answer = await api.call("POST", f"/api/resale/{listing}/sold", raw=b"price=50", valid=False)
    assert answer.status == 400


# --- health, metrics and the document --------------------------------------------------------


async def test_health_is_ok_when_the_database_answers_and_the_bot_runs(api):
    answer = await api.call("GET", "/healthz", token=None)
    assert answer.status == 200 and answer.json["status"] == "ok"


async def test_health_is_unavailable_when_the_bot_is_not_running(store):
    api = await open_api(store, running=False)
    try:
        answer = await api.call("GET", "/healthz", token=None)
    finally:
        await api.client.close()
    assert answer.status == 503 and answer.json["checks"] == {"database": True, "bot": False}


async def test_health_is_unavailable_when_the_database_does_not_answer(tmp_path):
    threads_before = set(threading.enumerate())
    unreachable = Store(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/ticketbot.db")
    api = await open_api(unreachable)
    try:
        answer = await api.call("GET", "/healthz", token=None)
    finally:
        await api.client.close()
        await unreachable.close()
        # After a failed connect aiosqlite stops its thread without waiting for it. Let the
        # thread finish while this test's event loop still runs: it answers on that loop, and
        # on a closed one it raised in a later test's warnings.
        for thread in set(threading.enumerate()) - threads_before:
            if "_connection_worker_thread" in thread.name:  # aiosqlite's
                await asyncio.to_thread(thread.join, 5)
    assert answer.status == 503 and answer.json["checks"]["database"] is False


async def test_metrics_are_exposed_in_prometheus_text_format(api):
    posted = await api.call("POST", "/api/orders", document=sample_document())
    await services.open_link(
        api.store, BUYER, LINK.match(posted.json["orders"][0]["link"]).group(1)
    )
    await services.invite_friend(
        api.store, BUYER, await ticket_id(api.store, "T-DF-100000-1"), "alex@example.org"
    )
    api.metrics.updates.labels(kind="message").inc()
    answer = await api.call("GET", "/metrics", token=None)
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain")
    text = answer.data.decode()
    assert 'ticketbot_emails{state="queued"} 1.0' in text
    assert 'ticketbot_emails{state="sent"} 0.0' in text
    assert 'ticketbot_updates_total{kind="message"} 1.0' in text
    assert "ticketbot_handler_errors_total 0.0" in text
    assert "ticketbot_update_seconds_bucket" in text


async def test_the_openapi_document_is_served_and_describes_every_route(api):
    answer = await api.call("GET", "/api/openapi.json", token=None)
    assert answer.json == openapi_document(api_routes())
    routes = {
        (r.method, r.resource.canonical)
        for r in api.client.server.app.router.routes()
        if r.method != "HEAD"
    }
    described = {
        (method.upper(), re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path))
        for path, item in answer.json["paths"].items()
        for method in item
    }
    assert {(m, re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", p)) for m, p in routes} == described


async def test_unknown_api_routes_answer_json_errors(api):
    answer = await api.call("GET", "/api/nothing-here", documented=False)
    assert answer.status == 404 and answer.json["error"] == "not_found"
    answer = await api.call("DELETE", "/api/orders", documented=False)
    assert answer.status == 405 and answer.json["error"] == "method_not_allowed"


def test_the_conformance_check_fails_on_a_response_unlike_the_document():
    """Guards the guard: a response that breaks the document must fail the tests above."""
    wrong = Answer(
        200,
        {"Content-Type": "application/json"},
        json.dumps({"number": "DF-1", "tickets": "none"}).encode(),
    )
    with pytest.raises(InvalidData):
        conform(
            "GET",
            "/api/orders/DF-1",
            wrong,
            body=None,
            headers={"Authorization": f"Bearer {TOKEN}"},
            request_is_valid=True,
        )
    undocumented = Answer(418, {"Content-Type": "application/json"}, b"{}")
    with pytest.raises(ResponseNotFound):
        conform("GET", "/healthz", undocumented, body=None, headers={}, request_is_valid=True)


def test_the_document_is_valid_openapi_and_its_schemas_use_only_json_schema_keywords():
    document = openapi_document(api_routes())
    validate_spec(document)
    unknown = {"ge", "le", "gt", "lt", "strict", "min_length", "max_length"}

    def walk(node, where):
        if isinstance(node, dict):
            assert not unknown & node.keys(), where
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for position, value in enumerate(node):
                walk(value, f"{where}/{position}")

    walk(document["components"]["schemas"], "#/components/schemas")


async def test_the_ticket_states_of_the_document_are_the_stores():
    states = openapi_document(api_routes())["components"]["schemas"]["TicketState"]
    assert set(states["enum"]) == {state.value for state in TicketState}
