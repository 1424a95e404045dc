"""Checking members' images: Discord's metadata first (no download when it fails), then bytes."""

from __future__ import annotations

from dataclasses import dataclass

import discord
import httpx
import pytest

from bot import media
from bot.discord.attachments import (
    MIB,
    AttachmentError,
    check_attachment,
    check_attachments,
    check_image_url,
    check_metadata,
    format_size,
)
from tests.fakes.images import grid_png

PNG = grid_png("unit", (32, 32))


@dataclass
class FakeAttachment:
    filename: str
    data: bytes
    content_type: str | None = "image/png"
    declared_size: int | None = None
    url: str = "https://cdn.discordapp.com/attachments/1/2/a.png?ex=1&is=2&hm=3"
    reads: int = 0
    fail: bool = False

    @property
    def size(self) -> int:
        return self.declared_size if self.declared_size is not None else len(self.data)

    async def read(self) -> bytes:
        self.reads += 1
        if self.fail:
            raise discord.HTTPException(_Response(), "gone")  # type: ignore[arg-type]
        return self.data


class _Response:
    status = 404
    reason = "Not Found"


async def test_a_real_png_passes_and_its_cdn_url_is_what_the_provider_gets() -> None:
    attachment = FakeAttachment("cat.png", PNG)
    checked = await check_attachment(attachment)
    assert checked.url == attachment.url
    assert (checked.info.format, checked.info.width, checked.info.height) == ("PNG", 32, 32)


async def test_oversized_file_is_refused_without_downloading() -> None:
    attachment = FakeAttachment("big.png", PNG, declared_size=50 * MIB)
    with pytest.raises(AttachmentError, match=r"^That image is 50 MB; the limit is 10 MB\.$"):
        await check_attachment(attachment)
    assert attachment.reads == 0


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [("notes.txt", "text/plain"), ("clip.mp4", "video/mp4"), ("notes.txt", None), ("x", None)],
)
def test_non_image_type_or_extension_is_refused_by_metadata(
    filename: str, content_type: str | None
) -> None:
    with pytest.raises(AttachmentError, match="not an image"):
        check_metadata(FakeAttachment(filename, b"hello", content_type))


def test_missing_content_type_falls_back_to_the_extension() -> None:
    check_metadata(FakeAttachment("photo.JPG", b"...", None))
    check_metadata(FakeAttachment("photo.webp", b"...", "image/webp; charset=binary"))


async def test_text_named_png_is_judged_by_its_bytes() -> None:
    attachment = FakeAttachment("notes.png", b"just some text\n" * 10, "image/png")
    with pytest.raises(AttachmentError, match="That file is not an image"):
        await check_attachment(attachment)
    assert attachment.reads == 1


async def test_damaged_image_is_refused() -> None:
    with pytest.raises(AttachmentError, match="damaged"):
        await check_attachment(FakeAttachment("broken.png", PNG[: len(PNG) // 2]))


async def test_download_failure_is_a_clear_error() -> None:
    with pytest.raises(AttachmentError, match="Could not download"):
        await check_attachment(FakeAttachment("cat.png", PNG, fail=True))


async def test_a_size_discord_understated_is_still_enforced() -> None:
    attachment = FakeAttachment("cat.png", PNG, declared_size=10)
    with pytest.raises(AttachmentError, match="limit is 100 bytes"):
        await check_attachment(attachment, max_bytes=100)


async def test_several_attachments_name_the_bad_one_and_download_nothing_on_metadata() -> None:
    good = FakeAttachment("a.png", PNG)
    big = FakeAttachment("b.png", PNG, declared_size=11 * MIB)
    with pytest.raises(AttachmentError, match=r"^image2: That image is 11 MB"):
        await check_attachments([("image1", good), ("image2", big)])
    assert good.reads == 0

    text = FakeAttachment("c.png", b"not an image")
    with pytest.raises(AttachmentError, match=r"^image2: That file is not an image"):
        await check_attachments([("image1", good), ("image2", text)])
    checked = await check_attachments([("image1", good), ("image2", FakeAttachment("d.png", PNG))])
    assert len(checked) == 2


def test_format_size() -> None:
    assert format_size(50 * MIB) == "50 MB"
    assert format_size(1536) == "2 KB"
    assert format_size(12) == "12 bytes"


# --- links ----------------------------------------------------------------------------


async def _public(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


async def _private(host: str, port: int) -> list[str]:
    return ["10.0.0.5"]


def _client(body: bytes, status: int = 200) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_link_to_a_real_image_passes_unchanged() -> None:
    async with _client(PNG) as client:
        checked = await check_image_url(
            " https://images.example/cat.png ",
            client=client,
            policy=media.FetchPolicy(),
            resolve=_public,
        )
    assert checked.url == "https://images.example/cat.png"
    assert checked.info.format == "PNG"


@pytest.mark.parametrize(
    ("url", "resolve", "body", "message"),
    [
        ("ftp://images.example/cat.png", _public, PNG, "http"),
        ("file:///etc/passwd", _public, PNG, "http"),
        ("http://images.example/cat.png", _private, PNG, "private"),
        ("http://images.example/page.html", _public, b"<html></html>", "not an image"),
    ],
)
async def test_bad_links_are_refused(
    url: str, resolve: media.Resolver, body: bytes, message: str
) -> None:
    async with _client(body) as client:
        with pytest.raises(AttachmentError, match=message):
            await check_image_url(url, client=client, policy=media.FetchPolicy(), resolve=resolve)


async def test_private_hosts_pass_only_when_the_policy_allows_them() -> None:
    async with _client(PNG) as client:
        checked = await check_image_url(
            "http://127.0.0.1:9/cat.png",
            client=client,
            policy=media.FetchPolicy(allow_private=True),
        )
    assert checked.url == "http://127.0.0.1:9/cat.png"


async def test_link_body_over_the_limit_is_refused() -> None:
    async with _client(PNG) as client:
        with pytest.raises(AttachmentError, match="larger than"):
            await check_image_url(
                "https://images.example/cat.png",
                client=client,
                policy=media.FetchPolicy(),
                resolve=_public,
                max_bytes=len(PNG) - 1,
            )
