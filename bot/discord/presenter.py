"""A Job as a Discord message: content, embed, image and buttons. Pure and deterministic.

The wording follows Midjourney's own bot so members recognise it:

    **a lighthouse --ar 16:9** - <@1> (Waiting to start)     + ⌛ 10s elapsed
    **a lighthouse --ar 16:9** - <@1> Queued (position 3)
    **a lighthouse --ar 16:9** - <@1> (Retrying)             + ⚠️ The image service isn't …
    **a lighthouse --ar 16:9** - <@1> (37%) (fast)           + ▰▰▰▱▱▱▱▱▱▱ 1m 10s elapsed
    **a lighthouse --ar 16:9** - <@1> (fast)                 + the grid as an attachment
    **a lighthouse --ar 16:9** - Image #2 <@1>
    **a lighthouse --ar 16:9** - Variations (Strong) by <@1> (fast)
    **a lighthouse --ar 16:9** - <@1>                        + ❌ Failed: a sentence

The aspect ratio the job runs at is shown as `--ar` when it came from an option or /prefs
rather than the prompt. The provider's own words are quoted only where they are a sentence
a member can act on (a moderation or generation refusal); an exception name or raw JSON
goes to the log and the admins' log channel, never to the channel (issue 15 item 2).

Elapsed time is coarse on purpose (10 s steps in the first minute, 30 s up to ten
minutes, whole minutes after): the text stays honest about a job that is still alive,
while `visible_key` changes only at those steps, so a job without news is edited at
most every 10–60 s instead of every second.

Only the requester is mentioned: the prompt and the provider's text have their mentions
neutralised; the publisher should still send `allowed_mentions` for `mention_user_ids`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import discord
from discord.utils import escape_markdown, escape_mentions

from bot import redaction
from bot.actions import parse_action
from bot.discord.buttons_layout import ButtonSpec, clip, describe_action, layout_buttons
from bot.discord.video_delivery import video_action_text
from bot.discord.views import STYLES
from bot.domain import BlendDimension, ErrorCode, Job, JobStatus, OperationKind, SpeedMode

MAX_CONTENT = 2000
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FOOTER = 2048
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_EMBED_TOTAL = 6000
PROVIDER_TEXT_LIMIT = 300  # the provider's own words: enough to recognise, not a wall
REASON_LIMIT = 400
DESCRIBE_PROMPT_LIMIT = 1000
BAR_CELLS = 10

COLOUR_ACTIVE = 0x5865F2
COLOUR_DONE = 0x57F287
COLOUR_FAILED = 0xED4245
COLOUR_TIMED_OUT = 0xFEE75C
COLOUR_CANCELLED = 0x95A5A6

_MODE_TEXT = {SpeedMode.FAST: "fast", SpeedMode.RELAX: "relaxed", SpeedMode.TURBO: "turbo"}
_KEYCAPS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣", "7️⃣", "8️⃣", "9️⃣", "🔟")
_ASPECT = re.compile(r"--(?:ar|aspect)\s+(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)")
_PROMPT_LISTS = frozenset({OperationKind.DESCRIBE, OperationKind.SHORTEN})


def _is_raw_describe(action: str) -> bool:
    """A provider's own describe button (`provider:describe3`, `provider:describe_all`)."""
    parsed = parse_action(action)
    raw = parsed.raw if parsed is not None and parsed.family == "provider" else None
    if raw is None or not raw.startswith("describe"):
        return False
    rest = raw.removeprefix("describe")
    return rest == "_all" or (rest.isascii() and rest.isdigit())


_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")
# Midjourney's /blend dimensions as aspect ratios.
_BLEND_RATIOS = {
    BlendDimension.SQUARE: "1:1",
    BlendDimension.PORTRAIT: "2:3",
    BlendDimension.LANDSCAPE: "3:2",
}
# Codes whose provider text speaks to the member (what was refused and why).
_QUOTABLE = frozenset({ErrorCode.MODERATED, ErrorCode.GENERATION_FAILED, ErrorCode.INVALID_REQUEST})
_IDENTIFIER = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Timeout)\b")

# Plain words for an error without a message of its own.
_REASONS: dict[ErrorCode, str] = {
    ErrorCode.AUTH: "the provider did not accept the bot's API key",
    ErrorCode.INSUFFICIENT_CREDIT: "the provider account is out of credit",
    ErrorCode.INVALID_REQUEST: "the provider rejected the request",
    ErrorCode.MODERATED: "the prompt or image was blocked by the provider's filter",
    ErrorCode.PARENT_TOO_OLD: "the original image is too old for follow-ups",
    ErrorCode.NOT_FOUND: "the provider no longer knows this job",
    ErrorCode.RATE_LIMITED: "the provider is busy; try again shortly",
    ErrorCode.UNAVAILABLE: "the provider is unavailable right now",
    ErrorCode.MALFORMED_REPLY: "the provider sent a reply the bot could not read",
    ErrorCode.UNSUPPORTED: "this provider cannot do that",
    ErrorCode.GENERATION_FAILED: "the image could not be generated",
    ErrorCode.TIMED_OUT: "the provider did not finish in time",
    ErrorCode.CANCELLED: "the job was cancelled",
    ErrorCode.SUBMIT_INTERRUPTED: (
        "the bot restarted while submitting; not retried to avoid a double charge"
    ),
    ErrorCode.INTERNAL: "something went wrong inside the bot",
}


@dataclass(frozen=True)
class EmbedField:
    name: str
    value: str
    inline: bool = False


@dataclass(frozen=True)
class EmbedSpec:
    title: str | None = None
    description: str | None = None
    url: str | None = None
    image_url: str | None = None
    thumbnail_url: str | None = None
    footer: str | None = None
    colour: int | None = None
    fields: tuple[EmbedField, ...] = ()

    def total_length(self) -> int:
        """What Discord counts against the 6000-character embed total."""
        texts = [self.title, self.description, self.footer]
        texts += [t for f in self.fields for t in (f.name, f.value)]
        return sum(len(t) for t in texts if t)


@dataclass(frozen=True)
class ImageRef:
    """Which image the message shows.

    kind "preview": `url` is shown in the embed, never uploaded (it changes often).
    kind "result":  the final image, to be uploaded as `filename`; `url` is the original
                    (also the link when the upload had to be shrunk). `tiles` are the four
                    single images when the provider gives no composite (`url` None then).
    """

    kind: Literal["preview", "result"]
    url: str | None
    filename: str | None = None
    tiles: tuple[str, ...] = ()


@dataclass
class RenderedMessage:
    content: str
    embed: EmbedSpec | None
    buttons: list[ButtonSpec]
    image: ImageRef | None
    # Users the publisher may ping (allowed_mentions): the requester, nobody else.
    mention_user_ids: tuple[int, ...] = field(default=())

    def with_attachment(self, filename: str) -> RenderedMessage:
        """The same message once the result is uploaded as `filename` (the publisher may
        have re-encoded it, so the name can differ from the one proposed)."""
        image = self.image
        if image is None or image.kind != "result":
            image = ImageRef(kind="result", url=None)
        embed = self.embed
        if embed is None and not filename.startswith("SPOILER_"):
            # The upload shown in the embed's image slot, where the previews were: the
            # message does not jump when it completes (issue 15 item 7). A spoilered one
            # stays a plain attachment: an embed would show it unblurred.
            embed = EmbedSpec(image_url=f"attachment://{filename}", colour=COLOUR_DONE)
        return dataclasses.replace(
            self, image=dataclasses.replace(image, filename=filename), embed=embed
        )


def with_original_link(rendered: RenderedMessage, url: str) -> RenderedMessage:
    """Add a link to the full-size original, for when the upload is a smaller copy (or
    missing); left out rather than ever pushing the content past Discord's limit."""
    line = f"\n[Full-size original](<{url}>)"
    if len(url) > 512 or len(rendered.content) + len(line) > MAX_CONTENT:
        return rendered
    if redaction.scrub(url) != url:  # a link that carries a secret is no link to show
        return rendered
    return dataclasses.replace(rendered, content=rendered.content + line)


def visible_key(rendered: RenderedMessage) -> tuple[object, ...]:
    """Equality key for "would an edit change what the user sees".

    Everything shown is in it, elapsed time included: that text is coarse (see the
    module docstring), so the key only changes at its steps, not every second.
    """
    return (rendered.content, rendered.embed, tuple(rendered.buttons), rendered.image)


def render(
    job: Job,
    *,
    now: float,
    requester_mention: str | None = None,
    remix: bool = False,
    used_actions: frozenset[str] = frozenset(),
    follow_up_window: float | None = None,
    extra_actions: list[str] | tuple[str, ...] = (),
    scrub: Callable[[str], str] = redaction.scrub,
) -> RenderedMessage:
    """The message for `job` as of `now`.

    `scrub` is applied to every text of the job that did not come from the bot (prompt,
    the provider's error and suggested prompts, seed) before it is escaped or clipped:
    a provider may quote the request's key in its error (issue 13). The default is the
    process's secret registry (bot/redaction.py); render is pure given it.
    """
    job = _scrubbed(job, scrub)
    mention = requester_mention
    if mention is None and job.requester_id:
        mention = f"<@{job.requester_id}>"
    mention_ids = _mention_ids(mention)

    tail_lines = _tail_lines(job, now)
    head_suffix = _head_suffix(job, mention)
    content = _compose_content(_subject(job), head_suffix, tail_lines)

    buttons: list[ButtonSpec] = []
    # /shorten's answer is shown like /describe's: numbered prompts, a button for each.
    is_describe = job.operation.kind in _PROMPT_LISTS and bool(job.prompts)
    embed, image = _embed_and_image(job, is_describe=is_describe)
    if job.status is JobStatus.COMPLETED:
        buttons = _buttons(
            job,
            now=now,
            is_describe=is_describe,
            remix=remix,
            used_actions=used_actions,
            follow_up_window=follow_up_window,
            extra_actions=extra_actions,
        )

    return RenderedMessage(
        content=content,
        embed=embed,
        buttons=buttons,
        image=image,
        mention_user_ids=mention_ids,
    )


def _embed_and_image(job: Job, *, is_describe: bool) -> tuple[EmbedSpec | None, ImageRef | None]:
    """The embed and image of `job`'s message: the preview while it runs, the result
    (or /describe's numbered prompts) once it completed, nothing otherwise."""
    if job.status.is_active and job.preview_url:
        embed = EmbedSpec(image_url=job.preview_url, colour=COLOUR_ACTIVE)
        return embed, ImageRef(kind="preview", url=job.preview_url)
    if job.status is not JobStatus.COMPLETED:
        return None, None
    if is_describe:
        return _describe_embed(job), None
    if job.result_url or job.tiles:
        image = ImageRef(
            kind="result",
            url=job.result_url,
            filename=_result_filename(job),
            tiles=tuple(job.tiles or ()),
        )
        return None, image
    return None, None


def _scrubbed(job: Job, scrub: Callable[[str], str]) -> Job:
    """`job` with its outside texts passed through `scrub`; the same object when nothing
    in it is secret (the common case: no copy on the hot path)."""
    changes: dict[str, object] = {}
    op = job.operation
    prompt = scrub(op.prompt) if op.prompt else op.prompt
    urls = tuple(scrub(u) for u in op.image_urls)
    if prompt != op.prompt or urls != op.image_urls:
        changes["operation"] = dataclasses.replace(op, prompt=prompt, image_urls=urls)
    error = job.error
    if error is not None:
        message = scrub(error.message)
        provider_text = scrub(error.provider_text) if error.provider_text else None
        if message != error.message or provider_text != error.provider_text:
            changes["error"] = dataclasses.replace(
                error, message=message, provider_text=provider_text
            )
    if job.seed and (seed := scrub(job.seed)) != job.seed:
        changes["seed"] = seed
    if job.prompts and (prompts := [scrub(p) for p in job.prompts]) != job.prompts:
        changes["prompts"] = prompts
    return dataclasses.replace(job, **changes) if changes else job  # type: ignore[arg-type]


def to_discord_embed(spec: EmbedSpec) -> discord.Embed:
    embed = discord.Embed(
        title=spec.title,
        description=spec.description,
        url=spec.url,
        colour=spec.colour,
    )
    if spec.image_url:
        embed.set_image(url=spec.image_url)
    if spec.thumbnail_url:
        embed.set_thumbnail(url=spec.thumbnail_url)
    if spec.footer:
        embed.set_footer(text=spec.footer)
    for f in spec.fields:
        embed.add_field(name=f.name, value=f.value, inline=f.inline)
    return embed


# --- the edit's JSON body, without discord.py's objects ------------------------------
#
# A progress edit is the bot's hottest Discord call (hundreds per second under load).
# Building a View of JobButtons, an Embed and then `handle_message_parameters` costs far
# more CPU than the request itself, so the publisher sends this body instead. It must be
# exactly what discord.py would send for the same message; tests/unit/test_edit_payload.py
# compares the two over every kind of message.

_STYLE_VALUES = {name: style.value for name, style in STYLES.items()}
_DEFAULT_STYLE = discord.ButtonStyle.secondary.value
_MAX_ROWS = 5
_MAX_ROW_WIDTH = 5


def to_payload(
    rendered: RenderedMessage,
    job_id: str,
    *,
    default_mentions: discord.AllowedMentions | None = None,
) -> dict[str, Any]:
    """The JSON body discord.py sends for an edit of `rendered` without files:

        edit_original_response(
            content=rendered.content,
            embed=to_discord_embed(rendered.embed) or None,
            view=job_view(rendered.buttons, job_id),
            allowed_mentions=AllowedMentions(everyone=False, roles=False, users=[ids]),
        )

    `default_mentions` is the client's own `allowed_mentions` (discord.py merges it in).
    Raises ValueError where discord.py's View would (a row out of 0..4 or over-full).
    """
    embed = rendered.embed
    mentions: dict[str, Any] = {"users": list(rendered.mention_user_ids), "parse": []}
    # Only `replied_user` is left to the client default (the rest is set explicitly);
    # unset, discord.py's default for it is true.
    if default_mentions is None or default_mentions.replied_user:
        mentions["replied_user"] = True
    return {
        "embeds": [_embed_dict(embed)] if embed is not None else [],
        "content": rendered.content,
        "components": _components(rendered.buttons, job_id),
        "tts": False,
        "allowed_mentions": mentions,
    }


def _embed_dict(spec: EmbedSpec) -> dict[str, Any]:
    """`to_discord_embed(spec).to_dict()`."""
    data: dict[str, Any] = {"flags": 0, "type": "rich"}
    if spec.colour is not None:
        data["color"] = spec.colour
    if spec.image_url:
        data["image"] = {"url": spec.image_url}
    if spec.thumbnail_url:
        data["thumbnail"] = {"url": spec.thumbnail_url}
    if spec.footer:
        data["footer"] = {"text": spec.footer}
    if spec.fields:
        data["fields"] = [
            {"inline": f.inline, "name": f.name, "value": f.value} for f in spec.fields
        ]
    if spec.description:
        data["description"] = spec.description
    if spec.url:
        data["url"] = spec.url
    if spec.title:
        data["title"] = spec.title
    return data


def _components(buttons: list[ButtonSpec], job_id: str) -> list[dict[str, Any]]:
    """`job_view(buttons, job_id).to_components()`: one action row per used row number,
    in row order, buttons in their given order within a row."""
    rows: dict[int, list[dict[str, Any]]] = {}
    for spec in buttons:
        row = rows.setdefault(spec.row, [])
        if not 0 <= spec.row < _MAX_ROWS or len(row) == _MAX_ROW_WIDTH:
            raise ValueError(f"button {spec.action!r} does not fit in row {spec.row}")
        button: dict[str, Any] = {
            "type": 2,
            "style": _STYLE_VALUES.get(spec.style, _DEFAULT_STYLE),
            "disabled": spec.disabled,
            "custom_id": spec.custom_id(job_id),
        }
        if spec.label:
            button["label"] = spec.label
        if spec.emoji is not None:
            button["emoji"] = _emoji_dict(spec.emoji)
        row.append(button)
    return [{"type": 1, "components": rows[n]} for n in sorted(rows)]


def _emoji_dict(emoji: str) -> dict[str, Any]:
    # discord.py's own parsing (cheap, and only finished grids carry buttons).
    return dict(discord.PartialEmoji.from_str(emoji).to_dict())


# --- content -------------------------------------------------------------------------


def _safe(text: str) -> str:
    """User or provider text made inert: no markdown surprises, no pings."""
    return escape_mentions(escape_markdown(text))


def _clip_escaped(text: str, limit: int) -> str:
    """Clip text that may hold backslash escapes without leaving a dangling `\\`."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    trailing = len(cut) - len(cut.rstrip("\\"))
    if trailing % 2:
        cut = cut[:-1]
    return cut + "…"


def _subject(job: Job) -> str:
    op = job.operation
    if op.prompt and op.prompt.strip():
        prompt = " ".join(op.prompt.split())  # one line, as Midjourney shows it
        if op.aspect_ratio and not _ASPECT.search(prompt):
            prompt += f" --ar {op.aspect_ratio}"  # the ratio it runs at, from option or /prefs
        return prompt
    if op.image_urls:
        return _images_subject(job)
    if op.kind is OperationKind.PROVIDER_ACTION:
        return describe_action(f"provider:{op.raw_action or 'action'}")[0]
    return describe_action(op.kind.value)[0]  # "Seed", "Describe", …


def _images_subject(job: Job) -> str:
    """A short header for a job of images alone: their file names, never the signed
    links (they are long and expire); a blend shows the ratio its dimension makes."""
    op = job.operation
    names = [_file_name(url) for url in op.image_urls]
    if op.kind is OperationKind.BLEND:
        ratio = op.aspect_ratio or _BLEND_RATIOS.get(op.dimension or BlendDimension.SQUARE)
        return f"Blend of {' + '.join(names)} --ar {ratio}"
    if op.kind is OperationKind.DESCRIBE:
        return f"Describe {names[0]}"
    return " ".join(names)


def _file_name(url: str) -> str:
    name = posixpath.basename(urlsplit(url).path) or "image"
    return clip(name, 40)


def _compose_content(subject: str, head_suffix: str, tail_lines: list[str]) -> str:
    rest = head_suffix + "".join("\n" + line for line in tail_lines)
    rest = clip(rest, MAX_CONTENT // 2)  # the prompt keeps at least half of the message
    budget = MAX_CONTENT - len(rest) - 4  # the two `**`
    return f"**{_clip_escaped(_safe(subject), budget)}**{rest}"


def _action_text(job: Job) -> str:
    """Midjourney's words for what produced this message ("Variations (Strong)")."""
    op = job.operation
    kind = op.kind
    if kind is OperationKind.UPSCALE:
        if op.index is not None and op.variant is None:
            return f"Image #{op.index}"
        return f"Upscaled ({_variant_title(op.variant)})" if op.variant else "Upscaled"
    if kind is OperationKind.VARIATION:
        return f"Variations ({_variant_title(op.variant)})" if op.variant else "Variations"
    if kind is OperationKind.INPAINT:
        return "Variations (Region)"
    if kind is OperationKind.OUTPAINT:
        return "Make Square" if op.zoom_ratio is not None and op.zoom_ratio == 1 else "Zoom Out"
    if kind is OperationKind.PAN and op.direction is not None:
        return f"Pan {op.direction.value.title()}"
    if kind in (OperationKind.REMIX, OperationKind.EDIT, OperationKind.ENHANCE):
        return kind.value.title()
    if kind is OperationKind.PROVIDER_ACTION:
        return describe_action(f"provider:{op.raw_action or 'action'}")[0]
    if kind.is_video:
        return video_action_text(job)  # bot/discord/video_delivery.py
    return ""  # imagine, reroll, blend, describe, seed: just the requester


def _variant_title(variant: str | None) -> str:
    if not variant:
        return ""
    return variant if variant[:1].isdigit() else variant.title()


def _head_suffix(job: Job, mention: str | None) -> str:
    """Everything on the first line after `**prompt**`."""
    action = _action_text(job)
    is_pick = action.startswith("Image #")
    who = ""
    if action and mention:
        who = f"{action} {mention}" if is_pick else f"{action} by {mention}"
    else:
        who = action or mention or ""
    parts = [f" - {who}" if who else ""]
    status = _status_text(job, with_mode=not is_pick)
    if status:
        parts.append(" " + status)
    return "".join(parts)


def _status_text(job: Job, *, with_mode: bool) -> str:
    mode = _MODE_TEXT.get(job.operation.mode) if job.operation.mode else None
    mode_part = f" ({mode})" if mode and with_mode else ""
    status = job.status
    if status is JobStatus.QUEUED and job.error is not None:
        return "(Retrying)"  # the submission was refused; the tail line says why
    if status in (JobStatus.QUEUED, JobStatus.SUBMITTED):
        if job.queue_position is not None:
            return f"Queued (position {job.queue_position})"
        return "(Waiting to start)"
    if status is JobStatus.RUNNING:
        if job.progress is not None:
            return f"({_clamp(job.progress)}%){mode_part}"
        return f"(Running){mode_part}"
    if status is JobStatus.COMPLETED:
        return mode_part.strip()
    return ""  # terminal failures say why on their own line


def _tail_lines(job: Job, now: float) -> list[str]:
    status = job.status
    if status.is_active:
        # A job without a creation time (0.0) would claim decades: show no time then.
        elapsed = f"{format_elapsed(now - job.created_at)} elapsed" if job.created_at > 0 else ""
        lines = []
        if job.error is not None and job.error.message:  # a refused submission, retried
            lines.append(f"⚠️ {_clip_escaped(_safe(job.error.message), REASON_LIMIT)}")
        if status is JobStatus.RUNNING and job.progress is not None:
            bar = progress_cells(job.progress)  # the percentage is on the first line
            lines.append(f"{bar} {elapsed}".rstrip())
        elif elapsed:
            lines.append(f"⌛ {elapsed}")
        return lines
    if status is JobStatus.COMPLETED:
        if job.seed:
            return [f"🌱 Seed: `{_clip_escaped(_safe(job.seed), 100)}`"]
        return []
    error = job.error
    reason = error.message.strip() if error and error.message else ""
    if status is JobStatus.CANCELLED:
        line = "🚫 Cancelled"
        if reason and reason.rstrip(".").lower() != "cancelled":
            line += f": {_clip_escaped(_safe(reason), REASON_LIMIT)}"
        lines = [line]
    else:
        timed_out = status is JobStatus.TIMED_OUT
        code = error.code if error else (ErrorCode.TIMED_OUT if timed_out else ErrorCode.INTERNAL)
        words = reason or _REASONS.get(code, _REASONS[ErrorCode.INTERNAL])
        head = "⏱️ Timed out" if timed_out else "❌ Failed"
        lines = [f"{head}: {_clip_escaped(_safe(words), REASON_LIMIT)}"]
    if error and error.provider_text and error.provider_text.strip() != reason:
        quoted = " ".join(error.provider_text.split())
        if error.code in _QUOTABLE and is_sentence(quoted):
            lines.append(f"> {_clip_escaped(_safe(quoted), PROVIDER_TEXT_LIMIT)}")
    return lines


def is_sentence(text: str) -> bool:
    """Whether a provider's text reads as words for a member: not JSON, not an exception
    or class name, not a bare code (those are details for the log)."""
    text = text.strip()
    if not text or text[0] in "{<" or _IDENTIFIER.match(text):
        return False
    if text[0] == "[" and text.endswith("]"):
        with contextlib.suppress(ValueError):
            json.loads(text)
            return False  # a JSON list
    return " " in text and any(c.isalpha() for c in text)


def _clamp(progress: int) -> int:
    return max(0, min(100, int(progress)))


def progress_bar(progress: int) -> str:
    """`▰▰▰▱▱▱▱▱▱▱ 37%`: filled cells round down, so 100 % shows only when it is."""
    return f"{progress_cells(progress)} {_clamp(progress)}%"


def progress_cells(progress: int) -> str:
    """`▰▰▰▱▱▱▱▱▱▱`: the bar alone, for a message whose first line gives the number."""
    filled = _clamp(progress) * BAR_CELLS // 100
    return "▰" * filled + "▱" * (BAR_CELLS - filled)


def format_elapsed(seconds: float) -> str:
    """Coarse elapsed time: `<10s`, `20s`, `1m 30s`, `12m`, `1h 5m` (see module doc)."""
    s = int(max(seconds, 0.0))
    if s < 10:
        return "<10s"
    if s < 60:
        return f"{s // 10 * 10}s"
    if s < 600:
        s = s // 30 * 30
        minutes, rest = divmod(s, 60)
        return f"{minutes}m {rest}s" if rest else f"{minutes}m"
    if s < 3600:
        return f"{s // 60}m"
    hours, rest = divmod(s // 60, 60)
    return f"{hours}h {rest}m" if rest else f"{hours}h"


def _mention_ids(mention: str | None) -> tuple[int, ...]:
    match = re.fullmatch(r"<@!?(\d+)>", mention or "")
    return (int(match[1]),) if match else ()


# --- embed, image, buttons -----------------------------------------------------------


def _describe_embed(job: Job) -> EmbedSpec:
    prompts = (job.prompts or [])[: len(_KEYCAPS)]
    per_prompt = min(DESCRIBE_PROMPT_LIMIT, (MAX_DESCRIPTION - 20 * len(prompts)) // len(prompts))
    blocks = [
        f"{_KEYCAPS[i]} {clip(escape_mentions(' '.join(p.split())), per_prompt)}"
        for i, p in enumerate(prompts)
    ]
    description = clip("\n\n".join(blocks), MAX_DESCRIPTION)
    # The source image as the embed's own image (Midjourney's), not a thumbnail.
    source = job.operation.image_urls[0] if job.operation.image_urls else None
    return EmbedSpec(description=description, image_url=source, colour=COLOUR_DONE)


def _result_filename(job: Job) -> str:
    ext = ".png"
    if job.result_url:
        suffix = posixpath.splitext(urlsplit(job.result_url).path)[1].lower()
        if suffix in _IMAGE_EXTENSIONS:
            ext = suffix
    return f"mj_{job.id}{ext}"


def is_square(job: Job) -> bool:
    """Whether the job's image is square: `aspect_ratio`, else `--ar` in the prompt."""
    ratio = job.operation.aspect_ratio
    if ratio is None:
        matches = _ASPECT.findall(job.operation.prompt or "")
        if not matches:
            return True  # Midjourney's default is 1:1
        width, height = matches[-1]  # the last flag wins, as in Midjourney
    else:
        parts = ratio.replace(" ", "").split(":")
        if len(parts) != 2:
            return True
        width, height = parts
    try:
        w, h = float(width), float(height)
    except ValueError:
        return True
    return w <= 0 or h <= 0 or w == h


def _buttons(
    job: Job,
    *,
    now: float,
    is_describe: bool,
    remix: bool,
    used_actions: frozenset[str],
    follow_up_window: float | None,
    extra_actions: list[str] | tuple[str, ...],
) -> list[ButtonSpec]:
    names = [a.name for a in job.actions]
    extra = list(extra_actions)
    stale = follow_up_window is not None and now - job.created_at > follow_up_window
    if is_describe:
        # Picking a suggested prompt is the bot's own imagine: it needs no provider
        # window, and it replaces the provider's raw describe1..4 buttons.
        # The provider's own "describe all" ([?] on PiAPI) gives way to the bot's 🎉
        # Imagine all, which starts one tracked job per prompt.
        names = [n for n in names if not _is_raw_describe(n)]
        count = min(len(job.prompts or []), len(_KEYCAPS))
        if job.operation.kind is OperationKind.SHORTEN:
            extra = [*(f"shorten_pick:{n}" for n in range(1, min(count, 5) + 1)), *extra]
        else:
            picks = [f"describe_pick:{n}" for n in range(1, count + 1)]
            extra = [*picks, "describe_reroll", "describe_all", *extra]
        stale = False
    return layout_buttons(
        names,
        used=used_actions,
        stale=stale,
        square=is_square(job),
        extra=extra,
        remix=remix,
        job_id=job.id,
    )
