"""The gate's routes of the HTTP API: the barcode change feed scanners poll, and the scan.

They open with a gate token (``TICKETBOT_GATE_TOKEN``, one per scanner, comma-separated) and
nothing else does: the shop's API token does not open them, and a gate token opens no other
route, so a lost scanner can neither import orders nor read buyers' data. With no gate token
configured they refuse every call (403). Each scan records which token made it, as a digest
(``gate-`` and 12 hex digits of its SHA-256), never the token.

The bodies are pydantic models, which ``bot/http/openapi.py`` puts into the served document.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Any, Literal

from aiohttp import hdrs, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.http.kernel import (
    GATE_ROUTE_PREFIX,
    SERVICES,
    Handler,
    accepted_language,
    json_body,
    problem,
)
from bot.http.openapi import Parameter, Reply, Route, error
from locales import DEFAULT_LANGUAGE, words_in
from storage import barcode_feed
from storage.barcode_feed import BadCursor, Cursor, UnknownEvent
from storage.services import gate as scans

GATE_DEVICE = web.RequestKey("gate_device", str)
_LIMIT = re.compile(r"\d{1,6}")
_CURSOR_SHAPE = re.compile(r"(s\d{1,18}\.)?\d{1,18}")
# The language of categories given per language, unless the scanner asks for another
# (Accept-Language): gate devices are set up once, in the organiser's language.
GATE_LANGUAGE = DEFAULT_LANGUAGE


# --- bodies -------------------------------------------------------------------------------------


class ScanRequest(BaseModel):
    """A scan: the barcode read, the gate it was read at, and a nonce the scanner draws per
    scan and repeats when it retries that scan."""

    model_config = ConfigDict(extra="forbid", title="ScanRequest")

    barcode: str = Field(min_length=1, max_length=scans.MAX_BARCODE)
    gate: str = Field(min_length=1, max_length=scans.MAX_GATE,
                      description="the gate's name, e.g. `north-2`")
    nonce: str = Field(min_length=1, max_length=scans.MAX_NONCE,
                       description="unique per scan and scanner; a retry sends it again")
    event: str | None = Field(None, max_length=100, description=(
        "the event this gate admits to: a barcode of another event is `unknown` here"))


class ScanResponse(BaseModel):
    """The answer: `ok` (let in), `already_scanned` (with the first entry's time and gate),
    `void` (an old barcode of a ticket that changed holder or left its order), `unknown`."""

    model_config = ConfigDict(title="ScanResponse")

    result: Literal["ok", "already_scanned", "void", "unknown"]
    barcode: str
    ticket: str | None = Field(None, description="the ticket's reference")
    event: str | None = None
    category: str | None = None
    holder: str | None = Field(None, description="the name on the ticket, if personalised")
    scanned_at: dt.datetime | None = Field(None, description="the first entry (ok, already)")
    gate: str | None = Field(None, description="the gate of the first entry")
    voided_at: dt.datetime | None = None


class FeedBarcode(BaseModel):
    model_config = ConfigDict(title="FeedBarcode")

    barcode: str
    ticket: str = Field(description="the ticket's reference")
    category: str
    holder: str | None = Field(description="the name on the ticket, if personalised")


class BarcodeFeed(BaseModel):
    """A page of an event's barcode feed. Apply `valid` (add) then `voided` (remove), and ask
    again with `since=<cursor>`: at once while `more` is true, else at your polling interval."""

    model_config = ConfigDict(title="BarcodeFeed")

    event: str
    cursor: str = Field(description="opaque; pass it as `since` next time")
    more: bool
    snapshot: bool = Field(description="this page is part of a snapshot (no `since` yet)")
    valid: list[FeedBarcode]
    voided: list[str]




# --- tokens -------------------------------------------------------------------------------------


def device_of(token: str) -> str:
    """The identifier a gate token's scans are recorded under; the token cannot be read back
    from it."""
    return "gate-" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _gate_device(request: web.Request, tokens: Sequence[str]) -> str | web.Response:
    if not tokens:
        return problem(403, "gate_disabled",
                       "The gate API is disabled: no TICKETBOT_GATE_TOKEN is configured.")
    scheme, _, credentials = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    given = credentials.strip().encode()
    found = None
    for token in tokens:  # every token compared, in constant time each
        if hmac.compare_digest(given, token.encode()) and scheme.lower() == "bearer":
            found = token
    if found is None:
        return problem(401, "unauthorized", "A valid gate token is required.",
                       headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="ticketbot-gate"'})
    return device_of(found)


def _gate_only(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        device = _gate_device(request, request.app[SERVICES].gate_tokens)
        if isinstance(device, web.Response):
            return device
        request[GATE_DEVICE] = device
        return await handler(request)

    return guarded


# --- routes -------------------------------------------------------------------------------------


def _problems(error: ValidationError) -> list[str]:
    return [f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}"
            for item in error.errors()]


async def post_scan(request: web.Request) -> web.Response:
    body = await json_body(request)
    try:
        scan = ScanRequest.model_validate(body)
    except ValidationError as error:
        return problem(422, "invalid_body", "The scan was refused.", problems=_problems(error))
    try:
        answer = await scans.scan_barcode(request.app[SERVICES].store, scan.barcode, scan.gate,
                                         scan.nonce, request[GATE_DEVICE],
                                         event_id=scan.event)
    except scans.NonceReused:
        return problem(409, "nonce_reused",
                       "This nonce was already used by this scanner for another barcode.")
    language = accepted_language(request, GATE_LANGUAGE)
    return web.json_response(_scan_json(answer, language), headers={"Content-Language": language})


def _scan_json(answer: scans.ScanAnswer, language: str) -> dict[str, Any]:
    """The answer; a category given per language in ``language``."""
    return {
        "result": answer.result.value, "barcode": answer.barcode, "ticket": answer.ticket_ref,
        "event": answer.event_id,
        "category": words_in(answer.category, language) if answer.category else None,
        "holder": answer.holder_name,
        "scanned_at": answer.scanned_at.isoformat() if answer.scanned_at else None,
        "gate": answer.gate,
        "voided_at": answer.voided_at.isoformat() if answer.voided_at else None,
    }


async def get_barcodes(request: web.Request) -> web.Response:
    event_id = request.match_info["event"]
    since, limit = request.query.get("since"), request.query.get("limit")
    try:
        cursor = Cursor.parse(since) if since is not None else None
    except BadCursor:
        # Shaped like a cursor but never handed out (a snapshot position past its head): the
        # documented 409, as for a cursor of another store; anything else is no cursor at all.
        return problem(409 if _CURSOR_SHAPE.fullmatch(since) else 400, "bad_cursor",
                       "The cursor is not one this feed handed out; start without `since`.")
    if limit is not None and not (_LIMIT.fullmatch(limit)
                                  and 1 <= int(limit) <= barcode_feed.MAX_PAGE):
        return problem(400, "bad_limit",
                       f"`limit` must be a whole number from 1 to {barcode_feed.MAX_PAGE}.")
    size = int(limit) if limit is not None else barcode_feed.DEFAULT_PAGE
    try:
        async with request.app[SERVICES].store.read_connection() as connection:
            page = await barcode_feed.read_page(connection, event_id, cursor, size)
    except UnknownEvent:
        return problem(404, "event_not_found", f"There is no event {event_id}.")
    language = accepted_language(request, GATE_LANGUAGE)
    return web.json_response(headers={"Content-Language": language}, data={
        "event": page.event_id, "cursor": str(page.cursor), "more": page.more,
        "snapshot": page.snapshot,
        "valid": [{"barcode": entry.barcode, "ticket": entry.ticket_ref,
                   "category": words_in(entry.category, language), "holder": entry.holder_name}
                  for entry in page.valid],
        "voided": page.voided,
    })


ROUTES: list[Route] = [
    Route(
        "GET",
        "/api/events/{event}/barcodes",
        "The event's barcode feed: valid barcodes and those voided since a cursor",
        handler=_gate_only(get_barcodes),
        scheme="gate",
        name=GATE_ROUTE_PREFIX + "barcodes",
        parameters=(
            Parameter("event", {"type": "string", "minLength": 1, "maxLength": 100},
                      examples=("dreamfest-2027-sat",)),
            Parameter("since", {"type": "string", "pattern": f"^{_CURSOR_SHAPE.pattern}$"},
                      where="query", required=False,
                      description="the `cursor` of the previous page; without it, a snapshot "
                                  "of the valid barcodes, paged, then the changes after it"),
            Parameter("limit", {"type": "integer", "minimum": 1,
                                "maximum": barcode_feed.MAX_PAGE,
                                "default": barcode_feed.DEFAULT_PAGE},
                      where="query", required=False),
        ),
        replies={
            200: Reply("A page of the feed: every barcode issued or voided after the cursor, "
                       "in the order they were committed, each exactly once", BarcodeFeed),
            400: error("`since` is not shaped like a cursor, or `limit` is out of range"),
            404: error("No such event"),
            409: error("`since` is shaped like a cursor but this feed never handed it out "
                       "(`bad_cursor`): start again without `since`"),
        },
    ),
    Route(
        "POST",
        "/api/scan",
        "Scan a barcode at the gate: exactly one `ok` per ticket",
        handler=_gate_only(post_scan),
        scheme="gate",
        name=GATE_ROUTE_PREFIX + "scan",
        request=ScanRequest,
        replies={
            200: Reply("The answer; a scanned ticket is used and changes no more", ScanResponse),
            409: error("The nonce was used before by this scanner for another barcode"),
        },
    ),
]
