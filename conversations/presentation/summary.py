"""A ticket as both faces sum it up above its menu and its forms, and the notes under its menu
(what the event no longer allows, or why nothing is left to do). Plain text: the chat escapes
and bolds it, the Mini App sends it in its JSON."""

from __future__ import annotations

from dataclasses import dataclass

from conversations.presentation.sayings import policy_notes
from conversations.presentation.words import state_word
from locales import Translator
from storage.models import TicketState
from storage.reads.views import TicketDetails


@dataclass(frozen=True)
class TicketSummary:
    """``title`` ("Ticket R-1"), what it is for, when and where, then the ``facts`` about its
    state (status, holder, invitation, resale, use at the gate), one line each."""

    title: str
    what: str
    when: str
    venue: str
    facts: list[str]


def ticket_summary(details: TicketDetails, t: Translator) -> TicketSummary:
    _ = t.gettext
    ticket, event = details.ticket, details.event
    facts = [_("Status: {state}").format(state=state_word(ticket.state, t))]
    if ticket.state == TicketState.COMPLETED and ticket.holder_name:
        facts.append(_("In the name of: {holder}").format(holder=ticket.holder_name))
    if ticket.state == TicketState.PENDING and ticket.invitation is not None:
        facts.append(_("Sent to {email}, link valid until {date}").format(
            email=ticket.invitation.email,
            date=t.datetime_in_zone(ticket.invitation.expires_at, event.timezone)))
    if ticket.listing is not None:
        facts.append(_("On resale at {price}").format(
            price=t.money(ticket.listing.price, ticket.listing.currency)))
    if ticket.used_at is not None:
        facts.append(_("Used: scanned in at the gate on {date}.").format(
            date=t.datetime(ticket.used_at, event.timezone)))
    return TicketSummary(
        title=_("Ticket {ref}").format(ref=ticket.ref),
        what=_("{category} — {event}").format(category=t.words(ticket.category),
                                              event=t.words(event.name)),
        when=t.datetime(event.starts_at, event.timezone),
        venue=_("{venue}, {city}").format(venue=t.words(event.venue_name), city=event.venue_city),
        facts=facts)


def menu_notes(details: TicketDetails, t: Translator) -> list[str]:
    """The notes under a ticket's menu: the event's rules, except on a used ticket (it offers
    nothing, whatever the rules: only that is said); and when nothing is left, the reason."""
    notes = policy_notes(details, t) if details.ticket.used_at is None else []
    if not details.ticket.actions and not notes:
        notes.append(no_action_reason(details, t))
    return notes


def no_action_reason(details: TicketDetails, t: Translator) -> str:
    _ = t.gettext
    event = details.event
    if details.ticket.used_at is not None:
        return _("A used ticket can no longer be transferred, resold, exchanged or renamed.")
    if not event.personalisation_enabled:
        return _("This event does not offer personalised tickets.")
    if event.personalisation_deadline is not None and details.ticket.state in (
        TicketState.TO_ASSIGN, TicketState.PENDING
    ):
        return _("Personalisation closed on {deadline}.").format(
            deadline=t.datetime(event.personalisation_deadline, event.timezone))
    return _("Nothing more to do for this ticket.")
