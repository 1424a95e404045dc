"""One account limit and one members' round-robin for three real bot processes on one
PostgreSQL (issue 17), against the fake Discord and the fake PiAPI.

The same submissions run twice in one test: through one process on SQLite (the engine's
own FairQueue, the reference) and through three processes on PostgreSQL (the database's
dispatch). Each process is started in turn and takes the commands while it is the newest
gateway session (the fake sends interactions there), so every process creates jobs.

The fake provider's clock stands still while the jobs are submitted; then it is moved to
the end of the next task each time, so that exactly one slot frees at a time and the
order of the creates is the queue's order, not a race. From the fake's own record of its
tasks: never more in flight than MJ_MAX_CONCURRENT_JOBS, and the creates by member in the
same order as one process gives. The figures are printed (pytest -s).
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from bot.engine.fair_queue import FairQueue
from tests.e2e.conftest import World, open_world
from tests.e2e.test_imagine import is_final_grid
from tests.fakes.discord.models import InteractionRecord, MessageRecord

LIMIT = 2
# (member, process that takes the command); the fake Discord's guild members.
SUBMISSIONS = [
    ("tester", 0),
    ("tester", 0),
    ("tester", 0),
    ("artist", 0),
    ("artist", 1),
    ("other", 1),
    ("admin", 1),
    ("other", 1),
    ("artist", 2),
    ("other", 2),
    ("admin", 2),
]
# FairQueue for these submissions: the first two go at once, then one lane after another.
EXPECTED = [
    "tester",
    "tester",
    "tester",
    "artist",
    "other",
    "admin",
    "artist",
    "other",
    "admin",
    "artist",
    "other",
]
_PROMPT = re.compile(r"job (\d+)")

Count = Callable[[], Awaitable[int]]


def sqlite_count(path: Path) -> Count:
    async def count() -> int:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])

    return count


def pg_count(url: str) -> Count:
    async def count() -> int:
        return len(await pg_rows(url, "SELECT id FROM jobs"))

    return count


async def pg_rows(url: str, sql: str) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def submit_all(
    world: World, processes: int, count: Count, **env: str
) -> list[InteractionRecord]:
    """Each submission once stored (and, while slots are free, sent) before the next; the
    provider's clock moves a second after each, so no two tasks end at the same time."""
    interactions: list[InteractionRecord] = []
    started = 0
    for n, (member, process) in enumerate(SUBMISSIONS):
        while started <= min(process, processes - 1):
            await world.start_bot(MJ_MAX_CONCURRENT_JOBS=str(LIMIT), **env)
            started += 1
        interactions.append(
            await world.discord.slash("imagine", {"prompt": f"job {n}"}, user=member)
        )
        await wait_until(world, functools.partial(count_is, count, n + 1), f"job {n} stored")
        # While slots are free it is sent; more than the limit shows in the peak below.
        await world.discord.wait_for(sent_at_least(world, min(n + 1, LIMIT)), timeout=15)
        world.clock.advance(1.0)
    return interactions


def sent_at_least(world: World, wanted: int) -> Callable[[], bool]:
    return lambda: len(world.piapi.created()) >= wanted


def sent_more_than(world: World, before: int) -> Callable[[], bool]:
    return lambda: len(world.piapi.created()) > before


def final_on(world: World, interaction: InteractionRecord) -> Callable[[MessageRecord], bool]:
    return lambda m: m.id == interaction.original_message_id and is_final_grid(m)


async def count_is(count: Count, wanted: int) -> bool:
    return await count() == wanted


async def wait_until(world: World, check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(300):  # bounded: 15 s
        if await check():
            return
        await asyncio.sleep(0.05)  # polling a database the bots write
    logs = "\n".join(b.log()[-3000:] for b in world.bots)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


async def drain(world: World) -> None:
    """Move the provider's clock to the end of the next task, one at a time; each end frees
    one slot, and the next job must be sent before the clock moves again."""
    while True:
        now = world.clock.time()
        running = [
            t for t in world.piapi.tasks.values() if t.status(now) in ("pending", "processing")
        ]
        if not running:
            return
        created = len(world.piapi.created())
        world.clock.advance(min(t.ended_at for t in running) - now + 0.01)
        if created < len(SUBMISSIONS):
            await world.discord.wait_for(
                sent_more_than(world, created),
                timeout=20,
                what="the next job sent after a slot freed",
            )


def creates_by_member(world: World) -> list[str]:
    members = []
    for record in world.piapi.created():
        assert record.task_id is not None
        match = _PROMPT.search(world.piapi.tasks[record.task_id].input["prompt"])
        assert match is not None
        members.append(SUBMISSIONS[int(match.group(1))][0])
    return members


def most_in_flight(world: World) -> int:
    """From the fake's tasks: the most that were pending or processing at one instant."""
    tasks = list(world.piapi.tasks.values())
    return max(sum(1 for t in tasks if t.created_at <= s.created_at < t.ended_at) for s in tasks)


async def finish_and_check(world: World, interactions: list[InteractionRecord]) -> None:
    for interaction in interactions:
        await world.wait_message(
            final_on(world, interaction),
            limit_s=30,
            what="the final grid on the original message",
        )
    prompts = [world.piapi.tasks[str(r.task_id)].input["prompt"] for r in world.piapi.created()]
    assert len(prompts) == len(SUBMISSIONS) and len(set(prompts)) == len(SUBMISSIONS)


def fair_positions() -> dict[int, int]:
    """What FairQueue says each waiting submission's position is once all are in."""
    queue = FairQueue()
    for n, (member, _) in enumerate(SUBMISSIONS):
        queue.push(str(n), member)
        if n < LIMIT:
            assert queue.pop() == str(n)  # a free slot: sent at once
    return {int(job): position for job, position in queue.positions().items()}


async def positions_shown(world: World, interactions: list[InteractionRecord]) -> None:
    """Every waiting job's message shows its place in the one queue (each process shows
    only its own jobs, with positions read from the database)."""
    for n, position in sorted(fair_positions().items()):
        await world.wait_message(
            showing(interactions[n], f"Queued (position {position})"),
            limit_s=15,
            what=f"job {n} shown at position {position}",
        )


def showing(interaction: InteractionRecord, text: str) -> Callable[[MessageRecord], bool]:
    return lambda m: m.id == interaction.original_message_id and text in m.content


async def run(world: World, processes: int, count: Count, **env: str) -> tuple[list[str], int]:
    interactions = await submit_all(world, processes, count, **env)
    await positions_shown(world, interactions)
    await drain(world)
    await finish_and_check(world, interactions)
    return creates_by_member(world), most_in_flight(world)


async def test_three_processes_share_one_limit_and_one_round_robin(
    tmp_path: Path, pg_url: str
) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "three").mkdir()
    async with open_world(tmp_path / "one") as world:
        one_order, one_peak = await run(world, 1, sqlite_count(tmp_path / "one" / "bot.db"))
    async with open_world(tmp_path / "three") as world:
        three_order, three_peak = await run(world, 3, pg_count(pg_url), DATABASE_URL=pg_url)
        sent_by = [len(re.findall(r"job \w+ imagine: submitted as", b.log())) for b in world.bots]
        slots = await pg_rows(pg_url, "SELECT id FROM jobs WHERE slot_account IS NOT NULL")
        statuses = await pg_rows(pg_url, "SELECT DISTINCT status FROM jobs")
    for label, order, peak in (
        ("one process (SQLite)", one_order, one_peak),
        ("three processes (PostgreSQL)", three_order, three_peak),
    ):
        print(f"\n{label}: creates by member {' '.join(order)}; at most {peak} in flight")
    assert one_order == EXPECTED  # FairQueue's order
    assert three_order == one_order
    assert one_peak == LIMIT and three_peak == LIMIT  # reached, never passed
    assert statuses == [("completed",)] and slots == []
    # Each process sent exactly the jobs it created (their lease holder, their editor).
    assert sent_by == [sum(1 for _, p in SUBMISSIONS if p == i) for i in range(3)]
