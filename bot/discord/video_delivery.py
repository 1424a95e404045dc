"""How a finished video job goes out: which MP4s are uploaded and which are linked.

Discord plays an uploaded `.mp4` inline (DISCORD_PROTOCOL.md §14) but an embed cannot show
one, so the videos travel as attachments next to the message. They must fit the upload
limit the interaction reported: as many as fit in full are uploaded, in order; the others
are linked, each with its still uploaded (a small image) so the message still shows it.
Treating the limit as the room for the whole message is the cautious reading (Discord
has also capped whole requests), and it is what the 413 retry halves.

`plan_video_files` is pure (bytes in, files out); the publisher downloads and writes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot import redaction
from bot.domain import Job, JobStatus, OperationKind, VideoClip

if TYPE_CHECKING:
    from bot.discord.presenter import RenderedMessage

MAX_CONTENT = 2000
MAX_LINK = 512


@dataclass(frozen=True)
class Clip:
    """One video of the job as downloaded: `data` None when it could not be had within
    the room (too large, or the link failed); `cover` the still's bytes, if fetched."""

    number: int
    video: VideoClip
    data: bytes | None
    cover: bytes | None = None


@dataclass(frozen=True)
class FilePlan:
    """What to upload (file name, bytes) and which videos are only linked."""

    uploads: list[tuple[str, bytes]]
    linked: list[tuple[int, VideoClip]]


def plan_video_files(clips: list[Clip], room: int, *, stem: str, prefix: str = "") -> FilePlan:
    """As many whole videos as fit in `room` bytes, in order; every other one linked, with
    its still uploaded while room is left for it."""
    uploads: list[tuple[str, bytes]] = []
    linked: list[tuple[int, VideoClip]] = []
    for clip in clips:
        if clip.data is not None and len(clip.data) <= room:
            uploads.append((f"{prefix}{stem}_{clip.number}.mp4", clip.data))
            room -= len(clip.data)
        else:
            linked.append((clip.number, clip.video))
    for clip in clips:
        if (clip.number, clip.video) in linked and clip.cover and len(clip.cover) <= room:
            uploads.append((f"{prefix}{stem}_{clip.number}_still.png", clip.cover))
            room -= len(clip.cover)
    return FilePlan(uploads, linked)


def with_video_links(
    rendered: RenderedMessage, linked: list[tuple[int, VideoClip]]
) -> RenderedMessage:
    """The message naming each video that was not uploaded, with its link when the link
    may be shown (a signed URL that carries a secret is not)."""
    lines = []
    for n, video in linked:
        url = video.url
        shown = len(url) <= MAX_LINK and redaction.scrub(url) == url
        link = f"[MP4](<{url}>)" if shown else "too large to upload here"
        lines.append(f"\nVideo {n}: {link}")
    text = "".join(lines)
    if not text or len(rendered.content) + len(text) > MAX_CONTENT:
        return rendered
    return dataclasses.replace(rendered, content=rendered.content + text)


def video_action_text(job: Job) -> str:
    """Midjourney's words for a video message: "Animate (Low motion)", "Extend (High
    motion)", "HD" or "Video", and how many videos once done."""
    op = job.operation
    motion = (op.motion or "low").title()
    text = {
        OperationKind.VIDEO: f"Animate ({motion} motion)",
        OperationKind.VIDEO_EXTEND: f"Extend ({motion} motion)",
        OperationKind.VIDEO_UPSCALE: "HD",
    }.get(op.kind, "Video")
    count = len(job.videos)
    if job.status is JobStatus.COMPLETED and count:
        text += f" · {count} video{'s' if count != 1 else ''}"
    return text
