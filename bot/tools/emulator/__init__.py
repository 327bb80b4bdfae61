"""A local Telegram Bot API emulator for tests and the terminal demo.

:class:`BotApiEmulator` is a small aiohttp server speaking the HTTP Bot API
(``POST /bot<token>/<method>``) closely enough that an unmodified python-telegram-bot
``Application`` can run against it with long polling, or with a webhook: after ``setWebhook``
it POSTs each update to the URL with the ``X-Telegram-Bot-Api-Secret-Token`` header (a few
tries per update) and ``getUpdates`` answers 409.  It keeps the state of private chats,
validates requests with Telegram's own error texts and lets tests act as users through
:class:`EmulatedUser` (typing text, pressing inline buttons, forging callback data).

Typical use::

    async with BotApiEmulator() as emu:
        app = Application.builder().token(emu.token).base_url(emu.base_url).build()
        ...  # initialize, start, updater.start_polling(poll_interval=0, timeout=1)
        alice = emu.user(1001, first_name="Alice")
        reaction = await alice.start("TOKEN")
        assert "Welcome" in reaction.text
        await alice.press("Claim for myself")

Only what a private-chat text bot needs is emulated: text messages, inline keyboards,
callback queries, commands, chat actions, pictures and documents.  Other Bot API methods
answer 404 like an unknown method would.

This package is the one import for callers (``from bot.tools.emulator import BotApiEmulator, …``);
its modules hold:

- ``server.py``: :class:`BotApiEmulator` itself: the aiohttp app, its state, lifecycle and the
  controls tests use (``user()``, ``fail_next()``, ``commands()``…);
- ``methods.py``: the Bot API methods of a private chat (send, edit, delete, answer callback
  queries, commands, menu button, chat actions);
- ``delivery.py``: how updates reach the bot, ``getUpdates`` long polling or webhook POSTs;
- ``media.py``: pictures and documents (``sendPhoto``, ``sendDocument``, ``getFile``…);
- ``validation.py``: Telegram's limits and the checks of reply markups and entities;
- ``html.py``: the Telegram HTML parse mode (text plus entities, UTF-16 offsets);
- ``errors.py``: Telegram's error answers;
- ``records.py``: the snapshots tests read (calls, messages, buttons, reactions) and the state
  of chats and messages;
- ``users.py``: :class:`EmulatedUser`, the user side of a chat, and :class:`ChatHost`, what it
  needs of the server (so the user side does not import the server that creates users).
"""

from bot.tools.emulator.delivery import WEBHOOK_ATTEMPTS
from bot.tools.emulator.html import parse_html
from bot.tools.emulator.records import (
    ApiCall,
    Button,
    CallbackAnswer,
    ChatEvent,
    ChatMessage,
    Reaction,
)
from bot.tools.emulator.server import BotApiEmulator
from bot.tools.emulator.users import EmulatedUser
from bot.tools.emulator.validation import (
    MAX_CALLBACK_ANSWER_LENGTH,
    MAX_CALLBACK_DATA_BYTES,
    MAX_INLINE_BUTTONS,
    MAX_TEXT_LENGTH,
)

__all__ = [
    "MAX_CALLBACK_ANSWER_LENGTH",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_INLINE_BUTTONS",
    "MAX_TEXT_LENGTH",
    "WEBHOOK_ATTEMPTS",
    "ApiCall",
    "BotApiEmulator",
    "Button",
    "CallbackAnswer",
    "ChatEvent",
    "ChatMessage",
    "EmulatedUser",
    "Reaction",
    "parse_html",
]
