"""What the Mini App shows, as JSON: the views of ``storage/reads/views.py`` put into words in the
user's language, with Babel's dates, money and plurals. The page only lays these out; it makes
no sentence of its own. Every string it needs is marked here for the catalogs."""

from __future__ import annotations

from typing import Any

from babel.lists import format_list

from conversations.presentation.actions import ACTIONS, Asks, TicketAction, ticket_words
from conversations.presentation.sayings import exchange_option_label
from conversations.presentation.summary import menu_notes, ticket_summary
from locales import LANGUAGE_NAMES, LANGUAGES, Translator
from storage.errors import N_, Refusal
from storage.models import TicketState
from storage.reads.views import ExchangeOption, Home, OrderView, TicketDetails, TicketView
from storage.services.resale import PriceBounds

# The page's own words: labels, headings, hints. The keys are what app.js asks for.
PAGE_STRINGS = {
    "title": N_("My order"),
    "loading": N_("Loading…"),
    "back": N_("« Back"),
    "back_to_order": N_("« Back to my order"),
    "my_orders": N_("🏠 My orders"),
    "refresh": N_("🔄 Refresh"),
    "more": N_("⋯ More actions"),
    "confirm": N_("✅ Confirm"),
    # The page's first words name the first choice of a ticket to assign, as they always did.
    "claim_self": ACTIONS["claim"].label,
    "name_label": N_("Name on the ticket"),
    "email_label": N_("Your friend's e-mail address"),
    "price_label": N_("Price"),
    "exchange_cleared": N_("The name on this ticket will be cleared: you will assign the new "
                           "ticket again."),
    "exchange_void": N_("The current ticket and its barcode will no longer be valid."),
    "required": N_("Please fill in this field."),
    "choose_session": N_("Please choose a session."),
    "error_generic": N_("Sorry, something went wrong on our side. Please try again."),
    "error_auth": N_("Please open this page from the bot in Telegram."),
    "error_network": N_("The connection failed. Please try again."),
    "claim_link": N_("Your friend can also claim the ticket with this link:"),
    "share": N_("Share in Telegram"),
    "contact_support": N_("💬 Contact support"),
    "faq": N_("❓ Event FAQ"),
    "languages": N_("Language"),
    "sections": N_("Your tickets"),
    "actions": N_("What you can do"),
    "no_orders": N_("Welcome! To manage your order, open the “Manage my order in Telegram” "
                    "link from your order confirmation e-mail. If a friend sent you a ticket, "
                    "open the link from their e-mail or message."),
    "orders_title": N_("Your orders"),
    "held_title": N_("Tickets in your name"),
    "show_ticket": N_("🎟 Show my ticket"),
    "gate": N_("🚪 Gate (staff)"),
}

SECTIONS = (
    (TicketState.TO_ASSIGN, N_("To assign ({count})")),
    (TicketState.PENDING, N_("Pending ({count})")),
    (TicketState.COMPLETED, N_("Completed ({count})")),
    (TicketState.ON_RESALE, N_("On resale ({count})")),
)

# Which form field a refusal is about, so the page shows it next to that field.
REFUSAL_FIELDS = {
    "name_invalid": "name", "name_taken": "name", "same_name": "name",
    "email_invalid": "email", "email_taken": "email",
    "price_invalid": "price", "price_too_precise": "price", "price_out_of_bounds": "price",
    "exchange_sold_out": "event", "exchange_target_invalid": "event",
}


def page_strings(t: Translator) -> dict[str, str]:
    return {key: t.gettext(message) for key, message in PAGE_STRINGS.items()}


def refusal_json(refusal: Refusal, t: Translator) -> dict[str, Any]:
    return {"error": refusal.code, "message": t.fill(refusal.message, refusal.params),
            "field": REFUSAL_FIELDS.get(refusal.code)}


def home_json(home: Home, t: Translator) -> dict[str, Any]:
    _ = t.gettext
    orders = []
    for order in home.orders:
        tickets = t.ngettext("{count} ticket", "{count} tickets", order.ticket_count).format(
            count=order.ticket_count)
        events = format_list([t.words(event.name) for event in order.events], locale=t.locale)
        orders.append({"id": order.id, "label": _("🎟 Order {number}").format(number=order.number),
                       "text": _("{number} — {events} ({tickets})").format(
                           number=order.number, events=events, tickets=tickets)})
    # Each held ticket opens the holder's own ticket (QR, PDF, calendar) by its id.
    held = [{"id": held.id, "ref": held.ref,
             "text": _("{event}, {date} — {category}, in the name of {holder}").format(
                 event=t.words(held.event.name),
                 date=t.datetime(held.event.starts_at, held.event.timezone),
                 category=t.words(held.category), holder=held.holder_name)}
            for held in home.held]
    return {"orders": orders, "held": held}


def _event_json(event, t: Translator) -> dict[str, Any]:
    _ = t.gettext
    options = [_(name) for enabled, name in (
        (event.personalisation_enabled, N_("personalisation")),
        (event.exchange_enabled, N_("exchange")),
        (event.resale_enabled, N_("resale")),
    ) if enabled]
    return {
        "id": event.id, "name": t.words(event.name),
        "when": t.datetime(event.starts_at, event.timezone),
        "venue": _("{venue}, {city}").format(venue=t.words(event.venue_name),
                                             city=event.venue_city),
        "options": (_("Options: {options}").format(options=format_list(options, locale=t.locale))
                    if options else _("No ticket options for this event.")),
        "faq_url": event.faq_url,
    }


def _ticket_line(ticket: TicketView, order: OrderView, t: Translator) -> str:
    _ = t.gettext
    what = f"{t.words(ticket.category)} · {ticket.ref}"
    if len(order.events) > 1:
        what += " · " + t.words(order.events[ticket.event_id].name)
    if ticket.state == TicketState.PENDING and ticket.invitation is not None:
        return _("{ticket} — sent to {email}").format(ticket=what, email=ticket.invitation.email)
    if ticket.listing is not None:
        return what + " · " + _("On resale at {price}").format(
            price=t.money(ticket.listing.price, ticket.listing.currency))
    if ticket.holder_name and ticket.state == TicketState.COMPLETED:
        return _("{ticket} — {holder}").format(ticket=what, holder=ticket.holder_name)
    return what


def order_json(order: OrderView, t: Translator, *, support_contact: str | None) -> dict[str, Any]:
    _ = t.gettext
    sections = []
    for state, title in SECTIONS:
        tickets = order.tickets_in(state)
        if tickets:
            sections.append({"state": state.value, "title": _(title).format(count=len(tickets)),
                             "tickets": [{"id": ticket.id, "ref": ticket.ref,
                                          "line": _ticket_line(ticket, order, t)}
                                         for ticket in tickets]})
    if support_contact:
        support = _("Our support team can help you: {contact}. Please mention your order number "
                    "{number}.").format(contact=support_contact, number=order.number)
    else:
        support = _("Reply to your order confirmation e-mail to reach our support team. Please "
                    "mention your order number {number}.").format(number=order.number)
    return {
        "id": order.id, "number": order.number,
        "title": _("My order {number}").format(number=order.number),
        "events": [_event_json(event, t) for event in order.events.values()],
        "sections": sections,
        "empty": None if order.tickets else _("This order has no tickets left."),
        "hint": _("Choose a ticket to manage it."),
        "more": {
            "title": _("More actions — order {number}").format(number=order.number),
            "language": _("Language: {language}").format(language=t.language_name(t.language)),
            "languages": [{"code": code, "name": LANGUAGE_NAMES[code],
                           "current": code == t.language} for code in LANGUAGES],
            "faqs": [{"label": _("❓ FAQ: {event}").format(event=t.words(event.name)),
                      "url": event.faq_url}
                     for event in order.events.values() if event.faq_url],
            "support": support,
        },
    }


def summary_lines(details: TicketDetails, t: Translator) -> list[str]:
    """The ticket's summary as the page shows it under its title."""
    summary = ticket_summary(details, t)
    return [summary.what, summary.when, summary.venue, *summary.facts]


def action_json(action: TicketAction, details: TicketDetails, t: Translator,
                offered: dict[str, str] | None = None) -> dict[str, Any]:
    """An action as the page offers it: its button, what it asks for and how, the question
    asked before it runs (about the ticket itself: filled in now), the confirm button, the
    name it offers (``offered``: by action, only a name free for the event); and for a choice,
    the actions it offers."""
    offered = offered or {}
    _ = t.gettext
    question = (_(action.question).format(**ticket_words(details))
                if action.question and action.asks == Asks.NOTHING else None)
    body: dict[str, Any] = {
        "action": action.name, "label": _(action.label) if action.label else None,
        "asks": action.asks.value, "prompt": _(action.prompt) if action.prompt else None,
        "question": question, "yes": _(action.yes), "offered": offered.get(action.name),
    }
    if action.offers:
        body["offers"] = [action_json(ACTIONS[name], details, t, offered)
                          for name in action.offers]
    return body


def ticket_json(details: TicketDetails, t: Translator, *, bounds: PriceBounds | None,
                options: list[ExchangeOption] | None,
                offered: dict[str, str] | None = None) -> dict[str, Any]:
    _ = t.gettext
    ticket, event = details.ticket, details.event
    body: dict[str, Any] = {
        "id": ticket.id, "order_id": details.order.id, "ref": ticket.ref,
        "state": ticket.state.value,
        "title": _("Ticket {ref}").format(ref=ticket.ref),
        "summary": summary_lines(details, t),
        "notes": menu_notes(details, t),
        "actions": [action_json(ACTIONS[action], details, t, offered)
                    for action in ticket.actions],
        "faq_url": event.faq_url if not event.resale_enabled else None,
        "buyer_name": details.order.buyer_name,
        "holder_name": ticket.holder_name,
        "price": (str(ticket.listing.price) if ticket.listing is not None else None),
    }
    if bounds is not None:
        body["bounds"] = _("The price must be between {min} and {max}.").format(
            min=t.money(bounds.minimum, bounds.currency),
            max=t.money(bounds.maximum, bounds.currency))
        body["currency"] = bounds.currency
    if options is not None:
        body["exchange_options"] = [
            {"event": option.event.id, "label": exchange_option_label(option, t),
             "available": option.places_left != 0} for option in options]
    return body
