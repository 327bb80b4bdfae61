"""Reading tickets out of the emulated chats: the QR pictures the bot uploaded, decoded with a
real decoder (zxing-cpp), and the documents it sent."""

from __future__ import annotations

import asyncio
import io

import zxingcpp
from PIL import Image

from bot.tools.emulator import ChatMessage, EmulatedUser


def decode_qr(data: bytes) -> list[str]:
    """Every barcode a real decoder reads in a picture."""
    return [found.text for found in zxingcpp.read_barcodes(Image.open(io.BytesIO(data)))]


def ticket_pictures(user: EmulatedUser) -> list[ChatMessage]:
    return [m for m in user.messages if m.media and m.media["type"] == "photo"]


def picture_codes(harness, message: ChatMessage) -> list[str]:
    return decode_qr(harness.emulator.media.content(message.media["file_id"]))


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
