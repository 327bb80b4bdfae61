"""The layout every e-mail shares, the one people know from ticket shops: a few lines, an event
card (name, date and time, venue, category…), ONE prominent button, its link also as text, notes;
then the same in the other language below a divider. Rendered twice from the same parts: as the
plain text part and as the HTML alternative, which say the same words.

The HTML is what mail clients render reliably: nested tables (no flex, no grid), every style
inline, a ``<style>`` only for what inline styles cannot say — the phone width (360 px) and
dark mode (``prefers-color-scheme``; ``color-scheme`` tells the clients that honour it that
both schemes are designed). No remote images or fonts: nothing is fetched when the mail opens.
Links must be https (or tg://), as a mail client would otherwise warn or a link could leak.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

# Between the recipient's language and the other one, in the text part.
SEPARATOR = "-" * 60
LINK_SCHEMES = ("https://", "tg://")

FONT = ("-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Helvetica, Arial, "
        "sans-serif")
# Light colours inline (what every client shows); dark ones in the <style> below.
INK, MUTED, PAGE, SHEET, CARD, RULE = "#1f2328", "#59636e", "#eef0f3", "#ffffff", "#f6f8fa", \
    "#d0d7de"
BUTTON, BUTTON_INK, LINK = "#0b6bae", "#ffffff", "#0b5cad"  # white on #0b6bae: 5.9:1 contrast

STYLE = """
:root { color-scheme: light dark; supported-color-schemes: light dark; }
body { margin: 0; padding: 0; -webkit-text-size-adjust: 100%; }
@media only screen and (max-width: 620px) {
  .sheet { width: 100% !important; border-radius: 0 !important; }
  .pad { padding-left: 16px !important; padding-right: 16px !important; }
  .outer { padding: 0 !important; }
  .button { width: 100% !important; }
  .button a { display: block !important; }
}
@media (prefers-color-scheme: dark) {
  .page { background: #0d1117 !important; }
  .sheet { background: #161b22 !important; }
  .ink { color: #e6edf3 !important; }
  .muted { color: #9da7b3 !important; }
  .card { background: #1f2630 !important; border-color: #30363d !important; }
  .rule { border-color: #30363d !important; }
  .link { color: #79c0ff !important; }
  .button td { background: #1f6feb !important; }
}
"""


@dataclass(frozen=True)
class EventCard:
    """The ticket at a glance: the event's name, then labelled rows (date, venue, category…)."""

    title: str
    rows: tuple[tuple[str, str], ...]  # (label, value)


@dataclass(frozen=True)
class Button:
    """The one thing the mail asks the reader to do, and where it leads."""

    label: str
    url: str
    lead: str | None = None  # a sentence above it saying what it does


@dataclass(frozen=True)
class MailPart:
    """One language's part of a mail, already translated.

    ``row_format`` lays out a card row in the text part in this language ("{label}: {value}",
    French "{label} : {value}")."""

    language: str
    intro: tuple[str, ...]
    card: EventCard
    button: Button | None = None
    notes: tuple[str, ...] = ()
    row_format: str = "{label}: {value}"


@dataclass(frozen=True)
class RenderedMail:
    text: str
    html: str


def render_ticket_shop_email(parts: Sequence[MailPart], *, subject: str) -> RenderedMail:
    """The text and HTML bodies of a mail of ``parts`` (the recipient's language first)."""
    for part in parts:
        if part.button is not None and not part.button.url.startswith(LINK_SCHEMES):
            raise ValueError("a mail's button must lead to an https:// or tg:// address")
    return RenderedMail(_text(parts), _html(parts, subject))


# --- plain text ---------------------------------------------------------------------------------


def _text(parts: Sequence[MailPart]) -> str:
    return f"\n\n{SEPARATOR}\n\n".join(_text_part(part) for part in parts) + "\n"


def _text_part(part: MailPart) -> str:
    blocks = ["\n".join(part.intro)] if part.intro else []
    card = [f"🎫 {part.card.title}", *(part.row_format.format(label=label, value=value)
                               for label, value in part.card.rows)]
    blocks.append("\n".join(card))
    if part.button is not None:
        lines = [part.button.lead] if part.button.lead else []
        blocks.append("\n".join([*lines, part.button.label, part.button.url]))
    if part.notes:
        blocks.append("\n".join(part.notes))
    return "\n\n".join(blocks)


# --- HTML ---------------------------------------------------------------------------------------


def e(text: str) -> str:
    return html.escape(text, quote=True)


def _html(parts: Sequence[MailPart], subject: str) -> str:
    sections = f'\n<tr><td class="pad" style="padding:0 32px;">{_divider()}</td></tr>\n'.join(
        _html_part(part) for part in parts)
    main = parts[0].language
    return f"""<!DOCTYPE html>
<html lang="{e(main)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="supported-color-schemes" content="light dark">
<title>{e(subject)}</title>
<style>{STYLE}</style>
</head>
<body class="page" style="margin:0;padding:0;background:{PAGE};">
<table role="presentation" class="page" width="100%" cellpadding="0" cellspacing="0" border="0" \
style="background:{PAGE};">
<tr><td class="outer" align="center" style="padding:24px 12px;">
<table role="presentation" class="sheet" width="600" cellpadding="0" cellspacing="0" border="0" \
style="width:600px;max-width:600px;background:{SHEET};border-radius:12px;">
{sections}
</table>
</td></tr>
</table>
</body>
</html>
"""


def _html_part(part: MailPart) -> str:
    body = [_paragraph(line, size=16) for line in part.intro]
    body.append(_card(part.card))
    if part.button is not None:
        body.append(_button(part.button))
    body += [_paragraph(note, size=14, muted=True) for note in part.notes]
    return (f'<tr><td class="pad ink" lang="{e(part.language)}" style="padding:28px 32px;'
            f'font-family:{FONT};color:{INK};">\n' + "\n".join(body) + "\n</td></tr>")


def _paragraph(text: str, *, size: int, muted: bool = False) -> str:
    colour, css = (MUTED, "muted") if muted else (INK, "ink")
    return (f'<p class="{css}" style="margin:0 0 14px;font-family:{FONT};font-size:{size}px;'
            f'line-height:1.5;color:{colour};">{e(text)}</p>')


def _card(card: EventCard) -> str:
    rows = "\n".join(
        f'<tr><td class="muted" valign="top" style="padding:4px 14px 4px 0;font-family:{FONT};'
        f'font-size:14px;line-height:1.4;color:{MUTED};white-space:nowrap;">{e(label)}</td>'
        f'<td class="ink" valign="top" style="padding:4px 0;font-family:{FONT};font-size:15px;'
        f'line-height:1.4;color:{INK};font-weight:600;">{e(value)}</td></tr>'
        for label, value in card.rows)
    return f"""<table role="presentation" class="card" width="100%" cellpadding="0" \
cellspacing="0" border="0" style="margin:8px 0 20px;background:{CARD};border:1px solid {RULE};\
border-radius:10px;">
<tr><td style="padding:18px 20px;">
<p class="ink" style="margin:0 0 10px;font-family:{FONT};font-size:20px;line-height:1.3;\
font-weight:700;color:{INK};">🎫 {e(card.title)}</p>
<table role="presentation" cellpadding="0" cellspacing="0" border="0">
{rows}
</table>
</td></tr>
</table>"""


def _button(button: Button) -> str:
    lead = _paragraph(button.lead, size=16) if button.lead else ""
    url = e(button.url)
    return f"""{lead}
<table role="presentation" class="button" cellpadding="0" cellspacing="0" border="0" \
style="margin:4px 0 12px;">
<tr><td align="center" bgcolor="{BUTTON}" style="border-radius:8px;background:{BUTTON};">
<a href="{url}" style="display:inline-block;padding:14px 28px;font-family:{FONT};font-size:17px;\
font-weight:700;line-height:1.2;color:{BUTTON_INK};text-decoration:none;border-radius:8px;">\
{e(button.label)}</a>
</td></tr>
</table>
<p class="muted" style="margin:0 0 20px;font-family:{FONT};font-size:13px;line-height:1.4;\
color:{MUTED};word-break:break-all;"><a class="link" href="{url}" style="color:{LINK};\
text-decoration:underline;">{url}</a></p>"""


def _divider() -> str:
    return (f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
            f'border="0"><tr><td class="rule" style="border-top:1px solid {RULE};font-size:0;'
            f'line-height:0;height:1px;">&nbsp;</td></tr></table>')
