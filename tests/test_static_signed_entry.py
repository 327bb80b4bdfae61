"""A static event's signed code (storage/entry_codes.py): what its QR code holds, checked by
the gate API (one scan, an offline upload) and by anyone holding the event's entry kit; a
forged or foreign code is ``unknown``, the code of an old holder ``void``, the bare barcode
typed by hand still gets in."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from storage import entry_codes, services, ticket_delivery
from storage.db.store import utcnow
from storage.models import EntryKey, Ticket
from storage.services import entry_keys
from storage.services.importing.importer import import_document
from tests.conftest import sample_document
from tests.test_gate import BUYER, barcode_of, open_gate
from tests.test_rotating_entry import live_code, offline_scan, rotating_tickets, upload

HOLDERS = ("Ann Holder", "Bea Holder", "Cy Holder")


@pytest.fixture
async def gate(store):
    opened = await open_gate(store)
    try:
        yield opened
    finally:
        await opened.client.close()


async def static_tickets(store) -> list[int]:
    """The Saturday tickets of a static event (the default policy), all claimed by the buyer."""
    await import_document(store, sample_document(orders=1, tickets=3))
    token = await services.create_order_link(store, "DF-100000")
    await services.open_link(store, BUYER, token)
    async with store.read() as session:
        tickets = list(await session.scalars(
            select(Ticket.id).where(Ticket.event_id == "fest-sat").order_by(Ticket.id)))
    for name, ticket_id in zip(HOLDERS, tickets, strict=False):
        await services.claim_for_myself(store, BUYER, ticket_id, name)
    return tickets


async def signed_code(store, ticket_id: int) -> str:
    """What the ticket's QR code holds, as the chat, PDF and Mini App draw it."""
    card = await ticket_delivery.held_card(store, BUYER, ticket_id)
    assert card.qr_text == card.signed_code and card.signed_code.startswith("TB1.")
    return card.signed_code


def forged(code: str) -> str:
    """The code with one character of its signature changed."""
    head, signature = code.rsplit(".", 1)
    return f"{head}.{('B' if signature[0] == 'A' else 'A')}{signature[1:]}"


async def test_a_static_signed_code_scans_ok_and_names_its_ticket(store, gate):
    ticket_id = (await static_tickets(store))[0]
    code = await signed_code(store, ticket_id)
    parsed = entry_codes.parse_static(code)
    assert parsed.token == entry_codes.token_of(await barcode_of(store, ticket_id))
    assert len(code) < 160 and "barcode" not in code  # the barcode itself is not in it

    answer = await gate.scan(code)
    assert answer.status == 200
    assert (answer.json["result"], answer.json["ticket"], answer.json["event"]) == (
        "ok", parsed.ticket_ref, "fest-sat")
    assert answer.json["holder"] == "Ann Holder"
    # The ticket is used: its code again, or its barcode typed by hand, is already scanned.
    assert (await gate.scan(code)).json["result"] == "already_scanned"
    typed = await gate.scan(await barcode_of(store, ticket_id))
    assert typed.json["result"] == "already_scanned"


async def test_the_bare_barcode_typed_by_hand_still_gets_in(store, gate):
    ticket_id = (await static_tickets(store))[1]
    answer = await gate.scan(await barcode_of(store, ticket_id))
    assert answer.json["result"] == "ok"
    assert (await gate.scan(await signed_code(store, ticket_id))).json["result"] == (
        "already_scanned")


async def test_forged_and_foreign_signed_codes_are_unknown_and_use_nothing(store, gate):
    ticket_id = (await static_tickets(store))[0]
    code = await signed_code(store, ticket_id)
    key_id = code.split(".")[1]
    stranger = entry_codes.new_key()  # a key that is not ours, under our key's id
    barcode = await barcode_of(store, ticket_id)
    made_up = entry_codes.static_code(key_id, stranger.private_key, "fest-sat",
                                      code.split(".")[2], barcode)
    unknown_key = entry_codes.static_code("0badc0de", stranger.private_key, "fest-sat",
                                          code.split(".")[2], barcode)
    other_event = entry_codes.static_code(  # our key, but signed for another event's text
        key_id, (await _private_key(store, "fest-sat")), "fest-sun", code.split(".")[2],
        barcode)
    for bad in (forged(code), made_up, unknown_key, other_event, code[:-1], code + "A"):
        answer = await gate.scan(bad)
        assert answer.status == 200 and answer.json["result"] == "unknown", bad
    assert (await gate.scan(code)).json["result"] == "ok"  # nothing above used it


async def _private_key(store, event_id: str) -> bytes:
    async with store.write_connection() as connection:
        return (await entry_keys.live_key(connection, event_id, utcnow())).private_key


async def test_an_old_holders_signed_code_is_void_and_listed_in_the_kit(store, gate):
    ticket_id = (await static_tickets(store))[0]
    old = await signed_code(store, ticket_id)
    await services.rename_holder(store, BUYER, ticket_id, "Alex Dupont")
    new = await signed_code(store, ticket_id)
    assert new != old
    assert (await gate.scan(old)).json["result"] == "void"
    kit = (await gate.call("GET", "/api/events/fest-sat/entry")).json
    assert kit["code"] == "static"
    assert entry_codes.parse_static(old).token in kit["voided"]
    assert entry_codes.parse_static(new).token not in kit["voided"]
    # The kit alone checks the new code as the server does: its key signed it.
    parsed = entry_codes.parse_static(new)
    (key,) = [each for each in kit["keys"] if each["key_id"] == parsed.key_id]
    assert entry_codes.static_genuine(parsed, "fest-sat", entry_codes.unb64(key["public_key"]))
    assert not entry_codes.static_genuine(entry_codes.parse_static(forged(new)), "fest-sat",
                                          entry_codes.unb64(key["public_key"]))
    assert (await gate.scan(new)).json["result"] == "ok"


async def test_a_printed_code_outlives_a_key_rotation(store, gate):
    ticket_id = (await static_tickets(store))[0]
    printed = await signed_code(store, ticket_id)
    await entry_keys.rotate_key(store, "fest-sat")
    async with store.write() as session:  # retired long ago, past the grace of live codes
        await session.execute(update(EntryKey).where(EntryKey.retired_at.is_not(None))
                              .values(retired_at=utcnow() - dt.timedelta(days=2)))
    drawn_now = await signed_code(store, ticket_id)
    assert drawn_now.split(".")[1] != printed.split(".")[1]  # signed with the new key
    kit = (await gate.call("GET", "/api/events/fest-sat/entry")).json
    assert {key["key_id"] for key in kit["keys"]} == {printed.split(".")[1],
                                                      drawn_now.split(".")[1]}
    assert (await gate.scan(printed)).json["result"] == "ok"


async def test_static_signed_codes_scanned_offline_are_uploaded(store, gate):
    first, second, _ = await static_tickets(store)
    now = utcnow()
    scans = [offline_scan(await signed_code(store, first), "static-off-1", now),
             offline_scan(forged(await signed_code(store, second)), "static-off-2", now)]
    answer = await upload(gate, scans)
    assert answer.status == 200
    assert [each["result"] for each in answer.json["answers"]] == ["ok", "unknown"]
    assert (await upload(gate, scans)).json == answer.json  # the same upload: applied once


async def test_a_static_form_code_of_a_rotating_ticket_is_stale(store, gate):
    """A rotating ticket gets in only by its live code: a still code, even one signed by the
    event's key, is a picture."""
    ticket_id = (await rotating_tickets(store))[0]
    await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin")
    live = entry_codes.parse(await live_code(store, ticket_id))
    still = entry_codes.static_code(live.key_id, await _private_key(store, "fest-sat"),
                                    "fest-sat", live.ticket_ref,
                                    await barcode_of(store, ticket_id))
    assert (await gate.scan(still)).json["result"] == "stale"
    # Nor is a live code stripped of its step and one-time code a static code.
    stripped = ".".join((await live_code(store, ticket_id)).split(".")[:5])
    assert (await gate.scan(stripped)).json["result"] == "unknown"
