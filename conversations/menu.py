"""The command menu Telegram shows beside the message field, in each of our languages: the
commands everyone may use (staff commands stay out of it, like their help)."""

from __future__ import annotations

from telegram import Bot, BotCommand

from locales import DEFAULT_LANGUAGE, LANGUAGES, Translator, translator
from storage.errors import N_

# The command, and what the menu says of it.
COMMANDS = (
    ("start", N_("Your orders and tickets")),
    ("help", N_("What this bot does")),
    ("privacy", N_("What we keep about you, and why")),
    ("mydata", N_("A copy of your data")),
    ("forgetme", N_("Erase your data")),
    ("cancel", N_("Stop what you were typing")),
)


def command_menu(t: Translator) -> list[BotCommand]:
    return [BotCommand(command, t.gettext(description)) for command, description in COMMANDS]


async def set_command_menu(bot: Bot) -> None:
    """The menu for each language Telegram users may have, and the default for the others."""
    await bot.set_my_commands(command_menu(translator(DEFAULT_LANGUAGE)))
    for language in LANGUAGES:
        await bot.set_my_commands(command_menu(translator(language)), language_code=language)
