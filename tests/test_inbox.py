"""The update inbox and per-chat ordering, piece by piece: the deciding transaction marks an
update done with its effects, a second attempt is refused, entries of a chat are claimed in
order, leases run out, old entries are pruned, and the processor's memory follows the updates
in flight, not the chats served."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.exc import OperationalError
from telegram import Update
from telegram.ext import ExtBot

from bot.inbox import MAX_ATTEMPTS, receive_update
from bot.update_processor import ChatOrderedProcessor
from storage import chat_state, services
from storage.applying import AlreadyApplied, Applying, applying
from storage.db import prepared as prepared_module
from storage.db import store as store_module
from storage.db.store import utcnow
from storage.inbox import Inbox, Incoming
from storage.models import AuditEntry, TelegramUser, Ticket, TicketState, UpdateInbox
from tests.factories import make_event, make_order

BUYER = 1001


def entry(update_id: int, chat_id: int | None = 7) -> Incoming:
    return Incoming(update_id, chat_id, {"update_id": update_id})


async def done_at(store, update_id: int):
    async with store.read() as session:
        return await session.scalar(
            select(UpdateInbox.done_at).where(UpdateInbox.update_id == update_id))


async def count(store, model, *where) -> int:
    async with store.read() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
async def ticket_id(store):
    await make_event(store)
    _, tickets = await make_order(store, managers=(BUYER,))
    return tickets[0]


async def test_deciding_transaction_marks_the_update_done_with_its_effects(store, ticket_id):
    inbox = Inbox(store)
    await inbox.record([entry(1)])
    attempt = Applying(1)
    with applying(attempt):
        await chat_state.set_step(store, 7, "claim_name", ticket_id=ticket_id)  # bookkeeping
        assert await done_at(store, 1) is None
        await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin")
        await chat_state.clear_step(store, 7)
    assert attempt.marked_done and await done_at(store, 1) is not None


async def test_a_second_attempt_is_refused_and_changes_nothing(store, ticket_id):
    inbox = Inbox(store)
    await inbox.record([entry(1)])
    with applying(Applying(1)):
        await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin")
    async with store.write() as session:  # as if someone took the ticket back meanwhile
        await session.execute(update(Ticket).values(state=TicketState.TO_ASSIGN, name_key=None,
                                                    holder_name=None, holder_email=None,
                                                    email_key=None))
    with applying(Applying(1, attempt=2)), pytest.raises(AlreadyApplied):
        await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin")
    assert await count(store, AuditEntry, AuditEntry.action == "claimed_for_self") == 1
    async with store.read() as session:
        assert (await session.get(Ticket, ticket_id)).state == TicketState.TO_ASSIGN


async def test_a_refused_action_leaves_the_update_unfinished(store, ticket_id):
    await Inbox(store).record([entry(1)])
    attempt = Applying(1)
    with applying(attempt), pytest.raises(services.Refusal):
        await services.claim_for_myself(store, BUYER, ticket_id, "1234")
    with applying(attempt), pytest.raises(services.Refusal):
        await services.invite_friend(store, BUYER, ticket_id + 99, "alex@example.org")
    assert not attempt.marked_done and await done_at(store, 1) is None


async def test_a_write_of_prepared_statements_decides_as_a_session_does(store, ticket_id):
    inbox = Inbox(store)
    await inbox.record([entry(1)])

    def end_two_steps(connection):
        chat_state.end_step_on(connection, 7)
        chat_state.end_step_on(connection, 8)
        return "done"

    attempt = Applying(1)
    with applying(attempt):
        assert await store.write_prepared(end_two_steps) == "done"
        assert attempt.marked_done and await done_at(store, 1) is not None
        # Later writes of the same attempt go through unmarked.
        assert await store.write_prepared(end_two_steps) == "done"
    await chat_state.set_step(store, 7, "claim_name", ticket_id=ticket_id)
    with applying(Applying(1, attempt=2)), pytest.raises(AlreadyApplied):
        await store.write_prepared(end_two_steps)
    assert await chat_state.get_step(store, 7) is not None  # the refused attempt's effects
    with applying(Applying(1, attempt=3)):  # idempotent writes neither mark nor are refused
        assert await store.write_prepared(end_two_steps, idempotent=True) == "done"
    assert await chat_state.get_step(store, 7) is None


async def test_a_failed_write_of_prepared_statements_leaves_nothing(store, ticket_id):
    await Inbox(store).record([entry(1)])
    await chat_state.set_step(store, 7, "claim_name", ticket_id=ticket_id)

    def end_step_then_fail(connection):
        chat_state.end_step_on(connection, 7)
        raise services.Refusal("not_found")

    attempt = Applying(1)
    with applying(attempt), pytest.raises(services.Refusal):
        await store.write_prepared(end_step_then_fail)
    assert not attempt.marked_done and await done_at(store, 1) is None
    assert await chat_state.get_step(store, 7) is not None


async def test_a_use_case_written_whole_takes_one_trip_into_the_greenlet(store, ticket_id,
                                                                         monkeypatch):
    await Inbox(store).record([entry(1)])
    trips = []

    def counting(spawn):
        async def spawn_counted(function, *args, **kwargs):
            trips.append(getattr(function, "__name__", function))
            return await spawn(function, *args, **kwargs)
        return spawn_counted

    for module in (store_module, prepared_module):
        monkeypatch.setattr(module, "greenlet_spawn", counting(module.greenlet_spawn))
    with applying(Applying(1)):
        await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin",
                                        chat_id=7)
    # The end of the step, the ticket's read and change, the barcodes, the audit entry, the
    # done mark and the commit: all in the one trip.
    assert trips == ["_write_whole"]
    assert await done_at(store, 1) is not None
    async with store.read() as session:
        assert (await session.get(Ticket, ticket_id)).holder_name == "Camille Martin"


async def test_a_use_case_written_whole_may_await_only_its_statements(store, ticket_id):
    await Inbox(store).record([entry(1)])
    await chat_state.set_step(store, 7, "claim_name", ticket_id=ticket_id)

    async def end_step_then_wait(session):
        await chat_state.end_step(session, 7)
        await asyncio.sleep(0)  # not a statement: the trip cannot carry it

    attempt = Applying(1)
    with applying(attempt), pytest.raises(RuntimeError, match="awaited something other"):
        await store.write_whole(end_step_then_wait)
    assert not attempt.marked_done and await done_at(store, 1) is None
    assert await chat_state.get_step(store, 7) is not None


async def test_a_chats_entries_are_claimed_in_order(store):
    inbox = Inbox(store)
    await inbox.record([entry(1), entry(2), entry(3, chat_id=8)])
    assert await inbox.claim(2) is None  # 1 is unfinished
    assert await inbox.claim(3) is not None  # another chat does not wait
    first = await inbox.claim(1)
    assert first is not None and first.attempt == 1
    assert await inbox.claim(1) is None  # leased
    await inbox.finish(1)
    assert await inbox.claim(2) is not None


async def test_the_next_update_waits_until_the_answer_to_the_last_went_out(store):
    inbox = Inbox(store)
    await inbox.record([entry(1), entry(2)])
    first = await inbox.claim(1)
    async with store.write() as session:  # its deciding transaction commits
        await Applying(1, attempt=first.attempt).mark_done(session)
    assert await inbox.claim(2) is None  # its handler is still answering, maybe elsewhere
    await inbox.finish(1)  # the handler returned: lease released
    assert await inbox.claim(2) is not None


async def test_claims_and_finishes_arriving_together_share_one_transaction(store):
    inbox = Inbox(store)
    await inbox.record([entry(1), entry(2), entry(3, chat_id=8), entry(4, chat_id=None),
                        entry(5, chat_id=9)])
    assert await inbox.claim(5) is not None
    begun = []

    def on_begin(connection):
        begun.append(connection)

    event.listen(store.engine.sync_engine, "begin", on_begin)
    try:
        claims = await asyncio.gather(inbox.claim(1), inbox.claim(2), inbox.claim(3),
                                      inbox.claim(4), inbox.finish(5), inbox.claim(99))
    finally:
        event.remove(store.engine.sync_engine, "begin", on_begin)
    assert len(begun) == 1
    one, two, three, four, _, unknown = claims
    assert [c.update_id for c in (one, three, four)] == [1, 3, 4]
    assert all(c.attempt == 1 for c in (one, three, four))
    assert two is None and unknown is None  # 2 waits for 1 of its chat; 99 was never stored
    assert await done_at(store, 5) is not None


async def test_a_failed_batch_fails_every_caller_and_leaves_no_trace(store):
    inbox = Inbox(store)
    await inbox.record([entry(1), entry(2, chat_id=8)])

    def disk_fails(connection, cursor, statement, *args):
        if statement.lstrip().startswith("UPDATE update_inbox"):
            raise OperationalError(statement, {}, Exception("disk I/O error"))

    event.listen(store.engine.sync_engine, "before_cursor_execute", disk_fails)
    try:
        results = await asyncio.gather(inbox.claim(1), inbox.claim(2), return_exceptions=True)
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", disk_fails)
    assert [type(result) for result in results] == [OperationalError, OperationalError]
    # Rolled back as a whole, and the next batches work.
    assert (await inbox.claim(1)).attempt == 1
    assert (await inbox.claim(2)).attempt == 1


async def test_a_lease_runs_out_and_the_entry_is_due_again(store):
    inbox = Inbox(store, lease=dt.timedelta(milliseconds=50), grace=dt.timedelta(seconds=30))
    await inbox.record([entry(1), entry(2)])
    assert [e.update_id for e in await inbox.due()] == []  # fresh: left to its receiver
    assert [e.update_id for e in await inbox.due(fresh_too=True)] == [1, 2]
    claim = await inbox.claim(1)
    await asyncio.sleep(0.06)
    assert [e.update_id for e in await inbox.due()] == [1]
    again = await inbox.claim(1)
    assert again is not None and again.attempt == 2
    await inbox.retry_later(claim, dt.timedelta(seconds=60))  # an old claim changes nothing
    await inbox.retry_later(again, dt.timedelta(seconds=60))
    assert await inbox.claim(1) is None


async def test_a_renewed_lease_keeps_a_slow_update_with_its_handler(store):
    inbox = Inbox(store, lease=dt.timedelta(milliseconds=300), grace=dt.timedelta(seconds=30))
    await inbox.record([entry(1)])
    claim = await inbox.claim(1)
    for _ in range(3):  # handled for longer than a lease, renewed meanwhile
        await asyncio.sleep(0.15)
        await inbox.renew([claim])
    assert await inbox.due() == [] and await inbox.claim(1) is None
    await asyncio.sleep(0.35)  # no longer renewed: its handler died
    taken = await inbox.claim(1)
    assert taken is not None and taken.attempt == 2
    await inbox.renew([claim])  # the first handler's late renewal leaves the new claim alone
    await inbox.retry_later(taken, dt.timedelta(seconds=60))  # the renewed claim still counts
    assert [e.update_id for e in await inbox.due()] == []


async def test_recording_an_update_twice_keeps_the_first(store):
    inbox = Inbox(store)
    await inbox.record([entry(1)])
    await inbox.finish(1)
    await inbox.record([entry(1), entry(2)])
    assert await done_at(store, 1) is not None
    assert await inbox.unfinished() == 1


async def test_old_done_entries_are_pruned(store):
    inbox = Inbox(store)
    await inbox.record([entry(1), entry(2), entry(3)])
    await inbox.finish(1)
    await inbox.finish(2)
    async with store.write() as session:
        await session.execute(update(UpdateInbox).where(UpdateInbox.update_id == 1)
                              .values(done_at=utcnow() - dt.timedelta(days=3)))
    assert await inbox.prune() == 1
    async with store.read() as session:
        left = set(await session.scalars(select(UpdateInbox.update_id)))
    assert left == {2, 3}


_BOT = ExtBot("1:x")


def message_update(update_id: int, chat_id: int) -> Update:
    payload = {"update_id": update_id, "message": {
        "message_id": update_id, "date": 0, "text": "hi",
        "chat": {"id": chat_id, "type": "private"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "A"}}}
    return Update.de_json(payload, _BOT)


async def test_processor_keeps_each_chats_order_and_runs_chats_concurrently():
    processor = ChatOrderedProcessor(max_running=8)
    seen: dict[int, list[int]] = {}
    running = 0
    most = 0

    async def handle(update: Update) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001 * (update.update_id % 3))
        seen.setdefault(update.effective_chat.id, []).append(update.update_id)
        running -= 1

    updates = [message_update(n, chat_id=n % 5) for n in range(1, 201)]
    await asyncio.gather(*(processor.process_update(u, handle(u)) for u in updates))
    for chat, ids in seen.items():
        assert ids == sorted(ids), chat
    assert 1 < most <= 5  # five chats at once, never two updates of one chat
    assert processor.chats_in_flight == 0


async def test_processor_memory_follows_updates_in_flight_not_chats_served():
    processor = ChatOrderedProcessor(max_running=16)

    async def nothing() -> None:
        await asyncio.sleep(0)

    for batch in range(5):
        updates = [message_update(batch * 1000 + n, chat_id=batch * 1000 + n)
                   for n in range(400)]
        await asyncio.gather(*(processor.process_update(u, nothing()) for u in updates))
        assert processor.chats_in_flight == 0


# --- through the running bot ---------------------------------------------------------------


def start_message(update_id: int, user_id: int, text: str) -> dict:
    user = {"id": user_id, "is_bot": False, "first_name": "Eve", "language_code": "en"}
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": int(time.time()), "text": text,
        "chat": {"id": user_id, "type": "private", "first_name": "Eve"}, "from": user,
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}}


async def test_an_update_delivered_three_times_is_applied_once(harness):
    eve = harness.user(3003, "Eve")
    await eve.send("/help")  # the chat exists
    application = harness.application
    payload = start_message(10**6, eve.id, "/start not-a-real-link-but-long-enough")
    mark = eve.mark()
    for _ in range(2):  # Telegram retrying a webhook call, or polling after a crash
        await receive_update(application, Update.de_json(payload, application.bot))
    await eve.wait_for_message(lambda m: "not valid" in m.text, since=mark)
    await receive_update(application, Update.de_json(payload, application.bot))  # once done
    await asyncio.sleep(0.3)
    assert len([m for m in eve.messages if "not valid" in m.text]) == 1
    async with harness.store.read() as session:
        user = await session.get(TelegramUser, eve.id)
        entry = await session.get(UpdateInbox, 10**6)
    assert user.failed_starts == 1 and entry.done_at is not None and entry.attempts == 1
    # PTB notes every chat for a persistence we do not have; nothing may pile up there.
    bob = harness.user(3004, "Bob")
    await bob.send("/help")
    assert application._chat_ids_to_be_updated_in_persistence <= {bob.id}


async def test_the_inbox_keeps_each_polled_update_as_telegram_sent_it(harness):
    eve = harness.user(3005, "Eve")
    await eve.send("/help")
    await eve.send("Hello")
    sent = {raw["update_id"]: raw for call in harness.emulator.calls
            if call.method.lower() == "getupdates" and call.ok for raw in call.result}
    async with harness.store.read() as session:
        kept = dict((await session.execute(
            select(UpdateInbox.update_id, UpdateInbox.payload)
            .where(UpdateInbox.chat_id == eve.id))).all())
    assert len(kept) == 2
    assert kept == {update_id: sent[update_id] for update_id in kept}


async def test_the_keeper_prunes_old_done_entries(harness):
    await harness.user(3003, "Eve").send("/help")
    async with harness.store.write() as session:
        await session.execute(update(UpdateInbox).values(done_at=utcnow() - dt.timedelta(days=3)))
    keeper = harness.application.bot_data["inbox_keeper"]
    keeper._pruned_at = None  # as if it had never pruned
    await keeper.sweep()
    assert await count(harness.store, UpdateInbox) == 0


async def test_an_update_that_failed_too_often_is_given_up(harness, caplog):
    eve = harness.user(3003, "Eve")
    await eve.send("/help")
    payload = start_message(10**6, eve.id, "/start not-a-real-link-but-long-enough")
    async with harness.store.write() as session:  # as if it had killed the bot eight times
        session.add(UpdateInbox(update_id=10**6, chat_id=eve.id, payload=payload,
                                received_at=utcnow(), attempts=MAX_ATTEMPTS))
    mark = eve.mark()
    await harness.application.bot_data["delivery"].replay(fresh_too=True)

    async def given_up():
        return await done_at(harness.store, 10**6) is not None
    async with asyncio.timeout(5):
        while not await given_up():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    with pytest.raises(AssertionError):  # it was not handled: no answer comes
        await eve.wait_for_message(since=mark, timeout=0.3)
    async with harness.store.read() as session:
        user = await session.get(TelegramUser, eve.id)
    assert user is None or user.failed_starts == 0
    assert any("dropped after 8 attempts" in r.getMessage() for r in caplog.records)
