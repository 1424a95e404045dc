"""The bot's one media fetcher over its life: built by setup_hook, handed to the publisher,
closed by close(). The real MidjourneyBot runs in this process (so its objects can be
looked at) against the fake Discord and the fake PiAPI on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.app import MidjourneyBot
from bot.clock import FakeClock
from bot.config import ProviderName, Settings
from bot.discord.endpoints import current_endpoints, point_discord_at, restore_endpoints
from tests.fakes.discord import DEFAULT_GUILD_ID, FakeDiscord
from tests.fakes.piapi import FakePiAPI

BOT_TOKEN = "fake-bot-token-media-fetcher-0123"
PIAPI_KEY = "pk-media-fetcher-test-key-0123"


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    saved = current_endpoints()  # process-global: put back for whatever runs next
    async with FakeDiscord(bot_token=BOT_TOKEN) as fake:
        point_discord_at(fake.api_base, fake.gateway_url)
        try:
            yield fake
        finally:
            restore_endpoints(saved)


async def test_setup_hook_builds_one_fetcher_and_close_closes_it(
    discord_fake: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with FakePiAPI(api_key=PIAPI_KEY, clock=FakeClock(), image_size=64) as piapi:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            discord_token=SecretStr(BOT_TOKEN),
            discord_guild_ids=[DEFAULT_GUILD_ID],
            discord_guild_ready_timeout=0.1,
            mj_provider=ProviderName.PIAPI,
            piapi_api_key=SecretStr(PIAPI_KEY),
            piapi_base_url=piapi.base_url,
            media_allow_private_hosts=True,
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        )
        bot = MidjourneyBot(settings)
        task = asyncio.create_task(bot.start(BOT_TOKEN))
        try:
            await discord_fake.wait_for(
                lambda: (
                    discord_fake.find_command("imagine", DEFAULT_GUILD_ID) is not None
                    or task.done()
                ),
                timeout=30,
                what="the bot to sync its commands",
            )
            if task.done():
                task.result()  # surface the startup error
            await discord_fake.wait_ready()  # closing mid-connect would fail start()
            fetcher = bot.media_fetcher
            # The publisher downloads with the bot's fetcher, not a client of its own.
            assert bot.publisher._fetcher is fetcher
            assert not fetcher.closed
        finally:
            await bot.close()
            await asyncio.wait_for(task, 10)
        assert fetcher.closed
        assert fetcher.client.is_closed
