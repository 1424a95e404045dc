"""PostgreSQL for bench.load's multi-process runs (issue 17): a database per run, on the
server `--database` names or on a throwaway cluster started like the tests' (tests/pg.py,
with pg_stat_statements preloaded); what the database itself counted over a run; and
which process held how many jobs.

Statements are counted by pg_stat_statements when the server has it loaded (calls of every
statement in the run's database, BEGIN/COMMIT included, the harness's own reads left out);
otherwise by pg_stat_database's committed + rolled-back transactions, which the table then
names as such: a transaction holds one or more statements.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tests.pg import ClusterUnavailable, PgCluster, destroy, start_cluster

PRELOAD = ("shared_preload_libraries=pg_stat_statements",)
_numbers = itertools.count(1)
# The harness's own statements carry this comment (pg_stat_statements keeps it) and are
# left out of the count.
TAG = "/* bench.load */"
_OURS = f"query NOT LIKE '%{TAG}%'"


class PgServer:
    """Where the runs' databases are made: `--database`'s server, or a throwaway cluster."""

    def __init__(self, admin_url: str, cluster: PgCluster | None = None) -> None:
        self.admin_url = admin_url
        self.cluster = cluster

    @property
    def origin(self) -> str:
        if self.cluster is not None:
            return "a throwaway cluster (tests/pg.py, pg_stat_statements preloaded)"
        parts = urlsplit(self.admin_url)
        return f"--database ({parts.hostname}:{parts.port or 5432})"

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[str]:
        """A new, empty database for one run, dropped after it."""
        name = f"bench_{os.getpid()}_{next(_numbers)}"
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        finally:
            await conn.close()
        parts = urlsplit(self.admin_url)
        try:
            yield urlunsplit(parts._replace(path=f"/{name}"))
        finally:
            conn = await asyncpg.connect(self.admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()


@contextlib.asynccontextmanager
async def pg_server(database_url: str | None) -> AsyncIterator[PgServer]:
    if database_url is not None:
        yield PgServer(database_url)
        return
    try:
        cluster = await asyncio.to_thread(start_cluster, PRELOAD)
    except ClusterUnavailable as exc:
        raise SystemExit(f"--processes needs PostgreSQL: {exc}; or pass --database") from None
    try:
        yield PgServer(cluster.url(), cluster)
    finally:
        await asyncio.to_thread(destroy, cluster)


@dataclass
class StatementCount:
    source: str  # "pg_stat_statements" or "transactions (pg_stat_database)"
    total: int
    top: list[tuple[int, str]] = field(default_factory=list)  # (calls, query), busiest first


class PgCounter:
    """What the run's database did between `start()` and `stop()`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._statements = False
        self._xacts = 0

    async def start(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                await conn.execute("SELECT pg_stat_statements_reset()")
                await conn.fetchval(f"SELECT count(*) FROM pg_stat_statements {TAG}")
                self._statements = True
            except asyncpg.PostgresError:  # not preloaded on this server
                self._statements = False
            self._xacts = await _xacts(conn)
        finally:
            await conn.close()

    async def stop(self) -> StatementCount:
        conn = await asyncpg.connect(self.url)
        try:
            if not self._statements:
                used = await _xacts(conn) - self._xacts
                return StatementCount("transactions (pg_stat_database)", used)
            rows = await conn.fetch(
                f"SELECT calls, query FROM pg_stat_statements {TAG} WHERE dbid = (SELECT oid"
                f" FROM pg_database WHERE datname = current_database()) AND {_OURS}"
                " ORDER BY calls DESC"
            )
        finally:
            await conn.close()
        top = [(int(r["calls"]), " ".join(str(r["query"]).split())) for r in rows]
        return StatementCount("pg_stat_statements", sum(c for c, _ in top), top[:8])


async def _xacts(conn: asyncpg.Connection) -> int:
    # The statistics collector reports with a delay; a snapshot is what it has now.
    value = await conn.fetchval(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database"
        " WHERE datname = current_database()"
    )
    return int(value or 0)


@dataclass
class HeldJobs:
    """Jobs each process held at once (by the pid in its lease owner), the most seen."""

    url: str
    interval_s: float = 1.0
    peak: dict[int, int] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="held-jobs")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            while True:
                rows = await conn.fetch(
                    f"SELECT owner, count(*) AS n FROM jobs {TAG} WHERE owner IS NOT NULL"
                    " GROUP BY owner"
                )
                for row in rows:
                    pid = _pid_of(str(row["owner"]))
                    if pid is not None:
                        self.peak[pid] = max(self.peak.get(pid, 0), int(row["n"]))
                await asyncio.sleep(self.interval_s)
        finally:
            await conn.close()


def _pid_of(owner: str) -> int | None:
    """host:pid:token, as bot/store/postgres.py's new_owner_id makes it."""
    parts = owner.split(":")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None
