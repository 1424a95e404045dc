"""Two real bot processes on one PostgreSQL as shards 0 and 1 of 2 (issue 17): the fake
Discord requires sharding (shards=2) and sends each guild's events to the session of its
shard only, so the commands reach the process holding the guild's shard; its jobs are
finished by the other process, which holds no shard of that guild (REST needs no gateway),
after a kill -9.

Helpers (the Host-header world, the checks) are those of test_multiprocess.py.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import conftest as e2e
from tests.e2e.conftest import BotProcess, World, open_world
from tests.e2e.test_multiprocess import (
    _HOST,
    JOBS,
    HostRecord,
    finals_written_by,
    finish_and_check,
    jobs_started_through_a,
    wait_owned_by,
    writes_from,
)
from tests.fakes.discord import DEFAULT_GUILD_ID, FakeDiscord
from tests.fakes.discord import rest as discord_rest

SHARDS = 2
GUILD_SHARD = (DEFAULT_GUILD_ID >> 22) % SHARDS  # Discord's rule: (guild_id >> 22) % count


@pytest.fixture
async def world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> AsyncIterator[World]:
    original = discord_rest.RestApi.handle

    async def handle(self: Any, request: Any) -> Any:
        _HOST.set(request.host)
        return await original(self, request)

    monkeypatch.setattr(discord_rest.RestApi, "handle", handle)
    monkeypatch.setattr(discord_rest, "RequestRecord", HostRecord)
    monkeypatch.setattr(e2e, "FakeDiscord", functools.partial(FakeDiscord, shards=SHARDS))
    async with open_world(tmp_path) as w:
        yield w


async def start_shards(world: World, pg_url: str) -> tuple[BotProcess, BotProcess]:
    """A holds the guild's shard (and takes its commands, through localhost); B the other."""
    shards = {"DATABASE_URL": pg_url, "DISCORD_SHARD_COUNT": str(SHARDS)}
    a_base = world.env["DISCORD_API_BASE"].replace("127.0.0.1", "localhost")
    a = await world.start_bot(**shards, DISCORD_SHARD_IDS=str(GUILD_SHARD), DISCORD_API_BASE=a_base)
    b = await world.start_bot(**shards, DISCORD_SHARD_IDS=str(1 - GUILD_SHARD))
    return a, b


async def test_shards_0_and_1_of_2_kill_9_of_the_guild_s_shard_the_other_finishes(
    world: World, pg_url: str
) -> None:
    a, b = await start_shards(world, pg_url)
    sessions = sorted(s.shard for s in world.discord.gateway.sessions.values() if s.shard)
    assert sessions == [(0, SHARDS), (1, SHARDS)]
    interactions = await jobs_started_through_a(world, pg_url, a)
    kill_seq = world.discord.requests[-1].seq
    world.kill(a)
    took = await wait_owned_by(pg_url, b, limit_s=40)
    print(
        f"\nshards, kill -9: jobs taken over by shard {1 - GUILD_SHARD}'s process after {took:.2f}s"
    )
    await finish_and_check(world, pg_url, interactions)
    assert writes_from(world, "localhost", kill_seq) == []
    assert (
        finals_written_by(world, "127.0.0.1") == JOBS and finals_written_by(world, "localhost") == 0
    )
    assert len(re.findall(r"job \w+: taken over from", b.log())) == JOBS


def test_shard_settings_are_read_and_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bot.config import ConfigError, load_settings

    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("DISCORD_SHARD_COUNT", "DISCORD_SHARD_IDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DISCORD_TOKEN", "tok")
    monkeypatch.setenv("LEGNEXT_API_KEY", "key")
    monkeypatch.setenv("MJ_PROVIDER", "legnext")
    unset = load_settings()
    assert (unset.discord_shard_count, unset.discord_shard_ids) == (None, [])
    monkeypatch.setenv("DISCORD_SHARD_COUNT", "2")
    monkeypatch.setenv("DISCORD_SHARD_IDS", "1")
    settings = load_settings()
    assert (settings.discord_shard_count, settings.discord_shard_ids) == (2, [1])
    for ids, count, why in (
        ("0", None, "needs DISCORD_SHARD_COUNT"),
        ("0,2", "2", r"below DISCORD_SHARD_COUNT \(2\)"),
        ("zero", "2", "comma-separated list of shard numbers"),
    ):
        monkeypatch.setenv("DISCORD_SHARD_IDS", ids)
        if count is None:
            monkeypatch.delenv("DISCORD_SHARD_COUNT")
        else:
            monkeypatch.setenv("DISCORD_SHARD_COUNT", count)
        with pytest.raises(ConfigError, match=why):
            load_settings()
