"""MediaFetcher, the bot's one media client, against a real aiohttp server on 127.0.0.1.

The server records the client's address and port of every request it serves, so a test
can count connections: downloads through one fetcher share its pool (one kept-alive
connection for sequential downloads), two fetchers do not. The guarded fetch itself
(redirects, limits, SSRF refusals, timeouts) is tested in test_media_download.py.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image
from pydantic import SecretStr

from bot.config import ProviderName, Settings
from bot.media import FetchPolicy, MediaError, TooLargeError, inspect_image
from bot.media_fetcher import MediaFetcher
from bot.providers.base import InvalidRequestError
from bot.providers.factory import image_loader

LOCAL = FetchPolicy(allow_private=True, timeout_s=5)
PUBLIC = FetchPolicy(timeout_s=5)
VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4000


def make_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 16), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


PNG = make_png()


@dataclass
class Origin:
    url: str = ""
    # (client address, client port) of each request served: one entry per connection.
    peers: list[tuple[str, int]] = field(default_factory=list)

    @property
    def connections(self) -> int:
        return len(set(self.peers))


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    holder = Origin()

    def record(request: web.Request) -> None:
        assert request.transport is not None
        host, port = request.transport.get_extra_info("peername")[:2]
        holder.peers.append((host, port))

    async def png(request: web.Request) -> web.Response:
        record(request)
        return web.Response(body=PNG, content_type="image/png")

    async def video(request: web.Request) -> web.Response:
        record(request)
        return web.Response(body=VIDEO, content_type="video/mp4")

    app = web.Application()
    app.router.add_get("/a.png", png)
    app.router.add_get("/b.png", png)
    app.router.add_get("/clip.mp4", video)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    holder.url = f"http://127.0.0.1:{server.port}"
    yield holder
    await server.close()


@pytest.fixture
async def fetcher() -> AsyncIterator[MediaFetcher]:
    fetcher = MediaFetcher(LOCAL)
    yield fetcher
    await fetcher.aclose()


async def test_downloads_through_one_fetcher_share_one_connection(
    origin: Origin, fetcher: MediaFetcher
) -> None:
    first = await fetcher.fetch_image(f"{origin.url}/a.png")
    second = await fetcher.fetch_image(f"{origin.url}/b.png")
    video = await fetcher.fetch_video(f"{origin.url}/clip.mp4", max_bytes=len(VIDEO))

    assert first == second == PNG and video == VIDEO
    assert inspect_image(first).width == 24
    assert len(origin.peers) == 3
    assert origin.connections == 1, origin.peers


async def test_two_fetchers_are_two_pools(origin: Origin, fetcher: MediaFetcher) -> None:
    # The counter above can tell pools apart: a second fetcher opens its own connection.
    other = MediaFetcher(LOCAL)
    try:
        await fetcher.fetch_image(f"{origin.url}/a.png")
        await other.fetch_image(f"{origin.url}/a.png")
    finally:
        await other.aclose()
    assert origin.connections == 2, origin.peers


async def test_its_policy_applies_unless_the_caller_names_another(origin: Origin) -> None:
    fetcher = MediaFetcher(PUBLIC)
    try:
        with pytest.raises(MediaError, match="private or local network address"):
            await fetcher.fetch_image(f"{origin.url}/a.png")
        assert origin.peers == []  # refused before connecting
        assert await fetcher.fetch_image(f"{origin.url}/a.png", policy=LOCAL) == PNG
    finally:
        await fetcher.aclose()
    assert fetcher.policy is PUBLIC


async def test_a_video_over_its_limit_is_too_large(origin: Origin, fetcher: MediaFetcher) -> None:
    with pytest.raises(TooLargeError):
        await fetcher.fetch_video(f"{origin.url}/clip.mp4", max_bytes=len(VIDEO) - 1)


async def test_an_image_served_as_a_video_is_refused(origin: Origin, fetcher: MediaFetcher) -> None:
    with pytest.raises(MediaError, match="not an MP4"):
        await fetcher.fetch_video(f"{origin.url}/a.png", max_bytes=10**6)


async def test_aclose_closes_its_client_and_may_be_repeated(
    origin: Origin, fetcher: MediaFetcher
) -> None:
    await fetcher.fetch_image(f"{origin.url}/a.png")
    assert not fetcher.closed and not fetcher.client.is_closed
    await fetcher.aclose()
    await fetcher.aclose()
    assert fetcher.closed and fetcher.client.is_closed
    with pytest.raises(RuntimeError):
        await fetcher.fetch_image(f"{origin.url}/a.png")


def _settings(*, allow_private: bool) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        discord_token=SecretStr("t"),
        mj_provider=ProviderName.PIAPI,
        piapi_api_key=SecretStr("k"),
        media_allow_private_hosts=allow_private,
    )


async def test_the_providers_image_loader_downloads_through_the_shared_fetcher(
    origin: Origin, fetcher: MediaFetcher
) -> None:
    await fetcher.fetch_image(f"{origin.url}/a.png")
    load = image_loader(_settings(allow_private=True), fetcher)
    assert await load(f"{origin.url}/b.png") == PNG
    assert origin.connections == 1, origin.peers


async def test_the_image_loader_keeps_members_links_to_public_hosts(origin: Origin) -> None:
    # The fetcher's own policy may allow the provider's private origin; a member's blend
    # link is held to MEDIA_ALLOW_PRIVATE_HOSTS alone, and the refusal reads as a sentence.
    origin_host = origin.url.removeprefix("http://").split(":")
    private_origin = ("http", origin_host[0], int(origin_host[1]))
    fetcher = MediaFetcher(FetchPolicy(private_origins=frozenset({private_origin})))
    try:
        assert await fetcher.fetch_image(f"{origin.url}/a.png") == PNG
        load = image_loader(_settings(allow_private=False), fetcher)
        with pytest.raises(InvalidRequestError, match="private or local network address"):
            await load(f"{origin.url}/b.png")
    finally:
        await fetcher.aclose()
    assert len(origin.peers) == 1
