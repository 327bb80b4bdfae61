"""The HTTP API (aiohttp): the ticket shop pushes orders and reads them back, the resale market
reports sales; plus the health check, Prometheus metrics and the OpenAPI document.

Routes other than ``/healthz``, ``/metrics`` and ``/api/openapi.json`` need the bearer token
``TICKETBOT_API_TOKEN``, compared in constant time; without a configured token they refuse
every call. Errors are JSON objects naming what is wrong.

``ROUTES`` lists every route with its handler and the pydantic models of its body and answers
(``bot/http/api_models.py``); the server is built from that list and so is the OpenAPI document
(``bot/http/openapi.py``). A body the schema refuses is answered 422, a valid one the store refuses
409: the schema is the line between them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

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
    Order,
    OrderLink,
    Sale,
    SaleReport,
    Ticket,
)
from bot.http.openapi import Parameter, Reply, Route, error, openapi_document
from bot.metrics import CONTENT_TYPE, Metrics
from conversations.presentation import ticket_export
from locales import LANGUAGES, pick_language, translator, words_in
from storage import services
from storage.db.store import Store
from storage.errors import Refusal
from storage.reads import event_report
from storage.reads.health import database_reachable
from storage.reads.order_report import OrderReport, order_report
from storage.services.importing.importer import ENTRY_RULE, ImportRejected, import_document
from storage.services.resale import complete_sale

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024
OPEN_PATHS = frozenset({"/healthz", "/metrics", "/api/openapi.json"})
MINIAPP_PREFIX = "/app/"
_MAX_ID = 2**31 - 1
# How refusals of a sale map to HTTP: what does not exist; anything else the store refuses
# (the listing changed, the price is outside the event's bounds) is a conflict.
_SALE_STATUS = {"listing_not_found": 404}
_Body = TypeVar("_Body", bound=BaseModel)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ApiServices:
    """What the API needs from the rest of the bot."""

    store: Store
    api_token: str | None
    bot_username: Callable[[], str]
    metrics: Metrics
    bot_running: Callable[[], bool] = lambda: True
    # The scanners' tokens: they open the gate's routes only (bot/http/gate_api.py).
    gate_tokens: tuple[str, ...] = ()
    # Called after a change that queued chat news or mail, to wake the background worker.
    after_change: Callable[[], None] = lambda: None


SERVICES = web.AppKey("ticketbot_api_services", ApiServices)
BODY_LIMIT = web.AppKey("ticketbot_api_body_limit", int)
DOCUMENT = web.AppKey("ticketbot_api_openapi_document", dict)


class BodyRefused(Exception):
    """A request body we cannot use; carries the error response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.reason)
        self.response = response


def problem(
    status: int,
    error: str,
    message: str,
    *,
    problems: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A JSON error answer: a stable code, a message, and the problems found, if any."""
    body: dict[str, Any] = {"error": error, "message": message}
    if problems is not None:
        body["problems"] = problems
    return web.json_response(body, status=status, headers=headers)


def refusal_message(refusal: Refusal) -> str:
    """A store refusal in English, amounts formatted in their currency."""
    return translator("en").fill(refusal.message, refusal.params)


# --- middlewares -----------------------------------------------------------------------------


def _allowed(
    request: web.Request, token: str | None, open_paths: frozenset[str]
) -> web.Response | None:
    """None if the request may go on, else the refusal to send."""
    # The Mini App checks Telegram's initData itself (bot/webapp/).
    if request.path in open_paths or (request.path + "/").startswith(MINIAPP_PREFIX):
        return None
    if not token:
        return problem(
            403, "api_disabled", "The API is disabled: no TICKETBOT_API_TOKEN is configured."
        )
    scheme, _, credentials = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    given = credentials.strip().encode()
    # compare_digest takes the same time wherever the first difference is.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, token.encode()):
        return problem(
            401,
            "unauthorized",
            "A valid bearer token is required.",
            headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="ticketbot"'},
        )
    return None


def _middlewares(open_paths: frozenset[str]) -> list[Any]:
    @web.middleware
    async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        """aiohttp's own errors (404, 405…) and crashes, as JSON like ours."""
        try:
            return await handler(request)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            code = re.sub(r"\W+", "_", error.reason.lower()).strip("_")
            return problem(
                error.status,
                code,
                error.reason,
                headers={
                    key: value
                    for key, value in error.headers.items()
                    if key not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)
                },
            )
        except BodyRefused as refused:
            return refused.response
        except Exception as error:
            route = request.match_info.route.resource
            where = route.canonical if route is not None else "?"
            log.error(
                "%s %s failed: %s", request.method, where, type(error).__name__, exc_info=error
            )
            return problem(500, "internal_error", "Something went wrong on our side.")

    @web.middleware
    async def bearer_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.match_info.route.name or "").startswith("gate."):
            return await handler(request)  # the gate's routes take gate tokens only
        refusal = _allowed(request, request.app[SERVICES].api_token, open_paths)
        return refusal if refusal is not None else await handler(request)

    return [json_errors, bearer_token]


# --- bodies ----------------------------------------------------------------------------------


_REQUIRED = object()


async def json_body(request: web.Request, *, empty: Any = _REQUIRED) -> Any:
    """The request's JSON body (``empty`` if there is none and it is optional); raises
    ``BodyRefused``."""
    limit = request.app[BODY_LIMIT]
    if request.content_length is not None and request.content_length > limit:
        raise BodyRefused(_too_large(limit))
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyRefused(_too_large(limit)) from None
    if not raw.strip() and empty is not _REQUIRED:
        return empty
    declared = request.headers.get(hdrs.CONTENT_TYPE)
    if declared and request.content_type != "application/json":
        raise BodyRefused(
            problem(
                415,
                "unsupported_media_type",
                "The body must be JSON (Content-Type: application/json).",
            )
        )
    if not raw.strip():
        raise BodyRefused(
            problem(400, "malformed_json", "The body is empty; a JSON document is expected.")
        )
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        where = f"{error.msg} at line {error.lineno}, column {error.colno}"
        raise BodyRefused(
            problem(400, "malformed_json", f"The body is not valid JSON: {where}.")
        ) from None
    except UnicodeDecodeError:
        raise BodyRefused(problem(400, "malformed_json", "The body is not UTF-8 text.")) from None


def _too_large(limit: int) -> web.Response:
    return problem(413, "too_large", f"The body is larger than the limit of {limit:,} bytes.")


# --- routes ---------------------------------------------------------------------------------


def body_problems(error: ValidationError) -> list[str]:
    """A request model's refusal, one line per problem naming the field at fault."""
    problems = []
    for found in error.errors(include_url=False):
        where = ".".join(str(part) for part in found["loc"])
        if found["type"] == "value_error":
            text = str(found["ctx"]["error"])
        elif found["type"] == "extra_forbidden":
            text = "not a known key"
        elif found["type"] in ("model_type", "model_attributes_type"):
            text = "must be a JSON object"
        else:
            text = found["msg"][:1].lower() + found["msg"][1:]
        problems.append(f"{where}: {text}" if where else f"the body {text}")
    return problems


def parse_body(model: type[_Body], body: Any) -> _Body:
    """The request body as its model; raises ``BodyRefused`` (422) naming each problem."""
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise BodyRefused(
            problem(422, "invalid_body", "The body was refused.", problems=body_problems(error))
        ) from None


def answer(model: BaseModel, status: int = 200) -> web.Response:
    """A JSON answer built from its documented model."""
    return web.json_response(model.model_dump(mode="json"), status=status)


def _matches_schema(model: type[BaseModel], body: Any) -> bool:
    """Whether the body has the shape the model's schema states (its entries may still break
    a rule between their fields, which no schema states)."""
    try:
        model.model_validate(body)
    except ValidationError as error:
        return all(found["type"] == ENTRY_RULE for found in error.errors())
    return True


async def post_orders(request: web.Request) -> web.Response:
    """Import one document; 201 if it created anything, 200 if it was all known already."""
    api = request.app[SERVICES]
    document = await json_body(request)
    if not isinstance(document, dict):
        return problem(
            422,
            "invalid_document",
            "The document was refused; nothing was imported.",
            problems=[
                'the document must be a JSON object with "events" and '
                f'"orders", not a {type(document).__name__}'
            ],
        )
    try:
        report = await import_document(api.store, document, actor="http_api")
    except ImportRejected as rejected:
        problems = list(rejected.problems)
        if rejected.omitted:
            problems.append(f"… and {rejected.omitted} more problems")
        # 422 when the published schema refuses the document; 409 when only the rules between
        # its entries, or with the store, do (they are more than a schema can say).
        if await asyncio.to_thread(_matches_schema, ImportDocument, document):
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
            )
            for ticket in report.tickets
        ],
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


def accepted_language(request: web.Request, default: str) -> str:
    """The client's most preferred of our languages (``Accept-Language``), else the buyer's."""
    preferences = []
    for position, part in enumerate(request.headers.get("Accept-Language", "").split(",")):
        tag, _, quality = part.partition(";q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            continue
        if weight > 0:
            preferences.append((-weight, position, tag.strip()))
    return pick_language(*(tag for _, _, tag in sorted(preferences)), default)


async def post_sale(request: web.Request) -> web.Response:
    """The market sold a listing: the ticket leaves its order and the buyer is told."""
    api = request.app[SERVICES]
    listing_id = int(request.match_info["listing"])
    report = parse_body(SaleReport, await json_body(request, empty={}))
    if not 1 <= listing_id <= _MAX_ID:
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


async def get_event_tickets_csv(request: web.Request) -> web.StreamResponse:
    """Every ticket of an event as CSV (UTF-8 with BOM), streamed a page at a time with
    chunked transfer encoding: a million tickets never sit in memory
    (storage/reads/event_report.py).
    ``?lang=fr`` picks the language of the header, categories and states (default English)."""
    api = request.app[SERVICES]
    event_id = request.match_info["event"]
    language = request.query.get("lang", "en")
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
    "listing", {"type": "integer", "minimum": 1, "maximum": _MAX_ID}, examples=(1,)
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
        replies={200: Reply("The order", Order), 404: error("No such order")},
    ),
    Route(
        "POST",
        r"/api/resale/{listing:[0-9]+}/sold",
        "The resale market sold a listing: complete the sale",
        handler=post_sale,
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


def api_routes() -> list[Route]:
    """Every route of the API: the shop's (``ROUTES``) and the gate's."""
    from bot.http import gate_api  # it builds on this module

    return [*ROUTES, *gate_api.ROUTES]


def webhook_route(path: str, handler: Handler) -> Route:
    """The route Telegram POSTs updates to (webhook mode only)."""
    return Route(
        "POST",
        path,
        "Telegram delivers an update (webhook mode only)",
        handler=handler,
        secured=False,
        parameters=(
            Parameter("X-Telegram-Bot-Api-Secret-Token", {"type": "string"}, where="header"),
        ),
        request_schema={"type": "object"},
        replies={
            200: Reply("The update is queued"),
            400: Reply("The body is not a JSON object"),
            403: Reply("Missing or wrong secret token"),
        },
    )


def create_api(
    api: ApiServices,
    *,
    max_body: int = MAX_BODY_BYTES,
    webhook: tuple[str, Handler] | None = None,
    miniapp: web.Application | None = None,
    routes: Sequence[Route] | None = None,
) -> web.Application:
    """The aiohttp application of the API (``routes``, by default every route of the API and the
    gate); with ``webhook`` (path, handler) it also receives Telegram's updates on that path (the
    handler checks Telegram's secret itself); with ``miniapp``, it serves that application under
    ``/app/``."""
    routes = [*(api_routes() if routes is None else routes),
              *([webhook_route(*webhook)] if webhook is not None else [])]
    open_paths = OPEN_PATHS | {route.path for route in routes if not route.secured}
    app = web.Application(client_max_size=max_body, middlewares=_middlewares(open_paths))
    app[SERVICES] = api
    app[BODY_LIMIT] = max_body
    app[DOCUMENT] = openapi_document(routes)
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler, name=route.name)
    if miniapp is not None:
        async def to_miniapp(request: web.Request) -> web.Response:
            query = f"?{request.query_string}" if request.query_string else ""
            raise web.HTTPPermanentRedirect(MINIAPP_PREFIX + query)

        # Before the sub-application, which would otherwise answer its bare prefix with 404.
        app.router.add_get(MINIAPP_PREFIX.rstrip("/"), to_miniapp)
        app.add_subapp(MINIAPP_PREFIX, miniapp)
    return app
