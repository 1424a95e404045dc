"""The PostgreSQL store: an asyncpg pool behind the same repositories as the SQLite one.

Chosen by DATABASE_URL=postgresql://user:pass@host/db (or postgres://). It keeps every
promise of `bot.store.sqlite`:

- a write that runs several statements is one transaction, rolled back on any error
  (a cancelled task included); single-statement writes run in autocommit, one trip each;
- an idempotency key is claimed by the unique index (`ON CONFLICT DO NOTHING`), so of two
  inserts with one key exactly one creates a job, in one process or across several;
- a write that meets a lock (another writer, a migration, an admin's `LOCK TABLE`) waits
  up to `lock_timeout_ms` per attempt and is retried `lock_retries` times, then raises
  `StoreBusyError`; a deadlock or serialisation failure is retried the same way. A write
  is never dropped;
- reads see committed rows only and never queue behind an open write;
- writes of one row from one process apply in the order they were asked for (SQLite's one
  connection gives that for free; the pool would not, so each row has a FIFO lock here).

Migrations are the numbered files in `bot/store/migrations_pg/`, applied at open under an
advisory lock, each in one transaction with its `schema_migrations` row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import asyncpg

from bot.community import DAY_SECONDS, FAST_MODES, GuildSettings, SettingsEdit, utc_day_start
from bot.domain import VIDEO_KINDS, ErrorCode, Job, JobStatus
from bot.store.base import (
    UNSPENT_JOB_SQL,
    AuditEntry,
    ClaimedJob,
    DailyUsage,
    Delivery,
    JobExistsError,
    JobNotFoundError,
    LeaseLostError,
    MemberPrefs,
    MigrationError,
    QuotaCounts,
    SchemaVersionError,
    StoreBusyError,
    StoreError,
    StoreUnavailableError,
    UsageSummary,
    VideoCounts,
)
from bot.store.pg_queue import PostgresSharedQueue
from bot.store.serialize import job_from_dict, job_to_dict

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[asyncpg.Connection], Awaitable[T]]

SCHEMES = ("postgresql", "postgres")
DEFAULT_LOCK_TIMEOUT_MS = 5000
DEFAULT_LOCK_RETRIES = 5
DEFAULT_RETRY_BACKOFF = 0.05
DEFAULT_POOL_SIZE = 10
_MAX_BACKOFF = 1.0
# pg_advisory_lock key that serialises migrations between processes ("mjbotmig").
_MIGRATION_LOCK = 0x6D6A626F746D6967

# Waiting for a lock, a deadlock, a serialisation failure: the statement applied nothing
# and the same write may simply be tried again.
_BUSY_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)
# The server is gone or cannot be reached: said as StoreUnavailableError, without the URL's
# secret.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InternalClientError,  # see PostgresDatabase._attempt
)
# The server answers but cannot take the write: disk full, out of memory, or a read-only
# server (a standby after a failover, default_transaction_read_only).
_CANNOT_WRITE: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)


# --- locating the database --------------------------------------------------------------


def is_postgres_url(database_url: str) -> bool:
    return database_url.strip().lower().startswith(tuple(f"{s}://" for s in SCHEMES))


def redact_url(database_url: str) -> str:
    """The URL with its password (in the authority or the query) replaced by ***."""
    try:
        parts = urlsplit(database_url.strip())
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{host}"
        query = [
            (k, "***" if k.lower() == "password" else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, quote_via=quote), ""))
    except ValueError:
        return "(an unreadable database URL)"


def _where(database_url: str) -> str:
    """host:port/database for messages: never the user's password."""
    try:
        parts = urlsplit(database_url.strip())
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"
    except ValueError:
        return "(an unreadable database URL)"


# --- migrations -------------------------------------------------------------------------

_MIGRATION_NAME = re.compile(r"^(\d+)_([A-Za-z0-9_\-]+)\.sql$")


@dataclass(frozen=True, slots=True)
class PgMigration:
    version: int
    name: str
    sql: str


def load_pg_migrations() -> list[PgMigration]:
    """The numbered `.sql` files shipped in `bot/store/migrations_pg/`, in version order."""
    folder = resources.files("bot.store").joinpath("migrations_pg")
    found = [
        PgMigration(int(match.group(1)), entry.name, entry.read_text("utf-8"))
        for entry in folder.iterdir()
        if (match := _MIGRATION_NAME.match(entry.name)) is not None and entry.is_file()
    ]
    _check_versions(found)
    return sorted(found, key=lambda m: m.version)


def _check_versions(migrations: Sequence[PgMigration]) -> None:
    seen: dict[int, str] = {}
    for migration in migrations:
        if migration.version <= 0:
            raise MigrationError(f"migration {migration.name}: version must be positive")
        if migration.version in seen:
            raise MigrationError(
                f"migrations {seen[migration.version]} and {migration.name} share "
                f"version {migration.version}"
            )
        seen[migration.version] = migration.name


async def apply_pg_migrations(
    conn: asyncpg.Connection, migrations: Sequence[PgMigration]
) -> list[int]:
    """Bring the schema up to date; returns the versions applied now (none if current).

    An advisory lock makes processes starting together migrate one after the other; each
    migration and its schema_migrations row commit together (DDL is transactional here).
    """
    _check_versions(migrations)
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at DOUBLE PRECISION NOT NULL)"
        )
        recorded = {int(r[0]) for r in await conn.fetch("SELECT version FROM schema_migrations")}
        _refuse_unknown(recorded, {m.version for m in migrations})
        applied: list[int] = []
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in recorded:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at)"
                        " VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        time.time(),
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
            applied.append(migration.version)
            log.info("applied PostgreSQL migration %s", migration.name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


def _refuse_unknown(recorded: set[int], known: set[int]) -> None:
    unknown = sorted(recorded - known)
    if not unknown:
        return
    newest_known = max(known, default=0)
    if unknown[-1] > newest_known:
        raise SchemaVersionError(
            f"the database is at schema version {unknown[-1]}, newer than this code "
            f"(which knows up to {newest_known}); run a newer bot or use another database"
        )
    raise SchemaVersionError(
        f"the database records migration(s) {unknown} that this code does not have"
    )


# --- the pool ---------------------------------------------------------------------------


class _RowLocks:
    """One FIFO lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class PostgresDatabase:
    """An asyncpg pool that runs transactions and statements, retrying on locks."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        where: str,
        *,
        lock_retries: int = DEFAULT_LOCK_RETRIES,
        retry_backoff: float = DEFAULT_RETRY_BACKOFF,
    ) -> None:
        if lock_retries < 0:
            raise ValueError("lock_retries must be >= 0")
        self.pool = pool
        self.where = where  # host:port/db, for messages
        self.rows = _RowLocks()
        self._lock_retries = lock_retries
        self._retry_backoff = retry_backoff
        self._closed = False
        # How often a lock made us try again; for tests and diagnostics.
        self.busy_retries = 0
        # Why the last operation failed (server unreachable, disk full, read-only), until
        # one succeeds again: what /healthz reports.
        self._problem: str | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def storage_problem(self) -> str | None:
        """Why the database failed the last operation, or None while it works."""
        return self._problem

    async def write(self, work: Work[T]) -> T:
        """Run `work` in one transaction, rolled back on error; `work` may run more than once."""
        return await self._run(work, transaction=True)

    async def write_statement(self, work: Work[T]) -> T:
        """Run `work`, which must execute exactly ONE writing statement, in autocommit."""
        return await self._run(work, transaction=False)

    async def read(self, work: Work[T]) -> T:
        """Run `work` outside a transaction: each statement sees what is committed."""
        return await self._run(work, transaction=False)

    async def _run(self, work: Work[T], *, transaction: bool) -> T:
        if self._closed:
            raise RuntimeError("the store is closed")
        attempt = 0
        while True:
            try:
                result = await self._attempt(work, transaction=transaction)
            except _BUSY_ERRORS as exc:
                if attempt >= self._lock_retries:
                    raise StoreBusyError(
                        f"database stayed locked after {attempt + 1} attempts: {exc}"
                    ) from exc
                await self._back_off(exc, attempt)
                attempt += 1
                continue
            except _UNREACHABLE as exc:
                # A connection lost during COMMIT leaves its outcome unknown; every other
                # case (refused, lost before or during the statement) saved nothing.
                raise self._unreachable(exc) from exc
            except _CANNOT_WRITE as exc:
                raise self._read_only(exc) from exc
            self._problem = None
            return result

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """`async with db.transaction() as conn:` — the caller's block in one transaction on
        one pooled connection (for `SELECT … FOR UPDATE` read-modify-writes), committed on
        normal exit, rolled back on an exception. Not retried: the block is the caller's."""
        if self._closed:
            raise RuntimeError("the store is closed")
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                yield conn
        except _BUSY_ERRORS as exc:
            raise StoreBusyError(f"database stayed locked: {exc}") from exc
        except _UNREACHABLE as exc:
            raise self._unreachable(exc) from exc
        except _CANNOT_WRITE as exc:
            raise self._read_only(exc) from exc
        self._problem = None

    def _unreachable(self, exc: BaseException) -> StoreUnavailableError:
        """A lost or refused connection, remembered for /healthz until a write succeeds."""
        why = _CLOSED if isinstance(exc, asyncpg.InternalClientError) else str(exc)
        self._problem = f"PostgreSQL at {self.where} is unreachable ({why})"
        return StoreUnavailableError(self._problem)

    def _read_only(self, exc: BaseException) -> StoreUnavailableError:
        """A server that takes no writes (read-only, disk full), remembered as above."""
        self._problem = f"PostgreSQL at {self.where} cannot take writes ({exc})"
        return StoreUnavailableError(f"nothing was saved: {self._problem}")

    async def _back_off(self, exc: Exception, attempt: int) -> None:
        delay = min(_MAX_BACKOFF, self._retry_backoff * 2**attempt)
        self.busy_retries += 1
        log.warning(
            "database is locked (%s); retry %d/%d in %.2fs",
            exc,
            attempt + 1,
            self._lock_retries,
            delay,
        )
        await asyncio.sleep(delay)

    async def _attempt(self, work: Work[T], *, transaction: bool) -> T:
        async with self.pool.acquire() as conn:
            try:
                return await self._on(conn, work, transaction=transaction)
            except asyncpg.exceptions.InternalClientError:
                # The server closed the connection as we used it (pg_terminate_backend, a
                # failover): asyncpg's state is broken; the pool opens a new one next time.
                conn.terminate()
                raise

    async def _on(self, conn: asyncpg.Connection, work: Work[T], *, transaction: bool) -> T:
        if not transaction:
            return await work(conn)
        # Not `async with conn.transaction()`: on a connection that died mid-work its
        # exit raises "connection is closed" over the real error.
        tx = conn.transaction()
        await tx.start()
        try:
            result = await work(conn)
        except BaseException:
            # BaseException too: a cancelled task must not leave the transaction open.
            try:
                await tx.rollback()
            except asyncpg.InterfaceError:
                pass  # the connection died, and its transaction with it on the server
            except Exception:  # the pool's release rolls back, or drops the connection
                log.warning("rollback failed", exc_info=True)
            raise
        await tx.commit()
        return result

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self.pool.close(), timeout=10)
        except TimeoutError:
            log.warning("PostgreSQL pool did not close within 10 s; terminating it")
            self.pool.terminate()


_CLOSED = "the server closed the connection"


def _t(value: object) -> str | None:
    """A value for a TEXT column. Like SQLite's column affinity, a number becomes its text
    (asyncpg would refuse it). PostgreSQL text cannot hold NUL: searched copies get U+FFFD
    instead (the job's JSON keeps the exact value), and lookups map their argument the same
    way, so they still match."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if "\x00" not in text else text.replace("\x00", "\ufffd")


def _affected(status: str) -> int:
    """The row count of a command tag such as "UPDATE 1" or "INSERT 0 1"."""
    return int(status.rsplit(" ", 1)[-1])


# --- jobs -------------------------------------------------------------------------------

_COLUMNS = (
    "id",
    "idempotency_key",
    "provider",
    "provider_ref",
    "status",
    "requester_id",
    "guild_id",
    "channel_id",
    "parent_job_id",
    "created_at",
    "updated_at",
    "finished_at",
    "data",
    "mode",
    "error_code",
    "account",
)
_INSERT = (
    f"INSERT INTO jobs ({', '.join(_COLUMNS)})"
    f" VALUES ({', '.join(f'${i}' for i in range(1, len(_COLUMNS) + 1))})"
    " ON CONFLICT (idempotency_key) DO NOTHING"
)
_ACTIVE = [status.value for status in JobStatus if status.is_active]
_TERMINAL_LIST = ", ".join(f"'{s.value}'" for s in JobStatus if s.is_terminal)  # constants
# A job's terminal save gives its account slot back (the shared limit, bot/store/pg_queue.py).
_UPDATE = (
    f"UPDATE jobs SET {', '.join(f'{c} = ${i}' for i, c in enumerate(_COLUMNS[1:], 2))},"
    f" slot_account = CASE WHEN $5 IN ({_TERMINAL_LIST}) THEN NULL ELSE jobs.slot_account END"
    " WHERE id = $1"
)
# Leased writes: created owned (epoch 1), updated only by the owner at its epoch.
_INSERT_OWNED = (
    f"INSERT INTO jobs ({', '.join(_COLUMNS)}, owner, lease_expires_at, lease_epoch)"
    f" VALUES ({', '.join(f'${i}' for i in range(1, len(_COLUMNS) + 1))},"
    f" ${len(_COLUMNS) + 1}, now() + make_interval(secs => ${len(_COLUMNS) + 2}), 1)"
    " ON CONFLICT (idempotency_key) DO NOTHING"
)
_UPDATE_FENCED = (
    _UPDATE + f" AND owner = ${len(_COLUMNS) + 1} AND lease_epoch = ${len(_COLUMNS) + 2}"
)


def _row(job: Job) -> tuple[Any, ...]:
    data = json.dumps(job_to_dict(job), ensure_ascii=False, allow_nan=False)
    return (
        _t(job.id),
        _t(job.idempotency_key),
        _t(job.provider),
        _t(job.provider_ref),
        job.status.value,
        _t(job.requester_id),
        _t(job.guild_id),
        _t(job.channel_id),
        _t(job.parent_job_id),
        job.created_at,
        job.updated_at,
        job.finished_at,
        data.replace("\x00", "\\u0000"),  # ensure_ascii=False leaves no NUL, but be sure
        job.operation.mode.value if job.operation.mode else None,
        job.error.code.value if job.error else None,
        _t(job.account),
    )


def _job(data: str) -> Job:
    return job_from_dict(json.loads(data))


class PostgresJobRepository:
    """`JobRepository` on PostgreSQL (and `StorageHealth`, for /healthz). Once `fence` is
    enabled, jobs are inserted owned by this process and every save is fenced."""

    def __init__(self, db: PostgresDatabase, fence: PostgresJobLeases | None = None) -> None:
        self._db = db
        self._fence = fence

    def storage_problem(self) -> str | None:
        return self._db.storage_problem()

    async def insert(self, job: Job) -> tuple[Job, bool]:
        row = _row(job)
        fence = self._fence if self._fence is not None and self._fence.enabled else None
        sql, extra = (_INSERT, ()) if fence is None else (_INSERT_OWNED, fence.insert_params())
        started = fence.mark() if fence is not None else 0.0

        async def work(conn: asyncpg.Connection) -> tuple[Job, bool]:
            try:
                status = await conn.execute(sql, *row, *extra)
            except asyncpg.UniqueViolationError as exc:
                raise JobExistsError(f"job {job.id} is already stored") from exc
            if _affected(status) == 1:
                if fence is not None:
                    fence.hold(job.id, 1, started)  # created owned, at epoch 1
                return job, True
            # The key is taken by a committed job (ON CONFLICT waited for its transaction),
            # and jobs are never deleted: this read's fresh snapshot sees the holder. A
            # transaction around both would add nothing under READ COMMITTED but two trips.
            existing = await conn.fetchval(
                "SELECT data FROM jobs WHERE idempotency_key = $1", row[1]
            )
            if existing is None:  # pragma: no cover - the conflict proves it exists
                raise RuntimeError("idempotency conflict without a holder")
            return _job(existing), False

        return await self._db.write_statement(work)

    async def save(self, job: Job) -> None:
        row = _row(job)
        fence = self._fence if self._fence is not None and self._fence.enabled else None
        if fence is not None:
            await self._fenced_save(fence, job, row)
            return

        async def work(conn: asyncpg.Connection) -> None:
            if _affected(await conn.execute(_UPDATE, *row)) == 0:
                raise JobNotFoundError(f"job {job.id} is not stored; insert it first")

        async with self._db.rows.hold(f"job:{job.id}"):
            await self._db.write_statement(work)

    async def _fenced_save(self, fence: PostgresJobLeases, job: Job, row: tuple[Any, ...]) -> None:
        """WHERE owner = me AND lease_epoch = mine: a write that matches nothing is lost."""
        epoch = fence.epoch(job.id)
        if epoch is None:
            raise LeaseLostError(f"job {job.id} is not leased by this process")

        async def work(conn: asyncpg.Connection) -> int:
            return _affected(await conn.execute(_UPDATE_FENCED, *row, fence.owner, epoch))

        async with self._db.rows.hold(f"job:{job.id}"):
            if await self._db.write_statement(work) == 0:
                fence.forget(job.id)
                raise LeaseLostError(f"job {job.id}: its lease was taken over; nothing written")

    async def get(self, job_id: str) -> Job | None:
        return await self._one("SELECT data FROM jobs WHERE id = $1", _t(job_id))

    async def get_by_idempotency_key(self, key: str) -> Job | None:
        return await self._one("SELECT data FROM jobs WHERE idempotency_key = $1", _t(key))

    async def get_by_provider_ref(self, provider: str, ref: str) -> Job | None:
        return await self._one(
            "SELECT data FROM jobs WHERE provider = $1 AND provider_ref = $2"
            " ORDER BY created_at DESC, seq DESC LIMIT 1",
            _t(provider),
            _t(ref),
        )

    async def list_active(self) -> list[Job]:
        return await self._many(
            "SELECT data FROM jobs WHERE status = ANY($1::text[]) ORDER BY created_at, seq",
            _ACTIVE,
        )

    async def list_for_requester(
        self,
        requester_id: str,
        *,
        guild_id: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[Job]:
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")
        where, params = _requester_filter(requester_id, guild_id)
        n = len(params)
        return await self._many(
            f"SELECT data FROM jobs WHERE {where}"
            f" ORDER BY created_at DESC, seq DESC LIMIT ${n + 1} OFFSET ${n + 2}",
            *params,
            limit,
            offset,
        )

    async def count_for_requester_since(
        self, requester_id: str, since: float, *, guild_id: str | None = None
    ) -> int:
        where, params = _requester_filter(requester_id, guild_id)

        async def work(conn: asyncpg.Connection) -> int:
            sql = f"SELECT COUNT(*) FROM jobs WHERE {where} AND created_at >= ${len(params) + 1}"
            return int(await conn.fetchval(sql, *params, since))

        return await self._db.read(work)

    async def _one(self, sql: str, *params: Any) -> Job | None:
        async def work(conn: asyncpg.Connection) -> Job | None:
            data = await conn.fetchval(sql, *params)
            return None if data is None else _job(data)

        return await self._db.read(work)

    async def _many(self, sql: str, *params: Any) -> list[Job]:
        async def work(conn: asyncpg.Connection) -> list[Job]:
            return [_job(row[0]) for row in await conn.fetch(sql, *params)]

        return await self._db.read(work)


def _requester_filter(requester_id: str, guild_id: str | None) -> tuple[str, tuple[Any, ...]]:
    if guild_id is None:
        return "requester_id = $1", (_t(requester_id),)
    return "requester_id = $1 AND guild_id = $2", (_t(requester_id), _t(guild_id))


# --- deliveries -------------------------------------------------------------------------

_DELIVERY_NAMES = (
    "job_id",
    "channel_id",
    "message_id",
    "guild_id",
    "upload_limit",
    "final_delivered_at",
    "created_at",
    "updated_at",
)
_DELIVERY_COLUMNS = ", ".join(_DELIVERY_NAMES)
_DELIVERY_VALUES = ", ".join(f"${i}" for i in range(1, len(_DELIVERY_NAMES) + 1))


def _delivery_row(d: Delivery) -> tuple[Any, ...]:
    return (
        _t(d.job_id),
        _t(d.channel_id),
        _t(d.message_id),
        _t(d.guild_id),
        d.upload_limit,
        d.final_delivered_at,
        d.created_at,
        d.updated_at,
    )


class PostgresDeliveryRepository:
    """`DeliveryRepository` on PostgreSQL."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def claim(self, delivery: Delivery) -> bool:
        async def work(conn: asyncpg.Connection) -> bool:
            status = await conn.execute(
                f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) VALUES ({_DELIVERY_VALUES})"
                " ON CONFLICT (job_id) DO NOTHING",
                *_delivery_row(delivery),
            )
            return _affected(status) == 1

        return await self._db.write_statement(work)

    async def save(self, delivery: Delivery) -> None:
        updates = ", ".join(f"{c} = excluded.{c}" for c in _DELIVERY_NAMES[1:])

        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(
                f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) VALUES ({_DELIVERY_VALUES})"
                f" ON CONFLICT (job_id) DO UPDATE SET {updates}",
                *_delivery_row(delivery),
            )

        async with self._db.rows.hold(f"delivery:{delivery.job_id}"):
            await self._db.write_statement(work)

    async def get(self, job_id: str) -> Delivery | None:
        rows = await self._select("WHERE job_id = $1", _t(job_id))
        return rows[0] if rows else None

    async def list_undelivered(self) -> list[Delivery]:
        # COLLATE "C": ties ordered by code point, as SQLite does, whatever the locale.
        return await self._select(
            'WHERE final_delivered_at IS NULL ORDER BY created_at, job_id COLLATE "C"'
        )

    async def jobs_without_delivery(self, since: float) -> list[str]:
        async def work(conn: asyncpg.Connection) -> list[str]:
            rows = await conn.fetch(
                "SELECT j.id FROM jobs j LEFT JOIN deliveries d ON d.job_id = j.id"
                " WHERE d.job_id IS NULL AND j.created_at >= $1 ORDER BY j.created_at, j.seq",
                since,
            )
            return [str(row[0]) for row in rows]

        return await self._db.read(work)

    async def _select(self, where: str, *params: Any) -> list[Delivery]:
        async def work(conn: asyncpg.Connection) -> list[Delivery]:
            rows = await conn.fetch(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries {where}", *params)
            return [Delivery(**dict(row)) for row in rows]

        return await self._db.read(work)


# --- member preferences, server settings, audit ----------------------------------------


class PostgresMemberPrefsRepository:
    """`MemberPrefsRepository` on PostgreSQL (DMs under guild_id '', as in SQLite)."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def get(self, guild_id: str | None, user_id: str) -> MemberPrefs:
        async def work(conn: asyncpg.Connection) -> MemberPrefs:
            raw = await conn.fetchval(
                "SELECT data FROM member_prefs WHERE guild_id = $1 AND user_id = $2",
                _t(guild_id or ""),
                _t(user_id),
            )
            data = json.loads(raw) if raw is not None else {}
            return MemberPrefs.from_data(guild_id, user_id, data)

        return await self._db.read(work)

    async def save(self, prefs: MemberPrefs) -> None:
        data = json.dumps(prefs.to_data(), ensure_ascii=False, allow_nan=False)

        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO member_prefs (guild_id, user_id, data, updated_at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (guild_id, user_id)"
                " DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                _t(prefs.guild_id or ""),
                _t(prefs.user_id),
                data,
                time.time(),
            )

        async with self._db.rows.hold(f"prefs:{prefs.guild_id}:{prefs.user_id}"):
            await self._db.write_statement(work)


class PostgresGuildSettingsRepository:
    """`GuildSettingsRepository` on PostgreSQL: one JSON row per server."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def get(self, guild_id: str) -> GuildSettings:
        async def work(conn: asyncpg.Connection) -> GuildSettings:
            raw = await conn.fetchval(
                "SELECT data FROM guild_settings WHERE guild_id = $1", _t(str(guild_id))
            )
            data = json.loads(raw) if raw is not None else {}
            return GuildSettings.from_data(str(guild_id), data if isinstance(data, dict) else {})

        return await self._db.read(work)

    async def save(self, settings: GuildSettings) -> None:
        data = json.dumps(settings.to_data(), ensure_ascii=False, allow_nan=False)

        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO guild_settings (guild_id, data, updated_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (guild_id)"
                " DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                _t(settings.guild_id),
                data,
                time.time(),
            )

        async with self._db.rows.hold(f"guild:{settings.guild_id}"):
            await self._db.write_statement(work)

    @contextlib.asynccontextmanager
    async def edit(
        self, guild_id: str, actor_id: str, action: str, *, at: float
    ) -> AsyncIterator[SettingsEdit]:
        """See `GuildSettingsRepository.edit`: the row `SELECT … FOR UPDATE` in one
        transaction, so an edit from another process waits for this one to commit."""
        key = _t(str(guild_id))
        async with self._db.rows.hold(f"guild:{guild_id}"), self._db.transaction() as conn:
            # A server that never saved settings has no row to lock: make an empty one
            # (the defaults) first, so a concurrent first edit waits here too.
            await conn.execute(
                "INSERT INTO guild_settings (guild_id, data, updated_at) VALUES ($1, '{}', $2)"
                " ON CONFLICT (guild_id) DO NOTHING",
                key,
                time.time(),
            )
            raw = await conn.fetchval(
                "SELECT data FROM guild_settings WHERE guild_id = $1 FOR UPDATE", key
            )
            data = json.loads(raw) if raw is not None else {}
            edit = SettingsEdit(
                GuildSettings.from_data(str(guild_id), data if isinstance(data, dict) else {})
            )
            yield edit
            change = edit.change
            if not change:
                return
            await conn.execute(
                "UPDATE guild_settings SET data = $2, updated_at = $3 WHERE guild_id = $1",
                key,
                json.dumps(edit.settings.to_data(), ensure_ascii=False, allow_nan=False),
                time.time(),
            )
            await conn.execute(
                "INSERT INTO audit_log (guild_id, actor_id, action, detail, at)"
                " VALUES ($1, $2, $3, $4, $5)",
                key,
                _t(str(actor_id)),
                _t(action),
                _t(change),
                at,
            )


class PostgresAuditRepository:
    """`AuditRepository` on PostgreSQL: an append-only table."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def record(
        self, guild_id: str, actor_id: str, action: str, detail: str, at: float
    ) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO audit_log (guild_id, actor_id, action, detail, at)"
                " VALUES ($1, $2, $3, $4, $5)",
                _t(str(guild_id)),
                _t(str(actor_id)),
                _t(action),
                _t(detail),
                at,
            )

        await self._db.write_statement(work)

    async def recent(self, guild_id: str, limit: int = 20) -> list[AuditEntry]:
        if limit < 0:
            raise ValueError("limit must be >= 0")

        async def work(conn: asyncpg.Connection) -> list[AuditEntry]:
            rows = await conn.fetch(
                "SELECT guild_id, actor_id, action, detail, at FROM audit_log"
                " WHERE guild_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
                _t(str(guild_id)),
                limit,
            )
            return [AuditEntry(*row) for row in rows]

        return await self._db.read(work)


# --- usage ------------------------------------------------------------------------------

# Costs are read from the job's JSON (rare reports); `data::json` parses only those rows.
_COST_UNIT = "(data::json -> 'cost' ->> 'unit')"
_COST_AMOUNT = "(data::json -> 'cost' ->> 'amount')"
_FAST = sorted(FAST_MODES)
_FAST_LIST = ", ".join(f"'{mode}'" for mode in _FAST)  # constants, not input
_ACTIVE_LIST = ", ".join(f"'{status}'" for status in _ACTIVE)  # constants, not input
_COUNTS = (
    "COUNT(*),"
    f" COUNT(*) FILTER (WHERE status = '{JobStatus.COMPLETED.value}'),"
    f" COUNT(*) FILTER (WHERE mode IN ({_FAST_LIST}))"
)
_MEMBER = "guild_id = $1 AND requester_id = $2"
_VIDEO_KINDS = ", ".join(f"'{kind.value}'" for kind in sorted(VIDEO_KINDS))  # constants


def _amount(value: Any) -> Decimal | None:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def _add_cost(costs: dict[str, Decimal], unit: Any, amount: Any) -> None:
    """Add one job's reported cost; a cost without a unit or a number is not a cost."""
    value = _amount(amount)
    if unit is None or value is None:
        return
    costs[str(unit)] = costs.get(str(unit), Decimal(0)) + value


class PostgresUsageRepository:
    """`UsageRepository` on PostgreSQL, computed from the jobs table, exactly as on SQLite
    (jobs count by `created_at`; a cost counts only when the provider reported one)."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def member_summary(self, guild_id: str, user_id: str, *, since: float) -> UsageSummary:
        return await self._summary(
            f"{_MEMBER} AND created_at >= $3", _t(str(guild_id)), _t(str(user_id)), since
        )

    async def guild_summary(self, guild_id: str, *, since: float) -> UsageSummary:
        return await self._summary("guild_id = $1 AND created_at >= $2", _t(str(guild_id)), since)

    async def account_summary(self, account: str, *, since: float) -> UsageSummary:
        # One provider account's jobs today (issue 16, /settings accounts).
        return await self._summary("account = $1 AND created_at >= $2", _t(account), since)

    async def video_counts(self, guild_id: str, user_id: str, since: float) -> VideoCounts:
        # The kind is read from the job's JSON: the member's rows of one day are few.
        sql = (
            f"SELECT COUNT(*), COUNT(*) FILTER (WHERE NOT {UNSPENT_JOB_SQL}),"
            f" COUNT(*) FILTER (WHERE mode IN ({_FAST_LIST}) AND NOT {UNSPENT_JOB_SQL})"
            f" FROM jobs WHERE {_MEMBER} AND created_at >= $3"
            f" AND (data::json -> 'operation' ->> 'kind') IN ({_VIDEO_KINDS})"
        )

        async def work(conn: asyncpg.Connection) -> VideoCounts:
            row = await conn.fetchrow(sql, _t(str(guild_id)), _t(str(user_id)), since)
            return VideoCounts() if row is None else VideoCounts(*(int(v) for v in row))

        return await self._db.read(work)

    async def quota_counts(self, guild_id: str, user_id: str, since: float) -> QuotaCounts:
        sql = (
            f"SELECT COUNT(*) FILTER (WHERE status IN ({_ACTIVE_LIST})),"
            f" COUNT(*) FILTER (WHERE created_at >= $3 AND NOT {UNSPENT_JOB_SQL}),"
            f" COUNT(*) FILTER (WHERE created_at >= $3 AND mode IN ({_FAST_LIST})"
            f" AND NOT {UNSPENT_JOB_SQL}),"
            " COUNT(*) FILTER (WHERE created_at >= $3 AND status = $4 AND error_code = $5)"
            f" FROM jobs WHERE {_MEMBER} AND (status IN ({_ACTIVE_LIST}) OR created_at >= $3)"
        )
        params = (
            _t(str(guild_id)),
            _t(str(user_id)),
            since,
            JobStatus.FAILED.value,
            ErrorCode.MODERATED.value,
        )

        async def work(conn: asyncpg.Connection) -> QuotaCounts:
            row = await conn.fetchrow(sql, *params)
            return QuotaCounts() if row is None else QuotaCounts(*(int(v) for v in row))

        return await self._db.read(work)

    async def count_active(self, guild_id: str, user_id: str) -> int:
        return await self._count(
            f"{_MEMBER} AND status = ANY($3::text[])", _t(str(guild_id)), _t(str(user_id)), _ACTIVE
        )

    async def count_since(
        self, guild_id: str, user_id: str, since: float, *, modes: Iterable[str] | None = None
    ) -> int:
        member = (_t(str(guild_id)), _t(str(user_id)), since)
        if modes is None:
            return await self._count(f"{_MEMBER} AND created_at >= $3", *member)
        wanted = sorted({str(m) for m in modes})
        if not wanted:
            return 0
        return await self._count(
            f"{_MEMBER} AND created_at >= $3 AND mode = ANY($4::text[])", *member, wanted
        )

    async def moderation_failures_since(self, guild_id: str, user_id: str, since: float) -> int:
        return await self._count(
            f"{_MEMBER} AND created_at >= $3 AND status = $4 AND error_code = $5",
            _t(str(guild_id)),
            _t(str(user_id)),
            since,
            JobStatus.FAILED.value,
            ErrorCode.MODERATED.value,
        )

    async def top_members(
        self, guild_id: str, *, since: float, limit: int = 10
    ) -> list[tuple[str, UsageSummary]]:
        if limit < 0:
            raise ValueError("limit must be >= 0")
        where = "guild_id = $1 AND created_at >= $2 AND requester_id IS NOT NULL"
        params = (_t(str(guild_id)), since)

        async def work(conn: asyncpg.Connection) -> list[tuple[str, UsageSummary]]:
            counts = await conn.fetch(
                f"SELECT requester_id, {_COUNTS} FROM jobs WHERE {where} GROUP BY requester_id",
                *params,
            )
            cost_rows = await conn.fetch(
                f"SELECT requester_id, {_COST_UNIT}, {_COST_AMOUNT} FROM jobs"
                f" WHERE {where} AND {_COST_UNIT} IS NOT NULL",
                *params,
            )
            return _rank_members(counts, cost_rows, limit)

        return await self._db.read(work)

    async def daily_totals(self, guild_id: str, *, since: float, days: int) -> list[DailyUsage]:
        if days < 0:
            raise ValueError("days must be >= 0")
        start = utc_day_start(since)
        end = start + days * DAY_SECONDS
        # floor, not CAST: PostgreSQL's cast rounds; rows are all at or after `start`.
        day = f"floor((created_at - $1) / {DAY_SECONDS})::bigint"
        where = "guild_id = $2 AND created_at >= $1 AND created_at < $3"
        params = (start, _t(str(guild_id)), end)

        async def work(conn: asyncpg.Connection) -> list[DailyUsage]:
            jobs = [0] * days
            costs: list[dict[str, Decimal]] = [{} for _ in range(days)]
            for index, count in await conn.fetch(
                f"SELECT {day} AS d, COUNT(*) FROM jobs WHERE {where} GROUP BY d", *params
            ):
                if 0 <= index < days:
                    jobs[index] = int(count)
            for index, unit, amount in await conn.fetch(
                f"SELECT {day}, {_COST_UNIT}, {_COST_AMOUNT} FROM jobs"
                f" WHERE {where} AND {_COST_UNIT} IS NOT NULL",
                *params,
            ):
                if 0 <= index < days:
                    _add_cost(costs[index], unit, amount)
            return [
                DailyUsage(
                    date=datetime.fromtimestamp(start + i * DAY_SECONDS, UTC).date().isoformat(),
                    jobs=jobs[i],
                    costs=costs[i],
                )
                for i in range(days)
            ]

        return await self._db.read(work)

    async def _summary(self, where: str, *params: Any) -> UsageSummary:
        async def work(conn: asyncpg.Connection) -> UsageSummary:
            row = await conn.fetchrow(f"SELECT {_COUNTS} FROM jobs WHERE {where}", *params)
            jobs, completed, fast = row if row is not None else (0, 0, 0)
            costs: dict[str, Decimal] = {}
            for unit, amount in await conn.fetch(
                f"SELECT {_COST_UNIT}, {_COST_AMOUNT} FROM jobs"
                f" WHERE {where} AND {_COST_UNIT} IS NOT NULL",
                *params,
            ):
                _add_cost(costs, unit, amount)
            return UsageSummary(
                jobs=int(jobs), completed=int(completed), fast=int(fast), costs=costs
            )

        return await self._db.read(work)

    async def _count(self, where: str, *params: Any) -> int:
        async def work(conn: asyncpg.Connection) -> int:
            return int(await conn.fetchval(f"SELECT COUNT(*) FROM jobs WHERE {where}", *params))

        return await self._db.read(work)


def _rank_members(
    counts: Sequence[Any], cost_rows: Sequence[Any], limit: int
) -> list[tuple[str, UsageSummary]]:
    """By cost in the server's main unit (the one most jobs reported), then jobs, then id."""
    costs: dict[str, dict[str, Decimal]] = {}
    jobs_per_unit: dict[str, int] = {}
    for user, unit, amount in cost_rows:
        _add_cost(costs.setdefault(str(user), {}), unit, amount)
        jobs_per_unit[str(unit)] = jobs_per_unit.get(str(unit), 0) + 1
    main_unit = min(jobs_per_unit, key=lambda u: (-jobs_per_unit[u], u), default=None)
    members = [
        (
            str(user),
            UsageSummary(
                jobs=int(jobs),
                completed=int(completed),
                fast=int(fast),
                costs=costs.get(str(user), {}),
            ),
        )
        for user, jobs, completed, fast in counts
    ]

    def rank(item: tuple[str, UsageSummary]) -> tuple[Decimal, int, str]:
        user, summary = item
        spent = summary.costs.get(main_unit, Decimal(0)) if main_unit else Decimal(0)
        return (-spent, -summary.jobs, user)

    return sorted(members, key=rank)[:limit]


# --- leases -----------------------------------------------------------------------------

# NOTIFY channel a process that released its leases (a clean stop) wakes the others on.
LEASE_CHANNEL = "mjbot_leases"
# Terminal jobs are claimed for their final delivery only if it was asked for this recently.
_DELIVERY_CLAIM_WINDOW_S = 24 * 3600.0

_CLAIM = """
WITH c AS (
    SELECT j.id, j.owner AS was FROM jobs j
    WHERE (j.status = ANY($1::text[]) OR EXISTS (
            SELECT 1 FROM deliveries d WHERE d.job_id = j.id
            AND d.final_delivered_at IS NULL AND d.created_at >= $6))
      AND (j.owner IS NULL OR j.lease_expires_at IS NULL OR j.lease_expires_at < now()
           OR j.owner = ANY($2::text[]))
    ORDER BY j.created_at, j.seq
    LIMIT $4
    FOR UPDATE OF j SKIP LOCKED
)
UPDATE jobs SET owner = $3, lease_expires_at = now() + make_interval(secs => $5),
    lease_epoch = jobs.lease_epoch + 1
FROM c WHERE jobs.id = c.id
RETURNING jobs.data, jobs.lease_epoch, c.was
"""
# One statement renews every lease of this process; a lapsed one is not revived (it is lost,
# and may be claimed again, by anyone, with a new epoch).
_RENEW = """
UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $2)
FROM unnest($3::text[], $4::bigint[]) AS h(id, epoch)
WHERE jobs.id = h.id AND jobs.owner = $1 AND jobs.lease_epoch = h.epoch
  AND jobs.lease_expires_at > now()
RETURNING jobs.id
"""
_RELEASE = """
UPDATE jobs SET owner = NULL, lease_expires_at = NULL
FROM unnest($2::text[], $3::bigint[]) AS h(id, epoch)
WHERE jobs.id = h.id AND jobs.owner = $1 AND jobs.lease_epoch = h.epoch
"""
_FINAL = f"""
WITH j AS (
    UPDATE jobs SET owner = NULL, lease_expires_at = NULL
    WHERE id = $1 AND owner = $9 AND lease_epoch = $10 RETURNING id
)
UPDATE deliveries SET {", ".join(f"{c} = ${i}" for i, c in enumerate(_DELIVERY_NAMES[1:], 2))}
FROM j WHERE deliveries.job_id = j.id
"""


def new_owner_id() -> str:
    """host:pid:random, unique per process; the host and pid let a process on the same
    host tell that the owner is gone (no such pid) without waiting for its leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def dead_on_this_host(owners: Iterable[str]) -> list[str]:
    """The owners that ran on this host under a pid that no longer exists."""
    host = socket.gethostname()
    dead = []
    for owner in owners:
        parts = owner.rsplit(":", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            dead.append(owner)
        except PermissionError:
            pass  # alive, another user's
    return dead


class PostgresJobLeases:
    """`JobLeases` on PostgreSQL: which jobs this process holds, at which epoch, until
    which local deadline (monotonic: taken before the statement that set the lease, minus
    the margin, so it always falls before the database's expiry)."""

    def __init__(
        self,
        db: PostgresDatabase,
        database_url: str | None,
        *,
        owner: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._url = database_url
        self._owner = owner or new_owner_id()
        self._now = monotonic
        self._lease_s = 30.0
        self._margin_s = 5.0
        self._enabled = False
        self._held: dict[str, tuple[int, float]] = {}  # job id -> (epoch, local deadline)
        self._listener: asyncpg.Connection | None = None
        # The account limit and the members' queue shared by every process.
        self.queue = PostgresSharedQueue(db, lambda: self._owner, self.epoch, database_url)

    @property
    def owner(self) -> str:
        return self._owner

    @property
    def enabled(self) -> bool:
        return self._enabled

    def enable(self, lease_s: float, margin_s: float) -> None:
        if not 0 < margin_s < lease_s:
            raise ValueError("the margin must be positive and shorter than the lease")
        self._lease_s, self._margin_s, self._enabled = lease_s, margin_s, True

    def mark(self) -> float:
        """Now on the local clock: taken before a statement that sets a lease."""
        return self._now()

    def insert_params(self) -> tuple[Any, ...]:
        return (self._owner, self._lease_s)

    def hold(self, job_id: str, epoch: int, started: float) -> None:
        self._held[job_id] = (epoch, started + self._lease_s - self._margin_s)

    def epoch(self, job_id: str) -> int | None:
        entry = self._held.get(job_id)
        return entry[0] if entry is not None else None

    def holds(self, job_id: str) -> bool:
        entry = self._held.get(job_id)
        return entry is not None and self._now() < entry[1]

    def held(self) -> list[str]:
        return list(self._held)

    def forget(self, job_id: str) -> None:
        self._held.pop(job_id, None)

    def expired(self) -> list[str]:
        now = self._now()
        gone = [job_id for job_id, (_, deadline) in self._held.items() if now >= deadline]
        for job_id in gone:
            del self._held[job_id]
        return gone

    async def claim(self, *, dead_owners: Iterable[str] = (), limit: int = 200) -> list[ClaimedJob]:
        started = self._now()
        since = time.time() - _DELIVERY_CLAIM_WINDOW_S
        params = (_ACTIVE, list(dead_owners), self._owner, limit, self._lease_s, since)

        async def work(conn: asyncpg.Connection) -> list[Any]:
            return list(await conn.fetch(_CLAIM, *params))

        claimed = []
        for data, epoch, was in await self._db.write_statement(work):
            job = _job(data)
            self.hold(job.id, int(epoch), started)
            claimed.append(ClaimedJob(job, int(epoch), was))
        # RETURNING has no order: resume the oldest first, as Engine.start does.
        claimed.sort(key=lambda c: c.job.created_at)
        return claimed

    async def renew(self) -> list[str]:
        if not self._held:
            return []
        started = self._now()
        ids = list(self._held)
        epochs = [self._held[i][0] for i in ids]

        async def work(conn: asyncpg.Connection) -> set[str]:
            rows = await conn.fetch(_RENEW, self._owner, self._lease_s, ids, epochs)
            return {str(r[0]) for r in rows}

        kept = await self._db.write_statement(work)
        lost = [job_id for job_id in ids if job_id not in kept]
        for job_id in ids:
            entry = self._held.get(job_id)
            if job_id in kept and entry is not None:
                self._held[job_id] = (entry[0], started + self._lease_s - self._margin_s)
            else:
                self._held.pop(job_id, None)
        return lost

    async def release(self) -> int:
        ids = list(self._held)
        epochs = [self._held[i][0] for i in ids]
        self._held.clear()

        async def work(conn: asyncpg.Connection) -> int:
            released = _affected(await conn.execute(_RELEASE, self._owner, ids, epochs))
            await conn.execute("SELECT pg_notify($1, $2)", LEASE_CHANNEL, self._owner)
            return released

        return await self._db.write(work)

    async def live_owners(self) -> list[str]:
        async def work(conn: asyncpg.Connection) -> list[str]:
            rows = await conn.fetch(
                "SELECT DISTINCT owner FROM jobs WHERE status = ANY($1::text[])"
                " AND owner IS NOT NULL AND owner <> $2 AND lease_expires_at > now()",
                _ACTIVE,
                self._owner,
            )
            return [str(r[0]) for r in rows]

        return await self._db.read(work)

    async def deliver_final(self, delivery: Delivery) -> bool:
        epoch = self.epoch(delivery.job_id)
        if epoch is None:
            return False
        row = _delivery_row(delivery)

        async def work(conn: asyncpg.Connection) -> bool:
            return _affected(await conn.execute(_FINAL, *row, self._owner, epoch)) == 1

        async with self._db.rows.hold(f"delivery:{delivery.job_id}"):
            done = await self._db.write_statement(work)
        self.forget(delivery.job_id)
        return done

    async def listen(self, callback: Callable[[], None]) -> None:
        if self._url is None or self._listener is not None:
            return
        # Its own connection: LISTEN lasts for a session, and pooled ones change hands.
        self._listener = await asyncpg.connect(self._url)

        def notified(conn: object, pid: int, channel: str, payload: str) -> None:
            if payload != self._owner:
                callback()

        await self._listener.add_listener(LEASE_CHANNEL, notified)

    async def listen_to(self, channel: str, callback: Callable[[str], None]) -> bool:
        """Another channel on the connection `listen` opened (issue 17: the webhook inbox
        and forwarded cancels): `callback(payload)` per notification. False if not listening."""
        if self._listener is None:
            return False

        def notified(conn: object, pid: int, channel: str, payload: str) -> None:
            callback(payload)

        await self._listener.add_listener(channel, notified)
        return True

    async def close(self) -> None:
        await self.queue.close()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.close(), timeout=5)


# --- the store --------------------------------------------------------------------------


class PostgresStore:
    """Every repository on one PostgreSQL database (`Store`)."""

    def __init__(self, db: PostgresDatabase, database_url: str | None = None) -> None:
        self.db = db
        # Off until an engine enables it: a store opened by tools behaves as before.
        self.leases = PostgresJobLeases(db, database_url)
        self.jobs = PostgresJobRepository(db, self.leases)
        self.deliveries = PostgresDeliveryRepository(db)
        self.prefs = PostgresMemberPrefsRepository(db)
        self.guilds = PostgresGuildSettingsRepository(db)
        self.audit = PostgresAuditRepository(db)
        self.usage = PostgresUsageRepository(db)

    async def close(self) -> None:
        await self.leases.close()
        await self.db.close()

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset when a connection goes back to the pool: the repositories set no
    session state (asyncpg still rolls back a transaction left open). asyncpg's default
    (UNLISTEN, RESET ALL, advisory unlock, CLOSE ALL) costs one more round trip per
    operation: 0.38 against 0.25 ms per save or read, measured here."""


async def open_postgres_store(
    database_url: str,
    *,
    migrations: Sequence[PgMigration] | None = None,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    lock_retries: int = DEFAULT_LOCK_RETRIES,
    retry_backoff: float = DEFAULT_RETRY_BACKOFF,
    pool_size: int = DEFAULT_POOL_SIZE,
) -> PostgresStore:
    """Connect to and migrate the database `database_url` names.

    `lock_timeout_ms` is how long one statement waits for a lock (PostgreSQL's
    lock_timeout, SQLite's busy_timeout); `lock_retries` more attempts follow,
    `retry_backoff` seconds apart, doubling. Errors never show the URL's password.
    """
    if not is_postgres_url(database_url):
        raise ValueError("a PostgreSQL URL starts with postgresql:// or postgres://")
    where = _where(database_url)
    settings = {"lock_timeout": str(int(lock_timeout_ms)), "application_name": "mj-discord-bot"}
    try:
        pool = await asyncpg.create_pool(
            database_url.strip(),
            min_size=1,
            max_size=pool_size,
            server_settings=settings,
            reset=_keep_session,
        )
    except (asyncpg.PostgresError, *_UNREACHABLE) as exc:
        raise StoreError(f"cannot open the PostgreSQL database at {where}: {exc}") from None
    except ValueError:
        # asyncpg's parser may quote the URL back: say what is wrong without it.
        raise StoreError(f"the PostgreSQL URL for {where} is not valid") from None
    db = PostgresDatabase(pool, where, lock_retries=lock_retries, retry_backoff=retry_backoff)
    try:
        async with pool.acquire() as conn:
            await apply_pg_migrations(
                conn, load_pg_migrations() if migrations is None else migrations
            )
    except (asyncpg.PostgresError, *_UNREACHABLE) as exc:
        # e.g. a read-only server (a standby), or one that went away as we started.
        await db.close()
        raise StoreError(f"cannot open the PostgreSQL database at {where}: {exc}") from exc
    except BaseException:
        await db.close()
        raise
    return PostgresStore(db, database_url.strip())
