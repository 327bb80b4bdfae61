"""Reading tickets out of the emulated chats: the QR pictures the bot uploaded, decoded with a
real decoder (zxing-cpp), and the documents it sent."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pypdfium2
import zxingcpp
from PIL import Image

from bot.tools.emulator import ChatMessage, EmulatedUser
from storage import entry_codes
from storage.services.gate import barcode_of_code


def read_qr_codes(image: Any) -> list[zxingcpp.Barcode]:
    """The QR codes a real decoder reads in a picture: QR codes only, as a gate's scanner reads.
    Asked for every format, zxing-cpp now and then also finds a short linear barcode (``8817``)
    in the modules of a QR code."""
    return zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)


def decode_qr(data: bytes) -> list[str]:
    """Every barcode a real decoder reads in a picture."""
    return [found.text for found in read_qr_codes(Image.open(io.BytesIO(data)))]


def decode_qr_in_pdf(content: bytes) -> list[str]:
    """Every barcode a real decoder reads on the pages of a PDF, rendered as a printer would
    (pdfium, 144 dpi): the PDF draws its QR code as vectors, not as a picture."""
    document = pypdfium2.PdfDocument(content)
    try:
        return [found.text for page in document
                for found in read_qr_codes(page.render(scale=2).to_pil())]
    finally:
        document.close()


def ticket_pictures(user: EmulatedUser) -> list[ChatMessage]:
    return [m for m in user.messages if m.media and m.media["type"] == "photo"]


async def barcodes_named(store, texts: list[str]) -> list[str]:
    """The barcode each code read names. A static event's QR code holds a signed code
    (storage/entry_codes.py), never the bare barcode: each must be one, genuine (checked as the
    gate checks it), naming a barcode of ours."""
    named = []
    for text in texts:
        assert entry_codes.parse_static(text) is not None, f"not a signed code: {text!r}"
        barcode = await barcode_of_code(store, text)
        assert barcode is not None, f"a signed code that names no barcode: {text!r}"
        named.append(barcode)
    return named


async def picture_codes(harness, message: ChatMessage) -> list[str]:
    """The barcodes the ticket picture's QR codes name."""
    return await barcodes_named(
        harness.store, decode_qr(harness.emulator.media.content(message.media["file_id"])))


async def next_picture(harness, user: EmulatedUser, *, since: int, within: float = 5.0,
                       ) -> ChatMessage:
    """The next ticket picture in the user's chat, running the background worker meanwhile."""
    async with asyncio.timeout(within):
        while True:
            for message in ticket_pictures(user):
                if message.message_id > since:
                    return message
            await harness.run_background()
            await asyncio.sleep(0.02)


def newest_id(user: EmulatedUser) -> int:
    return max((m.message_id for m in user.history), default=0)


async def settle_changes(harness, within: float = 5.0) -> None:
    """Run the background worker until every barcode change is carried out (the worker's own
    loop may hold one meanwhile)."""
    from storage.ticket_delivery import pending_changes

    async with asyncio.timeout(within):
        while True:
            await harness.run_background()
            if not await pending_changes(harness.store):
                return
            await asyncio.sleep(0.02)
