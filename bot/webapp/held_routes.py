"""A holder's own ticket in the Mini App: what it says, its QR picture, its PDF and calendar
entry, each from the same files as the chat's ticket
(``conversations/presentation/ticket_files.py``).

Every one of these is a JSON or file call checked like every other (initData first, then
``held_card``: the ticket must be in this Telegram user's hands now). There is no file URL
that works without initData: the page fetches the files with its Authorization header and
shows them from blob URLs. The answers are private (``Cache-Control: no-store``): a barcode that
changes is read afresh on the next visit, never from a cache.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from bot.webapp.calls import SERVICES, MiniAppServices, authenticated, parse_id, user_translator
from bot.webapp.init_data import WebAppUser
from bot.webapp.screens import refusal_json
from conversations.presentation import ticket_files
from locales import Translator
from storage.db.store import utcnow
from storage.entry_codes import SignedTicket
from storage.errors import N_, Refusal
from storage.reads.mini_app import HeldTicketView, held_ticket
from storage.services import entry_keys

PRIVATE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
HELD_STRINGS = {
    "show_ticket": N_("🎟 Show my ticket"),
    "pdf": N_("📄 PDF ticket"),
    "ics": N_("📅 Add to calendar"),
    "qr_alt": N_("QR code of ticket {ref}"),
}


async def _held(request: web.Request, user: WebAppUser) -> tuple[HeldTicketView, Translator]:
    mini: MiniAppServices = request.app[SERVICES]
    ticket_id = parse_id(request.match_info["ticket"])
    if ticket_id is None:
        raise Refusal("ticket_not_held")
    held = await held_ticket(mini.store, user.id, ticket_id)
    return held, await user_translator(mini.store, user, held.card.languages[-1])


async def _refused(request: web.Request, user: WebAppUser, refusal: Refusal) -> web.Response:
    t = await user_translator(request.app[SERVICES].store, user)
    return web.json_response(refusal_json(refusal, t), status=404)


def live_json(card, live: SignedTicket | None, t: Translator, now: dt.datetime) -> dict:
    """A rotating ticket's part: what the page needs to draw the live code, or when it will
    appear. Never the barcode: the page derives each step's code from the step key."""
    if live is None:
        return {"live": None, "hint": t.gettext(
            "Your live entry code appears here from {date}.").format(
                date=t.datetime(card.reveal_at, card.timezone))}
    return {
        "live": {"key_id": live.key_id, "ref": live.ticket_ref, "token": live.token,
                 "signature": live.signature, "step_key": live.step_key,
                 "period_seconds": live.period_seconds,
                 "server_time_ms": int(now.timestamp() * 1000)},
        "hint": t.ngettext(
            "Show this live code at the entrance. It changes every {seconds} second; a "
            "screenshot does not get in.",
            "Show this live code at the entrance. It changes every {seconds} seconds; a "
            "screenshot does not get in.", live.period_seconds).format(
                seconds=live.period_seconds),
    }


def held_json(held: HeldTicketView, t: Translator, live: SignedTicket | None = None,
              now: dt.datetime | None = None) -> dict:
    _ = t.gettext
    card = held.card.in_language(t.language)
    used = None
    if held.used_at is not None:
        when = t.datetime(held.used_at, card.timezone)
        used = (_("Used: let in on {date} at gate {gate}.").format(date=when, gate=held.gate)
                if held.gate else _("Used: let in on {date}.").format(date=when))
    return {
        "id": card.ticket_id, "ref": card.ref, "barcode": card.barcode,
        "title": _("Ticket {ref}").format(ref=card.ref),
        "event": card.event_name,
        "when": t.datetime(card.starts_at, card.timezone),
        "venue": ticket_files.venue_line(card),
        "lines": [
            _("{category} — in the name of {holder}").format(category=card.category,
                                                             holder=card.holder_name),
            _("Reference: {ref}").format(ref=card.ref),
        ],
        "hint": _("Show this QR code at the entrance."),
        "used": used,
        "qr_alt": _(HELD_STRINGS["qr_alt"]).format(ref=card.ref),
        "pdf_label": _(HELD_STRINGS["pdf"]), "ics_label": _(HELD_STRINGS["ics"]),
        "pdf_name": ticket_files.pdf_name(card), "ics_name": ticket_files.ics_name(card),
        "rotating": card.rotating,
        **(live_json(card, live, t, now or utcnow()) | {"barcode": None}
           if card.rotating else {}),
    }


def _for_held_ticket(answer):
    """A route about one ticket in the user's hands: loads it (a ticket that is not gets the
    refusal), then answers with ``answer(held, t)``."""

    @authenticated
    async def route(request: web.Request, user: WebAppUser) -> web.Response:
        try:
            held, t = await _held(request, user)
        except Refusal as refusal:
            return await _refused(request, user, refusal)
        return await answer(held, t)

    return route


def _attachment(body: bytes, name: str, **kinds: str) -> web.Response:
    return web.Response(body=body, **kinds, headers={
        **PRIVATE, "Content-Disposition": f'attachment; filename="{name}"'})


@authenticated
async def get_held(request: web.Request, user: WebAppUser) -> web.Response:
    try:
        held, t = await _held(request, user)
    except Refusal as refusal:
        return await _refused(request, user, refusal)
    now = utcnow()
    live = await entry_keys.live_ticket(request.app[SERVICES].store, held.card, now)
    return web.json_response(held_json(held, t, live, now), headers={"Cache-Control": "no-store"})


@_for_held_ticket
async def get_qr(held: HeldTicketView, t: Translator) -> web.Response:
    if held.card.rotating:  # no still picture of a rotating ticket: only its live code
        return web.json_response(refusal_json(Refusal("ticket_not_held"), t), status=404)
    return web.Response(body=await ticket_files.qr_file(held.card.qr_text),
                        content_type="image/png", headers=PRIVATE)


@_for_held_ticket
async def get_pdf(held: HeldTicketView, t: Translator) -> web.Response:
    return _attachment(await ticket_files.pdf_file((held.card,), t.language),
                       ticket_files.pdf_name(held.card), content_type="application/pdf")


@_for_held_ticket
async def get_ics(held: HeldTicketView, t: Translator) -> web.Response:
    return _attachment(await ticket_files.ics_file(held.card, t.language),
                       ticket_files.ics_name(held.card), content_type="text/calendar",
                       charset="utf-8")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/held/{ticket}", get_held)
    app.router.add_get("/api/held/{ticket}/qr.png", get_qr)
    app.router.add_get("/api/held/{ticket}/ticket.pdf", get_pdf)
    app.router.add_get("/api/held/{ticket}/ticket.ics", get_ics)
