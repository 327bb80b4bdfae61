"""The HTTP API assembled: which route sets are mounted (the shop's, the gate's, Telegram's
webhook, the Mini App under ``/app/``), the middlewares of the kernel around them, and the
OpenAPI document made from the same list (``bot/http/openapi.py``). ``bot/http/server.py`` runs
it."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from bot.http import gate_api, shop_api, webhook_api
from bot.http.kernel import (
    BODY_LIMIT,
    DOCUMENT,
    MAX_BODY_BYTES,
    MINIAPP_PREFIX,
    OPEN_PATHS,
    SERVICES,
    ApiServices,
    Handler,
    middlewares,
)
from bot.http.openapi import MAX_BODY_TEXT, Parameter, Reply, Route, openapi_document

FAVICON_PATH = "/favicon.ico"


def api_routes() -> list[Route]:
    """Every route of the API: the shop's, its webhooks' and the gate's."""
    return [*shop_api.ROUTES, *webhook_api.ROUTES, *gate_api.ROUTES]


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
            400: Reply("The body is not a Telegram update: not JSON, not an object, or "
                       "nested too deep"),
            403: Reply("Missing or wrong secret token"),
            413: Reply(f"The body is larger than the limit ({MAX_BODY_TEXT})"),
            422: Reply("The body holds a number no field takes or a string that is not text"),
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
    if miniapp is not None:
        open_paths |= {FAVICON_PATH}
    app = web.Application(client_max_size=max_body, middlewares=middlewares(open_paths))
    app[SERVICES] = api
    app[BODY_LIMIT] = max_body
    app[DOCUMENT] = openapi_document(routes)
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler, name=route.name)
    if miniapp is not None:
        async def to_miniapp(request: web.Request) -> web.Response:
            query = f"?{request.query_string}" if request.query_string else ""
            raise web.HTTPPermanentRedirect(MINIAPP_PREFIX + query)

        async def to_favicon(request: web.Request) -> web.Response:
            raise web.HTTPPermanentRedirect(MINIAPP_PREFIX + "static/favicon.ico")

        # Before the sub-application, which would otherwise answer its bare prefix with 404.
        app.router.add_get(MINIAPP_PREFIX.rstrip("/"), to_miniapp)
        # Browsers ask the site's root for its icon, whatever page they show: the Mini App's.
        app.router.add_get(FAVICON_PATH, to_favicon)
        app.add_subapp(MINIAPP_PREFIX, miniapp)
    return app
