"""Import speed: ``ticketbot import FILE`` of N orders of three tickets into a fresh store,
timed from the command's start to its end (start-up and migrations included), with the
command's peak memory (RSS).

Run on its own for a festival-sized file (333,000 orders, 999,000 tickets, ~148 MB written
the way a shop's export is, indented)::

    .venv/bin/python -m bench.import_speed --orders 333000 --database sqlite,postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.store import CACHE, EVENT, order_entry, remove_sqlite_files

PREFIX = "IMP"
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1/test"


def write_import_file(path: Path, orders: int, *, indent: int | None = None) -> None:
    """An order document of ``orders`` orders of three tickets, written entry by entry so that
    not even the generator holds the whole document."""
    partial = path.with_suffix(".partial")
    dumps = json.JSONEncoder(ensure_ascii=False, indent=indent,
                             separators=None if indent else (",", ":")).encode
    newline = "\n" if indent else ""
    with partial.open("w", encoding="utf-8") as file:
        file.write(f'{{{newline}"events": [{dumps(EVENT)}],{newline}"orders": [{newline}')
        for n in range(orders):
            entry = order_entry(f"{PREFIX}-{n:07d}", "Camille Martin",
                                f"buyer{n}@{PREFIX.lower()}.example",
                                [f"T-{PREFIX}-{n:07d}-{k}" for k in (1, 2, 3)])
            file.write(("," + newline if n else "") + dumps(entry))
        file.write(f"{newline}]{newline}}}{newline}")
    os.replace(partial, path)


def import_file(orders: int, *, indent: int | None = None) -> Path:
    """The order document, written once and kept in the cache."""
    path = CACHE / f"import-{orders}{'-indented' if indent else ''}.json"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        write_import_file(path, orders, indent=indent)
    return path


async def _run_import(document: Path, database_url: str) -> tuple[float, int, str]:
    """Wall time, peak RSS (KiB) and output of one ``ticketbot import`` process."""
    env = {**os.environ, "TICKETBOT_DATABASE_URL": database_url}
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _COMMAND, "import", str(document), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"ticketbot import failed ({process.returncode}): "
                           f"{(out + err).decode()[-2000:]}")
    peak = int(err.decode().rsplit(_PEAK, 1)[1].split()[0])
    return seconds, peak, out.decode().strip().splitlines()[-1]


# ``ticketbot`` as from a shell, telling its own peak RSS (KiB) when it ends.
_PEAK = "PEAK_RSS_KIB"
_COMMAND = (
    "import resource, sys\n"
    "from bot.cli import main\n"
    "code = main(sys.argv[1:])\n"
    f"print('{_PEAK}', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


async def measure_import(orders: int, workdir: Path, *, database: str = "sqlite",
                         postgres_url: str = POSTGRES_URL, indent: int | None = None,
                         again: bool = False) -> dict[str, Any]:
    """Import a generated file into a fresh store (``again``: then once more, which must
    change nothing)."""
    document = await asyncio.to_thread(import_file, orders, indent=indent)
    if database == "postgres":
        from bench.store import _postgres, url_of

        name = f"ticketbot_bench_import_{os.getpid()}"
        await _postgres(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                        f'CREATE DATABASE "{name}"', on="postgres")
        url = url_of(postgres_url, name)
    else:
        sqlite_file = workdir / "import-bench.db"
        await asyncio.to_thread(remove_sqlite_files, sqlite_file)
        url = f"sqlite+aiosqlite:///{sqlite_file}"
    try:
        seconds, peak_kib, output = await _run_import(document, url)
        result = {
            "database": database,
            "orders": orders,
            "tickets": orders * 3,
            "file_bytes": document.stat().st_size,
            "seconds": seconds,
            "tickets_per_s": orders * 3 / seconds,
            "peak_rss_mib": peak_kib / 1024,
            "output": output,
        }
        if again:
            seconds, peak_kib, output = await _run_import(document, url)
            result["again"] = {"seconds": seconds, "peak_rss_mib": peak_kib / 1024,
                               "output": output}
        return result
    finally:
        if database == "postgres":
            await _postgres(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                            on="postgres")
        else:
            await asyncio.to_thread(remove_sqlite_files, sqlite_file)


async def _main(options: argparse.Namespace) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as workdir:
        for database in options.database.split(","):
            result = await measure_import(options.orders, Path(workdir), database=database,
                                          postgres_url=options.postgres_url, indent=1,
                                          again=options.again)
            print(json.dumps(result, indent=2), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.import_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=333_000)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgres, or both")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--again", action="store_true",
                        help="import the same file a second time (it must change nothing)")
    asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
