"""The server's spoiler rule, one function for every place a result is shown: the job's
first delivery (the publisher, through bot/app.py) and `/job show`'s re-post.

A result is spoilered when the server asks for it (`spoiler_flagged`), its prompt holds a
word of the shipped default list that the server allowed, and the channel it is shown in
is not age-restricted. The channel is the one the image lands in, not the one the job was
made in: a job from an NSFW channel shown elsewhere is spoilered there.
"""

from __future__ import annotations

from bot.discord.policy import Policy
from bot.domain import Job

SPOILER_PREFIX = "SPOILER_"  # Discord blurs an attachment whose file name starts so


async def spoilered(policy: Policy, job: Job, channel: object | None) -> bool:
    """Whether `job`'s result goes out as a spoiler when shown in `channel` (a discord.py
    channel, thread or partial channel; None when unknown: no spoiler, as before)."""
    settings = await policy.settings(job.guild_id)
    if settings is None or not settings.spoiler_flagged or not job.operation.prompt:
        return False
    if channel is None or _is_nsfw(channel):
        return False
    return policy.is_flagged(job.operation.prompt)


def spoiler_name(filename: str, spoiler: bool) -> str:
    if spoiler and not filename.startswith(SPOILER_PREFIX):
        return SPOILER_PREFIX + filename
    return filename


def _is_nsfw(channel: object) -> bool:
    # Threads answer for their parent; a partial channel (not cached) cannot say: not NSFW.
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False
