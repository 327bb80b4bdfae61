"""The ticket as files: the QR picture, the PDF e-ticket, the calendar entry, and the QR drawn
with text for a terminal.

All of it is CPU work. The async ``…_file`` functions run it in a worker thread so a burst of
requests never stalls the event loop, and every result is cached by what it depends on: the
barcode (a new holder always gets a new one) and the language, through the frozen ``TicketCard``
that holds both.

PDF library: **reportlab**, not fpdf2. Reportlab ships TrueType fonts inside its own package
(Bitstream Vera, which has the French accents, « », ’ and the € sign), so the PDF embeds a real
font without any system font or an extra font package; it subsets the font on embedding (a
ticket PDF is about 45 kB, nearly all of it the two font subsets: the QR code is drawn as
vectors), and it is maintained since 2000 with stable APIs. fpdf2 ships no Unicode TTF; its
built-in fonts are not embedded, the task asks for an embedded one.

The libraries (zxing-cpp, Pillow, reportlab and its fonts, icalendar: about 12 MiB) are imported by
the functions that draw, not with this module: a started bot holds them only once it has made
its first ticket file, and one that only answers screens never does (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from locales import Translator, translator
from storage.ticket_delivery import TicketCard

if TYPE_CHECKING:
    import icalendar
    from reportlab.pdfgen import canvas

# Screens show a QR code without smudges or folds, so medium error correction is plenty and
# keeps the code small (a static event's signed code of about 140 characters is version 8, 49
# modules): big modules that a phone reads from another phone's screen, even after Telegram
# recompresses the photo.
QR_ERROR = "M"
QR_BORDER = 4  # the quiet zone the QR standard asks for, in modules
QR_PICTURE_PIXELS = 600  # about this wide; a whole number of pixels per module
QR_DARK = 0  # a module's byte in ``qr_modules`` (light is 255)

# The store does not know when events end; a calendar entry lasts this long unless it does.
DEFAULT_EVENT_LENGTH = dt.timedelta(hours=4)

FONT, FONT_BOLD = "TicketVera", "TicketVera-Bold"


@functools.lru_cache(maxsize=64)
def qr_modules(text: str) -> tuple[int, bytes]:
    """The QR code of ``text`` at level M: its width in modules, and its modules row by row,
    one byte each (``QR_DARK`` or 255), without the quiet zone. Encoded by zxing-cpp, in C++,
    with the mask of lowest penalty as the standard asks: 0.55 ms for a signed code, where
    segno, in Python, took 11.6 ms. The picture, the PDF and the terminal all draw from it."""
    import zxingcpp  # on the first QR code, not at start (see the module's docstring)

    symbol = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode,
                                     ec_level=QR_ERROR).to_image(scale=1, add_quiet_zones=False)
    height, width = symbol.shape
    assert height == width, symbol.shape
    return width, bytes(memoryview(symbol))


def _dark_runs(width: int, modules: bytes) -> Iterator[tuple[int, int, int]]:
    """``(row, first column, length)`` of each horizontal run of dark modules (``qr_modules``)."""
    for row in range(width):
        line = modules[row * width:(row + 1) * width]
        for run in _DARK_RUN.finditer(line):
            yield row, run.start(), run.end() - run.start()


_DARK_RUN = re.compile(bytes([QR_DARK]) + b"+")


@functools.lru_cache(maxsize=512)
def qr_png(barcode: str) -> bytes:
    """The QR picture of a barcode, black on white, about 600 pixels wide: one pixel a module,
    enlarged and written as a 1-bit PNG by Pillow, in C."""
    from PIL import Image  # on the first QR code, not at start (see the module's docstring)

    width, modules = qr_modules(barcode)
    side = width + 2 * QR_BORDER
    picture = Image.new("L", (side, side), 255)
    picture.paste(Image.frombytes("L", (width, width), modules), (QR_BORDER, QR_BORDER))
    scale = max(4, QR_PICTURE_PIXELS // side)
    picture = picture.convert("1", dither=Image.Dither.NONE).resize(
        (side * scale, side * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def void_png() -> bytes:
    """The picture that replaces a voided ticket's QR code: a grey square crossed out, with
    nothing a scanner could read."""
    from PIL import Image, ImageDraw  # on the first voided ticket, not at start

    size = QR_PICTURE_PIXELS
    picture = Image.new("RGB", (size, size), (236, 236, 236))
    draw = ImageDraw.Draw(picture)
    margin, width = size // 6, size // 14
    draw.line((margin, margin, size - margin, size - margin), fill=(200, 40, 40), width=width)
    draw.line((margin, size - margin, size - margin, margin), fill=(200, 40, 40), width=width)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def terminal_qr(barcode: str, border: int = 2) -> str:
    """The QR code drawn with block characters, two rows of modules per line, light modules
    as blocks (a terminal is dark): a phone reads it off the screen."""
    width, modules = qr_modules(barcode)
    side = width + 2 * border

    def light(row: int, column: int) -> bool:
        inside = border <= row < border + width and border <= column < border + width
        return not inside or modules[(row - border) * width + column - border] != QR_DARK

    blocks = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}
    return "\n".join(
        "".join(blocks[light(row, column), row + 1 < side and light(row + 1, column)]
                for column in range(side))
        for row in range(0, side, 2)) + "\n"


# --- PDF ---------------------------------------------------------------------------------------


@functools.cache
def _register_fonts() -> None:
    """Reportlab's own Vera fonts, read (about 1 MiB) on the first PDF, not at start."""
    import reportlab
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    fonts = Path(reportlab.__file__).parent / "fonts"
    pdfmetrics.registerFont(TTFont(FONT, str(fonts / "Vera.ttf")))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, str(fonts / "VeraBd.ttf")))


def venue_line(card: TicketCard) -> str:
    return f"{card.venue_name}, {card.venue_city}"


def _draw_ticket(pdf: canvas.Canvas, card: TicketCard, t: Translator) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm

    _ = t.gettext
    width, height = A4
    left, top = 20 * mm, height - 25 * mm
    pdf.setFont(FONT, 11)
    pdf.setFillGray(0.35)
    pdf.drawString(left, top, _("E-ticket — show its live code in Telegram at the entrance")
                   if card.rotating else
                   _("E-ticket — present this page or its QR code at the entrance"))
    pdf.setFillGray(0)
    pdf.setFont(FONT_BOLD, 20)
    pdf.drawString(left, top - 12 * mm, card.event_name[:60])
    rows = [
        (_("Date"), t.datetime(card.starts_at, card.timezone)),
        (_("Venue"), venue_line(card)),
        (_("Category"), card.category),
        (_("Price"), t.money(card.price, card.currency)),
        (_("Holder"), card.holder_name),
        (_("Order"), card.order_number),
        (_("Ticket reference"), card.ref),
    ]
    y = top - 26 * mm
    for label, value in rows:
        pdf.setFont(FONT, 10)
        pdf.setFillGray(0.35)
        pdf.drawString(left, y, label)
        pdf.setFillGray(0)
        pdf.setFont(FONT_BOLD, 13)
        pdf.drawString(left + 42 * mm, y, str(value)[:70])
        y -= 9 * mm
    if card.rotating:
        _draw_live_code_notice(pdf, card, t, y)
        return
    side = 80 * mm
    qr_x, qr_y = (width - side) / 2, y - side - 6 * mm
    _draw_qr(pdf, card.qr_text, qr_x, qr_y, side)
    pdf.setFont(FONT, 12)
    pdf.drawCentredString(width / 2, qr_y - 6 * mm, card.barcode)
    pdf.setFont(FONT, 9)
    pdf.setFillGray(0.35)
    pdf.drawCentredString(width / 2, qr_y - 14 * mm, _(
        "This ticket is personal. Any earlier copy with another code is no longer valid."))
    pdf.setFillGray(0)


def _draw_qr(pdf: canvas.Canvas, text: str, x: float, y: float, side: float) -> None:
    """The QR code as vector rectangles, one per run of dark modules, quiet zone included in
    ``side``: sharp at any zoom or printer, and no picture for the PDF to decode and compress
    again (that took most of a new PDF's time)."""
    width, modules = qr_modules(text)
    unit = side / (width + 2 * QR_BORDER)
    # Each rectangle reaches a hair into the row below, so that no renderer shows a light seam
    # between two rows of dark modules.
    seam = unit * 0.02
    path = pdf.beginPath()
    for row, column, length in _dark_runs(width, modules):
        top = y + side - (QR_BORDER + row) * unit
        path.rect(x + (QR_BORDER + column) * unit, top - unit - seam, length * unit, unit + seam)
    pdf.setFillGray(0)
    pdf.drawPath(path, stroke=0, fill=1)


def _draw_live_code_notice(pdf: canvas.Canvas, card: TicketCard, t: Translator,
                           y: float) -> None:
    """A rotating event's ticket: no code on paper, only where the live one appears."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm

    _ = t.gettext
    width = A4[0]
    lines = (
        _("No code is printed on this ticket: the entry code is live."),
        _("It appears in Telegram: open the bot, then My order and this ticket."),
        _("It changes every few seconds; a printout or a screenshot does not get in."),
    )
    pdf.setFont(FONT_BOLD, 13)
    for line in lines:
        y -= 10 * mm
        pdf.drawCentredString(width / 2, y, line)
        pdf.setFont(FONT, 11)


# A PDF is about 45 kB (two font subsets; its QR code is vectors): 256 of them held 11 MiB for
# the life of the process. Repeats are few and close together: the chat uploads a file once and
# then sends Telegram's file_id (ticket_show.py), so a PDF is made again only for the mail of a
# ticket just handed over, or a Mini App download. The benchmark's 85 PDFs had no repeat.
PDF_CACHE_SIZE = 32


@functools.lru_cache(maxsize=PDF_CACHE_SIZE)
def tickets_pdf(cards: tuple[TicketCard, ...], language: str) -> bytes:
    """A PDF with one page per ticket, in ``language``."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas  # on the first PDF, not at start

    _register_fonts()
    t = translator(language)
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=True, pageCompression=1)
    pdf.setTitle(t.gettext("Tickets — {event}").format(event=cards[0].event_name))
    pdf.setAuthor("Ticketbot")
    for card in cards:
        _draw_ticket(pdf, card, t)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


# --- calendar ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def ticket_ics(card: TicketCard, language: str) -> bytes:
    """An iCalendar file with the event, in the event's own time zone. The entry's UID is the
    ticket's, so importing a newer copy updates the entry instead of adding one. The store
    knows no end time: the entry lasts ``DEFAULT_EVENT_LENGTH`` (4 hours)."""
    import icalendar  # on the first calendar entry, not at start

    t = translator(language)
    _ = t.gettext
    zone = ZoneInfo(card.timezone)
    start = card.starts_at.astimezone(zone)
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Ticketbot//Tickets//EN")
    calendar.add("version", "2.0")
    event = icalendar.Event()
    event.add("uid", f"ticket-{card.ticket_id}@ticketbot")
    event.add("dtstamp", dt.datetime.now(dt.UTC).replace(microsecond=0))
    event.add("dtstart", start)
    event.add("dtend", start + DEFAULT_EVENT_LENGTH)
    event.add("summary", card.event_name)
    event.add("location", venue_line(card))
    event.add("description", "\n".join([
        _("Category: {category}").format(category=card.category),
        _("In the name of: {holder}").format(holder=card.holder_name),
        _("Ticket reference: {ref}").format(ref=card.ref),
    ]))
    calendar.add_component(event)
    # The zone's VTIMEZONE first, as add_missing_timezones() would put it; computed once per
    # zone (its transitions from 1970 to 2038 were most of an entry's time).
    calendar.subcomponents.insert(0, _vtimezone(card.timezone))
    return calendar.to_ical()


@functools.cache
def _vtimezone(zone: str) -> icalendar.Timezone:
    """The VTIMEZONE of a time zone, over icalendar's default years; never changed once made,
    so every calendar entry of the zone shares it."""
    import icalendar

    return icalendar.Timezone.from_tzid(zone)


# --- off the event loop ------------------------------------------------------------------


async def qr_file(barcode: str) -> bytes:
    return await asyncio.to_thread(qr_png, barcode)


async def void_file() -> bytes:
    return await asyncio.to_thread(void_png)


async def pdf_file(cards: tuple[TicketCard, ...], language: str) -> bytes:
    cards = tuple(card.in_language(language) for card in cards)
    return await asyncio.to_thread(tickets_pdf, cards, language)


async def ics_file(card: TicketCard, language: str) -> bytes:
    return await asyncio.to_thread(ticket_ics, card.in_language(language), language)


def pdf_name(card: TicketCard) -> str:
    return f"ticket-{_safe(card.ref)}.pdf"


def ics_name(card: TicketCard) -> str:
    return f"ticket-{_safe(card.ref)}.ics"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:60]
