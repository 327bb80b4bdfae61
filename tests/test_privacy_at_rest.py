"""Nothing left on disk that should not be (issue 22): no link token in the update inbox, the
SQLite file and its -wal/-shm private to their owner, and deleted bytes zeroed."""

from __future__ import annotations

import json
import stat

import pytest
from sqlalchemy import select, text

from storage import services, tokens
from storage.db.store import Store
from storage.models import Order, OrderAccess, UpdateInbox
from tests.conftest import ON_POSTGRES, sample_document

BUYER, GUESSER = 1001, 6666


async def test_the_inbox_keeps_a_marker_never_the_link_token(harness):
    await harness.import_orders(sample_document(language="en"))
    token = await harness.order_link("DF-100000")
    buyer = harness.user(BUYER, "Camille", language_code="en")
    assert "DF-100000" in (await buyer.start(token)).text
    async with harness.store.read() as session:
        payloads = [json.dumps(payload) for payload in
                    await session.scalars(select(UpdateInbox.payload))]
    assert payloads and not any(token in payload for payload in payloads)
    marker = tokens.start_marker(await harness.store.secret(), token)
    assert any(f"/start {marker}" in payload for payload in payloads)


async def test_a_marker_typed_by_hand_opens_nothing(harness):
    """The store's key of a link, typed after /start, is hashed again like any parameter."""
    await harness.import_orders(sample_document(language="en"))
    token = await harness.order_link("DF-100000")
    digest = tokens.hash_token(await harness.store.secret(), token)
    guesser = harness.user(GUESSER, "Eve", language_code="en")
    assert "not valid" in (await guesser.start(tokens.MARKER_PREFIX + digest)).text
    async with harness.store.read() as session:
        assert await session.scalar(select(OrderAccess).where(
            OrderAccess.telegram_id == GUESSER)) is None


async def test_a_stored_start_opens_the_order_by_its_marker(store):
    """What a replay from the inbox hands the handler: the marker, not the token."""
    from tests.factories import make_event, make_order

    await make_event(store)
    order_id, _ = await make_order(store)
    async with store.read() as session:
        number = await session.scalar(select(Order.number).where(Order.id == order_id))
    token = await services.create_order_link(store, number)
    marker = tokens.start_marker(await store.secret(), token)
    assert (await services.open_link(store, BUYER, marker)).order_id == order_id


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's file")
async def test_sqlite_zeroes_deleted_bytes_on_every_connection(store):
    async with store.read_connection() as connection:
        assert await connection.scalar(text("PRAGMA secure_delete")) == 1
    async with store.write_connection() as connection:
        assert await connection.scalar(text("PRAGMA secure_delete")) == 1


async def test_the_sqlite_file_and_its_wal_are_private_to_their_owner(tmp_path):
    path = tmp_path / "ticketbot.db"
    store = Store(f"sqlite+aiosqlite:///{path}", secret="s")
    try:
        async with store.write_connection() as connection:
            await connection.execute(text("CREATE TABLE t (x TEXT)"))
            await connection.execute(text("INSERT INTO t VALUES ('Camille')"))
        files = [path, tmp_path / "ticketbot.db-wal", tmp_path / "ticketbot.db-shm"]
        assert {stat.S_IMODE(file.stat().st_mode) for file in files} == {0o600}
    finally:
        await store.close()


async def test_a_file_made_readable_before_is_made_private_when_opened(tmp_path):
    path = tmp_path / "old.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    store = Store(f"sqlite+aiosqlite:///{path}", secret="s")
    await store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
