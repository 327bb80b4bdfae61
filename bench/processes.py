"""One Ticketbot process against two, on one PostgreSQL database (issue #13): the way to
outgrow one machine. Each process runs in webhook mode, as several processes behind one URL
must; the emulator plays Telegram and the load balancer, delivering up to
``WEBHOOK_CONNECTIONS`` updates at once (Telegram's default ``max_connections``), to the
processes in turn, each chat's updates one after another.

On a machine with two cores shared by the emulator, the simulated users and PostgreSQL, two
processes cannot do twice the work of one: the figure says what the second process adds there,
and the CPU shares say what limits it.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import Any

from bench import workload
from bench.process import BotProcess, cpu_seconds_of, machine_busy_seconds
from bench.store import CACHE, prepare
from bot.tools.emulator import BotApiEmulator

WEBHOOK_CONNECTIONS = 40


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def processes_run(options: argparse.Namespace, count: int, *, workdir: Path,
                        say, own_cpu) -> dict[str, Any]:
    """``count`` Ticketbot processes in webhook mode on one PostgreSQL database."""
    from bench.run import BOT_USERNAME, DEFAULT_ORDERS, WARM_UP_USERS

    label = f"ticketbot-postgres-webhook-x{count}"
    emulator = BotApiEmulator(bot_username=BOT_USERNAME)
    await emulator.start()
    driver = workload.Driver(emulator, timeout=options.step_timeout)
    main_orders = workload.bench_orders(options.users)
    warm_orders = workload.bench_orders(WARM_UP_USERS, prefix="WARM", first=options.users)
    say(f"[{label}] preparing the store")
    prepared = await prepare("postgres", DEFAULT_ORDERS, [*warm_orders, *main_orders],
                             workdir=workdir, postgres_url=options.postgres_url, log=say)
    processes = []
    for n in range(count):
        port = _free_port()
        processes.append((port, BotProcess(f"{label}-{n}", "bench.ticketbot_bot", [
            "--database-url", prepared.url, "--bot-username", BOT_USERNAME,
            "--outbox", str(workdir / "outbox"), "--api-url", emulator.base_url,
            "--token", emulator.token, "--webhook-port", str(port),
        ], log_file=CACHE / "logs" / f"{label}-{n}.log")))
    emulator.webhook_targets = [f"http://127.0.0.1:{port}/telegram" for port, _ in processes]
    emulator.webhook_connections = WEBHOOK_CONNECTIONS
    bots = [process for _, process in processes]
    try:
        for bot in bots:
            await bot.start()
        say(f"[{label}] {count} process(es) up; warming up")
        warm = workload.make_buyers(emulator, warm_orders, prepared.tokens, 1)
        await workload.run_buyers(driver, warm, 1, workload.ticketbot_step)
        warm_errors = list(driver.errors)
        driver.samples.clear()
        driver.errors.clear()
        for bot in bots:
            await bot.mark()
        buyers = workload.make_buyers(emulator, main_orders, prepared.tokens, options.rounds)
        cpu_before = sum(bot.cpu_seconds() for bot in bots)
        own_before = own_cpu()
        machine_before, database_before = machine_busy_seconds(), cpu_seconds_of("postgres")
        say(f"[{label}] {options.users} buyers, {options.rounds} round(s)")
        updates, started, ended = await workload.run_buyers(
            driver, buyers, options.rounds, workload.ticketbot_step)
        cpu = sum(bot.cpu_seconds() for bot in bots) - cpu_before
        own = own_cpu() - own_before
        database_cpu = cpu_seconds_of("postgres") - database_before
        machine = machine_busy_seconds() - machine_before
        memory = max((bot.memory_kib() for bot in bots), key=lambda m: m.get("VmHWM", 0))
    finally:
        for bot in bots:
            await bot.stop(None, timeout=60)
        driver.detach()
        await emulator.stop()
        await prepared.drop()
    elapsed = ended - started
    return {
        "bot": "ticketbot", "database": "postgres", "orders": DEFAULT_ORDERS,
        "processes": count, "mode": "webhook", "users": options.users,
        "rounds": options.rounds, "updates": updates,
        "errors": driver.errors[:20], "error_count": len(driver.errors) + len(warm_errors),
        "elapsed_s": elapsed, "updates_per_s": updates / elapsed if elapsed else 0.0,
        "latency_ms": workload.latency_summary(driver.samples),
        "cpu_ms_per_update": 1000 * cpu / updates if updates else 0.0,
        "bot_cpu_share": cpu / elapsed if elapsed else 0.0,
        "load_generator_cpu_share": own / elapsed if elapsed else 0.0,
        "postgres_cpu_share": database_cpu / elapsed if elapsed else 0.0,
        "other_cpu_share": max(machine - cpu - own - database_cpu, 0.0) / elapsed
        if elapsed else 0.0,
        "rss_peak_mb": memory.get("VmHWM", 0) / 1024,
    }
