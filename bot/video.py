"""Midjourney video (V1 Video) in neutral terms, shared by the providers and the cogs.

A video job makes 1, 2 or 4 short MP4s (batch size, default 4) from a start image, with
low or high motion, optionally looping or ending on another image; each video can be
extended by ~4 s or, where the backend can, upscaled to HD (PROVIDERS.md §8).

Nothing here imports discord or a provider: what an option may be, the prompt flags
Midjourney reads (`--motion`, `--raw`, `--loop`, `--end`, `--bs`), and the follow-ups a
finished video job offers.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.domain import VIDEO_BATCH_SIZES, VIDEO_MOTIONS, Action, Operation, OperationKind

DEFAULT_MOTION = "low"
DEFAULT_BATCH = 4
MAX_VIDEOS = 4


def is_http_url(value: str | None) -> bool:
    if not value:
        return False
    parts = urlsplit(value.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in value.strip()


def video_problem(op: Operation) -> str | None:
    """What is wrong with a video operation's options, in a sentence; None when nothing.
    Checked before anything is sent, so a mistake costs nothing."""
    if not op.kind.is_video:
        return None
    if op.motion is not None and op.motion not in VIDEO_MOTIONS:
        return f"Motion must be low or high, not {op.motion!r}."
    if op.batch_size is not None and op.batch_size not in VIDEO_BATCH_SIZES:
        return "The batch size must be 1, 2 or 4 videos."
    if op.end_image_url is not None and not is_http_url(op.end_image_url):
        return "The end image must be an uploaded image or an http(s) link."
    if op.video_loop and op.end_image_url:
        return "A loop ends on its own start image: choose loop or an end image, not both."
    start = op.image_urls[0] if op.image_urls else None
    if op.kind is OperationKind.VIDEO_FROM_IMAGE and not is_http_url(start):
        return "A video needs a start image: upload one or give a job id."
    if op.index is not None and not 1 <= op.index <= MAX_VIDEOS:
        return f"There is no video or image {op.index}: pick 1 to {MAX_VIDEOS}."
    return None


def video_flags(op: Operation) -> str:
    """Midjourney's video flags for `op` (` --motion low --loop …`), motion always given."""
    flags = [f"--motion {op.motion or DEFAULT_MOTION}"]
    if op.raw_style:
        flags.append("--raw")
    if op.video_loop:
        flags.append("--loop")
    if op.end_image_url:
        flags.append(f"--end {op.end_image_url}")
    if op.batch_size is not None and op.batch_size != DEFAULT_BATCH:
        flags.append(f"--bs {op.batch_size}")
    return " ".join(flags)


def video_prompt(op: Operation, *, start_image: str | None = None) -> str:
    """The prompt text of a video request: `[<start image>] [words] --motion … [flags]`."""
    parts = [start_image] if start_image else []
    words = (op.prompt or "").strip()
    if words:
        parts.append(words)
    parts.append(video_flags(op))
    return " ".join(parts)


def video_actions(count: int, *, extend: bool = True, hd: bool = False) -> list[Action]:
    """Per video 1..count: Extend (Low motion), Extend (High motion) and, where the backend
    upscales videos, HD."""
    actions: list[Action] = []
    for v in range(1, min(count, MAX_VIDEOS) + 1):
        names = [f"extend_low:{v}", f"extend_high:{v}"] if extend else []
        if hd:
            names.append(f"video_hd:{v}")
        actions += [Action(name, raw=name) for name in names]
    return actions


def animate_actions() -> list[Action]:
    """Animate (Low motion) / Animate (High motion) on a single image."""
    return [
        Action("animate_low:1", raw="animate_low:1"),
        Action("animate_high:1", raw="animate_high:1"),
    ]
