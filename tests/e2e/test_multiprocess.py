"""Two real bot processes (`python -m bot`) on one PostgreSQL (issue 17): jobs are owned by
leases, and when their owner dies, stops cleanly or freezes, the other process finishes
them on their original messages, once.

Both connect to the fake Discord as shard 0 (its gateway keeps both sessions; interactions
go to the newest, so the bot started second takes the commands). Which process made a
write to Discord is told by the Host header: process A is pointed at `localhost`, B at
`127.0.0.1` (the same fake). The takeover times measured are printed (pytest -s) and
logged by the bots.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.e2e.conftest import BotProcess, World, open_world
from tests.e2e.test_imagine import is_final_grid
from tests.fakes.discord import models as discord_models
from tests.fakes.discord import rest as discord_rest
from tests.fakes.discord.models import InteractionRecord

JOBS = 3
MEMBERS = ("tester", "artist", "other")  # one job each: no member waits for a turn
_HOST: contextvars.ContextVar[str] = contextvars.ContextVar("host", default="")


@dataclasses.dataclass
class HostRecord(discord_models.RequestRecord):
    """A request record that also keeps the Host header it came with."""

    host: str = dataclasses.field(default_factory=_HOST.get)


@pytest.fixture
async def world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str
) -> AsyncIterator[World]:
    """The e2e world, whose bots stop before the test's database is dropped."""
    original = discord_rest.RestApi.handle

    async def handle(self: Any, request: Any) -> Any:
        _HOST.set(request.host)
        return await original(self, request)

    monkeypatch.setattr(discord_rest.RestApi, "handle", handle)
    monkeypatch.setattr(discord_rest, "RequestRecord", HostRecord)
    async with open_world(tmp_path) as w:
        yield w


async def db_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def start_pair(world: World, pg_url: str) -> tuple[BotProcess, BotProcess]:
    """B (the survivor) first, then A, which takes the commands; A writes via localhost."""
    b = await world.start_bot(DATABASE_URL=pg_url)
    a_base = world.env["DISCORD_API_BASE"].replace("127.0.0.1", "localhost")
    a = await world.start_bot(DATABASE_URL=pg_url, DISCORD_API_BASE=a_base)
    return a, b


async def jobs_started_through_a(
    world: World, pg_url: str, a: BotProcess
) -> list[InteractionRecord]:
    interactions = []
    for n in range(JOBS):
        interactions.append(
            await world.discord.slash("imagine", {"prompt": f"harbour {n}"}, user=MEMBERS[n])
        )
    await world.discord.wait_for(
        lambda: len(world.piapi.created()) == JOBS, timeout=15, what="every job created"
    )
    await world.advance_piapi(9, settle=0.5)  # running, with progress on their messages
    owners = await db_rows(pg_url, "SELECT DISTINCT owner FROM jobs")
    assert [o for (o,) in owners] == [owner_of(a, owners)]  # all owned by A
    return interactions


def owner_of(bot: BotProcess, owners: list[tuple[Any, ...]]) -> str:
    [mine] = [o for (o,) in owners if o and o.split(":")[1] == str(bot.proc.pid)]
    return str(mine)


async def wait_owned_by(pg_url: str, bot: BotProcess, *, limit_s: float) -> float:
    """Seconds until every job is leased by `bot` (bounded by `limit_s`)."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        rows = await db_rows(pg_url, "SELECT owner FROM jobs")
        pids = {str(o).split(":")[1] if o else "" for (o,) in rows}
        if pids == {str(bot.proc.pid)}:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"jobs not taken over within {limit_s}s: {rows}\n{bot.log()[-3000:]}")


async def finish_and_check(
    world: World, pg_url: str, interactions: list[InteractionRecord]
) -> None:
    for _ in range(12):
        await world.advance_piapi(3, settle=0.3)
    for interaction in interactions:
        await world.wait_message(
            lambda m, i=interaction: m.id == i.original_message_id and is_final_grid(m),
            limit_s=30,
            what="the final grid on the original message",
        )
    assert len(world.piapi.created()) == JOBS  # exactly one create per job
    finals = [m for m in world.channel_messages() if is_final_grid(m)]
    assert sorted(m.id for m in finals) == sorted(i.original_message_id for i in interactions)
    assert {i.original_message_id for i in interactions} == {m.id for m in world.channel_messages()}
    assert await db_rows(pg_url, "SELECT DISTINCT status FROM jobs") == [("completed",)]
    undelivered = await db_rows(
        pg_url, "SELECT job_id FROM deliveries WHERE final_delivered_at IS NULL"
    )
    assert undelivered == [] and len(await db_rows(pg_url, "SELECT job_id FROM deliveries")) == JOBS


def writes_from(world: World, host_start: str, after_seq: int) -> list[Any]:
    return [
        r
        for r in world.discord.requests
        if r.seq > after_seq and r.method != "GET" and getattr(r, "host", "").startswith(host_start)
    ]


def finals_written_by(world: World, host_start: str) -> int:
    """Writes carrying files (the final grid's upload) from one process."""
    return sum(
        1
        for r in world.discord.requests
        if r.method != "GET" and r.files and getattr(r, "host", "").startswith(host_start)
    )


async def test_kill_9_of_the_owner_the_other_process_finishes_every_job_once(
    world: World, pg_url: str
) -> None:
    a, b = await start_pair(world, pg_url)
    interactions = await jobs_started_through_a(world, pg_url, a)
    assert writes_from(world, "localhost", 0), "A wrote the progress so far"
    kill_seq = world.discord.requests[-1].seq
    world.kill(a)
    took = await wait_owned_by(pg_url, b, limit_s=40)
    print(f"\nkill -9: jobs taken over by the other process after {took:.2f}s")
    await finish_and_check(world, pg_url, interactions)
    assert writes_from(world, "localhost", kill_seq) == []
    assert (
        finals_written_by(world, "127.0.0.1") == JOBS and finals_written_by(world, "localhost") == 0
    )
    assert len(re.findall(r"job \w+: taken over from", b.log())) == JOBS


async def test_sigterm_hands_every_job_over_in_under_a_second(world: World, pg_url: str) -> None:
    a, b = await start_pair(world, pg_url)
    interactions = await jobs_started_through_a(world, pg_url, a)
    a.proc.send_signal(signal.SIGTERM)
    took = await wait_owned_by(pg_url, b, limit_s=10)
    stop_seq = world.discord.requests[-1].seq if world.discord.requests else 0
    print(f"\nSIGTERM: jobs handed over after {took:.2f}s (from the signal)")
    assert a.proc.wait(timeout=10) == 0
    assert "released 3 job lease(s)" in a.log()
    assert took < 1.0
    await finish_and_check(world, pg_url, interactions)
    assert writes_from(world, "localhost", stop_seq) == []
    assert finals_written_by(world, "localhost") == 0


async def test_a_process_frozen_past_its_lease_drops_its_jobs_without_writing(
    world: World, pg_url: str
) -> None:
    a, b = await start_pair(world, pg_url)
    interactions = await jobs_started_through_a(world, pg_url, a)
    a.proc.send_signal(signal.SIGSTOP)
    try:
        took = await wait_owned_by(pg_url, b, limit_s=45)
        print(f"\nSIGSTOP: jobs taken over after {took:.2f}s (lease 30 s, scan 5 s)")
        await finish_and_check(world, pg_url, interactions)
    finally:
        a.proc.send_signal(signal.SIGCONT)
    cont_seq = world.discord.requests[-1].seq
    await world.discord.wait_for(
        lambda: a.log().count("dropped here") >= JOBS,
        timeout=15,
        what="the resumed process to drop its jobs",
    )
    await asyncio.sleep(2.0)  # anything it would still write would go out by now
    assert writes_from(world, "localhost", cont_seq) == []
    assert finals_written_by(world, "localhost") == 0
    assert a.proc.poll() is None  # it lives on, holding nothing
    finals = [m for m in world.channel_messages() if is_final_grid(m)]
    assert len(finals) == JOBS


async def test_a_reply_left_thinking_is_recovered_only_by_its_jobs_lease_holder(
    world: World, pg_url: str
) -> None:
    """A process starting while another holds a job whose delivery row is missing (a kill
    between the two writes) leaves that job's reply alone: only the holder edits it."""
    a_base = world.env["DISCORD_API_BASE"].replace("127.0.0.1", "localhost")
    a = await world.start_bot(DATABASE_URL=pg_url, DISCORD_API_BASE=a_base)
    await world.discord.slash("imagine", {"prompt": "a held reply"}, user=MEMBERS[0])
    await world.discord.wait_for(lambda: len(world.piapi.created()) == 1, timeout=15)
    owners = await db_rows(pg_url, "SELECT DISTINCT owner FROM jobs")
    assert [o for (o,) in owners] == [owner_of(a, owners)]
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("DELETE FROM deliveries")
    finally:
        await conn.close()
    before_b = world.discord.requests[-1].seq
    b = await world.start_bot(DATABASE_URL=pg_url)
    await world.advance_piapi(3, settle=0.5)
    webhook_writes = [r for r in writes_from(world, "127.0.0.1", before_b) if "webhooks" in r.path]
    assert webhook_writes == [], b.log()[-3000:]
    assert "reply recovered after a restart" not in b.log()
