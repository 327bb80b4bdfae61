"""The staff's gate view in the Mini App: Telegram's QR scanner in the page, and for each code
the very scan the HTTP gate API makes (``storage.services.gate.scan_barcode``: one ``ok`` per
ticket,
nonce-idempotent, every scan in the audit history).

Only Telegram users in ``TICKETBOT_STAFF_IDS`` may use it. Everyone else gets 403 from both
calls and nothing is scanned or recorded; the page does not even offer them the view. The
device a scan is recorded under is ``staff-<telegram id>``: who scanned, and the key the nonces
are kept under (each staff member is a scanner of their own).

Offline, the page decides by itself: while online it keeps the event's entry kit (keys and voided
tokens, ``GET /api/gate/entry``) and checks signed codes, static and live, with it when the
network is gone, queueing each scan; back online it uploads the queue (``POST
/api/gate/scans``, the gate service's ``scan_offline``) and shows what the server said, double
entries included.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from bot.webapp.calls import (
    SERVICES,
    MiniAppServices,
    authenticated,
    json_error,
    read_body,
    user_translator,
)
from bot.webapp.init_data import WebAppUser
from locales import Translator
from storage import entry_codes
from storage.db.store import utcnow
from storage.errors import N_
from storage.models import ScanResult
from storage.reads.mini_app import event_of, gate_events
from storage.services import entry_keys
from storage.services.gate import (
    MAX_CODE,
    MAX_GATE,
    MAX_NONCE,
    NonceReused,
    OfflineScan,
    ScanAnswer,
    scan_barcode,
    scan_offline_batch,
)
from storage.services.webapp_actions import ACTION_ID

NOT_STAFF = N_("This view is for the event's staff only.")
GATE_STRINGS = {
    "title": N_("Gate"),
    "event_label": N_("Event"),
    "gate_label": N_("Gate name"),
    "gate_default": N_("Entrance"),
    "start": N_("📷 Start scanning"),
    "scan_next": N_("📷 Scan the next ticket"),
    "change": N_("Change event or gate"),
    "retry": N_("🔁 Check this code again"),
    "popup": N_("Point the camera at the ticket's QR code"),
    "scanning": N_("Checking…"),
    "no_events": N_("There is no event to scan for."),
    "no_scanner": N_("This version of Telegram cannot scan QR codes. Please update Telegram."),
    "where": N_("{event} — gate {gate}"),
    "offline_one": N_("Offline — {count} scan waiting"),
    "offline_other": N_("Offline — {count} scans waiting"),
    "offline_checked": N_("Checked on this device without network; it is sent to the server "
                          "when the network is back."),
    "offline_unchecked": N_("Without network only the QR code of a ticket can be checked, "
                            "not a typed barcode. Let this person wait or check the ticket by "
                            "hand."),
    "uploaded": N_("Back online: the scans made offline were sent."),
    "ok": N_("✅ Let in"),
    "already_scanned": N_("⚠️ Already scanned"),
    "void": N_("⛔ Void ticket"),
    "stale": N_("⏱ Not a live code"),
    "unknown": N_("❓ Unknown code"),
}
HEADLINES = {
    ScanResult.OK: N_("✅ Let in"),
    ScanResult.ALREADY_SCANNED: N_("⚠️ Already scanned"),
    ScanResult.VOID: N_("⛔ Void ticket"),
    ScanResult.UNKNOWN: N_("❓ Unknown code"),
    ScanResult.STALE: N_("⏱ Not a live code"),
}
MAX_UPLOAD = 1_000
GATE_REFUSALS = {
    "barcode": N_("No code was read. Please scan again."),
    "event": N_("Please choose an event."),
    "gate": N_("Please give this gate a name (at most {max} characters)."),
    "nonce": N_("This scan was already checked with another code. Please scan again."),
}


def staff_only(mini: MiniAppServices, user: WebAppUser) -> bool:
    return user.id in mini.staff_ids


async def _refuse_non_staff(mini: MiniAppServices, user: WebAppUser) -> web.Response:
    t = await user_translator(mini.store, user)
    return json_error(403, "forbidden", t.gettext(NOT_STAFF))


@authenticated
async def get_gate(request: web.Request, user: WebAppUser) -> web.Response:
    """The gate view's words and the events it may scan for."""
    mini = request.app[SERVICES]
    if not staff_only(mini, user):
        return await _refuse_non_staff(mini, user)
    t = await user_translator(mini.store, user)
    events = await gate_events(mini.store)
    return web.json_response({
        "strings": {key: t.gettext(text) for key, text in GATE_STRINGS.items()},
        "events": [{"id": event.id, "name": t.words(event.name),
                    "when": t.datetime(event.starts_at, event.timezone)} for event in events],
    })


def answer_json(answer: ScanAnswer, timezone: str, t: Translator) -> dict[str, Any]:
    """The scan's answer in the staff member's words, times in the event's zone."""
    _ = t.gettext
    lines = []
    if answer.holder_name or answer.category:
        lines.append(_("{category} — {holder}").format(
            category=t.words(answer.category or ""), holder=answer.holder_name or "—"))
    if answer.result == ScanResult.OK:
        lines.append(_("Ticket {ref}").format(ref=answer.ticket_ref))
    elif answer.result == ScanResult.ALREADY_SCANNED:
        lines.append(_("Already let in on {date} at gate {gate}.").format(
            date=_when(answer.scanned_at, timezone, t), gate=answer.gate or "—"))
        lines.append(_("Ticket {ref}").format(ref=answer.ticket_ref))
    elif answer.result == ScanResult.STALE:
        lines.append(_("This code is a picture of the ticket, not its live screen: ask the "
                       "holder to open the live ticket in Telegram."))
        lines.append(_("Ticket {ref}").format(ref=answer.ticket_ref))
    elif answer.result == ScanResult.VOID:
        lines.append(_("This code was replaced on {date}: the ticket changed hands or got a "
                       "new code. Ask for the newest ticket.").format(
                           date=_when(answer.voided_at, timezone, t)))
        lines.append(_("Ticket {ref}").format(ref=answer.ticket_ref))
    else:
        lines.append(_("This code is not a ticket for this event."))
    if answer.conflict:
        lines.append(_("Conflict: this ticket was also let in at gate {gate} on {date}.").format(
            gate=answer.other_gate or "—", date=_when(answer.other_scanned_at, timezone, t)))
    return {"result": answer.result.value, "headline": _(HEADLINES[answer.result]),
            "lines": lines, "barcode": answer.barcode, "conflict": answer.conflict}


def _when(moment: dt.datetime | None, timezone: str, t: Translator) -> str:
    return t.datetime(moment, timezone) if moment is not None else "—"


@authenticated
async def post_scan(request: web.Request, user: WebAppUser) -> web.Response:
    """One scanned code, through the gate's scan service; the same nonce gets the same answer."""
    mini = request.app[SERVICES]
    if not staff_only(mini, user):
        return await _refuse_non_staff(mini, user)
    body = await read_body(request)
    t = await user_translator(mini.store, user)
    barcode, gate = str(body.get("barcode") or "").strip(), str(body.get("gate") or "").strip()
    nonce, event_id = str(body.get("nonce") or ""), str(body.get("event") or "")
    if not barcode or len(barcode) > MAX_CODE:
        return json_error(422, "barcode_invalid", t.gettext(GATE_REFUSALS["barcode"]), "barcode")
    if not gate or len(gate) > MAX_GATE:
        return json_error(422, "gate_invalid",
                           t.gettext(GATE_REFUSALS["gate"]).format(max=MAX_GATE), "gate")
    if len(nonce) > MAX_NONCE or not ACTION_ID.fullmatch(nonce):
        return json_error(400, "no_nonce", t.gettext(GATE_REFUSALS["nonce"]))
    event = await event_of(mini.store, event_id) if 0 < len(event_id) <= 100 else None
    if event is None:
        return json_error(422, "event_invalid", t.gettext(GATE_REFUSALS["event"]), "event")
    try:
        answer = await scan_barcode(mini.store, barcode, gate, nonce, f"staff-{user.id}",
                                    event_id=event.id)
    except NonceReused:
        return json_error(409, "nonce_reused", t.gettext(GATE_REFUSALS["nonce"]))
    mini.after_change()
    return web.json_response(answer_json(answer, event.timezone, t))


@authenticated
async def get_entry_kit(request: web.Request, user: WebAppUser) -> web.Response:
    """What the page keeps to decide offline for one event: its keys and voided tokens."""
    mini = request.app[SERVICES]
    if not staff_only(mini, user):
        return await _refuse_non_staff(mini, user)
    event_id = request.query.get("event", "")
    event = await event_of(mini.store, event_id) if 0 < len(event_id) <= 100 else None
    if event is None:
        t = await user_translator(mini.store, user)
        return json_error(422, "event_invalid", t.gettext(GATE_REFUSALS["event"]), "event")
    async with mini.store.write_connection() as connection:
        await entry_keys.live_key(connection, event.id, utcnow())  # static or rotating
        keys = await entry_keys.gate_keys(connection, event.id,
                                          static=event.entry_code == "static")
        voided = await entry_keys.voided_tokens(connection, event.id)
    return web.json_response({
        "event": event.id, "code": event.entry_code,
        "period_seconds": event.entry_period_seconds,
        "tolerance_steps": entry_codes.TOLERANCE_STEPS,
        "keys": [{"key_id": key.key_id, "public_key": entry_codes.b64(key.public_key),
                  "step_secret": entry_codes.b64(key.step_secret)} for key in keys],
        "voided": voided, "synced_at_ms": int(utcnow().timestamp() * 1000),
    }, headers={"Cache-Control": "no-store"})


def _offline_scan(item: Any) -> tuple[str, str, str, dt.datetime] | None:
    if not isinstance(item, dict):
        return None
    barcode, gate = str(item.get("barcode") or "").strip(), str(item.get("gate") or "").strip()
    nonce = str(item.get("nonce") or "")
    try:
        at = dt.datetime.fromisoformat(str(item.get("scanned_at") or ""))
    except ValueError:
        return None
    if (not barcode or len(barcode) > MAX_CODE or not gate or len(gate) > MAX_GATE
            or len(nonce) > MAX_NONCE or not ACTION_ID.fullmatch(nonce)
            or at.utcoffset() is None):
        return None
    return barcode, gate, nonce, at.astimezone(dt.UTC)


@authenticated
async def post_offline_scans(request: web.Request, user: WebAppUser) -> web.Response:
    """The scans the page made offline, each decided as at its time; sending them again
    changes nothing. Answers in the staff member's words, double entries marked."""
    mini = request.app[SERVICES]
    if not staff_only(mini, user):
        return await _refuse_non_staff(mini, user)
    body = await read_body(request)
    t = await user_translator(mini.store, user)
    event_id = str(body.get("event") or "")
    event = await event_of(mini.store, event_id) if 0 < len(event_id) <= 100 else None
    if event is None:
        return json_error(422, "event_invalid", t.gettext(GATE_REFUSALS["event"]), "event")
    items = body.get("scans")
    scans = ([_offline_scan(item) for item in items]
             if isinstance(items, list) and 0 < len(items) <= MAX_UPLOAD else [None])
    if any(scan is None for scan in scans):
        return json_error(422, "scans_invalid", t.gettext(GATE_REFUSALS["barcode"]), "scans")
    try:
        decided = await scan_offline_batch(
            mini.store, [OfflineScan(*scan) for scan in scans], f"staff-{user.id}",
            event_id=event.id)
    except NonceReused:
        return json_error(409, "nonce_reused", t.gettext(GATE_REFUSALS["nonce"]))
    answers = [answer_json(answer, event.timezone, t) | {"nonce": scan[2]}
               for answer, scan in zip(decided, scans, strict=True)]
    mini.after_change()
    return web.json_response({"answers": answers})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/gate", get_gate)
    app.router.add_post("/api/gate/scan", post_scan)
    app.router.add_get("/api/gate/entry", get_entry_kit)
    app.router.add_post("/api/gate/scans", post_offline_scans)
