"""Rotating codes and the offline gate, measured: what a scanner syncs for a big rotating event,
how long checking one code offline takes (in Python as the server does, and in Chromium with the
WebCrypto calls the gate page makes), and how fast an upload of offline scans is applied.

One rotating event of ``--tickets`` tickets is imported with the real importer into a fresh
store, a share of its barcodes voided (holder changes), and the HTTP API served on loopback.

    .venv/bin/python -m bench.entry_codes                          # SQLite, 100,000 tickets
    .venv/bin/python -m bench.entry_codes --database postgres      # a fresh PostgreSQL schema
    .venv/bin/python -m bench.entry_codes --no-browser             # without Chromium
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gzip
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web
from sqlalchemy import text

from bot.http.app import create_api
from bot.http.kernel import ApiServices
from bot.metrics import Metrics
from storage import entry_codes
from storage.db.store import open_store, utcnow
from storage.services import entry_keys
from storage.services.importing.importer import import_document

EVENT = "bench-rotating"
GATE_TOKEN = "bench-gate-token-0123456789abcdef"
PERIOD = 15
TICKETS_PER_ORDER = 10
CHROMIUM = "/usr/bin/chromium"


def document(tickets: int) -> dict:
    event = {"id": EVENT, "name": "Bench festival", "starts_at": "2027-07-17T14:00:00+02:00",
             "timezone": "Europe/Paris", "venue": {"name": "Field", "city": "Nantes"},
             "currency": "EUR", "entry": {"code": "rotating", "period_seconds": PERIOD}}
    orders = []
    for number in range(tickets // TICKETS_PER_ORDER):
        orders.append({
            "number": f"B-{number:07d}",
            "buyer": {"name": "Bench Buyer", "email": f"b{number}@example.org"},
            "tickets": [{"ref": f"B-{number:07d}-{k}", "event": EVENT, "category": "Pass",
                         "price": "10.00"} for k in range(TICKETS_PER_ORDER)],
        })
    return {"events": [event], "orders": orders}


async def void_share(store, every: int) -> int:
    """Void one barcode in ``every`` (as many holder changes), straight in the table."""
    async with store.write() as session:
        result = await session.execute(
            text("UPDATE barcodes SET voided_at = :now WHERE ticket_id % :every = 0"),
            {"now": utcnow(), "every": every})
        return result.rowcount


async def serve(store) -> tuple[web.AppRunner, str]:
    app = create_api(ApiServices(store=store, api_token="bench-api", bot_username=lambda: "bot",
                                 metrics=Metrics(), gate_tokens=(GATE_TOKEN,)))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def sync_sizes(client: aiohttp.ClientSession, base: str) -> None:
    started = time.perf_counter()
    async with client.get(f"{base}/api/events/{EVENT}/entry") as response:
        kit = await response.read()
    took = time.perf_counter() - started
    voided = len(json.loads(kit)["voided"])
    print(f"entry kit (keys + {voided:,} voided tokens): {len(kit):,} bytes, "
          f"{len(gzip.compress(kit)):,} gzipped, served in {took * 1000:.0f} ms")
    total, pages, cursor = 0, 0, None
    while True:
        query = "?limit=10000" + (f"&since={cursor}" if cursor else "")
        async with client.get(f"{base}/api/events/{EVENT}/barcodes{query}") as response:
            body = await response.read()
        page = json.loads(body)
        total += len(body)
        pages += 1
        cursor = page["cursor"]
        if not page["more"]:
            break
    print(f"for comparison, the barcode feed's snapshot (what a static event's offline "
          f"scanner keeps): {total:,} bytes in {pages} pages")


async def codes_of(store, ticket_ids: list[int], at: dt.datetime) -> list[str]:
    step = entry_codes.step_at(at.timestamp(), PERIOD)
    return [(await entry_keys.signed_ticket(store, ticket_id)).code_at(step)
            for ticket_id in ticket_ids]


async def server_verify(store, codes: list[str], at: dt.datetime) -> None:
    async with store.read_connection() as connection:
        key = await entry_keys.key_of_code(connection, entry_codes.parse(codes[0]).key_id)
    now = at.timestamp()  # when the codes were made
    times = []
    for code in codes:
        started = time.perf_counter()
        parsed = entry_codes.parse(code)
        assert entry_codes.genuine(parsed, key.event_id, key.public_key, key.step_secret)
        assert entry_codes.live(parsed, now, key.period_seconds)
        times.append((time.perf_counter() - started) * 1e6)
    print(f"offline check in Python (parse, Ed25519 verify, step HMACs), {len(codes):,} codes: "
          f"median {statistics.median(times):.0f} µs, p95 "
          f"{sorted(times)[int(len(times) * 0.95)]:.0f} µs")


async def upload(client: aiohttp.ClientSession, base: str, codes: list[str],
                 at: dt.datetime) -> None:
    scans = [{"barcode": code, "gate": f"field-{n % 4}", "nonce": f"bench-{n}",
              "scanned_at": (at + dt.timedelta(milliseconds=n)).isoformat()}
             for n, code in enumerate(codes)]
    headers = {"Authorization": f"Bearer {GATE_TOKEN}"}
    for label in ("first upload", "the same upload again"):
        started = time.perf_counter()
        results: dict[str, int] = {}
        for start in range(0, len(scans), 1000):
            async with client.post(f"{base}/api/scans", json={"scans": scans[start:start + 1000]},
                                   headers=headers) as response:
                assert response.status == 200, await response.text()
                for answer in (await response.json())["answers"]:
                    results[answer["result"]] = results.get(answer["result"], 0) + 1
        took = time.perf_counter() - started
        print(f"{label} of {len(scans):,} offline scans in batches of 1,000: {took:.1f} s, "
              f"{len(scans) / took:,.0f} scans/s ({results})")


def page_verify(base: str, codes: list[str], kit: dict) -> None:
    """The gate page's offline check (the same WebCrypto calls as app.js's verifyOffline) in
    Chromium, on a page of the bot's own origin (WebCrypto needs a secure context)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"{base}/healthz")
        times = page.evaluate(_PAGE_CHECK, {"codes": codes, "kit": kit})
        browser.close()
    times.sort()
    print(f"offline check in Chromium (WebCrypto Ed25519 + 2 HMAC-SHA256), {len(times):,} "
          f"codes: median {statistics.median(times):.2f} ms, p95 "
          f"{times[int(len(times) * 0.95)]:.2f} ms")


_PAGE_CHECK = """async ({codes, kit}) => {
  const b64 = (t) => { t = t.replace(/-/g, "+").replace(/_/g, "/"); while (t.length % 4) t += "=";
    return Uint8Array.from(atob(t), (c) => c.charCodeAt(0)); };
  const utf8 = (t) => new TextEncoder().encode(t);
  const hmac = async (key, data) => new Uint8Array(await crypto.subtle.sign("HMAC",
    await crypto.subtle.importKey("raw", key, {name: "HMAC", hash: "SHA-256"}, false, ["sign"]),
    data));
  const voided = new Set(kit.voided);
  const times = [];
  for (const code of codes) {
    const started = performance.now();
    const p = code.split("."), n = p.length;
    const key = kit.keys.find((k) => k.key_id === p[1]);
    const ref = p.slice(2, n - 4).join("."), token = p[n - 4], step = Number(p[n - 2]);
    const publicKey = await crypto.subtle.importKey("raw", b64(key.public_key),
                                                    {name: "Ed25519"}, false, ["verify"]);
    const ok = await crypto.subtle.verify({name: "Ed25519"}, publicKey, b64(p[n - 3]),
                                          utf8("TB1|" + kit.event + "|" + ref + "|" + token));
    const stepKey = await hmac(b64(key.step_secret), utf8(token));
    const counter = new Uint8Array(8); let v = step;
    for (let i = 7; i >= 0; i--) { counter[i] = v % 256; v = Math.floor(v / 256); }
    const d = await hmac(stepKey, counter); const o = d[d.length - 1] & 15;
    const otp = String((((d[o] & 0x7f) << 24) | (d[o+1] << 16) | (d[o+2] << 8) | d[o+3])
                       % 100000000).padStart(8, "0");
    if (!ok || otp !== p[n - 1] || voided.has(token)) throw new Error("not verified: " + code);
    times.push(performance.now() - started);
  }
  return times;
}"""


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--uploads", type=int, default=10_000)
    parser.add_argument("--void-every", type=int, default=20, help="one void barcode in N")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    if args.database == "postgres":
        url = "postgresql+asyncpg://postgres@127.0.0.1/test"
        schema = f"bench_entry_{int(time.time())}"
        connection = await asyncpg.connect("postgresql://postgres@127.0.0.1/test")
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        await connection.close()
        store = await open_store(url, connect_args={"server_settings": {"search_path": schema}})
    else:
        url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'entry.db'}"
        store = await open_store(url)
    started = time.perf_counter()
    await import_document(store, document(args.tickets))
    print(f"imported {args.tickets:,} tickets of one rotating event in "
          f"{time.perf_counter() - started:.0f} s ({args.database})")
    print(f"voided {await void_share(store, args.void_every):,} barcodes")
    runner, base = await serve(store)
    try:
        async with aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {GATE_TOKEN}"}) as client:
            await sync_sizes(client, base)
            async with store.read_connection() as connection:
                ids = list((await connection.execute(text(
                    "SELECT id FROM tickets WHERE id % :every <> 0 ORDER BY id LIMIT :n"),
                    {"every": args.void_every, "n": args.uploads})).scalars())
            at = utcnow() - dt.timedelta(minutes=30)
            codes = await codes_of(store, ids, at)
            await server_verify(store, codes[:2000], at)
            if not args.no_browser:
                async with client.get(f"{base}/api/events/{EVENT}/entry") as response:
                    kit = await response.json()
                live_step = entry_codes.step_at(time.time(), PERIOD)
                signed = [await entry_keys.signed_ticket(store, ticket_id)
                          for ticket_id in ids[:1000]]
                live = [each.code_at(live_step) for each in signed]
                await asyncio.to_thread(page_verify, base, live, kit)
            await upload(client, base, codes, at)
    finally:
        await runner.cleanup()
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
