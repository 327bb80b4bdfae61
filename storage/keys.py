"""Validation and normalised keys for holder names and e-mail addresses.

Two names are the same person on a ticket when they differ only in case, accents, spacing or
look-alike letters of another alphabet ("Élodie  Dupont" and "elodie dupont"; "Alex" and "Аlex"
with a Cyrillic А, see ``storage.skeleton``); two e-mails are the same when they differ only in
case. The keys computed here back the unique constraints of the ``tickets`` table.
"""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

from storage.errors import Refusal
from storage.skeleton import latin_capitals, skeleton

MAX_NAME_LENGTH = 100
MAX_EMAIL_LENGTH = 254

# What the name_key column holds: a key may be longer than its name ("ﷺ" alone decomposes into
# eighteen characters), and must still fit.
MAX_NAME_KEY_LENGTH = 200
# Besides letters of any script and their combining marks (Devanagari or Thai vowel signs do not
# compose into one character): spaces, apostrophes, hyphens and dots ("J. R. R.").
_NAME_PUNCTUATION = frozenset(" '’.-")
_MARKS = frozenset({"Mn", "Mc"})
# More marks on one letter than any script needs only smears the printed name ("Zalgo" text).
_MAX_MARKS_PER_LETTER = 4


def clean_name(raw: str) -> str:
    """The name as it will be printed on the ticket, or a refusal."""
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if not name or len(name) > MAX_NAME_LENGTH:
        raise Refusal("name_invalid", max=MAX_NAME_LENGTH)
    # Control characters and bidirectional overrides would end up printed on a ticket.
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} for ch in name):
        raise Refusal("name_invalid", max=MAX_NAME_LENGTH)
    if not _is_written_name(name) or len(name.replace(" ", "")) < 2:
        raise Refusal("name_invalid", max=MAX_NAME_LENGTH)
    if len(name_key(name)) > MAX_NAME_KEY_LENGTH:
        raise Refusal("name_invalid", max=MAX_NAME_LENGTH)
    return name


def _is_written_name(name: str) -> bool:
    """A letter first, then letters with their marks, and the punctuation names use."""
    if not name[0].isalpha():
        return False
    marks = 0
    for ch in name:
        if unicodedata.category(ch) in _MARKS:
            marks += 1
            if marks > _MAX_MARKS_PER_LETTER:
                return False
        elif ch.isalpha() or ch in _NAME_PUNCTUATION:
            marks = 0
        else:
            return False
    return True


def fold(text: str) -> str:
    """Case-, accent- and space-insensitive form of a text, by Unicode's rules (``casefold``:
    "Straße" and "STRASSE" fold alike; NFKD without its combining marks: "É" is "e")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.replace("’", "'").split())


def name_key(name: str) -> str:
    """The key of a name for the one-name-per-event rule: look-alike capitals made Latin, folded
    (``fold``), look-alike letters of other alphabets made one (``skeleton``), folded again —
    so "Мartin" (Cyrillic М) and "Ꭺlex" (Cherokee Ꭺ) are "martin" and "alex"."""
    return fold(skeleton(fold(latin_capitals(name))))


def clean_email(raw: str) -> str:
    """The e-mail address in its normalised form, or a refusal naming what was typed."""
    text = raw.strip()
    shown = text if len(text) <= 80 else text[:77] + "…"
    if not text or len(text) > MAX_EMAIL_LENGTH:
        raise Refusal("email_invalid", email=shown)
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise Refusal("email_invalid", email=shown) from None
    # Case folding can lengthen an address ("ΐ" folds into three characters): its key must
    # still fit the column, or the store would fail instead of refusing.
    if max(len(result.normalized), len(email_key(result.normalized))) > MAX_EMAIL_LENGTH:
        raise Refusal("email_invalid", email=shown)
    return result.normalized


def email_key(email: str) -> str:
    """Case-insensitive key of an e-mail address."""
    return email.strip().casefold()
