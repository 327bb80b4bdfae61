"""Event words in two languages: an event's name, its venue's name and a ticket's category may
be imported per language, and every face (chat, e-mail, HTTP API) shows the viewer's language,
falling back to the other, then to any given; old files with plain strings import unchanged,
and the migration keeps old rows reading as before."""

from __future__ import annotations

import asyncio
import copy
import io
import json

import pypdf
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from locales import translator, words_in
from storage.db.store import migrate
from storage.models import Event, Ticket
from storage.services.importing.importer import ImportRejected, import_document
from tests.conftest import empty_database, sample_document
from tests.test_buyer_flow import BUYER, press_send, send_to_friend
from tests.test_http_api import TOKEN

NAMES = {"fr": "Dreamfest 2027 — Samedi", "en": "Dreamfest 2027 — Saturday"}
VENUES = {"fr": "Parc des Expositions", "en": "Exhibition Park"}
CATEGORIES = {"fr": "Pass samedi", "en": "Saturday pass"}


def bilingual_document(language: str = "fr") -> dict:
    document = copy.deepcopy(sample_document(language=language))
    saturday = document["events"][0]
    saturday["name"] = dict(NAMES)
    saturday["venue"]["name"] = dict(VENUES)
    for ticket in document["orders"][0]["tickets"]:
        ticket["category"] = dict(CATEGORIES)
    return document


# --- choosing the words ---------------------------------------------------------------------


def test_words_are_the_viewers_language_else_the_other_else_any_given():
    assert words_in("Pass samedi", "en") == "Pass samedi"
    assert words_in(CATEGORIES, "fr") == "Pass samedi"
    assert words_in(CATEGORIES, "en") == "Saturday pass"
    assert words_in({"fr": "Pass samedi"}, "en") == "Pass samedi"
    assert words_in({"en": "Saturday pass"}, "fr") == "Saturday pass"
    assert words_in({"it": "Sabato", "de": "Samstag"}, "fr") == "Samstag"  # first by code
    assert translator("fr").fill("{event}", {"event": NAMES}) == NAMES["fr"]


# --- the import format ----------------------------------------------------------------------


async def test_words_by_language_are_stored_as_given_and_old_files_stay_plain(store):
    await import_document(store, bilingual_document())
    plain = sample_document(prefix="OLD")
    del plain["events"]
    await import_document(store, plain)

    async with store.read() as session:
        saturday = await session.get(Event, "fest-sat")
        sunday = await session.get(Event, "fest-sun")
        categories = dict((await session.execute(select(Ticket.ref, Ticket.category))).all())
    assert (saturday.name, saturday.venue_name) == (NAMES, VENUES)
    assert (sunday.name, sunday.venue_name) == ("Dreamfest 2027 — Sunday", "Parc des Expositions")
    assert categories["T-DF-100000-1"] == CATEGORIES
    assert categories["T-OLD-100000-1"] == "Pass samedi"


async def test_reimporting_words_by_language_changes_nothing(store):
    await import_document(store, bilingual_document())
    again = await import_document(store, bilingual_document())
    assert (again.events_updated, again.orders_created, again.tickets_created) == (0, 0, 0)


async def test_an_event_name_may_gain_its_translation_by_a_later_import(store):
    await import_document(store, sample_document())
    translated = sample_document()
    translated["events"][0]["name"] = dict(NAMES)
    report = await import_document(store, translated)
    assert report.events_updated == 1
    async with store.read() as session:
        assert (await session.get(Event, "fest-sat")).name == NAMES


@pytest.mark.parametrize(
    "value, message",
    [
        ({}, "events[0] (fest-sat).name: must list at least 1 entry"),
        ({"FR": "Samedi"}, 'events[0] (fest-sat).name.FR: "FR" is not a language code'),
        ({"fr": "  "}, "events[0] (fest-sat).name.fr: must not be empty"),
        ({"fr": 5}, "events[0] (fest-sat).name.fr: must be a string (got 5)"),
        (["Samedi"], "events[0] (fest-sat).name: must be a string, or texts by language like"),
        (5, "events[0] (fest-sat).name: must be a string, or texts by language like"),
    ],
)
async def test_bad_words_are_refused_naming_the_entry(store, value, message):
    bad = sample_document()
    bad["events"][0]["name"] = value
    with pytest.raises(ImportRejected) as refused:
        await import_document(store, bad)
    assert any(message in problem for problem in refused.value.problems), refused.value.problems


# --- chat, e-mail, HTTP API -----------------------------------------------------------------


async def open_bilingual_order(harness, user_language: str):
    await harness.import_orders(bilingual_document(language="fr"))
    buyer = harness.user(BUYER, "Camille", "Martin", language_code=user_language)
    return buyer, await buyer.start(await harness.order_link("DF-100000"))


@pytest.mark.parametrize("language", ["fr", "en"])
async def test_the_chat_shows_the_users_language(harness, language):
    other = "en" if language == "fr" else "fr"
    buyer, overview = await open_bilingual_order(harness, language)
    for words in (NAMES, VENUES, CATEGORIES):
        assert words[language] in overview.text
        assert words[other] not in overview.text
    menu = await buyer.press("T-DF-100000-1")
    assert f"{CATEGORIES[language]} — {NAMES[language]}" in menu.text


async def test_the_invitation_mail_shows_each_language_its_own_words(harness):
    buyer, _ = await open_bilingual_order(harness, "en")
    await send_to_friend(buyer, "T-DF-100000-1", "alex@example.org")
    await press_send(buyer)

    mail = await harness.next_mail()
    # Written in the inviter's language (English) first, then in French below the line.
    text = mail.get_body(("plain",)).get_content()
    english, french = text.split("-" * 60)
    assert NAMES["en"] in mail["Subject"]
    for words in (NAMES, VENUES, CATEGORIES):
        assert words["fr"] in french and words["en"] not in french
        assert words["en"] in english and words["fr"] not in english
    html = mail.get_body(("html",)).get_content()
    assert NAMES["fr"] in html and NAMES["en"] in html


async def test_the_api_shows_the_asked_language_else_the_buyers(store):
    from tests.test_http_api import open_api

    api = await open_api(store)
    try:
        await import_document(store, bilingual_document(language="fr"))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        answers = {}
        for asked in (None, "en-GB,en;q=0.9", "de, fr;q=0.5, en;q=0.1"):
            extra = {"Accept-Language": asked} if asked else {}
            async with api.client.get("/api/orders/DF-100000",
                                      headers=headers | extra) as response:
                answers[asked] = (response.headers["Content-Language"], await response.json())
    finally:
        await api.client.close()
    for asked, language in ((None, "fr"), ("en-GB,en;q=0.9", "en"),
                            ("de, fr;q=0.5, en;q=0.1", "fr")):
        content_language, order = answers[asked]
        ticket = order["tickets"][0]
        assert content_language == language
        assert (ticket["event_name"], ticket["category"]) == (NAMES[language],
                                                              CATEGORIES[language])


# --- the migration ----------------------------------------------------------------------------


async def test_the_migration_keeps_existing_rows_reading_as_before(tmp_path):
    from alembic import command

    from storage.db.store import _alembic_config

    url, kwargs = await empty_database(tmp_path, "old.db")
    await asyncio.to_thread(command.upgrade, _alembic_config(url, kwargs), "0002")
    engine = create_async_engine(url, **kwargs)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql(
                "INSERT INTO events (id, name, starts_at, timezone, venue_name, venue_city, "
                "currency, personalisation_enabled, resale_enabled, exchange_enabled, "
                "exchange_targets) VALUES ('e', 'Fête « été »', '2027-07-17 12:00:00+00', "
                "'Europe/Paris', 'Parc', 'Nantes', 'EUR', true, false, false, '[]')")
        await asyncio.to_thread(migrate, url, **kwargs)
        async with engine.connect() as connection:
            row = (await connection.execute(select(Event.name, Event.venue_name))).one()
            stored = (await connection.exec_driver_sql(
                "SELECT CAST(name AS TEXT), CAST(venue_name AS TEXT) FROM events")).one()
    finally:
        await engine.dispose()

    assert tuple(row) == ("Fête « été »", "Parc")
    assert [json.loads(value) for value in stored] == ["Fête « été »", "Parc"]  # JSON text


# --- the ticket in hand and the gate ------------------------------------------------------------


async def test_the_ticket_and_its_files_show_the_holders_language(store):
    from conversations.presentation.ticket_files import pdf_file, ticket_ics
    from conversations.ticket_show import ticket_caption
    from storage import services
    from storage.ticket_delivery import held_card

    await import_document(store, bilingual_document(language="fr"))
    await services.open_link(store, BUYER, await services.create_order_link(store, "DF-100000"))
    async with store.read() as session:
        ticket_id = await session.scalar(select(Ticket.id).order_by(Ticket.id))
    await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin")
    card = await held_card(store, BUYER, ticket_id)
    for language in ("fr", "en"):
        caption = ticket_caption(card, translator(language))
        assert NAMES[language] in caption and CATEGORIES[language] in caption
        assert VENUES[language] in caption
        text = pypdf.PdfReader(io.BytesIO(await pdf_file((card,), language))).pages[0] \
            .extract_text()
        assert CATEGORIES[language] in text and VENUES[language] in text
        calendar = ticket_ics(card.in_language(language), language).decode()
        assert NAMES[language] in calendar.replace("\r\n ", "")


async def test_the_gate_shows_categories_in_the_scanners_language(store):
    from tests.test_gate import GATE_TOKENS, open_gate

    await import_document(store, bilingual_document(language="fr"))
    gate = await open_gate(store)
    try:
        answers = {}
        for asked in (None, "fr-FR"):
            headers = {"Authorization": f"Bearer {GATE_TOKENS[0]}"} | (
                {"Accept-Language": asked} if asked else {})
            async with gate.client.get("/api/events/fest-sat/barcodes",
                                       headers=headers) as response:
                answers[asked] = await response.json()
        async with store.read() as session:
            barcode = await session.scalar(select(Ticket.barcode).order_by(Ticket.id))
        scan = {"barcode": barcode, "gate": "north", "nonce": "n-1"}
        french = {"Authorization": f"Bearer {GATE_TOKENS[0]}", "Accept-Language": "fr"}
        async with gate.client.post("/api/scan", headers=french, json=scan) as response:
            scanned = await response.json()
    finally:
        await gate.client.close()
    assert answers[None].get("valid"), answers[None]
    assert {entry["category"] for entry in answers[None]["valid"]} == {CATEGORIES["en"]}
    assert {entry["category"] for entry in answers["fr-FR"]["valid"]} == {CATEGORIES["fr"]}
    assert (scanned["result"], scanned["category"]) == ("ok", CATEGORIES["fr"])
