"""Names that differ only by look-alike letters of another alphabet ("Аlex" with a Cyrillic А,
"Αlex" with a Greek Α) are one name for the one-name-per-event rule: in the key, in the unique
constraint under concurrent writes, in the chat, and in keys migrated from before."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from storage import services
from storage.db.store import _alembic_config
from storage.errors import Refusal
from storage.keys import name_key
from tests.conftest import empty_database
from tests.factories import make_event, make_order
from tests.invariants import check_invariants
from tests.test_races import RACERS, outcome, refusal_codes

BUYER = 1001
CYRILLIC_A, GREEK_A, CYRILLIC_O = "\u0410", "\u0391", "\u043e"
LOOK_ALIKES = [f"{CYRILLIC_A}lex Durand", f"{GREEK_A}lex Durand", f"Alex Dur{'а'}nd",
               f"ALEX DUR{CYRILLIC_A}ND", "Alex Durand"]


def test_look_alike_letters_give_the_same_key():
    assert CYRILLIC_A not in "Alex" and "а" != "a"  # the test's strings are what they say
    assert {name_key(name) for name in LOOK_ALIKES} == {"alex durand"}
    assert name_key(f"Ib{CYRILLIC_O}n Jones") == name_key("Ibon Jones")


def test_different_names_stay_different():
    # UTS #39 folds "m" with "rn"; for people's names only one-letter look-alikes fold.
    assert name_key("Mamie Dupont") != name_key("Marnie Dupont")
    assert name_key("Иван Петров") != name_key("Ivan Petrov")  # another alphabet, not a fake
    assert len({name_key(letter) for letter in "abcdefghijklmnopqrstuvwxyz"}) == 26
    assert name_key("Straße") == name_key("STRASSE") and name_key("Élodie") == "elodie"


async def test_a_look_alike_name_is_refused_by_the_service(store):
    await make_event(store)
    _, (first, second, _) = await make_order(store, managers=(BUYER,))
    await services.claim_for_myself(store, BUYER, first, "Alex Durand")
    with pytest.raises(Refusal) as refused:
        await services.claim_for_myself(store, BUYER, second, f"{CYRILLIC_A}lex Durand")
    assert refused.value.code == "name_taken"


async def test_concurrent_claims_of_look_alike_names_have_one_winner(store):
    """The unique constraint on the key settles it: no check-then-write window."""
    await make_event(store)
    orders = [await make_order(store, tickets=1, managers=(BUYER + n,)) for n in range(RACERS)]
    names = [LOOK_ALIKES[n % len(LOOK_ALIKES)] for n in range(RACERS)]
    results = await asyncio.gather(*(
        outcome(services.claim_for_myself(store, BUYER + n, tickets[0], names[n]))
        for n, (_, tickets) in enumerate(orders)))
    assert len([r for r in results if isinstance(r, str)]) == 1
    assert refusal_codes(results) == {"name_taken"}
    await check_invariants(store)


async def test_a_look_alike_name_is_refused_as_it_is_typed(harness):
    from tests.test_typed_input import claim_for_myself, open_order

    buyer, _ = await open_order(harness, language="en", user_language="en")
    await claim_for_myself(buyer, "T-DF-100000-1", "Alex Durand")
    await buyer.press("Confirm")
    typed = await claim_for_myself(buyer, "T-DF-100000-2", f"{CYRILLIC_A}lex Durand")
    assert "already in the name of" in typed.text


# --- migrating keys made before ------------------------------------------------------------------


async def test_migration_recomputes_old_keys_and_keeps_a_clash_apart(tmp_path):
    from alembic import command

    url, kwargs = await empty_database(tmp_path, "old.db")
    config = _alembic_config(url, kwargs)
    await asyncio.to_thread(command.upgrade, config, "0002")
    old_keys = {  # as the old rule made them: case and accents folded, scripts kept
        1: ("Alex Durand", "alex durand"),
        2: (f"{CYRILLIC_A}lex Durand", f"{CYRILLIC_A.lower()}lex durand"),  # clashes with 1
        3: (f"Zo{CYRILLIC_O}é Martin", f"zo{CYRILLIC_O}e martin"),  # alone: takes the new key
    }
    engine = create_async_engine(url, **kwargs)
    async with engine.begin() as connection:
        await connection.execute(text(
            "INSERT INTO events (id, name, starts_at, timezone, venue_name, venue_city, currency,"
            " personalisation_enabled, resale_enabled, exchange_enabled, exchange_targets) VALUES"
            " ('fest', 'Fest', '2027-07-17 12:00:00+00:00', 'UTC', 'Parc', 'Nantes', 'EUR',"
            " true, false, false, '[]')"))
        await connection.execute(text(
            "INSERT INTO orders (id, number, buyer_name, buyer_email, language, created_at)"
            " VALUES (1, 'DF-1', 'Jürgen Straße', 'JS@example.org', 'fr',"
            " '2026-01-01 00:00:00+00:00')"))
        for ticket_id, (name, key) in old_keys.items():
            await connection.execute(text(
                "INSERT INTO tickets (id, ref, order_id, event_id, category, price, state,"
                " holder_name, name_key, barcode, version, updated_at) VALUES (:id, :ref, 1,"
                " 'fest', 'Pass', 10, 'completed', :name, :key, :barcode, 1,"
                " '2026-01-01 00:00:00+00:00')"),
                {"id": ticket_id, "ref": f"T-{ticket_id}", "name": name, "key": key,
                 "barcode": f"B{ticket_id}"})
    await asyncio.to_thread(command.upgrade, config, "head")
    async with engine.connect() as connection:
        keys = dict((await connection.execute(text("SELECT id, name_key FROM tickets"))).all())
        order_key = (await connection.execute(text("SELECT search_key FROM orders"))).scalar()
        ticket_key = (await connection.execute(
            text("SELECT search_key FROM tickets WHERE id = 3"))).scalar()
    await engine.dispose()
    # 1 takes the new key; 2 would clash with it and keeps its old one; 3 folds its Cyrillic о.
    assert keys == {1: "alex durand", 2: old_keys[2][1], 3: "zooe martin"}
    assert order_key == "df-1\njurgen strasse\njs@example.org"
    assert ticket_key == f"t-3\nzo{CYRILLIC_O}e martin"


# --- look-alike capitals (review of issue 22) ------------------------------------------------

CYRILLIC_EM, CHEROKEE_A = "\u041c", "\u13aa"


def test_look_alike_capitals_give_the_same_key():
    """The review's exact inputs: capitals whose small forms look like nothing Latin."""
    assert name_key(f"{CYRILLIC_EM}artin Dupont") == name_key("Martin Dupont")
    assert name_key(f"{CHEROKEE_A}lex") == name_key("Alex")


def test_the_key_stays_blind_to_case_in_every_alphabet():
    assert name_key("ИВАН ПЕТРОВ") == name_key("Иван Петров") != name_key("Ivan Petrov")
    assert name_key("ВОВА") == name_key("Вова")
    assert name_key("Ian Smith") != name_key("lan Smith")  # "I" and "l" stay two letters


@pytest.mark.parametrize(("first", "second"), [
    ("Martin Dupont", f"{CYRILLIC_EM}artin Dupont"), ("Alex", f"{CHEROKEE_A}lex")])
async def test_a_look_alike_capital_is_refused_by_the_service(store, first, second):
    await make_event(store)
    _, (ticket, other, _) = await make_order(store, managers=(BUYER,))
    await services.claim_for_myself(store, BUYER, ticket, first)
    with pytest.raises(Refusal) as refused:
        await services.claim_for_myself(store, BUYER, other, second)
    assert refused.value.code == "name_taken"


async def test_migration_0013_recomputes_keys_for_look_alike_capitals(tmp_path):
    from alembic import command

    url, kwargs = await empty_database(tmp_path, "old.db")
    config = _alembic_config(url, kwargs)
    await asyncio.to_thread(command.upgrade, config, "0010")
    old_keys = {  # as 0008's rule made them: folded first, so the capitals slipped through
        1: ("Martin Dupont", "martin dupont"),
        2: (f"{CYRILLIC_EM}artin Dupont", "ʍartin dupont"),  # clashes with 1: keeps its key
        3: (f"{CHEROKEE_A}lex", "Alex"),  # alone: takes the new key
    }
    engine = create_async_engine(url, **kwargs)
    async with engine.begin() as connection:
        await connection.execute(text(
            "INSERT INTO events (id, name, starts_at, timezone, venue_name, venue_city, currency,"
            " personalisation_enabled, resale_enabled, exchange_enabled, exchange_targets) VALUES"
            " ('fest', '\"Fest\"', '2027-07-17 12:00:00+00:00', 'UTC', '\"Parc\"', 'Nantes',"
            " 'EUR', true, false, false, '[]')"))
        await connection.execute(text(
            "INSERT INTO orders (id, number, buyer_name, buyer_email, language, created_at,"
            " search_key) VALUES (1, 'DF-1', 'Jo Martin', 'jo@example.org', 'fr',"
            " '2026-01-01 00:00:00+00:00', 'df-1')"))
        for ticket_id, (name, key) in old_keys.items():
            await connection.execute(text(
                "INSERT INTO tickets (id, ref, order_id, event_id, category, price, state,"
                " holder_name, name_key, barcode, version, updated_at, search_key) VALUES"
                " (:id, :ref, 1, 'fest', '\"Pass\"', 10, 'completed', :name, :key, :barcode, 1,"
                " '2026-01-01 00:00:00+00:00', :ref)"),
                {"id": ticket_id, "ref": f"T-{ticket_id}", "name": name, "key": key,
                 "barcode": f"B{ticket_id}"})
    await asyncio.to_thread(command.upgrade, config, "head")
    async with engine.connect() as connection:
        keys = dict((await connection.execute(text("SELECT id, name_key FROM tickets"))).all())
    await engine.dispose()
    assert keys == {1: "martin dupont", 2: "ʍartin dupont", 3: "alex"}


# --- the tables, streamed from the package's data (issue 24) -------------------------------------


def test_streamed_tables_are_those_of_the_package_s_parsed_data():
    """The folding tables read by streaming ``confusables.json`` are exactly those built from
    the package's ``confusables_data``, the dict it parses at import (which the bot no longer
    keeps)."""
    from confusable_homoglyphs.confusables import confusables_data

    from storage import skeleton

    from_parsed_data = skeleton.folding_from(confusables_data.items())
    assert skeleton._folding() == from_parsed_data
    assert skeleton._capitals() == skeleton.capitals_from(from_parsed_data)
    assert from_parsed_data[ord(CYRILLIC_A.lower())] == "a" and len(from_parsed_data) > 4000
    assert skeleton._capitals()[ord(CYRILLIC_EM)] == "M"
