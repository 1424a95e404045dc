"""The /usage bar chart: a real PNG of the promised size, deterministic, drawing costs
when there are any and job counts otherwise."""

from __future__ import annotations

import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from PIL import Image

from bot.store.base import DailyUsage
from bot.usage_chart import HEIGHT, WIDTH, chart_values, format_value, render_daily_chart

BAR = (88, 101, 242)
BAR_MAX = (235, 69, 158)


def make_days(jobs: list[int], costs: list[dict[str, Decimal]] | None = None) -> list[DailyUsage]:
    first = date(2024, 5, 1)
    return [
        DailyUsage(
            date=(first + timedelta(days=i)).isoformat(),
            jobs=n,
            costs=costs[i] if costs is not None else {},
        )
        for i, n in enumerate(jobs)
    ]


def open_png(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def bar_heights(image: Image.Image, colour: tuple[int, int, int]) -> int:
    """How many pixel rows hold at least one pixel of `colour`."""
    width, height = image.size
    pixels = image.load()
    assert pixels is not None
    return sum(1 for y in range(height) if any(pixels[x, y] == colour for x in range(width)))


def test_renders_a_png_of_the_promised_size() -> None:
    image = open_png(render_daily_chart(make_days([1, 4, 2]), title="Last 3 days", unit="point"))
    assert image.size == (WIDTH, HEIGHT) == (800, 360)


def test_same_input_same_bytes() -> None:
    days = make_days(list(range(30)), [{"usd": Decimal(i) / 7} for i in range(30)])
    first = render_daily_chart(days, title="Last 30 days", unit="usd")
    assert render_daily_chart(days, title="Last 30 days", unit="usd") == first
    assert render_daily_chart(days, title="Other title", unit="usd") != first


def test_highest_bar_is_highlighted_and_scaled_to_the_top() -> None:
    image = open_png(render_daily_chart(make_days([2, 8, 4]), title="t", unit="jobs"))
    tall = bar_heights(image, BAR_MAX)
    rest = bar_heights(image, BAR)
    assert tall > 200  # the peak fills the plot's height
    assert 0.45 * tall <= rest <= 0.55 * tall  # the next highest is half of it


def test_costs_are_drawn_when_reported_else_jobs() -> None:
    days = make_days([10, 1], [{}, {"point": Decimal(30)}])
    values, unit = chart_values(days, "point")
    assert (values, unit) == ([Decimal(0), Decimal(30)], "point")
    values, unit = chart_values(days, "usd")  # nothing in USD: job counts instead
    assert (values, unit) == ([Decimal(10), Decimal(1)], "jobs")
    by_cost = open_png(render_daily_chart(days, title="t", unit="point"))
    by_jobs = open_png(render_daily_chart(days, title="t", unit="usd"))
    assert by_cost.tobytes() != by_jobs.tobytes()


def test_empty_and_all_zero_periods_still_render() -> None:
    for days in ([], make_days([0, 0, 0])):
        image = open_png(render_daily_chart(days, title="Nothing yet", unit="usd"))
        assert image.size == (WIDTH, HEIGHT)
        assert bar_heights(image, BAR) == 0 and bar_heights(image, BAR_MAX) == 0


def test_many_days_render() -> None:
    days = make_days([i % 5 for i in range(365)])
    assert open_png(render_daily_chart(days, title="A year", unit="jobs")).size == (WIDTH, HEIGHT)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (Decimal("12.5"), "usd", "$12.50"),
        (Decimal("0.004"), "usd", "$0.004"),
        (Decimal("1500"), "point", "1,500 credits"),
        (Decimal("2.5"), "point", "2.5 credits"),
        (Decimal("7"), "jobs", "7 jobs"),
        (Decimal("3"), "gems", "3 gems"),
    ],
)
def test_format_value(value: Decimal, unit: str, text: str) -> None:
    assert format_value(value, unit) == text
