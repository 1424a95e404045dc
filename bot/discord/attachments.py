"""Checking images that members hand to a command: Discord attachments and plain links.

An attachment is judged first by what Discord says about it (size, type), so an
oversized or non-image file is refused before a single byte is downloaded; then its
bytes are downloaded and must really be an image. The provider fetches images itself,
so what a command passes on is the attachment's CDN URL (or the link), never the bytes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import discord
import httpx

from bot import media

MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 10 * MIB
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif"})
NOT_AN_IMAGE = "That file is not an image (PNG, JPEG, WEBP or GIF expected)."


class AttachmentError(ValueError):
    """An unusable image; the message is fit to show the member who gave it."""


class AttachmentLike(Protocol):
    """What is used of a `discord.Attachment` (tests pass simpler objects)."""

    @property
    def filename(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def content_type(self) -> str | None: ...

    @property
    def url(self) -> str: ...

    async def read(self) -> bytes: ...


@dataclass(frozen=True)
class CheckedImage:
    url: str  # what the provider is given
    info: media.ImageInfo


def format_size(n: int) -> str:
    if n >= MIB:
        return f"{n / MIB:.3g} MB"
    return f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} bytes"


def check_metadata(attachment: AttachmentLike, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Refuse by Discord's own description of the file, before downloading anything."""
    if attachment.size > max_bytes:
        raise AttachmentError(
            f"That image is {format_size(attachment.size)}; the limit is {format_size(max_bytes)}."
        )
    # Discord omits content_type for some uploads; the extension decides then. Either can
    # lie, which is why the bytes are checked too.
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    if content_type:
        if content_type not in IMAGE_TYPES:
            raise AttachmentError(NOT_AN_IMAGE)
    elif posixpath.splitext(attachment.filename.lower())[1] not in IMAGE_EXTENSIONS:
        raise AttachmentError(NOT_AN_IMAGE)


async def check_attachment(
    attachment: AttachmentLike, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> CheckedImage:
    """Metadata first, then the downloaded bytes must be a whole, sane image."""
    check_metadata(attachment, max_bytes=max_bytes)
    try:
        data = await attachment.read()
    except (discord.HTTPException, httpx.HTTPError, OSError) as exc:
        raise AttachmentError("Could not download that file from Discord; try again.") from exc
    if len(data) > max_bytes:  # Discord's declared size was wrong
        raise AttachmentError(
            f"That image is {format_size(len(data))}; the limit is {format_size(max_bytes)}."
        )
    info = await _inspect(data)
    return CheckedImage(url=attachment.url, info=info)


def check_all_metadata(
    attachments: Sequence[tuple[str, AttachmentLike]], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> None:
    """`check_metadata` for named attachments; the name prefixes the error."""
    for name, attachment in attachments:
        try:
            check_metadata(attachment, max_bytes=max_bytes)
        except AttachmentError as exc:
            raise AttachmentError(f"{name}: {exc}") from None


async def check_attachments(
    attachments: Sequence[tuple[str, AttachmentLike]], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[CheckedImage]:
    """Several named attachments (e.g. image1..image5): all metadata, then all bytes.

    The name prefixes the error so the member knows which file to replace.
    """
    check_all_metadata(attachments, max_bytes=max_bytes)
    results = await asyncio.gather(
        *(check_attachment(a, max_bytes=max_bytes) for _, a in attachments),
        return_exceptions=True,
    )
    checked: list[CheckedImage] = []
    for (name, _), result in zip(attachments, results, strict=True):
        if isinstance(result, AttachmentError):
            raise AttachmentError(f"{name}: {result}") from None
        if isinstance(result, BaseException):
            raise result
        checked.append(result)
    return checked


async def check_image_url(
    url: str,
    *,
    client: httpx.AsyncClient,
    policy: media.FetchPolicy,
    max_bytes: int = DEFAULT_MAX_BYTES,
    resolve: media.Resolver | None = None,
) -> CheckedImage:
    """A link is held to the rules the bot uses for its own downloads (http(s) only, no
    private hosts unless the policy allows them), and must lead to a real image."""
    link = url.strip()
    if urlsplit(link).scheme.lower() not in ("http", "https"):
        raise AttachmentError("Only http:// and https:// image links are supported.")
    policy = dataclasses.replace(policy, max_bytes=min(policy.max_bytes, max_bytes))
    try:
        data = await media.fetch_image(link, client=client, policy=policy, resolve=resolve)
    except media.MediaError as exc:
        raise AttachmentError(exc.message) from None
    info = await _inspect(data)
    return CheckedImage(url=link, info=info)


async def _inspect(data: bytes) -> media.ImageInfo:
    try:
        # Decoding is CPU work: keep it off the event loop (heartbeats, other commands).
        return await asyncio.to_thread(media.inspect_image, data)
    except media.MediaError as exc:
        raise AttachmentError(exc.message) from None
