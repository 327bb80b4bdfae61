"""The shop's webhooks end to end: the real bot server (``tests/test_webhook.py``'s, against the
Bot API emulator) sends what changes to a real receiver on loopback, which verifies every
message with the ``standardwebhooks`` library as a shop would. A first answer 500 brings the
same message again within seconds under the same id; a receiver down across a restart loses
nothing; two senders on one store never deliver one message twice at once; a listing's
created/updated/sold arrive in that order, and the id they carry completes the sale."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bot.http.openapi import openapi_document
from bot.metrics import Metrics
from bot.webhooks import WebhookSender
from storage import services, webhook_outbox
from storage.db.store import Store
from storage.models import DeliveryState, Order, Ticket, WebhookDelivery, WebhookMessage
from storage.services import exchange, gate, resale
from storage.services.importing.importer import import_document
from storage.webhook_messages import MESSAGES, ListingData
from tests.conftest import sample_document
from tests.harness import free_port
from tests.test_http_api import open_api
from tests.test_mailer import second_store
from tests.test_webhook import BUYER, open_order, start_bot

SECRET = "whsec_" + base64.b64encode(b"a shop's secret of 32 bytes !!!!").decode()
API = {"Authorization": "Bearer api-token"}


@dataclass
class Attempt:
    webhook_id: str
    body: bytes
    message: dict
    status: int
    at: float


@dataclass
class Receiver:
    """A shop's endpoint: verifies each message's signature (a forged one gets 400 and is
    counted), answers the statuses in ``answers`` first, then 204."""

    answers: list[int] = field(default_factory=list)
    delay: float = 0.0
    port: int = field(default_factory=free_port)
    attempts: list[Attempt] = field(default_factory=list)
    forged: int = 0
    overlaps: int = 0
    _in_flight: Counter = field(default_factory=Counter)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/ticketbot"

    @property
    def delivered(self) -> list[dict]:
        return [attempt.message for attempt in self.attempts if attempt.status < 300]

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            message = Webhook(SECRET).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.forged += 1
            return web.Response(status=400)
        webhook_id = request.headers["webhook-id"]
        self._in_flight[webhook_id] += 1
        self.overlaps += self._in_flight[webhook_id] > 1
        try:
            await asyncio.sleep(self.delay)
        finally:
            self._in_flight[webhook_id] -= 1
        status = self.answers.pop(0) if self.answers else 204
        self.attempts.append(Attempt(webhook_id, body, message, status, time.monotonic()))
        return web.Response(status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/ticketbot", self.receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(self, type_name: str, count: int = 1,
                       timeout: float = 15) -> list[dict]:  # noqa: ASYNC109
        """The delivered messages of ``type_name``, once there are ``count``."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.delivered if m["type"] == type_name]
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, (type_name, self.delivered)
            await asyncio.sleep(0.05)


@pytest.fixture
async def receiver():
    receiving = Receiver()
    await receiving.start()
    try:
        yield receiving
    finally:
        await receiving.stop()


async def bot_sending_to(store, tmp_path, url: str):
    return await start_bot(store, tmp_path, shop_webhook_url=url, shop_webhook_secret=SECRET)


async def stop(running) -> None:
    await running.server.stop()
    await running.emulator.stop()


async def ticket_id(store: Store, ref: str) -> int:
    async with store.read() as session:
        return await session.scalar(select(Ticket.id).where(Ticket.ref == ref))


async def buyer_opens_order(running, store) -> int:
    """The sample order, opened by its buyer in Telegram; returns its first ticket's id."""
    buyer, token = await open_order(running, store)
    await buyer.start(token)
    return await ticket_id(store, "T-DF-100000-1")


async def test_listing_messages_arrive_in_order_and_their_id_completes_the_sale(
        store, tmp_path, receiver):
    running = await bot_sending_to(store, tmp_path, receiver.url)
    try:
        first = await buyer_opens_order(running, store)
        buyer = running.emulator.user(BUYER)
        await resale.list_for_resale(store, BUYER, first, Decimal("60.00"))
        await resale.change_price(store, BUYER, first, Decimal("55.00"))
        [updated] = await receiver.wait_for("listing.updated")
        listing = updated["data"]
        assert listing | {"id": 0} == {"id": 0, "ticket": "T-DF-100000-1", "order": "DF-100000",
                                       "event": "fest-sat", "price": "55.00", "currency": "EUR"}
        mark = buyer.mark()
        async with aiohttp.ClientSession() as session, session.post(
                f"{running.base}/api/resale/{listing['id']}/sold", headers=API) as answer:
            assert answer.status == 200
        [sold] = await receiver.wait_for("listing.sold")
        assert sold["data"]["id"] == listing["id"] and sold["data"]["price"] == "55.00"
        told = await buyer.wait_for_message(
            lambda message: "T-DF-100000-1" in message.text and "55" in message.text,
            since=mark, timeout=10)
        assert told is not None
        async with aiohttp.ClientSession() as session, session.get(
                f"{running.base}/metrics") as answer:
            metrics = await answer.text()
        assert 'ticketbot_webhook_deliveries_total{state="delivered"} 3.0' in metrics
    finally:
        await stop(running)
    listing_types = [m["type"] for m in receiver.delivered if m["type"].startswith("listing.")]
    assert listing_types == ["listing.created", "listing.updated", "listing.sold"]
    assert receiver.forged == 0
    assert len({attempt.webhook_id for attempt in receiver.attempts}) == 3


async def test_a_first_answer_500_brings_the_same_message_again_within_seconds(
        store, tmp_path, receiver):
    receiver.answers = [500]
    running = await bot_sending_to(store, tmp_path, receiver.url)
    try:
        first = await buyer_opens_order(running, store)
        await resale.list_for_resale(store, BUYER, first, Decimal("60.00"))
        await resale.change_price(store, BUYER, first, Decimal("55.00"))
        await receiver.wait_for("listing.updated", timeout=20)
    finally:
        await stop(running)
    refused, again, updated = receiver.attempts[:3]
    assert refused.status == 500 and again.status == 204
    assert (again.webhook_id, again.body) == (refused.webhook_id, refused.body)
    assert 4 <= again.at - refused.at <= 10  # the schedule's 5 s, give or take a round
    # The order's next message waited for the first one: in order, never overtaking it.
    assert updated.message["type"] == "listing.updated" and updated.at >= again.at


async def test_nothing_is_lost_while_the_receiver_is_down_across_a_restart(store, tmp_path):
    receiver = Receiver()  # not started yet: its port refuses connections
    running = await bot_sending_to(store, tmp_path, receiver.url)
    try:
        first = await buyer_opens_order(running, store)
        await resale.list_for_resale(store, BUYER, first, Decimal("60.00"))
        await services.claim_for_myself(store, BUYER, await ticket_id(store, "T-DF-100000-2"),
                                        "Camille Martin")
        async with asyncio.timeout(10):  # tried once; the order's second waits behind it
            while await tried(store) < 1:  # noqa: ASYNC110 - the store has no events
                await asyncio.sleep(0.05)
        assert await webhook_outbox.waiting(store) == 2
    finally:
        await stop(running)
    await receiver.start()
    running = await bot_sending_to(store, tmp_path, receiver.url)
    try:
        [listed] = await receiver.wait_for("listing.created", timeout=20)
        [assigned] = await receiver.wait_for("ticket.assigned")
    finally:
        await stop(running)
        await receiver.stop()
    assert listed["data"]["ticket"] == "T-DF-100000-1"
    async with store.read() as session:
        barcode = await session.scalar(select(Ticket.barcode).where(Ticket.ref == "T-DF-100000-2"))
    assert assigned["data"]["holder"] == "Camille Martin"
    assert assigned["data"]["barcode"] == barcode != assigned["data"]["voided_barcode"]


async def tried(store: Store) -> int:
    async with store.read() as session:
        return len((await session.scalars(
            select(WebhookDelivery.id).where(WebhookDelivery.attempts > 0))).all())


async def queue_listings(store: Store, orders: int, per_order: int) -> None:
    """Messages for ``orders`` orders, ``per_order`` each, written as services write them."""
    async with store.write() as session:
        order_ids = (await session.scalars(select(Order.id).order_by(Order.id))).all()
        for n in range(per_order):
            for order_id in order_ids[:orders]:
                await webhook_outbox.queue_webhook(
                    session, "listing.updated", order_id,
                    ListingData(id=order_id, ticket=f"T-{order_id}", order=str(order_id),
                                event="fest-sat", price=f"{10 + n}.00", currency="EUR"),
                    services.utcnow())


async def test_two_senders_on_one_store_never_deliver_a_message_twice_at_once(
        store, receiver):
    """Two senders with their own connections to one store, as two bot processes have."""
    receiver.delay = 0.05
    await import_document(store, sample_document(orders=6, tickets=1))
    store.webhook_endpoints = (receiver.url,)
    await queue_listings(store, orders=6, per_order=5)
    other = await second_store(store)
    senders = [WebhookSender(one, (receiver.url,), SECRET, batch=4) for one in (store, other)]
    try:
        async with asyncio.timeout(30):
            while await webhook_outbox.waiting(store):
                await asyncio.gather(*(sender.send_due() for sender in senders))
    finally:
        for sender in senders:
            await sender.close()
        await other.close()
    assert receiver.overlaps == 0 and receiver.forged == 0
    assert len(receiver.attempts) == 30 == len({a.webhook_id for a in receiver.attempts})
    by_order: dict[str, list[str]] = {}
    for message in receiver.delivered:
        by_order.setdefault(message["data"]["order"], []).append(message["data"]["price"])
    assert all(prices == [f"{10 + n}.00" for n in range(5)] for prices in by_order.values())


async def test_410_stops_the_endpoint_until_an_operator_retries(store, receiver, caplog):
    caplog.set_level(logging.INFO)
    receiver.answers = [410]
    await import_document(store, sample_document(orders=1, tickets=1))
    store.webhook_endpoints = (receiver.url,)
    await queue_listings(store, orders=1, per_order=2)
    metrics = Metrics()
    sender = WebhookSender(store, (receiver.url,), SECRET, metrics=metrics)
    api = await open_api(store)
    try:
        await sender.send_due()
        assert await webhook_outbox.waiting(store) == 0  # the second one is stopped unsent
        assert len(receiver.attempts) == 1
        [warning] = [r for r in caplog.records if "410 Gone" in r.getMessage()]
        assert receiver.url.split("/hooks")[0].removeprefix("http://") in warning.getMessage()
        assert "/hooks" not in warning.getMessage()
        stopped = (await api.call("GET", "/api/webhook-deliveries?status=stopped")).json
        first, second = stopped["deliveries"]
        assert (first["status"], first["last_status"], first["attempts"]) == ("stopped", 410, 1)
        retried = await api.call("POST", f"/api/webhook-deliveries/{first['id']}/retry")
        assert retried.status == 200 and retried.json["status"] == "pending"
        again = await api.call("POST", f"/api/webhook-deliveries/{first['id']}/retry")
        assert again.status == 409 and again.json["error"] == "delivery_not_finished"
        await api.call("POST", f"/api/webhook-deliveries/{second['id']}/retry")
        while await webhook_outbox.waiting(store):
            await sender.send_due()
    finally:
        await sender.close()
        await api.client.close()
    assert [a.status for a in receiver.attempts] == [410, 204, 204]
    assert receiver.attempts[1].webhook_id == receiver.attempts[0].webhook_id
    assert metrics.webhook_deliveries.labels(state="stopped")._value.get() == 2


async def test_a_delivery_failed_for_good_is_listed_and_can_be_replayed(store, receiver):
    receiver.answers = [503]
    await import_document(store, sample_document(orders=1, tickets=1))
    store.webhook_endpoints = (receiver.url,)
    await queue_listings(store, orders=1, per_order=1)
    # No retry left after the first try: failed at once (the real schedule lasts 37 hours).
    sender = WebhookSender(store, (receiver.url,), SECRET, schedule=())
    api = await open_api(store)
    try:
        await sender.send_due()
        failed = (await api.call("GET", "/api/webhook-deliveries?status=failed")).json
        [delivery] = failed["deliveries"]
        assert (delivery["last_status"], delivery["last_error"]) == (503, "HTTP 503")
        assert delivery["order"] == "DF-100000" and delivery["type"] == "listing.updated"
        assert (await api.call("GET", "/api/webhook-deliveries?status=delivered")).json == {
            "deliveries": [], "next": None}
        retried = await api.call("POST", f"/api/webhook-deliveries/{delivery['id']}/retry")
        assert retried.json["attempts"] == 0
        await sender.send_due()
        missing = await api.call("POST", "/api/webhook-deliveries/999/retry")
        assert missing.status == 404 and missing.json["error"] == "delivery_not_found"
        bad = await api.call("GET", "/api/webhook-deliveries?status=lost", valid=False)
        assert bad.status == 400
    finally:
        await sender.close()
        await api.client.close()
    assert [a.status for a in receiver.attempts] == [503, 204]
    async with store.read() as session:
        assert await session.scalar(select(WebhookDelivery.state)) == DeliveryState.DELIVERED


async def test_without_an_endpoint_nothing_is_queued(store):
    await import_document(store, sample_document(orders=1, tickets=1))
    token = await services.create_order_link(store, "DF-100000")
    await services.open_link(store, BUYER, token)
    await resale.list_for_resale(store, BUYER, await ticket_id(store, "T-DF-100000-1"),
                                 Decimal("60.00"))
    assert await webhook_outbox.waiting(store) == 0


def test_every_message_type_is_documented_with_its_model():
    document = json.loads(json.dumps(openapi_document([])))
    assert set(document["webhooks"]) >= {
        "listing.created", "listing.updated", "listing.cancelled", "listing.sold",
        "ticket.assigned", "ticket.exchanged", "ticket.scanned", "invitation.sent",
        "invitation.claimed", "invitation.declined", "invitation.expired",
        "invitation.revoked"}
    schema = document["components"]["schemas"]["ListingCreated"]
    assert schema["properties"]["type"]["const"] == "listing.created"


def documented_receiver() -> str:
    """The receiver docs/webhooks.md shows, as written there."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "webhooks.md").read_text()
    return re.search(r"## A receiver.*?```python\n(.*?)```", text, re.DOTALL).group(1)


async def test_the_receiver_of_the_docs_verifies_and_keeps_each_message_once(
        store, monkeypatch, capsys):
    monkeypatch.setenv("TICKETBOT_SHOP_WEBHOOK_SECRET", SECRET)
    namespace: dict = {}
    exec(documented_receiver(), namespace)
    app = web.Application()
    app.router.add_post("/hooks/ticketbot", namespace["receive"])
    runner, port = web.AppRunner(app), free_port()
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/hooks/ticketbot"
    await import_document(store, sample_document(orders=1, tickets=1))
    store.webhook_endpoints = (url,)
    await queue_listings(store, orders=1, per_order=2)
    forger = WebhookSender(store, (url,), "whsec_" + base64.b64encode(b"x" * 32).decode(),
                           schedule=(dt.timedelta(0),))
    sender = WebhookSender(store, (url,), SECRET)
    try:
        await forger.send_due()  # signed with another secret: refused, tried again at once
        assert capsys.readouterr().out == ""
        while await webhook_outbox.waiting(store):
            await sender.send_due()
    finally:
        await forger.close()
        await sender.close()
        await runner.cleanup()
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed] == ["listing.updated", "listing.updated"]


# --- what each service writes -------------------------------------------------------------------


FRIEND = 2002


async def messages_written(store: Store) -> list[dict]:
    async with store.read() as session:
        rows = (await session.execute(select(WebhookMessage.type, WebhookMessage.body)
                                      .order_by(WebhookMessage.id))).all()
    return [MESSAGES[type_name].model_validate_json(body).model_dump(mode="json")
            for type_name, body in rows]


async def test_every_change_writes_its_message_in_its_own_transaction(store):
    """Each service writes its message beside its change; every body matches its model."""
    store.webhook_endpoints = ("http://127.0.0.1:9/hooks",)
    await import_document(store, sample_document(tickets=8))
    await services.open_link(store, BUYER, await services.create_order_link(store, "DF-100000"))
    ticket = {n: await ticket_id(store, f"T-DF-100000-{n}") for n in range(1, 9)}
    listing = await resale.list_for_resale(store, BUYER, ticket[1], Decimal("60.00"))
    await resale.change_price(store, BUYER, ticket[1], Decimal("50.00"))
    await resale.cancel_sale(store, BUYER, ticket[1])
    listing = await resale.list_for_resale(store, BUYER, ticket[1], Decimal("40.00"))
    await resale.complete_sale(store, listing)
    await services.claim_for_myself(store, BUYER, ticket[2], "Camille Martin")
    await services.rename_holder(store, BUYER, ticket[2], "Camille Durand")
    await services.take_back(store, BUYER, ticket[2])
    invite = await services.invite_friend(store, BUYER, ticket[3], "alex@example.org")
    await services.resend_invitation(store, BUYER, ticket[3])
    await services.open_link(store, FRIEND, invite.claim_token)
    await services.accept_invitation(store, FRIEND, invite.invitation_id, "Alex Durand")
    invite = await services.invite_friend(store, BUYER, ticket[4], "sam@example.org")
    await services.open_link(store, FRIEND, invite.claim_token)
    await services.decline_invitation(store, FRIEND, invite.invitation_id)
    await services.invite_friend(store, BUYER, ticket[5], "kim@example.org")
    await services.revoke_invitation(store, BUYER, ticket[5])
    await services.invite_friend(store, BUYER, ticket[6], "lou@example.org")
    await services.expire_invitations(store, now=services.utcnow() + dt.timedelta(days=30))
    await exchange.exchange_ticket(store, BUYER, ticket[7], "fest-sun")
    await resale.list_for_resale(store, BUYER, ticket[8], Decimal("60.00"))
    await services.invite_friend(store, BUYER, ticket[5], "kim@example.org")
    for n in (8, 5):  # let in while on resale, while invited: that settles them first
        async with store.read() as session:
            code = await session.scalar(select(Ticket.barcode).where(Ticket.id == ticket[n]))
        await gate.scan_barcode(store, code, "north-2", f"nonce-{n}", "gate-test")
    written = await messages_written(store)
    assert [m["type"] for m in written] == [
        "listing.created", "listing.updated", "listing.cancelled", "listing.created",
        "listing.sold",
        "ticket.assigned", "ticket.assigned", "ticket.assigned",
        "invitation.sent", "invitation.sent", "invitation.claimed", "ticket.assigned",
        "invitation.sent", "invitation.declined",
        "invitation.sent", "invitation.revoked",
        "invitation.sent", "invitation.expired",
        "ticket.exchanged",
        "listing.created", "invitation.sent",
        "listing.cancelled", "ticket.scanned",
        "invitation.revoked", "ticket.scanned",
    ]
    sold = written[4]["data"]
    assert sold == {"id": listing, "ticket": "T-DF-100000-1", "order": "DF-100000",
                    "event": "fest-sat", "price": "40.00", "currency": "EUR"}
    taken_back = written[7]["data"]
    assert taken_back["holder"] is None and taken_back["ticket"] == "T-DF-100000-2"
    claimed = written[11]["data"]
    assert claimed["holder"] == "Alex Durand" and claimed["voided_barcode"] != claimed["barcode"]
    exchanged = written[18]["data"]
    assert (exchanged["ticket"], exchanged["event"], exchanged["new_event"]) == (
        "T-DF-100000-7", "fest-sat", "fest-sun")
    assert written[-1]["data"]["gate"] == "north-2"
    async with store.read() as session:  # one delivery per message and endpoint
        deliveries = (await session.scalars(select(WebhookDelivery.endpoint))).all()
    assert deliveries == [store.webhook_endpoints[0]] * len(written)


async def test_a_refused_change_writes_no_message(store):
    store.webhook_endpoints = ("http://127.0.0.1:9/hooks",)
    await import_document(store, sample_document(tickets=1))
    await services.open_link(store, BUYER, await services.create_order_link(store, "DF-100000"))
    with pytest.raises(services.Refusal):
        await resale.list_for_resale(store, BUYER, await ticket_id(store, "T-DF-100000-1"),
                                     Decimal("500.00"))  # above the face value
    assert await messages_written(store) == []
