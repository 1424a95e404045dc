"""Vtrix's generation gateway, `midjourney_*` models (PROVIDERS.md §3).

    POST /model/v1/generation               {"model": "midjourney_<op>", "input": [{"params": {…}}]}
    GET  /model/v1/generation/task/{id}     the task, bare or inside {"data": …}

Header `Authorization: Bearer <key>`. The models take Legnext's parameters (see
`legnext_family`). The Vtrix task `id` is only for polling; follow-ups address the upstream
Midjourney job, `output[0].content[i].jobId`, with `imageNo` = i.

Error codes are 9 digits `VVV MMM EEE` (004 = Midjourney, MMM the model, EEE the error),
sent as an integer (4007003) or a zero-padded string ("004007003"); the last six digits
decide. `describe_vtrix_error` turns one into a sentence for the member.
"""

from __future__ import annotations

import re
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
)
from bot.providers.base import (
    Capabilities,
    InvalidRequestError,
    MalformedReplyError,
    ModeratedError,
    ProviderError,
    ProviderUnavailableError,
    SubmitOutcomeUnknownError,
)
from bot.providers.http import ProviderHTTP
from bot.providers.legnext_family import (
    PROMPT_MAX,
    LegnextFamilyProvider,
    UpstreamRequest,
    as_decimal,
    as_float,
    body_message,
    clamp_progress,
    classify_common,
    excerpt,
    failure_from_text,
    has_moderation_words,
    log_unknown_status,
    sentence,
    synthesize_actions,
)

LABEL = "Vtrix"
MODEL_PREFIX = "midjourney_"

STATUS_MAP = {
    "pending": JobStatus.SUBMITTED,
    "queued": JobStatus.SUBMITTED,
    "processing": JobStatus.RUNNING,
    "in_progress": JobStatus.RUNNING,
    "running": JobStatus.RUNNING,
    "completed": JobStatus.COMPLETED,
    "done": JobStatus.COMPLETED,
    "succeeded": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
}

CAPABILITIES = Capabilities(
    operations=frozenset(
        {
            OperationKind.IMAGINE,
            OperationKind.UPSCALE,
            OperationKind.VARIATION,
            OperationKind.REMIX,
            OperationKind.INPAINT,
            OperationKind.OUTPAINT,
            OperationKind.PAN,
            OperationKind.EDIT,
            # No ENHANCE: midjourney_enhance's parameters are undocumented (PROVIDERS.md
            # §3, §8.3), so Enhance is not offered on Vtrix rather than guessed.
            OperationKind.RETEXTURE,
            OperationKind.UPLOAD_EDIT,
        }
    ),
    can_cancel=False,
    reports_progress=True,
    max_prompt_length=PROMPT_MAX,
    follow_up_window=None,
)

# Error code suffix -> what went wrong, in words for a member. Keys are both the documented
# six-digit "MMMEEE" suffixes (edit 007, remix 011) and the three-digit "EEE" part, which
# every model uses the same way.
_EEE_MESSAGES = {
    "001": "task ID missing",
    "002": "image number missing",
    "003": "invalid image number (must be 0–3)",
    "004": "prompt missing",
    "005": "invalid prompt length (1–8192 characters)",
    "006": "canvas parameters missing",
    "007": "image position parameters missing",
    "008": "invalid callback URL",
    "098": "generation failed",
    "099": "service unavailable",
}
VTRIX_ERROR_MESSAGES: dict[str, str] = {
    **{f"007{eee}": text for eee, text in _EEE_MESSAGES.items()},
    "011001": _EEE_MESSAGES["001"],
    "011002": _EEE_MESSAGES["002"],
    **_EEE_MESSAGES,
}
# MMM -> what the model was asked to do (documented: diffusion 001, edit 007, remix 011).
_MODEL_VERBS = {
    "001": "create the image",
    "007": "edit the image",
    "011": "remix the image",
}
_MIN_CODE_DIGITS = 7  # shorter numbers are HTTP-style codes (400), not Vtrix codes


def normalise_code(code: Any) -> str | None:
    """A Vtrix error code as its 9-digit zero-padded string, or None if it is not one
    ("004007003" and 4007003 are the same code; 400 is an HTTP status, not a Vtrix code)."""
    if code is None or isinstance(code, bool):
        return None
    digits = re.sub(r"\D", "", str(code)).lstrip("0")
    if len(digits) < _MIN_CODE_DIGITS:
        return None
    return digits.zfill(9)


def describe_vtrix_error(code: Any, text: str | None) -> JobError:
    """A member-facing JobError for a Vtrix error code and the provider's own text.

    `message` is a sentence ("Vtrix could not edit the image: invalid image number
    (must be 0–3)."); `provider_text` is their text plus the 9-digit code.
    """
    their = excerpt(text or "", 300).strip()
    digits = normalise_code(code)
    if digits is None and code not in (None, "", 0, "0") and not their:
        their = f"error {code}"
    provider_text = " ".join(p for p in (their, f"(code {digits})" if digits else "") if p) or None
    if digits is None:
        return failure_from_text(LABEL, their)
    suffix, model, eee = digits[-6:], digits[-6:-3], digits[-3:]
    fragment = VTRIX_ERROR_MESSAGES.get(suffix) or VTRIX_ERROR_MESSAGES.get(eee)
    if their and has_moderation_words(their):
        return JobError(
            ErrorCode.MODERATED, f"{LABEL} refused the prompt or image (moderation).", provider_text
        )
    if fragment is None:
        message = (
            sentence(f"{LABEL} error {digits}: {their}") if their else f"{LABEL} error {digits}."
        )
        return JobError(ErrorCode.GENERATION_FAILED, message, provider_text)
    verb = _MODEL_VERBS.get(model, "finish the job")
    message = f"{LABEL} could not {verb}: {fragment}."
    if eee == "098":
        error_code = ErrorCode.GENERATION_FAILED
    elif eee == "099":
        error_code = ErrorCode.UNAVAILABLE
    else:
        error_code = ErrorCode.INVALID_REQUEST
    return JobError(error_code, message, provider_text)


def _code_in(body: Any) -> Any:
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    if isinstance(err, dict) and err.get("code") is not None:
        return err.get("code")
    return body.get("code")


def _error_for_code(code: Any, message: str, status: int | None) -> ProviderError | None:
    if normalise_code(code) is None:
        return None
    error = describe_vtrix_error(code, message)
    if error.code is ErrorCode.UNAVAILABLE:
        return ProviderUnavailableError(
            error.message, provider_text=error.provider_text, http_status=status
        )
    if error.code is ErrorCode.MODERATED:
        return ModeratedError(error.message, provider_text=error.provider_text, http_status=status)
    return InvalidRequestError(error.message, provider_text=error.provider_text, http_status=status)


def classify_http_error(status: int, body: Any, text: str) -> ProviderError | None:
    """Gateway errors: 401 key, 403 balance/permission, 400 with a Vtrix code, 429, 5xx."""
    if status in (400, 422):
        coded = _error_for_code(_code_in(body), body_message(body), status)
        if coded is not None:
            return coded
    return classify_common(LABEL, status, body, text)


def auth_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "accept": "application/json"}


def wrap_body(request: UpstreamRequest) -> dict[str, Any]:
    # Vtrix spells its models without dashes: upload-paint is midjourney_uploadpaint.
    model = MODEL_PREFIX + request.op.replace("-", "")
    return {"model": model, "input": [{"params": request.params}]}


class VtrixProvider(LegnextFamilyProvider):
    name = "vtrix"
    label = LABEL
    ref_is_upstream = False  # the ref is the Vtrix task id; the jobId lives in provider_data

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://cloud.vtrix.ai",
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
            "POST", "/model/v1/generation", json_body=wrap_body(request), creates=True
        )
        task = _unwrap(reply)
        if task is None:
            # An answer with a Vtrix code and no task: refused, nothing was created.
            coded = _error_for_code(_code_in(reply), body_message(reply), None)
            if coded is not None:
                raise coded
            raise SubmitOutcomeUnknownError(provider_text="create reply without a task id")
        return parse_task(task, op=operation, capabilities=self.capabilities)

    async def _read(self, ref: str, job: Job) -> ProviderSnapshot:
        reply = await self.http.request("GET", f"/model/v1/generation/task/{ref}")
        task = _unwrap(reply)
        if task is None:
            raise MalformedReplyError(provider_text="task reply without an id")
        return parse_task(task, op=job.operation, capabilities=self.capabilities)

    def parse_push(
        self, body: Any, *, operation: Operation | None = None
    ) -> ProviderSnapshot | None:
        """A callback post: the task object, bare or as `{data: task}` (PROVIDERS.md §3)."""
        task = _unwrap(body)
        if task is None:
            return None
        return parse_task(task, op=operation, capabilities=self.capabilities)


def _unwrap(reply: Any) -> dict[str, Any] | None:
    if isinstance(reply, dict) and not reply.get("id") and isinstance(reply.get("data"), dict):
        reply = reply["data"]
    if isinstance(reply, dict) and (reply.get("id") or reply.get("task_id")):
        return reply
    return None


def _content(task: dict[str, Any]) -> list[dict[str, Any]]:
    output = task.get("output")
    if isinstance(output, dict):
        output = [output]
    if not isinstance(output, list) or not output or not isinstance(output[0], dict):
        return []
    content = output[0].get("content")
    if not isinstance(content, list):
        return []
    return [
        c for c in content if isinstance(c, dict) and isinstance(c.get("url"), str) and c["url"]
    ]


def parse_task(
    task: dict[str, Any],
    *,
    op: Operation | None = None,
    capabilities: Capabilities = CAPABILITIES,
) -> ProviderSnapshot:
    """Translate one Vtrix task object to a snapshot."""
    ref = str(task.get("id") or task.get("task_id"))
    raw_status = str(task.get("status") or "").strip().lower()
    status = STATUS_MAP.get(raw_status)
    if status is None:
        log_unknown_status(LABEL, raw_status)
        status = JobStatus.RUNNING

    # Vtrix reports progress as a fraction 0.0-1.0: always scaled, never guessed.
    fraction = as_float(task.get("progress"))
    progress = (
        clamp_progress(round(min(max(fraction, 0.0), 1.0) * 100)) if fraction is not None else None
    )
    if status is JobStatus.COMPLETED:
        progress = 100
    elif status is JobStatus.SUBMITTED and progress == 0:
        progress = None

    snap = ProviderSnapshot(ref=ref, status=status, progress=progress, raw_status=raw_status)
    data: dict[str, Any] = {}
    if status is JobStatus.FAILED:
        snap.error = _task_error(task.get("error"))
    elif status is JobStatus.COMPLETED:
        items = _content(task)
        urls = [str(c["url"]) for c in items]
        job_ids = [str(c.get("jobId") or c.get("job_id") or "") for c in items]
        if any(job_ids):
            data["job_id"] = next(j for j in job_ids if j)
            data["job_ids"] = job_ids
        data["image_count"] = len(urls)
        if len(urls) >= 2:
            snap.tiles = urls
        elif urls:
            snap.result_url = urls[0]
        snap.actions = synthesize_actions(op=op, image_count=len(urls), capabilities=capabilities)
        snap.cost = _cost(task.get("usage"))
    snap.data = data
    return snap


def _cost(usage: Any) -> Cost | None:
    if not isinstance(usage, dict):
        return None
    amount = as_decimal(usage.get("cost"))
    if amount is None or amount < 0:
        return None
    return Cost(amount=amount, unit="usd")


def _task_error(err: Any) -> JobError:
    """`error` as {code, error_message} | {code, message} | a string."""
    if isinstance(err, str):
        return describe_vtrix_error(None, err) if err.strip() else _generic_failure()
    if isinstance(err, dict):
        text = str(err.get("error_message") or err.get("message") or err.get("msg") or "")
        code = err.get("code")
        if text or normalise_code(code) is not None:
            return describe_vtrix_error(code, text)
        if code not in (None, 0, "", "0"):
            return describe_vtrix_error(code, None)
    return _generic_failure()


def _generic_failure() -> JobError:
    return JobError(ErrorCode.GENERATION_FAILED, f"{LABEL} reported the job as failed.")
