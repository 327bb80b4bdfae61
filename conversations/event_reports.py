"""Staff's pictures of an event: ``/stats EVENT`` (a chart of its tickets by state and of its
personalisations per day, the figures in the caption) and ``/export EVENT`` (every ticket as a
CSV document), both in the staff member's language, both audited (storage/reads/event_report.py).
Without an argument, each offers the events as buttons.

The chart is drawn with matplotlib's Agg backend on a ``Figure`` of its own (pyplot's global
state is not thread-safe) in a worker thread, so the event loop keeps serving replies meanwhile.
matplotlib (with numpy, about 35 MiB) is imported by the first chart, not with this module: a
started bot holds it only once staff asked for ``/stats`` (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING

from telegram import InputFile, Update

from conversations import callbacks as cb
from conversations.common import (
    Context,
    Screen,
    button,
    e,
    is_staff,
    show,
    store_of,
    user_translator,
)
from conversations.presentation import ticket_export
from conversations.presentation.words import state_word
from locales import Translator
from storage.errors import N_, Refusal
from storage.reads import event_report
from storage.reads.event_report import REPORT_STATES, EventFigures

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLOURS = ("#9aa5b1", "#f0a202", "#2b8a3e", "#1971c2", "#5f3dc4")
MAX_EVENT_BUTTONS = 90  # Telegram takes 100 buttons per keyboard


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


def stats_figure(figures: EventFigures, t: Translator) -> Figure:
    """The chart: tickets by state, and personalisations per day (or, with none yet, a panel
    saying so without axes)."""
    # Here, not at the top: only staff's /stats needs matplotlib (see the module's docstring).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

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
    counts = FuncFormatter(lambda value, _position: t.number(int(value)))
    states.yaxis.set_major_formatter(counts)
    if figures.per_day:
        dates = [day for day, _count in figures.per_day]
        days.bar(dates, [count for _day, count in figures.per_day], color="#2b8a3e")
        days.tick_params(axis="x", labelrotation=30)
        days.yaxis.set_major_formatter(counts)
    else:
        # Nothing to draw: axes would only show meaningless ticks (0 0 0, 0.0 … 1.0).
        days.set_axis_off()
        days.text(0.5, 0.5, _("No personalisation yet"), ha="center", va="center",
                  transform=days.transAxes)
    days.set_title(_("Personalisations per day"))
    figure.suptitle(t.words(figures.name))
    return figure


def stats_chart(figures: EventFigures, t: Translator) -> bytes:
    """The chart as PNG bytes (CPU work: call it in a thread)."""
    figure = stats_figure(figures, t)
    output = io.BytesIO()
    figure.savefig(output, format="png")
    return output.getvalue()


async def event_argument(update: Update, context: Context, usage: str,
                         choose: str) -> str | None:
    """The command's event, or None after offering every event as a button (``choose``: the
    buttons' callback prefix), or with no event at all, after showing the ``usage``."""
    text = " ".join(context.args or [])
    if text:
        return text
    choices = await event_report.event_choices(store_of(context))
    t = await user_translator(update, context)
    if not choices:
        await show(update, Screen(e(t.gettext(usage))))
        return None
    rows = [[button(t.words(choice.name), cb.encode(choose, index))]
            for index, choice in enumerate(choices[:MAX_EVENT_BUTTONS])]
    await show(update, Screen(e(t.gettext("Which event?")) + "\n" + e(t.gettext(usage)), rows))
    return None


async def chosen_event(update: Update, context: Context, index: int) -> str:
    """The event a report button names, re-read now; pressed by someone not (or no longer)
    on the staff, or naming no event any more, it reads as not found."""
    if not is_staff(update, context):
        raise Refusal("not_found")
    choices = await event_report.event_choices(store_of(context))
    if not 0 <= index < len(choices):
        raise Refusal("not_found")
    return choices[index].event_id


async def on_stats(update: Update, context: Context) -> None:
    """``/stats EVENT``: the chart, with the figures in its caption."""
    event_id = await event_argument(update, context, N_("Usage: /stats EVENT"),
                                    cb.STAFF_STATS_EVENT)
    if event_id is not None:
        await send_stats(update, context, event_id)


async def on_stats_button(update: Update, context: Context, data: cb.Callback) -> str | None:
    await send_stats(update, context, await chosen_event(update, context, data.id()))
    return None


async def send_stats(update: Update, context: Context, event_id: str) -> None:
    figures = await event_report.event_figures(store_of(context), update.effective_user.id,
                                               event_id)
    t = await user_translator(update, context)
    picture = await asyncio.to_thread(stats_chart, figures, t)
    await update.effective_chat.send_photo(
        InputFile(picture, filename=f"stats-{figures.event_id}.png"),
        caption=stats_caption(figures, t), parse_mode="HTML")


async def on_export(update: Update, context: Context) -> None:
    """``/export EVENT``: every ticket of the event as a CSV document (UTF-8 with BOM)."""
    event_id = await event_argument(update, context, N_("Usage: /export EVENT"),
                                    cb.STAFF_EXPORT_EVENT)
    if event_id is not None:
        await send_export(update, context, event_id)


async def on_export_button(update: Update, context: Context, data: cb.Callback) -> str | None:
    await send_export(update, context, await chosen_event(update, context, data.id()))
    return None


async def send_export(update: Update, context: Context, event_id: str) -> None:
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
