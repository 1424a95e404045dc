"""The bot's one client for downloading media: result images, videos, members' links.

Built once in `setup_hook` and handed to every part that downloads (publisher, follow-up
forms, /describe, providers that want bytes), so they share one connection pool and one
set of rules instead of each building its own client. Every download goes through
`bot.media`'s guarded fetch: public hosts only (unless the policy says otherwise), the
connection pinned to the checked address, each redirect hop checked again, size and time
bounded. Errors are `media.MediaError`, whose message is fit to show.
"""

from __future__ import annotations

import httpx

from bot import media
from bot.aiohttp_transport import AiohttpTransport

__all__ = ["MAX_CONNECTIONS", "MediaFetcher"]

# Open connections at most, across every host: downloads come from a few CDNs, and the
# engine's concurrency bounds how many results are fetched at once.
MAX_CONNECTIONS = 100


class MediaFetcher:
    """One httpx client (redirects never followed by httpx: `bot.media` checks each hop)
    over the project's aiohttp transport, and the default FetchPolicy for its downloads."""

    def __init__(
        self,
        policy: media.FetchPolicy,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolve: media.Resolver | None = None,
    ) -> None:
        """`transport` and `resolve` are for tests (a MockTransport, a fake DNS)."""
        self._policy = policy
        self._resolve = resolve
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            transport=transport or AiohttpTransport(limit=MAX_CONNECTIONS),
        )

    @property
    def policy(self) -> media.FetchPolicy:
        """The rules a download follows when its caller names none."""
        return self._policy

    @property
    def client(self) -> httpx.AsyncClient:
        """The shared client, for helpers written against `media.fetch_image`
        (`bot.discord.attachments.check_image_url`)."""
        return self._client

    @property
    def closed(self) -> bool:
        return self._client.is_closed

    async def fetch_image(self, url: str, *, policy: media.FetchPolicy | None = None) -> bytes:
        """The raw body of the image at `url` (validate it with `media.inspect_image`)."""
        return await media.fetch_image(
            url, client=self._client, policy=policy or self._policy, resolve=self._resolve
        )

    async def fetch_video(
        self, url: str, *, max_bytes: int, policy: media.FetchPolicy | None = None
    ) -> bytes:
        """An MP4 of at most `max_bytes` (`media.TooLargeError` when bigger)."""
        return await media.fetch_video(
            url,
            client=self._client,
            policy=policy or self._policy,
            max_bytes=max_bytes,
            resolve=self._resolve,
        )

    async def aclose(self) -> None:
        """Closes the client and its connections; idempotent."""
        await self._client.aclose()
