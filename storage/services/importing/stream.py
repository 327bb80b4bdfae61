"""An order document read as a stream of entries, one event or order at a time.

A file is parsed incrementally with ijson (its C backend, yajl): only the entry being read is
ever held, so a festival's export of a million tickets needs no more memory than a small one.
A document already in memory (the HTTP API's body, a test's dict) yields its entries the same
way, so both go through one validation. Problems of the document's shape (an unknown top-level
key, a section that is not a list) are reported through ``problem`` and reading goes on;
broken JSON ends the reading with ``MalformedJson``, which says where (line and column, and the
entry it broke in), found again byte by byte after the fact so that the fast path pays nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import ijson

SECTIONS = ("events", "orders")
READ_SIZE = 64 * 1024
_ENTRY_PREFIXES = {f"{section}.item": section for section in SECTIONS}
_KINDS = {list: "an array: ", str: "a string: ", int: "a number: ", float: "a number: "}


@dataclass(frozen=True)
class Entry:
    """One entry of a section: ``orders[index]`` is ``value`` (a dict, if well formed)."""

    section: str
    index: int
    value: Any


class MalformedJson(Exception):
    """The text is not JSON; the message says where, as far as it can tell."""


def shown(value: Any) -> str:
    """A value as JSON, clipped so one bad entry cannot flood the report."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:59] + "…"


def not_an_object(value: Any) -> str:
    return (f'the document must be a JSON object with "events" and "orders", '
            f"not {_KINDS.get(type(value), '')}{shown(value)}")


def unknown_key(key: str) -> str:
    return f'{key}: not a known key (a document has only "events" and "orders")'


# --- a document in memory ---------------------------------------------------------------------


def entries_of(document: Any, problem: Callable[[str], None]) -> Iterator[Entry]:
    """The entries of a parsed document, events first."""
    if not isinstance(document, dict):
        problem(not_an_object(document))
        return
    for key in document:
        if key not in SECTIONS:
            problem(unknown_key(key))
    for section in SECTIONS:
        entries = document.get(section, [])
        if not isinstance(entries, list):
            problem(f"{section}: must be a list (got {shown(entries)})")
            continue
        for index, value in enumerate(entries):
            yield Entry(section, index, value)


# --- a file ------------------------------------------------------------------------------------


class _CountingReader:
    """The file as ijson reads it, counting the bytes handed over (for progress, and to know
    which read held the error)."""

    def __init__(self, file: BinaryIO, on_read: Callable[[int], None] | None) -> None:
        self._file = file
        self._on_read = on_read
        self.before_last = self.done = 0

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self.before_last, self.done = self.done, self.done + len(data)
        if self._on_read is not None:
            self._on_read(self.done)
        return data


def file_entries(path: Path, problem: Callable[[str], None],
                 on_read: Callable[[int], None] | None = None) -> Iterator[Entry]:
    """The entries of the JSON file at ``path``, in the file's order, read as a stream;
    ``on_read(bytes_so_far)`` after each read. Raises ``MalformedJson`` or ``OSError``."""
    with path.open("rb") as file:
        reader = _CountingReader(file, on_read)
        state = _Walk(problem)
        try:
            # use_float: numbers as json.loads gives them, so both ways validate alike.
            for prefix, event, value in ijson.parse(reader, buf_size=READ_SIZE, use_float=True):
                entry = state.step(prefix, event, value)
                if entry is not None:
                    yield entry
        except (ijson.JSONError, ValueError) as error:  # ValueError: a number too long to read
            raise MalformedJson(_where_broken(path, reader, state, error)) from None


class _Walk:
    """Follows ijson's events through the document's two levels and builds each entry."""

    def __init__(self, problem: Callable[[str], None]) -> None:
        self.problem = problem
        self.section: str | None = None  # the section whose entries are being read
        self.counts = dict.fromkeys(SECTIONS, 0)
        self.builder: ijson.ObjectBuilder | None = None
        self.depth = 0
        self.started = False
        self.last: Entry | None = None

    def step(self, prefix: str, event: str, value: Any) -> Entry | None:
        if self.builder is not None:
            self.builder.event(event, value)
            self.depth += event in ("start_map", "start_array")
            self.depth -= event in ("end_map", "end_array")
            return self._finish(self.builder.value) if self.depth == 0 else None
        if not self.started:
            self.started = True
            if event != "start_map":
                self.problem(not_an_object(value if event not in ("start_array",) else []))
            return None
        if prefix == "" and event == "map_key":
            if value not in SECTIONS:
                self.problem(unknown_key(value))
            return None
        section = _ENTRY_PREFIXES.get(prefix)
        if section is not None:
            self.section = section
            if event in ("start_map", "start_array"):
                self.builder, self.depth = ijson.ObjectBuilder(), 1
                self.builder.event(event, value)
                return None
            return self._finish(value)
        if prefix in SECTIONS and event not in ("start_array", "end_array"):
            if event in ("start_map", "string", "number", "boolean", "null"):
                got = "an object" if event == "start_map" else shown(value)
                self.problem(f"{prefix}: must be a list (got {got})")
        return None

    def _finish(self, value: Any) -> Entry:
        assert self.section is not None
        entry = Entry(self.section, self.counts[self.section], value)
        self.counts[self.section] += 1
        self.builder, self.last = None, entry
        return entry


def _where_broken(path: Path, reader: _CountingReader, state: _Walk, error: Exception) -> str:
    """``not valid JSON: <why> at line L, column C (in orders[12], after orders[11] (DF-1))``."""
    why = str(error).splitlines()[0] if str(error) else type(error).__name__
    why = why.removeprefix("parse error: ").removeprefix("lexical error: ").rstrip(".")
    if isinstance(error, ValueError) and not isinstance(error, ijson.JSONError):
        why = "a number has too many digits"
    text = f"not valid JSON: {why}"
    offset = _error_offset(path, reader.before_last, reader.done)
    if offset is not None:
        line, column = _line_and_column(path, offset)
        text += f" at line {line}, column {column}"
    if state.section is not None:
        inside = f"{state.section}[{state.counts[state.section]}]"
        text += f" (in {inside}" if state.builder is not None else " (between entries"
        if state.last is not None:
            text += f", after {state.last.section}[{state.last.index}]{_label(state.last.value)}"
        text += ")"
    return text


def _label(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("id", "number"):
            if isinstance(value.get(key), str):
                return f" ({value[key][:40]})"
    return ""


def _error_offset(path: Path, start: int, end: int) -> int | None:
    """The offset of the byte the parser refused: the file is parsed again up to the read that
    failed, then that read byte by byte. Only a refused file pays for it."""
    parser = ijson.basic_parse_coro(_sink())
    offset = 0
    try:
        with path.open("rb") as file:
            while offset < start:
                chunk = file.read(min(READ_SIZE, start - offset))
                if not chunk:
                    return None
                parser.send(chunk)
                offset += len(chunk)
            while offset < end and (byte := file.read(1)):
                parser.send(byte)
                offset += 1
            parser.close()  # the text ended too early: the error is at its end
    except (ijson.JSONError, ValueError):
        return offset
    except OSError:
        return None
    return None


def _sink() -> Any:
    def sink() -> Any:
        while True:
            yield
    coroutine = sink()
    next(coroutine)
    return coroutine


def _line_and_column(path: Path, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of the byte at ``offset``."""
    line, line_start, done = 1, 0, 0
    with path.open("rb") as file:
        while done < offset:
            chunk = file.read(min(READ_SIZE * 16, offset - done))
            if not chunk:
                break
            newlines = chunk.count(b"\n")
            if newlines:
                line += newlines
                line_start = done + chunk.rindex(b"\n") + 1
            done += len(chunk)
        file.seek(line_start)
        before = file.read(offset - line_start)
    return line, len(before.decode("utf-8", errors="replace")) + 1
