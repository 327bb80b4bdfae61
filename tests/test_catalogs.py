"""The catalogs are complete: every string the code marks is translated in French and English,
nothing is fuzzy, placeholders match, and the compiled .mo files match the .po sources."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from locales import LANGUAGES

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}
PLACEHOLDER = re.compile(r"\{(\w*)\}")


def marked_messages() -> set[str]:
    """The msgids the code marks today, extracted the way `pybabel extract` does."""
    found: set[str] = set()
    for package in ("bot", "conversations", "storage", "locales"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def catalog(language: str):
    path = ROOT / "locales" / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        return read_po(handle, locale=language)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_marked_string_is_translated(language):
    translated = {m.id[0] if isinstance(m.id, tuple) else m.id: m for m in catalog(language)
                  if m.id}
    missing = sorted(marked_messages() - translated.keys())
    assert not missing, f"{language}: untranslated strings (run the catalog update): {missing}"
    empty = [key for key, m in translated.items()
             if not m.string or (isinstance(m.string, tuple) and not all(m.string))]
    assert not empty, f"{language}: empty translations: {empty}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_fuzzy_translations(language):
    po = catalog(language)
    assert not po.fuzzy, f"{language}: the catalog header is fuzzy"
    fuzzy = [m.id for m in po if m.id and m.fuzzy]
    assert not fuzzy, f"{language}: fuzzy translations: {fuzzy}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_match(language):
    wrong = []
    for message in catalog(language):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        expected = set(PLACEHOLDER.findall(ids[-1]))
        wrong += [message.id for s in strings if set(PLACEHOLDER.findall(s)) != expected]
    assert not wrong, f"{language}: placeholders differ: {wrong}"


def messages_of(compiled) -> dict:
    def frozen(value):
        return tuple(value) if isinstance(value, list | tuple) else value

    return {frozen(m.id): frozen(m.string) for m in compiled if m.id}


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalog_is_up_to_date(language):
    mo_path = ROOT / "locales" / language / "LC_MESSAGES" / "messages.mo"
    with mo_path.open("rb") as handle:
        compiled = messages_of(read_mo(handle))
    fresh = io.BytesIO()
    write_mo(fresh, catalog(language))
    fresh.seek(0)
    expected = messages_of(read_mo(fresh))
    assert compiled == expected, f"{language}: run `pybabel compile -d locales`"


def test_french_uses_the_shops_words():
    french = {m.id: m.string for m in catalog("fr") if m.id}
    assert french["My order {number}"] == "Ma commande {number}"
    assert french["🙋 Claim the ticket for myself"].endswith("Réclamer le billet pour moi-même")
    assert french["📧 Send to a friend"].endswith("Envoyer à un ami")
    assert french["Completed ({count})"].startswith("Complété")
