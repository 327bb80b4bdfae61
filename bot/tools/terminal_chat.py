"""Chat with the bot from a terminal, through the Bot API emulator.

A person types as one of the emulated users: plain text (including ``/commands``) is sent as
a message, a bare number presses that inline button of the newest message with buttons, and
``:``-commands switch between users.  After every action the new and edited bot messages of
the current chat are printed; messages that arrive on their own (news from background tasks)
are printed before the next prompt, and news for the other users is announced.

Only the generic front-end lives here; the demo wires it to the real bot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.tools.emulator import BotApiEmulator, Button, ChatMessage, EmulatedUser, Reaction

__all__ = ["HELP", "render_message", "run_terminal_chat", "stdin_read_line"]

HELP = """\
Commands:
  <text>      send a message (e.g. /start TOKEN)
  <N>         press button N of the newest message with buttons
  :users      list the users
  :as <N>     chat as user N
  :help       show this help
  :quit       leave (end of input works too)"""

_Signature = tuple[str, tuple[tuple[tuple[str, str | None, str | None], ...], ...], bool]


def _signature(message: ChatMessage) -> _Signature:
    buttons = tuple(tuple((b.text, b.callback_data, b.url) for b in row) for row in message.buttons)
    return message.text, buttons, message.deleted


def _keyboard_message(user: EmulatedUser) -> ChatMessage | None:
    """The newest bot message with inline buttons: the one bare numbers refer to."""
    for message in reversed(user.messages):
        if message.buttons:
            return message
    return None


def _button_label(button: Button, number: int | None) -> str:
    mark = f"[{number}]" if number is not None else "[-]"
    suffix = f" ({button.url})" if button.url else ""
    return f"{mark} {button.text}{suffix}"


def render_message(
    message: ChatMessage, *, kind: str = "new", numbered: bool = False, bot_name: str = "bot"
) -> str:
    """A message as terminal text: a header, the text, then the buttons (numbered or not)."""
    header = {"new": ":", "edited": " (edited):", "deleted": " deleted:"}[kind]
    lines = [bot_name + header]
    lines += [f"  {line}" for line in message.text.splitlines() or [""]]
    if kind != "deleted":
        number = 0
        for row in message.buttons:
            labels = []
            for button in row:
                number += 1
                labels.append(_button_label(button, number if numbered else None))
            lines.append("  " + "  ".join(labels))
    return "\n".join(lines)


class _TerminalChat:
    """Keeps track of what each user has already been shown."""

    def __init__(self, bot_name: str, users: list[EmulatedUser], write: Callable[[str], None]):
        self.bot_name = bot_name
        self.users = users
        self.write = write
        self.current = users[0]
        self._shown: dict[int, dict[int, _Signature]] = {user.id: {} for user in users}
        self._announced = {user.id: 0 for user in users}
        # What the chats held before the session is history, not news.
        for user in users:
            self._mark_shown(user)

    def _render(self, kind: str, message: ChatMessage, keyboard: ChatMessage | None) -> None:
        numbered = keyboard is not None and message.message_id == keyboard.message_id
        self.write(render_message(message, kind=kind, numbered=numbered, bot_name=self.bot_name))

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
            marker = "  <- current" if user is self.current else ""
            self.write(f"  {number}. {user.display_name} (id {user.id}{handle}){marker}")

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
            self.write(f"(no button {number}; the newest keyboard has {len(buttons)})")
            return None
        button = buttons[number - 1]
        if button.callback_data is None:
            target = button.url or "something this emulator does not open"
            self.write(f"(button {button.text!r} opens {target})")
            return None
        return await user.press(button, message=message)

    def show_callback_answer(self, reaction: Reaction | None) -> None:
        answer = reaction.callback_answer if reaction else None
        if answer is None:
            return
        if answer.text:
            self.write(f"  ({'alert' if answer.show_alert else 'toast'}) {answer.text}")
        if answer.url:
            self.write(f"  (opens {answer.url})")


async def run_terminal_chat(
    emulator: BotApiEmulator,
    users: list[EmulatedUser],
    *,
    read_line: Callable[[str], Awaitable[str | None]],
    write: Callable[[str], None],
    intro: str = "",
) -> None:
    """Let a person chat with the bot as one of `users` until ``:quit`` or end of input.

    `read_line(prompt)` returns the next input line or None at end of input; `write` gets
    complete lines/blocks without a trailing newline (``print`` fits).
    """
    if not users:
        raise ValueError("run_terminal_chat needs at least one user")
    chat = _TerminalChat(emulator.bot_first_name, users, write)
    if intro:
        write(intro)
    write("Type a message, a button number, or :help.")
    chat.show_latest()
    while True:
        chat.show_changes()
        line = await read_line(f"{chat.current.display_name}> ")
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
            if command == "help":
                write(HELP)
            elif command == "users":
                chat.list_users()
            elif command == "as":
                chat.switch(argument.strip())
            else:
                write(f"(unknown command :{command}; try :help)")
            continue
        try:
            if line.isdigit():
                reaction = await chat.press_number(int(line))
            else:
                reaction = await chat.current.send(line)
        except AssertionError as error:
            # The emulator's assertion messages are meant for tests; show their first line.
            write(f"(!) {str(error).splitlines()[0]}")
            continue
        # The toast pops up at once, before the edits it usually comes with.
        chat.show_callback_answer(reaction)
        chat.show_changes()


async def stdin_read_line(prompt: str) -> str | None:
    """Read one line from stdin in a worker thread (None at end of input)."""
    try:
        return await asyncio.to_thread(input, prompt)
    except EOFError:
        return None
