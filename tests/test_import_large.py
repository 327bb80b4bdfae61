"""Importing files of any size: read as a stream with memory that does not grow with the file,
still all or nothing with every problem named, and a progress display on a terminal or as plain
lines."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import pytest

import storage.services.importing.staging
import storage.services.importing.stream
import storage.services.importing.writing
from bot.cli import main as ticketbot
from bot.import_progress import ImportProgressDisplay
from storage.services.importing.importer import ImportRejected, import_file
from tests.conftest import SAMPLE_EVENTS, TEST_DATABASE_URL
from tests.test_import import counts


def order(n: int, prefix: str = "DF", price: str = "89.00") -> dict:
    return {
        "number": f"{prefix}-{100000 + n}",
        "buyer": {"name": "Camille Martin", "email": f"camille{n}@example.org", "language": "fr"},
        "tickets": [{"ref": f"T-{prefix}-{100000 + n}-{k}", "event": "fest-sat",
                     "category": "Pass samedi", "price": price} for k in (1, 2, 3)],
    }


def write_document(path: Path, orders: int, *, prefix: str = "DF", padding: int = 0,
                   bad_at: int | None = None, cut: int = 0, orders_first: bool = False) -> Path:
    """A document of ``orders`` orders written entry by entry: ``padding`` spaces after the
    events, the order at ``bad_at`` with a bad price, the last ``cut`` bytes cut off."""
    events = '"events": ' + json.dumps(SAMPLE_EVENTS)
    with path.open("w", encoding="utf-8") as file:
        file.write("{\n" + ("" if orders_first else events + "," + " " * padding + "\n"))
        file.write('"orders": [\n')
        for n in range(orders):
            entry = order(n, prefix, "free" if n == bad_at else "89.00")
            file.write(("," if n else "") + json.dumps(entry) + "\n")
        file.write("]" + ("," + events if orders_first else "") + "\n}\n")
    if cut:
        with path.open("r+b") as file:
            file.truncate(path.stat().st_size - cut)
    return path


async def refused(store, path: Path) -> ImportRejected:
    before = await counts(store)
    with pytest.raises(ImportRejected) as rejected:
        await import_file(store, path)
    assert await counts(store) == before
    return rejected.value


async def test_a_file_over_50_mb_imports_and_again_changes_nothing(store, tmp_path):
    path = write_document(tmp_path / "festival.json", 300, padding=52_000_000)
    assert path.stat().st_size > 50_000_000

    report = await import_file(store, path)
    again = await import_file(store, path)

    assert (report.orders_created, report.tickets_created) == (300, 900)
    assert report.order_numbers[-1] == "DF-100299"
    assert (again.orders_created, again.tickets_created, again.events_updated) == (0, 0, 0)
    assert (await counts(store))["tickets"] == 900


async def test_orders_may_come_before_the_events_in_a_file(store, tmp_path):
    report = await import_file(store, write_document(tmp_path / "d.json", 3, orders_first=True))
    assert (report.events_created, report.tickets_created) == (2, 9)


async def test_broken_json_at_the_end_writes_nothing_and_says_where(store, tmp_path):
    path = write_document(tmp_path / "cut.json", 10_001, cut=40)

    lines = path.read_text().split("\n")  # the last one is cut short

    rejected = await refused(store, path)

    assert rejected.problems == [
        f"not valid JSON: premature EOF at line {len(lines)}, column {len(lines[-1]) + 1} "
        "(in orders[10000], after orders[9999] (DF-109999))"]


async def test_broken_json_in_the_middle_is_placed_by_line_and_column(store, tmp_path):
    path = write_document(tmp_path / "broken.json", 200)
    text = path.read_text().replace('"DF-100150"', '"DF-100150",,', 1)
    path.write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "DF-100150" in row)
    column = text.splitlines()[line - 1].index(",,") + 2

    rejected = await refused(store, path)

    assert rejected.problems == [
        f"not valid JSON: invalid object key (must be a string) at line {line}, column {column} "
        "(in orders[150], after orders[149] (DF-100149))"]


async def test_a_bad_entry_after_10000_good_ones_is_named_and_nothing_written(store, tmp_path):
    path = write_document(tmp_path / "bad.json", 10_002, bad_at=10_000)

    rejected = await refused(store, path)

    assert rejected.problems == [
        'orders[10000] (DF-110000).tickets[0] (T-DF-110000-1).price: must be a decimal string '
        'like "45.00" (got "free")',
        'orders[10000] (DF-110000).tickets[1] (T-DF-110000-2).price: must be a decimal string '
        'like "45.00" (got "free")',
        'orders[10000] (DF-110000).tickets[2] (T-DF-110000-3).price: must be a decimal string '
        'like "45.00" (got "free")',
    ]


async def test_duplicates_far_apart_in_a_file_are_named(store, tmp_path):
    path = write_document(tmp_path / "twice.json", 1_500)
    text = path.read_text().replace("T-DF-101400-2", "T-DF-100003-1")
    path.write_text(text.replace('"DF-101499"', '"DF-100007"'))

    rejected = await refused(store, path)

    assert rejected.problems == [
        'orders[1499] (DF-100007).number: "DF-100007" is already used by orders[7] (DF-100007)',
        'orders[1400] (DF-101400).tickets[1] (T-DF-100003-1).ref: "T-DF-100003-1" is already '
        "used by orders[3] (DF-100003).tickets[0] (T-DF-100003-1)",
    ]


async def test_memory_does_not_grow_with_the_file(store, tmp_path, monkeypatch):
    # Small chunks, so that a few thousand orders span many of them; a first import warms
    # every cache (statements, validators) that a later one would otherwise fill.
    monkeypatch.setattr(storage.services.importing.writing, "ORDER_CHUNK", 20)
    monkeypatch.setattr(storage.services.importing.staging, "BATCH", 20)
    monkeypatch.setattr(storage.services.importing.stream, "READ_SIZE", 8 * 1024)
    await import_file(store, write_document(tmp_path / "warm.json", 300, prefix="WU"))

    async def peak(orders: int, prefix: str) -> int:
        path = write_document(tmp_path / f"{prefix}.json", orders, prefix=prefix)
        tracemalloc.start()
        try:
            report = await import_file(store, path, list_orders=False)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert report.tickets_created == orders * 3

    small, large = await peak(500, "SM"), await peak(2_500, "LG")

    # Five times the orders: an import holding every entry would need about five times more;
    # streaming, the peak moves only by garbage not yet collected and caches filled (about
    # 0.37 MB and 0.43 MB when written).
    assert large < small * 1.5, (small, large)


# --- progress --------------------------------------------------------------------------------


async def test_progress_is_plain_lines_when_not_on_a_terminal(store, tmp_path):
    output = io.StringIO()
    display = ImportProgressDisplay(output)
    assert not display.interactive  # a StringIO is no terminal

    await import_file(store, write_document(tmp_path / "p.json", 1_200), progress=display)
    display.close()

    lines = output.getvalue().splitlines()
    assert "\r" not in output.getvalue()
    assert lines[-1] == "writing: 100% (1,200 of 1,200 orders)"
    assert "comparing with the store: 100% (1,200 of 1,200 orders)" in lines
    reading = [line for line in lines if line.startswith("reading and checking the file: ")]
    assert reading[-1].startswith("reading and checking the file: 100% (")
    assert reading[-1].endswith(" tickets)") and len(reading) >= 2
    assert len(lines) <= 3 * 11  # at most one line per tenth of each stage


async def test_progress_is_a_bar_with_counts_on_a_terminal(store, tmp_path):
    output = io.StringIO()
    display = ImportProgressDisplay(output, interactive=True)

    await import_file(store, write_document(tmp_path / "p.json", 1_200), progress=display)
    display.close()

    shown = output.getvalue()
    assert "\r" in shown  # redrawn in place
    assert "reading and checking the file: 100%" in shown and "tickets" in shown
    assert "writing: 100%" in shown and "1200/1200" in shown


@pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="a command line cannot name a test schema")
def test_the_import_command_shows_progress_and_a_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TICKETBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    path = write_document(tmp_path / "cli.json", 20)

    assert ticketbot(["import", str(path)]) == 0

    out = capsys.readouterr().out.splitlines()
    assert "writing: 100% (20 of 20 orders)" in out
    assert out[-1] == f"{path}: 20 orders and 60 tickets created, 2 events created, 0 updated."
