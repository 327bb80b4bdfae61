"""What support staff tripped over (issue 23), with the exact commands typed: /help for staff,
/stats and /export without an argument, the empty per-day panel, and the French of /status and
/history. The real Application against the emulator, the real store."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from conversations.event_reports import stats_figure
from locales import translator
from storage import services
from storage.models import Ticket
from storage.reads import event_report
from tests.conftest import sample_document
from tests.harness import close_harness, open_harness

STAFF, BUYER = 9001, 1001
STAFF_HELP = "/status ORDER_NUMBER shows an order"


@pytest.fixture
async def harness(store):
    opened = await open_harness(store, staff_ids=frozenset({STAFF}))
    try:
        yield opened
    finally:
        await close_harness(opened)


async def imported(harness, *, claimed: bool = False) -> None:
    await harness.import_orders(sample_document(tickets=2, language="fr"))
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="fr")
    await buyer.start(await harness.order_link("DF-100000"))
    if claimed:
        async with harness.store.read() as session:
            first = await session.scalar(select(Ticket.id).where(Ticket.ref == "T-DF-100000-1"))
        await services.claim_for_myself(harness.store, BUYER, first, "Camille Martin")


async def test_help_lists_the_staff_commands_for_staff_only(harness):
    support = harness.user(STAFF, "Sam", "Support", language_code="en")
    shown = (await support.send("/help")).text
    assert "I help you manage the tickets of your order." in shown
    for command in ("/status", "/find", "/history", "/resend", "/stats", "/export"):
        assert command in shown.split("Support staff commands:")[1], command
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="en")
    assert "Support staff commands" not in (await buyer.send("/help")).text


async def test_stats_without_an_event_offers_the_events_as_buttons(harness):
    await imported(harness)
    support = harness.user(STAFF, "Sam", "Support", language_code="en")
    offered = await support.send("/stats")
    assert "Which event?" in offered.text
    assert support.last.button_texts() == ["Dreamfest 2027 — Saturday",
                                           "Dreamfest 2027 — Sunday"]
    chart = await support.press("Dreamfest 2027 — Sunday", timeout=30)
    picture = chart.sent[-1]
    assert picture.media["type"] == "photo"
    assert "Dreamfest 2027 — Sunday" in picture.text and "0 tickets in all" in picture.text


async def test_export_without_an_event_offers_the_events_as_buttons(harness):
    await imported(harness)
    support = harness.user(STAFF, "Sam", "Support", language_code="fr")
    offered = await support.send("/export")
    assert "Quel événement ?" in offered.text
    exported = await support.press("Dreamfest 2027 — Saturday", timeout=30)
    document = exported.sent[-1]
    assert document.media["type"] == "document"
    content = harness.emulator.media.content(document.media["file_id"]).decode("utf-8-sig")
    refs = [row[0] for row in csv.reader(io.StringIO(content))][1:]
    assert refs == ["T-DF-100000-1", "T-DF-100000-2"]


async def test_an_event_button_pressed_by_someone_not_on_the_staff_shows_nothing(harness):
    await imported(harness)
    support = harness.user(STAFF, "Sam", "Support", language_code="en")
    await support.send("/stats")
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="en")
    await buyer.send("/start")
    pressed = await buyer.press_data("sst:0")
    assert all(message.media is None for message in pressed.sent)
    assert "n’existe plus" in pressed.callback_answer.text  # the order was opened in French


async def test_stats_on_an_event_without_personalisation_says_so_without_axes(harness):
    await imported(harness)
    figures = await event_report.event_figures(harness.store, STAFF, "fest-sat")
    by_state, per_day = stats_figure(figures, translator("fr")).axes
    assert by_state.axison
    assert not per_day.axison  # no ticks reading 0 0 0 or 0.0 … 1.0
    assert [text.get_text() for text in per_day.texts] == ["Aucune attribution pour l’instant"]
    support = harness.user(STAFF, "Sam", "Support", language_code="fr")
    chart = await support.send("/stats fest-sat", timeout=30)
    assert chart.last.media["type"] == "photo"


async def test_stats_with_personalisations_draws_the_per_day_axes(harness):
    await imported(harness, claimed=True)
    figures = await event_report.event_figures(harness.store, STAFF, "fest-sat")
    _by_state, per_day = stats_figure(figures, translator("en")).axes
    assert per_day.axison and len(per_day.patches) == 1


async def test_status_and_history_speak_french_to_french_staff(harness):
    await imported(harness, claimed=True)
    support = harness.user(STAFF, "Sam", "Support", language_code="fr")
    status = (await support.send("/status DF-100000")).text
    assert "Modifications récentes" in status and "Recent changes" not in status
    assert (await support.send("/status")).text == "Utilisation : /status NUMÉRO_COMMANDE"
    assert (await support.send("/history")).text == "Utilisation : /history RÉF_BILLET"
