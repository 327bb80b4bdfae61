"""An event's tickets as a CSV document (``/export`` in chat, the shop API's
``tickets.csv``): the store's rows put into words in one language, a page of rows per piece so
that a million tickets stream in constant memory (storage/reads/event_report.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

from conversations.presentation.words import state_word
from locales import translator, words_in
from storage.db.store import Store
from storage.errors import N_
from storage.reads import event_report

# OWASP's rule against CSV injection: a cell a spreadsheet would read as a formula (or whose
# leading tab or carriage return hides one) gets a single quote in front, which spreadsheets
# show as text. Written here rather than taken from ``defusedcsv``: that package leaves tabs
# and carriage returns alone and rewrites every "|" inside a cell, changing the data.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"  # spreadsheet programs read the file as UTF-8 only with it
COLUMNS = (N_("Reference"), N_("Order"), N_("Category"), N_("State"), N_("Holder"),
           N_("Invitation e-mail"), N_("Barcode"), N_("Scanned at"), N_("Price"))


async def ticket_csv(store: Store, event_id: str, language: str, *,
                     page: int = event_report.EXPORT_PAGE) -> AsyncIterator[str]:
    """The event's tickets as CSV text, a page of rows per piece, the first with the BOM
    and the header; categories and states in ``language``, times in the event's zone."""
    t = translator(language)
    timezone = await event_report.event_timezone(store, event_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write(BOM)
    writer.writerow([t.gettext(column) for column in COLUMNS])
    async for rows in event_report.ticket_pages(store, event_id, page=page):
        for row in rows:
            scanned = t.datetime(row.used_at, timezone) if row.used_at is not None else ""
            writer.writerow([spreadsheet_safe(cell) for cell in (
                row.ref, row.order_number, words_in(row.category, language),
                state_word(row.state, t), row.holder_name or "", row.invitation_email or "",
                row.barcode, scanned,
                f"{row.price:.2f}")])  # the price as the HTTP API writes it: 79.00
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def spreadsheet_safe(cell: str) -> str:
    """The cell as text a spreadsheet will not run: ``'=HYPERLINK(…)`` rather than a link."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell
