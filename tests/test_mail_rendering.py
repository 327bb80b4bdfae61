"""Every e-mail's HTML part as people see it: rendered by headless Chromium (Debian's
``/usr/bin/chromium``; ``.ci/run`` installs it) at a phone's width and a desktop's, light and
dark, the screenshots kept in ``tests/output/mail/`` for a look; and read by an HTML parser:
https links, the two languages marked, and the same words as the plain-text part."""

from __future__ import annotations

import re
import shutil
import subprocess
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from bot.mail.content import render_outbox_mail
from bot.mail.layout import Button, EventCard, MailPart, render_ticket_shop_email
from storage import ticket_delivery
from storage.services import claim_for_myself, invite_friend
from tests.test_mailer import BOT_USERNAME, BUYER, FRIEND, SENDER, order_with_tickets, outbox

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = Path(__file__).parent / "output" / "mail"
PHONE, DESKTOP = 360, 1024


async def invitation_mail(store, language: str, buyer: str = "Camille Martin") -> EmailMessage:
    (ticket_id,) = await order_with_tickets(store, language=language, buyer=buyer)
    await invite_friend(store, BUYER, ticket_id, FRIEND)
    (mail,) = await outbox(store)
    async with store.read() as session:
        return await render_outbox_mail(session, mail, secret=await store.secret(),
                                        bot_username=BOT_USERNAME, sender=SENDER)


async def ticket_mail(store, language: str) -> EmailMessage:
    """The "your ticket" mail of a ticket the buyer claimed, queued as the worker queues it."""
    (ticket_id,) = await order_with_tickets(store, language=language)
    await claim_for_myself(store, BUYER, ticket_id, "Zoé Lefèvre")
    (lease,) = await ticket_delivery.claim_due_changes(store)
    card = (await ticket_delivery.change_work(store, lease)).deliver
    await ticket_delivery.finish_change(store, lease, mail=card, recipient=card.holder_email,
                                        language=language)
    (mail,) = [mail for mail in await outbox(store) if mail.kind == "ticket"]
    async with store.read() as session:
        return await render_outbox_mail(session, mail, secret=await store.secret(),
                                        bot_username=BOT_USERNAME, sender=SENDER)


MAILS = {"invitation": invitation_mail, "ticket": ticket_mail}


def parts(message: EmailMessage) -> tuple[str, str]:
    return (message.get_body(("plain",)).get_content(),
            message.get_body(("html",)).get_content())


# --- in a browser -------------------------------------------------------------------------------


def chromium(*args: str, page: Path, width: int, height: int = 1600) -> str:
    """Run headless Chromium on ``page`` and return what it printed."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `apt-get install -y chromium` (.ci/run does)")
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--disable-extensions", "--mute-audio",
         # No network at all: a mail that needed a remote image or font would show it.
         "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
         f"--window-size={width},{height}", *args, page.as_uri()],
        capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def screenshot(html: str, name: str, width: int, *, dark: bool = False) -> Image.Image:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page = OUTPUT / f"{name}.html"
    page.write_text(html, encoding="utf-8")
    shot = OUTPUT / f"{name}-{width}{'-dark' if dark else ''}.png"
    shot.unlink(missing_ok=True)
    chromium(f"--screenshot={shot}", *(["--force-dark-mode"] if dark else []), page=page,
             width=width)
    return Image.open(shot).convert("RGB")


def fits_the_width(html: str, name: str, width: int) -> bool:
    """Whether the laid-out page fits a window ``width`` wide (else it scrolls sideways).

    ``--dump-dom`` would lay the page out at least 500 px wide, so a script measures in the
    screenshot itself and paints its answer into the top-left corner: green fits, magenta not."""
    probe = ("<script>window.addEventListener('load', () => { const mark = "
             "document.createElement('div'); mark.style.cssText = 'position:fixed;left:0;top:0;"
             "width:8px;height:8px;z-index:9;background:' + (document.documentElement.scrollWidth"
             " <= window.innerWidth ? '#00ff00' : '#ff00ff'); document.body.appendChild(mark); "
             "});</script>")
    image = screenshot(html.replace("</body>", probe + "</body>"), f"{name}-measure", width)
    corner = image.getpixel((2, 2))
    assert corner in {(0, 255, 0), (255, 0, 255)}, f"the probe did not run: {corner}"
    return corner == (0, 255, 0)


def assert_not_blank(image: Image.Image) -> None:
    colours = image.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 20, "the screenshot is (nearly) one colour"
    extrema = ImageStat.Stat(image.convert("L")).extrema[0]
    assert extrema[1] - extrema[0] > 120, "no contrast: text would not be readable"


def brightness(image: Image.Image) -> float:
    return ImageStat.Stat(image.convert("L")).mean[0]


@pytest.mark.parametrize("kind", sorted(MAILS))
@pytest.mark.parametrize("language", ["en", "fr"])
async def test_every_mail_renders_as_a_ticket_shop_mail_at_phone_and_desktop_width(
        store, language, kind):
    _text, html = parts(await MAILS[kind](store, language))
    name = f"{kind}-{language}"
    phone, desktop = screenshot(html, name, PHONE), screenshot(html, name, DESKTOP)
    for image in (phone, desktop):
        assert_not_blank(image)
        assert brightness(image) > 170  # the light scheme: dark text on light paper
    # Readable on a phone: nothing wider than the screen, no sideways scrolling.
    assert fits_the_width(html, name, PHONE)
    if kind == "ticket":
        return  # the ticket is attached: that mail has no button
    # The button's blue is there, on the phone too (a filled, prominent button).
    assert any(abs(r - 0x0B) < 20 and abs(g - 0x6B) < 20 and abs(b - 0xAE) < 20
               for _count, (r, g, b) in phone.getcolors(maxcolors=1 << 20))


@pytest.mark.parametrize("kind", sorted(MAILS))
async def test_every_mail_follows_dark_mode(store, kind):
    _text, html = parts(await MAILS[kind](store, "en"))
    dark = screenshot(html, f"{kind}-en", PHONE, dark=True)
    assert_not_blank(dark)
    assert brightness(dark) < 80  # light text on dark paper (the light scheme is above 170)


# --- read by a parser ---------------------------------------------------------------------------


class MailHtml(HTMLParser):
    """The links, the ``lang`` of each element and the words a reader sees (not the head)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.languages: list[str] = []
        self.words: list[str] = []
        self.remote: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("head", "style", "script", "title"):
            self._skip += 1
        if "lang" in attributes:
            self.languages.append(attributes["lang"])
        if tag == "a":
            self.links.append(attributes.get("href") or "")
        for name in ("src", "background"):
            if attributes.get(name):
                self.remote.append(attributes[name])
        if tag == "link":
            self.remote.append(attributes.get("href") or "")

    def handle_endtag(self, tag):
        if tag in ("head", "style", "script", "title"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.words += words(data)


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def parsed(html: str) -> MailHtml:
    parser = MailHtml()
    parser.feed(html)
    parser.close()
    return parser


@pytest.mark.parametrize("kind", sorted(MAILS))
@pytest.mark.parametrize(("language", "other"), [("en", "fr"), ("fr", "en")])
async def test_every_mail_html_links_languages_and_words(store, language, other, kind):
    text, html = parts(await MAILS[kind](store, language))
    mail = parsed(html)
    assert all(link.startswith(("https://", "tg://")) for link in mail.links)
    if kind == "invitation":
        assert len(set(mail.links)) == 1  # one button, and its link as text: the same address
    assert mail.languages == [language, language, other]  # <html>, then each part in order
    assert mail.remote == [] and "@import" not in html and "url(" not in html
    assert mail.words == words(text)
    assert "<table" in html and 'style="' in html and "prefers-color-scheme" in html
    assert 'name="color-scheme"' in html


async def test_what_a_name_says_is_shown_as_text_in_both_parts(store):
    text, html = parts(await invitation_mail(store, "en", buyer="Camille <b>Martin</b> & Co"))
    assert parsed(html).words == words(text)
    assert "Camille <b>Martin</b> & Co" in text and "<b>Martin" not in html


def test_the_layout_refuses_a_button_to_a_plain_http_address():
    part = MailPart("en", ("Hello,",), EventCard("Dreamfest", (("Date", "today"),)),
                    Button("Open", "http://example.org/ticket"))
    with pytest.raises(ValueError, match="https"):
        render_ticket_shop_email([part], subject="A ticket")
