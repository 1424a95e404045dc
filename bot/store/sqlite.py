"""The SQLite store: one aiosqlite connection, serialised transactions, numbered migrations.

One connection is enough for one bot process: SQLite allows a single writer anyway, and
aiosqlite runs every statement on the connection's own thread. An asyncio.Lock keeps
one transaction at a time on it; WAL keeps other processes (a backup, an admin's
sqlite3 shell, a second bot by mistake) able to read meanwhile. When one of them holds
the write lock, the write is retried a bounded number of times and then raises
`StoreBusyError`; it is never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.community import DAY_SECONDS, FAST_MODES, GuildSettings, SettingsEdit, utc_day_start
from bot.domain import VIDEO_KINDS, ErrorCode, Job, JobStatus
from bot.store.base import (
    UNSPENT_JOB_SQL,
    AuditEntry,
    DailyUsage,
    Delivery,
    JobExistsError,
    JobNotFoundError,
    MemberPrefs,
    MigrationError,
    QuotaCounts,
    SchemaVersionError,
    StoreBusyError,
    StoreUnavailableError,
    UsageSummary,
    VideoCounts,
)
from bot.store.serialize import job_from_dict, job_to_dict

log = logging.getLogger(__name__)

T = TypeVar("T")

MEMORY = ":memory:"
DEFAULT_BUSY_TIMEOUT_MS = 5000
DEFAULT_LOCK_RETRIES = 5
DEFAULT_RETRY_BACKOFF = 0.05
_MAX_BACKOFF = 1.0

# Primary result codes (the low byte of extended codes such as SQLITE_BUSY_SNAPSHOT).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


# --- locating the database --------------------------------------------------------------


def sqlite_path_from_url(database_url: str) -> str:
    """The file path (or ":memory:") that a database URL or plain path names.

    `sqlite:///data/bot.db` is relative to the working directory, `sqlite:////srv/bot.db`
    is absolute (SQLAlchemy's convention); anything without a scheme is a path.
    """
    url = database_url.strip()
    if not url:
        raise ValueError("database URL is empty")
    if url in ("sqlite://", "sqlite:///"):
        return MEMORY  # SQLAlchemy's spelling of an in-memory database
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
    elif url.startswith("sqlite://"):
        raise ValueError(
            "sqlite URLs take three slashes before a path: sqlite:///relative.db "
            "or sqlite:////absolute.db"
        )
    elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        scheme = url.split("://", 1)[0]
        raise ValueError(f"unsupported database scheme {scheme!r}; only sqlite is built in")
    else:
        path = url
    if path == MEMORY:
        return MEMORY
    return str(Path(path).expanduser())


# --- migrations -------------------------------------------------------------------------

_MIGRATION_NAME = re.compile(r"^(\d+)_([A-Za-z0-9_\-]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # the file name, kept in schema_migrations for humans
    sql: str


def load_migrations() -> list[Migration]:
    """The numbered `.sql` files shipped in `bot/store/migrations/`, in version order."""
    folder = resources.files("bot.store").joinpath("migrations")
    migrations: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is None or not entry.is_file():
            continue
        migrations.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    _check_versions(migrations)
    return sorted(migrations, key=lambda m: m.version)


def _check_versions(migrations: Sequence[Migration]) -> None:
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


def split_sql(script: str) -> list[str]:
    """A script's statements, one per entry.

    `executescript` would COMMIT first and so cannot run inside our transaction; the
    statements are executed one by one instead. `complete_statement` knows about quotes,
    comments and trigger bodies, so a `;` inside them does not split.
    """
    statements: list[str] = []
    buffer: list[str] = []
    for char in script:
        buffer.append(char)
        if char == ";" and sqlite3.complete_statement("".join(buffer)):
            statements.append("".join(buffer).strip())
            buffer = []
    rest = "".join(buffer).strip()
    if rest and _has_code(rest):
        statements.append(rest)  # a last statement without its semicolon
    return statements


def _has_code(sql: str) -> bool:
    without_comments = re.sub(r"--[^\n]*|/\*.*?\*/", "", sql, flags=re.DOTALL)
    return bool(without_comments.strip())


async def apply_migrations(db: SqliteDatabase, migrations: Sequence[Migration]) -> list[int]:
    """Bring the schema up to date; returns the versions applied now (none if current).

    Each migration runs in its own transaction together with its schema_migrations row,
    so a crash leaves it either wholly applied and recorded, or not at all.
    """
    _check_versions(migrations)
    await db.write(_create_version_table)
    recorded = await db.read(_recorded_versions)
    known = {m.version for m in migrations}
    unknown = sorted(recorded - known)
    if unknown:
        newest_known = max(known, default=0)
        if unknown[-1] > newest_known:
            raise SchemaVersionError(
                f"the database is at schema version {unknown[-1]}, newer than this code "
                f"(which knows up to {newest_known}); run a newer bot or use another database"
            )
        raise SchemaVersionError(
            f"the database records migration(s) {unknown} that this code does not have"
        )
    applied: list[int] = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version in recorded:
            continue
        try:
            if await db.write(partial(_apply_one, migration=migration)):
                applied.append(migration.version)
                log.info("applied migration %s", migration.name)
        except (StoreBusyError, MigrationError):
            raise
        except Exception as exc:
            raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
    return applied


async def _create_version_table(conn: aiosqlite.Connection) -> None:
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )


async def _recorded_versions(conn: aiosqlite.Connection) -> set[int]:
    rows = await conn.execute_fetchall("SELECT version FROM schema_migrations")
    return {int(row[0]) for row in rows}


async def _apply_one(conn: aiosqlite.Connection, *, migration: Migration) -> bool:
    # Another process may have applied it since we looked; BEGIN IMMEDIATE makes this
    # check and the migration one step.
    async with conn.execute(
        "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
    ) as cursor:
        if await cursor.fetchone() is not None:
            return False
    for statement in split_sql(migration.sql):
        await conn.execute(statement)
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
        (migration.version, migration.name, time.time()),
    )
    return True


# --- the connection ---------------------------------------------------------------------


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def _identity(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


async def _begin(conn: aiosqlite.Connection) -> None:
    await conn.execute("BEGIN IMMEDIATE")


class SqliteDatabase:
    """One aiosqlite connection that runs one transaction at a time, retrying on locks."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        *,
        lock_retries: int = DEFAULT_LOCK_RETRIES,
        retry_backoff: float = DEFAULT_RETRY_BACKOFF,
    ) -> None:
        if lock_retries < 0:
            raise ValueError("lock_retries must be >= 0")
        self._conn = conn
        self._lock = asyncio.Lock()
        # A second connection for reads (file databases; see `read`), with its own lock.
        self._reader: aiosqlite.Connection | None = None
        self._read_lock = asyncio.Lock()
        self._lock_retries = lock_retries
        self._retry_backoff = retry_backoff
        self._closed = False
        # How often a locked database made us try again; for tests and diagnostics.
        self.busy_retries = 0
        # The file the connection has open (see `watch_file`), and why writes stopped.
        self._path: str | None = None
        self._identity: tuple[int, int] | None = None
        self._problem: str | None = None
        # The last write's failure (disk full, I/O error), until a write succeeds again.
        self._write_failure: str | None = None

    def watch_file(self, path: str) -> None:
        """Refuse writes once `path` no longer names the file the connection has open
        (deleted, or replaced by another file): SQLite would go on writing to the unlinked
        inode, and everything written would vanish with the process."""
        self._path = path
        self._identity = _identity(path)

    def storage_problem(self) -> str | None:
        """Why writes are refused (checking the file now), or None while they work."""
        self._check_file()
        return self._problem or self._write_failure

    def _check_file(self) -> None:
        # One stat (about a microsecond) before each write, against ~100 µs for the write
        # itself: cheap enough to do every time, so no write slips past a deleted file.
        if self._problem is not None or self._identity is None or self._path is None:
            return
        try:
            now = _identity(self._path)
        except OSError:
            now = None
        if now == self._identity:
            return
        what = "deleted" if now is None else "replaced by another file"
        self._problem = f"the database file was {what} while the bot was running"
        log.error(
            "%s (%s): refusing every write from now on; restore the file or restart the bot",
            self._problem,
            self._path,
        )

    @property
    def connection(self) -> aiosqlite.Connection:
        return self._conn

    @property
    def closed(self) -> bool:
        return self._closed

    async def write(self, work: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `work` in one BEGIN IMMEDIATE … COMMIT transaction, rolled back on error.

        IMMEDIATE takes the write lock up front, so a busy database fails at BEGIN (where
        a retry is safe) rather than halfway through. `work` may run more than once.
        """
        return await self._run(work, transaction=True)

    async def write_statement(self, work: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `work`, which must execute exactly ONE writing statement, without BEGIN/COMMIT.

        The connection is in autocommit mode, so a single statement is its own atomic
        transaction: one trip to the database thread instead of three. A busy database
        fails the statement before it applies anything, so the retry stays safe.
        """
        return await self._run(work, transaction=False)

    def use_reader(self, reader: aiosqlite.Connection) -> None:
        """Serve `read` from `reader`, a second connection to the same file."""
        self._reader = reader

    async def read(self, work: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `work` outside a transaction.

        With a reader connection, WAL gives each read a snapshot of what is committed, so
        reads never queue behind writes: a command's acknowledgement reads the member's
        quota while hundreds of progress writes may be waiting. Without one (an in-memory
        database), reads take the writer's lock: on a single connection, a read interleaved
        into another task's open transaction would see rows that may yet be rolled back.
        """
        if self._reader is None:
            return await self._run(work, transaction=False)
        return await self._run(work, transaction=False, conn=self._reader, lock=self._read_lock)

    async def _run(
        self,
        work: Callable[[aiosqlite.Connection], Awaitable[T]],
        *,
        transaction: bool,
        conn: aiosqlite.Connection | None = None,
        lock: asyncio.Lock | None = None,
    ) -> T:
        writing = conn is None
        conn = self._conn if conn is None else conn
        async with self._lock if lock is None else lock:
            self._ready(writing=writing)
            return await self._retrying(work, conn, transaction=transaction, writing=writing)

    def _ready(self, *, writing: bool) -> None:
        if self._closed:
            raise RuntimeError("the store is closed")
        if writing:
            self._check_file()
            if self._problem is not None:
                raise StoreUnavailableError(f"nothing was saved: {self._problem}")

    async def _retrying(
        self,
        work: Callable[[aiosqlite.Connection], Awaitable[T]],
        conn: aiosqlite.Connection,
        *,
        transaction: bool,
        writing: bool,
    ) -> T:
        attempt = 0
        while True:
            try:
                result = await self._attempt(work, conn, transaction=transaction)
                if writing:
                    self._write_failure = None
                return result
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    # Disk full, I/O error, read-only file: the write is lost, say so
                    # in the store's own terms (callers tell the member).
                    raise self._cannot(exc, writing=writing) from exc
                if attempt >= self._lock_retries:
                    raise StoreBusyError(
                        f"database stayed locked after {attempt + 1} attempts: {exc}"
                    ) from exc
                delay = min(_MAX_BACKOFF, self._retry_backoff * 2**attempt)
                attempt += 1
                self.busy_retries += 1
                log.warning(
                    "database is locked (%s); retry %d/%d in %.2fs",
                    exc,
                    attempt,
                    self._lock_retries,
                    delay,
                )
                await asyncio.sleep(delay)

    def _cannot(self, exc: sqlite3.OperationalError, *, writing: bool) -> StoreUnavailableError:
        if writing:
            self._write_failure = f"the database cannot be written ({exc})"
        return StoreUnavailableError(f"the database cannot be used: {exc}")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """`async with db.transaction() as conn:` — one BEGIN IMMEDIATE … COMMIT around the
        caller's block, holding the writer's lock throughout, for a read-modify-write that
        no other write may come between. Only BEGIN is retried on a busy database (nothing
        has run yet); an exception in the block rolls everything back and propagates."""
        async with self._lock:
            self._ready(writing=True)
            conn = self._conn
            await self._retrying(_begin, conn, transaction=False, writing=True)
            try:
                yield conn
                await conn.execute("COMMIT")
            except BaseException as exc:
                try:
                    await conn.rollback()
                except Exception:
                    log.exception("rollback failed")
                if isinstance(exc, sqlite3.OperationalError):
                    raise self._cannot(exc, writing=True) from exc
                raise
            self._write_failure = None

    async def _attempt(
        self,
        work: Callable[[aiosqlite.Connection], Awaitable[T]],
        conn: aiosqlite.Connection,
        *,
        transaction: bool,
    ) -> T:
        if conn.in_transaction:
            # Only a cancelled rollback can leave one open; never build on its leftovers.
            await conn.rollback()
        if not transaction:
            return await work(conn)
        await conn.execute("BEGIN IMMEDIATE")
        try:
            result = await work(conn)
            await conn.execute("COMMIT")
        except BaseException:
            # BaseException too: a cancelled task must not leave the transaction open
            # for the next one to commit. rollback() is a no-op when none is active.
            try:
                await conn.rollback()
            except Exception:
                log.exception("rollback failed")
            raise
        return result

    async def close(self) -> None:
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            await self._conn.close()
            if self._reader is not None:
                async with self._read_lock:
                    await self._reader.close()


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
    "mode",  # since migration 0005
    "error_code",  # since migration 0005
    "account",  # since migration 0006
)
# The first schema's columns, the first of every row (for tests of older databases).
V1_JOB_COLUMNS = _COLUMNS[:13]
_INSERT = (
    f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
    " ON CONFLICT (idempotency_key) DO NOTHING"
)
_UPDATE = f"UPDATE jobs SET {', '.join(f'{c} = ?' for c in _COLUMNS[1:])} WHERE id = ?"
_ACTIVE = tuple(status.value for status in JobStatus if status.is_active)


def _row(job: Job) -> tuple[Any, ...]:
    # allow_nan=False: NaN is not JSON, and SQLite's json functions (handy in future data
    # migrations) would reject it; better to fail at the write that produces it.
    data = json.dumps(job_to_dict(job), ensure_ascii=False, allow_nan=False)
    return (
        job.id,
        job.idempotency_key,
        job.provider,
        job.provider_ref,
        job.status.value,
        job.requester_id,
        job.guild_id,
        job.channel_id,
        job.parent_job_id,
        job.created_at,
        job.updated_at,
        job.finished_at,
        data,
        job.operation.mode.value if job.operation.mode else None,
        job.error.code.value if job.error else None,
        job.account,
    )


def _job(data: str) -> Job:
    return job_from_dict(json.loads(data))


class SqliteJobRepository:
    """`JobRepository` on SQLite (and `StorageHealth`, for /healthz)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def storage_problem(self) -> str | None:
        return self._db.storage_problem()

    async def insert(self, job: Job) -> tuple[Job, bool]:
        row = _row(job)

        async def work(conn: aiosqlite.Connection) -> tuple[Job, bool]:
            try:
                cursor = await conn.execute(_INSERT, row)
            except sqlite3.IntegrityError as exc:
                raise JobExistsError(f"job {job.id} is already stored") from exc
            if cursor.rowcount == 1:
                return job, True
            # The key is taken. Read the holder in the same transaction, so it cannot
            # change or vanish between the conflict and the answer.
            existing = await _fetch_one(
                conn, "SELECT data FROM jobs WHERE idempotency_key = ?", (job.idempotency_key,)
            )
            if existing is None:  # pragma: no cover - the conflict proves it exists
                raise RuntimeError("idempotency conflict without a holder")
            return existing, False

        return await self._db.write(work)

    async def save(self, job: Job) -> None:
        row = _row(job)
        params = (*row[1:], row[0])

        async def work(conn: aiosqlite.Connection) -> None:
            cursor = await conn.execute(_UPDATE, params)
            if cursor.rowcount == 0:
                raise JobNotFoundError(f"job {job.id} is not stored; insert it first")

        await self._db.write_statement(work)

    async def get(self, job_id: str) -> Job | None:
        return await self._one("SELECT data FROM jobs WHERE id = ?", (job_id,))

    async def get_by_idempotency_key(self, key: str) -> Job | None:
        return await self._one("SELECT data FROM jobs WHERE idempotency_key = ?", (key,))

    async def get_by_provider_ref(self, provider: str, ref: str) -> Job | None:
        return await self._one(
            "SELECT data FROM jobs WHERE provider = ? AND provider_ref = ?"
            " ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (provider, ref),
        )

    async def list_active(self) -> list[Job]:
        # rowid breaks ties in insertion order, so equal timestamps keep a stable order.
        marks = ", ".join("?" for _ in _ACTIVE)
        return await self._many(
            f"SELECT data FROM jobs WHERE status IN ({marks}) ORDER BY created_at, rowid",
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
        return await self._many(
            f"SELECT data FROM jobs WHERE {where}"
            " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )

    async def count_for_requester_since(
        self, requester_id: str, since: float, *, guild_id: str | None = None
    ) -> int:
        where, params = _requester_filter(requester_id, guild_id)

        async def work(conn: aiosqlite.Connection) -> int:
            async with conn.execute(
                f"SELECT COUNT(*) FROM jobs WHERE {where} AND created_at >= ?",
                (*params, since),
            ) as cursor:
                row = await cursor.fetchone()
            return int(row[0]) if row is not None else 0

        return await self._db.read(work)

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Job | None:
        return await self._db.read(partial(_fetch_one, sql=sql, params=params))

    async def _many(self, sql: str, params: tuple[Any, ...]) -> list[Job]:
        async def work(conn: aiosqlite.Connection) -> list[Job]:
            rows = await conn.execute_fetchall(sql, params)
            return [_job(row[0]) for row in rows]

        return await self._db.read(work)


def _requester_filter(requester_id: str, guild_id: str | None) -> tuple[str, tuple[Any, ...]]:
    if guild_id is None:
        return "requester_id = ?", (requester_id,)
    return "requester_id = ? AND guild_id = ?", (requester_id, guild_id)


async def _fetch_one(conn: aiosqlite.Connection, sql: str, params: tuple[Any, ...]) -> Job | None:
    async with conn.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    return None if row is None else _job(row[0])


# --- deliveries -------------------------------------------------------------------------

_DELIVERY_COLUMNS = (
    "job_id, channel_id, message_id, guild_id, upload_limit, final_delivered_at, "
    "created_at, updated_at"
)


def _delivery_row(d: Delivery) -> tuple[Any, ...]:
    return (
        d.job_id,
        d.channel_id,
        d.message_id,
        d.guild_id,
        d.upload_limit,
        d.final_delivered_at,
        d.created_at,
        d.updated_at,
    )


class SqliteDeliveryRepository:
    """`DeliveryRepository` on SQLite."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def claim(self, delivery: Delivery) -> bool:
        async def work(conn: aiosqlite.Connection) -> bool:
            cursor = await conn.execute(
                f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(job_id) DO NOTHING",
                _delivery_row(delivery),
            )
            return cursor.rowcount == 1

        return await self._db.write(work)

    async def save(self, delivery: Delivery) -> None:
        async def work(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                f"INSERT OR REPLACE INTO deliveries ({_DELIVERY_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                _delivery_row(delivery),
            )

        await self._db.write_statement(work)

    async def get(self, job_id: str) -> Delivery | None:
        rows = await self._select("WHERE job_id = ?", (job_id,))
        return rows[0] if rows else None

    async def list_undelivered(self) -> list[Delivery]:
        return await self._select(
            "WHERE final_delivered_at IS NULL ORDER BY created_at, job_id", ()
        )

    async def jobs_without_delivery(self, since: float) -> list[str]:
        async def work(conn: aiosqlite.Connection) -> list[str]:
            async with conn.execute(
                "SELECT j.id FROM jobs j LEFT JOIN deliveries d ON d.job_id = j.id"
                " WHERE d.job_id IS NULL AND j.created_at >= ? ORDER BY j.created_at",
                (since,),
            ) as cursor:
                return [str(row[0]) for row in await cursor.fetchall()]

        return await self._db.read(work)

    async def _select(self, where: str, params: tuple[Any, ...]) -> list[Delivery]:
        async def work(conn: aiosqlite.Connection) -> list[Delivery]:
            async with conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries {where}", params
            ) as cursor:
                rows = await cursor.fetchall()
            names = [c.strip() for c in _DELIVERY_COLUMNS.split(",")]
            return [Delivery(**dict(zip(names, row, strict=True))) for row in rows]

        return await self._db.read(work)


# --- member preferences ---------------------------------------------------------------


def _guild_key(guild_id: str | None) -> str:
    return guild_id or ""  # DMs: see migrations/0003_member_prefs.sql


class SqliteMemberPrefsRepository:
    """`MemberPrefsRepository` on SQLite."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def get(self, guild_id: str | None, user_id: str) -> MemberPrefs:
        async def work(conn: aiosqlite.Connection) -> MemberPrefs:
            async with conn.execute(
                "SELECT data FROM member_prefs WHERE guild_id = ? AND user_id = ?",
                (_guild_key(guild_id), user_id),
            ) as cursor:
                row = await cursor.fetchone()
            data = json.loads(row[0]) if row is not None else {}
            return MemberPrefs.from_data(guild_id, user_id, data)

        return await self._db.read(work)

    async def save(self, prefs: MemberPrefs) -> None:
        data = json.dumps(prefs.to_data(), ensure_ascii=False, allow_nan=False)

        async def work(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO member_prefs (guild_id, user_id, data, updated_at)"
                " VALUES (?, ?, ?, ?)"
                " ON CONFLICT (guild_id, user_id)"
                " DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                (_guild_key(prefs.guild_id), prefs.user_id, data, time.time()),
            )

        await self._db.write(work)


# --- server settings and their audit log ------------------------------------------------


class SqliteGuildSettingsRepository:
    """`GuildSettingsRepository` on SQLite: one JSON row per server."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def get(self, guild_id: str) -> GuildSettings:
        async def work(conn: aiosqlite.Connection) -> GuildSettings:
            async with conn.execute(
                "SELECT data FROM guild_settings WHERE guild_id = ?", (str(guild_id),)
            ) as cursor:
                row = await cursor.fetchone()
            data = json.loads(row[0]) if row is not None else {}
            return GuildSettings.from_data(str(guild_id), data if isinstance(data, dict) else {})

        return await self._db.read(work)

    async def save(self, settings: GuildSettings) -> None:
        data = json.dumps(settings.to_data(), ensure_ascii=False, allow_nan=False)

        async def work(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO guild_settings (guild_id, data, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (guild_id)"
                " DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                (settings.guild_id, data, time.time()),
            )

        await self._db.write(work)

    @contextlib.asynccontextmanager
    async def edit(
        self, guild_id: str, actor_id: str, action: str, *, at: float
    ) -> AsyncIterator[SettingsEdit]:
        """See `GuildSettingsRepository.edit`: BEGIN IMMEDIATE on the store's connection,
        under its lock, so no other write of this process or another comes between."""
        guild_id = str(guild_id)
        async with self._db.transaction() as conn:
            async with conn.execute(
                "SELECT data FROM guild_settings WHERE guild_id = ?", (guild_id,)
            ) as cursor:
                row = await cursor.fetchone()
            data = json.loads(row[0]) if row is not None else {}
            edit = SettingsEdit(
                GuildSettings.from_data(guild_id, data if isinstance(data, dict) else {})
            )
            yield edit
            change = edit.change
            if not change:
                return
            await conn.execute(
                "INSERT INTO guild_settings (guild_id, data, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (guild_id)"
                " DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                (guild_id, _settings_json(edit.settings), time.time()),
            )
            await conn.execute(
                "INSERT INTO audit_log (guild_id, actor_id, action, detail, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (guild_id, str(actor_id), action, change, at),
            )


def _settings_json(settings: GuildSettings) -> str:
    return json.dumps(settings.to_data(), ensure_ascii=False, allow_nan=False)


class SqliteAuditRepository:
    """`AuditRepository` on SQLite: an append-only table."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def record(
        self, guild_id: str, actor_id: str, action: str, detail: str, at: float
    ) -> None:
        async def work(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO audit_log (guild_id, actor_id, action, detail, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (str(guild_id), str(actor_id), action, detail, at),
            )

        await self._db.write(work)

    async def recent(self, guild_id: str, limit: int = 20) -> list[AuditEntry]:
        if limit < 0:
            raise ValueError("limit must be >= 0")

        async def work(conn: aiosqlite.Connection) -> list[AuditEntry]:
            rows = await conn.execute_fetchall(
                "SELECT guild_id, actor_id, action, detail, at FROM audit_log"
                " WHERE guild_id = ? ORDER BY at DESC, id DESC LIMIT ?",
                (str(guild_id), limit),
            )
            return [AuditEntry(*row) for row in rows]

        return await self._db.read(work)


# --- usage ------------------------------------------------------------------------------

# Mode and error code have their own columns (migration 0005: quotas read them on every
# command); costs are read from the job's JSON, for the rarer usage reports.
_MODE = "mode"
_COST_UNIT = "json_extract(data, '$.cost.unit')"
_COST_AMOUNT = "json_extract(data, '$.cost.amount')"
_ERROR_CODE = "error_code"
_FAST_LIST = ", ".join(f"'{mode}'" for mode in sorted(FAST_MODES))  # constants, not input
_COUNTS = (
    "COUNT(*),"
    f" COALESCE(SUM(status = '{JobStatus.COMPLETED.value}'), 0),"
    f" COALESCE(SUM({_MODE} IN ({_FAST_LIST})), 0)"
)
_MEMBER = "guild_id = ? AND requester_id = ?"
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


class SqliteUsageRepository:
    """`UsageRepository` on SQLite, computed from the jobs table.

    Jobs count by `created_at` (when asked for); a job's cost counts only when the
    provider reported one (`job.cost`), failed and cancelled jobs included. A job whose
    operation has no mode recorded is not counted as fast.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def member_summary(self, guild_id: str, user_id: str, *, since: float) -> UsageSummary:
        return await self._summary(
            f"{_MEMBER} AND created_at >= ?", (str(guild_id), str(user_id), since)
        )

    async def video_counts(self, guild_id: str, user_id: str, since: float) -> VideoCounts:
        # The kind is read from the job's JSON: the member's rows of one day are few.
        sql = (
            f"SELECT COUNT(*), COALESCE(SUM(NOT {UNSPENT_JOB_SQL}), 0),"
            f" COALESCE(SUM({_MODE} IN ({_FAST_LIST}) AND NOT {UNSPENT_JOB_SQL}), 0)"
            f" FROM jobs WHERE {_MEMBER} AND created_at >= ?"
            f" AND json_extract(data, '$.operation.kind') IN ({_VIDEO_KINDS})"
        )

        async def work(conn: aiosqlite.Connection) -> VideoCounts:
            async with conn.execute(sql, (str(guild_id), str(user_id), since)) as cur:
                row = await cur.fetchone()
            return VideoCounts() if row is None else VideoCounts(*(int(v) for v in row))

        return await self._db.read(work)

    async def guild_summary(self, guild_id: str, *, since: float) -> UsageSummary:
        return await self._summary("guild_id = ? AND created_at >= ?", (str(guild_id), since))

    async def account_summary(self, account: str, *, since: float) -> UsageSummary:
        return await self._summary("account = ? AND created_at >= ?", (account, since))

    async def quota_counts(self, guild_id: str, user_id: str, since: float) -> QuotaCounts:
        active = ", ".join(f"'{status}'" for status in _ACTIVE)  # constants, not input
        sql = (
            f"SELECT COALESCE(SUM(status IN ({active})), 0),"
            f" COALESCE(SUM(created_at >= ? AND NOT {UNSPENT_JOB_SQL}), 0),"
            f" COALESCE(SUM(created_at >= ? AND {_MODE} IN ({_FAST_LIST})"
            f" AND NOT {UNSPENT_JOB_SQL}), 0),"
            f" COALESCE(SUM(created_at >= ? AND status = ? AND {_ERROR_CODE} = ?), 0)"
            f" FROM jobs WHERE {_MEMBER} AND (status IN ({active}) OR created_at >= ?)"
        )
        params = (
            since,
            since,
            since,
            JobStatus.FAILED.value,
            ErrorCode.MODERATED.value,
            str(guild_id),
            str(user_id),
            since,
        )

        async def work(conn: aiosqlite.Connection) -> QuotaCounts:
            async with conn.execute(sql, params) as cur:
                row = await cur.fetchone()
            if row is None:
                return QuotaCounts()
            return QuotaCounts(*(int(v) for v in row))

        return await self._db.read(work)

    async def count_active(self, guild_id: str, user_id: str) -> int:
        marks = ", ".join("?" for _ in _ACTIVE)
        return await self._count(
            f"{_MEMBER} AND status IN ({marks})", (str(guild_id), str(user_id), *_ACTIVE)
        )

    async def count_since(
        self, guild_id: str, user_id: str, since: float, *, modes: Iterable[str] | None = None
    ) -> int:
        where = f"{_MEMBER} AND created_at >= ?"
        params: tuple[Any, ...] = (str(guild_id), str(user_id), since)
        if modes is not None:
            wanted = sorted({str(m) for m in modes})
            if not wanted:
                return 0
            where += f" AND {_MODE} IN ({', '.join('?' for _ in wanted)})"
            params += tuple(wanted)
        return await self._count(where, params)

    async def moderation_failures_since(self, guild_id: str, user_id: str, since: float) -> int:
        # By created_at like every other count: a moderation refusal comes within
        # seconds of the submission, and the index covers it.
        return await self._count(
            f"{_MEMBER} AND created_at >= ? AND status = ? AND {_ERROR_CODE} = ?",
            (
                str(guild_id),
                str(user_id),
                since,
                JobStatus.FAILED.value,
                ErrorCode.MODERATED.value,
            ),
        )

    async def top_members(
        self, guild_id: str, *, since: float, limit: int = 10
    ) -> list[tuple[str, UsageSummary]]:
        if limit < 0:
            raise ValueError("limit must be >= 0")
        where = "guild_id = ? AND created_at >= ? AND requester_id IS NOT NULL"
        params = (str(guild_id), since)

        async def work(conn: aiosqlite.Connection) -> list[tuple[str, UsageSummary]]:
            counts = await conn.execute_fetchall(
                f"SELECT requester_id, {_COUNTS} FROM jobs WHERE {where} GROUP BY requester_id",
                params,
            )
            cost_rows = await conn.execute_fetchall(
                f"SELECT requester_id, {_COST_UNIT}, {_COST_AMOUNT} FROM jobs"
                f" WHERE {where} AND {_COST_UNIT} IS NOT NULL",
                params,
            )
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

        return await self._db.read(work)

    async def daily_totals(self, guild_id: str, *, since: float, days: int) -> list[DailyUsage]:
        if days < 0:
            raise ValueError("days must be >= 0")
        start = utc_day_start(since)
        end = start + days * DAY_SECONDS
        day = f"CAST((created_at - ?) / {DAY_SECONDS} AS INTEGER)"
        where = "guild_id = ? AND created_at >= ? AND created_at < ?"
        params = (start, str(guild_id), start, end)

        async def work(conn: aiosqlite.Connection) -> list[DailyUsage]:
            jobs = [0] * days
            costs: list[dict[str, Decimal]] = [{} for _ in range(days)]
            for index, count in await conn.execute_fetchall(
                f"SELECT {day} AS d, COUNT(*) FROM jobs WHERE {where} GROUP BY d", params
            ):
                if 0 <= index < days:
                    jobs[index] = int(count)
            for index, unit, amount in await conn.execute_fetchall(
                f"SELECT {day}, {_COST_UNIT}, {_COST_AMOUNT} FROM jobs"
                f" WHERE {where} AND {_COST_UNIT} IS NOT NULL",
                params,
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

    async def _summary(self, where: str, params: tuple[Any, ...]) -> UsageSummary:
        async def work(conn: aiosqlite.Connection) -> UsageSummary:
            async with conn.execute(f"SELECT {_COUNTS} FROM jobs WHERE {where}", params) as cur:
                row = await cur.fetchone()
            jobs, completed, fast = row if row is not None else (0, 0, 0)
            costs: dict[str, Decimal] = {}
            for unit, amount in await conn.execute_fetchall(
                f"SELECT {_COST_UNIT}, {_COST_AMOUNT} FROM jobs"
                f" WHERE {where} AND {_COST_UNIT} IS NOT NULL",
                params,
            ):
                _add_cost(costs, unit, amount)
            return UsageSummary(
                jobs=int(jobs), completed=int(completed), fast=int(fast), costs=costs
            )

        return await self._db.read(work)

    async def _count(self, where: str, params: tuple[Any, ...]) -> int:
        async def work(conn: aiosqlite.Connection) -> int:
            async with conn.execute(f"SELECT COUNT(*) FROM jobs WHERE {where}", params) as cur:
                row = await cur.fetchone()
            return int(row[0]) if row is not None else 0

        return await self._db.read(work)


# --- the store --------------------------------------------------------------------------


class SqliteStore:
    """Every repository on one SQLite database (`Store`)."""

    def __init__(self, db: SqliteDatabase, path: str) -> None:
        self.db = db
        self.path = path
        self.jobs = SqliteJobRepository(db)
        self.deliveries = SqliteDeliveryRepository(db)
        self.prefs = SqliteMemberPrefsRepository(db)
        self.guilds = SqliteGuildSettingsRepository(db)
        self.audit = SqliteAuditRepository(db)
        self.usage = SqliteUsageRepository(db)

    async def close(self) -> None:
        await self.db.close()

    async def __aenter__(self) -> SqliteStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def open_store(
    database_url: str,
    *,
    migrations: Sequence[Migration] | None = None,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    lock_retries: int = DEFAULT_LOCK_RETRIES,
    retry_backoff: float = DEFAULT_RETRY_BACKOFF,
) -> SqliteStore:
    """Open (creating if needed) and migrate the database `database_url` names.

    `migrations` defaults to the files shipped with the package. `busy_timeout_ms` is how
    long SQLite itself waits for a lock per attempt; `lock_retries` more attempts follow,
    `retry_backoff` seconds apart, doubling.
    """
    path = sqlite_path_from_url(database_url)
    if path != MEMORY:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: the sqlite3 module must not open transactions behind our
    # back; SqliteDatabase issues BEGIN IMMEDIATE / COMMIT itself.
    conn = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
    db: SqliteDatabase | None = None
    try:
        # busy_timeout first, so that switching to WAL waits for other connections.
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        async with conn.execute("PRAGMA journal_mode = WAL") as cursor:
            row = await cursor.fetchone()
        mode = str(row[0]).lower() if row is not None else "?"
        if path != MEMORY and mode != "wal":
            log.warning("database %s stays in journal mode %s, not WAL", path, mode)
        # NORMAL is durable against a process crash in WAL mode, and much faster than FULL;
        # only an OS crash or power loss may lose the last commits.
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        db = SqliteDatabase(conn, lock_retries=lock_retries, retry_backoff=retry_backoff)
        await apply_migrations(db, load_migrations() if migrations is None else migrations)
        if path != MEMORY and mode == "wal":
            db.use_reader(await _open_reader(path, busy_timeout_ms))
        if path != MEMORY:
            db.watch_file(path)
    except BaseException:
        await (db.close() if db is not None else conn.close())
        raise
    return SqliteStore(db, path)


async def _open_reader(path: str, busy_timeout_ms: int) -> aiosqlite.Connection:
    reader = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
    try:
        await reader.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        await reader.execute("PRAGMA query_only = ON")  # reads only, by construction
    except BaseException:
        await reader.close()
        raise
    return reader
