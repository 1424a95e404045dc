"""The discord.py bot: `setup_hook` wires store → provider → engine and loads the cogs."""

from __future__ import annotations

import asyncio
import logging
import pkgutil
import signal
from typing import Any

import aiohttp
import discord
from discord.ext import commands

from bot import redaction
from bot.clock import SystemClock
from bot.config import Settings, parse_listen
from bot.discord.global_share import GlobalShare
from bot.discord.identify import IdentifySpacer
from bot.discord.policy import Policy
from bot.discord.publisher import Publisher
from bot.discord.rate_limits import BucketLedger, ratelimit_trace
from bot.discord.spoilers import spoilered
from bot.domain import Job
from bot.engine import Engine, EngineSettings
from bot.engine.forwarding import Forwarder, start_forwarding
from bot.engine.leases import leases_of
from bot.interactions.buttons import JobButton
from bot.interactions.errors import on_app_command_error, within_declared_ranges
from bot.interactions.follow_ups import FollowUps
from bot.interactions.starter import JobStarter, bot_actions
from bot.logging_setup import setup_logging
from bot.media import FetchPolicy, origin_of
from bot.media_fetcher import MediaFetcher
from bot.metrics import Metrics
from bot.providers.base import Provider
from bot.providers.factory import build_pool
from bot.references import FreshReferences, discord_keeper
from bot.store import open_store
from bot.store.base import Store
from bot.store.pg_identify import identify_locks_of
from bot.store.pg_processes import process_registry_of
from bot.web import GatewayWatch, WebhookAuth, WebServer, register_engine_gauges, servers_for

log = logging.getLogger(__name__)


def cog_modules() -> list[str]:
    """Every module in the `cogs` package is an extension: adding a file adds its commands."""
    import cogs

    return sorted(f"cogs.{m.name}" for m in pkgutil.iter_modules(cogs.__path__))


def engine_settings(settings: Settings) -> EngineSettings:
    poll = settings.mj_poll_interval_s
    return EngineSettings(
        max_concurrent_jobs=settings.mj_max_concurrent_jobs,
        poll_initial_s=poll,
        poll_min_s=min(1.0, poll),
        poll_max_s=max(settings.mj_poll_max_interval_s, poll),
        stall_timeout_s=settings.job_stall_timeout_s,
        max_duration_s=settings.job_max_duration_s,
        submit_retry_window_s=settings.mj_submit_retry_window_s,
        push_mode=settings.push_mode,
        push_safety_poll_s=settings.push_safety_poll_s,
    )


def _shard_options(settings: Settings) -> dict[str, Any]:
    """This process's slice of the gateway (issue 17); every shard when unset."""
    options: dict[str, Any] = {}
    if settings.discord_shard_count is not None:
        options["shard_count"] = settings.discord_shard_count
    if settings.discord_shard_ids:
        options["shard_ids"] = settings.discord_shard_ids
    return options


class MidjourneyBot(commands.AutoShardedBot):
    store: Store
    provider: Provider
    engine: Engine
    # The one client for downloading media (bot/media_fetcher.py); closed in close().
    media_fetcher: MediaFetcher
    publisher: Publisher
    follow_ups: FollowUps
    policy: Policy
    starter: JobStarter
    # PostgreSQL: IDENTIFYs take turns across processes (bot/discord/identify.py).
    identify_spacer: IdentifySpacer | None = None
    # PostgreSQL: webhooks and cancels for jobs another process runs (issue 17).
    forwarder: Forwarder | None = None
    # PostgreSQL: Discord's global limit paced at this process's share (issue 17).
    global_share: GlobalShare | None = None

    def __init__(self, settings: Settings) -> None:
        intents = discord.Intents.default()
        # The bot reads no messages: without these, every edit it makes does not come back
        # to it as a MESSAGE_UPDATE (2% of its CPU under load, bench/load.py).
        intents.guild_messages = False
        intents.dm_messages = False
        # Every request discord.py makes is paced by the buckets Discord's answers name
        # (bot/discord/rate_limits.py); the publisher's writes take turns within them.
        self.rate_ledger = BucketLedger(
            on_rate_limited=lambda scope: self.metrics.discord_rate_limited.inc(bucket_scope=scope)
        )
        super().__init__(
            http_trace=ratelimit_trace(self.rate_ledger),
            command_prefix=commands.when_mentioned,
            intents=intents,
            guild_ready_timeout=settings.discord_guild_ready_timeout,
            chunk_guilds_at_startup=False,
            **_shard_options(settings),
        )
        self.settings = settings
        # Members' text is scrubbed of every configured secret, as the logs are (embedded
        # bots too, which never call setup_logging), and of each interaction's token.
        redaction.SECRETS.add(*settings.secrets())
        self.add_listener(self._hide_interaction_token, "on_interaction")
        # The one metrics registry of this process; the parts that count get it passed.
        self.metrics = Metrics()
        self.gateway_watch = GatewayWatch(SystemClock())
        self.web_servers: list[WebServer] = []
        # Where each interaction writes to, before any cog or click writes through it.
        self.add_listener(self._register_interaction, "on_interaction")
        # One answer for every command's failure (bot/interactions/errors.py).
        self.tree.on_error = on_app_command_error  # type: ignore[method-assign]
        # Discord checks options' ranges in its clients only; the bot checks them for every
        # command, once, before it runs.
        self.tree.interaction_check = within_declared_ranges  # type: ignore[method-assign]

    async def _register_interaction(self, interaction: discord.Interaction[Any]) -> None:
        self.rate_ledger.register_interaction(
            interaction.token, interaction.channel_id, interaction.guild_id
        )

    async def setup_hook(self) -> None:
        self.store = await open_store(self.settings.database_url)
        self._wire_identify()
        clock = SystemClock()
        fetch_policy = self._fetch_policy()
        # Built once: the publisher, follow-up forms, /describe and providers share it.
        self.media_fetcher = MediaFetcher(fetch_policy)
        self._wire_engine(clock)
        window = self.provider.capabilities.follow_up_window
        self._wire_publisher(clock, window)
        self._watch_leases()
        self._wire_follow_ups(clock, window)
        await self._apply_account_concurrency()
        # The publisher subscribed before the engine resumes, so no change is missed.
        await self.engine.start()
        await self._start_global_share()
        push = self._push_provider() if self.settings.push_mode else None
        self.forwarder = await start_forwarding(self.engine, self.store, push)
        await self._start_web()
        # Replies left "thinking" by a kill after /imagine stored its job get it back first.
        recovered = await self.starter.recover_deferred_replies(self)
        resumed = await self.publisher.resume()
        log.info("resumed %d job message(s), recovered %d reply(ies)", resumed, recovered)
        for cog in cog_modules():
            await self.load_extension(cog)
        await self._sync_commands()

    def _wire_identify(self) -> None:
        """Processes sharing PostgreSQL take turns to IDENTIFY, per max_concurrency bucket."""
        locks = identify_locks_of(self.settings.database_url)
        self.identify_spacer = (
            IdentifySpacer(locks, self._max_concurrency) if locks is not None else None
        )

    async def _max_concurrency(self) -> int:
        return (await self.fetch_session_start_limits()).max_concurrency

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # On SQLite (one process) discord.py's own spacing between its shards stays.
        if self.identify_spacer is None:
            await super().before_identify_hook(shard_id, initial=initial)
        else:
            await self.identify_spacer.before_identify(shard_id)

    def _wire_engine(self, clock: SystemClock) -> None:
        """The account pool, its reference re-signing, and the engine over the store."""
        # MJ_ACCOUNTS_FILE's accounts (or the one of MJ_PROVIDER), pooled; requests to it
        # go to each job's own account.
        self.provider = build_pool(self.settings, self.media_fetcher)
        # Reference images live in messages of the bot's own; a prompt resent days later
        # gets their URLs re-signed first (bot/references.py).
        self.references = discord_keeper(self)
        for account in self.provider.accounts:
            account.provider = FreshReferences(account.provider, self.references)
        self.engine = Engine(
            self.provider,
            self.store.jobs,
            clock=clock,
            settings=engine_settings(self.settings),
            metrics=self.metrics,
            leases=leases_of(self.store),  # PostgreSQL: jobs owned by leases (issue 17)
        )

    def _fetch_policy(self) -> FetchPolicy:
        # The provider's own host may be on the owner's network (a self-hosted proxy).
        return FetchPolicy(
            allow_private=self.settings.media_allow_private_hosts,
            private_origins=frozenset(
                o for o in map(origin_of, self.settings.provider_base_urls()) if o is not None
            ),
        )

    def _wire_publisher(self, clock: SystemClock, window: float | None) -> None:
        """The publisher that shows jobs in Discord, and its queued-writes gauge."""
        self.publisher = Publisher(
            client=self,
            engine=self.engine,
            deliveries=self.store.deliveries,
            clock=clock,
            fetcher=self.media_fetcher,
            edit_interval=self.settings.discord_edit_interval_s,
            follow_up_window=window,
            extra_actions=lambda job: bot_actions(self.provider.capabilities, job),
            spoiler=self._spoiler,
            metrics=self.metrics,
            ledger=self.rate_ledger,
        )
        self.metrics.discord_writes_waiting.source = lambda: {
            (("bucket", bucket),): float(n)
            for bucket, n in self.publisher.writes_waiting_by_bucket().items()
        }

    def _wire_follow_ups(self, clock: SystemClock, window: float | None) -> None:
        """The policy, the one JobStarter, the follow-up buttons and forms (by custom id)."""
        capabilities = self.provider.capabilities
        prompt_limit = min(capabilities.max_prompt_length, self.settings.mj_max_prompt_length)
        self.policy = Policy(self.store, clock, max_prompt_length=prompt_limit)
        # The one way a command or a click starts a job (bot/interactions/starter.py).
        self.starter = JobStarter(
            engine=self.engine,
            publisher=self.publisher,
            policy=self.policy,
            deliveries=self.store.deliveries,
            capabilities=capabilities,
            max_prompt_length=prompt_limit,
        )
        self.follow_ups = FollowUps(
            starter=self.starter,
            prefs=self.store.prefs,
            follow_up_window=window,
            fetcher=self.media_fetcher,
        )
        # Form submits are routed by custom id, so forms opened before a restart still work.
        self.add_listener(self.follow_ups.on_modal_submit, "on_interaction")
        self.add_dynamic_items(JobButton)

    async def _start_global_share(self) -> None:
        """Processes sharing PostgreSQL pace Discord's global limit (per bot) at their share."""
        keeper = self.engine.keeper
        if keeper is None or not self.settings.discord_global_share:
            return
        registry = process_registry_of(self.store, live_s=keeper.settings.lease_s)
        if registry is not None:
            share = GlobalShare(self.rate_ledger, registry, interval_s=keeper.settings.renew_s)
            await share.start()
            self.global_share = share

    def _watch_leases(self) -> None:
        """Jobs taken over from another process get their messages back; an ended job
        keeps its lease while its final is due; a lost one is no longer shown from here."""
        resuming = asyncio.Lock()
        tasks: set[asyncio.Task[None]] = set()

        async def resume_adopted() -> None:
            async with resuming:  # one resume at a time: each job gets one delivery loop
                count = await self.publisher.resume()
            log.info("showing %d job(s) taken over from another process", count)

        def adopted(jobs: list[Job]) -> None:
            task = asyncio.create_task(resume_adopted(), name="resume-adopted")
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        self.engine.on_adopted(adopted)
        self.engine.on_lost(self.publisher.drop)
        self.engine.keep_lease_while(lambda job_id: self.publisher.edits_sent(job_id) is not None)

    async def _start_web(self) -> None:
        """Push mode's webhook receiver and /metrics + /healthz, each when configured."""
        settings = self.settings
        register_engine_gauges(self.metrics, self.engine)
        auth: WebhookAuth | None = None
        if settings.push_mode and settings.webhook_secret is not None:
            name = self._push_provider().name
            auth = WebhookAuth(
                provider=name,
                token=settings.webhook_token(name),
                # Only PiAPI echoes a secret header; the others rely on the path token.
                header_secret=settings.webhook_secret.get_secret_value()
                if name == "piapi"
                else None,
            )
        for sig_name in ("connect", "ready", "resumed"):
            self.add_listener(self._gateway_up, f"on_{sig_name}")
        self.add_listener(self._gateway_down, "on_disconnect")
        self.web_servers = servers_for(
            webhook_listen=settings.webhook_listen,
            metrics_listen=settings.metrics_listen,
            engine=self.engine,
            metrics=self.metrics,
            provider=self._push_provider(),
            auth=auth,
            gateway=self.gateway_watch,
            parse_listen=parse_listen,
            shard_ids=settings.discord_shard_ids,
            shard_count=settings.discord_shard_count,
            forward=self.forwarder.push if self.forwarder is not None else None,
        )
        for server in self.web_servers:
            await server.start()
        if settings.push_mode:
            log.info(
                "push mode: %s posts job changes to %s/webhook/%s/…; safety poll every %.0fs",
                self.provider.name,
                settings.webhook_public_url,
                self.provider.name,
                settings.push_safety_poll_s,
            )

    def _push_provider(self) -> Provider:
        """The backend whose webhooks the receiver reads: the first account's. Accounts of
        another kind in the same pool are followed by polling."""
        return self.engine.pool.accounts[0].provider

    async def cancel_job(self, job_id: str) -> Job:
        """Cancel a job wherever it runs: here, or (PostgreSQL) by its owner, asked."""
        if self.forwarder is not None:
            return await self.forwarder.cancel(job_id)
        return await self.engine.cancel(job_id)

    async def _gateway_up(self) -> None:
        self.gateway_watch.up()

    async def _gateway_down(self) -> None:
        self.gateway_watch.down()

    async def _spoiler(self, job: Job) -> bool:
        """The server's spoiler rule (bot/discord/spoilers.py) for the job's own channel."""
        channel = self.get_channel(int(job.channel_id)) if job.channel_id else None
        return await spoilered(self.policy, job, channel)

    async def _hide_interaction_token(self, interaction: discord.Interaction[Any]) -> None:
        # A token lets its holder edit the bot's replies for 15 minutes: never shown.
        redaction.SECRETS.add_expiring(interaction.token)

    async def _apply_account_concurrency(self) -> None:
        """Run no more jobs at once at each account than it allows, where it says (PiAPI
        reports it); the configured limit stays the upper bound."""
        await self.engine.refresh_accounts(timeout_s=5)

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info(
            "logged in as %s (%s); invite: %s", self.user, self.user.id, invite_url(self.user.id)
        )

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
        # Stop taking interactions first, then the parts behind them, the store last:
        # a click handled during shutdown must not find the store already closed.
        await super().close()
        if self.identify_spacer is not None:
            await self.identify_spacer.close()
        for server in self.web_servers:
            await server.stop()
        self.web_servers = []
        if self.forwarder is not None:
            await self.forwarder.stop()
        if hasattr(self, "engine"):
            await self.engine.stop()
        if hasattr(self, "publisher"):
            await self.publisher.close()
        if self.global_share is not None:
            await self.global_share.stop()  # nothing writes from here: the others' share grows
        if hasattr(self, "engine"):
            await self.engine.release_leases()  # nothing here writes any more: hand over
        if hasattr(self, "provider"):
            await self.provider.aclose()
        if hasattr(self, "media_fetcher"):
            await self.media_fetcher.aclose()  # after every part that downloads with it
        if hasattr(self, "store"):
            await self.store.close()


# What the bot needs in a channel: see it, post, embed, attach images, read history for
# edits of its own messages, and use external emoji in buttons.
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    use_external_emojis=True,
    # Results are posted as channel messages, and a thread is a channel (issue 15 item 10).
    send_messages_in_threads=True,
)


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(
        application_id,
        permissions=INVITE_PERMISSIONS,
        scopes=("bot", "applications.commands"),
    )


def run(settings: Settings) -> int:
    from bot.discord.endpoints import point_discord_at

    setup_logging(settings.log_level, settings.secrets())
    point_discord_at(settings.discord_api_base, settings.discord_gateway_url)
    try:
        asyncio.run(_serve(settings))
    except discord.LoginFailure:
        log.error("Discord refused DISCORD_TOKEN (login failed)")
        return 2
    except (aiohttp.ClientConnectionError, OSError) as exc:
        # One line, not discord.py's traceback: the network or DISCORD_API_BASE is wrong.
        host = settings.discord_api_base.split("//")[-1].split("/")[0]
        log.error(
            "Discord is unreachable at %s (%s); check the network or DISCORD_API_BASE",
            host,
            type(exc).__name__,
        )
        return 2
    except KeyboardInterrupt:
        pass
    return 0


async def _serve(settings: Settings) -> None:
    assert settings.discord_token is not None
    bot = MidjourneyBot(settings)
    loop = asyncio.get_running_loop()
    closing: list[asyncio.Future[None]] = []

    def request_close(sig: signal.Signals) -> None:
        if not closing:
            log.info("%s received: closing; jobs in flight resume at the next start", sig.name)
            closing.append(asyncio.ensure_future(bot.close()))

    # A redeploy sends SIGTERM: close cleanly (jobs stay in the store and resume on start).
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_close, sig)
    async with bot:
        await bot.start(settings.discord_token.get_secret_value())
    # bot.start returns as soon as the Discord side is closed; the rest of close() (web
    # server, engine, publisher, store) must finish before asyncio.run cancels it.
    if closing:
        await closing[0]
