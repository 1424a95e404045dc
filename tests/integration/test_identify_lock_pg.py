"""IDENTIFY spaced across processes (issue 17): the spacer of bot/discord/identify.py over the
PostgreSQL advisory locks of bot/store/pg_identify.py, on a fresh database of the throwaway
cluster (tests/pg.py). Each spacer takes its locks on connections of its own, as two
processes would. Its 5 s hold is a sleep the test ends by hand, so nothing waits on time:
"the other one waits" is read from pg_locks, where PostgreSQL shows the waiting lock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg

from bot.discord.identify import IDENTIFY_INTERVAL_S, IdentifySpacer
from bot.store.pg_identify import IDENTIFY_LOCK_CLASS, PgIdentifyLocks, identify_locks_of

WAIT_LIMIT_S = 10.0  # bound on every wait for the database to show a state


class HeldSleep:
    """The spacer's sleep: returns only when the test says so; records what was asked."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self._over = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await self._over.wait()

    def end(self) -> None:
        self._over.set()


def spacer(url: str, concurrency: int = 1, **locks: int) -> tuple[IdentifySpacer, HeldSleep]:
    sleep = HeldSleep()

    async def max_concurrency() -> int:
        return concurrency

    return IdentifySpacer(PgIdentifyLocks(url, **locks), max_concurrency, sleep=sleep), sleep


async def identify_locks(url: str, *, granted: bool) -> list[int]:
    """The buckets whose IDENTIFY lock is held (granted) or waited for, as pg_locks says."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT objid::bigint AS bucket FROM pg_locks WHERE locktype = 'advisory'"
            " AND classid::bigint = $1 AND objsubid = 2 AND granted = $2 ORDER BY 1",
            IDENTIFY_LOCK_CLASS,
            granted,
        )
        return [int(r["bucket"]) for r in rows]
    finally:
        await conn.close()


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(WAIT_LIMIT_S):
        while not await check():  # noqa: ASYNC110 - the state is the database's, no event
            await asyncio.sleep(0.02)


async def test_the_second_process_identifies_only_after_the_first_s_5_s(pg_url: str) -> None:
    a, a_hold = spacer(pg_url)
    b, b_hold = spacer(pg_url)
    await a.before_identify(0)  # A may IDENTIFY; its bucket stays locked
    assert a.holding == 1
    b_turn = asyncio.create_task(b.before_identify(1))  # shard 1, the same bucket (max 1)

    async def b_waits() -> bool:
        return await identify_locks(pg_url, granted=False) == [0]

    await until(b_waits)
    assert not b_turn.done() and a_hold.asked == [IDENTIFY_INTERVAL_S + 0.25]
    a_hold.end()  # A's 5 s are over
    async with asyncio.timeout(WAIT_LIMIT_S):
        await b_turn
    assert await identify_locks(pg_url, granted=True) == [0]  # now B's
    assert a.holding == 0 and b.holding == 1
    b_hold.end()
    await b.close()

    async def nothing_held() -> bool:
        return await identify_locks(pg_url, granted=True) == []

    await until(nothing_held)


async def test_buckets_of_max_concurrency_do_not_wait_for_each_other(pg_url: str) -> None:
    a, a_hold = spacer(pg_url, concurrency=2)
    b, _ = spacer(pg_url, concurrency=2)
    await a.before_identify(0)  # bucket 0
    async with asyncio.timeout(WAIT_LIMIT_S):
        await b.before_identify(1)  # bucket 1: at once
    assert await identify_locks(pg_url, granted=True) == [0, 1]
    third = asyncio.create_task(b.before_identify(2))  # bucket 0 again: waits for A

    async def third_waits() -> bool:
        return await identify_locks(pg_url, granted=False) == [0]

    await until(third_waits)
    assert not third.done()
    a_hold.end()
    async with asyncio.timeout(WAIT_LIMIT_S):
        await third
    await a.close()
    await b.close()


async def a_holds_and_b_waits(
    pg_url: str,
) -> tuple[IdentifySpacer, IdentifySpacer, asyncio.Task[None]]:
    """Process A holding bucket 0 after its IDENTIFY; B's turn waiting on the lock."""
    a, _ = spacer(pg_url)
    b, _ = spacer(pg_url)
    await a.before_identify(0)
    b_turn = asyncio.create_task(b.before_identify(0))

    async def b_waits() -> bool:
        return await identify_locks(pg_url, granted=False) == [0]

    await until(b_waits)
    return a, b, b_turn


async def test_a_process_that_dies_holding_its_bucket_frees_it(pg_url: str) -> None:
    a, b, b_turn = await a_holds_and_b_waits(pg_url)
    # A's session ends as a kill -9 ends it: the server drops the connection.
    conn = await asyncpg.connect(pg_url)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l WHERE l.granted"
            " AND l.locktype = 'advisory' AND l.classid::bigint = $1",
            IDENTIFY_LOCK_CLASS,
        )
    finally:
        await conn.close()
    assert killed == 1
    async with asyncio.timeout(WAIT_LIMIT_S):
        await b_turn
    assert b.holding == 1
    await a.close()
    await b.close()


async def test_a_closing_process_lets_go_of_its_bucket_at_once(pg_url: str) -> None:
    a, b, b_turn = await a_holds_and_b_waits(pg_url)
    await a.close()  # its 5 s hold is never ended: close must not wait for it
    async with asyncio.timeout(WAIT_LIMIT_S):
        await b_turn
    await b.close()


async def test_a_wait_past_the_limit_falls_back_to_discord_py_s_5_s(pg_url: str) -> None:
    a, _ = spacer(pg_url)
    b, b_sleep = spacer(pg_url, wait_ms=200)  # PostgreSQL's lock_timeout on B's lock
    await a.before_identify(0)
    fallback = asyncio.create_task(b.before_identify(0))

    async def b_sleeps() -> bool:
        return b_sleep.asked == [IDENTIFY_INTERVAL_S]

    await until(b_sleeps)  # B gave up on the lock and waits 5 s instead
    assert b.holding == 0
    b_sleep.end()
    async with asyncio.timeout(WAIT_LIMIT_S):
        await fallback
    await a.close()


async def test_an_unreadable_max_concurrency_puts_every_shard_in_one_bucket(pg_url: str) -> None:
    async def unreadable() -> int:
        raise ConnectionError("gateway/bot")

    locks = identify_locks_of(pg_url)
    assert locks is not None
    spaced = IdentifySpacer(locks, unreadable)
    assert [await spaced.bucket_of(s) for s in (0, 1, 2, None)] == [0, 0, 0, 0]
    assert identify_locks_of("sqlite:///tmp/bot.db") is None
