"""What a ticket costs in CPU: the QR picture (segno, PNG) of a static event's signed code (and,
to compare, of the bare barcode), signing that code (Ed25519), the PDF e-ticket (reportlab, with
the embedded font and the QR image), and the calendar entry (icalendar), each for fresh
barcodes so that no cache helps; plus a cached repeat, which is what a second press costs.

    .venv/bin/python -m bench.ticket_media [--tickets N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import statistics
import time
from collections.abc import Callable
from decimal import Decimal

from conversations.presentation import ticket_files
from storage import entry_codes
from storage.ticket_delivery import TicketCard

KEY = entry_codes.new_key()


def signed_code(barcode: str, number: int) -> str:
    return entry_codes.static_code(KEY.key_id, KEY.private_key, "dreamfest-2027-sat",
                                   f"T-100234-{number}", barcode)


def card(barcode: str, number: int) -> TicketCard:
    return TicketCard(
        signed_code=signed_code(barcode, number),
        ticket_id=number, ref=f"T-100234-{number}", barcode=barcode,
        holder_name="Zoé Lefèvre-Çà", holder_email="zoe@example.org", holder_telegram_id=1,
        category="Pass samedi", price=Decimal("89.00"), currency="EUR", order_id=1,
        order_number="DF-100234", event_id="dreamfest-2027-sat",
        event_name="Dreamfest 2027 — Saturday",
        starts_at=dt.datetime(2027, 7, 17, 12, tzinfo=dt.UTC), timezone="Europe/Paris",
        venue_name="Parc des Expositions", venue_city="Nantes", languages=("fr", None, "fr"))


def measure(name: str, count: int, work: Callable[[int], object]) -> None:
    times = []
    for number in range(count):
        started = time.perf_counter()
        work(number)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    print(f"{name:<34} median {statistics.median(times):7.2f} ms   p95 {p95:7.2f} ms   "
          f"({count} tickets)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=200)
    count = parser.parse_args().tickets
    cards = [card(f"{secrets.randbelow(10**16):016d}", n) for n in range(count)]
    ticket_files.tickets_pdf((card("0" * 16, 0),), "fr")  # fonts loaded once per process

    measure("signed code (Ed25519)", count, lambda n: signed_code(cards[n].barcode, n))
    measure("QR picture (PNG, bare barcode)", count,
            lambda n: ticket_files.qr_png(cards[n].barcode))
    measure("QR picture (PNG, signed code)", count,
            lambda n: ticket_files.qr_png(cards[n].qr_text))
    ticket_files.qr_png.cache_clear()
    measure("PDF e-ticket (new barcode)", count,
            lambda n: ticket_files.tickets_pdf((cards[n],), "fr"))
    # The newest PDF: the cache keeps the last PDF_CACHE_SIZE, fewer than --tickets.
    measure("PDF e-ticket again (cached)", count,
            lambda n: ticket_files.tickets_pdf((cards[-1],), "fr"))
    measure("calendar entry (.ics)", count, lambda n: ticket_files.ticket_ics(cards[n], "fr"))
    pdf = ticket_files.tickets_pdf((cards[0],), "fr")
    print(f"one PDF e-ticket: {len(pdf) / 1024:.0f} kB; QR picture: "
          f"{len(ticket_files.qr_png(cards[0].qr_text))} bytes")


if __name__ == "__main__":
    main()
