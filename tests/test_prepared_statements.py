"""The hot reads run compiled once, on the driver's cursor (``storage/db/prepared.py``): the same
rows, values and errors as ``Connection.execute`` gives, on the store under test (SQLite or
PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Table,
    bindparam,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.exc import DBAPIError, InvalidRequestError, NoResultFound

from storage import chat_state, services
from storage.db import prepared
from storage.db.prepared import PreparedStatement, Unpreparable
from storage.db.store import utcnow
from storage.db.upsert import upsert_statement
from storage.models import Event, Invitation, Order, TelegramUser, Ticket
from storage.reads import loading
from storage.services import users
from storage.services.importing.importer import import_document
from storage.services.ticket_changes import managed_ticket
from tests.conftest import ON_POSTGRES, sample_document
from tests.factories import make_event, make_order


async def _executed(store, statement, parameters):
    """The rows as SQLAlchemy's own execution gives them."""
    async with store.read() as session:
        return (await session.execute(statement, parameters)).all()


async def test_an_order_reads_the_same_rows_keys_and_values_as_through_sqlalchemy(store):
    await import_document(store, sample_document(orders=2, tickets=3))
    async with store.read() as session:
        order_id = await session.scalar(select(Ticket.order_id).limit(1))
    statement, parameters = loading.order_query(None, order_id=order_id)

    rows = await store.read_rows(statement, parameters)

    expected = await _executed(store, statement, parameters)
    assert len(rows) == 3
    assert [tuple(row) for row in rows] == [tuple(row) for row in expected]
    assert [row._mapping.keys() for row in rows] == [row._mapping.keys() for row in expected]
    first = rows[0]._mapping
    assert isinstance(first["t_price"], Decimal)
    assert isinstance(first["e_starts_at"], dt.datetime)
    assert first["e_starts_at"].tzinfo is not None  # through the column type's own processor
    assert store._statements.get(statement, parameters) is not None  # it did not fall back


async def test_a_chat_step_reads_its_json_and_time_as_through_sqlalchemy(store):
    await chat_state.set_step(store, 42, "ask_name", payload={"name": "Zoé", "n": [1, 2]})

    step = await chat_state.get_step(store, 42)

    assert step.payload == {"name": "Zoé", "n": [1, 2]}
    rows = await store.read_rows(chat_state._READ_STEP, {"chat": 42})
    assert [tuple(row) for row in rows] == [
        tuple(row) for row in await _executed(store, chat_state._READ_STEP, {"chat": 42})]
    assert rows[0].expires_at.tzinfo is not None


async def test_a_value_the_statement_carries_is_sent_with_the_caller_s(store):
    statement = (select(Ticket.__table__.c.ref).where(Ticket.__table__.c.state == "to_assign")
                 .where(Ticket.__table__.c.order_id == bindparam("order")))
    await import_document(store, sample_document(orders=1, tickets=2))
    async with store.read() as session:
        order_id = await session.scalar(select(Ticket.order_id).limit(1))

    rows = await store.read_rows(statement, {"order": order_id})

    assert sorted(row.ref for row in rows) == ["T-DF-100000-1", "T-DF-100000-2"]
    assert store._statements.get(statement, {"order": order_id}) is not None  # run prepared


async def test_a_missing_parameter_is_refused_before_anything_is_sent(store):
    sent = []
    event.listen(store.engine.sync_engine, "before_cursor_execute",
                 lambda *args: sent.append(args[2]))
    with pytest.raises(InvalidRequestError, match="chat"):
        await store.read_rows(chat_state._READ_STEP, {})
    assert sent == []


async def test_the_statement_is_still_seen_by_the_cursor_events(store):
    sent = []
    event.listen(store.engine.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: sent.append(statement))
    await store.read_rows(chat_state._READ_STEP, {"chat": 7})
    assert len(sent) == 1 and "FROM chat_states" in sent[0]


async def test_a_statement_rendered_at_execution_goes_through_sqlalchemy(store):
    expanding = (select(Ticket.__table__.c.id)
                 .where(Ticket.__table__.c.id.in_(bindparam("ids", expanding=True))))
    with pytest.raises(Unpreparable):
        PreparedStatement(expanding, store.engine.sync_engine.dialect)
    await import_document(store, sample_document(orders=1, tickets=2))
    async with store.read() as session:
        ids = list((await session.scalars(select(Ticket.id))).all())

    rows = await store.read_rows(expanding, {"ids": ids})

    assert sorted(row.id for row in rows) == sorted(ids)
    assert store._statements.get(expanding, {"ids": ids}) is None


async def test_a_driver_error_comes_as_sqlalchemy_s_and_the_store_goes_on(store):
    missing = Table("no_such_table", MetaData(), Column("id", Integer))
    statement = select(missing.c.id).where(missing.c.id == bindparam("id"))

    with pytest.raises(DBAPIError):
        await store.read_rows(statement, {"id": 1})

    assert list(await store.read_rows(chat_state._READ_STEP, {"chat": 1})) == []


@pytest.mark.skipif(not ON_POSTGRES, reason="a server that ends its connections")
async def test_a_connection_the_server_ended_is_replaced_and_the_reads_go_on(store):
    backend = select(func.pg_backend_pid().label("pid"))
    async with store.engine.connect() as other:  # keeps the pool from handing out this one
        [row] = await store.read_rows(backend)
        assert await other.scalar(select(func.pg_terminate_backend(row.pid)))
    await asyncio.sleep(0.1)  # the driver reads the server's goodbye

    for _ in range(3):
        [again] = await store.read_rows(backend)
        assert again.pid != row.pid


async def test_an_idempotent_write_runs_its_upsert_prepared_and_reads_back_what_it_wrote(store):
    seen = []
    event.listen(store.engine.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, statement, parameters, context, many:
                 seen.append(context))

    first = await services.record_user(store, 9, "fr")
    again = await services.record_user(store, 9, "en")

    assert (first.telegram_language, again.telegram_language) == ("fr", "en")
    assert seen and all(context is None for context in seen)  # no SQLAlchemy execution context
    assert (await services.load_user(store, 9)).telegram_language == "en"


async def test_an_insert_with_other_columns_than_its_first_run_goes_through_sqlalchemy(store):
    statement = upsert_statement(store.dialect, TelegramUser, index=["telegram_id"], update=[])
    now = utcnow()

    def write(connection):
        connection.execute(statement, {"telegram_id": 1, "failed_starts": 0, "created_at": now})
        connection.execute(statement, {"telegram_id": 2, "failed_starts": 0, "created_at": now,
                                       "telegram_language": "nl"})

    await store.idempotent_write(write)

    async with store.read() as session:
        languages = dict((await session.execute(
            select(TelegramUser.telegram_id, TelegramUser.telegram_language))).all())
    assert languages == {1: None, 2: "nl"}


def test_an_insert_whose_defaults_python_computes_is_not_prepared(store):
    table = Table("stamped", MetaData(), Column("id", Integer, primary_key=True),
                  Column("at", Integer, default=lambda: 7))
    with pytest.raises(Unpreparable):
        PreparedStatement(insert(table), store.engine.sync_engine.dialect, ["id"])


async def test_one_row_asked_for_and_none_found_is_sqlalchemy_s_error(store):
    statement = select(TelegramUser.__table__.c.telegram_id).where(
        TelegramUser.__table__.c.telegram_id == bindparam("user"))
    with pytest.raises(NoResultFound):
        await store.idempotent_write(
            lambda connection: connection.execute(statement, {"user": 404}).one())


async def test_once_the_cache_is_full_statements_go_through_sqlalchemy_uncompiled(
        store, monkeypatch):
    monkeypatch.setattr(prepared, "MAX_PREPARED_STATEMENTS", 0)
    compiled = []
    monkeypatch.setattr(prepared, "PreparedStatement",
                        lambda *args: compiled.append(args) or PreparedStatement(*args))

    assert list(await store.read_rows(chat_state._READ_STEP, {"chat": 3})) == []

    assert compiled == [] and store._statements.get(chat_state._READ_STEP, {"chat": 3}) is None


async def test_a_session_runs_its_core_statements_prepared_in_its_own_transaction(store):
    contexts = []
    event.listen(store.engine.sync_engine, "before_cursor_execute",
                 lambda conn, cursor, statement, parameters, context, many:
                 contexts.append(context) if "telegram_users" in statement else None)
    remember = upsert_statement(store.dialect, TelegramUser, index=["telegram_id"], update=[])
    values = {"telegram_id": 9, "failed_starts": 0, "created_at": utcnow()}

    with pytest.raises(RuntimeError):
        async with store.write() as session:
            await prepared.execute_in_session(session, remember, values)
            raise RuntimeError("the use case fails after the statement")
    assert await services.load_user(store, 9) is None  # rolled back with the session

    contexts.clear()
    async with store.write() as session:
        session.add(TelegramUser(telegram_id=10, failed_starts=0, created_at=utcnow()))
        unflushed = await prepared.execute_in_session(session, users._READ_USER, {"user": 10})
        flushed = await prepared.execute_in_session(session, users._READ_USER, {"user": 10},
                                                    flush=True)
        assert unflushed.first() is None and flushed.first() is not None
        await prepared.execute_in_session(session, remember, values)
    # The reads and the upsert ran prepared: no SQLAlchemy execution context (the flush's
    # insert of the added user is the ORM's own and has one).
    assert contexts.count(None) == 3 and len(contexts) == 4
    assert await services.load_user(store, 9) is not None


def _columns(row) -> dict:
    return {column.key: getattr(row, column.key) for column in type(row).__table__.c}


async def test_a_record_holds_every_column_as_the_orm_reads_it(store):
    await make_event(store, exchange_targets=["fest-sun"], resale_min_price=Decimal("5"))
    _, (ticket_id, *_) = await make_order(store, managers=(7,))
    invite = await services.invite_friend(store, 7, ticket_id, "alex@example.org")

    async with store.read() as session:
        managed = await managed_ticket(session, 7, ticket_id)
        invited = await loading.invitation_with_ticket(session, invite.invitation_id)
        ticket = await session.get(Ticket, ticket_id)
        event = await session.get(Event, ticket.event_id)
        order = await session.get(Order, ticket.order_id)
        invitation = await session.get(Invitation, invite.invitation_id)
        with pytest.raises(services.Refusal):
            await managed_ticket(session, 8, ticket_id)  # not a manager of the order

    assert [vars(record) for record in managed] == [_columns(ticket), _columns(event),
                                                   _columns(order)]
    assert [vars(record) for record in invited] == [_columns(invitation), _columns(ticket),
                                                   _columns(event)]
    assert event.exchange_targets == ["fest-sun"] and invitation.expires_at.tzinfo is not None
