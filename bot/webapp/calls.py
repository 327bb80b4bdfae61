"""What every Mini App call shares, below the modules of its routes (``routes``, ``held_routes``,
``gate_routes``): the services it is given, the initData check every JSON call passes first,
the user's language, and reading ids and bodies from requests."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web

from bot.http.kernel import JsonRefused, read_json
from bot.webapp import screens
from bot.webapp.init_data import (
    InitDataRefused,
    WebAppUser,
    claimed_language,
    verify_init_data,
)
from locales import Translator, translator, user_language
from storage import services
from storage.db.store import Store
from storage.errors import N_

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024
TELEGRAM_SCRIPT = "https://telegram.org/js/telegram-web-app.js"
_MAX_ID = 2**31 - 1
UNREADABLE = N_("This request could not be read. Please open the page from the bot again.")


@dataclass
class MiniAppServices:
    """What the Mini App needs from the rest of the bot."""

    store: Store
    bot_token: str
    bot_username: Callable[[], str]
    # How old an initData may be, in seconds (TICKETBOT_WEBAPP_AUTH_MAX_AGE).
    max_age: int = 3600
    support_contact: str | None = None
    # Called after a change that queued chat news or mail, to wake the background worker.
    after_change: Callable[[], None] = lambda: None
    # Where the page loads Telegram's script from; the demo serves a local stand-in.
    telegram_script: str = TELEGRAM_SCRIPT
    # Who may open the gate view (TICKETBOT_STAFF_IDS).
    staff_ids: frozenset[int] = frozenset()


SERVICES = web.AppKey("ticketbot_miniapp_services", MiniAppServices)
Handler = Callable[[web.Request, WebAppUser], Awaitable[web.Response]]


def json_error(status: int, error: str, message: str, field: str | None = None) -> web.Response:
    return web.json_response({"error": error, "message": message, "field": field}, status=status)


def authenticated(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Check the request's initData first; a forged, altered or stale one gets 401."""

    async def checked(request: web.Request) -> web.Response:
        mini = request.app[SERVICES]
        scheme, _, init_data = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        try:
            if scheme.lower() != "tma":
                raise InitDataRefused("no initData")
            user = verify_init_data(init_data.strip(), mini.bot_token, max_age=mini.max_age)
        except InitDataRefused as refused:
            log.info("Mini App call refused: %s", refused)
            t = translator(claimed_language(init_data))
            return json_error(401, "unauthorized", t.gettext(screens.PAGE_STRINGS["error_auth"]))
        try:
            return await handler(request, user)
        except BodyUnreadable as unreadable:
            t = await user_translator(mini.store, user)
            return json_error(unreadable.refused.status, unreadable.refused.error,
                              t.gettext(UNREADABLE))

    return checked


async def user_translator(store: Store, user: WebAppUser, order_language: str | None = None,
                      chosen: str | None = None) -> Translator:
    """The user's language, as in chat: their choice, their app's, the order's."""
    if chosen is None:
        known = await services.load_user(store, user.id)
        chosen = known.chosen_language if known else None
    return translator(user_language(chosen, user.language_code, order_language))


def parse_id(value: Any) -> int | None:
    text = str(value or "")
    if text.isdigit() and len(text) <= 10 and 0 < int(text) <= _MAX_ID:
        return int(text)
    return None


class BodyUnreadable(Exception):
    """A body no page of ours sends (not JSON, nested too deep, a number no field holds):
    ``authenticated`` answers it in the user's language, with ``read_json``'s status."""

    def __init__(self, refused: JsonRefused) -> None:
        super().__init__(refused.message)
        self.refused = refused


async def read_body(request: web.Request) -> dict[str, Any]:
    """The call's JSON object; a body that is JSON but no object reads as empty (the route
    then names what is missing)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY,
                                            actual_size=request.content_length)
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = read_json(raw)
    except JsonRefused as refused:
        raise BodyUnreadable(refused) from None
    return body if isinstance(body, dict) else {}
