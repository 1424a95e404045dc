"""The IDENTIFY bucket locks of `bot/discord/identify.py` on PostgreSQL: one session-level
advisory lock per bucket, each taken on a connection of its own (a pooled one changes hands,
and the unlock must come from the session that locked). A process that dies loses its
connection, and PostgreSQL frees its lock with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bot.store import is_postgres_url

if TYPE_CHECKING:
    import asyncpg

# The advisory lock's first key, so that the buckets' keys (bucket number as the second)
# never meet another lock of the bot's ("MJID").
IDENTIFY_LOCK_CLASS = 0x4D4A4944
# How long an IDENTIFY waits for its bucket: a turn is 5 s, so this is room for ~20 shards
# of one bucket starting at once; past it (a holder frozen mid-turn) the spacer gives up
# on the lock and falls back to waiting 5 s.
DEFAULT_WAIT_MS = 100_000


class PgIdentifyLocks:
    def __init__(self, database_url: str, *, wait_ms: int = DEFAULT_WAIT_MS) -> None:
        self._url = database_url
        self._wait_ms = wait_ms

    async def acquire(self, bucket: int) -> Callable[[], Awaitable[None]]:
        import asyncpg  # here: a SQLite deployment never loads asyncpg

        conn = await asyncpg.connect(
            self._url,
            server_settings={
                "lock_timeout": str(self._wait_ms),
                "application_name": "mj-discord-bot identify",
            },
        )
        try:
            await conn.execute("SELECT pg_advisory_lock($1, $2)", IDENTIFY_LOCK_CLASS, bucket)
        except BaseException:
            await _close(conn)
            raise

        async def release() -> None:
            # Closing the session would free the lock too; the unlock says so at once.
            with contextlib.suppress(Exception):
                await conn.execute("SELECT pg_advisory_unlock($1, $2)", IDENTIFY_LOCK_CLASS, bucket)
            await _close(conn)

        return release


async def _close(conn: asyncpg.Connection) -> None:
    with contextlib.suppress(Exception):
        await conn.close(timeout=5)


def identify_locks_of(database_url: str) -> PgIdentifyLocks | None:
    """The shared IDENTIFY locks for a PostgreSQL store; None for SQLite (one process:
    discord.py's own 5 s spacing between its shards is enough)."""
    return PgIdentifyLocks(database_url.strip()) if is_postgres_url(database_url) else None
