"""`ticketbot demo`, the main job on the embedded default, driven as a person would type."""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from pathlib import Path
from urllib.parse import parse_qs

import aiohttp
import pytest

from bot.settings import Settings
from bot.tools.demo import SAMPLE_ORDERS, demo_users, first_order_in, run_demo, sample_orders
from bot.tools.emulator import BotApiEmulator
from bot.tools.terminal_chat import start_parameter
from locales import LANGUAGES


@pytest.fixture(autouse=True)
def demo_folder_in_tmp_path(tmp_path, monkeypatch):
    """Each demo makes its folder with mkdtemp; here it goes below the test's own tmp_path,
    which pytest cleans up, instead of piling up in the system's temporary folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


class Person:
    """Types into the demo: as Camille, sends a ticket to Alex; then, as Alex, claims it."""

    def __init__(self, output: list[str]) -> None:
        self.output = output
        # ticket 1 → assign → send to a friend → the address → send
        self.planned = ["1", "1", "2", "alex@example.org", "1"]
        self.switched = False

    async def read_line(self, prompt: str) -> str | None:
        if self.planned:
            return self.planned.pop(0)
        if self.switched:
            return None
        self.switched = True
        # The newest link in the chat is the claim link the bot gave Camille to forward.
        token = re.findall(r"\?start=([A-Za-z0-9_-]+)\s*$", "\n".join(self.output), re.M)[-1]
        self.planned = [f"/start {token}", "1", ":quit"]  # open the link, accept
        return ":as 3"


async def test_demo_lets_a_buyer_send_a_ticket_and_a_friend_claim_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    output: list[str] = []
    person = Person(output)
    assert await run_demo(Settings(), read_line=person.read_line, write=output.append) == 0
    transcript = "\n".join(output)
    assert "Ma commande DF-100234" in transcript
    assert "E-mail to alex@example.org" in transcript
    assert "Camille Martin vous a envoyé un billet !" in transcript
    assert "Le billet est à vous. Titulaire : Alex Durand." in transcript
    # The ticket Alex now holds: its QR code drawn in the terminal, its PDF and calendar entry.
    shown = re.search(r"🎫 Ticket T-100234-\d in the chat of Alex Durand .*barcode (\d{16})\):\n"
                      r"([█▀▄ \n]+)\nPDF: (\S+)\nCalendar: (\S+)", transcript)
    assert shown is not None, transcript[-2000:]
    assert "▄" in shown.group(2)
    pdf, ics = await asyncio.gather(*(asyncio.to_thread(Path(shown.group(n)).read_bytes)
                                      for n in (3, 4)))
    assert pdf.startswith(b"%PDF")
    assert b"BEGIN:VCALENDAR" in ics
    # Sean's Harbour Lights ticket has rotating codes: the terminal says where its code is.
    assert ("🎫 Ticket HL-5012-1 in the chat of Sean O'Connor (user 2), in the name of Sean "
            "O'Connor: its event has rotating codes") in transcript


async def test_demo_prints_a_mini_app_link_per_user_that_opens_their_order(tmp_path, monkeypatch):
    """The printed link works as a desktop browser would use it: the page loads the stand-in
    for Telegram's script, and the initData in its fragment opens the user's own order."""
    monkeypatch.chdir(tmp_path)
    output: list[str] = []
    seen: dict[str, object] = {}

    async def read_line(prompt: str) -> str | None:
        links = re.findall(r"user (\d) \((\w+)\): (http://127\.0\.0\.1:\d+/app/#\S+)",
                           "\n".join(output))
        assert [(n, name) for n, name, _ in links] == [("1", "Camille"), ("2", "Sean"),
                                                       ("3", "Alex")]
        page, fragment = links[0][2].split("#", 1)
        init_data = parse_qs(fragment)["tgWebAppData"][0]
        async with aiohttp.ClientSession() as session:
            async with session.get(page) as answer:
                seen["page"] = await answer.text()
            async with session.get(page + "stand-in/telegram-web-app.js") as answer:
                seen["stand_in"] = answer.status
            async with session.get(page + "api/start",
                                   headers={"Authorization": "tma " + init_data}) as answer:
                seen["start"] = await answer.json()
        return ":quit"

    assert await run_demo(Settings(), read_line=read_line, write=output.append) == 0
    assert '<script src="stand-in/telegram-web-app.js">' in seen["page"]
    assert seen["stand_in"] == 200
    assert seen["start"]["order"]["title"] == "Ma commande DF-100234"


# --- the terminal as a newcomer uses it ----------------------------------------------------


class Script:
    """Types the given lines one per prompt (a callable is asked for its line when its turn
    comes), then :quit."""

    def __init__(self, output: list[str], lines: list) -> None:
        self.output = output
        self.lines = list(lines)

    async def read_line(self, prompt: str) -> str | None:
        if not self.lines:
            return ":quit"
        line = self.lines.pop(0)
        return await line(self) if callable(line) else line

    @property
    def transcript(self) -> str:
        return "\n".join(self.output)


async def run_script(lines: list) -> str:
    output: list[str] = []
    script = Script(output, lines)
    assert await run_demo(Settings(), read_line=script.read_line, write=output.append) == 0
    return script.transcript.replace("\u00a0", " ")  # Babel's money has no-break spaces


async def test_a_number_is_sent_as_text_when_the_bot_waits_for_one(tmp_path, monkeypatch):
    """At the price prompt a number that is no button is the price; elsewhere it is not sent,
    and the terminal says how to send it; ``:say`` sends any text as it is."""
    monkeypatch.chdir(tmp_path)
    # no such button → ticket 1 → sell → a price too high → :say a right one → :say a smiley
    transcript = await run_script(["9", "1", "2", "100", ":say 50", ":say :)", ":say"])
    assert "(no button 9; the newest keyboard has 4 - to send 9 as text, type :say 9)" \
        in transcript
    assert "Tapez le prix que vous demandez pour ce billet." in transcript
    assert "(sent 100 as text: the bot is waiting for a typed answer)\nTicketbot:\n" \
        "  Le prix doit être compris entre 10,00 € et 89,00 €." in transcript
    assert "Mettre ce billet en revente à 50,00 € ?" in transcript
    # ":)" reached the bot as a text: it is no price.
    assert transcript.rstrip().endswith("par exemple 89,00 €.\n"
                                        "(usage: :say TEXT - sends TEXT as it is, e.g. :say 100)")
    assert "(usage: :say TEXT - sends TEXT as it is, e.g. :say 100)" in transcript


async def test_a_button_number_at_a_prompt_presses_and_says_how_to_send_it(tmp_path,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    transcript = await run_script(["1", "2", "1"])  # ticket 1 → sell → « Retour (button 1)
    assert "(pressing button 1; to send 1 as text, type :say 1)" in transcript


def test_pasted_links_stand_for_the_start_command_they_open():
    bot = "ticketbot_demo_bot"
    assert start_parameter(f"https://t.me/{bot}?start=AbC-1_x", bot) == "/start AbC-1_x"
    assert start_parameter(f"t.me/{bot}?start=AbC", bot) == "/start AbC"
    assert start_parameter(f"http://telegram.me/{bot.upper()}/?start=AbC", bot) == "/start AbC"
    assert start_parameter(f"tg://resolve?domain={bot}&start=AbC", bot) == "/start AbC"
    assert start_parameter(f"https://t.me/{bot}", bot) == "/start"
    assert start_parameter("https://t.me/another_bot?start=AbC", bot) is None
    assert start_parameter("see https://t.me/x", bot) is None
    assert start_parameter("100", bot) is None


async def test_a_pasted_claim_link_is_opened_as_its_start_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    async def paste_claim_link(script: Script) -> str:
        links = re.findall(r"(https://t\.me/\S+\?start=([A-Za-z0-9_-]+))\s*$",
                           script.transcript, re.M)
        link, token = links[-1]
        script.lines = [f"  {link}  ", "1"]  # pasted with the blanks around it; accept
        script.token = token
        return ":as 3"

    output: list[str] = []
    script = Script(output, ["1", "1", "2", "alex@example.org", "1", paste_claim_link])
    assert await run_demo(Settings(), read_line=script.read_line, write=output.append) == 0
    transcript = script.transcript
    assert f"(opening the link: /start {script.token})" in transcript
    assert "Camille Martin vous a envoyé un billet !" in transcript
    assert "Le billet est à vous. Titulaire : Alex Durand." in transcript


async def test_news_are_printed_while_the_prompt_waits(tmp_path, monkeypatch):
    """Camille claims her ticket in the Mini App while the terminal waits for her next line:
    the ticket the bot then sends her is printed without anything typed, its picture saved."""
    monkeypatch.chdir(tmp_path)
    output: list[str] = []
    seen: dict[str, str] = {}

    async def claim_in_the_mini_app_and_wait(prompt: str) -> str | None:
        page, fragment = re.search(r"user 1 \(Camille\): (http://\S+)", "\n".join(output)
                                   ).group(1).split("#", 1)
        auth = {"Authorization": "tma " + parse_qs(fragment)["tgWebAppData"][0]}
        async with aiohttp.ClientSession() as session:
            async with session.get(page + "api/start", headers=auth) as answer:
                order = (await answer.json())["order"]
            ticket = next(s for s in order["sections"] if s["state"] == "to_assign"
                          )["tickets"][0]["id"]
            async with session.post(f"{page}api/tickets/{ticket}/claim", headers=auth,
                                    json={"action_id": "demo-test-00000001",
                                          "name": "Camille Martin"}) as answer:
                assert answer.status == 200, await answer.text()
        waited_from = len(output)
        for _ in range(200):
            seen["while_waiting"] = "\n".join(output[waited_from:])
            if "[photo saved: " in seen["while_waiting"] and "🎫 Ticket" in seen["while_waiting"]:
                break
            await asyncio.sleep(0.05)
        return ":quit"

    assert await run_demo(Settings(), read_line=claim_in_the_mini_app_and_wait,
                          write=output.append) == 0
    news = seen["while_waiting"]
    assert "🎫 Ticket T-100234-1 in the chat of Camille Martin (user 1)" in news, news
    saved = Path(re.search(r"\[photo saved: (\S+)\]", news).group(1))
    assert saved.parent.name == "files"
    assert (await asyncio.to_thread(saved.read_bytes)).startswith(b"\x89PNG")


async def test_user_4_is_staff_and_the_banner_says_what_to_try(tmp_path, monkeypatch):
    """Sam's commands are read from the banner, as a person would copy them; the chart and the
    CSV are saved with their path printed."""
    monkeypatch.chdir(tmp_path)

    async def type_the_banners_commands(script: Script) -> str:
        tries = script.transcript.split("As him (:as 4), try:\n", 1)[1].split("\nThe Mini App")[0]
        script.lines = re.findall(r"/\w+ \S+", tries)
        script.commands = list(script.lines)
        return ":as 4"

    output: list[str] = []
    script = Script(output, [":users", type_the_banners_commands])
    assert await run_demo(Settings(), read_line=script.read_line, write=output.append) == 0
    transcript = script.transcript
    assert [command.split()[0] for command in script.commands] == [
        "/status", "/find", "/history", "/stats", "/export"]
    assert "4. Sam Taylor (id 104, support staff)" in transcript
    assert "1. Camille Martin (id 101)  <- current" in transcript
    assert "Order DF-100234\n  Buyer: Camille Martin" in transcript
    assert "1 order matches “Martin”" in transcript
    assert "History of ticket T-100234-1, order DF-100234" in transcript
    assert "16 tickets in all" in transcript
    chart = Path(re.search(r"\[photo saved: (\S+stats-\S+\.png)\]", transcript).group(1))
    csv = Path(re.search(r"\[document saved: (\S+\.csv)\]", transcript).group(1))
    chart_bytes, csv_text = await asyncio.gather(
        asyncio.to_thread(chart.read_bytes), asyncio.to_thread(csv.read_text, "utf-8-sig"))
    assert chart_bytes.startswith(b"\x89PNG")
    assert "T-100234-1" in csv_text


def test_the_demo_buyers_are_the_buyers_of_the_orders_they_open():
    """User 2 opens the first English order: they are its buyer (not an "Oliver" offered
    Sean O'Connor's name for his ticket)."""
    users = demo_users(BotApiEmulator(bot_username="ticketbot_demo_bot"))
    for user, language in zip(users[:2], ("fr", "en"), strict=True):
        order = next(o for o in sample_orders()["orders"]
                     if o["number"] == first_order_in(language))
        assert f"{user.first_name} {user.last_name}" == order["buyer"]["name"]
        assert user.language_code == order["buyer"]["language"] == language
    assert (users[1].first_name, users[1].last_name) == ("Sean", "O'Connor")


def test_the_sample_events_and_categories_are_written_in_every_language():
    document = sample_orders()
    for event in document["events"]:
        assert set(event["name"]) == set(LANGUAGES), event["id"]
    for order in document["orders"]:
        for ticket in order["tickets"]:
            assert set(ticket["category"]) == set(LANGUAGES), ticket["ref"]


@pytest.mark.parametrize(("language", "number", "event", "category"), [
    ("en", "DF-100236", "Dreamfest 2027 — Saturday", "Saturday VIP pass"),
    ("fr", "DF-100236", "Dreamfest 2027 — samedi", "Pass samedi VIP"),
    ("nl", "DF-100234", "Dreamfest 2027 — zaterdag", "Zaterdagpas"),
])
async def test_a_reader_sees_the_sample_order_in_their_own_language(harness, language, number,
                                                                    event, category):
    await harness.import_orders(json.loads(SAMPLE_ORDERS.read_text(encoding="utf-8")))
    reader = harness.user(1001, "Sean", "O'Connor", language_code=language)
    shown = (await reader.start(await harness.order_link(number))).text
    assert event in shown and category in shown
    assert ("Saturday" in shown) == (language == "en")
    assert ("Pass samedi" in shown) == (language == "fr")
