"""The bodies of the HTTP API as pydantic models: what a request may hold, what an answer holds.

The routes validate requests and build answers with these models, and ``bot/http/openapi.py``
publishes their JSON schemas; so the document says what the server accepts and returns.
The import document's entries are the importer's own models
(``storage/services/importing/entries.py``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from storage.models import DeliveryState, TicketState
from storage.services.importing.entries import EventIn, Money, OrderIn

# An amount as the store keeps it (Numeric(12, 2)), written as a string.
Amount = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$", examples=["89.00"])]
Count = Annotated[int, Field(ge=0)]


class _Answer(BaseModel):
    # Every field is in every answer: the document marks them all required.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


# --- requests --------------------------------------------------------------------------------


class ImportDocument(BaseModel):
    """Events and orders in the import format of ``ticketbot import`` (see docs/spec.md). The
    document is validated completely before anything is written; every problem is reported at
    once. It must match this schema (else 422), and its entries must agree with each other and
    with the store: a number or ref used twice, a ticket of an unknown event or a ticket that
    would change are refused with 409. Strings are Unicode text (I-JSON, RFC 7493): an unpaired
    surrogate escape such as "\\ud800" is refused with 422."""

    model_config = ConfigDict(extra="forbid", strict=True, title="ImportDocument")

    events: list[EventIn] = []
    orders: list[OrderIn] = []


class SaleReport(BaseModel):
    """What the resale market reports with a sale; the body may also be left out."""

    model_config = ConfigDict(extra="forbid", strict=True, title="SaleReport")

    price: Money | None = Field(
        default=None,
        description=(
            "the price it sold for (default: the listed price); it must be within the event's "
            "resale bounds and the currency's decimals, else 409"
        ),
    )


# --- answers ---------------------------------------------------------------------------------


class Error(BaseModel):
    """Every refusal: a stable code, a message, and the problems found, if any."""

    error: str = Field(description="a stable code, e.g. `invalid_document`")
    message: str = Field(description="what went wrong, in English")
    problems: list[str] | None = Field(
        default=None, description="each problem, naming the field or entry at fault"
    )


class ImportCounts(_Answer):
    events: Count
    events_updated: Count
    orders: Count
    tickets: Count


class OrderLink(_Answer):
    number: str
    link: str = Field(pattern=r"^https://t\.me/\w+\?start=[A-Za-z0-9_-]+$")


class ImportResult(_Answer):
    created: ImportCounts
    orders: list[OrderLink] = Field(
        description=(
            "Every order of the document with a buyer deep link. Each call issues fresh links; "
            "earlier links stay valid."
        )
    )


class Buyer(_Answer):
    name: str
    email: str
    language: str


class Holder(_Answer):
    name: str
    email: str | None


class Listing(_Answer):
    """A ticket's live resale listing: its id is what `POST /api/resale/{listing}/sold`
    takes."""

    id: int = Field(ge=1)
    price: Amount
    currency: str = Field(pattern="^[A-Z]{3}$")
    listed_at: dt.datetime


class ListedTicket(_Answer):
    """A live listing of an event, as the resale market shows it."""

    id: int = Field(ge=1, description="the listing's id")
    ticket: str = Field(description="the ticket's reference")
    order: str = Field(description="the order's number")
    event: str
    price: Amount
    currency: str = Field(pattern="^[A-Z]{3}$")
    listed_at: dt.datetime


class ListingPage(_Answer):
    """A page of an event's live listings, oldest first. Ask for the next page with
    `after=<next>` while `next` is not null."""

    event: str
    listings: list[ListedTicket]
    next: int | None = Field(description="pass as `after` for the next page; null at the end")


class Ticket(_Answer):
    ref: str
    event: str
    event_name: str = Field(description="the event's name in the answer's language "
                                        "(Accept-Language, else the buyer's)")
    category: str = Field(description="the ticket's category in the answer's language")
    price: Amount
    state: TicketState
    holder: Holder | None = Field(description="the person named on the ticket, if any")
    barcode: str | None = Field(
        description="the valid barcode; null once the ticket left the order"
    )
    listing: Listing | None = Field(
        description="the live resale listing while the ticket is on resale, else null")


class Order(_Answer):
    number: str
    buyer: Buyer
    tickets: list[Ticket]


class Sale(_Answer):
    listing: int
    ticket: str
    price: Amount
    currency: str
    status: Literal["sold"]


class WebhookDelivery(_Answer):
    """A webhook message's delivery to one endpoint, and how it stands."""

    id: int = Field(ge=1, description="the delivery's id (`POST …/{id}/retry`)")
    webhook_id: str = Field(description="the message's `webhook-id`, the same on every try")
    type: str = Field(description="the message's type, e.g. `listing.created`")
    endpoint: str
    order: str = Field(description="the order the message is about")
    status: DeliveryState = Field(description=(
        "`pending` (on its way or waiting for its next try), `delivered` (2xx), `failed` (every "
        "try of the retry schedule failed), `stopped` (the endpoint answered 410 Gone)"))
    attempts: Count
    last_status: int | None = Field(description="the endpoint's last HTTP status, if any")
    last_error: str | None
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None = Field(description="while pending")
    finished_at: dt.datetime | None


class WebhookDeliveryPage(_Answer):
    deliveries: list[WebhookDelivery]
    next: int | None = Field(description="pass as `after` for the next page; null at the end")


class HealthChecks(_Answer):
    database: bool
    bot: bool


class Health(_Answer):
    status: Literal["ok", "unavailable"]
    checks: HealthChecks
