"""A server's daily usage as a small PNG bar chart, for /usage server.

Pure and synchronous (callers run it in a thread): the same days give the same bytes.
Pillow only, with its built-in font, so nothing has to be installed on the host.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from decimal import Decimal

from PIL import Image, ImageDraw, ImageFont

from bot.store.base import DailyUsage

__all__ = ["HEIGHT", "WIDTH", "axis_ticks", "chart_values", "format_value", "render_daily_chart"]

WIDTH, HEIGHT = 800, 360
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 64, 20, 48, 40
_BACKGROUND = (43, 45, 49)  # Discord's dark theme, so the chart sits well in a message
_GRID = (64, 66, 72)
_AXIS = (148, 155, 164)
_TEXT = (219, 222, 225)
_BAR = (88, 101, 242)
_BAR_MAX = (235, 69, 158)
_UNIT_NAMES = {"usd": "USD", "point": "credits", "jobs": "jobs"}

FontType = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _font(size: int) -> FontType:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ValueError, OSError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def chart_values(days: Sequence[DailyUsage], unit: str) -> tuple[list[Decimal], str]:
    """The value drawn for each day, and what it counts: the cost in `unit` when any day
    reported one, else the number of jobs (then the second item is "jobs")."""
    costs = [day.costs.get(unit, Decimal(0)) for day in days]
    if unit != "jobs" and any(c > 0 for c in costs):
        return costs, unit
    return [Decimal(day.jobs) for day in days], "jobs"


def format_value(value: Decimal, unit: str) -> str:
    """A value as shown on the chart: "$1.25", "1,500 credits", "12 jobs"."""
    if unit == "usd":
        if value == 0 or abs(value) >= 1:
            return f"${value.quantize(Decimal('0.01')):,}"
        return f"${value.quantize(Decimal('0.0001')).normalize():f}"  # per-job prices
    text = f"{value.normalize():,f}" if value != value.to_integral() else f"{int(value):,}"
    return f"{text} {_UNIT_NAMES.get(unit, unit)}"


def axis_ticks(peak: Decimal, unit: str) -> list[str]:
    """The y axis labels, bottom to top: 0 and each quarter of the peak, in the unit's
    short form ("$0.50", "1,500"; job counts as whole numbers where they fall)."""
    ticks = []
    for quarter in range(5):
        value = peak * quarter / 4
        if unit == "jobs" and value != value.to_integral():
            value = value.quantize(Decimal("0.1"))
        if unit == "usd" and peak >= 1:
            ticks.append(f"${value.quantize(Decimal('0.01')):,}")  # one form up the axis
            continue
        ticks.append(format_value(value, unit).split(" ")[0])
    return ticks


def _text_width(draw: ImageDraw.ImageDraw, text: str, font: FontType) -> float:
    left, _, right, _ = draw.textbbox((0, 0), text, font=font)
    return right - left


def render_daily_chart(days: Sequence[DailyUsage], *, title: str, unit: str) -> bytes:
    """A WIDTH×HEIGHT PNG bar chart of `days` (oldest first, as `daily_totals` returns).

    Bars show the cost in `unit` ("usd", "point", …) when any day has one, else the job
    count. Dates label the x axis every few days; the largest value is labelled, and its
    bar highlighted. No data at all gives a chart that says so.
    """
    values, shown_unit = chart_values(days, unit)
    image = Image.new("RGB", (WIDTH, HEIGHT), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = _font(12)
    _draw_frame(draw, title, f"{_UNIT_NAMES.get(shown_unit, shown_unit)} per day (UTC)", font)
    peak = max(values, default=Decimal(0))
    if not days or peak <= 0:
        _draw_empty(draw, font)
        return _png(image)
    _draw_grid(draw, peak, shown_unit, font)
    peak_index = values.index(peak)
    _draw_bars(draw, days, values, peak_index, font)
    _draw_peak_label(draw, peak, shown_unit, peak_index, len(days), font)
    return _png(image)


# The plot area, inside the margins.
_LEFT, _RIGHT = _MARGIN_LEFT, WIDTH - _MARGIN_RIGHT
_TOP, _BOTTOM = _MARGIN_TOP, HEIGHT - _MARGIN_BOTTOM


def _draw_frame(draw: ImageDraw.ImageDraw, title: str, subtitle: str, font: FontType) -> None:
    """The title, its subtitle beside it, and the two axes."""
    title_font = _font(16)
    draw.text((_MARGIN_LEFT, 12), title, fill=_TEXT, font=title_font)
    title_width = _text_width(draw, title, title_font)
    draw.text((_MARGIN_LEFT + title_width + 12, 16), subtitle, fill=_AXIS, font=font)
    draw.line([(_LEFT, _BOTTOM), (_RIGHT, _BOTTOM)], fill=_AXIS, width=1)
    draw.line([(_LEFT, _TOP), (_LEFT, _BOTTOM)], fill=_AXIS, width=1)


def _draw_empty(draw: ImageDraw.ImageDraw, font: FontType) -> None:
    message = "No usage in this period"
    draw.text(
        ((_LEFT + _RIGHT - _text_width(draw, message, font)) / 2, (_TOP + _BOTTOM) / 2 - 6),
        message,
        fill=_AXIS,
        font=font,
    )
    draw.text((8, _BOTTOM - 8), "0", fill=_AXIS, font=font)


def _draw_grid(draw: ImageDraw.ImageDraw, peak: Decimal, unit: str, font: FontType) -> None:
    # Grid lines at quarters of the peak, each labelled on the axis (not just 0 and the
    # peak: a reader should not have to guess what a bar half-way up means).
    for quarter, tick in enumerate(axis_ticks(peak, unit)):
        y = _BOTTOM - (_BOTTOM - _TOP) * quarter / 4
        if quarter:
            draw.line([(_LEFT + 1, y), (_RIGHT, y)], fill=_GRID, width=1)
        draw.text((_LEFT - 6 - _text_width(draw, tick, font), y - 8), tick, fill=_AXIS, font=font)


def _draw_bars(
    draw: ImageDraw.ImageDraw,
    days: Sequence[DailyUsage],
    values: Sequence[Decimal],
    peak_index: int,
    font: FontType,
) -> None:
    peak = values[peak_index]
    slot = (_RIGHT - _LEFT) / len(days)
    bar_width = max(1.0, slot * 0.7)
    # Dates every few days, counted back from the last day so that it is always labelled.
    label_every = max(1, math.ceil(len(days) / 8))
    labelled = set(range(len(days) - 1, -1, -label_every))
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        x0 = _LEFT + i * slot + (slot - bar_width) / 2
        height = max(1.0, float(value / peak) * (_BOTTOM - _TOP)) if value > 0 else 0.0
        if height > 0:
            draw.rectangle(
                [(x0, _BOTTOM - height), (x0 + bar_width, _BOTTOM - 1)],
                fill=_BAR_MAX if i == peak_index else _BAR,
            )
        if i in labelled:
            label = day.date[5:10] if len(day.date) >= 10 else day.date  # "05-31"
            center = _LEFT + i * slot + slot / 2
            draw.line([(center, _BOTTOM), (center, _BOTTOM + 3)], fill=_AXIS, width=1)
            draw.text(
                (center - _text_width(draw, label, font) / 2, _BOTTOM + 6),
                label,
                fill=_AXIS,
                font=font,
            )


def _draw_peak_label(
    draw: ImageDraw.ImageDraw, peak: Decimal, unit: str, peak_index: int, count: int, font: FontType
) -> None:
    """The peak's value above its bar, kept inside the picture."""
    slot = (_RIGHT - _LEFT) / count
    peak_label = "max " + format_value(peak, unit)
    text_width = _text_width(draw, peak_label, font)
    x_center = _LEFT + peak_index * slot + slot / 2
    x_text = min(max(x_center - text_width / 2, _LEFT + 2), _RIGHT - text_width)
    draw.text((x_text, _TOP - 18), peak_label, fill=_TEXT, font=font)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # No metadata (dates, software) is written, so equal charts are equal bytes.
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
