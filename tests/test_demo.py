"""`ticketbot demo`, the main job on the embedded default, driven as a person would type."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import parse_qs

import aiohttp

from bot.settings import Settings
from bot.tools.demo import run_demo


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


async def test_demo_prints_a_mini_app_link_per_user_that_opens_their_order(tmp_path, monkeypatch):
    """The printed link works as a desktop browser would use it: the page loads the stand-in
    for Telegram's script, and the initData in its fragment opens the user's own order."""
    monkeypatch.chdir(tmp_path)
    output: list[str] = []
    seen: dict[str, object] = {}

    async def read_line(prompt: str) -> str | None:
        links = re.findall(r"user (\d) \((\w+)\): (http://127\.0\.0\.1:\d+/app/#\S+)",
                           "\n".join(output))
        assert [(n, name) for n, name, _ in links] == [("1", "Camille"), ("2", "Oliver"),
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
