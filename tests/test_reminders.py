"""Reminders with a clock the tests hold: each goes out once, at its time in the event's zone,
never in the quiet hours, never once it is no longer needed, and once only when two workers
race. The store's queues are read directly; two tests follow a reminder into the chat."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from storage import services
from storage.db.store import Store
from storage.models import (
    ChatNotification,
    Event,
    Invitation,
    InvitationState,
    OutboxMail,
    Ticket,
    TicketState,
)
from storage.models.reminders import SentReminder
from storage.services import reminders
from storage.services.importing.importer import ImportRejected, import_document
from tests.conftest import database_url, ensure_postgres_schema, fresh_store, sample_document
from tests.factories import make_event, make_order

PARIS = ZoneInfo("Europe/Paris")
BUYER, FRIEND = 1001, 2002
# The deadline at noon in Paris; the event a week after it.
DEADLINE = dt.datetime(2027, 7, 10, 12, 0, tzinfo=PARIS).astimezone(dt.UTC)
STARTS = dt.datetime(2027, 7, 17, 14, 0, tzinfo=PARIS).astimezone(dt.UTC)


def paris(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PARIS).astimezone(dt.UTC)


async def notifications(store: Store, kind: str | None = None) -> list[ChatNotification]:
    async with store.read() as session:
        query = select(ChatNotification).order_by(ChatNotification.id)
        if kind:
            query = query.where(ChatNotification.kind == kind)
        return list((await session.scalars(query)).all())


async def mails(store: Store, kind: str) -> list[OutboxMail]:
    async with store.read() as session:
        return list((await session.scalars(
            select(OutboxMail).where(OutboxMail.kind == kind).order_by(OutboxMail.id))).all())


async def event_with_deadline(store: Store, deadline: dt.datetime = DEADLINE, **more) -> str:
    return await make_event(store, starts_at=STARTS, personalisation_deadline=deadline, **more)


async def test_personalisation_reminders_go_out_seven_days_and_one_day_before_once_each(store):
    await event_with_deadline(store)
    order_id, _ = await make_order(store, tickets=3, managers=(BUYER,))
    assert await reminders.queue_due_reminders(store, DEADLINE - dt.timedelta(days=8)) == 0
    seven = DEADLINE - dt.timedelta(days=7)
    assert await reminders.queue_due_reminders(store, seven) == 1
    assert await reminders.queue_due_reminders(store, seven + dt.timedelta(hours=1)) == 0
    assert await reminders.queue_due_reminders(store, DEADLINE - dt.timedelta(days=2)) == 0
    assert await reminders.queue_due_reminders(store, DEADLINE - dt.timedelta(days=1)) == 1
    assert await reminders.queue_due_reminders(store, DEADLINE) == 0  # too late: none
    sent = await notifications(store, "reminder_personalise")
    assert [(n.telegram_id, n.params["order_id"], n.params["count"]) for n in sent] == [
        (BUYER, order_id, 3), (BUYER, order_id, 3)]
    assert await mails(store, "reminder_personalise") == []  # the buyer has the bot


async def test_a_worker_away_for_both_occasions_sends_only_the_most_urgent(store):
    await event_with_deadline(store)
    await make_order(store, tickets=1, managers=(BUYER,))
    assert await reminders.queue_due_reminders(store, DEADLINE - dt.timedelta(hours=20)) == 1
    assert await reminders.queue_due_reminders(store, DEADLINE - dt.timedelta(hours=19)) == 0
    async with store.read() as session:
        assert (await session.scalars(select(SentReminder.occasion))).all() == ["d1:fest-sat"]


async def test_no_chat_reminder_in_the_quiet_hours_it_waits_for_nine(store):
    # Seven days before this deadline is 22:30 in Paris.
    deadline = paris(2027, 7, 10, 22, 30)
    await event_with_deadline(store, deadline)
    await make_order(store, tickets=2, managers=(BUYER,))
    for moment in (paris(2027, 7, 3, 22, 30), paris(2027, 7, 4, 3, 0),
                   paris(2027, 7, 4, 8, 59)):
        assert await reminders.queue_due_reminders(store, moment) == 0
    assert await notifications(store) == []
    assert await reminders.queue_due_reminders(store, paris(2027, 7, 4, 9, 0)) == 1


async def test_quiet_hours_follow_the_events_schedule(store):
    await event_with_deadline(store, paris(2027, 7, 10, 22, 30),
                              reminders={"quiet_hours": ["23:00", "07:00"]})
    await make_order(store, tickets=1, managers=(BUYER,))
    assert await reminders.queue_due_reminders(store, paris(2027, 7, 3, 22, 30)) == 1


async def test_no_reminder_for_an_order_with_nothing_left_to_assign(store):
    await event_with_deadline(store)
    order_id, _ = await make_order(store, tickets=2, managers=(BUYER,))
    async with store.write() as session:
        await session.execute(update(Ticket).where(Ticket.order_id == order_id).values(
            state=TicketState.SOLD))
    assert await reminders.queue_due_reminders(store, DEADLINE - dt.timedelta(days=7)) == 0
    assert await notifications(store) == []


async def test_a_buyer_who_never_opened_the_bot_is_reminded_by_e_mail(store):
    await event_with_deadline(store)
    order_id, _ = await make_order(store, tickets=2, email="zoé@example.org")
    assert await reminders.queue_due_reminders(store, DEADLINE - dt.timedelta(days=7)) == 1
    [mail] = await mails(store, "reminder_personalise")
    assert mail.recipient == "zoé@example.org"
    assert mail.params == {"order_id": order_id, "event_id": "fest-sat", "count": 2,
                           "deadline": DEADLINE.isoformat()}
    assert await notifications(store) == []


async def test_a_user_who_turned_reminders_off_gets_none_in_chat(store):
    await event_with_deadline(store)
    await make_order(store, tickets=2, managers=(BUYER,))
    await reminders.set_reminders(store, BUYER, False)
    await reminders.set_reminders(store, BUYER, False)  # twice: harmless
    assert not await reminders.reminders_on(store, BUYER)
    assert await reminders.queue_due_reminders(store, DEADLINE - dt.timedelta(days=7)) == 1
    assert await notifications(store) == []
    await reminders.set_reminders(store, BUYER, True)
    assert await reminders.queue_due_reminders(store, DEADLINE - dt.timedelta(days=1)) == 1
    assert len(await notifications(store, "reminder_personalise")) == 1


async def invited(store: Store) -> tuple[int, dt.datetime]:
    await make_event(store, starts_at=dt.datetime(2099, 7, 17, 12, tzinfo=dt.UTC),
                     reminders={"quiet_hours": ["00:00", "00:00"]})
    _, [ticket_id, *_] = await make_order(store, tickets=2, managers=(BUYER,))
    await services.invite_friend(store, BUYER, ticket_id, "ami@example.org")
    async with store.read() as session:
        invitation = await session.scalar(select(Invitation))
    return invitation.id, invitation.expires_at


async def test_an_invitation_about_to_expire_reminds_the_friend_and_the_buyer_once(store):
    invitation_id, expires = await invited(store)
    assert await reminders.queue_due_reminders(store, expires - dt.timedelta(days=3)) == 0
    due = expires - dt.timedelta(days=2)
    assert await reminders.queue_due_reminders(store, due) == 1
    assert await reminders.queue_due_reminders(store, due + dt.timedelta(hours=5)) == 0
    [mail] = await mails(store, "reminder_invitation")
    assert (mail.recipient, mail.params) == ("ami@example.org", {"invitation_id": invitation_id})
    [news] = await notifications(store, "reminder_invitation")
    assert news.telegram_id == BUYER and news.params["email"] == "ami@example.org"


async def test_no_invitation_reminder_once_it_was_accepted(store):
    _, expires = await invited(store)
    async with store.write() as session:
        await session.execute(update(Invitation).values(state=InvitationState.ACCEPTED))
    assert await reminders.queue_due_reminders(store, expires - dt.timedelta(days=1)) == 0
    assert await mails(store, "reminder_invitation") == []


async def hold(store: Store, ticket_id: int, holder: int, name: str) -> None:
    async with store.write() as session:
        await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(
            state=TicketState.COMPLETED, holder_name=name, name_key=name.lower(),
            holder_telegram_id=holder))


async def test_each_holder_gets_the_ticket_on_the_morning_of_the_event(store):
    await make_event(store, starts_at=STARTS)
    _, [kept, used, opted_out] = await make_order(store, tickets=3, managers=(BUYER,))
    await hold(store, kept, BUYER, "Camille Martin")
    await hold(store, used, 3003, "Léa Roux")
    await hold(store, opted_out, 4004, "Noé Petit")
    async with store.write() as session:
        await session.execute(update(Ticket).where(Ticket.id == used).values(
            used_at=STARTS - dt.timedelta(hours=1)))
    await reminders.set_reminders(store, 4004, False)
    assert await reminders.queue_due_reminders(store, paris(2027, 7, 16, 10, 0)) == 0
    assert await reminders.queue_due_reminders(store, paris(2027, 7, 17, 7, 0)) == 0  # quiet
    assert await reminders.queue_due_reminders(store, paris(2027, 7, 17, 9, 5)) == 1
    assert await reminders.queue_due_reminders(store, paris(2027, 7, 17, 11, 0)) == 0
    [news] = await notifications(store, "reminder_event_day")
    assert (news.telegram_id, news.params["ticket_id"]) == (BUYER, kept)


@pytest.mark.parametrize("workers", [2])
async def test_two_workers_racing_queue_each_reminder_once(tmp_path, workers):
    url = database_url(tmp_path)
    first = await fresh_store(url)
    kwargs = await ensure_postgres_schema(url) if url.startswith("postgresql") else {}
    others = [Store(url, secret="test-secret", **kwargs) for _ in range(workers - 1)]
    try:
        await event_with_deadline(first)
        for _ in range(30):
            await make_order(first, tickets=2, managers=(BUYER,))
        due = DEADLINE - dt.timedelta(days=7)
        counts = await asyncio.gather(*(reminders.queue_due_reminders(store, due)
                                        for store in [first, *others, first]))
        assert sum(counts) == 30
        async with first.read() as session:
            assert await session.scalar(
                select(func.count()).select_from(ChatNotification)) == 30
    finally:
        for store in [first, *others]:
            await store.close()


async def test_the_schedule_is_imported_with_the_event_and_checked(store):
    document = sample_document()
    document["events"][0]["reminders"] = {"personalisation_days": [10, 3], "event_day": False}
    await import_document(store, document)
    async with store.read() as session:
        schedule = reminders.Schedule.of(await session.scalar(
            select(Event.reminders).where(Event.id == "fest-sat")))
    assert schedule.personalisation_days == (3, 10) and not schedule.event_day
    assert schedule.invitation_days == 2 and schedule.quiet_from == dt.time(21)
    for block, problem in [({"quiet_hours": ["25:00", "09:00"]}, "quiet_hours[0]"),
                           ({"personalisation_days": [7, 7]}, "the same day twice"),
                           ({"invitation_days": "2"}, "invitation_days")]:
        bad = sample_document(prefix="XX")
        bad["events"][0]["reminders"] = block
        with pytest.raises(ImportRejected) as rejected:
            await import_document(store, bad)
        assert problem in str(rejected.value)


# --- in the chat ---------------------------------------------------------------------------


async def test_the_reminder_reaches_the_chat_with_a_button_to_the_order(harness):
    document = sample_document(tickets=3, language="en")
    document["events"][0]["personalisation"]["deadline"] = DEADLINE.isoformat()
    await harness.import_orders(document)
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="en")
    await buyer.start(await harness.order_link("DF-100000"))
    worker = harness.application.bot_data["worker"]
    worker.clock = lambda: DEADLINE - dt.timedelta(days=1)
    await harness.run_background()
    reminder = buyer.find("Reminder: 3 tickets for Dreamfest 2027 — Saturday still have no name")
    assert "Jul 10, 2027, 12:00\u202fPM" in reminder.text
    overview = await buyer.press("Open my order", message=reminder)
    assert "DF-100000" in overview.text


async def test_reminders_are_turned_off_and_on_under_more_actions(harness):
    await harness.import_orders(sample_document(tickets=1, language="en"))
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="en")
    await buyer.start(await harness.order_link("DF-100000"))
    more = await buyer.press("More actions")
    assert "Reminders: on" in more.text
    off = await buyer.press("Turn reminders off")
    assert "Reminders: off" in off.text
    assert not await reminders.reminders_on(harness.store, BUYER)
    on = await buyer.press("Turn reminders on")
    assert "Reminders: on" in on.text
    assert await reminders.reminders_on(harness.store, BUYER)


async def test_on_the_event_day_the_holder_gets_the_ticket_again(harness):
    from tests.test_ticket_in_hand import claim_for_myself, open_order
    from tests.ticket_helpers import newest_id, picture_codes, settle_changes, ticket_pictures

    buyer = await open_order(harness)
    await claim_for_myself(buyer)
    await settle_changes(harness)
    async with harness.store.read() as session:
        barcode = await session.scalar(select(Ticket.barcode).where(
            Ticket.ref == "T-DF-100000-1"))
    since = newest_id(buyer)
    harness.application.bot_data["worker"].clock = lambda: paris(2027, 7, 17, 9, 30)
    await harness.run_background()
    assert buyer.find("Today is the day: Dreamfest 2027 — Saturday!").message_id > since
    [again] = [m for m in ticket_pictures(buyer) if m.message_id > since]
    assert await picture_codes(harness, again) == [barcode]
    assert "Parc des Expositions, Nantes" in again.text


async def test_the_friend_gets_a_reminder_e_mail_with_the_claim_link(harness):
    await harness.import_orders(sample_document(tickets=2, language="fr"))
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="fr")
    await buyer.start(await harness.order_link("DF-100000"))
    async with harness.store.read() as session:
        ticket_id = await session.scalar(select(Ticket.id).where(Ticket.ref == "T-DF-100000-1"))
    await services.invite_friend(harness.store, BUYER, ticket_id, "ami@exemple.fr")
    first = await harness.next_mail()
    assert first["To"] == "ami@exemple.fr"
    async with harness.store.read() as session:
        expires = await session.scalar(select(Invitation.expires_at))
    # The first 10:00 in Paris once the link has two days left: outside the quiet hours
    # (21:00-09:00) whatever the time of day this test runs at.
    window_opens = (expires - dt.timedelta(days=2)).astimezone(PARIS)
    due = dt.datetime.combine(window_opens.date(), dt.time(10), PARIS)
    if due < window_opens:
        due = dt.datetime.combine(window_opens.date() + dt.timedelta(days=1), dt.time(10), PARIS)
    assert due < expires
    harness.application.bot_data["worker"].clock = lambda: due.astimezone(dt.UTC)
    reminder = await harness.next_mail()
    assert reminder["To"] == "ami@exemple.fr"
    assert reminder["Subject"].startswith("Rappel : votre billet pour Dreamfest 2027")
    body = reminder.get_body(("plain",)).get_content()
    assert "https://t.me/ticketbot_test_bot?start=" in body
    assert "Petit rappel" in body
    news = buyer.find("n’a pas encore réclamé le billet T-DF-100000-1")
    assert [button.text for row in news.buttons for button in row][:2] == [
        "✉️ Renvoyer l’invitation", "↩️ Révoquer l’invitation"]


async def test_an_opted_out_buyer_gets_no_chat_reminder_but_the_friend_still_gets_the_mail(store):
    _, expires = await invited(store)
    await reminders.set_reminders(store, BUYER, False)
    assert await reminders.queue_due_reminders(store, expires - dt.timedelta(days=1)) == 1
    assert len(await mails(store, "reminder_invitation")) == 1
    assert await notifications(store, "reminder_invitation") == []
