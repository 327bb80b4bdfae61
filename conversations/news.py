"""News for a user that no action of theirs caused: a friend claimed or declined a ticket, an
invitation expired. Rendered in the recipient's language when sent."""

from __future__ import annotations

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
    else:
        raise ValueError(f"unknown news kind {kind!r}")
    rows = [[button(_("🎟 Open my order"), cb.encode(cb.OVERVIEW, params["order_id"], 0))]]
    return Screen(text, rows)
