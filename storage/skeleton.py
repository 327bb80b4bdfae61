"""Letters that look alike across alphabets, folded to one: "Аlex" with a Cyrillic А and "Alex"
get the same skeleton, so the one-name-per-event rule sees one name.

The data is Unicode's confusables list (UTS #39, "Unicode Security Mechanisms"), as the
``confusable-homoglyphs`` package ships it. That package keeps each pair in both directions and
no longer says which side is UTS #39's prototype, so the skeleton here maps every character to
one member of its confusable class (a class: the characters sharing a prototype). Two strings
have the same skeleton here exactly when UTS #39's per-character skeletons match.

Why this package: PyICU's SpoofChecker computes skeletons itself, but PyPI has no wheels of it
(it builds against the system's libicu-dev); ``icu4py`` has wheels but no spoof checker; the
``confusables`` package has had no release since 2021 (Unicode 13 data).
``confusable-homoglyphs`` is pure Python, maintained, and ships the data.

The package's own ``confusables_data`` is its whole JSON file parsed at import: 86,000 Python
objects, about 7 MiB that a module holding it keeps for the life of the process. The tables
here are built once, on the first name key, by streaming that file (``ijson``): only the two
small tables stay (about 5,700 entries, 3 MiB; docs/performance.md).

Where this departs from UTS #39, on purpose, for people's names rather than identifiers:
- only one-letter look-alikes fold. UTS #39 also maps "m" to "rn", which would make "Mamie" and
  "Marnie" one name; here "m" stays a letter of its own.
- case is folded before the skeleton and again after it (``keys.name_key``), so the skeleton's
  own treatment of case ("I" and "l" look alike) never makes "Ian" and "lan" one name, and a
  representative that is a capital (Cherokee "Ꭺ" folds to itself, its look-alike is "A") still
  ends up small. Folding first would lose a look-alike capital whose small form looks like
  nothing Latin (Cyrillic "М" folds to "м"), so ``latin_capitals`` first replaces each letter of
  another alphabet whose capital looks like a Latin capital by that capital ("Мartin" is
  "Martin"), in both cases so that case still never matters ("мartin" is "martin" too).
"""

from __future__ import annotations

import functools
import os
import unicodedata
from collections.abc import Iterable, Iterator
from importlib.resources import files
from typing import Any

import ijson

# Letters with case are all below this code point (the last: Adlam, U+1E943).
_LAST_CASED_LETTER = 0x1E943
# The data wraps right-to-left characters in LEFT-TO-RIGHT MARKs for display.
_DIRECTION_MARKS = str.maketrans("", "", "\u200e\u200f")


def confusable_pairs() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The package's confusables, read one character at a time: each character and its
    look-alikes (``{"c": character, "n": name}``), as ``confusables_data.items()`` gives them."""
    # Where the package itself reads it: its folder, unless CONFUSABLE_DATA names another.
    folder = os.environ.get("CONFUSABLE_DATA") or files("confusable_homoglyphs")
    with open(os.path.join(folder, "confusables.json"), "rb") as data:
        yield from ijson.kvitems(data, "")


@functools.cache
def _folding() -> dict[int, str]:
    """For ``str.translate``: each confusable character to its class's representative."""
    return folding_from(confusable_pairs())


def folding_from(pairs: Iterable[tuple[str, list[dict[str, Any]]]]) -> dict[int, str]:
    """The folding table of confusables given as (character, its look-alikes) pairs."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for source, lookalikes in pairs:
        for lookalike in lookalikes:
            a, b = find(source.translate(_DIRECTION_MARKS)), find(
                lookalike["c"].translate(_DIRECTION_MARKS))
            if a != b:
                parent[a] = b
    classes: dict[str, list[str]] = {}
    for node in list(parent):
        if len(node) == 1:
            classes.setdefault(find(node), []).append(node)
    folding = {}
    for members in classes.values():
        representative = min(members, key=_preference)
        for member in members:
            if member != representative:
                folding[ord(member)] = representative
    return folding


def _preference(character: str) -> tuple[int, str]:
    """The class's representative: a small Latin letter if it has one ("a" for "а" and "α"),
    else the lowest code point; only equality of skeletons matters, this keeps keys readable."""
    return (0 if "a" <= character <= "z" else 1, character)


@functools.cache
def _capitals() -> dict[int, str]:
    """For ``str.translate``: each letter of another alphabet whose capital looks like a Latin
    capital (A–Z), in either case, to that Latin capital: Cyrillic "М" and "м" to "M", "І" and
    "і" to "I", Cherokee "Ꭺ" and "ꭺ" to "A". Both cases, so that the key stays blind to case:
    "ВОВА" and "Вова" are one name, as "MARTIN" and "Martin" are."""
    return capitals_from(_folding())


def capitals_from(folding: dict[int, str]) -> dict[int, str]:
    """The table of ``_capitals`` for a folding table."""
    classes: dict[str, list[str]] = {}
    for code, representative in folding.items():
        classes.setdefault(representative, [representative]).append(chr(code))
    capitals: dict[int, str] = {}
    for members in classes.values():
        latin = sorted(member for member in members if "A" <= member <= "Z")
        for member in members:
            if latin and not member.isascii() and unicodedata.category(member) in {"Lu", "Lt"}:
                capitals[ord(member)] = latin[0]
    # Then every letter whose capital is one of those ("м", the micro sign "µ" for Greek "Μ").
    for code in range(_LAST_CASED_LETTER + 1):
        letter = chr(code)
        capital = unicodedata.normalize("NFD", letter.upper())[:1]
        if code not in capitals and not letter.isascii() and ord(capital) in capitals:
            capitals[code] = capitals[ord(capital)]
    return capitals


def latin_capitals(text: str) -> str:
    """``text`` with each letter whose capital looks like a Latin capital replaced by it."""
    return text.translate(_capitals())


def skeleton(text: str) -> str:
    """``text`` with every look-alike letter replaced by its class's representative."""
    return text.translate(_folding())
