"""midjourney-proxy: customId mapping, task parsing, reply codes and request bodies."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bot.actions import ActionInput, operation_for
from bot.domain import (
    Action,
    BlendDimension,
    ErrorCode,
    Job,
    JobStatus,
    Operation,
    OperationKind,
    PanDirection,
    SpeedMode,
)
from bot.providers.base import (
    AuthError,
    InvalidRequestError,
    ModeratedError,
    NotFoundError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    UnsupportedOperationError,
)
from bot.providers.http import ProviderHTTP
from bot.providers.mjproxy import (
    MJProxyProvider,
    classify_http_error,
    error_for_code,
    neutral_action,
    parse_progress,
    parse_task,
    split_prompts,
    zoom_prompt,
)

H = "3dbbd469-36af-4a0f-8f02-df6c579e7011"


# --- customId -> neutral name ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("custom_id", "expected"),
    [
        (f"MJ::JOB::upsample::1::{H}", "pick:1"),
        (f"MJ::JOB::upsample::4::{H}", "pick:4"),
        (f"MJ::JOB::variation::2::{H}", "vary_grid:2"),
        (f"MJ::JOB::reroll::0::{H}::SOLO", "reroll"),
        (f"MJ::JOB::upsample_v6r1_2x_subtle::1::{H}::SOLO", "upscale_subtle"),
        (f"MJ::JOB::upsample_v6r1_2x_creative::1::{H}::SOLO", "upscale_creative"),
        (f"MJ::JOB::upsample_v6_2x_subtle::1::{H}::SOLO", "upscale_subtle"),
        (f"MJ::JOB::upsample_v7_2x_creative::1::{H}::SOLO", "upscale_creative"),
        (f"MJ::JOB::upsample_v5_2x::1::{H}::SOLO", "upscale_2x"),
        (f"MJ::JOB::upsample_v5_4x::1::{H}::SOLO", "upscale_4x"),
        (f"MJ::JOB::low_variation::1::{H}::SOLO", "vary_subtle"),
        (f"MJ::JOB::high_variation::1::{H}::SOLO", "vary_strong"),
        (f"MJ::Inpaint::1::{H}::SOLO", "vary_region"),
        (f"MJ::Outpaint::50::1::{H}::SOLO", "zoom_out_2x"),
        (f"MJ::Outpaint::75::1::{H}::SOLO", "zoom_out_1_5x"),
        (f"MJ::Outpaint::100::1::{H}::SOLO", "make_square"),
        (f"MJ::CustomZoom::{H}", "zoom_custom"),
        (f"MJ::JOB::pan_left::1::{H}::SOLO", "pan_left"),
        (f"MJ::JOB::pan_right::1::{H}::SOLO", "pan_right"),
        (f"MJ::JOB::pan_up::1::{H}::SOLO", "pan_up"),
        (f"MJ::JOB::pan_down::1::{H}::SOLO", "pan_down"),
        ("MJ::Job::PicReader::1", "provider:describe1"),
        ("MJ::Job::PicReader::4", "provider:describe4"),
    ],
)
def test_known_custom_ids(custom_id: str, expected: str) -> None:
    assert neutral_action(custom_id) == expected


@pytest.mark.parametrize(
    "custom_id",
    [
        f"MJ::JOB::video_virtual_upscale::2::{H}",
        f"MJ::BOOKMARK::{H}",
        "MJ::Job::PicReader::all",
        f"MJ::Picread::Retry::{H}",
        "",
    ],
)
def test_dropped_custom_ids(custom_id: str) -> None:
    assert neutral_action(custom_id) is None


@pytest.mark.parametrize(
    "custom_id",
    [
        f"MJ::Outpaint::60::1::{H}::SOLO",
        f"MJ::JOB::upsample_v8_weird::1::{H}::SOLO",
        f"MJ::JOB::something_new::1::{H}::SOLO",
        "MJ::Settings::HighVariabilityMode::1",
    ],
)
def test_unknown_custom_ids_stay_addressable(custom_id: str) -> None:
    assert neutral_action(custom_id) == f"provider:{custom_id}"


def test_redo_upscale_told_apart_by_label() -> None:
    cid = f"MJ::JOB::upsample_v6r1_2x_subtle::1::{H}::SOLO"
    assert neutral_action(cid, "Redo Upscale (Subtle)") == "redo_upscale_subtle"
    assert neutral_action(cid, "Upscale (Subtle)") == "upscale_subtle"


# --- parsing ---------------------------------------------------------------------------------


def grid_task(**over: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "id": "1712345678901234",
        "action": "IMAGINE",
        "status": "SUCCESS",
        "prompt": "a cat",
        "promptEn": "a cat",
        "description": "/imagine a cat",
        "state": "job-1",
        "submitTime": 1712345678901,
        "startTime": 1712345680000,
        "finishTime": 1712345700000,
        "progress": "100%",
        "imageUrl": "https://cdn.example/grid.png",
        "imageUrls": [{"url": f"https://cdn.example/{n}.png"} for n in range(1, 5)],
        "failReason": None,
        "buttons": [
            *(
                {"customId": f"MJ::JOB::upsample::{n}::{H}", "label": f"U{n}", "style": 2}
                for n in range(1, 5)
            ),
            {"customId": f"MJ::JOB::reroll::0::{H}::SOLO", "emoji": "🔄", "label": ""},
            *(
                {"customId": f"MJ::JOB::variation::{n}::{H}", "label": f"V{n}", "style": 2}
                for n in range(1, 5)
            ),
            {"customId": f"MJ::JOB::animate_high::1::{H}::SOLO", "label": "Animate"},
            {"customId": f"MJ::BOOKMARK::{H}", "emoji": "❤️"},
            {"customId": "MJ::Brand::new::1", "label": "New"},
        ],
        "properties": {"finalPrompt": "a cat --v 6.1"},
        "seed": None,
        "jobId": H,
        "parentId": None,
        "width": 512,
        "height": 512,
    }
    task.update(over)
    return task


def test_completed_grid() -> None:
    snap = parse_task(grid_task())
    assert snap.ref == "1712345678901234"
    assert snap.status is JobStatus.COMPLETED
    assert snap.progress == 100
    assert snap.result_url == "https://cdn.example/grid.png"
    assert snap.preview_url is None
    assert snap.tiles == [f"https://cdn.example/{n}.png" for n in range(1, 5)]
    assert snap.actions is not None
    names = [a.name for a in snap.actions]
    assert names == [
        "pick:1",
        "pick:2",
        "pick:3",
        "pick:4",
        "reroll",
        "vary_grid:1",
        "vary_grid:2",
        "vary_grid:3",
        "vary_grid:4",
        "animate_high:1",  # issue 18: pressed as is (test_video_providers.py)
        "provider:MJ::Brand::new::1",
    ]
    assert snap.actions[0].raw == f"MJ::JOB::upsample::1::{H}"
    assert snap.cost is None and snap.error is None
    assert snap.data == {"hash": H, "action": "IMAGINE"}
    assert snap.raw_status == "SUCCESS"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("NOT_START", JobStatus.SUBMITTED),
        ("SUBMITTED", JobStatus.SUBMITTED),
        ("submitted", JobStatus.SUBMITTED),
        ("MODAL", JobStatus.SUBMITTED),
        ("IN_PROGRESS", JobStatus.RUNNING),
        ("in_progress", JobStatus.RUNNING),
        ("SUCCESS", JobStatus.COMPLETED),
        ("Success", JobStatus.COMPLETED),
        ("FAILURE", JobStatus.FAILED),
        ("CANCEL", JobStatus.CANCELLED),
        ("SOMETHING_NEW", JobStatus.RUNNING),
    ],
)
def test_every_status(status: str, expected: JobStatus) -> None:
    snap = parse_task(grid_task(status=status, progress="10%", failReason="boom"))
    assert snap.status is expected
    assert snap.raw_status == status


def test_running_task_has_preview_and_progress_only() -> None:
    snap = parse_task(
        grid_task(status="IN_PROGRESS", progress="45%", imageUrl="https://cdn/p.png", buttons=[])
    )
    assert snap.progress == 45
    assert snap.preview_url == "https://cdn/p.png"
    assert snap.result_url is None and snap.tiles is None and snap.actions is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("45%", 45), ("0%", 0), ("100%", 100), (" 7 % ", 7), (12, 12), ("", None), (None, None)],
)
def test_progress_strings(value: Any, expected: int | None) -> None:
    assert parse_progress(value) == expected


def test_progress_never_invented() -> None:
    assert parse_task(grid_task(status="IN_PROGRESS", progress="")).progress is None
    task = grid_task(status="IN_PROGRESS")
    del task["progress"]
    assert parse_task(task).progress is None
    assert parse_task(grid_task(status="NOT_START", progress="0%")).progress is None


def test_unknown_keys_and_pascal_case_are_tolerated() -> None:
    task = {
        "Id": "99",
        "Status": "success",
        "ImageUrl": "https://x/y.png",
        "Progress": "100%",
        "somethingNew": {"a": 1},
    }
    snap = parse_task(task)
    assert snap.ref == "99" and snap.status is JobStatus.COMPLETED
    assert snap.result_url == "https://x/y.png"
    assert snap.tiles is None


def test_tiles_only_when_four() -> None:
    snap = parse_task(grid_task(imageUrls=[{"url": "https://a"}, {"url": "https://b"}]))
    assert snap.tiles is None


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("[Banned prompt detected] Sorry!", ErrorCode.MODERATED),
        ("Image denied by moderation", ErrorCode.MODERATED),
        ("NSFW content", ErrorCode.MODERATED),
        ("prohibited word", ErrorCode.MODERATED),
        ("Failed to process your command", ErrorCode.GENERATION_FAILED),
        ("", ErrorCode.GENERATION_FAILED),
    ],
)
def test_fail_reason_classification(reason: str, code: ErrorCode) -> None:
    snap = parse_task(grid_task(status="FAILURE", failReason=reason, buttons=[]))
    assert snap.status is JobStatus.FAILED
    assert snap.error is not None and snap.error.code is code
    assert snap.error.provider_text == (reason or None)
    assert snap.actions is None and snap.result_url is None


def test_cancel_by_fail_reason() -> None:
    snap = parse_task(grid_task(status="FAILURE", failReason="取消任务"))
    assert snap.status is JobStatus.CANCELLED


def test_describe_prompts_from_final_prompt() -> None:
    text = (
        "1️⃣ a fox in the snow --ar 1:1\n\n2️⃣ a red fox, watercolor\n\n"
        "3️⃣ fox portrait\n\n4️⃣ a forest at night --ar 3:2"
    )
    snap = parse_task(
        grid_task(
            action="DESCRIBE",
            prompt="",
            properties={"finalPrompt": text},
            imageUrls=None,
            buttons=[{"customId": f"MJ::Job::PicReader::{n}", "label": str(n)} for n in (1, 2)],
        )
    )
    assert snap.prompts == [
        "a fox in the snow --ar 1:1",
        "a red fox, watercolor",
        "fox portrait",
        "a forest at night --ar 3:2",
    ]
    assert snap.actions is not None
    assert [a.name for a in snap.actions] == ["provider:describe1", "provider:describe2"]


def test_describe_prompts_fall_back_to_prompt() -> None:
    text = "1️⃣ one\n2️⃣ two\n3️⃣ three\n4️⃣ four"
    snap = parse_task(grid_task(action="DESCRIBE", prompt=text, properties={}))
    assert snap.prompts == ["one", "two", "three", "four"]


def test_imagine_prompt_is_not_split() -> None:
    assert parse_task(grid_task()).prompts is None
    assert split_prompts("a plain prompt") is None


# --- reply codes -----------------------------------------------------------------------------


def test_reply_codes() -> None:
    assert error_for_code(1, "ok", {}) is None
    assert error_for_code(21, "Waiting for window confirm", {}) is None
    assert error_for_code(22, "queued", {"numberOfQueues": 2}) is None
    assert isinstance(error_for_code(3, "gone", {}), NotFoundError)
    invalid = error_for_code(4, "参数错误", {})
    assert isinstance(invalid, InvalidRequestError) and invalid.provider_text == "参数错误"
    assert isinstance(error_for_code(9, "fail", {}), ProviderUnavailableError)
    full = error_for_code(23, "queue full", {})
    assert isinstance(full, RateLimitedError) and full.retry_after == 30
    banned = error_for_code(24, "可能包含敏感词", {"bannedWord": "gore"})
    assert isinstance(banned, ModeratedError)
    assert banned.provider_text is not None and "gore" in banned.provider_text
    assert isinstance(error_for_code(30, "saturated", {}), RateLimitedError)
    other = error_for_code(77, "odd", {})
    assert type(other) is ProviderError and other.provider_text == "odd"


def test_http_classifier() -> None:
    assert isinstance(classify_http_error(401, None, "no"), AuthError)
    assert isinstance(classify_http_error(403, None, "未登录"), AuthError)
    body = {"code": 3, "description": "关联任务不存在或已失效", "result": None}
    assert isinstance(classify_http_error(404, body, ""), NotFoundError)
    assert isinstance(
        classify_http_error(200, {"code": 4, "description": "x"}, ""), InvalidRequestError
    )
    assert classify_http_error(200, {"code": 1, "description": "ok", "result": "1"}, "") is None
    assert classify_http_error(200, grid_task(), "") is None  # a task is not an envelope
    assert classify_http_error(500, None, "oops") is None  # generic mapping


def test_zoom_prompt() -> None:
    assert zoom_prompt("a cat", Decimal("1.7")) == "a cat --zoom 1.7"
    assert zoom_prompt("a cat --zoom 1.2 --ar 2:3", Decimal("1.70")) == "a cat --ar 2:3 --zoom 1.7"
    assert zoom_prompt("", Decimal(2)) == "--zoom 2"


# --- request building ------------------------------------------------------------------------


class Recorder:
    """A MockTransport that answers submits in order and records the bodies."""

    def __init__(self, replies: list[tuple[int, Any]]) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, str, Any, httpx.Headers]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        import json

        parsed = json.loads(body) if body else None
        self.calls.append((request.method, request.url.path, parsed, request.headers))
        status, payload = self.replies.pop(0) if self.replies else (200, {"code": 1, "result": "1"})
        return httpx.Response(status, json=payload)


def provider(
    replies: list[tuple[int, Any]],
    *,
    auth_style: str = "mj-api-secret",
    secret: str | None = "s3cret",
    load_image: Any = None,
    notify_hook: str | None = None,
) -> tuple[MJProxyProvider, Recorder]:
    rec = Recorder(replies)
    http = ProviderHTTP(
        "http://proxy.test",
        headers=MJProxyProvider.auth_headers(secret, auth_style),
        attempts=1,
        classify=classify_http_error,
        transport=httpx.MockTransport(rec),
    )
    p = MJProxyProvider(
        base_url="http://proxy.test",
        api_secret=secret,
        auth_style=auth_style,
        load_image=load_image,
        http=http,
        notify_hook=notify_hook,
    )
    return p, rec


def ok(result: str = "1712000000000001", code: int = 1, **props: Any) -> tuple[int, Any]:
    return 200, {"code": code, "description": "ok", "result": result, "properties": props}


def job(op: Operation, job_id: str = "jobkey123456") -> Job:
    return Job(id=job_id, operation=op, provider="mjproxy")


GRID_ACTIONS = [
    Action("pick:1", f"MJ::JOB::upsample::1::{H}"),
    Action("pick:2", f"MJ::JOB::upsample::2::{H}"),
    Action("reroll", f"MJ::JOB::reroll::0::{H}::SOLO"),
    Action("vary_grid:1", f"MJ::JOB::variation::1::{H}"),
    Action("vary_grid:3", f"MJ::JOB::variation::3::{H}"),
]
SINGLE_ACTIONS = [
    Action("upscale_subtle", f"MJ::JOB::upsample_v6r1_2x_subtle::1::{H}::SOLO"),
    Action("redo_upscale_creative", f"MJ::JOB::upsample_v6r1_2x_creative::1::{H}::SOLO"),
    Action("vary_subtle", f"MJ::JOB::low_variation::1::{H}::SOLO"),
    Action("vary_strong", f"MJ::JOB::high_variation::1::{H}::SOLO"),
    Action("vary_region", f"MJ::Inpaint::1::{H}::SOLO"),
    Action("zoom_out_2x", f"MJ::Outpaint::50::1::{H}::SOLO"),
    Action("zoom_out_1_5x", f"MJ::Outpaint::75::1::{H}::SOLO"),
    Action("zoom_custom", f"MJ::CustomZoom::{H}"),
    Action("make_square", f"MJ::Outpaint::100::1::{H}::SOLO"),
    Action("pan_left", f"MJ::JOB::pan_left::1::{H}::SOLO"),
    Action("pan_down", f"MJ::JOB::pan_down::1::{H}::SOLO"),
    Action("provider:MJ::Brand::new::1", "MJ::Brand::new::1"),
]


def parent(actions: list[Action], prompt: str = "a cat") -> Job:
    p = Job(
        id="parent000001",
        operation=Operation(OperationKind.IMAGINE, prompt=prompt),
        provider="mjproxy",
        status=JobStatus.COMPLETED,
        provider_ref="1711111111111111",
    )
    p.actions = list(actions)
    return p


async def test_imagine_body_adds_ar_mode_and_state() -> None:
    p, rec = provider([ok()])
    op = Operation(OperationKind.IMAGINE, prompt="a cat", aspect_ratio="16:9", mode=SpeedMode.RELAX)
    snap = await p.submit(op, job=job(op), parent=None)
    assert snap.ref == "1712000000000001" and snap.status is JobStatus.SUBMITTED
    [(method, path, body, headers)] = rec.calls
    assert (method, path) == ("POST", "/mj/submit/imagine")
    assert body == {
        "prompt": "a cat --ar 16:9",
        "state": "jobkey123456",
        "accountFilter": {"modes": ["RELAX"]},
    }
    assert headers["mj-api-secret"] == "s3cret" and "authorization" not in headers


async def test_imagine_keeps_prompt_ar_and_omits_mode() -> None:
    p, rec = provider([ok()], notify_hook="https://bot.example/hook")
    op = Operation(OperationKind.IMAGINE, prompt="a cat --aspect 2:3", aspect_ratio="16:9")
    await p.submit(op, job=job(op), parent=None)
    body = rec.calls[0][2]
    assert body == {
        "prompt": "a cat --aspect 2:3",
        "state": "jobkey123456",
        "notifyHook": "https://bot.example/hook",
    }


@pytest.mark.parametrize(
    ("style", "secret", "header", "value"),
    [
        ("bearer", "tok", "authorization", "Bearer tok"),
        ("mj-api-secret", "sec", "mj-api-secret", "sec"),
    ],
)
async def test_auth_styles(style: str, secret: str, header: str, value: str) -> None:
    p, rec = provider([ok()], auth_style=style, secret=secret)
    op = Operation(OperationKind.IMAGINE, prompt="x")
    await p.submit(op, job=job(op), parent=None)
    assert rec.calls[0][3][header] == value


async def test_no_secret_sends_no_auth_header() -> None:
    p, rec = provider([ok()], secret=None)
    op = Operation(OperationKind.IMAGINE, prompt="x")
    await p.submit(op, job=job(op), parent=None)
    headers = rec.calls[0][3]
    assert "mj-api-secret" not in headers and "authorization" not in headers


def test_bad_auth_style_is_refused() -> None:
    with pytest.raises(ValueError):
        MJProxyProvider(base_url="http://x", api_secret="s", auth_style="basic")


@pytest.mark.parametrize(
    ("action", "given", "custom_id"),
    [
        ("pick:2", None, f"MJ::JOB::upsample::2::{H}"),
        ("vary_grid:3", None, f"MJ::JOB::variation::3::{H}"),
        ("reroll", None, f"MJ::JOB::reroll::0::{H}::SOLO"),
    ],
)
async def test_grid_follow_ups(action: str, given: ActionInput | None, custom_id: str) -> None:
    p, rec = provider([ok()])
    par = parent(GRID_ACTIONS)
    op = operation_for(action, par, given)
    await p.submit(op, job=job(op), parent=par)
    [(_, path, body, _)] = rec.calls
    assert path == "/mj/submit/action"
    assert body == {"taskId": "1711111111111111", "customId": custom_id, "state": "jobkey123456"}


@pytest.mark.parametrize(
    ("action", "custom_id"),
    [
        ("upscale_subtle", f"MJ::JOB::upsample_v6r1_2x_subtle::1::{H}::SOLO"),
        ("upscale_creative", f"MJ::JOB::upsample_v6r1_2x_creative::1::{H}::SOLO"),  # redo only
        ("vary_subtle", f"MJ::JOB::low_variation::1::{H}::SOLO"),
        ("vary_strong", f"MJ::JOB::high_variation::1::{H}::SOLO"),
        ("zoom_out_2x", f"MJ::Outpaint::50::1::{H}::SOLO"),
        ("zoom_out_1_5x", f"MJ::Outpaint::75::1::{H}::SOLO"),
        ("make_square", f"MJ::Outpaint::100::1::{H}::SOLO"),
        ("pan_left", f"MJ::JOB::pan_left::1::{H}::SOLO"),
        ("pan_down", f"MJ::JOB::pan_down::1::{H}::SOLO"),
        ("provider:MJ::Brand::new::1", "MJ::Brand::new::1"),
    ],
)
async def test_single_follow_ups(action: str, custom_id: str) -> None:
    p, rec = provider([ok()])
    par = parent(SINGLE_ACTIONS)
    op = operation_for(action, par)
    await p.submit(op, job=job(op), parent=par)
    [(_, path, body, _)] = rec.calls
    assert path == "/mj/submit/action"
    assert body["customId"] == custom_id and "enableRemix" not in body


async def test_missing_button_is_unsupported_and_sends_nothing() -> None:
    p, rec = provider([ok()])
    par = parent(GRID_ACTIONS)
    op = Operation(OperationKind.PAN, parent_job_id=par.id, direction=PanDirection.UP)
    with pytest.raises(UnsupportedOperationError, match="pan_up"):
        await p.submit(op, job=job(op), parent=par)
    op = Operation(OperationKind.UPSCALE, parent_job_id=par.id, index=4)
    with pytest.raises(UnsupportedOperationError, match="pick:4"):
        await p.submit(op, job=job(op), parent=par)
    assert rec.calls == []


async def test_changed_prompt_enables_remix() -> None:
    p, rec = provider([ok()])
    par = parent(GRID_ACTIONS)
    op = operation_for("vary_grid:1", par, ActionInput(prompt="a dog"))
    await p.submit(op, job=job(op), parent=par)
    assert rec.calls[0][2]["enableRemix"] is True
    p, rec = provider([ok()])
    op = operation_for("remix", par, ActionInput(prompt="a dog", index=3))
    await p.submit(op, job=job(op), parent=par)
    assert rec.calls[0][2]["customId"] == f"MJ::JOB::variation::3::{H}"
    assert rec.calls[0][2]["enableRemix"] is True


async def test_queued_reply_gives_queue_position() -> None:
    p, _ = provider([ok(code=22, numberOfQueues=3)])
    op = Operation(OperationKind.IMAGINE, prompt="x")
    snap = await p.submit(op, job=job(op), parent=None)
    assert snap.status is JobStatus.SUBMITTED and snap.queue_position == 3


async def test_custom_zoom_two_steps() -> None:
    p, rec = provider(
        [
            (200, {"code": 21, "description": "Waiting for window confirm", "result": "555"}),
            ok("555"),
        ]
    )
    par = parent(SINGLE_ACTIONS, prompt="a cat --zoom 1.2")
    op = operation_for("zoom_custom", par, ActionInput(zoom_ratio=Decimal("1.7")))
    snap = await p.submit(op, job=job(op), parent=par)
    assert snap.ref == "555" and snap.data["modal"] is True
    (_, p1, b1, _), (_, p2, b2, _) = rec.calls
    assert p1 == "/mj/submit/action" and b1["customId"] == f"MJ::CustomZoom::{H}"
    assert p2 == "/mj/submit/modal"
    assert b2 == {"taskId": "555", "prompt": "a cat --zoom 1.7", "state": "jobkey123456"}


async def test_custom_zoom_modal_even_on_code_1() -> None:
    # Some forks answer the modal-creating action with code 1: the window still needs input.
    p, rec = provider([ok("556"), ok("556")])
    par = parent(SINGLE_ACTIONS)
    op = operation_for("zoom_custom", par, ActionInput(zoom_ratio=Decimal("1.3")))
    await p.submit(op, job=job(op), parent=par)
    assert [c[1] for c in rec.calls] == ["/mj/submit/action", "/mj/submit/modal"]
    assert rec.calls[1][2]["prompt"] == "a cat --zoom 1.3"


async def test_inpaint_sends_mask_data_url() -> None:
    p, rec = provider([ok("557", code=21), ok("557")])
    par = parent(SINGLE_ACTIONS)
    mask = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    op = operation_for("vary_region", par, ActionInput(prompt="a hat", mask_png_base64=mask))
    await p.submit(op, job=job(op), parent=par)
    body = rec.calls[1][2]
    assert body["maskBase64"] == f"data:image/png;base64,{mask}"
    assert body["prompt"] == "a hat" and body["taskId"] == "557"


async def test_inpaint_without_mask_sends_nothing() -> None:
    p, rec = provider([])
    par = parent(SINGLE_ACTIONS)
    op = Operation(OperationKind.INPAINT, parent_job_id=par.id, prompt="x")
    with pytest.raises(InvalidRequestError):
        await p.submit(op, job=job(op), parent=par)
    assert rec.calls == []


async def test_remix_account_modal_uses_prompt_or_final_prompt() -> None:
    p, rec = provider(
        [
            (
                200,
                {
                    "code": 21,
                    "description": "Waiting for window confirm",
                    "result": "558",
                    "properties": {"finalPrompt": "from the proxy", "remix": True},
                },
            ),
            ok("558", code=22, numberOfQueues=1),
        ]
    )
    par = parent(GRID_ACTIONS, prompt="")
    op = operation_for("vary_grid:1", par)
    snap = await p.submit(op, job=job(op), parent=par)
    assert rec.calls[1][2]["prompt"] == "from the proxy"
    assert snap.queue_position == 1


async def test_describe_pick_uses_suggestion() -> None:
    p, rec = provider([ok("559", code=21), ok("559")])
    par = Job(
        id="describe0001",
        operation=Operation(OperationKind.DESCRIBE, image_urls=("https://x/y.png",)),
        provider="mjproxy",
        status=JobStatus.COMPLETED,
        provider_ref="17000",
        prompts=["one", "two", "three", "four"],
    )
    par.actions = [Action("provider:describe2", "MJ::Job::PicReader::2")]
    op = operation_for("provider:describe2", par)
    await p.submit(op, job=job(op), parent=par)
    assert rec.calls[0][2]["customId"] == "MJ::Job::PicReader::2"
    assert rec.calls[1][2]["prompt"] == "two"


async def test_describe_and_blend_bodies() -> None:
    p, rec = provider([ok()])
    op = Operation(OperationKind.DESCRIBE, image_urls=("https://cdn.discord/a.png",))
    await p.submit(op, job=job(op), parent=None)
    assert rec.calls[0][1:3] == (
        "/mj/submit/describe",
        {"link": "https://cdn.discord/a.png", "state": "jobkey123456"},
    )

    loaded: list[str] = []

    async def load(url: str) -> bytes:
        loaded.append(url)
        return b"\x89PNG\r\n\x1a\n" + url.encode()

    p, rec = provider([ok()], load_image=load)
    assert p.capabilities.supports(OperationKind.BLEND)
    op = Operation(
        OperationKind.BLEND,
        image_urls=("https://a/1.png", "https://a/2.png"),
        dimension=BlendDimension.PORTRAIT,
    )
    await p.submit(op, job=job(op), parent=None)
    path, body = rec.calls[0][1:3]
    assert path == "/mj/submit/blend" and body["dimensions"] == "PORTRAIT"
    assert loaded == ["https://a/1.png", "https://a/2.png"]
    assert all(u.startswith("data:image/png;base64,") for u in body["base64Array"])
    assert base64.b64decode(body["base64Array"][0].split(",", 1)[1]).endswith(b"https://a/1.png")


async def test_blend_needs_loader_and_two_images() -> None:
    p, rec = provider([])
    assert not p.capabilities.supports(OperationKind.BLEND)
    op = Operation(OperationKind.BLEND, image_urls=("https://a/1.png", "https://a/2.png"))
    with pytest.raises(UnsupportedOperationError):
        await p.submit(op, job=job(op), parent=None)

    async def load(url: str) -> bytes:
        return b"x"

    p, rec = provider([], load_image=load)
    op = Operation(OperationKind.BLEND, image_urls=("https://a/1.png",))
    with pytest.raises(InvalidRequestError):
        await p.submit(op, job=job(op), parent=None)
    assert rec.calls == []


def test_capabilities() -> None:
    p = MJProxyProvider(base_url="http://x", api_secret=None)
    caps = p.capabilities
    assert caps.can_cancel and caps.follow_up_window is None and caps.max_prompt_length == 8192
    for kind in (OperationKind.EDIT, OperationKind.BLEND):
        assert not caps.supports(kind)
    # ENHANCE: a draft's own Enhance button; SHORTEN/RETEXTURE/UPLOAD_EDIT: issue 19.
    for kind in (
        *(OperationKind.IMAGINE, OperationKind.INPAINT, OperationKind.PROVIDER_ACTION),
        *(OperationKind.ENHANCE, OperationKind.SHORTEN, OperationKind.RETEXTURE),
        OperationKind.UPLOAD_EDIT,
    ):
        assert caps.supports(kind)


async def test_seed_is_completed_at_once() -> None:
    p, rec = provider([(200, {"code": 1, "description": "成功", "result": "12345"})])
    par = parent(GRID_ACTIONS)
    op = operation_for("seed", par)
    snap = await p.submit(op, job=job(op), parent=par)
    assert rec.calls[0][:2] == ("GET", "/mj/task/1711111111111111/image-seed")
    assert snap.status is JobStatus.COMPLETED and snap.seed == "12345"
    assert snap.ref == "1711111111111111#seed"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ((200, {"code": 4, "description": "prompt不能为空"}), InvalidRequestError),
        ((404, {"code": 3, "description": "关联任务不存在或已失效"}), NotFoundError),
        (
            (200, {"code": 24, "description": "敏感词", "properties": {"bannedWord": "x"}}),
            ModeratedError,
        ),
        ((200, {"code": 23, "description": "队列已满"}), RateLimitedError),
        ((200, {"code": 30, "description": "saturated"}), RateLimitedError),
        ((401, {"code": 401, "description": "no"}), AuthError),
        ((403, "未登录"), AuthError),
    ],
)
async def test_submit_errors(reply: tuple[int, Any], error: type[ProviderError]) -> None:
    p, _ = provider([reply])
    op = Operation(OperationKind.IMAGINE, prompt="x")
    with pytest.raises(error):
        await p.submit(op, job=job(op), parent=None)


async def test_submit_errors_without_classifier() -> None:
    """An injected ProviderHTTP without the classifier still maps the reply codes."""
    rec = Recorder(
        [(200, {"code": 24, "description": "banned", "properties": {"bannedWord": "w"}})]
    )
    http = ProviderHTTP("http://p", headers={}, attempts=1, transport=httpx.MockTransport(rec))
    p = MJProxyProvider(base_url="http://p", api_secret=None, http=http)
    op = Operation(OperationKind.IMAGINE, prompt="x")
    with pytest.raises(ModeratedError) as info:
        await p.submit(op, job=job(op), parent=None)
    assert info.value.to_job_error().code is ErrorCode.MODERATED


async def test_fetch_empty_body_is_not_found() -> None:
    p, _ = provider([(204, None)])
    j = job(Operation(OperationKind.IMAGINE, prompt="x"))
    j.provider_ref = "123"
    with pytest.raises(NotFoundError):
        await p.fetch(j)


async def test_account_is_empty() -> None:
    p, rec = provider([])
    info = await p.account()
    assert info.credits is None and rec.calls == []
