"""The messages of the outbound webhooks, one pydantic model per type: the services build each
message with its model in the transaction of its cause, and the OpenAPI document lists the
same models under its ``webhooks`` (``bot/http/openapi.py``), so what is sent is what is
documented.

Every message is ``{"type", "timestamp", "data"}`` (Standard Webhooks' recommended envelope):
``timestamp`` is when the change was committed, ``data`` names the order, the event and the
ticket by the references the shop knows (order number, ticket ref), never the store's own ids,
except a listing's id, which is what the market reports a sale with.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

# An amount as the store keeps it, written as a decimal string (never a float).
Amount = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$", examples=["60.00"])]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


class ListingData(_Data):
    """A resale listing: what the market needs to show it and to report it sold (`POST
    /api/resale/{id}/sold`)."""

    id: int = Field(ge=1, description="the listing's id")
    ticket: str = Field(description="the ticket's reference")
    order: str = Field(description="the order's number")
    event: str
    price: Amount = Field(description="the asking price (for `listing.sold`, the sale price)")
    currency: str = Field(pattern="^[A-Z]{3}$")


class TicketAssignedData(_Data):
    """A ticket got a new holder (or lost one) and with it a new barcode: the old one is void
    from now on."""

    ticket: str
    order: str
    event: str
    holder: str | None = Field(description="the name on the ticket; null when it was "
                                           "taken back by the buyer")
    barcode: str = Field(description="the valid barcode")
    voided_barcode: str = Field(description="the barcode the ticket had before, now void")


class TicketExchangedData(_Data):
    """A ticket was swapped for one of another session: it and its barcode are void, the new
    ticket is to be assigned again."""

    ticket: str = Field(description="the old ticket's reference, now void")
    order: str
    event: str = Field(description="the old ticket's event")
    voided_barcode: str
    new_ticket: str
    new_event: str
    barcode: str = Field(description="the new ticket's barcode")


class TicketScannedData(_Data):
    """A ticket was let in at the gate (its first `ok` scan)."""

    ticket: str
    order: str
    event: str
    barcode: str
    gate: str
    scanned_at: dt.datetime


class InvitationData(_Data):
    """An invitation of a ticket to a friend (by e-mail), as it moved on."""

    invitation: int = Field(ge=1, description="the invitation's id")
    ticket: str
    order: str
    event: str


# Each type: its data and what it means (the document's description of the webhook).
TYPES: dict[str, tuple[type[_Data], str]] = {
    "listing.created": (ListingData, "A ticket was listed for resale."),
    "listing.updated": (ListingData, "A listing's price changed."),
    "listing.cancelled": (ListingData, "A listing was taken off the market (by the buyer, or "
                                       "because the ticket was used at the gate)."),
    "listing.sold": (ListingData, "A listing was sold: the ticket left its order and its "
                                  "barcode is void."),
    "ticket.assigned": (TicketAssignedData, "A ticket has a new holder (or none) and a new "
                                            "barcode; the old one is void."),
    "ticket.exchanged": (TicketExchangedData, "A ticket was exchanged for another session."),
    "ticket.scanned": (TicketScannedData, "A ticket was let in at the gate."),
    "invitation.sent": (InvitationData, "A ticket was offered to a friend by e-mail."),
    "invitation.claimed": (InvitationData, "The friend claimed the ticket (a "
                                           "`ticket.assigned` follows)."),
    "invitation.declined": (InvitationData, "The friend declined; the ticket is the "
                                            "buyer's to assign again."),
    "invitation.expired": (InvitationData, "Nobody claimed the ticket in time."),
    "invitation.revoked": (InvitationData, "The buyer withdrew the invitation (or the ticket "
                                           "was used at the gate meanwhile)."),
}


def _title(type_name: str) -> str:
    return "".join(part.capitalize() for part in type_name.replace(".", "_").split("_"))


def _message_model(type_name: str, data: type[_Data], description: str) -> type[BaseModel]:
    return create_model(
        _title(type_name),
        __config__=ConfigDict(title=_title(type_name), extra="forbid",
                              json_schema_extra={"description": description}),
        type=(Literal[type_name], ...),
        timestamp=(dt.datetime, Field(description="when the change was committed")),
        data=(data, ...),
    )


MESSAGES: dict[str, type[BaseModel]] = {
    type_name: _message_model(type_name, data, description)
    for type_name, (data, description) in TYPES.items()
}


def message_body(type_name: str, data: _Data, timestamp: dt.datetime) -> str:
    """The JSON body of a message, validated by its model (a wrong data model fails here,
    in the test of the service that writes it, not at the receiver)."""
    message: Any = MESSAGES[type_name](type=type_name, timestamp=timestamp, data=data)
    return message.model_dump_json()
