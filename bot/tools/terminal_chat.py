"""Chat with the bot from a terminal, through the Bot API emulator.

A person types as one of the emulated users: plain text (including ``/commands``) is sent as
a message, a bare number presses that inline button of the newest message with buttons,
``:say TEXT`` sends any text as it is (a number, a text starting with ``:``), a pasted
``https://t.me/<bot>?start=…`` link is opened as the ``/start …`` it stands for, and other
``:``-commands switch between users.  After every action the new and edited bot messages of
the current chat are printed; messages that arrive on their own (news from background tasks,
edits of voided tickets) are printed as they happen while the prompt waits, and news for the
other users is announced.  Pictures and documents the bot sends are saved to a folder and
their path printed.

Only the generic front-end lives here; the demo wires it to the real bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from urllib.parse import parse_qs

from prompt_toolkit import PromptSession
from prompt_toolkit.patch_stdout import patch_stdout

from bot.tools.emulator import BotApiEmulator, Button, ChatMessage, EmulatedUser, Reaction

__all__ = ["HELP", "TerminalInput", "render_message", "run_terminal_chat", "start_parameter",
           "stdin_read_line"]

HELP = """\
Commands:
  <text>        send a message (e.g. /start TOKEN)
  <N>           press button N of the newest message with buttons; when the bot waits for a
                typed answer (a price, a name) and N is no button of it, N is sent as text
  :say <text>   send <text> as it is, even a number or a text starting with ':' (:say 100)
  <t.me link>   a pasted https://t.me/<bot>?start=… link is opened as /start …
  :users        list the users (and who is staff)
  :as <N>       chat as user N
  :help         show this help
  :quit         leave (end of input works too)"""

# How often, while the prompt waits, the chats are looked at for messages that came on their own.
WATCH_INTERVAL = 0.2

_Signature = tuple[str, tuple[tuple[tuple[str, str | None, str | None], ...], ...], bool,
                   str | None]

# Links a person may paste from a mail or a chat: https://t.me/<bot>?start=…, the same without
# the scheme or on telegram.me, and Telegram's own tg://resolve?domain=<bot>&start=….
_WEB_LINK = re.compile(r"^(?:https?://)?(?:t|telegram)\.me/(?P<bot>[A-Za-z0-9_]+)/?(?:\?(?P<query>\S*))?$")
_APP_LINK = re.compile(r"^tg://resolve\?(?P<query>\S*)$")


def start_parameter(line: str, bot_username: str) -> str | None:
    """The ``/start`` line a pasted link to ``bot_username`` stands for, or None if ``line`` is
    no such link."""
    if match := _WEB_LINK.match(line):
        bot, query = match["bot"], parse_qs(match["query"] or "")
    elif match := _APP_LINK.match(line):
        query = parse_qs(match["query"])
        bot = query.get("domain", [""])[0]
    else:
        return None
    if bot.lower() != bot_username.lower():
        return None
    parameter = query.get("start", [""])[0]
    return f"/start {parameter}" if parameter else "/start"


def _signature(message: ChatMessage) -> _Signature:
    buttons = tuple(tuple((b.text, b.callback_data, b.url) for b in row) for row in message.buttons)
    picture = message.media["file_unique_id"] if message.media else None
    return message.text, buttons, message.deleted, picture


def _keyboard_message(user: EmulatedUser) -> ChatMessage | None:
    """The newest bot message with inline buttons: the one bare numbers refer to."""
    for message in reversed(user.messages):
        if message.buttons:
            return message
    return None


def _button_count(message: ChatMessage | None) -> int:
    return sum(len(row) for row in message.buttons) if message else 0


def _button_label(button: Button, number: int | None) -> str:
    mark = f"[{number}]" if number is not None else "[-]"
    suffix = f" ({button.url})" if button.url else ""
    return f"{mark} {button.text}{suffix}"


def render_message(
    message: ChatMessage, *, kind: str = "new", numbered: bool = False, bot_name: str = "bot",
    saved: Path | None = None,
) -> str:
    """A message as terminal text: a header, the text, where its picture or document was saved,
    then the buttons (numbered or not)."""
    header = {"new": ":", "edited": " (edited):", "deleted": " deleted:"}[kind]
    lines = [bot_name + header]
    lines += [f"  {line}" for line in message.text.splitlines() or [""]]
    if kind != "deleted" and saved is not None:
        lines.append(f"  [{message.media['type']} saved: {saved}]")
    if kind != "deleted":
        number = 0
        for row in message.buttons:
            labels = []
            for button in row:
                number += 1
                labels.append(_button_label(button, number if numbered else None))
            lines.append("  " + "  ".join(labels))
    return "\n".join(lines)


class _SavedFiles:
    """Writes the pictures and documents the bot sent into a folder, once each, under the name
    the bot gave them (with a number added when two differ)."""

    def __init__(self, emulator: BotApiEmulator, folder: Path | None) -> None:
        self.emulator = emulator
        self.folder = folder
        self._paths: dict[str, Path] = {}

    def save(self, message: ChatMessage) -> Path | None:
        if self.folder is None or not message.media:
            return None
        file_id = message.media["file_id"]
        if file_id not in self._paths:
            stored = self.emulator.media.get(file_id)
            if stored is None:
                return None
            self._paths[file_id] = self._write(stored.filename, stored.data)
        return self._paths[file_id]

    def _write(self, filename: str, data: bytes) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = Path(filename).name or "file"
        path, copy = self.folder / name, 1
        while path.exists() and path.read_bytes() != data:
            copy += 1
            path = self.folder / f"{Path(name).stem}-{copy}{Path(name).suffix}"
        path.write_bytes(data)
        return path


class _TerminalChat:
    """Keeps track of what each user has already been shown."""

    def __init__(self, emulator: BotApiEmulator, users: list[EmulatedUser],
                 write: Callable[[str], None], *, files: Path | None = None,
                 staff_ids: Collection[int] = ()):
        self.bot_name = emulator.bot_first_name
        self.bot_username = emulator.bot_username
        self.users = users
        self.write = write
        self.staff_ids = staff_ids
        self.files = _SavedFiles(emulator, files)
        self.current = users[0]
        self._shown: dict[int, dict[int, _Signature]] = {user.id: {} for user in users}
        self._announced = {user.id: 0 for user in users}
        self._told_how_to_say = False
        # What the chats held before the session is history, not news.
        for user in users:
            self._mark_shown(user)

    def _render(self, kind: str, message: ChatMessage, keyboard: ChatMessage | None) -> None:
        numbered = keyboard is not None and message.message_id == keyboard.message_id
        saved = self.files.save(message) if kind != "deleted" else None
        self.write(render_message(message, kind=kind, numbered=numbered, bot_name=self.bot_name,
                                  saved=saved))

    def _changes(self, user: EmulatedUser) -> list[tuple[str, ChatMessage]]:
        shown = self._shown[user.id]
        changes = []
        for message in user.history:
            if not message.from_bot:
                continue
            before = shown.get(message.message_id)
            now = _signature(message)
            if before is None and not message.deleted:
                changes.append(("new", message))
            elif before is not None and before != now:
                changes.append(("deleted" if message.deleted else "edited", message))
        return changes

    def _mark_shown(self, user: EmulatedUser) -> None:
        shown = self._shown[user.id]
        for message in user.history:
            if message.from_bot:
                shown[message.message_id] = _signature(message)
        self._announced[user.id] = 0

    def show_changes(self) -> None:
        """Print new/edited/deleted bot messages of the current chat; announce others' news."""
        user = self.current
        changes = self._changes(user)
        keyboard = _keyboard_message(user)
        for kind, message in changes:
            self._render(kind, message, keyboard)
        self._mark_shown(user)
        for number, other in enumerate(self.users, start=1):
            if other is user:
                continue
            unseen = len(self._changes(other))
            if unseen > self._announced[other.id]:
                plural = "s" if unseen > 1 else ""
                self.write(
                    f"(news for {other.display_name}: {unseen} unseen message{plural} "
                    f"- :as {number})"
                )
            self._announced[other.id] = unseen

    def show_latest(self) -> None:
        """On entering a chat: its unseen messages, else its latest one, and the keyboard."""
        user = self.current
        items = self._changes(user)
        messages = user.messages
        if not items and messages:
            items = [("new", messages[-1])]
        keyboard = _keyboard_message(user)
        if keyboard is not None and all(m.message_id != keyboard.message_id for _, m in items):
            items.insert(0, ("new", keyboard))  # so that bare numbers refer to visible buttons
        self._mark_shown(user)
        if not items:
            self.write("(no messages yet - send /start)")
        for kind, message in items:
            self._render(kind, message, keyboard)

    def list_users(self) -> None:
        for number, user in enumerate(self.users, start=1):
            handle = f", @{user.username}" if user.username else ""
            staff = ", support staff" if user.id in self.staff_ids else ""
            marker = "  <- current" if user is self.current else ""
            self.write(f"  {number}. {user.display_name} (id {user.id}{handle}{staff}){marker}")

    def switch(self, argument: str) -> None:
        if not argument.isdigit() or not 1 <= int(argument) <= len(self.users):
            self.write(f"(usage: :as N with N from 1 to {len(self.users)}; see :users)")
            return
        self.current = self.users[int(argument) - 1]
        self.write(f"--- now chatting as {self.current.display_name} ---")
        self.show_latest()

    async def press_number(self, number: int) -> Reaction | None:
        user = self.current
        message = _keyboard_message(user)
        if message is None:
            self.write("(there is no message with buttons)")
            return None
        buttons = [button for row in message.buttons for button in row]
        if not 1 <= number <= len(buttons):
            self.write(f"(no button {number}; the newest keyboard has {len(buttons)} - "
                       f"to send {number} as text, type :say {number})")
            return None
        button = buttons[number - 1]
        if button.callback_data is None:
            target = button.url or "something this emulator does not open"
            self.write(f"(button {button.text!r} opens {target})")
            return None
        return await user.press(button, message=message)

    async def send_number(self, number: int, waits_for_text: bool) -> Reaction | None:
        """A bare number: a button press, unless the bot waits for a typed answer and the
        number is no button of the newest keyboard (a price, say): then it is what was meant."""
        is_button = 1 <= number <= _button_count(_keyboard_message(self.current))
        if waits_for_text and not is_button:
            self.write(f"(sent {number} as text: the bot is waiting for a typed answer)")
            return await self.current.send(str(number))
        if waits_for_text and not self._told_how_to_say:
            # Said once: pressing is what a number does at most prompts (Send, Accept…).
            self._told_how_to_say = True
            self.write(f"(pressing button {number}; to send {number} as text, "
                       f"type :say {number})")
        return await self.press_number(number)

    async def send_link(self, command: str) -> Reaction:
        self.write(f"(opening the link: {command})")
        return await self.current.send(command)

    def show_callback_answer(self, reaction: Reaction | None) -> None:
        answer = reaction.callback_answer if reaction else None
        if answer is None:
            return
        if answer.text:
            self.write(f"  ({'alert' if answer.show_alert else 'toast'}) {answer.text}")
        if answer.url:
            self.write(f"  (opens {answer.url})")


class _Watcher:
    """While the prompt waits: looks at the chats every WATCH_INTERVAL and prints what came on
    its own. Stopped (after finishing the look under way) before the typed line is acted on, so
    it never prints in the middle of an action's output."""

    def __init__(self, chat: _TerminalChat, refresh: Callable[[], Awaitable[None]] | None):
        self.chat = chat
        self.refresh = refresh

    async def look(self) -> None:
        if self.refresh is not None:
            await self.refresh()
        self.chat.show_changes()

    async def read_while_watching(self, read_line: Callable[[str], Awaitable[str | None]],
                                  prompt: str) -> str | None:
        stop = asyncio.Event()
        watching = asyncio.create_task(self._watch(stop))
        try:
            return await read_line(prompt)
        finally:
            stop.set()
            await watching

    async def _watch(self, stop: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WATCH_INTERVAL)
            if stop.is_set():
                return
            await self.look()


async def run_terminal_chat(
    emulator: BotApiEmulator,
    users: list[EmulatedUser],
    *,
    read_line: Callable[[str], Awaitable[str | None]],
    write: Callable[[str], None],
    intro: str = "",
    refresh: Callable[[], Awaitable[None]] | None = None,
    waits_for_text: Callable[[EmulatedUser], Awaitable[bool]] | None = None,
    files: Path | None = None,
    staff_ids: Collection[int] = (),
) -> None:
    """Let a person chat with the bot as one of `users` until ``:quit`` or end of input.

    `read_line(prompt)` returns the next input line or None at end of input; `write` gets
    complete lines/blocks without a trailing newline (``print`` fits). `refresh()` is awaited
    before each look at the chats (the demo shows tickets then); `waits_for_text(user)` says
    whether the bot waits for a typed answer from `user`; pictures and documents are saved in
    `files`; `staff_ids` are marked as staff in ``:users``.
    """
    if not users:
        raise ValueError("run_terminal_chat needs at least one user")
    chat = _TerminalChat(emulator, users, write, files=files, staff_ids=staff_ids)
    watcher = _Watcher(chat, refresh)
    if intro:
        write(intro)
    write("Type a message, a button number, or :help.")
    chat.show_latest()
    while True:
        await watcher.look()
        line = await watcher.read_while_watching(read_line, f"{chat.current.display_name}> ")
        if line is None:
            break
        line = line.strip()
        if not line:
            continue
        if line.startswith(":"):
            command, _, argument = line[1:].partition(" ")
            command = command.lower()
            if command in ("quit", "q", "exit"):
                break
            if command != "say":
                _run_command(chat, command, argument.strip())
                continue
        try:
            reaction = await _act(chat, line, waits_for_text)
        except AssertionError as error:
            # The emulator's assertion messages are meant for tests; show their first line.
            write(f"(!) {str(error).splitlines()[0]}")
            continue
        # The toast pops up at once, before the edits it usually comes with.
        chat.show_callback_answer(reaction)
        await watcher.look()


def _run_command(chat: _TerminalChat, command: str, argument: str) -> None:
    """The ``:``-commands about the terminal itself (``:say`` is an action, ``:quit`` ends)."""
    if command == "help":
        chat.write(HELP)
    elif command == "users":
        chat.list_users()
    elif command == "as":
        chat.switch(argument)
    else:
        chat.write(f"(unknown command :{command}; try :help)")


async def _act(chat: _TerminalChat, line: str,
               waits_for_text: Callable[[EmulatedUser], Awaitable[bool]] | None
               ) -> Reaction | None:
    """What a typed line does in the chat: say a text, press a button, open a link."""
    if line.startswith(":"):  # :say TEXT, the one typed command that sends
        text = line.partition(" ")[2].strip()
        if not text:
            chat.write("(usage: :say TEXT - sends TEXT as it is, e.g. :say 100)")
            return None
        return await chat.current.send(text)
    if line.isdigit():
        waiting = waits_for_text is not None and await waits_for_text(chat.current)
        return await chat.send_number(int(line), waiting)
    if (command := start_parameter(line, chat.bot_username)) is not None:
        return await chat.send_link(command)
    return await chat.current.send(line)


class TerminalInput:
    """Reads typed lines in a real terminal with prompt_toolkit, so that what is printed while
    a line is being typed (news, e-mails) appears above the prompt and the half-typed line stays
    intact; without a terminal (piped input) it falls back to plain ``input()``."""

    def __init__(self) -> None:
        self._session: PromptSession[str] | None = PromptSession() if sys.stdin.isatty() else None

    async def read_line(self, prompt: str) -> str | None:
        if self._session is None:
            return await stdin_read_line(prompt)
        try:
            return await self._session.prompt_async(prompt)
        except (EOFError, KeyboardInterrupt):
            return None

    def printing_above(self) -> contextlib.AbstractContextManager[object]:
        """While in effect, ``print`` writes above the prompt instead of through it."""
        return patch_stdout() if self._session is not None else contextlib.nullcontext()


async def stdin_read_line(prompt: str) -> str | None:
    """Read one line from stdin in a worker thread (None at end of input)."""
    try:
        return await asyncio.to_thread(input, prompt)
    except EOFError:
        return None
