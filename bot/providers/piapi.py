"""PiAPI's unified task API (and GoAPI, which serves the same schema). PROVIDERS.md §1.

    POST   /api/v1/task            create  {"model": "midjourney", "task_type", "input", "config"}
    GET    /api/v1/task/{task_id}  read
    DELETE /api/v1/task/{task_id}  cancel (only while pending)
    GET    /account/info           credits and concurrency

Parsing is tolerant by design: statuses in any case, `progress` or the legacy
`task_progress`, plan-gated fields absent, an `error` object of zeros meaning no error.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.domain import (
    Action,
    Cost,
    ErrorCode,
    Job,
    JobError,
    JobStatus,
    Operation,
    OperationKind,
    ProviderSnapshot,
)
from bot.providers.base import (
    AccountInfo,
    Capabilities,
    InsufficientCreditError,
    InvalidRequestError,
    MalformedReplyError,
    ModeratedError,
    NotFoundError,
    ParentTooOldError,
    ProviderError,
    UnsupportedOperationError,
)
from bot.providers.http import ProviderHTTP

log = logging.getLogger(__name__)

STATUS_MAP = {
    "pending": JobStatus.SUBMITTED,
    "staged": JobStatus.SUBMITTED,
    "processing": JobStatus.RUNNING,
    "retry": JobStatus.RUNNING,  # legacy
    "completed": JobStatus.COMPLETED,
    "finished": JobStatus.COMPLETED,  # legacy
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
    "canceled": JobStatus.CANCELLED,
}

# PiAPI action name -> neutral name (PROVIDERS.md §6.3). Families are matched below.
_EXACT_ACTIONS = {
    "reroll": "reroll",
    "high_variation": "vary_strong",
    "low_variation": "vary_subtle",
    "inpaint": "vary_region",
    "outpaint_2x": "zoom_out_2x",
    "outpaint_1.5x": "zoom_out_1_5x",
    "outpaint_custom": "zoom_custom",
    "outpaint_1x": "make_square",
}
_NEUTRAL_TO_RAW = {v: k for k, v in _EXACT_ACTIONS.items()}
_FAMILIES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^upscale([1-4])$"), r"pick:\1"),
    (re.compile(r"^variation([1-4])$"), r"vary_grid:\1"),
    (re.compile(r"^(redo_)?upscale_(subtle|creative|2x|4x)$"), r"\1upscale_\2"),
    (re.compile(r"^pan_(left|right|up|down)$"), r"pan_\1"),
]

VARIATION_INDEX = {"strong": "high_variation", "subtle": "low_variation"}
DEFAULT_PROMPT_LIMIT = 8192

CAPABILITIES = Capabilities(
    operations=frozenset(
        {
            OperationKind.IMAGINE,
            OperationKind.UPSCALE,
            OperationKind.VARIATION,
            OperationKind.REROLL,
            OperationKind.DESCRIBE,
            OperationKind.SEED,
            OperationKind.BLEND,
            OperationKind.INPAINT,
            OperationKind.OUTPAINT,
            OperationKind.PAN,
            OperationKind.REMIX,
            OperationKind.PROVIDER_ACTION,
        }
    ),
    can_cancel=True,
    reports_progress=True,
    max_prompt_length=DEFAULT_PROMPT_LIMIT,
)


def neutral_action(raw: str) -> str:
    """PiAPI's action name in the neutral vocabulary; unknown ones stay addressable."""
    if raw in _EXACT_ACTIONS:
        return _EXACT_ACTIONS[raw]
    for pattern, template in _FAMILIES:
        if pattern.match(raw):
            return pattern.sub(template, raw)
    return f"provider:{raw}"


class PiAPIProvider:
    name = "piapi"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://api.piapi.ai",
        service_mode: str = "",
        timeout: float = 20.0,
        follow_up_window: float | None = 3 * 3600.0,
        webhook_endpoint: str | None = None,
        webhook_secret: str | None = None,
        http: ProviderHTTP | None = None,
    ) -> None:
        self.capabilities = Capabilities(
            operations=CAPABILITIES.operations,
            can_cancel=True,
            reports_progress=True,
            max_prompt_length=DEFAULT_PROMPT_LIMIT,
            follow_up_window=follow_up_window,
        )
        self._service_mode = service_mode
        self._webhook_endpoint = webhook_endpoint
        self._webhook_secret = webhook_secret
        self.http = http or ProviderHTTP(
            base_url,
            headers={"x-api-key": api_key, "accept": "application/json"},
            timeout=timeout,
            classify=classify_http_error,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- requests --------------------------------------------------------------------------

    async def submit(
        self, operation: Operation, *, job: Job, parent: Job | None
    ) -> ProviderSnapshot:
        body = self.build_create_body(operation, parent=parent)
        reply = await self.http.request("POST", "/api/v1/task", json_body=body, creates=True)
        task = _task_from_envelope(reply)
        return parse_task(task)

    async def fetch(self, job: Job) -> ProviderSnapshot:
        if not job.provider_ref:
            raise NotFoundError("The job has no PiAPI task id.")
        reply = await self.http.request("GET", f"/api/v1/task/{job.provider_ref}")
        return parse_task(_task_from_envelope(reply))

    def parse_push(
        self, body: Any, *, operation: Operation | None = None
    ) -> ProviderSnapshot | None:
        """A webhook post: `{"timestamp": <unix s>, "data": <task>}` (PROVIDERS.md §1.5).
        Account notices (`{type, time, message, detail}`) are not tasks: None."""
        if not isinstance(body, dict):
            return None
        data = body.get("data")
        if not isinstance(data, dict) or not data.get("task_id"):
            return None
        return parse_task(data)

    async def cancel(self, job: Job) -> None:
        if not job.provider_ref:
            raise NotFoundError("The job has no PiAPI task id.")
        await self.http.request("DELETE", f"/api/v1/task/{job.provider_ref}")

    async def account(self) -> AccountInfo:
        reply = await self.http.request("GET", "/account/info")
        data = reply.get("data") if isinstance(reply, dict) else None
        if not isinstance(data, dict):
            raise MalformedReplyError(provider_text="account info without data")
        return AccountInfo(
            credits=_decimal(data.get("credits")),
            credits_unit="point",
            max_concurrent_jobs=_int(data.get("max_concurrent_task_count")),
            plan=str(data["plan"]) if data.get("plan") is not None else None,
            raw={k: v for k, v in data.items() if k not in ("account_id", "account_name")},
        )

    # --- translation -----------------------------------------------------------------------

    def build_create_body(self, op: Operation, *, parent: Job | None) -> dict[str, Any]:
        task_type, inputs = self._inputs(op, parent)
        body: dict[str, Any] = {"model": "midjourney", "task_type": task_type, "input": inputs}
        config: dict[str, Any] = {}
        if self._service_mode:
            config["service_mode"] = self._service_mode
        if self._webhook_endpoint:
            config["webhook_config"] = {
                "endpoint": self._webhook_endpoint,
                "secret": self._webhook_secret or "",
            }
        if config:
            body["config"] = config
        return body

    def _inputs(self, op: Operation, parent: Job | None) -> tuple[str, dict[str, Any]]:
        kind = op.kind
        fresh = _fresh_inputs(op)
        if fresh is not None:
            return fresh

        origin = _origin(parent)
        derived = _child_inputs(op, parent, origin) or _edit_inputs(op, parent, origin)
        if derived is not None:
            return derived
        if kind is OperationKind.PROVIDER_ACTION and op.raw_action:
            return self._inputs(_operation_for_raw(op), parent)
        raise UnsupportedOperationError(f"PiAPI cannot do {kind.value}.")


def _fresh_inputs(op: Operation) -> tuple[str, dict[str, Any]] | None:
    """Task type and input of an operation that starts from nothing, else None."""
    kind = op.kind
    if kind is OperationKind.IMAGINE:
        inputs: dict[str, Any] = {"prompt": op.prompt or "", "skip_prompt_check": False}
        # The prompt's own --ar wins; sending both is refused by some accounts.
        if (
            op.aspect_ratio
            and "--ar" not in (op.prompt or "")
            and "--aspect" not in (op.prompt or "")
        ):
            inputs["aspect_ratio"] = op.aspect_ratio
        if op.mode:
            inputs["process_mode"] = op.mode.value
        return "imagine", inputs
    if kind is OperationKind.DESCRIBE:
        if not op.image_urls:
            raise InvalidRequestError("Describe needs an image.")
        inputs = {"image_url": op.image_urls[0]}
        if op.mode:
            inputs["process_mode"] = op.mode.value
        return "describe", inputs
    if kind is OperationKind.BLEND:
        if not 2 <= len(op.image_urls) <= 5:
            raise InvalidRequestError("Blend needs between 2 and 5 images.")
        inputs = {"image_urls": list(op.image_urls)}
        if op.dimension:
            inputs["dimension"] = op.dimension.value
        if op.mode:
            inputs["process_mode"] = op.mode.value
        return "blend", inputs
    return None


def _child_inputs(
    op: Operation, parent: Job | None, origin: str
) -> tuple[str, dict[str, Any]] | None:
    """Task type and input of an upscale, variation, reroll or seed, else None."""
    kind = op.kind
    if kind is OperationKind.UPSCALE:
        index = str(op.index) if op.index is not None else op.variant
        if not index:
            raise InvalidRequestError("Upscale needs a tile or a kind of upscale.")
        return "upscale", {"origin_task_id": origin, "index": index}
    if kind in (OperationKind.VARIATION, OperationKind.REMIX):
        if op.index is not None:
            index = str(op.index)
        elif op.variant in VARIATION_INDEX:
            index = VARIATION_INDEX[op.variant]
        elif kind is OperationKind.REMIX:
            index = "high_variation"
        else:
            raise InvalidRequestError("Variation needs a tile or subtle/strong.")
        inputs = {"origin_task_id": origin, "index": index}
        # Documented as required; clients send the original prompt (PROVIDERS.md §1.2).
        inputs["prompt"] = op.prompt if op.prompt is not None else _prompt_of(parent)
        if op.aspect_ratio:
            inputs["aspect_ratio"] = op.aspect_ratio
        return "variation", inputs
    if kind is OperationKind.REROLL:
        inputs = {"origin_task_id": origin, "prompt": op.prompt or _prompt_of(parent)}
        if op.aspect_ratio:
            inputs["aspect_ratio"] = op.aspect_ratio
        return "reroll", inputs
    if kind is OperationKind.SEED:
        return "seed", {"origin_task_id": origin}
    return None


def _edit_inputs(
    op: Operation, parent: Job | None, origin: str
) -> tuple[str, dict[str, Any]] | None:
    """Task type and input of a Vary (Region), zoom or pan, else None."""
    kind = op.kind
    if kind is OperationKind.INPAINT:
        if not op.mask_png_base64:
            raise InvalidRequestError("Vary (Region) needs a mask.")
        return "inpaint", {
            "origin_task_id": origin,
            "mask": op.mask_png_base64,
            "prompt": op.prompt or _prompt_of(parent),
        }
    if kind is OperationKind.OUTPAINT:
        if op.zoom_ratio is None:
            raise InvalidRequestError("Zoom needs a ratio.")
        return "outpaint", {
            "origin_task_id": origin,
            "zoom_ratio": _ratio_text(op.zoom_ratio),
            "prompt": op.prompt or _prompt_of(parent),
        }
    if kind is OperationKind.PAN:
        if op.direction is None:
            raise InvalidRequestError("Pan needs a direction.")
        return "pan", {
            "origin_task_id": origin,
            "direction": op.direction.value,
            "prompt": op.prompt or _prompt_of(parent),
        }
    return None


def _operation_for_raw(op: Operation) -> Operation:
    """Replay a PiAPI action the bot has no neutral name for, by its family."""
    raw = op.raw_action or ""
    if m := re.fullmatch(r"(?:redo_)?upscale_(\w+)", raw):
        return replace(op, kind=OperationKind.UPSCALE, variant=m[1], raw_action=None)
    if m := re.fullmatch(r"outpaint_([\d.]+)x", raw):
        return replace(op, kind=OperationKind.OUTPAINT, zoom_ratio=Decimal(m[1]), raw_action=None)
    if raw in ("high_variation", "low_variation"):
        return replace(op, kind=OperationKind.VARIATION, variant=raw.split("_")[0], raw_action=None)
    raise UnsupportedOperationError(f"The bot does not know how to ask PiAPI for {raw!r}.")


# --- parsing ------------------------------------------------------------------------------


def _task_from_envelope(reply: Any) -> dict[str, Any]:
    if not isinstance(reply, dict):
        raise MalformedReplyError(provider_text="reply is not a JSON object")
    code = reply.get("code")
    if code not in (None, 0, 200, "200"):
        raise _error_for(int(code) if str(code).isdigit() else 400, str(reply.get("message") or ""))
    data = reply.get("data")
    if not isinstance(data, dict) or not data.get("task_id"):
        raise MalformedReplyError(provider_text="reply has no task")
    return data


def parse_task(task: dict[str, Any]) -> ProviderSnapshot:
    """Translate one PiAPI task object (create, GET or webhook `data`) to a snapshot."""
    output = task.get("output") if isinstance(task.get("output"), dict) else {}
    assert isinstance(output, dict)
    raw_status = str(task.get("status") or "").strip().lower()
    status, error = _task_status(task, output, raw_status)

    progress = _int(output.get("progress", output.get("task_progress", task.get("task_progress"))))
    if progress is not None:
        progress = max(0, min(100, progress))
    if status is JobStatus.COMPLETED:
        progress = 100
    elif progress == 0 and status is JobStatus.SUBMITTED:
        progress = None  # "0" while pending says nothing

    previews = output.get("intermediate_image_urls")
    preview_url = (
        previews[-1]
        if isinstance(previews, list) and previews and isinstance(previews[-1], str)
        else None
    )
    result_url = output.get("image_url") or output.get("discord_image_url") or None
    tiles = output.get("temporary_image_urls")
    if not (
        isinstance(tiles, list) and len(tiles) == 4 and all(isinstance(t, str) and t for t in tiles)
    ):
        tiles = None

    raw_actions = output.get("actions")
    actions = [
        Action(name=neutral_action(raw), raw=raw)
        for raw in (raw_actions if isinstance(raw_actions, list) else [])
        if isinstance(raw, str) and raw
    ]

    seed = output.get("seed")
    return ProviderSnapshot(
        ref=str(task["task_id"]),
        status=status,
        progress=progress,
        preview_url=preview_url if status is JobStatus.RUNNING else None,
        result_url=str(result_url) if result_url and status is JobStatus.COMPLETED else None,
        tiles=tiles if status is JobStatus.COMPLETED else None,
        actions=actions if status is JobStatus.COMPLETED else None,
        cost=_cost(task.get("meta")),
        error=error if status is JobStatus.FAILED else None,
        seed=str(seed) if seed not in (None, "") else None,
        prompts=split_description(output.get("description")),
        raw_status=raw_status,
    )


def _task_status(
    task: dict[str, Any], output: dict[str, Any], raw_status: str
) -> tuple[JobStatus, JobError | None]:
    """The task's status, failed when a finished task carries a real error, and its error."""
    status = STATUS_MAP.get(raw_status)
    if status is None:
        log.warning(
            "PiAPI task %.40s has an unknown status %.40r; treating it as running",
            str(task.get("task_id")),
            raw_status,
        )
        status = JobStatus.RUNNING

    error = _task_error(task, output)
    if status is JobStatus.COMPLETED and error is not None and error.code is not ErrorCode.INTERNAL:
        status = JobStatus.FAILED
    if status is JobStatus.FAILED and error is None:
        error = JobError(
            ErrorCode.GENERATION_FAILED, "The image service reported the job as failed."
        )
    return status, error


def _task_error(task: dict[str, Any], output: dict[str, Any]) -> JobError | None:
    err = task.get("error")
    message = raw_message = ""
    code: Any = 0
    if isinstance(err, dict):
        message = str(err.get("message") or "")
        raw_message = str(err.get("raw_message") or "")
        code = err.get("code") or 0
    elif isinstance(err, str):
        message = err
    legacy = output.get("error_messages") or task.get("error_messages")
    if not message and isinstance(legacy, list) and legacy:
        message = "; ".join(str(m) for m in legacy if m)
    if not message and not raw_message and not code:
        return None
    text = message or raw_message or f"error code {code}"
    detail = raw_message if raw_message and raw_message != message else None
    provider_text = f"{text} ({detail})" if detail else text
    code, message = classify_text(text + " " + raw_message)
    return JobError(code, message, provider_text)


def classify_text(text: str) -> tuple[ErrorCode, str]:
    """Map PiAPI / Midjourney error wording to a neutral code and a plain explanation."""
    lowered = text.lower()
    if "banned prompt" in lowered or "banned word" in lowered:
        return (ErrorCode.MODERATED, "Midjourney refused the prompt: it contains a banned word.")
    if "image denied" in lowered or "image filter" in lowered or "moderat" in lowered:
        return (ErrorCode.MODERATED, "Midjourney's image filter refused this job.")
    if "outdated" in lowered or "too old" in lowered:
        return (ErrorCode.PARENT_TOO_OLD, ParentTooOldError.default_message)
    if "invalid" in lowered:  # [Invalid parameter], [Invalid link!], …
        return (ErrorCode.INVALID_REQUEST, "Midjourney refused the request as invalid.")
    if (
        "credit" in lowered
        or "insufficient" in lowered
        or "balance" in lowered
        or "quota" in lowered
    ):
        return (ErrorCode.INSUFFICIENT_CREDIT, InsufficientCreditError.default_message)
    if "cancel" in lowered:
        return (ErrorCode.CANCELLED, "The job was cancelled.")
    return (ErrorCode.GENERATION_FAILED, "Midjourney could not make this image.")


def classify_http_error(status: int, body: Any, text: str) -> ProviderError | None:
    """Errors PiAPI signals with an HTTP status, refined by the words of its message."""
    if 200 <= status < 300:
        return None
    message = ""
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("error") or "")
    if status in (400, 403, 422) or (status == 404 and message and "task" not in message.lower()):
        return _error_for(status, message)
    return None  # 401, 404, 429 and 5xx: the generic mapping in ProviderHTTP


def _error_for(status: int, message: str) -> ProviderError:
    code, _ = classify_text(message)
    provider_text = message or None
    by_code: dict[ErrorCode, type[ProviderError]] = {
        ErrorCode.MODERATED: ModeratedError,
        ErrorCode.PARENT_TOO_OLD: ParentTooOldError,
        ErrorCode.INSUFFICIENT_CREDIT: InsufficientCreditError,
    }
    cls = by_code.get(code)
    if cls is not None:
        return cls(provider_text=provider_text, http_status=status)
    if status == 404:
        return NotFoundError(provider_text=provider_text, http_status=status)
    return InvalidRequestError(provider_text=provider_text, http_status=status)


def _cost(meta: Any) -> Cost | None:
    if not isinstance(meta, dict):
        return None
    usage = meta.get("usage")
    if not isinstance(usage, dict):
        return None
    consumed = _decimal(usage.get("consume"))
    if consumed is None or consumed <= 0:
        return None
    return Cost(amount=consumed, unit=str(usage.get("type") or "point"))


def split_description(text: Any) -> list[str] | None:
    """Describe's text: four suggestions, each starting with 1️⃣..4️⃣ (or "1.")."""
    if not isinstance(text, str) or not text.strip():
        return None
    parts = re.split(r"(?:^|\n)\s*(?:[1-4]\ufe0f?\u20e3|[1-4][.)])\s*", text)
    prompts = [" ".join(p.split()) for p in parts if p.strip()]
    return prompts or None


def _origin(parent: Job | None) -> str:
    if parent is None or not parent.provider_ref:
        raise InvalidRequestError("That follow-up needs a finished job to start from.")
    return parent.provider_ref


def _prompt_of(parent: Job | None) -> str:
    return (parent.operation.prompt if parent else None) or ""


def _ratio_text(ratio: Decimal) -> str:
    text = format(ratio.normalize(), "f")
    return text


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(float(str(value).strip().rstrip("%")))
    except ValueError:
        return None


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None
