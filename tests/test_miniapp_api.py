"""The Mini App's server side over real HTTP (aiohttp's test server, mounted as ``ticketbot run``
mounts it) on the real store: Telegram's initData check, the access rules, the actions through
the chat's services, and the refusals (forged, altered, stale, another's order, a replay)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.http.app import create_api
from bot.http.kernel import ApiServices
from bot.metrics import Metrics
from bot.webapp import MiniAppServices, create_miniapp
from bot.webapp.init_data import (
    InitDataRefused,
    sign_init_data,
    user_init_data,
    verify_init_data,
)
from storage import services
from storage.db.store import Store
from storage.models import AuditEntry, Ticket, TicketState, WebAppAction
from tests.conftest import sample_document

TOKEN = "123456:TEST-TOKEN"
BUYER, STRANGER = 1001, 2002


def action_id(n: int) -> str:
    return f"test-action-{n:08d}"


@pytest.fixture
async def client(store: Store):
    await services_ready(store)
    api = ApiServices(store=store, api_token="api-token", bot_username=lambda: "ticketbot_test_bot",
                      metrics=Metrics())
    mini = MiniAppServices(store=store, bot_token=TOKEN,
                           bot_username=lambda: "ticketbot_test_bot")
    async with TestClient(TestServer(create_api(api, miniapp=create_miniapp(mini)))) as client:
        yield client


async def services_ready(store: Store) -> None:
    from storage.services.importing.importer import import_document

    document = sample_document(orders=2, tickets=3, language="fr")
    await import_document(store, document)
    for user, number in ((BUYER, "DF-100000"), (STRANGER, "DF-100001")):
        token = await services.create_order_link(store, number)
        await services.open_link(store, user, token, language_code="fr")


def auth(user: int = BUYER, language_code: str = "fr") -> dict[str, str]:
    """What the page sends: the initData Telegram signed for a French user."""
    return {"Authorization": "tma " + user_init_data(TOKEN, user, language_code=language_code)}


async def order_of(client: TestClient, user: int = BUYER) -> dict:
    answer = await client.get("/app/api/start", headers=auth(user))
    assert answer.status == 200
    return (await answer.json())["order"]


def first_ticket(order: dict, state: str = "to_assign") -> int:
    section = next(s for s in order["sections"] if s["state"] == state)
    return section["tickets"][0]["id"]


# --- initData ------------------------------------------------------------------------------


def test_valid_init_data_names_its_user():
    user = verify_init_data(user_init_data(TOKEN, 42, language_code="fr", start_param="7"),
                            TOKEN, max_age=3600)
    assert (user.id, user.language_code, user.start_param) == (42, "fr", "7")


def test_init_data_signed_with_another_token_is_refused():
    with pytest.raises(InitDataRefused):
        verify_init_data(user_init_data("999:OTHER", 42), TOKEN, max_age=3600)


def test_altered_init_data_is_refused():
    signed = user_init_data(TOKEN, 42)
    altered = signed.replace("%22id%22%3A42", "%22id%22%3A43")
    assert altered != signed
    with pytest.raises(InitDataRefused):
        verify_init_data(altered, TOKEN, max_age=3600)


def test_stale_or_future_init_data_is_refused():
    now = time.time()
    with pytest.raises(InitDataRefused, match="stale"):
        verify_init_data(user_init_data(TOKEN, 42, auth_date=int(now) - 3601), TOKEN,
                         max_age=3600, now=now)
    with pytest.raises(InitDataRefused, match="stale"):
        verify_init_data(user_init_data(TOKEN, 42, auth_date=int(now) + 600), TOKEN,
                         max_age=3600, now=now)


def test_init_data_without_a_user_or_with_a_repeated_field_is_refused():
    no_user = sign_init_data(TOKEN, {"auth_date": str(int(time.time()))})
    with pytest.raises(InitDataRefused):
        verify_init_data(no_user, TOKEN, max_age=3600)
    repeated = user_init_data(TOKEN, 42) + "&auth_date=1"
    with pytest.raises(InitDataRefused):
        verify_init_data(repeated, TOKEN, max_age=3600)


# --- over HTTP -----------------------------------------------------------------------------


async def test_forged_stale_or_missing_init_data_gets_401_in_the_users_language(client):
    forged = user_init_data("999:OTHER", BUYER, language_code="fr")
    stale = user_init_data(TOKEN, BUYER, language_code="fr", auth_date=int(time.time()) - 7200)
    for headers in ({"Authorization": "tma " + forged}, {"Authorization": "tma " + stale}, {},
                    {"Authorization": "Bearer api-token"}):
        answer = await client.get("/app/api/start", headers=headers)
        assert answer.status == 401
    body = await (await client.get("/app/api/start",
                                   headers={"Authorization": "tma " + forged})).json()
    assert body["message"] == "Veuillez ouvrir cette page depuis le bot dans Telegram."


async def test_start_shows_the_only_order_in_the_users_language(client):
    answer = await client.get("/app/api/start", headers=auth())
    body = await answer.json()
    assert body["language"] == "fr"
    assert body["order"]["title"] == "Ma commande DF-100000"
    event = body["order"]["events"][0]
    assert event["when"] == "sam. 17 juil. 2027, 14:00"
    assert event["venue"] == "Parc des Expositions, Nantes"
    assert body["order"]["sections"][0]["title"] == "À attribuer (3)"
    assert body["strings"]["claim_self"].endswith("Mettre le billet à mon nom")


async def test_another_users_order_and_ticket_are_refused(client):
    theirs = await order_of(client, STRANGER)
    answer = await client.get(f"/app/api/orders/{theirs['id']}", headers=auth())
    assert answer.status == 404
    ticket = first_ticket(theirs)
    answer = await client.post(f"/app/api/tickets/{ticket}/claim", headers=auth(),
                               json={"action_id": action_id(1), "name": "Eve Intruder"})
    assert answer.status == 404
    assert (await client.get(f"/app/api/tickets/{ticket}", headers=auth())).status == 404
    start = await client.get(f"/app/api/start?order={theirs['id']}", headers=auth())
    assert (await start.json())["order"] is None


async def test_claim_through_the_mini_app_changes_the_store_once(client, store):
    ticket = first_ticket(await order_of(client))
    body = {"action_id": action_id(2), "name": "Camille Martin"}
    first = await client.post(f"/app/api/tickets/{ticket}/claim", headers=auth(), json=body)
    assert first.status == 200, await first.text()
    assert "pour titulaire Camille Martin" in (await first.json())["notice"]
    async with store.read() as session:
        claimed = await session.get(Ticket, ticket)
        audits = await session.scalar(select(func.count()).select_from(AuditEntry))
    assert claimed.state == TicketState.COMPLETED and claimed.holder_telegram_id == BUYER
    # The same request again (a replay, a double tap): refused, nothing changes.
    again = await client.post(f"/app/api/tickets/{ticket}/claim", headers=auth(), json=body)
    assert again.status == 409 and (await again.json())["error"] == "replayed"
    rename = {"action_id": action_id(2), "name": "Someone Else"}
    replayed = await client.post(f"/app/api/tickets/{ticket}/rename", headers=auth(), json=rename)
    assert replayed.status == 409
    async with store.read() as session:
        after = await session.get(Ticket, ticket)
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == audits
    assert (after.version, after.holder_name) == (claimed.version, "Camille Martin")


async def test_concurrent_copies_of_one_action_apply_once(client, store):
    ticket = first_ticket(await order_of(client))
    body = {"action_id": action_id(3), "name": "Camille Martin"}
    answers = await asyncio.gather(*[
        client.post(f"/app/api/tickets/{ticket}/claim", headers=auth(), json=body)
        for _ in range(4)])
    assert sorted(answer.status for answer in answers) == [200, 409, 409, 409]
    async with store.read() as session:
        assert await session.scalar(select(func.count()).select_from(WebAppAction)) == 1


async def test_a_refused_action_keeps_nothing_and_says_which_field(client, store):
    ticket = first_ticket(await order_of(client))
    bad = await client.post(f"/app/api/tickets/{ticket}/invite", headers=auth(),
                            json={"action_id": action_id(4), "email": "not an address"})
    assert bad.status == 422
    body = await bad.json()
    assert body["field"] == "email" and "n’est pas une adresse" in body["message"]
    # Nothing was committed, so the same action may be sent again, corrected.
    good = await client.post(f"/app/api/tickets/{ticket}/invite", headers=auth(),
                             json={"action_id": action_id(4), "email": "alex@example.org"})
    assert good.status == 200
    assert (await good.json())["link"].startswith("https://t.me/ticketbot_test_bot?start=")


async def test_resale_price_is_read_in_the_users_locale_and_bounded(client):
    ticket = first_ticket(await order_of(client))
    high = await client.post(f"/app/api/tickets/{ticket}/sell", headers=auth(),
                             json={"action_id": action_id(5), "price": "120"})
    assert high.status == 422 and (await high.json())["field"] == "price"
    listed = await client.post(f"/app/api/tickets/{ticket}/sell", headers=auth(),
                               json={"action_id": action_id(6), "price": "45,50"})
    assert listed.status == 200
    order = (await listed.json())["order"]
    resale = next(s for s in order["sections"] if s["state"] == "on_resale")
    assert "45,50" in resale["tickets"][0]["line"]


@pytest.mark.parametrize("typed", ["45,50\u202f€", "45,50 €", "EUR 45,50", "€45,50"])
async def test_a_price_typed_with_its_currency_sign_is_understood(client, typed):
    ticket = first_ticket(await order_of(client))
    listed = await client.post(f"/app/api/tickets/{ticket}/sell", headers=auth(),
                               json={"action_id": action_id(7), "price": typed})
    assert listed.status == 200, await listed.json()
    order = (await listed.json())["order"]
    resale = next(s for s in order["sections"] if s["state"] == "on_resale")
    assert "45,50" in resale["tickets"][0]["line"]


async def test_an_action_without_an_action_id_is_refused(client):
    ticket = first_ticket(await order_of(client))
    answer = await client.post(f"/app/api/tickets/{ticket}/take_back", headers=auth(), json={})
    assert answer.status == 400


async def test_the_page_is_served_with_telegrams_script_only(client):
    page = await client.get("/app/")
    assert page.status == 200
    html = await page.text()
    assert '<script src="https://telegram.org/js/telegram-web-app.js">' in html
    assert "connect-src 'self'" in page.headers["Content-Security-Policy"]
    assert (await client.get("/app/static/app.js")).status == 200
    # The stand-in for Telegram's script exists for the demo only.
    assert (await client.get("/app/stand-in/telegram-web-app.js")).status == 404
    redirect = await client.get("/app?order=3", allow_redirects=False)
    assert redirect.status == 308 and redirect.headers["Location"] == "/app/?order=3"
    # The HTTP API keeps its bearer token.
    assert (await client.get("/api/orders/DF-100000")).status == 401


async def act(client, ticket: int, action: str, n: int, **fields) -> dict:
    answer = await client.post(f"/app/api/tickets/{ticket}/{action}", headers=auth(),
                               json={"action_id": action_id(n), **fields})
    body = await answer.json()
    assert answer.status == 200, body
    return body


async def ticket_menu(client, ticket: int) -> dict:
    answer = await client.get(f"/app/api/tickets/{ticket}", headers=auth())
    assert answer.status == 200
    return await answer.json()


async def test_every_action_of_the_chats_ticket_menu_works_in_the_mini_app(client, store):
    order = await order_of(client)
    first, second, third = (t["id"] for t in order["sections"][0]["tickets"])
    menu = await ticket_menu(client, first)
    assert [a["action"] for a in menu["actions"]] == ["assign", "sell", "exchange"]
    assert menu["exchange_options"][0]["label"].startswith("Dreamfest 2027 — Sunday")
    assert "10,00" in menu["bounds"] and "89,00" in menu["bounds"]

    await act(client, first, "invite", 10, email="alex@example.org")
    assert [a["action"] for a in (await ticket_menu(client, first))["actions"]] == [
        "resend", "revoke"]
    resent = await act(client, first, "resend", 11)
    assert resent["link"] and "alex@example.org" in resent["notice"]
    revoked = await act(client, first, "revoke", 12)
    assert "alex@example.org" in revoked["notice"]

    await act(client, second, "claim", 13, name="Camille Martin")
    renamed = await act(client, second, "rename", 14, name="Camille Dupont")
    assert "Camille Dupont" in renamed["notice"]
    taken = await act(client, second, "take_back", 15)
    assert taken["order"]["sections"][0]["title"] == "À attribuer (3)"

    await act(client, third, "sell", 16, price="50")
    cancelled = await act(client, third, "cancel_sale", 17)
    assert "n’est plus en revente" in cancelled["notice"]
    exchanged = await act(client, third, "exchange", 18, event="fest-sun")
    assert "Dreamfest 2027 — Sunday" in exchanged["notice"]
    assert len(exchanged["order"]["events"]) == 2


async def test_an_exchange_for_a_session_not_offered_is_refused(client):
    ticket = first_ticket(await order_of(client))
    answer = await client.post(f"/app/api/tickets/{ticket}/exchange", headers=auth(),
                               json={"action_id": action_id(20), "event": "fest-sat"})
    assert answer.status == 422 and (await answer.json())["field"] == "event"


async def test_the_language_chosen_in_the_mini_app_is_the_chats(client, store):
    order = await order_of(client)
    answer = await client.post("/app/api/language", headers=auth(), json={
        "action_id": action_id(21), "language": "en", "order_id": order["id"]})
    assert answer.status == 200
    assert (await services.load_user(store, BUYER)).chosen_language == "en"
    assert (await order_of(client))["title"] == "My order DF-100000"
    theirs = await order_of(client, STRANGER)
    refused = await client.post("/app/api/language", headers=auth(), json={
        "action_id": action_id(22), "language": "fr", "order_id": theirs["id"]})
    assert refused.status == 404
    assert (await services.load_user(store, BUYER)).chosen_language == "en"
