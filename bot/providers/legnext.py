"""Legnext's Midjourney API (PROVIDERS.md §2).

    POST /v1/{diffusion,upscale,variation,remix,reroll,outpaint,pan,inpaint,edit,enhance,describe}
    GET  /v1/job/{job_id}

Header `x-api-key`. Every create answers the job object (`status: "pending"`); its
`job_id` is both the poll reference and the `jobId` follow-ups address. The request
logic (addressing, local picks, actions) is in `legnext_family`.
"""

from __future__ import annotations

from typing import Any

from bot.domain import (
    Cost,
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
    Capabilities,
    MalformedReplyError,
    ProviderError,
    SubmitOutcomeUnknownError,
)
from bot.providers.http import ProviderHTTP
from bot.providers.legnext_family import (
    PROMPT_MAX,
    LegnextFamilyProvider,
    UpstreamRequest,
    as_decimal,
    as_int,
    clamp_progress,
    classify_common,
    failure_from_text,
    log_unknown_status,
    parse_allow_list,
    split_prompts,
    synthesize_actions,
)
from bot.video import video_actions

LABEL = "Legnext"

STATUS_MAP = {
    "pending": JobStatus.SUBMITTED,
    "staged": JobStatus.SUBMITTED,
    "queued": JobStatus.SUBMITTED,
    "processing": JobStatus.RUNNING,
    "running": JobStatus.RUNNING,
    "completed": JobStatus.COMPLETED,
    "success": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
}

CAPABILITIES = Capabilities(
    operations=frozenset(
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
            OperationKind.EDIT,
            OperationKind.ENHANCE,
            OperationKind.SHORTEN,
            OperationKind.RETEXTURE,
            OperationKind.UPLOAD_EDIT,
            OperationKind.VIDEO,
            OperationKind.VIDEO_FROM_IMAGE,
            OperationKind.VIDEO_EXTEND,
            OperationKind.VIDEO_UPSCALE,
        }
    ),
    can_cancel=False,
    reports_progress=True,
    max_prompt_length=PROMPT_MAX,
    follow_up_window=None,
)


def classify_http_error(status: int, body: Any, text: str) -> ProviderError | None:
    """Legnext's HTTP errors: 400 `{"code": 400, "message", "raw_message", "detail"}`."""
    return classify_common(LABEL, status, body, text)


def auth_headers(api_key: str) -> dict[str, str]:
    return {"x-api-key": api_key, "accept": "application/json"}


class LegnextProvider(LegnextFamilyProvider):
    name = "legnext"
    label = LABEL
    ref_is_upstream = True

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://api.legnext.ai/api",
        timeout: float = 20.0,
        http: ProviderHTTP | None = None,
        callback: str | None = None,
    ) -> None:
        self.capabilities = CAPABILITIES
        self.callback = callback
        self.http = http or ProviderHTTP(
            base_url.rstrip("/"),
            headers=auth_headers(api_key),
            timeout=timeout,
            classify=classify_http_error,
        )

    async def _create(self, request: UpstreamRequest, operation: Operation) -> ProviderSnapshot:
        reply = await self.http.request(
            "POST", f"/v1/{request.op}", json_body=request.params, creates=True
        )
        job_obj = _unwrap(reply)
        if job_obj is None:
            # The job may well exist: never let the engine submit it again.
            raise SubmitOutcomeUnknownError(provider_text="create reply without a job_id")
        return parse_job(job_obj, op=operation, capabilities=self.capabilities)

    async def account(self) -> AccountInfo:
        """`GET /api/account/balance` (PROVIDERS.md §8.2): the credits left. A 402/403
        here means what it means on a create (the pool reads it to set the account
        aside or bring it back)."""
        reply = await self.http.request("GET", "/account/balance")
        data = reply.get("data") if isinstance(reply, dict) else None
        if not isinstance(data, dict):
            raise MalformedReplyError(provider_text="balance reply without data")
        credits = as_decimal(data.get("available_credits"))
        if credits is None:
            credits = as_decimal(data.get("available_points"))
        return AccountInfo(
            credits=credits,
            credits_unit="point",
            raw={k: v for k, v in data.items() if k in ("balance_usd", "low_balance_alert")},
        )

    async def _read(self, ref: str, job: Job) -> ProviderSnapshot:
        reply = await self.http.request("GET", f"/v1/job/{ref}")
        job_obj = _unwrap(reply)
        if job_obj is None:
            raise MalformedReplyError(provider_text="job reply without a job_id")
        return parse_job(job_obj, op=job.operation, capabilities=self.capabilities)

    def parse_push(
        self, body: Any, *, operation: Operation | None = None
    ) -> ProviderSnapshot | None:
        """A callback post: the job object, bare or as `{data: job}` (PROVIDERS.md §2)."""
        job_obj = _unwrap(body)
        if job_obj is None:
            return None
        return parse_job(job_obj, op=operation, capabilities=self.capabilities)


def _unwrap(reply: Any) -> dict[str, Any] | None:
    """The job object, bare or inside `{"data": …}`; None when it has no id."""
    if isinstance(reply, dict) and not reply.get("job_id") and isinstance(reply.get("data"), dict):
        reply = reply["data"]
    if isinstance(reply, dict) and reply.get("job_id"):
        return reply
    return None


def parse_job(
    obj: dict[str, Any],
    *,
    op: Operation | None = None,
    capabilities: Capabilities = CAPABILITIES,
) -> ProviderSnapshot:
    """Translate one Legnext job object (create reply, GET, callback) to a snapshot."""
    job_id = str(obj["job_id"])
    raw_status = str(obj.get("status") or "").strip().lower()
    status = STATUS_MAP.get(raw_status)
    if status is None:
        log_unknown_status(LABEL, raw_status)
        status = JobStatus.RUNNING
    output = obj.get("output") if isinstance(obj.get("output"), dict) else {}
    assert isinstance(output, dict)

    progress = clamp_progress(as_int(obj.get("progress", output.get("progress"))))
    if status is JobStatus.COMPLETED:
        progress = 100
    elif status is JobStatus.SUBMITTED and progress == 0:
        progress = None  # 0 while pending says nothing

    data: dict[str, Any] = {"job_id": job_id}
    snap = ProviderSnapshot(ref=job_id, status=status, progress=progress, raw_status=raw_status)
    snap.cost = _cost(obj.get("meta"), failed=status is JobStatus.FAILED)
    seed = output.get("seed")
    if seed not in (None, ""):
        snap.seed = str(seed)

    if status is JobStatus.FAILED:
        snap.error = _error(obj.get("error"))
    elif status is JobStatus.COMPLETED and (
        (op is not None and op.kind.is_video) or output.get("video_urls")
    ):
        _parse_videos(snap, output, op=op, data=data)
    elif status is JobStatus.COMPLETED:
        listed = output.get("image_urls")
        urls = [u for u in listed if isinstance(u, str) and u] if isinstance(listed, list) else []
        image_url = output.get("image_url") if isinstance(output.get("image_url"), str) else ""
        count = len(urls) or (1 if image_url else 0)
        if len(urls) >= 2:
            snap.tiles = urls
            snap.result_url = image_url or None  # a grid without a composite: tiles carry it
        else:
            snap.result_url = image_url or (urls[0] if urls else None)
        allow = parse_allow_list(output.get("available_actions"))
        if allow is not None:
            data["available_actions"] = allow
        kind = op.kind if op is not None else None
        if kind in (OperationKind.DESCRIBE, OperationKind.SHORTEN) or _looks_like_describe(output):
            snap.prompts = _prompts(output)
            snap.actions = []
        else:
            snap.actions = synthesize_actions(
                op=op, image_count=count, capabilities=capabilities, allow=allow
            )
        data["image_count"] = count
    snap.data = data
    return snap


def _parse_videos(
    snap: ProviderSnapshot, output: dict[str, Any], *, op: Operation | None, data: dict[str, Any]
) -> None:
    """A finished video job: `output.video_urls` (one per video, index = videoNo) and its
    covers where given (`image_urls` per video, else `image_url`). The first cover is the
    job's result image, so every layer that shows a still has one."""
    listed = output.get("video_urls")
    urls = [u for u in listed if isinstance(u, str) and u] if isinstance(listed, list) else []
    if not urls:
        snap.status = JobStatus.FAILED
        snap.error = JobError(ErrorCode.MALFORMED_REPLY, f"{LABEL} finished the video without one.")
        return
    listed_covers = output.get("image_urls")
    covers: list[Any] = listed_covers if isinstance(listed_covers, list) else []
    single = output.get("image_url") if isinstance(output.get("image_url"), str) else None
    videos = []
    for i, url in enumerate(urls):
        cover = covers[i] if i < len(covers) and isinstance(covers[i], str) else None
        videos.append(VideoClip(url, cover or single or None).to_dict())
    data["videos"] = videos
    data["video_count"] = len(videos)
    snap.result_url = videos[0]["cover"]
    upscaled = op is not None and op.kind is OperationKind.VIDEO_UPSCALE
    snap.actions = video_actions(len(videos), hd=not upscaled)


def _looks_like_describe(output: dict[str, Any]) -> bool:
    return not output.get("image_urls") and bool(output.get("prompts") or output.get("finalPrompt"))


def _prompts(output: dict[str, Any]) -> list[str] | None:
    prompts = output.get("prompts")
    if isinstance(prompts, list):
        found = [" ".join(p.split()) for p in prompts if isinstance(p, str) and p.strip()]
        if found:
            return found
    return split_prompts(output.get("finalPrompt")) or split_prompts(output.get("description"))


def _cost(meta: Any, *, failed: bool) -> Cost | None:
    if not isinstance(meta, dict) or not isinstance(meta.get("usage"), dict):
        return None
    usage = meta["usage"]
    consumed = as_decimal(usage.get("consume"))
    amount = consumed if consumed else None
    if amount is None and not failed:  # credits are frozen at submit
        frozen = as_decimal(usage.get("frozen"))
        amount = frozen if frozen else None
    if amount is None or amount <= 0:
        return None
    return Cost(amount=amount, unit=str(usage.get("type") or "point"))


def _error(err: Any) -> JobError:
    if isinstance(err, str):
        return failure_from_text(LABEL, err)
    if not isinstance(err, dict):
        return JobError(ErrorCode.GENERATION_FAILED, f"{LABEL} reported the job as failed.")
    message = str(err.get("message") or "").strip()
    raw = str(err.get("raw_message") or "").strip()
    code = err.get("code")
    text = message or raw
    if raw and message and raw != message:
        text = f"{message} ({raw})"
    return failure_from_text(LABEL, text, code if code not in (0, "0") else None)
