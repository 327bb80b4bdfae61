"""News for a user that no action of theirs caused: a friend claimed or declined a ticket, an
invitation expired. Rendered in the recipient's language when sent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from conversations import callbacks as cb
from conversations.common import Screen, button, e
from locales import Translator


def news_screen(kind: str, params: dict[str, Any], t: Translator) -> Screen:
    """The message announcing one piece of news, with a button to the order."""
    _ = t.gettext
    if kind == "invitation_accepted":
        text = _("Good news: {holder} ({email}) claimed ticket {ref}. It is now in their name.")
        text = "🎉 " + e(text.format(holder=params["holder"], email=params["email"],
                                     ref=params["ticket_ref"]))
    elif kind == "invitation_declined":
        text = _("{email} declined ticket {ref}. It is back in your list of tickets to assign.")
        text = "↩️ " + e(text.format(email=params["email"], ref=params["ticket_ref"]))
    elif kind == "invitation_expired":
        text = _("The invitation to {email} for ticket {ref} expired unclaimed. The ticket is "
                 "back in your list of tickets to assign.")
        text = "⌛ " + e(text.format(email=params["email"], ref=params["ticket_ref"]))
    elif kind == "resale_sold":
        price = t.money(Decimal(params["price"]), params["currency"])
        text = _("Ticket {ref} was sold on the resale market for {price}. It has left your "
                 "order and its barcode is no longer valid.")
        text = "💶 " + e(text.format(ref=params["ticket_ref"], price=price))
    elif kind.startswith("reminder_"):
        return reminder_screen(kind, params, t)
    else:
        raise ValueError(f"unknown news kind {kind!r}")
    rows = [[button(_("🎟 Open my order"), cb.encode(cb.OVERVIEW, params["order_id"], 0))]]
    return Screen(text, rows)


def reminder_screen(kind: str, params: dict[str, Any], t: Translator) -> Screen:
    """A reminder (storage/services/reminders.py): tickets still to assign, an invitation about to
    expire, or the event's day (the ticket itself follows that one)."""
    _ = t.gettext
    event = t.words(params["event"])
    order_button = button(_("🎟 Open my order"), cb.encode(cb.OVERVIEW, params["order_id"], 0))
    if kind == "reminder_personalise":
        deadline = t.datetime(dt.datetime.fromisoformat(params["deadline"]), params["timezone"])
        text = t.ngettext(
            "Reminder: {count} ticket for {event} still has no name. Assign it before "
            "{deadline}, or it cannot be used.",
            "Reminder: {count} tickets for {event} still have no name. Assign them before "
            "{deadline}, or they cannot be used.", params["count"])
        text = "⏰ " + e(text.format(count=t.number(params["count"]), event=event,
                                     deadline=deadline))
        return Screen(text, [[order_button]])
    if kind == "reminder_invitation":
        expires = t.datetime_in_zone(dt.datetime.fromisoformat(params["expires"]),
                                     params["timezone"])
        text = _("{email} has not claimed ticket {ref} for {event} yet. The invitation link "
                 "expires on {expires}.")
        text = "⏳ " + e(text.format(email=params["email"], ref=params["ticket_ref"],
                                     event=event, expires=expires))
        return Screen(text, [
            [button(_("✉️ Resend the invitation"), cb.encode(cb.RESEND, params["ticket_id"])),
             button(_("↩️ Revoke the invitation"), cb.encode(cb.REVOKE, params["ticket_id"]))],
            [order_button]])
    if kind == "reminder_event_day":
        text = _("Today is the day: {event}! Here is your ticket; show its QR code at the "
                 "entrance.")
        return Screen("🎉 " + e(text.format(event=event)), [])
    raise ValueError(f"unknown reminder kind {kind!r}")
