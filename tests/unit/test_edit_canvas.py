"""Edit's canvas and placement: what a member types becomes pixels inside the canvas."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.actions import ActionInputError
from bot.domain import Size
from bot.edit_canvas import (
    POSITIONS,
    edit_geometry,
    parse_canvas,
    parse_position,
    parse_scale,
    place_image,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16:9", (1024, 576)),
        ("2:3", (683, 1024)),
        ("1536x1024", (1536, 1024)),
        ("1536 × 1024", (1536, 1024)),
        ("", (1024, 1024)),
    ],
)
def test_canvas_from_ratio_or_pixels(text: str, expected: tuple[int, int]) -> None:
    size = parse_canvas(text, source_ratio=(1, 1))
    assert (size.width, size.height) == expected


@pytest.mark.parametrize("text", ["wide", "16/9", "0:1", "1:20", "5000x100", "1x1"])
def test_bad_canvases_are_refused(text: str) -> None:
    with pytest.raises(ActionInputError):
        parse_canvas(text, source_ratio=(1, 1))


def test_positions_and_aliases() -> None:
    assert parse_position("") == "center"
    assert parse_position("Centre") == "center"
    assert parse_position("top left") == "top-left"
    assert parse_position("BOTTOM_RIGHT") == "bottom-right"
    with pytest.raises(ActionInputError):
        parse_position("everywhere")


def test_scale_limits() -> None:
    assert parse_scale("") == Decimal("1")
    assert parse_scale("0.1") == Decimal("0.1")
    for bad in ("0", "1.01", "nan", "big"):
        with pytest.raises(ActionInputError):
            parse_scale(bad)


def test_corners_touch_the_canvas_edges() -> None:
    canvas = Size(1024, 1024)
    tl = place_image(canvas, source_ratio=(1, 1), position="top-left", scale=Decimal("0.5"))
    br = place_image(canvas, source_ratio=(1, 1), position="bottom-right", scale=Decimal("0.5"))
    assert (tl.x, tl.y, tl.width) == (0, 0, 512)
    assert (br.x + br.width, br.y + br.height) == (1024, 1024)


@given(
    canvas=st.tuples(st.integers(256, 4096), st.integers(256, 4096)),
    ratio=st.tuples(st.integers(1, 14), st.integers(1, 14)),
    position=st.sampled_from(POSITIONS),
    scale=st.decimals(min_value=Decimal("0.1"), max_value=Decimal("1"), places=2),
)
def test_the_image_always_lies_inside_the_canvas(
    canvas: tuple[int, int], ratio: tuple[int, int], position: str, scale: Decimal
) -> None:
    size, placement = edit_geometry(
        f"{canvas[0]}x{canvas[1]}", position, str(scale), source_aspect=f"{ratio[0]}:{ratio[1]}"
    )
    assert placement.width >= 1 and placement.height >= 1
    assert placement.x >= 0 and placement.y >= 0
    assert placement.x + placement.width <= size.width
    assert placement.y + placement.height <= size.height
