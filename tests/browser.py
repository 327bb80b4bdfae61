"""A real browser for the Mini App's tests: Debian's headless Chromium driven by Playwright.

Playwright's synchronous API cannot run inside the asyncio loop that serves the bot, so the
browser lives on a thread of its own and the tests hand it work (``await browser.run(fn)``);
the loop keeps serving the bot and its HTTP server meanwhile. One browser per test session:
starting Chromium costs a second, a fresh context per page is cheap.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from bot.webapp.calls import TELEGRAM_SCRIPT
from bot.webapp.routes import STAND_IN

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        "--disable-default-apps", "--disable-sync", "--metrics-recording-only"]
LIGHT = {"bg_color": "#ffffff", "text_color": "#000000", "hint_color": "#707579",
         "link_color": "#3390ec", "button_color": "#3390ec", "button_text_color": "#ffffff",
         "secondary_bg_color": "#f4f4f5", "section_bg_color": "#ffffff",
         "destructive_text_color": "#e53935"}
DARK = {"bg_color": "#212121", "text_color": "#ffffff", "hint_color": "#aaaaaa",
        "link_color": "#8774e1", "button_color": "#8774e1", "button_text_color": "#ffffff",
        "secondary_bg_color": "#181818", "section_bg_color": "#212121",
        "destructive_text_color": "#ff595a"}


def mini_app_url(base: str, init_data: str, *, theme: dict[str, str] = LIGHT,
                 order: int | None = None) -> str:
    """The URL Telegram opens: the page, with initData and theme in its fragment."""
    query = f"?order={order}" if order is not None else ""
    fragment = (f"tgWebAppData={quote(init_data, safe='')}&tgWebAppVersion=8.0"
                f"&tgWebAppPlatform=tdesktop&tgWebAppThemeParams="
                f"{quote(__import__('json').dumps(theme), safe='')}")
    return f"{base}/app/{query}#{fragment}"


class Browser:
    """Chromium on a thread of its own."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
        self._playwright: Any = None
        self.chromium: Any = None

    def start(self) -> None:
        self._thread.submit(self._start).result()

    def _start(self) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self.chromium = self._playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)

    def stop(self) -> None:
        def stop() -> None:
            if self.chromium is not None:
                self.chromium.close()
            if self._playwright is not None:
                self._playwright.stop()

        self._thread.submit(stop).result()
        self._thread.shutdown()

    async def run(self, work: Callable[..., Any], *args: Any) -> Any:
        """Run ``work(*args)`` on the browser's thread and wait for it without blocking."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, *args)

    def open_page(self, url: str, *, width: int = 360, height: int = 740) -> Any:
        """A fresh phone-sized page at ``url``, with Telegram's script served by the stand-in
        and every request it makes recorded in ``page.requests``. On the browser's thread."""
        context = self.chromium.new_context(viewport={"width": width, "height": height},
                                            device_scale_factor=1, locale="fr-FR")
        context.route(TELEGRAM_SCRIPT, lambda route: route.fulfill(
            path=str(STAND_IN), content_type="application/javascript"))
        page = context.new_page()
        page.requests = []
        page.on("request", lambda request: page.requests.append(request.url))
        page.goto(url)
        return page


def foreign_requests(page: Any, base: str) -> list[str]:
    """Requests to any host but the bot's own, apart from Telegram's script."""
    own = urlsplit(base).netloc
    return [url for url in page.requests
            if urlsplit(url).netloc != own and url != TELEGRAM_SCRIPT]


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None. CI installs Chromium, so there a
    missing browser is a failure, not a skip."""
    if Path(CHROMIUM).exists() or os.environ.get("CI"):
        return None
    return f"{CHROMIUM} is missing (apt-get install chromium)"
