"""What an order document may hold (docs/spec.md, "Import format"): the value types and the entry
models each event and order is validated against, and how a validation problem is said to the
operator who fixes the file. The HTTP API publishes the entries' JSON schemas
(``bot/http/openapi.py``, ``bot/http/api_models.py``).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import zoneinfo
from collections.abc import Iterator
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from babel.numbers import list_currencies
from email_validator import SPECIAL_USE_DOMAIN_NAMES
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
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from locales import DEFAULT_LANGUAGE, LANGUAGES
from storage.errors import Refusal
from storage.keys import clean_email
from storage.models.orders import DEFAULT_RETENTION_DAYS
from storage.services.importing.stream import Entry
from storage.services.importing.stream import shown as _shown

MAX_MONEY = Decimal("9999999999.99")  # what Numeric(12, 2) holds
MAX_INTEGER = 2**31 - 1


# --- values -------------------------------------------------------------------------------------


def _printable(text: str) -> str:
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise ValueError(f"must not contain control characters (got {_shown(text)})")
    return text


# The JSON schemas below say exactly what the validators accept: the HTTP API publishes them
# (bot/http/openapi.py), and a request they allow must not be refused for its shape.
# What pydantic strips around text: Unicode's White_Space (not Python's str.strip()).
_SPACE = r"[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_VISIBLE = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_NOT_CONTROL = r"[^\x00-\x1f\x7f-\x9f]"


def _text(max_length: int) -> Any:
    # Spaces around are dropped; what remains has 1 to max_length characters, none of control.
    pattern = (
        f"^{_SPACE}*{_VISIBLE}(?:{_NOT_CONTROL}{{0,{max_length - 2}}}{_VISIBLE})?{_SPACE}*$"
    )
    return Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length),
        AfterValidator(_printable),
        WithJsonSchema({"type": "string", "pattern": pattern}),
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

    schema = {"type": "string", "pattern": f"^[!-~]{{1,{max_length}}}$"}
    return Annotated[str, AfterValidator(check), WithJsonSchema(schema)]


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


# RFC 3339's date-time (the schema's "format"), in this millennium: the event of a ticket.
_INSTANT = re.compile(
    r"2[0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def _instant(value: Any) -> dt.datetime:
    """An ISO 8601 date and time with its UTC offset, as an aware UTC datetime."""
    try:
        parsed = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is not None and parsed.utcoffset() is None:
        raise ValueError(
            f"has no UTC offset, so the moment is ambiguous: write it like {_INSTANT_EXAMPLE} "
            f"(got {_shown(value)})"
        )
    if parsed is None or not _INSTANT.fullmatch(value):
        raise ValueError(
            f"must be an ISO 8601 date and time with offset, like {_INSTANT_EXAMPLE}, "
            f"between the years 2000 and 2999 (got {_shown(value)})"
        )
    return parsed.astimezone(dt.UTC)


_TIME_ZONES = sorted(zoneinfo.available_timezones())
_CURRENCIES = sorted(code for code in list_currencies() if re.fullmatch(r"[A-Z]{3}", code))


def _time_zone(value: str) -> str:
    # The zones the schema lists: ZoneInfo also opens a few files that are no zone.
    if value not in _TIME_ZONES:
        raise ValueError(f"unknown time zone {_shown(value)}")
    return value


def _currency(value: str) -> str:
    if value not in _CURRENCIES:
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


# What email-validator accepts, a little narrowed: ASCII, and a top-level domain in lower case
# (it refuses special-use ones such as .test).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SPECIAL_USE = "|".join(sorted(SPECIAL_USE_DOMAIN_NAMES))
_EMAIL_PATTERN = (
    rf"^{_ATOM}{{1,32}}(?:\.{_ATOM}{{1,31}})?@(?:{_LABEL}\.){{1,4}}(?!(?:{_SPECIAL_USE})$)[a-z]{{2,63}}$"
)


def _whole(value: Any) -> Any:
    # JSON does not tell 5 from 5.0, nor does the schema's "integer": both are a whole number.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# The bounds before the validator: after it, pydantic writes them as "ge"/"le" in the schema.
Capacity = Annotated[int, Field(ge=0, le=MAX_INTEGER), BeforeValidator(_whole)]
# Ten years at most: personal data kept longer than that is no retention period.
RetentionDays = Annotated[int, Field(ge=0, le=3650), BeforeValidator(_whole)]

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
Money = Annotated[
    Decimal,
    BeforeValidator(_money),
    WithJsonSchema(
        {"type": "string", "pattern": r"^0*[0-9]{1,10}(\.[0-9]{1,2})?$", "examples": ["89.00"]}
    ),
]
Instant = Annotated[
    dt.datetime,
    BeforeValidator(_instant),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": f"^{_INSTANT.pattern}$",
            "examples": ["2027-07-17T14:00:00+02:00"],
        }
    ),
]
TimeZone = Annotated[
    str, AfterValidator(_time_zone), WithJsonSchema({"type": "string", "enum": _TIME_ZONES})
]
# A time of day, "HH:MM" on a 24-hour clock (the quiet hours of reminders).
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Currency = Annotated[
    str, AfterValidator(_currency), WithJsonSchema({"type": "string", "enum": _CURRENCIES})
]
WebAddress = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=500),
    AfterValidator(_web_address),
    # A little narrower than what is accepted (any case of "http", any host a URL parser takes).
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 500,
            "pattern": r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?([/?#][!-~]*)?$",
            "examples": ["https://festival.example/faq"],
        }
    ),
]
Email = Annotated[
    str,
    StringConstraints(max_length=254),
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "pattern": _EMAIL_PATTERN, "maxLength": 254}),
]


# --- the document's entries ---------------------------------------------------------------------


# A rule between the fields of an entry, which no JSON schema states: the HTTP API answers a
# document that breaks only such rules (and those between entries) with 409, not 422.
ENTRY_RULE = "entry_rule"


def entry_rule(message: str) -> PydanticCustomError:
    return PydanticCustomError(ENTRY_RULE, "{rule}", {"rule": message})


class _Entry(BaseModel):
    # Strict: "true" is not true and "5" is not 5; forbid unknown keys so typos are caught.
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
            raise entry_rule(f"min_price {low} is above max_price {high}")
        return self


class ExchangeIn(_Entry):
    # The schema says the two rules below: targets once each, at least one when enabled.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"properties": {"enabled": {"const": False}}},
                {"properties": {"targets": {"minItems": 1}}, "required": ["targets"]},
            ]
        }
    )

    enabled: bool
    targets: list[EventId] = Field(default=[], json_schema_extra={"uniqueItems": True})

    @model_validator(mode="after")
    def _targets_make_sense(self) -> ExchangeIn:
        if self.enabled and not self.targets:
            raise ValueError("is enabled but lists no targets")
        if len(set(self.targets)) != len(self.targets):
            raise ValueError("lists the same target twice")
        return self


class RemindersIn(_Entry):
    """When reminders go out for an event (storage/services/reminders.py); each part may be
    left out."""

    personalisation_days: list[Annotated[int, Field(ge=1, le=60)]] = Field(
        default=[7, 1], max_length=5, json_schema_extra={"uniqueItems": True})
    invitation_days: Annotated[int, Field(ge=0, le=30)] = 2  # 0: no such reminder
    event_day: bool = True
    # From, until: no chat reminder in between (the event's time zone); equal: none quiet.
    quiet_hours: list[ClockTime] = Field(default=["21:00", "09:00"], min_length=2, max_length=2)

    @model_validator(mode="after")
    def _days_once_each(self) -> RemindersIn:
        if len(set(self.personalisation_days)) != len(self.personalisation_days):
            raise entry_rule("personalisation_days lists the same day twice")
        return self


class EntryIn(_Entry):
    """How holders get in (docs/gate.md): ``static`` codes are a still QR of the barcode;
    ``rotating`` codes are live in the Mini App and change every ``period_seconds``, shown from
    ``reveal_hours_before`` the start on (None: at any time)."""

    code: Literal["static", "rotating"] = "static"
    period_seconds: Annotated[int, Field(ge=5, le=300), BeforeValidator(_whole)] = 15
    reveal_hours_before: Annotated[int, Field(ge=0, le=720),
                                   BeforeValidator(_whole)] | None = None


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
    capacity: Capacity | None = None
    reminders: RemindersIn | None = None
    entry: EntryIn = EntryIn()
    # Days after the event until its personal data are removed (docs/privacy.md).
    retention_days: RetentionDays = DEFAULT_RETENTION_DAYS

    @model_validator(mode="after")
    def _not_its_own_target(self) -> EventIn:
        if self.id in self.exchange.targets:
            raise entry_rule("lists itself as an exchange target")
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
            "reminders": self.reminders.model_dump(mode="json") if self.reminders else None,
            "entry_code": self.entry.code,
            "entry_period_seconds": self.entry.period_seconds,
            "entry_reveal_hours_before": self.entry.reveal_hours_before,
            "retention_days": self.retention_days,
        }


class BuyerIn(_Entry):
    name: Text200
    email: Email
    language: Literal[LANGUAGES] = DEFAULT_LANGUAGE  # any supported language


class TicketIn(_Entry):
    ref: TicketRef
    event: EventId
    category: Words200
    price: Money


class OrderIn(_Entry):
    number: OrderNumber
    buyer: BuyerIn
    tickets: list[TicketIn] = Field(min_length=1)


# --- how problems are said ------------------------------------------------------------------------


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


def described(error: ValidationError, entry: Entry) -> Iterator[str]:
    """Each problem pydantic found in ``entry``, named by where it is and said plainly."""
    for problem in error.errors(include_url=False):
        where = _where(entry.section, entry.index, entry.value, problem["loc"])
        yield f"{where}: {_message(problem)}"
