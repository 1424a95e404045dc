"""Protocol-faithful fakes of Legnext (PROVIDERS.md §2) and Vtrix's midjourney_* models (§3).

Both backends front the same Midjourney engine, addressed as (jobId, imageNo 0-3), so one
simulation (`MidjourneySim`) owns the upstream jobs and validates follow-ups, and two aiohttp
front ends speak each backend's wire format over it:

    FakeLegnext   POST /v1/{diffusion,upscale,variation,remix,reroll,outpaint,pan,inpaint,
                            edit,enhance,describe}
                  POST /v1/{video-diffusion,extend-video,video-upscale}   (PROVIDERS.md §8.2)
                  GET  /v1/job/{job_id}
    FakeVtrix     POST /model/v1/generation  {"model": "midjourney_<op>", "input": [{"params"}]}
                  GET  /model/v1/generation/task/{id}

Like tests.fakes.piapi: real HTTP on 127.0.0.1, state computed lazily from a clock (with a
`FakeClock` a test moves a job along by advancing time), scripted outcomes (`Profile`),
fault injection (`inject`), request records (`requests`), a control API under `/_control/`,
and images served by the fake itself under `/cdn/` (real PNGs from tests.fakes.images).

    async with FakeLegnext(clock=FakeClock()) as fake: ...   # x-api-key "test-key"
    async with FakeVtrix(clock=FakeClock()) as fake: ...     # Authorization: Bearer test-key

CLI: python -m tests.fakes.legnext --backend legnext|vtrix --port 8766 --api-key KEY
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import math
import re
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

from aiohttp import ClientError, ClientSession, web

from bot.clock import Clock, FakeClock, SystemClock
from tests.fakes import images, videos
from tests.fakes.piapi import Fault, Profile
from tests.fakes.push import WebhookSender

__all__ = [
    "FAULTS",
    "LEGNEXT_OPS",
    "VTRIX_ERROR_TEXTS",
    "VTRIX_MODEL_CODES",
    "VTRIX_OPS",
    "FakeLegnext",
    "FakeVtrix",
    "MidjourneySim",
    "Profile",
    "RequestRecord",
    "SimError",
    "SimJob",
    "vtrix_code",
]

LEGNEXT_OPS = (
    "diffusion",
    "upscale",
    "variation",
    "remix",
    "reroll",
    "outpaint",
    "pan",
    "inpaint",
    "edit",
    "enhance",
    "describe",
    # Issue 19 (PROVIDERS.md §8.2): a prompt shortened; a member's uploaded image.
    "shorten",
    "retexture",
    "upload-paint",
)
UPLOADED_OPS = frozenset({"retexture", "upload-paint"})
VTRIX_OPS = (
    "diffusion",
    "upscale",
    "variation",
    "remix",
    "outpaint",
    "inpaint",
    "pan",
    "edit",
    "enhance",
    "retexture",
    "uploadpaint",  # midjourney_uploadpaint = Legnext's upload-paint
)
FOLLOW_UP_OPS = frozenset(LEGNEXT_OPS) - {"diffusion", "describe", "shorten", *UPLOADED_OPS}
IMG_URL_LIMIT = 1024
ALREADY_ENHANCED = "image {n} of job {job} has already been enhanced"
UNFETCHABLE = "[Invalid link!] Could not fetch the image at {url} (HTTP {status})"
# Video (PROVIDERS.md §8.2): 4 videos per job (`--bs` in the prompt may ask for 1 or 2),
# minutes of work, each extend adds ~4 s, at most 4 extends (~21 s).
LEGNEXT_VIDEO_OPS = ("video-diffusion", "extend-video", "video-upscale")
VIDEO_PROFILES = {
    "video-diffusion": Profile(pending_s=20.0, processing_s=240.0, progress_step_s=30.0),
    "extend-video": Profile(pending_s=20.0, processing_s=240.0, progress_step_s=30.0),
    "video-upscale": Profile(pending_s=20.0, processing_s=300.0, progress_step_s=30.0),
}
MAX_EXTENDS = 4
NO_START_FRAME = "no start frame provided"  # the set-up failure of issue 18 (#657)
VIDEO_DISABLED = "video generation is not enabled for this account"
_START_URL_RE = re.compile(r"^\s*(https?://\S+)")
_BS_RE = re.compile(r"(?<!\S)--bs\s+(\d+)")
_MOTION_RE = re.compile(r"(?<!\S)--motion\s+(\S+)")
FAULTS = (
    "401",
    "404",
    "429",
    "500",
    "502",
    "503",
    "timeout",
    "malformed",
    "reset",
    "400_code",
)
PROMPT_LIMIT = 8192

# Vtrix codes are VVV MMM EEE (004 = Midjourney). Documented MMM: diffusion 001, edit 007,
# remix 011; the others are the fake's own choice (the real ones are unpublished).
VTRIX_MODEL_CODES = {
    "diffusion": 1,
    "upscale": 2,
    "variation": 3,
    "outpaint": 4,
    "inpaint": 5,
    "pan": 6,
    "edit": 7,
    "enhance": 8,
    "remix": 11,
}
E_TASK_ID_MISSING = 1
E_IMAGE_NO_MISSING = 2
E_IMAGE_NO_INVALID = 3
E_PROMPT_MISSING = 4
E_PROMPT_LENGTH = 5
E_CANVAS_MISSING = 6
E_IMGPOS_MISSING = 7
E_CALLBACK_INVALID = 8
E_INVALID_PARAMETER = 20  # undocumented: any other invalid parameter (the fake's choice)
E_GENERATION_FAILED = 98
E_UNAVAILABLE = 99
VTRIX_ERROR_TEXTS = {  # as the midjourney_edit page words them
    E_TASK_ID_MISSING: "Task ID missing",
    E_IMAGE_NO_MISSING: "Image number missing",
    E_IMAGE_NO_INVALID: "Invalid image number",
    E_PROMPT_MISSING: "Prompt missing",
    E_PROMPT_LENGTH: "Invalid prompt length",
    E_CANVAS_MISSING: "Canvas parameters missing",
    E_IMGPOS_MISSING: "Image position parameters missing",
    E_CALLBACK_INVALID: "Invalid callback URL",
    E_GENERATION_FAILED: "Generation failed",
    E_UNAVAILABLE: "Service unavailable",
}

# Legnext points frozen at submit and consumed on completion (describe 20, enhance 80 are
# documented; the rest follow the docs' diffusion example).
LEGNEXT_POINTS = {
    "diffusion": 20,
    "upscale": 10,
    "variation": 20,
    "remix": 20,
    "reroll": 20,
    "outpaint": 20,
    "pan": 20,
    "inpaint": 20,
    "edit": 30,
    "enhance": 80,
    "describe": 20,
    "shorten": 20,
    "retexture": 120,
    "upload-paint": 120,
    "video-diffusion": 160,  # ~8 image jobs, as Midjourney bills a video
    "extend-video": 160,
    "video-upscale": 480,  # the docs' example
}
VTRIX_USD = {
    "diffusion": Decimal("0.04"),
    "upscale": Decimal("0.02"),
    "variation": Decimal("0.04"),
    "remix": Decimal("0.04"),
    "outpaint": Decimal("0.04"),
    "inpaint": Decimal("0.04"),
    "pan": Decimal("0.04"),
    "edit": Decimal("0.05"),
    "enhance": Decimal("0.08"),
}
LEGNEXT_FAILED_CODE = 10001  # Legnext's failure codes are undocumented; non-zero will do
BANNED_MESSAGE = "Banned prompt detected"
BANNED_RAW = "The prompt was blocked by moderation: it contains a banned word."
_BANNED_RE = re.compile(r"\bbanned\b", re.IGNORECASE)
_DRAFT_RE = re.compile(r"(?<!\S)--draft\b", re.IGNORECASE)
_AR_RE = re.compile(r"--(?:ar|aspect)\s+(\d+)\s*:\s*(\d+)", re.IGNORECASE)
_RATIO_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_IMAGE_RE = re.compile(r"^(?P<id>[0-9a-f-]{36})(?:_(?P<no>[0-3]))?\.png$")
_VIDEO_RE = re.compile(r"^(?P<id>[0-9a-f-]{36})_(?P<no>[0-3])\.mp4$")
_AUTH_HEADERS = ("x-api-key", "authorization")
_REDACTED = "<redacted>"


def vtrix_code(op: str, eee: int) -> int:
    """The integer Vtrix error code of model `op` and error `eee` (e.g. 4007003)."""
    return 4_000_000 + VTRIX_MODEL_CODES.get(op, 0) * 1000 + eee


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _result_size(image_size: int, ratio: str) -> tuple[int, int]:
    match = _RATIO_RE.match(ratio)
    w, h = (int(match.group(1)), int(match.group(2))) if match else (1, 1)
    if w <= 0 or h <= 0:
        w = h = 1
    if w >= h:
        return image_size, max(2, round(image_size * h / w / 2) * 2)
    return max(2, round(image_size * w / h / 2) * 2), image_size


# --- the simulation -----------------------------------------------------------------------------


class SimError(Exception):
    """A request the upstream engine refuses: HTTP 400, with the Vtrix error part `eee`."""

    def __init__(self, eee: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.eee, self.message, self.status = eee, message, status


@dataclass
class SimJob:
    """One upstream Midjourney job; everything visible derives from it and the clock."""

    job_id: str
    op: str
    params: dict[str, Any]
    prompt: str  # text (diffusion) or remixPrompt: what profiles and failures match
    source_prompt: str  # the prompt of the imagine this descends from (for --draft)
    aspect_ratio: str
    image_count: int  # 4 grid, 1 single, 0 describe
    created_at: float
    profile: Profile
    parent: tuple[str, int] | None = None  # (jobId, imageNo)
    points: int = 0
    usd: Decimal = Decimal("0")
    fail_code: int | None = None  # Vtrix: the error code a failed job reports
    fail_text: str | None = None
    task_id: str | None = None  # Vtrix's own task id, when created through FakeVtrix
    callback: str | None = None
    video_count: int = 0  # a video job: how many MP4s it makes
    extends: int = 0  # how many extends led to this video
    cover_url: str | None = None  # an outside start image (video from a URL)

    def status(self, now: float) -> str:
        elapsed = now - self.created_at
        p = self.profile
        if elapsed < p.pending_s:
            return "pending"
        if p.stuck_at is not None or elapsed < p.pending_s + p.processing_s:
            return "processing"
        return p.outcome

    @property
    def started_at(self) -> float:
        return self.created_at + self.profile.pending_s

    @property
    def ended_at(self) -> float:
        return self.started_at + self.profile.processing_s

    def fraction(self, now: float) -> float:
        """Progress 0.0-1.0 while processing, in steps of `progress_step_s`, below 1."""
        p = self.profile
        status = self.status(now)
        if status == "pending":
            return 0.0
        if status != "processing":
            return 1.0
        if p.processing_s <= 0 or p.progress_step_s <= 0:
            return 0.0
        steps = math.floor(max(0.0, now - self.started_at) / p.progress_step_s)
        value = min(0.99, steps * p.progress_step_s / p.processing_s)
        if p.stuck_at is not None:
            value = min(value, p.stuck_at / 100)
        return round(value, 2)

    @property
    def draft(self) -> bool:
        return bool(_DRAFT_RE.search(self.source_prompt))

    @property
    def is_grid(self) -> bool:
        return self.image_count >= 2


class MidjourneySim:
    """The upstream engine both fakes front: jobs, validation, images, costs."""

    def __init__(self, clock: Clock, *, image_size: int = 256) -> None:
        self.clock = clock
        self.image_size = image_size
        self.jobs: dict[str, SimJob] = {}
        self.default_profile = Profile()
        self.profile_for_prompt: dict[str, Profile] = {}
        self.profile_for_op: dict[str, Profile] = {}
        # Legnext's allow-list: entries here replace the computed ones on every job.
        self.available_actions_override: dict[str, list[int]] = {}
        self._images: dict[str, bytes] = {}
        # Video knobs: an account without video refuses every video create; each MP4 is
        # `video_bytes` long (tests ask for more than the upload limit).
        self.video_enabled = True
        self.video_bytes = videos.DEFAULT_SIZE
        self.profile_for_op.update({op: dataclasses.replace(p) for op, p in VIDEO_PROFILES.items()})

    @property
    def now(self) -> float:
        return self.clock.time()

    # --- validation ---

    def validate(self, op: str, params: dict[str, Any]) -> tuple[int, str, tuple[str, int] | None]:
        """Check a create request; return (image count, aspect ratio, parent address)."""
        if op == "diffusion":
            text = self._prompt(params, "text", required=True)
            match = _AR_RE.search(text)
            ratio = f"{match.group(1)}:{match.group(2)}" if match else "1:1"
            self._check_callback(params)
            return 4, ratio, None
        if op == "describe":
            url = params.get("imgUrl")
            if not url:
                raise SimError(E_INVALID_PARAMETER, "imgUrl is required")
            if not _is_http_url(url):
                raise SimError(E_INVALID_PARAMETER, f"imgUrl must be an http(s) URL, got {url!r}")
            self._check_callback(params)
            return 0, "1:1", None
        if op == "shorten":
            self._prompt(params, "prompt", required=True)
            self._check_callback(params)
            return 0, "1:1", None
        if op in UPLOADED_OPS or op == "uploadpaint":
            return self._validate_uploaded(op, params)
        if op not in FOLLOW_UP_OPS:
            raise SimError(E_INVALID_PARAMETER, f"unsupported operation {op!r}")

        job_id = params.get("jobId")
        if job_id is None or job_id == "":
            raise SimError(E_TASK_ID_MISSING, "jobId is required")
        if not isinstance(job_id, str):
            raise SimError(E_INVALID_PARAMETER, "jobId must be a string")
        if op == "reroll":
            parent = self._completed_parent(job_id)
            if not parent.is_grid:
                raise SimError(E_INVALID_PARAMETER, "reroll needs a job with four images")
            self._check_allowed(parent, "reroll", 0)
            self._check_callback(params)
            return 4, parent.aspect_ratio, (job_id, 0)

        image_no = params.get("imageNo")
        if image_no is None:
            raise SimError(E_IMAGE_NO_MISSING, "imageNo is required")
        if not _is_int(image_no) or not 0 <= image_no <= 3:
            raise SimError(E_IMAGE_NO_INVALID, f"imageNo must be 0, 1, 2 or 3, got {image_no!r}")
        ratio_override: str | None = None
        if op == "upscale":
            self._ranged_int(params, "type", (0, 1, 2, 3))
        elif op == "variation":
            self._ranged_int(params, "type", (0, 1))
            self._prompt(params, "remixPrompt", required=False)
        elif op == "remix":
            self._prompt(params, "remixPrompt", required=True)
            if "mode" in params:
                self._ranged_int(params, "mode", (0, 1))
        elif op == "outpaint":
            self._ranged_float(params, "scale", 1.1, 2.0)
            self._prompt(params, "remixPrompt", required=False)
        elif op == "pan":
            self._ranged_int(params, "direction", (0, 1, 2, 3))
            self._ranged_float(params, "scale", 1.1, 3.0)
            self._prompt(params, "remixPrompt", required=False)
        elif op == "inpaint":
            if "mask" not in params:
                raise SimError(E_INVALID_PARAMETER, "mask is required")
            self._check_mask(params["mask"])
            self._prompt(params, "remixPrompt", required=False)
        elif op == "edit":
            self._prompt(params, "remixPrompt", required=True)
            canvas, pos = params.get("canvas"), params.get("imgPos")
            if not isinstance(canvas, dict) or not canvas:
                raise SimError(E_CANVAS_MISSING, "canvas is required")
            if not isinstance(pos, dict) or not pos:
                raise SimError(E_IMGPOS_MISSING, "imgPos is required")
            self._check_edit_geometry(canvas, pos)
            if "mask" in params:
                self._check_mask(params["mask"])
            g = math.gcd(canvas["width"], canvas["height"])
            ratio_override = f"{canvas['width'] // g}:{canvas['height'] // g}"
        self._check_callback(params)

        parent = self._completed_parent(job_id)
        if image_no >= parent.image_count:
            raise SimError(
                E_IMAGE_NO_INVALID,
                f"imageNo {image_no} is out of range: job {job_id} has {parent.image_count} "
                f"image(s)",
            )
        self._check_allowed(parent, op, image_no)
        if op == "enhance":
            self._check_not_enhanced(job_id, image_no)
        count = 1 if op == "upscale" else 4
        return count, ratio_override or parent.aspect_ratio, (job_id, image_no)

    def _validate_uploaded(
        self, op: str, params: dict[str, Any]
    ) -> tuple[int, str, tuple[str, int] | None]:
        """retexture {imgUrl, remixPrompt}; upload-paint adds canvas, imgPos and mask, all
        required (PROVIDERS.md §8.2). The result is a grid like an imagine's."""
        url = params.get("imgUrl")
        if not url:
            raise SimError(E_INVALID_PARAMETER, "imgUrl is required")
        if not _is_http_url(url) or len(str(url)) > IMG_URL_LIMIT:
            raise SimError(
                E_INVALID_PARAMETER, f"imgUrl must be an http(s) URL of at most {IMG_URL_LIMIT}"
            )
        self._prompt(params, "remixPrompt", required=True)
        ratio = "1:1"
        if op != "retexture":
            canvas, pos = params.get("canvas"), params.get("imgPos")
            if not isinstance(canvas, dict) or not canvas:
                raise SimError(E_CANVAS_MISSING, "canvas is required")
            if not isinstance(pos, dict) or not pos:
                raise SimError(E_IMGPOS_MISSING, "imgPos is required")
            self._check_edit_geometry(canvas, pos)
            if "mask" not in params:
                raise SimError(E_INVALID_PARAMETER, "mask is required")
            self._check_mask(params["mask"])
            g = math.gcd(canvas["width"], canvas["height"])
            ratio = f"{canvas['width'] // g}:{canvas['height'] // g}"
        self._check_callback(params)
        return 4, ratio, None

    def _check_not_enhanced(self, job_id: str, image_no: int) -> None:
        """A draft image is enhanced once; a second Enhance of it is refused."""
        for job in self.jobs.values():
            if (
                job.op == "enhance"
                and job.parent == (job_id, image_no)
                and job.status(self.now) != "failed"
            ):
                raise SimError(E_INVALID_PARAMETER, ALREADY_ENHANCED.format(n=image_no, job=job_id))

    def shorten_output(self, job: SimJob) -> dict[str, Any]:
        """Five shorter prompts, each keeping fewer of the words (the same shape as a
        describe's output, PROVIDERS.md §8.2)."""
        words = str(job.params.get("prompt", "")).split()
        prompts = [" ".join(words[: max(1, len(words) - k)]) for k in range(1, 6)]
        return {
            "promptEn": prompts[0],
            "description": "/shorten " + " ".join(words),
            "finalPrompt": "\n".join(f"{i}. {p}" for i, p in enumerate(prompts, start=1)),
            "prompts": prompts,
        }

    def _prompt(self, params: dict[str, Any], key: str, *, required: bool) -> str:
        value = params.get(key)
        if value is None:
            if required:
                raise SimError(E_PROMPT_MISSING, f"{key} is required")
            return ""
        if not isinstance(value, str):
            raise SimError(E_INVALID_PARAMETER, f"{key} must be a string")
        if not 1 <= len(value) <= PROMPT_LIMIT or not value.strip():
            raise SimError(
                E_PROMPT_LENGTH,
                f"{key} length must be between 1 and {PROMPT_LIMIT} characters, got {len(value)}",
            )
        return value

    @staticmethod
    def _ranged_int(params: dict[str, Any], key: str, allowed: tuple[int, ...]) -> None:
        value = params.get(key)
        if value is None:
            raise SimError(E_INVALID_PARAMETER, f"{key} is required")
        if not _is_int(value) or value not in allowed:
            raise SimError(
                E_INVALID_PARAMETER,
                f"{key} must be one of {', '.join(map(str, allowed))}, got {value!r}",
            )

    @staticmethod
    def _ranged_float(params: dict[str, Any], key: str, low: float, high: float) -> None:
        value = params.get(key)
        if value is None:
            raise SimError(E_INVALID_PARAMETER, f"{key} is required")
        if not _is_number(value) or not low <= float(value) <= high:
            raise SimError(
                E_INVALID_PARAMETER, f"{key} must be a number from {low} to {high}, got {value!r}"
            )

    @staticmethod
    def _check_callback(params: dict[str, Any]) -> None:
        callback = params.get("callback")
        if callback not in (None, "") and not _is_http_url(callback):
            raise SimError(E_CALLBACK_INVALID, f"callback must be an http(s) URL: {callback!r}")

    @staticmethod
    def _check_mask(mask: Any) -> None:
        if not isinstance(mask, dict):
            raise SimError(E_INVALID_PARAMETER, "mask must be an object with areas or url")
        if "url" in mask and "areas" not in mask:
            if not _is_http_url(mask["url"]):
                raise SimError(E_INVALID_PARAMETER, "mask.url must be an http(s) URL")
            return
        areas = mask.get("areas")
        if not isinstance(areas, list) or not areas:
            raise SimError(E_INVALID_PARAMETER, "mask.areas must be a non-empty list")
        for i, area in enumerate(areas):
            if not isinstance(area, dict):
                raise SimError(E_INVALID_PARAMETER, f"mask.areas[{i}] must be an object")
            w, h, points = area.get("width"), area.get("height"), area.get("points")
            for name, side in (("width", w), ("height", h)):
                if not _is_int(side) or not 500 <= side <= 4096:
                    raise SimError(
                        E_INVALID_PARAMETER,
                        f"mask.areas[{i}].{name} must be from 500 to 4096, got {side!r}",
                    )
            assert isinstance(w, int) and isinstance(h, int)
            if (
                not isinstance(points, list)
                or len(points) < 6
                or len(points) % 2
                or not all(_is_int(p) for p in points)
            ):
                raise SimError(
                    E_INVALID_PARAMETER,
                    f"mask.areas[{i}].points must be an even list of at least 6 integers",
                )
            xs, ys = points[0::2], points[1::2]
            if min(xs) < 0 or max(xs) > w or min(ys) < 0 or max(ys) > h:
                raise SimError(E_INVALID_PARAMETER, f"mask.areas[{i}].points lie outside the area")

    @staticmethod
    def _check_edit_geometry(canvas: dict[str, Any], pos: dict[str, Any]) -> None:
        for key in ("width", "height"):
            if not _is_int(canvas.get(key)) or canvas[key] <= 0:
                raise SimError(E_CANVAS_MISSING, f"canvas.{key} must be a positive integer")
        for key in ("width", "height", "x", "y"):
            if not _is_int(pos.get(key)):
                raise SimError(E_IMGPOS_MISSING, f"imgPos.{key} must be an integer")
        if pos["width"] <= 0 or pos["height"] <= 0:
            raise SimError(E_INVALID_PARAMETER, "imgPos width and height must be positive")
        if (
            pos["x"] < 0
            or pos["y"] < 0
            or pos["x"] + pos["width"] > canvas["width"]
            or pos["y"] + pos["height"] > canvas["height"]
        ):
            raise SimError(E_INVALID_PARAMETER, "imgPos must lie inside the canvas")

    def _completed_parent(self, job_id: str) -> SimJob:
        parent = self.jobs.get(job_id)
        if parent is None:
            raise SimError(E_INVALID_PARAMETER, f"job {job_id} not found")
        status = parent.status(self.now)
        if status != "completed":
            raise SimError(E_INVALID_PARAMETER, f"job {job_id} is not completed (status {status})")
        if parent.image_count == 0:
            raise SimError(E_INVALID_PARAMETER, f"job {job_id} has no images")
        return parent

    def _check_allowed(self, parent: SimJob, op: str, image_no: int) -> None:
        allowed = self.available_actions(parent).get(op)
        if allowed is not None and image_no not in allowed:
            if op == "enhance":
                raise SimError(E_INVALID_PARAMETER, "enhance needs a --v 7 --draft image")
            raise SimError(
                E_INVALID_PARAMETER, f"{op} is not available for image {image_no} of this job"
            )

    # --- jobs ---

    def validate_video(
        self, op: str, params: dict[str, Any]
    ) -> tuple[int, tuple[str, int] | None, str | None, int]:
        """Check a video create; (videos, parent address, outside start image, extends)."""
        if not self.video_enabled:
            raise SimError(E_INVALID_PARAMETER, VIDEO_DISABLED)
        self._check_callback(params)
        prompt = self._prompt(params, "prompt", required=False)
        if op == "video-diffusion":
            if "videoType" in params:
                self._ranged_int(params, "videoType", (0, 1))
            motion = _MOTION_RE.search(prompt)
            if motion and motion.group(1) not in ("low", "high"):
                raise SimError(E_INVALID_PARAMETER, "--motion must be low or high")
            bs = _BS_RE.search(prompt)
            count = int(bs.group(1)) if bs else 4
            if count not in (1, 2, 4):
                raise SimError(E_INVALID_PARAMETER, "--bs must be 1, 2 or 4")
            if params.get("jobId") in (None, ""):
                start = _START_URL_RE.match(prompt)
                if start is None:
                    raise SimError(E_INVALID_PARAMETER, NO_START_FRAME)
                return count, None, start.group(1), 0
            image_no = params.get("imageNo")
            if not _is_int(image_no) or not 0 <= image_no <= 3:
                raise SimError(E_IMAGE_NO_INVALID, f"imageNo must be 0-3, got {image_no!r}")
            parent = self._completed_parent(str(params["jobId"]))
            if image_no >= parent.image_count:
                raise SimError(E_IMAGE_NO_INVALID, f"imageNo {image_no} is out of range")
            return count, (parent.job_id, image_no), None, 0
        job_id = params.get("jobId")
        if not isinstance(job_id, str) or not job_id:
            raise SimError(E_TASK_ID_MISSING, "jobId is required")
        video_no = params.get("videoNo")
        if not _is_int(video_no) or not 0 <= video_no <= 3:
            raise SimError(E_IMAGE_NO_INVALID, f"videoNo must be 0-3, got {video_no!r}")
        parent = self.jobs.get(job_id)
        if parent is None or parent.video_count == 0:
            raise SimError(E_INVALID_PARAMETER, f"job {job_id} is not a video job")
        if parent.status(self.now) != "completed":
            raise SimError(E_INVALID_PARAMETER, f"job {job_id} is not completed")
        if video_no >= parent.video_count:
            raise SimError(E_IMAGE_NO_INVALID, f"videoNo {video_no} is out of range")
        extends = parent.extends + (1 if op == "extend-video" else 0)
        if extends > MAX_EXTENDS:
            raise SimError(E_INVALID_PARAMETER, "a video can be extended at most 4 times")
        return 1, (job_id, video_no), None, extends

    def _create_video(self, op: str, params: dict[str, Any]) -> SimJob:
        count, parent_addr, start, extends = self.validate_video(op, params)
        prompt = str(params.get("prompt") or "")
        parent = self.jobs[parent_addr[0]] if parent_addr else None
        job = SimJob(
            job_id=str(uuid.uuid4()),
            op=op,
            params=params,
            prompt=prompt,
            source_prompt=prompt if parent is None else parent.source_prompt,
            aspect_ratio=parent.aspect_ratio if parent else "1:1",
            image_count=0,
            created_at=self.now,
            profile=dataclasses.replace(self.profile_for(op, prompt)),
            parent=parent_addr,
            points=LEGNEXT_POINTS[op],
            callback=params.get("callback") or None,
            video_count=count,
            extends=extends,
            cover_url=start,
        )
        self.jobs[job.job_id] = job
        return job

    def video(self, name: str) -> bytes | None:
        """MP4 bytes for `/cdn/<jobId>_<i>.mp4` of a finished video job."""
        match = _VIDEO_RE.match(name)
        job = self.jobs.get(match.group("id")) if match else None
        if match is None or job is None or int(match.group("no")) >= job.video_count:
            return None
        return videos.mp4(name, size=self.video_bytes, duration_s=5.0 + 4 * job.extends)

    def cover_name(self, job: SimJob) -> str | None:
        """The still a video job starts from: the parent's image (or the parent video's)."""
        if job.parent is None:
            return None
        parent = self.jobs.get(job.parent[0])
        if parent is None:
            return None
        if parent.video_count:
            return self.cover_name(parent)
        return f"{parent.job_id}_{job.parent[1]}" if parent.is_grid else parent.job_id

    def create(self, op: str, params: dict[str, Any]) -> SimJob:
        if op in LEGNEXT_VIDEO_OPS:
            return self._create_video(op, params)
        count, ratio, parent_addr = self.validate(op, params)
        prompt = str(params.get("text") or params.get("remixPrompt") or params.get("prompt") or "")
        parent = self.jobs[parent_addr[0]] if parent_addr else None
        job = SimJob(
            job_id=str(uuid.uuid4()),
            op=op,
            params=params,
            prompt=prompt,
            source_prompt=prompt if parent is None else parent.source_prompt,
            aspect_ratio=ratio,
            image_count=count,
            created_at=self.now,
            profile=dataclasses.replace(self.profile_for(op, prompt)),
            parent=parent_addr,
            points=LEGNEXT_POINTS.get(op, 20),
            usd=VTRIX_USD.get(op, Decimal("0.04")),
            callback=params.get("callback") or None,
        )
        if _BANNED_RE.search(prompt) and not any(k in prompt for k in self.profile_for_prompt):
            job.profile = Profile(
                pending_s=job.profile.pending_s,
                processing_s=0.0,
                outcome="failed",
                error_message=BANNED_MESSAGE,
                raw_message=BANNED_RAW,
            )
        self.jobs[job.job_id] = job
        return job

    def profile_for(self, op: str, prompt: str) -> Profile:
        if prompt:
            for needle, profile in self.profile_for_prompt.items():
                if needle in prompt:
                    return profile
        return self.profile_for_op.get(op, self.default_profile)

    def running_count(self) -> int:
        now = self.now
        return sum(1 for j in self.jobs.values() if j.status(now) in ("pending", "processing"))

    def available_actions(self, job: SimJob) -> dict[str, list[int]]:
        """Legnext's allow-list: families -> image numbers a follow-up may address."""
        if job.image_count == 0:
            return {}
        images_ = list(range(job.image_count))
        actions: dict[str, list[int]] = {
            "upscale": images_ if job.is_grid else [],
            "variation": images_,
            "remix": images_,
            "inpaint": images_,
            "outpaint": images_,
            "pan": images_,
            "edit": images_,
            "enhance": images_ if job.draft else [],
        }
        if job.is_grid:
            actions["reroll"] = images_
        actions.update({k: list(v) for k, v in self.available_actions_override.items()})
        return actions

    def seed(self, job: SimJob) -> str:
        return str(int(hashlib.sha256(job.job_id.encode()).hexdigest()[:8], 16))

    def describe_output(self, job: SimJob) -> dict[str, Any]:
        url = job.params.get("imgUrl", "")
        prompts = [
            f"{subject} in soft light, inspired by {url} --ar 1:1"
            for subject in ("a lighthouse", "a fox", "a city at dusk", "an old map")
        ]
        return {
            "promptEn": prompts[0],
            "description": "A picture, described four ways.",
            "finalPrompt": "\n".join(f"{i}. {p}" for i, p in enumerate(prompts, start=1)),
            "prompts": prompts,
        }

    # --- images ---

    def image(self, name: str) -> bytes | None:
        """PNG bytes for `/cdn/<jobId>.png` (the whole result) or `/cdn/<jobId>_<i>.png`."""
        match = _IMAGE_RE.match(name)
        job = self.jobs.get(match.group("id")) if match else None
        if match is None or job is None or job.image_count == 0:
            return None
        no = match.group("no")
        if no is not None and int(no) >= job.image_count:
            return None
        if name not in self._images:
            main = self._main_image(job)
            if no is None or not job.is_grid:
                self._images[name] = main
            else:
                self._images[name] = images.crop_tile(main, int(no) + 1)
        return self._images[name]

    def _main_image(self, job: SimJob) -> bytes:
        key = f"{job.job_id}.png"
        if key not in self._images:
            size = _result_size(self.image_size, job.aspect_ratio)
            parent = self.jobs.get(job.parent[0]) if job.parent else None
            if job.is_grid:
                png = images.grid_png(job.job_id, size)
            elif parent is not None and job.parent is not None:
                # An upscale really is that image of the parent, scaled up.
                tile = self.image(f"{parent.job_id}_{job.parent[1]}.png")
                assert tile is not None
                png = images.resize_png(tile, size)
            else:
                png = images.single_png(job.job_id, size)
            self._images[key] = png
        return self._images[key]


# --- HTTP plumbing shared by both front ends -----------------------------------------------------


@dataclass
class RequestRecord:
    """One request a fake received (control API and images excluded)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int | None = None  # None: connection dropped or still in flight
    at: float = 0.0  # clock time of arrival
    fault: str | None = None
    task_id: str | None = None  # what the request created (Legnext job_id, Vtrix task id)
    op: str | None = None  # "diffusion", "edit", … for create requests

    @property
    def json(self) -> Any:  # the name FakePiAPI uses
        return self.body


_RECORD = web.RequestKey("record", RequestRecord)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _HttpError(Exception):
    def __init__(self, status: int, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _json_response(
    status: int, payload: Any, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


class _FakeFront:
    """Server plumbing: lifecycle, auth, faults, records, images, control API."""

    backend = ""

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        clock: Clock | None = None,
        image_size: int = 256,
        host: str = "127.0.0.1",
    ) -> None:
        self.api_key = api_key
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.host = host
        self.sim = MidjourneySim(self.clock, image_size=image_size)
        self.requests: list[RequestRecord] = []
        self.faults: list[Fault] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._delayed: set[asyncio.Task[Any]] = set()
        # Jobs created with a `callback` get their job/task object POSTed there on every
        # change (knobs: see tests.fakes.push).
        self.webhooks = WebhookSender(self.clock)

    # --- knobs shared with the sim ---

    @property
    def default_profile(self) -> Profile:
        return self.sim.default_profile

    @default_profile.setter
    def default_profile(self, profile: Profile) -> None:
        self.sim.default_profile = profile

    @property
    def profile_for_prompt(self) -> dict[str, Profile]:
        return self.sim.profile_for_prompt

    @property
    def profile_for_op(self) -> dict[str, Profile]:
        return self.sim.profile_for_op

    # --- lifecycle ---

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self, port: int = 0) -> None:
        self.webhooks.start()
        app = web.Application(middlewares=[self._middleware])
        self._routes(app)
        app.router.add_get("/cdn/{name}", self._image)
        app.router.add_post("/_control/advance", self._ctl_advance)
        app.router.add_post("/_control/inject", self._ctl_inject)
        app.router.add_get("/_control/requests", self._ctl_requests)
        app.router.add_delete("/_control/requests", self._ctl_clear_requests)
        app.router.add_post("/_control/profile", self._ctl_profile)
        app.router.add_get("/_control/tasks", self._ctl_tasks)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        self._port = sock.getsockname()[1]
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        await self.webhooks.stop()
        for task in list(self._delayed):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Any:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self.host}:{self._port}"

    @property
    def now(self) -> float:
        return self.clock.time()

    # --- scripting helpers ---

    def inject(
        self, method: str, path_prefix: str, fault: str, times: int | None = 1, **kw: Any
    ) -> Fault:
        """Answer the next `times` matching requests (None = all) with `fault` (see FAULTS).

        kw: retry_after (429, 503); delay (timeout, real seconds, default 30); process=True
        to run the request first (the job is created, the reply lost; "timeout" processes
        by default); code and message ("400_code": a Vtrix-style coded 400 answer).
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(FAULTS)}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        entry = Fault(method.upper(), path_prefix, fault, times, dict(kw))
        self.faults.append(entry)
        return entry

    def created(self, op: str | None = None) -> list[RequestRecord]:
        """Create requests that created a job (even if a fault hid the reply)."""
        return [r for r in self.requests if r.task_id is not None and (op is None or r.op == op)]

    def running_task_count(self) -> int:
        return self.sim.running_count()

    # --- HTTP plumbing ---

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_control/"):
            return await self._guard(request, handler)
        if request.path.startswith("/cdn/"):
            return await handler(request)  # a public CDN: no key, not recorded
        record = RequestRecord(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={
                k: (_REDACTED if k.lower() in _AUTH_HEADERS else v)
                for k, v in request.headers.items()
            },
            body=await self._read_json(request),
            at=self.now,
        )
        self.requests.append(record)
        request[_RECORD] = record
        fault = self._take_fault(request.method, request.path)
        if fault is not None:
            record.fault = fault.kind
            response = await self._apply_fault(fault, request, handler)
        else:
            response = await self._handle(request, handler)
        record.status = response.status if record.fault != "reset" else None
        return response

    @staticmethod
    async def _read_json(request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _error_body(self, status: int, message: str, code: int | None) -> dict[str, Any]:
        raise NotImplementedError

    def _error(
        self,
        status: int,
        message: str,
        code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        return _json_response(status, self._error_body(status, message, code), headers)

    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except _HttpError as exc:
            return self._error(exc.status, exc.message, exc.code)
        except web.HTTPException as exc:  # unknown route, wrong method
            return self._error(exc.status, exc.reason)

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self._authorised(request):
            return self._error(401, self._bad_key_message)
        return await self._guard(request, handler)

    _bad_key_message = "Invalid API key"

    def _authorised(self, request: web.Request) -> bool:
        raise NotImplementedError

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    async def _apply_fault(
        self, fault: Fault, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        kind, kw = fault.kind, fault.kw
        if kind == "timeout":
            task = asyncio.current_task()
            if task is not None:
                self._delayed.add(task)
            try:
                await asyncio.sleep(float(kw.get("delay", 30.0)))  # real time, on purpose
            finally:
                if task is not None:
                    self._delayed.discard(task)
            if not kw.get("process", True):
                return self._error(504, "gateway timeout")
            return await self._handle(request, handler)
        if kw.get("process", False):
            await self._handle(request, handler)  # side effects happen, the reply is lost
        if kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client
        if kind == "401":
            return self._error(401, self._bad_key_message)
        if kind == "404":
            return self._error(404, "not found")
        if kind == "429":
            retry = str(kw.get("retry_after", 1))
            return self._error(429, "too many requests", headers={"Retry-After": retry})
        if kind == "500":
            return self._error(500, "internal server error")
        if kind == "502":
            return web.Response(
                status=502,
                body=b"<html><head><title>502 Bad Gateway</title></head><body>502</body></html>",
                headers={"Content-Type": "text/html"},
            )
        if kind == "503":
            headers = {"Retry-After": str(kw["retry_after"])} if "retry_after" in kw else None
            return self._error(503, "service unavailable", headers=headers)
        if kind == "malformed":
            return web.Response(
                status=200,
                body=b'{"job_id":"3f2a\x00,,]] garbage',
                headers={"Content-Type": "application/json"},
            )
        if kind == "400_code":
            code = int(kw.get("code", vtrix_code("edit", E_IMAGE_NO_INVALID)))
            message = str(kw.get("message") or VTRIX_ERROR_TEXTS.get(code % 1000, "Bad request"))
            return _json_response(400, {"code": code, "message": message})
        raise AssertionError(f"unhandled fault {kind}")

    async def _image(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name.endswith(".mp4"):
            clip = self.sim.video(name)
            if clip is None:
                return web.Response(status=404, text="not found")
            return web.Response(body=clip, headers={"Content-Type": "video/mp4"})
        png = self.sim.image(name)
        if png is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=png, headers={"Content-Type": "image/png"})

    def _mark_created(self, request: web.Request, task_id: str, op: str) -> None:
        record = request.get(_RECORD)
        if record is not None:
            record.task_id, record.op = task_id, op

    def _record_op(self, request: web.Request, op: str) -> None:
        record = request.get(_RECORD)
        if record is not None:
            record.op = op

    # --- control API ---

    async def _control_body(self, request: web.Request) -> dict[str, Any]:
        body = await self._read_json(request)
        if not isinstance(body, dict):
            raise _HttpError(400, "expected a JSON object")
        return body

    async def _ctl_advance(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        if not isinstance(self.clock, FakeClock):
            raise _HttpError(400, "advance needs a FakeClock; this fake runs on the real clock")
        seconds = body.get("seconds")
        if not _is_number(seconds) or seconds < 0:
            raise _HttpError(400, "seconds must be a non-negative number")
        self.clock.advance(float(seconds))
        return _json_response(200, {"data": {"now": self.clock.time()}})

    async def _ctl_inject(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        kw = {k: v for k, v in body.items() if k not in ("method", "path_prefix", "fault", "times")}
        try:
            fault = self.inject(
                str(body.get("method", "*")),
                str(body.get("path_prefix", "/")),
                str(body.get("fault")),
                body.get("times", 1),
                **kw,
            )
        except ValueError as exc:
            raise _HttpError(400, str(exc)) from None
        return _json_response(200, {"data": dataclasses.asdict(fault)})

    async def _ctl_requests(self, request: web.Request) -> web.Response:
        return _json_response(200, {"data": [dataclasses.asdict(r) for r in self.requests]})

    async def _ctl_clear_requests(self, request: web.Request) -> web.Response:
        self.requests.clear()
        return _json_response(200, {"data": None})

    async def _ctl_profile(self, request: web.Request) -> web.Response:
        """{"profile": {...}} sets the default; add "prompt" or "op" to scope it."""
        body = await self._control_body(request)
        fields = body.get("profile", {})
        if not isinstance(fields, dict):
            raise _HttpError(400, "profile must be an object")
        try:
            profile = Profile(**fields)
        except (TypeError, ValueError) as exc:
            raise _HttpError(400, f"invalid profile: {exc}") from None
        if body.get("prompt"):
            self.sim.profile_for_prompt[str(body["prompt"])] = profile
        elif body.get("op"):
            self.sim.profile_for_op[str(body["op"])] = profile
        else:
            self.sim.default_profile = profile
        return _json_response(200, {"data": dataclasses.asdict(profile)})

    async def _ctl_tasks(self, request: web.Request) -> web.Response:
        raise NotImplementedError


# --- Legnext ------------------------------------------------------------------------------------


class FakeLegnext(_FakeFront):
    """Legnext's API over the sim: job objects exactly as PROVIDERS.md §2 shows them.

    Account knobs (PROVIDERS.md §8.2, §10.1): `balance_points` (None = unlimited) is what
    the account holds; a create that needs more than is left (points frozen by jobs that
    did not fail) answers HTTP 402 "insufficient balance", and `GET /account/balance`
    (the docs' `/api/account/balance` under the `/api` base) reports what is left.
    `restricted = True` answers every create with HTTP 403 "account restricted".
    """

    backend = "legnext"

    def __init__(self, *, balance_points: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.balance_points = balance_points
        self.restricted = False
        # Midjourney fetches a request's images itself: with this on, the fake GETs an
        # uploaded image (retexture, upload-paint) and the links in a diffusion's text, and
        # a link that does not answer 200 fails the job as "[Invalid link!]".
        self.fetch_images = False

    def points_left(self) -> int | None:
        if self.balance_points is None:
            return None
        now = self.now
        frozen = sum(j.points for j in self.sim.jobs.values() if j.status(now) != "failed")
        return self.balance_points - frozen

    @property
    def tasks(self) -> dict[str, SimJob]:
        return self.sim.jobs

    @property
    def available_actions_override(self) -> dict[str, list[int]]:
        return self.sim.available_actions_override

    def total_cost(self) -> int:
        """Points consumed: completed jobs consume what was frozen, failed ones are refunded."""
        now = self.now
        return sum(j.points for j in self.sim.jobs.values() if j.status(now) == "completed")

    def job_json(self, job_id: str) -> dict[str, Any]:
        return self._job_json(self.sim.jobs[job_id])

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/{op}", self._create)
        app.router.add_get("/v1/job/{job_id}", self._get)
        app.router.add_get("/account/balance", self._balance)

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("x-api-key") == self.api_key

    def _error_body(self, status: int, message: str, code: int | None) -> dict[str, Any]:
        return {"code": status, "message": message, "raw_message": message, "detail": None}

    async def _balance(self, request: web.Request) -> web.Response:
        left = self.points_left()
        points = 1_000_000 if left is None else max(0, left)
        data = {
            "account_id": f"acct-{self.api_key[-4:]}",
            "balance_usd": f"{Decimal(points) / 1000:.3f}",
            "available_credits": points,
            "available_points": points,
            "alert_threshold": 100,
            "low_balance_alert": points < 100,
            "updated_at": _iso(self.now),
        }
        return _json_response(200, {"code": 200, "message": "success", "data": data})

    async def _create(self, request: web.Request) -> web.Response:
        op = request.match_info["op"]
        if op not in LEGNEXT_OPS and op not in LEGNEXT_VIDEO_OPS:
            raise _HttpError(404, f"unknown endpoint /v1/{op}")
        self._record_op(request, op)
        if self.restricted:
            raise _HttpError(403, "account restricted")
        left = self.points_left()
        if left is not None and left < LEGNEXT_POINTS.get(op, 20):
            raise _HttpError(402, "insufficient balance")
        try:
            params = json.loads(await request.read())
        except ValueError:
            raise _HttpError(400, "invalid request body: expected JSON") from None
        if not isinstance(params, dict):
            raise _HttpError(400, "invalid request body: expected a JSON object")
        try:
            job = self.sim.create(op, params)
        except SimError as exc:
            raise _HttpError(exc.status, exc.message) from None
        self._mark_created(request, job.job_id, op)
        if self.fetch_images:
            await self._fetch_links(job)
        if job.callback and _is_http_url(job.callback):
            self.webhooks.track(
                job.job_id,
                job.callback,
                render=lambda: self._job_json(job),
                final=lambda data: data.get("status") in ("completed", "failed"),
            )
        return _json_response(200, self._job_json(job))

    async def _fetch_links(self, job: SimJob) -> None:
        urls = [job.params["imgUrl"]] if job.op in UPLOADED_OPS else []
        urls += re.findall(r"https?://\S+", str(job.params.get("text") or ""))
        async with ClientSession() as session:
            for url in urls:
                try:
                    async with session.get(url) as response:
                        status = response.status
                except (ClientError, OSError):
                    status = 0
                if status != 200:
                    job.profile = Profile(
                        pending_s=job.profile.pending_s,
                        processing_s=0.0,
                        outcome="failed",
                        error_message=UNFETCHABLE.format(url=url.split("?")[0], status=status),
                        raw_message="Invalid link",
                    )
                    return

    async def _get(self, request: web.Request) -> web.Response:
        job = self.sim.jobs.get(request.match_info["job_id"])
        if job is None:
            raise _HttpError(404, "job not found")
        return _json_response(200, self._job_json(job))

    async def _ctl_tasks(self, request: web.Request) -> web.Response:
        return _json_response(
            200, {"data": {jid: self._job_json(j) for jid, j in self.sim.jobs.items()}}
        )

    def _url(self, name: str) -> str:
        return f"{self.base_url}/cdn/{name}.png"

    def _video_output(self, job: SimJob, status: str) -> dict[str, Any]:
        """`video_urls` (null until done) and, as the fake's cover, `image_url`: the start
        image (Legnext documents no cover field [?], PROVIDERS.md §8.2)."""
        cover_name = self.sim.cover_name(job)
        cover = self._url(cover_name) if cover_name else (job.cover_url or "")
        urls = None
        if status == "completed":
            urls = [f"{self.base_url}/cdn/{job.job_id}_{i}.mp4" for i in range(job.video_count)]
        return {"image_url": cover, "video_urls": urls}

    def _job_json(self, job: SimJob) -> dict[str, Any]:
        now = self.now
        status = job.status(now)
        output: dict[str, Any] = {"image_url": "", "image_urls": [], "seed": ""}
        if job.video_count:
            output.update(self._video_output(job, status))
        elif status == "completed":
            if job.image_count:
                output["image_url"] = self._url(job.job_id)
                output["image_urls"] = [
                    self._url(f"{job.job_id}_{i}") for i in range(job.image_count)
                ]
                output["seed"] = self.sim.seed(job)
                output["available_actions"] = self.sim.available_actions(job)
            elif job.op == "shorten":
                output.update(self.sim.shorten_output(job))
            else:
                output.update(self.sim.describe_output(job))
        meta: dict[str, Any] = {
            "created_at": _iso(job.created_at),
            "usage": {
                "type": "point",
                "frozen": job.points,
                "consume": job.points if status == "completed" else 0,
            },
        }
        if status != "pending":
            meta["started_at"] = _iso(job.started_at)
        if status in ("completed", "failed"):
            meta["ended_at"] = _iso(job.ended_at)
        failed = status == "failed"
        obj: dict[str, Any] = {
            "job_id": job.job_id,
            "model": "midjourney",
            "task_type": job.op,
            "status": status,
            "config": {
                "service_mode": "public",
                "webhook_config": {"endpoint": job.callback or "", "secret": ""},
            },
            "input": None,
            "output": output,
            "meta": meta,
            "detail": None,
            "logs": [],
            "error": {
                "code": LEGNEXT_FAILED_CODE if failed else 0,
                "raw_message": job.profile.raw_message if failed else "",
                "message": job.profile.error_message if failed else "",
                "detail": None,
            },
        }
        if status == "processing":
            obj["progress"] = round(job.fraction(now) * 100)
        return obj


# --- Vtrix --------------------------------------------------------------------------------------


class FakeVtrix(_FakeFront):
    """Vtrix's generation gateway over the sim (PROVIDERS.md §3).

    Knobs: `balance_usd` (403 "insufficient balance" once spent), `fail_with_code_for_prompt`
    (a job whose prompt/remixPrompt contains the key fails with that code and its documented
    text), `error_style` ("mj" {code, error_message} | "generic" {code, message} | "string"),
    `code_as_string` (codes as zero-padded strings), `alt_status_words` (queued/in_progress/done).
    """

    backend = "vtrix"
    _bad_key_message = "invalid api key"

    def __init__(self, *, balance_usd: Decimal | str = Decimal("100"), **kw: Any) -> None:
        super().__init__(**kw)
        self.balance_usd = Decimal(str(balance_usd))
        self.fail_with_code_for_prompt: dict[str, int] = {}
        self.error_style = "mj"
        self.code_as_string = False
        self.alt_status_words = False
        self.wrap_replies = False  # answer {"code": 0, "data": task} instead of the bare task

    @property
    def tasks(self) -> dict[str, SimJob]:
        return {j.task_id: j for j in self.sim.jobs.values() if j.task_id is not None}

    def total_cost(self) -> Decimal:
        """USD charged: the usage.cost of every completed task."""
        now = self.now
        return sum(
            (j.usd for j in self.tasks.values() if j.status(now) == "completed"), Decimal("0")
        )

    def committed(self) -> Decimal:
        """Charged plus reserved by tasks still running."""
        now = self.now
        return sum((j.usd for j in self.tasks.values() if j.status(now) != "failed"), Decimal("0"))

    def task_json(self, task_id: str) -> dict[str, Any]:
        return self._task_json(self.tasks[task_id])

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/model/v1/generation", self._create)
        app.router.add_get("/model/v1/generation/task/{task_id}", self._get)

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    def _error_body(self, status: int, message: str, code: int | None) -> dict[str, Any]:
        if code is None:
            return {"message": message}
        return {"code": self._code(code), "message": message}

    def _code(self, code: int) -> int | str:
        return f"{code:09d}" if self.code_as_string else code

    async def _create(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            raise _HttpError(400, "invalid request body: expected JSON") from None
        if not isinstance(body, dict):
            raise _HttpError(400, "invalid request body: expected a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model.startswith("midjourney_"):
            raise _HttpError(400, f"unsupported model {model!r}", code=400)
        op = model.removeprefix("midjourney_")
        if op not in VTRIX_OPS:
            raise _HttpError(400, f"unsupported model {model!r}", code=400)
        self._record_op(request, op)
        params = self._params(body)
        cost = VTRIX_USD.get(op, Decimal("0.04"))
        if self.committed() + cost > self.balance_usd:
            raise _HttpError(403, "insufficient balance")
        try:
            job = self.sim.create(op, params)
        except SimError as exc:
            raise _HttpError(exc.status, exc.message, code=vtrix_code(op, exc.eee)) from None
        job.task_id = f"task_{uuid.uuid4().hex[:24]}"
        for needle, code in self.fail_with_code_for_prompt.items():
            if needle in job.prompt:
                job.profile = dataclasses.replace(job.profile, outcome="failed", stuck_at=None)
                job.fail_code = code
                job.fail_text = VTRIX_ERROR_TEXTS.get(code % 1000, "Unknown error")
                break
        self._mark_created(request, job.task_id, op)
        if job.callback and _is_http_url(job.callback):
            self.webhooks.track(
                job.task_id,
                job.callback,
                render=lambda: self._task_json(job),
                final=lambda data: data.get("status") in ("completed", "done", "failed"),
            )
        return self._reply(self._task_json(job))

    @staticmethod
    def _params(body: dict[str, Any]) -> dict[str, Any]:
        """Wrapped {"input": [{"params": {…}}]} (the CLI's form) or flat (the docs' form)."""
        inp = body.get("input")
        if isinstance(inp, list) and inp and isinstance(inp[0], dict):
            inp = inp[0]
        if isinstance(inp, dict):
            params = inp.get("params", inp)
            if isinstance(params, dict):
                return dict(params)
        return {k: v for k, v in body.items() if k not in ("model", "moderation", "metadata")}

    async def _get(self, request: web.Request) -> web.Response:
        job = self.tasks.get(request.match_info["task_id"])
        if job is None:
            raise _HttpError(404, "task not found")
        return self._reply(self._task_json(job))

    def _reply(self, task: dict[str, Any]) -> web.Response:
        if self.wrap_replies:
            return _json_response(200, {"code": 0, "message": "success", "data": task})
        return _json_response(200, task)

    async def _ctl_tasks(self, request: web.Request) -> web.Response:
        return _json_response(
            200, {"data": {tid: self._task_json(j) for tid, j in self.tasks.items()}}
        )

    def _status_word(self, status: str) -> str:
        if not self.alt_status_words:
            return status
        return {"pending": "queued", "processing": "in_progress", "completed": "done"}.get(
            status, status
        )

    def _task_json(self, job: SimJob) -> dict[str, Any]:
        now = self.now
        status = job.status(now)
        assert job.task_id is not None
        obj: dict[str, Any] = {
            "id": job.task_id,
            "model": f"midjourney_{job.op}",
            "status": self._status_word(status),
            "progress": job.fraction(now),
            "created_at": int(job.created_at),
            "metadata": {"in_queue_at": _iso(job.created_at)},
        }
        if status == "completed":
            obj["output"] = [
                {
                    "content": [
                        {
                            "type": "image",
                            "url": f"{self.base_url}/cdn/{job.job_id}_{i}.png",
                            "jobId": job.job_id,
                        }
                        for i in range(job.image_count)
                    ]
                }
            ]
            obj["usage"] = {"cost": str(job.usd), "discount": 0}
        if status in ("completed", "failed"):
            obj["completed_at"] = _iso(job.ended_at)
            obj["metadata"]["completed_at"] = _iso(job.ended_at)
        if status == "failed":
            obj["error"] = self._failure(job)
        return obj

    def _failure(self, job: SimJob) -> Any:
        if job.fail_code is not None:
            code, text = job.fail_code, job.fail_text or ""
        else:
            code = vtrix_code(job.op, E_GENERATION_FAILED)
            text = job.profile.error_message
            if job.profile.raw_message:
                text = f"{text}: {job.profile.raw_message}"
        if self.error_style == "string":
            return text
        key = "message" if self.error_style == "generic" else "error_message"
        return {"code": self._code(code), key: text}


# --- CLI ----------------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    cls = FakeVtrix if args.backend == "vtrix" else FakeLegnext
    fake = cls(api_key=args.api_key, host=args.host)
    fake.default_profile = Profile(
        pending_s=args.pending, processing_s=args.processing, progress_step_s=args.step
    )
    await fake.start(args.port)
    print(fake.base_url, flush=True)
    print(f"fake {args.backend} on {fake.base_url}; Ctrl-C to stop", file=sys.stderr)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a fake Legnext or Vtrix (real clock).")
    parser.add_argument("--backend", choices=("legnext", "vtrix"), default="legnext")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--pending", type=float, default=3.0, help="seconds pending")
    parser.add_argument("--processing", type=float, default=24.0, help="seconds processing")
    parser.add_argument("--step", type=float, default=6.0, help="seconds per progress step")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
