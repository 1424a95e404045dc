"""Reference images from Discord attachments: kept in a message the bot owns, re-signed
whenever a job needs them again (issue 19 item 2).

A member's attachment on /imagine has a signed CDN URL that expires (about a day). The
provider fetches references itself, so the URL in the prompt must work whenever the
prompt is sent: at /imagine, and again days later for a reroll or a variation that
resends it. Discord signs URLs afresh in every payload it sends (DISCORD_PROTOCOL.md
§11), so the bot keeps the images in a message of its own and refetches that message
when the prompt is needed again.

The reference message is found again from the URL alone: the files are named
`mjref-<message id>-<n>.<ext>` (the message is posted first, the files added to it),
so no table has to remember which message holds which image, and a restart or a job
chain of any depth (reroll of a variation of a reroll) finds it the same way.

    compose_prompt      the prompt with the image prompt first and --oref/--sref/--cref
    ReferenceKeeper     posts the reference message, and refreshes URLs in a prompt
    FreshReferences     a provider wrapper that refreshes a follow-up's prompt first
"""

from __future__ import annotations

import copy
import dataclasses
import io
import logging
import posixpath
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.domain import Job, Operation, ProviderSnapshot
from bot.providers.base import InvalidRequestError, Provider

log = logging.getLogger(__name__)

# An attachment URL of a reference message: channel, attachment, message, position.
REFERENCE_URL = re.compile(
    r"https?://[^\s/]+/attachments/(?P<channel>\d+)/(?P<attachment>\d+)/"
    r"mjref-(?P<message>\d+)-(?P<n>\d+)\.(?P<ext>[A-Za-z0-9]+)(?:\?[^\s]*)?"
)
_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".gif"}


@dataclass(frozen=True)
class References:
    """The references of one /imagine: an attachment URL per kind, and their weights.

    `image` is an image prompt (first in the prompt, weighted by --iw); `omni` an
    omni-reference (--oref, --ow, V7); `style` a style reference (--sref, --sw); `character`
    a character reference (--cref, --cw, V6)."""

    image: str | None = None
    omni: str | None = None
    style: str | None = None
    character: str | None = None
    image_weight: Decimal | None = None
    omni_weight: int | None = None
    style_weight: int | None = None
    character_weight: int | None = None

    def urls(self) -> list[str]:
        return [u for u in (self.image, self.omni, self.style, self.character) if u]

    def with_urls(self, fresh: dict[str, str]) -> References:
        """The same references with each URL replaced by `fresh[url]` where given."""
        return dataclasses.replace(
            self,
            **{
                kind: fresh.get(url, url)
                for kind in ("image", "omni", "style", "character")
                if (url := getattr(self, kind))
            },
        )


def _weight(value: Decimal | int) -> str:
    text = format(value, "f") if isinstance(value, Decimal) else str(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


def compose_prompt(text: str, refs: References) -> str:
    """The prompt Midjourney reads: the image prompt's URL first, then the text (with the
    member's own parameters), then the reference parameters and their weights. A weight
    without its reference is left out here; the cog refuses it before."""
    parts: list[str] = []
    if refs.image:
        parts.append(refs.image)
    parts.append(text.strip())
    if refs.image and refs.image_weight is not None:
        parts.append(f"--iw {_weight(refs.image_weight)}")
    if refs.omni:
        parts.append(f"--oref {refs.omni}")
        if refs.omni_weight is not None:
            parts.append(f"--ow {refs.omni_weight}")
    if refs.style:
        parts.append(f"--sref {refs.style}")
        if refs.style_weight is not None:
            parts.append(f"--sw {refs.style_weight}")
    if refs.character:
        parts.append(f"--cref {refs.character}")
        if refs.character_weight is not None:
            parts.append(f"--cw {refs.character_weight}")
    return " ".join(p for p in parts if p)


def reference_filename(message_id: int, n: int, original: str) -> str:
    ext = posixpath.splitext(original.lower())[1]
    return f"mjref-{message_id}-{n}{ext if ext in _EXTENSIONS else '.png'}"


# What the keeper needs of Discord, as plain callables (tests and the bot wire them):
# post(channel_id, content) -> message id; attach(channel_id, message_id, files) -> the
# message's attachment URLs in order; get(channel_id, message_id) -> attachment id -> URL.
PostMessage = Callable[[int, str], Awaitable[int]]
AttachFiles = Callable[[int, int, Sequence[tuple[str, bytes]]], Awaitable[list[str]]]
GetAttachments = Callable[[int, int], Awaitable[dict[str, str] | None]]


class ReferenceGone(InvalidRequestError):
    default_message = (
        "The reference image of this job was deleted from Discord, so it cannot be sent "
        "again; start a new /imagine with the image."
    )


class ReferenceKeeper:
    """Keeps references in a bot-owned message, and refreshes their URLs in a prompt."""

    def __init__(self, *, post: PostMessage, attach: AttachFiles, get: GetAttachments) -> None:
        self._post = post
        self._attach = attach
        self._get = get

    async def keep(
        self, channel_id: int, content: str, files: Sequence[tuple[str, bytes]]
    ) -> list[str]:
        """Post `files` in a message of the bot's own in `channel_id`; their URLs, in order."""
        message_id = await self._post(channel_id, content)
        named = [
            (reference_filename(message_id, n, name), data) for n, (name, data) in enumerate(files)
        ]
        return await self._attach(channel_id, message_id, named)

    async def refresh(self, text: str | None) -> str | None:
        """`text` with every reference URL in it re-signed by fetching its message."""
        if not text or "/attachments/" not in text:
            return text
        found = list(REFERENCE_URL.finditer(text))
        if not found:
            return text
        fresh: dict[tuple[str, str], dict[str, str] | None] = {}
        for match in found:
            key = (match["channel"], match["message"])
            if key not in fresh:
                fresh[key] = await self._get(int(key[0]), int(key[1]))

        def swap(match: re.Match[str]) -> str:
            urls = fresh.get((match["channel"], match["message"]))
            if urls is None or match["attachment"] not in urls:
                raise ReferenceGone()
            return urls[match["attachment"]]

        return REFERENCE_URL.sub(swap, text)


class FreshReferences:
    """A provider that re-signs the reference URLs of a prompt before it is sent.

    Wraps one account's provider (bot/app.py). A follow-up that resends its parent's
    prompt (a reroll or variation on PiAPI's schema, a remix) would otherwise send a
    link that expired with the day; only the copy sent is refreshed, the stored job
    keeps its prompt as the member wrote it."""

    def __init__(self, inner: Provider, keeper: ReferenceKeeper) -> None:
        self._inner = inner
        self._keeper = keeper

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def inner(self) -> Provider:
        return self._inner

    async def submit(
        self, operation: Operation, *, job: Job, parent: Job | None
    ) -> ProviderSnapshot:
        operation = await self._fresh_operation(operation)
        if parent is not None:
            fresh_parent = copy.copy(parent)
            fresh_parent.operation = await self._fresh_operation(parent.operation)
            parent = fresh_parent
        return await self._inner.submit(operation, job=job, parent=parent)

    async def _fresh_operation(self, operation: Operation) -> Operation:
        prompt = await self._keeper.refresh(operation.prompt)
        # An uploaded image (retexture, /edit of an upload) is kept the same way.
        urls = tuple([(await self._keeper.refresh(u)) or u for u in operation.image_urls])
        if prompt == operation.prompt and urls == operation.image_urls:
            return operation
        return dataclasses.replace(operation, prompt=prompt, image_urls=urls)


async def with_fresh_references(keeper: ReferenceKeeper, job: Job) -> Job:
    """A copy of `job` whose prompt and images carry re-signed reference links, for
    showing it again (/job show); the job itself as it is when they are gone."""
    try:
        prompt = await keeper.refresh(job.operation.prompt)
        urls = tuple([(await keeper.refresh(u)) or u for u in job.operation.image_urls])
    except ReferenceGone:
        return job
    if prompt == job.operation.prompt and urls == job.operation.image_urls:
        return job
    fresh = copy.copy(job)
    fresh.operation = dataclasses.replace(job.operation, prompt=prompt, image_urls=urls)
    return fresh


def discord_keeper(client: Any) -> ReferenceKeeper:
    """A keeper speaking to Discord through the discord.py client's own HTTP (its rate
    limits, its token). `client` is the bot; imported late so this module stays light."""
    import discord

    async def post(channel_id: int, content: str) -> int:
        with discord.http.handle_message_parameters(
            content=content, allowed_mentions=discord.AllowedMentions.none()
        ) as params:
            data = await client.http.send_message(channel_id, params=params)
        return int(data["id"])

    async def attach(
        channel_id: int, message_id: int, files: Sequence[tuple[str, bytes]]
    ) -> list[str]:
        uploads = [discord.File(io.BytesIO(data), filename=name) for name, data in files]
        # An edit's `attachments` is the whole new list: here, the files just named.
        with discord.http.handle_message_parameters(attachments=uploads) as params:
            data = await client.http.edit_message(channel_id, message_id, params=params)
        by_name = {a["filename"]: a["url"] for a in data.get("attachments", [])}
        return [by_name[name] for name, _ in files]

    async def get(channel_id: int, message_id: int) -> dict[str, str] | None:
        try:
            data = await client.http.get_message(channel_id, message_id)
        except discord.NotFound:
            return None
        return {str(a["id"]): str(a["url"]) for a in data.get("attachments", [])}

    return ReferenceKeeper(post=post, attach=attach, get=get)
