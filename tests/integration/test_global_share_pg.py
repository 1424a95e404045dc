"""Discord's global limit shared by the bot's processes (issue 17): the registry of
bot/store/pg_processes.py on a fresh database of the throwaway cluster (tests/pg.py), and
the ledgers of bot/discord/global_share.py over it. Each "process" is a store of its own
(its own pool, owner id and LISTEN connection), as two bot processes would have.

Ageing is done on the database's clock by moving a heartbeat back, not by waiting; the
ledgers run on a clock the test holds."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from bot.discord.global_share import GlobalShare
from bot.discord.rate_limits import GLOBAL_LIMIT_PER_S, BucketLedger
from bot.store.pg_processes import PgProcessRegistry, process_registry_of
from bot.store.postgres import PostgresStore, open_postgres_store

LIVE_S = 30.0  # the lease period: heard from within it = alive
WAIT_LIMIT_S = 10.0  # bound on every wait for a notification to arrive


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def until(check: Callable[[], bool | Awaitable[bool]]) -> None:
    async with asyncio.timeout(WAIT_LIMIT_S):
        while True:
            result = check()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.02)  # a NOTIFY from another connection: nothing to await


@pytest.fixture
async def stores(pg_url: str) -> AsyncIterator[list[PostgresStore]]:
    opened = [await open_postgres_store(pg_url) for _ in range(3)]
    for store in opened:
        await store.leases.listen(lambda: None)  # the LISTEN connection listen_to uses
    try:
        yield opened
    finally:
        for store in opened:
            await store.close()


def registry(store: PostgresStore) -> PgProcessRegistry:
    found = process_registry_of(store, live_s=LIVE_S)
    assert found is not None
    return found


async def age(pg_url: str, owner: str, seconds: float) -> None:
    """Move `owner`'s last heartbeat `seconds` back on the database's clock."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "UPDATE bot_processes SET heartbeat_at = heartbeat_at - make_interval(secs => $2)"
            " WHERE owner = $1",
            owner,
            seconds,
        )
    finally:
        await conn.close()


async def owners(pg_url: str) -> list[str]:
    conn = await asyncpg.connect(pg_url)
    try:
        return [str(r[0]) for r in await conn.fetch("SELECT owner FROM bot_processes ORDER BY 1")]
    finally:
        await conn.close()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=10)
    return proc.pid


async def test_registries_see_each_other_and_a_dead_one_ages_out(
    stores: list[PostgresStore], pg_url: str
) -> None:
    a, b, _ = (registry(s) for s in stores)
    assert await a.heartbeat() == 1
    assert await b.heartbeat() == 2
    assert await a.heartbeat() == 2
    # B stops heartbeating (kill -9): still counted within the lease period ...
    await age(pg_url, b.owner, LIVE_S - 5)
    assert await a.heartbeat() == 2
    # ... and no longer after it.
    await age(pg_url, b.owner, 10)
    assert await a.heartbeat() == 1
    # A process that died on this host (no such pid) is not waited for: its row goes.
    gone = f"{socket.gethostname()}:{dead_pid()}:deadbeef"
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("INSERT INTO bot_processes (owner) VALUES ($1)", gone)
    finally:
        await conn.close()
    assert await a.heartbeat() == 1
    assert gone not in await owners(pg_url)
    # A clean stop deletes the row at once.
    assert await b.heartbeat() == 2
    await b.leave()
    assert await a.heartbeat() == 1
    assert await owners(pg_url) == [a.owner]


def learn_route(ledger: BucketLedger, clock: Clock) -> None:
    """One answer without a bucket (as for any route Discord keeps no bucket on): after
    it, only the global limit holds the route's requests back."""
    write = ledger.classify("GET", "https://discord.com/api/v10/users/@me")
    assert write is not None
    ledger.settle(ledger.reserve(write), 200, {})
    clock.now += 2.0  # out of every window


def sendable_now(ledger: BucketLedger) -> int:
    """How many bot-token requests the ledger lets out at once (reserving them)."""
    write = ledger.classify("GET", "https://discord.com/api/v10/users/@me")
    assert write is not None and write.bot_token
    sent = 0
    while ledger.wait_for(write)[0] == 0 and sent < 2 * GLOBAL_LIMIT_PER_S:
        ledger.reserve(write)
        sent += 1
    return sent


async def test_each_ledger_paces_at_its_share_and_the_survivor_gets_it_all_back(
    stores: list[PostgresStore], pg_url: str
) -> None:
    clocks = [Clock(), Clock(), Clock()]
    ledgers = [BucketLedger(clock=c) for c in clocks]
    shares = [
        GlobalShare(ledger, registry(store), interval_s=3600, monotonic=clock)
        for ledger, store, clock in zip(ledgers, stores, clocks, strict=False)
    ]
    await shares[0].start()
    assert ledgers[0].global_per_s == GLOBAL_LIMIT_PER_S  # alone: the whole limit
    await shares[1].start()
    # B's join is heard by A at once (NOTIFY), long before A's own next heartbeat.
    await until(lambda: ledgers[0].global_per_s == 24)
    assert ledgers[1].global_per_s == 24  # floor(50 x 0.96 / 2)
    await shares[2].start()
    await until(lambda: all(ledger.global_per_s == 16 for ledger in ledgers))
    for ledger, clock in zip(ledgers, clocks, strict=True):
        learn_route(ledger, clock)
    assert [sendable_now(ledger) for ledger in ledgers] == [16, 16, 16]  # 48 in all
    # C stops cleanly: A and B get its share at once.
    await shares[2].stop()
    await until(lambda: ledgers[0].global_per_s == 24 and ledgers[1].global_per_s == 24)
    # B dies (no leave): counted until its heartbeat is older than the lease period; A's
    # next heartbeat after that gives A the whole limit back.
    task = shares[1]._task
    assert task is not None
    task.cancel()
    await age(pg_url, registry(stores[1]).owner, LIVE_S + 1)
    shares[0]._wake.set()  # A's next heartbeat (every interval_s)
    await until(lambda: ledgers[0].global_per_s == GLOBAL_LIMIT_PER_S)
    for clock in clocks:
        clock.now += 2.0  # the sends above are out of every window
    assert sendable_now(ledgers[0]) == GLOBAL_LIMIT_PER_S
    await shares[0].stop()


async def test_a_global_429_at_one_process_holds_back_the_others(
    stores: list[PostgresStore],
) -> None:
    clocks = [Clock(), Clock()]
    ledgers = [BucketLedger(clock=c) for c in clocks]
    shares = [
        GlobalShare(ledger, registry(store), interval_s=3600, monotonic=clock)
        for ledger, store, clock in zip(ledgers, stores, clocks, strict=False)
    ]
    for share in shares:
        await share.start()
    for ledger, clock in zip(ledgers, clocks, strict=True):
        learn_route(ledger, clock)
    write = ledgers[0].classify("GET", "https://discord.com/api/v10/users/@me")
    assert write is not None
    assert ledgers[1].wait_for(write)[0] == 0
    # A meets the global limit: Discord's 429 says 3 s.
    ticket = ledgers[0].reserve(write)
    ledgers[0].settle(
        ticket,
        429,
        {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global", "Retry-After": "3"},
    )
    assert ledgers[0].wait_for(write)[0] == pytest.approx(3.0)
    # B hears of it and holds back its bot-token requests as long; interaction routes
    # stay exempt.
    await until(lambda: (ledgers[1].wait_for(write)[0] or 0) > 2.5)
    token_write = ledgers[1].webhook_write("PATCH", "tok", message=True)
    assert ledgers[1].wait_for(token_write)[0] == 0
    clocks[1].now += 3.0
    assert ledgers[1].wait_for(write)[0] == 0
    for share in shares:
        await share.stop()
