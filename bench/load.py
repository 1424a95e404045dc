"""Load benchmark: the real bot under hundreds to thousands of jobs, against the fakes.

    .venv/bin/python -m bench.load                  # the issue's sizes (about 7-9 minutes)
    .venv/bin/python -m bench.load --quick          # 200 jobs, shorter jobs: a smoke run
    .venv/bin/python -m bench.load --jobs 500 --mode poll --skip-naive --seed 3
    .venv/bin/python -m bench.load --scenario busy-channels   # issue 12: 300 jobs, 10 channels
    .venv/bin/python -m bench.load --scenario many-servers    # issue 12: 2,000 jobs, 100 guilds
    .venv/bin/python -m bench.load --jobs 200 --channels 20 --guilds 5 --limits ad
    .venv/bin/python -m bench.load --processes 2 --mode poll --burst 0 --skip-naive
        # issue 17: also two processes on one PostgreSQL (a throwaway cluster, or
        # --database postgresql://…), shards 0 and 1 of 2, beside the one on SQLite

What runs: this process serves the fake Discord (with Discord's rate limits, `--limits`,
(a)+(b)+(d) by default, see bench/discord_limits.py) and the fake PiAPI on 127.0.0.1, on
the real clock, and drives
them; the bot is `python -m bot` in its own process with its shipped defaults (poll and
edit intervals, log level) except the settings a load needs (MJ_MAX_CONCURRENT_JOBS).
Every job's life at the fake provider is drawn per job from the profile (seeded), so the
bot and the naive reference face the same load.

- Phase A: a burst of `--burst` /imagine commands in 2 s to a fresh bot; acknowledgement
  latency = arrival of the bot's interaction callback at the fake - dispatch of the
  interaction by the fake.
- Phase B: `--jobs` /imagine commands spread over `--ramp` seconds (shorter than the
  shortest job, so that all of them are in flight at once), in poll mode and in push mode
  (when the build has it), then the same jobs through bench/naive_client.py in its own
  process. The figures come from the fakes' records and from /proc/<pid> of the process
  under test; bench/load_analysis.py says exactly how each is counted.

Jobs go round-robin over `--channels` channels in `--guilds` guilds (channel k in guild
k % guilds), for the bot and the naive client alike; every guild has the same members and
the bot. With one guild the bot syncs its commands to it (DISCORD_GUILD_IDS), with more it
syncs them globally, which the fake offers in every guild. `--scenario` sets the load of
one of issue 12's two benchmark runs and prints the verdicts against its targets.

With `--processes N` (issue 17) each mode runs twice: one process on SQLite, then N
processes on one PostgreSQL database as shards 0..N-1 of N (the guilds spread over the
shards, so the commands arrive at every process; any process may run any job). Their
columns add CPU over all N processes, each one's peak RSS, the jobs each held at once, and
the statements PostgreSQL itself counted (bench/pg.py says how).

The load generator and both fakes share this 2-core machine with the process under test;
their own CPU use is printed beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.metadata
import inspect
import os
import platform
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.discord_limits import (
    DEFAULT_LIMITS,
    install_discord_limits,
    limits_text,
    models_for,
)
from bench.load_analysis import RunFigures, analyse, key_in, percentile
from bench.pg import HeldJobs, PgCounter, PgServer, StatementCount, pg_server
from bench.procstat import CpuWindow
from bench.scenarios import SCENARIOS, RunView, final_floor, verdicts
from bench.workload import DEFAULT_CHANNELS, PROFILES, JobSpec, ProfileRange, make_jobs
from tests.fakes.discord import DEFAULT_GUILD_ID, FakeDiscord, InteractionRecord
from tests.fakes.discord.limits import DiscordLimits, LimitModel
from tests.fakes.discord.models import FakeChannel, FakeGuild, FakeUser, default_guild
from tests.fakes.piapi import FakePiAPI
from tests.fakes.push import DEFAULT_TICK_S as WEBHOOK_TICK_S

ROOT = Path(__file__).resolve().parents[1]
BOT_TOKEN = "bench-bot-token-0123456789"
PIAPI_KEY = "pk-bench-secret-key"
DEFAULT_EDIT_INTERVAL_S = 1.5  # the bot's default, used when its settings cannot be read
WEBHOOK_SENDER_CONCURRENCY = 64  # posts in flight at once from the fake provider

# Targets from issue 6.
TARGET_ACK_P99_S = 0.100
TARGET_CORES = 0.3
TARGET_RSS_MB = 300.0
TARGET_POLL_REQ_PER_STATE = 1.5
TARGET_PUSH_REQ_PER_JOB = 1.1
TARGET_EDITS_PER_STATE = 1.0


@dataclass
class BenchConfig:
    jobs: int = 2000
    burst: int = 200
    burst_window_s: float = 2.0
    # 2000 jobs over 30 s (67 commands/s, a third below the burst's rate) still puts about
    # 95% of them in flight at once, as the shortest job lasts 22 s.
    ramp_s: float = 30.0
    modes: tuple[str, ...] = ("poll", "push")
    naive: bool = True
    seed: int = 1
    profile: ProfileRange = PROFILES["realistic"]
    image_size: int = 512
    naive_poll_s: float = 2.0
    log_level: str = "INFO"
    # Extra settings for the bot (the smoke test shortens its intervals with these).
    bot_env: dict[str, str] = field(default_factory=dict)
    grace_s: float = 90.0  # after the longest job should have ended, before calling it lost
    keep_logs: bool = False
    # Run the bot under cProfile and leave its profile here (poll/push runs), for evidence.
    cprofile_dir: Path | None = None
    channels: int = DEFAULT_CHANNELS  # jobs round-robin over this many channels ...
    guilds: int = 1  # ... in this many guilds
    limits: str = DEFAULT_LIMITS  # the fake Discord's rate-limit models, by letter
    scenario: str | None = None  # one of SCENARIOS: its targets are judged at the end
    # Issue 17: > 1 adds, for each mode, a run of this many processes on one PostgreSQL.
    processes: int = 1
    database_url: str | None = None  # its server; None: a throwaway cluster


@dataclass
class RunResult:
    name: str  # "poll", "push" or "naive"
    figures: RunFigures | None = None
    cpu: CpuWindow | None = None
    harness_cpu: CpuWindow | None = None
    dispatch_s: float = 0.0
    wall_s: float = 0.0
    note: str = ""
    edit_interval_s: float = DEFAULT_EDIT_INTERVAL_S
    # Issue 17's multi-process runs: the other processes' windows (`cpu` is the first's),
    # the commands each received, the jobs each held at once, PostgreSQL's own count.
    more_cpu: list[CpuWindow] = field(default_factory=list)
    commands: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    statements: StatementCount | None = None

    @property
    def available(self) -> bool:
        return self.figures is not None

    @property
    def kind(self) -> str:
        """The watch mode ("poll", "push") or "naive", whatever the store: "poll-pg-x2"."""
        return self.name.split("-")[0]

    @property
    def windows(self) -> list[CpuWindow]:
        return [w for w in (self.cpu, *self.more_cpu) if w is not None]


@dataclass
class Report:
    config: BenchConfig
    header: list[str]
    ack: RunFigures | None
    runs: list[RunResult]
    text: str = ""

    @property
    def jobs_lost(self) -> int:
        """Jobs our bot lost (the naive reference loses many by design; not counted)."""
        return sum(r.figures.lost for r in self.runs if r.figures is not None and r.kind in OURS)


# --- what this build of the bot offers ---------------------------------------------------


def _settings_field(name: str) -> Any:
    try:
        from bot.config import Settings
    except Exception:  # another engineer may be half-way through an edit
        return None
    return Settings.model_fields.get(name)


def concurrency_cap() -> int | None:
    """The largest MJ_MAX_CONCURRENT_JOBS the bot's settings accept, if bounded."""
    found = _settings_field("mj_max_concurrent_jobs")
    for rule in getattr(found, "metadata", []) or []:
        if getattr(rule, "le", None) is not None:
            return int(rule.le)
    return None


def bot_edit_interval(config: BenchConfig) -> float:
    if "DISCORD_EDIT_INTERVAL_S" in config.bot_env:
        return float(config.bot_env["DISCORD_EDIT_INTERVAL_S"])
    found = _settings_field("discord_edit_interval_s")
    default = getattr(found, "default", None)
    return float(default) if isinstance(default, (int, float)) else DEFAULT_EDIT_INTERVAL_S


def push_support() -> str | None:
    """None when push mode can run; else why not, as the table says it."""
    if _settings_field("webhook_listen") is None:
        return "push mode: not available in this build (no WEBHOOK_LISTEN in bot/config.py)"
    import tests.fakes.piapi as fake_module

    if "x-webhook-secret" not in inspect.getsource(fake_module).lower():
        return "push mode: the fake PiAPI has no webhook delivery in this build"
    return None


def push_env() -> dict[str, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return {
        "WEBHOOK_LISTEN": f"127.0.0.1:{port}",
        "WEBHOOK_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_SECRET": secrets.token_urlsafe(24),
    }


# --- the world: fakes and the bot process ------------------------------------------------

# Guild g is DEFAULT_GUILD_ID + g * 2**22: consecutive guilds land on consecutive shards
# ((guild_id >> 22) % shards), so a --processes run spreads its commands over them all.
GUILD_ID_STEP = 1 << 22
GUILD_ID_SPAN = 1000  # a guild's own ids (channels, roles) stay below +1000
EXTRA_CHANNEL_OFFSET = 500  # default_guild uses +101..+103 for channels, +200.. for roles


def build_guilds(
    users: dict[str, FakeUser], bot_user: FakeUser, channels: int, guilds: int
) -> tuple[list[FakeGuild], list[tuple[FakeGuild, FakeChannel]]]:
    """`guilds` guilds holding `channels` text channels in all (channel k in guild k % guilds),
    each with the default members and the bot; and the channels in load order."""
    if not 1 <= guilds <= channels:
        raise ValueError(f"need 1 <= guilds <= channels, got {guilds} guilds, {channels} channels")
    built = []
    for g in range(guilds):
        guild_id = DEFAULT_GUILD_ID + g * GUILD_ID_STEP
        name = "Test Guild" if g == 0 else f"Bench Guild {g}"
        guild = default_guild(users, bot_user, guild_id=guild_id, name=name)
        wanted = len(range(g, channels, guilds))
        if wanted >= GUILD_ID_SPAN - EXTRA_CHANNEL_OFFSET:
            raise ValueError(f"at most {GUILD_ID_SPAN - EXTRA_CHANNEL_OFFSET - 1} channels a guild")
        texts = [c for c in guild.channels if not c.nsfw]  # general, art
        for i in range(len(texts), wanted):
            extra = FakeChannel(guild_id + EXTRA_CHANNEL_OFFSET + i, f"bench-{i}", position=i + 1)
            extra.guild_id = guild_id
            guild.channels.append(extra)
            texts.append(extra)
        built.append((guild, texts[:wanted]))
    order = [(built[k % guilds][0], built[k % guilds][1][k // guilds]) for k in range(channels)]
    return [guild for guild, _ in built], order


@dataclass
class World:
    discord: FakeDiscord
    piapi: FakePiAPI
    tmp: Path
    config: BenchConfig
    # The load's channels in job order (job n goes to places[n % len(places)]).
    places: list[tuple[FakeGuild, FakeChannel]] = field(default_factory=list)
    limits: DiscordLimits | None = None

    def add_jobs(self, jobs: list[JobSpec]) -> None:
        for job in jobs:
            self.piapi.profile_for_prompt[job.key] = job.profile

    def finals(self) -> int:
        """Job messages that carry an uploaded result."""
        return sum(
            1
            for m in list(self.discord.messages.values())
            if m.attachments and not m.deleted and key_in(m.content)
        )

    def unanswered(self, records: list[InteractionRecord]) -> int:
        """Interactions past Discord's 3-second window without an answer: lost for good."""
        too_old = self.discord.now() - self.discord.callback_deadline - 1.0
        return sum(1 for r in records if not r.responded and r.created_at < too_old)

    def place(self, job: JobSpec) -> tuple[FakeGuild, FakeChannel]:
        return self.places[job.channel % len(self.places)]


@contextlib.asynccontextmanager
async def open_world(config: BenchConfig, shards: int = 1) -> AsyncIterator[World]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    discord = FakeDiscord(bot_token=BOT_TOKEN, shards=shards)
    discord.guilds, places = build_guilds(
        discord.users, discord.bot_user, config.channels, config.guilds
    )
    piapi = FakePiAPI(
        api_key=PIAPI_KEY, image_size=config.image_size, max_concurrent_task_count=1_000_000
    )
    # Real services post their webhooks in parallel; one at a time (the fake's default,
    # for deterministic tests) would measure the sender's queue, not the bot.
    piapi.webhooks.concurrency = WEBHOOK_SENDER_CONCURRENCY
    try:
        async with discord, piapi:
            limits = install_discord_limits(discord, config.limits)
            yield World(discord, piapi, tmp, config, places, limits)
    finally:
        if not config.keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class BotProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self, limit_s: float = 10.0) -> str:
        """SIGTERM, then SIGKILL after `limit_s`; says how it went when it went badly."""
        if self.proc.poll() is not None:
            return ""
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            return f"the bot did not exit within {limit_s:g} s of SIGTERM and was killed"
        took = time.monotonic() - began
        return f"the bot took {took:.1f} s to exit on SIGTERM" if took > 3 else ""


def bot_env(world: World, extra: dict[str, str]) -> dict[str, str]:
    cap = concurrency_cap()
    slots = max(world.config.jobs, world.config.burst)
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("DISCORD_", "PIAPI_", "MJ_", "VTRIX_", "LEGNEXT_", "MJPROXY_", "WEBHOOK_", "PUSH_")
        )
        and k not in ("METRICS_LISTEN", "DATABASE_URL", "LOG_LEVEL")
    }
    return {
        **inherited,
        "PYTHONPATH": str(ROOT),
        "DISCORD_TOKEN": BOT_TOKEN,
        "DISCORD_API_BASE": world.discord.api_base,
        "DISCORD_GATEWAY_URL": world.discord.gateway_url,
        # One guild: its own commands, as before; more: global commands, one sync for all.
        "DISCORD_GUILD_IDS": str(DEFAULT_GUILD_ID) if world.config.guilds == 1 else "",
        "DISCORD_GUILD_READY_TIMEOUT": "0.1",
        "MJ_PROVIDER": "piapi",  # the fake here is PiAPI, whatever the shipped default
        "PIAPI_API_KEY": PIAPI_KEY,
        "PIAPI_BASE_URL": world.piapi.base_url,
        "MJ_MAX_CONCURRENT_JOBS": str(min(slots, cap) if cap else slots),
        "MEDIA_ALLOW_PRIVATE_HOSTS": "true",
        "DATABASE_URL": f"sqlite:///{world.tmp / 'bot.db'}",
        "LOG_LEVEL": world.config.log_level,
        **world.config.bot_env,
        **extra,
    }


def launch_bot(world: World, extra: dict[str, str], name: str) -> BotProcess:
    log_path = world.tmp / f"bot-{name}.log"
    command = [sys.executable, "-m", "bot"]
    if world.config.cprofile_dir is not None:
        world.config.cprofile_dir.mkdir(parents=True, exist_ok=True)
        out = world.config.cprofile_dir / f"bot-{name}.prof"
        command = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "bot"]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            command,
            cwd=world.tmp,
            env=bot_env(world, extra),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return BotProcess(proc, log_path)


async def start_bot(world: World, extra: dict[str, str], name: str = "bot") -> BotProcess:
    return (await start_bots(world, [extra], [name]))[0]


async def start_bots(
    world: World, extras: list[dict[str, str]], names: list[str]
) -> list[BotProcess]:
    """Start a bot process per entry at once; return when every one has identified and
    every guild's shard has had its GUILD_CREATEs (processes on PostgreSQL take turns to
    IDENTIFY, 5 s apart)."""
    discord = world.discord
    identified = discord.gateway.identifies
    bots = [launch_bot(world, extra, name) for extra, name in zip(extras, names, strict=True)]
    try:
        await discord.wait_for(
            lambda: (
                any(b.proc.poll() is not None for b in bots)
                or (
                    discord.gateway.identifies >= identified + len(bots)
                    and discord.find_command("imagine", DEFAULT_GUILD_ID) is not None
                )
            ),
            timeout=60 + 6 * len(bots),
            what="the bot(s) to log in and sync their commands",
        )
        for bot in bots:
            if bot.proc.poll() is not None:
                raise RuntimeError(f"the bot exited at start:\n{bot.log_tail()}")
        await discord.wait_for(
            lambda: all(_shard_ready(discord, g.id) for g in discord.guilds),
            timeout=30,
            what="every guild's GUILD_CREATE",
        )
    except BaseException:
        for bot in bots:
            bot.stop()
        raise
    return bots


def _shard_ready(discord: FakeDiscord, guild_id: int) -> bool:
    """The session of the guild's shard is connected and has sent its GUILD_CREATEs."""
    session = discord.gateway.session_for(guild_id)
    if session is None or session.connection is None:
        return False
    sent = [f.t for f in discord.gateway_log if f.session_id == session.id]
    return sent.count("GUILD_CREATE") >= sum(session.covers(g.id) for g in discord.guilds)


async def lift_member_limits(world: World) -> None:
    """/settings limits at_once:0 per_day:0 fast_per_day:0, as each guild's admin."""
    for guild in world.discord.guilds:
        record = await world.discord.slash(
            "settings limits",
            {"at_once": 0, "per_day": 0, "fast_per_day": 0},
            user="admin",
            guild=guild,
        )
        await world.discord.wait_for_callback(record, timeout=10)
        content = str((record.response_data or {}).get("content", ""))
        if not content.startswith("Saved"):
            raise RuntimeError(f"/settings limits was refused in {guild.name}: {content!r}")


async def dispatch(world: World, jobs: list[JobSpec], span_s: float) -> list[InteractionRecord]:
    """/imagine for every job, evenly over `span_s` seconds (as fast as possible if behind)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    step = span_s / max(1, len(jobs))
    records = []
    for i, job in enumerate(jobs):
        delay = start + i * step - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        guild, channel = world.place(job)
        records.append(
            await world.discord.slash(
                "imagine", {"prompt": job.prompt}, user=job.user, channel=channel, guild=guild
            )
        )
    return records


async def wait_until(predicate: Callable[[], bool], limit_s: float, every_s: float = 0.5) -> bool:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + limit_s
    while not predicate():
        if loop.time() > give_up:
            return False
        await asyncio.sleep(every_s)
    return True


# --- the phases --------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """Where a run's records begin at both fakes (set-up traffic before it is not counted)."""

    seq: int
    piapi: int
    refused: dict[LimitModel, int]

    @classmethod
    def take(cls, world: World) -> Mark:
        refused = dict(world.limits.refused) if world.limits else {}
        return cls(world.discord.last_seq, len(world.piapi.requests), refused)

    def analyse(self, world: World, jobs: list[JobSpec]) -> RunFigures:
        return analyse(
            world.discord,
            world.piapi,
            [j.key for j in jobs],
            since_seq=self.seq,
            since_piapi=self.piapi,
            limits=world.limits,
            refused_before=self.refused,
        )


async def phase_ack(config: BenchConfig) -> RunFigures:
    jobs = make_jobs(
        config.burst, config.profile, config.seed, first=90_000, channels=config.channels
    )
    async with open_world(config) as world:
        world.add_jobs(jobs)
        bot = await start_bot(world, {}, "ack")
        try:
            await lift_member_limits(world)
            mark = Mark.take(world)
            records = await dispatch(world, jobs, config.burst_window_s)
            await wait_until(
                lambda: all(r.callback_attempts or r.responded for r in records),
                world.discord.callback_deadline + 5,
                every_s=0.1,
            )
            return mark.analyse(world, jobs)
        finally:
            bot.stop()


async def phase_bot(config: BenchConfig, mode: str) -> RunResult:
    jobs = make_jobs(config.jobs, config.profile, config.seed, channels=config.channels)
    result = RunResult(mode, edit_interval_s=bot_edit_interval(config))
    async with open_world(config) as world:
        world.add_jobs(jobs)
        bot = await start_bot(world, push_env() if mode == "push" else {}, mode)
        try:
            await lift_member_limits(world)
            await measure(world, [bot], jobs, result)
        finally:
            stopped = bot.stop()
            if stopped:
                result.note += f"\n{stopped}"
    return result


async def phase_processes(config: BenchConfig, mode: str, server: PgServer) -> RunResult:
    """Issue 17: `config.processes` bots on one fresh PostgreSQL database, shard i of N each,
    the same load as the SQLite run; PostgreSQL counts its statements meanwhile."""
    n = config.processes
    jobs = make_jobs(config.jobs, config.profile, config.seed, channels=config.channels)
    result = RunResult(f"{mode}-pg-x{n}", edit_interval_s=bot_edit_interval(config))
    async with server.database() as url, open_world(config, shards=n) as world:
        world.add_jobs(jobs)
        shard = {"DATABASE_URL": url, "DISCORD_SHARD_COUNT": str(n)}
        extras = [
            {**shard, "DISCORD_SHARD_IDS": str(i), **(push_env() if mode == "push" else {})}
            for i in range(n)
        ]
        bots = await start_bots(world, extras, [f"{mode}-pg{i}" for i in range(n)])
        try:
            await lift_member_limits(world)
            result.commands = [
                sum(1 for job in jobs if (world.place(job)[0].id >> 22) % n == i) for i in range(n)
            ]
            counter, held = PgCounter(url), HeldJobs(url)
            await counter.start()
            held.start()
            await measure(world, bots, jobs, result)
            await held.stop()
            result.statements = await counter.stop()
            result.held = [held.peak.get(bot.proc.pid, 0) for bot in bots]
        finally:
            for bot in bots:
                stopped = bot.stop()
                if stopped:
                    result.note += f"\n{bot.log_path.stem}: {stopped}"
    return result


async def measure(
    world: World, bots: list[BotProcess], jobs: list[JobSpec], result: RunResult
) -> None:
    """Phase B on started bots: the load, the wait for every final, the figures."""
    config = world.config
    mark = Mark.take(world)
    windows = [CpuWindow(bot.proc.pid) for bot in bots]
    result.cpu, result.more_cpu = windows[0], windows[1:]
    result.harness_cpu = CpuWindow(os.getpid())
    for window in (*windows, result.harness_cpu):
        window.start()
    began = time.time()
    records = await dispatch(world, jobs, config.ramp_s)
    result.dispatch_s = time.time() - began
    limit = config.ramp_s + config.profile.longest_s + config.grace_s
    await wait_until(
        lambda: world.finals() + world.unanswered(records) >= len(jobs),
        limit - result.dispatch_s,
    )
    result.wall_s = time.time() - began
    for window in (*windows, result.harness_cpu):
        await window.stop()
    for bot in bots:
        if bot.proc.poll() is not None:
            result.note += f"\nthe bot exited during the run:\n{bot.log_tail()}"
    result.figures = mark.analyse(world, jobs)
    if result.figures.lost and config.keep_logs:
        result.note += "\nbot log(s): " + ", ".join(str(b.log_path) for b in bots)


async def phase_naive(config: BenchConfig) -> RunResult:
    jobs = make_jobs(config.jobs, config.profile, config.seed, channels=config.channels)
    result = RunResult("naive")
    async with open_world(config) as world:
        world.add_jobs(jobs)
        deadline = config.ramp_s + config.profile.longest_s + config.grace_s
        channels = ",".join(str(channel.id) for _, channel in world.places)
        log_path = world.tmp / "naive.log"
        with log_path.open("wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.naive_client",
                "--discord-api",
                world.discord.api_base,
                "--token",
                BOT_TOKEN,
                "--piapi",
                world.piapi.base_url,
                "--piapi-key",
                PIAPI_KEY,
                "--channels",
                channels,
                "--jobs",
                str(len(jobs)),
                "--ramp",
                str(config.ramp_s),
                "--poll",
                str(config.naive_poll_s),
                "--deadline",
                str(deadline),
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
            )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            ready = await asyncio.wait_for(proc.stdout.readline(), 60)
            if ready.strip() != b"ready":
                raise RuntimeError(f"naive client did not start: {log_path.read_text()[-2000:]}")
            mark = Mark.take(world)
            result.cpu, result.harness_cpu = CpuWindow(proc.pid), CpuWindow(os.getpid())
            result.cpu.start()
            result.harness_cpu.start()
            began = time.time()
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
            await wait_until(
                lambda: world.finals() >= len(jobs) or proc.returncode is not None,
                deadline + 30,
            )
            result.wall_s = time.time() - began
            result.dispatch_s = config.ramp_s
            await result.cpu.stop()
            await result.harness_cpu.stop()
            result.figures = mark.analyse(world, jobs)
        finally:
            if proc.returncode is None:
                proc.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    return result


# --- the report --------------------------------------------------------------------------


def machine_facts(argv: list[str]) -> list[str]:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        if dirty:
            commit += f" + {len(dirty.splitlines())} uncommitted file(s)"
    load1, load5, _ = os.getloadavg()
    return [
        f"command: {' '.join(shlex.quote(a) for a in argv)}",
        f"machine: {os.cpu_count()} CPU ({cpu}), {mem} RAM, {platform.platform()}",
        f"python {platform.python_version()}, discord.py {version('discord.py')}, "
        f"aiohttp {version('aiohttp')}, httpx {version('httpx')}; bot at {commit}",
        f"load average at start: {load1:.2f} (1 min), {load5:.2f} (5 min)",
        "note: the load generator and both fakes run in this one process on the same "
        "machine as the process under test, and compete with it for the 2 cores",
    ]


def _fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value * 1000:.0f} ms"
    if unit == "s":
        return f"{value:.{digits}f} s"
    return f"{value:.{digits}f}{unit}"


def _ratio(ours: float | None, naive: float | None) -> str:
    if ours is None or naive is None:
        return "-"
    if naive == 0:
        return "-" if ours else "1.00"
    return f"{ours / naive:.2f}"


def _verdict(value: float | None, ok: bool | None) -> str:
    if value is None or ok is None:
        return ""
    return " PASS" if ok else " MISS"


@dataclass(frozen=True)
class _Metric:
    label: str
    target: str
    get: Callable[[RunResult], float | None]
    unit: str = ""
    digits: int = 2
    # Whether a run meets the target; None where the target does not apply to that run.
    check: Callable[[RunResult, float], bool | None] | None = None
    ratio: bool = True  # print ours/naive
    text: Callable[[RunResult], str | None] | None = None  # a cell that is no one number


OURS = ("poll", "push")


def _fig(run: RunResult) -> RunFigures:
    assert run.figures is not None
    return run.figures


def _per_job(run: RunResult, total: float) -> float | None:
    # Per job that reached the provider: a job lost before it is not a job the bot ran.
    jobs = _fig(run).submitted
    return total / jobs if jobs else None


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


def _avg_cores(window: CpuWindow | None) -> float | None:
    return window.cpu / window.wall if window is not None and window.wall else None


def _cpu_all(run: RunResult) -> float:
    """CPU seconds of every process under test (one, or --processes of them)."""
    return sum(w.cpu for w in run.windows)


def _cores_all(run: RunResult) -> float | None:
    wall = run.cpu.wall if run.cpu is not None else 0.0
    return _cpu_all(run) / wall if wall else None


def _peak_cores_all(run: RunResult) -> float | None:
    return sum(w.peak_cores() for w in run.windows) if run.windows else None


def _rss_each(run: RunResult) -> str | None:
    if len(run.windows) < 2:
        return None
    return " / ".join(f"{w.peak_rss_kb / 1024:.0f}" for w in run.windows) + " MB"


def _processes(run: RunResult) -> str | None:
    if run.kind == "naive":
        return None
    return f"{len(run.windows)} on PostgreSQL" if run.more_cpu else "1 on SQLite"


def _per_process(values: list[int]) -> str | None:
    return " / ".join(str(v) for v in values) if values else None


def _statements(run: RunResult) -> str | None:
    count, jobs = run.statements, _fig(run).submitted
    if count is None or not jobs:
        return None
    unit = "" if count.source == "pg_stat_statements" else " transactions"
    return f"{count.total / jobs:.1f}{unit}"


def _ours(limit: float) -> Callable[[RunResult, float], bool | None]:
    return lambda run, value: value <= limit if run.kind in OURS else None


def _only(name: str, limit: float) -> Callable[[RunResult, float], bool | None]:
    return lambda run, value: value <= limit if run.kind == name else None


def _zero(run: RunResult, value: float) -> bool:
    return value == 0


def _zero_ours(run: RunResult, value: float) -> bool | None:
    return value == 0 if run.kind in OURS else None


def _push_latency(run: RunResult, value: float) -> bool | None:
    return value <= run.edit_interval_s + 1.0 if run.kind == "push" else None


METRICS = (
    _Metric("processes", "", lambda r: None, ratio=False, text=_processes),
    _Metric("jobs", "", lambda r: len(_fig(r).jobs), digits=0, ratio=False),
    _Metric("jobs submitted to the provider", "", lambda r: _fig(r).submitted, digits=0,
            ratio=False),
    _Metric("jobs lost (no final message)", "0", lambda r: _fig(r).lost, digits=0, check=_zero,
            ratio=False),
    _Metric("  of which never acknowledged", "", lambda r: _fig(r).unacknowledged, digits=0,
            ratio=False),
    _Metric("duplicate submissions", "0", lambda r: _fig(r).duplicate_submissions, digits=0,
            check=_zero, ratio=False),
    _Metric("peak jobs in flight at provider", "", lambda r: _fig(r).peak_in_flight()[0],
            digits=0, ratio=False),
    _Metric("phase wall time", "", lambda r: r.wall_s, "s", 0),
    _Metric("  /imagine received per process", "", lambda r: None, ratio=False,
            text=lambda r: _per_process(r.commands)),
    _Metric("  jobs held at once per process, peak", "", lambda r: None, ratio=False,
            text=lambda r: _per_process(r.held)),
    _Metric("CPU seconds per job", "", lambda r: _per_job(r, _cpu_all(r)), "s", 4),
    _Metric("avg cores, whole phase", f"<= {TARGET_CORES}", _cores_all,
            check=_ours(TARGET_CORES)),
    _Metric("avg cores, >=90% of peak in flight", f"<= {TARGET_CORES}",
            lambda r: _plateau_cores(r), check=_ours(TARGET_CORES)),
    _Metric("busiest 5 s, cores (summed over processes)", "", _peak_cores_all),
    _Metric("peak RSS (VmHWM)", f"<= {TARGET_RSS_MB:.0f} MB",
            lambda r: max(w.peak_rss_kb for w in r.windows) / 1024 if r.windows else None,
            " MB", 0, check=_ours(TARGET_RSS_MB)),
    _Metric("  RSS per process (VmHWM)", "", lambda r: None, ratio=False, text=_rss_each),
    _Metric("distinct provider states per job", "",
            lambda r: _per_job(r, _fig(r).total_states)),
    _Metric("provider requests per job", f"push <= {TARGET_PUSH_REQ_PER_JOB}",
            lambda r: _per_job(r, _fig(r).total("provider_requests")),
            check=_only("push", TARGET_PUSH_REQ_PER_JOB)),
    _Metric("provider requests per state", f"poll <= {TARGET_POLL_REQ_PER_STATE}",
            lambda r: _div(_fig(r).total("provider_requests"), _fig(r).total_states),
            check=_only("poll", TARGET_POLL_REQ_PER_STATE)),
    _Metric("Discord edits per job", "", lambda r: _per_job(r, _fig(r).total("edits"))),
    _Metric("edits per visible state", f"<= {TARGET_EDITS_PER_STATE:g}",
            lambda r: _div(_fig(r).total("edits"), _fig(r).total_states),
            check=_ours(TARGET_EDITS_PER_STATE)),
    _Metric("state-to-edit latency p50", "",
            lambda r: percentile(_fig(r).all_latencies(), 50), "s"),
    _Metric("state-to-edit latency p99", "push <= interval+1 s",
            lambda r: percentile(_fig(r).all_latencies(), 99), "s", check=_push_latency),
    _Metric("  webhook post lag p99 (harness)", "",
            lambda r: percentile(_fig(r).all_push_lags(), 99) if r.kind == "push" else None,
            "s", ratio=False),
    _Metric("Discord 429s received", "0", lambda r: _fig(r).discord_429, digits=0,
            check=_zero_ours),
    _Metric("message write attempts per landed write", "",
            lambda r: _fig(r).attempts_per_landed_write, digits=3),
    _Metric("invalid requests per 10 min, peak", "< 10000", lambda r: _fig(r).invalid_peak,
            digits=0, check=lambda r, v: v < 10_000),
    _Metric("completion-to-final p50", "",
            lambda r: percentile(_fig(r).completion_to_final(), 50), "s"),
    _Metric("completion-to-final p99", "",
            lambda r: percentile(_fig(r).completion_to_final(), 99), "s"),
    _Metric("ack p99 during the ramp", "", lambda r: percentile(_fig(r).acks(), 99), "ms"),
    _Metric("PostgreSQL statements per job", "", lambda r: None, ratio=False, text=_statements),
    _Metric("jobs started over", "", lambda r: r.dispatch_s, "s", 1, ratio=False),
    _Metric("load generator + fakes, avg cores", "", lambda r: _avg_cores(r.harness_cpu)),
)  # fmt: skip


_MODEL_NAMES = {
    LimitModel.CHANNEL_WRITES: "channel writes",
    LimitModel.GUILD_WEBHOOKS: "guild webhooks",
    LimitModel.PER_TOKEN: "per token",
    LimitModel.GLOBAL: "global",
}


def _refused_by(model: LimitModel) -> Callable[[RunResult], float | None]:
    return lambda r: _fig(r).refused.get(model.value)


def metrics_for(config: BenchConfig) -> tuple[_Metric, ...]:
    """METRICS, with a row of 429s for each installed limit model after the total."""
    rows = [
        _Metric(f"  429s from ({m.value}) {_MODEL_NAMES[m]}", "", _refused_by(m), digits=0)
        for m in models_for(config.limits)
    ]
    at = next(i for i, m in enumerate(METRICS) if m.label == "Discord 429s received") + 1
    return (*METRICS[:at], *rows, *METRICS[at:])


def _plateau_cores(run: RunResult) -> float | None:
    if run.figures is None or not run.windows:
        return None
    window = run.figures.plateau(0.9)
    if window is None:
        return None
    each = [w.cores_between(*window) for w in run.windows]
    return None if any(c is None for c in each) else sum(c or 0.0 for c in each)


def render_table(report: Report, unavailable: dict[str, str]) -> str:
    lines: list[str] = []
    ack = report.ack
    if ack is not None:
        acks = ack.acks()
        p99 = percentile(acks, 99)
        complete = len(acks) == len(ack.jobs) and ack.unacknowledged == 0
        lines.append(
            f"Phase A: acknowledgement latency, {report.config.burst} /imagine in "
            f"{report.config.burst_window_s:g} s (dispatch by the fake -> callback at the fake)"
        )
        lines.append(
            f"  answered {len(acks)}/{len(ack.jobs)}   p50 {_fmt(percentile(acks, 50), 'ms')}   "
            f"p99 {_fmt(p99, 'ms')}   max {_fmt(max(acks) if acks else None, 'ms')}   "
            f"target p99 <= {TARGET_ACK_P99_S * 1000:.0f} ms"
            + _verdict(p99, p99 is not None and p99 <= TARGET_ACK_P99_S and complete)
        )
        lines.append("")
    runs = report.runs
    names = [r.name for r in runs]
    lines.append(
        f"Phase B: {report.config.jobs} jobs over {report.config.ramp_s:g} s; "
        f"columns: {', '.join(names)}" + ("; ratios ours/naive" if "naive" in names else "")
    )
    ratio_cols = [n for n in OURS if n in names] if "naive" in names else []
    header = ["metric", "target", *names, *(f"{n}/naive" for n in ratio_cols)]
    table = [header]
    for metric in metrics_for(report.config):
        values = {r.name: metric.get(r) if r.available else None for r in runs}
        cells = [metric.label, metric.target]
        for run in runs:
            value = values[run.name]
            if metric.text is not None:
                cells.append((metric.text(run) if run.available else None) or "-")
                continue
            ok = metric.check(run, value) if metric.check and value is not None else None
            cells.append(_fmt(value, metric.unit, metric.digits) + _verdict(value, ok))
        for name in ratio_cols:
            cells.append(_ratio(values[name], values["naive"]) if metric.ratio else "")
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, cells in enumerate(table):
        lines.append(
            "  ".join(
                c.ljust(widths[j]) if j < 2 else c.rjust(widths[j]) for j, c in enumerate(cells)
            ).rstrip()
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.extend(unavailable.values())
    for run in runs:
        if run.note:
            lines.append(f"{run.name}: {run.note.strip()}")
    for run in runs:
        lines.extend(statement_lines(run))
    return "\n".join(lines)


def statement_lines(run: RunResult) -> list[str]:
    """What PostgreSQL counted over a multi-process run, and its busiest statements."""
    count = run.statements
    if count is None:
        return []
    what = "statements" if count.source == "pg_stat_statements" else "transactions"
    lines = [f"{run.name}: PostgreSQL counted {count.total} {what} ({count.source}) over the run"]
    lines.extend(f"  {calls:>8}  {query[:110]}" for calls, query in count.top)
    return lines


def scenario_verdicts(report: Report) -> list[str]:
    """The issue-12 targets of the report's scenario, judged for each of our runs."""
    config = report.config
    if config.scenario is None:
        return []
    views = {
        r.name: RunView(
            r.name,
            r.figures,
            _per_job(r, _cpu_all(r)),
            wall_s=r.wall_s,
            channels=config.channels,
        )
        for r in report.runs
        if r.figures is not None
    }
    ours = [v for name, v in views.items() if name.split("-")[0] in OURS]
    jobs = make_jobs(config.jobs, config.profile, config.seed, channels=config.channels)
    channel_of = {job.key: job.channel for job in jobs}
    # Every run faces the same completion times, give or take the dispatch: the floor
    # comes from the first of our runs (the naive run's if there is none).
    basis = ours[0] if ours else views.get("naive")
    if basis is None:
        return [f"Verdicts for {config.scenario}: no run finished"]
    floor = final_floor(basis.figures, channel_of)
    return verdicts(config.scenario, ours, views.get("naive"), floor)


def describe_setup(config: BenchConfig) -> list[str]:
    cap = concurrency_cap()
    slots = max(config.jobs, config.burst)
    lines = [
        f"profile (fake PiAPI, real clock, seed {config.seed}): {config.profile.describe()}; "
        f"results {config.image_size} px PNG grids",
        f"rate limits at the fake Discord (--limits {config.limits}): "
        + "; ".join(limits_text(config.limits)),
        f"load: {config.jobs} jobs over {config.ramp_s:g} s, round-robin over "
        f"{config.channels} channel(s) in {config.guilds} guild(s)"
        + (f" (scenario {config.scenario})" if config.scenario else ""),
        "push mode: the fake PiAPI looks for changed tasks every "
        f"{WEBHOOK_TICK_S:g} s and posts each change, "
        f"{WEBHOOK_SENDER_CONCURRENCY} posts at once",
        f"bot: shipped defaults (LOG_LEVEL={config.log_level}, edit interval "
        f"{bot_edit_interval(config):g} s) + MJ_MAX_CONCURRENT_JOBS="
        f"{min(slots, cap) if cap else slots}"
        + (f" (the bot's settings cap it at {cap})" if cap and cap < slots else "")
        + (f" + {config.bot_env}" if config.bot_env else ""),
        *(
            [
                f"{config.processes} processes: one PostgreSQL database per run, shard i of "
                f"{config.processes} each (guilds on consecutive shards), the same load as the "
                "SQLite run; CPU summed over the processes, RSS per process"
            ]
            if config.processes > 1
            else []
        ),
        f"naive reference: bench/naive_client.py, a task per job polling every "
        f"{config.naive_poll_s:g} s and editing after every poll (bot token, plain httpx)",
        "distinct visible state := distinct (status, progress, previews) the fake provider "
        "exposed; latencies are measured for every state after pending",
    ]
    return lines


async def run_benchmark(config: BenchConfig, argv: list[str] | None = None) -> Report:
    header = [*machine_facts(argv or sys.argv), *describe_setup(config)]
    print("\n".join(header), flush=True)
    unavailable: dict[str, str] = {}
    runs: list[RunResult] = []
    ack = None
    started = time.time()
    if config.burst:
        print(f"[{time.time() - started:5.0f}s] phase A: {config.burst} commands ...", flush=True)
        ack = await phase_ack(config)
    if config.jobs:
        for mode in config.modes:
            if mode == "push" and (why := push_support()) is not None:
                unavailable["push"] = why
                continue
            print(f"[{time.time() - started:5.0f}s] phase B, {mode} mode ...", flush=True)
            runs.append(await phase_bot(config, mode))
        if config.processes > 1:
            runs.extend(await processes_runs(config, unavailable, started))
        if config.naive:
            print(f"[{time.time() - started:5.0f}s] phase B, naive reference ...", flush=True)
            runs.append(await phase_naive(config))
    report = Report(config, header, ack, runs)
    report.text = render_table(report, unavailable)
    if config.scenario:
        report.text += "\n\n" + "\n".join(scenario_verdicts(report))
    print(f"[{time.time() - started:5.0f}s] done\n", flush=True)
    load1, _, _ = os.getloadavg()
    print(report.text)
    print(f"load average at the end: {load1:.2f} (1 min)", flush=True)
    return report


async def processes_runs(
    config: BenchConfig, unavailable: dict[str, str], started: float
) -> list[RunResult]:
    """Each mode again on `config.processes` processes sharing one PostgreSQL server."""
    runs = []
    async with pg_server(config.database_url) as server:
        print(f"PostgreSQL for the {config.processes}-process runs: {server.origin}", flush=True)
        for mode in config.modes:
            if mode in unavailable:
                continue
            print(
                f"[{time.time() - started:5.0f}s] phase B, {mode} mode, "
                f"{config.processes} processes on PostgreSQL ...",
                flush=True,
            )
            runs.append(await phase_processes(config, mode, server))
    return runs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--jobs", type=int, help="jobs in flight in phase B (default 2000)")
    parser.add_argument("--burst", type=int, help="commands in the phase A burst (default 200)")
    parser.add_argument(
        "--ramp", type=float, help="seconds over which phase B starts its jobs (default 30)"
    )
    parser.add_argument(
        "--mode",
        choices=("poll", "push", "both"),
        help="the bot's watch mode(s) (default both; poll for a --scenario)",
    )
    parser.add_argument(
        "--scenario",
        choices=sorted(SCENARIOS),
        help="one of issue 12's loads, judged against its targets (sets jobs, ramp, "
        "channels, guilds, profile; no phase A)",
    )
    parser.add_argument(
        "--channels", type=int, help="channels the jobs go round-robin over (default 2)"
    )
    parser.add_argument("--guilds", type=int, help="guilds holding those channels (default 1)")
    parser.add_argument(
        "--limits",
        default=DEFAULT_LIMITS,
        help="the fake Discord's rate-limit models by letter: a per-channel writes, b "
        "per-guild webhooks, c per-token, d global (default abd)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="also run each mode on this many bot processes sharing one PostgreSQL, shards "
        "0..N-1 of N (issue 17; default 1: SQLite only)",
    )
    parser.add_argument(
        "--database",
        metavar="postgresql://…",
        help="the PostgreSQL server for --processes (a database is made per run; needs "
        "CREATEDB); default: a throwaway cluster like the tests'",
    )
    parser.add_argument("--skip-naive", action="store_true", help="no naive reference run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", choices=sorted(PROFILES), help="job life at the provider")
    parser.add_argument("--image-size", type=int, default=512, help="result grid side, px")
    parser.add_argument("--log-level", default="INFO", help="the bot's LOG_LEVEL")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 200 jobs, burst 50, short profile"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the temporary dirs")
    parser.add_argument(
        "--bot-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra setting for the bot (repeatable), e.g. DISCORD_EDIT_INTERVAL_S=1",
    )
    parser.add_argument("--naive-poll", type=float, default=2.0, help="naive poll interval, s")
    parser.add_argument(
        "--cprofile", type=Path, metavar="DIR", help="run the bot under cProfile, profiles to DIR"
    )
    return parser


def _base_config(args: argparse.Namespace) -> BenchConfig:
    """The default run, --quick's or a --scenario's, before the other flags apply."""
    config = BenchConfig()
    if args.quick:
        config = dataclasses.replace(
            config, jobs=200, burst=50, ramp_s=4.0, profile=PROFILES["short"], grace_s=45.0
        )
    if args.scenario:
        sc = SCENARIOS[args.scenario]
        config = dataclasses.replace(
            config,
            scenario=sc.name,
            jobs=sc.jobs,
            burst=0,
            ramp_s=sc.ramp_s,
            channels=sc.channels,
            guilds=sc.guilds,
            profile=PROFILES[sc.profile],
        )
    return config


def parse_args(argv: list[str]) -> BenchConfig:
    parser = build_parser()
    args = parser.parse_args(argv)
    bot_extra = {}
    for item in args.bot_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--bot-env wants NAME=VALUE, got {item!r}")
        bot_extra[name] = value
    try:
        models_for(args.limits)
    except ValueError as error:
        parser.error(str(error))
    config = _base_config(args)
    mode = args.mode or ("poll" if args.scenario else "both")
    overrides: dict[str, Any] = {
        "modes": ("poll", "push") if mode == "both" else (mode,),
        "limits": args.limits,
        "naive": not args.skip_naive,
        "seed": args.seed,
        "image_size": args.image_size,
        "log_level": args.log_level,
        "keep_logs": args.keep_logs,
        "bot_env": bot_extra,
        "naive_poll_s": args.naive_poll,
        "cprofile_dir": args.cprofile,
        "processes": args.processes,
        "database_url": args.database,
    }
    if args.jobs is not None:
        overrides["jobs"] = args.jobs
    if args.burst is not None:
        overrides["burst"] = args.burst
    if args.ramp is not None:
        overrides["ramp_s"] = args.ramp
    if args.profile is not None:
        overrides["profile"] = PROFILES[args.profile]
    if args.channels is not None:
        overrides["channels"] = args.channels
    if args.guilds is not None:
        overrides["guilds"] = args.guilds
    elif args.processes > 1:  # a guild per shard at least, so every process takes commands
        overrides["guilds"] = max(config.guilds, args.processes)
        overrides["channels"] = max(overrides.get("channels", config.channels), args.processes)
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    if args.database is not None and not args.database.startswith(("postgresql://", "postgres://")):
        parser.error("--database wants a postgresql:// URL")
    config = dataclasses.replace(config, **overrides)
    if not 1 <= config.guilds <= config.channels:
        parser.error("--guilds must be between 1 and --channels")
    return config


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    config = parse_args(argv)
    shown = [".venv/bin/python", "-m", "bench.load", *argv]
    report = asyncio.run(run_benchmark(config, shown))
    return 1 if report.jobs_lost else 0


if __name__ == "__main__":
    sys.exit(main())
