"""The contract every backend implements, and the errors it may raise.

A provider translates between one backend's wire format and `bot.domain`. It never
imports discord and keeps no job state: the engine owns jobs, the provider only sends
one request and reads one reply at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from bot.domain import ErrorCode, Job, JobError, Operation, OperationKind, ProviderSnapshot
from bot.redaction import scrub


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do; the layers above hide what it cannot."""

    operations: frozenset[OperationKind]
    can_cancel: bool = False
    reports_progress: bool = True
    max_prompt_length: int = 8192
    # Follow-ups are refused by the provider once the parent is older than this (seconds).
    follow_up_window: float | None = None

    def supports(self, kind: OperationKind) -> bool:
        return kind in self.operations


@dataclass(frozen=True, slots=True)
class AccountInfo:
    credits: Decimal | None = None
    credits_unit: str | None = None
    max_concurrent_jobs: int | None = None
    plan: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


# --- errors -----------------------------------------------------------------------------


class ProviderError(Exception):
    """A provider refused or failed a request.

    `message` is written for a Discord member; `provider_text` is the provider's own
    words. Neither may contain a secret. `transient` says retrying later may succeed.
    """

    code: ErrorCode = ErrorCode.INTERNAL
    transient: bool = False
    default_message = "The image service failed to handle the request."

    def __init__(
        self,
        message: str | None = None,
        *,
        provider_text: str | None = None,
        http_status: int | None = None,
    ) -> None:
        # Provider text may quote the request's key (some gateways do): scrubbed where it
        # enters the bot, so no refusal, log or stored job can carry it (issue 13 item 1).
        self.message = scrub(message) if message else self.default_message
        self.provider_text = scrub(provider_text) if provider_text else provider_text
        self.http_status = http_status
        super().__init__(self.message)

    def to_job_error(self) -> JobError:
        return JobError(code=self.code, message=self.message, provider_text=self.provider_text)


class AuthError(ProviderError):
    code = ErrorCode.AUTH
    default_message = (
        "The bot's API key was refused by the image service. Ask the server owner to check it."
    )


class InsufficientCreditError(ProviderError):
    code = ErrorCode.INSUFFICIENT_CREDIT
    default_message = "The image service account is out of credit."


class InvalidRequestError(ProviderError):
    code = ErrorCode.INVALID_REQUEST
    default_message = "The image service rejected the request as invalid."


class ModeratedError(ProviderError):
    code = ErrorCode.MODERATED
    default_message = "The prompt or image was refused by the image service's moderation."


class ParentTooOldError(ProviderError):
    code = ErrorCode.PARENT_TOO_OLD
    default_message = (
        "That image is too old for follow-ups at the image service. Start a new /imagine."
    )


class NotFoundError(ProviderError):
    code = ErrorCode.NOT_FOUND
    default_message = "The image service no longer knows this job."


class UnsupportedOperationError(ProviderError):
    code = ErrorCode.UNSUPPORTED
    default_message = "The configured image service cannot do that."


class RateLimitedError(ProviderError):
    code = ErrorCode.RATE_LIMITED
    transient = True
    default_message = "The image service is busy (rate limited). Try again shortly."

    def __init__(
        self, message: str | None = None, *, retry_after: float | None = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ProviderUnavailableError(ProviderError):
    code = ErrorCode.UNAVAILABLE
    transient = True
    default_message = "The image service is unavailable right now."


class MalformedReplyError(ProviderError):
    code = ErrorCode.MALFORMED_REPLY
    transient = True
    default_message = "The image service sent a reply the bot could not read."


class SubmitOutcomeUnknownError(ProviderError):
    """The submission left but no answer came back: it may or may not exist there."""

    code = ErrorCode.SUBMIT_INTERRUPTED
    default_message = (
        "The image service did not answer the submission in time. It was not retried, "
        "so that the account is not charged twice."
    )


# --- the protocol -------------------------------------------------------------------------


@runtime_checkable
class Provider(Protocol):
    name: str
    capabilities: Capabilities

    async def submit(
        self, operation: Operation, *, job: Job, parent: Job | None
    ) -> ProviderSnapshot:
        """Create the provider job for `operation`. `job` is the bot's record (its id may be
        echoed to the provider); `parent` is the job a follow-up applies to."""
        ...

    async def fetch(self, job: Job) -> ProviderSnapshot:
        """Read the current state of a submitted job."""
        ...

    async def cancel(self, job: Job) -> None:
        """Ask the provider to stop a job; raises ProviderError if it cannot."""
        ...

    async def account(self) -> AccountInfo: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class PushProvider(Protocol):
    """A provider that can read its own webhook/callback posts (push mode)."""

    name: str

    def parse_push(
        self, body: Any, *, operation: Operation | None = None
    ) -> ProviderSnapshot | None:
        """The snapshot a posted body reports, or None when it is not a task of this
        provider (an account notice, someone else's JSON). Pure: no I/O. `operation` is the
        job's, when known: some backends need it to name the follow-ups of a result."""
        ...
