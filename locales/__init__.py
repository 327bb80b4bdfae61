"""The bot's languages: gettext catalogs compiled with Babel, Babel's formatting of dates,
money and numbers, and the rules that pick a language (for a person, a mail, words given per
language). Every face asks here; nothing outside this package names a language code.

Catalogs live beside this file as ``<lang>/LC_MESSAGES/messages.po`` (and the compiled ``.mo``);
``pybabel extract`` writes the template ``messages.pot`` (see the README). Adding a language is
its catalog plus one line in ``LANGUAGE_NAMES`` (docs/languages.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, dates, numbers
from babel.support import Translations

CATALOG_DIR = Path(__file__).parent
DOMAIN = "messages"
# The supported languages, each by its own name; adding one is its catalog plus one line here.
# Their order is the picker's, and the order in which a mail looks for its second language.
LANGUAGE_NAMES = {
    "en": "English",
    "fr": "Français",
    "nl": "Nederlands",
}
LANGUAGES = tuple(LANGUAGE_NAMES)
DEFAULT_LANGUAGE = "en"


def supported(code: str | None) -> str | None:
    """The supported language a Telegram ``language_code`` such as ``fr-BE`` stands for."""
    if not code:
        return None
    base = code.replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else None


def pick_language(*candidates: str | None) -> str:
    """The first supported language among the candidates, best first; else the default."""
    for candidate in candidates:
        language = supported(candidate)
        if language:
            return language
    return DEFAULT_LANGUAGE


def user_language(chosen: str | None, app: str | None, order: str | None) -> str:
    """The language a person reads in, on every face (chat, Mini App, mails, ticket files): the
    one they chose, else their Telegram app's, else their order's, else the default."""
    return pick_language(chosen, app, order)


def mail_languages(language: str | None) -> tuple[str, ...]:
    """The languages of a mail to someone who reads ``language``, in the order of its sections:
    theirs first, then the default language below it (below a mail in the default language, the
    next language of ``LANGUAGES``), so that whoever shares the mailbox can read it too. Two at
    most, however many languages there are."""
    main = pick_language(language)
    others = [other for other in LANGUAGES if other != main]
    below = DEFAULT_LANGUAGE if main != DEFAULT_LANGUAGE else next(iter(others), None)
    return (main, below) if below else (main,)


def words_in(words: str | Mapping[str, str], language: str) -> str:
    """Words given per language (an event's name, a ticket's category) in ``language``, else in
    the default language, else in another supported one (in the order of ``LANGUAGES``), else in
    any language given (the first by its code, the same on every database); words given as one
    plain string are that string."""
    if isinstance(words, str):
        return words
    for candidate in (language, DEFAULT_LANGUAGE, *LANGUAGES):
        if words.get(candidate):
            return words[candidate]
    return next((words[code] for code in sorted(words) if words[code]), "")


class Translator:
    """Everything language-dependent for one language: messages, dates, money, numbers."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.locale = Locale.parse(language)
        self._translations = Translations.load(str(CATALOG_DIR), [language], DOMAIN)
        self._marks: dict[str, list[str]] = {}

    def gettext(self, message: str) -> str:
        return self._translations.gettext(message)

    def words(self, words: str | Mapping[str, str]) -> str:
        """Words given per language, in this language (see ``words_in``)."""
        return words_in(words, self.language)

    def language_name(self, code: str) -> str:
        """A language's name as this language writes it inside a sentence ("français" in
        French, "French" in English), from Babel's locale data."""
        return self.locale.languages.get(code) or LANGUAGE_NAMES.get(code, code)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._translations.ngettext(singular, plural, n)

    def datetime(self, value: dt.datetime, timezone: str) -> str:
        """A moment in the event's own time zone, e.g. 'Sat 17 Jul 2027, 14:00'."""
        local = value.astimezone(ZoneInfo(timezone))
        day = dates.format_date(local, format=self._day_format(), locale=self.locale)
        time = dates.format_time(local, format="short", locale=self.locale)
        return self.gettext("{day}, {time}").format(day=day, time=time)

    def datetime_in_zone(self, value: dt.datetime, timezone: str) -> str:
        """A moment with its time zone named, for one read far from the event (a link's
        expiry): 'Mon, Dec 21, 2026, 8:37 AM (Central European Time)'."""
        zone = dates.get_timezone_name(ZoneInfo(timezone), "long", locale=self.locale,
                                       zone_variant="generic")
        return self.gettext("{datetime} ({timezone})").format(
            datetime=self.datetime(value, timezone), timezone=zone)

    def date(self, value: dt.datetime, timezone: str) -> str:
        local = value.astimezone(ZoneInfo(timezone))
        return dates.format_date(local, format="long", locale=self.locale)

    def _day_format(self) -> str:
        # Babel's skeletons pick the locale's own order: "Sat, Jul 17, 2027" / "sam. 17 juil. 2027"
        return self.locale.datetime_skeletons.get("yMMMEd") or "medium"

    def money(self, amount: Decimal, currency: str) -> str:
        return numbers.format_currency(amount, currency, locale=self.locale)

    def number(self, value: int) -> str:
        return numbers.format_decimal(value, locale=self.locale)

    def fill(self, template: str, params: dict, escape=str) -> str:
        """Translate ``template`` and fill in ``params``: datetimes in the ``timezone`` param's
        zone, decimals as money in the ``currency`` param's currency; ``escape`` each value."""
        values = dict(params)
        timezone = values.pop("timezone", "UTC")
        currency = values.get("currency")
        for key, value in values.items():
            if isinstance(value, dt.datetime):
                values[key] = self.datetime(value, timezone)
            elif isinstance(value, Decimal) and currency:
                values[key] = self.money(value, currency)
            elif isinstance(value, Mapping):
                values[key] = self.words(value)  # an event's name given per language
        return self.gettext(template).format(**{k: escape(v) for k, v in values.items()})

    def parse_money(self, text: str, currency: str) -> Decimal:
        """An amount of ``currency`` typed as the bot writes it, in this locale: the number
        ('50', '50,00' in French), with the currency's sign or code before or after it, with or
        without a space of any kind ('50 €', '50€', '€50', 'EUR 50'); ValueError if not."""
        number = "".join(text.split())  # any space: ' ', U+00A0, U+202F (what Babel prints)
        for mark in self._currency_marks(currency):
            if number[:len(mark)].casefold() == mark.casefold():
                number = number[len(mark):]
                break
            if number[-len(mark):].casefold() == mark.casefold():
                number = number[:-len(mark)]
                break
        return self.parse_decimal(number)

    def _currency_marks(self, currency: str) -> list[str]:
        """How an amount of ``currency`` may be marked: its code, its sign in this locale and
        in the default one ('€', '$US', '$'), its narrow sign; longest first. Worked out once
        per currency (translators are cached per language)."""
        if currency not in self._marks:
            self._marks[currency] = self._find_currency_marks(currency)
        return self._marks[currency]

    def _find_currency_marks(self, currency: str) -> list[str]:
        marks = {currency.upper()}
        for locale in (self.locale, Locale.parse(DEFAULT_LANGUAGE)):
            marks.add(numbers.get_currency_symbol(currency, locale=locale))
            marks.add(locale.currency_symbols.get(currency, currency))
        with contextlib.suppress(AttributeError, KeyError):
            marks.add(numbers.get_currency_narrow_symbol(currency, locale=self.locale))
        return sorted((mark for mark in marks if mark), key=len, reverse=True)

    def parse_decimal(self, text: str) -> Decimal:
        """A number typed by the user in their locale ('45,50' in French); ValueError if not."""
        cleaned = "".join(text.split()).replace("\u00a0", "").replace("\u202f", "")
        try:
            return numbers.parse_decimal(cleaned, locale=self.locale, strict=True)
        except (numbers.NumberFormatError, InvalidOperation):
            raise ValueError("not a number in this locale") from None


@functools.cache
def translator(language: str | None) -> Translator:
    """The (cached) translator of a language; unsupported ones fall back to English."""
    return Translator(pick_language(language))
