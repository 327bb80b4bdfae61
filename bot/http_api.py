"""The HTTP API (aiohttp): the ticket shop pushes orders and reads them back, the resale market
reports sales; plus the health check, Prometheus metrics and the OpenAPI document.

Routes other than ``/healthz``, ``/metrics`` and ``/api/openapi.json`` need the bearer token
``TICKETBOT_API_TOKEN``, compared in constant time; without a configured token they refuse
every call. Errors are JSON objects naming what is wrong (see ``bot/openapi.py``).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import hdrs, web

from bot.metrics import CONTENT_TYPE, Metrics
from bot.openapi import openapi_document
from locales import pick_language, translator, words_in
from storage import services
from storage.database import Store
from storage.errors import Refusal
from storage.health import database_reachable
from storage.importer import ImportRejected, import_document
from storage.order_report import OrderReport, order_report
from storage.resale import complete_sale

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024
OPEN_PATHS = frozenset({"/healthz", "/metrics", "/api/openapi.json"})
_PRICE = re.compile(r"\d{1,10}(?:\.\d{1,10})?")
_MAX_ID = 2**31 - 1
# How refusals of a sale map to HTTP: what does not exist, what changed, what is invalid.
_SALE_STATUS = {"listing_not_found": 404, "listing_not_live": 409, "ticket_changed": 409}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ApiServices:
    """What the API needs from the rest of the bot."""

    store: Store
    api_token: str | None
    bot_username: Callable[[], str]
    metrics: Metrics
    bot_running: Callable[[], bool] = lambda: True
    # Called after a change that queued chat news or mail, to wake the background worker.
    after_change: Callable[[], None] = lambda: None


SERVICES = web.AppKey("ticketbot_api_services", ApiServices)
BODY_LIMIT = web.AppKey("ticketbot_api_body_limit", int)


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
    if request.path in open_paths:
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
        refusal = _allowed(request, request.app[SERVICES].api_token, open_paths)
        return refusal if refusal is not None else await handler(request)

    return [json_errors, bearer_token]


# --- bodies ----------------------------------------------------------------------------------


async def json_body(request: web.Request, *, optional: bool = False) -> Any:
    """The request's JSON body (None if empty and ``optional``); raises ``BodyRefused``."""
    limit = request.app[BODY_LIMIT]
    if request.content_length is not None and request.content_length > limit:
        raise BodyRefused(_too_large(limit))
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyRefused(_too_large(limit)) from None
    if not raw.strip() and optional:
        return None
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


# --- routes ----------------------------------------------------------------------------------


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
        return problem(
            422,
            "invalid_document",
            "The document was refused; nothing was imported.",
            problems=problems,
        )
    links = await services.create_order_links(api.store, report.order_numbers)
    username = api.bot_username()
    created = report.events_created + report.orders_created + report.tickets_created
    return web.json_response(
        {
            "created": {
                "events": report.events_created,
                "events_updated": report.events_updated,
                "orders": report.orders_created,
                "tickets": report.tickets_created,
            },
            "orders": [
                {"number": number, "link": f"https://t.me/{username}?start={links[number]}"}
                for number in report.order_numbers
            ],
        },
        status=201 if created else 200,
    )


def order_json(report: OrderReport, language: str) -> dict[str, Any]:
    """The order as JSON, its event names and categories in ``language`` (see ``words_in``)."""
    return {
        "number": report.number,
        "buyer": {
            "name": report.buyer_name,
            "email": report.buyer_email,
            "language": report.language,
        },
        "tickets": [
            {
                "ref": ticket.ref,
                "event": ticket.event_id,
                "event_name": words_in(ticket.event_name, language),
                "category": words_in(ticket.category, language),
                "price": str(ticket.price),
                "state": ticket.state.value,
                "holder": (
                    {"name": ticket.holder_name, "email": ticket.holder_email}
                    if ticket.holder_name
                    else None
                ),
                "barcode": ticket.barcode,
            }
            for ticket in report.tickets
        ],
    }


async def get_order(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    try:
        report = await order_report(request.app[SERVICES].store, number)
    except Refusal:
        return problem(404, "order_not_found", f"There is no order {number}.")
    language = _accepted_language(request, report.language)
    return web.json_response(order_json(report, language), headers={"Content-Language": language})


def _accepted_language(request: web.Request, default: str) -> str:
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


def _sale_price(body: Any) -> Decimal | None:
    """The price the market reports, if any; raises ``BodyRefused`` for a wrong body."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise BodyRefused(
            problem(
                422,
                "invalid_body",
                "The body was refused.",
                problems=['the body must be a JSON object such as {"price": "45.00"}'],
            )
        )
    unknown = [f"{key}: not a known key" for key in body if key != "price"]
    value = body.get("price")
    if value is not None and not (isinstance(value, str) and _PRICE.fullmatch(value)):
        unknown.append(f'price: must be a decimal string like "45.00" (got {json.dumps(value)})')
    if unknown:
        raise BodyRefused(problem(422, "invalid_body", "The body was refused.", problems=unknown))
    return Decimal(value) if value is not None else None


async def post_sale(request: web.Request) -> web.Response:
    """The market sold a listing: the ticket leaves its order and the buyer is told."""
    api = request.app[SERVICES]
    listing_id = int(request.match_info["listing"])
    price = _sale_price(await json_body(request, optional=True))
    if listing_id > _MAX_ID:
        return problem(404, "listing_not_found", refusal_message(Refusal("listing_not_found")))
    try:
        sale = await complete_sale(api.store, listing_id, price=price)
    except Refusal as refusal:
        status = _SALE_STATUS.get(refusal.code, 422 if refusal.code.startswith("price") else 409)
        message = refusal_message(refusal)
        return problem(
            status, refusal.code, message, problems=[f"price: {message}"] if status == 422 else None
        )
    api.after_change()
    return web.json_response(
        {
            "listing": sale.listing_id,
            "ticket": sale.ticket_ref,
            "price": str(sale.price),
            "currency": sale.currency,
            "status": "sold",
        }
    )


async def get_health(request: web.Request) -> web.Response:
    api = request.app[SERVICES]
    checks = {"database": await database_reachable(api.store), "bot": api.bot_running()}
    healthy = all(checks.values())
    return web.json_response(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )


async def get_metrics(request: web.Request) -> web.Response:
    api = request.app[SERVICES]
    return web.Response(
        body=await api.metrics.render(api.store), headers={hdrs.CONTENT_TYPE: CONTENT_TYPE}
    )


def create_api(
    api: ApiServices, *, max_body: int = MAX_BODY_BYTES, webhook: tuple[str, Handler] | None = None
) -> web.Application:
    """The aiohttp application of the API; with ``webhook`` (path, handler) it also receives
    Telegram's updates on that path (the handler checks Telegram's secret itself)."""
    webhook_path = webhook[0] if webhook is not None else None
    open_paths = OPEN_PATHS | ({webhook_path} if webhook_path else set())
    app = web.Application(client_max_size=max_body, middlewares=_middlewares(open_paths))
    app[SERVICES] = api
    app[BODY_LIMIT] = max_body
    document = openapi_document(webhook_path)

    async def get_openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_post("/api/orders", post_orders)
    # An order number may contain "/": clients send it percent-encoded (%2F), aiohttp decodes.
    app.router.add_get("/api/orders/{number}", get_order)
    app.router.add_post(r"/api/resale/{listing:\d+}/sold", post_sale)
    app.router.add_get("/api/openapi.json", get_openapi)
    app.router.add_get("/healthz", get_health)
    app.router.add_get("/metrics", get_metrics)
    if webhook is not None:
        app.router.add_post(*webhook)
    return app
