"""Provider-neutral vocabulary of the bot: jobs, their states, operations and actions.

Everything above the providers (engine, store, presentation, cogs) speaks only these
types; each provider module translates its own wire format to and from them.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """Life of a job as the bot sees it.

    queued     recorded by the bot, not yet accepted by the provider (waiting for a slot)
    submitted  accepted by the provider, waiting there to start
    running    the provider is generating
    completed / failed / cancelled / timed_out  terminal
    """

    QUEUED = "queued"
    SUBMITTED = "submitted"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        return not self.is_terminal


TERMINAL_STATUSES = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT}
)


class SpeedMode(StrEnum):
    RELAX = "relax"
    FAST = "fast"
    TURBO = "turbo"


class OperationKind(StrEnum):
    """What a provider is asked to do. Names follow Midjourney, not any one backend."""

    IMAGINE = "imagine"
    UPSCALE = "upscale"
    VARIATION = "variation"
    REROLL = "reroll"
    DESCRIBE = "describe"
    BLEND = "blend"
    SEED = "seed"
    INPAINT = "inpaint"
    OUTPAINT = "outpaint"
    PAN = "pan"
    EDIT = "edit"
    REMIX = "remix"
    ENHANCE = "enhance"
    # Video (Midjourney V1 Video): animate an image of a job, animate an outside image,
    # extend one video of a video job by ~4 s, upscale one video to HD.
    VIDEO = "video"
    VIDEO_FROM_IMAGE = "video_from_image"
    VIDEO_EXTEND = "video_extend"
    VIDEO_UPSCALE = "video_upscale"
    # Issue 19: shorter versions of a prompt; a new look for a member's uploaded image
    # (retexture); Midjourney's editor on an uploaded image (upload-paint / edits).
    SHORTEN = "shorten"
    RETEXTURE = "retexture"
    UPLOAD_EDIT = "upload_edit"
    # A follow-up the bot has no name for: the provider's raw action is replayed as is.
    PROVIDER_ACTION = "provider_action"

    @property
    def needs_parent(self) -> bool:
        return self not in (
            OperationKind.IMAGINE,
            OperationKind.DESCRIBE,
            OperationKind.BLEND,
            OperationKind.VIDEO_FROM_IMAGE,
            OperationKind.SHORTEN,
            OperationKind.RETEXTURE,
            OperationKind.UPLOAD_EDIT,
        )

    @property
    def is_video(self) -> bool:
        return self in VIDEO_KINDS


VIDEO_KINDS = frozenset(
    {
        OperationKind.VIDEO,
        OperationKind.VIDEO_FROM_IMAGE,
        OperationKind.VIDEO_EXTEND,
        OperationKind.VIDEO_UPSCALE,
    }
)
VIDEO_MOTIONS = ("low", "high")
VIDEO_BATCH_SIZES = (1, 2, 4)


class PanDirection(StrEnum):
    LEFT = "left"
    RIGHT = "right"
    UP = "up"
    DOWN = "down"


class BlendDimension(StrEnum):
    SQUARE = "square"
    PORTRAIT = "portrait"
    LANDSCAPE = "landscape"


@dataclass(frozen=True, slots=True)
class Size:
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an image sits on an edit canvas: its size and offset from the top-left."""

    width: int
    height: int
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Operation:
    """A request for one provider job, in neutral terms.

    `index` is the tile (1-4) a grid follow-up applies to. `variant` qualifies the kind:
    upscale subtle|creative|2x|4x, variation subtle|strong. `parent_job_id` names the
    bot's own job this follows up; the engine resolves it to the provider reference.

    Video: `index` is the image (animate) or the video (extend, HD) it applies to, 1-4;
    `motion` low|high; `video_loop` ends on the start frame, `end_image_url` on another;
    `batch_size` 1|2|4 videos; `hd` 720p instead of 480p; `raw_style` is --raw.
    Unset options stay None so older stored operations read back unchanged.
    """

    kind: OperationKind
    prompt: str | None = None
    aspect_ratio: str | None = None
    mode: SpeedMode | None = None
    parent_job_id: str | None = None
    index: int | None = None
    variant: str | None = None
    zoom_ratio: Decimal | None = None
    direction: PanDirection | None = None
    image_urls: tuple[str, ...] = ()
    dimension: BlendDimension | None = None
    mask_png_base64: str | None = None
    canvas: Size | None = None
    placement: Placement | None = None
    raw_action: str | None = None
    motion: str | None = None
    video_loop: bool | None = None
    end_image_url: str | None = None
    batch_size: int | None = None
    hd: bool | None = None
    raw_style: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or value == ():
                continue
            if isinstance(value, (Size, Placement)):
                value = dataclasses.asdict(value)
            elif isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Operation:
        kwargs = dict(data)
        kwargs["kind"] = OperationKind(kwargs["kind"])
        if (mode := kwargs.get("mode")) is not None:
            kwargs["mode"] = SpeedMode(mode)
        if (ratio := kwargs.get("zoom_ratio")) is not None:
            kwargs["zoom_ratio"] = Decimal(str(ratio))
        if (direction := kwargs.get("direction")) is not None:
            kwargs["direction"] = PanDirection(direction)
        if (dimension := kwargs.get("dimension")) is not None:
            kwargs["dimension"] = BlendDimension(dimension)
        if "image_urls" in kwargs:
            kwargs["image_urls"] = tuple(kwargs["image_urls"])
        if (canvas := kwargs.get("canvas")) is not None:
            kwargs["canvas"] = Size(**canvas)
        if (placement := kwargs.get("placement")) is not None:
            kwargs["placement"] = Placement(**placement)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in kwargs.items() if k in known})


@dataclass(frozen=True, slots=True)
class Action:
    """A follow-up the provider offers on a finished job.

    `name` is neutral (see bot.actions); `raw` is the provider's own spelling, kept so a
    request can be replayed exactly; `images` limits the action to some tiles, if known.
    """

    name: str
    raw: str
    images: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "raw": self.raw}
        if self.images is not None:
            data["images"] = list(self.images)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Action:
        images = data.get("images")
        return cls(
            name=data["name"],
            raw=data.get("raw", data["name"]),
            images=tuple(images) if images is not None else None,
        )


@dataclass(frozen=True, slots=True)
class VideoClip:
    """One video of a finished video job: the MP4's URL and a still to show for it."""

    url: str
    cover: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "cover": self.cover}

    @classmethod
    def from_dict(cls, data: Any) -> VideoClip | None:
        if not isinstance(data, dict) or not isinstance(data.get("url"), str) or not data["url"]:
            return None
        cover = data.get("cover")
        return cls(url=data["url"], cover=cover if isinstance(cover, str) and cover else None)


def videos_of(provider_data: dict[str, Any]) -> list[VideoClip]:
    """The videos a provider reported, kept in `provider_data["videos"]` (a list of
    {url, cover}): stored with the job as it is, so restarts and /job show keep them."""
    raw = provider_data.get("videos")
    if not isinstance(raw, list):
        return []
    clips = [clip for item in raw if (clip := VideoClip.from_dict(item)) is not None]
    # No cover reported (Legnext documents none): the start image stands in for it.
    source = provider_data.get("video_source")
    if isinstance(source, str) and source:
        clips = [c if c.cover else VideoClip(c.url, source) for c in clips]
    return clips


@dataclass(frozen=True, slots=True)
class Cost:
    amount: Decimal
    unit: str  # "usd" or "point"

    def to_dict(self) -> dict[str, str]:
        return {"amount": str(self.amount), "unit": self.unit}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cost:
        return cls(amount=Decimal(str(data["amount"])), unit=str(data["unit"]))


class ErrorCode(StrEnum):
    """Why a job or a request failed, in terms a user can be told about."""

    AUTH = "auth"
    INSUFFICIENT_CREDIT = "insufficient_credit"
    INVALID_REQUEST = "invalid_request"
    MODERATED = "moderated"
    PARENT_TOO_OLD = "parent_too_old"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    MALFORMED_REPLY = "malformed_reply"
    UNSUPPORTED = "unsupported"
    GENERATION_FAILED = "generation_failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    # The bot stopped between sending a submission and storing the answer; the job is
    # not resubmitted because that could charge the account twice.
    SUBMIT_INTERRUPTED = "submit_interrupted"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class JobError:
    code: ErrorCode
    message: str  # for humans
    provider_text: str | None = None  # the provider's own words, verbatim

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "message": self.message,
            "provider_text": self.provider_text,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobError:
        try:
            code = ErrorCode(data.get("code", "internal"))
        except ValueError:
            code = ErrorCode.INTERNAL
        return cls(
            code=code, message=str(data.get("message", "")), provider_text=data.get("provider_text")
        )


@dataclass(slots=True)
class ProviderSnapshot:
    """One observation of a provider job, already translated to neutral terms.

    `progress` is None when the provider does not report it; never invented.
    `data` carries what follow-ups need beyond `ref` (e.g. upstream ids, button ids).
    """

    ref: str
    status: JobStatus
    progress: int | None = None
    preview_url: str | None = None
    result_url: str | None = None
    tiles: list[str] | None = None
    actions: list[Action] | None = None
    cost: Cost | None = None
    error: JobError | None = None
    seed: str | None = None
    prompts: list[str] | None = None  # describe: the suggested prompts
    queue_position: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    raw_status: str | None = None


def new_job_id() -> str:
    """A short, URL- and custom_id-safe job key (12 chars of base32, ~60 bits)."""
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
    return "".join(secrets.choice(alphabet) for _ in range(12))


@dataclass(slots=True)
class Job:
    """A job in the bot, from the moment it is asked for until it ends.

    Times are wall-clock Unix seconds (float). `idempotency_key` makes a second request
    for the same thing (a double click, a retried interaction) return the first job.
    """

    id: str
    operation: Operation
    provider: str
    status: JobStatus = JobStatus.QUEUED
    requester_id: str | None = None
    guild_id: str | None = None
    channel_id: str | None = None
    idempotency_key: str | None = None
    provider_ref: str | None = None
    provider_data: dict[str, Any] = field(default_factory=dict)
    progress: int | None = None
    preview_url: str | None = None
    result_url: str | None = None
    tiles: list[str] | None = None
    actions: list[Action] = field(default_factory=list)
    cost: Cost | None = None
    error: JobError | None = None
    seed: str | None = None
    prompts: list[str] | None = None
    queue_position: int | None = None
    raw_status: str | None = None
    created_at: float = 0.0
    submit_started_at: float | None = None
    submitted_at: float | None = None
    updated_at: float = 0.0
    last_change_at: float = 0.0
    finished_at: float | None = None
    polls: int = 0
    # Where the job's message lives (channel, message, upload limit), written with the job
    # itself so that a kill before its delivery record is stored loses no message.
    delivery_hint: dict[str, Any] = field(default_factory=dict)
    # The provider account (MJ_ACCOUNTS_FILE name) it was sent to; follow-ups go there too.
    account: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def parent_job_id(self) -> str | None:
        return self.operation.parent_job_id

    @property
    def videos(self) -> list[VideoClip]:
        """The finished videos of a video job (empty for image jobs)."""
        return videos_of(self.provider_data)

    @property
    def is_video(self) -> bool:
        return self.operation.kind.is_video

    def visible_state(self) -> tuple[Any, ...]:
        """What a user can see of the job; an edit is worth sending only when this changes."""
        return (
            self.status,
            self.progress,
            self.preview_url,
            self.result_url,
            self.queue_position,
            self.error,
            tuple(a.name for a in self.actions),
        )
