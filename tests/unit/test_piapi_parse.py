"""PiAPI task parsing and action mapping, on captured and hand-made task objects."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain import ErrorCode, JobStatus
from bot.providers.piapi import neutral_action, parse_task, split_description

CAPTURED = {
    "task_id": "c130c235-0000",
    "model": "midjourney",
    "task_type": "imagine",
    "status": "completed",
    "config": {"service_mode": "public", "webhook_config": {"endpoint": "", "secret": ""}},
    "input": {
        "aspect_ratio": "16:9",
        "process_mode": "fast",
        "prompt": "p",
        "skip_prompt_check": False,
    },
    "output": {
        "image_url": "https://img.theapi.app/mj/c130c235-0000.png",
        "image_urls": None,
        "temporary_image_urls": [f"https://img.theapi.app/t{i}.png" for i in range(4)],
        "discord_image_url": "",
        "progress": 100,
        "intermediate_image_urls": None,
        "actions": [
            "reroll",
            "upscale1",
            "upscale2",
            "upscale3",
            "upscale4",
            "variation1",
            "variation2",
            "variation3",
            "variation4",
        ],
    },
    "meta": {"usage": {"type": "point", "frozen": 700000, "consume": 700000}},
    "detail": None,
    "logs": [],
    "error": {"code": 0, "raw_message": "", "message": "", "detail": None},
}


def test_captured_completed_imagine() -> None:
    snap = parse_task(CAPTURED)
    assert snap.ref == "c130c235-0000"
    assert snap.status is JobStatus.COMPLETED
    assert snap.progress == 100
    assert snap.result_url == "https://img.theapi.app/mj/c130c235-0000.png"
    assert snap.tiles is not None and len(snap.tiles) == 4
    assert snap.error is None
    assert (
        snap.cost is not None and snap.cost.amount == Decimal(700000) and snap.cost.unit == "point"
    )
    assert [a.name for a in snap.actions or []] == [
        "reroll",
        "pick:1",
        "pick:2",
        "pick:3",
        "pick:4",
        "vary_grid:1",
        "vary_grid:2",
        "vary_grid:3",
        "vary_grid:4",
    ]


@pytest.mark.parametrize(
    ("raw", "neutral"),
    [
        ("upscale1", "pick:1"),
        ("variation4", "vary_grid:4"),
        ("reroll", "reroll"),
        ("upscale_subtle", "upscale_subtle"),
        ("upscale_creative", "upscale_creative"),
        ("upscale_2x", "upscale_2x"),
        ("upscale_4x", "upscale_4x"),
        ("redo_upscale_subtle", "redo_upscale_subtle"),
        ("redo_upscale_creative", "redo_upscale_creative"),
        ("high_variation", "vary_strong"),
        ("low_variation", "vary_subtle"),
        ("inpaint", "vary_region"),
        ("outpaint_1.5x", "zoom_out_1_5x"),
        ("outpaint_2x", "zoom_out_2x"),
        ("outpaint_custom", "zoom_custom"),
        ("outpaint_1x", "make_square"),
        ("pan_up", "pan_up"),
        ("pan_left", "pan_left"),
        ("describe_all", "provider:describe_all"),
        ("upscale_light", "provider:upscale_light"),
    ],
)
def test_action_names(raw: str, neutral: str) -> None:
    assert neutral_action(raw) == neutral


def test_tolerant_parsing_capitalised_legacy_and_missing_fields() -> None:
    snap = parse_task({"task_id": "t1", "status": "Processing", "output": {"task_progress": "37"}})
    assert snap.status is JobStatus.RUNNING
    assert snap.progress == 37
    assert snap.actions is None and snap.error is None

    pending = parse_task({"task_id": "t2", "status": "PENDING", "meta": {}, "output": None})
    assert pending.status is JobStatus.SUBMITTED and pending.progress is None

    unknown = parse_task({"task_id": "t3", "status": "warming_up", "brand_new_field": {"x": 1}})
    assert unknown.status is JobStatus.RUNNING  # unknown statuses: still running


def test_preview_is_the_newest_intermediate_image() -> None:
    snap = parse_task(
        {
            "task_id": "t",
            "status": "processing",
            "output": {
                "progress": 50,
                "intermediate_image_urls": ["http://a/1.png", "http://a/2.png"],
            },
        }
    )
    assert snap.preview_url == "http://a/2.png"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("[Banned prompt detected] bad word", ErrorCode.MODERATED),
        ("[Image denied] Request cancelled due to image filters", ErrorCode.MODERATED),
        ("derive from origin task: parent task is outdated", ErrorCode.PARENT_TOO_OLD),
        ("[Invalid parameter] --ar 1:0", ErrorCode.INVALID_REQUEST),
        ("Failed to process your command", ErrorCode.GENERATION_FAILED),
    ],
)
def test_failure_reasons(message: str, code: ErrorCode) -> None:
    snap = parse_task(
        {
            "task_id": "t",
            "status": "failed",
            "error": {"code": 10000, "message": message, "raw_message": ""},
        }
    )
    assert snap.status is JobStatus.FAILED
    assert snap.error is not None and snap.error.code is code
    assert snap.error.provider_text == message


def test_failed_without_any_text_still_has_a_reason() -> None:
    snap = parse_task({"task_id": "t", "status": "failed", "error": {}})
    assert snap.error is not None and snap.error.message


def test_legacy_error_messages() -> None:
    snap = parse_task(
        {
            "task_id": "t",
            "status": "failed",
            "output": {"error_messages": ["[Banned prompt detected] x"]},
        }
    )
    assert snap.error is not None and snap.error.code is ErrorCode.MODERATED


def test_describe_suggestions() -> None:
    text = "1️⃣ a red fox --ar 3:2\n\n2️⃣ a fox in snow\n\n3️⃣ orange fox, watercolor\n\n4️⃣ fox portrait"
    assert split_description(text) == [
        "a red fox --ar 3:2",
        "a fox in snow",
        "orange fox, watercolor",
        "fox portrait",
    ]
    assert split_description("") is None
