"""The staff's gate view in the Mini App: Telegram's QR scanner in the page, and for each code
the very scan the HTTP gate API makes (``storage.services.gate.scan_barcode``: one ``ok`` per
ticket,
nonce-idempotent, every scan in the audit history).

Only Telegram users in ``TICKETBOT_STAFF_IDS`` may use it. Everyone else gets 403 from both
calls and nothing is scanned or recorded; the page does not even offer them the view. The
device a scan is recorded under is ``staff-<telegram id>``: who scanned, and the key the nonces
are kept under (each staff member is a scanner of their own).
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
from storage.errors import N_
from storage.models import ScanResult
from storage.reads.mini_app import event_of, gate_events
from storage.services.gate import (
    MAX_BARCODE,
    MAX_GATE,
    MAX_NONCE,
    NonceReused,
    ScanAnswer,
    scan_barcode,
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
}
HEADLINES = {
    ScanResult.OK: N_("✅ Let in"),
    ScanResult.ALREADY_SCANNED: N_("⚠️ Already scanned"),
    ScanResult.VOID: N_("⛔ Void ticket"),
    ScanResult.UNKNOWN: N_("❓ Unknown code"),
}
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
    elif answer.result == ScanResult.VOID:
        lines.append(_("This code was replaced on {date}: the ticket changed hands or got a "
                       "new code. Ask for the newest ticket.").format(
                           date=_when(answer.voided_at, timezone, t)))
        lines.append(_("Ticket {ref}").format(ref=answer.ticket_ref))
    else:
        lines.append(_("This code is not a ticket for this event."))
    return {"result": answer.result.value, "headline": _(HEADLINES[answer.result]),
            "lines": lines, "barcode": answer.barcode}


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
    if not barcode or len(barcode) > MAX_BARCODE:
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


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/gate", get_gate)
    app.router.add_post("/api/gate/scan", post_scan)
