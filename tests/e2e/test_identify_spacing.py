"""IDENTIFY spaced across processes (issue 17): two real bot processes on one PostgreSQL,
shards 0 and 1 of 2, started at the same moment. The fake Discord announces
max_concurrency 1 (one bucket) and refuses, with op 9, an IDENTIFY that comes within 5 s of
the previous one (tests/fakes/discord/identify_spacing.py). The processes share the
bucket's advisory lock, so the second IDENTIFYs 5 s after the first and none is refused;
without it both would IDENTIFY within the same second."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e import conftest as e2e
from tests.e2e.conftest import World, open_world
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.identify_spacing import IDENTIFY_INTERVAL_S

SHARDS = 2


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    monkeypatch.setattr(e2e, "FakeDiscord", functools.partial(FakeDiscord, shards=SHARDS))
    async with open_world(tmp_path) as w:
        w.discord.identify_spacing.enforce = True
        yield w


async def test_two_processes_identify_5_s_apart_in_one_bucket(world: World, pg_url: str) -> None:
    shards = {"DATABASE_URL": pg_url, "DISCORD_SHARD_COUNT": str(SHARDS)}
    await asyncio.gather(
        world.start_bot(**shards, DISCORD_SHARD_IDS="0"),
        world.start_bot(**shards, DISCORD_SHARD_IDS="1"),
    )
    await world.discord.wait_for(
        lambda: len(world.discord.gateway.sessions) == SHARDS,
        timeout=30,
        what="both shards to be connected",
    )
    spacing = world.discord.identify_spacing
    assert sorted(r.shard for r in spacing.records if r.shard) == [(0, SHARDS), (1, SHARDS)]
    assert [r for r in spacing.records if r.too_soon] == []
    gaps = spacing.gaps(0)
    print(f"\nIDENTIFY gaps in bucket 0: {', '.join(f'{g:.2f}s' for g in gaps)}")
    assert len(gaps) == 1 and gaps[0] >= IDENTIFY_INTERVAL_S
