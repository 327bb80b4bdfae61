"""Sentences both faces say about the store's views: the chat (``conversations/``) and the Mini
App (``bot/webapp/``). What the buyer is told about an event's rules exists once, so the two
faces cannot drift apart; each face escapes or lays the sentences out its own way."""

from __future__ import annotations

from locales import Translator
from storage.db.store import utcnow
from storage.models import TicketState
from storage.reads.views import ExchangeOption, TicketDetails

_HELD = (TicketState.TO_ASSIGN, TicketState.COMPLETED)


def policy_notes(details: TicketDetails, t: Translator) -> list[str]:
    """What the event does not allow (or no longer allows) for this ticket, so the buyer is not
    left guessing why an action is missing. Plain text."""
    _ = t.gettext
    event, ticket = details.event, details.ticket
    notes = []
    deadline = event.personalisation_deadline
    if event.personalisation_enabled and deadline is not None and utcnow() > deadline and (
        ticket.state in (*_HELD, TicketState.PENDING)
    ):
        notes.append(_("Personalisation closed on {deadline}.").format(
            deadline=t.datetime(deadline, event.timezone)))
    if not event.personalisation_enabled and ticket.state == TicketState.TO_ASSIGN:
        notes.append(_("This event does not offer personalised tickets."))
    if not event.resale_enabled and ticket.state in _HELD:
        notes.append(_("Resale is not offered for this event."))
        if event.faq_url:
            notes.append(_("The event's FAQ explains its rules: {url}").format(url=event.faq_url))
    elif event.resale_deadline is not None and "sell" not in ticket.actions and (
        ticket.state in _HELD
    ):
        notes.append(_("Resale closed on {deadline}.").format(
            deadline=t.datetime(event.resale_deadline, event.timezone)))
    return notes


def exchange_option_label(option: ExchangeOption, t: Translator) -> str:
    """A session a ticket may be exchanged for: its event, date and the places left."""
    when = t.datetime(option.event.starts_at, option.event.timezone)
    event = t.words(option.event.name)
    if option.places_left is None:
        return t.gettext("{event} — {date}").format(event=event, date=when)
    if option.places_left == 0:
        return t.gettext("{event} — {date} (sold out)").format(event=event, date=when)
    places = t.ngettext("{count} place left", "{count} places left", option.places_left)
    return t.gettext("{event} — {date} ({places})").format(
        event=event, date=when, places=places.format(count=option.places_left))
