"""The rules a click, a form or a command on an existing job must pass, one function each.

Each returns the sentence to tell the member privately, or None when the rule lets the
member through. The persistent buttons (bot/interactions/buttons.py), the forms
(bot/interactions/follow_ups.py) and /describe, /edit and /job use the same functions,
so a refusal reads the same wherever it comes from.
"""

from __future__ import annotations

from bot.actions import kind_of
from bot.discord.buttons_layout import describe_action
from bot.discord.policy import Member, Policy
from bot.domain import Job, JobStatus, Operation, OperationKind
from bot.interactions.errors import Refusal
from bot.providers.base import Capabilities

UNKNOWN_BUTTON = "This button belongs to a job this bot does not know."
NOT_FINISHED = "That job has not finished."


def unknown_job(
    job: Job | None,
    guild_id: str | None,
    *,
    kind: OperationKind | None = None,
    text: str = UNKNOWN_BUTTON,
) -> str | None:
    """`text` when the job does not exist, belongs to another server (answered exactly
    alike, so ids reveal nothing across servers) or is not of `kind`."""
    if job is None or job.guild_id != guild_id:
        return text
    if kind is not None and job.operation.kind is not kind:
        return text
    return None


def not_finished(job: Job) -> str | None:
    """Follow-ups start from a completed job only."""
    return NOT_FINISHED if job.status is not JobStatus.COMPLETED else None


def finished_here(
    job: Job | None,
    guild_id: str | None,
    *,
    kind: OperationKind | None = None,
    text: str = UNKNOWN_BUTTON,
) -> Job:
    """`unknown_job` then `not_finished`, for what acts on a finished job of this server
    (describe's and shorten's picks, /edit's job): the job, or Refusal with the sentence."""
    refusal = unknown_job(job, guild_id, kind=kind, text=text)
    if refusal is None:
        assert job is not None
        refusal = not_finished(job)
    if refusal is not None:
        raise Refusal(refusal)
    assert job is not None
    return job


def past_window(job: Job, *, now: float, window: float | None) -> str | None:
    """The provider takes no follow-up on a job older than its window; buttons posted
    before the window closed are still enabled on old messages."""
    if window is None or now - job.created_at <= window:
        return None
    return (
        f"This image is older than {window / 3600:g} hours; the image service no longer takes "
        "follow-ups on it. Start a new /imagine."
    )


def unsupported(capabilities: Capabilities, action: str) -> str | None:
    """Why the backend cannot serve `action` (a button from before a backend switch)."""
    kind = kind_of(action)
    if kind is None or capabilities.supports(kind):
        return None
    title, _ = describe_action(action)
    return f"The image service this server uses cannot do {title}."


async def may_not_click(policy: Policy, member: Member, parent: Job) -> str | None:
    """Who may use the buttons under `parent` (the server may keep them to its requester
    and moderators)."""
    return await policy.check_click(member, parent)


async def policy_refusal(
    policy: Policy, member: Member, operation: Operation, parent: Job | None = None
) -> str | None:
    """The server's rules (channels, roles, quotas, speeds, prompts) for `operation`; a
    click on `parent` must also pass `may_not_click`."""
    if parent is not None and (reason := await may_not_click(policy, member, parent)):
        return reason
    return await policy.check_job(member, operation, parent=parent)
