"""Validation and import of order documents (SPEC.md, "Import format").

A document is checked completely before anything is written: the shape and values of each entry,
then its internal consistency, then its agreement with the store. Every problem found is reported
at once, each naming the entry at fault. A valid document is written in one transaction with bulk
statements; importing it again changes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import unicodedata
import zoneinfo
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from babel.numbers import is_currency
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
    model_validator,
)
from sqlalchemy import Select, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import Store, utcnow
from storage.errors import Refusal
from storage.keys import clean_email
from storage.models import ActorKind, AuditEntry, Barcode, Event, Order, Ticket, TicketState
from storage.services import audit, new_barcode

MAX_DOCUMENT_BYTES = 50_000_000
MAX_PROBLEMS = 50
# SQLite allows at most 999 bound parameters per statement in older builds.
LOOKUP_CHUNK = 500
INSERT_CHUNK = 1000
WRITE_ATTEMPTS = 3
ANALYZE_AFTER_TICKETS = 10_000
MAX_MONEY = Decimal("9999999999.99")  # what Numeric(12, 2) holds
MAX_INTEGER = 2**31 - 1

_T = TypeVar("_T")
logger = logging.getLogger(__name__)


class ImportRejected(Exception):
    """A document refused as a whole; nothing of it was written."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems[:MAX_PROBLEMS]
        self.omitted = len(problems) - len(self.problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = list(self.problems)
        if self.omitted:
            lines.append(f"… and {self.omitted} more problems")
        return "\n".join(lines)


@dataclass(frozen=True)
class ImportReport:
    """What an import changed, and the order numbers the document holds (in its order)."""

    events_created: int
    events_updated: int
    orders_created: int
    tickets_created: int
    order_numbers: tuple[str, ...]


# --- values -------------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    """A value as JSON, clipped so one bad entry cannot flood the report."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:59] + "…"


def _printable(text: str) -> str:
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise ValueError(f"must not contain control characters (got {_shown(text)})")
    return text


def _text(max_length: int) -> Any:
    return Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length),
        AfterValidator(_printable),
    ]


_IDENTIFIER = re.compile(r"[!-~]+")


def _identifier(max_length: int) -> Any:
    # Identifiers are typed in commands (`ticketbot link DF-100234`), so no spaces or oddities.
    def check(value: str) -> str:
        if not _IDENTIFIER.fullmatch(value) or len(value) > max_length:
            raise ValueError(
                f"must be 1 to {max_length} visible ASCII characters without spaces "
                f"(got {_shown(value)})"
            )
        return value

    return Annotated[str, AfterValidator(check)]


_MONEY = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
_MONEY_EXAMPLE = 'must be a decimal string like "45.00"'


def _money(value: Any) -> Decimal:
    """A price given as a decimal string; a JSON number would already be a binary float."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            f"{_MONEY_EXAMPLE}, not the JSON number {value}: amounts are always quoted"
        )
    match = _MONEY.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{_MONEY_EXAMPLE} (got {_shown(value)})")
    if match[1]:
        raise ValueError(f"must not be negative (got {_shown(value)})")
    if match[3] is not None and len(match[3]) > 2:
        raise ValueError(f"must have at most 2 decimals (got {_shown(value)})")
    amount = Decimal(value)
    if amount > MAX_MONEY:
        raise ValueError(f"must be at most {MAX_MONEY} (got {_shown(value)})")
    return amount.quantize(Decimal("0.01"))


_INSTANT_EXAMPLE = '"2027-07-17T14:00:00+02:00"'


def _instant(value: Any) -> dt.datetime:
    """An ISO 8601 date and time with its UTC offset, as an aware UTC datetime."""
    try:
        parsed = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValueError(
            f"must be an ISO 8601 date and time with offset, like {_INSTANT_EXAMPLE} "
            f"(got {_shown(value)})"
        )
    if parsed.utcoffset() is None:
        raise ValueError(
            f"has no UTC offset, so the moment is ambiguous: write it like {_INSTANT_EXAMPLE} "
            f"(got {_shown(value)})"
        )
    return parsed.astimezone(dt.UTC)


def _time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {_shown(value)}") from None
    return value


def _currency(value: str) -> str:
    if not re.fullmatch(r"[A-Z]{3}", value) or not is_currency(value):
        raise ValueError(
            f'unknown currency {_shown(value)}: use an ISO 4217 code in capitals, like "EUR"'
        )
    return value


def _web_address(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"must be an http(s) address (got {_shown(value)})")
    if any(ch.isspace() for ch in value):
        raise ValueError(f"must not contain spaces (got {_shown(value)})")
    return value


def _email(value: str) -> str:
    try:
        return clean_email(value)
    except Refusal:
        raise ValueError(f"is not a valid e-mail address (got {_shown(value)})") from None


Text100 = _text(100)
Text200 = _text(200)

# A language code as a key of words given per language: ISO 639, lowercase ("fr", "en").
LANGUAGE_CODE = r"^[a-z]{2,3}$"
MAX_LANGUAGES = 20
# The names of the two forms of words; pydantic puts them in error locations, which drop them.
_PLAIN, _BY_LANGUAGE = "plain", "by_language"
_WORDS_EXAMPLE = '{"fr": "…", "en": "…"}'


def _words_form(value: Any) -> str | None:
    if isinstance(value, str):
        return _PLAIN
    return _BY_LANGUAGE if isinstance(value, dict) else None


def _words(max_length: int) -> Any:
    """Words shown to people (an event's name, a ticket's category): one plain string, or
    texts by language (``{"fr": "…", "en": "…"}``), each shown to a person in their language,
    else in the other, else in any given (``locales.words_in``)."""
    text = _text(max_length)
    by_language = Annotated[
        dict[Annotated[str, StringConstraints(pattern=LANGUAGE_CODE)], text],
        Field(
            min_length=1,
            max_length=MAX_LANGUAGES,
            # Keys must be language codes: say so to a schema reader too.
            json_schema_extra={"additionalProperties": False},
        ),
    ]
    return Annotated[
        Annotated[text, Tag(_PLAIN)] | Annotated[by_language, Tag(_BY_LANGUAGE)],
        Discriminator(
            _words_form,
            custom_error_type="words_type",
            custom_error_message=(
                f"must be a string, or texts by language like {_WORDS_EXAMPLE}"
            ),
        ),
    ]


Words200 = _words(200)
EventId = _identifier(100)
OrderNumber = _identifier(64)
TicketRef = _identifier(64)
Money = Annotated[Decimal, BeforeValidator(_money)]
Instant = Annotated[dt.datetime, BeforeValidator(_instant)]
TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_time_zone)]
Currency = Annotated[str, AfterValidator(_currency)]
WebAddress = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=500), AfterValidator(_web_address)
]
Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(_email)]


# --- the document's entries ---------------------------------------------------------------------


class _Entry(BaseModel):
    # Strict: "true" is not true and 5.0 is not 5; forbid unknown keys so typos are caught.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class VenueIn(_Entry):
    name: Words200
    city: Text100


class PersonalisationIn(_Entry):
    enabled: bool
    deadline: Instant | None = None


class ResaleIn(_Entry):
    enabled: bool
    min_price: Money | None = None
    # None means "at most the ticket's face value".
    max_price: Money | None = None
    deadline: Instant | None = None

    @model_validator(mode="after")
    def _bounds_in_order(self) -> ResaleIn:
        low, high = self.min_price, self.max_price
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_price {low} is above max_price {high}")
        return self


class ExchangeIn(_Entry):
    enabled: bool
    targets: list[EventId] = []

    @model_validator(mode="after")
    def _targets_make_sense(self) -> ExchangeIn:
        if self.enabled and not self.targets:
            raise ValueError("is enabled but lists no targets")
        if len(set(self.targets)) != len(self.targets):
            raise ValueError("lists the same target twice")
        return self


class EventIn(_Entry):
    id: EventId
    name: Words200
    starts_at: Instant
    timezone: TimeZone
    venue: VenueIn
    currency: Currency
    faq_url: WebAddress | None = None
    personalisation: PersonalisationIn = PersonalisationIn(enabled=True)
    resale: ResaleIn = ResaleIn(enabled=False)
    exchange: ExchangeIn = ExchangeIn(enabled=False)
    capacity: int | None = Field(default=None, ge=0, le=MAX_INTEGER)

    @model_validator(mode="after")
    def _not_its_own_target(self) -> EventIn:
        if self.id in self.exchange.targets:
            raise ValueError("lists itself as an exchange target")
        return self

    def columns(self) -> dict[str, Any]:
        """The ``events`` row this entry describes, but for its id."""
        return {
            "name": self.name,
            "starts_at": self.starts_at,
            "timezone": self.timezone,
            "venue_name": self.venue.name,
            "venue_city": self.venue.city,
            "currency": self.currency,
            "faq_url": self.faq_url,
            "personalisation_enabled": self.personalisation.enabled,
            "personalisation_deadline": self.personalisation.deadline,
            "resale_enabled": self.resale.enabled,
            "resale_min_price": self.resale.min_price,
            "resale_max_price": self.resale.max_price,
            "resale_deadline": self.resale.deadline,
            "exchange_enabled": self.exchange.enabled,
            "exchange_targets": list(self.exchange.targets),
            "exchange_capacity": self.capacity,
        }


class BuyerIn(_Entry):
    name: Text200
    email: Email
    language: Literal["fr", "en"] = "en"


class TicketIn(_Entry):
    ref: TicketRef
    event: EventId
    category: Words200
    price: Money


class OrderIn(_Entry):
    number: OrderNumber
    buyer: BuyerIn
    tickets: list[TicketIn] = Field(min_length=1)


# --- reading and checking a document ------------------------------------------------------------


@dataclass
class _Document:
    """The valid entries of a document, with their positions, and the problems found so far."""

    events: list[tuple[int, EventIn]] = field(default_factory=list)
    orders: list[tuple[int, OrderIn]] = field(default_factory=list)
    # Every event id the document declares, even in an invalid entry: a ticket naming it is
    # not "unknown", the entry is merely broken (and reported as such).
    declared_event_ids: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


_JSON_KINDS = {list: "an array: ", str: "a string: ", int: "a number: ", float: "a number: "}


def _parse(document: dict[str, Any] | bytes | str, max_bytes: int) -> dict[str, Any]:
    if isinstance(document, dict):
        return document
    size = len(document.encode()) if isinstance(document, str) else len(document)
    if size > max_bytes:
        raise ImportRejected([_too_big(size, max_bytes)])
    try:
        parsed = json.loads(document)
    except json.JSONDecodeError as error:
        raise ImportRejected(
            [f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"]
        ) from None
    except UnicodeDecodeError:
        raise ImportRejected(["not valid JSON: the text is not UTF-8"]) from None
    except RecursionError:
        raise ImportRejected(["not valid JSON: nested too deeply"]) from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise ImportRejected(["not valid JSON: a number has too many digits"]) from None
    if not isinstance(parsed, dict):
        raise ImportRejected(
            [
                f'the document must be a JSON object with "events" and "orders", '
                f"not {_JSON_KINDS.get(type(parsed), '')}{_shown(parsed)}"
            ]
        )
    return parsed


def _too_big(size: int, max_bytes: int) -> str:
    return f"the document has {size:,} bytes, more than the limit of {max_bytes:,}"


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > max_bytes:
                raise ImportRejected([_too_big(size, max_bytes)])
            # Read one byte too many: a pipe or a growing file reports no reliable size.
            data = file.read(max_bytes + 1)
    except OSError as error:
        raise ImportRejected([f"{path}: cannot read the file ({error.strerror})"]) from None
    if len(data) > max_bytes:
        raise ImportRejected([_too_big(len(data), max_bytes)])
    return data


def _check_document(raw: dict[str, Any]) -> _Document:
    """Validate every entry and the document's internal consistency (no store needed)."""
    document = _Document()
    sections = {"events": EventIn, "orders": OrderIn}
    for key in raw:
        if key not in sections:
            document.problems.append(
                f'{key}: not a known key (a document has only "events" and "orders")'
            )
    entries = {name: raw.get(name, []) for name in sections}
    for name, value in entries.items():
        if not isinstance(value, list):
            document.problems.append(f"{name}: must be a list (got {_shown(value)})")
            entries[name] = []
    document.declared_event_ids = {
        entry["id"]
        for entry in entries["events"]
        if isinstance(entry, dict) and isinstance(entry.get("id"), str)
    }
    document.events = _validate_entries(EventIn, "events", entries["events"], document.problems)
    document.orders = _validate_entries(OrderIn, "orders", entries["orders"], document.problems)
    document.problems.extend(_duplicates(document))
    return document


_M = TypeVar("_M", bound=_Entry)


def _validate_entries(
    model: type[_M], section: str, entries: list[Any], problems: list[str]
) -> list[tuple[int, _M]]:
    valid = []
    for index, entry in enumerate(entries):
        try:
            valid.append((index, model.model_validate(entry)))
        except ValidationError as error:
            problems.extend(
                f"{_where(section, index, entry, problem['loc'])}: {_message(problem)}"
                for problem in error.errors(include_url=False)
            )
    return valid


def _label(node: Any) -> str:
    """How an entry is called in messages: its id, number or ref, when it has one."""
    if isinstance(node, dict):
        for key in ("id", "number", "ref"):
            value = node.get(key)
            if isinstance(value, str) and value:
                return f" ({value if len(value) <= 40 else value[:39] + '…'})"
    return ""


def _where(section: str, index: int, entry: Any, loc: tuple[int | str, ...]) -> str:
    """``orders[3] (DF-100237).tickets[1] (T-100237-2).price`` for a pydantic error location."""
    text = f"{section}[{index}]{_label(entry)}"
    node = entry
    for key in loc:
        if key in (_PLAIN, _BY_LANGUAGE, "[key]"):
            continue  # the form of words a value was read as, or a key's own check
        if isinstance(key, int):
            node = node[key] if isinstance(node, list) and 0 <= key < len(node) else None
            text += f"[{key}]{_label(node)}"
        else:
            node = node.get(key) if isinstance(node, dict) else None
            text += f".{key}"
    return text


# Pydantic's errors, said the way an operator fixing a file wants to read them.
_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "not a known key (check its spelling)",
    "bool_type": "must be true or false (got {input})",
    "int_type": "must be a whole number (got {input})",
    "string_type": "must be a string (got {input})",
    "list_type": "must be a list (got {input})",
    "model_type": "must be an object (got {input})",
    "dict_type": "must be an object (got {input})",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
    "too_short": "must list at least {min_length} entry",
    "literal_error": "must be {expected} (got {input})",
    "greater_than_equal": "must be at least {ge} (got {input})",
    "less_than_equal": "must be at most {le} (got {input})",
}


def _message(problem: Any) -> str:
    context = problem.get("ctx", {})
    if problem["type"] == "value_error":
        return str(context["error"])
    if problem["loc"][-1:] == ("[key]",):
        return (f"{_shown(problem.get('input'))} is not a language code: use a lowercase "
                f'ISO 639 code like "fr" or "en"')
    template = _MESSAGES.get(problem["type"])
    if template is None:
        message = str(problem["msg"])
        return message[:1].lower() + message[1:]
    return template.format(input=_shown(problem.get("input")), **context)


def _duplicates(document: _Document) -> Iterator[str]:
    """Event ids, order numbers and ticket refs used twice within the document."""
    first_event: dict[str, str] = {}
    for index, event in document.events:
        where = f"events[{index}] ({event.id})"
        if event.id in first_event:
            yield f'{where}.id: "{event.id}" is already used by {first_event[event.id]}'
        first_event.setdefault(event.id, where)
    first_order: dict[str, str] = {}
    first_ticket: dict[str, str] = {}
    for index, order in document.orders:
        where = f"orders[{index}] ({order.number})"
        if order.number in first_order:
            yield f'{where}.number: "{order.number}" is already used by {first_order[order.number]}'
        first_order.setdefault(order.number, where)
        for position, ticket in enumerate(order.tickets):
            at = f"{where}.tickets[{position}] ({ticket.ref})"
            if ticket.ref in first_ticket:
                yield f'{at}.ref: "{ticket.ref}" is already used by {first_ticket[ticket.ref]}'
            first_ticket.setdefault(ticket.ref, at)


# --- agreement with the store -------------------------------------------------------------------


@dataclass
class _Stored:
    """The rows of the store that the document names."""

    events: dict[str, Event]
    order_ids: dict[str, int]
    # ref -> (order number, event id, category, price)
    tickets: dict[str, tuple[str, str, str, Decimal]]


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _rows_in(
    session: AsyncSession, statement: Select[Any], column: Any, values: set[str]
) -> list[Any]:
    """Rows of ``statement`` whose ``column`` is one of ``values``, a few hundred at a time."""
    rows: list[Any] = []
    for chunk in _chunks(sorted(values), LOOKUP_CHUNK):
        rows.extend(await session.execute(statement.where(column.in_(chunk))))
    return rows


async def _load_stored(session: AsyncSession, document: _Document) -> _Stored:
    orders = [order for _, order in document.orders]
    event_ids = document.declared_event_ids | {
        ticket.event for order in orders for ticket in order.tickets
    }
    for _, event in document.events:
        event_ids.update(event.exchange.targets)
    events = await _rows_in(session, select(Event), Event.id, event_ids)
    numbers = {order.number for order in orders}
    order_rows = await _rows_in(session, select(Order.number, Order.id), Order.number, numbers)
    refs = {ticket.ref for order in orders for ticket in order.tickets}
    ticket_statement = select(
        Ticket.ref, Order.number, Ticket.event_id, Ticket.category, Ticket.price
    ).join(Order, Ticket.order_id == Order.id)
    ticket_rows = await _rows_in(session, ticket_statement, Ticket.ref, refs)
    return _Stored(
        events={row[0].id: row[0] for row in events},
        order_ids={number: order_id for number, order_id in order_rows},
        tickets={row[0]: tuple(row[1:]) for row in ticket_rows},
    )


def _check_against_store(document: _Document, stored: _Stored) -> Iterator[str]:
    known = document.declared_event_ids | stored.events.keys()
    unknown = "unknown event {} (neither in this document nor in the store)"
    for index, event in document.events:
        for position, target in enumerate(event.exchange.targets):
            if target not in known:
                where = f"events[{index}] ({event.id}).exchange.targets[{position}]"
                yield f"{where}: {unknown.format(_shown(target))}"
    for index, order in document.orders:
        for position, ticket in enumerate(order.tickets):
            where = f"orders[{index}] ({order.number}).tickets[{position}] ({ticket.ref})"
            if ticket.event not in known:
                yield f"{where}.event: {unknown.format(_shown(ticket.event))}"
            if ticket.ref in stored.tickets:
                yield from _ticket_conflicts(
                    where, order.number, ticket, stored.tickets[ticket.ref]
                )


def _ticket_conflicts(
    where: str, number: str, ticket: TicketIn, stored: tuple[str, str, str, Decimal]
) -> Iterator[str]:
    stored_number, event_id, category, price = stored
    if stored_number != number:
        yield f"{where}.ref: already belongs to order {stored_number} in the store"
        return
    given = {"event": ticket.event, "category": ticket.category, "price": ticket.price}
    kept = {"event": event_id, "category": category, "price": price}
    for name, value in given.items():
        if value != kept[name]:
            yield (
                f"{where}.{name}: the store has this ticket with {name} {_shown(kept[name])}, "
                f"not {_shown(value)}; an imported ticket cannot change"
            )


# --- writing ------------------------------------------------------------------------------------


# Bulk rows go through the tables, not the mapped classes: the ORM's bulk path costs about
# twice as much per row and gives nothing back here.
_ORDERS, _TICKETS = Order.__table__, Ticket.__table__
_BARCODES, _AUDIT_ENTRIES = Barcode.__table__, AuditEntry.__table__


async def _log(session: AsyncSession, action: str, now: dt.datetime, actor: str,
               **details: Any) -> None:
    await audit(session, ActorKind.SYSTEM, None, action, now=now, source=actor, **details)


async def _write_events(
    session: AsyncSession, document: _Document, stored: _Stored, now: dt.datetime, actor: str
) -> tuple[int, int]:
    """Add new events and bring existing ones to the document's values; count both."""
    created = updated = 0
    for _, event in document.events:
        columns = event.columns()
        row = stored.events.get(event.id)
        if row is None:
            session.add(Event(id=event.id, **columns))
            await _log(session, "event_imported", now, actor, event=event.id)
            created += 1
            continue
        changed = sorted(name for name, value in columns.items() if getattr(row, name) != value)
        for name in changed:
            setattr(row, name, columns[name])
        if changed:
            await _log(session, "event_updated", now, actor, event=event.id, changed=changed)
            updated += 1
    return created, updated


async def _insert_orders(
    session: AsyncSession, orders: list[OrderIn], now: dt.datetime
) -> dict[str, int]:
    """Insert new orders in bulk; their ids by number."""
    rows = [
        {
            "number": order.number,
            "buyer_name": order.buyer.name,
            "buyer_email": order.buyer.email,
            "language": order.buyer.language,
            "created_at": now,
        }
        for order in orders
    ]
    ids: dict[str, int] = {}
    for chunk in _chunks(rows, INSERT_CHUNK):
        # RETURNING with many rows: SQLAlchemy's "insertmanyvalues" (SQLite >= 3.35, PostgreSQL).
        result = await session.execute(
            _ORDERS.insert().returning(_ORDERS.c.number, _ORDERS.c.id), chunk
        )
        ids.update({number: order_id for number, order_id in result})
    return ids


def _fresh_barcodes(count: int) -> list[str]:
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(new_barcode())
    return list(codes)


async def _insert_tickets(
    session: AsyncSession, tickets: list[tuple[int, TicketIn]], now: dt.datetime
) -> None:
    """Insert new tickets (order id, ticket) in bulk, each with its first barcode."""
    rows = [
        {
            "ref": ticket.ref,
            "order_id": order_id,
            "event_id": ticket.event,
            "category": ticket.category,
            "price": ticket.price,
            "state": TicketState.TO_ASSIGN,
            "barcode": code,
            "updated_at": now,
        }
        for (order_id, ticket), code in zip(tickets, _fresh_barcodes(len(tickets)), strict=True)
    ]
    for chunk in _chunks(rows, INSERT_CHUNK):
        result = await session.execute(
            _TICKETS.insert().returning(_TICKETS.c.id, _TICKETS.c.barcode), chunk
        )
        barcodes = [
            {"code": code, "ticket_id": ticket_id, "issued_at": now} for ticket_id, code in result
        ]
        await session.execute(_BARCODES.insert(), barcodes)


async def _write(
    session: AsyncSession, document: _Document, stored: _Stored, actor: str
) -> ImportReport:
    now = utcnow()
    events_created, events_updated = await _write_events(session, document, stored, now, actor)
    await session.flush()  # the events exist before tickets point at them
    orders = [order for _, order in document.orders]
    new_orders = [order for order in orders if order.number not in stored.order_ids]
    order_ids = stored.order_ids | await _insert_orders(session, new_orders, now)
    added: dict[str, int] = {}
    new_tickets = []
    for order in orders:
        for ticket in order.tickets:
            if ticket.ref not in stored.tickets:
                new_tickets.append((order_ids[order.number], ticket))
                added[order.number] = added.get(order.number, 0) + 1
    await _insert_tickets(session, new_tickets, now)
    await _audit_orders(session, added, order_ids, set(stored.order_ids), now, actor)
    return ImportReport(
        events_created=events_created,
        events_updated=events_updated,
        orders_created=len(new_orders),
        tickets_created=len(new_tickets),
        order_numbers=tuple(order.number for order in orders),
    )


async def _audit_orders(
    session: AsyncSession,
    added: dict[str, int],
    order_ids: dict[str, int],
    existing: set[str],
    now: dt.datetime,
    actor: str,
) -> None:
    """One entry per new order, and one per existing order that gained tickets.

    The rows are those ``services.audit`` writes, inserted in bulk: adding 100,000 ORM objects
    would cost more than the rest of the import."""
    rows = [
        {
            "at": now,
            "actor_kind": ActorKind.SYSTEM,
            "actor_telegram_id": None,
            "action": "tickets_imported" if number in existing else "order_imported",
            "order_id": order_ids[number],
            "ticket_id": None,
            "details": {"tickets": count, "source": actor},
        }
        for number, count in added.items()
    ]
    for chunk in _chunks(rows, INSERT_CHUNK):
        await session.execute(_AUDIT_ENTRIES.insert(), chunk)


async def _import_checked(store: Store, document: _Document, actor: str) -> ImportReport:
    async with store.write() as session:
        stored = await _load_stored(session, document)
        problems = document.problems + list(_check_against_store(document, stored))
        if problems:
            raise ImportRejected(problems)
        return await _write(session, document, stored, actor)


async def _import_with_retries(store: Store, document: _Document, actor: str) -> ImportReport:
    for _ in range(WRITE_ATTEMPTS - 1):
        try:
            return await _import_checked(store, document, actor)
        except IntegrityError:
            # On PostgreSQL another writer may insert one of our orders between our reads and
            # writes; the import is idempotent, so reading again settles it.
            continue
    return await _import_checked(store, document, actor)


async def _refresh_statistics(store: Store) -> None:
    """Let PostgreSQL know how big the tables have grown.

    Autovacuum analyzes them only some time after a bulk load; until then the planner believes
    them small and answers every lookup by ``ref`` or ``number`` with a sequential scan."""
    try:
        async with store.engine.begin() as connection:
            await connection.execute(text("ANALYZE orders, tickets, barcodes"))
    except SQLAlchemyError:
        # The import is committed; slower lookups until autovacuum catches up are no failure.
        logger.warning("ANALYZE after a large import failed", exc_info=True)


# --- the use cases ------------------------------------------------------------------------------


async def import_document(
    store: Store,
    document: dict[str, Any] | bytes | str,
    *,
    actor: str = "import",
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> ImportReport:
    """Check a whole order document, then write it in one transaction; refuse it if anything
    is wrong (``ImportRejected``), writing nothing. ``actor`` is recorded in the audit history."""
    # Parsing and validating a large document is CPU work: keep it off the event loop.
    raw = await asyncio.to_thread(_parse, document, max_bytes)
    checked = await asyncio.to_thread(_check_document, raw)
    report = await _import_with_retries(store, checked, actor)
    if not store.is_sqlite and report.tickets_created >= ANALYZE_AFTER_TICKETS:
        await _refresh_statistics(store)
    return report


async def import_file(
    store: Store, path: Path, *, actor: str = "import", max_bytes: int = MAX_DOCUMENT_BYTES
) -> ImportReport:
    """Import the order document in the JSON file at ``path`` (see ``import_document``)."""
    data = await asyncio.to_thread(_read_file, Path(path), max_bytes)
    return await import_document(store, data, actor=actor, max_bytes=max_bytes)
