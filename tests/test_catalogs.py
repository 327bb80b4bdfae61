"""The catalogs are complete: every string the code marks is translated in French and English,
nothing is fuzzy, placeholders match, and the compiled .mo files match the .po sources."""

from __future__ import annotations

import ast
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
    assert french["🙋 Claim the ticket for myself"].endswith("Mettre le billet à mon nom")
    assert french["📧 Send to a friend"].endswith("Envoyer à un ami")
    # « Complété » is the shop's word for the state: kept, in a heading that reads as French.
    assert french["Completed ({count})"] == "Statut « Complété » ({count})"
    assert french["Usage: /status ORDER_NUMBER"].startswith("Utilisation : ")
    assert french["Usage: /history TICKET_REF"].startswith("Utilisation : ")


# --- text that escapes the catalogs ---------------------------------------------------------
#
# Babel's extractor does not see a message marked inside an f-string (f"<b>{_('Recent
# changes')}</b>" stayed English in every language), and a literal handed straight to what
# shows text to a person was never marked at all. This check reads the code's syntax tree and
# fails on both.

GETTEXT_NAMES = {"_", "N_", "gettext", "ngettext", "pgettext"}
# What puts its argument in front of a person: the chat's screens and messages, a press's
# answer, a button, the Mini App's and the HTTP API's error bodies.
# By name: the position of the argument that is shown.
TEXT_CALLS = {"say": 1, "show": 1, "answer": 1, "command_argument": 2, "json_error": 2,
              "Screen": 0, "button": 0, "InlineKeyboardButton": 0, "send_message": 0,
              "reply_text": 0, "edit_message_text": 0, "edit_message_caption": 0}
TEXT_KEYWORDS = {"text", "caption", "message"}
SCANNED = ("conversations", "bot", "storage", "locales")
NOT_SCANNED = ("bot/tools",)  # the emulator and the demo terminal talk to developers
_MARKUP = re.compile(r"<[^>]*>|\{[^}]*\}|&\w+;")


def _called_name(call: ast.Call) -> str | None:
    function = call.func
    if isinstance(function, ast.Name):
        return function.id
    if isinstance(function, ast.Attribute):
        return function.attr
    return None


def _marks_a_message(node: ast.AST) -> bool:
    return any(isinstance(inner, ast.Call) and _called_name(inner) in GETTEXT_NAMES
               for inner in ast.walk(node))


def _words(node: ast.AST) -> list[str]:
    """The literal text of a string expression (a constant, an f-string's fixed parts, a sum
    of them) that reads as words once markup and placeholders are taken out."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        parts = [node.value]
    elif isinstance(node, ast.JoinedStr):
        parts = [value.value for value in node.values
                 if isinstance(value, ast.Constant) and isinstance(value.value, str)]
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _words(node.left) + _words(node.right)
    else:
        return []
    return [part for part in parts if re.search(r"[^\W\d_]{2,}", _MARKUP.sub("", part))]


def escaping_text(source: str, filename: str = "<snippet>") -> list[str]:
    """Where ``source`` shows a person text that no catalog holds: a message marked inside an
    f-string, or a literal with words passed as the text of a call that shows it."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.JoinedStr) and any(
                _marks_a_message(value) for value in node.values
                if isinstance(value, ast.FormattedValue)):
            found.append(f"{filename}:{node.lineno}: a message marked inside an f-string")
        if isinstance(node, ast.Call) and _called_name(node) in TEXT_CALLS:
            position = TEXT_CALLS[_called_name(node)]
            shown = (node.args[position:position + 1]
                     + [k.value for k in node.keywords if k.arg in TEXT_KEYWORDS])
            for argument in shown:
                for words in _words(argument):
                    found.append(f"{filename}:{node.lineno}: text {words!r} shown untranslated")
    return found


def scanned_files() -> list[Path]:
    files = [path for package in SCANNED for path in sorted((ROOT / package).rglob("*.py"))]
    return [path for path in files
            if not any(path.relative_to(ROOT).as_posix().startswith(skip)
                       for skip in NOT_SCANNED)]


def test_no_user_visible_text_escapes_the_catalogs():
    found = [problem for path in scanned_files()
             for problem in escaping_text(path.read_text(), str(path.relative_to(ROOT)))]
    assert not found, "text that no catalog holds:\n" + "\n".join(found)


@pytest.mark.parametrize(("snippet", "problem"), [
    ("text = f\"<b>{e(_('Recent changes'))}</b>\\n{lines}\"", "inside an f-string"),
    ("line = f\"{t.gettext('Usage')}: /status\"", "inside an f-string"),
    ("await say(update, 'Done, thanks!')", "'Done, thanks!' shown untranslated"),
    ("await show(update, Screen('<b>Your order</b>', rows))", "'<b>Your order</b>'"),
    ("button(f'Ticket {ref}', data)", "'Ticket ' shown untranslated"),
    ("await answer(update, 'Sent' + suffix)", "'Sent' shown untranslated"),
    ("chat.send_message(text='Hello there')", "'Hello there' shown untranslated"),
])
def test_the_check_catches_text_that_escapes(snippet, problem):
    found = escaping_text(snippet)
    assert len(found) == 1 and problem in found[0], found


@pytest.mark.parametrize("snippet", [
    "await say(update, e(t.gettext('Done, thanks!')))",
    "line = f\"<b>{e(title)}</b> — {count}\"",
    "await show(update, Screen('\\n'.join(lines), rows))",
    "button('« ' + _('Back'), data)",
    "button(f'{icon} {label}', data)",
])
def test_the_check_lets_translated_text_and_markup_through(snippet):
    assert escaping_text(snippet) == []
