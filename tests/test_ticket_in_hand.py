"""The ticket in hand, end to end: the real bot against the emulator, the QR pictures decoded
with a real decoder (zxing-cpp) and compared with what the HTTP API reports, the PDF read with
pypdf, the calendar entry with icalendar, and the e-mail received by a real SMTP server."""

from __future__ import annotations

import datetime as dt
import io
import re
from zoneinfo import ZoneInfo

import icalendar
import pypdf
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller
from PIL import Image
from sqlalchemy import select, update

from bot.http.app import create_api
from bot.http.kernel import ApiServices
from bot.metrics import Metrics
from storage import services
from storage.models import OutboxMail, Ticket
from storage.models.tickets import TelegramFile, TicketMessage
from tests.conftest import sample_document
from tests.test_buyer_flow import eventually
from tests.ticket_helpers import (
    barcodes_named,
    decode_qr_in_pdf,
    newest_id,
    next_picture,
    picture_codes,
    read_qr_codes,
    settle_changes,
    ticket_pictures,
)

BUYER, FRIEND, STRANGER = 1001, 2002, 3003
TOKEN = "api-token"
LINK = re.compile(r"https://t\.me/ticketbot_test_bot\?start=([A-Za-z0-9_-]+)")


async def open_order(harness, *, user_language: str = "en", language: str = "en"):
    await harness.import_orders(sample_document(tickets=3, language=language))
    buyer = harness.user(BUYER, "Camille", "Martin", language_code=user_language)
    await buyer.start(await harness.order_link("DF-100000"))
    return buyer


async def claim_for_myself(buyer, ref: str = "T-DF-100000-1", name: str | None = None):
    await buyer.press(ref)
    await buyer.press("Assign the ticket")
    await buyer.press("Claim the ticket for myself")
    if name is not None:
        await buyer.send(name)
    return await buyer.press("Confirm")


async def api_barcodes(store) -> dict[str, str | None]:
    """Each ticket's barcode as ``GET /api/orders/{number}`` reports it."""
    app = create_api(ApiServices(store=store, api_token=TOKEN, bot_username=lambda: "bot",
                                 metrics=Metrics()))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/api/orders/DF-100000",
                                    headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status == 200
        order = await response.json()
    return {ticket["ref"]: ticket["barcode"] for ticket in order["tickets"]}


async def test_a_ticket_claimed_for_myself_arrives_as_a_qr_of_the_reported_barcode(harness):
    buyer = await open_order(harness)
    since = newest_id(buyer)
    await claim_for_myself(buyer)
    picture = await next_picture(harness, buyer, since=since)

    barcode = (await api_barcodes(harness.store))["T-DF-100000-1"]
    assert barcode is not None
    assert await picture_codes(harness, picture) == [barcode]
    caption = picture.text.replace("\u202f", " ")
    for expected in ("Dreamfest 2027 — Saturday", "Sat, Jul 17, 2027, 2:00 PM",
                     "Parc des Expositions, Nantes", "Pass samedi", "Camille Martin",
                     "T-DF-100000-1"):
        assert expected in caption
    assert picture.button_texts() == ["📄 PDF ticket", "📅 Add to calendar"]


async def test_a_name_correction_voids_the_old_picture_and_sends_the_new_code(harness):
    buyer = await open_order(harness)
    since = newest_id(buyer)
    await claim_for_myself(buyer)
    old = await next_picture(harness, buyer, since=since)
    old_code = (await picture_codes(harness, old))[0]

    await buyer.press("Camille Martin")
    await buyer.press("Correct the name")
    await buyer.send("Camille Martin-Roy")
    since = newest_id(buyer)
    await buyer.press("Confirm")
    new = await next_picture(harness, buyer, since=since)

    new_code = (await api_barcodes(harness.store))["T-DF-100000-1"]
    assert new_code != old_code
    assert await picture_codes(harness, new) == [new_code]
    assert "Camille Martin-Roy" in new.text
    voided = next(m for m in buyer.messages if m.message_id == old.message_id)
    assert voided.edited and await picture_codes(harness, voided) == []
    assert "no longer valid" in voided.text and voided.buttons == []
    async with harness.store.read() as session:
        rows = (await session.execute(select(TicketMessage.barcode, TicketMessage.voided_at)
                                      .order_by(TicketMessage.id))).all()
    assert [(code, voided_at is not None) for code, voided_at in rows] == [
        (old_code, True), (new_code, False)]


async def test_a_ticket_taken_back_leaves_a_void_picture_and_sends_nothing_new(harness):
    buyer = await open_order(harness)
    since = newest_id(buyer)
    await claim_for_myself(buyer)
    old = await next_picture(harness, buyer, since=since)
    await buyer.press("Camille Martin")
    await buyer.press("Take the ticket back")
    await buyer.press("Yes, take it back")
    await settle_changes(harness)
    (picture,) = ticket_pictures(buyer)
    assert picture.message_id == old.message_id and "no longer valid" in picture.text
    assert await picture_codes(harness, picture) == []


async def test_a_friend_who_accepts_gets_the_qr_in_their_own_chat(harness):
    buyer = await open_order(harness)
    await buyer.press("T-DF-100000-2")
    await buyer.press("Assign the ticket")
    await buyer.press("Send to a friend")
    await buyer.send("alex@example.org")
    mark = buyer.mark()
    await buyer.press("Send")
    link = await buyer.wait_for_message(lambda m: LINK.search(m.text) is not None, since=mark)
    friend = harness.user(FRIEND, "Alex", "Durand", language_code="fr")
    await friend.start(LINK.search(link.text).group(1))
    since = newest_id(friend)
    await friend.press("Accepter le billet")
    picture = await next_picture(harness, friend, since=since)

    assert await picture_codes(harness, picture) == [
        (await api_barcodes(harness.store))["T-DF-100000-2"]]
    assert "Alex Durand" in picture.text and "sam. 17 juil. 2027, 14:00" in picture.text
    assert not [m for m in ticket_pictures(buyer) if "Alex Durand" in m.text]


async def test_start_lists_my_tickets_and_shows_one_again_without_uploading_it_again(harness):
    buyer = await open_order(harness)
    since = newest_id(buyer)
    await claim_for_myself(buyer)
    first = await next_picture(harness, buyer, since=since)
    uploads = harness.emulator.media.uploads

    home = await buyer.send("/start")
    assert "Tickets in your name" in home.text
    assert "🎫 Show ticket T-DF-100000-1" in home.last.button_texts()
    again = await buyer.press("Show ticket T-DF-100000-1")
    (shown,) = again.sent
    assert shown.media["file_id"] == first.media["file_id"]
    assert harness.emulator.media.uploads == uploads  # sent by file_id
    assert await picture_codes(harness, shown) == await picture_codes(harness, first)

    await buyer.press("Order DF-100000")
    menu = await buyer.press("T-DF-100000-1")
    assert "🎫 Show ticket" in menu.last.button_texts()


async def test_a_forged_show_ticket_button_shows_nothing(harness):
    buyer = await open_order(harness)
    since = newest_id(buyer)
    await claim_for_myself(buyer)
    await next_picture(harness, buyer, since=since)
    async with harness.store.read() as session:
        ticket_id = await session.scalar(select(Ticket.id).where(Ticket.ref == "T-DF-100000-1"))
    stranger = harness.user(STRANGER, "Eve")
    await stranger.start()
    for data in (f"qr:{ticket_id}", f"pdf:{ticket_id}", f"ics:{ticket_id}", "pdo:1"):
        refused = await stranger.press_data(data)
        assert refused.callback_answer.show_alert
        assert "not in your name" in refused.callback_answer.text
        assert not [m for m in refused.sent if m.media]
    # The buyer manages the order but a ticket that is not theirs is not shown either.
    async with harness.store.read() as session:
        other = await session.scalar(select(Ticket.id).where(Ticket.ref == "T-DF-100000-2"))
    refused = await buyer.press_data(f"qr:{other}")
    assert refused.callback_answer.show_alert and not refused.sent


async def test_pdf_and_calendar_buttons_send_documents_that_hold_the_ticket(harness):
    buyer = await open_order(harness, user_language="fr", language="fr")
    since = newest_id(buyer)
    await buyer.press("T-DF-100000-1")
    await buyer.press("Attribuer le billet")
    await buyer.press("Mettre le billet à mon nom")
    await buyer.send("Zoé Lefèvre-Çà")
    await buyer.press("Confirmer")
    picture = await next_picture(harness, buyer, since=since)
    barcode = (await picture_codes(harness, picture))[0]

    pdf_answer = await buyer.press("PDF", message=picture)
    (document,) = pdf_answer.sent
    assert document.media["file_name"].endswith(".pdf")
    reader = pypdf.PdfReader(io.BytesIO(harness.emulator.media.content(document.media["file_id"])))
    text = reader.pages[0].extract_text()
    for expected in ("Zoé Lefèvre-Çà", "Dreamfest 2027 — Saturday", "T-DF-100000-1",
                     "89,00 €", "DF-100000", "Pass samedi"):
        assert expected in text
    assert not reader.pages[0].images  # the QR code is drawn, not pasted as a picture
    content = harness.emulator.media.content(document.media["file_id"])
    assert await barcodes_named(harness.store, decode_qr_in_pdf(content)) == [barcode]

    ics_answer = await buyer.press("calendrier", message=picture)
    (entry,) = ics_answer.sent
    calendar = icalendar.Calendar.from_ical(harness.emulator.media.content(entry.media["file_id"]))
    (event,) = calendar.walk("VEVENT")
    start, end = event.decoded("dtstart"), event.decoded("dtend")
    paris = start.astimezone(ZoneInfo("Europe/Paris"))
    assert (paris.hour, paris.minute) == (14, 0) and start.utcoffset() == dt.timedelta(hours=2)
    assert str(event["dtstart"].params.get("TZID")) == "Europe/Paris"
    assert end - start == dt.timedelta(hours=4)
    assert str(event["location"]) == "Parc des Expositions, Nantes"
    assert str(event["uid"]).startswith("ticket-")

    uploads = harness.emulator.media.uploads
    again = await buyer.press("PDF", message=picture)
    assert again.sent[0].media["file_id"] == document.media["file_id"]
    assert harness.emulator.media.uploads == uploads


async def test_the_ticket_email_arrives_once_with_pdf_and_calendar_after_an_smtp_outage(harness):
    buyer = await open_order(harness)
    harness.smtp.stop()
    since = newest_id(buyer)
    await claim_for_myself(buyer)
    await next_picture(harness, buyer, since=since)
    await settle_changes(harness)

    async def failed_once():
        await harness.run_background()
        async with harness.store.read() as session:
            mails = (await session.scalars(select(OutboxMail)
                                           .where(OutboxMail.kind == "ticket"))).all()
        return mails if mails and mails[0].last_error else None

    (mail,) = await eventually(failed_once)
    assert mail.sent_at is None and mail.recipient == "camille0@example.org"

    # The server comes back on the same port (a Controller does not start twice).
    harness.smtp = Controller(harness.mail, hostname="127.0.0.1", port=harness.smtp.port)
    harness.smtp.start()
    async with harness.store.write() as session:
        await session.execute(update(OutboxMail).values(next_attempt_at=dt.datetime.now(dt.UTC)))
    received = await harness.next_mail()
    for _ in range(3):
        await harness.run_background()
    assert harness.mail.messages == []  # once
    assert received["To"] == "camille0@example.org"
    assert "Dreamfest 2027 — Saturday" in received["Subject"]
    attachments = {part.get_filename(): part for part in received.iter_attachments()}
    assert set(attachments) == {"ticket-T-DF-100000-1.pdf", "ticket-T-DF-100000-1.ics"}
    pdf = pypdf.PdfReader(io.BytesIO(attachments["ticket-T-DF-100000-1.pdf"].get_content()))
    assert "Camille Martin" in pdf.pages[0].extract_text()
    calendar = icalendar.Calendar.from_ical(attachments["ticket-T-DF-100000-1.ics"].get_content())
    assert calendar.walk("VEVENT")[0]["summary"] == "Dreamfest 2027 — Saturday"
    # The zone's VTIMEZONE comes first, as icalendar's own add_missing_timezones puts it.
    assert [c.name for c in calendar.subcomponents] == ["VTIMEZONE", "VEVENT"]
    assert calendar.get_missing_tzids() == set()
    again = icalendar.Calendar.from_ical(attachments["ticket-T-DF-100000-1.ics"].get_content())
    del again.subcomponents[0]
    again.add_missing_timezones()
    assert again.to_ical() == calendar.to_ical()


async def test_a_holder_who_blocked_the_bot_still_gets_the_email(harness):
    buyer = await open_order(harness)
    buyer.block()
    async with harness.store.read() as session:
        ticket_id = await session.scalar(select(Ticket.id).where(Ticket.ref == "T-DF-100000-1"))
    await services.claim_for_myself(harness.store, BUYER, ticket_id, "Camille Martin")
    mail = await harness.next_mail()
    assert mail["To"] == "camille0@example.org"
    assert not ticket_pictures(buyer)


async def test_a_file_id_telegram_no_longer_knows_is_uploaded_again(harness):
    buyer = await open_order(harness)
    since = newest_id(buyer)
    await claim_for_myself(buyer)
    first = await next_picture(harness, buyer, since=since)
    async with harness.store.write() as session:
        await session.execute(update(TelegramFile).values(file_id="AgACAgIAAxkBAAforgotten"))
    await buyer.send("/start")
    again = await buyer.press("Show ticket T-DF-100000-1")
    (shown,) = again.sent
    assert shown.media["file_id"] != first.media["file_id"]
    assert await picture_codes(harness, shown) == await picture_codes(harness, first)
    async with harness.store.read() as session:
        kept = await session.scalar(select(TelegramFile.file_id))
    assert kept == shown.media["file_id"]


def terminal_picture(drawn: str):
    """The terminal's QR code as a picture: a block character is light (a dark terminal shows
    it lit), its upper and lower halves one module each; a wide light margin around it."""
    from PIL import Image, ImageOps

    halves = {"█": (255, 255), "▀": (255, 0), "▄": (0, 255), " ": (0, 0)}
    lines = drawn.rstrip("\n").split("\n")
    picture = Image.new("L", (len(lines[0]), 2 * len(lines)), 0)
    for y, line in enumerate(lines):
        for x, block in enumerate(line):
            top, bottom = halves[block]
            picture.putpixel((x, 2 * y), top)
            picture.putpixel((x, 2 * y + 1), bottom)
    picture = picture.resize((picture.width * 8, picture.height * 8), Image.Resampling.NEAREST)
    return ImageOps.expand(picture, border=64, fill=255)


def test_every_drawing_of_the_qr_code_reads_back_at_level_m():
    from conversations.presentation import ticket_files

    text = "TB1." + "k" * 136  # as long as a static event's signed code
    found = read_qr_codes(Image.open(io.BytesIO(ticket_files.qr_png(text))))
    assert [(code.text, code.ec_level) for code in found] == [(text, "M")]
    (drawn,) = read_qr_codes(terminal_picture(ticket_files.terminal_qr(text)))
    assert drawn.text == text
    width, modules = ticket_files.qr_modules(text)
    assert width == 49 and len(modules) == width * width  # version 8, as segno counted it
