"""French elides "de", "le", "que"… before a vowel ("au nom d’Alex", not "au nom de Alex"). A
placeholder's value is unknown when the message is written, so no French message may put one
right after a word that elides; the messages say it another way ("titulaire : {name}",
"envoyé par {sender}")."""

from __future__ import annotations

import re

from tests.test_catalogs import catalog

# Words written with an apostrophe before a vowel or a mute h (je → j’, que → qu’, …).
ELIDING = ("de", "le", "la", "que", "je", "me", "te", "se", "ne", "jusque", "lorsque",
           "puisque", "quoique")
# Values that always start with a digit or a consonant: Babel's dates ("sam. 17 juil.",
# "17 juillet"), amounts ("45,50 €") and counts.
SAFE_PLACEHOLDERS = {"date", "deadline", "sent", "expires", "price", "min", "max", "count",
                     "places", "page", "pages", "day", "time"}
BEFORE_PLACEHOLDER = re.compile(
    r"(?<![\w’'])(" + "|".join(ELIDING) + r")\s+(?:<[^>]+>\s*)*\{(\w*)\}", re.IGNORECASE)


def elision_problems(text: str) -> list[str]:
    return [match.group(0) for match in BEFORE_PLACEHOLDER.finditer(text)
            if match.group(2) not in SAFE_PLACEHOLDERS]


def test_the_check_finds_what_it_is_meant_to_find():
    assert elision_problems("Le billet est au nom de {name}.") == ["de {name}"]
    assert elision_problems("au nom de <b>{name}</b>") == ["de <b>{name}"]
    assert elision_problems("Refuser le billet que {sender} vous a envoyé ?")
    assert elision_problems("Le fermé le {deadline}, envoyé à {email}, d’{name}") == []
    assert elision_problems("titulaire : {holder}") == []


def test_no_french_message_puts_a_name_after_a_word_that_elides():
    problems = {}
    for message in catalog("fr"):
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        found = [p for text in strings for p in elision_problems(text)]
        if found:
            problems[message.id if isinstance(message.id, str) else message.id[0]] = found
    assert not problems, problems
