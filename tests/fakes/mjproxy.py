"""A protocol-faithful fake of midjourney-proxy (trueai-org, PROVIDERS.md §4), for tests and runs.

Real HTTP on 127.0.0.1; every task's state is computed lazily from a clock, so with a
`FakeClock` a test moves a task from NOT_START to SUCCESS just by advancing time. Replies use
the real envelope `{code, description, result, properties}` and codes (1, 3, 4, 21, 22, 23, 24),
tasks carry the buttons trueai copies from Discord, and the two-step MODAL flow (Custom Zoom,
Vary (Region), describe picks, any action on a remix-mode account) is enforced.

    async with FakeMJProxy(clock=FakeClock()) as fake:
        ...  # point the client at fake.base_url with header mj-api-secret: test-secret

Scripted outcomes reuse the PiAPI fake's `Profile`; `inject` scripts faults; `requests`
records what arrived; `/_control/*` does the same over HTTP.

CLI: python -m tests.fakes.mjproxy --port 8766 --secret S [--auth bearer] [--remix]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import itertools
import json
import re
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from bot.clock import Clock, FakeClock, SystemClock
from tests.fakes import images, videos
from tests.fakes.piapi import Profile
from tests.fakes.push import WebhookSender

__all__ = [
    "FAULTS",
    "FakeMJProxy",
    "FakeTask",
    "Fault",
    "Profile",
    "RequestRecord",
]

FAULTS = ("401", "429", "500", "503", "timeout", "malformed", "reset", "queue_full")
MODE_PREFIXES = ("", "/mj-fast", "/mj-relax", "/mj-turbo")
BLEND_RATIOS = {"SQUARE": "1:1", "PORTRAIT": "2:3", "LANDSCAPE": "3:2"}
PAN_DIRECTIONS = ("left", "right", "up", "down")
PROMPT_LIMIT = 8192
STATE_LIMIT = 255
BANNED_FAIL_REASON = "[Banned prompt detected] Sorry! Our AI moderator thinks this is not allowed."
CANCEL_REASON = "取消任务"
MODAL_DESCRIPTION = "Waiting for window confirm"
_BANNED_RE = re.compile(r"\bbanned\b", re.IGNORECASE)
_AR_FLAG_RE = re.compile(r"--(?:ar|aspect)\s+(\d+)\s*:\s*(\d+)", re.IGNORECASE)
_ZOOM_FLAG_RE = re.compile(r"--zoom\s+(\S+)", re.IGNORECASE)
_DATA_URL_RE = re.compile(r"^data:(image/[a-z0-9.+-]+);base64,(.+)$", re.IGNORECASE | re.DOTALL)
_IMAGE_NAME_RE = re.compile(r"^(?P<id>\d+)(?:_(?P<tile>[1-4])|_p(?P<preview>\d+))?\.png$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Video (PROVIDERS.md §8.4): minutes of work; MP4s at /attachments/<id>_<i>.mp4 with a still
# at /attachments/<id>_c<i>.png; at most 4 extends (~21 s).
VIDEO_PROFILE = Profile(pending_s=20.0, processing_s=240.0, progress_step_s=30.0)
VIDEO_TYPES = ("vid_1.1_i2v_480", "vid_1.1_i2v_720")
VIDEO_DISABLED = "视频功能未启用"  # EnableVideo off (trueai #90)
NO_START_FRAME = "no start frame provided"  # Dooy/chatgpt-web-midjourney-proxy #657
MAX_EXTENDS = 4
_VIDEO_NAME_RE = re.compile(r"^(?P<id>\d+)_(?P<kind>c?)(?P<no>[0-3])\.(?P<ext>mp4|png)$")
_ANIMATE_RE = re.compile(r"^MJ::JOB::animate_(low|high)(_extend)?::")
_REDACTED = "<redacted>"


@dataclass
class FakeTask:
    """Internal state of one task; everything visible is derived from it and the clock."""

    id: str
    action: str  # IMAGINE UPSCALE VARIATION REROLL DESCRIBE BLEND PAN ACTION INPAINT ...
    prompt: str
    state: str | None
    submitted_at: float  # when the client created it (submitTime)
    profile: Profile
    result: str  # "grid" | "single" | "describe"
    ratio: tuple[int, int]
    mode: str
    job_hash: str
    custom_id: str | None = None  # the button that made it (follow-ups)
    parent_id: str | None = None
    tile: int | None = None  # U1-U4: the upscale is that tile of the parent grid
    upscaled: bool = False  # made by Upscale (Subtle/Creative): offers Redo Upscale
    modal: bool = False  # created waiting for /mj/submit/modal
    confirmed_at: float | None = None  # when the modal was submitted
    queue_delay: float = 0.0  # seconds in NOT_START behind a full set of running tasks
    cancelled_at: float | None = None
    vanished: bool = False
    seed: str | None = None  # known once /image-seed has been asked
    mask: bool = False
    link: str | None = None  # describe's image
    videos: int = 0  # a video task: how many MP4s (batchSize)
    extends: int = 0  # how many extends led to this video
    video_type: str = VIDEO_TYPES[0]

    @property
    def start(self) -> float | None:
        """When its life (queue, submitted, in progress) begins; None while a MODAL."""
        if self.modal:
            return self.confirmed_at
        return self.submitted_at

    def status(self, now: float) -> str:
        if self.cancelled_at is not None:
            return "CANCEL"
        start = self.start
        if start is None:
            return "MODAL"
        elapsed = now - start - self.queue_delay
        p = self.profile
        if elapsed < 0:
            return "NOT_START"
        if elapsed < p.pending_s:
            return "SUBMITTED"
        if p.stuck_at is not None or elapsed < p.pending_s + p.processing_s:
            return "IN_PROGRESS"
        return "SUCCESS" if p.outcome == "completed" else "FAILURE"

    @property
    def started_at(self) -> float | None:
        start = self.start
        return None if start is None else start + self.queue_delay + self.profile.pending_s

    @property
    def finished_at(self) -> float | None:
        if self.cancelled_at is not None:
            return self.cancelled_at
        started = self.started_at
        return None if started is None else started + self.profile.processing_s

    def is_active(self, now: float) -> bool:
        return self.status(now) in ("NOT_START", "SUBMITTED", "IN_PROGRESS")

    def progress(self, now: float) -> tuple[int, int]:
        """(percent, previews so far) while IN_PROGRESS."""
        p = self.profile
        started = self.started_at
        if started is None or p.progress_step_s <= 0 or p.processing_s <= 0:
            return 0, 0
        elapsed = max(0.0, now - started)
        last_step = int(-(-p.processing_s // p.progress_step_s))

        def percent(k: int) -> int:
            return min(99, int(100 * k * p.progress_step_s / p.processing_s))

        steps = min(int(elapsed // p.progress_step_s), last_step)
        progress = percent(steps)
        if p.stuck_at is not None:
            progress = min(progress, p.stuck_at)
            while steps > 0 and percent(steps) > progress:
                steps -= 1
        return progress, steps


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
    body: Any  # parsed JSON or None
    status: int | None = None  # HTTP status; None: connection dropped or still in flight
    at: float = 0.0  # clock time of arrival
    fault: str | None = None
    task_id: str | None = None  # the task it created (create) or confirmed (modal)
    kind: str | None = None  # "create" | "modal" once it made or ran a task
    code: int | None = None  # the reply's envelope code, for submits

    @property
    def json(self) -> Any:  # the PiAPI fake's name for the body
        return self.body


_RECORD = web.RequestKey("record", RequestRecord)


class _Reply(Exception):
    """Answer with an envelope (and an HTTP status): the handler's early exits."""

    def __init__(
        self,
        code: int,
        description: str,
        *,
        status: int = 200,
        result: Any = None,
        properties: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(description)
        self.code, self.description, self.status = code, description, status
        self.result, self.properties = result, properties or {}


def _json_response(
    status: int, payload: Any, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


def _envelope(
    code: int, description: str, result: Any = None, properties: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "code": code,
        "description": description,
        "result": result,
        "properties": properties or {},
    }


_DRAFT_RE = re.compile(r"(?<!\S)--draft\b", re.IGNORECASE)


def _ms(ts: float | None) -> int | None:
    return None if ts is None else round(ts * 1000)


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _decode_data_url(value: Any) -> bytes | None:
    """The bytes of an image data-URL, or None when it is not one."""
    if not isinstance(value, str):
        return None
    match = _DATA_URL_RE.match(value.strip())
    if not match:
        return None
    try:
        return base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        return None


def _ratio_of(prompt: str) -> tuple[int, int]:
    match = _AR_FLAG_RE.search(prompt)
    if not match:
        return (1, 1)
    w, h = int(match.group(1)), int(match.group(2))
    return (w, h) if w > 0 and h > 0 else (1, 1)


def _size(image_size: int, ratio: tuple[int, int]) -> tuple[int, int]:
    w, h = ratio
    if w >= h:
        return image_size, max(2, round(image_size * h / w / 2) * 2)
    return max(2, round(image_size * w / h / 2) * 2), image_size


def _button(custom_id: str, label: str = "", emoji: str = "") -> dict[str, Any]:
    return {"customId": custom_id, "emoji": emoji, "label": label, "style": 2, "type": 2}


class FakeMJProxy:
    """midjourney-proxy over real HTTP, driven by a clock. See the module docstring."""

    def __init__(
        self,
        *,
        api_secret: str = "test-secret",
        auth_style: str = "mj-api-secret",
        clock: Clock | None = None,
        image_size: int = 256,
        remix_mode: bool = False,
        host: str = "127.0.0.1",
        max_running: int = 3,
        queue_size: int = 10,
        upscale_version: str = "v6r1",
    ) -> None:
        if auth_style not in ("mj-api-secret", "bearer"):
            raise ValueError(f"auth_style must be 'mj-api-secret' or 'bearer', got {auth_style!r}")
        self.api_secret = api_secret
        self.auth_style = auth_style
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.image_size = image_size
        self.remix_mode = remix_mode
        self.host = host
        self.max_running = max_running
        self.queue_size = queue_size
        self.upscale_version = upscale_version
        # False: every Midjourney account behind the proxy is disabled (credits exhausted,
        # banned, …): submits answer code 3 "无可用的账号实例" (PROVIDERS.md §10).
        self.accounts_available = True
        # EnableVideo: the server setting without which there are no Animate buttons and
        # /mj/submit/video answers "视频功能未启用". Each MP4 is `video_bytes` long.
        self.enable_video = True
        # Server/account switches of issue 19's submits: IsShorten on the account, and
        # EnableUserCustomUploadBase64 for retexture and edits ("禁止上传" when off).
        self.enable_shorten = True
        self.enable_upload = True
        self.video_bytes = videos.DEFAULT_SIZE
        self.video_profile = VIDEO_PROFILE
        self.default_profile = Profile()
        self.profile_for_prompt: dict[str, Profile] = {}
        self.tasks: dict[str, FakeTask] = {}
        self.requests: list[RequestRecord] = []
        self.faults: list[Fault] = []
        self._images: dict[str, bytes] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._delayed: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)
        # Tasks submitted with a notifyHook get the full task POSTed there on every
        # status/progress change (knobs: see tests.fakes.push).
        self.webhooks = WebhookSender(self.clock)

    # --- lifecycle ---

    async def start(self, port: int = 0) -> None:
        self.webhooks.start()
        app = web.Application(middlewares=[self._middleware])
        for prefix in MODE_PREFIXES:
            for op in (
                *("imagine", "action", "modal", "blend", "describe", "video"),
                *("shorten", "retexture", "edits", "edit"),  # issue 19, PROVIDERS.md §8.4
            ):
                app.router.add_post(f"{prefix}/mj/submit/{op}", self._submit)
            app.router.add_get(f"{prefix}/mj/task/{{task_id}}/fetch", self._fetch)
            app.router.add_get(f"{prefix}/mj/task/{{task_id}}/image-seed", self._image_seed)
            app.router.add_post(f"{prefix}/mj/task/{{task_id}}/cancel", self._cancel)
            app.router.add_post(f"{prefix}/mj/task/list-by-condition", self._list)
        app.router.add_get("/attachments/{name}", self._image)
        app.router.add_post("/_control/advance", self._ctl_advance)
        app.router.add_post("/_control/inject", self._ctl_inject)
        app.router.add_get("/_control/requests", self._ctl_requests)
        app.router.add_delete("/_control/requests", self._ctl_clear_requests)
        app.router.add_post("/_control/profile", self._ctl_profile)
        app.router.add_post("/_control/vanish", self._ctl_vanish)
        app.router.add_post("/_control/remix", self._ctl_remix)
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

    async def __aenter__(self) -> FakeMJProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeMJProxy is not started")
        return f"http://{self.host}:{self._port}"

    @property
    def now(self) -> float:
        return self.clock.time()

    # --- scripting helpers ---

    def inject(
        self, method: str, path_prefix: str, fault: str, times: int | None = 1, **kw: Any
    ) -> Fault:
        """Answer the next `times` matching requests (None = all) with `fault` (see FAULTS).

        kw: retry_after (429, 503), delay (timeout, real seconds, default 30), process=True
        to run the request first (the task is created) and then answer with the fault;
        "timeout" processes by default, the others do not.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(FAULTS)}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        entry = Fault(method.upper(), path_prefix, fault, times, dict(kw))
        self.faults.append(entry)
        return entry

    def vanish(self, task_id: str) -> None:
        """Make a task unknown to the API from now on (its images stay served)."""
        self.tasks[task_id].vanished = True

    def created(self, action: str | None = None) -> list[RequestRecord]:
        """Requests that created a task (even if a fault hid the reply), by task action.

        `action` is the task's action ("IMAGINE", "UPSCALE", ...) or "MODAL" for the action
        requests that created a task waiting for its window.
        """
        out = []
        for record in self.requests:
            if record.kind != "create" or record.task_id is None:
                continue
            task = self.tasks[record.task_id]
            if action is None or task.action == action or (action == "MODAL" and task.modal):
                out.append(record)
        return out

    def modals(self) -> list[RequestRecord]:
        """/mj/submit/modal requests that ran a MODAL task."""
        return [r for r in self.requests if r.kind == "modal"]

    def running_task_count(self) -> int:
        """Tasks queued, submitted or in progress now."""
        now = self.now
        return sum(1 for t in self.tasks.values() if t.is_active(now))

    def task_json(self, task_id: str) -> dict[str, Any]:
        """The task exactly as /fetch would return it now."""
        return self._task_json(self.tasks[task_id], self.now)

    # --- HTTP plumbing ---

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/_control/"):
            return await self._guard(request, handler)
        secret_headers = ("mj-api-secret", "authorization")
        record = RequestRecord(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={
                k: (_REDACTED if k.lower() in secret_headers else v)
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

    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Reply as reply:
            record = request.get(_RECORD)
            if record is not None:
                record.code = reply.code
            return _json_response(
                reply.status,
                _envelope(reply.code, reply.description, reply.result, reply.properties),
            )
        except web.HTTPException as exc:
            return _json_response(exc.status, _envelope(exc.status, exc.reason))

    async def _handle(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # Images come from a CDN in the real service: no secret needed.
        if not request.path.startswith("/attachments/") and not self._authorised(request):
            return _json_response(401, _envelope(401, "unauthorized: invalid or missing secret"))
        return await self._guard(request, handler)

    def _authorised(self, request: web.Request) -> bool:
        if self.auth_style == "bearer":
            return request.headers.get("Authorization") == f"Bearer {self.api_secret}"
        return request.headers.get("mj-api-secret") == self.api_secret

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
            process = kw.get("process", True)
            response = await self._handle(request, handler) if process else None
            task = asyncio.current_task()
            if task is not None:
                self._delayed.add(task)
            try:
                await asyncio.sleep(float(kw.get("delay", 30.0)))  # real time, on purpose
            finally:
                if task is not None:
                    self._delayed.discard(task)
            return response or _json_response(504, _envelope(9, "gateway timeout"))
        if kw.get("process", False):
            await self._handle(request, handler)  # side effects happen, the reply is lost
        if kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if kind == "401":
            return _json_response(401, _envelope(401, "unauthorized"))
        if kind == "429":
            retry = str(kw.get("retry_after", 1))
            return _json_response(429, _envelope(429, "too many requests"), {"Retry-After": retry})
        if kind == "500":
            return _json_response(500, _envelope(9, "internal server error"))
        if kind == "503":
            headers = {"Retry-After": str(kw["retry_after"])} if "retry_after" in kw else None
            return _json_response(503, _envelope(9, "service unavailable"), headers)
        if kind == "malformed":
            return web.Response(
                status=200,
                body=b'{"code":1,"description":"\x00,,]] garbage',
                headers={"Content-Type": "application/json"},
            )
        if kind == "queue_full":
            record = request.get(_RECORD)
            if record is not None:
                record.code = 23
            return _json_response(200, _envelope(23, "队列已满，请稍后尝试"))
        raise AssertionError(f"unhandled fault {kind}")

    # --- submit handlers ---

    async def _submit(self, request: web.Request) -> web.Response:
        body = await self._read_json(request)
        if not isinstance(body, dict):
            raise _Reply(4, "请求体必须是 JSON 对象 (expected a JSON object)")
        op = request.path.rsplit("/", 1)[-1]
        if not self.accounts_available:
            raise _Reply(3, "无可用的账号实例")
        mode = self._mode(request.path, body)
        state = body.get("state")
        if state is not None and (not isinstance(state, str) or len(state) > STATE_LIMIT):
            raise _Reply(4, f"state must be a string of at most {STATE_LIMIT} characters")
        if op == "modal":
            response = self._modal(request, body)
            task = self.tasks.get(str(body.get("taskId")))
        else:
            if op == "imagine":
                task = self._imagine(body, mode)
            elif op == "blend":
                task = self._blend(body, mode)
            elif op == "describe":
                task = self._describe(body, mode)
            elif op == "video":
                task = self._video(body, mode)
            elif op in ("shorten", "retexture", "edits", "edit"):
                task = self._uploaded(op, body, mode)
            else:
                task = self._action(body, mode)
            response = self._accept(request, task)
        hook = body.get("notifyHook")
        if task is not None and _is_http_url(hook):
            assert isinstance(hook, str)
            self.webhooks.track(
                task.id,
                hook,
                render=lambda: None if task.vanished else self._task_json(task, self.now),
                final=lambda data: data.get("status") in ("SUCCESS", "FAILURE", "CANCEL"),
            )
        return response

    def _mode(self, path: str, body: dict[str, Any]) -> str:
        for prefix in MODE_PREFIXES[1:]:
            if path.startswith(prefix + "/"):
                return prefix.removeprefix("/mj-").upper()
        account_filter = body.get("accountFilter")
        if isinstance(account_filter, dict):
            modes = account_filter.get("modes")
            if isinstance(modes, list) and modes:
                mode = str(modes[0]).upper()
                if mode not in ("FAST", "RELAX", "TURBO"):
                    raise _Reply(4, f"accountFilter.modes: unknown mode {modes[0]!r}")
                return mode
        return "FAST"

    def _check_prompt(self, prompt: Any) -> str:
        if not isinstance(prompt, str) or not prompt.strip():
            raise _Reply(4, "prompt不能为空 (prompt must not be empty)")
        if len(prompt) > PROMPT_LIMIT:
            raise _Reply(4, f"prompt is too long ({len(prompt)} > {PROMPT_LIMIT})")
        if match := _BANNED_RE.search(prompt):
            raise _Reply(
                24,
                "可能包含敏感词",
                properties={"promptEn": prompt, "bannedWord": match.group(0).lower()},
            )
        return prompt.strip()

    def _new_task(self, **kw: Any) -> FakeTask:
        now = self.now
        task_id = f"{int(now * 1000)}{next(self._ids) % 1000:03d}"
        while task_id in self.tasks:
            task_id = f"{int(task_id) + 1}"
        prompt = kw.get("prompt", "")
        task = FakeTask(
            id=task_id,
            submitted_at=now,
            profile=dataclasses.replace(self._profile_for(prompt)),
            job_hash=str(uuid.uuid4()),
            **kw,
        )
        return task

    def _profile_for(self, prompt: str) -> Profile:
        for needle, profile in self.profile_for_prompt.items():
            if needle and needle in prompt:
                return profile
        return self.default_profile

    def _imagine(self, body: dict[str, Any], mode: str) -> FakeTask:
        prompt = self._check_prompt(body.get("prompt"))
        images_in = body.get("base64Array") or []
        if not isinstance(images_in, list) or any(_decode_data_url(x) is None for x in images_in):
            raise _Reply(4, "base64格式错误 (base64Array must hold image data-URLs)")
        return self._new_task(
            action="IMAGINE",
            prompt=prompt,
            state=body.get("state"),
            result="grid",
            ratio=_ratio_of(prompt),
            mode=mode,
        )

    def _blend(self, body: dict[str, Any], mode: str) -> FakeTask:
        items = body.get("base64Array")
        if not isinstance(items, list) or not 2 <= len(items) <= 5:
            raise _Reply(4, "base64List参数错误 (blend needs 2 to 5 images)")
        for item in items:
            data = _decode_data_url(item)
            if data is None:
                raise _Reply(4, "base64格式错误 (each image must be a data-URL)")
        dimensions = body.get("dimensions")
        if not isinstance(dimensions, str) or dimensions.upper() not in BLEND_RATIOS:
            raise _Reply(4, "dimensions参数错误 (PORTRAIT, SQUARE or LANDSCAPE)")
        w, h = (int(x) for x in BLEND_RATIOS[dimensions.upper()].split(":"))
        return self._new_task(
            action="BLEND",
            prompt="",
            state=body.get("state"),
            result="grid",
            ratio=(w, h),
            mode=mode,
        )

    def _describe(self, body: dict[str, Any], mode: str) -> FakeTask:
        link, data = body.get("link"), body.get("base64")
        if link not in (None, ""):
            if not _is_http_url(link):
                raise _Reply(4, "link must be an http(s) URL")
        elif _decode_data_url(data) is None:
            raise _Reply(4, "base64不能为空 (base64 or link is required)")
        return self._new_task(
            action="DESCRIBE",
            prompt="",
            state=body.get("state"),
            result="describe",
            ratio=(1, 1),
            mode=mode,
            link=link if isinstance(link, str) else None,
        )

    def _uploaded(self, op: str, body: dict[str, Any], mode: str) -> FakeTask:
        """/mj/submit/shorten {prompt}: a SHORTEN task with five shorter prompts;
        /mj/submit/retexture and /edits {prompt, image}: a RETEXTURE or EDIT grid."""
        prompt = self._check_prompt(body.get("prompt"))
        if op == "shorten":
            if not self.enable_shorten:
                raise _Reply(3, "无可用的账号实例")
            return self._new_task(
                action="SHORTEN",
                prompt=prompt,
                state=body.get("state"),
                result="shorten",
                ratio=(1, 1),
                mode=mode,
            )
        if not self.enable_upload:
            raise _Reply(4, "禁止上传")
        image = body.get("image")
        if not _is_http_url(image) and _decode_data_url(image) is None:
            raise _Reply(4, "image不能为空 (image must be a URL or base64)")
        return self._new_task(
            action="RETEXTURE" if op == "retexture" else "EDIT",
            prompt=prompt,
            state=body.get("state"),
            result="grid",
            ratio=_ratio_of(prompt),
            mode=mode,
            link=image if isinstance(image, str) and _is_http_url(image) else None,
        )

    @staticmethod
    def _shortened(task: FakeTask) -> list[str]:
        words = task.prompt.split()
        return [" ".join(words[: max(1, len(words) - k)]) for k in range(1, 6)]

    def _video(self, body: dict[str, Any], mode: str) -> FakeTask:
        """POST /mj/submit/video: from a start image, or {action: "extend", taskId, index}."""
        if not self.enable_video:
            raise _Reply(4, VIDEO_DISABLED)
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _Reply(4, "prompt不能为空 (prompt must not be empty)")
        self._check_prompt(prompt)
        motion = body.get("motion", "low")
        if motion not in ("low", "high"):
            raise _Reply(4, "motion must be low or high")
        if body.get("action") == "extend":
            return self._extend(body, prompt, mode)
        if body.get("action") not in (None, ""):
            raise _Reply(4, "任务类型错误")
        if body.get("taskId"):
            raise _Reply(4, "任务类型错误")  # taskId belongs to an extend only
        image = body.get("image")
        if not isinstance(image, str) or not image.strip():
            raise _Reply(4, NO_START_FRAME)
        if not (_is_http_url(image) or _decode_data_url(image) is not None):
            raise _Reply(4, "image must be a URL or a data-URL")
        end = body.get("endImage")
        if end not in (None, "") and not _is_http_url(end):
            raise _Reply(4, "endImage must be a URL")
        video_type = body.get("videoType", VIDEO_TYPES[0])
        if video_type not in VIDEO_TYPES:
            raise _Reply(4, f"videoType must be one of {', '.join(VIDEO_TYPES)}")
        batch = body.get("batchSize", 4)
        if batch not in (1, 2, 4):
            raise _Reply(4, "batchSize must be 1, 2 or 4")
        if not isinstance(body.get("loop", False), bool):
            raise _Reply(4, "loop must be true or false")
        return self._video_task(prompt.strip(), body, mode, batch, video_type)

    def _extend(self, body: dict[str, Any], prompt: str, mode: str) -> FakeTask:
        parent = self.tasks.get(str(body.get("taskId") or ""))
        if parent is None or parent.vanished:
            raise _Reply(3, "关联任务不存在或已失效", status=404)
        if parent.result != "video" or parent.status(self.now) != "SUCCESS":
            raise _Reply(4, "任务类型错误")
        index = body.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < parent.videos:
            raise _Reply(4, f"index must be 0 to {parent.videos - 1}")
        if parent.extends >= MAX_EXTENDS:
            raise _Reply(4, "a video can be extended at most 4 times")
        task = self._video_task(prompt.strip(), body, parent.mode, 1, parent.video_type)
        task.parent_id, task.extends, task.tile = parent.id, parent.extends + 1, index + 1
        return task

    def _video_task(
        self, prompt: str, body: dict[str, Any], mode: str, batch: int, video_type: str
    ) -> FakeTask:
        task = self._new_task(
            action="VIDEO",
            prompt=prompt,
            state=body.get("state"),
            result="video",
            ratio=(1, 1),
            mode=mode,
        )
        task.videos, task.video_type = batch, video_type
        if not any(n in prompt for n in self.profile_for_prompt):
            task.profile = dataclasses.replace(self.video_profile)
        return task

    def _action(self, body: dict[str, Any], mode: str) -> FakeTask:
        task_id, custom_id = body.get("taskId"), body.get("customId")
        if not isinstance(task_id, str) or not task_id or not isinstance(custom_id, str):
            raise _Reply(4, "参数错误 (taskId and customId are required)")
        if not custom_id:
            raise _Reply(4, "参数错误 (taskId and customId are required)")
        parent = self.tasks.get(task_id)
        if parent is None or parent.vanished:
            raise _Reply(3, "关联任务不存在或已失效", status=404)
        now = self.now
        if parent.status(now) != "SUCCESS":
            raise _Reply(4, "关联任务状态错误 (the task is not finished)")
        if custom_id not in {b["customId"] for b in self._buttons(parent)}:
            raise _Reply(4, f"customId {custom_id!r} is not a button of task {task_id}")
        action, result, tile, upscaled = self._follow_up_kind(custom_id)
        ratio = parent.ratio
        if custom_id.startswith("MJ::Outpaint::100::"):
            ratio = (1, 1)
        prompt = parent.prompt
        if custom_id.startswith("MJ::JOB::enhance::"):
            if any(
                t.custom_id == custom_id and t.status(now) != "FAILURE" for t in self.tasks.values()
            ):
                raise _Reply(4, f"task {task_id} has already been enhanced")
            prompt = _DRAFT_RE.sub("", prompt).strip()  # the enhanced image is no draft
        if result == "picread":
            index = int(custom_id.rsplit("::", 1)[-1])
            prompt = self._suggestions(parent)[index - 1]
            result = "grid"
            ratio = _ratio_of(prompt)
        modal = custom_id.startswith(
            ("MJ::CustomZoom::", "MJ::Inpaint::", "MJ::Job::PicReader::")
        ) or (self.remix_mode and action in ("VARIATION", "REROLL", "PAN"))
        task = self._new_task(
            action=action,
            prompt=prompt,
            state=body.get("state"),
            result=result,
            ratio=ratio,
            mode=parent.mode if mode == "FAST" else mode,
            custom_id=custom_id,
            parent_id=parent.id,
            tile=tile,
            upscaled=upscaled,
            modal=modal,
        )
        if result == "video":
            # Animate: four videos of that image; a single video's Extend: one longer video.
            extend = "_extend::" in custom_id
            task.videos = 1 if extend else 4
            task.extends = parent.extends + 1 if extend else 0
            if task.extends > MAX_EXTENDS:
                raise _Reply(4, "a video can be extended at most 4 times")
            if not any(n in prompt for n in self.profile_for_prompt):
                task.profile = dataclasses.replace(self.video_profile)
        return task

    @staticmethod
    def _follow_up_kind(custom_id: str) -> tuple[str, str, int | None, bool]:
        """(action, result, tile, upscaled) of the task a button starts (SubmitController)."""
        parts = custom_id.split("::")
        if custom_id.startswith("MJ::JOB::upsample::"):
            return "UPSCALE", "single", int(parts[3]), False
        if custom_id.startswith("MJ::JOB::upsample_"):
            return "UPSCALE", "single", None, True
        if custom_id.startswith(("MJ::JOB::variation::", "MJ::JOB::low_variation::")):
            return "VARIATION", "grid", None, False
        if custom_id.startswith("MJ::JOB::high_variation::"):
            return "VARIATION", "grid", None, False
        if custom_id.startswith("MJ::JOB::reroll::"):
            return "REROLL", "grid", None, False
        if custom_id.startswith("MJ::JOB::enhance::"):
            return "ACTION", "grid", None, False
        if custom_id.startswith("MJ::JOB::pan_"):
            return "PAN", "grid", None, False
        if custom_id.startswith("MJ::Inpaint::"):
            return "INPAINT", "grid", None, False
        if custom_id.startswith(("MJ::Outpaint::", "MJ::CustomZoom::")):
            return "OUTPAINT", "grid", None, False
        if custom_id.startswith("MJ::Job::PicReader::"):
            return "IMAGINE", "picread", None, False
        if _ANIMATE_RE.match(custom_id):
            return "VIDEO", "video", None, False
        if custom_id.startswith("MJ::Picread::Retry"):
            return "DESCRIBE", "describe", None, False
        return "ACTION", "grid", None, False

    def _modal(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        task_id, prompt = body.get("taskId"), body.get("prompt")
        if not isinstance(task_id, str) or not task_id:
            raise _Reply(4, "参数错误 (taskId and prompt are required)")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _Reply(4, "参数错误 (taskId and prompt are required)")
        task = self.tasks.get(task_id)
        if task is None or task.vanished:
            raise _Reply(3, "关联任务不存在或已失效", status=404)
        if task.status(self.now) != "MODAL":
            raise _Reply(4, f"task {task_id} is not waiting for a window (status not MODAL)")
        prompt = prompt.strip()
        if _BANNED_RE.search(prompt):
            self._check_prompt(prompt)  # raises code 24
        custom_id = task.custom_id or ""
        if custom_id.startswith("MJ::CustomZoom::"):
            match = _ZOOM_FLAG_RE.search(prompt)
            try:
                ratio = float(match.group(1)) if match else None
            except ValueError:
                ratio = None
            if ratio is None or not 1.0 < ratio <= 2.0:
                raise _Reply(4, "Custom Zoom needs --zoom with a value above 1 and at most 2")
        if custom_id.startswith("MJ::Inpaint::"):
            mask = _decode_data_url(body.get("maskBase64"))
            if mask is None or not mask.startswith(_PNG_SIGNATURE):
                raise _Reply(4, "maskBase64 must be a data:image/png;base64 URL of a PNG")
            task.mask = True
        task.prompt = prompt
        task.profile = dataclasses.replace(self._profile_for(prompt))
        if isinstance(body.get("state"), str):
            task.state = body["state"]
        task.confirmed_at = self.now
        task.queue_delay = self._queue_delay(task)
        record = request.get(_RECORD)
        if record is not None:
            record.task_id, record.kind = task.id, "modal"
        return self._accepted_reply(record, task)

    def _queue_delay(self, task: FakeTask) -> float:
        """NOT_START time: until enough of the running tasks end (raises 23 when full)."""
        now = self.now
        active = [t for t in self.tasks.values() if t is not task and t.is_active(now)]
        if len(active) < self.max_running:
            return 0.0
        ahead = len(active) - self.max_running
        if ahead >= self.queue_size:
            raise _Reply(23, "队列已满，请稍后尝试 (queue is full)")
        ends = sorted(
            t.finished_at if t.finished_at is not None else now for t in active
        )  # a slot frees as each ends
        return max(0.0, ends[ahead] - now)

    def _accept(self, request: web.Request, task: FakeTask) -> web.Response:
        if not task.modal:
            task.queue_delay = self._queue_delay(task)
        self.tasks[task.id] = task
        record = request.get(_RECORD)
        if record is not None:
            record.task_id, record.kind = task.id, "create"
        if task.modal:
            if record is not None:
                record.code = 21
            return _json_response(
                200,
                _envelope(
                    21,
                    MODAL_DESCRIPTION,
                    task.id,
                    {"finalPrompt": task.prompt, "remix": True},
                ),
            )
        return self._accepted_reply(record, task)

    def _accepted_reply(self, record: RequestRecord | None, task: FakeTask) -> web.Response:
        if task.queue_delay > 0:
            ahead = sum(
                1
                for t in self.tasks.values()
                if t is not task and t.status(self.now) == "NOT_START"
            )
            code, text, props = (
                22,
                f"排队中，前面还有 {ahead + 1} 个任务",
                {
                    "numberOfQueues": ahead + 1,
                    "discordInstanceId": "1000000000000000001",
                },
            )
        else:
            code, text, props = 1, "提交成功", {"discordInstanceId": "1000000000000000001"}
        if record is not None:
            record.code = code
        return _json_response(200, _envelope(code, text, task.id, props))

    # --- query handlers ---

    def _find(self, task_id: str) -> FakeTask | None:
        task = self.tasks.get(task_id)
        return None if task is None or task.vanished else task

    async def _fetch(self, request: web.Request) -> web.Response:
        task = self._find(request.match_info["task_id"])
        if task is None:
            return web.Response(status=204)  # ASP.NET's answer to a null task
        return _json_response(200, self._task_json(task, self.now))

    async def _list(self, request: web.Request) -> web.Response:
        body = await self._read_json(request)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            return _json_response(200, [])
        now = self.now
        found = [self._find(str(i).strip()) for i in ids]
        return _json_response(200, [self._task_json(t, now) for t in found if t is not None])

    async def _image_seed(self, request: web.Request) -> web.Response:
        task = self._find(request.match_info["task_id"])
        if task is None:
            raise _Reply(3, "关联任务不存在或已失效", status=404)
        if task.status(self.now) != "SUCCESS" or task.result == "describe":
            raise _Reply(4, "关联任务状态错误", status=400)
        if task.seed is None:
            task.seed = str(int(hashlib.sha256(task.id.encode()).hexdigest()[:8], 16))
        return _json_response(200, _envelope(1, "成功", task.seed))

    async def _cancel(self, request: web.Request) -> web.Response:
        task = self._find(request.match_info["task_id"])
        if task is not None and task.status(self.now) in (
            "NOT_START",
            "SUBMITTED",
            "IN_PROGRESS",
            "MODAL",
        ):
            task.cancelled_at = self.now
        return web.Response(status=200)  # trueai answers an empty 200 either way

    def _video_file(self, name: str) -> web.Response | None:
        """`<id>_<i>.mp4` (a finished video) and `<id>_c<i>.png` (its still)."""
        match = _VIDEO_NAME_RE.match(name)
        task = self.tasks.get(match.group("id")) if match else None
        if match is None or task is None or task.result != "video":
            return None
        no = int(match.group("no"))
        if no >= task.videos or task.status(self.now) != "SUCCESS":
            return None
        if match.group("ext") == "mp4":
            duration = 5.0 + 4 * task.extends
            data = videos.mp4(name, size=self.video_bytes, duration_s=duration)
            return web.Response(body=data, headers={"Content-Type": "video/mp4"})
        if name not in self._images:
            self._images[name] = images.single_png(name, _size(self.image_size, task.ratio))
        return web.Response(body=self._images[name], headers={"Content-Type": "image/png"})

    async def _image(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if (clip := self._video_file(name)) is not None:
            return clip
        match = _IMAGE_NAME_RE.match(name)
        task = self.tasks.get(match.group("id")) if match else None
        allowed = ("grid", "single", "video") if match and match.group("preview") else ()
        if match is None or task is None or task.result not in ("grid", "single", *allowed):
            return web.Response(status=404, text="not found")
        if match.group("tile") and task.result != "grid":
            return web.Response(status=404, text="not found")
        if name not in self._images:
            self._images[name] = self._render(task, match.group("tile"), match.group("preview"))
        return web.Response(body=self._images[name], headers={"Content-Type": "image/png"})

    def _render(self, task: FakeTask, tile: str | None, preview: str | None) -> bytes:
        size = _size(self.image_size, task.ratio)
        if preview is not None:
            return images.preview_png(task.id, int(preview), size, single=task.result == "single")
        if tile is not None:
            return images.crop_tile(self._main_image(task), int(tile))
        return self._main_image(task)

    def _main_image(self, task: FakeTask) -> bytes:
        key = f"{task.id}.png"
        if key not in self._images:
            size = _size(self.image_size, task.ratio)
            parent = self.tasks.get(task.parent_id or "")
            if task.result == "grid":
                png = images.grid_png(task.id, size)
            elif task.tile is not None and parent is not None and parent.result == "grid":
                png = images.resize_png(images.crop_tile(self._main_image(parent), task.tile), size)
            else:
                png = images.single_png(task.id, size)
            self._images[key] = png
        return self._images[key]

    # --- task rendering ---

    def _url(self, name: str) -> str:
        return f"{self.base_url}/attachments/{name}.png"

    def _buttons(self, task: FakeTask) -> list[dict[str, Any]]:
        """The Discord components trueai copies into `buttons` for a finished task."""
        h = task.job_hash
        if task.result == "grid":
            return [
                *(_button(f"MJ::JOB::upsample::{n}::{h}", f"U{n}") for n in range(1, 5)),
                _button(f"MJ::JOB::reroll::0::{h}::SOLO", emoji="🔄"),
                *(_button(f"MJ::JOB::variation::{n}::{h}", f"V{n}") for n in range(1, 5)),
            ]
        if task.result == "single":
            v = self.upscale_version
            redo = "Redo " if task.upscaled else ""
            buttons = [
                _button(
                    f"MJ::JOB::upsample_{v}_2x_subtle::1::{h}::SOLO", f"{redo}Upscale (Subtle)"
                ),
                _button(
                    f"MJ::JOB::upsample_{v}_2x_creative::1::{h}::SOLO", f"{redo}Upscale (Creative)"
                ),
                _button(f"MJ::JOB::low_variation::1::{h}::SOLO", "Vary (Subtle)", "🪄"),
                _button(f"MJ::JOB::high_variation::1::{h}::SOLO", "Vary (Strong)", "🪄"),
                _button(f"MJ::Inpaint::1::{h}::SOLO", "Vary (Region)", "🖌️"),
                _button(f"MJ::Outpaint::50::1::{h}::SOLO", "Zoom Out 2x", "🔍"),
                _button(f"MJ::Outpaint::75::1::{h}::SOLO", "Zoom Out 1.5x", "🔍"),
                _button(f"MJ::CustomZoom::{h}", "Custom Zoom", "🔍"),
            ]
            if task.ratio[0] != task.ratio[1]:
                buttons.append(_button(f"MJ::Outpaint::100::1::{h}::SOLO", "Make Square", "↔️"))
            buttons += [
                _button(f"MJ::JOB::pan_left::1::{h}::SOLO", emoji="⬅️"),
                _button(f"MJ::JOB::pan_right::1::{h}::SOLO", emoji="➡️"),
                _button(f"MJ::JOB::pan_up::1::{h}::SOLO", emoji="⬆️"),
                _button(f"MJ::JOB::pan_down::1::{h}::SOLO", emoji="⬇️"),
            ]
            if _DRAFT_RE.search(task.prompt):  # a V7 draft: Enhance renders it in full
                buttons.append(_button(f"MJ::JOB::enhance::1::{h}::SOLO", "Enhance", "✨"))
            if self.enable_video:
                buttons += [
                    _button(f"MJ::JOB::animate_high::1::{h}::SOLO", "Animate (High motion)", "🎞️"),
                    _button(f"MJ::JOB::animate_low::1::{h}::SOLO", "Animate (Low motion)", "🎞️"),
                ]
            buttons.append(_button(f"MJ::BOOKMARK::{h}", emoji="❤️"))
            return buttons
        if task.result == "video":
            # A batch: U1..U<n> picks a video; one video: its own Extend buttons.
            picks = [
                _button(f"MJ::JOB::video_virtual_upscale::{n}::{h}", f"U{n}")
                for n in range(1, task.videos + 1)
            ]
            if task.videos > 1:
                return picks
            return [
                _button(f"MJ::JOB::animate_high_extend::1::{h}", "Extend (High motion)", "🎞️"),
                _button(f"MJ::JOB::animate_low_extend::1::{h}", "Extend (Low motion)", "🎞️"),
            ]
        if task.result == "shorten":
            return [_button(f"MJ::Job::PromptAnalyzer::{n}::{h}", str(n)) for n in range(1, 6)]
        if task.result == "describe":
            return [
                *(_button(f"MJ::Job::PicReader::{n}", str(n)) for n in range(1, 5)),
                _button(f"MJ::Picread::Retry::{h}", emoji="🔄"),
                _button("MJ::Job::PicReader::all", "Imagine all", "🎉"),
            ]
        return []

    @staticmethod
    def _suggestions(task: FakeTask) -> list[str]:
        subjects = ("a lighthouse", "a fox", "a city at dusk", "an old map")
        return [f"{s} in soft light, detailed illustration --ar 1:1" for s in subjects]

    def _task_json(self, task: FakeTask, now: float) -> dict[str, Any]:
        status = task.status(now)
        progress = ""
        image_url: str | None = None
        image_urls: list[dict[str, str]] | None = None
        buttons: list[dict[str, Any]] = []
        final_prompt = task.prompt
        description = f"/imagine {task.prompt}" if task.action == "IMAGINE" else task.action
        prompt = task.prompt
        if status in ("NOT_START", "SUBMITTED", "MODAL"):
            progress = "0%"
        elif status == "IN_PROGRESS":
            pct, previews = task.progress(now)
            progress = f"{pct}%"
            if previews:
                image_url = self._url(f"{task.id}_p{previews}")
        elif status == "SUCCESS":
            progress = "100%"
            buttons = self._buttons(task)
            if task.result in ("grid", "single"):
                image_url = self._url(task.id)
            if task.result == "grid":
                image_urls = [{"url": self._url(f"{task.id}_{n}")} for n in range(1, 5)]
            if task.result == "describe":
                keycaps = ("1️⃣", "2️⃣", "3️⃣", "4️⃣")
                final_prompt = "\n\n".join(
                    f"{k} {s}" for k, s in zip(keycaps, self._suggestions(task), strict=True)
                )
                prompt = final_prompt
                image_url = task.link
            if task.result == "shorten":
                keycaps = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣")
                final_prompt = "\n\n".join(
                    f"{k} {p}" for k, p in zip(keycaps, self._shortened(task), strict=True)
                )
        video: dict[str, Any] = {}
        if task.result == "video" and status == "SUCCESS":
            video, image_url = self._video_fields(task), None
            image_url = video["videoUrl"]
            image_urls = video["videoUrls"]
        if status == "MODAL":
            description = MODAL_DESCRIPTION
        fail_reason = None
        if status == "FAILURE":
            fail_reason = task.profile.error_message
        elif status == "CANCEL":
            fail_reason = CANCEL_REASON
        width, height = _size(self.image_size, task.ratio)
        return {
            "id": task.id,
            "action": task.action,
            "status": status,
            "prompt": prompt,
            "promptEn": prompt,
            "description": description,
            "state": task.state,
            "submitTime": _ms(task.submitted_at),
            "startTime": (
                _ms(task.started_at) if status in ("IN_PROGRESS", "SUCCESS", "FAILURE") else None
            ),
            "finishTime": (
                _ms(task.finished_at) if status in ("SUCCESS", "FAILURE", "CANCEL") else None
            ),
            "progress": progress,
            "imageUrl": image_url,
            "imageUrls": image_urls,
            "failReason": fail_reason,
            "buttons": buttons,
            "properties": {
                "finalPrompt": final_prompt,
                "discordInstanceId": "1000000000000000001",
                **({"customId": task.custom_id} if task.custom_id else {}),
            },
            "seed": task.seed,
            "jobId": task.job_hash if status == "SUCCESS" else None,
            "parentId": task.parent_id,
            "mode": task.mode,
            "botType": "MID_JOURNEY",
            "width": width if status == "SUCCESS" else None,
            "height": height if status == "SUCCESS" else None,
            **video,
        }

    def _video_fields(self, task: FakeTask) -> dict[str, Any]:
        """TaskInfo's video fields (PROVIDERS.md §8.4): `videoUrl` (= imageUrl), `videoUrls`
        with thumbnails, `thumbnailUrl`, `videoType`, `videoDuration`, `contentType`."""
        base = self.base_url
        clips = [
            {
                "url": f"{base}/attachments/{task.id}_{i}.mp4",
                "thumbnail": self._url(f"{task.id}_c{i}"),
            }
            for i in range(task.videos)
        ]
        fields: dict[str, Any] = {
            "videoUrl": clips[0]["url"],
            "videoUrls": clips,
            "thumbnailUrl": clips[0]["thumbnail"],
            "videoType": task.video_type,
            "videoDuration": 5 + 4 * task.extends,
            "frameCount": (5 + 4 * task.extends) * 24,
        }
        if task.videos == 1:
            fields["contentType"] = "video/mp4"
        return fields

    # --- control API ---

    async def _control_body(self, request: web.Request) -> dict[str, Any]:
        body = await self._read_json(request)
        if not isinstance(body, dict):
            raise _Reply(4, "expected a JSON object", status=400)
        return body

    @staticmethod
    def _ok(data: Any) -> web.Response:
        return _json_response(200, _envelope(1, "ok", data))

    async def _ctl_advance(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        if not isinstance(self.clock, FakeClock):
            raise _Reply(
                4, "advance needs a FakeClock; this fake runs on the real clock", status=400
            )
        seconds = body.get("seconds")
        if not isinstance(seconds, (int, float)) or seconds < 0:
            raise _Reply(4, "seconds must be a non-negative number", status=400)
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
            raise _Reply(4, str(exc), status=400) from None
        return self._ok(dataclasses.asdict(fault))

    async def _ctl_requests(self, request: web.Request) -> web.Response:
        return self._ok([dataclasses.asdict(r) for r in self.requests])

    async def _ctl_clear_requests(self, request: web.Request) -> web.Response:
        self.requests.clear()
        return self._ok(None)

    async def _ctl_profile(self, request: web.Request) -> web.Response:
        """{"profile": {...}} sets the default; add "prompt" to scope it to prompts."""
        body = await self._control_body(request)
        fields = body.get("profile", {})
        if not isinstance(fields, dict):
            raise _Reply(4, "profile must be an object", status=400)
        try:
            profile = Profile(**fields)
        except (TypeError, ValueError) as exc:
            raise _Reply(4, f"invalid profile: {exc}", status=400) from None
        if body.get("prompt"):
            self.profile_for_prompt[str(body["prompt"])] = profile
        else:
            self.default_profile = profile
        return self._ok(dataclasses.asdict(profile))

    async def _ctl_vanish(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        task_id = str(body.get("task_id"))
        if task_id not in self.tasks:
            raise _Reply(3, "task not found", status=404)
        self.vanish(task_id)
        return self._ok(None)

    async def _ctl_remix(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        self.remix_mode = bool(body.get("on", True))
        return self._ok({"remix_mode": self.remix_mode})

    async def _ctl_tasks(self, request: web.Request) -> web.Response:
        now = self.now
        return self._ok({tid: self._task_json(t, now) for tid, t in self.tasks.items()})


# --- CLI ------------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeMJProxy(
        api_secret=args.secret, auth_style=args.auth, host=args.host, remix_mode=args.remix
    )
    fake.default_profile = Profile(
        pending_s=args.pending, processing_s=args.processing, progress_step_s=args.step
    )
    await fake.start(args.port)
    print(fake.base_url, flush=True)
    print(
        f"fake midjourney-proxy on {fake.base_url} ({args.auth}); Ctrl-C to stop", file=sys.stderr
    )
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake midjourney-proxy (real clock).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--secret", default="test-secret")
    parser.add_argument("--auth", choices=("mj-api-secret", "bearer"), default="mj-api-secret")
    parser.add_argument("--remix", action="store_true", help="every V/🔄/pan opens a MODAL")
    parser.add_argument("--pending", type=float, default=3.0, help="seconds submitted")
    parser.add_argument("--processing", type=float, default=24.0, help="seconds in progress")
    parser.add_argument("--step", type=float, default=6.0, help="seconds per progress step")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
