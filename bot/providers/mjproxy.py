"""The midjourney-proxy protocol (trueai-org/midjourney-proxy, also spoken by aggregators).
PROVIDERS.md §4.

    POST /mj/submit/imagine|action|modal|blend|describe   create  -> {code, description, result}
    GET  /mj/task/{id}/fetch                              read    -> the task (camelCase)
    GET  /mj/task/{id}/image-seed                         seed    -> {code: 1, result: "<seed>"}
    POST /mj/task/{id}/cancel                             cancel

Follow-ups replay a button of the parent task: its `customId` (kept as `Action.raw`) is sent
to /mj/submit/action. Some buttons (Custom Zoom, Vary (Region), Describe's picks, and every
button on a remix-mode account) first create a MODAL task (reply code 21) which only runs
once /mj/submit/modal supplies the prompt (and the mask); both steps happen in one submit.

Parsing is tolerant: string enums in any case, unknown keys ignored, unknown statuses
treated as running (logged once), progress strings such as "45%".
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from bot.domain import (
    Action,
    BlendDimension,
    ErrorCode,
    Job,
    JobError,
    JobStatus,
    Operation,
    OperationKind,
    ProviderSnapshot,
    VideoClip,
)
from bot.providers.base import (
    AccountInfo,
    AuthError,
    Capabilities,
    InvalidRequestError,
    MalformedReplyError,
    ModeratedError,
    NotFoundError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    SubmitOutcomeUnknownError,
    UnsupportedOperationError,
)
from bot.providers.http import ProviderHTTP
from bot.video import video_actions, video_problem

log = logging.getLogger(__name__)

# --- reply codes (Dto/ReturnCode.cs) ----------------------------------------------------------

CODE_SUCCESS = 1
CODE_NOT_FOUND = 3
CODE_VALIDATION = 4
CODE_FAILURE = 9
CODE_EXISTED = 21  # "already exists", or "Waiting for window confirm": a MODAL task
CODE_IN_QUEUE = 22
CODE_QUEUE_FULL = 23
CODE_BANNED = 24
CODE_GROUP_SATURATED = 30
ACCEPTED_CODES = frozenset({CODE_SUCCESS, CODE_EXISTED, CODE_IN_QUEUE})
BUSY_RETRY_AFTER = 30.0
MODAL_DESCRIPTION = "waiting for window confirm"

STATUS_MAP = {
    "not_start": JobStatus.SUBMITTED,
    "submitted": JobStatus.SUBMITTED,
    "modal": JobStatus.SUBMITTED,  # only if the modal step was interrupted
    "in_progress": JobStatus.RUNNING,
    "success": JobStatus.COMPLETED,
    "failure": JobStatus.FAILED,
    "cancel": JobStatus.CANCELLED,
    "cancelled": JobStatus.CANCELLED,
    "canceled": JobStatus.CANCELLED,
}

DEFAULT_PROMPT_LIMIT = 8192
STATE_LIMIT = 255

_BASE_OPERATIONS = frozenset(
    {
        OperationKind.IMAGINE,
        OperationKind.UPSCALE,
        OperationKind.VARIATION,
        OperationKind.REROLL,
        OperationKind.DESCRIBE,
        OperationKind.SEED,
        OperationKind.INPAINT,
        OperationKind.OUTPAINT,
        OperationKind.PAN,
        OperationKind.REMIX,
        OperationKind.PROVIDER_ACTION,
        OperationKind.VIDEO,
        OperationKind.VIDEO_FROM_IMAGE,
        OperationKind.VIDEO_EXTEND,
        # Issue 19 (PROVIDERS.md §8.4): /mj/submit/shorten, /retexture and /edits.
        OperationKind.SHORTEN,
        OperationKind.RETEXTURE,
        OperationKind.UPLOAD_EDIT,
        OperationKind.ENHANCE,  # the draft's own Enhance button, pressed like any other
    }
)
# PROVIDERS.md §8.4: videoType at creation is the HD choice; there is no HD follow-up.
VIDEO_TYPES = {False: "vid_1.1_i2v_480", True: "vid_1.1_i2v_720"}

# --- customId -> neutral action name (PROVIDERS.md §6.3) ------------------------------------

_PICK = re.compile(r"^MJ::JOB::upsample::([1-4])::")
_VARY_GRID = re.compile(r"^MJ::JOB::variation::([1-4])::")
_REROLL = re.compile(r"^MJ::JOB::reroll::")
# upsample_v6r1_2x_subtle, upsample_v7_2x_creative, upsample_v5_2x, upsample_v6_2x_subtle, ...
_UPSAMPLE = re.compile(r"^MJ::JOB::upsample_(?P<token>[A-Za-z0-9_.]+?)::")
_VARY_SINGLE = re.compile(r"^MJ::JOB::(low|high)_variation::")
_INPAINT = re.compile(r"^MJ::Inpaint::")
_OUTPAINT = re.compile(r"^MJ::Outpaint::(\d+)::")
_CUSTOM_ZOOM = re.compile(r"^MJ::CustomZoom::")
_PAN = re.compile(r"^MJ::JOB::pan_(left|right|up|down)::")
_ANIMATE = re.compile(r"^MJ::JOB::animate_(low|high)::([1-4])::", re.IGNORECASE)
_ANIMATE_EXTEND = re.compile(r"^MJ::JOB::animate_(low|high)_extend::([1-4])::", re.IGNORECASE)
_VIDEO_PICK = re.compile(r"^MJ::JOB::video_virtual_upscale::", re.IGNORECASE)
_ANIMATE_OTHER = re.compile(r"^MJ::(?:JOB::animate|AnimateModal)", re.IGNORECASE)
_PIC_READER = re.compile(r"^MJ::Job::PicReader::([1-9])$", re.IGNORECASE)
_PIC_READER_ALL = re.compile(r"^MJ::Job::PicReader::all", re.IGNORECASE)
_PIC_READ_RETRY = re.compile(r"^MJ::Picread::Retry", re.IGNORECASE)
_PROMPT_ANALYZER = re.compile(r"^MJ::Job::PromptAnalyzer::", re.IGNORECASE)
# A draft's Enhance: its customId spelling is not documented (PROVIDERS.md §8 [?]), so the
# button is known by an "enhance" in its id or its label.
_ENHANCE = re.compile(r"^MJ::JOB::[a-z_]*enhance", re.IGNORECASE)
_BOOKMARK = re.compile(r"BOOKMARK", re.IGNORECASE)
_OUTPAINT_NAMES = {"50": "zoom_out_2x", "75": "zoom_out_1_5x", "100": "make_square"}

# Describe's picks: MJ's "1".."4" buttons. The presenter replaces `provider:describe<n>` with
# the bot's own imagine of suggestion n (no provider round trip), yet the raw customId stays
# addressable for a PROVIDER_ACTION.
DESCRIBE_PICK_PREFIX = "provider:describe"


@functools.lru_cache(maxsize=256)
def _log_dropped(custom_id: str, why: str) -> None:
    log.debug("mj-proxy button %.100r dropped: %s", custom_id, why)


def neutral_action(custom_id: str, label: str | None = None) -> str | None:
    """The neutral name of a midjourney-proxy button, or None when the bot drops it.

    `label` (the button's text) only tells a "Redo Upscale (…)" from a first "Upscale (…)",
    which share their customId spelling. Unknown buttons stay addressable as
    `provider:<customId>`.
    """
    cid = custom_id.strip()
    if not cid:
        return None
    if m := _PICK.match(cid):
        return f"pick:{m[1]}"
    if m := _VARY_GRID.match(cid):
        return f"vary_grid:{m[1]}"
    if _REROLL.match(cid):
        return "reroll"
    if m := _UPSAMPLE.match(cid):
        variant = _upscale_variant(m["token"])
        if variant is not None:
            redo = "redo_" if (label or "").strip().lower().startswith("redo") else ""
            return f"{redo}upscale_{variant}"
        return f"provider:{cid}"
    if m := _VARY_SINGLE.match(cid):
        return "vary_subtle" if m[1] == "low" else "vary_strong"
    if _INPAINT.match(cid):
        return "vary_region"
    if m := _OUTPAINT.match(cid):
        return _OUTPAINT_NAMES.get(m[1], f"provider:{cid}")
    if _CUSTOM_ZOOM.match(cid):
        return "zoom_custom"
    if m := _PAN.match(cid):
        return f"pan_{m[1]}"
    if m := _ANIMATE_EXTEND.match(cid):
        return f"extend_{m[1].lower()}:1"
    if m := _ANIMATE.match(cid):
        return f"animate_{m[1].lower()}:1"
    return _neutral_late(cid, label)


def _neutral_late(cid: str, label: str | None) -> str | None:
    """neutral_action's later checks: video picks, bookmarks, describe and shorten buttons."""
    if _VIDEO_PICK.match(cid):
        _log_dropped(cid, "a video is addressed by its number; Extend picks it")
        return None
    if _ANIMATE_OTHER.match(cid):
        _log_dropped(cid, "the manual animate form is not offered")
        return None
    if _BOOKMARK.search(cid):
        _log_dropped(cid, "bookmarks (❤️) are not offered")
        return None
    if m := _PIC_READER.match(cid):
        return f"{DESCRIBE_PICK_PREFIX}{m[1]}"
    if _PIC_READER_ALL.match(cid):
        # One submit would start four tasks (result "id1,id2,…"): the bot tracks one per job.
        _log_dropped(cid, "'Imagine all' starts several tasks at once")
        return None
    if _ENHANCE.match(cid) or (label or "").strip().lower() == "enhance":
        return "enhance"
    if _PROMPT_ANALYZER.match(cid):
        # /shorten's own picks: the bot imagines the shortened prompt it shows.
        _log_dropped(cid, "the bot offers its own /shorten picks")
        return None
    if _PIC_READ_RETRY.match(cid):
        _log_dropped(cid, "the bot offers its own describe reroll")
        return None
    return f"provider:{cid}"


def _upscale_variant(token: str) -> str | None:
    """`v6r1_2x_subtle` -> subtle, `v7_2x_creative` -> creative, `v5_2x` -> 2x, `v5_4x` -> 4x."""
    lowered = token.lower()
    for variant in ("subtle", "creative"):
        if lowered.endswith(variant):
            return variant
    if m := re.fullmatch(r"(?:v[0-9a-z.]*_)?([24]x)", lowered):
        return m[1]
    return None


# --- parsing ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _log_unknown_status(raw_status: str) -> None:
    log.warning("mj-proxy task status %.40r is unknown; treating it as running", raw_status)


def _get(obj: dict[str, Any], key: str) -> Any:
    """A camelCase key, tolerating PascalCase and snake_case spellings."""
    if key in obj:
        return obj[key]
    pascal = key[:1].upper() + key[1:]
    if pascal in obj:
        return obj[pascal]
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
    return obj.get(snake)


def parse_progress(value: Any) -> int | None:
    """ "45%" -> 45, 45 -> 45; missing, "" or unreadable -> None (never invented)."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip().rstrip("%").strip()
    if not text:
        return None
    try:
        return max(0, min(100, int(float(text))))
    except ValueError:
        return None


_KEYCAP_LINE = re.compile(r"(?:^|\n)\s*([1-9])\ufe0f?\u20e3\s*")


def split_prompts(text: Any) -> list[str] | None:
    """Describe's suggestions: the lines starting with 1️⃣ 2️⃣ 3️⃣ 4️⃣, number emoji removed."""
    if not isinstance(text, str) or not _KEYCAP_LINE.search(text):
        return None
    parts = _KEYCAP_LINE.split(text)
    # parts = [before, n1, text1, n2, text2, ...]
    prompts = [" ".join(parts[i + 1].split()) for i in range(1, len(parts) - 1, 2)]
    prompts = [p for p in prompts if p]
    return prompts or None


_MODERATION_WORDS = ("banned", "moderat", "nsfw", "prohibited", "sensitive", "敏感")
_CANCEL_WORDS = ("cancel", "取消")


def classify_fail_reason(reason: str) -> JobError:
    lowered = reason.lower()
    if any(word in lowered for word in _MODERATION_WORDS):
        return JobError(
            ErrorCode.MODERATED,
            "Midjourney's moderation refused this prompt or image.",
            reason or None,
        )
    return JobError(
        ErrorCode.GENERATION_FAILED, "Midjourney could not make this image.", reason or None
    )


def parse_task(task: dict[str, Any]) -> ProviderSnapshot:
    """Translate one midjourney-proxy task object (fetch, list or notify hook) to a snapshot."""
    task_id = _get(task, "id")
    if task_id in (None, ""):
        raise MalformedReplyError(provider_text="task without an id")
    raw_status = str(_get(task, "status") or "").strip()
    status, error = _task_status(task, raw_status)

    progress = parse_progress(_get(task, "progress"))
    if status is JobStatus.COMPLETED:
        progress = 100
    elif status is JobStatus.SUBMITTED and progress == 0:
        progress = None  # "0%" while waiting says nothing

    image_url = _get(task, "imageUrl") or None
    image_url = str(image_url) if isinstance(image_url, str) and image_url else None

    tiles = _task_tiles(task)
    actions = _task_actions(task)

    properties = _get(task, "properties")
    properties = properties if isinstance(properties, dict) else {}
    action = str(_get(task, "action") or "").upper()
    prompts = _task_prompts(task, properties, status, action)

    seed = _get(task, "seed")
    data: dict[str, Any] = {}
    job_hash = _get(task, "jobId")
    if job_hash:
        data["hash"] = str(job_hash)
    if action:
        data["action"] = action

    completed = status is JobStatus.COMPLETED
    videos = _videos(task) if completed else []
    if videos:
        data["videos"] = [v.to_dict() for v in videos]
        data["video_count"] = len(videos)
        image_url = videos[0].cover
        tiles = None
        actions = _video_actions(len(videos), actions)
    return ProviderSnapshot(
        ref=str(task_id),
        status=status,
        progress=progress,
        preview_url=image_url if status is JobStatus.RUNNING else None,
        result_url=image_url if completed else None,
        tiles=tiles if completed else None,
        actions=actions if completed else None,
        cost=None,
        error=error if status in (JobStatus.FAILED, JobStatus.CANCELLED) else None,
        seed=str(seed) if seed not in (None, "") else None,
        prompts=prompts,
        data=data,
        raw_status=raw_status or None,
    )


def _task_status(task: dict[str, Any], raw_status: str) -> tuple[JobStatus, JobError | None]:
    """The task's status and, when it failed or was cancelled, its error."""
    key = raw_status.lower().replace(" ", "_").replace("-", "_")
    status = STATUS_MAP.get(key)
    if status is None:
        if key:
            _log_unknown_status(raw_status)
        status = JobStatus.RUNNING if key else JobStatus.SUBMITTED

    fail_reason = str(_get(task, "failReason") or "").strip()
    error: JobError | None = None
    if status is JobStatus.FAILED:
        lowered = fail_reason.lower()
        if any(word in lowered for word in _CANCEL_WORDS):
            # trueai's cancel endpoint fails the task with "取消任务" ("task cancelled").
            status = JobStatus.CANCELLED
        else:
            error = classify_fail_reason(fail_reason)
    if status is JobStatus.CANCELLED:
        error = JobError(ErrorCode.CANCELLED, "The job was cancelled.", fail_reason or None)
    return status, error


def _task_tiles(task: dict[str, Any]) -> list[str] | None:
    """The four tile URLs of `imageUrls`, or None unless there are exactly four."""
    tiles: list[str] | None = None
    urls = _get(task, "imageUrls")
    if isinstance(urls, list):
        found = [
            str(_get(u, "url"))
            for u in urls
            if isinstance(u, dict) and isinstance(_get(u, "url"), str) and _get(u, "url")
        ]
        if len(found) == 4:
            tiles = found
    return tiles


def _task_actions(task: dict[str, Any]) -> list[Action]:
    """The task's buttons as neutral actions, first of each name kept, dropped ones left out."""
    actions: list[Action] = []
    buttons = _get(task, "buttons")
    if isinstance(buttons, list):
        for button in buttons:
            if not isinstance(button, dict):
                continue
            custom_id = _get(button, "customId")
            if not isinstance(custom_id, str) or not custom_id:
                continue
            label = _get(button, "label")
            name = neutral_action(custom_id, label if isinstance(label, str) else None)
            if name is not None and all(a.name != name for a in actions):
                actions.append(Action(name=name, raw=custom_id))
    return actions


def _task_prompts(
    task: dict[str, Any], properties: dict[str, Any], status: JobStatus, action: str
) -> list[str] | None:
    """A finished describe or shorten's suggested prompts, else None."""
    prompts = None
    if status is JobStatus.COMPLETED and action in ("DESCRIBE", "SHORTEN", ""):
        prompts = split_prompts(_get(properties, "finalPrompt")) or split_prompts(
            _get(task, "prompt")
        )
        if prompts is None:
            prompts = split_prompts(_get(task, "promptEn"))
    return prompts


def _videos(task: dict[str, Any]) -> list[VideoClip]:
    """A video task's MP4s (PROVIDERS.md §8.4): `videoUrls[{url, thumbnail}]`, else the one
    `videoUrl`; the cover is each one's thumbnail, else `thumbnailUrl`."""
    thumb = _get(task, "thumbnailUrl")
    fallback = thumb if isinstance(thumb, str) and thumb else None
    found: list[VideoClip] = []
    listed = _get(task, "videoUrls")
    for item in listed if isinstance(listed, list) else []:
        url = _get(item, "url") if isinstance(item, dict) else None
        if isinstance(url, str) and url:
            cover = _get(item, "thumbnail")
            found.append(VideoClip(url, cover if isinstance(cover, str) and cover else fallback))
    single = _get(task, "videoUrl")
    if not found and isinstance(single, str) and single:
        found.append(VideoClip(single, fallback))
    return found


def _video_actions(count: int, buttons: list[Action]) -> list[Action]:
    """Extend per video. A single video's own `animate_*_extend` button is pressed as is;
    in a batch the proxy's extend call names the video (raw stays the neutral name)."""
    own = {a.name: a.raw for a in buttons if a.name.startswith("extend_")}
    return [
        Action(a.name, raw=own.get(a.name, a.raw) if count == 1 else a.raw)
        for a in video_actions(count, hd=False)
    ]


# --- reply envelopes and errors -------------------------------------------------------------


def _code_of(reply: Any) -> int | None:
    if not isinstance(reply, dict) or "code" not in reply:
        return None
    code = reply.get("code")
    if isinstance(code, bool):
        return None
    try:
        return int(str(code).strip())
    except ValueError:
        return None


def _is_envelope(body: Any) -> bool:
    return isinstance(body, dict) and "code" in body and ("description" in body or "result" in body)


def error_for_code(code: int, description: str, properties: dict[str, Any]) -> ProviderError | None:
    """The error a submit reply's `code` stands for; None for the accepted codes."""
    text = description or None
    if code in ACCEPTED_CODES:
        return None
    if code == CODE_NOT_FOUND:
        return NotFoundError(provider_text=text)
    if code == CODE_VALIDATION:
        return InvalidRequestError(provider_text=text)
    if code == CODE_FAILURE:
        return ProviderUnavailableError(provider_text=text)
    if code == CODE_QUEUE_FULL:
        return RateLimitedError(
            "The image service's queue is full. Try again shortly.",
            retry_after=BUSY_RETRY_AFTER,
            provider_text=text,
        )
    if code == CODE_BANNED:
        word = properties.get("bannedWord")
        detail = f"banned word: {word}" if word else "banned prompt"
        return ModeratedError(
            "Midjourney refused the prompt: it contains a banned word"
            + (f" ({word})." if word else "."),
            provider_text=f"{description} ({detail})" if description else detail,
        )
    if code == CODE_GROUP_SATURATED:
        return RateLimitedError(
            "The image service is saturated. Try again shortly.",
            retry_after=BUSY_RETRY_AFTER,
            provider_text=text,
        )
    return ProviderError(
        f"The image service refused the request (code {code}).", provider_text=text
    )


def classify_http_error(status: int, body: Any, text: str) -> ProviderError | None:
    """ProviderHTTP hook: auth by HTTP status, everything else by the reply's `code`."""
    if status in (401, 403):
        return AuthError(http_status=status, provider_text=_short(text))
    if _is_envelope(body):
        code = _code_of(body)
        if code is not None:
            props = _props(body)
            error = error_for_code(code, str(body.get("description") or ""), props)
            if error is not None:
                error.http_status = status
                return error
    return None  # generic mapping (404, 429, 5xx) in ProviderHTTP


def _short(text: str, limit: int = 300) -> str | None:
    text = " ".join(text.split())
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the provider ----------------------------------------------------------------------------

_AR_IN_PROMPT = re.compile(r"--(?:ar|aspect)\b", re.IGNORECASE)
_ZOOM_IN_PROMPT = re.compile(r"\s*--zoom\s+\S+", re.IGNORECASE)
_PIC_READER_INDEX = re.compile(r"^MJ::Job::PicReader::([1-9])$", re.IGNORECASE)
_BLEND_DIMENSIONS = {
    BlendDimension.PORTRAIT: "PORTRAIT",
    BlendDimension.SQUARE: "SQUARE",
    BlendDimension.LANDSCAPE: "LANDSCAPE",
}


def _ratio_text(ratio: Decimal) -> str:
    text = format(ratio.normalize(), "f")
    return text


def zoom_prompt(prompt: str, ratio: Decimal) -> str:
    """The Custom Zoom modal prompt: the prompt with its own --zoom replaced by `ratio`."""
    base = _ZOOM_IN_PROMPT.sub("", prompt).strip()
    flag = f"--zoom {_ratio_text(ratio)}"
    return f"{base} {flag}" if base else flag


def _data_url(png_base64: str) -> str:
    value = png_base64.strip()
    return value if value.startswith("data:") else f"data:image/png;base64,{value}"


def _sniff_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "image/png"


class MJProxyProvider:
    name = "mjproxy"

    def __init__(
        self,
        *,
        base_url: str,
        api_secret: str | None,
        auth_style: str = "mj-api-secret",
        timeout: float = 20.0,
        load_image: Callable[[str], Awaitable[bytes]] | None = None,
        http: ProviderHTTP | None = None,
        notify_hook: str | None = None,
    ) -> None:
        if auth_style not in ("mj-api-secret", "bearer"):
            raise ValueError(f"auth_style must be 'mj-api-secret' or 'bearer', got {auth_style!r}")
        operations = set(_BASE_OPERATIONS)
        if load_image is not None:
            operations.add(OperationKind.BLEND)
        self.capabilities = Capabilities(
            operations=frozenset(operations),
            can_cancel=True,
            reports_progress=True,
            max_prompt_length=DEFAULT_PROMPT_LIMIT,
            follow_up_window=None,
        )
        self._load_image = load_image
        self._notify_hook = notify_hook
        self.http = http or ProviderHTTP(
            base_url.rstrip("/"),
            headers=self.auth_headers(api_secret, auth_style),
            timeout=timeout,
            classify=classify_http_error,
        )

    @staticmethod
    def auth_headers(api_secret: str | None, auth_style: str) -> dict[str, str]:
        headers = {"accept": "application/json"}
        if api_secret is None:
            return headers
        if auth_style == "bearer":
            headers["Authorization"] = f"Bearer {api_secret}"
        else:
            headers["mj-api-secret"] = api_secret
        return headers

    async def aclose(self) -> None:
        await self.http.aclose()

    async def account(self) -> AccountInfo:
        return AccountInfo()  # the protocol has no standard account endpoint

    # --- requests --------------------------------------------------------------------------

    async def submit(
        self, operation: Operation, *, job: Job, parent: Job | None
    ) -> ProviderSnapshot:
        op = operation
        state = job.id[:STATE_LIMIT]
        if op.kind is OperationKind.SEED:
            ref = _parent_ref(parent)
            return await self._seed(ref)
        if op.kind is OperationKind.IMAGINE:
            return await self._create("/mj/submit/imagine", self.imagine_body(op, state=state))
        if op.kind is OperationKind.DESCRIBE:
            return await self._create("/mj/submit/describe", self.describe_body(op, state=state))
        if op.kind is OperationKind.BLEND:
            return await self._create("/mj/submit/blend", await self.blend_body(op, state=state))
        if op.kind in (OperationKind.SHORTEN, OperationKind.RETEXTURE, OperationKind.UPLOAD_EDIT):
            path, body = self.uploaded_body(op, state=state)
            return await self._create(path, body)
        if op.kind is OperationKind.VIDEO_FROM_IMAGE:
            return await self._create("/mj/submit/video", self.video_body(op, state=state))
        if op.kind is OperationKind.VIDEO_EXTEND:
            return await self._extend(op, parent, state)
        if op.kind is OperationKind.VIDEO_UPSCALE:
            raise UnsupportedOperationError(
                "midjourney-proxy makes HD videos only when they are created (/animate hd)."
            )
        if op.kind is OperationKind.VIDEO and (problem := video_problem(op)):
            raise InvalidRequestError(problem)
        if op.kind is OperationKind.VIDEO and _animate_by_image(op, parent):
            body = self.video_from_job(op, parent, state=state)
            return await self._create("/mj/submit/video", body)
        if op.kind is OperationKind.EDIT:
            raise UnsupportedOperationError(
                "midjourney-proxy cannot edit its own jobs (its /mj/submit/edits takes an image)."
            )
        return await self._follow_up(op, parent, state)

    async def fetch(self, job: Job) -> ProviderSnapshot:
        ref = job.provider_ref
        if not ref:
            raise NotFoundError("The job has no midjourney-proxy task id.")
        if ref.endswith("#seed"):
            return await self._seed(ref.removesuffix("#seed"))
        reply = await self.http.request("GET", f"/mj/task/{ref}/fetch")
        if reply is None or reply == "":
            raise NotFoundError(provider_text=f"task {ref} not found")  # trueai: 204, no body
        if not isinstance(reply, dict):
            raise MalformedReplyError(provider_text="task is not a JSON object")
        if _is_envelope(reply) and "status" not in reply:
            _raise_for_code(reply)
            raise MalformedReplyError(provider_text="reply has no task")
        return parse_task(reply)

    def parse_push(
        self, body: Any, *, operation: Operation | None = None
    ) -> ProviderSnapshot | None:
        """A notifyHook post: the full task object, on every status/progress change."""
        if not isinstance(body, dict) or _get(body, "id") in (None, ""):
            return None
        if _is_envelope(body) and _get(body, "status") is None:
            return None  # a submit-style reply, not a task
        try:
            return parse_task(body)
        except MalformedReplyError:
            return None

    async def cancel(self, job: Job) -> None:
        ref = job.provider_ref
        if not ref:
            raise NotFoundError("The job has no midjourney-proxy task id.")
        if ref.endswith("#seed"):
            return
        reply = await self.http.request("POST", f"/mj/task/{ref}/cancel", json_body={})
        if _is_envelope(reply):
            _raise_for_code(reply)

    # --- request bodies ----------------------------------------------------------------------

    def _common(self, body: dict[str, Any], state: str) -> dict[str, Any]:
        body["state"] = state
        if self._notify_hook:
            body["notifyHook"] = self._notify_hook
        return body

    def imagine_body(self, op: Operation, *, state: str) -> dict[str, Any]:
        prompt = (op.prompt or "").strip()
        if not prompt:
            raise InvalidRequestError("Imagine needs a prompt.")
        if op.aspect_ratio and not _AR_IN_PROMPT.search(prompt):
            prompt = f"{prompt} --ar {op.aspect_ratio}"
        body: dict[str, Any] = {"prompt": prompt}
        if op.mode is not None:
            body["accountFilter"] = {"modes": [op.mode.value.upper()]}
        return self._common(body, state)

    def uploaded_body(self, op: Operation, *, state: str) -> tuple[str, dict[str, Any]]:
        """Shorten `{prompt}`; retexture and edits `{prompt, image}` (a URL; the server
        needs EnableUserCustomUploadBase64 for both, and has no canvas or mask)."""
        prompt = (op.prompt or "").strip()
        what = {
            OperationKind.SHORTEN: "Shorten",
            OperationKind.RETEXTURE: "Retexture",
            OperationKind.UPLOAD_EDIT: "Edit",
        }[op.kind]
        if not prompt:
            raise InvalidRequestError(f"{what} needs a prompt.")
        if op.kind is OperationKind.SHORTEN:
            return "/mj/submit/shorten", self._common({"prompt": prompt}, state)
        if not op.image_urls:
            raise InvalidRequestError(f"{what} needs an image.")
        path = "/mj/submit/retexture" if op.kind is OperationKind.RETEXTURE else "/mj/submit/edits"
        return path, self._common({"prompt": prompt, "image": op.image_urls[0]}, state)

    def describe_body(self, op: Operation, *, state: str) -> dict[str, Any]:
        if not op.image_urls:
            raise InvalidRequestError("Describe needs an image.")
        return self._common({"link": op.image_urls[0]}, state)

    async def blend_body(self, op: Operation, *, state: str) -> dict[str, Any]:
        if self._load_image is None:
            raise UnsupportedOperationError(
                "Blend through midjourney-proxy needs the bot to download the images."
            )
        if not 2 <= len(op.image_urls) <= 5:
            raise InvalidRequestError("Blend needs between 2 and 5 images.")
        urls = []
        for url in op.image_urls:
            data = await self._load_image(url)
            encoded = base64.b64encode(data).decode("ascii")
            urls.append(f"data:{_sniff_mime(data)};base64,{encoded}")
        dimension = _BLEND_DIMENSIONS[op.dimension or BlendDimension.SQUARE]
        return self._common({"base64Array": urls, "dimensions": dimension}, state)

    def video_body(self, op: Operation, *, state: str) -> dict[str, Any]:
        """POST /mj/submit/video from an outside image (PROVIDERS.md §8.4)."""
        if problem := video_problem(op):
            raise InvalidRequestError(problem)
        # `prompt` is required; without words it names the motion the body also gives.
        motion = op.motion or "low"
        body: dict[str, Any] = {
            "prompt": (op.prompt or "").strip() or f"--motion {motion}",
            "image": op.image_urls[0],
            "motion": motion,
            "loop": bool(op.video_loop),
            "videoType": VIDEO_TYPES[bool(op.hd)],
            "batchSize": op.batch_size or 4,
        }
        if op.end_image_url:
            body["endImage"] = op.end_image_url
        return self._common(body, state)

    def video_from_job(self, op: Operation, parent: Job | None, *, state: str) -> dict[str, Any]:
        """/animate on a job: its image as the start frame of /mj/submit/video (the
        button takes no loop, end image, batch or HD)."""
        if parent is None or not parent.result_url:
            raise InvalidRequestError("That job has no image to animate yet.")
        start = dataclasses.replace(
            op, kind=OperationKind.VIDEO_FROM_IMAGE, image_urls=(parent.result_url,)
        )
        return self.video_body(start, state=state)

    def extend_body(self, op: Operation, parent: Job, *, state: str) -> dict[str, Any]:
        """POST /mj/submit/video {action: "extend", taskId, index} for video N of a batch."""
        if problem := video_problem(op):
            raise InvalidRequestError(problem)
        count = len(parent.videos)
        number = op.index or 1
        if count == 0:
            raise InvalidRequestError("Extend needs a finished video job.")
        if not 1 <= number <= count:
            raise InvalidRequestError(f"Video {number} does not exist: pick 1 to {count}.")
        prompt = (op.prompt or parent.operation.prompt or "").strip() or "extend"
        body: dict[str, Any] = {
            "action": "extend",
            "taskId": _parent_ref(parent),
            "index": number - 1,
            "prompt": prompt,
            "motion": op.motion or "low",
        }
        return self._common(body, state)

    async def _extend(self, op: Operation, parent: Job | None, state: str) -> ProviderSnapshot:
        if parent is None or not parent.provider_ref:
            raise InvalidRequestError("That follow-up needs a finished job to start from.")
        name = f"extend_{op.motion or 'low'}:{op.index or 1}"
        raw = next((a.raw for a in parent.actions if a.name == name), "")
        if raw.startswith("MJ::"):
            # A single video carries its own Extend button: pressed like any button.
            body = {"taskId": _parent_ref(parent), "customId": raw}
            reply = await self.http.request(
                "POST", "/mj/submit/action", json_body=self._common(body, state), creates=True
            )
            code, task_id, _ = _accepted(reply)
            return _submitted(task_id, code, reply, custom_id=raw)
        return await self._create("/mj/submit/video", self.extend_body(op, parent, state=state))

    def action_body(self, op: Operation, parent: Job, *, state: str) -> dict[str, Any]:
        custom_id = self.custom_id_for(op, parent)
        body: dict[str, Any] = {"taskId": _parent_ref(parent), "customId": custom_id}
        # Animate carries the words only (no image flags): that is no remix.
        changed = op.kind is not OperationKind.VIDEO and op.prompt is not None
        if op.kind is OperationKind.REMIX or (
            changed and (op.prompt or "").strip() != (parent.operation.prompt or "").strip()
        ):
            body["enableRemix"] = True
        return self._common(body, state)

    def custom_id_for(self, op: Operation, parent: Job) -> str:
        """The parent's button that performs `op` (raises when the parent has none)."""
        if op.kind is OperationKind.PROVIDER_ACTION:
            raw = (op.raw_action or "").strip()
            if not raw:
                raise InvalidRequestError("That action has no provider button.")
            for action in parent.actions:
                if action.name == f"provider:{raw}" or action.raw == raw:
                    return action.raw
            return raw
        wanted = self._wanted_names(op)
        by_name = {a.name: a.raw for a in parent.actions}
        for name in wanted:
            if name in by_name:
                return by_name[name]
        label = " or ".join(wanted)
        raise UnsupportedOperationError(
            f"That image has no {label} button at midjourney-proxy.",
            provider_text=f"parent offers: {', '.join(sorted(by_name)) or 'nothing'}",
        )

    @staticmethod
    def _wanted_names(op: Operation) -> list[str]:
        kind = op.kind
        if kind is OperationKind.UPSCALE:
            if op.index is not None:
                return [f"pick:{op.index}"]
            if op.variant:
                return [f"upscale_{op.variant}", f"redo_upscale_{op.variant}"]
            raise InvalidRequestError("Upscale needs a tile or a kind of upscale.")
        if kind in (OperationKind.VARIATION, OperationKind.REMIX):
            if op.index is not None:
                return [f"vary_grid:{op.index}"]
            if op.variant in ("subtle", "strong"):
                return [f"vary_{op.variant}"]
            if kind is OperationKind.REMIX:
                return ["vary_strong"]
            raise InvalidRequestError("Variation needs a tile or subtle/strong.")
        if kind is OperationKind.REROLL:
            return ["reroll"]
        if kind is OperationKind.ENHANCE:
            return ["enhance"]  # only where the task's buttons offer it (a V7 draft)
        if kind is OperationKind.VIDEO:
            return [f"animate_{op.motion or 'low'}:{op.index or 1}"]
        if kind is OperationKind.INPAINT:
            return ["vary_region"]
        if kind is OperationKind.OUTPAINT:
            if op.zoom_ratio is None:
                raise InvalidRequestError("Zoom needs a ratio.")
            fixed = {
                Decimal(2): "zoom_out_2x",
                Decimal("1.5"): "zoom_out_1_5x",
                Decimal(1): "make_square",
            }
            return [fixed.get(op.zoom_ratio, "zoom_custom")]
        if kind is OperationKind.PAN:
            if op.direction is None:
                raise InvalidRequestError("Pan needs a direction.")
            return [f"pan_{op.direction.value}"]
        raise UnsupportedOperationError(f"midjourney-proxy cannot do {kind.value}.")

    def modal_body(
        self,
        op: Operation,
        parent: Job,
        custom_id: str,
        modal_task_id: str,
        *,
        state: str,
        final_prompt: str | None = None,
    ) -> dict[str, Any]:
        """The second step for a MODAL task: the prompt (and mask) the window asks for."""
        prompt = self._modal_prompt(op, parent, custom_id, final_prompt)
        body: dict[str, Any] = {"taskId": modal_task_id, "prompt": prompt}
        if op.kind is OperationKind.INPAINT or custom_id.startswith("MJ::Inpaint::"):
            if not op.mask_png_base64:
                raise InvalidRequestError("Vary (Region) needs a mask.")
            body["maskBase64"] = _data_url(op.mask_png_base64)
        return self._common(body, state)

    @staticmethod
    def _modal_prompt(op: Operation, parent: Job, custom_id: str, final_prompt: str | None) -> str:
        prompt = (op.prompt or "").strip()
        if not prompt and (m := _PIC_READER_INDEX.match(custom_id)):
            suggestions = parent.prompts or []
            index = int(m[1]) - 1
            if index < len(suggestions):
                prompt = suggestions[index].strip()
        if not prompt:
            prompt = (parent.operation.prompt or "").strip()
        if not prompt:
            prompt = (final_prompt or "").strip()
        if custom_id.startswith("MJ::CustomZoom::"):
            if op.zoom_ratio is None:
                raise InvalidRequestError("Custom Zoom needs a zoom ratio.")
            return zoom_prompt(prompt, op.zoom_ratio)
        if not prompt:
            raise InvalidRequestError("That action needs a prompt.")
        return prompt

    # --- flows -------------------------------------------------------------------------------

    async def _create(self, path: str, body: dict[str, Any]) -> ProviderSnapshot:
        reply = await self.http.request("POST", path, json_body=body, creates=True)
        code, task_id, _ = _accepted(reply)
        return _submitted(task_id, code, reply)

    async def _follow_up(self, op: Operation, parent: Job | None, state: str) -> ProviderSnapshot:
        if parent is None or not parent.provider_ref:
            raise InvalidRequestError("That follow-up needs a finished job to start from.")
        body = self.action_body(op, parent, state=state)
        custom_id = str(body["customId"])
        needs_modal = custom_id.startswith(("MJ::CustomZoom::", "MJ::Inpaint::"))
        if needs_modal:
            # Check the modal's input before anything is created.
            self.modal_body(op, parent, custom_id, "-", state=state)
        reply = await self.http.request("POST", "/mj/submit/action", json_body=body, creates=True)
        code, task_id, props = _accepted(reply)
        description = str(reply.get("description") or "").lower()
        if not (needs_modal or code == CODE_EXISTED or MODAL_DESCRIPTION in description):
            return _submitted(task_id, code, reply, custom_id=custom_id)
        final_prompt = (
            props.get("finalPrompt") if isinstance(props.get("finalPrompt"), str) else None
        )
        log.debug("mj-proxy task %s waits for its window: submitting the modal", task_id)
        try:
            modal = self.modal_body(
                op, parent, custom_id, task_id, state=state, final_prompt=final_prompt
            )
            reply = await self.http.request(
                "POST", "/mj/submit/modal", json_body=modal, creates=True
            )
            code, modal_id, _ = _accepted(reply)
        except SubmitOutcomeUnknownError:
            raise  # the task may be running: leave it alone, never send again
        except ProviderError:
            # Refused for certain: don't leave the MODAL task waiting at the proxy.
            await self._discard_modal(task_id)
            raise
        return _submitted(modal_id or task_id, code, reply, custom_id=custom_id, modal=True)

    async def _discard_modal(self, task_id: str) -> None:
        try:
            await self.http.request("POST", f"/mj/task/{task_id}/cancel", json_body={})
        except ProviderError as exc:
            log.info("mj-proxy MODAL task %s could not be cancelled: %s", task_id, exc)

    async def _seed(self, ref: str) -> ProviderSnapshot:
        reply = await self.http.request("GET", f"/mj/task/{ref}/image-seed")
        if not isinstance(reply, dict):
            if reply is None:
                raise NotFoundError(provider_text=f"task {ref} not found")
            raise MalformedReplyError(provider_text="seed reply is not a JSON object")
        _raise_for_code(reply)
        seed = reply.get("result")
        if seed in (None, ""):
            raise MalformedReplyError(provider_text="seed reply without a seed")
        return ProviderSnapshot(
            ref=f"{ref}#seed",
            status=JobStatus.COMPLETED,
            progress=100,
            seed=str(seed),
            raw_status="SUCCESS",
        )


def _animate_by_image(op: Operation, parent: Job | None) -> bool:
    """Whether Animate on a job must go as /mj/submit/video: options its button lacks."""
    if parent is None:
        return False
    options = (op.video_loop, op.end_image_url, op.batch_size, op.hd)
    has_button = any(a.name == f"animate_{op.motion or 'low'}:1" for a in parent.actions)
    return any(v not in (None, False) for v in options) or not has_button


def _props(reply: dict[str, Any]) -> dict[str, Any]:
    props = reply.get("properties")
    return props if isinstance(props, dict) else {}


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return max(0, int(float(str(value).strip())))
    except ValueError:
        return None


def _parent_ref(parent: Job | None) -> str:
    if parent is None or not parent.provider_ref:
        raise InvalidRequestError("That follow-up needs a finished job to start from.")
    return parent.provider_ref.removesuffix("#seed")


def _raise_for_code(reply: dict[str, Any]) -> None:
    code = _code_of(reply)
    if code is None:
        return
    props = _props(reply)
    error = error_for_code(code, str(reply.get("description") or ""), props)
    if error is not None:
        raise error


def _accepted(reply: Any) -> tuple[int, str, dict[str, Any]]:
    """(code, task id, properties) of an accepted submit reply; raises for the others."""
    if not isinstance(reply, dict):
        raise MalformedReplyError(provider_text="submit reply is not a JSON object")
    code = _code_of(reply)
    if code is None:
        raise MalformedReplyError(provider_text="submit reply without a code")
    _raise_for_code(reply)
    result = reply.get("result")
    if isinstance(result, (int, float)) and not isinstance(result, bool):
        result = str(int(result))
    if not isinstance(result, str) or not result.strip():
        raise MalformedReplyError(provider_text="submit reply without a task id")
    props = _props(reply)
    return code, result.strip(), props


def _submitted(
    task_id: str,
    code: int,
    reply: dict[str, Any],
    *,
    custom_id: str | None = None,
    modal: bool = False,
) -> ProviderSnapshot:
    props = _props(reply)
    queue: int | None = None
    if code == CODE_IN_QUEUE:
        queue = _int(props.get("numberOfQueues"))
    data: dict[str, Any] = {}
    if custom_id:
        data["custom_id"] = custom_id
    if modal:
        data["modal"] = True
    return ProviderSnapshot(
        ref=task_id,
        status=JobStatus.SUBMITTED,
        queue_position=queue,
        data=data,
        raw_status="NOT_START" if code == CODE_IN_QUEUE else "SUBMITTED",
    )
