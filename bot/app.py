"""The discord.py bot: `setup_hook` wires store → provider → engine and loads the cogs."""

from __future__ import annotations

import asyncio
import logging

import discord
from discord.ext import commands

from bot.config import Settings
from bot.engine import Engine, EngineSettings
from bot.logging_setup import setup_logging
from bot.providers.base import Provider
from bot.providers.factory import build_provider
from bot.store import open_store
from bot.store.base import Store

log = logging.getLogger(__name__)

COGS: tuple[str, ...] = ()


def engine_settings(settings: Settings) -> EngineSettings:
    return EngineSettings(
        max_concurrent_jobs=settings.mj_max_concurrent_jobs,
        stall_timeout_s=settings.job_stall_timeout_s,
        max_duration_s=settings.job_max_duration_s,
    )


class MidjourneyBot(commands.AutoShardedBot):
    store: Store
    provider: Provider
    engine: Engine

    def __init__(self, settings: Settings) -> None:
        intents = discord.Intents.default()
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            guild_ready_timeout=settings.discord_guild_ready_timeout,
            chunk_guilds_at_startup=False,
        )
        self.settings = settings

    async def setup_hook(self) -> None:
        self.store = await open_store(self.settings.database_url)
        self.provider = build_provider(self.settings)
        self.engine = Engine(
            self.provider, self.store.jobs, settings=engine_settings(self.settings)
        )
        await self.engine.start()
        for cog in COGS:
            await self.load_extension(cog)
        await self._sync_commands()

    async def _sync_commands(self) -> None:
        if self.settings.discord_guild_ids:
            for guild_id in self.settings.discord_guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("synced %d command(s) to guild %s", len(synced), guild_id)
        else:
            synced = await self.tree.sync()
            log.info("synced %d global command(s)", len(synced))

    async def close(self) -> None:
        if hasattr(self, "engine"):
            await self.engine.stop()
        if hasattr(self, "provider"):
            await self.provider.aclose()
        if hasattr(self, "store"):
            await self.store.close()
        await super().close()


def run(settings: Settings) -> int:
    from bot.discord.endpoints import point_discord_at

    setup_logging(settings.log_level, settings.secrets())
    point_discord_at(settings.discord_api_base, settings.discord_gateway_url)
    bot = MidjourneyBot(settings)
    assert settings.discord_token is not None
    try:
        asyncio.run(bot.start(settings.discord_token.get_secret_value()))
    except discord.LoginFailure:
        log.error("Discord refused DISCORD_TOKEN (login failed)")
        return 2
    except KeyboardInterrupt:
        pass
    return 0
