"""Rotating codes and the offline gate, over real HTTP against the real aiohttp app and store:
the entry policy in the import, live codes (current step ± 1 ok, older stale), void codes after
a holder change, made-up codes, the entry kit scanners sync, and uploads of offline scans
(applied once, double entries by two offline devices flagged)."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt

import pytest
from sqlalchemy import delete, func, select, update

from conversations import staff as staff_screens
from locales import translator
from storage import entry_codes, services
from storage.db.store import utcnow
from storage.models import AuditEntry, EntryKey, Event, GateScan, Ticket
from storage.services import entry_keys, staff
from storage.services.importing.importer import ImportRejected, import_document
from tests.conftest import sample_document
from tests.test_gate import BUYER, GATE_TOKENS, barcode_of, count_scans, open_gate

STAFF = 9001
PERIOD = 300  # long, so that no test crosses a step boundary by accident


@pytest.fixture
async def gate(store):
    opened = await open_gate(store)
    try:
        yield opened
    finally:
        await opened.client.close()


def rotating_document(orders: int = 1, tickets: int = 3, **entry) -> dict:
    document = copy.deepcopy(sample_document(orders=orders, tickets=tickets))
    document["events"][0]["entry"] = {"code": "rotating", "period_seconds": PERIOD, **entry}
    return document


async def rotating_tickets(store, tickets: int = 3) -> list[int]:
    await import_document(store, rotating_document(tickets=tickets))
    token = await services.create_order_link(store, "DF-100000")
    await services.open_link(store, BUYER, token)
    async with store.read() as session:
        return list(await session.scalars(select(Ticket.id).order_by(Ticket.id)))


def now_step() -> int:
    return entry_codes.step_at(utcnow().timestamp(), PERIOD)


async def live_code(store, ticket_id: int, shift: int = 0) -> str:
    signed = await entry_keys.signed_ticket(store, ticket_id)
    return signed.code_at(now_step() + shift)


async def upload(gate, scans, token=GATE_TOKENS[0]):
    return await gate.call("POST", "/api/scans", body={"scans": scans}, token=token)


def offline_scan(code: str, nonce: str, at: dt.datetime, gate_name: str = "field-1") -> dict:
    return {"barcode": code, "gate": gate_name, "nonce": nonce, "scanned_at": at.isoformat()}


# --- the entry policy ---------------------------------------------------------------------------


async def test_the_import_stores_the_entry_policy_and_static_is_the_default(store):
    document = rotating_document(reveal_hours_before=3)
    await import_document(store, document)
    async with store.read() as session:
        saturday = await session.get(Event, "fest-sat")
        sunday = await session.get(Event, "fest-sun")
    assert (saturday.entry_code, saturday.entry_period_seconds,
            saturday.entry_reveal_hours_before) == ("rotating", PERIOD, 3)
    assert (sunday.entry_code, sunday.entry_period_seconds,
            sunday.entry_reveal_hours_before) == ("static", 15, None)


@pytest.mark.parametrize(("entry", "expected"), [
    ({"code": "dynamic"}, "entry.code"),
    ({"code": "rotating", "period_seconds": 4}, "entry.period_seconds"),
    ({"code": "rotating", "period_seconds": 301}, "entry.period_seconds"),
    ({"code": "rotating", "reveal_hours_before": -1}, "entry.reveal_hours_before"),
    ({"code": "rotating", "period_seconds": "15"}, "entry.period_seconds"),
    ({"code": "rotating", "colour": "red"}, "entry.colour"),
])
async def test_a_bad_entry_policy_is_refused_and_nothing_is_written(store, entry, expected):
    document = sample_document()
    document["events"][0]["entry"] = entry
    with pytest.raises(ImportRejected) as refused:
        await import_document(store, document)
    assert any(expected in problem for problem in refused.value.problems), refused.value.problems
    async with store.read() as session:
        assert await session.scalar(select(func.count()).select_from(Event)) == 0


# --- live codes ---------------------------------------------------------------------------------


async def test_the_code_changes_each_period(store):
    ticket_id = (await rotating_tickets(store))[0]
    signed = await entry_keys.signed_ticket(store, ticket_id)
    codes = {signed.code_at(step) for step in range(now_step(), now_step() + 20)}
    assert len(codes) == 20
    assert all(len(code) <= entry_codes.MAX_CODE for code in codes)


async def test_the_current_step_and_one_either_side_are_ok_an_older_one_is_stale(store, gate):
    first, second, third = await rotating_tickets(store)
    assert (await gate.scan(await live_code(store, first, -1))).json["result"] == "ok"
    assert (await gate.scan(await live_code(store, second, 0))).json["result"] == "ok"
    assert (await gate.scan(await live_code(store, third, +1))).json["result"] == "ok"
    # A screenshot of the third ticket from two periods ago, and the first again.
    stale = await gate.scan(await live_code(store, third, -2))
    assert stale.json["result"] == "stale" and stale.json["ticket"] == "T-DF-100000-3"
    assert (await gate.scan(await live_code(store, first, -5))).json["result"] == "stale"
    assert await count_scans(store, result="stale") == 2
    async with store.read() as session:
        stale_history = await session.scalar(select(func.count()).select_from(AuditEntry)
                                             .where(AuditEntry.action == "gate_stale"))
    assert stale_history == 2


async def test_a_code_from_too_far_ahead_is_stale_not_ok(store, gate):
    ticket_id = (await rotating_tickets(store))[0]
    assert (await gate.scan(await live_code(store, ticket_id, +2))).json["result"] == "stale"
    assert (await gate.scan(await live_code(store, ticket_id))).json["result"] == "ok"


async def test_the_still_barcode_of_a_rotating_ticket_is_stale(store, gate):
    ticket_id = (await rotating_tickets(store))[0]
    answer = await gate.scan(await barcode_of(store, ticket_id))
    assert answer.json["result"] == "stale"
    assert (await gate.scan(await live_code(store, ticket_id))).json["result"] == "ok"


async def test_a_holder_change_voids_every_code_of_the_old_barcode(store, gate):
    ticket_id = (await rotating_tickets(store))[0]
    await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin")
    old = await entry_keys.signed_ticket(store, ticket_id)
    await services.rename_holder(store, BUYER, ticket_id, "Alex Dupont")
    for shift in (-1, 0, 1):
        answer = await gate.scan(old.code_at(now_step() + shift))
        assert answer.json["result"] == "void" and answer.json["voided_at"]
    new = await entry_keys.signed_ticket(store, ticket_id)
    assert new.token != old.token
    answer = await gate.scan(new.code_at(now_step()))
    assert answer.json["result"] == "ok" and answer.json["holder"] == "Alex Dupont"


async def test_made_up_codes_are_unknown_and_let_nobody_in(store, gate):
    ticket_id = (await rotating_tickets(store))[0]
    code = await live_code(store, ticket_id)
    prefix, key_id, ref, token, signature, step, otp = code.split(".")
    wrong_otp = f"{int(otp) ^ 1:08d}"
    other_token = entry_codes.token_of("1234567890123456")
    forged = [
        ".".join((prefix, key_id, ref, token, signature, step, wrong_otp)),
        ".".join((prefix, key_id, ref, other_token, signature, step, otp)),
        ".".join((prefix, key_id, "T-DF-100000-2", token, signature, step, otp)),
        ".".join((prefix, "00000000", ref, token, signature, step, otp)),
        ".".join((prefix, key_id, ref, token, "A" * 86, step, otp)),
        "TB1.garbage",
    ]
    for text in forged:
        answer = await gate.scan(text)
        assert answer.status == 200 and answer.json["result"] == "unknown", text
    assert (await gate.scan(code)).json["result"] == "ok"


async def test_a_code_is_checked_with_the_kit_alone_and_a_rotated_key_still_verifies(store, gate):
    ticket_id = (await rotating_tickets(store))[0]
    old = await entry_keys.signed_ticket(store, ticket_id)
    new_key_id = await entry_keys.rotate_key(store, "fest-sat")
    new = await entry_keys.signed_ticket(store, ticket_id)
    assert (old.key_id, new.key_id) != (new_key_id, old.key_id) and new.key_id == new_key_id
    kit = (await gate.call("GET", "/api/events/fest-sat/entry")).json
    assert kit["code"] == "rotating" and kit["period_seconds"] == PERIOD
    keys = {key["key_id"]: key for key in kit["keys"]}
    assert keys[old.key_id]["retired"] and not keys[new.key_id]["retired"]
    assert all("private" not in name for key in kit["keys"] for name in key)
    for signed in (old, new):  # what a scanner does offline, with nothing but the kit
        code = entry_codes.parse(signed.code_at(now_step()))
        key = keys[code.key_id]
        assert entry_codes.genuine(code, "fest-sat", entry_codes.unb64(key["public_key"]),
                                   entry_codes.unb64(key["step_secret"]))
    assert (await gate.scan(old.code_at(now_step()))).json["result"] == "ok"


async def test_a_retired_key_stops_verifying_after_its_grace(store, gate):
    first, second = await rotating_tickets(store, tickets=2)
    old = [await entry_keys.signed_ticket(store, ticket) for ticket in (first, second)]
    await entry_keys.rotate_key(store, "fest-sat")
    assert (await gate.scan(old[0].code_at(now_step()))).json["result"] == "ok"
    async with store.write() as session:
        await session.execute(update(EntryKey).where(EntryKey.key_id == old[0].key_id).values(
            retired_at=utcnow() - entry_keys.RETIRED_KEY_GRACE - dt.timedelta(minutes=1)))
    assert (await gate.scan(old[1].code_at(now_step()))).json["result"] == "unknown"
    kit = (await gate.call("GET", "/api/events/fest-sat/entry")).json
    assert old[0].key_id not in {key["key_id"] for key in kit["keys"]}
    renewed = await entry_keys.signed_ticket(store, second)
    assert (await gate.scan(renewed.code_at(now_step()))).json["result"] == "ok"


async def test_the_kit_lists_the_token_of_every_voided_barcode(store, gate):
    ticket_id = (await rotating_tickets(store))[0]
    await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin")
    first = entry_codes.token_of(await barcode_of(store, ticket_id))
    await services.rename_holder(store, BUYER, ticket_id, "Alex Dupont")
    now = entry_codes.token_of(await barcode_of(store, ticket_id))
    kit = (await gate.call("GET", "/api/events/fest-sat/entry")).json
    assert first in kit["voided"] and now not in kit["voided"]
    static = (await gate.call("GET", "/api/events/fest-sun/entry")).json
    # A static event's tickets carry signed codes too: its kit has its public keys.
    assert static["code"] == "static" and [key["retired"] for key in static["keys"]] == [False]
    missing = await gate.call("GET", "/api/events/nope/entry")
    assert missing.status == 404
    shop = await gate.call("GET", "/api/events/fest-sat/entry", token="shop-api-token")
    assert shop.status == 401


# --- offline scans ------------------------------------------------------------------------------


async def test_an_offline_batch_is_applied_once_however_often_it_is_uploaded(store, gate):
    tickets = await rotating_tickets(store)
    at = utcnow() - dt.timedelta(minutes=30)
    step = entry_codes.step_at(at.timestamp(), PERIOD)
    batch = []
    for n, ticket_id in enumerate(tickets):
        signed = await entry_keys.signed_ticket(store, ticket_id)
        batch.append(offline_scan(signed.code_at(step), f"off-{n}", at + dt.timedelta(seconds=n)))
    first = await upload(gate, batch)
    assert first.status == 200
    assert [answer["result"] for answer in first.json["answers"]] == ["ok", "ok", "ok"]
    for _ in range(3):
        again = await upload(gate, batch)
        assert again.json == first.json
    assert await count_scans(store) == 3 and await count_scans(store, offline=True) == 3
    async with store.read() as session:
        used = (await session.scalars(select(Ticket.used_at).order_by(Ticket.id))).all()
    assert used[0] == at  # when it was scanned, not when it was uploaded


async def test_codes_are_judged_at_their_scan_time_not_at_the_upload(store, gate):
    fresh, old = await rotating_tickets(store, tickets=2)
    at = utcnow() - dt.timedelta(hours=2)
    step = entry_codes.step_at(at.timestamp(), PERIOD)
    signed = [await entry_keys.signed_ticket(store, ticket) for ticket in (fresh, old)]
    answers = (await upload(gate, [offline_scan(signed[0].code_at(step), "a", at),
                                   offline_scan(signed[1].code_at(step - 3), "b", at)])).json
    assert [answer["result"] for answer in answers["answers"]] == ["ok", "stale"]


async def test_two_offline_devices_letting_one_ticket_in_are_both_recorded_one_conflict(
        store, gate):
    ticket_id = (await rotating_tickets(store))[0]
    signed = await entry_keys.signed_ticket(store, ticket_id)
    early = utcnow() - dt.timedelta(minutes=20)
    late = early + dt.timedelta(minutes=5)

    def scan_at(moment, nonce, gate_name):
        step = entry_codes.step_at(moment.timestamp(), PERIOD)
        return offline_scan(signed.code_at(step), nonce, moment, gate_name)

    # The later scan is uploaded first: it is the entry until the earlier one arrives.
    south = await upload(gate, [scan_at(late, "s-1", "south-3")], token=GATE_TOKENS[1])
    assert south.json["answers"][0]["result"] == "ok" and south.json["conflicts"] == 0
    north = await upload(gate, [scan_at(early, "n-1", "north-1")])
    answer = north.json["answers"][0]
    assert answer["result"] == "ok" and answer["conflict"]
    assert answer["other_gate"] == "south-3" and north.json["conflicts"] == 1
    async with store.read() as session:
        scans = (await session.execute(select(GateScan.gate, GateScan.result, GateScan.conflict)
                                       .order_by(GateScan.at))).all()
        used_at = await session.scalar(select(Ticket.used_at).where(Ticket.id == ticket_id))
    assert scans == [("north-1", "ok", False), ("south-3", "already_scanned", True)]
    assert used_at == early
    # Uploaded again, nothing changes.
    assert (await upload(gate, [scan_at(early, "n-1", "north-1")])).json == north.json
    assert await count_scans(store) == 2 and await count_scans(store, conflict=True) == 1


async def test_an_offline_scan_after_an_online_entry_elsewhere_is_a_conflict(store, gate):
    ticket_id = (await rotating_tickets(store))[0]
    assert (await gate.scan(await live_code(store, ticket_id))).json["result"] == "ok"
    signed = await entry_keys.signed_ticket(store, ticket_id)
    at = utcnow()
    answer = (await upload(gate, [offline_scan(signed.code_at(now_step()), "x", at)],
                           token=GATE_TOKENS[1])).json["answers"][0]
    assert answer["result"] == "already_scanned" and answer["conflict"]
    assert answer["other_gate"] == "north-1"
    # The same device's own second scan of a ticket it let in is no conflict.
    own = (await upload(gate, [offline_scan(signed.code_at(now_step()), "y", at)]))
    assert own.json["answers"][0]["result"] == "already_scanned"
    assert not own.json["answers"][0]["conflict"]


@pytest.mark.parametrize("body", [
    {"scans": []},
    {"scans": [{"barcode": "1", "gate": "g", "nonce": "n"}]},
    {"scans": [{"barcode": "1", "gate": "g", "nonce": "n", "scanned_at": "yesterday"}]},
    {"scans": [{"barcode": "1", "gate": "g", "nonce": "n", "scanned_at": 0}]},
    {"scans": "all of them"},
    {"scans": [{"barcode": "1", "gate": "g", "nonce": "n",
                "scanned_at": "2027-01-01T10:00:00"}]},
    {"scans": [{"barcode": "1", "gate": "g", "nonce": "n", "scanned_at": "2027-01-01T10:00:00Z",
                "result": "ok"}]},
    {"scans": [{"barcode": "x" * 257, "gate": "g", "nonce": "n",
                "scanned_at": "2027-01-01T10:00:00Z"}]},
])
async def test_a_bad_upload_is_refused_and_records_nothing(store, gate, body):
    await rotating_tickets(store)
    answer = await gate.call("POST", "/api/scans", body=body)
    assert answer.status == 422, answer.json
    assert await count_scans(store) == 0


async def test_an_upload_reusing_a_nonce_for_another_code_is_refused(store, gate):
    first, second = await rotating_tickets(store, tickets=2)
    at = utcnow()
    codes = [await live_code(store, ticket) for ticket in (first, second)]
    assert (await upload(gate, [offline_scan(codes[0], "same", at)])).status == 200
    reused = await upload(gate, [offline_scan(codes[1], "same", at)])
    assert reused.status == 409 and reused.json["error"] == "nonce_reused"
    assert await count_scans(store) == 1
    # Within one upload: the whole upload is refused, nothing of it recorded.
    mixed = await upload(gate, [offline_scan(codes[1], "fresh", at),
                                offline_scan(codes[1], "same", at)])
    assert mixed.status == 409
    assert await count_scans(store) == 1


async def test_status_and_history_show_a_double_entry_with_both_gates(store, gate):
    ticket_id = (await rotating_tickets(store))[0]
    signed = await entry_keys.signed_ticket(store, ticket_id)
    early = utcnow() - dt.timedelta(minutes=10)
    late = early + dt.timedelta(minutes=2)
    for moment, nonce, gate_name, token in ((early, "a", "north-1", GATE_TOKENS[0]),
                                           (late, "b", "south-3", GATE_TOKENS[1])):
        step = entry_codes.step_at(moment.timestamp(), PERIOD)
        await upload(gate, [offline_scan(signed.code_at(step), nonce, moment, gate_name)],
                     token=token)
    t = translator("en")
    status = await staff.order_status(store, STAFF, "DF-100000")
    text = staff_screens.status_screen(status, t).text
    assert "Let in twice by devices that were offline: at gates north-1 and south-3." in text
    history = await staff.ticket_history(store, STAFF, ref="T-DF-100000-1")
    text = staff_screens.history_screen(history, t).text
    assert "double entry: also let in at gate north-1" in text
    assert "scanned offline" in text and "south-3" in text


async def test_a_stale_scan_is_in_the_history(store, gate):
    ticket_id = (await rotating_tickets(store))[0]
    await gate.scan(await live_code(store, ticket_id, -3))
    history = await staff.ticket_history(store, STAFF, ref="T-DF-100000-1")
    text = staff_screens.history_screen(history, translator("en")).text
    assert "a picture, not the live code, scanned at the gate" in text


async def test_racing_first_uses_of_an_event_make_one_live_key(store):
    tickets = await rotating_tickets(store, tickets=3)
    async with store.write() as session:  # an event imported before keys were made at import
        await session.execute(delete(EntryKey).where(EntryKey.event_id == "fest-sat"))
    signed = await asyncio.gather(*(entry_keys.signed_ticket(store, tickets[n % 3])
                                    for n in range(12)))
    assert len({each.key_id for each in signed}) == 1
    async with store.read() as session:
        assert await session.scalar(select(func.count()).select_from(EntryKey)
                                    .where(EntryKey.event_id == "fest-sat")) == 1
