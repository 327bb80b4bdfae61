"""The Mini App: the "My order" screen as a web page inside Telegram, served by the bot's own
HTTP server under ``/app/`` and backed by the same services as the chat.

``routes`` holds the page and its JSON calls (``held_routes`` the holder's ticket,
``gate_routes`` the staff's gate, ``calls`` what they all share), ``init_data`` the check of
who is calling, ``screens`` the words of what is shown, ``static/`` the page itself (plain
HTML, CSS and JS, no build step), ``stand_in/`` a stand-in for Telegram's script used by the
demo and the tests. The buttons that open it from the chat are ``conversations/mini_app.py``.
"""

from bot.webapp.calls import MiniAppServices
from bot.webapp.routes import create_miniapp

__all__ = ["MiniAppServices", "create_miniapp"]
