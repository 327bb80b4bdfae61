"""The one error type of the service layer, and its catalogue of user-facing messages.

A service refuses with ``Refusal(code, **params)``; the chat layer shows the message of that code
in the user's language. Messages are marked for extraction with ``N_`` and translated when shown,
so this package stays free of any idea of who is reading.
"""

from __future__ import annotations

from typing import Any


def N_(message: str) -> str:
    """Mark a string for the catalogs without translating it here."""
    return message


MESSAGES: dict[str, str] = {
    "not_found": N_("This ticket or order no longer exists, or is not yours to manage."),
    "ticket_not_held": N_("This ticket is not in your name (or no longer), so it cannot be "
                          "shown here."),
    "ticket_changed": N_("This ticket has changed in the meantime. Here is how it stands now."),
    "not_assignable": N_("This ticket cannot be assigned in its current state."),
    "personalisation_off": N_("This event does not offer personalised tickets."),
    "personalisation_closed": N_("Personalisation closed on {deadline}."),
    # What clean_name checks, no more: a single name ("Camille") is a name.
    "name_invalid": N_(
        "Please type the name to print on the ticket: letters, spaces, apostrophes, hyphens "
        "and dots, starting with a letter, from 2 to {max} characters."
    ),
    "name_taken": N_(
        "Another ticket for this event is already in the name of {name}. "
        "Every ticket of an event must carry a different name."
    ),
    "email_invalid": N_("“{email}” is not a valid e-mail address. Please type it again."),
    "email_taken": N_(
        "The address {email} is already used for another ticket of this event. "
        "Each address can receive only one ticket per event."
    ),
    "invitation_not_pending": N_("This invitation is no longer pending."),
    "link_invalid": N_(
        "This link is not valid. Please use the link from your confirmation e-mail, exactly as "
        "it was sent."
    ),
    "link_expired": N_("This link has expired. Ask the sender to send the ticket again."),
    "link_used": N_("This link has already been used to claim the ticket."),
    "link_revoked": N_("This link has been withdrawn by the sender."),
    "link_declined": N_(
        "The person this ticket was sent to declined it, so this link no longer works. If you "
        "want the ticket after all, ask {sender} to send it again."
    ),
    "too_many_attempts": N_("Too many invalid links. Please wait a few minutes and try again."),
    "name_change_closed": N_("Names can no longer be changed for this event."),
    "not_completed": N_("Only a ticket in someone's name can be renamed or taken back."),
    "same_name": N_("The ticket is already in that name."),
    "resale_off": N_("This event does not offer resale."),
    "resale_closed": N_("Resale closed on {deadline}."),
    "resale_pending_invitation": N_(
        "This ticket was sent to a friend. Revoke the invitation before offering it for resale."
    ),
    "not_listable": N_("This ticket cannot be offered for resale in its current state."),
    "price_invalid": N_("Please type a price between {min} and {max}, for example {max}."),
    "price_too_precise": N_(
        "A price has at most {places} decimals. Please type a price between {min} and {max}."
    ),
    "price_out_of_bounds": N_("The price must be between {min} and {max}."),
    "listing_not_live": N_("This ticket is not on resale any more."),
    "listing_not_found": N_("There is no such resale listing."),
    "exchange_off": N_("This event does not offer exchanges."),
    "exchange_closed": N_("Exchanges are no longer possible for this event."),
    "exchange_target_invalid": N_("This ticket cannot be exchanged for that session."),
    "exchange_sold_out": N_("No places are left for {event}. Please choose another session."),
    "not_exchangeable": N_("This ticket cannot be exchanged in its current state."),
    "ticket_used": N_(
        "This ticket was scanned in at the gate: it has been used and can no longer change."
    ),
    "staff_no_order": N_("There is no order {number}."),
    "staff_no_ticket": N_("There is no ticket {ref}."),
    "staff_no_event": N_("There is no event {event}."),
    "staff_search_too_short": N_("Type at least {min} characters to search."),
    "staff_nothing_to_resend": N_("Order {number} has no pending invitation to send again."),
}


class Refusal(Exception):
    """A use case refused: nothing was changed. ``code`` picks the message in ``MESSAGES``."""

    def __init__(self, code: str, **params: Any) -> None:
        if code not in MESSAGES:
            raise KeyError(f"unknown refusal code {code!r}")
        super().__init__(code)
        self.code = code
        self.params = params

    @property
    def message(self) -> str:
        """The untranslated message template."""
        return MESSAGES[self.code]

    def __repr__(self) -> str:
        # Params may hold personal data (a name, an e-mail): keep them out of reprs and logs.
        return f"Refusal({self.code!r})"
