"""Import speed: ``ticketbot import FILE`` of N orders of three tickets into a fresh SQLite
file, timed from the command's start to its end (start-up and migrations included)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.store import CACHE, EVENT, filler_orders, remove_sqlite_files

PREFIX = "IMP"


def import_file(orders: int) -> Path:
    """The order document, written once and kept in the cache."""
    path = CACHE / f"import-{orders}.json"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        document = {"events": [EVENT], "orders": filler_orders(0, orders, PREFIX)}
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(document, ensure_ascii=False, separators=(",", ":")))
        os.replace(partial, path)
    return path


async def measure_import(orders: int, workdir: Path) -> dict[str, Any]:
    document = await asyncio.to_thread(import_file, orders)
    database = workdir / "import-bench.db"
    await asyncio.to_thread(remove_sqlite_files, database)
    env = {**os.environ, "TICKETBOT_DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "import", str(document), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    seconds = time.monotonic() - started
    await asyncio.to_thread(remove_sqlite_files, database)
    if process.returncode != 0:
        raise RuntimeError(f"ticketbot import failed ({process.returncode}): "
                           f"{(out + err).decode()[-2000:]}")
    tickets = orders * 3
    return {
        "orders": orders,
        "tickets": tickets,
        "seconds": seconds,
        "tickets_per_s": tickets / seconds,
        "output": out.decode().strip(),
    }
