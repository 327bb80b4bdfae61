"""The gate's routes of the HTTP API: the barcode change feed scanners poll, the event's entry
keys and voids (what a scanner needs to decide offline), the scan, and the upload of scans made
offline.

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
from typing import Annotated, Any, Literal

from aiohttp import hdrs, web
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

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
from storage import barcode_feed, entry_codes
from storage.barcode_feed import BadCursor, Cursor, UnknownEvent
from storage.db.store import utcnow
from storage.models import EntryCode, Event
from storage.services import entry_keys
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

    barcode: str = Field(min_length=1, max_length=scans.MAX_CODE,
                         description=("the barcode, a static event's signed code or a "
                                      "rotating event's live code, as read"))
    gate: str = Field(min_length=1, max_length=scans.MAX_GATE,
                      description="the gate's name, e.g. `north-2`")
    nonce: str = Field(min_length=1, max_length=scans.MAX_NONCE,
                       description="unique per scan and scanner; a retry sends it again")
    event: str | None = Field(None, max_length=100, description=(
        "the event this gate admits to: a barcode of another event is `unknown` here"))


class ScanResponse(BaseModel):
    """The answer: `ok` (let in), `already_scanned` (with the first entry's time and gate),
    `void` (an old barcode of a ticket that changed holder or left its order), `stale` (a
    rotating ticket's code past its time, or a still code of it: a picture, not the live
    screen), `unknown` (also a signed code no key of ours signed)."""

    model_config = ConfigDict(title="ScanResponse")

    result: Literal["ok", "already_scanned", "void", "stale", "unknown"]
    barcode: str
    ticket: str | None = Field(None, description="the ticket's reference")
    event: str | None = None
    category: str | None = None
    holder: str | None = Field(None, description="the name on the ticket, if personalised")
    scanned_at: dt.datetime | None = Field(None, description="the first entry (ok, already)")
    gate: str | None = Field(None, description="the gate of the first entry")
    voided_at: dt.datetime | None = None
    conflict: bool = Field(False, description=(
        "uploaded offline scans only: another device let this ticket in too"))
    other_gate: str | None = Field(None, description="the other entry's gate (conflict)")
    other_scanned_at: dt.datetime | None = Field(None, description="the other entry's time")


MAX_OFFLINE_BATCH = 1_000


def _text_only(value: Any) -> Any:
    # A JSON number is no moment here (pydantic would read it as Unix seconds).
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date and time with its offset")
    return value


class OfflineScan(BaseModel):
    """A scan a scanner made without network: what it read, where, its nonce, and when."""

    model_config = ConfigDict(extra="forbid", title="OfflineScan")

    barcode: str = Field(min_length=1, max_length=scans.MAX_CODE)
    gate: str = Field(min_length=1, max_length=scans.MAX_GATE)
    nonce: str = Field(min_length=1, max_length=scans.MAX_NONCE)
    scanned_at: Annotated[AwareDatetime, BeforeValidator(_text_only)] = Field(
        description="when it was scanned: RFC 3339, with its UTC offset")


class OfflineScans(BaseModel):
    """Scans made offline, uploaded once the network is back; sending them again is harmless."""

    model_config = ConfigDict(extra="forbid", title="OfflineScans")

    scans: list[OfflineScan] = Field(min_length=1, max_length=MAX_OFFLINE_BATCH)
    event: str | None = Field(None, max_length=100)


class OfflineAnswers(BaseModel):
    """Each scan's answer, in the order sent, as it would have been at its `scanned_at`."""

    model_config = ConfigDict(title="OfflineAnswers")

    answers: list[ScanResponse]
    conflicts: int = Field(description="how many answers are flagged `conflict`")


class EntryKeyOut(BaseModel):
    model_config = ConfigDict(title="EntryKey")

    key_id: str
    public_key: str = Field(description="Ed25519 public key, raw 32 bytes, base64url")
    step_secret: str = Field(description="the secret step keys are derived from, base64url")
    retired: bool


class EntryKit(BaseModel):
    """What a scanner keeps to decide offline, static and rotating events alike: the event's
    policy, its keys (a rotating event's retired ones while they still verify codes shown with
    them; every one of a static event, whose printed codes outlive rotations), and the tokens of
    every voided barcode."""

    model_config = ConfigDict(title="EntryKit")

    event: str
    code: Literal["static", "rotating"]
    period_seconds: int
    tolerance_steps: int
    keys: list[EntryKeyOut]
    voided: list[str] = Field(description="tokens of voided barcodes")
    server_time: dt.datetime


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


async def post_scans(request: web.Request) -> web.Response:
    body = await json_body(request)
    try:
        batch = OfflineScans.model_validate(body)
    except ValidationError as error:
        return problem(422, "invalid_body", "The scans were refused.", problems=_problems(error))
    store, device = request.app[SERVICES].store, request[GATE_DEVICE]
    language = accepted_language(request, GATE_LANGUAGE)
    try:
        decided = await scans.scan_offline_batch(store, [
            scans.OfflineScan(scan.barcode, scan.gate, scan.nonce,
                              scan.scanned_at.astimezone(dt.UTC)) for scan in batch.scans],
            device, event_id=batch.event)
    except scans.NonceReused as reused:
        return problem(409, "nonce_reused", f"The nonce {reused.args[0]!r} was already used "
                       "by this scanner for another barcode; nothing of this upload was "
                       "recorded.")
    answers = [_scan_json(answer, language) for answer in decided]
    return web.json_response(
        {"answers": answers, "conflicts": sum(1 for each in answers if each["conflict"])},
        headers={"Content-Language": language})


async def get_entry_kit(request: web.Request) -> web.Response:
    event_id = request.match_info["event"]
    store = request.app[SERVICES].store
    async with store.read() as session:
        event = await session.get(Event, event_id)
    if event is None:
        return problem(404, "event_not_found", f"There is no event {event_id}.")
    async with store.read_connection() as connection:
        has_key = bool(await entry_keys.gate_keys(connection, event_id))
    if not has_key:  # static and rotating codes alike are signed by the event's key
        async with store.write_connection() as connection:
            await entry_keys.live_key(connection, event_id, utcnow())
    async with store.read_connection() as connection:
        keys = await entry_keys.gate_keys(connection, event_id,
                                          static=event.entry_code == EntryCode.STATIC)
        voided = await entry_keys.voided_tokens(connection, event_id)
    return web.json_response({
        "event": event_id, "code": str(event.entry_code),
        "period_seconds": event.entry_period_seconds,
        "tolerance_steps": entry_codes.TOLERANCE_STEPS,
        "keys": [{"key_id": key.key_id, "public_key": entry_codes.b64(key.public_key),
                  "step_secret": entry_codes.b64(key.step_secret), "retired": key.retired}
                 for key in keys],
        "voided": voided, "server_time": utcnow().isoformat(),
    })


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
        "conflict": answer.conflict, "other_gate": answer.other_gate,
        "other_scanned_at": (answer.other_scanned_at.isoformat()
                             if answer.other_scanned_at else None),
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
    Route(
        "GET",
        "/api/events/{event}/entry",
        "What a scanner keeps to decide offline: the event's keys and every void",
        handler=_gate_only(get_entry_kit),
        scheme="gate",
        name=GATE_ROUTE_PREFIX + "entry",
        parameters=(
            Parameter("event", {"type": "string", "minLength": 1, "maxLength": 100},
                      examples=("harbour-lights-2027",)),
        ),
        replies={
            200: Reply("The entry policy, the keys and the voided tokens", EntryKit),
            404: error("No such event"),
        },
    ),
    Route(
        "POST",
        "/api/scans",
        "Upload scans made offline: each decided as at its time, once per nonce",
        handler=_gate_only(post_scans),
        scheme="gate",
        name=GATE_ROUTE_PREFIX + "scans",
        request=OfflineScans,
        replies={
            200: Reply("Each scan's answer; double entries flagged `conflict`", OfflineAnswers),
            409: error("A nonce was used before by this scanner for another barcode"),
        },
    ),
]
