"""The words for a ticket's states, said the same by the chat, the Mini App, the staff's
commands and reports: each face looks a state up here and translates it in its own language."""

from __future__ import annotations

from locales import Translator
from storage.errors import N_

# Keyed by the state's value ("to_assign"); "used" is a completed ticket scanned in at the gate,
# a state only the staff's reports show apart.
STATE_WORDS = {
    "to_assign": N_("to assign"),
    "pending": N_("pending"),
    "completed": N_("completed"),
    "on_resale": N_("on resale"),
    "used": N_("used"),
    "sold": N_("sold"),
    "exchanged": N_("exchanged"),
}


def state_word(state: str, t: Translator) -> str:
    """The state in ``t``'s language; a state without words is shown as stored."""
    words = STATE_WORDS.get(str(state))
    return t.gettext(words) if words is not None else str(state)
