"""A protocol-faithful fake of PiAPI's unified task API (PROVIDERS.md §1): tests and manual runs.

It speaks real HTTP on 127.0.0.1 and computes every task's state lazily from a clock, so with
a `FakeClock` a test moves a task from pending to completed just by advancing time. Scripted
outcomes (`Profile`), fault injection (`inject`), request recording (`requests`) and an HTTP
control API under `/_control/` make client behaviour under failure observable.

    async with FakePiAPI(clock=FakeClock()) as fake:
        ...  # point the client at fake.base_url with x-api-key "test-key"

CLI: python -m tests.fakes.piapi --port 8765 --api-key KEY [--plan hya|payg]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import json
import re
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from bot.clock import Clock, FakeClock, SystemClock
from tests.fakes import images
from tests.fakes.push import WebhookSender

__all__ = [
    "FAULTS",
    "FakePiAPI",
    "FakeTask",
    "Fault",
    "Profile",
    "RequestRecord",
]

TASK_TYPES = (
    "imagine",
    "upscale",
    "variation",
    "reroll",
    "describe",
    "seed",
    "blend",
    "inpaint",
    "outpaint",
    "pan",
)
FAULTS = (
    "401",
    "404_unknown_task",
    "429",
    "500",
    "502",
    "503",
    "timeout",
    "malformed",
    "reset",
    "missing_fields",
    "unknown_fields",
)
PROCESS_MODES = ("relax", "fast", "turbo")
BLEND_DIMENSIONS = {"square": "1:1", "portrait": "2:3", "landscape": "3:2"}
PAN_DIRECTIONS = ("up", "down", "left", "right")
PROMPT_LIMIT = 8192
GRID_ACTIONS = [
    "reroll",
    *(f"upscale{n}" for n in range(1, 5)),
    *(f"variation{n}" for n in range(1, 5)),
]
UPSCALED_ACTIONS = [
    "high_variation",
    "low_variation",
    "inpaint",
    "outpaint_1.5x",
    "outpaint_2x",
    "outpaint_custom",
    "pan_up",
    "pan_down",
    "pan_left",
    "pan_right",
    "upscale_subtle",
    "upscale_creative",
]
# Points frozen at submit and consumed on completion. The point→USD rate is unpublished;
# these keep the README's relative prices (upscales and describes are cheaper).
IMAGINE_COST = {"relax": 200_000, "fast": 700_000, "turbo": 1_400_000}
UPSCALE_COST = {"relax": 100_000, "fast": 300_000, "turbo": 600_000}
DESCRIBE_COST = {"relax": 100_000, "fast": 150_000, "turbo": 300_000}
POINTS_PER_USD = 15_000_000
FAILED_ERROR_CODE = 10000  # the real failure code is undocumented; anything non-zero will do

BANNED_MESSAGE = "[Banned prompt detected] The prompt contains a banned word"
BANNED_RAW = (
    "Sorry! Our AI moderator thinks this prompt is probably against our community standards."
)
OUTDATED_MESSAGE = "derive from origin task: parent task is outdated"
CANCELED_MESSAGE = "task canceled"
_BANNED_RE = re.compile(r"\bbanned\b", re.IGNORECASE)
_RATIO_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_AR_FLAG_RE = re.compile(r"--(?:ar|aspect)\s+(\d+\s*:\s*\d+)", re.IGNORECASE)
_IMAGE_NAME_RE = re.compile(r"^(?P<id>[0-9a-f-]{36})(?:_(?P<tile>[1-4])|_p(?P<preview>\d+))?\.png$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_REDACTED = "<redacted>"


@dataclass
class Profile:
    """How one task's life unfolds, in clock seconds from its creation.

    pending for `pending_s`, then processing for `processing_s` with progress rising every
    `progress_step_s` (0, 25, 50, 75 with the defaults), then `outcome`. `stuck_at` keeps the
    task processing forever once its progress reaches that value.
    """

    pending_s: float = 3.0
    processing_s: float = 24.0
    progress_step_s: float = 6.0
    outcome: str = "completed"  # "completed" | "failed"
    error_message: str = "Failed to process your command"
    raw_message: str = ""
    stuck_at: int | None = None

    def __post_init__(self) -> None:
        if self.outcome not in ("completed", "failed"):
            raise ValueError(f"outcome must be 'completed' or 'failed', got {self.outcome!r}")


@dataclass
class FakeTask:
    """Internal state of one task; everything visible is derived from it and the clock."""

    task_id: str
    task_type: str
    model: str
    input: dict[str, Any]
    config: dict[str, Any]
    created_at: float
    profile: Profile
    result: str  # "grid" | "single" | "describe" | "seed": what a completed task holds
    aspect_ratio: str
    process_mode: str
    cost: int
    origin_id: str | None = None
    tile: int | None = None  # upscale of grid tile n: the single is that tile, scaled up
    cancelled_at: float | None = None
    vanished: bool = False

    def status(self, now: float) -> str:
        if self.cancelled_at is not None:
            return "failed"
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
        if self.cancelled_at is not None:
            return self.cancelled_at
        return self.created_at + self.profile.pending_s + self.profile.processing_s

    def progress(self, now: float) -> tuple[int, int]:
        """(progress percent, number of previews so far) while processing."""
        p = self.profile
        if p.progress_step_s <= 0 or p.processing_s <= 0:
            return 0, 0
        elapsed = max(0.0, now - self.started_at)
        last_step = int(-(-p.processing_s // p.progress_step_s))  # steps until completion

        def percent(k: int) -> int:
            return min(99, int(100 * k * p.progress_step_s / p.processing_s))

        steps = min(int(elapsed // p.progress_step_s), last_step)
        progress = percent(steps)
        if p.stuck_at is not None:
            progress = min(progress, p.stuck_at)
            while steps > 0 and percent(steps) > progress:
                steps -= 1
        return progress, steps

    @property
    def error_text(self) -> tuple[str, str]:
        if self.cancelled_at is not None:
            return CANCELED_MESSAGE, ""
        return self.profile.error_message, self.profile.raw_message


@dataclass
class Fault:
    """A scripted failure for requests matching `method` ("*" = any) and a path prefix."""

    method: str
    path_prefix: str
    kind: str
    remaining: int | None  # None = every time
    kw: dict[str, Any] = field(default_factory=dict)

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and path.startswith(self.path_prefix)


@dataclass
class RequestRecord:
    """One request the fake received (control API excluded)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    status: int | None = None  # None: connection dropped or still in flight
    at: float = 0.0  # clock time of arrival
    fault: str | None = None  # the injected fault that answered it, if any
    task_id: str | None = None  # the task this request created, if it did


_RECORD = web.RequestKey("record", RequestRecord)  # the record of the request being handled


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _json_response(
    status: int, payload: Any, headers: dict[str, str] | None = None
) -> web.Response:
    # Exactly "application/json" (no charset), as PiAPI sends it.
    return web.Response(
        status=status,
        body=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return _json_response(status, {"code": status, "data": None, "message": message}, headers)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _is_square(ratio: str) -> bool:
    match = _RATIO_RE.match(ratio)
    return not match or match.group(1) == match.group(2)


def _result_size(image_size: int, ratio: str) -> tuple[int, int]:
    """Longest side `image_size`, the other from the aspect ratio (even, for clean tiles)."""
    match = _RATIO_RE.match(ratio)
    w, h = (int(match.group(1)), int(match.group(2))) if match else (1, 1)
    if w <= 0 or h <= 0:
        w = h = 1
    if w >= h:
        return image_size, max(2, round(image_size * h / w / 2) * 2)
    return max(2, round(image_size * w / h / 2) * 2), image_size


# --- input validation (PROVIDERS.md §1.2) ---------------------------------------------------


def _req_str(inp: dict[str, Any], key: str, task_type: str) -> str:
    value = inp.get(key)
    if value is None or value == "":
        raise _ApiError(400, f"input.{key} is required for {task_type}")
    if not isinstance(value, str):
        raise _ApiError(400, f"input.{key} must be a string, got {type(value).__name__}")
    return value


def _check_prompt(inp: dict[str, Any], task_type: str, *, required: bool) -> None:
    value = inp.get("prompt")
    if value is None or value == "":
        if required:
            raise _ApiError(400, f"input.prompt is required for {task_type}")
        return
    if not isinstance(value, str):
        raise _ApiError(400, "input.prompt must be a string")
    if required and not value.strip():
        raise _ApiError(400, "input.prompt must not be empty")
    if len(value) > PROMPT_LIMIT:
        raise _ApiError(400, f"input.prompt is too long ({len(value)} > {PROMPT_LIMIT} characters)")


def _check_optional(inp: dict[str, Any]) -> None:
    mode = inp.get("process_mode")
    if mode not in (None, "") and mode not in PROCESS_MODES:
        raise _ApiError(400, f"input.process_mode must be one of relax, fast, turbo, got {mode!r}")
    ratio = inp.get("aspect_ratio")
    if ratio not in (None, ""):
        match = _RATIO_RE.match(ratio) if isinstance(ratio, str) else None
        if not match or int(match.group(1)) == 0 or int(match.group(2)) == 0:
            raise _ApiError(400, f"input.aspect_ratio must look like W:H, got {ratio!r}")


def _check_mask(inp: dict[str, Any]) -> None:
    mask = _req_str(inp, "mask", "inpaint")
    if mask.startswith("data:"):
        raise _ApiError(400, "input.mask must be plain base64 without a data: prefix")
    try:
        raw = base64.b64decode(mask, validate=True)
    except (binascii.Error, ValueError):
        raise _ApiError(400, "input.mask is not valid base64") from None
    if not raw.startswith(_PNG_SIGNATURE):
        raise _ApiError(400, "input.mask must be a PNG image")


def _outpaint_action(inp: dict[str, Any]) -> tuple[str, float]:
    ratio = inp.get("zoom_ratio")
    if ratio is None or ratio == "":
        raise _ApiError(400, "input.zoom_ratio is required for outpaint")
    if not isinstance(ratio, str):
        raise _ApiError(400, 'input.zoom_ratio must be a string such as "1.5"')
    try:
        value = float(ratio)
    except ValueError:
        raise _ApiError(400, f"input.zoom_ratio is not a number: {ratio!r}") from None
    if not 1.0 <= value <= 2.0:
        raise _ApiError(400, f"input.zoom_ratio must be between 1 and 2, got {ratio!r}")
    named = {1.0: "outpaint_1x", 1.5: "outpaint_1.5x", 2.0: "outpaint_2x"}
    return named.get(value, "outpaint_custom"), value


def _upscale_action(index: str) -> tuple[str, int | None]:
    if index in ("1", "2", "3", "4"):
        return f"upscale{index}", int(index)
    if index in ("subtle", "creative", "2x", "4x", "light", "beta"):
        return f"upscale_{index}", None
    raise _ApiError(400, f"input.index is invalid for upscale: {index!r}")


def _variation_action(index: str) -> str:
    if index in ("1", "2", "3", "4"):
        return f"variation{index}"
    if index in ("high_variation", "low_variation"):
        return index
    raise _ApiError(400, f"input.index is invalid for variation: {index!r}")


@dataclass
class _Plan:
    """What a validated create request will become."""

    result: str
    action: str | None = None  # action the origin must offer
    origin_id: str | None = None
    tile: int | None = None
    aspect_ratio: str | None = None


# --- the fake -------------------------------------------------------------------------------


class FakePiAPI:
    """PiAPI's unified task API over real HTTP, driven by a clock. See the module docstring."""

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        clock: Clock | None = None,
        plan: str = "hya",
        image_size: int = 512,
        host: str = "127.0.0.1",
        legacy_fields: bool = False,
        capitalised_status: bool = False,
        follow_up_window: float = 3 * 3600.0,
        initial_credits: int = 1_000_000_000,
        max_concurrent_task_count: int = 10,
    ) -> None:
        if plan not in ("hya", "payg"):
            raise ValueError(f"plan must be 'hya' or 'payg', got {plan!r}")
        self.api_key = api_key
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.plan = plan
        self.image_size = image_size
        # Realistic (incompressible) result images, for upload-limit tests; off by default.
        self.grain = False
        self.host = host
        self.legacy_fields = legacy_fields
        self.capitalised_status = capitalised_status
        self.follow_up_window = follow_up_window
        self.initial_credits = initial_credits
        self.max_concurrent_task_count = max_concurrent_task_count  # reported, not enforced
        self.default_profile = Profile()
        self.profile_for_prompt: dict[str, Profile] = {}
        # Seed answers fast in practice; other types follow default_profile unless set here.
        self.profile_for_task_type: dict[str, Profile] = {
            "seed": Profile(pending_s=0.0, processing_s=1.0, progress_step_s=1.0)
        }
        self.tasks: dict[str, FakeTask] = {}
        self.requests: list[RequestRecord] = []
        self.faults: list[Fault] = []
        self._images: dict[str, bytes] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._delayed: set[asyncio.Task[Any]] = set()
        # Tasks created with config.webhook_config.endpoint are posted there on every change
        # as {"timestamp", "data": task} with x-webhook-secret (knobs: see tests.fakes.push).
        self.webhooks = WebhookSender(self.clock)

    # --- lifecycle ---

    async def start(self, port: int = 0) -> None:
        self.webhooks.start()
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/api/v1/task", self._create)
        app.router.add_get("/api/v1/task/{task_id}", self._get)
        app.router.add_delete("/api/v1/task/{task_id}", self._cancel)
        app.router.add_get("/account/info", self._account)
        app.router.add_get("/mj/{name}", self._image)
        app.router.add_post("/_control/advance", self._ctl_advance)
        app.router.add_post("/_control/inject", self._ctl_inject)
        app.router.add_get("/_control/requests", self._ctl_requests)
        app.router.add_delete("/_control/requests", self._ctl_clear_requests)
        app.router.add_post("/_control/profile", self._ctl_profile)
        app.router.add_post("/_control/vanish", self._ctl_vanish)
        app.router.add_get("/_control/tasks", self._ctl_tasks)
        # Our own socket so the ephemeral port is known without private attributes.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        self._port = sock.getsockname()[1]
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        await self.webhooks.stop()
        # Handlers asleep in a "timeout" fault would otherwise hold shutdown for their delay.
        for task in list(self._delayed):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakePiAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakePiAPI is not started")
        return f"http://{self.host}:{self._port}"

    @property
    def now(self) -> float:
        return self.clock.time()

    # --- scripting helpers ---

    def inject(
        self, method: str, path_prefix: str, fault: str, times: int | None = 1, **kw: Any
    ) -> Fault:
        """Answer the next `times` matching requests (None = all) with `fault` (see FAULTS).

        kw: retry_after (429, 503), delay (timeout, real seconds, default 30), and
        process=True to run the request normally first (the task is created) and then
        answer with the fault; "timeout" processes by default, error faults do not.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(FAULTS)}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        entry = Fault(method.upper(), path_prefix, fault, times, dict(kw))
        self.faults.append(entry)
        return entry

    def vanish(self, task_id: str) -> None:
        """Make a task 404 on the API from now on (its images stay served)."""
        self.tasks[task_id].vanished = True

    def created(self, task_type: str | None = None) -> list[RequestRecord]:
        """Create requests that created a task (even if a fault hid the reply from the client)."""
        return [
            r
            for r in self.requests
            if r.task_id is not None
            and (task_type is None or self.tasks[r.task_id].task_type == task_type)
        ]

    def running_task_count(self) -> int:
        """Tasks pending or processing now (every fake offers this, for test harnesses)."""
        now = self.now
        return sum(1 for t in self.tasks.values() if t.status(now) in ("pending", "processing"))

    def task_json(self, task_id: str) -> dict[str, Any]:
        """The task object exactly as GET would return it now."""
        return self._task_json(self.tasks[task_id], self.now)

    def balance(self) -> int:
        """Credits left: completed tasks consume their cost, failed ones are refunded."""
        now = self.now
        used = sum(t.cost for t in self.tasks.values() if t.status(now) == "completed")
        return self.initial_credits - used

    # --- HTTP plumbing ---

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/_control/"):
            return await self._guard(request, handler)
        record = RequestRecord(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={
                k: (_REDACTED if k.lower() == "x-api-key" else v)
                for k, v in request.headers.items()
            },
            json=await self._read_json(request),
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
        raw = await request.read()  # cached by aiohttp, the handler reads it again
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Run a handler and turn every error into PiAPI's JSON envelope."""
        try:
            return await handler(request)
        except _ApiError as exc:
            return _error_response(exc.status, exc.message)
        except web.HTTPException as exc:  # unknown route (404), wrong method (405)
            return _error_response(exc.status, exc.reason)

    async def _handle(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # Images come from a public CDN in the real service: no key needed.
        if not request.path.startswith("/mj/") and not self._authorised(request):
            return _error_response(401, "Invalid API key")
        return await self._guard(request, handler)

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("x-api-key") == self.api_key  # CIMultiDict: any case

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
        self,
        fault: Fault,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
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
                return _error_response(504, "gateway timeout")
            return await self._handle(request, handler)
        if kind in ("missing_fields", "unknown_fields"):
            response = await self._handle(request, handler)
            return self._transform(response, kind)
        if kw.get("process", False):
            await self._handle(request, handler)  # side effects happen, the reply is lost
        if kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never reaches the client
        if kind == "401":
            return _error_response(401, "Invalid API key")
        if kind == "404_unknown_task":
            return _error_response(404, "task not found")
        if kind == "429":
            retry = str(kw.get("retry_after", 1))
            return _error_response(429, "too many requests", {"Retry-After": retry})
        if kind == "500":
            return _error_response(500, "internal server error")
        if kind == "502":
            # Gateways answer with HTML, not the JSON envelope.
            return web.Response(
                status=502,
                body=b"<html><head><title>502 Bad Gateway</title></head>"
                b"<body><center><h1>502 Bad Gateway</h1></center><hr>cloudflare</body></html>",
                headers={"Content-Type": "text/html"},
            )
        if kind == "503":
            headers = {"Retry-After": str(kw["retry_after"])} if "retry_after" in kw else None
            return _error_response(503, "service unavailable", headers)
        if kind == "malformed":
            return web.Response(
                status=200,
                body=b'{"code":200,"data":{"task_id":"3f2a\x00,,]] garbage',
                headers={"Content-Type": "application/json"},
            )
        raise AssertionError(f"unhandled fault {kind}")

    @staticmethod
    def _transform(response: web.StreamResponse, kind: str) -> web.StreamResponse:
        if not isinstance(response, web.Response) or response.status != 200:
            return response
        assert isinstance(response.body, bytes)
        payload = json.loads(response.body)
        data = payload.get("data")
        if kind == "missing_fields":
            if isinstance(data, dict):
                payload["data"] = {k: data[k] for k in ("task_id", "status") if k in data}
        else:
            # New keys everywhere: a tolerant client ignores them.
            payload["x_trace_id"] = "fake-trace"
            if isinstance(data, dict):
                data["x_unknown"] = {"nested": [1, 2, 3]}
                for key in ("output", "meta", "error", "input", "config"):
                    if isinstance(data.get(key), dict):
                        data[key][f"x_unknown_{key}"] = "surprise"
                usage = (
                    data.get("meta", {}).get("usage")
                    if isinstance(data.get("meta"), dict)
                    else None
                )
                if isinstance(usage, dict):
                    usage["x_unknown_usage"] = 1
        return _json_response(200, payload)

    # --- API handlers ---

    async def _create(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            raise _ApiError(400, "invalid request body: expected JSON") from None
        if not isinstance(body, dict):
            raise _ApiError(400, "invalid request body: expected a JSON object")
        model = body.get("model")
        if model != "midjourney":
            raise _ApiError(400, f"model: unsupported model {model!r}, expected 'midjourney'")
        task_type = body.get("task_type")
        if task_type not in TASK_TYPES:
            raise _ApiError(400, f"task_type: unsupported task type {task_type!r}")
        inp = body.get("input")
        if not isinstance(inp, dict):
            raise _ApiError(400, "input: expected an object")
        config = body.get("config")
        if config is not None and not isinstance(config, dict):
            raise _ApiError(400, "config: expected an object")

        now = self.now
        plan = self._validate(task_type, inp)
        origin = self._check_origin(plan, task_type, now) if plan.origin_id else None
        mode = origin.process_mode if origin else (inp.get("process_mode") or "fast")
        ratio = plan.aspect_ratio or (origin.aspect_ratio if origin else "1:1")
        cost = self._cost(task_type, plan.result, mode)
        if self.balance() < cost:
            raise _ApiError(400, "insufficient credits")

        profile = self._profile_for(task_type, inp)
        if origin is not None and now - origin.created_at > self.follow_up_window:
            # Observed: the task is accepted, then fails.
            profile = Profile(
                pending_s=self.default_profile.pending_s,
                processing_s=0.0,
                outcome="failed",
                error_message=OUTDATED_MESSAGE,
            )
        task = FakeTask(
            task_id=str(uuid.uuid4()),
            task_type=task_type,
            model=model,
            input=inp,
            config=self._echo_config(config),
            created_at=now,
            profile=dataclasses.replace(profile),  # later edits of shared profiles don't leak
            result=plan.result,
            aspect_ratio=ratio,
            process_mode=mode,
            cost=cost,
            origin_id=plan.origin_id,
            tile=plan.tile,
        )
        self.tasks[task.task_id] = task
        record = request.get(_RECORD)
        if record is not None:
            record.task_id = task.task_id
        self._track_webhook(task)
        return self._ok(self._task_json(task, now))

    def _track_webhook(self, task: FakeTask) -> None:
        hook = task.config.get("webhook_config")
        endpoint = hook.get("endpoint") if isinstance(hook, dict) else None
        if not _is_http_url(endpoint):
            return
        assert isinstance(hook, dict) and isinstance(endpoint, str)
        secret = hook.get("secret")
        self.webhooks.track(
            task.task_id,
            endpoint,
            render=lambda: None if task.vanished else self._task_json(task, self.now),
            wrap=lambda data: {"timestamp": int(self.now), "data": data},
            final=lambda data: str(data.get("status", "")).lower() in ("completed", "failed"),
            headers={"x-webhook-secret": secret} if isinstance(secret, str) and secret else None,
        )

    def _validate(self, task_type: str, inp: dict[str, Any]) -> _Plan:
        """Check inputs per PROVIDERS.md §1.2; say which origin action a follow-up needs."""
        if task_type == "imagine":
            _check_prompt(inp, task_type, required=True)
            _check_optional(inp)
            ratio = inp.get("aspect_ratio") or None
            flag = _AR_FLAG_RE.search(inp["prompt"])
            if flag:  # --ar in the prompt wins, as in Midjourney
                ratio = flag.group(1).replace(" ", "")
            return _Plan("grid", aspect_ratio=ratio or "1:1")
        if task_type == "describe":
            url = _req_str(inp, "image_url", task_type)
            if not _is_http_url(url):
                raise _ApiError(400, f"input.image_url must be an http(s) URL, got {url!r}")
            _check_optional(inp)
            return _Plan("describe")
        if task_type == "blend":
            urls = inp.get("image_urls")
            if not isinstance(urls, list) or not 2 <= len(urls) <= 5:
                raise _ApiError(400, "input.image_urls must be a list of 2 to 5 image URLs")
            bad = [u for u in urls if not _is_http_url(u)]
            if bad:
                raise _ApiError(400, f"input.image_urls must be http(s) URLs, got {bad[0]!r}")
            dimension = inp.get("dimension") or "square"
            if dimension not in BLEND_DIMENSIONS:
                raise _ApiError(
                    400, f"input.dimension must be square, portrait or landscape, got {dimension!r}"
                )
            _check_optional(inp)
            return _Plan("grid", aspect_ratio=BLEND_DIMENSIONS[dimension])

        origin_id = _req_str(inp, "origin_task_id", task_type)
        if task_type == "upscale":
            action, tile = _upscale_action(_req_str(inp, "index", task_type))
            return _Plan("single", action, origin_id, tile=tile)
        if task_type == "variation":
            action = _variation_action(_req_str(inp, "index", task_type))
            _check_prompt(inp, task_type, required=False)
            _check_optional(inp)
            return _Plan("grid", action, origin_id)
        if task_type == "reroll":
            _check_prompt(inp, task_type, required=False)
            _check_optional(inp)
            return _Plan("grid", "reroll", origin_id)
        if task_type == "seed":
            return _Plan("seed", None, origin_id)
        if task_type == "inpaint":
            _check_mask(inp)
            _check_prompt(inp, task_type, required=True)
            return _Plan("grid", "inpaint", origin_id)
        if task_type == "outpaint":
            action, value = _outpaint_action(inp)
            _check_prompt(inp, task_type, required=False)
            return _Plan("grid", action, origin_id, aspect_ratio="1:1" if value == 1.0 else None)
        if task_type == "pan":
            direction = inp.get("direction")
            if direction not in PAN_DIRECTIONS:
                raise _ApiError(
                    400, f"input.direction must be up, down, left or right, got {direction!r}"
                )
            _check_prompt(inp, task_type, required=False)
            return _Plan("grid", f"pan_{direction}", origin_id)
        raise AssertionError(task_type)

    def _check_origin(self, plan: _Plan, task_type: str, now: float) -> FakeTask:
        assert plan.origin_id is not None
        origin = self.tasks.get(plan.origin_id)
        if origin is None or origin.vanished:
            raise _ApiError(400, "origin task not found")
        status = origin.status(now)
        if status != "completed":
            raise _ApiError(400, f"origin task {origin.task_id} is not completed (status {status})")
        if task_type == "seed":
            if origin.result != "grid":
                raise _ApiError(400, "seed is only available on imagine-like tasks")
        elif plan.action not in self._actions(origin):
            raise _ApiError(
                400, f"action {plan.action} is not available on origin task {origin.task_id}"
            )
        return origin

    def _profile_for(self, task_type: str, inp: dict[str, Any]) -> Profile:
        # Only the task's own prompt is matched: a follow-up's fate is scripted separately.
        prompt = inp.get("prompt") if isinstance(inp.get("prompt"), str) else ""
        if prompt:
            for needle, profile in self.profile_for_prompt.items():
                if needle in prompt:
                    return profile
            if _BANNED_RE.search(prompt):
                return Profile(
                    pending_s=self.default_profile.pending_s,
                    processing_s=0.0,
                    outcome="failed",
                    error_message=BANNED_MESSAGE,
                    raw_message=BANNED_RAW,
                )
        return self.profile_for_task_type.get(task_type, self.default_profile)

    @staticmethod
    def _cost(task_type: str, result: str, mode: str) -> int:
        if result == "seed":
            return 0
        if result == "describe":
            return DESCRIBE_COST[mode]
        if task_type == "upscale":
            return UPSCALE_COST[mode]
        return IMAGINE_COST[mode]

    def _echo_config(self, config: dict[str, Any] | None) -> dict[str, Any]:
        echoed: dict[str, Any] = {
            "service_mode": "",
            "webhook_config": {"endpoint": "", "secret": ""},
        }
        echoed.update(config or {})
        if not echoed.get("service_mode"):
            # "" means the account default; the reply names the resolved pool.
            echoed["service_mode"] = "private" if self.plan == "hya" else "public"
        return echoed

    async def _get(self, request: web.Request) -> web.Response:
        task = self._find(request.match_info["task_id"])
        return self._ok(self._task_json(task, self.now))

    async def _cancel(self, request: web.Request) -> web.Response:
        task = self._find(request.match_info["task_id"])
        now = self.now
        status = task.status(now)
        if status != "pending":
            raise _ApiError(
                400, f"task {task.task_id} cannot be canceled: status is {status}, not pending"
            )
        # The real status after a cancel is undocumented (PROVIDERS.md §1.1 [?]); we report
        # failed with "task canceled", which a tolerant client must map to cancelled.
        task.cancelled_at = now
        return _json_response(200, {"code": 200, "message": f"task {task.task_id} canceled"})

    async def _account(self, request: web.Request) -> web.Response:
        credits = self.balance()
        return self._ok(
            {
                "account_id": "fake-account-0001",
                "account_name": "fake",
                "credits": credits,
                "equivalent_in_usd": round(credits / POINTS_PER_USD, 4),
                "plan": self.plan,
                "max_concurrent_task_count": self.max_concurrent_task_count,
            }
        )

    async def _image(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        match = _IMAGE_NAME_RE.match(name)
        task = self.tasks.get(match.group("id")) if match else None
        if match is None or task is None or task.result not in ("grid", "single"):
            return web.Response(status=404, text="not found")
        if match.group("tile") and task.result != "grid":
            return web.Response(status=404, text="not found")
        if name not in self._images:
            self._images[name] = self._render(task, match.group("tile"), match.group("preview"))
        return web.Response(body=self._images[name], headers={"Content-Type": "image/png"})

    def _render(self, task: FakeTask, tile: str | None, preview: str | None) -> bytes:
        size = _result_size(self.image_size, task.aspect_ratio)
        if preview is not None:
            return images.preview_png(
                task.task_id, int(preview), size, single=task.result == "single"
            )
        if tile is not None:
            return images.crop_tile(self._main_image(task), int(tile))
        return self._main_image(task)

    def _main_image(self, task: FakeTask) -> bytes:
        key = f"{task.task_id}.png"
        if key not in self._images:
            size = _result_size(self.image_size, task.aspect_ratio)
            origin = self.tasks.get(task.origin_id or "")
            if task.result == "grid":
                png = images.grid_png(task.task_id, size)
            elif task.tile is not None and origin is not None and origin.result == "grid":
                # U1-U4: the upscale really is that tile of the parent grid.
                png = images.resize_png(images.crop_tile(self._main_image(origin), task.tile), size)
            else:
                png = images.single_png(task.task_id, size)
            if self.grain:
                png = images.add_grain(png, task.task_id)
            self._images[key] = png
        return self._images[key]

    def _find(self, task_id: str) -> FakeTask:
        task = self.tasks.get(task_id)
        if task is None or task.vanished:
            raise _ApiError(404, "task not found")
        return task

    @staticmethod
    def _ok(data: Any) -> web.Response:
        return _json_response(200, {"code": 200, "data": data, "message": "success"})

    # --- task rendering ---

    def _url(self, name: str) -> str:
        return f"{self.base_url}/mj/{name}.png"

    def _actions(self, task: FakeTask) -> list[str]:
        if task.result == "grid":
            return list(GRID_ACTIONS)
        if task.result == "single":
            extra = [] if _is_square(task.aspect_ratio) else ["outpaint_1x"]
            return UPSCALED_ACTIONS + extra
        return []

    def _task_json(self, task: FakeTask, now: float) -> dict[str, Any]:
        status = task.status(now)
        hya = self.plan == "hya"
        progress = 0
        output: dict[str, Any] = {
            "image_url": "",
            "image_urls": None,
            "temporary_image_urls": None,
            "discord_image_url": "",
            "progress": 0,
            "intermediate_image_urls": None,
            "actions": [],
        }
        if status == "processing" and hya:
            progress, previews = task.progress(now)
            output["intermediate_image_urls"] = [
                self._url(f"{task.task_id}_p{k}") for k in range(1, previews + 1)
            ]
        elif status == "completed":
            progress = 100
            output["actions"] = self._actions(task)
            if task.result in ("grid", "single"):
                output["image_url"] = self._url(task.task_id)
            if task.result == "grid" and hya:
                output["temporary_image_urls"] = [
                    self._url(f"{task.task_id}_{n}") for n in range(1, 5)
                ]
            if task.result == "describe":
                output["description"] = self._description(task)
            if task.result == "seed":
                output["seed"] = str(int(hashlib.sha256(task.task_id.encode()).hexdigest()[:8], 16))
        output["progress"] = progress

        failed = status == "failed"
        message, raw = task.error_text if failed else ("", "")
        if self.legacy_fields:
            output["task_progress"] = output.pop("progress")
            output["error_messages"] = [message] if failed else []

        meta: dict[str, Any] = {}
        if status != "pending":
            meta = {
                "created_at": _iso(task.created_at),
                "usage": {
                    "type": "point",
                    "frozen": task.cost,
                    "consume": task.cost if status == "completed" else 0,
                },
                "model_version": "unknown",
                "process_mode": task.process_mode,
            }
            if task.cancelled_at is None:
                meta["started_at"] = _iso(task.started_at)
            if status in ("completed", "failed"):
                meta["ended_at"] = _iso(task.ended_at)

        return {
            "task_id": task.task_id,
            "model": task.model,
            "task_type": task.task_type,
            "status": status.capitalize() if self.capitalised_status else status,
            "config": task.config,
            "input": task.input,
            "output": output,
            "meta": meta,
            "detail": None,
            "logs": [],
            "error": {
                "code": FAILED_ERROR_CODE if failed else 0,
                "raw_message": raw,
                "message": message,
                "detail": None,
            },
        }

    @staticmethod
    def _description(task: FakeTask) -> str:
        url = task.input.get("image_url", "")
        subjects = ("a lighthouse", "a fox", "a city at dusk", "an old map")
        lines = [
            f"{emoji} {subject} in soft light, inspired by {url} --ar 1:1"
            for emoji, subject in zip(("1️⃣", "2️⃣", "3️⃣", "4️⃣"), subjects, strict=True)
        ]
        return "\n\n".join(lines)

    # --- control API (out-of-process tests and manual runs) ---

    async def _control_body(self, request: web.Request) -> dict[str, Any]:
        body = await self._read_json(request)
        if not isinstance(body, dict):
            raise _ApiError(400, "expected a JSON object")
        return body

    async def _ctl_advance(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        if not isinstance(self.clock, FakeClock):
            raise _ApiError(400, "advance needs a FakeClock; this fake runs on the real clock")
        seconds = body.get("seconds")
        if not isinstance(seconds, (int, float)) or seconds < 0:
            raise _ApiError(400, "seconds must be a non-negative number")
        self.clock.advance(float(seconds))
        return self._ok({"now": self.clock.time()})

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
            raise _ApiError(400, str(exc)) from None
        return self._ok(dataclasses.asdict(fault))

    async def _ctl_requests(self, request: web.Request) -> web.Response:
        return self._ok([dataclasses.asdict(r) for r in self.requests])

    async def _ctl_clear_requests(self, request: web.Request) -> web.Response:
        self.requests.clear()
        return self._ok(None)

    async def _ctl_profile(self, request: web.Request) -> web.Response:
        """{"profile": {...fields}} sets the default; add "prompt" or "task_type" to scope it."""
        body = await self._control_body(request)
        fields = body.get("profile", {})
        if not isinstance(fields, dict):
            raise _ApiError(400, "profile must be an object")
        try:
            profile = Profile(**fields)
        except (TypeError, ValueError) as exc:
            raise _ApiError(400, f"invalid profile: {exc}") from None
        if body.get("prompt"):
            self.profile_for_prompt[str(body["prompt"])] = profile
        elif body.get("task_type"):
            self.profile_for_task_type[str(body["task_type"])] = profile
        else:
            self.default_profile = profile
        return self._ok(dataclasses.asdict(profile))

    async def _ctl_vanish(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        task_id = str(body.get("task_id"))
        if task_id not in self.tasks:
            raise _ApiError(404, "task not found")
        self.vanish(task_id)
        return self._ok(None)

    async def _ctl_tasks(self, request: web.Request) -> web.Response:
        now = self.now
        return self._ok({tid: self._task_json(t, now) for tid, t in self.tasks.items()})


# --- CLI ------------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    fake = FakePiAPI(api_key=args.api_key, plan=args.plan, host=args.host)
    fake.default_profile = Profile(
        pending_s=args.pending, processing_s=args.processing, progress_step_s=args.step
    )
    await fake.start(args.port)
    # The URL alone on stdout, so scripts can read it; the human hint goes to stderr.
    print(fake.base_url, flush=True)
    print(f"fake PiAPI on {fake.base_url}, plan {args.plan}; Ctrl-C to stop", file=sys.stderr)
    try:
        await asyncio.Event().wait()  # until Ctrl-C
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake PiAPI server (real clock).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--plan", choices=("hya", "payg"), default="hya")
    parser.add_argument("--pending", type=float, default=3.0, help="seconds pending")
    parser.add_argument("--processing", type=float, default=24.0, help="seconds processing")
    parser.add_argument("--step", type=float, default=6.0, help="seconds per progress step")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
