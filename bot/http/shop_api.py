"""The shop's routes of the HTTP API: the ticket shop pushes orders and reads them back, the
resale market reports sales, staff export an event's tickets; plus the health check, Prometheus
metrics and the OpenAPI document. What they share (token, bodies, errors) is in
``bot/http/kernel.py``; ``bot/http/app.py`` mounts them.

``ROUTES`` lists each route with its handler and the pydantic models of its body and answers
(``bot/http/api_models.py``); the server is built from that list and so is the OpenAPI document
(``bot/http/openapi.py``). A body the schema refuses is answered 422, a valid one the store refuses
409: the schema is the line between them.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import hdrs, web
from pydantic import BaseModel, ValidationError

from bot.http.api_models import (
    Buyer,
    Health,
    HealthChecks,
    Holder,
    ImportCounts,
    ImportDocument,
    ImportResult,
    ListedTicket,
    Listing,
    ListingPage,
    Order,
    OrderLink,
    Sale,
    SaleReport,
    Ticket,
)
from bot.http.kernel import (
    BODY_LIMIT,
    DOCUMENT,
    SERVICES,
    accepted_language,
    answer,
    json_body,
    json_text,
    parse_body,
    problem,
    refusal_message,
)
from bot.http.openapi import Parameter, Reply, Route, error
from bot.metrics import CONTENT_TYPE
from conversations.presentation import ticket_export
from locales import DEFAULT_LANGUAGE, LANGUAGES, words_in
from storage import services
from storage.errors import Refusal
from storage.reads import event_report, listings
from storage.reads.health import database_reachable
from storage.reads.order_report import OrderReport, order_report
from storage.services.importing.entries import ENTRY_RULE
from storage.services.importing.importer import ImportRejected, import_document
from storage.services.resale import complete_sale

MAX_ID = 2**31 - 1
NUMBER = re.compile(r"[0-9]{1,10}")
# How refusals of a sale map to HTTP: what does not exist; anything else the store refuses
# (the listing changed, the price is outside the event's bounds) is a conflict.
_SALE_STATUS = {"listing_not_found": 404}


def _matches_schema(model: type[BaseModel], body: Any) -> bool:
    """Whether the body has the shape the model's schema states (its entries may still break
    a rule between their fields, which no schema states)."""
    try:
        model.model_validate(body)
    except ValidationError as error:
        return all(found["type"] == ENTRY_RULE for found in error.errors())
    return True


async def post_orders(request: web.Request) -> web.Response:
    """Import one document; 201 if it created anything, 200 if it was all known already.
    The body is read by the same stream as ``ticketbot import`` reads a file, so both refuse
    the same documents with the same words (storage/services/importing/stream.py)."""
    api = request.app[SERVICES]
    raw = await json_text(request)
    try:
        report = await import_document(api.store, raw, actor="http_api",
                                       max_bytes=request.app[BODY_LIMIT])
    except ImportRejected as rejected:
        return await _refused_document(raw, rejected)
    links = await services.create_order_links(api.store, report.order_numbers)
    username = api.bot_username()
    created = report.events_created + report.orders_created + report.tickets_created
    result = ImportResult(
        created=ImportCounts(
            events=report.events_created,
            events_updated=report.events_updated,
            orders=report.orders_created,
            tickets=report.tickets_created,
        ),
        orders=[
            OrderLink(number=number, link=f"https://t.me/{username}?start={links[number]}")
            for number in report.order_numbers
        ],
    )
    return answer(result, 201 if created else 200)


def order_answer(report: OrderReport, language: str) -> Order:
    """The order, its event names and categories in ``language`` (see ``words_in``)."""
    return Order(
        number=report.number,
        buyer=Buyer(name=report.buyer_name, email=report.buyer_email, language=report.language),
        tickets=[
            Ticket(
                ref=ticket.ref,
                event=ticket.event_id,
                event_name=words_in(ticket.event_name, language),
                category=words_in(ticket.category, language),
                price=str(ticket.price),
                state=ticket.state,
                holder=(
                    Holder(name=ticket.holder_name, email=ticket.holder_email)
                    if ticket.holder_name
                    else None
                ),
                barcode=ticket.barcode,
                listing=(
                    Listing(id=ticket.listing.id, price=str(ticket.listing.price),
                            currency=ticket.listing.currency,
                            listed_at=ticket.listing.listed_at)
                    if ticket.listing is not None
                    else None
                ),
            )
            for ticket in report.tickets
        ],
    )


async def _refused_document(raw: bytes, rejected: ImportRejected) -> web.Response:
    """400 when the body is not JSON; 422 when the published schema refuses the document; 409
    when only the rules between its entries, or with the store, do (more than a schema says)."""
    problems = list(rejected.problems)
    if rejected.omitted:
        problems.append(f"… and {rejected.omitted} more problems")
    if rejected.not_json:
        return problem(400, "malformed_json", "The body is not valid JSON.",
                       problems=problems[-1:])
    if await asyncio.to_thread(_matches_schema, ImportDocument, json.loads(raw)):
        return problem(
            409,
            "conflicting_document",
            "The document conflicts with itself or with the store; nothing was imported.",
            problems=problems,
        )
    return problem(
        422,
        "invalid_document",
        "The document was refused; nothing was imported.",
        problems=problems,
    )


async def get_order(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    try:
        report = await order_report(request.app[SERVICES].store, number)
    except Refusal:
        return problem(404, "order_not_found", f"There is no order {number}.")
    language = accepted_language(request, report.language)
    response = answer(order_answer(report, language))
    response.headers["Content-Language"] = language
    return response


async def post_sale(request: web.Request) -> web.Response:
    """The market sold a listing: the ticket leaves its order and the buyer is told."""
    api = request.app[SERVICES]
    listing_id = int(request.match_info["listing"])
    report = parse_body(SaleReport, await json_body(request, empty={}))
    if not 1 <= listing_id <= MAX_ID:
        return problem(404, "listing_not_found", refusal_message(Refusal("listing_not_found")))
    try:
        sale = await complete_sale(api.store, listing_id, price=report.price)
    except Refusal as refusal:
        message = refusal_message(refusal)
        is_price = refusal.code.startswith("price")
        return problem(
            _SALE_STATUS.get(refusal.code, 409),
            refusal.code,
            message,
            problems=[f"price: {message}"] if is_price else None,
        )
    api.after_change()
    return answer(
        Sale(
            listing=sale.listing_id,
            ticket=sale.ticket_ref,
            price=str(sale.price),
            currency=sale.currency,
            status="sold",
        )
    )


async def get_event_listings(request: web.Request) -> web.Response:
    """An event's live listings, a page at a time (``after``: the last page's ``next``)."""
    event_id = request.match_info["event"]
    after, limit = request.query.get("after", "0"), request.query.get("limit")
    if not (NUMBER.fullmatch(after) and int(after) <= MAX_ID):
        return problem(400, "invalid_parameter", f"after must be a whole number up to {MAX_ID}.")
    if limit is not None and not (NUMBER.fullmatch(limit)
                                  and 1 <= int(limit) <= listings.MAX_PAGE):
        return problem(400, "invalid_parameter",
                       f"limit must be a whole number from 1 to {listings.MAX_PAGE}.")
    size = int(limit) if limit is not None else listings.DEFAULT_PAGE
    try:
        page = await listings.live_listings(request.app[SERVICES].store, event_id,
                                            after=int(after), limit=size)
    except Refusal:
        return problem(404, "event_not_found", f"There is no event {event_id}.")
    return answer(ListingPage(event=event_id, next=page.next_after, listings=[
        ListedTicket(id=live.id, ticket=live.ticket_ref, order=live.order_number,
                     event=live.event_id, price=str(live.price), currency=live.currency,
                     listed_at=live.listed_at)
        for live in page.listings]))


async def get_event_tickets_csv(request: web.Request) -> web.StreamResponse:
    """Every ticket of an event as CSV (UTF-8 with BOM), streamed a page at a time with
    chunked transfer encoding: a million tickets never sit in memory
    (storage/reads/event_report.py).
    ``?lang=fr`` picks the language of the header, categories and states (default English)."""
    api = request.app[SERVICES]
    event_id = request.match_info["event"]
    language = request.query.get("lang", DEFAULT_LANGUAGE)
    if language not in LANGUAGES:
        return problem(400, "invalid_parameter",
                       f"lang must be one of {', '.join(LANGUAGES)}.")
    try:
        await event_report.audit_export(api.store, None, event_id)
    except Refusal as refusal:
        return problem(404, refusal.code, refusal_message(refusal))
    response = web.StreamResponse(headers={
        hdrs.CONTENT_TYPE: "text/csv; charset=utf-8",
        hdrs.CONTENT_DISPOSITION: f'attachment; filename="tickets-{event_id}.csv"'})
    response.enable_chunked_encoding()
    await response.prepare(request)
    async for piece in ticket_export.ticket_csv(api.store, event_id, language):
        await response.write(piece.encode("utf-8"))
    await response.write_eof()
    return response


async def get_health(request: web.Request) -> web.Response:
    api = request.app[SERVICES]
    checks = HealthChecks(database=await database_reachable(api.store), bot=api.bot_running())
    healthy = checks.database and checks.bot
    return answer(
        Health(status="ok" if healthy else "unavailable", checks=checks), 200 if healthy else 503
    )


async def get_metrics(request: web.Request) -> web.Response:
    api = request.app[SERVICES]
    return web.Response(
        body=await api.metrics.render(api.store), headers={hdrs.CONTENT_TYPE: CONTENT_TYPE}
    )


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOCUMENT])


# The number of an order, as the import format allows it; the sample data's first order.
_ORDER_NUMBER = Parameter(
    "number",
    {"type": "string", "pattern": "^[!-~]{1,64}$"},
    description="the order number, percent-encoded (a slash as %2F)",
    examples=("DF-100234",),
)
_LISTING = Parameter(
    "listing", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, examples=(1,)
)

_EVENT = Parameter(
    "event", {"type": "string", "pattern": "^[!-~]{1,100}$"},
    description="the event's id, percent-encoded", examples=("fest-sat",))
_LANG = Parameter("lang", {"type": "string", "enum": list(LANGUAGES)}, where="query",
                  required=False, description="the language of the words in the file")

ROUTES: list[Route] = [
    Route(
        "POST",
        "/api/orders",
        "Import events and orders (idempotent)",
        handler=post_orders,
        request=ImportDocument,
        replies={
            201: Reply("Something was created", ImportResult),
            200: Reply("Nothing new: everything was already imported", ImportResult),
            409: error(
                "The document matches the schema but an entry conflicts with another or with "
                "the store (a number or ref used twice, an unknown event, a ticket that would "
                "change); nothing was imported"
            ),
        },
    ),
    # An order number may contain "/": clients send it percent-encoded (%2F), aiohttp decodes.
    Route(
        "GET",
        "/api/orders/{number}",
        "An order with each ticket's state, holder and current barcode",
        handler=get_order,
        parameters=(_ORDER_NUMBER,),
        operation_id="getOrder",
        replies={
            200: Reply("The order", Order, links={
                "CompleteSaleOfFirstTicket": {
                    "operationId": "completeSale",
                    "parameters": {"listing": "$response.body#/tickets/0/listing/id"},
                    "description": "the first ticket's live listing, if it is on resale",
                },
            }),
            404: error("No such order"),
        },
    ),
    Route(
        "POST",
        r"/api/resale/{listing:[0-9]+}/sold",
        "The resale market sold a listing: complete the sale",
        handler=post_sale,
        operation_id="completeSale",
        request=SaleReport,
        body_optional=True,
        parameters=(_LISTING,),
        replies={
            200: Reply("The sale is completed", Sale),
            404: error("No such listing"),
            409: error(
                "The listing is no longer live (sold or cancelled), or the price is outside "
                "the event's resale bounds or has more decimals than its currency"
            ),
        },
    ),
    Route(
        "GET",
        "/api/events/{event}/listings",
        "An event's live resale listings, a page at a time (keyset: `after` the last id)",
        handler=get_event_listings,
        operation_id="listListings",
        parameters=(
            _EVENT,
            Parameter("after", {"type": "integer", "minimum": 0, "maximum": MAX_ID,
                                "default": 0}, where="query", required=False,
                      description="the `next` of the previous page"),
            Parameter("limit", {"type": "integer", "minimum": 1,
                                "maximum": listings.MAX_PAGE,
                                "default": listings.DEFAULT_PAGE},
                      where="query", required=False),
        ),
        replies={
            200: Reply("A page of live listings", ListingPage, links={
                "CompleteSaleOfFirstListing": {
                    "operationId": "completeSale",
                    "parameters": {"listing": "$response.body#/listings/0/id"},
                },
                "NextPage": {
                    "operationId": "listListings",
                    "parameters": {"event": "$request.path.event",
                                   "after": "$response.body#/next"},
                },
            }),
            400: error("`after` or `limit` is not a whole number in range"),
            404: error("No such event"),
        },
    ),
    Route(
        "GET",
        "/api/events/{event}/tickets.csv",
        "Every ticket of an event as CSV (UTF-8 with BOM), streamed",
        handler=get_event_tickets_csv,
        parameters=(_EVENT, _LANG),
        replies={
            200: Reply("The tickets, one row each, a header first",
                       content={"text/csv": {"type": "string"}}),
            400: error("An unknown language"),
            404: error("No such event"),
        },
    ),
    Route(
        "GET",
        "/api/openapi.json",
        "This document",
        handler=get_openapi,
        secured=False,
        replies={
            200: Reply("The OpenAPI document", content={"application/json": {"type": "object"}})
        },
    ),
    Route(
        "GET",
        "/healthz",
        "Database reachable and bot running",
        handler=get_health,
        secured=False,
        replies={200: Reply("Healthy", Health), 503: Reply("Not healthy", Health)},
    ),
    Route(
        "GET",
        "/metrics",
        "Prometheus metrics (text exposition format)",
        handler=get_metrics,
        secured=False,
        replies={200: Reply("The metrics", content={"text/plain": {"type": "string"}})},
    ),
]
