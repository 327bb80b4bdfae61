"""Staff's pictures of an event: ``/stats EVENT`` (a chart of its tickets by state and of its
personalisations per day, the figures in the caption) and ``/export EVENT`` (every ticket as a
CSV document), both in the staff member's language, both audited (storage/reads/event_report.py).

The chart is drawn with matplotlib's Agg backend on a ``Figure`` of its own (pyplot's global
state is not thread-safe) in a worker thread, so the event loop keeps serving replies meanwhile.
"""

from __future__ import annotations

import asyncio
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from telegram import InputFile, Update

from conversations.common import Context, command_argument, e, store_of, user_translator
from conversations.presentation import ticket_export
from conversations.presentation.words import state_word
from locales import Translator
from storage.errors import N_
from storage.reads import event_report
from storage.reads.event_report import REPORT_STATES, EventFigures

COLOURS = ("#9aa5b1", "#f0a202", "#2b8a3e", "#1971c2", "#5f3dc4")


def stats_caption(figures: EventFigures, t: Translator) -> str:
    _ = t.gettext
    lines = ["<b>" + e(t.words(figures.name)) + "</b>",
             e(t.ngettext("{count} ticket in all", "{count} tickets in all", figures.total)
               .format(count=t.number(figures.total)))]
    lines += [e(_("{state}: {count}").format(state=state_word(state, t),
                                             count=t.number(figures.states[state])))
              for state in REPORT_STATES]
    done = sum(count for _day, count in figures.per_day)
    days = len(figures.per_day)
    lines.append(e(t.ngettext("Personalisations: {count} in {days} day",
                              "Personalisations: {count} in {days} days", days)
                   .format(count=t.number(done), days=t.number(days))))
    return "\n".join(lines)


def stats_chart(figures: EventFigures, t: Translator) -> bytes:
    """The chart as PNG bytes (CPU work: call it in a thread)."""
    _ = t.gettext
    figure = Figure(figsize=(10, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    states, days = figure.subplots(1, 2, width_ratios=(1, 1.4))
    labels = [state_word(state, t) for state in REPORT_STATES]
    values = [figures.states[state] for state in REPORT_STATES]
    bars = states.bar(labels, values, color=COLOURS)
    states.bar_label(bars, labels=[t.number(value) for value in values])
    states.set_title(_("Tickets by state"))
    states.tick_params(axis="x", labelrotation=20)
    if figures.per_day:
        dates = [day for day, _count in figures.per_day]
        days.bar(dates, [count for _day, count in figures.per_day], color="#2b8a3e")
        days.tick_params(axis="x", labelrotation=30)
    else:
        days.text(0.5, 0.5, _("No personalisation yet"), ha="center", va="center",
                  transform=days.transAxes)
    days.set_title(_("Personalisations per day"))
    counts = FuncFormatter(lambda value, _position: t.number(int(value)))
    for axes in (states, days):
        axes.yaxis.set_major_formatter(counts)
    figure.suptitle(t.words(figures.name))
    output = io.BytesIO()
    figure.savefig(output, format="png")
    return output.getvalue()


async def on_stats(update: Update, context: Context) -> None:
    """``/stats EVENT``: the chart, with the figures in its caption."""
    event_id = await command_argument(update, context, N_("Usage: /stats EVENT"))
    if event_id is None:
        return
    figures = await event_report.event_figures(store_of(context), update.effective_user.id,
                                               event_id)
    t = await user_translator(update, context)
    picture = await asyncio.to_thread(stats_chart, figures, t)
    await update.effective_chat.send_photo(
        InputFile(picture, filename=f"stats-{figures.event_id}.png"),
        caption=stats_caption(figures, t), parse_mode="HTML")


async def on_export(update: Update, context: Context) -> None:
    """``/export EVENT``: every ticket of the event as a CSV document (UTF-8 with BOM)."""
    event_id = await command_argument(update, context, N_("Usage: /export EVENT"))
    if event_id is None:
        return
    store = store_of(context)
    await event_report.audit_export(store, update.effective_user.id, event_id)
    t = await user_translator(update, context)
    # python-telegram-bot reads an upload whole into memory, and Telegram takes documents of
    # at most 50 MB from bots (about 400,000 tickets): larger events are for the HTTP API's
    # streamed export.
    document = io.BytesIO()
    async for piece in ticket_export.ticket_csv(store, event_id, t.language):
        document.write(piece.encode("utf-8"))
    await update.effective_chat.send_document(
        InputFile(document.getvalue(), filename=f"tickets-{event_id}.csv"),
        caption=e(t.gettext("The tickets of {event}, as CSV.").format(event=event_id)),
        parse_mode="HTML")
