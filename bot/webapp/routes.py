"""The Mini App's server side: its page, its static files and its JSON calls, under ``/app/``.

Every JSON call carries the raw ``initData`` in ``Authorization: tma <initData>``; it is checked
(``init_data.verify_init_data``) before anything else, and the Telegram user id it names is the
only identity the calls know. They call the same services as the chat, with the same access
rules (only orders this user may manage). Every call that changes something carries a fresh
``action_id`` and is applied once (``storage/services/webapp_actions.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.webapp import gate_routes, held_routes, screens
from bot.webapp.calls import (
    MAX_BODY,
    SERVICES,
    MiniAppServices,
    authenticated,
    json_error,
    parse_id,
    read_body,
    user_translator,
)
from bot.webapp.init_data import WebAppUser
from conversations.presentation.actions import (
    ACTIONS,
    ActionInput,
    Asks,
    TicketAction,
    offered_names,
)
from locales import LANGUAGES, Translator, translator
from storage import services
from storage.errors import N_, Refusal
from storage.models import TicketState
from storage.services import exchange, resale
from storage.services.webapp_actions import ACTION_ID, ActionReplayed, once

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# A stand-in for Telegram's script, for a browser outside Telegram (the demo, the tests):
# served only when the page is told to load it.
STAND_IN = Path(__file__).parent / "stand_in" / "telegram-web-app.js"
STAND_IN_URL = "stand-in/telegram-web-app.js"
REPLAYED = N_("This was already done.")


# --- reading -------------------------------------------------------------------------------


@authenticated
async def get_start(request: web.Request, user: WebAppUser) -> web.Response:
    """What the page needs to open: its words, the user's orders and tickets, and the order
    it was opened for (a ``startapp`` link's, the button's, or the only one)."""
    mini = request.app[SERVICES]
    home = await services.home(mini.store, user.id)
    wanted = parse_id(user.start_param) or parse_id(request.query.get("order"))
    if wanted is None and len(home.orders) == 1 and not home.held:
        wanted = home.orders[0].id
    order, refusal = None, None
    if wanted is not None:
        try:
            order = await services.order_overview(mini.store, user.id, wanted)
        except Refusal as refused:
            refusal = refused
    t = (await user_translator(mini.store, user, order.language, order.viewer_language or "")
         if order is not None else await user_translator(mini.store, user))
    return web.json_response({
        "language": t.language,
        "strings": screens.page_strings(t),
        "home": screens.home_json(home, t),
        "order": (screens.order_json(order, t, support_contact=mini.support_contact)
                  if order is not None else None),
        "notice": screens.refusal_json(refusal, t)["message"] if refusal else None,
        "staff": user.id in mini.staff_ids,
    })


@authenticated
async def get_order(request: web.Request, user: WebAppUser) -> web.Response:
    mini = request.app[SERVICES]
    order_id = parse_id(request.match_info["order"])
    try:
        if order_id is None:
            raise Refusal("not_found")
        order = await services.order_overview(mini.store, user.id, order_id)
    except Refusal as refusal:
        t = await user_translator(mini.store, user)
        return web.json_response(screens.refusal_json(refusal, t), status=404)
    t = await user_translator(mini.store, user, order.language, order.viewer_language or "")
    return web.json_response(screens.order_json(order, t, support_contact=mini.support_contact))


@authenticated
async def get_ticket(request: web.Request, user: WebAppUser) -> web.Response:
    mini = request.app[SERVICES]
    ticket_id = parse_id(request.match_info["ticket"])
    try:
        if ticket_id is None:
            raise Refusal("not_found")
        details = await services.ticket_details(mini.store, user.id, ticket_id)
        actions = details.ticket.actions
        bounds = (await resale.resale_bounds(mini.store, user.id, ticket_id)
                  if {"sell", "change_price"} & set(actions) else None)
        options = (await exchange.exchange_options(mini.store, user.id, ticket_id)
                   if "exchange" in actions else None)
        offered = await offered_names(mini.store, details)
    except Refusal as refusal:
        t = await user_translator(mini.store, user)
        return web.json_response(screens.refusal_json(refusal, t), status=404)
    t = await user_translator(mini.store, user, details.order.language,
                          details.order.viewer_language or "")
    body = screens.ticket_json(details, t, bounds=bounds, options=options, offered=offered)
    # The buyer's own ticket, in their hands: it can be shown (QR, PDF, calendar).
    body["held"] = (details.ticket.state == TicketState.COMPLETED
                    and details.ticket.holder_telegram_id == user.id)
    return web.json_response(body)


# --- acting --------------------------------------------------------------------------------


@dataclass
class Done:
    """What an action did, said in the user's language."""

    template: str
    params: dict[str, Any]
    link: str | None = None


async def _price(mini: MiniAppServices, user: WebAppUser, ticket_id: int, body: dict,
                 t: Translator) -> Decimal:
    """The price as typed, read in the user's locale ("45,50" or "45,50 €" in French); the
    services check it against the event's bounds."""
    bounds = await resale.resale_bounds(mini.store, user.id, ticket_id)
    try:
        return t.parse_money(str(body.get("price") or ""), bounds.currency)
    except ValueError:
        raise Refusal("price_invalid", min=bounds.minimum, max=bounds.maximum,
                      currency=bounds.currency) from None


async def _given(mini: MiniAppServices, user: WebAppUser, action: TicketAction,
                 ticket_id: int, body: dict, t: Translator) -> Any:
    """What the action asks for, read from the request's body as its form sends it."""
    if action.asks in (Asks.NAME, Asks.EMAIL):
        return str(body.get(action.asks.value, ""))
    if action.asks == Asks.PRICE:
        return await _price(mini, user, ticket_id, body, t)
    if action.asks == Asks.TARGET:
        target = str(body.get("event", ""))
        options = await exchange.exchange_options(mini.store, user.id, ticket_id)
        chosen = next((option for option in options if option.event.id == target), None)
        if chosen is None:
            raise Refusal("exchange_target_invalid")
        return chosen
    return None


async def _apply(mini: MiniAppServices, user: WebAppUser, action: TicketAction, ticket_id: int,
                 body: dict, t: Translator) -> Done:
    """One use case of the ticket's menu, through the same service as the chat's."""
    given = await _given(mini, user, action, ticket_id, body, t)
    outcome = await action.service(mini.store, ActionInput(user.id, ticket_id, given))
    link = (f"https://t.me/{mini.bot_username()}?start={outcome.claim_token}"
            if outcome.claim_token else None)
    return Done(action.done, outcome.params, link)


@authenticated
async def post_ticket_action(request: web.Request, user: WebAppUser) -> web.Response:
    mini = request.app[SERVICES]
    ticket_id = parse_id(request.match_info["ticket"])
    action = ACTIONS.get(request.match_info["action"])
    body = await read_body(request)
    action_id = str(body.get("action_id", ""))
    t = await user_translator(mini.store, user)
    if action is None or action.service is None:
        return json_error(404, "unknown_action", t.gettext(screens.PAGE_STRINGS["error_generic"]))
    if not ACTION_ID.fullmatch(action_id):
        return json_error(400, "no_action_id", t.gettext(screens.PAGE_STRINGS["error_generic"]))
    try:
        if ticket_id is None:
            raise Refusal("not_found")
        # Read first: the ticket's event and order give the language, the ref and currency.
        details = await services.ticket_details(mini.store, user.id, ticket_id)
        t = await user_translator(mini.store, user, details.order.language,
                              details.order.viewer_language or "")
        async with once(action_id, user.id, keep=_keep(mini)):
            done = await _apply(mini, user, action, ticket_id, body, t)
    except Refusal as refusal:
        status = 404 if refusal.code == "not_found" else (
            422 if refusal.code in screens.REFUSAL_FIELDS else 409)
        return web.json_response(screens.refusal_json(refusal, t), status=status)
    except ActionReplayed:
        return json_error(409, "replayed", t.gettext(REPLAYED))
    mini.after_change()
    order = await services.order_overview(mini.store, user.id, details.order.id)
    values = {"ref": details.ticket.ref, "currency": details.event.currency, **done.params}
    return web.json_response({
        "notice": t.fill(done.template, values),
        "link": done.link,
        "order": screens.order_json(order, t, support_contact=mini.support_contact),
    })


def _keep(mini: MiniAppServices) -> dt.timedelta:
    # An action id must outlive every initData that could carry it again.
    return dt.timedelta(seconds=mini.max_age + 2 * 60)


@authenticated
async def post_language(request: web.Request, user: WebAppUser) -> web.Response:
    """Remember the language chosen on an order's page, as the chat's language button does."""
    mini = request.app[SERVICES]
    body = await read_body(request)
    language, order_id = body.get("language"), parse_id(body.get("order_id"))
    action_id = str(body.get("action_id", ""))
    t = await user_translator(mini.store, user)
    if language not in LANGUAGES or order_id is None or not ACTION_ID.fullmatch(action_id):
        return json_error(400, "bad_request", t.gettext(screens.PAGE_STRINGS["error_generic"]))
    try:
        async with once(action_id, user.id, keep=_keep(mini)):
            await services.choose_language(mini.store, user.id, language, order_id=order_id)
    except Refusal as refusal:
        return web.json_response(screens.refusal_json(refusal, t), status=404)
    except ActionReplayed:
        return json_error(409, "replayed", t.gettext(REPLAYED))
    t = translator(language)
    return web.json_response({
        "language": language,
        "notice": t.gettext("I will speak {language} with you from now on.").format(
            language=t.language_name(language)),
    })


# --- the page ------------------------------------------------------------------------------

# The page talks to its own server only; Telegram's script is the one outside source.
_CSP = ("default-src 'none'; script-src 'self' {script}; style-src 'self'; "
        "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'")


async def get_page(request: web.Request) -> web.Response:
    mini = request.app[SERVICES]
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    script = mini.telegram_script
    external = script.startswith("https://")
    return web.Response(
        text=html.replace("{{telegram_script}}", script), content_type="text/html",
        headers={"Content-Security-Policy": _CSP.format(script=script if external else ""),
                 "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                 "X-Content-Type-Options": "nosniff"})


def create_miniapp(mini: MiniAppServices) -> web.Application:
    """The Mini App as an aiohttp application, to be mounted at ``/app/``."""
    app = web.Application(client_max_size=MAX_BODY)
    app[SERVICES] = mini
    app.router.add_get("/", get_page)
    app.router.add_get("/api/start", get_start)
    app.router.add_get("/api/orders/{order}", get_order)
    app.router.add_get("/api/tickets/{ticket}", get_ticket)
    app.router.add_post("/api/tickets/{ticket}/{action}", post_ticket_action)
    app.router.add_post("/api/language", post_language)
    app.router.add_static("/static/", STATIC, append_version=False)
    # The holder's ticket and the staff's gate, in modules of their own.
    held_routes.add_routes(app)
    gate_routes.add_routes(app)
    if mini.telegram_script == STAND_IN_URL:
        async def get_stand_in(request: web.Request) -> web.FileResponse:
            return web.FileResponse(STAND_IN)

        app.router.add_get("/" + STAND_IN_URL, get_stand_in)
    return app
