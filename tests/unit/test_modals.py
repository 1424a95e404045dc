"""The follow-up forms: Discord's modal limits, custom ids, and checking a submit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bot.actions import ActionInputError
from bot.discord.modals import (
    FormInput,
    has_modal,
    modal_custom_id,
    modal_for,
    parse_modal_custom_id,
    parse_zoom_ratio,
    read_form,
    submitted_values,
)
from tests.fakes.discord.validation import validate_modal

JOB = "abcdefghij12"
FORM_ACTIONS = [
    "zoom_custom",
    "vary_region",
    "vary_grid:3",
    "reroll",
    "vary_strong",
    "pan_up",
    "edit",
    "edit:2",
]


@pytest.mark.parametrize("action", FORM_ACTIONS)
async def test_every_form_passes_discords_modal_checks(action: str) -> None:
    # Modal() needs a running loop, hence async; validate_modal raises on any limit broken.
    modal = modal_for(action, JOB, "p" * 9000, max_prompt_length=8192)
    payload = modal.to_dict()
    validate_modal(payload)
    assert parse_modal_custom_id(payload["custom_id"]) == (action, JOB)
    assert has_modal(action)


def test_actions_without_a_form() -> None:
    assert not has_modal("pick:1") and not has_modal("edit:5") and not has_modal("enhance")
    with pytest.raises(ValueError):
        modal_custom_id("x" * 90, JOB)
    assert parse_modal_custom_id(f"mj:reroll:{JOB}") is None  # a button's id, not a form's


@pytest.mark.parametrize("text", ["1", "1.0", "1.7", " 2 ", "2.0", "1.5x"])
def test_zoom_ratios_in_range(text: str) -> None:
    assert Decimal("1") <= parse_zoom_ratio(text) <= Decimal("2")


@pytest.mark.parametrize("text", ["5", "0.9", "2.01", "", "abc", "NaN", "Infinity", "-1.5"])
def test_zoom_ratios_refused(text: str) -> None:
    with pytest.raises(ActionInputError, match="zoom ratio"):
        parse_zoom_ratio(text)


def test_submitted_values_read_rows_and_labels() -> None:
    data: dict[str, Any] = {
        "custom_id": f"mjm:vary_region:{JOB}",
        "components": [
            {"type": 1, "components": [{"type": 4, "custom_id": "prompt", "value": "a b"}]},
            {"type": 18, "component": {"type": 3, "custom_id": "region", "values": ["center"]}},
            {"type": 10},
        ],
    }
    assert submitted_values(data) == {"prompt": "a b", "region": ["center"]}


def test_read_form_per_action() -> None:
    limit = 100
    assert read_form(
        "zoom_custom", {"prompt": "  a   cat ", "zoom_ratio": "1.7"}, max_prompt_length=limit
    ) == FormInput(prompt="a cat", zoom_ratio=Decimal("1.7"))
    assert read_form("vary_region", {"region": ["subject"]}, max_prompt_length=limit) == (
        FormInput(region="subject")
    )
    assert read_form(
        "vary_region", {"mask_url": " https://x/m.png "}, max_prompt_length=limit
    ) == FormInput(mask_url="https://x/m.png")
    with pytest.raises(ActionInputError, match="region"):
        read_form("vary_region", {"prompt": "x", "region": []}, max_prompt_length=limit)
    with pytest.raises(ActionInputError, match="region"):
        read_form("vary_region", {"region": ["everything"]}, max_prompt_length=limit)
    with pytest.raises(ActionInputError, match="prompt"):
        read_form("vary_grid:1", {"prompt": "   "}, max_prompt_length=limit)
    with pytest.raises(ActionInputError, match="limit is 100"):
        read_form("reroll", {"prompt": "x" * 101}, max_prompt_length=limit)


def test_edit_form_becomes_canvas_and_placement() -> None:
    values: dict[str, str | list[str]] = {
        "prompt": "  the same  scene at night ",
        "canvas": "16:9",
        "position": ["left"],
        "scale": "0.5",
        "mask_url": "",
    }
    form = read_form("edit:2", values, max_prompt_length=4000, source_aspect="1:1")
    assert form.prompt == "the same scene at night"
    assert form.canvas is not None and (form.canvas.width, form.canvas.height) == (1024, 576)
    # A square image at half the largest size that fits (576): 288 px, at the left, centred.
    assert form.placement is not None
    assert (form.placement.width, form.placement.height) == (288, 288)
    assert (form.placement.x, form.placement.y) == (0, 144)
    assert form.mask_url is None


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("prompt", "   ", "needs a prompt"),
        ("canvas", "wide", "not a canvas"),
        ("canvas", "100x100", "256–4096"),
        ("scale", "1.5", "not a scale"),
        ("position", ["somewhere"], "not a position"),
    ],
)
def test_edit_form_mistakes_are_explained(field: str, value: str | list[str], words: str) -> None:
    values: dict[str, str | list[str]] = {"prompt": "p", "canvas": "1:1", "scale": "1"}
    values[field] = value
    with pytest.raises(ActionInputError, match=words):
        read_form("edit", values, max_prompt_length=4000, source_aspect="1:1")
