"""A fourth language is a catalog plus one line: a copy of ``locales/`` in a temporary folder
gets a throwaway German catalog and one line in ``LANGUAGE_NAMES``, and a fresh interpreter
that imports that copy speaks German in the language rule, the mails' rule, the chat's
language picker, the import format and the HTTP API — nothing else was touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
GERMAN = {
    "My order {number}": "Meine Bestellung {number}",
    "Language: {language}": "Sprache: {language}",
    "More actions — order {number}": "Weitere Aktionen — Bestellung {number}",
    "Your ticket for {event}": "Dein Ticket für {event}",
}
LINE = '    "de": "Deutsch",\n'


def add_german(locales: Path) -> None:
    """The two steps docs/languages.md describes: the catalog, and the line."""
    with (ROOT / "locales" / "en" / "LC_MESSAGES" / "messages.po").open("rb") as english:
        catalog = read_po(english, locale="de")
    for message in catalog:
        if message.id in GERMAN:
            message.string = GERMAN[message.id]
    folder = locales / "de" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with (folder / "messages.po").open("wb") as po, (folder / "messages.mo").open("wb") as mo:
        write_po(po, catalog)
        write_mo(mo, catalog)

    init = locales / "__init__.py"
    source = init.read_text(encoding="utf-8")
    table = source.index("LANGUAGE_NAMES = {")
    end = source.index("\n}\n", table) + 1
    init.write_text(source[:end] + LINE + source[end:], encoding="utf-8")
    assert len(init.read_text(encoding="utf-8").splitlines()) == len(source.splitlines()) + 1


CHECKS = textwrap.dedent('''
    from pathlib import Path
    import locales
    assert Path(locales.__file__).parent == Path(TMP) / "locales", locales.__file__
    from locales import LANGUAGES, mail_languages, translator, user_language

    assert LANGUAGES[-1] == "de"
    assert user_language(None, "de-AT", "fr") == "de"
    assert user_language("nl", "de", "fr") == "nl"
    assert mail_languages("de") == ("de", "en") and mail_languages("en") == ("en", "fr")
    german = translator("de")
    assert german.gettext("My order {number}") == "Meine Bestellung {number}"
    assert german.gettext("Your tickets") == "Your tickets"  # not translated yet: English
    assert german.ngettext("{count} ticket", "{count} tickets", 2) == "{count} tickets"
    assert german.money(__import__("decimal").Decimal("89"), "EUR") == "89,00\\xa0€"

    from conversations.more_actions import more_screen
    from storage.reads.views import OrderView
    order = OrderView(id=7, number="DF-1", buyer_name="Camille Martin",
                      buyer_email="camille@example.org", language="fr", events={}, tickets=())
    screen = more_screen(order, german)
    assert "Weitere Aktionen — Bestellung DF-1" in screen.text
    assert "Sprache: Deutsch" in screen.text
    picker = [button.text for button in screen.rows[0]]
    assert picker == ["English", "Français", "Nederlands", "✓ Deutsch"], picker

    from storage.services.importing.entries import BuyerIn
    assert BuyerIn(name="Lena Weber", email="lena@example.org", language="de").language == "de"

    from bot.http.shop_api import _LANG
    assert "de" in _LANG.schema["enum"]
    print("ok")
''')


def test_a_fourth_language_is_a_catalog_plus_one_line(tmp_path):
    shutil.copytree(ROOT / "locales", tmp_path / "locales",
                    ignore=shutil.ignore_patterns("__pycache__"))
    add_german(tmp_path / "locales")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    run = subprocess.run([sys.executable, "-c", f"TMP = {str(tmp_path)!r}\n{CHECKS}"],
                         cwd=tmp_path, env=environment, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"
