"""The bot's live processes on PostgreSQL (issue 17): Discord's global limit is per bot.

Every process sharing the database heartbeats its row in `bot_processes`; the processes
heard from within the lease period are alive, so each can pace Discord's global limit at
its share (`bot/discord/global_share.py`). A clean stop deletes the row; a process that
died ages out within the lease period, or at once when it ran on this host (no such pid).
Joins and leaves are announced on `PROCESSES_CHANNEL` so the others count again at once;
a global 429 one process receives is announced on `GLOBAL_LIMIT_CHANNEL`, so the others
hold back too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable

import asyncpg

from bot.store.postgres import PostgresDatabase, PostgresStore, dead_on_this_host

log = logging.getLogger(__name__)

PROCESSES_CHANNEL = "mjbot_processes"  # payload: the owner that joined or left
GLOBAL_LIMIT_CHANNEL = "mjbot_discord_global"  # payload: "<owner> <retry_after seconds>"
# Rows of processes gone this long are deleted by whoever heartbeats next.
_FORGET_AFTER_S = 3600.0

# The upsert and the look share one snapshot: the look does not see this process's own
# row as it is written, so it counts the others and this one is added.
_HEARTBEAT = """
WITH up AS (
    INSERT INTO bot_processes (owner, heartbeat_at) VALUES ($1, now())
    ON CONFLICT (owner) DO UPDATE SET heartbeat_at = now()
), gone AS (
    DELETE FROM bot_processes
    WHERE heartbeat_at < now() - make_interval(secs => $3) AND owner <> $1
)
SELECT owner FROM bot_processes
WHERE owner <> $1 AND heartbeat_at > now() - make_interval(secs => $2)
"""

Listen = Callable[[str, Callable[[str], None]], Awaitable[bool]]
DeadOwners = Callable[[Iterable[str]], list[str]]


class PgProcessRegistry:
    """`ProcessRegistry` (bot/discord/global_share.py) on PostgreSQL."""

    def __init__(
        self,
        db: PostgresDatabase,
        owner: str,
        *,
        live_s: float,
        listen_to: Listen,
        dead_owners: DeadOwners,
    ) -> None:
        self._db = db
        self._owner = owner
        self._live_s = live_s
        self._listen_to = listen_to
        self._dead_owners = dead_owners
        self._joined = False

    @property
    def owner(self) -> str:
        return self._owner

    async def heartbeat(self) -> int:
        """Say this process is alive; how many of the bot's processes are (itself too)."""

        async def work(conn: asyncpg.Connection) -> list[str]:
            rows = await conn.fetch(_HEARTBEAT, self._owner, self._live_s, _FORGET_AFTER_S)
            others = [str(r[0]) for r in rows]
            dead = self._dead_owners(others)
            if dead:  # gone from this host: no need to wait for their rows to age
                await conn.execute("DELETE FROM bot_processes WHERE owner = ANY($1)", dead)
            if not self._joined:
                await conn.execute("SELECT pg_notify($1, $2)", PROCESSES_CHANNEL, self._owner)
            return [o for o in others if o not in dead]

        others = await self._db.write(work)
        self._joined = True
        return 1 + len(others)

    async def leave(self) -> None:
        """A clean stop: this process's row goes, and the others count again at once."""

        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute("DELETE FROM bot_processes WHERE owner = $1", self._owner)
            await conn.execute("SELECT pg_notify($1, $2)", PROCESSES_CHANNEL, self._owner)

        await self._db.write(work)
        self._joined = False

    async def announce_global_limit(self, retry_after: float) -> None:
        payload = f"{self._owner} {retry_after:.3f}"

        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute("SELECT pg_notify($1, $2)", GLOBAL_LIMIT_CHANNEL, payload)

        await self._db.write_statement(work)

    async def listen(
        self, on_change: Callable[[], None], on_global_limit: Callable[[float], None]
    ) -> bool:
        """Hear the others join and leave, and their global 429s; False if not listening
        (the heartbeat still counts them)."""

        def changed(payload: str) -> None:
            if payload != self._owner:
                on_change()

        def limited(payload: str) -> None:
            owner, _, retry = payload.rpartition(" ")
            if owner == self._owner:
                return
            try:
                seconds = float(retry)
            except ValueError:
                return
            if math.isfinite(seconds):
                on_global_limit(seconds)

        if not await self._listen_to(PROCESSES_CHANNEL, changed):
            return False
        return await self._listen_to(GLOBAL_LIMIT_CHANNEL, limited)


def process_registry_of(store: object, live_s: float) -> PgProcessRegistry | None:
    """The registry of a PostgreSQL store (its lease owner id as this process's name);
    None for SQLite: one process has the whole limit."""
    if not isinstance(store, PostgresStore):
        return None
    return PgProcessRegistry(
        store.db,
        store.leases.owner,
        live_s=live_s,
        listen_to=store.leases.listen_to,
        dead_owners=dead_on_this_host,
    )
