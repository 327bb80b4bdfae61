"""The review's order documents (issue 22), refused by ``ticketbot import`` and by
``POST /api/orders`` with the same one line and nothing written: nesting without end (in memory
that does not grow with it), a 5,000-digit number, a lone surrogate, a key given twice."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from storage.models import Event, Order, Ticket
from storage.services.importing.importer import ImportRejected, import_document, import_file
from storage.services.importing.stream import MAX_DEPTH, READ_SIZE, bytes_entries
from tests.conftest import TEST_DATABASE_URL, sample_document
from tests.test_http_api import open_api

SAMPLE = json.dumps(sample_document())
NESTED = b"[" * 200_000  # the review's 400 KB file; it ends there, as it did
HUGE_NUMBER = SAMPLE.replace('"events": [{', '"events": [{"capacity": ' + "9" * 5_000 + ", ", 1)
LONE_SURROGATE = SAMPLE.replace("Camille Martin", "Camille \\ud800")
TWICE = (SAMPLE[:-1] + ', "orders": ' + json.dumps(sample_document(prefix="XX")["orders"])
         + "}")
DOCUMENTS = {
    "nested": (NESTED, f"not valid JSON: nested too deeply (more than {MAX_DEPTH} levels)"),
    "huge number": (HUGE_NUMBER.encode(), "not valid JSON: a number is too large"),
    "lone surrogate": (LONE_SURROGATE.encode(), "not valid JSON: \\ud800 is half of a character "
                                                "(a lone surrogate), which is not text"),
    "orders twice": (TWICE.encode(), 'not valid JSON: the key "orders" is given twice in one '
                                     "object"),
}


async def nothing_written(store) -> bool:
    async with store.read() as session:
        return not any([await session.scalar(select(func.count()).select_from(model))
                        for model in (Event, Order, Ticket)])


def cli_problems(path: Path, database: Path) -> tuple[int, list[str]]:
    """``ticketbot import`` in a process of its own whose address space is capped at 2 GB: the
    review's file took 23.5 GB before. Returns the exit code and the problem lines."""
    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    run = subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; raise SystemExit(main())", "import",
         str(path)],
        env={**os.environ, "TICKETBOT_DATABASE_URL": f"sqlite+aiosqlite:///{database}"},
        capture_output=True, text=True, timeout=120, preexec_fn=cap_memory)
    lines = run.stderr.splitlines()
    assert f"{path}: nothing imported." in lines, run.stderr[-2000:]
    return run.returncode, [line[2:] for line in lines if line.startswith("  ")]


@pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="a command line cannot name a test schema")
@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_the_command_line_refuses_the_reviews_documents_in_one_line(tmp_path, name):
    text, expected = DOCUMENTS[name]
    path = tmp_path / "orders.json"
    path.write_bytes(text)
    code, problems = cli_problems(path, tmp_path / "store.db")
    # The nested file is also an array, not an object: said first, on a line of its own.
    assert code == 1 and problems[-1].startswith(expected) and len(problems) <= 2
    assert all(len(problem) < 200 for problem in problems)


@pytest.mark.parametrize("name", list(DOCUMENTS))
async def test_the_api_refuses_the_reviews_documents_as_the_command_line_does(
        store, tmp_path, name):
    text, expected = DOCUMENTS[name]
    path = tmp_path / "orders.json"
    path.write_bytes(text)
    with pytest.raises(ImportRejected) as from_file:
        await import_file(store, path)
    assert from_file.value.problems[-1].startswith(expected) and from_file.value.not_json
    api = await open_api(store)
    try:
        answer = await api.call("POST", "/api/orders", raw=text, valid=False)
    finally:
        await api.client.close()
    assert answer.status == 400 and answer.json["error"] == "malformed_json"
    assert answer.json["problems"] == from_file.value.problems[-1:]
    assert await nothing_written(store)


def test_a_lone_surrogate_is_found_where_it_is():
    with pytest.raises(Exception, match="at line 1, column 106"):
        list(bytes_entries(b'{"events": [], "orders": [{"number": "A-1", "buyer": '
                           b'{"name": "Camille", "email": "c@example.org", "x": "\\udc00"}}]}',
                           print))


@pytest.mark.parametrize("text", [
    "Zo\\u00e9 \\ud83d\\ude00",  # a pair is one character (an emoji)
    "Zo\\\\ud800",  # an escaped backslash, then the letters "ud800"
    "Zo\\\\\\\\ud800",
])
def test_what_only_looks_like_a_lone_surrogate_is_read(text):
    document = b'{"events": [{"id": "' + text.encode() + b'"}], "orders": []}'
    (entry,) = bytes_entries(document, print)
    assert entry.value["id"] == json.loads(f'"{text}"')


def test_a_pair_cut_in_two_by_a_read_is_one_character():
    padding = READ_SIZE - len(b'{"events": [{"id": "') - 9  # the pair straddles the read
    document = (b'{"events": [{"id": "' + b"x" * padding + b'\\ud83d\\ude00"}], "orders": []}')
    (entry,) = bytes_entries(document, print)
    assert entry.value["id"].endswith("\U0001F600")
    with pytest.raises(Exception, match="lone surrogate"):
        list(bytes_entries(document.replace(b"\\ude00", b"zzzzzz"), print))


async def test_one_key_twice_inside_an_entry_is_refused(store):
    document = SAMPLE.replace('"number": "DF-100000"', '"number": "DF-1", "number": "DF-2"')
    with pytest.raises(ImportRejected) as refused:
        await import_document(store, document)
    assert refused.value.problems == [
        'not valid JSON: the key "number" is given twice in one object (in orders[0], '
        "after events[1] (fest-sun))"]
    assert await nothing_written(store)


def test_nesting_just_under_the_cap_is_read():
    nested = "[" * (MAX_DEPTH - 3) + "]" * (MAX_DEPTH - 3)
    (entry,) = bytes_entries(f'{{"events": [{nested}], "orders": []}}'.encode(), print)
    assert entry.section == "events"
